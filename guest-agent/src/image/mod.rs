//! Images: pulling from registries, the content store, layer snapshots,
//! listing, tagging, removal, garbage collection, push and archives.
//!
//! [`ImageService`] is the engine's entry point for all of it; the gRPC
//! layer only translates requests into its calls.

pub mod archive;
pub mod cache;
pub mod compose;
pub mod content;
pub mod download;
pub mod layers;
pub mod manage;
pub mod manifest;
pub mod pull;
pub mod push;
pub mod query;
pub mod reference;
pub mod registry;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, Shared};
use tokio::sync::{mpsc, RwLock};

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
    pub events: crate::events::Events,
    /// Which containers use which image (image id → container ids), so
    /// images in use are never removed.
    pub users: std::sync::Mutex<std::collections::HashMap<String, Vec<String>>>,
}

impl ImageService {
    /// Opens the image store under `root`, repairing what a crash left.
    pub fn open(root: &Path, registries: RegistryOptions) -> Result<Arc<Self>> {
        std::fs::create_dir_all(root)
            .map_err(|e| crate::error::Error::io(format!("cannot create {}", root.display()), e))?;
        Ok(Arc::new(ImageService {
            root: root.to_path_buf(),
            meta: Metadata::open_in_background(&root.join("metadata.redb")),
            content: ContentStore::open(root)?,
            snapshots: Snapshots::open(root.join("snapshots"))?,
            registries,
            downloads: Mutex::new(HashMap::new()),
            unpacks: Mutex::new(HashMap::new()),
            gc_lock: RwLock::new(()),
            events: crate::events::Events::default(),
            users: Default::default(),
        }))
    }

    /// Records that container `container` uses image `image`.
    pub fn hold(&self, image: &str, container: &str) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let list = users.entry(image.to_string()).or_default();
        if !list.iter().any(|c| c == container) {
            list.push(container.to_string());
        }
    }

    /// Forgets that container `container` uses image `image`.
    pub fn release(&self, image: &str, container: &str) {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = users.get_mut(image) {
            list.retain(|c| c != container);
            if list.is_empty() {
                users.remove(image);
            }
        }
    }

    /// A container that uses image `image`, if any.
    pub fn user_of(&self, image: &str) -> Option<String> {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users.get(image).and_then(|l| l.first().cloned())
    }

    /// How many containers use image `image`.
    pub fn user_count(&self, image: &str) -> u32 {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users.get(image).map_or(0, |l| l.len() as u32)
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn emit(&self, action: &str, id: &str, name: &str) {
        self.events.emit("image", action, id, &[("name", name)]);
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
