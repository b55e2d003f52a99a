//! Volumes: create, list, inspect, remove, prune.

use berth_api::v1::{self as pb, volumes_client::VolumesClient};
use tonic::transport::Channel;

use crate::error::Result;
use crate::Client;

impl Client {
    async fn volumes(&self) -> Result<VolumesClient<Channel>> {
        Ok(VolumesClient::new(self.channel().await?))
    }

    /// Creates a volume (a name is made up when `req.name` is empty).
    pub async fn create_volume(&self, req: pb::CreateVolumeRequest) -> Result<pb::Volume> {
        Ok(self.volumes().await?.create(req).await?.into_inner())
    }

    /// Lists volumes.
    pub async fn list_volumes(&self, req: pb::ListVolumesRequest) -> Result<Vec<pb::Volume>> {
        Ok(self.volumes().await?.list(req).await?.into_inner().volumes)
    }

    /// One volume.
    pub async fn inspect_volume(&self, name: &str) -> Result<pb::Volume> {
        let req = pb::VolumeRef {
            name: name.to_string(),
        };
        Ok(self.volumes().await?.inspect(req).await?.into_inner())
    }

    /// Removes a volume (one in use only with `force`).
    pub async fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        let req = pb::RemoveVolumeRequest {
            name: name.to_string(),
            force,
        };
        self.volumes().await?.remove(req).await?;
        Ok(())
    }

    /// Removes unused volumes.
    pub async fn prune_volumes(
        &self,
        req: pb::PruneVolumesRequest,
    ) -> Result<pb::PruneVolumesResponse> {
        Ok(self.volumes().await?.prune(req).await?.into_inner())
    }
}

/// Docker's `volume inspect` JSON for one volume.
pub fn docker_json(v: &pb::Volume) -> serde_json::Value {
    let created = v.created.as_ref().map_or(0, |t| t.seconds);
    serde_json::json!({
        "CreatedAt": chrono::DateTime::from_timestamp(created, 0).map(|t| t.to_rfc3339()).unwrap_or_default(),
        "Driver": v.driver,
        "Labels": v.labels,
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": v.options,
        "Scope": "local",
        "UsageData": {"Size": v.size, "RefCount": v.ref_count},
    })
}
