//! PID 1's power-off: every running container at once with its own stop
//! signal, each given its own stop timeout before SIGKILL (a container
//! that exits on its signal costs only its own exit), while the agent
//! stops; containers with a restart policy only once the agent is gone
//! (so it does not start them again, and the next boot does, as Docker's
//! daemon does after a restart); then whatever is left, sync, unmount,
//! power off.
//!
//! Each step is stamped on the console, so the console shows where a
//! stop's time goes.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use nix::mount::{umount2, MntFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::{stamp, AGENT_ROOT};
use crate::runtime::Record;

/// How long container monitors have to record their exits once the
/// containers are gone.
const MONITOR_GRACE: Duration = Duration::from_secs(3);
/// How long the agent has to finish its requests after SIGTERM.
const AGENT_GRACE: Duration = Duration::from_secs(10);
/// The longest any one container is waited for (its stop timeout is used
/// when shorter; a negative one, "wait for ever", gets this).
const LONGEST_STOP: Duration = Duration::from_secs(120);

/// A running container as its record on the data disk describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    /// The container's id.
    pub id: String,
    /// Its main process, as PID 1 sees it.
    pub pid: i32,
    /// Its stop signal.
    pub signal: Signal,
    /// How long it has after the signal.
    pub timeout: Duration,
    /// Frozen (`berth pause`): thawed before the signal.
    pub paused: bool,
    /// Its restart policy may start it again when it exits.
    pub restarts: bool,
}

/// The running containers recorded under `dir` (the agent's `containers`).
pub fn running_containers(dir: &Path) -> Vec<Running> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for e in entries.flatten() {
        let path: PathBuf = e.path().join("container.json");
        let Ok(r) = crate::util::jsonfile::read_json::<Record>(&path) else {
            continue;
        };
        if !r.state.is_running() || r.state.pid <= 0 {
            continue;
        }
        let stop_signal = if r.config.stop_signal.is_empty() {
            "SIGTERM"
        } else {
            r.config.stop_signal.as_str()
        };
        let signal = crate::runtime::stop::parse_signal(stop_signal).unwrap_or(Signal::SIGTERM);
        let timeout = match r.config.stop_timeout {
            t if t < 0 => LONGEST_STOP,
            0 => Duration::from_secs(10),
            t => Duration::from_secs(t as u64).min(LONGEST_STOP),
        };
        let restarts = r
            .config
            .restart_policy
            .as_ref()
            .is_some_and(|p| !p.name.is_empty() && p.name != "no");
        found.push(Running {
            restarts,
            paused: r.state.status == "paused",
            id: r.id,
            pid: r.state.pid,
            signal,
            timeout,
        });
    }
    found
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command's closing parenthesis.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|s| s != 'Z' && s != 'X'),
        Err(_) => false,
    }
}

/// Reaps every exited child of PID 1 without waiting (nothing elsewhere:
/// another process's children are its own to wait for).
fn reap() {
    if !super::is_pid1() {
        return;
    }
    while let Ok(s) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}

/// A container that has been sent its stop signal.
pub struct Stopping<'a> {
    container: &'a Running,
    deadline: Instant,
}

/// Sends each container its stop signal (thawing a paused one first).
pub fn signal(containers: &[Running]) -> Vec<Stopping<'_>> {
    containers
        .iter()
        .map(|c| {
            if c.paused {
                let _ = crate::cgroups::Cgroup::of(&c.id).freeze(false);
            }
            let _ = kill(Pid::from_raw(c.pid), c.signal);
            Stopping {
                container: c,
                deadline: Instant::now() + c.timeout,
            }
        })
        .collect()
}

