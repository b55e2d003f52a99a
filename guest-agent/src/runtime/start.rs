//! Starting containers: the monitor and create helper are spawned, the
//! container created and started, and attach connections opened.

use std::io::BufRead;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use chrono::Utc;
use tokio::net::UnixStream;

use super::monitor::Options;
use super::protocol::{self, read_json, Reply, Request};
use super::{logs, Containers, Entry};
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

    pub(super) async fn start_locked(
        self: &Arc<Self>,
        entry: &Arc<Entry>,
        attach: Option<AttachWanted>,
    ) -> Result<Option<UnixStream>> {
        // In the VM, overlayfs and the network modules may still be loading.
        self.wait_ready().await;
        // `--log-level debug` shows each start's timeline.
        let t = std::time::Instant::now();
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
        let (log_max_size, log_max_files) = logs::limits(&record.config.log_opts)?;
        let opts = Options {
            id: id.clone(),
            state_root: self.state_root.clone(),
            bundle: dir.join("bundle"),
            rootfs: dir.join("bundle").join("rootfs"),
            lowerdirs: self.root_layers(&image.record)?,
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
            log_max_size,
            log_max_files,
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
        tracing::debug!("start {id}: network up at {:?}", t.elapsed());
        let checked = self.health_probe(&record).is_some();
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
            r.state.exit_code = 0;
            r.state.oom_killed = false;
            r.state.stopped_by_user = false;
            r.state.ports = ports;
            r.state.health = super::health::at_start(r.state.health.take(), checked);
        })?;
        self.emit("start", &record, &[]);
        tracing::debug!("start {id}: running, recorded at {:?}", t.elapsed());
        self.watch(id);
        self.watch_health(entry);
        Ok(conn)
    }

    /// Starts the monitor, attaches when asked, and has it start the
    /// process; returns the process's and the monitor's pids.
    pub(super) async fn spawn_and_start(
        &self,
        entry: &Entry,
        opts: &Options,
        attach: Option<AttachWanted>,
    ) -> Result<(i32, i32, Option<UnixStream>)> {
        let id = opts.id.clone();
        let dir = self.dir_of(&id);
        let t = std::time::Instant::now();
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
        tracing::debug!(
            "start {id}: monitor made the container in {:?}",
            t.elapsed()
        );
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
        tracing::debug!("start {id}: process started at {:?}", t.elapsed());
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
}

impl Containers {
    /// What a container's root is made of below its own layer, top first:
    /// its init layer, then its image's layers. The running root and the
    /// root mounted for a stopped container (cp, export) are the same.
    pub(super) fn root_layers(
        &self,
        image: &crate::store::ImageRecord,
    ) -> Result<Vec<std::path::PathBuf>> {
        let mut lowers = vec![self.init_layer.clone()];
        lowers.extend(self.layer_dirs(image)?);
        Ok(lowers)
    }
}

/// Makes (or completes) the init layer every container's root has above
/// its image's layers and below its own changes, as Docker's: `/etc/mtab`
/// links to `/proc/mounts` (tools such as `mount`, `df` and Debian's
/// scripts read it), an empty `/.dockerenv` tells programs that look for
/// it that they run in a container, and empty `/etc/hosts`, `/etc/hostname`
/// and `/etc/resolv.conf` are where the container's own are bound, so no
/// container writes mount points into its own layer (nor `/dev/console`,
/// `/dev/pts` and `/dev/shm`, which `export` shows as Docker's does). Its content is the
/// same for every container, so one copy serves them all, read-only as
/// every lower layer is; it is part of a container's root (as `cp` and
/// `export` see it), never of `diff` or `commit`, which read the
/// container's own layer.
pub(super) fn make_init_layer(init: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let made = (|| -> std::io::Result<()> {
        let etc = init.join("etc");
        std::fs::create_dir_all(&etc)?;
        let mtab = etc.join("mtab");
        if mtab.symlink_metadata().is_err() {
            std::os::unix::fs::symlink("/proc/mounts", &mtab)?;
        }
        let dev = init.join("dev");
        for dir in [dev.join("pts"), dev.join("shm")] {
            std::fs::create_dir_all(&dir)?;
        }
        for (path, mode) in [
            (init.join(".dockerenv"), 0o755),
            (etc.join("hosts"), 0o644),
            (etc.join("hostname"), 0o644),
            (etc.join("resolv.conf"), 0o644),
            (dev.join("console"), 0o755),
        ] {
            if path.symlink_metadata().is_err() {
                std::fs::write(&path, b"")?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
            }
        }
        Ok(())
    })();
    made.map_err(|e| Error::io(format!("making the init layer {}", init.display()), e))
}

/// The monitor's binary name; it is installed beside `berth-agent`.
pub(super) const MONITOR: &str = "berth-monitor";

/// The create helper's binary, installed beside `berth-agent`.
pub(super) const CREATE_HELPER: &str = "berth-create";

/// The running agent's binary (the monitor runs it as the create helper).
pub(super) fn agent_exe() -> Result<std::path::PathBuf> {
    std::env::current_exe().map_err(|e| Error::io("finding the agent's own binary", e))
}

/// Starts a monitor for the container in `dir`; returns the container's
/// pid and the monitor's once the container is created.
pub(super) async fn spawn_monitor(dir: &std::path::Path) -> Result<(i32, i32)> {
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

pub(super) fn read_ready(fd: OwnedFd) -> String {
    let mut line = String::new();
    let _ = std::io::BufReader::new(std::fs::File::from(fd)).read_line(&mut line);
    line
}

/// True when `pid` is a live Berth monitor started for the container in
/// `dir` (a pid the kernel has since given to another program, or to
/// another container's monitor, is not).
pub(super) fn monitor_alive(pid: i32, dir: &std::path::Path) -> bool {
    pid > 0
        && std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| c.trim_end() == MONITOR)
        && super::adopt::started_for(pid, dir)
}
