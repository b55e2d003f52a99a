//! Layer snapshots: one directory per layer stack, named by its chain id,
//! laid out for overlayfs (`<root>/<hex>/fs` is a lowerdir). A snapshot is
//! built in a `.partial` directory and renamed into place only when the
//! layer applied cleanly and matched its digest; anything `.partial` found
//! at start is a leftover of a crash and is removed.

pub mod apply;
pub mod overlay;
pub mod resolve;

use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::digest;
use crate::error::{Error, Result};

/// What a snapshot holds, recorded beside it.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Entries the layer held.
    pub entries: u64,
    /// Bytes of file content.
    pub bytes: u64,
}

/// The directory of all snapshots.
pub struct Snapshots {
    dir: PathBuf,
}

static PARTIAL_SEQ: AtomicU64 = AtomicU64::new(0);

impl Snapshots {
    /// Opens (creating) the snapshot directory and removes what a crash left
    /// half-built.
    pub fn open(dir: PathBuf) -> Result<Self> {
        fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        for entry in
            fs::read_dir(&dir).map_err(|e| Error::io("cannot read the snapshot directory", e))?
        {
            let entry = entry.map_err(|e| Error::io("cannot read the snapshot directory", e))?;
            if entry.file_name().to_string_lossy().contains(".partial") {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
        Ok(Snapshots { dir })
    }

    fn path(&self, chain_id: &str) -> Result<PathBuf> {
        Ok(self.dir.join(digest::hex_of(chain_id)?))
    }

    /// The directory overlayfs uses for this snapshot.
    pub fn fs_path(&self, chain_id: &str) -> Result<PathBuf> {
        Ok(self.path(chain_id)?.join("fs"))
    }

    /// What the snapshot holds, or None when it does not exist.
    pub fn info(&self, chain_id: &str) -> Option<SnapshotInfo> {
        let text = fs::read(self.path(chain_id).ok()?.join("info.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Starts building a snapshot; it exists only once committed.
    pub fn begin(&self, chain_id: &str) -> Result<PartialSnapshot> {
        let final_path = self.path(chain_id)?;
        let seq = PARTIAL_SEQ.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!(
            "{}.partial-{}-{seq}",
            digest::hex_of(chain_id)?,
            std::process::id()
        ));
        fs::create_dir_all(path.join("fs"))
            .map_err(|e| Error::io("cannot create a snapshot", e))?;
        Ok(PartialSnapshot {
            path,
            final_path,
            committed: false,
        })
    }

    /// Removes a snapshot and returns the bytes it held.
    pub fn remove(&self, chain_id: &str) -> Result<u64> {
        let size = self.info(chain_id).map_or(0, |i| i.bytes);
        let path = self.path(chain_id)?;
        // Rename first so a crash mid-removal leaves a `.partial` leftover
        // that the next start clears, never a half-deleted snapshot.
        let doomed = self
            .dir
            .join(format!("{}.partial-rm", digest::hex_of(chain_id)?));
        match fs::rename(&path, &doomed) {
            Ok(()) => {
                fs::remove_dir_all(&doomed).map_err(|e| Error::io("cannot remove a snapshot", e))?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(Error::io("cannot remove a snapshot", e)),
        }
        Ok(size)
    }

    /// The chain ids of every complete snapshot.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)
            .map_err(|e| Error::io("cannot read the snapshot directory", e))?
        {
            let name = entry
                .map_err(|e| Error::io("cannot read the snapshot directory", e))?
                .file_name();
            let name = name.to_string_lossy();
            if name.len() == 64 && !name.contains('.') {
                out.push(format!("sha256:{name}"));
            }
        }
        Ok(out)
    }
}

/// A snapshot being built; dropped without [`commit`](Self::commit), it is
/// removed.
pub struct PartialSnapshot {
    path: PathBuf,
    final_path: PathBuf,
    committed: bool,
}

impl PartialSnapshot {
    /// Where the layer is written.
    pub fn fs(&self) -> PathBuf {
        self.path.join("fs")
    }

    /// Records what the layer held and moves the snapshot into place.
    pub fn commit(mut self, info: SnapshotInfo) -> Result<()> {
        let text = serde_json::to_vec(&info).expect("plain struct");
        fs::write(self.path.join("info.json"), text)
            .map_err(|e| Error::io("cannot record a snapshot", e))?;
        match fs::rename(&self.path, &self.final_path) {
            Ok(()) => {}
            // Another pull finished the same snapshot first: keep theirs.
            Err(_) if self.final_path.join("info.json").exists() => {
                let _ = fs::remove_dir_all(&self.path);
            }
            Err(e) => return Err(Error::io("cannot commit a snapshot", e)),
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for PartialSnapshot {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
