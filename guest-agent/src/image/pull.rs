//! Pulling an image: resolve the reference to one manifest (choosing a
//! platform from an index), fetch the config, start every missing layer's
//! download at once, and unpack layers bottom-up as their bytes arrive.
//! The image is recorded only when every blob verified and every snapshot
//! committed.

use std::sync::Arc;

use oci_client::Client;

use super::layers::BlobSource;
use super::manifest::{self, Document, ImageConfig, Manifest, Platform};
use super::reference::{familiar, ImageRef};
use super::registry::{registry_error, Credentials};
use super::{say, short_id, ImageService, ProgressTx};
use crate::digest;
use crate::error::{Error, Result};
use crate::store::{ImageRecord, LayerRecord};

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullOutcome {
    /// The image id (config digest).
    pub image_id: String,
    /// The full reference pulled.
    pub reference: String,
    /// The manifest digest.
    pub digest: String,
    /// True when nothing had to be fetched and the tag already named
    /// the image.
    pub up_to_date: bool,
}

/// Largest manifest or config Berth accepts (Docker's limit is 4 MiB).
const MAX_DOCUMENT: u64 = 8 << 20;

impl ImageService {
    /// Pulls `reference` for `platform` (the agent's own when None).
    pub async fn pull(
        self: &Arc<Self>,
        reference: &str,
        platform: Option<&str>,
        creds: &Credentials,
        tx: &ProgressTx,
    ) -> Result<PullOutcome> {
        self.pull_one(reference, platform, creds, tx, true).await
    }

    /// `pull --all-tags`: every tag the registry lists for the repository
    /// `reference` names (which has no tag or digest), in the registry's
    /// order, each told as Docker tells it, then one `Status:` line for
    /// them all. The outcome names the repository.
    pub async fn pull_all_tags(
        self: &Arc<Self>,
        reference: &str,
        platform: Option<&str>,
        creds: &Credentials,
        tx: &ProgressTx,
    ) -> Result<PullOutcome> {
        if super::reference::has_tag_or_digest(reference) {
            return Err(Error::InvalidArgument(
                "tag can't be used with --all-tags/-a".into(),
            ));
        }
        let image = ImageRef::parse(reference)?;
        self.registries.network_ready.wait().await;
        let client = self.registries.client(&image);
        let tags = client
            .list_tags(&image.oci, &creds.to_oci(), None, None)
            .await
            .map_err(|e| registry_error(&image, "listing the tags of", e))?
            .tags;
        let mut last = None;
        let mut newer = false;
        for tag in tags {
            let one = format!("{}:{tag}", image.name());
            let outcome = self.pull_one(&one, platform, creds, tx, false).await?;
            newer |= !outcome.up_to_date;
            last = Some(outcome);
        }
        let Some(last) = last else {
            return Err(Error::no_image(format!(
                "{} has no tags in its registry",
                familiar(&image.name())
            )));
        };
        let status = if newer {
            "Downloaded newer image for"
        } else {
            "Image is up to date for"
        };
        say(
            tx,
            "",
            format!("Status: {status} {}", familiar(&image.name())),
            0,
            0,
        );
        Ok(PullOutcome {
            reference: image.name(),
            up_to_date: !newer,
            ..last
        })
    }

