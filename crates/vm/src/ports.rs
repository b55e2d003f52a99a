//! Published ports on the host: for every port a container publishes in
//! the VM, listen on the host's loopback at the same port and carry each
//! connection (each UDP client) to the container: through the agent's raw
//! port relay, one vsock connection per forwarded connection
//! ([`crate::relay`]), where the backend gives raw streams; else through
//! the agent's Ports.Relay gRPC stream (TCP only).

use std::collections::HashMap;

use anyhow::Result;
use berth_api::v1::{self as pb, ports_client::PortsClient};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::relay::{relay_tcp, relay_udp, GuestPort};

/// Follows the agent's published ports until the connection ends;
/// `relay` is the agent's raw port relay, when the backend reaches it.
pub async fn relay_published_ports(channel: Channel, relay: Option<GuestPort>) -> Result<()> {
    let mut client = PortsClient::new(channel.clone());
    let mut changes = client.watch(pb::PublishedRequest {}).await?.into_inner();
    let mut listeners: HashMap<(u32, String), JoinHandle<()>> = HashMap::new();
    while let Some(change) = changes.message().await? {
        let Some(port) = change.port else { continue };
        let key = (port.host_port, port.protocol.clone());
        if change.added {
            let host = ("127.0.0.1", port.host_port as u16);
            if port.protocol == "udp" {
                let Some(relay) = relay.clone() else {
                    tracing::warn!(
                        "UDP port {} is relayed to the host only by the QEMU backend",
                        port.host_port
                    );
                    continue;
                };
                match UdpSocket::bind(host).await {
                    Ok(socket) => {
                        let (id, to) = (port.container_id.clone(), port.container_port);
                        listeners.insert(
                            key,
                            tokio::spawn(async move {
                                if let Err(e) = relay_udp(relay, socket, id, to).await {
                                    tracing::warn!("the UDP relay of port {to} stopped: {e:#}");
                                }
                            }),
                        );
                    }
                    Err(e) => {
                        tracing::warn!("cannot listen on host port {}/udp: {e}", port.host_port)
                    }
                }
                continue;
            }
            if port.protocol != "tcp" {
                tracing::warn!("{} port {} is not relayed", port.protocol, port.host_port);
                continue;
            }
            match TcpListener::bind(host).await {
                Ok(listener) => {
                    let ch = channel.clone();
                    let task = accept_loop(listener, ch, relay.clone(), port);
                    listeners.insert(key, tokio::spawn(task));
                }
                Err(e) => tracing::warn!("cannot listen on host port {}: {e}", port.host_port),
            }
        } else if let Some(task) = listeners.remove(&key) {
            task.abort();
        }
    }
    for (_, task) in listeners {
        task.abort();
    }
    Ok(())
}

async fn accept_loop(
    listener: TcpListener,
    channel: Channel,
    raw: Option<GuestPort>,
    port: pb::PublishedPort,
) {
    while let Ok((conn, _)) = listener.accept().await {
        let _ = conn.set_nodelay(true);
        let ch = channel.clone();
        let target = pb::RelayTarget {
            container_id: port.container_id.clone(),
            port: port.container_port,
            protocol: "tcp".into(),
        };
        let raw = raw.clone();
        tokio::spawn(async move {
            let relayed = match raw {
                // An agent without the raw relay (an older image) closes
                // the vsock connection unanswered: gRPC carries it then.
                Some(raw) => match raw.dial().await {
                    Ok(up) => relay_tcp(up, conn, &target.container_id, target.port).await,
                    Err(_) => relay(conn, ch, target).await,
                },
                None => relay(conn, ch, target).await,
            };
            if let Err(e) = relayed {
                tracing::debug!("port relay ended: {e:#}");
            }
        });
    }
}

/// Carries one TCP connection through Ports.Relay, both ways, half-closes
/// included.
pub async fn relay(conn: TcpStream, channel: Channel, target: pb::RelayTarget) -> Result<()> {
    let (mut rd, mut wr) = conn.into_split();
    let (tx, rx) = mpsc::channel(8);
    tx.send(pb::RelayInput {
        input: Some(pb::relay_input::Input::Target(target)),
    })
    .await?;
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let input = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => pb::relay_input::Input::CloseWrite(true),
                Ok(n) => pb::relay_input::Input::Data(buf[..n].to_vec()),
            };
            let done = matches!(input, pb::relay_input::Input::CloseWrite(_));
            if tx
                .send(pb::RelayInput { input: Some(input) })
                .await
                .is_err()
                || done
            {
                return;
            }
        }
    });
    let mut outputs = PortsClient::new(channel)
        .relay(ReceiverStream::new(rx))
        .await?
        .into_inner();
    while let Some(out) = outputs.message().await? {
        match out.output {
            Some(pb::relay_output::Output::Data(d)) => wr.write_all(&d).await?,
            Some(pb::relay_output::Output::CloseWrite(_)) => {
                let _ = wr.shutdown().await;
            }
            None => {}
        }
    }
    let _ = wr.shutdown().await;
    reader.abort();
    Ok(())
}
