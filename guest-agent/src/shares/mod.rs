//! Host folders shared into the VM, and the replay of the host's file
//! events inside it.
//!
//! A 9p or virtiofs mount shows host edits at once, but the guest kernel
//! never learns of them, so inotify watchers in containers stay silent. The
//! host sends each change (Files.Notify) and the agent repeats it here with
//! operations that make the guest kernel emit a matching inotify event
//! while leaving the file's content and times as the host left them, and
//! **without a host file's name ever going missing**: a host program that
//! looks at its file while a replay runs (a linker's `stat` and `chmod`
//! right after writing) must find it. See [`replay`] for the table.
//!
//! "Aside" is a folder the host names in its own state directory (when a
//! share holds it), where a replay puts a second name for a moment, so the
//! watched directory never shows a temporary name; the host ignores
//! everything under it, and it compares each path's state with what it
//! last sent, so these replays do not echo back as new host events.
//!
//! The folders of 9p shares are held open ([`pin`]): without that, a
//! watcher below a share's root and the replay hold different inodes of
//! one folder and the watcher hears nothing.

pub mod pin;
mod queue;
mod replay;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub use queue::replay;
pub use replay::{Event, Kind};

/// The directory that older agents made at each share's root for their
/// aside names; skipped when folders are pinned, and left out of events.
pub use berth_api::FILE_REPLAY_DIR as ASIDE_DIR;

/// A mounted host folder.
#[derive(Debug, Clone, PartialEq)]
pub struct MountedShare {
    /// The VMM's tag (the mount source).
    pub tag: String,
    /// Where it is mounted (the host's own path).
    pub path: PathBuf,
    /// Mounted read-only.
    pub read_only: bool,
    /// virtiofs rather than 9p: the two differ in how a replay can announce
    /// a new file (see [`replay`]).
    pub virtiofs: bool,
}

/// The 9p and virtiofs mounts in this mount namespace.
pub fn mounted() -> Vec<MountedShare> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    parse_mountinfo(&info)
}

fn parse_mountinfo(info: &str) -> Vec<MountedShare> {
    info.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mut r = right.split(' ');
            let fstype = r.next()?;
            if fstype != "9p" && fstype != "virtiofs" {
                return None;
            }
            let source = r.next()?.to_string();
            let fields: Vec<&str> = left.split(' ').collect();
            let path = fields.get(4)?.replace("\\040", " ");
            let read_only = fields.get(5)?.split(',').any(|o| o == "ro");
            Some(MountedShare {
                tag: source,
                path: PathBuf::from(path),
                read_only,
                virtiofs: fstype == "virtiofs",
            })
        })
        .collect()
}

/// The innermost share that holds `path`.
fn owner<'a>(shares: &'a [MountedShare], path: &Path) -> Option<&'a MountedShare> {
    shares
        .iter()
        .filter(|s| path.starts_with(&s.path))
        .max_by_key(|s| s.path.as_os_str().len())
}

/// True when this agent serves in Berth's VM (PID 1 was told its vsock
/// port on the kernel command line).
fn in_vm() -> bool {
    std::fs::read_to_string("/proc/cmdline")
        .is_ok_and(|c| c.split_whitespace().any(|w| w.starts_with("berth.port=")))
}

/// The folders the VM manager shares with the VM, as the agent was told
/// at start ([`set_shared_folders`]).
static SHARED: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();

/// Tells the engine which folders the VM manager shares with the VM
/// (whether or not they are mounted yet), for the sentence refusing a bind
/// source outside them. The agent reads them from PID 1's configuration.
pub fn set_shared_folders(folders: Vec<PathBuf>) {
    let _ = SHARED.set(folders);
}

/// The folders shared with the VM.
fn shared_folders() -> Vec<PathBuf> {
    SHARED.get().cloned().unwrap_or_default()
}

/// Pins the folders of every mounted 9p share, in a thread, once PID 1 has
/// mounted them (the agent calls it as the VM's devices come up).
pub fn pin_mounted_in_background() {
    if !in_vm() {
        return;
    }
    std::thread::spawn(|| pin::pin_shares(&mounted()));
}

/// Checks a bind source before a container is made: in the VM, a host
/// path outside every shared folder is refused (the VM cannot see it, and
/// it would silently become an empty folder there); a folder in a 9p share
/// has its tree pinned before the container's watchers can look at it.
pub fn bind_source(source: &Path) -> Result<()> {
    if !in_vm() {
        return Ok(());
    }
    let shares = mounted();
    match owner(&shares, source) {
        Some(s) if !s.virtiofs => {
            pin::pin_bind_source(source);
            Ok(())
        }
        Some(_) => Ok(()),
        // The VM's own sockets (the Docker API's, for a container that
        // drives Docker) are the VM's to bind.
        None if std::fs::metadata(source)
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type())) =>
        {
            Ok(())
        }
        None => Err(Error::InvalidArgument(refusal(source, &shared_folders()))),
    }
}

/// The sentence refusing a bind source outside `shared`.
fn refusal(source: &Path, shared: &[PathBuf]) -> String {
    let list = if shared.is_empty() {
        "none".to_string()
    } else {
        shared
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "bind source {} is not in a folder shared with the VM (shared: {list}); share its folder with `berth vm start --share PATH` (which replaces the list) or move it into one",
        source.display()
    )
}

/// Checks that `path` is inside one of `shares` (and not a share's root,
/// which a replay must not move).
pub fn check_inside(shares: &[MountedShare], path: &Path) -> Result<()> {
    let clean = path.components().all(|c| {
        matches!(
            c,
            std::path::Component::RootDir | std::path::Component::Normal(_)
        )
    });
    if clean
        && path.is_absolute()
        && shares
            .iter()
            .any(|s| path.starts_with(&s.path) && path != s.path && !s.read_only)
    {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{} is not inside a writable shared folder of this VM",
            path.display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_9p_and_virtiofs_mounts() {
        let info = "22 1 0:20 / /proc rw,nosuid - proc proc rw\n\
                    40 1 0:35 / /home/me\\040too rw,nodev - 9p s0 rw,trans=virtio\n\
                    41 1 0:36 / /srv ro,nodev - virtiofs s1 ro\n";
        let shares = parse_mountinfo(info);
        assert_eq!(shares.len(), 2);
        assert_eq!(shares[0].path, PathBuf::from("/home/me too"));
        assert_eq!(shares[0].tag, "s0");
        assert!(!shares[0].virtiofs);
        assert!(shares[1].read_only);
        assert!(shares[1].virtiofs);
    }

    #[test]
    fn the_refusal_names_the_shared_folders() {
        let shared = [PathBuf::from("/home/me"), PathBuf::from("/srv")];
        let msg = refusal(Path::new("/opt/data"), &shared);
        assert!(
            msg.starts_with("bind source /opt/data is not in a folder shared with the VM (shared: /home/me, /srv);"),
            "{msg}"
        );
        assert!(refusal(Path::new("/x"), &[]).contains("(shared: none)"));
    }

    #[test]
    fn refuses_paths_outside_shares() {
        let s = vec![MountedShare {
            tag: "t".into(),
            path: PathBuf::from("/home/me"),
            read_only: false,
            virtiofs: false,
        }];
        assert!(check_inside(&s, Path::new("/home/me/a")).is_ok());
        for bad in [
            "/home/me",
            "/etc/passwd",
            "/home/me/../../etc/passwd",
            "relative",
        ] {
            assert!(check_inside(&s, Path::new(bad)).is_err(), "{bad}");
        }
    }
}
