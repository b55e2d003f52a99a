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

/// Docker's `volume inspect` JSON for one volume: its labels and options
/// `null` when it has none, and no `UsageData`, which Docker shows only in
/// `system df -v` (the [`pb::Volume`] still carries the size and the
/// number of users for that).
pub fn docker_json(v: &pb::Volume) -> serde_json::Value {
    let created = v.created.as_ref().map_or(0, |t| t.seconds);
    let map_or_null = |m: &std::collections::HashMap<String, String>| {
        if m.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::json!(m)
        }
    };
    serde_json::json!({
        "CreatedAt": chrono::DateTime::from_timestamp(created, 0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default(),
        "Driver": v.driver,
        "Labels": map_or_null(&v.labels),
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": map_or_null(&v.options),
        "Scope": "local",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_documents_are_docker_s() {
        let v = pb::Volume {
            name: "pv".into(),
            driver: "local".into(),
            size: 3,
            created: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            ..Default::default()
        };
        let d = docker_json(&v);
        assert_eq!(d["CreatedAt"], "2023-11-14T22:13:20Z");
        assert_eq!(d["Labels"], serde_json::Value::Null);
        assert!(d.get("UsageData").is_none());
        let mut keys: Vec<&String> = d.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "CreatedAt",
                "Driver",
                "Labels",
                "Mountpoint",
                "Name",
                "Options",
                "Scope"
            ]
        );
    }
}
