//! `COPY` and `ADD`: the sources (context files, wildcards, another
//! stage's or image's files, URLs, local tars ADD unpacks) gathered into
//! one tar whose names are their places in the image, hashed for the
//! cache key (names, modes, owners, link targets, contents — not times),
//! then written through a container's root filesystem so parents that
//! exist keep their owners and modes and symlinks resolve inside it.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::ast::{Copy, Instruction};
use super::config;
use super::context::{Node, NodeKind};
use super::run::{step_container, Scratch};
use super::stage::{args_key, key_of, Run, State};
use crate::digest::Hasher;
use crate::error::{Error, Result};

/// The gathered sources: a tar on disk and the hash of what it holds.
pub(super) struct Gathered {
    path: PathBuf,
    builder: tar::Builder<File>,
    hash: Hasher,
    /// The image's layer directories, top first (empty for scratch).
    lowers: Vec<PathBuf>,
    /// A parent of an entry is a symlink or file in the image: the files
    /// go through a container, where it resolves as the image sees it.
    fallback: bool,
    /// Directories written, or found in the image.
    dirs: std::collections::BTreeSet<String>,
    /// The owner every entry gets (`--chown`), else the source's.
    owner: Option<(u32, u32)>,
    /// The mode every entry gets (`--chmod`).
    mode: Option<u32>,
    /// What each name is, for making the snapshot with the files the last
    /// run of the step wrote ([`super::donor`]).
    pub(super) names: super::donor::Names,
}

impl Gathered {
    /// Adds one entry named `name` (relative to `/`) from header `h` and
    /// `data`.
    pub(super) fn add(
        &mut self,
        name: &str,
        mut h: tar::Header,
        data: &mut dyn Read,
    ) -> Result<()> {
        if let Some((u, g)) = self.owner {
            h.set_uid(u as u64);
            h.set_gid(g as u64);
        }
        if let Some(m) = self.mode {
            h.set_mode(m);
        }
        let link = h
            .link_name()
            .ok()
            .flatten()
            .map(|l| l.to_string_lossy().into_owned());
        for part in [
            name,
            &format!("{:?}", h.entry_type()),
            &format!("{:o}", h.mode().unwrap_or(0)),
            &h.uid().unwrap_or(0).to_string(),
            &h.gid().unwrap_or(0).to_string(),
            link.as_deref().unwrap_or(""),
        ] {
            self.hash.update(part.as_bytes());
            self.hash.update(b"\0");
        }
        let regular = h.entry_type() == tar::EntryType::Regular;
        let mut file_hash = regular.then(|| super::donor::file_hasher(name, &h));
        let mut hashing = HashingReader {
            inner: data,
            hash: &mut self.hash,
            file: file_hash.as_mut(),
        };
        let writing = |e: io::Error| Error::io("gathering the files to copy", e);
        if h.entry_type().is_dir() {
            self.dirs.insert(name.to_string());
        }
        match link {
            Some(target) if h.entry_type().is_symlink() => {
                h.set_size(0);
                self.builder
                    .append_link(&mut h, name, target)
                    .map_err(writing)?
            }
            _ => self
                .builder
                .append_data(&mut h, name, &mut hashing)
                .map_err(writing)?,
        }
        let seen = match file_hash {
            Some(f) => super::donor::Seen::File(f.finish()),
            None if h.entry_type().is_dir() => super::donor::Seen::Dir,
            None => super::donor::Seen::Other,
        };
        self.names.note(name, seen);
        Ok(())
    }

    /// Adds directory entries for the parents of `name` that neither this
    /// tar nor the image has, so the tar is the step's whole layer.
    pub(super) fn parents(&mut self, name: &str) -> Result<()> {
        let mut at = String::new();
        let parts: Vec<&str> = name.split('/').collect();
        for p in &parts[..parts.len().saturating_sub(1)] {
            at = if at.is_empty() {
                p.to_string()
            } else {
                format!("{at}/{p}")
            };
            if self.dirs.contains(&at) {
                continue;
            }
            self.dirs.insert(at.clone());
            match lower_kind(&self.lowers, &at) {
                Lower::Dir => {}
                Lower::Other => self.fallback = true,
                Lower::Missing => {
                    let mut h = made_header(tar::EntryType::Directory, 0o755, 0);
                    self.builder
                        .append_data(&mut h, &at, io::empty())
                        .map_err(|e| Error::io("gathering the files to copy", e))?;
                    self.names.note(&at, super::donor::Seen::Dir);
                }
            }
        }
        Ok(())
    }
}

