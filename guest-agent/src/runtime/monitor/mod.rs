//! A container's monitor: the small `berth-monitor DIR` binary, one per
//! running container.
//!
//! It outlives the agent: it holds the container's stdio and writes its
//! logs, waits for the process (it is its parent), and records the exit
//! status in `run.json`, so the agent can be restarted or `kill -9`ed and
//! find everything again. It mounts the container's root filesystem,
//! then leaves the container's creation to a short-lived helper (the
//! small `berth-create DIR`, see [`helper`]), so that
//! libcontainer and its dependencies never weigh on the process that
//! lives as long as the container. As a child subreaper it inherits the
//! container's init when the helper exits.
//!
//! Setup here runs before any runtime; [`serve`] is the event loop.

pub mod helper;
mod serve;

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

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
    /// The create helper binary (`berth-create`).
    pub helper: PathBuf,
    /// Volumes to fill from the image when empty: (path in the
    /// container, the volume's directory).
    #[serde(default)]
    pub copy_up: Vec<(String, PathBuf)>,
    /// Bring up `lo` in the container's own fresh network namespace
    /// (`--network none`), as Docker does.
    #[serde(default)]
    pub lo_up: bool,
    /// Mount the overlay `volatile` (no sync of the writable layer, not
    /// even at unmount): for `--rm` containers without writable volumes
    /// or binds, whose layer is deleted when they stop.
    #[serde(default)]
    pub volatile: bool,
}

/// The console socket's name in the container's directory.
pub const CONSOLE_SOCKET: &str = "console.sock";

/// The container's side of its stdio, and the monitor's side.
struct Stdio {
    /// For the container: stdin, stdout, stderr (none with a tty).
    child: Option<(OwnedFd, OwnedFd, OwnedFd)>,
    /// The monitor's ends: stdin writer (if open), stdout, stderr readers.
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
}

/// The create helper, from the container's creation until its start.
struct Helper {
    pid: nix::unistd::Pid,
    commands: std::fs::File,
    report: BufReader<std::fs::File>,
}

impl Helper {
    /// The helper's next report line, as JSON (null once it has ended).
    fn next_report(&mut self) -> serde_json::Value {
        let mut line = String::new();
        let _ = self.report.read_line(&mut line);
        serde_json::from_str(&line).unwrap_or_default()
    }

    /// Has the helper start the container, and waits for it to end, so
    /// that the container's init is the monitor's child from then on.
    fn start(mut self) -> Result<(), String> {
        let asked = writeln!(self.commands, "start");
        let answer = self.next_report();
        let _ = crate::runtime::wait_exit_code(self.pid.as_raw());
        match (asked, answer["started"].as_bool(), answer["error"].as_str()) {
            (_, Some(true), _) => Ok(()),
            (_, _, Some(e)) => Err(e.to_string()),
            (Err(e), _, _) => Err(format!("the create helper cannot be reached: {e}")),
            _ => Err("the create helper ended before the container started".into()),
        }
    }

    /// Lets the helper go without a start: it kills the container.
    fn abandon(self) {
        drop(self.commands);
        let _ = crate::runtime::wait_exit_code(self.pid.as_raw());
    }
}

/// Everything set up before the event loop.
struct Prepared {
    opts: Options,
    helper: Helper,
    pid: i32,
    stdio: Stdio,
    /// The pty master, with a tty.
    master: Option<OwnedFd>,
    listener: std::os::unix::net::UnixListener,
}

