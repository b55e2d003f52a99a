//! The Images service.

use std::pin::Pin;
use std::sync::Arc;

use berth_api::v1::{self as pb, images_server::Images};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::status::to_status;
use super::system::credentials;
use super::Agent;
use crate::error::Error;
use crate::image::manage::Removed;
use crate::image::query::HistoryItem;
use crate::image::reference::familiar;
use crate::image::Progress;

/// Images over the agent.
pub struct ImagesApi(pub Arc<Agent>);

pub(super) type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Runs long engine work in a task and streams its progress, then one last
/// message built from its outcome.
fn progress_stream<T, O, F>(
    work: F,
    on_progress: fn(Progress) -> T,
    on_done: fn(O) -> T,
) -> Stream_<T>
where
    T: Send + 'static,
    O: Send + 'static,
    F: FnOnce(
            crate::image::ProgressTx,
        ) -> futures::future::BoxFuture<'static, crate::error::Result<O>>
        + Send
        + 'static,
{
    let (ptx, prx) = mpsc::unbounded_channel::<Progress>();
    let (otx, orx) = mpsc::unbounded_channel::<Result<T, Status>>();
    tokio::spawn(async move {
        let result = work(ptx).await;
        let _ = otx.send(result.map(on_done).map_err(to_status));
    });
    let progress = UnboundedReceiverStream::new(prx).map(move |p| Ok(on_progress(p)));
    Box::pin(progress.chain(UnboundedReceiverStream::new(orx)))
}

fn timestamp(rfc3339: Option<&str>) -> Option<prost_types::Timestamp> {
    rfc3339.and_then(|t| t.parse().ok())
}

fn removed(items: Vec<Removed>) -> Vec<pb::RemovedItem> {
    items
        .into_iter()
        .map(|r| match r {
            Removed::Untagged(v) => pb::RemovedItem {
                action: "Untagged".into(),
                value: v,
            },
            Removed::Deleted(v) => pb::RemovedItem {
                action: "Deleted".into(),
                value: v,
            },
        })
        .collect()
}

fn history(items: Vec<HistoryItem>) -> Vec<pb::HistoryEntry> {
    items
        .into_iter()
        .map(|h| pb::HistoryEntry {
            created: timestamp(h.created.as_deref()),
            created_by: h.created_by,
            author: h.author,
            comment: h.comment,
            empty_layer: h.empty_layer,
            id: h.id,
            size: h.size,
        })
        .collect()
}

#[tonic::async_trait]
impl Images for ImagesApi {
    type PullStream = Stream_<pb::PullProgress>;

    async fn pull(
        &self,
        request: Request<pb::PullRequest>,
    ) -> Result<Response<Self::PullStream>, Status> {
        let req = request.into_inner();
        let images = self.0.images.clone();
        let creds = credentials(req.auth);
        Ok(Response::new(progress_stream(
            move |tx| {
                Box::pin(async move {
                    let platform = Some(req.platform.as_str());
                    if req.all_tags {
                        images
                            .pull_all_tags(&req.reference, platform, &creds, &tx)
                            .await
                    } else {
                        images.pull(&req.reference, platform, &creds, &tx).await
                    }
                })
            },
            |p| pb::PullProgress {
                id: p.id,
                status: p.status,
                current: p.current,
                total: p.total,
                done: None,
            },
            |o| pb::PullProgress {
                done: Some(pb::PullDone {
                    image_id: o.image_id,
                    reference: o.reference,
                    digest: o.digest,
                    up_to_date: o.up_to_date,
                }),
                ..Default::default()
            },
        )))
    }

    type PushStream = Stream_<pb::PushProgress>;

    async fn push(
        &self,
        request: Request<pb::PushRequest>,
    ) -> Result<Response<Self::PushStream>, Status> {
        let req = request.into_inner();
        let images = self.0.images.clone();
        let creds = credentials(req.auth);
        Ok(Response::new(progress_stream(
            move |tx| Box::pin(async move { images.push(&req.reference, &creds, &tx).await }),
            |p| pb::PushProgress {
                id: p.id,
                status: p.status,
                current: p.current,
                total: p.total,
                done: None,
            },
            |o| pb::PushProgress {
                done: Some(pb::PushDone {
                    reference: o.reference,
                    digest: o.digest,
                    size: o.size,
                }),
                ..Default::default()
            },
        )))
    }

