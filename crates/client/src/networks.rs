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

/// Docker's `network inspect` JSON for one network: every key dockerd
/// writes for a local network, the swarm-only ones (`Attachable`,
/// `Ingress`, `ConfigFrom`, `ConfigOnly`) with the values a local network
/// has there.
pub fn docker_json(n: &pb::Network) -> serde_json::Value {
    use serde_json::json;
    let created = n
        .created
        .as_ref()
        .and_then(|t| {
            chrono::DateTime::from_timestamp(t.seconds, t.nanos.clamp(0, 999_999_999) as u32)
        })
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        .unwrap_or_default();
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": created,
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": n.subnets.iter().map(|s| json!({"Subnet": s.subnet, "Gateway": s.gateway})).collect::<Vec<_>>(),
        },
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": n.containers.iter().map(|c| (c.container_id.clone(), json!({
            "Name": c.name, "EndpointID": "", "MacAddress": c.mac_address, "IPv4Address": c.ipv4_address, "IPv6Address": "",
        }))).collect::<serde_json::Map<_, _>>(),
        "Options": n.options,
        "Labels": n.labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_documents_have_docker_s_keys_and_times() {
        let n = pb::Network {
            name: "pn".into(),
            created: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 5,
            }),
            ..Default::default()
        };
        let v = docker_json(&n);
        let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "Attachable",
                "ConfigFrom",
                "ConfigOnly",
                "Containers",
                "Created",
                "Driver",
                "EnableIPv6",
                "IPAM",
                "Id",
                "Ingress",
                "Internal",
                "Labels",
                "Name",
                "Options",
                "Scope"
            ]
        );
        assert_eq!(v["Created"], "2023-11-14T22:13:20.000000005Z");
        assert_eq!(v["IPAM"]["Options"], serde_json::json!({}));
    }
}