    /// One pull; `status` ends it with Docker's `Status:` line.
    async fn pull_one(
        self: &Arc<Self>,
        reference: &str,
        platform: Option<&str>,
        creds: &Credentials,
        tx: &ProgressTx,
        status: bool,
    ) -> Result<PullOutcome> {
        let image = ImageRef::parse(reference)?;
        let want = match platform.filter(|p| !p.is_empty()) {
            Some(p) => Platform::parse(p)?,
            None => Platform::host(),
        };
        // In the VM, the NIC comes up once the agent serves.
        self.registries.network_ready.wait().await;
        let _guard = self.gc_lock.read().await;
        let client = Arc::new(self.registries.client(&image));
        let auth = creds.to_oci();
        let (bytes, manifest_digest, manifest) =
            self.resolve_manifest(&client, &image, &auth, &want).await?;
        // As Docker's: once the manifest is found, by tag or by the whole
        // reference with its digest, from the repository's path.
        let label = match image.digest() {
            Some(_) => image.key(),
            None => image.tag().unwrap_or_default().to_string(),
        };
        say(
            tx,
            &label,
            format!("Pulling from {}", image.oci.repository()),
            0,
            0,
        );

        if let Some(done) = self.already_have(&image, &manifest_digest)? {
            say(tx, "", format!("Digest: {manifest_digest}"), 0, 0);
            if status {
                let news = if done.up_to_date {
                    "Image is up to date for"
                } else {
                    "Downloaded newer image for"
                };
                say(
                    tx,
                    "",
                    format!("Status: {news} {}", familiar(&image.key())),
                    0,
                    0,
                );
            }
            return Ok(done);
        }

        let config_bytes = self
            .fetch_document(&client, &image, &manifest.config)
            .await?;
        let config = manifest::parse_config(&config_bytes)?;
        self.content.write(&manifest.config.digest, &config_bytes)?;
        let diff_ids = check_layers(&manifest, &config)?;
        let chain = digest::chain_ids(&diff_ids);

        // Start every download at once; unpack bottom-up as bytes arrive.
        let mut sources = Vec::new();
        let mut reporters = Vec::new();
        for layer in &manifest.layers {
            let source =
                self.fetch_blob(client.clone(), image.oci.clone(), &layer.digest, layer.size)?;
            let id = short_id(&layer.digest);
            match &source {
                BlobSource::Stored(_) if self.snapshots.info(&chain[sources.len()]).is_some() => {
                    say(tx, &id, "Already exists", 0, 0)
                }
                BlobSource::Stored(_) => say(tx, &id, "Download complete", layer.size, layer.size),
                BlobSource::Downloading(d) => {
                    say(tx, &id, "Pulling fs layer", 0, layer.size);
                    reporters.push(spawn_progress(d.clone(), id, tx.clone()));
                }
            }
            sources.push(source);
        }
        let mut size = 0;
        for (i, source) in sources.iter().enumerate() {
            self.ensure_snapshot(
                chain[i].clone(),
                diff_ids[i].clone(),
                chain[..i].to_vec(),
                source.clone(),
            )
            .await?;
            size += self.snapshots.info(&chain[i]).map_or(0, |s| s.bytes);
        }
        for source in &sources {
            if let BlobSource::Downloading(d) = source {
                d.wait().await?;
            }
        }
        // Each layer's "Download complete" comes from its reporter: let
        // them all say it before "Pull complete", as Docker orders them.
        for reporter in reporters {
            let _ = reporter.await;
        }
        for (i, layer) in manifest.layers.iter().enumerate() {
            if matches!(sources[i], BlobSource::Downloading(_)) {
                say(
                    tx,
                    &short_id(&layer.digest),
                    "Pull complete",
                    layer.size,
                    layer.size,
                );
            }
        }
        self.content.write(&manifest_digest, &bytes)?;
        let repo_digests = vec![format!("{}@{manifest_digest}", image.name())];
        let record = image_record(&manifest, &manifest_digest, &diff_ids, size, repo_digests);
        let tags: Vec<String> = if image.digest().is_none() {
            vec![image.key()]
        } else {
            vec![]
        };
        self.meta.put_image(&record, &tags)?;
        self.emit("pull", &record.id, &image.key());
        say(tx, "", format!("Digest: {manifest_digest}"), 0, 0);
        if status {
            say(
                tx,
                "",
                format!(
                    "Status: Downloaded newer image for {}",
                    familiar(&image.key())
                ),
                0,
                0,
            );
        }
        Ok(PullOutcome {
            image_id: record.id,
            reference: image.key(),
            digest: manifest_digest,
            up_to_date: false,
        })
    }

    /// Fetches the manifest, following an index to the platform's entry,
    /// and verifies every document against its digest.
    async fn resolve_manifest(
        &self,
        client: &Client,
        image: &ImageRef,
        auth: &oci_client::secrets::RegistryAuth,
        want: &Platform,
    ) -> Result<(Vec<u8>, String, Manifest)> {
        let (bytes, _) = client
            .pull_manifest_raw(&image.oci, auth, &manifest::ACCEPTED)
            .await
            .map_err(|e| registry_error(image, "pulling", e))?;
        let mut bytes = bytes.to_vec();
        let mut digest = digest::of_bytes(&bytes);
        if let Some(pinned) = image.digest() {
            if pinned != digest {
                return Err(Error::DataLoss(format!(
                    "the registry sent a manifest that hashes to {digest}, not the {pinned} asked for"
                )));
            }
        }
        if let Document::Index(index) = manifest::parse_document(&bytes)? {
            let entry = index.select(want)?.clone();
            let (inner, _) = client
                .pull_manifest_raw(&image.with_digest(&entry.digest), auth, &manifest::ACCEPTED)
                .await
                .map_err(|e| registry_error(image, "pulling", e))?;
            bytes = inner.to_vec();
            digest = digest::of_bytes(&bytes);
            if digest != entry.digest {
                return Err(Error::DataLoss(format!(
                    "the registry sent a manifest that hashes to {digest}, not the {} its index names",
                    entry.digest
                )));
            }
        }
        match manifest::parse_document(&bytes)? {
            Document::Manifest(m) => Ok((bytes, digest, m)),
            Document::Index(_) => Err(Error::DataLoss(
                "an image index points at another index; Berth follows one level".into(),
            )),
        }
    }

    /// Fetches a small blob (a config) into memory, verifying it.
    async fn fetch_document(
        &self,
        client: &Client,
        image: &ImageRef,
        desc: &manifest::Descriptor,
    ) -> Result<Vec<u8>> {
        if self.content.has(&desc.digest) {
            return self.content.read(&desc.digest);
        }
        if desc.size > MAX_DOCUMENT {
            return Err(Error::DataLoss(format!(
                "the image config is {} bytes, more than Berth accepts",
                desc.size
            )));
        }
        let mut out = Vec::new();
        client
            .pull_blob(&image.oci, desc.digest.as_str(), &mut out)
            .await
            .map_err(|e| registry_error(image, "fetching the config of", e))?;
        let actual = digest::of_bytes(&out);
        if actual != desc.digest {
            return Err(Error::DataLoss(format!(
                "the image config hashes to {actual}, not {}",
                desc.digest
            )));
        }
        Ok(out)
    }

