//! `exec`: another process inside a running container, joining its
//! namespaces and cgroup.
//!
//! Like the monitor, the process is created by a single-threaded re-exec
//! of the agent (`berth-agent __exec`), because libcontainer clones in the
//! calling process. The helper is the new process's parent: it waits for
//! it and exits with its status. Without a TTY the process inherits the
//! helper's stdio pipes, which the agent holds; with one, the pty master
//! comes to the agent over a console socket.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout};

use super::config::ExecOptions;
use super::execs::{ExecEnd, ExecState};
use super::protocol::read_json;
use super::seccomp::filter::{self, FilteringExecutor};
use super::{spec, user, Containers};
use crate::error::{Error, Result};

/// A started exec process and its I/O.
pub struct ExecProcess {
    /// The helper (its exit status is the process's).
    pub child: Child,
    /// Input, when asked for (no TTY).
    pub stdin: Option<ChildStdin>,
    /// Output (no TTY).
    pub stdout: Option<ChildStdout>,
    /// Errors (no TTY).
    pub stderr: Option<ChildStderr>,
    /// The terminal, with a TTY.
    pub master: Option<OwnedFd>,
    /// An id for the session.
    pub id: String,
    /// Whoever waits for the process reports its end here.
    pub end: ExecEnd,
}

impl Containers {
    /// Starts `req.cmd` in a running container.
    pub async fn exec(&self, req: &ExecOptions) -> Result<ExecProcess> {
        let entry = self.find(&req.container_id)?;
        let r = entry.record();
        if r.state.status == "paused" {
            return Err(Error::FailedPrecondition(format!(
                "container {} is paused: unpause it first",
                r.id
            )));
        }
        if !r.state.is_running() {
            return Err(Error::FailedPrecondition(format!(
                "container {} is not running",
                r.id
            )));
        }
        if req.cmd.is_empty() {
            return Err(Error::InvalidArgument("exec needs a command to run".into()));
        }
        let dir = self.dir_of(&r.id);
        let base: serde_json::Value = read_json(&dir.join("bundle").join("config.json"))
            .map_err(|e| Error::io("reading the container's spec", e))?;
        let mut process = base["process"].clone();
        process["args"] = serde_json::json!(req.cmd);
        process["terminal"] = serde_json::json!(req.tty);
        if !req.working_dir.is_empty() {
            process["cwd"] = serde_json::json!(req.working_dir);
        }
        let mut env: Vec<String> = process["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        for pair in &req.env {
            let key = pair.split('=').next().unwrap_or("");
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(pair.clone());
        }
        process["env"] = serde_json::json!(env);
        if !req.user.is_empty() {
            let image = self.images.find(&r.image_id)?;
            let layers = self.layer_dirs(&image.record)?;
            // The process cannot start as a user the container lacks:
            // Docker's 126, as for a command that cannot run.
            let ids = user::resolve(
                &req.user,
                &user::read_etc(&layers, "passwd"),
                &user::read_etc(&layers, "group"),
            )
            .map_err(|e| match e {
                Error::InvalidArgument(text) => Error::CommandCannotRun(text),
                other => other,
            })?;
            process["user"] = serde_json::json!({"uid": ids.uid, "gid": ids.gid, "additionalGids": ids.additional_gids});
        }
        if req.privileged {
            // Every capability the agent may hand out (on some hosts even
            // root lacks one, and asking for it fails the exec).
            let all = spec::capabilities(&super::config::ContainerConfig {
                privileged: true,
                ..Default::default()
            })?;
            process["capabilities"] =
                serde_json::json!({"bounding": all, "effective": all, "permitted": all});
        }
        let session = crate::digest::of_bytes(
            format!("{}{:?}", r.id, std::time::SystemTime::now()).as_bytes(),
        )[7..19]
            .to_string();
        let process_file = dir.join(format!("exec-{session}.json"));
        std::fs::write(&process_file, process.to_string())
            .map_err(|e| Error::io("writing the exec process", e))?;
        let console = if req.tty {
            let path = self
                .sockets
                .join(format!("{}.{}", &r.id[..12], &session[..6]));
            let _ = std::fs::remove_file(&path);
            let l = tokio::net::UnixListener::bind(&path)
                .map_err(|e| Error::io("creating the exec console socket", e))?;
            Some((l, path))
        } else {
            None
        };
        let mut cmd = std::process::Command::new("/proc/self/exe");
        cmd.arg0("berth-exec")
            .arg("__exec")
            .arg(&self.state_root)
            .arg(&r.id)
            .arg(&process_file);
        if let Some((_, path)) = &console {
            cmd.arg(path);
        }
        let piped = || std::process::Stdio::piped();
        let null = || std::process::Stdio::null();
        cmd.stdin(if req.attach_stdin && !req.tty {
            piped()
        } else {
            null()
        })
        .stdout(if req.tty { null() } else { piped() })
        .stderr(if req.tty { null() } else { piped() });
        let mut child = tokio::process::Command::from(cmd)
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| Error::io("starting the exec helper", e))?;
        let master = match console {
            Some((listener, path)) => {
                let accepted = tokio::select! {
                    a = listener.accept() => a.ok(),
                    _ = child.wait() => None,
                };
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(&process_file);
                match accepted {
                    Some((conn, _)) => {
                        let std_conn = conn
                            .into_std()
                            .map_err(|e| Error::io("console socket", e))?;
                        std_conn
                            .set_nonblocking(false)
                            .map_err(|e| Error::io("console socket", e))?;
                        let fd = tokio::task::spawn_blocking(move || {
                            crate::util::fdio::receive_fd(std_conn.as_raw_fd())
                        })
                        .await
                        .map_err(|e| Error::Internal(e.to_string()))?
                        .map_err(|e| Error::io("receiving the exec terminal", e))?;
                        Some(fd)
                    }
                    None => {
                        return Err(Error::FailedPrecondition(format!(
                            "exec in container {} failed before it started",
                            r.id
                        )))
                    }
                }
            }
            None => None,
        };
        self.emit(
            &format!("exec_start: {}", req.cmd.join(" ")),
            &r,
            &[("execID", &session)],
        );
        self.execs.started(ExecState {
            id: session.clone(),
            container_id: r.id.clone(),
            cmd: req.cmd.clone(),
            tty: req.tty,
            privileged: req.privileged,
            user: req.user.clone(),
            running: true,
            exit_code: None,
            ended: None,
        });
        let end = ExecEnd {
            table: self.execs.clone(),
            events: self.events.clone(),
            id: session.clone(),
            container_id: r.id.clone(),
            attributes: self.event_attributes(&r, &[]),
        };
        Ok(ExecProcess {
            end,
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            child,
            master,
            id: session,
        })
    }
}

