//! Starting, stopping, signalling, pausing, removing and waiting for
//! containers, restart policies, and finding running containers again
//! after the agent restarts.

use std::io::BufRead;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use nix::sys::signal::Signal;
use tokio::net::UnixStream;

use super::monitor::{self, Options};
use super::protocol::{self, read_json, Reply, Request, RunState};
use super::{logs, Containers, Entry, Record};
use crate::error::{Error, Result};

/// Which streams an attach wants.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttachWanted {
    /// Send input.
    pub stdin: bool,
    /// Receive stdout.
    pub stdout: bool,
    /// Receive stderr.
    pub stderr: bool,
}

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

fn bad_signal(text: &str) -> Error {
    Error::InvalidArgument(format!(
        "invalid signal {text:?}: use a name such as TERM, KILL, HUP or a number"
    ))
}

fn not_running(r: &Record) -> Error {
    Error::FailedPrecondition(format!("container {} is not running", r.id))
}

impl Containers {
    /// Starts a container (a no-op when it runs). With `attach`, the
    /// returned connection is attached before the process starts, so no
    /// output is missed.
    pub async fn start(
        self: &Arc<Self>,
        input: &str,
        attach: Option<AttachWanted>,
    ) -> Result<Option<UnixStream>> {
        let entry = self.find(input)?;
        let result = {
            let _busy = entry.busy.lock().await;
            self.start_locked(&entry, attach).await
        };
        // A `run --rm` that never ran leaves nothing behind either.
        if result.is_err() && entry.record().config.auto_remove {
            let _ = self.remove(&entry.record().id, true, true).await;
        }
        result
    }

    async fn start_locked(
        self: &Arc<Self>,
        entry: &Arc<Entry>,
        attach: Option<AttachWanted>,
    ) -> Result<Option<UnixStream>> {
        // In the VM, overlayfs and the network modules may still be loading.
        self.wait_ready().await;
        let record = entry.record();
        if record.state.is_running() {
            return match attach {
                Some(w) => Ok(Some(self.attach_conn(&record.id, w).await?)),
                None => Ok(None),
            };
        }
        let id = record.id.clone();
        let dir = self.dir_of(&id);
        let image = self.images.find(&record.image_id)?;
        let opts = Options {
            id: id.clone(),
            state_root: self.state_root.clone(),
            bundle: dir.join("bundle"),
            rootfs: dir.join("bundle").join("rootfs"),
            lowerdirs: self.layer_dirs(&image.record)?,
            upperdir: dir.join("upper"),
            workdir: dir.join("work"),
            cwd: read_json::<serde_json::Value>(&dir.join("bundle").join("config.json"))
                .ok()
                .and_then(|s| s["process"]["cwd"].as_str().map(String::from))
                .unwrap_or_else(|| "/".into()),
            tty: record.config.tty,
            open_stdin: record.config.open_stdin,
            stdin_once: record.config.open_stdin && attach.is_some_and(|a| a.stdin),
            log_path: self.log_path(&id),
            log_max_size: logs::DEFAULT_MAX_SIZE,
            log_max_files: logs::DEFAULT_MAX_FILES,
            socket: self.socket_of(&id),
            run_state: dir.join("run.json"),
            helper: agent_exe()?.with_file_name(CREATE_HELPER),
            copy_up: record
                .mounts
                .iter()
                .filter(|m| m.kind == "volume" && m.copy_up)
                .map(|m| (m.destination.clone(), m.source.clone()))
                .collect(),
            lo_up: record.networks.is_empty() && record.config.network != "host",
            // Unmounting a layer syncs the file system under it, volumes
            // included: a container that may have written to a volume
            // keeps that, so its data is on disk when it stops.
            volatile: record.config.auto_remove
                && !record
                    .mounts
                    .iter()
                    .any(|m| !m.read_only && (m.kind == "volume" || m.kind == "bind")),
        };
        protocol::write_json_atomic(&dir.join("monitor.json"), &opts)
            .map_err(|e| Error::io("writing the monitor's options", e))?;
        let _ = std::fs::remove_file(&opts.run_state);
        let ports = match self.network_up(&record).await {
            Ok(p) => p,
            Err(e) => {
                self.update(entry, |r| r.state.error = e.to_string())?;
                return Err(e);
            }
        };
        let started = self.spawn_and_start(entry, &opts, attach).await;
        let (pid, monitor_pid, conn) = match started {
            Ok(v) => v,
            Err(e) => {
                self.network_down(&id).await;
                return Err(e);
            }
        };
        let record = self.update(entry, |r| {
            r.state.status = "running".into();
            r.state.pid = pid;
            r.state.monitor_pid = monitor_pid;
            r.state.started_at = Some(Utc::now());
            r.state.error.clear();
            r.state.oom_killed = false;
            r.state.stopped_by_user = false;
            r.state.ports = ports;
        })?;
        self.emit("start", &record, &[]);
        self.watch(id);
        Ok(conn)
    }

