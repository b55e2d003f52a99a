//! Image archives, the documents' second way to share an image.
//!
//! `save` writes what Docker 25+ writes: an OCI layout (`oci-layout`,
//! `index.json`, `blobs/sha256/…`) that also carries Docker's
//! `manifest.json`, with the original compressed blobs and manifest, so a
//! save → load round trip keeps every digest. `load` reads that, plain OCI
//! layouts, and older `docker save` archives (`manifest.json` pointing at
//! uncompressed `layer.tar` files). An archive is hostile until proven
//! otherwise: only regular files with plain relative names are taken, into
//! a private spool directory, and every blob is verified against its digest.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Deserialize;

use super::layers::{BlobSource, Compression};
use super::manage::ImageEntry;
use super::manifest::{self, Descriptor, Document, Index, Manifest, Platform};
use super::reference::{familiar, ImageRef};
use super::{ImageService, Progress, ProgressTx};
use crate::digest;
use crate::error::{Error, Result};

/// The images a save will write, with the names to record for each.
pub struct SavePlan {
    images: Vec<(ImageEntry, Vec<String>)>,
}

/// A file in the agent's private spool area, removed when dropped.
pub struct Spool {
    path: PathBuf,
}

impl Spool {
    /// Opens the spool file for writing.
    pub fn reopen(&self) -> io::Result<File> {
        File::create(&self.path)
    }

    /// Where the spool file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the spool file for reading.
    pub fn open_read(&self) -> io::Result<File> {
        File::open(&self.path)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        let _ = fs::remove_dir_all(self.path.with_extension("d"));
    }
}

static SPOOL_SEQ: AtomicU64 = AtomicU64::new(0);

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

impl ImageService {
    /// Resolves the references to save.
    pub fn plan_save(&self, refs: &[String]) -> Result<SavePlan> {
        if refs.is_empty() {
            return Err(Error::InvalidArgument(
                "name at least one image to save".into(),
            ));
        }
        let mut images: Vec<(ImageEntry, Vec<String>)> = Vec::new();
        for r in refs {
            let entry = self.find(r)?;
            let names = match ImageRef::parse(r) {
                Ok(parsed) if entry.tags.contains(&parsed.key()) => vec![parsed.key()],
                _ => entry.tags.clone(),
            };
            match images
                .iter_mut()
                .find(|(e, _)| e.record.id == entry.record.id)
            {
                Some((_, existing)) => existing.extend(names),
                None => images.push((entry, names)),
            }
        }
        Ok(SavePlan { images })
    }

    /// Writes the archive for a plan.
    pub fn write_archive(&self, plan: &SavePlan, out: &mut dyn Write) -> Result<()> {
        let fail = |e: io::Error| Error::Unavailable(format!("cannot write the archive: {e}"));
        let mut tar = tar::Builder::new(out);
        let mut written = std::collections::HashSet::new();
        let mut index = Vec::new();
        let mut docker = Vec::new();
        for (entry, names) in &plan.images {
            let r = &entry.record;
            let mut blobs = vec![r.manifest_digest.clone(), r.id.clone()];
            blobs.extend(r.layers.iter().map(|l| l.digest.clone()));
            for d in &blobs {
                if written.insert(d.clone()) {
                    let path = self.content.path(d)?;
                    let mut file = File::open(&path)
                        .map_err(|e| Error::io(format!("blob {d} is missing from the store"), e))?;
                    let len = file.metadata().map_err(fail)?.len();
                    append(
                        &mut tar,
                        &format!("blobs/sha256/{}", digest::hex_of(d)?),
                        len,
                        &mut file,
                    )
                    .map_err(fail)?;
                }
            }
            let size = self
                .content
                .path(&r.manifest_digest)?
                .metadata()
                .map(|m| m.len())
                .unwrap_or(0);
            let names_or_none: Vec<Option<&String>> = if names.is_empty() {
                vec![None]
            } else {
                names.iter().map(Some).collect()
            };
            for name in names_or_none {
                let mut annotations = BTreeMap::new();
                if let Some(name) = name {
                    annotations.insert("io.containerd.image.name".to_string(), name.clone());
                    if let Some(tag) = ImageRef::parse(name)
                        .ok()
                        .and_then(|p| p.tag().map(str::to_string))
                    {
                        annotations.insert("org.opencontainers.image.ref.name".to_string(), tag);
                    }
                }
                index.push(Descriptor {
                    media_type: r.manifest_media_type.clone(),
                    digest: r.manifest_digest.clone(),
                    size,
                    platform: None,
                    annotations: Some(annotations),
                });
            }
            docker.push(serde_json::json!({
                "Config": format!("blobs/sha256/{}", digest::hex_of(&r.id)?),
                "RepoTags": names.iter().map(|n| familiar(n)).collect::<Vec<_>>(),
                "Layers": r.layers.iter().map(|l| format!("blobs/sha256/{}", &l.digest[7..])).collect::<Vec<_>>(),
            }));
        }
        let index = Index {
            schema_version: 2,
            media_type: Some(manifest::OCI_INDEX.into()),
            manifests: index,
        };
        let docs: [(&str, Vec<u8>); 3] = [
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
            ("index.json", serde_json::to_vec(&index).expect("plain")),
            ("manifest.json", serde_json::to_vec(&docker).expect("plain")),
        ];
        for (name, data) in docs {
            append(&mut tar, name, data.len() as u64, &mut data.as_slice()).map_err(fail)?;
        }
        tar.into_inner().map_err(fail)?.flush().map_err(fail)?;
        for (entry, _) in &plan.images {
            self.emit("save", &entry.record.id, "");
        }
        Ok(())
    }

