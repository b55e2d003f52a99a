//! The port relay: one TCP connection from a client (the host side of a
//! published port, in a VM) carried to a port of a running container.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Containers;
use crate::error::{Error, Result};

/// What the client sends through a relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayInput {
    /// Bytes for the container.
    Data(Vec<u8>),
    /// The client is done writing.
    CloseWrite,
}

/// What a relay sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayOutput {
    /// Bytes from the container.
    Data(Vec<u8>),
    /// The container is done writing; nothing follows.
    Closed,
}

/// Checks a relay's protocol and port.
pub fn relay_port(protocol: &str, port: u32) -> Result<u16> {
    if !["", "tcp"].contains(&protocol) {
        return Err(Error::Unimplemented(format!(
            "relaying {protocol} is not built: only tcp ports can be relayed"
        )));
    }
    u16::try_from(port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::InvalidArgument("the relay's port must be from 1 to 65535".into()))
}

impl Containers {
    /// Connects to `port` of running container `container` and relays:
    /// `input` goes to it, the returned receiver gets what it sends.
    pub async fn relay(
        &self,
        container: &str,
        protocol: &str,
        port: u32,
        mut input: mpsc::Receiver<RelayInput>,
    ) -> Result<mpsc::Receiver<RelayOutput>> {
        let port = relay_port(protocol, port)?;
        let addr = self.port_target(container, port)?;
        let conn = tokio::net::TcpStream::connect(addr).await.map_err(|e| {
            Error::Unavailable(format!(
                "nothing answers on port {port} of the container ({e})"
            ))
        })?;
        let _ = conn.set_nodelay(true);
        let (mut read, mut write) = conn.into_split();
        tokio::spawn(async move {
            while let Some(RelayInput::Data(data)) = input.recv().await {
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
                    Ok(0) | Err(_) => RelayOutput::Closed,
                    Ok(n) => RelayOutput::Data(buf[..n].to_vec()),
                };
                let last = out == RelayOutput::Closed;
                if tx.send(out).await.is_err() || last {
                    break;
                }
            }
        });
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tcp_ports_in_range_are_relayed() {
        assert_eq!(relay_port("", 80), Ok(80));
        assert_eq!(relay_port("tcp", 65535), Ok(65535));
        assert!(matches!(
            relay_port("udp", 53),
            Err(Error::Unimplemented(_))
        ));
        assert!(matches!(
            relay_port("tcp", 0),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            relay_port("tcp", 70000),
            Err(Error::InvalidArgument(_))
        ));
    }
}