    /// Starts the monitor, attaches when asked, and has it start the
    /// process; returns the process's and the monitor's pids.
    async fn spawn_and_start(
        &self,
        entry: &Entry,
        opts: &Options,
        attach: Option<AttachWanted>,
    ) -> Result<(i32, i32, Option<UnixStream>)> {
        let id = opts.id.clone();
        let dir = self.dir_of(&id);
        let (pid, monitor_pid) = match spawn_monitor(&dir).await {
            Ok(v) => v,
            Err(e) => {
                self.update(entry, |r| {
                    r.state.error = e.to_string();
                    r.state.exit_code = 127;
                })?;
                return Err(e);
            }
        };
        let conn = match attach {
            Some(w) => Some(self.attach_conn(&id, w).await?),
            None => None,
        };
        let mut start = UnixStream::connect(&opts.socket).await.map_err(|e| {
            Error::Internal(format!("the container's monitor cannot be reached: {e}"))
        })?;
        protocol::write_line(&mut start, &Request::Start)
            .await
            .map_err(|e| Error::Internal(format!("the container's monitor failed: {e}")))?;
        let reply: Reply = protocol::read_line(&mut start)
            .await
            .ok()
            .and_then(|l| serde_json::from_str(&l).ok())
            .unwrap_or(Reply {
                error: "the container's monitor ended".into(),
            });
        if !reply.error.is_empty() {
            self.update(entry, |r| r.state.error = reply.error.clone())?;
            return Err(super::start_failure(reply.error));
        }
        Ok((pid, monitor_pid, conn))
    }

    /// Connects to a running container's monitor for its I/O.
    pub async fn attach_conn(&self, id: &str, w: AttachWanted) -> Result<UnixStream> {
        let gone = |e: std::io::Error| {
            Error::FailedPrecondition(format!("container {id} is not running ({e})"))
        };
        let mut conn = UnixStream::connect(self.socket_of(id))
            .await
            .map_err(gone)?;
        protocol::write_line(
            &mut conn,
            &Request::Attach {
                stdin: w.stdin,
                stdout: w.stdout,
                stderr: w.stderr,
            },
        )
        .await
        .map_err(gone)?;
        protocol::read_line(&mut conn).await.map_err(gone)?;
        Ok(conn)
    }

    /// Follows a running container until its process exits.
    fn watch(self: &Arc<Self>, id: String) {
        let me = self.clone();
        tokio::spawn(async move { me.follow(&id).await });
    }

    /// Follows a container's monitor until its process exits, then records
    /// how it ended.
    async fn follow(self: &Arc<Self>, id: &str) {
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
    async fn finished(self: &Arc<Self>, id: &str) {
        let Ok(entry) = self.find(id) else { return };
        let dir = self.dir_of(id);
        let run: RunState = read_json(&dir.join("run.json")).unwrap_or_default();
        let exit = match run.exit {
            Some(exit) => exit,
            None => {
                // The monitor died: the process has no one to wait for it.
                let pid = entry.record().state.pid;
                if pid > 0 && run.monitor_pid > 0 && !monitor_alive(run.monitor_pid) {
                    let _ =
                        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
                }
                if monitor_alive(entry.record().state.monitor_pid) {
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
        if record.config.auto_remove {
            let _ = self.remove(id, true, true).await;
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

    async fn stop_locked(
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
    async fn wait_stopped(&self, entry: &Entry, limit: Option<Duration>) -> bool {
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
        std::fs::remove_dir_all(&dir)
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
                if monitor_alive(record.state.monitor_pid) {
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
fn restart_delay(r: &Record) -> Option<Duration> {
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

fn signal_pid(pid: i32, sig: Signal) {
    if pid > 0 {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}

/// True when `pid` is a live Berth monitor.
fn monitor_alive(pid: i32) -> bool {
    pid > 0
        && std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.trim_end() == MONITOR)
}

/// The monitor's binary name; it is installed beside `berth-agent`.
const MONITOR: &str = "berth-monitor";

/// The create helper's binary, installed beside `berth-agent`.
const CREATE_HELPER: &str = "berth-create";

/// The running agent's binary (the monitor runs it as the create helper).
fn agent_exe() -> Result<std::path::PathBuf> {
    std::env::current_exe().map_err(|e| Error::io("finding the agent's own binary", e))
}

/// Starts a monitor for the container in `dir`; returns the container's
/// pid and the monitor's once the container is created.
async fn spawn_monitor(dir: &std::path::Path) -> Result<(i32, i32)> {
    let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::Internal(format!("pipe: {e}")))?;
    let log = std::fs::File::create(dir.join("monitor.log"))
        .map_err(|e| Error::io("creating the monitor's log", e))?;
    let exe = agent_exe()?.with_file_name(MONITOR);
    let mut cmd = std::process::Command::new(&exe);
    cmd.arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    let copies = crate::util::fdio::pass_fds(&mut cmd, &[(ready_w.as_raw_fd(), 3)])
        .map_err(|e| Error::io("passing the monitor its pipe", e))?;
    let mut child = tokio::process::Command::from(cmd).spawn().map_err(|e| {
        Error::Internal(format!(
            "the container's monitor {} cannot be started ({e}): install berth-monitor beside berth-agent",
            exe.display()
        ))
    })?;
    drop((copies, ready_w));
    let monitor_pid = child.id().unwrap_or(0) as i32;
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    let line = tokio::task::spawn_blocking(move || read_ready(ready_r))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
    if let Some(pid) = v["pid"].as_i64() {
        return Ok((pid as i32, monitor_pid));
    }
    let error = v["error"].as_str().map(String::from).unwrap_or_else(|| {
        let log = std::fs::read_to_string(dir.join("monitor.log")).unwrap_or_default();
        format!("the container's monitor failed: {}", log.trim())
    });
    Err(super::start_failure(error))
}

fn read_ready(fd: OwnedFd) -> String {
    let mut line = String::new();
    let _ = std::io::BufReader::new(std::fs::File::from(fd)).read_line(&mut line);
    line
}
