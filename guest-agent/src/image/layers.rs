//! Getting a layer from its blob to its snapshot: downloads that several
//! pulls share (one per digest), and unpacks that several pulls share (one
//! per chain id), decompressing gzip, zstd or plain tar as it streams.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::Arc;

use futures::{FutureExt, StreamExt};
use oci_client::{Client, Reference};

use super::download::Download;
use super::{short_id, ImageService};
use crate::digest::HashingReader;
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

/// Wraps a layer stream in the decompressor its first bytes call for.
pub fn decompress<R: Read + Send + 'static>(reader: R) -> io::Result<Box<dyn Read + Send>> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let head = buffered.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(buffered)?)
    } else {
        Box::new(buffered)
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
            let mut hashing = HashingReader::new(decompress(reader)?);
            let stats = apply_layer(&mut hashing, &upper, &lowers)?;
            io::copy(&mut hashing, &mut io::sink())?;
            Ok((
                SnapshotInfo {
                    entries: stats.entries,
                    bytes: stats.bytes,
                },
                hashing.hasher.finish(),
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
