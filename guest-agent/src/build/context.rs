//! A build's workspace: the context the client sent, kept as the tar it
//! came in with an index of its entries (never unpacked: creating and
//! deleting thousands of files per build cost seconds on an ordinary
//! disk), and the files a build needs for a while (secrets, gathered
//! sources). Removed when the build ends, however it ends; a crash's
//! leftovers go at the next start.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::mpsc;

use super::BuildOptions;
use crate::error::{Error, Result};

/// What an entry of the context is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
}

/// One entry of the context.
#[derive(Debug, Clone)]
pub struct Node {
    /// Its kind.
    pub kind: NodeKind,
    /// Permission bits.
    pub mode: u32,
    /// Modification time (seconds).
    pub mtime: u64,
    /// Bytes of content.
    pub size: u64,
    /// A link's target.
    pub link: Option<String>,
    /// Where its content starts in the tar.
    offset: u64,
}

impl Node {
    /// A tar header for it (root-owned, as COPY makes files).
    pub fn header(&self) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(match self.kind {
            NodeKind::File => tar::EntryType::Regular,
            NodeKind::Dir => tar::EntryType::Directory,
            NodeKind::Symlink => tar::EntryType::Symlink,
        });
        h.set_mode(self.mode);
        h.set_mtime(self.mtime);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(if self.kind == NodeKind::File {
            self.size
        } else {
            0
        });
        if let Some(l) = &self.link {
            let _ = h.set_link_name(l);
        }
        h
    }
}

fn dir_node() -> Node {
    Node {
        kind: NodeKind::Dir,
        mode: 0o755,
        mtime: 0,
        size: 0,
        link: None,
        offset: 0,
    }
}

/// One build's directory under `<root>/build/work`.
pub struct Workspace {
    dir: PathBuf,
    tar: PathBuf,
    /// The tar, open for reading (each file is read at its offset: opening
    /// the tar once per file cost as much as reading them).
    file: Option<Arc<File>>,
    /// The context's entries by path ("" is the root; no leading or
    /// trailing slash).
    pub nodes: BTreeMap<String, Node>,
}

impl Drop for Workspace {
    /// Removes the workspace on a thread of its own, so the build's
    /// answer does not wait for it.
    fn drop(&mut self) {
        let dir = self.dir.clone();
        let spawned = std::thread::Builder::new()
            .name("build-cleanup".into())
            .spawn(move || {
                let _ = std::fs::remove_dir_all(&dir);
            });
        if spawned.is_err() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A context entry's name as an index key, or None for names that
/// climb out of the context.
fn key_of(name: &Path) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in name.components() {
        match c {
            std::path::Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            std::path::Component::CurDir | std::path::Component::RootDir => {}
            _ => return None,
        }
    }
    Some(parts.join("/"))
}

impl Workspace {
    /// Makes a workspace under `work`, stores the context tar that
    /// `chunks` bring and indexes it.
    pub async fn receive(work: &Path, mut chunks: mpsc::Receiver<Vec<u8>>) -> Result<Workspace> {
        let dir = work.join(&crate::digest::random_id()[..16]);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("making the build's workspace", e))?;
        let mut me = Workspace {
            tar: dir.join("context.tar"),
            dir,
            file: None,
            nodes: BTreeMap::new(),
        };
        let mut file = io::BufWriter::with_capacity(
            1 << 20,
            File::create(&me.tar).map_err(|e| Error::io("storing the context", e))?,
        );
        while let Some(chunk) = chunks.recv().await {
            file.write_all(&chunk)
                .map_err(|e| Error::io("storing the context", e))?;
        }
        file.flush()
            .map_err(|e| Error::io("storing the context", e))?;
        drop(file);
        let path = me.tar.clone();
        me.nodes = tokio::task::spawn_blocking(move || index(&path))
            .await
            .map_err(|e| Error::Internal(format!("reading the context crashed: {e}")))??;
        me.file = Some(Arc::new(
            File::open(&me.tar).map_err(|e| Error::io("reading the context", e))?,
        ));
        Ok(me)
    }