/// The monitor process's main; returns its exit code.
pub fn main(dir: &Path) -> i32 {
    let _ = nix::unistd::setsid();
    // The container's init becomes ours when the create helper exits.
    // SAFETY: prctl with an integer argument changes only this process.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
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
    match prepare(opts.clone(), dir) {
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

/// Removes what a run leaves behind: the cgroup (and any process still
/// in it), libcontainer's state, the rootfs mount, the socket.
pub fn cleanup(opts: &Options) {
    crate::cgroups::Cgroup::of(&opts.id).remove();
    let _ = std::fs::remove_dir_all(opts.state_root.join(&opts.id));
    let _ = nix::mount::umount2(&opts.rootfs, nix::mount::MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(&opts.socket);
}

fn prepare(opts: Options, dir: &Path) -> Result<Prepared, String> {
    // A previous run that was killed may have left its state behind.
    cleanup(&opts);
    mount_rootfs(&opts)?;
    for (path, volume) in &opts.copy_up {
        crate::util::copy::fill_volume(&opts.rootfs, path, volume)
            .map_err(|e| format!("the volume at {path} cannot be filled from the image: {e}"))?;
    }
    make_cwd(&opts.rootfs, &opts.cwd)?;
    let listener = std::os::unix::net::UnixListener::bind(&opts.socket).map_err(|e| {
        format!(
            "the monitor's socket {} cannot be made: {e}",
            opts.socket.display()
        )
    })?;
    let mut stdio = open_stdio(&opts)?;
    let console = if opts.tty {
        // Bound by a short relative name: the full path may be longer
        // than a socket address allows.
        let cwd = std::env::current_dir().ok();
        std::env::set_current_dir(dir).map_err(|e| e.to_string())?;
        let _ = std::fs::remove_file(CONSOLE_SOCKET);
        let l = std::os::unix::net::UnixListener::bind(CONSOLE_SOCKET);
        if let Some(cwd) = cwd {
            let _ = std::env::set_current_dir(cwd);
        }
        Some(l.map_err(|e| format!("the console socket cannot be made: {e}"))?)
    } else {
        None
    };
    let mut helper = spawn_helper(&opts, dir, stdio.child.take())?;
    let report = helper.next_report();
    let Some(pid) = report["pid"].as_i64() else {
        helper.abandon();
        return Err(match report["error"].as_str() {
            Some(e) => e.to_string(),
            None => {
                let log = std::fs::read_to_string(dir.join("monitor.log")).unwrap_or_default();
                format!("the container's create helper failed: {}", log.trim())
            }
        });
    };
    if opts.lo_up {
        if let Err(e) = loopback_up(pid as i32) {
            helper.abandon();
            return Err(format!(
                "the container's loopback cannot be brought up: {e}"
            ));
        }
    }
    let master = match console {
        Some(l) => {
            let fd = receive_console(&l);
            let _ = std::fs::remove_file(dir.join(CONSOLE_SOCKET));
            match fd {
                Ok(fd) => Some(fd),
                Err(e) => {
                    helper.abandon();
                    return Err(e);
                }
            }
        }
        None => None,
    };
    Ok(Prepared {
        opts,
        helper,
        pid: pid as i32,
        stdio,
        master,
        listener,
    })
}

/// Starts `berth-create DIR` with its pipes and the container's
/// stdio at the numbers [`helper`] expects.
fn spawn_helper(
    opts: &Options,
    dir: &Path,
    child_stdio: Option<(OwnedFd, OwnedFd, OwnedFd)>,
) -> Result<Helper, String> {
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| e.to_string());
    let (report_r, report_w) = pipe()?;
    let (commands_r, commands_w) = pipe()?;
    let mut cmd = std::process::Command::new(&opts.helper);
    cmd.arg(dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    let mut fds = vec![
        (report_w.as_raw_fd(), helper::REPORT_FD),
        (commands_r.as_raw_fd(), helper::COMMAND_FD),
    ];
    if let Some((i, o, e)) = &child_stdio {
        for (n, fd) in [i, o, e].into_iter().enumerate() {
            fds.push((fd.as_raw_fd(), helper::STDIO_FD + n as i32));
        }
    }
    let copies = crate::util::fdio::pass_fds(&mut cmd, &fds).map_err(|e| e.to_string())?;
    let child = cmd.spawn().map_err(|e| {
        format!(
            "the create helper {} cannot be started: {e}",
            opts.helper.display()
        )
    })?;
    drop(copies);
    Ok(Helper {
        pid: nix::unistd::Pid::from_raw(child.id() as i32),
        commands: std::fs::File::from(commands_w),
        report: BufReader::new(std::fs::File::from(report_r)),
    })
}

/// Brings `lo` up inside the network namespace of process `pid`, from a
/// short thread (entering a namespace changes only the calling thread).
fn loopback_up(pid: i32) -> Result<(), String> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).map_err(|e| e.to_string())?;
    std::thread::spawn(move || -> Result<(), String> {
        use std::os::fd::AsFd;
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("setns: {e}"))?;
        let sock = std::net::UdpSocket::bind("127.0.0.1:0")
            .or_else(|_| std::net::UdpSocket::bind("0.0.0.0:0"))
            .map_err(|e| e.to_string())?;
        // SAFETY: ifreq is plain data; the ioctls read and write only it.
        unsafe {
            let mut req: libc::ifreq = std::mem::zeroed();
            for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
                *d = *s as libc::c_char;
            }
            let fd = sock.as_raw_fd();
            if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
                return Err(std::io::Error::last_os_error().to_string());
            }
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) < 0 {
                return Err(std::io::Error::last_os_error().to_string());
            }
        }
        Ok(())
    })
    .join()
    .unwrap_or_else(|_| Err("the namespace thread panicked".into()))
}

/// Takes the pty master the container's init sends on the console socket.
fn receive_console(l: &std::os::unix::net::UnixListener) -> Result<OwnedFd, String> {
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
    crate::util::fdio::receive_fd(conn.as_raw_fd()).map_err(|e| e.to_string())
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
    let mount = |data: &str| {
        nix::mount::mount(
            Some("overlay"),
            &opts.rootfs,
            Some("overlay"),
            nix::mount::MsFlags::empty(),
            Some(data),
        )
    };
    if opts.volatile {
        // A volatile overlay leaves a marker that refuses the next mount
        // of the same layer; a disposable layer may be mounted again (a
        // restart before removal), so the marker goes first.
        let _ = std::fs::remove_dir_all(opts.workdir.join("work").join("incompat"));
        // Kernels before 5.10 do not know the option: mount as usual.
        if mount(&format!("{data},volatile")).is_ok() {
            return Ok(());
        }
    }
    mount(&data)
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
