//! A container's monitor: the agent binary re-executed as
//! `berth-agent __monitor DIR`, one per running container.
//!
//! Why a separate process: `libcontainer` clones inside the calling
//! process, which can deadlock in a multi-threaded tokio process (a
//! child inherits locks other threads held). The monitor creates the
//! container while it is still single-threaded, and only then starts a
//! current-thread runtime. It also outlives the agent: it holds the
//! container's stdio and writes its logs, waits for the process (it is
//! its parent), and records the exit status in `run.json`, so the agent
//! can be restarted or `kill -9`ed and find everything again.
//!
//! Setup here runs before any runtime; [`serve`] is the event loop.

mod serve;

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use serde::{Deserialize, Serialize};

use super::protocol::{write_json_atomic, ExitStatus, RunState};

/// What the agent tells a monitor, in `monitor.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Options {
    /// The container's id.
    pub id: String,
    /// libcontainer's state directory root.
    pub state_root: PathBuf,
    /// The OCI bundle (holds `config.json`).
    pub bundle: PathBuf,
    /// Where the overlay is mounted.
    pub rootfs: PathBuf,
    /// The image's layer directories, top first.
    pub lowerdirs: Vec<PathBuf>,
    /// The container's own writable layer.
    pub upperdir: PathBuf,
    /// overlayfs's work directory.
    pub workdir: PathBuf,
    /// The working directory to create inside the container if missing.
    pub cwd: String,
    /// Run the process on a pseudo-terminal.
    pub tty: bool,
    /// Keep stdin open for attach.
    pub open_stdin: bool,
    /// Close stdin when the first attached client's stdin ends.
    pub stdin_once: bool,
    /// The json-file log.
    pub log_path: PathBuf,
    /// Rotate the log at this size.
    pub log_max_size: u64,
    /// Keep this many log files.
    pub log_max_files: u32,
    /// The monitor's socket.
    pub socket: PathBuf,
    /// Where the run's state goes.
    pub run_state: PathBuf,
}

/// The container's side of its stdio, and the monitor's side.
struct Stdio {
    /// For the container: stdin, stdout, stderr (none with a tty).
    child: Option<(OwnedFd, OwnedFd, OwnedFd)>,
    /// The monitor's ends: stdin writer (if open), stdout, stderr readers.
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
}

/// Everything set up before the event loop.
struct Prepared {
    opts: Options,
    container: Container,
    pid: i32,
    stdio: Stdio,
    /// The pty master, with a tty.
    master: Option<OwnedFd>,
    listener: std::os::unix::net::UnixListener,
}

