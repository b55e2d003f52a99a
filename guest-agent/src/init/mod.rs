//! The agent as the VM's PID 1 (`/init` in the initramfs that
//! `berth-vm-image` builds): sets the machine up from the kernel command
//! line, then supervises the serving agent. PID 1 must never exit, so every
//! setup failure is reported on the console and the rest still runs.

pub mod config;
pub mod storage;
pub mod supervise;
pub mod system;

use std::path::Path;

/// Where the agent keeps its state in the VM: the data disk.
pub const AGENT_ROOT: &str = "/var/lib/berth";

/// True when this process is PID 1 (the VM's init).
pub fn is_pid1() -> bool {
    std::process::id() == 1
}

/// PID 1's whole life.
pub fn main() -> ! {
    if std::env::var_os(system::SWITCHED).is_none() {
        if let Err(e) = system::leave_rootfs() {
            eprintln!("berth-init: staying on rootfs ({e:#}); containers may fail to pivot_root");
        }
    }
    let started = std::time::Instant::now();
    report(
        "mounting kernel file systems",
        system::mount_kernel_filesystems(),
    );
    let failed = system::load_modules(Path::new("/lib/modules/berth"));
    if !failed.is_empty() {
        eprintln!(
            "berth-init: modules that did not load: {}",
            failed.join(" ")
        );
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let config = config::Config::parse(&cmdline);
    system::set_clock(config.time);
    system::set_hostname();
    std::env::set_var(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    std::env::set_var("HOME", "/root");
    report(
        "bringing the network up",
        storage::network_up(config.net.as_ref()),
    );
    match &config.disk {
        Some(disk) => report(
            "mounting the data disk",
            storage::mount_data_disk(disk, Path::new(AGENT_ROOT)),
        ),
        None => eprintln!("berth-init: no data disk; images and containers live in memory"),
    }
    for share in &config.shares {
        report("mounting a shared folder", storage::mount_share(share));
    }
    eprintln!(
        "berth-init: set up in {} ms; starting the agent",
        started.elapsed().as_millis()
    );
    supervise::run(&config)
}

fn report(what: &str, result: anyhow::Result<()>) {
    if let Err(e) = result {
        eprintln!("berth-init: {what} failed: {e:#}");
    }
}
