//! Image metadata in redb, an embedded transactional database: every
//! change is one transaction, so a `kill -9` at any moment leaves either
//! the state before or the state after it, and redb repairs its file on
//! the next open. The records kept as files beside it are cleaned of
//! interrupted writes at start by [`records`].

pub mod records;

use std::path::Path;
use std::sync::{Arc, OnceLock};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Image id ("sha256:…" of the config) → JSON [`ImageRecord`].
const IMAGES: TableDefinition<&str, &[u8]> = TableDefinition::new("images");
/// Full reference ("docker.io/library/alpine:latest") → image id.
const TAGS: TableDefinition<&str, &str> = TableDefinition::new("tags");
/// Build cache key (a step's inputs, hashed) → the id of the image the
/// step made. Created by the first build.
const BUILD_CACHE: TableDefinition<&str, &str> = TableDefinition::new("build_cache");
/// A build cache entry: (key, image id).
pub type CacheEntry = (String, String);

/// Id of every image a build step made (whether or not a cache key still
/// points at it) → "". Hidden from `images` while untagged.
const BUILD_IMAGES: TableDefinition<&str, &str> = TableDefinition::new("build_images");
/// "images" → the format of the records in [`IMAGES`]. Databases written
/// before it existed have no such table: their records are version 0.
const FORMAT: TableDefinition<&str, u32> = TableDefinition::new("format");

/// The format of image records this agent writes. Version 0 had no
/// `version` field; its records are otherwise the same, and opening the
/// database rewrites them as version 1 in one transaction.
pub const IMAGE_RECORD_VERSION: u32 = 1;

/// One layer of a stored image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Digest of the blob as the registry serves it.
    pub digest: String,
    /// Media type of the blob.
    pub media_type: String,
    /// Size of the blob.
    pub size: u64,
    /// Digest of the uncompressed tar.
    pub diff_id: String,
    /// Chain id, which names the layer's snapshot.
    pub chain_id: String,
}

/// A stored image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The record's format ([`IMAGE_RECORD_VERSION`] when written by this
    /// agent).
    #[serde(default)]
    pub version: u32,
    /// The config's digest, which is the image's id.
    pub id: String,
    /// The digest of the manifest as pulled or loaded.
    pub manifest_digest: String,
    /// The manifest's media type.
    pub manifest_media_type: String,
    /// Layers, bottom first.
    pub layers: Vec<LayerRecord>,
    /// "name@sha256:…" for every repository it came from.
    pub repo_digests: Vec<String>,
    /// Unpacked size in bytes.
    pub size: u64,
    /// Seconds since the epoch when it was stored.
    pub stored_at: u64,
}

/// The metadata database.
///
/// It is opened on a thread of its own while the agent starts: redb marks
/// a database it opens for writing with a header write and a disk flush,
/// about 0.1 s through a VM's emulated disk, which nothing needs before
/// the first image request. Requests wait for the open to finish.
pub struct Metadata {
    db: Arc<OnceLock<std::result::Result<Database, String>>>,
}

impl Metadata {
    /// Starts opening (creating, or repairing after a crash) the database
    /// file in the background.
    pub fn open_in_background(path: &Path) -> Self {
        let me = Metadata { db: Arc::default() };
        let (cell, path) = (me.db.clone(), path.to_path_buf());
        let spawned = std::thread::Builder::new()
            .name("metadata-open".into())
            .spawn(move || {
                let opened = open_database(&path);
                if let Err(e) = &opened {
                    tracing::error!("{e}");
                }
                let _ = cell.set(opened);
            });
        if let Err(e) = spawned {
            let _ = me.db.set(Err(format!(
                "cannot start opening the metadata database: {e}"
            )));
        }
        me
    }

    /// The open database, once it is open.
    fn db(&self) -> Result<&Database> {
        self.db
            .wait()
            .as_ref()
            .map_err(|e| Error::Internal(e.clone()))
    }

