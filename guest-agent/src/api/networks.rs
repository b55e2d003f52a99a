//! The Networks service: requests into network engine calls.

use std::sync::Arc;

use berth_api::v1::{self as pb, networks_server::Networks as NetworksRpc};
use tonic::{Request, Response, Status};

use super::status::to_status;
use super::Agent;
use crate::network::{NetworkRecord, NewNetwork};

/// Networks over the agent.
pub struct NetworksApi(pub Arc<Agent>);

/// A network as the API carries it.
fn network(n: NetworkRecord) -> pb::Network {
    let prefix = n.subnet().map_or(0, |s| s.prefix_len());
    pb::Network {
        subnets: if n.subnet.is_empty() {
            Vec::new()
        } else {
            vec![pb::Subnet {
                subnet: n.subnet.clone(),
                gateway: n.gateway.clone(),
                ip_range: String::new(),
            }]
        },
        containers: n
            .endpoints
            .values()
            .map(|e| pb::NetworkEndpoint {
                container_id: e.container.clone(),
                name: e.name.clone(),
                ipv4_address: format!("{}/{prefix}", e.ip),
                mac_address: e.mac.clone(),
            })
            .collect(),
        created: super::convert::ts(Some(n.created)),
        id: n.id,
        name: n.name,
        driver: n.driver,
        internal: n.internal,
        labels: n.labels.into_iter().collect(),
        options: n.options.into_iter().collect(),
    }
}

#[tonic::async_trait]
impl NetworksRpc for NetworksApi {
    async fn create(
        &self,
        request: Request<pb::CreateNetworkRequest>,
    ) -> Result<Response<pb::Network>, Status> {
        let r = request.into_inner();
        let first = r.subnets.first();
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let rec = self
            .0
            .networks
            .create(NewNetwork {
                name: r.name,
                driver: r.driver,
                internal: r.internal,
                subnet: first.and_then(|s| nonempty(&s.subnet)),
                gateway: first.and_then(|s| nonempty(&s.gateway)),
                labels: r.labels.into_iter().collect(),
                options: r.options.into_iter().collect(),
            })
            .map_err(to_status)?;
        Ok(Response::new(network(rec)))
    }

    async fn list(
        &self,
        request: Request<pb::ListNetworksRequest>,
    ) -> Result<Response<pb::ListNetworksResponse>, Status> {
        let filters = super::convert::filters(request.into_inner().filters);
        let networks = self
            .0
            .networks
            .list_filtered(&filters)
            .into_iter()
            .map(network)
            .collect();
        Ok(Response::new(pb::ListNetworksResponse { networks }))
    }

    async fn inspect(
        &self,
        request: Request<pb::NetworkRef>,
    ) -> Result<Response<pb::Network>, Status> {
        let rec = self
            .0
            .networks
            .find(&request.into_inner().id)
            .map_err(to_status)?;
        Ok(Response::new(network(rec)))
    }

    async fn remove(
        &self,
        request: Request<pb::NetworkRef>,
    ) -> Result<Response<pb::RemoveNetworkResponse>, Status> {
        self.0
            .networks
            .remove(&request.into_inner().id)
            .map_err(to_status)?;
        Ok(Response::new(pb::RemoveNetworkResponse {}))
    }

    async fn connect_container(
        &self,
        request: Request<pb::ConnectNetworkRequest>,
    ) -> Result<Response<pb::ConnectNetworkResponse>, Status> {
        let r = request.into_inner();
        self.0
            .containers
            .connect(&r.container, &r.network, r.aliases, &r.ipv4_address)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ConnectNetworkResponse {}))
    }

    async fn disconnect_container(
        &self,
        request: Request<pb::DisconnectNetworkRequest>,
    ) -> Result<Response<pb::DisconnectNetworkResponse>, Status> {
        let r = request.into_inner();
        self.0
            .containers
            .disconnect(&r.container, &r.network)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::DisconnectNetworkResponse {}))
    }

    async fn prune(
        &self,
        _request: Request<pb::PruneNetworksRequest>,
    ) -> Result<Response<pb::PruneNetworksResponse>, Status> {
        let used = self.0.containers.networks_in_use();
        let deleted = self.0.networks.prune(&used);
        Ok(Response::new(pb::PruneNetworksResponse { deleted }))
    }
}
