//! The raw port relay: one connection per forwarded connection, bytes as
//! they come (no gRPC messages), for the VM's host to publish container
//! ports on its own loopback.
//!
//! A connection opens with one line, `RELAY tcp|udp CONTAINER PORT\n`, and
//! the agent answers `OK\n` or `ERR <sentence>\n`. After `OK`:
//! - tcp: the bytes of one TCP connection to the container's port, both
//!   ways, half-closes included (a shutdown of one side's writing reaches
//!   the other).
//! - udp: datagrams both ways, each as a 2-byte big-endian length and the
//!   payload, between the host's client and the container's port.
//!
//! For measuring the transport itself (tests and `bench/ports.sh`), with no
//! container: `ECHO\n` sends every byte back until the host's end, `SINK\n`
//! reads to the end and answers the count, `SOURCE <bytes>\n` sends that
//! many bytes and closes.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use berth_api::Endpoint;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::runtime::Containers;

/// The longest first line a relay connection may send.
const MAX_LINE: usize = 512;
/// Each direction's copy buffer: large enough that a stream moves in big
/// writes (vsock packets are up to 64 KiB).
const COPY_BUFFER: usize = 256 << 10;

/// A bound relay socket, not yet served.
pub enum Listener {
    /// A Unix socket (tests on a host, no VM).
    Unix(tokio::net::UnixListener),
    /// A vsock port (the VM).
    Vsock(tokio_vsock::VsockListener),
}

/// Binds every `--relay-listen` endpoint now, before the agent says it
/// serves.
pub fn bind(endpoints: &[Endpoint]) -> Result<Vec<Listener>> {
    let mut out = Vec::new();
    for ep in endpoints {
        match ep {
            Endpoint::Unix(path) => out.push(Listener::Unix(
                crate::server::bind_unix(path)
                    .with_context(|| format!("cannot listen on {ep} (--relay-listen)"))?,
            )),
            Endpoint::Vsock { cid, port } => out.push(Listener::Vsock(
                tokio_vsock::VsockListener::bind(tokio_vsock::VsockAddr::new(*cid, *port))
                    .with_context(|| format!("cannot listen on {ep} (--relay-listen)"))?,
            )),
            other => {
                bail!("--relay-listen takes vsock://CID:PORT or unix:///PATH, not {other}")
            }
        }
        tracing::info!("relaying published ports on {ep}");
    }
    Ok(out)
}

/// Serves relay connections on `listeners` until `shutdown`.
pub async fn serve(
    listeners: Vec<Listener>,
    containers: Arc<Containers>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut tasks = Vec::new();
    for l in listeners {
        let containers = containers.clone();
        let mut stop = shutdown.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = async { let _ = stop.wait_for(|s| *s).await; } => return,
                    accepted = accept(&l) => match accepted {
                        Ok(conn) => {
                            let containers = containers.clone();
                            tokio::spawn(async move {
                                if let Err(e) = relay(conn, &containers).await {
                                    tracing::debug!("a port relay ended: {e:#}");
                                }
                            });
                        }
                        Err(e) => {
                            tracing::warn!("the port relay cannot accept: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                    }
                }
            }
        }));
    }
    let _ = shutdown.wait_for(|s| *s).await;
    for t in tasks {
        let _ = t.await;
    }
    Ok(())
}

/// A relay connection of either kind.
trait Conn: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Conn for T {}

async fn accept(l: &Listener) -> std::io::Result<Box<dyn Conn>> {
    Ok(match l {
        Listener::Unix(l) => Box::new(l.accept().await?.0),
        Listener::Vsock(l) => Box::new(l.accept().await?.0),
    })
}

/// What the first line asks for.
#[derive(Debug, PartialEq, Eq)]
struct Ask {
    udp: bool,
    container: String,
    port: u16,
}

fn parse(line: &str) -> std::result::Result<Ask, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let [verb, proto, container, port] = words[..] else {
        return Err("a relay starts with RELAY tcp|udp CONTAINER PORT".into());
    };
    if verb != "RELAY" {
        return Err("a relay starts with RELAY tcp|udp CONTAINER PORT".into());
    }
    let udp = match proto {
        "tcp" => false,
        "udp" => true,
        other => return Err(format!("relaying {other} is not built: only tcp and udp")),
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or("the relay's port must be from 1 to 65535")?;
    Ok(Ask {
        udp,
        container: container.to_string(),
        port,
    })
}