    /// The workspace's own directory (for secrets and the like).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The content of a file entry.
    pub fn open(&self, node: &Node) -> io::Result<Section> {
        let file = match &self.file {
            Some(f) => f.clone(),
            None => Arc::new(File::open(&self.tar)?),
        };
        Ok(Section {
            file,
            pos: node.offset,
            left: node.size,
        })
    }

    /// The path `rel` names, following symlinks inside the context (a
    /// link that climbs above the root stops there, as in a chroot).
    pub fn resolve(&self, rel: &str) -> Result<String> {
        let missing = || {
            Error::not_found(format!(
                "\"{rel}\" not found in the build context: check the path and .dockerignore"
            ))
        };
        let mut todo: Vec<String> = rel
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .map(String::from)
            .rev()
            .collect();
        let mut at: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(part) = todo.pop() {
            if part == ".." {
                at.pop();
                continue;
            }
            at.push(part);
            let node = self.nodes.get(&at.join("/")).ok_or_else(missing)?;
            if let (NodeKind::Symlink, Some(target)) = (node.kind, &node.link) {
                hops += 1;
                if hops > 40 {
                    return Err(Error::InvalidArgument(format!(
                        "{rel} in the build context is a loop of symlinks"
                    )));
                }
                at.pop();
                if target.starts_with('/') {
                    at.clear();
                }
                todo.extend(
                    target
                        .split('/')
                        .filter(|p| !p.is_empty() && *p != ".")
                        .map(String::from)
                        .rev(),
                );
            }
        }
        Ok(at.join("/"))
    }

    /// Every entry under directory `rel`, parents before children.
    pub fn under<'a>(&'a self, rel: &'a str) -> impl Iterator<Item = (&'a String, &'a Node)> + 'a {
        let prefix = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| !k.is_empty())
    }

    /// Writes the tree at `rel` into the folder `into` (for `RUN
    /// --mount=type=bind` from the context).
    pub fn extract(&self, rel: &str, into: &Path) -> Result<PathBuf> {
        let root = self.resolve(rel)?;
        let fail = |e: io::Error| Error::io("preparing a bind mount from the context", e);
        let mut b = tar::Builder::new(Vec::new());
        let node = self.nodes.get(&root).cloned().unwrap_or_else(dir_node);
        let base = Path::new(&root)
            .file_name()
            .map_or("ctx".into(), |n| n.to_string_lossy().into_owned());
        let mut entries: Vec<(String, Node)> = vec![(base.clone(), node.clone())];
        if node.kind == NodeKind::Dir {
            let skip = if root.is_empty() { 0 } else { root.len() + 1 };
            for (k, n) in self.under(&root) {
                entries.push((format!("{base}/{}", &k[skip..]), n.clone()));
            }
        }
        for (name, n) in entries {
            let mut h = n.header();
            if n.kind == NodeKind::File {
                b.append_data(&mut h, &name, self.open(&n).map_err(fail)?)
                    .map_err(fail)?;
            } else if let (NodeKind::Symlink, Some(l)) = (n.kind, &n.link) {
                b.append_link(&mut h, &name, l).map_err(fail)?;
            } else {
                b.append_data(&mut h, &name, io::empty()).map_err(fail)?;
            }
        }
        let data = b.into_inner().map_err(fail)?;
        std::fs::create_dir_all(into).map_err(fail)?;
        crate::snapshot::apply::apply_layer(&data[..], into, &[]).map_err(fail)?;
        Ok(into.join(base))
    }

    /// The Dockerfile's name (for messages) and text: the one sent
    /// beside the context, or the one the options name inside it.
    pub fn dockerfile(&self, opts: &BuildOptions) -> Result<(String, String)> {
        let path = if opts.dockerfile.is_empty() {
            "Dockerfile"
        } else {
            opts.dockerfile.as_str()
        };
        let name = if opts.dockerfile_name.is_empty() {
            path.rsplit('/').next().unwrap_or(path).to_string()
        } else {
            opts.dockerfile_name.clone()
        };
        if let Some(text) = &opts.dockerfile_text {
            return Ok((name, text.clone()));
        }
        let unreadable = |why: String| {
            Error::InvalidArgument(format!(
                "failed to read dockerfile: open {path}: {why}; give its path with -f"
            ))
        };
        let node = self
            .resolve(path)
            .ok()
            .and_then(|r| self.nodes.get(&r).cloned())
            .filter(|n| n.kind == NodeKind::File)
            .ok_or_else(|| unreadable("no such file or directory".into()))?;
        let mut text = String::new();
        self.open(&node)
            .and_then(|mut r| r.read_to_string(&mut text))
            .map_err(|e| unreadable(e.to_string()))?;
        Ok((name, text))
    }
}

