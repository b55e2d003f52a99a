//! After the agent starts again (a crash or `kill -9` included): every
//! process an earlier agent started for its containers is found, and
//! either adopted or stopped and cleaned.
//!
//! A monitor outlives the agent by design, and a start can be cut
//! anywhere: after the monitor was spawned but before the record says
//! "running", after the monitor started the process but before the agent
//! heard of it, while a restart policy restarts it. The record alone
//! cannot say which monitors exist, so they are found where they are:
//! each carries its container's directory as its one argument
//! (`berth-monitor <root>/containers/<id>`, and its create helper
//! `berth-create` the same), which the agent reads in `/proc` before it
//! serves. A monitor that the record names as its running container's is
//! adopted (followed, stoppable, its logs read as before). Every other
//! one — a start that never finished — is killed with its helper and its
//! container, and what the run made goes too (cgroup, rootfs mount,
//! runtime state, socket; the network namespace and veth go with the
//! reconcile of networks, which keeps only running containers'). The
//! container is left as the start found it ("created", with a sentence
//! saying why; "exited" when its process had run), and a `run --rm`
//! whose start was cut is removed, as a start that failed is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::monitor::{self, Options};
use super::protocol::{read_json, RunState};
use super::start::{CREATE_HELPER, MONITOR};
use super::Containers;

/// The processes found for one container: its monitors and create
/// helpers (the container's init, before it executes, is a helper's
/// clone and shows the same arguments).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Found {
    /// Monitors' pids.
    pub monitors: Vec<i32>,
    /// Helpers' pids (and their clones').
    pub helpers: Vec<i32>,
}

/// Live (not zombie) monitors and helpers whose argument is a directory in
/// `containers`, by container id.
pub(super) fn scan(containers: &Path) -> BTreeMap<String, Found> {
    let ours = std::fs::canonicalize(containers).unwrap_or_else(|_| containers.to_path_buf());
    let mut found: BTreeMap<String, Found> = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return found;
    };
    for ent in rd.flatten() {
        let Ok(pid) = ent.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(ent.path().join("cmdline")) else {
            continue;
        };
        let Some((is_monitor, dir)) = parse_cmdline(&cmdline) else {
            continue;
        };
        let parent = dir.parent().map(Path::to_path_buf).unwrap_or_default();
        let same = parent == containers
            || parent == ours
            || std::fs::canonicalize(&parent).is_ok_and(|p| p == ours);
        let Some(id) = dir.file_name().map(|n| n.to_string_lossy().to_string()) else {
            continue;
        };
        if !same || !is_container_id(&id) || !alive(pid) {
            continue;
        }
        let f = found.entry(id).or_default();
        if is_monitor {
            f.monitors.push(pid);
        } else {
            f.helpers.push(pid);
        }
    }
    found
}

/// `(true, DIR)` for `berth-monitor DIR`, `(false, DIR)` for
/// `berth-create DIR`, from a process's NUL-separated command line.
fn parse_cmdline(cmdline: &[u8]) -> Option<(bool, PathBuf)> {
    let mut args = cmdline.split(|b| *b == 0);
    let exe = String::from_utf8_lossy(args.next()?).to_string();
    let name = exe.rsplit('/').next().unwrap_or(&exe);
    let is_monitor = match name {
        MONITOR => true,
        CREATE_HELPER => false,
        _ => return None,
    };
    let dir = args.next().filter(|a| !a.is_empty())?;
    Some((
        is_monitor,
        PathBuf::from(String::from_utf8_lossy(dir).to_string()),
    ))
}

/// True when live process `pid` is a monitor or helper started for the
/// container directory `dir`.
pub(super) fn started_for(pid: i32, dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let Some((_, arg)) = parse_cmdline(&cmdline) else {
        return false;
    };
    alive(pid)
        && (arg == dir
            || std::fs::canonicalize(&arg)
                .is_ok_and(|a| std::fs::canonicalize(dir).is_ok_and(|d| a == d)))
}

fn is_container_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// True while `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command's closing parenthesis.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// Kills `pids` and waits (at most 5 s) until none is alive.
fn kill_and_wait(pids: &[i32]) {
    for &pid in pids {
        super::stop::signal_pid(pid, nix::sys::signal::Signal::SIGKILL);
    }
    wait_gone(pids, Duration::from_secs(5));
}

