//! `berth-vm`: boots Berth's Linux guest and bridges it to the host. One
//! [`backend::Backend`] trait with a backend per platform (QEMU everywhere;
//! Virtualization.framework on macOS; WSL2 on Windows); the
//! [`machine::Machine`] supervisor that boots, health-checks and restarts
//! the VM; and the host-side bridges for published ports and file events.
//! No GUI dependency: the CLI, the desktop app and tests all use it.

pub mod backend;
pub mod console;
pub mod files;
pub mod host_sync;
pub mod image;
pub mod machine;
pub mod ports;
pub mod qemu;
pub mod relay;
pub mod settings;
pub mod tls;
#[cfg(target_os = "macos")]
pub mod vz;
// Compiled everywhere so its tests run here; only Windows uses it.
pub mod wsl;
