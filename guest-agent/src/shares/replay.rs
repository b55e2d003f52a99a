//! One host file event, repeated in the guest so that its kernel tells the
//! inotify watchers in containers.
//!
//! | host event | guest replay | watcher sees |
//! |---|---|---|
//! | modify | the last byte written back as it is, then the old times back | IN_MODIFY (and IN_ATTRIB) |
//! | create (file), 9p | a second name aside, renamed over the name, then unlinked | IN_MOVED_TO |
//! | create (file), virtiofs or no aside folder | as a modify (as an attrib when empty) | IN_MODIFY (IN_ATTRIB) |
//! | create (dir) | pinned (see [`pin`](super::pin)), then its times set as they are | IN_ATTRIB |
//! | delete | unpinned; the name created exclusively, then removed | IN_CREATE, IN_DELETE |
//! | rename A→B (file) | a delete of A, then a create of B | IN_CREATE A, IN_DELETE A, then B as a create |
//! | rename A→B (dir) | rename B→A, then A→B | IN_MOVED_FROM/TO (twice) |
//! | attrib | `futimens` with the current times | IN_ATTRIB |
//!
//! A new file is announced without its name ever going missing on the
//! host. A 9p mount with `cache=none` gives every lookup its own guest
//! inode, so a rename of a second (aside) name over the first is, for the
//! guest kernel, a move of one file over another, and it reports
//! IN_MOVED_TO; the host's `rename(2)` between two links of one file
//! changes nothing. virtiofs keeps one guest inode per host file, and the
//! kernel returns early from such a rename without an event, so there a
//! new file is announced as a change. (Watchers take a move into the
//! directory as a new file: it is what an editor's save-by-rename makes.)
//!
//! The aside folder is one the host names (a `scratch` event): a folder in
//! Berth's own state directory, when a share holds it (the home folder,
//! shared by default, does), which the host leaves out of its events. A
//! share without one gets no aside folder at all, and its new files are
//! announced as changes: nothing of the replay's ever shows in a user's
//! folder.
//!
//! The times a replay puts back reach the host cut to the whole second
//! (the guest kernel truncates them to the 9p superblock's granularity);
//! the host's side sees that cut, puts the exact time back and sends
//! nothing (`berth_vm::files`).
//!
//! These touch the host's files, so each is careful not to race the host:
//! a replay acts only while the file's size and time are still what the
//! host sent (a newer change brings its own event), a modify never
//! truncates, a rename over the name happens only while the name still is
//! the same file, and a new directory is never moved, since moving a
//! folder a host program is filling could break that program. A folder
//! rename is the one replay that moves a host name for a moment: a folder
//! cannot have a second name.

use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::{check_inside, owner, pin, MountedShare};
use crate::error::{Error, Result};

/// The aside folder of each share (by its root) that the host named.
static SCRATCH: std::sync::Mutex<std::collections::BTreeMap<PathBuf, PathBuf>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn scratch() -> std::sync::MutexGuard<'static, std::collections::BTreeMap<PathBuf, PathBuf>> {
    SCRATCH.lock().unwrap_or_else(|e| e.into_inner())
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
    /// Not a change: the host names the folder (in the share, where users
    /// never look) that replays of this share may use as their aside
    /// directory.
    Scratch,
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
            "scratch" => Kind::Scratch,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "'{other}' is not a file event: use create, modify, delete, rename, attrib or scratch"
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

/// True when the file still is as the host saw it (`seen`, or the host did
/// not say): a replay of an older state would race a newer host write.
fn still_matches(seen: Option<(u64, i64)>, meta: &std::fs::Metadata) -> bool {
    match seen {
        None => true,
        Some((size, mtime_ns)) => {
            meta.len() == size && meta.mtime() * 1_000_000_000 + meta.mtime_nsec() == mtime_ns
        }
    }
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::io(what, e)
}