    /// A fresh spool file for an incoming archive.
    pub fn spool_file(&self) -> Result<Spool> {
        let seq = SPOOL_SEQ.fetch_add(1, Ordering::Relaxed);
        Ok(Spool {
            path: self
                .root()
                .join("ingest")
                .join(format!("load-{}-{seq}.tar", std::process::id())),
        })
    }

    /// Loads every image an archive holds; returns the names (or ids) loaded.
    pub async fn load(self: &Arc<Self>, spool: Spool, tx: &ProgressTx) -> Result<Vec<String>> {
        let _guard = self.gc_lock.read().await;
        let dir = spool.path.with_extension("d");
        let (archive, unpack_dir) = (spool.path.clone(), dir.clone());
        tokio::task::spawn_blocking(move || extract_plain_files(&archive, &unpack_dir))
            .await
            .map_err(|e| Error::Internal(format!("the archive reader crashed: {e}")))??;
        let images = if dir.join("index.json").is_file() {
            self.read_oci_layout(&dir)?
        } else if dir.join("manifest.json").is_file() {
            self.read_docker_archive(&dir)?
        } else {
            return Err(Error::InvalidArgument(
                "this archive is not an image archive: it has neither index.json nor manifest.json (use a file from `berth save` or `docker save`)".into(),
            ));
        };
        let mut loaded = Vec::new();
        for (manifest_bytes, names) in images {
            let id = self.store_loaded(&dir, &manifest_bytes, &names).await?;
            if names.is_empty() {
                let _ = tx.send(Progress {
                    status: format!("Loaded image ID: {id}"),
                    ..progress_blank()
                });
                loaded.push(id.clone());
            }
            for n in names {
                let _ = tx.send(Progress {
                    status: format!("Loaded image: {}", familiar(&n)),
                    ..progress_blank()
                });
                loaded.push(familiar(&n));
            }
            self.emit("load", &id, "");
        }
        drop(spool);
        Ok(loaded)
    }

    /// The manifests (with names) an OCI layout lists.
    fn read_oci_layout(&self, dir: &Path) -> Result<Vec<(Vec<u8>, Vec<String>)>> {
        let index: Index =
            serde_json::from_slice(&read_small(&dir.join("index.json"))?).map_err(|e| {
                Error::InvalidArgument(format!("the archive's index.json is malformed: {e}"))
            })?;
        let mut by_digest: Vec<(Vec<u8>, Vec<String>)> = Vec::new();
        let mut digests: Vec<String> = Vec::new();
        for desc in &index.manifests {
            let bytes = read_verified(dir, &desc.digest)?;
            let (bytes, digest) = match manifest::parse_document(&bytes)? {
                Document::Manifest(_) => (bytes, desc.digest.clone()),
                Document::Index(inner) => {
                    let chosen = inner.select(&Platform::host())?;
                    (read_verified(dir, &chosen.digest)?, chosen.digest.clone())
                }
            };
            let annotations = desc.annotations.clone().unwrap_or_default();
            let name = annotations
                .get("io.containerd.image.name")
                .cloned()
                .or_else(|| {
                    annotations
                        .get("org.opencontainers.image.ref.name")
                        .filter(|n| n.contains('/') || n.contains(':'))
                        .cloned()
                })
                .and_then(|n| ImageRef::parse(&n).ok())
                .filter(|r| r.digest().is_none())
                .map(|r| r.key());
            match digests.iter().position(|d| *d == digest) {
                Some(i) => by_digest[i].1.extend(name),
                None => {
                    digests.push(digest);
                    by_digest.push((bytes, name.into_iter().collect()));
                }
            }
        }
        Ok(by_digest)
    }

