//! Pushing a stored image: each blob is skipped when the registry has it,
//! mounted from another repository of the same registry when the image
//! came from there, or uploaded in chunks from the content store; then the
//! manifest is put with its exact stored bytes, so the digest is kept.

use std::sync::Arc;

use futures::StreamExt;
use oci_client::errors::OciDistributionError;
use oci_client::RegistryOperation;

use super::manifest::{self, Document};
use super::reference::{familiar, ImageRef};
use super::registry::{registry_error, Credentials};
use super::{say, short_id, ImageService, ProgressTx};
use crate::error::{Error, Result};

/// What a push did.
#[derive(Debug, Clone)]
pub struct PushOutcome {
    /// The reference pushed.
    pub reference: String,
    /// The manifest digest.
    pub digest: String,
    /// The manifest's size.
    pub size: u64,
}

impl ImageService {
    /// Pushes the image `reference` names to the registry it names.
    pub async fn push(
        self: &Arc<Self>,
        reference: &str,
        creds: &Credentials,
        tx: &ProgressTx,
    ) -> Result<PushOutcome> {
        let target = ImageRef::parse(reference)?;
        if target.digest().is_some() {
            return Err(Error::InvalidArgument(format!(
                "cannot push to {reference}: push to a tag, not a digest"
            )));
        }
        // In the VM, the NIC comes up once the agent serves.
        self.registries.network_ready.wait().await;
        let _guard = self.gc_lock.read().await;
        let entry = self.find(reference)?;
        let record = entry.record;
        let client = self.registries.client(&target);
        client
            .auth(&target.oci, &creds.to_oci(), RegistryOperation::Push)
            .await
            .map_err(|e| registry_error(&target, "pushing", e))?;
        say(
            tx,
            "",
            format!(
                "The push refers to repository [{}]",
                familiar(&target.name())
            ),
            0,
            0,
        );
        let manifest_bytes = self.content.read(&record.manifest_digest)?;
        let Document::Manifest(m) = manifest::parse_document(&manifest_bytes)? else {
            return Err(Error::Internal("a stored manifest is an index".into()));
        };
        let mount_sources: Vec<ImageRef> = record
            .repo_digests
            .iter()
            .filter_map(|d| ImageRef::parse(d).ok())
            .filter(|r| {
                r.registry() == target.registry() && r.oci.repository() != target.oci.repository()
            })
            .collect();
        for desc in m.layers.iter().chain(std::iter::once(&m.config)) {
            self.push_blob(
                &client,
                &target,
                &mount_sources,
                &desc.digest,
                desc.size,
                tx,
            )
            .await?;
        }
        let content_type = if record.manifest_media_type.is_empty() {
            manifest::OCI_MANIFEST
        } else {
            &record.manifest_media_type
        };
        client
            .push_manifest_raw(
                &target.oci,
                manifest_bytes.clone(),
                content_type
                    .parse()
                    .map_err(|_| Error::Internal("bad media type".into()))?,
            )
            .await
            .map_err(|e| registry_error(&target, "pushing", e))?;
        let tag = target.tag().unwrap_or("latest");
        say(
            tx,
            "",
            format!(
                "{tag}: digest: {} size: {}",
                record.manifest_digest,
                manifest_bytes.len()
            ),
            0,
            0,
        );
        self.emit("push", &record.id, &target.key());
        Ok(PushOutcome {
            reference: target.key(),
            digest: record.manifest_digest,
            size: manifest_bytes.len() as u64,
        })
    }

    async fn push_blob(
        &self,
        client: &oci_client::Client,
        target: &ImageRef,
        mount_sources: &[ImageRef],
        digest: &str,
        size: u64,
        tx: &ProgressTx,
    ) -> Result<()> {
        let id = short_id(digest);
        say(tx, &id, "Preparing", 0, size);
        if client
            .blob_exists(&target.oci, digest)
            .await
            .map_err(|e| registry_error(target, "pushing", e))?
        {
            say(tx, &id, "Layer already exists", size, size);
            return Ok(());
        }
        for source in mount_sources {
            if client
                .mount_blob(&target.oci, &source.oci, digest)
                .await
                .is_ok()
            {
                say(
                    tx,
                    &id,
                    format!("Mounted from {}", familiar(&source.name())),
                    size,
                    size,
                );
                return Ok(());
            }
        }
        let file = tokio::fs::File::open(self.content.path(digest)?)
            .await
            .map_err(|e| Error::io(format!("blob {digest} is missing from the store"), e))?;
        let progress = tx.clone();
        let progress_id = id.clone();
        let mut sent = 0u64;
        let stream = tokio_util_stream(file).map(move |chunk| {
            let chunk = chunk.map_err(OciDistributionError::IoError)?;
            sent += chunk.len() as u64;
            say(&progress, &progress_id, "Pushing", sent, size);
            Ok(chunk)
        });
        client
            .push_blob_stream(&target.oci, stream, digest, Some(size))
            .await
            .map_err(|e| registry_error(target, "pushing", e))?;
        say(tx, &id, "Pushed", size, size);
        Ok(())
    }
}

/// Reads a file as a stream of 1 MiB chunks.
fn tokio_util_stream(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static {
    futures::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 1 << 20];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    })
}