/// Waits for each signalled container up to its own timeout and kills the
/// ones still there. Returns how many had to be killed.
pub fn wait_stopped(mut left: Vec<Stopping<'_>>) -> usize {
    let mut killed = 0;
    while !left.is_empty() {
        reap();
        left.retain(|s| {
            let c = s.container;
            if !alive(c.pid) {
                return false;
            }
            if Instant::now() >= s.deadline {
                eprintln!(
                    "berth-init: container {} did not stop within {} s of {}; killing it",
                    &c.id[..c.id.len().min(12)],
                    c.timeout.as_secs(),
                    c.signal
                );
                let _ = kill(Pid::from_raw(c.pid), Signal::SIGKILL);
                killed += 1;
                return false;
            }
            true
        });
        if !left.is_empty() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    killed
}

/// Signals every container at once, then waits for each up to its own
/// timeout and kills the ones that are still there. Returns how many had
/// to be killed.
pub fn stop_containers(containers: &[Running]) -> usize {
    wait_stopped(signal(containers))
}

/// Stops the agent, then the containers, then every other process,
/// unmounts the disks and powers off.
pub fn power_off(agent: Option<Child>) -> ! {
    let containers = running_containers(&Path::new(AGENT_ROOT).join("containers"));
    let (late, early): (Vec<Running>, Vec<Running>) =
        containers.into_iter().partition(|c| c.restarts);
    stamp(&format!(
        "power-off: stopping the agent and {} containers",
        early.len()
    ));
    let mut stopping = signal(&early);
    if let Some(a) = agent {
        let pid = Pid::from_raw(a.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        wait_gone(pid, AGENT_GRACE);
    }
    stamp(&format!(
        "power-off: agent gone; stopping {} containers with a restart policy",
        late.len()
    ));
    stopping.extend(signal(&late));
    let killed = wait_stopped(stopping);
    stamp(&format!(
        "power-off: containers stopped ({killed} killed after their timeout)"
    ));
    // Container monitors record the exits and go: a monitor signalled
    // while it writes its container's exit would leave it unrecorded (the
    // next boot would say 255), so they get a moment first. Anything else
    // left gets SIGTERM, a moment, then SIGKILL.
    wait_monitors_gone(MONITOR_GRACE);
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    wait_all_gone(Duration::from_secs(2));
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    wait_all_gone(Duration::from_secs(1));
    stamp("power-off: every process gone; unmounting");
    unmount_below(Path::new(AGENT_ROOT));
    unmount_below(Path::new("/"));
    // Unmounting wrote each file system out; a mount that was busy and
    // only detached is written out here.
    nix::unistd::sync();
    stamp("power-off: unmounted");
    eprintln!("berth-init: powering off");
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn wait_gone(pid: Pid, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(5)),
            _ => return,
        }
    }
    let _ = kill(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
}

/// Waits until no container monitor (`berth-monitor`) runs, reaping
/// whatever ends meanwhile, for at most `timeout`.
fn wait_monitors_gone(timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && monitors_running() {
        while let Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) =
            waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG))
        {}
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether a live (not zombie) process is a container monitor.
fn monitors_running() -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // "PID (COMM) STATE …"
        stat.contains("(berth-monitor) ") && !stat.contains("(berth-monitor) Z")
    })
}

/// Reaps children until none is left or `timeout` passes.
fn wait_all_gone(timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Err(_) => return, // ECHILD: nothing left
            Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(5)),
            Ok(_) => {}
        }
    }
}

/// Unmounts every mount under `root` (deepest first) that is not a kernel
/// file system, then `root` itself unless it is `/`.
fn unmount_below(root: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|p| Path::new(p).starts_with(root))
        .filter(|p| {
            !["/proc", "/sys", "/dev", "/run", "/"]
                .iter()
                .any(|k| p == k || (Path::new(p).starts_with(k) && *k != "/"))
        })
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        if umount2(p.as_str(), MntFlags::empty()).is_err() {
            let _ = umount2(p.as_str(), MntFlags::MNT_DETACH);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_running_containers_signal_and_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let mut quits = crate::runtime::record::tests::record("a1", "web", "running");
        quits.state.pid = 4242;
        quits.config.stop_signal = "SIGQUIT".into();
        quits.config.stop_timeout = 3;
        quits.config.restart_policy = Some(crate::runtime::config::RestartPolicy {
            name: "unless-stopped".into(),
            maximum_retry_count: 0,
        });
        let mut exited = crate::runtime::record::tests::record("b2", "done", "exited");
        exited.state.pid = 0;
        for r in [&quits, &exited] {
            std::fs::create_dir_all(dir.path().join(&r.id)).unwrap();
            std::fs::write(
                dir.path().join(&r.id).join("container.json"),
                serde_json::to_vec(r).unwrap(),
            )
            .unwrap();
        }
        let found = running_containers(dir.path());
        assert_eq!(
            found,
            vec![Running {
                id: "a1".into(),
                pid: 4242,
                signal: Signal::SIGQUIT,
                timeout: Duration::from_secs(3),
                paused: false,
                restarts: true,
            }]
        );
    }

    #[test]
    fn containers_that_exit_on_their_signal_cost_only_their_exit() {
        // One child that exits on SIGTERM and one that ignores it.
        let prompt = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let stubborn = std::process::Command::new("sh")
            .args(["-c", "trap '' TERM; sleep 30 & wait; sleep 30"])
            .spawn()
            .unwrap();
        let c = |id: &str, pid: u32, secs: u64| Running {
            id: id.into(),
            pid: pid as i32,
            signal: Signal::SIGTERM,
            timeout: Duration::from_secs(secs),
            paused: false,
            restarts: false,
        };
        let started = Instant::now();
        assert_eq!(stop_containers(&[c("prompt", prompt.id(), 5)]), 0);
        assert!(started.elapsed() < Duration::from_millis(500));
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(100)); // the trap is set
        let killed = stop_containers(&[c("stubborn", stubborn.id(), 1)]);
        let took = started.elapsed();
        assert_eq!(killed, 1);
        for mut child in [prompt, stubborn] {
            let _ = child.kill();
            let _ = child.wait();
        }
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }
}
