//! Host folders shared into the VM, and the replay of the host's file
//! events inside it.
//!
//! A 9p or virtiofs mount shows host edits at once, but the guest kernel
//! never learns of them, so inotify watchers in containers stay silent. The
//! host sends each change (Files.Notify) and the agent repeats it here with
//! operations that make the guest kernel emit the matching inotify event
//! while leaving the file's content and times as the host left them:
//!
//! | host event | guest replay | watcher sees |
//! |---|---|---|
//! | modify | the last byte written back as it is, then the old times back | IN_MODIFY (and IN_ATTRIB) |
//! | create (file) | move aside, hard-link back, unlink the aside name | IN_MOVED_FROM, IN_CREATE |
//! | create (dir) | nothing (see below) | nothing |
//! | delete | create the name exclusively, then remove it | IN_CREATE, IN_DELETE |
//! | rename A→B | rename B→A, then A→B | IN_MOVED_FROM/TO (twice) |
//! | attrib | `utimensat` with the current times | IN_ATTRIB |
//!
//! These touch the host's files, so each is careful not to race the host:
//! a modify or create is replayed only while the file's size and time are
//! still what the host sent (a newer change brings its own event), a modify
//! never truncates, and a new directory is not replayed at all, since
//! moving a folder a host program is filling could break that program.
//!
//! "Aside" is a directory named [`ASIDE_DIR`] at the share's root, so the
//! watched directory never shows a temporary name; the host ignores
//! everything under it, and it compares each path's state with what it last
//! sent, so these replays do not echo back as new host events.

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The directory, at each share's root, where a replay puts a file for a
/// moment; the host ignores events under it.
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
            })
        })
        .collect()
}

/// What happened on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A file or directory appeared.
    Create,
    /// A file's content changed.
    Modify,
    /// A file or directory went away.
    Delete,
    /// A file or directory moved.
    Rename,
    /// Permissions, owner or times changed.
    Attrib,
}

impl std::str::FromStr for Kind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Kind> {
        Ok(match s {
            "create" => Kind::Create,
            "modify" => Kind::Modify,
            "delete" => Kind::Delete,
            "rename" => Kind::Rename,
            "attrib" => Kind::Attrib,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "'{other}' is not a file event: use create, modify, delete, rename or attrib"
                )))
            }
        })
    }
}

/// One host change to repeat in the guest.
#[derive(Debug, Clone)]
pub struct Event {
    /// What happened.
    pub kind: Kind,
    /// Where (an absolute path inside a share).
    pub path: PathBuf,
    /// The new path of a rename.
    pub to: Option<PathBuf>,
    /// Whether it is a directory.
    pub is_dir: bool,
    /// The file's size and modification time (ns) as the host saw them,
    /// when it sent them.
    pub seen: Option<(u64, i64)>,
}

