//! PID 1's one-time setup of the VM: the kernel file systems and cgroup v2
//! with its controllers, kernel modules, and the clock.

use std::ffi::CString;
use std::path::Path;

use anyhow::{Context, Result};
use nix::mount::{mount, MsFlags};

/// Set in the environment once PID 1 runs from the tmpfs root (stage one,
/// [`super::boot`], built it).
pub const SWITCHED: &str = "BERTH_INIT_SWITCHED";

/// Mounts proc, sys, dev, devpts, shm, run, tmp and cgroup2, and hands
/// cgroup v2's controllers down to child groups.
///
/// cgroup2 is mounted with `favordynmods` where the kernel has it (6.0 and
/// later): without it, the first move of a process into a cgroup after a
/// quiet spell waits for an RCU grace period (10 to 30 ms measured on a
/// 2-vCPU machine), and every container start makes such a move. With it,
/// forks and exits take a slightly slower path instead.
pub fn mount_kernel_filesystems() -> Result<()> {
    let nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let mounts: &[(&str, &str, &str, MsFlags, Option<&str>)] = &[
        ("proc", "/proc", "proc", nosuid, None),
        ("sysfs", "/sys", "sysfs", nosuid, None),
        (
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MsFlags::MS_NOSUID,
            Some("mode=0755"),
        ),
        (
            "devpts",
            "/dev/pts",
            "devpts",
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("gid=5,mode=620,ptmxmode=666"),
        ),
        (
            "shm",
            "/dev/shm",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=1777"),
        ),
        (
            "tmpfs",
            "/run",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755"),
        ),
        (
            "tmpfs",
            "/tmp",
            "tmpfs",
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=1777"),
        ),
    ];
    for (src, target, fstype, flags, data) in mounts {
        std::fs::create_dir_all(target)?;
        mount(Some(*src), *target, Some(*fstype), *flags, *data)
            .with_context(|| format!("cannot mount {fstype} on {target}"))?;
    }
    let cgroup = "/sys/fs/cgroup";
    std::fs::create_dir_all(cgroup)?;
    mount(
        Some("cgroup2"),
        cgroup,
        Some("cgroup2"),
        nosuid,
        Some("nsdelegate,favordynmods"),
    )
    .or_else(|_| {
        mount(
            Some("cgroup2"),
            cgroup,
            Some("cgroup2"),
            nosuid,
            Some("nsdelegate"),
        )
    })
    .context("cannot mount cgroup2 on /sys/fs/cgroup")?;
    let _ = std::os::unix::fs::symlink("/proc/self/fd", "/dev/fd");
    let controllers =
        std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
    let enable: Vec<String> = controllers
        .split_whitespace()
        .map(|c| format!("+{c}"))
        .collect();
    if !enable.is_empty() {
        std::fs::write("/sys/fs/cgroup/cgroup.subtree_control", enable.join(" "))
            .context("cannot enable cgroup v2 controllers")?;
    }
    Ok(())
}

/// Loads the modules listed, in order, in the file `list` (names of `.ko`
/// files beside it) with `finit_module`. A module already loaded (or built
/// in) is fine; any other failure is logged and the rest still load.
/// `timed` prints each module's load time.
pub fn load_modules(list: &Path, timed: bool) -> Vec<String> {
    let dir = list.parent().unwrap_or(Path::new("/"));
    let order = std::fs::read_to_string(list).unwrap_or_default();
    let mut failed = Vec::new();
    for name in order.lines().filter(|l| !l.is_empty()) {
        let started = std::time::Instant::now();
        let path = dir.join(format!("{name}.ko"));
        let loaded = std::fs::File::open(&path)
            .map_err(|e| nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
            .and_then(|f| {
                nix::kmod::finit_module(
                    &f,
                    &CString::default(),
                    nix::kmod::ModuleInitFlags::empty(),
                )
            });
        if timed {
            eprintln!("berth-init: {name} loaded in {:?}", started.elapsed());
        }
        match loaded {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => {
                eprintln!("berth-init: cannot load {name}: {e}");
                failed.push(name.to_string());
            }
        }
    }
    failed
}

/// Sets the clock to the host's launch time when the RTC left it behind.
pub fn set_clock(host_time: Option<f64>) {
    let Some(t) = host_time else { return };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    if now + 1.0 < t {
        let tv = libc::timespec {
            tv_sec: t as libc::time_t,
            tv_nsec: ((t.fract()) * 1e9) as libc::c_long,
        };
        // SAFETY: clock_settime reads a valid timespec.
        unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &tv) };
    }
}

/// The host name the VM answers to.
pub fn set_hostname() {
    let _ = nix::unistd::sethostname("berth");
}
