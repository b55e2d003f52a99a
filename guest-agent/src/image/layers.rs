//! Getting a layer from its blob to its snapshot: downloads that several
//! pulls share (one per digest), and unpacks that several pulls share (one
//! per chain id), decompressing gzip, zstd or plain tar as it streams.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::{mpsc, Arc};

use futures::{FutureExt, StreamExt};
use oci_client::{Client, Reference};

use super::download::Download;
use super::{short_id, ImageService};
use crate::digest::Hasher;
use crate::error::{Error, Result};
use crate::snapshot::apply::apply_layer;
use crate::snapshot::SnapshotInfo;

/// Where a layer's compressed bytes come from.
#[derive(Clone)]
pub enum BlobSource {
    /// Complete in the content store.
    Stored(PathBuf),
    /// Still arriving.
    Downloading(Arc<Download>),
}

/// How a layer blob is compressed, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`).
    Zstd,
    /// A plain tar.
    None,
}

impl Compression {
    /// Reads the compression off a blob's first bytes.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Wraps a layer stream in the decompressor its first bytes call for.
pub fn decompress<R: Read + Send + 'static>(reader: R) -> io::Result<Box<dyn Read + Send>> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    Ok(match Compression::sniff(buffered.fill_buf()?) {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?),
        Compression::None => Box::new(buffered),
    })
}

impl ImageService {
    /// Starts fetching a blob unless it is stored or already on its way;
    /// returns where its bytes will come from.
    pub(crate) fn fetch_blob(
        self: &Arc<Self>,
        client: Arc<Client>,
        image: Reference,
        digest: &str,
        size: u64,
    ) -> Result<BlobSource> {
        let mut downloads = self.downloads.lock().expect("poisoned");
        if let Some(d) = downloads.get(digest) {
            return Ok(BlobSource::Downloading(d.clone()));
        }
        let final_path = self.content.path(digest)?;
        if final_path.is_file() {
            return Ok(BlobSource::Stored(final_path));
        }
        let writer = self.content.ingest(digest)?;
        let dl = Arc::new(Download::new(
            writer.partial_path().to_path_buf(),
            final_path,
            size,
        ));
        downloads.insert(digest.to_string(), dl.clone());
        drop(downloads);
        let (this, digest, task_dl) = (self.clone(), digest.to_string(), dl.clone());
        tokio::spawn(async move {
            let mut writer = Some(writer);
            let fetched = fetch_into(
                &client,
                &image,
                &digest,
                size,
                writer.as_mut().expect("set"),
                &task_dl,
            )
            .await;
            let _ = task_dl.finish(|| {
                fetched?;
                writer.take().expect("set").commit(Some(size))
            });
            this.downloads.lock().expect("poisoned").remove(&digest);
        });
        Ok(BlobSource::Downloading(dl))
    }

