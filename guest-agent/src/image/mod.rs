//! Images: pulling from registries, the content store, layer snapshots,
//! listing, tagging, removal, garbage collection, push and archives.
//!
//! [`ImageService`] is the engine's entry point for all of it; the gRPC
//! layer only translates requests into its calls.

pub mod archive;
pub mod content;
pub mod download;
pub mod layers;
pub mod manage;
pub mod manifest;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, Shared};
use tokio::sync::{broadcast, mpsc, RwLock};

pub use berth_api::names::short_id;

use crate::error::Result;
use crate::snapshot::Snapshots;
use crate::store::Metadata;
use content::ContentStore;
use download::Download;
use registry::RegistryOptions;

/// One step of long work (pull, push, load), as clients show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// A layer's short id, or empty for the whole image.
    pub id: String,
    /// Docker's wording ("Downloading", "Pull complete", …).
    pub status: String,
    /// Bytes done.
    pub current: u64,
    /// Bytes in all.
    pub total: u64,
}

/// Where progress goes; a closed receiver just means nobody is watching.
pub type ProgressTx = mpsc::UnboundedSender<Progress>;

/// Something that happened to an image, for the Events stream.
#[derive(Debug, Clone)]
pub struct ImageEvent {
    /// "pull", "push", "tag", "untag", "delete", "load", "save".
    pub action: String,
    /// The image id or reference.
    pub id: String,
    /// The reference involved, when there is one.
    pub name: String,
}

type SharedUnpack = Shared<BoxFuture<'static, Result<()>>>;

/// The image engine.
pub struct ImageService {
    root: PathBuf,
    /// Blobs by digest.
    pub content: ContentStore,
    /// Layer snapshots by chain id.
    pub snapshots: Snapshots,
    /// Image records and tags.
    pub meta: Metadata,
    /// Which registries may use plain HTTP.
    pub registries: RegistryOptions,
    downloads: Mutex<HashMap<String, Arc<Download>>>,
    unpacks: Mutex<HashMap<String, SharedUnpack>>,
    /// Pulls and loads hold it shared; removal and prune hold it exclusively,
    /// so garbage collection never takes what a pull is still assembling.
    gc_lock: RwLock<()>,
    /// Image events for subscribers.
    pub events: broadcast::Sender<ImageEvent>,
}

impl ImageService {
    /// Opens the image store under `root`, repairing what a crash left.
    pub fn open(root: &Path, registries: RegistryOptions) -> Result<Arc<Self>> {
        std::fs::create_dir_all(root)
            .map_err(|e| crate::error::Error::io(format!("cannot create {}", root.display()), e))?;
        Ok(Arc::new(ImageService {
            root: root.to_path_buf(),
            content: ContentStore::open(root)?,
            snapshots: Snapshots::open(root.join("snapshots"))?,
            meta: Metadata::open(&root.join("metadata.redb"))?,
            registries,
            downloads: Mutex::new(HashMap::new()),
            unpacks: Mutex::new(HashMap::new()),
            gc_lock: RwLock::new(()),
            events: broadcast::channel(256).0,
        }))
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn emit(&self, action: &str, id: &str, name: &str) {
        let _ = self.events.send(ImageEvent {
            action: action.into(),
            id: id.into(),
            name: name.into(),
        });
    }
}

/// Sends one progress message (dropped when nobody is listening).
pub(crate) fn say(tx: &ProgressTx, id: &str, status: impl Into<String>, current: u64, total: u64) {
    let _ = tx.send(Progress {
        id: id.to_string(),
        status: status.into(),
        current,
        total,
    });
}
