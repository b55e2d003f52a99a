//! The content store: every blob (manifest, config, layer) once, named by
//! its digest under `blobs/sha256/<hex>`. A blob is written to `ingest/`
//! and renamed into place only after its sha256 and size matched; `ingest/`
//! is emptied at start, so a crash never leaves a blob that counts as
//! complete but is not.

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::digest::{self, Hasher};
use crate::error::{Error, Result};

/// The blob store.
pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

static INGEST_SEQ: AtomicU64 = AtomicU64::new(0);

impl ContentStore {
    /// Opens (creating) the store under `root` and clears half-written blobs.
    pub fn open(root: &std::path::Path) -> Result<Self> {
        let blobs = root.join("blobs/sha256");
        let ingest = root.join("ingest");
        let _ = fs::remove_dir_all(&ingest);
        for dir in [&blobs, &ingest] {
            fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        }
        Ok(ContentStore { blobs, ingest })
    }

    /// Where a complete blob lives.
    pub fn path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.blobs.join(digest::hex_of(digest)?))
    }

    /// True when the blob is stored complete.
    pub fn has(&self, digest: &str) -> bool {
        self.path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    /// Reads a whole (small) blob: a manifest or a config.
    pub fn read(&self, digest: &str) -> Result<Vec<u8>> {
        fs::read(self.path(digest)?).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => {
                Error::not_found(format!("blob {digest} is not in the store"))
            }
            _ => Error::io(format!("cannot read blob {digest}"), e),
        })
    }

    /// Stores bytes whose digest is known, verifying it.
    pub fn write(&self, expected: &str, data: &[u8]) -> Result<()> {
        if self.has(expected) {
            return Ok(());
        }
        let actual = digest::of_bytes(data);
        if actual != expected {
            return Err(Error::DataLoss(format!(
                "content does not match its digest: expected {expected}, got {actual}"
            )));
        }
        let mut w = self.ingest(expected)?;
        w.write_all(data)
            .map_err(|e| Error::io("cannot write a blob", e))?;
        w.commit(None)
    }

    /// Starts writing a blob that must end with this digest.
    pub fn ingest(&self, expected: &str) -> Result<BlobWriter> {
        let final_path = self.path(expected)?;
        let seq = INGEST_SEQ.fetch_add(1, Ordering::Relaxed);
        let path = self
            .ingest
            .join(format!("{}-{seq}", digest::hex_of(expected)?));
        let file = fs::File::create(&path).map_err(|e| Error::io("cannot create a blob", e))?;
        Ok(BlobWriter {
            file,
            path,
            final_path,
            expected: expected.to_string(),
            hasher: Hasher::default(),
            done: false,
        })
    }

    /// Removes a blob; returns its size.
    pub fn remove(&self, digest: &str) -> Result<u64> {
        let path = self.path(digest)?;
        let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        match fs::remove_file(&path) {
            Ok(()) => Ok(size),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(Error::io("cannot remove a blob", e)),
        }
    }

    /// Every stored blob with its size.
    pub fn list(&self) -> Result<Vec<(String, u64)>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.blobs).map_err(|e| Error::io("cannot list blobs", e))? {
            let entry = entry.map_err(|e| Error::io("cannot list blobs", e))?;
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            out.push((
                format!("sha256:{}", entry.file_name().to_string_lossy()),
                size,
            ));
        }
        Ok(out)
    }
}

/// A blob being written; it counts only after [`commit`](Self::commit).
pub struct BlobWriter {
    file: fs::File,
    path: PathBuf,
    final_path: PathBuf,
    expected: String,
    hasher: Hasher,
    done: bool,
}

impl BlobWriter {
    /// Where the partial blob is, for readers that follow it as it grows.
    pub fn partial_path(&self) -> &std::path::Path {
        &self.path
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.hasher.len
    }

    /// Verifies the digest (and the size, when known) and moves the blob
    /// into place.
    pub fn commit(mut self, expected_size: Option<u64>) -> Result<()> {
        let hasher = std::mem::take(&mut self.hasher);
        let len = hasher.len;
        let actual = hasher.finish();
        if actual != self.expected {
            return Err(Error::DataLoss(format!(
                "blob {} failed verification: its content hashes to {actual}; the registry or archive holds corrupt data",
                self.expected
            )));
        }
        if let Some(size) = expected_size {
            if size != len {
                return Err(Error::DataLoss(format!(
                    "blob {} is {len} bytes but its descriptor says {size}",
                    self.expected
                )));
            }
        }
        self.file
            .flush()
            .map_err(|e| Error::io("cannot write a blob", e))?;
        fs::rename(&self.path, &self.final_path)
            .map_err(|e| Error::io("cannot commit a blob", e))?;
        self.done = true;
        Ok(())
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.done {
            let _ = fs::remove_file(&self.path);
        }
    }
}