/// Reads the first line a byte at a time, so nothing after it is taken.
async fn read_line(conn: &mut Box<dyn Conn>) -> Result<String> {
    let mut line = Vec::new();
    loop {
        let b = conn
            .read_u8()
            .await
            .context("the relay closed before asking")?;
        if b == b'\n' {
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
        line.push(b);
        if line.len() > MAX_LINE {
            bail!("the relay's first line is too long");
        }
    }
}

async fn relay(mut conn: Box<dyn Conn>, containers: &Containers) -> Result<()> {
    let line = read_line(&mut conn).await?;
    if let Some(done) = transport_probe(&mut conn, &line).await {
        return done;
    }
    let ask = match parse(&line) {
        Ok(a) => a,
        Err(e) => {
            conn.write_all(format!("ERR {e}\n").as_bytes()).await?;
            bail!(e);
        }
    };
    let target = match containers.port_target(&ask.container, ask.port) {
        Ok(t) => t,
        Err(e) => {
            conn.write_all(format!("ERR {e}\n").as_bytes()).await?;
            return Err(e.into());
        }
    };
    if ask.udp {
        let socket = tokio::net::UdpSocket::bind(("0.0.0.0", 0)).await?;
        socket.connect(target).await?;
        conn.write_all(b"OK\n").await?;
        return datagrams(conn, socket).await;
    }
    let mut tcp = match tokio::net::TcpStream::connect(target).await {
        Ok(t) => t,
        Err(e) => {
            let e = format!(
                "nothing answers on port {} of the container ({e})",
                ask.port
            );
            conn.write_all(format!("ERR {e}\n").as_bytes()).await?;
            bail!(e);
        }
    };
    let _ = tcp.set_nodelay(true);
    conn.write_all(b"OK\n").await?;
    tokio::io::copy_bidirectional_with_sizes(&mut conn, &mut tcp, COPY_BUFFER, COPY_BUFFER).await?;
    Ok(())
}

/// The transport's own probes (`ECHO`, `SINK`, `SOURCE n`); `None` for
/// any other line.
async fn transport_probe(conn: &mut Box<dyn Conn>, line: &str) -> Option<Result<()>> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let probe = async {
        match words[..] {
            ["ECHO"] => {
                conn.write_all(b"OK\n").await?;
                let (mut rd, mut wr) = tokio::io::split(conn);
                let mut buf = vec![0u8; COPY_BUFFER];
                loop {
                    let n = rd.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    wr.write_all(&buf[..n]).await?;
                }
                wr.shutdown().await?;
            }
            ["SINK"] => {
                conn.write_all(b"OK\n").await?;
                let count = tokio::io::copy(conn, &mut tokio::io::sink()).await?;
                conn.write_all(format!("{count}\n").as_bytes()).await?;
                conn.shutdown().await?;
            }
            ["SOURCE", n] => {
                let mut left: u64 = n.parse().context("SOURCE takes a byte count")?;
                conn.write_all(b"OK\n").await?;
                let buf = vec![0x5au8; COPY_BUFFER];
                while left > 0 {
                    let k = left.min(buf.len() as u64) as usize;
                    conn.write_all(&buf[..k]).await?;
                    left -= k as u64;
                }
                conn.shutdown().await?;
            }
            _ => return Ok(false),
        }
        Ok::<bool, anyhow::Error>(true)
    };
    match probe.await {
        Ok(false) => None,
        Ok(true) => Some(Ok(())),
        Err(e) => Some(Err(e)),
    }
}

/// Carries length-prefixed datagrams between `conn` and `socket` until
/// the relay connection ends.
async fn datagrams(conn: Box<dyn Conn>, socket: tokio::net::UdpSocket) -> Result<()> {
    let socket = Arc::new(socket);
    let (mut rd, mut wr) = tokio::io::split(conn);
    let back = {
        let socket = socket.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65535];
            loop {
                let n = match socket.recv(&mut buf).await {
                    Ok(n) => n,
                    // A datagram sent before the container's server was
                    // bound came back as port unreachable: keep listening.
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                    Err(_) => break,
                };
                let mut frame = Vec::with_capacity(n + 2);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
                frame.extend_from_slice(&buf[..n]);
                if wr.write_all(&frame).await.is_err() {
                    break;
                }
            }
        })
    };
    let mut buf = vec![0u8; 65535];
    while let Ok(len) = rd.read_u16().await {
        let payload = &mut buf[..len as usize];
        if rd.read_exact(payload).await.is_err() {
            break;
        }
        // A datagram the container's port refuses (nothing bound yet) is
        // lost, as on a network.
        let _ = socket.send(payload).await;
    }
    back.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_names_protocol_container_and_port() {
        assert_eq!(
            parse("RELAY tcp web 80"),
            Ok(Ask {
                udp: false,
                container: "web".into(),
                port: 80
            })
        );
        assert!(parse("RELAY udp dns 53").unwrap().udp);
        assert!(parse("RELAY sctp web 80")
            .unwrap_err()
            .contains("not built"));
        assert!(parse("RELAY tcp web 0").unwrap_err().contains("1 to 65535"));
        assert!(parse("GET / HTTP/1.1").is_err());
    }
}
