//! Stage one of the VM's boot: `berth-init`, the initramfs's `/init`.
//!
//! The kernel copies every byte of the initramfs into memory before it runs
//! `/init` (about 9 ms per MB under emulation, measured against the floor),
//! so the initramfs holds only this small program and the modules for the
//! disks. The agent, its helpers, the other modules and the tools live on a
//! read-only system disk, read on demand.
//!
//! Stage one loads the disk modules (the transports and ext4 side by side),
//! mounts the system disk, builds a tmpfs root (container runtimes need
//! `pivot_root`, which rootfs refuses) with the system disk's `/usr`, `/lib`
//! and `/lib64` bound read-only and the rest of it copied, moves that onto
//! `/`, and carries on as PID 1 ([`super::main`]), which starts the agent
//! from the system disk. It does not execute the agent to be PID 1: that
//! cost a second start of the 16 MB binary on the boot's critical path
//! (about 120 ms under emulation, against 40 ms to mount the kernel file
//! systems from here), and a small PID 1 is also a small resident one.

use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::mount::{mount, MsFlags};

/// Where stage one mounts the system disk (on rootfs, out of sight once
/// the tmpfs root is in place).
const SYSTEM: &str = "/system";

/// The system disk's folders bound read-only into the tmpfs root; the rest
/// of it (`/etc`, empty mount points) is copied.
const BOUND: &[&str] = &["usr", "lib", "lib64"];

/// Stage one's whole life: ends as PID 1's supervisor. Without the system
/// disk nothing can serve, so a failure powers the VM off at once (the host
/// reports it) instead of leaving it to time out.
pub fn main() -> ! {
    let Err(e) = run();
    eprintln!("berth-init: {e:#}; powering off");
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn run() -> Result<std::convert::Infallible> {
    super::stamp("stage one started");
    for (fstype, target) in [("devtmpfs", "/dev"), ("proc", "/proc")] {
        std::fs::create_dir_all(target)?;
        mount(
            Some(fstype),
            target,
            Some(fstype),
            MsFlags::MS_NOSUID,
            None::<&str>,
        )
        .with_context(|| format!("cannot mount {fstype} on {target}"))?;
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let config = super::config::Config::parse(&cmdline);
    let modules = Path::new("/lib/modules/berth");
    let filesystem = {
        let config = config.clone();
        std::thread::spawn(move || super::load_modules(&modules.join("load-fs"), &config))
    };
    super::load_modules(&modules.join("load-order"), &config);
    let _ = filesystem.join();
    super::stamp("boot modules loaded");

    let device = config.system.unwrap_or_else(|| "/dev/vdb".into());
    if !super::storage::wait_for(&device, 10) {
        bail!("the system disk {} did not appear", device.display());
    }
    std::fs::create_dir_all(SYSTEM)?;
    mount(
        Some(&device),
        SYSTEM,
        Some("ext4"),
        MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .with_context(|| format!("cannot mount the system disk {}", device.display()))?;
    // The agent starts from this disk once stage one is done: reading it
    // in now, beside the root's setup, takes the disk's latency off its
    // start (about 20 ms under emulation).
    read_ahead(Path::new(SYSTEM).join("usr/bin/berth-agent"));

    let new = Path::new("/newroot");
    std::fs::create_dir_all(new)?;
    mount(
        Some("tmpfs"),
        new,
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0755"),
    )
    .context("cannot mount the tmpfs root")?;
    copy_unbound(Path::new(SYSTEM), new)?;
    for dir in BOUND {
        let (from, to) = (Path::new(SYSTEM).join(dir), new.join(dir));
        if !from.is_dir() {
            continue;
        }
        std::fs::create_dir_all(&to)?;
        mount(
            Some(&from),
            &to,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("cannot bind {} into the tmpfs root", from.display()))?;
        mount(
            None::<&str>,
            &to,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .with_context(|| format!("cannot make {} read-only", to.display()))?;
    }
    std::env::set_current_dir(new)?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .context("cannot move the tmpfs root onto /")?;
    nix::unistd::chroot(".").context("cannot chroot into the tmpfs root")?;
    std::env::set_current_dir("/")?;
    std::env::set_var(super::system::SWITCHED, "1");
    super::main()
}

/// Copies the system disk's top level into the tmpfs root, less the
/// [`BOUND`] folders and `lost+found`.
fn copy_unbound(system: &Path, root: &Path) -> Result<()> {
    for entry in std::fs::read_dir(system)? {
        let name = entry?.file_name();
        if name == "lost+found" || BOUND.iter().any(|b| name == *b) {
            continue;
        }
        let from = system.join(&name);
        crate::util::copy::copy_entry(&from, &root.join(&name))
            .with_context(|| format!("cannot copy {}", from.display()))?;
    }
    Ok(())
}

/// Reads `file` into the page cache on a thread of its own.
fn read_ahead(file: std::path::PathBuf) {
    let Ok(f) = std::fs::File::open(file) else {
        return;
    };
    std::thread::spawn(move || {
        let len = f.metadata().map(|m| m.len() as i64).unwrap_or(0);
        let _ = nix::fcntl::posix_fadvise(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            0,
            len,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
        );
    });
}