/// What an image's layers hold at a path.
enum Lower {
    Missing,
    Dir,
    Other,
}

/// What `rel` is in the image whose layer directories are `lowers` (top
/// first): each layer is looked at component by component, never
/// following a link, and a whiteout hides what is below.
fn lower_kind(lowers: &[PathBuf], rel: &str) -> Lower {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    'layers: for layer in lowers {
        let mut path = layer.clone();
        let parts: Vec<&str> = rel.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            path.push(part);
            let Ok(m) = std::fs::symlink_metadata(&path) else {
                continue 'layers;
            };
            let last = i + 1 == parts.len();
            if m.file_type().is_char_device() && m.rdev() == 0 {
                return Lower::Missing;
            }
            if !m.is_dir() {
                return Lower::Other;
            }
            if last {
                return Lower::Dir;
            }
        }
    }
    Lower::Missing
}

struct HashingReader<'a> {
    inner: &'a mut dyn Read,
    hash: &'a mut Hasher,
    /// The file's own hash, when it is a regular file.
    file: Option<&'a mut Hasher>,
}

impl Read for HashingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        if let Some(f) = self.file.as_mut() {
            f.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// A header for an entry made here (root-owned, now).
fn made_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
    h
}

/// Joins a destination directory and a relative name, without a leading
/// slash.
pub(super) fn under(dir: &str, name: &str) -> String {
    let d = dir.trim_matches('/');
    let n = name.trim_matches('/');
    match (d.is_empty(), n.is_empty()) {
        (true, _) => n.to_string(),
        (_, true) => d.to_string(),
        _ => format!("{d}/{n}"),
    }
}

/// A source BuildKit reads as a git repository: `git://…`, `git@…`, or
/// an HTTP(S) URL of a `.git` path (with an optional `#ref`).
fn is_git(src: &str) -> bool {
    let web = src.starts_with("http://") || src.starts_with("https://");
    let path = src.split('#').next().unwrap_or(src).trim_end_matches('/');
    src.starts_with("git://") || src.starts_with("git@") || (web && path.ends_with(".git"))
}

pub(super) fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

impl Run {
    /// An image's layer directories, top first.
    fn layer_dirs(&self, image: &crate::store::ImageRecord) -> Result<Vec<PathBuf>> {
        image
            .layers
            .iter()
            .rev()
            .map(|l| self.builder.images.snapshots.fs_path(&l.chain_id))
            .collect()
    }

    /// The context entry a source names (links followed inside it).
    pub(super) fn context_path(&self, src: &str) -> Result<String> {
        self.work.resolve(&config::clean(&format!("/{src}")))
    }

    /// The hash of a context path's tree (for bind mounts' cache keys).
    pub(super) fn hash_context(&self, src: &str) -> Result<String> {
        let key = self.context_path(src)?;
        let mut g = self.gather_into(&format!("hash-{}", crate::digest::random_id()))?;
        self.add_tree(&mut g, &key, "", false)?;
        let _ = std::fs::remove_file(&g.path);
        Ok(g.hash.finish())
    }

    fn gather_into(&self, name: &str) -> Result<Gathered> {
        let path = self.work.dir().join(name);
        let file = File::create(&path).map_err(|e| Error::io("gathering the files to copy", e))?;
        Ok(Gathered {
            path,
            lowers: Vec::new(),
            fallback: false,
            builder: tar::Builder::new(file),
            hash: Hasher::default(),
            dirs: Default::default(),
            owner: None,
            mode: None,
            names: Default::default(),
        })
    }

    /// Adds context entry `key` (a file, link or folder's contents) as
    /// `dest`.
    fn add_tree(&self, g: &mut Gathered, key: &str, dest: &str, scratch: bool) -> Result<()> {
        let node =
            self.work.nodes.get(key).cloned().ok_or_else(|| {
                Error::not_found(format!("\"{key}\" not found in the build context"))
            })?;
        if node.kind != NodeKind::Dir {
            return self.add_entry(g, &node, dest, scratch);
        }
        let skip = if key.is_empty() { 0 } else { key.len() + 1 };
        let children: Vec<(String, Node)> = self
            .work
            .under(key)
            .map(|(k, n)| (k[skip..].to_string(), n.clone()))
            .collect();
        for (rel, n) in children {
            self.add_entry(g, &n, &under(dest, &rel), scratch)?;
        }
        Ok(())
    }