    /// Stores an image and points `tags` at it, in one transaction. A tag
    /// that named another image moves.
    pub fn put_image(&self, record: &ImageRecord, tags: &[String]) -> Result<()> {
        let txn = self.db()?.begin_write()?;
        {
            let mut images = txn.open_table(IMAGES)?;
            let mut merged = record.clone();
            if let Some(old) = images.get(record.id.as_str())? {
                if let Ok(old) = serde_json::from_slice::<ImageRecord>(old.value()) {
                    for d in old.repo_digests {
                        if !merged.repo_digests.contains(&d) {
                            merged.repo_digests.push(d);
                        }
                    }
                }
            }
            let json = serde_json::to_vec(&merged).expect("plain struct");
            images.insert(record.id.as_str(), json.as_slice())?;
            let mut t = txn.open_table(TAGS)?;
            for tag in tags {
                t.insert(tag.as_str(), record.id.as_str())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// One image by id.
    pub fn image(&self, id: &str) -> Result<Option<ImageRecord>> {
        let txn = self.db()?.begin_read()?;
        let images = txn.open_table(IMAGES)?;
        Ok(match images.get(id)? {
            Some(v) => Some(decode(v.value())?),
            None => None,
        })
    }

    /// Every image with its tags.
    pub fn images(&self) -> Result<Vec<(ImageRecord, Vec<String>)>> {
        let txn = self.db()?.begin_read()?;
        let images = txn.open_table(IMAGES)?;
        let tags = txn.open_table(TAGS)?;
        let mut by_id: std::collections::HashMap<String, Vec<String>> = Default::default();
        for row in tags.iter()? {
            let (k, v) = row?;
            by_id
                .entry(v.value().to_string())
                .or_default()
                .push(k.value().to_string());
        }
        let mut out = Vec::new();
        for row in images.iter()? {
            let (_, v) = row?;
            let record = decode(v.value())?;
            let mut t = by_id.remove(&record.id).unwrap_or_default();
            t.sort();
            out.push((record, t));
        }
        Ok(out)
    }

    /// The image a full reference names.
    pub fn tag(&self, reference: &str) -> Result<Option<String>> {
        let txn = self.db()?.begin_read()?;
        let tags = txn.open_table(TAGS)?;
        Ok(tags.get(reference)?.map(|v| v.value().to_string()))
    }

    /// Points a reference at an image.
    pub fn set_tag(&self, reference: &str, id: &str) -> Result<()> {
        let txn = self.db()?.begin_write()?;
        txn.open_table(TAGS)?.insert(reference, id)?;
        txn.commit()?;
        Ok(())
    }

    /// Removes a reference; true when it existed.
    pub fn remove_tag(&self, reference: &str) -> Result<bool> {
        let txn = self.db()?.begin_write()?;
        let existed = txn.open_table(TAGS)?.remove(reference)?.is_some();
        txn.commit()?;
        Ok(existed)
    }

    /// Deletes an image record and every tag that names it.
    pub fn remove_image(&self, id: &str) -> Result<Vec<String>> {
        let txn = self.db()?.begin_write()?;
        let mut removed = Vec::new();
        {
            let mut tags = txn.open_table(TAGS)?;
            let names: Vec<String> = tags
                .iter()?
                .filter_map(|r| r.ok())
                .filter(|(_, v)| v.value() == id)
                .map(|(k, _)| k.value().to_string())
                .collect();
            for name in names {
                tags.remove(name.as_str())?;
                removed.push(name);
            }
            txn.open_table(IMAGES)?.remove(id)?;
        }
        txn.commit()?;
        Ok(removed)
    }
}

impl Metadata {
    /// The image a build step with this cache key made, if one did.
    pub fn cached(&self, key: &str) -> Result<Option<String>> {
        let txn = self.db()?.begin_read()?;
        let Ok(table) = txn.open_table(BUILD_CACHE) else {
            return Ok(None);
        };
        Ok(table.get(key)?.map(|v| v.value().to_string()))
    }

    /// Remembers the image a build step made.
    pub fn set_cached(&self, key: &str, id: &str) -> Result<()> {
        let txn = self.db()?.begin_write()?;
        txn.open_table(BUILD_CACHE)?.insert(key, id)?;
        txn.open_table(BUILD_IMAGES)?.insert(id, "")?;
        txn.commit()?;
        Ok(())
    }

    /// The ids of every image a build step made.
    pub fn build_images(&self) -> Result<Vec<String>> {
        let txn = self.db()?.begin_read()?;
        let Ok(table) = txn.open_table(BUILD_IMAGES) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in table.iter()? {
            out.push(row?.0.value().to_string());
        }
        Ok(out)
    }

    /// Every build cache entry: (key, image id).
    pub fn cache_entries(&self) -> Result<Vec<CacheEntry>> {
        let txn = self.db()?.begin_read()?;
        let Ok(table) = txn.open_table(BUILD_CACHE) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push((k.value().to_string(), v.value().to_string()));
        }
        Ok(out)
    }

    /// Forgets every build cache entry; returns the entries and the ids
    /// of the images build steps made.
    pub fn clear_cache(&self) -> Result<(Vec<CacheEntry>, Vec<String>)> {
        let entries = self.cache_entries()?;
        let ids = self.build_images()?;
        if entries.is_empty() && ids.is_empty() {
            return Ok((entries, ids));
        }
        let txn = self.db()?.begin_write()?;
        {
            let mut table = txn.open_table(BUILD_CACHE)?;
            for (k, _) in &entries {
                table.remove(k.as_str())?;
            }
            let mut table = txn.open_table(BUILD_IMAGES)?;
            for id in &ids {
                table.remove(id.as_str())?;
            }
        }
        txn.commit()?;
        Ok((entries, ids))
    }
}

fn decode(bytes: &[u8]) -> Result<ImageRecord> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Internal(format!("an image record is unreadable: {e}")))
}