    async fn list(
        &self,
        request: Request<pb::ListImagesRequest>,
    ) -> Result<Response<pb::ListImagesResponse>, Status> {
        let filters = super::convert::filters(request.into_inner().filters);
        let images = &self.0.images;
        let mut out = Vec::new();
        for entry in images.list_filtered(&filters).map_err(to_status)? {
            let tags: Vec<String> = entry.tags.iter().map(|t| familiar(t)).collect();
            let (config, _) = images.config_of(&entry).map_err(to_status)?;
            out.push(pb::ImageSummary {
                id: entry.record.id.clone(),
                repo_tags: tags,
                repo_digests: entry
                    .record
                    .repo_digests
                    .iter()
                    .map(|d| familiar(d))
                    .collect(),
                created: timestamp(config.created.as_deref()),
                size: entry.record.size,
                containers: 0,
                labels: config
                    .config
                    .and_then(|c| c.labels)
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            });
        }
        Ok(Response::new(pb::ListImagesResponse { images: out }))
    }

    async fn inspect(
        &self,
        request: Request<pb::InspectImageRequest>,
    ) -> Result<Response<pb::ImageDetail>, Status> {
        let entry = self
            .0
            .images
            .find(&request.into_inner().reference)
            .map_err(to_status)?;
        let (config, config_json) = self.0.images.config_of(&entry).map_err(to_status)?;
        let run = config.config.clone().unwrap_or_default();
        let keys = |m: Option<std::collections::BTreeMap<String, serde_json::Value>>| {
            m.unwrap_or_default().into_keys().collect()
        };
        let layers = entry
            .record
            .layers
            .iter()
            .map(|l| pb::ImageLayer {
                digest: l.digest.clone(),
                diff_id: l.diff_id.clone(),
                media_type: l.media_type.clone(),
                size: l.size,
                unpacked_size: self.0.images.layer_bytes(&l.chain_id),
            })
            .collect();
        Ok(Response::new(pb::ImageDetail {
            id: entry.record.id.clone(),
            repo_tags: entry.tags.iter().map(|t| familiar(t)).collect(),
            repo_digests: entry
                .record
                .repo_digests
                .iter()
                .map(|d| familiar(d))
                .collect(),
            created: timestamp(config.created.as_deref()),
            author: config.author.clone().unwrap_or_default(),
            architecture: config.architecture.clone(),
            os: config.os.clone(),
            variant: config.variant.clone().unwrap_or_default(),
            size: entry.record.size,
            config: Some(pb::ImageConfig {
                user: run.user.unwrap_or_default(),
                exposed_ports: keys(run.exposed_ports),
                env: run.env.unwrap_or_default(),
                has_entrypoint: run.entrypoint.is_some(),
                entrypoint: run.entrypoint.unwrap_or_default(),
                has_cmd: run.cmd.is_some(),
                cmd: run.cmd.unwrap_or_default(),
                volumes: keys(run.volumes),
                working_dir: run.working_dir.unwrap_or_default(),
                labels: run.labels.unwrap_or_default().into_iter().collect(),
                stop_signal: run.stop_signal.unwrap_or_default(),
            }),
            history: history(self.0.images.history(&config, &entry)),
            layers,
            manifest_digest: entry.record.manifest_digest.clone(),
            manifest_media_type: entry.record.manifest_media_type.clone(),
            config_json,
        }))
    }

    async fn tag(
        &self,
        request: Request<pb::TagImageRequest>,
    ) -> Result<Response<pb::TagImageResponse>, Status> {
        let req = request.into_inner();
        let target = self
            .0
            .images
            .tag(&req.source, &req.target)
            .map_err(to_status)?;
        Ok(Response::new(pb::TagImageResponse { target }))
    }

