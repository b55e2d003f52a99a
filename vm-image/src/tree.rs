//! Where the builder places the guest's files: the initramfs (a cpio
//! archive) or the staging folder the system disk is made from. Both take
//! the same calls, so which file goes where is decided in one place.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cpio::{CpioWriter, Entry};

/// A file tree being written; parent folders are created as needed.
pub trait Tree {
    /// Adds a file with its mode.
    fn file(&mut self, path: &str, mode: u32, bytes: &[u8]) -> Result<()>;
    /// Adds a folder.
    fn dir(&mut self, path: &str) -> Result<()>;
    /// Adds a symbolic link to `target`.
    fn symlink(&mut self, path: &str, target: &str) -> Result<()>;
}

/// A tree written as a newc cpio archive (the initramfs).
pub struct CpioTree<W: Write> {
    cpio: CpioWriter<W>,
    dirs: BTreeSet<String>,
}

impl<W: Write> CpioTree<W> {
    /// Starts an archive on `out`.
    pub fn new(out: W) -> Self {
        CpioTree {
            cpio: CpioWriter::new(out),
            dirs: BTreeSet::new(),
        }
    }

    /// Ends the archive and returns the writer.
    pub fn finish(self) -> Result<W> {
        Ok(self.cpio.finish()?)
    }

    fn parents(&mut self, path: &str) -> Result<()> {
        if let Some(parent) = Path::new(path).parent() {
            self.dir(&parent.to_string_lossy())?;
        }
        Ok(())
    }
}

impl<W: Write> Tree for CpioTree<W> {
    fn file(&mut self, path: &str, mode: u32, bytes: &[u8]) -> Result<()> {
        self.parents(path)?;
        Ok(self.cpio.add(path, mode, Entry::File(bytes))?)
    }

    fn dir(&mut self, path: &str) -> Result<()> {
        let mut so_far = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            if !so_far.is_empty() {
                so_far.push('/');
            }
            so_far.push_str(part);
            if self.dirs.insert(so_far.clone()) {
                self.cpio.add(&so_far, 0o755, Entry::Dir)?;
            }
        }
        Ok(())
    }

    fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        self.parents(path)?;
        Ok(self.cpio.add(path, 0o777, Entry::Symlink(target))?)
    }
}

/// A tree written into a folder on the build machine.
pub struct DirTree {
    root: PathBuf,
}

impl DirTree {
    /// Writes under `root`, which is emptied first.
    pub fn new(root: &Path) -> Result<Self> {
        if root.exists() {
            std::fs::remove_dir_all(root)
                .with_context(|| format!("cannot empty {}", root.display()))?;
        }
        std::fs::create_dir_all(root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        Ok(DirTree {
            root: root.to_path_buf(),
        })
    }

    fn place(&self, path: &str) -> Result<PathBuf> {
        let full = self.root.join(path.trim_start_matches('/'));
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        Ok(full)
    }
}

impl Tree for DirTree {
    fn file(&mut self, path: &str, mode: u32, bytes: &[u8]) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let full = self.place(path)?;
        std::fs::write(&full, bytes).with_context(|| format!("cannot write {}", full.display()))?;
        std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    }

    fn dir(&mut self, path: &str) -> Result<()> {
        let full = self.root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(&full).with_context(|| format!("cannot create {}", full.display()))
    }

    fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        let full = self.place(path)?;
        std::os::unix::fs::symlink(target, &full)
            .with_context(|| format!("cannot link {}", full.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_trees_create_parent_folders_once() {
        let mut cpio = CpioTree::new(Vec::new());
        cpio.file("a/b/c", 0o644, b"x").unwrap();
        cpio.file("a/b/d", 0o644, b"y").unwrap();
        assert_eq!(cpio.dirs.len(), 2);
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = DirTree::new(&tmp.path().join("t")).unwrap();
        dir.file("a/b/c", 0o600, b"x").unwrap();
        dir.symlink("a/l", "b/c").unwrap();
        assert_eq!(std::fs::read(tmp.path().join("t/a/l")).unwrap(), b"x");
    }
}