/// Rewrites every image record older than [`IMAGE_RECORD_VERSION`] (part
/// of the caller's transaction, so all or none are upgraded). A record
/// that cannot be read is left as it is.
fn upgrade_images(
    images: &mut redb::Table<'_, &str, &[u8]>,
) -> std::result::Result<(), redb::Error> {
    let mut old = Vec::new();
    for row in images.iter()? {
        let (k, v) = row?;
        if let Ok(record) = serde_json::from_slice::<ImageRecord>(v.value()) {
            if record.version < IMAGE_RECORD_VERSION {
                old.push((k.value().to_string(), record));
            }
        }
    }
    for (id, mut record) in old {
        record.version = IMAGE_RECORD_VERSION;
        if let Ok(json) = serde_json::to_vec(&record) {
            images.insert(id.as_str(), json.as_slice())?;
        }
    }
    Ok(())
}

/// Opens the database file, creates its tables when they are missing, and
/// upgrades records of an older format.
fn open_database(path: &Path) -> std::result::Result<Database, String> {
    let open = || -> std::result::Result<Database, redb::Error> {
        let db = Database::create(path)?;
        // Creating the tables is a commit (disk flushes, slow in a VM):
        // done only when they are missing, not at every start.
        let read = db.begin_read()?;
        let missing = read.open_table(IMAGES).is_err() || read.open_table(TAGS).is_err();
        let format = match read.open_table(FORMAT) {
            Ok(t) => t.get("images")?.map_or(0, |v| v.value()),
            Err(_) => 0,
        };
        drop(read);
        if missing || format < IMAGE_RECORD_VERSION {
            let txn = db.begin_write()?;
            {
                let mut images = txn.open_table(IMAGES)?;
                txn.open_table(TAGS)?;
                upgrade_images(&mut images)?;
                txn.open_table(FORMAT)?
                    .insert("images", IMAGE_RECORD_VERSION)?;
            }
            txn.commit()?;
        }
        Ok(db)
    };
    open().map_err(|e| format!("cannot open the metadata database {}: {e}", path.display()))
}
