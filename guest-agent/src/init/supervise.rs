//! PID 1's loop: runs the serving agent as a child and restarts it when it
//! exits (so "the agent restarts" never means "the kernel panics"), reaps
//! orphans (container monitors are re-parented here; the agent's own
//! children stay the agent's to wait for, so no exit status is stolen), and
//! powers the VM off cleanly on SIGTERM, SIGPWR or the ACPI power button.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::config::Config;
use super::AGENT_ROOT;

/// The descriptor number the agent sees [`start_first_agent`]'s pipe at.
const SERVING_FD: i32 = 3;

/// Blocks the signals PID 1 takes synchronously, in the calling thread and
/// every thread it spawns afterwards: PID 1 calls this before it starts
/// any thread, so no helper thread can receive (and, as init, drop) a
/// power-off request.
pub fn block_signals() {
    let _ = handled().thread_block();
}

/// A command for a child of PID 1, started with no signal blocked. PID 1
/// blocks the signals it waits for, and a child inherits the mask (the
/// spawn does not reset it): the agent would ignore SIGTERM, and every
/// container, the agent's descendant, would start with SIGINT, SIGTERM and
/// SIGCHLD blocked.
pub fn child_command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    // SAFETY: sigprocmask is async-signal-safe, and nothing else runs
    // between the fork and the exec.
    unsafe {
        cmd.pre_exec(|| {
            sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
                .map_err(std::io::Error::from)
        });
    }
    cmd
}

/// The signals PID 1 takes synchronously.
fn handled() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGPWR,
        Signal::SIGUSR2,
        Signal::SIGHUP,
    ] {
        set.add(s);
    }
    set
}

/// Supervises `agent` (started by [`start_first_agent`]), restarting it when it
/// exits, until a power-off request; then powers off. PID 1 has called
/// [`block_signals`] first.
pub fn run(config: &Config, mut agent: Option<Child>) -> ! {
    let set = handled();
    std::thread::spawn(watch_power_button);
    let mut restart_at: Option<Instant> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        let signal = wait_signal(&set, Duration::from_millis(500));
        if let Some(sig) = signal {
            if sig != libc::SIGCHLD {
                eprintln!("berth-init: power-off requested (signal {sig})");
                super::shutdown::power_off(agent.take());
            }
        }
        // Reap everything that has exited, ours or re-parented.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(status) => {
                    if let (Some(a), Some(pid)) = (&agent, status.pid()) {
                        if a.id() as i32 == pid.as_raw() {
                            eprintln!("berth-init: the agent exited ({status:?}); restarting it");
                            agent = None;
                            restart_at = Some(Instant::now() + backoff);
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            }
        }
        if agent.is_none() && restart_at.is_some_and(|t| Instant::now() >= t) {
            agent = start_agent(config, None);
            restart_at = None;
        }
        if agent.is_some() && restart_at.is_none() {
            backoff = Duration::from_millis(100);
        }
    }
}

/// Starts the boot's agent like [`start_agent`], with the write end of a
/// pipe as [`super::SERVING_FD_ENV`]; the read end is for
/// [`wait_serving`] (none when the pipe could not be made).
pub fn start_first_agent(config: &Config) -> (Option<OwnedFd>, Option<Child>) {
    let Ok((read, write)) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) else {
        return (None, start_agent(config, None));
    };
    let agent = start_agent(config, Some(&write));
    // The agent holds the only write end now: its exit ends the wait.
    drop(write);
    (Some(read), agent)
}

/// Blocks until the agent started by [`start_first_agent`] serves, or has
/// exited without saying so (whoever waits then goes on regardless).
pub fn wait_serving(serving: Option<OwnedFd>) {
    if let Some(fd) = serving {
        let mut byte = [0u8; 1];
        let _ = std::fs::File::from(fd).read(&mut byte);
    }
}