    /// Makes sure the snapshot for `chain_id` exists, unpacking the layer
    /// over the snapshots of `lower_chain` (bottom first) if needed.
    pub(crate) async fn ensure_snapshot(
        self: &Arc<Self>,
        chain_id: String,
        diff_id: String,
        lower_chain: Vec<String>,
        source: BlobSource,
    ) -> Result<()> {
        if self.snapshots.info(&chain_id).is_some() {
            return Ok(());
        }
        let shared = {
            let mut unpacks = self.unpacks.lock().expect("poisoned");
            unpacks
                .entry(chain_id.clone())
                .or_insert_with(|| {
                    let this = self.clone();
                    let key = chain_id.clone();
                    async move {
                        let result = this
                            .build_snapshot(&key, &diff_id, &lower_chain, source)
                            .await;
                        this.unpacks.lock().expect("poisoned").remove(&key);
                        result
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        shared.await
    }

    async fn build_snapshot(
        &self,
        chain_id: &str,
        diff_id: &str,
        lower_chain: &[String],
        source: BlobSource,
    ) -> Result<()> {
        let lowers = lower_chain
            .iter()
            .rev()
            .map(|c| self.snapshots.fs_path(c))
            .collect::<Result<Vec<_>>>()?;
        let partial = self.snapshots.begin(chain_id)?;
        let upper = partial.fs();
        let reader: Box<dyn Read + Send> = match &source {
            BlobSource::Stored(path) => {
                Box::new(File::open(path).map_err(|e| Error::io("cannot open a layer blob", e))?)
            }
            BlobSource::Downloading(d) => Box::new(
                d.reader()
                    .map_err(|e| Error::io("cannot follow a download", e))?,
            ),
        };
        let applied = tokio::task::spawn_blocking(move || -> io::Result<(SnapshotInfo, String)> {
            // Two threads: one inflates and hashes, this one applies the tar.
            let (chunks, inflated) = inflate_in_background(reader);
            let mut input = ChunkReader {
                rx: chunks,
                chunk: Vec::new(),
                pos: 0,
            };
            let stats = apply_layer(&mut input, &upper, &lowers);
            let drained = stats
                .as_ref()
                .ok()
                .map(|_| io::copy(&mut input, &mut io::sink()));
            drop(input);
            let diff_id = inflated
                .join()
                .map_err(|_| io::Error::other("the decompressor crashed"))?;
            // A broken compressed stream also cuts the tar short: report the cause.
            let applier_stopped = |e: &io::Error| e.to_string() == APPLIER_STOPPED;
            let diff_id = match diff_id {
                Err(e) if !applier_stopped(&e) => return Err(e),
                other => other,
            };
            let stats = stats?;
            drained.transpose()?;
            Ok((
                SnapshotInfo {
                    entries: stats.entries,
                    bytes: stats.bytes,
                },
                diff_id?,
            ))
        })
        .await
        .map_err(|e| Error::Internal(format!("a layer unpack crashed: {e}")))?;
        if let BlobSource::Downloading(d) = &source {
            d.wait().await?;
        }
        let short = short_id(diff_id);
        let (info, actual) = applied.map_err(|e| {
            Error::DataLoss(format!("layer {short} cannot be unpacked: {e}; the image is corrupt or unsafe and was not stored"))
        })?;
        if actual != diff_id {
            return Err(Error::DataLoss(format!(
                "layer {short} unpacks to {actual}, not the {diff_id} the image config names; the image is corrupt and was not stored"
            )));
        }
        partial.commit(info)
    }
}

async fn fetch_into(
    client: &Client,
    image: &Reference,
    digest: &str,
    size: u64,
    writer: &mut super::content::BlobWriter,
    dl: &Download,
) -> Result<()> {
    use std::io::Write;
    let image_ref = super::reference::ImageRef { oci: image.clone() };
    let mut stream = client
        .pull_blob_stream(image, digest)
        .await
        .map_err(|e| super::registry::registry_error(&image_ref, "fetching a layer of", e))?
        .stream;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| Error::Unavailable(format!("the download of {digest} broke off: {e}")))?;
        if writer.written() + chunk.len() as u64 > size {
            return Err(Error::DataLoss(format!(
                "blob {digest} is larger than the {size} bytes its descriptor says; the registry sent corrupt data"
            )));
        }
        writer
            .write_all(&chunk)
            .map_err(|e| Error::io("cannot write a blob", e))?;
        dl.advance(writer.written());
    }
    Ok(())
}

/// What the decompressor says when the applier stopped reading first.
const APPLIER_STOPPED: &str = "the layer applier stopped";

/// Size of the pieces the decompressor hands to the tar applier.
const CHUNK: usize = 256 * 1024;

/// Starts a thread that decompresses `reader`, hashes what comes out (the
/// layer's diff id) and sends it on in chunks; the thread's result is the
/// diff id, or why decompression failed.
fn inflate_in_background(
    reader: Box<dyn Read + Send>,
) -> (
    mpsc::Receiver<Vec<u8>>,
    std::thread::JoinHandle<io::Result<String>>,
) {
    let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(16);
    let handle = std::thread::spawn(move || -> io::Result<String> {
        let mut source = decompress(reader)?;
        let mut hasher = Hasher::default();
        loop {
            let mut buf = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                match source.read(&mut buf[filled..])? {
                    0 => break,
                    n => filled += n,
                }
            }
            if filled == 0 {
                return Ok(hasher.finish());
            }
            buf.truncate(filled);
            hasher.update(&buf);
            if tx.send(buf).is_err() {
                // The applier stopped (it failed); its error is the one to report.
                return Err(io::Error::other(APPLIER_STOPPED));
            }
        }
    });
    (rx, handle)
}

/// Reads the chunks [`inflate_in_background`] sends.
struct ChunkReader {
    rx: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(next) => {
                    self.chunk = next;
                    self.pos = 0;
                }
                // The sender is gone: end of data (its result says if it failed).
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