impl Event {
    /// True when the file still is as the host saw it (or the host did not
    /// say): a replay of an older state would race a newer host write.
    fn still_matches(&self, meta: &std::fs::Metadata) -> bool {
        match self.seen {
            None => true,
            Some((size, mtime_ns)) => {
                meta.len() == size && meta.mtime() * 1_000_000_000 + meta.mtime_nsec() == mtime_ns
            }
        }
    }
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

/// Repeats one host event in the guest. A replay whose path no longer
/// matches (the host changed it again meanwhile) does nothing: the next
/// event brings the guest up to date.
pub fn replay(shares: &[MountedShare], ev: &Event) -> Result<()> {
    check_inside(shares, &ev.path)?;
    if let Some(to) = &ev.to {
        check_inside(shares, to)?;
    }
    let io = |what: &'static str| move |e: std::io::Error| Error::io(what, e);
    match ev.kind {
        Kind::Modify => {
            let Ok(f) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&ev.path)
            else {
                return Ok(());
            };
            let meta = f.metadata().map_err(io("reading a shared file's state"))?;
            if !meta.is_file() || !ev.still_matches(&meta) || meta.len() == 0 {
                return Ok(());
            }
            // The last byte, written back as it is: the content stays, the
            // kernel reports IN_MODIFY, and an append racing this keeps
            // every byte it wrote.
            let at = meta.len() - 1;
            let mut byte = [0u8; 1];
            f.read_exact_at(&mut byte, at)
                .map_err(io("replaying a change to a shared file"))?;
            f.write_all_at(&byte, at)
                .map_err(io("replaying a change to a shared file"))?;
            if f.metadata().is_ok_and(|m| m.len() == meta.len()) {
                restore_times(&f, &meta);
            }
        }
        Kind::Attrib => {
            if let Ok(f) = std::fs::File::open(&ev.path) {
                if let Ok(meta) = f.metadata() {
                    restore_times(&f, &meta);
                }
            }
        }
        Kind::Create => {
            // A new directory is not replayed: moving a folder the host may
            // be filling this very moment could break the host's program.
            let Ok(meta) = std::fs::symlink_metadata(&ev.path) else {
                return Ok(());
            };
            if meta.is_dir() || !ev.still_matches(&meta) {
                return Ok(());
            }
            let aside = aside_name(shares, &ev.path)
                .map_err(io("making the replay directory of a share"))?;
            std::fs::rename(&ev.path, &aside).map_err(io("replaying a new shared file"))?;
            match std::fs::hard_link(&aside, &ev.path) {
                // Linked back, or the host made a new file there meanwhile
                // (then the one aside is stale): either way it goes.
                Ok(()) => {
                    std::fs::remove_file(&aside).map_err(io("replaying a new shared file"))?
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let _ = std::fs::remove_file(&aside);
                }
                // No hard links on this file system: move it back unless the
                // name was taken meanwhile.
                Err(_) => {
                    if std::fs::symlink_metadata(&ev.path).is_err() {
                        std::fs::rename(&aside, &ev.path)
                            .map_err(io("replaying a new shared file"))?;
                    } else {
                        let _ = std::fs::remove_file(&aside);
                    }
                }
            }
        }
        Kind::Delete => {
            if std::fs::symlink_metadata(&ev.path).is_ok() {
                return Ok(()); // it is back already
            }
            if ev.is_dir {
                if std::fs::create_dir(&ev.path).is_ok() {
                    let _ = std::fs::remove_dir(&ev.path);
                }
            } else if let Ok(f) = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&ev.path)
            {
                // Remove the name only while it is still this empty file.
                let ours = f.metadata().map(|m| m.ino()).ok();
                let there = std::fs::symlink_metadata(&ev.path).ok();
                if there.is_some_and(|m| Some(m.ino()) == ours && m.len() == 0) {
                    let _ = std::fs::remove_file(&ev.path);
                }
            }
        }
        Kind::Rename => {
            let Some(to) = &ev.to else {
                return Err(Error::InvalidArgument(
                    "a rename event needs to_path".into(),
                ));
            };
            if std::fs::symlink_metadata(to).is_err() || std::fs::symlink_metadata(&ev.path).is_ok()
            {
                return Ok(());
            }
            std::fs::rename(to, &ev.path).map_err(io("replaying a shared rename"))?;
            std::fs::rename(&ev.path, to).map_err(io("replaying a shared rename"))?;
        }
    }
    Ok(())
}

/// A free name in the share's aside directory (made when missing).
fn aside_name(shares: &[MountedShare], path: &Path) -> std::io::Result<PathBuf> {
    let root = shares
        .iter()
        .filter(|s| path.starts_with(&s.path))
        .max_by_key(|s| s.path.as_os_str().len())
        .map(|s| s.path.join(ASIDE_DIR))
        .ok_or_else(|| std::io::Error::other("not in a share"))?;
    match std::fs::create_dir(&root) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(root.join(format!("{}-{n}", std::process::id())))
}

