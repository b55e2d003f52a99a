//! Running a container's health checks: one `exec` of the check every
//! interval while the run lasts, its output kept (cut at [`MAX_OUTPUT`]),
//! killed with everything it started when it outlives its timeout.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{apply, from_image, go_duration, merged, probe, HealthResult, Timing, MAX_OUTPUT};
use crate::runtime::config::{ExecOptions, HealthConfig};
use crate::runtime::{Containers, Entry, Record};

/// Output kept up to [`MAX_OUTPUT`] bytes, "..." after it when cut.
#[derive(Default)]
struct Limited {
    buf: Vec<u8>,
    cut: bool,
}

impl Limited {
    fn push(&mut self, data: &[u8]) {
        let keep = MAX_OUTPUT.saturating_sub(self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..keep]);
        self.cut |= keep < data.len();
    }

    fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.buf).into_owned();
        if self.cut {
            s.push_str("...");
        }
        s
    }
}

/// Kills every descendant of `pid`, then `pid` (an exec helper and the
/// check it runs).
fn kill_tree(pid: i32) {
    let mut parents = std::collections::HashMap::<i32, Vec<i32>>::new();
    for ent in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = ent.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(ent.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": comm may hold spaces and parentheses.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
        if let Some(ppid) = ppid {
            parents.entry(ppid).or_default().push(child);
        }
    }
    let mut order = vec![pid];
    let mut i = 0;
    while i < order.len() {
        order.extend(parents.get(&order[i]).cloned().unwrap_or_default());
        i += 1;
    }
    for p in order.into_iter().rev() {
        crate::runtime::stop::signal_pid(p, nix::sys::signal::Signal::SIGKILL);
    }
}

impl Containers {
    /// The container's check: its own settings over its image's.
    pub fn health_config(&self, r: &Record) -> Option<HealthConfig> {
        let image = self
            .image_config(&r.image_id)
            .ok()
            .and_then(|c| c.healthcheck)
            .and_then(|v| from_image(&v));
        merged(r.config.healthcheck.as_ref(), image)
    }

    /// The command the container's check runs, when it is checked.
    pub(in crate::runtime) fn health_probe(&self, r: &Record) -> Option<Vec<String>> {
        if r.config.labels.contains_key("dev.berth.build") {
            return None;
        }
        let shell = self
            .image_config(&r.image_id)
            .ok()
            .and_then(|c| c.shell)
            .unwrap_or_default();
        self.health_config(r)
            .as_ref()
            .and_then(|h| probe(h, &shell))
    }

    /// Checks the container's current run until it stops (nothing when
    /// it has no check).
    pub(in crate::runtime) fn watch_health(self: &Arc<Self>, entry: &Arc<Entry>) {
        let r = entry.record();
        let (Some(cmd), Some(config)) = (self.health_probe(&r), self.health_config(&r)) else {
            return;
        };
        let me = self.clone();
        let entry = entry.clone();
        tokio::spawn(async move {
            me.check_until_stopped(&entry, cmd, Timing::of(&config), r.state.started_at)
                .await
        });
    }

    async fn check_until_stopped(
        &self,
        entry: &Entry,
        cmd: Vec<String>,
        t: Timing,
        started: Option<DateTime<Utc>>,
    ) {
        let mut changed = entry.changed.subscribe();
        // This run, still running (a restart is another run, with its own).
        let ours = || {
            let r = entry.record();
            r.state.is_running() && r.state.started_at == started
        };
        loop {
            let r = entry.record();
            let status = r.state.health.map(|h| h.status).unwrap_or_default();
            let since = started
                .and_then(|s| (Utc::now() - s).to_std().ok())
                .unwrap_or_default();
            let wake = tokio::time::Instant::now() + t.next_interval(&status, since);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(wake) => break,
                    c = changed.changed() => if c.is_err() || !ours() { return },
                }
            }
            // A paused container is not checked (as Docker).
            while entry.record().state.status == "paused" {
                if changed.changed().await.is_err() || !ours() {
                    return;
                }
            }
            if !ours() {
                return;
            }
            let result = self.run_check(&r.id, &cmd, t.timeout).await;
            if !ours() {
                return;
            }
            let mut now_status = None;
            let updated = self.update(entry, |r| {
                if let Some(h) = r.state.health.as_mut() {
                    let before = h.status.clone();
                    apply(h, result, &t, started);
                    if h.status != before {
                        now_status = Some(h.status.clone());
                    }
                }
            });
            match (updated, now_status) {
                (Ok(record), Some(s)) => {
                    self.emit(&format!("health_status: {s}"), &record, &[]);
                }
                (Ok(_), None) => {}
                (Err(e), _) => tracing::warn!("recording a health check of {}: {e}", r.id),
            }
        }
    }

    /// Runs `cmd` once in container `id`, within `timeout`.
    async fn run_check(&self, id: &str, cmd: &[String], timeout: Duration) -> HealthResult {
        let start = Utc::now();
        let ended = |exit_code: i32, output: String| HealthResult {
            start,
            end: Utc::now(),
            exit_code,
            output,
        };
        let opts = ExecOptions {
            container_id: id.to_string(),
            cmd: cmd.to_vec(),
            ..Default::default()
        };
        let mut p = match self.exec(&opts).await {
            Ok(p) => p,
            Err(e) => return ended(-1, e.to_string()),
        };
        let out = Arc::new(std::sync::Mutex::new(Limited::default()));
        let mut readers = Vec::new();
        let pipes: [Option<Box<dyn AsyncRead + Send + Unpin>>; 2] = [
            p.stdout.take().map(|s| Box::new(s) as _),
            p.stderr.take().map(|s| Box::new(s) as _),
        ];
        for mut pipe in pipes.into_iter().flatten() {
            let out = out.clone();
            readers.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                while let Ok(n) = pipe.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    out.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(&buf[..n]);
                }
            }));
        }
        let helper = p.child.id().map(|p| p as i32);
        let status = tokio::time::timeout(timeout, p.child.wait()).await;
        if status.is_err() {
            if let Some(pid) = helper {
                kill_tree(pid);
            }
            let _ = p.child.wait().await;
        }
        for r in readers {
            // A process the check left behind may hold the pipes open.
            let _ = tokio::time::timeout(Duration::from_millis(500), r).await;
        }
        let code = match &status {
            Ok(Ok(s)) => s.code().unwrap_or(-1),
            _ => -1,
        };
        // Docker unregisters a check's exec session when it ends.
        p.end.ended(code, true);
        let output = out.lock().unwrap_or_else(|e| e.into_inner()).text();
        match status {
            Ok(status) => {
                let code = status.ok().and_then(|s| s.code()).unwrap_or(-1);
                ended(code, output)
            }
            Err(_) if output.is_empty() => ended(
                -1,
                format!("Health check exceeded timeout ({})", go_duration(timeout)),
            ),
            Err(_) => ended(
                -1,
                format!(
                    "Health check exceeded timeout ({}): {output}",
                    go_duration(timeout)
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_cut_at_4096_bytes() {
        let mut l = Limited::default();
        l.push(&[b'a'; 4000]);
        l.push(&[b'b'; 200]);
        let text = l.text();
        assert_eq!(text.len(), MAX_OUTPUT + 3);
        assert!(text.ends_with("bb..."));
    }
}
