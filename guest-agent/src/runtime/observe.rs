//! Looking at containers: `ps`, `inspect`, `top`, `stats` and `logs`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::logs::{self, Line};
use super::record::{human_status, Record};
use super::Containers;
use crate::error::{Error, Result};

mod inspect;

/// One row of `ps`.
#[derive(Debug, Clone)]
pub struct ContainerSummary {
    /// The record.
    pub record: Record,
    /// Docker's human status ("Up 3 seconds").
    pub status: String,
}

/// What `logs` should send.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Keep sending new lines until the container stops.
    pub follow: bool,
    /// Lines from the end (None: all).
    pub tail: Option<usize>,
    /// Only lines at or after.
    pub since: Option<DateTime<Utc>>,
    /// Only lines before.
    pub until: Option<DateTime<Utc>>,
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
}

/// `top`'s table.
#[derive(Debug, Clone)]
pub struct TopTable {
    /// Column titles.
    pub titles: Vec<String>,
    /// One row per process.
    pub rows: Vec<Vec<String>>,
}

/// One `stats` sample.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// Total CPU time used, in nanoseconds.
    pub cpu_total_ns: u64,
    /// Memory in use (without the page cache).
    pub memory_usage: u64,
    /// The memory limit (the host's memory when unlimited).
    pub memory_limit: u64,
    /// Processes.
    pub pids: u64,
    /// Bytes read from block devices.
    pub block_read: u64,
    /// Bytes written to block devices.
    pub block_write: u64,
}

fn matches_filters(r: &Record, filters: &HashMap<String, Vec<String>>) -> bool {
    filters.iter().all(|(key, values)| {
        values.iter().any(|v| match key.as_str() {
            "status" => r.state.status == *v,
            "name" => r.name.contains(v.trim_start_matches('/')),
            "id" => r.id.starts_with(v.as_str()),
            "ancestor" => {
                r.image == *v
                    || r.image_id == *v
                    || r.image_id
                        .strip_prefix("sha256:")
                        .is_some_and(|hex| hex.starts_with(v.trim_start_matches("sha256:")))
            }
            "label" => match v.split_once('=') {
                Some((k, val)) => r.config.labels.get(k).is_some_and(|x| x == val),
                None => r.config.labels.contains_key(v),
            },
            "exited" => r.state.status == "exited" && r.state.exit_code.to_string() == *v,
            "health" => {
                r.state
                    .health
                    .as_ref()
                    .map_or("none", |h| h.status.as_str())
                    == v
            }
            _ => false,
        })
    })
}

