//! The Ports service: the published ports, their changes, and a byte
//! relay into a container's port, so that a host outside the agent's
//! machine (the VM's host) can publish container ports on its own
//! localhost.

use std::pin::Pin;
use std::sync::Arc;

use berth_api::v1::{self as pb, ports_server::Ports as PortsRpc};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::status::to_status;
use super::Agent;
use crate::error::Error;
use crate::runtime::relay::{RelayInput, RelayOutput};

/// Ports over the agent.
pub struct PortsApi(pub Arc<Agent>);

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn port(container_id: String, p: crate::network::Published) -> pb::PublishedPort {
    pb::PublishedPort {
        container_id,
        host_ip: p.host_ip,
        host_port: p.host_port.into(),
        container_port: p.container_port.into(),
        protocol: p.protocol,
    }
}

#[tonic::async_trait]
impl PortsRpc for PortsApi {
    type RelayStream = Stream_<pb::RelayOutput>;
    type WatchStream = Stream_<pb::PublishedChange>;

    async fn relay(
        &self,
        request: Request<Streaming<pb::RelayInput>>,
    ) -> Result<Response<Self::RelayStream>, Status> {
        use pb::relay_input::Input;
        use pb::relay_output::Output;
        let mut incoming = request.into_inner();
        let target = match incoming.message().await? {
            Some(pb::RelayInput {
                input: Some(Input::Target(t)),
            }) => t,
            _ => {
                return Err(to_status(Error::InvalidArgument(
                    "a relay starts with its target: the container and its port".into(),
                )))
            }
        };
        let (tx, input) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok(Some(msg)) = incoming.message().await {
                let item = match msg.input {
                    Some(Input::Data(d)) => RelayInput::Data(d),
                    Some(Input::CloseWrite(_)) => RelayInput::CloseWrite,
                    _ => continue,
                };
                let last = item == RelayInput::CloseWrite;
                if tx.send(item).await.is_err() || last {
                    break;
                }
            }
        });
        let rx = self
            .0
            .containers
            .relay(&target.container_id, &target.protocol, target.port, input)
            .await
            .map_err(to_status)?;
        let out = ReceiverStream::new(rx).map(|o| {
            let output = match o {
                RelayOutput::Data(d) => Output::Data(d),
                RelayOutput::Closed => Output::CloseWrite(true),
            };
            Ok(pb::RelayOutput {
                output: Some(output),
            })
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn published(
        &self,
        _request: Request<pb::PublishedRequest>,
    ) -> Result<Response<pb::PublishedResponse>, Status> {
        let ports = self
            .0
            .networks
            .published()
            .into_iter()
            .map(|(id, p)| port(id, p))
            .collect();
        Ok(Response::new(pb::PublishedResponse { ports }))
    }

    async fn watch(
        &self,
        _request: Request<pb::PublishedRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let rx = self.0.networks.watch_published();
        let out = ReceiverStream::new(rx).map(|(added, id, p)| {
            Ok(pb::PublishedChange {
                added,
                port: Some(port(id, p)),
            })
        });
        Ok(Response::new(Box::pin(out)))
    }
}
