//! Path resolution over the merged view of a layer stack, the way
//! containerd resolves names when it applies a layer onto a mounted
//! overlay: absolute names and absolute symlink targets start at the image
//! root, `..` stops at the root, and a later layer that writes through an
//! earlier layer's symlink (`/var/run -> /run`) lands where the image means
//! it to.
//!
//! Nothing here follows a symlink on the host: every path it touches is
//! `layer/<dir>/<name>` where each component of `<dir>` was seen, with
//! `lstat`, to be a real directory in that same layer. Written by hand
//! because no crate resolves names across a stack of overlay layers.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::overlay::{is_opaque, is_whiteout};

/// How many symlinks one name may pass through before it is refused.
const MAX_LINKS: usize = 40;

/// Splits an archive or symlink name into clean components: empty parts and
/// `.` are dropped, `..` pops one component and stops at the root.
pub fn clean_components(name: &Path) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for c in name.components() {
        match c {
            Component::Normal(part) => out.push(part.to_os_string()),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// A directory of the merged view, and which layers hold a real directory
/// at that path and contribute to it.
#[derive(Debug, Clone)]
pub struct Dir {
    /// The path relative to the image root, free of symlinks.
    pub rel: PathBuf,
    /// Whether the upper (being written) layer has this directory.
    pub in_upper: bool,
    /// Indexes into the lower layers (top first) that merge into it.
    pub lowers: Vec<usize>,
}

/// What a name is in the merged view.
#[derive(Debug)]
pub enum Entry {
    /// Nothing by that name (or it was deleted by a whiteout).
    Missing,
    /// A directory.
    Dir(Dir),
    /// A symlink with this target.
    Symlink(PathBuf),
    /// A file, device, fifo or socket; `in_upper` tells where the top one is,
    /// `lower` which lower layer holds it otherwise.
    Other {
        /// True when the upper layer holds it.
        in_upper: bool,
        /// The lower layer that holds it when the upper does not.
        lower: Option<usize>,
    },
}

/// A view of an upper directory being written over read-only lowers.
pub struct MergedView<'a> {
    /// The layer being written.
    pub upper: &'a Path,
    /// The layers below it, top first.
    pub lowers: &'a [PathBuf],
}

impl MergedView<'_> {
    /// The image root.
    pub fn root(&self) -> Dir {
        Dir {
            rel: PathBuf::new(),
            in_upper: true,
            lowers: (0..self.lowers.len()).collect(),
        }
    }

    /// Looks up one name inside a directory of the merged view.
    pub fn lookup(&self, dir: &Dir, name: &OsStr) -> io::Result<Entry> {
        let rel = dir.rel.join(name);
        let mut found_dir: Option<Dir> = None;
        let mut search_lowers = true;
        if dir.in_upper {
            match std::fs::symlink_metadata(self.upper.join(&rel)) {
                Ok(meta) if is_whiteout(&meta) => return Ok(Entry::Missing),
                Ok(meta) if meta.is_dir() => {
                    search_lowers = !is_opaque(&self.upper.join(&rel));
                    found_dir = Some(Dir {
                        rel: rel.clone(),
                        in_upper: true,
                        lowers: vec![],
                    });
                }
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Ok(Entry::Symlink(std::fs::read_link(self.upper.join(&rel))?))
                }
                Ok(_) => {
                    return Ok(Entry::Other {
                        in_upper: true,
                        lower: None,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if search_lowers {
            for &i in &dir.lowers {
                let path = self.lowers[i].join(&rel);
                let meta = match std::fs::symlink_metadata(&path) {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                if meta.is_dir() {
                    let d = found_dir.get_or_insert_with(|| Dir {
                        rel: rel.clone(),
                        in_upper: false,
                        lowers: vec![],
                    });
                    d.lowers.push(i);
                    if is_opaque(&path) {
                        break;
                    }
                    continue;
                }
                // A whiteout or a non-directory ends the merge below it.
                if found_dir.is_some() {
                    break;
                }
                if is_whiteout(&meta) {
                    return Ok(Entry::Missing);
                }
                if meta.file_type().is_symlink() {
                    return Ok(Entry::Symlink(std::fs::read_link(&path)?));
                }
                return Ok(Entry::Other {
                    in_upper: false,
                    lower: Some(i),
                });
            }
        }
        Ok(found_dir.map_or(Entry::Missing, Entry::Dir))
    }

    /// Resolves a directory name from the image root, following symlinks
    /// inside the image. Components that do not exist yet resolve to a
    /// fresh directory (the caller creates it in the upper layer).
    pub fn resolve_dir(&self, components: &[OsString]) -> io::Result<Dir> {
        let mut stack: Vec<Dir> = vec![self.root()];
        let mut todo: std::collections::VecDeque<OsString> = components.iter().cloned().collect();
        let mut links = 0;
        while let Some(name) = todo.pop_front() {
            if name == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            if name == "." || name.is_empty() {
                continue;
            }
            let cur = stack.last().expect("root is never popped");
            match self.lookup(cur, &name)? {
                Entry::Dir(d) => stack.push(d),
                Entry::Missing => {
                    let rel = cur.rel.join(&name);
                    stack.push(Dir {
                        rel,
                        in_upper: false,
                        lowers: vec![],
                    });
                }
                Entry::Symlink(target) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(io::Error::other(format!(
                            "too many levels of symbolic links at /{}",
                            cur.rel.join(&name).display()
                        )));
                    }
                    if target.as_os_str().as_bytes().starts_with(b"/") {
                        stack.truncate(1);
                    }
                    let mut spliced: Vec<OsString> = target
                        .components()
                        .filter_map(|c| match c {
                            Component::Normal(p) => Some(p.to_os_string()),
                            Component::ParentDir => Some(OsString::from("..")),
                            _ => None,
                        })
                        .collect();
                    spliced.extend(todo.drain(..));
                    todo = spliced.into();
                }
                Entry::Other { .. } => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!("/{} is not a directory", cur.rel.join(&name).display()),
                    ))
                }
            }
        }
        Ok(stack.pop().expect("root is never popped"))
    }
}
