//! Removing directory trees off the caller's path: a tree is renamed into
//! a trash folder on the same file system (one metadata operation) and
//! deleted by a blocking task afterwards.
//!
//! Deleting a container's directory is thirty-odd unlinks; on a journaled
//! file system each waits for a journal handle, which under other I/O can
//! take milliseconds apiece, and `run --rm` waits for the removal. A rename
//! makes the tree vanish from where the engine looks at once; what is left
//! in the trash (the agent was killed while deleting) is emptied when the
//! next agent opens it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A trash folder whose contents are deleted in the background.
#[derive(Debug)]
pub struct Trash {
    dir: PathBuf,
    next: AtomicU64,
}

impl Trash {
    /// Opens (creating it) the trash folder `dir` and starts emptying what
    /// an earlier agent left in it. `dir` must be on the file system of
    /// the trees later discarded into it (else [`Trash::discard`] deletes
    /// them in place).
    pub fn open(dir: &Path) -> std::io::Result<Trash> {
        std::fs::create_dir_all(dir)?;
        let leftovers: Vec<PathBuf> = std::fs::read_dir(dir)?
            .flatten()
            .map(|e| e.path())
            .collect();
        if !leftovers.is_empty() {
            delete_later(leftovers);
        }
        Ok(Trash {
            dir: dir.to_path_buf(),
            next: AtomicU64::new(0),
        })
    }

    /// Makes the tree at `path` disappear now and deletes it in the
    /// background. A tree that cannot be moved (another file system) is
    /// deleted before this returns; a missing one is no error.
    pub fn discard(&self, path: &Path) -> std::io::Result<()> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let name = path
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let target = self.dir.join(format!("{}-{n}-{name}", std::process::id()));
        match std::fs::rename(path, &target) {
            Ok(()) => {
                delete_later(vec![target]);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(_) => match std::fs::remove_dir_all(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
        }
    }
}

/// Deletes `paths` on a blocking thread: on the runtime's when there is
/// one, else on a thread of its own.
fn delete_later(paths: Vec<PathBuf>) {
    let work = move || {
        for p in paths {
            if let Err(e) = std::fs::remove_dir_all(&p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("emptying the trash: {}: {e}", p.display());
                }
            }
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn_blocking(work);
        }
        Err(_) => {
            std::thread::spawn(work);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_gone(p: &Path) -> bool {
        for _ in 0..200 {
            if std::fs::read_dir(p).map(|d| d.count() == 0).unwrap_or(true) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn a_discarded_tree_is_gone_at_once_and_deleted_later() {
        let root = tempfile::tempdir().unwrap();
        let tree = root.path().join("c1");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::write(tree.join("a/b/f"), "x").unwrap();
        let trash = Trash::open(&root.path().join("trash")).unwrap();
        trash.discard(&tree).unwrap();
        assert!(!tree.exists());
        assert!(wait_gone(&root.path().join("trash")));
        // Missing trees are no error.
        trash.discard(&tree).unwrap();
    }

    #[test]
    fn leftovers_are_emptied_when_the_trash_opens() {
        let root = tempfile::tempdir().unwrap();
        let left = root.path().join("trash/123-0-c2/x");
        std::fs::create_dir_all(&left).unwrap();
        Trash::open(&root.path().join("trash")).unwrap();
        assert!(wait_gone(&root.path().join("trash")));
    }
}