    async fn remove(
        &self,
        request: Request<pb::RemoveImageRequest>,
    ) -> Result<Response<pb::RemoveImageResponse>, Status> {
        let req = request.into_inner();
        // Docker refuses even a forced removal by id of an image a running
        // container uses: the engine is told which container that is.
        let running = match self.0.images.find(&req.reference) {
            Ok(image) => self
                .0
                .containers
                .all()
                .into_iter()
                .map(|c| c.record())
                .find(|r| r.image_id == image.record.id && r.state.is_running())
                .map(|r| r.id),
            Err(_) => None,
        };
        let (items, _) = self
            .0
            .images
            .remove_with(&req.reference, req.force, req.no_prune, running.as_deref())
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RemoveImageResponse {
            items: removed(items),
        }))
    }

    async fn prune(
        &self,
        request: Request<pb::PruneImagesRequest>,
    ) -> Result<Response<pb::PruneImagesResponse>, Status> {
        let (items, space) = self
            .0
            .images
            .prune(request.into_inner().all)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::PruneImagesResponse {
            items: removed(items),
            space_reclaimed: space,
        }))
    }

    type SaveStream = Stream_<pb::DataChunk>;

    async fn save(
        &self,
        request: Request<pb::SaveImagesRequest>,
    ) -> Result<Response<Self::SaveStream>, Status> {
        let refs = request.into_inner().references;
        let images = self.0.images.clone();
        let plan = images.plan_save(&refs).map_err(to_status)?;
        Ok(Response::new(super::chunk_stream(
            crate::util::chunks::written_blocking(move |w| images.write_archive(&plan, w)),
        )))
    }

    type LoadStream = Stream_<pb::LoadProgress>;

    async fn load(
        &self,
        request: Request<Streaming<pb::LoadImagesRequest>>,
    ) -> Result<Response<Self::LoadStream>, Status> {
        let mut incoming = request.into_inner();
        let images = self.0.images.clone();
        let spool = images.spool_file().map_err(to_status)?;
        super::spool_stream(&spool, &mut incoming, |m| Some(m.data)).await?;
        Ok(Response::new(progress_stream(
            move |tx| Box::pin(async move { images.load(spool, &tx).await }),
            |p| pb::LoadProgress {
                status: p.status,
                loaded: vec![],
            },
            |loaded| pb::LoadProgress {
                status: String::new(),
                loaded,
            },
        )))
    }

    async fn history(
        &self,
        request: Request<pb::InspectImageRequest>,
    ) -> Result<Response<pb::ImageHistoryResponse>, Status> {
        let entry = self
            .0
            .images
            .find(&request.into_inner().reference)
            .map_err(to_status)?;
        let images = &self.0.images;
        let (config, _) = images.config_of(&entry).map_err(to_status)?;
        Ok(Response::new(pb::ImageHistoryResponse {
            history: history(images.history(&config, &entry)),
        }))
    }

    type BuildStream = Stream_<pb::BuildProgress>;

    async fn build(
        &self,
        request: Request<Streaming<pb::BuildRequest>>,
    ) -> Result<Response<Self::BuildStream>, Status> {
        super::build::build(&self.0, request.into_inner()).await
    }

    async fn prune_build_cache(
        &self,
        _: Request<pb::PruneBuildCacheRequest>,
    ) -> Result<Response<pb::PruneBuildCacheResponse>, Status> {
        let (deleted, space_reclaimed) =
            self.0.images.prune_build_cache().await.map_err(to_status)?;
        Ok(Response::new(pb::PruneBuildCacheResponse {
            deleted,
            space_reclaimed,
        }))
    }

    async fn import(
        &self,
        request: Request<Streaming<pb::ImportImageRequest>>,
    ) -> Result<Response<pb::ImportImageResponse>, Status> {
        use pb::import_image_request::Part;
        let mut incoming = request.into_inner();
        let options = match incoming.message().await? {
            Some(pb::ImportImageRequest {
                part: Some(Part::Options(o)),
            }) => o,
            _ => {
                return Err(to_status(Error::InvalidArgument(
                    "an import starts with its options (the name, changes and message)".into(),
                )))
            }
        };
        let images = self.0.images.clone();
        let spool = images.spool_file().map_err(to_status)?;
        super::spool_stream(&spool, &mut incoming, |m| match m.part {
            Some(Part::Data(d)) => Some(d),
            _ => None,
        })
        .await?;
        let image_id = images
            .import(
                spool,
                &options.reference,
                &options.changes,
                &options.message,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ImportImageResponse { image_id }))
    }
}