    fn add_entry(&self, g: &mut Gathered, node: &Node, name: &str, scratch: bool) -> Result<()> {
        if scratch {
            g.parents(name)?;
        }
        let h = node.header();
        if node.kind == NodeKind::File {
            let mut f = self
                .work
                .open(node)
                .map_err(|e| Error::io(format!("reading {name} from the context"), e))?;
            g.add(name, h, &mut f)
        } else {
            g.add(name, h, &mut io::empty())
        }
    }

    /// Runs a COPY or ADD step; true when the cache held its result.
    pub(super) async fn copy(
        &self,
        state: &mut State,
        args: &BTreeMap<String, String>,
        ins: &Instruction,
        c: &Copy,
        add: bool,
        done: &Mutex<HashMap<usize, State>>,
    ) -> Result<bool> {
        let esc = self.file.escape;
        let expand = |raw: &str| config::expand(&state.config, args, esc, raw);
        let raw_dest = expand(&c.dest)?;
        let workdir = state.config["config"]["WorkingDir"]
            .as_str()
            .unwrap_or("/")
            .to_string();
        let dest = if raw_dest.starts_with('/') {
            config::clean(&raw_dest)
        } else {
            config::clean(&format!("{}/{raw_dest}", workdir))
        };
        let sources: Vec<String> = c.sources.iter().map(|s| expand(s)).collect::<Result<_>>()?;
        let into_dir = raw_dest.ends_with('/')
            || raw_dest == "."
            || sources.len() + c.heredocs.len() > 1
            || sources.iter().any(|s| has_glob(s));
        // Parents are added to the tar as the image needs them.
        let scratch = true;
        let mut g = self.gather_into(&format!("copy-{}", crate::digest::random_id()))?;
        if let Some(image) = &state.image {
            g.lowers = self.layer_dirs(image)?;
        }
        g.owner = match &c.chown {
            Some(raw) => Some(self.owner(state, &expand(raw)?)?),
            None => None,
        };
        g.mode = match &c.chmod {
            Some(raw) => Some(u32::from_str_radix(&expand(raw)?, 8).map_err(|_| {
                Error::InvalidArgument(format!("--chmod={raw} is not an octal mode such as 0755"))
            })?),
            None => None,
        };
        for doc in &c.heredocs {
            let name = if into_dir {
                under(&dest, &doc.name)
            } else {
                under(&dest, "")
            };
            if scratch {
                g.parents(&name)?;
            }
            let h = made_header(tar::EntryType::Regular, 0o644, doc.body.len() as u64);
            g.add(&name, h, &mut doc.body.as_bytes())?;
        }
        if let Some(from) = &c.from {
            let from = super::words::expand(from, &|n| self.plan.globals.get(n).cloned(), esc)
                .map_err(Error::InvalidArgument)?;
            self.gather_from(&mut g, &from, &sources, &dest, into_dir, scratch, done)
                .await?;
        } else {
            for src in &sources {
                if add && is_git(src) {
                    return Err(Error::InvalidArgument(format!(
                        "ADD of a git repository ({src}) is not supported by Berth: clone it into the build context and COPY it"
                    )));
                }
                if add && (src.starts_with("http://") || src.starts_with("https://")) {
                    self.gather_url(&mut g, src, &dest, into_dir, scratch)
                        .await?;
                    continue;
                }
                for (key, base) in self.context_matches(src)? {
                    let node = self.work.nodes.get(&key).cloned().ok_or_else(|| {
                        Error::not_found(format!("\"{src}\" not found in the build context"))
                    })?;
                    if node.kind == NodeKind::Dir {
                        self.add_tree(&mut g, &key, &under(&dest, ""), scratch)?;
                    } else if add && self.gather_archive(&mut g, &node, &dest, scratch)? {
                        // a local tar, unpacked
                    } else {
                        let name = if into_dir {
                            under(&dest, &base)
                        } else {
                            under(&dest, "")
                        };
                        self.add_entry(&mut g, &node, &name, scratch)?;
                    }
                }
            }
        }
        g.builder
            .finish()
            .map_err(|e| Error::io("gathering the files to copy", e))?;
        let spooled = g.path.clone();
        let through_container = g.fallback;
        let key = key_of(&[&state.key, &ins.text, &args_key(args), &g.hash.finish()]);
        if let Some(hit) = self.lookup(&key)? {
            let _ = std::fs::remove_file(&spooled);
            self.adopt(state, key, &hit.id)?;
            return Ok(true);
        }
        // The last layer of this instruction lends its unchanged files.
        let donor = (!through_container).then(|| {
            (
                key_of(&["donor", &ins.text, &args_key(args)]),
                std::mem::take(&mut g.names),
            )
        });
        let layer = self
            .apply_tar(state, &spooled, through_container, donor)
            .await;
        let _ = std::fs::remove_file(&spooled);
        let created_by = format!("{} # buildkit", ins.text.lines().next().unwrap_or_default());
        self.commit(state, key, layer?, &created_by).await?;
        Ok(false)
    }