    /// The images an older `docker save` archive holds, each given a Docker
    /// schema 2 manifest over its files, which are stored as blobs.
    fn read_docker_archive(&self, dir: &Path) -> Result<Vec<(Vec<u8>, Vec<String>)>> {
        let entries: Vec<DockerEntry> =
            serde_json::from_slice(&read_small(&dir.join("manifest.json"))?).map_err(|e| {
                Error::InvalidArgument(format!("the archive's manifest.json is malformed: {e}"))
            })?;
        let mut out = Vec::new();
        for e in entries {
            let config = self.import_file(dir, &e.config)?;
            let mut layers = Vec::new();
            for l in &e.layers {
                let mut d = self.import_file(dir, l)?;
                let mut head = [0u8; 4];
                let n = File::open(self.content.path(&d.digest)?)
                    .and_then(|mut f| f.read(&mut head))
                    .unwrap_or(0);
                d.media_type = match Compression::sniff(&head[..n]) {
                    Compression::Gzip => "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
                    Compression::None => "application/vnd.docker.image.rootfs.diff.tar",
                }
                .into();
                layers.push(d);
            }
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(manifest::DOCKER_MANIFEST.into()),
                config: Descriptor {
                    media_type: "application/vnd.docker.container.image.v1+json".into(),
                    ..config
                },
                layers,
            };
            let bytes = serde_json::to_vec(&manifest).expect("plain");
            let names = e
                .repo_tags
                .unwrap_or_default()
                .iter()
                .filter_map(|t| ImageRef::parse(t).ok())
                .map(|r| r.key())
                .collect();
            out.push((bytes, names));
        }
        Ok(out)
    }

    /// Stores a file of the archive as a blob named by its own digest.
    fn import_file(&self, dir: &Path, name: &str) -> Result<Descriptor> {
        let path = safe_join(dir, name).ok_or_else(|| {
            Error::InvalidArgument(format!("the archive names a file outside itself: {name}"))
        })?;
        let mut hasher = digest::Hasher::default();
        let mut f = File::open(&path).map_err(|_| {
            Error::InvalidArgument(format!(
                "the archive lacks {name}, which its manifest names"
            ))
        })?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|e| Error::io("cannot read the archive", e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let size = hasher.len;
        let d = hasher.finish();
        self.import_blob(&path, &d)?;
        Ok(Descriptor {
            media_type: String::new(),
            digest: d,
            size,
            platform: None,
            annotations: None,
        })
    }

    /// Copies a spooled file into the content store, verifying its digest.
    fn import_blob(&self, path: &Path, digest: &str) -> Result<()> {
        if self.content.has(digest) {
            return Ok(());
        }
        let mut w = self.content.ingest(digest)?;
        let mut f = File::open(path).map_err(|e| Error::io("cannot read the archive", e))?;
        io::copy(&mut f, &mut w).map_err(|e| Error::io("cannot store a blob", e))?;
        w.commit(None)
    }

    /// Stores one image from the spool: blobs, snapshots, record, names.
    pub(super) async fn store_loaded(
        self: &Arc<Self>,
        dir: &Path,
        manifest_bytes: &[u8],
        names: &[String],
    ) -> Result<String> {
        let Document::Manifest(m) = manifest::parse_document(manifest_bytes)? else {
            return Err(Error::InvalidArgument(
                "the archive's manifest is an index inside an index".into(),
            ));
        };
        for desc in m.layers.iter().chain(std::iter::once(&m.config)) {
            let hex = digest::hex_of(&desc.digest)?;
            let path = dir.join("blobs/sha256").join(hex);
            if !self.content.has(&desc.digest) {
                if !path.is_file() {
                    return Err(Error::InvalidArgument(format!(
                        "the archive lacks blob {}, which its manifest names",
                        desc.digest
                    )));
                }
                self.import_blob(&path, &desc.digest)?;
            }
        }
        let config = manifest::parse_config(&self.content.read(&m.config.digest)?)?;
        let diff_ids = super::pull::check_layers(&m, &config)?;
        let chain = digest::chain_ids(&diff_ids);
        let mut size = 0;
        for (i, layer) in m.layers.iter().enumerate() {
            let source = BlobSource::Stored(self.content.path(&layer.digest)?);
            self.ensure_snapshot(
                chain[i].clone(),
                diff_ids[i].clone(),
                chain[..i].to_vec(),
                source,
            )
            .await?;
            size += self.snapshots.info(&chain[i]).map_or(0, |s| s.bytes);
        }
        let manifest_digest = digest::of_bytes(manifest_bytes);
        self.content.write(&manifest_digest, manifest_bytes)?;
        let record = super::pull::image_record(&m, &manifest_digest, &diff_ids, size, vec![]);
        self.meta.put_image(&record, names)?;
        Ok(record.id)
    }
}