/// The monitor process's main; returns its exit code.
pub fn main(dir: &Path) -> i32 {
    let _ = nix::unistd::setsid();
    // SAFETY: the agent passes the ready pipe's write end as descriptor 3.
    let mut ready = unsafe { std::fs::File::from_raw_fd(3) };
    let opts: Options = match super::protocol::read_json(&dir.join("monitor.json")) {
        Ok(o) => o,
        Err(e) => {
            let _ = writeln!(
                ready,
                "{}",
                serde_json::json!({ "error": format!("the monitor's options cannot be read: {e}") })
            );
            return 1;
        }
    };
    match prepare(opts.clone()) {
        Ok(prepared) => {
            let _ = writeln!(ready, "{}", serde_json::json!({ "pid": prepared.pid }));
            drop(ready);
            serve::run(prepared)
        }
        Err(e) => {
            cleanup(&opts);
            let state = RunState {
                monitor_pid: std::process::id() as i32,
                exit: Some(ExitStatus {
                    code: 127,
                    error: e.clone(),
                    finished_at: Some(chrono::Utc::now()),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let _ = write_json_atomic(&opts.run_state, &state);
            let _ = writeln!(ready, "{}", serde_json::json!({ "error": e }));
            1
        }
    }
}

/// Removes what a run leaves behind: libcontainer's state and cgroup, the
/// rootfs mount, the socket.
pub fn cleanup(opts: &Options) {
    if let Ok(mut c) = Container::load(opts.state_root.join(&opts.id)) {
        let _ = c.delete(true);
    }
    crate::cgroups::Cgroup::of(&opts.id).remove();
    let _ = nix::mount::umount2(&opts.rootfs, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(&opts.socket);
}

fn prepare(opts: Options) -> Result<Prepared, String> {
    // A previous run that was killed may have left its state behind.
    cleanup(&opts);
    mount_rootfs(&opts)?;
    make_cwd(&opts.rootfs, &opts.cwd)?;
    let listener = std::os::unix::net::UnixListener::bind(&opts.socket).map_err(|e| {
        format!(
            "the monitor's socket {} cannot be made: {e}",
            opts.socket.display()
        )
    })?;
    let mut stdio = open_stdio(&opts)?;
    let dir = opts.bundle.parent().unwrap_or(Path::new("/")).to_path_buf();
    let console = if opts.tty {
        // Bound by a short relative name: the full path may be longer
        // than a socket address allows.
        let cwd = std::env::current_dir().ok();
        std::env::set_current_dir(&dir).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file("console.sock");
        let l = std::os::unix::net::UnixListener::bind("console.sock");
        if let Some(cwd) = cwd {
            let _ = std::env::set_current_dir(cwd);
        }
        Some(l.map_err(|e| format!("the console socket cannot be made: {e}"))?)
    } else {
        None
    };
    let mut builder = ContainerBuilder::new(opts.id.clone(), SyscallType::default())
        .with_root_path(&opts.state_root)
        .map_err(|e| e.to_string())?;
    if console.is_some() {
        builder = builder.with_console_socket(Some(dir.join("console.sock")));
    }
    if let Some((i, o, e)) = stdio.child.take() {
        builder = builder.with_stdin(i).with_stdout(o).with_stderr(e);
    }
    let container = builder
        .as_init(&opts.bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| describe(&e))?;
    let pid = container.pid().map(|p| p.as_raw()).unwrap_or(0);
    let master = match console {
        Some(l) => {
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let conn = loop {
                match l.accept() {
                    Ok((c, _)) => break c,
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            && std::time::Instant::now() < deadline =>
                    {
                        std::thread::sleep(std::time::Duration::from_millis(2))
                    }
                    Err(e) => return Err(format!("the container's terminal never arrived: {e}")),
                }
            };
            conn.set_nonblocking(false).map_err(|e| e.to_string())?;
            let fd = super::fdio::receive_fd(conn.as_raw_fd()).map_err(|e| e.to_string())?;
            let _ = std::fs::remove_file(dir.join("console.sock"));
            Some(fd)
        }
        None => None,
    };
    Ok(Prepared {
        opts,
        container,
        pid,
        stdio,
        master,
        listener,
    })
}

/// One sentence from libcontainer's error chain.
pub(crate) fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    format!("the container could not be created: {text}")
}

fn mount_rootfs(opts: &Options) -> Result<(), String> {
    for d in [&opts.rootfs, &opts.upperdir, &opts.workdir] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let mut lower: Vec<String> = opts
        .lowerdirs
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    if lower.is_empty() {
        let empty = opts.bundle.join("empty");
        std::fs::create_dir_all(&empty).map_err(|e| e.to_string())?;
        lower.push(empty.display().to_string());
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        opts.upperdir.display(),
        opts.workdir.display()
    );
    nix::mount::mount(
        Some("overlay"),
        &opts.rootfs,
        Some("overlay"),
        nix::mount::MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|e| format!("the container's root filesystem cannot be mounted (overlay): {e}"))
}

/// Creates the working directory inside the container, following the
/// image's symlinks within it: a child process chroots first, so no path
/// can lead outside.
fn make_cwd(rootfs: &Path, cwd: &str) -> Result<(), String> {
    if cwd == "/" || cwd.is_empty() {
        return Ok(());
    }
    // SAFETY: the monitor is single-threaded here; the child only makes
    // system calls and exits.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let ok = nix::unistd::chroot(rootfs).is_ok()
                && nix::unistd::chdir("/").is_ok()
                && std::fs::create_dir_all(cwd).is_ok();
            // SAFETY: leaving the forked child without running destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => match nix::sys::wait::waitpid(child, None)
        {
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
            _ => Err(format!(
                "the working directory {cwd} cannot be made in the container"
            )),
        },
        Err(e) => Err(format!("fork failed: {e}")),
    }
}

fn open_stdio(opts: &Options) -> Result<Stdio, String> {
    if opts.tty {
        return Ok(Stdio {
            child: None,
            stdin: None,
            stdout: None,
            stderr: None,
        });
    }
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string());
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (child_in, stdin) = if opts.open_stdin {
        let (r, w) = pipe()?;
        (r, Some(w))
    } else {
        let null = std::fs::File::open("/dev/null").map_err(|e| e.to_string())?;
        (OwnedFd::from(null), None)
    };
    Ok(Stdio {
        child: Some((child_in, out_w, err_w)),
        stdin,
        stdout: Some(out_r),
        stderr: Some(err_r),
    })
}