    /// The context entries `src` names (a path or a wildcard), each with
    /// its base name.
    fn context_matches(&self, src: &str) -> Result<Vec<(String, String)>> {
        let base_of = |k: &str| k.rsplit('/').next().unwrap_or_default().to_string();
        if !has_glob(src) {
            let key = self.context_path(src)?;
            let given = config::clean(&format!("/{src}"));
            return Ok(vec![(key, base_of(&given))]);
        }
        let rel = config::clean(&format!("/{src}"));
        let pattern = glob::Pattern::new(rel.trim_start_matches('/'))
            .map_err(|e| Error::InvalidArgument(format!("bad wildcard {src:?}: {e}")))?;
        let opts = glob::MatchOptions {
            require_literal_separator: true,
            ..Default::default()
        };
        let mut out = Vec::new();
        for k in self.work.nodes.keys().filter(|k| !k.is_empty()) {
            if pattern.matches_with(k, opts) {
                out.push((self.work.resolve(k)?, base_of(k)));
            }
        }
        if out.is_empty() {
            return Err(Error::not_found(format!(
                "no source files were specified: nothing in the build context matches {src:?}"
            )));
        }
        Ok(out)
    }

    /// ADD of a local tar: unpacks it into `dest`; false when `path` is
    /// no archive.
    fn gather_archive(
        &self,
        g: &mut Gathered,
        node: &Node,
        dest: &str,
        scratch: bool,
    ) -> Result<bool> {
        let mut head = [0u8; 512];
        let n = self
            .work
            .open(node)
            .and_then(|mut f| f.read(&mut head))
            .unwrap_or(0);
        let compressed = crate::image::layers::Compression::sniff(&head[..n])
            != crate::image::layers::Compression::None;
        let plain_tar = n >= 262 && &head[257..262] == b"ustar";
        if !compressed && !plain_tar {
            return Ok(false);
        }
        let file = self
            .work
            .open(node)
            .map_err(|e| Error::io("reading an archive to ADD", e))?;
        let reader = crate::image::layers::decompress(file)
            .map_err(|e| Error::io("reading an archive to ADD", e))?;
        let mut archive = tar::Archive::new(reader);
        let entries = match archive.entries() {
            Ok(e) => e,
            Err(_) => return Ok(false),
        };
        for entry in entries {
            let mut entry = entry.map_err(|e| {
                Error::InvalidArgument(format!("the archive to ADD is broken: {e}"))
            })?;
            let rel = config::clean(&format!(
                "/{}",
                entry
                    .path()
                    .map_err(|e| Error::io("reading an archive", e))?
                    .to_string_lossy()
            ));
            if rel == "/" {
                continue;
            }
            let name = under(dest, &rel);
            if scratch {
                g.parents(&name)?;
            }
            let h = entry.header().clone();
            if matches!(
                h.entry_type(),
                tar::EntryType::Regular
                    | tar::EntryType::Directory
                    | tar::EntryType::Symlink
                    | tar::EntryType::Continuous
            ) {
                g.add(&name, h, &mut entry)?;
            }
        }
        Ok(true)
    }

