//! Container cgroups on v1 (and hybrid) and v2 hosts: where a container's
//! cgroup lives, its resource use, its OOM-kill count, freezing, and
//! removal. youki's `libcgroups` does the controller work (it is what
//! `libcontainer` applies limits with); this module only names Berth's
//! parent (`/berth/<id>`), reads the few files `libcgroups` does not
//! expose (the OOM-kill counter), and removes a container's cgroup with
//! plain file operations (the monitor must not carry libcgroups).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use libcgroups::common::{
    create_cgroup_manager, get_cgroup_setup, AnyCgroupManager, CgroupConfig, CgroupManager,
    CgroupSetup, ControllerOpt, FreezerState,
};
pub use libcgroups::stats::Stats;

use crate::error::{Error, Result};

const ROOT: &str = "/sys/fs/cgroup";

/// The parent of every container's cgroup.
pub const PARENT: &str = "berth";

/// The OCI `cgroupsPath` of a container.
pub fn path_of(id: &str) -> String {
    format!("/{PARENT}/{id}")
}

/// True when the host uses the unified (v2) hierarchy only.
pub fn is_v2() -> bool {
    matches!(get_cgroup_setup(), Ok(CgroupSetup::Unified))
}

/// "1" or "2", for `info`.
pub fn version() -> &'static str {
    if is_v2() {
        "2"
    } else {
        "1"
    }
}

/// The cgroup managers [`Cgroup::stats`] has opened, by container id.
static OPENED: std::sync::LazyLock<std::sync::Mutex<HashMap<String, AnyCgroupManager>>> =
    std::sync::LazyLock::new(Default::default);
/// Beyond this many, the kept managers are dropped (and opened again as
/// needed): removed containers' entries never outgrow it.
const OPENED_MAX: usize = 512;

/// A handle on one container's cgroup.
pub struct Cgroup {
    id: String,
}

impl Cgroup {
    /// The cgroup of container `id` (which may not exist).
    pub fn of(id: &str) -> Self {
        Cgroup { id: id.to_string() }
    }

    fn manager(&self) -> Result<AnyCgroupManager> {
        create_cgroup_manager(CgroupConfig {
            cgroup_path: PathBuf::from(path_of(&self.id)),
            systemd_cgroup: false,
            container_name: self.id.clone(),
        })
        .map_err(|e| Error::Internal(format!("the cgroup of {} cannot be opened: {e}", self.id)))
    }

    /// How many times the kernel's OOM killer killed a process here.
    pub fn oom_kills(&self) -> u64 {
        let file = if is_v2() {
            Path::new(ROOT)
                .join(PARENT)
                .join(&self.id)
                .join("memory.events")
        } else {
            Path::new(ROOT)
                .join("memory")
                .join(PARENT)
                .join(&self.id)
                .join("memory.oom_control")
        };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.strip_prefix("oom_kill "))
            .filter_map(|v| v.trim().parse::<u64>().ok())
            .next()
            .unwrap_or(0)
    }

    /// Resource use now. The cgroup's manager is kept between calls (see
    /// [`OPENED`]): making one parses the mount table, which with many
    /// containers costs more than reading the statistics, once a second
    /// for every stats stream.
    pub fn stats(&self) -> Result<Stats> {
        let mut opened = OPENED.lock().unwrap_or_else(|p| p.into_inner());
        if !opened.contains_key(&self.id) && opened.len() >= OPENED_MAX {
            opened.clear();
        }
        let read = match opened.entry(self.id.clone()) {
            std::collections::hash_map::Entry::Occupied(m) => m.get().stats(),
            std::collections::hash_map::Entry::Vacant(v) => v.insert(self.manager()?).stats(),
        };
        read.map_err(|e| {
            // Gone (the container stopped) or unreadable: the next reading
            // opens the cgroup again.
            opened.remove(&self.id);
            Error::Internal(format!("reading the cgroup of {} failed: {e}", self.id))
        })
    }

    /// Every process in the cgroup, as host pids.
    pub fn pids(&self) -> Result<Vec<i32>> {
        Ok(self
            .manager()?
            .get_all_pids()
            .map_err(|e| {
                Error::Internal(format!("listing the processes of {} failed: {e}", self.id))
            })?
            .into_iter()
            .map(|p| p.as_raw())
            .collect())
    }

    /// Applies `resources` (OCI's shape) to the cgroup of a running
    /// container, as `update` does; controllers `resources` leaves out
    /// keep their settings.
    pub fn set(&self, resources: &oci_spec::runtime::LinuxResources) -> Result<()> {
        self.manager()?
            .apply(&ControllerOpt {
                resources,
                disable_oom_killer: false,
                oom_score_adj: None,
                freezer_state: None,
            })
            .map_err(|e| {
                Error::InvalidArgument(format!(
                    "the new limits of {} cannot be applied: {e}",
                    self.id
                ))
            })
    }

    /// Freezes (pause) or thaws (unpause) every process.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        let state = if frozen {
            FreezerState::Frozen
        } else {
            FreezerState::Thawed
        };
        self.manager()?
            .freeze(state)
            .map_err(|e| Error::Internal(format!("the freezer of {} failed: {e}", self.id)))
    }

    /// This cgroup's directories that exist: one per v1 hierarchy, or
    /// the one v2 directory.
    fn dirs(&self) -> Vec<PathBuf> {
        let unified = Path::new(ROOT).join(PARENT).join(&self.id);
        if unified.is_dir() {
            return vec![unified];
        }
        let Ok(rd) = std::fs::read_dir(ROOT) else {
            return Vec::new();
        };
        rd.flatten()
            // cpu and cpuacct are links to cpu,cpuacct: visit it once.
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path().join(PARENT).join(&self.id))
            .filter(|d| d.is_dir())
            .collect()
    }

    /// Removes the cgroup from every hierarchy, first killing any process
    /// still in it (a run whose monitor was killed). Plain file work: a
    /// libcgroups manager parses the mount table once per controller,
    /// which costs milliseconds at every container's exit.
    pub fn remove(&self) {
        let dirs = self.dirs();
        if dirs.is_empty() {
            return;
        }
        for d in &dirs {
            // A frozen process cannot die.
            let _ = std::fs::write(d.join("freezer.state"), "THAWED");
            let _ = std::fs::write(d.join("cgroup.freeze"), "0");
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        for d in dirs {
            // Processes leave the cgroup a moment after they die.
            for _ in 0..200 {
                match std::fs::remove_dir(&d) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(5))
                    }
                    _ => break,
                }
            }
        }
    }
}
