//! Images: pull and push with typed progress, list, inspect (also in
//! Docker's JSON shape, see [`docker_json`]), history, tag, remove, prune, save, load, import.

use berth_api::v1::{self as pb, images_client::ImagesClient};
use futures::StreamExt;
use tonic::transport::Channel;

use crate::error::{Error, Result};
use crate::stream::{self, Reader, Stream};
use crate::{credentials, Client};

mod inspect;
pub use inspect::docker_json;

/// One step of a pull or a push.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Progress {
    /// A layer (or, with an empty `id`, the whole image) moved on.
    Layer {
        /// The layer's short id; empty for messages about the image.
        id: String,
        /// Docker's wording ("Downloading", "Pull complete", "Pushed", …).
        status: String,
        /// Bytes done.
        current: u64,
        /// Bytes in all (0 when unknown).
        total: u64,
    },
    /// The pull finished: the last item.
    Pulled(pb::PullDone),
    /// The push finished: the last item.
    Pushed(pb::PushDone),
}

impl Client {
    async fn images(&self) -> Result<ImagesClient<Channel>> {
        Ok(ImagesClient::new(self.channel().await?)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20))
    }

    /// Pulls an image with the stored credentials for its registry (see
    /// [`credentials`]); the stream ends with [`Progress::Pulled`].
    pub async fn pull(&self, reference: &str, platform: &str) -> Result<Stream<Progress>> {
        self.pull_tags(reference, platform, false).await
    }

    /// [`Self::pull`]; with `all_tags`, every tag of the repository
    /// `reference` names (`pull --all-tags`).
    pub async fn pull_tags(
        &self,
        reference: &str,
        platform: &str,
        all_tags: bool,
    ) -> Result<Stream<Progress>> {
        let req = pb::PullRequest {
            reference: reference.to_string(),
            platform: platform.to_string(),
            auth: credentials::lookup(&credentials::registry_of(reference)),
            all_tags,
        };
        let s = self.images().await?.pull(req).await?.into_inner();
        Ok(stream::typed(s, |m: pb::PullProgress| match m.done {
            Some(done) => Progress::Pulled(done),
            None => Progress::Layer {
                id: m.id,
                status: m.status,
                current: m.current,
                total: m.total,
            },
        }))
    }

    /// Pulls an image to the end, ignoring progress; returns how it ended.
    pub async fn pull_all(&self, reference: &str, platform: &str) -> Result<pb::PullDone> {
        self.pull_watching(reference, platform, |_| {}).await
    }

    /// Pulls an image to the end, showing each step to `watch`; returns
    /// how it ended.
    pub async fn pull_watching(
        &self,
        reference: &str,
        platform: &str,
        mut watch: impl FnMut(&Progress),
    ) -> Result<pb::PullDone> {
        let mut s = self.pull(reference, platform).await?;
        while let Some(p) = s.next().await {
            let p = p?;
            watch(&p);
            if let Progress::Pulled(done) = p {
                return Ok(done);
            }
        }
        Err(Error::protocol("pull"))
    }

    /// Pushes an image with the stored credentials for its registry; the
    /// stream ends with [`Progress::Pushed`].
    pub async fn push(&self, reference: &str) -> Result<Stream<Progress>> {
        let req = pb::PushRequest {
            reference: reference.to_string(),
            auth: credentials::lookup(&credentials::registry_of(reference)),
        };
        let s = self.images().await?.push(req).await?.into_inner();
        Ok(stream::typed(s, |m: pb::PushProgress| match m.done {
            Some(done) => Progress::Pushed(done),
            None => Progress::Layer {
                id: m.id,
                status: m.status,
                current: m.current,
                total: m.total,
            },
        }))
    }

    /// Lists images.
    pub async fn list_images(&self, req: pb::ListImagesRequest) -> Result<Vec<pb::ImageSummary>> {
        Ok(self.images().await?.list(req).await?.into_inner().images)
    }

    /// One image in full.
    pub async fn inspect_image(&self, reference: &str) -> Result<pb::ImageDetail> {
        let req = pb::InspectImageRequest {
            reference: reference.to_string(),
        };
        Ok(self.images().await?.inspect(req).await?.into_inner())
    }

    /// One image as `docker image inspect` shows it (its `GraphDriver`
    /// names folders in the agent's store, which `info` tells).
    pub async fn inspect_image_json(&self, reference: &str) -> Result<serde_json::Value> {
        let detail = self.inspect_image(reference).await?;
        let root = self.info().await?.root_dir;
        Ok(docker_json(&detail, &root))
    }

    /// The steps that built an image, newest first.
    pub async fn image_history(&self, reference: &str) -> Result<Vec<pb::HistoryEntry>> {
        let req = pb::InspectImageRequest {
            reference: reference.to_string(),
        };
        Ok(self
            .images()
            .await?
            .history(req)
            .await?
            .into_inner()
            .history)
    }

    /// Gives an image another name.
    pub async fn tag_image(&self, source: &str, target: &str) -> Result<()> {
        let req = pb::TagImageRequest {
            source: source.to_string(),
            target: target.to_string(),
        };
        self.images().await?.tag(req).await?;
        Ok(())
    }

    /// Untags an image and deletes it when no name is left.
    pub async fn remove_image(
        &self,
        reference: &str,
        force: bool,
        no_prune: bool,
    ) -> Result<Vec<pb::RemovedItem>> {
        let req = pb::RemoveImageRequest {
            reference: reference.to_string(),
            force,
            no_prune,
        };
        Ok(self.images().await?.remove(req).await?.into_inner().items)
    }

    /// Deletes dangling (or, with `all`, unused) images.
    pub async fn prune_images(&self, all: bool) -> Result<pb::PruneImagesResponse> {
        let req = pb::PruneImagesRequest {
            all,
            filters: Default::default(),
        };
        Ok(self.images().await?.prune(req).await?.into_inner())
    }

    /// A tar of the images (OCI layout and `docker save` at once), as
    /// chunks.
    pub async fn save_images(&self, references: Vec<String>) -> Result<Stream<Vec<u8>>> {
        let req = pb::SaveImagesRequest { references };
        let s = self.images().await?.save(req).await?.into_inner();
        Ok(stream::typed(s, |c: pb::DataChunk| c.data))
    }

    /// Loads an archive (`berth save`, `docker save`, an OCI layout tar);
    /// the stream carries the agent's status lines.
    pub async fn load_images(&self, input: Reader) -> Result<Stream<pb::LoadProgress>> {
        let up = stream::upload(None, input, |data| pb::LoadImagesRequest {
            data,
            quiet: false,
        });
        let s = self.images().await?.load(up.stream).await?.into_inner();
        stream::finish(up.reader, "the archive").await?;
        Ok(stream::typed(s, |m| m))
    }

    /// Makes an image of a root filesystem tar.
    pub async fn import_image(
        &self,
        options: pb::ImportOptions,
        input: Reader,
    ) -> Result<pb::ImportImageResponse> {
        use pb::import_image_request::Part;
        let first = pb::ImportImageRequest {
            part: Some(Part::Options(options)),
        };
        let up = stream::upload(Some(first), input, |data| pb::ImportImageRequest {
            part: Some(Part::Data(data)),
        });
        let r = self.images().await?.import(up.stream).await;
        // A failed read of the input is the reason the agent saw a short
        // archive: say that first.
        stream::finish(up.reader, "the archive").await?;
        Ok(r?.into_inner())
    }
}