    /// ADD of a URL: the file, mode 0600, named after the URL's last part
    /// when `dest` is a directory.
    async fn gather_url(
        &self,
        g: &mut Gathered,
        url: &str,
        dest: &str,
        into_dir: bool,
        scratch: bool,
    ) -> Result<()> {
        let unreachable = |e: String| {
            Error::Unavailable(format!(
                "failed to fetch {url}: {e}; check the URL and the network"
            ))
        };
        let resp = reqwest::get(url)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(unreachable(format!(
                "the server answered {}",
                resp.status()
            )));
        }
        let body = resp.bytes().await.map_err(|e| unreachable(e.to_string()))?;
        let base = url
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or("download")
            .to_string();
        let name = if into_dir {
            under(dest, &base)
        } else {
            under(dest, "")
        };
        if scratch {
            g.parents(&name)?;
        }
        let h = made_header(tar::EntryType::Regular, 0o600, body.len() as u64);
        g.add(&name, h, &mut body.as_ref())
    }

    /// `--chown` as numeric ids, names looked up in the image's files.
    fn owner(&self, state: &State, spec: &str) -> Result<(u32, u32)> {
        let lowers: Vec<PathBuf> = match &state.image {
            Some(r) => self.layer_dirs(r)?,
            None => Vec::new(),
        };
        let passwd = crate::runtime::user::read_etc(&lowers, "passwd");
        let group = crate::runtime::user::read_etc(&lowers, "group");
        let ids = crate::runtime::user::resolve(spec, &passwd, &group)?;
        Ok((ids.uid, ids.gid))
    }

    /// Makes the snapshot of `layer` (the gathered tar at `tar_path` over
    /// the state's image) with the files the last layer recorded under
    /// `key` shares, when there is one, and records this layer under `key`
    /// for the next run. When that cannot be done, the snapshot is left to
    /// be unpacked as usual.
    async fn snapshot_with_donor(
        &self,
        state: &State,
        layer: &crate::image::compose::NewLayer,
        tar_path: &Path,
        key: String,
        names: super::donor::Names,
    ) -> Result<()> {
        let mut diff_ids: Vec<String> = state
            .image
            .iter()
            .flat_map(|i| i.layers.iter().map(|l| l.diff_id.clone()))
            .collect();
        diff_ids.push(layer.diff_id.clone());
        let chain_id = crate::digest::chain_ids(&diff_ids)
            .pop()
            .expect("one layer at least");
        let lowers = match &state.image {
            Some(image) => self.layer_dirs(image)?,
            None => Vec::new(),
        };
        let images = self.builder.images.clone();
        let dir = self.builder.dir.clone();
        let path = tar_path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let snapshots = &images.snapshots;
            if let Some(record) = super::donor::load(&dir, &key, snapshots) {
                let started = std::time::Instant::now();
                match super::donor::build(snapshots, &chain_id, &lowers, &path, &names, &record) {
                    Ok(true) => tracing::debug!(
                        "build: layer {chain_id} made with the files of {} in {:?}",
                        record.chain_id,
                        started.elapsed()
                    ),
                    Ok(false) => {}
                    Err(e) => tracing::debug!("build: linking a layer's files failed: {e}"),
                }
            }
            super::donor::save(&dir, &key, &chain_id, &names)
        })
        .await
        .map_err(|e| Error::Internal(format!("making a layer's snapshot crashed: {e}")))?
    }

    /// Writes the gathered tar over the state's filesystem; returns the
    /// new layer.
    /// `donor` is the step's record key and the tar's names, when the tar
    /// is the layer itself: its snapshot is then made with the files of
    /// the last layer recorded under that key ([`super::donor`]).
    async fn apply_tar(
        &self,
        state: &State,
        tar_path: &Path,
        through_container: bool,
        donor: Option<(String, super::donor::Names)>,
    ) -> Result<crate::image::compose::NewLayer> {
        let images = self.builder.images.clone();
        let image = match &state.image {
            Some(image) if through_container => image,
            // The tar holds every parent the image lacks: it is the layer.
            _ => {
                let path = tar_path.to_path_buf();
                let layer = tokio::task::spawn_blocking(move || {
                    images.store_layer(|w| {
                        let mut f = File::open(&path)
                            .map_err(|e| Error::io("reading the gathered files", e))?;
                        io::copy(&mut f, w)
                            .map(|_| ())
                            .map_err(|e| Error::io("writing a layer", e))
                    })
                })
                .await
                .map_err(|e| Error::Internal(format!("storing the layer crashed: {e}")))??;
                if let Some((key, names)) = donor {
                    self.snapshot_with_donor(state, &layer, tar_path, key, names)
                        .await?;
                }
                return Ok(layer);
            }
        };
        let containers = self.builder.containers.clone();
        let scratch =
            Scratch::create(&containers, step_container(&image.id, &state.config)).await?;
        let path = tar_path.to_path_buf();
        let id = scratch.id().to_string();
        let layer = async {
            containers
                .with_rootfs(&id, true, move |root| {
                    crate::runtime::copy::copy_in(root, "/", true, || File::open(&path))
                })
                .await?;
            let record = containers.find(&id)?.record();
            let c = containers.clone();
            tokio::task::spawn_blocking(move || images.store_layer(|w| c.changes_tar(&record, w)))
                .await
                .map_err(|e| Error::Internal(format!("storing the layer crashed: {e}")))?
        }
        .await;
        scratch.finish(layer).await
    }
}
