//! A container's life after it starts: following it until it exits,
//! recording the exit and applying `--rm` and restart policies; removing,
//! renaming and waiting for containers.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use nix::sys::signal::Signal;

use super::monitor::{self, Options};
use super::protocol::{self, read_json, RunState};
use super::start::{monitor_alive, AttachWanted};
use super::stop::signal_pid;
use super::{Containers, Record};
use crate::error::{Error, Result};

impl Containers {
    /// Follows a running container until its process exits.
    pub(super) fn watch(self: &Arc<Self>, id: String) {
        let me = self.clone();
        tokio::spawn(async move { me.follow(&id).await });
    }

    /// Follows a container's monitor until its process exits, then records
    /// how it ended.
    pub(super) async fn follow(self: &Arc<Self>, id: &str) {
        if let Ok(mut conn) = self.attach_conn(id, AttachWanted::default()).await {
            while let Ok(Some((kind, _))) = protocol::read_frame(&mut conn).await {
                if kind == protocol::EXIT {
                    break;
                }
            }
        }
        // The monitor writes run.json before it says the process exited.
        self.finished(id).await;
    }

    /// Records how a run ended, then applies `--rm` and restart policies.
    pub(super) async fn finished(self: &Arc<Self>, id: &str) {
        let t = std::time::Instant::now();
        let Ok(entry) = self.find(id) else { return };
        let dir = self.dir_of(id);
        let run: RunState = read_json(&dir.join("run.json")).unwrap_or_default();
        let exit = match run.exit {
            Some(exit) => exit,
            None => {
                // The monitor died: the process has no one to wait for it.
                let pid = entry.record().state.pid;
                if pid > 0 && run.monitor_pid > 0 && !monitor_alive(run.monitor_pid, &dir) {
                    let _ =
                        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
                }
                if monitor_alive(entry.record().state.monitor_pid, &dir) {
                    // Still running: the connection just failed; follow it again.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    self.watch(id.to_string());
                    return;
                }
                if let Ok(opts) = read_json::<Options>(&dir.join("monitor.json")) {
                    monitor::cleanup(&opts);
                }
                protocol::ExitStatus {
                    code: 255,
                    error: "the container's monitor died".into(),
                    finished_at: Some(Utc::now()),
                    ..Default::default()
                }
            }
        };
        self.network_down(id).await;
        tracing::debug!("exit of {id} seen; network down in {:?}", t.elapsed());
        let Ok(record) = self.update(&entry, |r| {
            r.state.ports.clear();
            r.state.status = "exited".into();
            r.state.pid = 0;
            r.state.monitor_pid = 0;
            r.state.exit_code = exit.code;
            r.state.oom_killed = exit.oom_killed;
            r.state.finished_at = exit.finished_at;
            if !exit.error.is_empty() {
                r.state.error = exit.error.clone();
            }
        }) else {
            return;
        };
        if exit.oom_killed {
            self.emit("oom", &record, &[]);
        }
        self.emit("die", &record, &[("exitCode", &exit.code.to_string())]);
        tracing::debug!("exit of {id} recorded at {:?}", t.elapsed());
        if record.config.auto_remove {
            let _ = self.remove(id, true, true).await;
            tracing::debug!("exit of {id}: removed (--rm) at {:?}", t.elapsed());
            return;
        }
        if let Some(delay) = restart_delay(&record) {
            let Ok(record) = self.update(&entry, |r| {
                r.restart_count += 1;
                r.state.status = "restarting".into();
            }) else {
                return;
            };
            let me = self.clone();
            let id = id.to_string();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let Ok(entry) = me.find(&id) else { return };
                let _busy = entry.busy.lock().await;
                if entry.record().state.status != "restarting" {
                    return;
                }
                if let Err(e) = me.start_locked(&entry, None).await {
                    tracing::warn!("restarting {id} failed: {e}");
                    let _ = me.update(&entry, |r| r.state.status = "exited".into());
                }
            });
            tracing::info!(
                "restarting {} (restart {})",
                record.name,
                record.restart_count
            );
        }
    }

    /// Removes a container; a running one only with `force` (SIGKILL);
    /// its anonymous volumes too with `volumes`.
    pub async fn remove(&self, input: &str, force: bool, volumes: bool) -> Result<String> {
        let entry = self.find(input)?;
        let _busy = entry.busy.lock().await;
        let record = self.update(&entry, |r| r.state.stopped_by_user = true)?;
        if record.state.is_running() {
            if !force {
                return Err(Error::Conflict(format!(
                    "you cannot remove a running container {}: stop it first, or remove it with -f",
                    record.id
                )));
            }
            if record.state.status == "paused" {
                let _ = crate::cgroups::Cgroup::of(&record.id).freeze(false);
            }
            signal_pid(record.state.pid, Signal::SIGKILL);
            if !self
                .wait_stopped(&entry, Some(Duration::from_secs(30)))
                .await
            {
                return Err(Error::Internal(format!(
                    "container {} did not stop after SIGKILL; try again",
                    record.id
                )));
            }
        }
        self.network_down(&record.id).await;
        let dir = self.dir_of(&record.id);
        if let Ok(opts) = read_json::<Options>(&dir.join("monitor.json")) {
            monitor::cleanup(&opts);
        }
        let _ = nix::mount::umount2(
            &dir.join("bundle").join("rootfs"),
            nix::mount::MntFlags::MNT_DETACH,
        );
        self.trash
            .discard(&dir)
            .map_err(|e| Error::io(format!("removing {}", dir.display()), e))?;
        self.table().remove(&record.id);
        if volumes {
            self.remove_anonymous_volumes(&record);
        }
        self.images.release(&record.image_id, &record.id);
        entry.changed.send_modify(|v| *v += 1);
        self.emit("destroy", &record, &[]);
        Ok(record.id)
    }

    /// Renames a container.
    pub fn rename(&self, input: &str, new_name: &str) -> Result<()> {
        let entry = self.find(input)?;
        let new_name = new_name.strip_prefix('/').unwrap_or(new_name);
        super::create::valid_name(new_name)?;
        if let Some(other) = self
            .all()
            .iter()
            .map(|e| e.record())
            .find(|r| r.name == new_name)
        {
            return Err(Error::AlreadyExists(format!(
                "the container name \"/{new_name}\" is already in use by container {}",
                other.id
            )));
        }
        let old = entry.record().name;
        let record = self.update(&entry, |r| r.name = new_name.to_string())?;
        self.emit("rename", &record, &[("oldName", &format!("/{old}"))]);
        Ok(())
    }

    /// Waits for a container ("not-running", "next-exit" or "removed") and
    /// returns its exit code.
    pub async fn wait(&self, input: &str, condition: &str) -> Result<i32> {
        let entry = self.find(input)?;
        let mut rx = entry.changed.subscribe();
        let first = entry.record();
        if condition != "next-exit"
            && condition != "removed"
            && !first.state.is_running()
            && first.state.status != "restarting"
        {
            return Ok(first.state.exit_code);
        }
        let gone = || !self.table().contains_key(&first.id);
        if gone() {
            return Ok(first.state.exit_code);
        }
        loop {
            // The sender lives in the entry this call holds: it never closes.
            let closed = rx.changed().await.is_err();
            let now = entry.record();
            let done = match condition {
                "removed" => gone(),
                _ => gone() || now.state.status == "exited",
            };
            if done || closed {
                return Ok(now.state.exit_code);
            }
        }
    }

    /// After an agent start: follow containers whose monitors still run,
    /// record the ones that ended meanwhile, and apply restart policies.
    pub(super) async fn recover(self: &Arc<Self>) {
        for entry in self.all() {
            let record = entry.record();
            if record.state.is_running() || record.state.status == "restarting" {
                if monitor_alive(record.state.monitor_pid, &self.dir_of(&record.id)) {
                    // A process that ended while the agent was away is
                    // recorded before the agent serves again.
                    let run: RunState =
                        read_json(&self.dir_of(&record.id).join("run.json")).unwrap_or_default();
                    let ended = run.exit.is_some()
                        && tokio::time::timeout(Duration::from_secs(2), self.follow(&record.id))
                            .await
                            .is_ok();
                    if !ended {
                        self.watch(record.id.clone());
                        self.watch_health(&entry);
                    }
                } else {
                    self.finished(&record.id).await;
                }
            } else if record.state.status == "exited"
                && record
                    .config
                    .restart_policy
                    .as_ref()
                    .is_some_and(|p| p.name == "always")
            {
                let me = self.clone();
                let id = record.id.clone();
                tokio::spawn(async move {
                    if let Err(e) = me.start(&id, None).await {
                        tracing::warn!("starting {id} (restart policy always) failed: {e}");
                    }
                });
            }
        }
    }
}

