//! The folders of 9p shares held open, so that each has one guest inode.
//!
//! A 9p mount with `cache=none` keeps no dentry nobody uses, and gives
//! every fresh lookup a fresh inode. An inotify watch is on an inode: the
//! watcher's `inotify_add_watch("/s/w")` looks `w` up, watches that inode
//! and lets the dentry go; the replay's later lookup of `/s/w/new.txt`
//! makes another inode for `w`, and the kernel reports the replay on that
//! one, which nobody watches. A share's root is the one folder that always
//! met (the mount pins it), and a folder that is itself a bind source too.
//!
//! Holding an `O_PATH` descriptor on a folder pins its dentry, and a pinned
//! dentry is found by every later lookup (uncached 9p does not revalidate
//! it), so the watcher and the replay meet on the one inode. The agent pins
//! every folder of a 9p share once it is mounted, a bind source's folders
//! before its container is made, and a folder the host makes as its event
//! arrives; it lets go of a folder the host removed or moved (a pinned
//! dentry would keep a removed folder's name alive in the guest). virtiofs
//! keeps one inode per host file by itself and needs none of this.

use std::collections::{BTreeMap, VecDeque};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::ASIDE_DIR;

/// The most folders pinned at once (each costs the guest about a kilobyte
/// and a descriptor); past it, deeper folders of big trees go unpinned and
/// a line in the agent's log says so.
pub const MAX_PINNED: usize = 200_000;

static PINNED: Mutex<BTreeMap<PathBuf, OwnedFd>> = Mutex::new(BTreeMap::new());

/// Folders whose whole tree a walk has pinned: a bind source below one
/// needs no walk of its own (what the host makes later is pinned as its
/// event arrives).
static WALKED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn walked() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    WALKED.lock().unwrap_or_else(|e| e.into_inner())
}

fn pinned() -> std::sync::MutexGuard<'static, BTreeMap<PathBuf, OwnedFd>> {
    PINNED.lock().unwrap_or_else(|e| e.into_inner())
}

/// How many folders are pinned.
pub fn count() -> usize {
    pinned().len()
}

/// True when `dir` is pinned.
pub fn is_pinned(dir: &Path) -> bool {
    pinned().contains_key(dir)
}

fn open_path(dir: &Path) -> Option<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)
        .ok()
        .map(OwnedFd::from)
}

/// Pins a bind source's tree before its container is made, unless a walk
/// of a folder holding it has already pinned everything there.
pub fn pin_bind_source(source: &Path) -> usize {
    if walked().iter().any(|w| source.starts_with(w)) {
        return 0;
    }
    pin_tree(source)
}

/// Pins `root` and every folder below it on the same file system,
/// shallow ones first (a folder already pinned is looked into all the
/// same: another walk may not have reached what is below it yet). Returns
/// how many were newly pinned.
pub fn pin_tree(root: &Path) -> usize {
    let Ok(meta) = std::fs::symlink_metadata(root) else {
        return 0;
    };
    if !meta.is_dir() {
        return 0;
    }
    raise_open_files_limit();
    let dev = meta.dev();
    let mut added = 0;
    let mut queue = VecDeque::from([root.to_path_buf()]);
    while let Some(dir) = queue.pop_front() {
        if !is_pinned(&dir) {
            let Some(fd) = open_path(&dir) else {
                continue;
            };
            let mut map = pinned();
            if map.len() >= MAX_PINNED {
                tracing::warn!(
                    "{MAX_PINNED} shared folders pinned: file events below {} may not reach watchers in containers",
                    dir.display()
                );
                return added;
            }
            map.entry(dir.clone()).or_insert(fd);
            added += 1;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name() == ASIDE_DIR {
                continue;
            }
            // 9p fills d_type: no lookup for files.
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let p = e.path();
                if std::fs::symlink_metadata(&p).is_ok_and(|m| m.dev() == dev) {
                    queue.push_back(p);
                }
            }
        }
    }
    walked().push(root.to_path_buf());
    added
}

/// Lets go of `root` and every pinned folder below it.
pub fn unpin_tree(root: &Path) -> usize {
    let mut map = pinned();
    let below: Vec<PathBuf> = map
        .range(root.to_path_buf()..)
        .take_while(|(p, _)| p.starts_with(root))
        .map(|(p, _)| p.clone())
        .collect();
    for p in &below {
        map.remove(p);
    }
    walked().retain(|w| !w.starts_with(root));
    below.len()
}

/// Pins every folder of the mounted 9p shares (the agent calls it in a
/// thread of its own once the shares are mounted).
pub fn pin_shares(shares: &[super::MountedShare]) {
    for s in shares.iter().filter(|s| !s.virtiofs) {
        let t = std::time::Instant::now();
        let n = pin_tree(&s.path);
        tracing::info!(
            "pinned {n} folders of {} in {:?}",
            s.path.display(),
            t.elapsed()
        );
    }
}

/// Raises the soft limit on open files to the hard one, once: a pin is a
/// descriptor.
fn raise_open_files_limit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid rlimit to fill and then pass back.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
                lim.rlim_cur = lim.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_a_tree_once_and_lets_go_of_a_subtree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("r");
        for d in ["a/b/c", "a/d", "e", ".berth-replay/x"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("a/file"), "x").unwrap();
        assert_eq!(pin_tree(&root), 6, "r, a, e, a/b, a/d, a/b/c");
        assert!(is_pinned(&root.join("a/b/c")));
        assert!(!is_pinned(&root.join(ASIDE_DIR)));
        assert_eq!(pin_tree(&root), 0, "already pinned");
        assert_eq!(pin_bind_source(&root.join("a")), 0, "below a walked tree");
        // A sibling whose name starts the same is not below `a`.
        std::fs::create_dir(root.join("ab")).unwrap();
        assert_eq!(pin_tree(&root.join("ab")), 1);
        assert_eq!(unpin_tree(&root.join("a")), 4);
        assert!(is_pinned(&root.join("ab")) && !is_pinned(&root.join("a/d")));
        assert_eq!(unpin_tree(&root), 3);
    }
}