    /// When this manifest is stored complete, tags it and reports so.
    fn already_have(&self, image: &ImageRef, manifest_digest: &str) -> Result<Option<PullOutcome>> {
        let found = self
            .meta
            .images()?
            .into_iter()
            .map(|(r, _)| r)
            .find(|r| r.manifest_digest == manifest_digest);
        let Some(record) = found else { return Ok(None) };
        let complete = record
            .layers
            .iter()
            .all(|l| self.snapshots.info(&l.chain_id).is_some() && self.content.has(&l.digest))
            && self.content.has(&record.id);
        if !complete {
            return Ok(None);
        }
        let mut record = record;
        let repo_digest = format!("{}@{manifest_digest}", image.name());
        if !record.repo_digests.contains(&repo_digest) {
            record.repo_digests.push(repo_digest);
        }
        let tags: Vec<String> = if image.digest().is_none() {
            vec![image.key()]
        } else {
            vec![]
        };
        // A tag that named another image (or none) is news, as Docker's
        // "Downloaded newer image" tells even when no byte was fetched.
        let moved = match tags.first() {
            Some(tag) => self.meta.tag(tag)?.as_deref() != Some(record.id.as_str()),
            None => false,
        };
        self.meta.put_image(&record, &tags)?;
        Ok(Some(PullOutcome {
            image_id: record.id,
            reference: image.key(),
            digest: manifest_digest.to_string(),
            up_to_date: !moved,
        }))
    }
}

/// Checks that the manifest's layers and the config's diff ids agree.
pub(crate) fn check_layers(manifest: &Manifest, config: &ImageConfig) -> Result<Vec<String>> {
    let diff_ids = config.rootfs.diff_ids.clone();
    if diff_ids.len() != manifest.layers.len() {
        return Err(Error::DataLoss(format!(
            "the manifest lists {} layers but the config names {}; the image is corrupt",
            manifest.layers.len(),
            diff_ids.len()
        )));
    }
    for d in diff_ids
        .iter()
        .chain(manifest.layers.iter().map(|l| &l.digest))
    {
        digest::hex_of(d)?;
    }
    Ok(diff_ids)
}

/// Reports a download's progress until it is done. The download may have
/// finished before this subscribes (a small blob, a quick failure): the
/// current state counts as a change, or the task would wait forever and,
/// holding `tx`, keep the client's progress stream open.
fn spawn_progress(
    dl: Arc<super::download::Download>,
    id: String,
    tx: ProgressTx,
) -> tokio::task::JoinHandle<()> {
    let mut rx = dl.progress.subscribe();
    rx.mark_changed();
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let (written, done) = *rx.borrow_and_update();
            if done {
                // The download has checked its bytes against the digest.
                say(&tx, &id, "Verifying Checksum", written, dl.size);
                say(&tx, &id, "Download complete", written, dl.size);
                break;
            }
            say(&tx, &id, "Downloading", written, dl.size);
        }
    })
}

/// Seconds since the epoch.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The record of an image whose blobs and snapshots are all stored.
pub(crate) fn image_record(
    manifest: &Manifest,
    manifest_digest: &str,
    diff_ids: &[String],
    size: u64,
    repo_digests: Vec<String>,
) -> ImageRecord {
    let chain = digest::chain_ids(diff_ids);
    ImageRecord {
        version: crate::store::IMAGE_RECORD_VERSION,
        id: manifest.config.digest.clone(),
        manifest_digest: manifest_digest.to_string(),
        manifest_media_type: manifest
            .media_type
            .clone()
            .unwrap_or_else(|| manifest::OCI_MANIFEST.to_string()),
        layers: manifest
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| LayerRecord {
                digest: l.digest.clone(),
                media_type: l.media_type.clone(),
                size: l.size,
                diff_id: diff_ids[i].clone(),
                chain_id: chain[i].clone(),
            })
            .collect(),
        repo_digests,
        size,
        stored_at: now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::download::Download;

    #[tokio::test]
    async fn progress_ends_for_a_download_that_finished_before_it_was_watched() {
        let dir = tempfile::tempdir().unwrap();
        let dl = Arc::new(Download::new(
            dir.path().join("partial"),
            dir.path().join("final"),
            10,
        ));
        let failed = dl.finish(|| Err(crate::error::Error::Internal("digest mismatch".into())));
        assert!(failed.is_err());
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let watcher = spawn_progress(dl, "abc".into(), tx);
        tokio::time::timeout(std::time::Duration::from_secs(5), watcher)
            .await
            .expect("the progress watcher waited for a change that had already come")
            .unwrap();
        assert_eq!(rx.recv().await.unwrap().status, "Verifying Checksum");
        let last = rx.recv().await.unwrap();
        assert_eq!(last.status, "Download complete");
        assert!(rx.recv().await.is_none(), "the stream ends");
    }
}
