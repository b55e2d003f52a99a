//! Stopping, killing, restarting and pausing containers, and signals.

use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::{Containers, Entry, Record};
use crate::error::{Error, Result};

/// Parses a signal name or number ("TERM", "SIGKILL", "9").
pub fn parse_signal(text: &str) -> Result<Signal> {
    let t = text.trim().to_ascii_uppercase();
    if let Ok(n) = t.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| bad_signal(text));
    }
    let name = if t.starts_with("SIG") {
        t
    } else {
        format!("SIG{t}")
    };
    name.parse::<Signal>().map_err(|_| bad_signal(text))
}

pub(super) fn bad_signal(text: &str) -> Error {
    Error::InvalidArgument(format!(
        "invalid signal {text:?}: use a name such as TERM, KILL, HUP or a number"
    ))
}

pub(super) fn not_running(r: &Record) -> Error {
    Error::FailedPrecondition(format!("container {} is not running", r.id))
}

impl Containers {
    /// Stops a container: its stop signal, then SIGKILL after `timeout`
    /// seconds (the container's own when `None`; negative waits forever).
    pub async fn stop(
        &self,
        input: &str,
        timeout: Option<i32>,
        signal: Option<&str>,
    ) -> Result<String> {
        let entry = self.find(input)?;
        let _busy = entry.busy.lock().await;
        self.stop_locked(&entry, timeout, signal).await
    }

    pub(super) async fn stop_locked(
        &self,
        entry: &Entry,
        timeout: Option<i32>,
        signal: Option<&str>,
    ) -> Result<String> {
        let record = self.update(entry, |r| {
            r.state.stopped_by_user = true;
            if r.state.status == "restarting" {
                r.state.status = "exited".into();
            }
        })?;
        if !record.state.is_running() {
            return Ok(record.id);
        }
        let sig = parse_signal(
            signal
                .filter(|s| !s.is_empty())
                .unwrap_or(&record.config.stop_signal),
        )?;
        if record.state.status == "paused" {
            crate::cgroups::Cgroup::of(&record.id).freeze(false)?;
        }
        let timeout = timeout.unwrap_or(record.config.stop_timeout);
        signal_pid(record.state.pid, sig);
        let waited = if timeout < 0 {
            self.wait_stopped(entry, None).await
        } else {
            self.wait_stopped(entry, Some(Duration::from_secs(timeout as u64)))
                .await
        };
        if !waited {
            self.emit("kill", &record, &[("signal", "9")]);
            signal_pid(record.state.pid, Signal::SIGKILL);
            self.wait_stopped(entry, Some(Duration::from_secs(30)))
                .await;
        }
        self.emit("stop", &entry.record(), &[]);
        Ok(record.id)
    }

    /// Waits (at most 10 s) until the agent has recorded that container
    /// `id` stopped, so a client told of the exit finds it stopped (as
    /// `docker rm` right after `docker run` does).
    pub async fn exit_recorded(&self, id: &str) {
        if let Ok(entry) = self.find(id) {
            self.wait_stopped(&entry, Some(Duration::from_secs(10)))
                .await;
        }
    }

    /// Waits until the container is not running; false on timeout.
    pub(super) async fn wait_stopped(&self, entry: &Entry, limit: Option<Duration>) -> bool {
        let mut rx = entry.changed.subscribe();
        let wait = async {
            loop {
                if !entry.record().state.is_running() {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        match limit {
            Some(d) => tokio::time::timeout(d, wait).await.is_ok(),
            None => {
                wait.await;
                true
            }
        }
    }

    /// Sends a signal to the container's main process.
    pub async fn kill(&self, input: &str, signal: &str) -> Result<String> {
        let entry = self.find(input)?;
        let sig = parse_signal(if signal.is_empty() { "KILL" } else { signal })?;
        let record = entry.record();
        if !record.state.is_running() {
            return Err(not_running(&record));
        }
        if sig == Signal::SIGKILL {
            self.update(&entry, |r| r.state.stopped_by_user = true)?;
        }
        signal_pid(record.state.pid, sig);
        self.emit("kill", &record, &[("signal", &(sig as i32).to_string())]);
        Ok(record.id)
    }

    /// Stops then starts a container.
    pub async fn restart(self: &Arc<Self>, input: &str, timeout: Option<i32>) -> Result<String> {
        let entry = self.find(input)?;
        let _busy = entry.busy.lock().await;
        let id = self.stop_locked(&entry, timeout, None).await?;
        self.start_locked(&entry, None).await?;
        self.emit("restart", &entry.record(), &[]);
        Ok(id)
    }

    /// Freezes (`pause`) or thaws (`unpause`) every process.
    pub async fn pause(&self, input: &str, paused: bool) -> Result<String> {
        let entry = self.find(input)?;
        let _busy = entry.busy.lock().await;
        let record = entry.record();
        match (record.state.status.as_str(), paused) {
            ("running", true) | ("paused", false) => {}
            ("paused", true) => {
                return Err(Error::FailedPrecondition(format!(
                    "container {} is already paused",
                    record.id
                )))
            }
            ("running", false) => {
                return Err(Error::FailedPrecondition(format!(
                    "container {} is not paused",
                    record.id
                )))
            }
            _ => return Err(not_running(&record)),
        }
        crate::cgroups::Cgroup::of(&record.id).freeze(paused)?;
        let record = self.update(&entry, |r| {
            r.state.status = if paused { "paused" } else { "running" }.into()
        })?;
        self.emit(if paused { "pause" } else { "unpause" }, &record, &[]);
        Ok(record.id)
    }
}

pub(super) fn signal_pid(pid: i32, sig: Signal) {
    if pid > 0 {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal("TERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("sigkill"), Ok(Signal::SIGKILL));
        assert_eq!(parse_signal(" 1 "), Ok(Signal::SIGHUP));
        assert!(matches!(
            parse_signal("NOPE"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(parse_signal("99"), Err(Error::InvalidArgument(_))));
    }
}
