//! Networks: create, list, inspect, remove, connect, disconnect, prune.

use berth_api::v1::{self as pb, networks_client::NetworksClient};
use tonic::transport::Channel;

use crate::error::Result;
use crate::Client;

impl Client {
    async fn networks(&self) -> Result<NetworksClient<Channel>> {
        Ok(NetworksClient::new(self.channel().await?))
    }

    /// Creates a network.
    pub async fn create_network(&self, req: pb::CreateNetworkRequest) -> Result<pb::Network> {
        Ok(self.networks().await?.create(req).await?.into_inner())
    }

    /// Lists networks.
    pub async fn list_networks(&self, req: pb::ListNetworksRequest) -> Result<Vec<pb::Network>> {
        Ok(self
            .networks()
            .await?
            .list(req)
            .await?
            .into_inner()
            .networks)
    }

    /// One network by name or id.
    pub async fn inspect_network(&self, id: &str) -> Result<pb::Network> {
        let req = pb::NetworkRef { id: id.to_string() };
        Ok(self.networks().await?.inspect(req).await?.into_inner())
    }

    /// Removes a network.
    pub async fn remove_network(&self, id: &str) -> Result<()> {
        let req = pb::NetworkRef { id: id.to_string() };
        self.networks().await?.remove(req).await?;
        Ok(())
    }

    /// Connects a container to a network.
    pub async fn connect_network(&self, req: pb::ConnectNetworkRequest) -> Result<()> {
        self.networks().await?.connect_container(req).await?;
        Ok(())
    }

    /// Disconnects a container from a network.
    pub async fn disconnect_network(&self, req: pb::DisconnectNetworkRequest) -> Result<()> {
        self.networks().await?.disconnect_container(req).await?;
        Ok(())
    }

    /// Removes networks no container uses.
    pub async fn prune_networks(&self) -> Result<Vec<String>> {
        let req = pb::PruneNetworksRequest::default();
        Ok(self
            .networks()
            .await?
            .prune(req)
            .await?
            .into_inner()
            .deleted)
    }
}

/// Docker's `network inspect` JSON for one network.
pub fn docker_json(n: &pb::Network) -> serde_json::Value {
    let created = n.created.as_ref().map_or(0, |t| t.seconds);
    serde_json::json!({
        "Name": n.name,
        "Id": n.id,
        "Created": chrono::DateTime::from_timestamp(created, 0).map(|t| t.to_rfc3339()).unwrap_or_default(),
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Config": n.subnets.iter().map(|s| serde_json::json!({"Subnet": s.subnet, "Gateway": s.gateway})).collect::<Vec<_>>(),
        },
        "Internal": n.internal,
        "Containers": n.containers.iter().map(|c| (c.container_id.clone(), serde_json::json!({
            "Name": c.name, "MacAddress": c.mac_address, "IPv4Address": c.ipv4_address, "IPv6Address": "",
        }))).collect::<serde_json::Map<_, _>>(),
        "Options": n.options,
        "Labels": n.labels,
    })
}