/// Waits at most `limit` until none of `pids` is alive; true when none is.
fn wait_gone(pids: &[i32], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if !pids.iter().any(|&p| alive(p)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The live processes in container `id`'s cgroup (any hierarchy).
fn cgroup_procs(id: &str) -> Vec<i32> {
    let root = Path::new("/sys/fs/cgroup");
    let mut pids: Vec<i32> = ["", "freezer", "pids", "memory"]
        .iter()
        .map(|c| root.join(c).join(crate::cgroups::PARENT).join(id))
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
                .collect::<Vec<_>>()
        })
        .filter(|p| alive(*p))
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Thaws container `id`'s cgroup when it is frozen; true when it was.
fn thaw(id: &str) -> bool {
    let root = Path::new("/sys/fs/cgroup");
    let v2 = root
        .join(crate::cgroups::PARENT)
        .join(id)
        .join("cgroup.freeze");
    let v1 = root
        .join("freezer")
        .join(crate::cgroups::PARENT)
        .join(id)
        .join("freezer.state");
    let mut thawed = false;
    for (file, thawed_state, thaw) in [(v2, "0", "0"), (v1, "THAWED", "THAWED")] {
        if std::fs::read_to_string(&file).is_ok_and(|s| s.trim() != thawed_state) {
            thawed |= std::fs::write(&file, thaw).is_ok();
        }
    }
    thawed
}

impl Containers {
    /// Stops the processes `found` for container `id` (none of them
    /// adopted) and removes what its run made.
    pub(super) fn stop_orphan(&self, id: &str, found: &Found) {
        if *found != Found::default() {
            tracing::warn!(
                "stopping container {id}'s monitor {:?} and helper {:?}: the agent died while it started them",
                found.monitors,
                found.helpers
            );
        }
        // The monitor first: its helper then kills the created container
        // itself when its command pipe closes.
        kill_and_wait(&found.monitors);
        wait_gone(&found.helpers, Duration::from_millis(500));
        // What is left is killed here. A helper killed in the middle of
        // its own kill leaves the cgroup frozen, where nothing can die:
        // thawed first, every round.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            thaw(id);
            let left: Vec<i32> = found
                .helpers
                .iter()
                .copied()
                .filter(|p| alive(*p))
                .chain(cgroup_procs(id))
                .collect();
            if left.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!("container {id}'s processes {left:?} did not end after SIGKILL");
                break;
            }
            for pid in left {
                super::stop::signal_pid(pid, nix::sys::signal::Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.clean_run(id);
    }

    /// Removes what a run of container `id` made (idempotent): any
    /// process left in its cgroup, the cgroup, the runtime's state, the
    /// rootfs mount and the monitor's socket.
    fn clean_run(&self, id: &str) {
        let dir = self.dir_of(id);
        match read_json::<Options>(&dir.join("monitor.json")) {
            Ok(opts) => monitor::cleanup(&opts),
            Err(_) => {
                crate::cgroups::Cgroup::of(id).remove();
                let _ = std::fs::remove_dir_all(self.state_root.join(id));
                let _ = nix::mount::umount2(
                    &dir.join("bundle").join("rootfs"),
                    nix::mount::MntFlags::MNT_DETACH,
                );
                let _ = std::fs::remove_file(self.socket_of(id));
            }
        }
    }

    /// Settles every container's processes with its record before the
    /// agent serves: adopts the monitors of running containers, stops
    /// every other monitor, cleans runs that ended without their
    /// monitor's cleanup, and thaws running containers left frozen.
    /// Returns the `--rm` containers whose start was cut, to be removed
    /// once the agent is ready.
    pub(super) fn settle(&self, found: &BTreeMap<String, Found>) -> Vec<String> {
        let mut cut_rm = Vec::new();
        for (id, procs) in found {
            let Some(entry) = self.table().get(id).cloned() else {
                // No record (a create or removal that never finished).
                self.stop_orphan(id, procs);
                continue;
            };
            let record = entry.record();
            let adopted =
                record.state.is_running() && procs.monitors.contains(&record.state.monitor_pid);
            if adopted {
                let extra: Vec<i32> = procs
                    .monitors
                    .iter()
                    .copied()
                    .filter(|p| *p != record.state.monitor_pid)
                    .collect();
                kill_and_wait(&extra);
                continue;
            }
            self.stop_orphan(id, procs);
            if record.state.is_running() || record.state.status == "restarting" {
                // `recover` records how the run ended (and restarts it
                // when its policy says so).
                continue;
            }
            let run: RunState = read_json(&self.dir_of(id).join("run.json")).unwrap_or_default();
            let ran = run.started_at.is_some();
            let _ = self.update(&entry, |r| {
                r.state.error =
                    "the agent stopped while this container was starting; start it again".into();
                r.state.pid = 0;
                r.state.monitor_pid = 0;
                if ran {
                    r.state.status = "exited".into();
                    r.state.exit_code = 137;
                    r.state.started_at = run.started_at;
                    r.state.finished_at = Some(Utc::now());
                }
            });
            if record.config.auto_remove {
                cut_rm.push(id.clone());
            }
        }
        for entry in self.all() {
            let record = entry.record();
            let id = &record.id;
            if found.contains_key(id) {
                continue;
            }
            let dir = self.dir_of(id);
            if record.state.is_running() || record.state.status == "restarting" {
                continue;
            }
            // A start that was cut before its monitor existed, or a
            // monitor killed before its own cleanup: nothing of the run
            // may stay.
            let ended_cleanly =
                read_json::<RunState>(&dir.join("run.json")).is_ok_and(|r| r.exit.is_some());
            if dir.join("monitor.json").exists() && !ended_cleanly {
                self.clean_run(id);
                if record.config.auto_remove && record.state.status == "created" {
                    cut_rm.push(id.clone());
                }
            }
        }
        for entry in self.all() {
            let record = entry.record();
            // A `commit` or `pause` cut by the agent's death leaves a
            // container the record calls running frozen, where no signal
            // could end it.
            if record.state.status == "running" && thaw(&record.id) {
                tracing::info!("thawed container {}: a commit or pause was cut", record.id);
            }
            // A `--rm` container whose exit was recorded but whose
            // removal was cut.
            if record.state.status == "exited" && record.config.auto_remove {
                cut_rm.push(record.id.clone());
            }
        }
        cut_rm.sort();
        cut_rm.dedup();
        cut_rm
    }

    /// Removes the `--rm` containers [`Containers::settle`] found cut,
    /// once networks are reconciled.
    pub(super) fn remove_cut(self: &Arc<Self>, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            me.wait_ready().await;
            for id in ids {
                if let Err(e) = me.remove(&id, true, true).await {
                    tracing::warn!("removing --rm container {id} after a restart failed: {e}");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitors_and_helpers_are_told_by_their_command_line() {
        let id = "a".repeat(64);
        let line = format!("/usr/bin/berth-monitor\0/var/lib/berth/containers/{id}\0");
        assert_eq!(
            parse_cmdline(line.as_bytes()),
            Some((
                true,
                PathBuf::from(format!("/var/lib/berth/containers/{id}"))
            ))
        );
        let line = format!("berth-create\0/r/containers/{id}\0");
        assert_eq!(
            parse_cmdline(line.as_bytes()),
            Some((false, PathBuf::from(format!("/r/containers/{id}"))))
        );
        for other in [
            "/usr/bin/berth-agent\0--root\0/r\0",
            "/usr/bin/berth-monitor\0",
            "sleep\0forever\0",
        ] {
            assert_eq!(parse_cmdline(other.as_bytes()), None, "{other:?}");
        }
        assert!(is_container_id(&id));
        assert!(!is_container_id("abc"));
    }

    #[test]
    fn this_process_is_alive_and_a_missing_one_is_not() {
        assert!(alive(std::process::id() as i32));
        assert!(!alive(i32::MAX));
    }

    #[test]
    fn a_scan_finds_a_monitor_by_its_directory() {
        let root = tempfile::tempdir().expect("a temp dir");
        let containers = root.path().join("containers");
        let id = "b".repeat(64);
        std::fs::create_dir_all(&containers).expect("made");
        // A stand-in monitor: a shell named berth-monitor whose argument
        // is the container's path (here a script that waits for input).
        std::fs::write(containers.join(&id), "read x\n").expect("written");
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sh")
            .arg0("berth-monitor")
            .arg(containers.join(&id))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("sh");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut found = BTreeMap::new();
        while Instant::now() < deadline {
            found = scan(&containers);
            if !found.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let pid = child.id() as i32;
        assert_eq!(found.get(&id).map(|f| f.monitors.clone()), Some(vec![pid]));
        kill_and_wait(&[pid]);
        let _ = child.wait();
        assert!(scan(&containers).is_empty());
    }
}
