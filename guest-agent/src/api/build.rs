//! The Build RPC: options and context chunks in, the engine's build
//! events out. A client that goes away cancels the build.

use std::sync::Arc;

use berth_api::v1 as pb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Response, Status, Streaming};

use super::status::to_status;
use super::Agent;
use crate::build::{BuildEvent, BuildOptions};
use crate::error::Error;

type BuildStream = super::images::Stream_<pb::BuildProgress>;

fn options(o: pb::BuildOptions) -> BuildOptions {
    BuildOptions {
        tags: o.tags,
        dockerfile: o.dockerfile,
        dockerfile_text: (!o.dockerfile_text.is_empty())
            .then(|| String::from_utf8_lossy(&o.dockerfile_text).into_owned()),
        dockerfile_name: o.dockerfile_name,
        build_args: o.build_args.into_iter().collect(),
        target: o.target,
        no_cache: o.no_cache,
        pull: o.pull,
        labels: o.labels.into_iter().collect(),
        platform: o.platform,
        network: o.network,
        secrets: o.secrets.into_iter().collect(),
    }
}

fn progress(e: BuildEvent) -> pb::BuildProgress {
    match e {
        BuildEvent::Step { vertex, name } => pb::BuildProgress {
            vertex,
            step: name,
            ..Default::default()
        },
        BuildEvent::Output {
            vertex,
            text,
            seconds,
        } => pb::BuildProgress {
            vertex,
            output: text,
            seconds,
            ..Default::default()
        },
        BuildEvent::Done {
            vertex,
            cached,
            seconds,
        } => pb::BuildProgress {
            vertex,
            done: true,
            cached,
            seconds,
            ..Default::default()
        },
        BuildEvent::Failed {
            vertex,
            message,
            exit_code,
        } => pb::BuildProgress {
            vertex,
            error: message,
            exit_code,
            ..Default::default()
        },
    }
}

/// Runs a build for a client: the first message carries the options, the
/// rest the context tar. The stream's last message holds the image id,
/// or (vertex 0) the error that ended the build.
pub(super) async fn build(
    agent: &Arc<Agent>,
    mut incoming: Streaming<pb::BuildRequest>,
) -> Result<Response<BuildStream>, Status> {
    use pb::build_request::Part;
    let opts = match incoming.message().await? {
        Some(pb::BuildRequest {
            part: Some(Part::Options(o)),
        }) => options(o),
        _ => {
            return Err(to_status(Error::InvalidArgument(
                "a build starts with its options, then the context".into(),
            )))
        }
    };
    let (ctx_tx, ctx_rx) = mpsc::channel::<Vec<u8>>(16);
    tokio::spawn(async move {
        while let Ok(Some(m)) = incoming.message().await {
            if let Some(Part::Context(d)) = m.part {
                if ctx_tx.send(d).await.is_err() {
                    break;
                }
            }
        }
    });
    let (etx, mut erx) = mpsc::unbounded_channel::<BuildEvent>();
    let (out, rx) = mpsc::unbounded_channel::<Result<pb::BuildProgress, Status>>();
    let builder = agent.builder.clone();
    tokio::spawn(async move {
        let build = builder.build(opts, ctx_rx, etx);
        tokio::pin!(build);
        let result = loop {
            tokio::select! {
                Some(e) = erx.recv() => {
                    if out.send(Ok(progress(e))).is_err() {
                        return;
                    }
                }
                r = &mut build => break r,
                // The client left: dropping the build removes its containers.
                _ = out.closed() => return,
            }
        };
        while let Ok(e) = erx.try_recv() {
            let _ = out.send(Ok(progress(e)));
        }
        let last = match result {
            Ok(image_id) => pb::BuildProgress {
                image_id,
                ..Default::default()
            },
            Err(e) => pb::BuildProgress {
                error: e.to_string(),
                ..Default::default()
            },
        };
        let _ = out.send(Ok(last));
    });
    Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
}