/// How long to wait before a restart policy restarts an exited
/// container, or `None` when it should stay stopped.
pub(super) fn restart_delay(r: &Record) -> Option<Duration> {
    let policy = r.config.restart_policy.clone().unwrap_or_default();
    if r.state.stopped_by_user {
        return None;
    }
    let wanted = match policy.name.as_str() {
        "always" | "unless-stopped" => true,
        "on-failure" => {
            r.state.exit_code != 0
                && (policy.maximum_retry_count == 0 || r.restart_count < policy.maximum_retry_count)
        }
        _ => false,
    };
    // Docker's back-off: 100 ms doubling, at most a minute.
    wanted.then(|| Duration::from_millis((100u64 << r.restart_count.min(9)).min(60_000)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::config::RestartPolicy;
    use crate::runtime::record::tests::record;

    fn exited(policy: &str, max: u32, code: i32, restarts: u32) -> Record {
        let mut r = record("a", "a", "exited");
        r.config.restart_policy = Some(RestartPolicy {
            name: policy.into(),
            maximum_retry_count: max,
        });
        r.state.exit_code = code;
        r.restart_count = restarts;
        r
    }

    #[test]
    fn restart_policies_decide_as_docker_s() {
        assert_eq!(restart_delay(&record("a", "a", "exited")), None);
        assert_eq!(restart_delay(&exited("no", 0, 1, 0)), None);
        assert_eq!(
            restart_delay(&exited("always", 0, 0, 0)),
            Some(Duration::from_millis(100))
        );
        assert!(restart_delay(&exited("unless-stopped", 0, 0, 3)).is_some());
        // on-failure: only a non-zero exit, and only up to the maximum.
        assert_eq!(restart_delay(&exited("on-failure", 0, 0, 0)), None);
        assert!(restart_delay(&exited("on-failure", 2, 1, 1)).is_some());
        assert_eq!(restart_delay(&exited("on-failure", 2, 1, 2)), None);
        // A stop by the user ends every policy.
        let mut stopped = exited("always", 0, 0, 0);
        stopped.state.stopped_by_user = true;
        assert_eq!(restart_delay(&stopped), None);
        // The back-off doubles, and stops growing after nine restarts.
        assert_eq!(
            restart_delay(&exited("always", 0, 0, 3)),
            Some(Duration::from_millis(800))
        );
        assert_eq!(
            restart_delay(&exited("always", 0, 0, 40)),
            Some(Duration::from_millis(51_200))
        );
    }
}