impl Containers {
    /// Containers for `ps`, newest first: running ones, or all.
    pub fn list(
        &self,
        all: bool,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<ContainerSummary>> {
        for key in filters.keys() {
            if ![
                "status", "name", "id", "ancestor", "label", "exited", "health",
            ]
            .contains(&key.as_str())
            {
                return Err(Error::InvalidArgument(format!(
                    "invalid filter {key:?}: use status, name, id, ancestor, label, exited or health"
                )));
            }
        }
        for v in filters.get("health").into_iter().flatten() {
            if !["starting", "healthy", "unhealthy", "none"].contains(&v.as_str()) {
                return Err(Error::InvalidArgument(format!(
                    "Unrecognised filter value for health: {v}"
                )));
            }
        }
        let now = Utc::now();
        let mut out: Vec<ContainerSummary> = self
            .all()
            .iter()
            .map(|e| e.record())
            .filter(|r| all || r.state.is_running() || filters.contains_key("status"))
            .filter(|r| matches_filters(r, filters))
            .map(|r| ContainerSummary {
                status: human_status(&r.state, now),
                record: r,
            })
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.record.created));
        Ok(out)
    }

    /// Processes in the container, as `ps` on the host shows them (`-ef`
    /// unless other `ps` options are given).
    pub async fn top(&self, input: &str, ps_args: &[String]) -> Result<TopTable> {
        let entry = self.find(input)?;
        let r = entry.record();
        if !r.state.is_running() {
            return Err(Error::FailedPrecondition(format!(
                "container {} is not running",
                r.id
            )));
        }
        let pids = crate::cgroups::Cgroup::of(&r.id).pids()?;
        let args: Vec<String> = if ps_args.is_empty() {
            vec!["-ef".into()]
        } else {
            ps_args.to_vec()
        };
        let out = tokio::process::Command::new("ps")
            .args(&args)
            .output()
            .await
            .map_err(|e| Error::FailedPrecondition(format!("`ps` cannot run on the host: {e}")))?;
        if !out.status.success() {
            return Err(Error::InvalidArgument(format!(
                "ps {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let titles: Vec<String> = header.split_whitespace().map(String::from).collect();
        let pid_col = titles.iter().position(|t| t == "PID").ok_or_else(|| {
            Error::InvalidArgument("the ps options must include the PID column".into())
        })?;
        let mut rows = Vec::new();
        for line in lines {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < titles.len() {
                continue;
            }
            if fields[pid_col]
                .parse::<i32>()
                .is_ok_and(|p| pids.contains(&p))
            {
                let mut row: Vec<String> = fields[..titles.len() - 1]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                row.push(fields[titles.len() - 1..].join(" "));
                rows.push(row);
            }
        }
        Ok(TopTable { titles, rows })
    }

    /// One resource sample of a running container.
    pub fn sample(&self, id: &str) -> Result<Sample> {
        let stats = crate::cgroups::Cgroup::of(id).stats()?;
        let cache = stats
            .memory
            .stats
            .get("inactive_file")
            .or(stats.memory.stats.get("total_inactive_file"))
            .copied()
            .unwrap_or(0);
        let host_memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .unwrap_or(0)
            * 1024;
        let limit = stats.memory.memory.limit;
        let (mut read, mut write) = (0, 0);
        for d in &stats.blkio.service_bytes {
            match d.op_type.as_deref().map(|s| s.to_ascii_lowercase()) {
                Some(ref op) if op == "read" => read += d.value,
                Some(ref op) if op == "write" => write += d.value,
                _ => {}
            }
        }
        Ok(Sample {
            cpu_total_ns: stats.cpu.usage.usage_total,
            memory_usage: stats.memory.memory.usage.saturating_sub(cache),
            memory_limit: if limit == 0 || limit > host_memory {
                host_memory
            } else {
                limit
            },
            pids: stats.pids.current,
            block_read: read,
            block_write: write,
        })
    }

    /// Log lines for `logs`: what is stored, filtered, then (with
    /// `follow`) new lines until the container stops.
    pub fn logs(&self, input: &str, opts: LogOptions) -> Result<tokio::sync::mpsc::Receiver<Line>> {
        let entry = self.find(input)?;
        let r = entry.record();
        let path = self.log_path(&r.id);
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let keep = move |l: &Line, opts: &LogOptions| {
            (l.stream == "stdout" && opts.stdout || l.stream == "stderr" && opts.stderr)
                && opts.since.is_none_or(|s| l.time >= s)
                && opts.until.is_none_or(|u| l.time < u)
        };
        let mut changed = entry.changed.subscribe();
        let entry = entry.clone();
        tokio::spawn(async move {
            let (stored, mut tail) = logs::Tail::open(&path);
            let mut lines: Vec<Line> = stored.into_iter().filter(|l| keep(l, &opts)).collect();
            if let Some(n) = opts.tail {
                let skip = lines.len().saturating_sub(n);
                lines.drain(..skip);
            }
            for l in lines {
                if tx.send(l).await.is_err() {
                    return;
                }
            }
            if !opts.follow {
                return;
            }
            let Ok(notify) = LogNotify::new(&path) else {
                return;
            };
            loop {
                let running = entry.record().state.is_running()
                    || entry.record().state.status == "restarting";
                for l in tail.read_new() {
                    if keep(&l, &opts) && tx.send(l).await.is_err() {
                        return;
                    }
                }
                if !running {
                    return;
                }
                tokio::select! {
                    _ = notify.wait() => {}
                    _ = changed.changed() => {}
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(rx)
    }
}

/// Wakes when a container's log directory changes (inotify, no polling).
struct LogNotify {
    fd: crate::util::fdio::Fd,
}

impl LogNotify {
    fn new(path: &std::path::Path) -> Result<LogNotify> {
        use std::os::fd::FromRawFd;
        use std::os::unix::ffi::OsStrExt;
        let fail = || Error::Internal(format!("inotify: {}", std::io::Error::last_os_error()));
        // SAFETY: inotify_init1 returns a new descriptor or -1.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(fail());
        }
        // SAFETY: the descriptor was just created and is ours alone.
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        let dir = path.parent().unwrap_or(std::path::Path::new("/"));
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| fail())?;
        // SAFETY: a valid inotify descriptor and a NUL-terminated path.
        if unsafe {
            libc::inotify_add_watch(
                raw,
                c.as_ptr(),
                libc::IN_MODIFY | libc::IN_CREATE | libc::IN_MOVED_TO,
            )
        } < 0
        {
            return Err(fail());
        }
        let fd = crate::util::fdio::Fd::new(owned)
            .map_err(|e| Error::Internal(format!("inotify: {e}")))?;
        Ok(LogNotify { fd })
    }

    async fn wait(&self) {
        let mut buf = [0u8; 4096];
        let _ = self.fd.read(&mut buf).await;
        // Drain whatever else is queued, then give writers a moment to
        // finish the line they are on.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;
    use crate::runtime::record::tests::record;

    use crate::util::filters as f;

    #[test]
    fn ps_filters_match_as_docker_s() {
        let mut r = record("abcdef0123", "web-1", "exited");
        r.state.exit_code = 2;
        r.image_id = "sha256:fedcba".into();
        r.config.labels.insert("tier".into(), "front".into());
        assert!(matches_filters(&r, &f(&[])));
        assert!(matches_filters(
            &r,
            &f(&[("status", &["running", "exited"])])
        ));
        assert!(!matches_filters(&r, &f(&[("status", &["running"])])));
        assert!(matches_filters(&r, &f(&[("name", &["/web"])])));
        assert!(matches_filters(&r, &f(&[("id", &["abc"])])));
        assert!(matches_filters(&r, &f(&[("ancestor", &["busybox"])])));
        assert!(matches_filters(&r, &f(&[("ancestor", &["fedc"])])));
        assert!(matches_filters(&r, &f(&[("label", &["tier"])])));
        assert!(matches_filters(&r, &f(&[("label", &["tier=front"])])));
        assert!(!matches_filters(&r, &f(&[("label", &["tier=back"])])));
        assert!(matches_filters(&r, &f(&[("exited", &["2"])])));
        // Every key must pass; an unknown key passes nothing.
        assert!(!matches_filters(
            &r,
            &f(&[("status", &["exited"]), ("name", &["db"])])
        ));
        assert!(!matches_filters(&r, &f(&[("color", &["red"])])));
    }
}
