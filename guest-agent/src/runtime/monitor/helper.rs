//! The create helper: `berth-create DIR`, a short-lived child of
//! a container's monitor that creates the container with libcontainer and
//! starts it when the monitor says so, then exits.
//!
//! It is a separate process for two reasons. libcontainer clones inside
//! the calling process, which is only safe while that process is
//! single-threaded, as this one is for its whole life. And libcontainer
//! (with libseccomp, procfs and the cgroup managers) makes a process about
//! 10 MB larger: the monitor, which lives as long as the container, stays
//! small by leaving all of that to this helper. The container's init is
//! this helper's child; when the helper exits, the kernel hands it to the
//! monitor, a child subreaper, which then waits for it.
//!
//! Descriptors: 3 is the report pipe (JSON lines: `{"pid":N}` once the
//! container exists, then `{"started":true}`, or `{"error":"…"}`), 4 is
//! the command pipe (`start` or end of file, which kills the container),
//! and 5, 6, 7 are the container's stdin, stdout and stderr when it has
//! no terminal.

use std::io::{BufRead, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;

use super::Options;
use crate::runtime::protocol::read_json;
use crate::runtime::seccomp::filter::{self, FilteringExecutor};

/// The report pipe's descriptor number.
pub const REPORT_FD: i32 = 3;
/// The command pipe's descriptor number.
pub const COMMAND_FD: i32 = 4;
/// The container's stdin; stdout and stderr follow.
pub const STDIO_FD: i32 = 5;

/// The helper's main; returns its exit code.
pub fn main(dir: &Path) -> i32 {
    // SAFETY: the monitor passes these descriptors at these numbers.
    let mut report = unsafe { std::fs::File::from_raw_fd(REPORT_FD) };
    // SAFETY: as above.
    let commands = unsafe { std::fs::File::from_raw_fd(COMMAND_FD) };
    let mut say = |v: serde_json::Value| {
        let _ = writeln!(report, "{v}");
    };
    let mut container = match read_json::<Options>(&dir.join("monitor.json"))
        .map_err(|e| format!("the monitor's options cannot be read: {e}"))
        .and_then(|opts| create(&opts, dir))
    {
        Ok(c) => c,
        Err(e) => {
            say(serde_json::json!({ "error": e }));
            return 1;
        }
    };
    let pid = container.pid().map(|p| p.as_raw()).unwrap_or(0);
    say(serde_json::json!({ "pid": pid }));
    let mut line = String::new();
    let _ = std::io::BufReader::new(commands).read_line(&mut line);
    if line.trim() != "start" {
        // The monitor gave up on this container.
        let _ = container.kill(nix::sys::signal::Signal::SIGKILL, true);
        return 1;
    }
    match container.start() {
        Ok(()) => say(serde_json::json!({ "started": true })),
        Err(e) => say(serde_json::json!({ "error": describe(&e) })),
    }
    0
}

fn create(opts: &Options, dir: &Path) -> Result<Container, String> {
    let mut builder = ContainerBuilder::new(opts.id.clone(), SyscallType::default())
        .with_root_path(&opts.state_root)
        .map_err(|e| e.to_string())?;
    if opts.tty {
        builder = builder.with_console_socket(Some(dir.join(super::CONSOLE_SOCKET)));
    } else {
        // SAFETY: the monitor passes the container's stdio at these numbers.
        let [i, o, e] = [0, 1, 2].map(|n| unsafe { OwnedFd::from_raw_fd(STDIO_FD + n) });
        builder = builder.with_stdin(i).with_stdout(o).with_stderr(e);
    }
    let filter = filter::for_bundle(&opts.bundle, &filter::cache_dir(&opts.state_root))?;
    builder
        .with_executor(FilteringExecutor::new(filter))
        .as_init(&opts.bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| describe(&e))
}

/// One sentence from libcontainer's error chain: the command's own
/// ([`crate::runtime::command`]) when the program cannot be run, else the
/// chain after "the container could not be created".
pub(crate) fn describe(e: &dyn std::error::Error) -> String {
    describe_as(e, "the container could not be created")
}

/// As [`describe`], with `what` failed in front of a chain.
pub(crate) fn describe_as(e: &dyn std::error::Error, what: &str) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    match crate::runtime::command::sentence_in(&text) {
        Some(sentence) => sentence.to_string(),
        None => format!("{what}: {text}"),
    }
}
