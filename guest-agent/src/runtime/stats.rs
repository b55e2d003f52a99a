//! `stats`: a running container's usage, sampled once or every second,
//! and `container prune`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::{Containers, Record};
use crate::error::{Error, Result};

/// One sample of a container's usage.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// The container's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// When the sample was taken.
    pub time: SystemTime,
    /// CPU use since the previous sample, in percent of one CPU.
    pub cpu_percent: f64,
    /// Memory in use (without the page cache).
    pub memory_usage: u64,
    /// The memory limit.
    pub memory_limit: u64,
    /// Processes.
    pub pids: u64,
    /// Bytes read from block devices.
    pub block_read: u64,
    /// Bytes written to block devices.
    pub block_write: u64,
}

/// CPU use between two readings of total CPU time (nanoseconds), in
/// percent of one CPU.
pub fn cpu_percent(then: (Instant, u64), now: (Instant, u64)) -> f64 {
    let wall = now.0.duration_since(then.0).as_nanos().max(1) as f64;
    now.1.saturating_sub(then.1) as f64 / wall * 100.0
}

/// True for a container `prune` removes: one that is not running,
/// paused or restarting.
pub fn prunable(r: &Record) -> bool {
    !r.state.is_running() && r.state.status != "restarting"
}

impl Containers {
    /// Samples a running container's usage: one sample (after a first
    /// reading half a second earlier, for the CPU), or with `stream` one a
    /// second until the container stops or the receiver is dropped.
    pub fn stats(self: &Arc<Self>, input: &str, stream: bool) -> Result<mpsc::Receiver<Stats>> {
        let entry = self.find(input)?;
        let record = entry.record();
        if !record.state.is_running() {
            return Err(Error::FailedPrecondition(format!(
                "container {} is not running",
                record.id
            )));
        }
        let (tx, rx) = mpsc::channel(4);
        let me = self.clone();
        tokio::spawn(async move {
            let mut prev: Option<(Instant, u64)> = None;
            loop {
                let record = entry.record();
                let Ok(s) = me.sample(&record.id) else { break };
                let now = (Instant::now(), s.cpu_total_ns);
                let Some(then) = prev else {
                    prev = Some(now);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                };
                let sample = Stats {
                    id: record.id.clone(),
                    name: record.name.clone(),
                    time: SystemTime::now(),
                    cpu_percent: cpu_percent(then, now),
                    memory_usage: s.memory_usage,
                    memory_limit: s.memory_limit,
                    pids: s.pids,
                    block_read: s.block_read,
                    block_write: s.block_write,
                };
                prev = Some(now);
                if tx.send(sample).await.is_err() || !stream {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Ok(rx)
    }

    /// Removes every container [`prunable`] says may go; returns their ids
    /// and the bytes their writable layers held.
    pub async fn prune(&self) -> (Vec<String>, u64) {
        let mut deleted = Vec::new();
        let mut reclaimed = 0;
        for e in self.all() {
            let r = e.record();
            if !prunable(&r) {
                continue;
            }
            let size = crate::util::du::dir_size(&self.dir_of(&r.id).join("upper"));
            if self.remove(&r.id, false, false).await.is_ok() {
                reclaimed += size;
                deleted.push(r.id);
            }
        }
        (deleted, reclaimed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_is_cpu_time_over_wall_time() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        assert!((cpu_percent((t0, 0), (t1, 1_000_000_000)) - 50.0).abs() < 1e-9);
        assert!((cpu_percent((t0, 0), (t1, 4_000_000_000)) - 200.0).abs() < 1e-9);
        // A counter that went backwards (a restarted container) is 0.
        assert_eq!(cpu_percent((t0, 5), (t1, 1)), 0.0);
    }
}

#[cfg(test)]
mod prune_tests {
    use super::*;
    use crate::runtime::record::tests::record;

    #[test]
    fn prune_takes_stopped_and_created_containers_only() {
        for (status, goes) in [
            ("created", true),
            ("exited", true),
            ("dead", true),
            ("running", false),
            ("paused", false),
            ("restarting", false),
        ] {
            assert_eq!(prunable(&record("a", "a", status)), goes, "{status}");
        }
    }
}
