//! Network namespaces that outlive processes: each is a file on which a
//! namespace is bind-mounted (as `ip netns` does), so a container's
//! network survives an agent restart and can be joined by its runtime.
//!
//! Entering a namespace changes only the calling thread, so this module
//! does all of it on short-lived threads of its own: the agent's runtime
//! threads never change namespace.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::error::{Error, Result};

/// Makes a new network namespace and pins it at `path`.
pub fn create(path: &Path) -> Result<()> {
    let path = path.to_path_buf();
    on_thread(move || {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::File::create(&path).map_err(|e| e.to_string())?;
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare: {e}"))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| format!("pinning it: {e}"))
    })
    .map_err(|e| Error::Internal(format!("a network namespace cannot be made: {e}")))
}

/// Unpins and deletes the namespace at `path` (it ends once no process
/// is in it).
pub fn remove(path: &Path) {
    let _ = umount2(path, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(path);
}

/// Runs `f` on a thread inside the namespace at `path`.
pub fn run_in<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> std::result::Result<T, String> + Send + 'static,
) -> Result<T> {
    let path: PathBuf = path.to_path_buf();
    on_thread(move || {
        let ns = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns: {e}"))?;
        f()
    })
    .map_err(|e| Error::Internal(format!("work inside a container's network failed: {e}")))
}

fn on_thread<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, String> + Send + 'static,
) -> std::result::Result<T, String> {
    std::thread::spawn(f)
        .join()
        .unwrap_or_else(|_| Err("the namespace thread panicked".into()))
}
