//! The Files service: host file events replayed in the VM's shared folders.

use std::sync::Arc;

use berth_api::v1::{self as pb, files_server::Files as FilesRpc};
use tonic::{Request, Response, Status, Streaming};

use super::status::to_status;
use super::Agent;
use crate::error::Error;
use crate::shares::{self, Event};

/// Files over the agent.
pub struct FilesApi(pub Arc<Agent>);

#[tonic::async_trait]
impl FilesRpc for FilesApi {
    async fn notify(
        &self,
        request: Request<Streaming<pb::FileEvent>>,
    ) -> Result<Response<pb::NotifyResponse>, Status> {
        let mut stream = request.into_inner();
        let mut applied = 0;
        let mut mounted = shares::mounted();
        while let Some(ev) = stream.message().await? {
            let event = Event {
                kind: ev.kind.parse().map_err(to_status)?,
                path: ev.path.into(),
                to: (!ev.to_path.is_empty()).then(|| ev.to_path.into()),
                is_dir: ev.is_dir,
                seen: (ev.mtime_ns != 0).then_some((ev.size, ev.mtime_ns)),
            };
            if shares::check_inside(&mounted, &event.path).is_err() {
                // A share mounted since the stream began.
                mounted = shares::mounted();
            }
            let replayed = {
                let mounted = mounted.clone();
                tokio::task::spawn_blocking(move || shares::replay(&mounted, &event))
                    .await
                    .map_err(|e| to_status(Error::Internal(e.to_string())))?
            };
            match replayed {
                Ok(()) => applied += 1,
                Err(e) => tracing::debug!("file event not replayed: {e}"),
            }
        }
        Ok(Response::new(pb::NotifyResponse { applied }))
    }

    async fn shares(
        &self,
        _request: Request<pb::SharesRequest>,
    ) -> Result<Response<pb::SharesResponse>, Status> {
        let shares = shares::mounted()
            .into_iter()
            .map(|s| pb::Share {
                host_path: s.path.display().to_string(),
                guest_path: s.path.display().to_string(),
                tag: s.tag,
                read_only: s.read_only,
            })
            .collect();
        Ok(Response::new(pb::SharesResponse { shares }))
    }
}