/// Starts the serving agent with no signal blocked, or says on the console
/// why it could not; `serving` is passed on as [`super::SERVING_FD_ENV`].
fn start_agent(config: &Config, serving: Option<&OwnedFd>) -> Option<Child> {
    let mut cmd = child_command("/usr/bin/berth-agent");
    cmd.arg("--listen")
        .arg(format!("vsock://{}:{}", libc::VMADDR_CID_ANY, config.port))
        // The raw port relay and the Docker Engine API on the next two
        // ports (berth_vm::relay::RELAY_PORT_OFFSET and DOCKER_PORT_OFFSET).
        .arg("--relay-listen")
        .arg(format!(
            "vsock://{}:{}",
            libc::VMADDR_CID_ANY,
            config.port + 1
        ))
        .arg("--docker-listen")
        .arg(format!(
            "vsock://{}:{}",
            libc::VMADDR_CID_ANY,
            config.port + 2
        ))
        .arg("--root")
        .arg(AGENT_ROOT)
        .env(berth_api::ANNOUNCE_SERVING_ENV, "1")
        .stdin(Stdio::null());
    for r in &config.insecure_registries {
        cmd.arg("--insecure-registry").arg(r);
    }
    if let Some(level) = &config.log_level {
        cmd.arg("--log-level").arg(level);
    }
    // The copies pass_fds makes must live until the spawn.
    let _passed = serving.and_then(|fd| {
        match crate::util::fdio::pass_fds(&mut cmd, &[(fd.as_raw_fd(), SERVING_FD)]) {
            Ok(copies) => {
                cmd.env(super::SERVING_FD_ENV, SERVING_FD.to_string());
                Some(copies)
            }
            Err(e) => {
                eprintln!("berth-init: the agent cannot tell when it serves: {e}");
                None
            }
        }
    });
    match cmd.spawn() {
        Ok(child) => Some(child),
        Err(e) => {
            eprintln!("berth-init: cannot start the agent: {e}");
            None
        }
    }
}

fn wait_signal(set: &SigSet, timeout: Duration) -> Option<i32> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: the set and timespec are valid; info may be null.
    let sig = unsafe { libc::sigtimedwait(set.as_ref(), std::ptr::null_mut(), &ts) };
    (sig > 0).then_some(sig)
}

/// Reads the power button's input events (ACPI's, or the GPIO key of
/// arm64 machines) and turns a press into SIGPWR for PID 1: the way a
/// VMM's "power off" reaches the guest.
fn watch_power_button() {
    // The button's driver loads with the container modules, after the
    // agent has started: look for it until those are loaded.
    let find = || {
        (0..16).find_map(|n| {
            let name =
                std::fs::read_to_string(format!("/sys/class/input/event{n}/device/name")).ok()?;
            // ACPI's button on x86; QEMU's arm64 `virt` machine has a GPIO
            // key instead.
            (name.contains("Power Button") || name.trim() == "gpio-keys")
                .then(|| format!("/dev/input/event{n}"))
        })
    };
    let mut device = find();
    while device.is_none() && Path::new(super::MODULES_PENDING).exists() {
        std::thread::sleep(Duration::from_millis(50));
        device = find();
    }
    let device = device.or_else(find);
    let Some(device) = device else {
        eprintln!("berth-init: no ACPI power button; power-off works through SIGTERM only");
        return;
    };
    let Ok(mut f) = std::fs::File::open(&device) else {
        return;
    };
    // struct input_event on 64-bit: timeval (16), type u16, code u16, value i32.
    let mut ev = [0u8; 24];
    while f.read_exact(&mut ev).is_ok() {
        let kind = u16::from_ne_bytes([ev[16], ev[17]]);
        let code = u16::from_ne_bytes([ev[18], ev[19]]);
        let value = i32::from_ne_bytes([ev[20], ev[21], ev[22], ev[23]]);
        const EV_KEY: u16 = 1;
        const KEY_POWER: u16 = 116;
        if kind == EV_KEY && code == KEY_POWER && value == 1 {
            let _ = kill(Pid::from_raw(1), Signal::SIGPWR);
        }
    }
}
