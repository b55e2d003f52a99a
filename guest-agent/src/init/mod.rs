//! The VM's PID 1, the agent crate's init mode: stage one of the boot
//! ([`boot`], the small `berth-init` binary) carries on into [`main`] once
//! it has switched to the root that `berth-vm-image`'s system disk
//! provides, and the agent binary does the same when it is itself started
//! as PID 1. It sets the machine up from the kernel command line, then
//! supervises the serving agent. PID 1 must never exit, so every setup
//! failure is reported on the console and the rest still runs.

pub mod boot;
pub mod config;
pub mod host_sync;
pub mod shutdown;
pub mod storage;
pub mod supervise;
pub mod system;

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::Mutex;

/// Where the agent keeps its state in the VM: the data disk.
pub const AGENT_ROOT: &str = "/var/lib/berth";

/// Exists while PID 1 is still bringing up what containers and registries
/// need (the NIC, shared folders, overlayfs, bridges, nftables), which it
/// does once the agent serves.
pub const MODULES_PENDING: &str = "/run/berth-modules-pending";

/// Names the descriptor on which the agent PID 1 started tells it that it
/// serves (one byte, then the descriptor is closed).
pub const SERVING_FD_ENV: &str = "BERTH_SERVING_FD";

/// Exists while PID 1 is still formatting, checking or mounting the data
/// disk, which it does while the agent starts: the agent's own start (its
/// runtime, about a quarter of a second under emulation) does not wait for
/// the disk, only the opening of its stores does.
pub const STORAGE_PENDING: &str = "/run/berth-storage-pending";

/// Blocks until PID 1 has mounted the data disk (or given up on it);
/// returns at once outside the VM. No time limit: a first boot formats the
/// disk and a dirty one is checked, and the agent's stores must not be
/// opened on the tmpfs beneath the mount point meanwhile.
pub fn storage_ready() {
    let pending = Path::new(STORAGE_PENDING);
    while pending.exists() {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Waits (up to 30 s) until PID 1 has brought up what containers and
/// registries need; returns at once outside the VM.
pub async fn modules_ready() {
    let pending = Path::new(MODULES_PENDING);
    for _ in 0..3000 {
        if !pending.exists() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The descriptor PID 1 passed as [`SERVING_FD_ENV`], until
/// [`tell_serving`] uses it.
static SERVING: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Takes the descriptor PID 1 passed as [`SERVING_FD_ENV`], if any, out of
/// reach of the agent's children (no container inherits it). The agent
/// calls it first thing, while it has one thread.
pub fn take_serving_fd() {
    let Some(fd) = std::env::var(SERVING_FD_ENV)
        .ok()
        .and_then(|v| v.parse::<RawFd>().ok())
    else {
        return;
    };
    std::env::remove_var(SERVING_FD_ENV);
    let cloexec = nix::fcntl::FdFlag::FD_CLOEXEC;
    if nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(cloexec)).is_ok() {
        // SAFETY: PID 1 opened this descriptor for the agent alone, and
        // the fcntl just showed that it is open.
        *SERVING.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}

/// Tells PID 1 that the agent serves, so it brings up the devices (once;
/// nothing outside the VM).
pub fn tell_serving() {
    let fd = SERVING.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(fd) = fd {
        let _ = std::fs::File::from(fd).write_all(&[1]);
    }
}

/// True when this process is PID 1 (the VM's init).
pub fn is_pid1() -> bool {
    std::process::id() == 1
}

/// PID 1's whole life.
pub fn main() -> ! {
    supervise::block_signals();
    if std::env::var_os(system::SWITCHED).is_none() {
        eprintln!("berth-init: the agent runs as PID 1 without stage one (berth-init); the image is too old");
    }
    report(
        "mounting kernel file systems",
        system::mount_kernel_filesystems(),
    );
    stamp("on the tmpfs root, kernel file systems mounted");
    let modules = Path::new("/lib/modules/berth");
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let config = config::Config::parse(&cmdline);
    system::set_clock(config.time);
    // The host keeps the clock and resolver in step from here on.
    let (sync_port, dns) = (
        config.port + host_sync::PORT_OFFSET,
        config.net.as_ref().and_then(|n| n.dns),
    );
    std::thread::spawn(move || host_sync::serve(sync_port, dns));
    system::set_hostname();
    std::env::set_var(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    std::env::set_var("HOME", "/root");
    // The agent starts while the data disk is mounted, and the devices
    // come up once it serves; it waits for each before it needs it.
    let _ = std::fs::write(STORAGE_PENDING, "");
    let _ = std::fs::write(MODULES_PENDING, "");
    stamp("set up; starting the agent");
    let (serving, agent) = supervise::start_first_agent(&config);
    match &config.disk {
        Some(disk) => report(
            "mounting the data disk",
            storage::mount_data_disk(disk, Path::new(AGENT_ROOT)),
        ),
        None => eprintln!("berth-init: no data disk; images and containers live in memory"),
    }
    let _ = std::fs::remove_file(STORAGE_PENDING);
    stamp("data disk mounted");
    // The NIC, the shares and the modules containers need come up once the
    // agent serves: under emulation, loading them beside the agent's start
    // slowed it by about a tenth of a second. The agent waits for them
    // before it creates or starts a container or reaches a registry.
    let devices = config.clone();
    std::thread::spawn(move || {
        supervise::wait_serving(serving);
        load_modules(&modules.join("load-devices"), &devices);
        report(
            "bringing the network up",
            storage::network_up(devices.net.as_ref()),
        );
        for share in &devices.shares {
            report("mounting a shared folder", storage::mount_share(share));
        }
        stamp("network up, shares mounted");
        load_modules(&modules.join("load-later"), &devices);
        let _ = std::fs::remove_file(MODULES_PENDING);
        stamp("container modules loaded");
    });
    supervise::run(&config, agent)
}

/// Prints a setup step with the time since the kernel started (the guest's
/// console shows where boot time goes). The boot clock is read directly,
/// so steps before `/proc` is mounted are timed too.
pub(crate) fn stamp(step: &str) {
    let up = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| format!("{:.3}", t.tv_sec() as f64 + t.tv_nsec() as f64 / 1e9))
        .unwrap_or_else(|_| "?".into());
    let now = chrono::Utc::now().format("%H:%M:%S%.3f");
    eprintln!("berth-init: [{up} s, {now}] {step}");
}

/// Loads one of the image's module lists, naming the modules that failed
/// (and timing each one when `config` asks for it).
pub(crate) fn load_modules(list: &Path, config: &config::Config) {
    let failed = system::load_modules(list, config.times_modules());
    if !failed.is_empty() {
        eprintln!(
            "berth-init: modules that did not load: {}",
            failed.join(" ")
        );
    }
}

fn report(what: &str, result: anyhow::Result<()>) {
    if let Err(e) = result {
        eprintln!("berth-init: {what} failed: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::AsRawFd;

    #[test]
    fn the_agent_tells_pid1_once_and_keeps_the_pipe_from_its_children() {
        let (read, write) = nix::unistd::pipe().unwrap();
        let raw = write.as_raw_fd();
        std::mem::forget(write); // owned by SERVING from here on
        std::env::set_var(SERVING_FD_ENV, raw.to_string());
        take_serving_fd();
        assert!(
            std::env::var_os(SERVING_FD_ENV).is_none(),
            "children would see it"
        );
        let flags = nix::fcntl::fcntl(raw, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0, "children would inherit it");
        tell_serving();
        tell_serving();
        let mut said = Vec::new();
        std::fs::File::from(read).read_to_end(&mut said).unwrap();
        assert_eq!(said, [1], "one byte, then the end of the pipe");
    }
}
