//! Berth's Linux VM, through `berth-vm` (behind the `vm` feature, so
//! nothing that runs beside the agent links the VM manager): finding a
//! running VM's agent, and the manager's own types for starting, stopping
//! and watching it, so front ends need no second dependency.

use std::path::PathBuf;

pub use berth_vm::machine::{Machine, Progress, RunState};
pub use berth_vm::relay::{DOCKER_PIPE_HOST, DOCKER_SOCKET};
pub use berth_vm::settings::{default_dir, Network, Settings, SharedFolder};

/// The agent endpoint of a VM that runs in the default state directory,
/// and that directory.
pub fn running_endpoint() -> Option<(String, PathBuf)> {
    let dir = default_dir();
    let run = RunState::load(&dir)?;
    (run.supervisor_alive() && run.phase == "ready" && !run.endpoint.is_empty())
        .then_some((run.endpoint, dir))
}

/// The client certificates of the running VM whose agent is at
/// `endpoint`, when that agent takes mutual TLS (the WSL2 backend's).
pub fn tls_for(endpoint: &str) -> Option<berth_api::endpoint::ClientTls> {
    let (running, dir) = running_endpoint()?;
    let certs = berth_vm::tls::VmCerts::of(&dir);
    (running == endpoint && endpoint.starts_with("tcp://") && certs.exist())
        .then(|| certs.client_tls())
}

/// How [`start_background`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// A supervisor was running the VM already; nothing was started.
    AlreadyRunning {
        /// Where the host reaches its agent.
        endpoint: String,
    },
    /// The VM booted and its agent answers.
    Ready {
        /// Milliseconds from launching the VMM to the agent's first answer.
        boot_ms: u64,
        /// Where the host reaches its agent.
        endpoint: String,
    },
}

/// The VM in `dir` as `berth vm status` sees it: the supervisor's last
/// run state, and its phase (`stopped` when no supervisor is alive).
pub fn phase(dir: &std::path::Path) -> (String, RunState) {
    let run = RunState::load(dir).unwrap_or_default();
    let phase = if run.supervisor_alive() {
        run.phase.clone()
    } else {
        "stopped".to_string()
    };
    (phase, run)
}

/// Boots the VM in `dir` in the background, as `berth vm start` does:
/// runs `BERTH vm supervise --dir DIR` (`berth` is the CLI binary) in a
/// process group of its own, so it outlives its starter, with its stderr
/// appended to `supervisor.log` in `dir`; returns once the agent answers.
/// `on_progress` hears each step the supervisor reports. The settings in
/// `dir` are used as saved.
#[cfg(unix)]
pub async fn start_background(
    berth: &std::path::Path,
    dir: &std::path::Path,
    mut on_progress: impl FnMut(&Progress) + Send + 'static,
) -> crate::Result<Started> {
    use crate::{Error, ErrorKind};
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    if let Some(run) = RunState::load(dir).filter(|r| r.supervisor_alive()) {
        if run.phase == "ready" {
            return Ok(Started::AlreadyRunning {
                endpoint: run.endpoint,
            });
        }
        return Err(Error::new(
            ErrorKind::FailedPrecondition,
            format!(
                "the VM is {} (supervisor pid {}): wait, or run berth vm stop",
                run.phase, run.supervisor_pid
            ),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create the VM directory", e))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("supervisor.log"))
        .map_err(|e| Error::io("cannot open the VM's supervisor.log", e))?;
    let mut child = Command::new(berth)
        .args(["vm", "supervise", "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .process_group(0)
        .spawn()
        .map_err(|e| {
            Error::io(
                format!("cannot start the VM supervisor ({})", berth.display()),
                e,
            )
        })?;
    let out = child
        .stdout
        .take()
        .ok_or_else(|| Error::new(ErrorKind::Internal, "the VM supervisor has no output"))?;
    let failed = |m: String| Error::new(ErrorKind::Internal, m);
    tokio::task::spawn_blocking(move || -> crate::Result<Started> {
        for line in BufReader::new(out).lines() {
            let line = line.map_err(|e| Error::io("cannot read the VM supervisor's output", e))?;
            let p: Progress = serde_json::from_str(&line)
                .map_err(|e| failed(format!("the VM supervisor said something unexpected: {e}")))?;
            on_progress(&p);
            match p {
                Progress::Ready { boot_ms, endpoint } => {
                    return Ok(Started::Ready { boot_ms, endpoint })
                }
                Progress::Failed { error } => {
                    return Err(failed(format!("the VM could not start: {error}")))
                }
                Progress::Stopping | Progress::Stopped => {
                    return Err(failed("the VM stopped while starting".into()))
                }
                Progress::Booting { .. } | Progress::Crashed { .. } => {}
            }
        }
        Err(failed(
            "the VM supervisor exited while starting (see supervisor.log in the VM directory)"
                .into(),
        ))
    })
    .await
    .map_err(|e| failed(format!("the VM start was interrupted: {e}")))?
}

/// Powers the VM in `dir` off cleanly, as `berth vm stop` does: signals
/// its supervisor and waits up to 60 s for it to exit. False when no VM
/// was running.
#[cfg(unix)]
pub async fn stop(dir: &std::path::Path) -> crate::Result<bool> {
    use crate::{Error, ErrorKind};
    let Some(run) = RunState::load(dir).filter(|r| r.supervisor_alive()) else {
        return Ok(false);
    };
    // SAFETY: kill(2) with a pid read from the run state and SIGTERM
    // touches no memory of ours.
    if unsafe { libc::kill(run.supervisor_pid as libc::pid_t, libc::SIGTERM) } != 0 {
        return Err(Error::io(
            "cannot signal the VM supervisor",
            std::io::Error::last_os_error(),
        ));
    }
    for _ in 0..600 {
        if !run.supervisor_alive() {
            return Ok(true);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(Error::new(
        ErrorKind::Internal,
        format!(
            "the VM did not stop within 60 s: its supervisor is pid {}",
            run.supervisor_pid
        ),
    ))
}

/// Starting the VM in the background needs Unix process groups; on
/// Windows the VM is WSL2's, started by `wsl`.
#[cfg(not(unix))]
pub async fn start_background(
    _berth: &std::path::Path,
    _dir: &std::path::Path,
    _on_progress: impl FnMut(&Progress) + Send + 'static,
) -> crate::Result<Started> {
    Err(crate::Error::new(
        crate::ErrorKind::Unimplemented,
        "starting the VM from here needs a Unix host; on Windows start it with wsl",
    ))
}

/// Stopping the VM's supervisor needs Unix signals; on Windows the VM is
/// WSL2's, stopped by `wsl --shutdown`.
#[cfg(not(unix))]
pub async fn stop(_dir: &std::path::Path) -> crate::Result<bool> {
    Err(crate::Error::new(
        crate::ErrorKind::Unimplemented,
        "stopping the VM from here needs a Unix host; on Windows run wsl --shutdown",
    ))
}