/// Puts the access and modification times of `meta` back on `f`.
fn restore_times(f: &std::fs::File, meta: &std::fs::Metadata) {
    let times = [
        libc::timespec {
            tv_sec: meta.atime() as libc::time_t,
            tv_nsec: meta.atime_nsec() as libc::c_long,
        },
        libc::timespec {
            tv_sec: meta.mtime() as libc::time_t,
            tv_nsec: meta.mtime_nsec() as libc::c_long,
        },
    ];
    // SAFETY: a valid descriptor and two valid timespecs.
    unsafe { libc::futimens(std::os::fd::AsRawFd::as_raw_fd(f), times.as_ptr()) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn finds_9p_and_virtiofs_mounts() {
        let info = "22 1 0:20 / /proc rw,nosuid - proc proc rw\n\
                    40 1 0:35 / /home/me\\040too rw,nodev - 9p s0 rw,trans=virtio\n\
                    41 1 0:36 / /srv ro,nodev - virtiofs s1 ro\n";
        let shares = parse_mountinfo(info);
        assert_eq!(shares.len(), 2);
        assert_eq!(shares[0].path, PathBuf::from("/home/me too"));
        assert_eq!(shares[0].tag, "s0");
        assert!(shares[1].read_only);
    }

    fn share(dir: &Path) -> Vec<MountedShare> {
        vec![MountedShare {
            tag: "t".into(),
            path: dir.to_path_buf(),
            read_only: false,
        }]
    }

    #[test]
    fn a_stale_event_is_not_replayed_and_a_modify_never_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let s = share(dir.path());
        let f = dir.path().join("log.txt");
        std::fs::write(&f, "one\n").unwrap();
        let seen = std::fs::metadata(&f).unwrap();
        let seen = Some((seen.len(), seen.mtime() * 1_000_000_000 + seen.mtime_nsec()));
        // The host appends after sending the event: the replay must leave
        // the new bytes (and the new time) alone.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::OpenOptions::new()
            .append(true)
            .open(&f)
            .unwrap()
            .write_all(b"two\n")
            .unwrap();
        let before = std::fs::metadata(&f).unwrap();
        for kind in [Kind::Modify, Kind::Create] {
            let ev = Event {
                kind,
                path: f.clone(),
                to: None,
                is_dir: false,
                seen,
            };
            replay(&s, &ev).unwrap();
        }
        let after = std::fs::metadata(&f).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "one\ntwo\n");
        assert_eq!(
            (before.ino(), before.mtime_nsec()),
            (after.ino(), after.mtime_nsec())
        );
    }

    #[test]
    fn refuses_paths_outside_shares() {
        let s = share(Path::new("/home/me"));
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

    #[test]
    fn replays_leave_content_and_times_alone() {
        let dir = tempfile::tempdir().unwrap();
        let s = share(dir.path());
        let f = dir.path().join("a.txt");
        std::fs::write(&f, "hello").unwrap();
        let before = std::fs::metadata(&f).unwrap();
        let ev = |kind, path: &Path, to: Option<PathBuf>| Event {
            kind,
            path: path.to_path_buf(),
            to,
            is_dir: false,
            seen: None,
        };
        replay(&s, &ev(Kind::Modify, &f, None)).unwrap();
        replay(&s, &ev(Kind::Create, &f, None)).unwrap();
        let after = std::fs::metadata(&f).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "hello");
        assert_eq!(before.mtime_nsec(), after.mtime_nsec());
        assert_eq!(before.ino(), after.ino(), "a create replay keeps the inode");
        let gone = dir.path().join("gone");
        replay(&s, &ev(Kind::Delete, &gone, None)).unwrap();
        assert!(!gone.exists());
        let b = dir.path().join("b.txt");
        std::fs::rename(&f, &b).unwrap();
        replay(&s, &ev(Kind::Rename, &f, Some(b.clone()))).unwrap();
        assert!(b.exists() && !f.exists());
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("x"), "x").unwrap();
        replay(
            &s,
            &Event {
                kind: Kind::Create,
                path: sub.clone(),
                to: None,
                is_dir: true,
                seen: None,
            },
        )
        .unwrap();
        let sub_after = std::fs::metadata(&sub).unwrap();
        assert_eq!(sub_after.ino(), std::fs::metadata(&sub).unwrap().ino());
        assert_eq!(std::fs::read_to_string(sub.join("x")).unwrap(), "x");
        let aside: Vec<_> = std::fs::read_dir(dir.path().join(ASIDE_DIR))
            .unwrap()
            .collect();
        assert!(aside.is_empty(), "{aside:?}");
    }
}