/// One file's bytes in the context tar.
pub struct Section {
    file: Arc<File>,
    pos: u64,
    left: u64,
}

impl Read for Section {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the build context ends inside a file",
            ));
        }
        self.pos += n as u64;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads the stored context tar into an index (regular files, folders
/// and links; other kinds are left out, as Docker's context skips them).
fn index(path: &Path) -> Result<BTreeMap<String, Node>> {
    let bad = |e: io::Error| {
        Error::InvalidArgument(format!(
            "the build context is not a readable tar archive: {e}"
        ))
    };
    let mut nodes = BTreeMap::new();
    nodes.insert(String::new(), dir_node());
    let mut archive = tar::Archive::new(File::open(path).map_err(bad)?);
    for entry in archive.entries().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        let h = entry.header();
        let kind = match h.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => NodeKind::File,
            tar::EntryType::Directory => NodeKind::Dir,
            tar::EntryType::Symlink => NodeKind::Symlink,
            _ => continue,
        };
        let Some(key) = key_of(&entry.path().map_err(bad)?) else {
            continue;
        };
        // Parents the archive did not list.
        let mut at = String::new();
        for part in key
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map_or(&[][..], |(_, p)| p)
        {
            at = if at.is_empty() {
                part.to_string()
            } else {
                format!("{at}/{part}")
            };
            nodes.entry(at.clone()).or_insert_with(dir_node);
        }
        let link = entry
            .link_name()
            .map_err(bad)?
            .map(|l| l.to_string_lossy().into_owned());
        nodes.insert(
            key,
            Node {
                kind,
                mode: h.mode().unwrap_or(0o644) & 0o7777,
                mtime: h.mtime().unwrap_or(0),
                size: entry.size(),
                link,
                offset: entry.raw_file_position(),
            },
        );
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(
        entries: &[(&str, &str)],
        links: &[(&str, &str)],
    ) -> (tempfile::TempDir, Workspace) {
        let d = tempfile::tempdir().unwrap();
        let tar = d.path().join("context.tar");
        let mut b = tar::Builder::new(File::create(&tar).unwrap());
        for (name, body) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(body.len() as u64);
            b.append_data(&mut h, name, body.as_bytes()).unwrap();
        }
        for (name, target) in links {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_mode(0o777);
            h.set_size(0);
            b.append_link(&mut h, name, target).unwrap();
        }
        b.finish().unwrap();
        drop(b);
        let nodes = index(&tar).unwrap();
        let w = Workspace {
            dir: d.path().join("none"),
            tar,
            file: None,
            nodes,
        };
        (d, w)
    }

    #[test]
    fn files_are_read_from_the_tar_and_parents_are_implied() {
        let (_d, w) = workspace(&[("src/a/x.txt", "hello"), ("top", "t")], &[]);
        let n = w.nodes.get("src/a/x.txt").unwrap().clone();
        let mut s = String::new();
        w.open(&n).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        assert_eq!(w.nodes.get("src").unwrap().kind, NodeKind::Dir);
        let under: Vec<&String> = w.under("src").map(|(k, _)| k).collect();
        assert_eq!(under, ["src/a", "src/a/x.txt"]);
    }

    #[test]
    fn links_resolve_inside_the_context_only() {
        let (_d, w) = workspace(
            &[("real/f", "x")],
            &[("up", "../../../etc"), ("abs", "/real"), ("rel", "real/f")],
        );
        assert_eq!(w.resolve("abs/f").unwrap(), "real/f");
        assert_eq!(w.resolve("rel").unwrap(), "real/f");
        assert!(
            w.resolve("up/passwd").is_err(),
            "a link never leaves the context"
        );
        assert!(w.resolve("missing").is_err());
    }
}