impl Containers {
    /// An exec session by id (running, or ended a short while ago).
    pub fn exec_state(&self, id: &str) -> Result<ExecState> {
        self.execs.get(id)
    }

    /// The ids of a container's running exec sessions (`ExecIDs`).
    pub fn exec_ids(&self, container_id: &str) -> Vec<String> {
        self.execs.running_ids(container_id)
    }
}

/// The exec helper's main: `__exec STATE_ROOT ID PROCESS_JSON [CONSOLE]`.
/// Exits with the process's status (126 when it cannot start).
pub fn helper_main(args: &[String]) -> i32 {
    let [state_root, id, process, rest @ ..] = args else {
        eprintln!("berth-exec: usage: __exec STATE_ROOT ID PROCESS_JSON [CONSOLE_SOCKET]");
        return 125;
    };
    let console = rest.first().map(PathBuf::from);
    let result = (|| -> std::result::Result<i32, String> {
        let mut builder = ContainerBuilder::new(id.clone(), SyscallType::default())
            .with_root_path(Path::new(state_root))
            .map_err(|e| e.to_string())?;
        if console.is_some() {
            builder = builder.with_console_socket(console.as_ref());
        }
        let state_root = Path::new(state_root);
        let bundle = Container::load(state_root.join(id))
            .map_err(|e| super::monitor::helper::describe_as(&e, "the container cannot be read"))?
            .bundle()
            .to_path_buf();
        let filter = filter::for_bundle(&bundle, &filter::cache_dir(state_root))?;
        let pid = builder
            .with_executor(FilteringExecutor::new(filter))
            .as_tenant()
            .with_process(Some(process))
            .with_detach(true)
            .build()
            .map_err(|e| {
                super::monitor::helper::describe_as(&e, "the command could not be started")
            })?;
        let _ = std::fs::remove_file(process);
        Ok(super::wait_exit_code(pid.as_raw()))
    })();
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = std::fs::remove_file(process);
            eprintln!("{e}");
            match super::start_failure(e) {
                Error::CommandNotFound(_) => 127,
                _ => 126,
            }
        }
    }
}