fn progress_blank() -> Progress {
    Progress {
        id: String::new(),
        status: String::new(),
        current: 0,
        total: 0,
    }
}

fn append(
    tar: &mut tar::Builder<&mut dyn Write>,
    name: &str,
    len: u64,
    data: &mut dyn Read,
) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(len);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, data)
}

/// `dir/name` when `name` is a plain relative path of at most four parts.
fn safe_join(dir: &Path, name: &str) -> Option<PathBuf> {
    let rel = Path::new(name);
    let parts: Vec<_> = rel
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    if parts.is_empty()
        || parts.len() > 4
        || !parts.iter().all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    Some(dir.join(rel))
}

/// Takes the archive's regular files with plain names into `dir`. A
/// symlink between two files of the archive (older `docker save` links a
/// repeated `layer.tar` to the first) becomes a copy of its target; other
/// links, devices and names that climb out are skipped.
fn extract_plain_files(archive: &Path, dir: &Path) -> Result<()> {
    let bad =
        |e: io::Error| Error::InvalidArgument(format!("the archive is not a readable tar: {e}"));
    let spool = |e: io::Error| Error::io("cannot spool the archive", e);
    fs::create_dir_all(dir).map_err(spool)?;
    let mut tar = tar::Archive::new(
        File::open(archive).map_err(|e| Error::io("cannot open the spooled archive", e))?,
    );
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let Some(dest) = safe_join(dir, &name) else {
            continue;
        };
        match entry.header().entry_type() {
            tar::EntryType::Regular => {}
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(bad)?
                    .map(|t| t.to_string_lossy().into_owned());
                let parent = Path::new(&name).parent().unwrap_or(Path::new(""));
                let resolved = target.and_then(|t| inside_archive(&parent.join(t)));
                if let Some(source) = resolved.and_then(|r| safe_join(dir, &r)) {
                    links.push((dest, source));
                }
                continue;
            }
            _ => continue,
        }
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(spool)?;
        }
        if fs::symlink_metadata(&dest).is_ok() {
            continue;
        }
        let mut out = File::create(&dest).map_err(spool)?;
        io::copy(&mut entry, &mut out).map_err(bad)?;
    }
    for (dest, source) in links {
        if fs::symlink_metadata(&dest).is_err()
            && fs::symlink_metadata(&source).is_ok_and(|m| m.is_file())
        {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent).map_err(spool)?;
            }
            fs::hard_link(&source, &dest)
                .or_else(|_| fs::copy(&source, &dest).map(drop))
                .map_err(spool)?;
        }
    }
    Ok(())
}

/// Normalises a path inside the archive (`a/../b` is `b`); None when it
/// climbs out or is absolute.
fn inside_archive(path: &Path) -> Option<String> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    let joined: PathBuf = parts.iter().collect();
    Some(joined.to_string_lossy().into_owned())
}

fn read_small(path: &Path) -> Result<Vec<u8>> {
    let meta = fs::metadata(path).map_err(|e| Error::io("cannot read the archive", e))?;
    if meta.len() > 16 << 20 {
        return Err(Error::InvalidArgument(format!(
            "{} in the archive is too large to be a manifest",
            path.display()
        )));
    }
    fs::read(path).map_err(|e| Error::io("cannot read the archive", e))
}

/// Reads a (small) blob from the spooled layout and checks its digest.
fn read_verified(dir: &Path, d: &str) -> Result<Vec<u8>> {
    let bytes = read_small(&dir.join("blobs/sha256").join(digest::hex_of(d)?)).map_err(|_| {
        Error::InvalidArgument(format!("the archive lacks blob {d}, which its index names"))
    })?;
    let actual = digest::of_bytes(&bytes);
    if actual != d {
        return Err(Error::DataLoss(format!(
            "blob {d} in the archive hashes to {actual}: the archive is corrupt"
        )));
    }
    Ok(bytes)
}
