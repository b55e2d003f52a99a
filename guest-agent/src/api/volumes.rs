//! The Volumes service: requests into volume engine calls.

use std::sync::Arc;

use berth_api::v1::{self as pb, volumes_server::Volumes as VolumesRpc};
use tonic::{Request, Response, Status};

use super::status::to_status;
use super::Agent;
use crate::volume::VolumeRecord;

/// Volumes over the agent.
pub struct VolumesApi(pub Arc<Agent>);

impl VolumesApi {
    fn volume(&self, v: VolumeRecord, size: bool) -> pb::Volume {
        let users = self.0.containers.volume_users(&v.name);
        pb::Volume {
            mountpoint: self.0.volumes.data_path(&v.name).display().to_string(),
            created: super::convert::ts(Some(v.created)),
            size: if size {
                self.0.volumes.size(&v.name)
            } else {
                0
            },
            ref_count: users as u32,
            name: v.name,
            driver: v.driver,
            labels: v.labels.into_iter().collect(),
            options: v.options.into_iter().collect(),
        }
    }
}

#[tonic::async_trait]
impl VolumesRpc for VolumesApi {
    async fn create(
        &self,
        request: Request<pb::CreateVolumeRequest>,
    ) -> Result<Response<pb::Volume>, Status> {
        let r = request.into_inner();
        let v = self
            .0
            .volumes
            .create(
                &r.name,
                &r.driver,
                r.labels.into_iter().collect(),
                r.options.into_iter().collect(),
            )
            .map_err(to_status)?;
        Ok(Response::new(self.volume(v, false)))
    }

    async fn list(
        &self,
        request: Request<pb::ListVolumesRequest>,
    ) -> Result<Response<pb::ListVolumesResponse>, Status> {
        let filters = super::convert::filters(request.into_inner().filters);
        let in_use = self.0.containers.volumes_in_use();
        let volumes = self
            .0
            .volumes
            .list_filtered(&filters, &in_use)
            .into_iter()
            .map(|v| self.volume(v, false))
            .collect();
        Ok(Response::new(pb::ListVolumesResponse { volumes }))
    }

    async fn inspect(
        &self,
        request: Request<pb::VolumeRef>,
    ) -> Result<Response<pb::Volume>, Status> {
        let v = self
            .0
            .volumes
            .find(&request.into_inner().name)
            .map_err(to_status)?;
        Ok(Response::new(self.volume(v, true)))
    }

    async fn remove(
        &self,
        request: Request<pb::RemoveVolumeRequest>,
    ) -> Result<Response<pb::RemoveVolumeResponse>, Status> {
        let r = request.into_inner();
        let in_use = self.0.containers.volumes_in_use();
        self.0.volumes.remove(&r.name, &in_use).map_err(to_status)?;
        Ok(Response::new(pb::RemoveVolumeResponse {}))
    }

    async fn prune(
        &self,
        request: Request<pb::PruneVolumesRequest>,
    ) -> Result<Response<pb::PruneVolumesResponse>, Status> {
        let r = request.into_inner();
        let in_use = self.0.containers.volumes_in_use();
        let (deleted, space_reclaimed) = self.0.volumes.prune(r.all, &in_use);
        Ok(Response::new(pb::PruneVolumesResponse {
            deleted,
            space_reclaimed,
        }))
    }
}
