//! The Ports service: the published ports, their changes, and a byte
//! relay into a container's port, so that a host outside the agent's
//! machine (the VM's host) can publish container ports on its own
//! localhost.

use std::pin::Pin;
use std::sync::Arc;

use berth_api::v1::{self as pb, ports_server::Ports as PortsRpc};
use futures::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::status::to_status;
use super::Agent;
use crate::error::Error;

/// Ports over the agent.
pub struct PortsApi(pub Arc<Agent>);

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn published(agent: &Agent) -> Vec<pb::PublishedPort> {
    agent
        .networks
        .published()
        .into_iter()
        .map(|(id, p)| pb::PublishedPort {
            container_id: id,
            host_ip: p.host_ip,
            host_port: p.host_port.into(),
            container_port: p.container_port.into(),
            protocol: p.protocol,
        })
        .collect()
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
        let mut input = request.into_inner();
        let target = match input.message().await? {
            Some(pb::RelayInput {
                input: Some(Input::Target(t)),
            }) => t,
            _ => {
                return Err(to_status(Error::InvalidArgument(
                    "a relay starts with its target: the container and its port".into(),
                )))
            }
        };
        if !["", "tcp"].contains(&target.protocol.as_str()) {
            return Err(to_status(Error::Unimplemented(format!(
                "relaying {} is not built: only tcp ports can be relayed",
                target.protocol
            ))));
        }
        let port = u16::try_from(target.port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                to_status(Error::InvalidArgument(
                    "the relay's port must be from 1 to 65535".into(),
                ))
            })?;
        let addr = self
            .0
            .containers
            .port_target(&target.container_id, port)
            .map_err(to_status)?;
        let conn = tokio::net::TcpStream::connect(addr).await.map_err(|e| {
            to_status(Error::Unavailable(format!(
                "nothing answers on port {port} of the container ({e})"
            )))
        })?;
        let _ = conn.set_nodelay(true);
        let (mut read, mut write) = conn.into_split();
        tokio::spawn(async move {
            while let Ok(Some(msg)) = input.message().await {
                let data = match msg.input {
                    Some(Input::Data(d)) => d,
                    Some(Input::CloseWrite(_)) => break,
                    _ => continue,
                };
                if write.write_all(&data).await.is_err() {
                    break;
                }
            }
            let _ = write.shutdown().await;
        });
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 << 10];
            loop {
                let out = match read.read(&mut buf).await {
                    Ok(0) | Err(_) => Output::CloseWrite(true),
                    Ok(n) => Output::Data(buf[..n].to_vec()),
                };
                let last = matches!(out, Output::CloseWrite(_));
                if tx
                    .send(Ok(pb::RelayOutput { output: Some(out) }))
                    .await
                    .is_err()
                    || last
                {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn published(
        &self,
        _request: Request<pb::PublishedRequest>,
    ) -> Result<Response<pb::PublishedResponse>, Status> {
        Ok(Response::new(pb::PublishedResponse {
            ports: published(&self.0),
        }))
    }

    async fn watch(
        &self,
        _request: Request<pb::PublishedRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let agent = self.0.clone();
        let (_, mut events) = agent.images.events.subscribe(None);
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            // What the watcher knows so far; first, everything published.
            let mut known: Vec<pb::PublishedPort> = Vec::new();
            loop {
                let now = published(&agent);
                let gone = known
                    .iter()
                    .filter(|p| !now.contains(p))
                    .map(|p| (false, p));
                let new = now.iter().filter(|p| !known.contains(p)).map(|p| (true, p));
                for (added, p) in gone.chain(new) {
                    let change = pb::PublishedChange {
                        added,
                        port: Some(p.clone()),
                    };
                    if tx.send(Ok(change)).await.is_err() {
                        return;
                    }
                }
                known = now;
                // Ports change only when a container starts or stops.
                loop {
                    match events.recv().await {
                        Ok(ev) if ev.kind == "container" => break,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Err(_) => return,
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