/// Repeats one host event in the guest. A replay whose path no longer
/// matches (the host changed it again meanwhile) does nothing: the next
/// event brings the guest up to date.
pub fn replay(shares: &[MountedShare], ev: &Event) -> Result<()> {
    check_inside(shares, &ev.path)?;
    if let Some(to) = &ev.to {
        check_inside(shares, to)?;
    }
    match ev.kind {
        Kind::Scratch => {
            let share = owner(shares, &ev.path).map(|s| s.path.clone());
            if let Some(share) = share {
                std::fs::create_dir_all(&ev.path).map_err(io("making a share's replay folder"))?;
                scratch().insert(share, ev.path.clone());
            }
            Ok(())
        }
        Kind::Modify => match open_for_replay(&ev.path)? {
            Some((f, meta)) => rewrite_last_byte(&f, &meta, ev.seen),
            None => Ok(()),
        },
        Kind::Attrib => {
            if let Ok(f) = std::fs::File::open(&ev.path) {
                if let Ok(meta) = f.metadata() {
                    restore_times(&f, &meta);
                }
            }
            Ok(())
        }
        // Announced as a change: no need to look first (each look is a
        // round trip, which a branch switch's thousand files add up).
        Kind::Create if !ev.is_dir && !has_aside(shares, &ev.path) => {
            announce_as_change(&ev.path, ev.seen)
        }
        Kind::Create => {
            let Ok(meta) = std::fs::symlink_metadata(&ev.path) else {
                return Ok(());
            };
            if meta.is_dir() {
                return announce_new_dir(shares, &ev.path);
            }
            if !still_matches(ev.seen, &meta) {
                return Ok(());
            }
            announce_new(shares, &ev.path, ev.seen)
        }
        Kind::Delete => {
            // A pinned dentry would keep the name alive in the guest.
            pin::unpin_tree(&ev.path);
            announce_gone(&ev.path, ev.is_dir);
            Ok(())
        }
        Kind::Rename => {
            let Some(to) = &ev.to else {
                return Err(Error::InvalidArgument(
                    "a rename event needs to_path".into(),
                ));
            };
            let Ok(meta) = std::fs::symlink_metadata(to) else {
                return Ok(());
            };
            if meta.is_dir() {
                // The folders pinned under the old name are stale; the
                // new name's are pinned once the guest has seen the move.
                pin::unpin_tree(&ev.path);
            }
            if std::fs::symlink_metadata(&ev.path).is_ok() {
                return Ok(());
            }
            if meta.is_dir() {
                let moved = std::fs::rename(to, &ev.path)
                    .and_then(|()| std::fs::rename(&ev.path, to))
                    .map_err(io("replaying a shared rename"));
                if !owner(shares, to).is_some_and(|s| s.virtiofs) {
                    pin::pin_tree(to);
                }
                return moved;
            }
            announce_gone(&ev.path, false);
            announce_new(shares, to, None)
        }
    }
}

/// `path` opened for reading and writing, with its state; `None` when it
/// is gone (or cannot be opened).
fn open_for_replay(path: &Path) -> Result<Option<(std::fs::File, std::fs::Metadata)>> {
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    else {
        return Ok(None);
    };
    let meta = f.metadata().map_err(io("reading a shared file's state"))?;
    Ok(Some((f, meta)))
}

/// The modify replay: the last byte written back as it is, so the content
/// stays, the kernel reports IN_MODIFY, and an append racing this keeps
/// every byte it wrote; then the host's times go back. Only for a
/// non-empty regular file still as the host saw it.
fn rewrite_last_byte(
    f: &std::fs::File,
    meta: &std::fs::Metadata,
    seen: Option<(u64, i64)>,
) -> Result<()> {
    if !meta.is_file() || !still_matches(seen, meta) || meta.len() == 0 {
        return Ok(());
    }
    let at = meta.len() - 1;
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, at)
        .map_err(io("replaying a change to a shared file"))?;
    f.write_all_at(&byte, at)
        .map_err(io("replaying a change to a shared file"))?;
    if f.metadata().is_ok_and(|m| m.len() == meta.len()) {
        restore_times(f, meta);
    }
    Ok(())
}

/// Makes the guest report the file at `path` as new, without the name ever
/// going missing on the host (see the module doc for why this works on 9p
/// and not on virtiofs).
fn announce_new(shares: &[MountedShare], path: &Path, seen: Option<(u64, i64)>) -> Result<()> {
    let Some(share) = owner(shares, path) else {
        return Ok(());
    };
    if share.virtiofs {
        return announce_as_change(path, seen);
    }
    let Some(aside) = aside_name(share) else {
        return announce_as_change(path, seen);
    };
    if std::fs::hard_link(path, &aside).is_err() {
        // Gone meanwhile, or a file system without hard links.
        return announce_as_change(path, seen);
    }
    let same_file =
        |a: &std::fs::Metadata, b: &std::fs::Metadata| (a.dev(), a.ino()) == (b.dev(), b.ino());
    let moved = match (
        std::fs::symlink_metadata(&aside),
        std::fs::symlink_metadata(path),
    ) {
        // Only over the same file: a name the host gave a new file
        // meanwhile keeps that file.
        (Ok(a), Ok(p)) if same_file(&a, &p) => std::fs::rename(&aside, path),
        _ => Ok(()),
    };
    // On the host the aside name is still there (renaming between two links
    // of one file does nothing); on a local file system too.
    let _ = std::fs::remove_file(&aside);
    moved.map_err(io("replaying a new shared file"))
}

/// A new file announced as a change of it: IN_MODIFY, or IN_ATTRIB for an
/// empty file.
fn announce_as_change(path: &Path, seen: Option<(u64, i64)>) -> Result<()> {
    if let Some((f, meta)) = open_for_replay(path)? {
        if meta.is_file() && meta.len() > 0 {
            return rewrite_last_byte(&f, &meta, seen);
        }
        restore_times(&f, &meta);
        return Ok(());
    }
    // Read-only: a file the guest may not write can still have its times
    // set.
    if let Ok(f) = std::fs::File::open(path) {
        if let Ok(meta) = f.metadata() {
            restore_times(&f, &meta);
        }
    }
    Ok(())
}

/// Makes the guest report `path` as deleted: the name is created
/// exclusively (it must still be free) and removed again while it is still
/// that empty file.
fn announce_gone(path: &Path, is_dir: bool) {
    if std::fs::symlink_metadata(path).is_ok() {
        return; // it is back already
    }
    if is_dir {
        if std::fs::create_dir(path).is_ok() {
            let _ = std::fs::remove_dir(path);
        }
    } else if let Ok(f) = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        let ours = f.metadata().map(|m| m.ino()).ok();
        let there = std::fs::symlink_metadata(path).ok();
        if there.is_some_and(|m| Some(m.ino()) == ours && m.len() == 0) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// True when the share holding `path` has an aside folder (a 9p share
/// whose aside folder the host named).
fn has_aside(shares: &[MountedShare], path: &Path) -> bool {
    owner(shares, path).is_some_and(|s| !s.virtiofs && scratch().contains_key(&s.path))
}

/// A free name in the aside folder the host named for this share, or
/// `None` when it named none (the share does not hold Berth's own folder).
fn aside_name(share: &MountedShare) -> Option<PathBuf> {
    let root = scratch().get(&share.path).cloned()?;
    if !root.is_dir() {
        std::fs::create_dir_all(&root).ok()?;
    }
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Some(root.join(format!("{}-{n}", std::process::id())))
}

/// A folder the host made: pinned first (with what is already in it), so
/// a watcher that adds a watch on it meets the replays of what happens
/// in it; then announced to its parent's watchers as a change of it
/// (IN_ATTRIB), since a folder has no second name to move over it and
/// moving the host's folder away for a moment could break the program
/// filling it.
fn announce_new_dir(shares: &[MountedShare], path: &Path) -> Result<()> {
    if !owner(shares, path).is_some_and(|s| s.virtiofs) {
        pin::pin_tree(path);
    }
    if let Ok(f) = std::fs::File::open(path) {
        if let Ok(meta) = f.metadata() {
            restore_times(&f, &meta);
        }
    }
    Ok(())
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

    fn share(dir: &Path) -> Vec<MountedShare> {
        let s = vec![MountedShare {
            tag: "t".into(),
            path: dir.to_path_buf(),
            read_only: false,
            virtiofs: false,
        }];
        replay(&s, &event(Kind::Scratch, &aside_of(dir), None)).unwrap();
        s
    }

    fn event(kind: Kind, path: &Path, to: Option<PathBuf>) -> Event {
        Event {
            kind,
            path: path.to_path_buf(),
            to,
            is_dir: false,
            seen: None,
        }
    }

    /// The aside folder `share` registers for a test share.
    fn aside_of(dir: &Path) -> PathBuf {
        dir.join("state/replay")
    }

    fn aside_is_empty(dir: &Path) {
        let aside: Vec<_> = std::fs::read_dir(aside_of(dir))
            .map(|d| d.collect())
            .unwrap_or_default();
        assert!(aside.is_empty(), "{aside:?}");
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
                seen,
                ..event(kind, &f, None)
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
    fn replays_leave_content_and_times_alone() {
        let dir = tempfile::tempdir().unwrap();
        let s = share(dir.path());
        let f = dir.path().join("a.txt");
        std::fs::write(&f, "hello").unwrap();
        let before = std::fs::metadata(&f).unwrap();
        replay(&s, &event(Kind::Modify, &f, None)).unwrap();
        replay(&s, &event(Kind::Create, &f, None)).unwrap();
        let after = std::fs::metadata(&f).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "hello");
        assert_eq!(before.mtime_nsec(), after.mtime_nsec());
        assert_eq!(before.ino(), after.ino(), "a create replay keeps the inode");
        assert_eq!(after.nlink(), 1, "no second name is left behind");
        let gone = dir.path().join("gone");
        replay(&s, &event(Kind::Delete, &gone, None)).unwrap();
        assert!(!gone.exists());
        let b = dir.path().join("b.txt");
        std::fs::rename(&f, &b).unwrap();
        replay(&s, &event(Kind::Rename, &f, Some(b.clone()))).unwrap();
        assert!(b.exists() && !f.exists());
        assert_eq!(std::fs::metadata(&b).unwrap().ino(), before.ino());
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("x"), "x").unwrap();
        let sub_before = std::fs::metadata(&sub).unwrap().ino();
        let new_dir = Event {
            is_dir: true,
            ..event(Kind::Create, &sub, None)
        };
        replay(&s, &new_dir).unwrap();
        assert_eq!(sub_before, std::fs::metadata(&sub).unwrap().ino());
        assert_eq!(std::fs::read_to_string(sub.join("x")).unwrap(), "x");
        aside_is_empty(dir.path());
    }

    /// A host program that looks at its new file while the replays run (a
    /// linker's `stat` then `chmod`) always finds it.
    #[test]
    fn a_new_or_renamed_file_never_goes_missing_on_the_host() {
        let dir = tempfile::tempdir().unwrap();
        let s = share(dir.path());
        let f = dir.path().join("a.out");
        std::fs::write(&f, "\x7fELF").unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let looker = {
            let (f, stop) = (f.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut missing = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    missing += usize::from(std::fs::symlink_metadata(&f).is_err());
                }
                missing
            })
        };
        let old = dir.path().join("a.tmp");
        for _ in 0..500 {
            replay(&s, &event(Kind::Create, &f, None)).unwrap();
            replay(&s, &event(Kind::Rename, &old, Some(f.clone()))).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(looker.join().unwrap(), 0, "times the name was missing");
        assert!(!old.exists());
        aside_is_empty(dir.path());
    }

    #[test]
    fn on_virtiofs_a_new_file_is_announced_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = share(dir.path());
        s[0].virtiofs = true;
        let f = dir.path().join("new.txt");
        std::fs::write(&f, "data").unwrap();
        let before = std::fs::metadata(&f).unwrap();
        replay(&s, &event(Kind::Create, &f, None)).unwrap();
        let after = std::fs::metadata(&f).unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "data");
        assert_eq!(
            (before.ino(), before.mtime_nsec()),
            (after.ino(), after.mtime_nsec())
        );
        aside_is_empty(dir.path());
    }

    /// A share without an aside folder named by the host (one that does
    /// not hold Berth's state) gets nothing of the replay's in it.
    #[test]
    fn without_an_aside_folder_nothing_appears_in_the_share() {
        let dir = tempfile::tempdir().unwrap();
        let s = vec![MountedShare {
            tag: "t".into(),
            path: dir.path().to_path_buf(),
            read_only: false,
            virtiofs: false,
        }];
        let f = dir.path().join("new.txt");
        std::fs::write(&f, "data").unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        replay(&s, &event(Kind::Create, &f, None)).unwrap();
        let new_dir = Event {
            is_dir: true,
            ..event(Kind::Create, &sub, None)
        };
        replay(&s, &new_dir).unwrap();
        assert!(pin::is_pinned(&sub), "a new folder is pinned");
        std::fs::remove_dir(&sub).unwrap();
        let gone = Event {
            is_dir: true,
            ..event(Kind::Delete, &sub, None)
        };
        replay(&s, &gone).unwrap();
        assert!(!pin::is_pinned(&sub), "a removed folder is let go");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("new.txt")]);
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "data");
    }
}
