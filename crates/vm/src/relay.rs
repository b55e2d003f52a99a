//! Raw byte relays between the host and the agent in the VM: one vsock
//! connection per forwarded connection, bytes as they come.
//!
//! The agent serves, next to its gRPC port P, the port relay on P + 1
//! ([`RELAY_PORT_OFFSET`]: a first line `RELAY tcp|udp CONTAINER PORT`,
//! answered `OK` or `ERR <sentence>`, then the connection's bytes) and the
//! Docker Engine API on P + 2 ([`DOCKER_PORT_OFFSET`]), which the VM
//! supervisor offers on a Unix socket in the VM's state directory
//! ([`DOCKER_SOCKET`]). Both carry heavy traffic both ways at once, which
//! `vhost-device-vsock` 0.3.0 stalled on: `scripts/setup.sh` installs it
//! with Berth's fix (`scripts/vhost-device-vsock.patch`).

#[cfg(unix)]
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_api::Endpoint;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
#[cfg(unix)]
use tokio::net::UnixListener;
use tokio::net::{TcpStream, UdpSocket};

/// A byte stream to a guest port: a hybrid-vsock Unix socket connection.
#[cfg(unix)]
pub type GuestStream = tokio::net::UnixStream;
/// A byte stream to a guest port. Hybrid vsock is a Unix socket, so off
/// Unix no endpoint ever gives one ([`GuestPort::beside`] says `None`) and
/// the backends there keep the gRPC relay; this type only lets the same
/// code compile.
#[cfg(not(unix))]
pub type GuestStream = tokio::net::TcpStream;
use tokio::sync::Mutex;

/// The port relay's vsock port, above the agent's gRPC port.
pub const RELAY_PORT_OFFSET: u32 = 1;
/// The Docker Engine API's vsock port, above the agent's gRPC port.
pub const DOCKER_PORT_OFFSET: u32 = 2;
/// The Docker API socket's name in the VM's state directory.
pub const DOCKER_SOCKET: &str = "docker.sock";
/// Each direction's copy buffer.
const COPY_BUFFER: usize = 256 << 10;
/// A UDP client that has sent nothing for this long loses its relay.
const UDP_IDLE: Duration = Duration::from_secs(120);

/// A guest port reached through a hybrid-vsock socket on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestPort {
    /// The hybrid-vsock Unix socket.
    pub socket: PathBuf,
    /// The guest's vsock port.
    pub port: u32,
}

impl GuestPort {
    /// The agent's port `offset` above `agent`'s, when `agent` is a
    /// hybrid-vsock endpoint (the QEMU backend); `None` for the others,
    /// which keep the gRPC relay.
    pub fn beside(agent: &Endpoint, offset: u32) -> Option<GuestPort> {
        match agent {
            Endpoint::HybridVsock { path, port } if cfg!(unix) => Some(GuestPort {
                socket: path.clone(),
                port: port + offset,
            }),
            _ => None,
        }
    }

    /// A new byte stream to the guest port.
    pub async fn dial(&self) -> std::io::Result<GuestStream> {
        #[cfg(unix)]
        return berth_api::endpoint::hybrid_vsock_connect(&self.socket, self.port).await;
        #[cfg(not(unix))]
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "hybrid vsock needs Unix sockets",
        ));
    }

    /// A new relay connection to `port` of `container`, answered `OK`.
    pub async fn open_relay(&self, udp: bool, container: &str, port: u32) -> Result<GuestStream> {
        let up = self
            .dial()
            .await
            .context("cannot reach the agent's port relay")?;
        ask_relay(up, udp, container, port).await
    }
}

/// Asks the agent's port relay on `up` (a new stream to it) for `port` of
/// `container`; returns the stream once answered `OK`.
pub async fn ask_relay(
    mut up: GuestStream,
    udp: bool,
    container: &str,
    port: u32,
) -> Result<GuestStream> {
    let proto = if udp { "udp" } else { "tcp" };
    up.write_all(format!("RELAY {proto} {container} {port}\n").as_bytes())
        .await?;
    let line = read_line(&mut up).await?;
    if line != "OK" {
        bail!("{}", line.strip_prefix("ERR ").unwrap_or(&line));
    }
    Ok(up)
}

/// Reads one line a byte at a time, so nothing after it is taken.
async fn read_line<S: AsyncRead + Unpin>(s: &mut S) -> Result<String> {
    let mut line = Vec::new();
    loop {
        let b = s
            .read_u8()
            .await
            .context("the agent closed the relay before answering")?;
        if b == b'\n' {
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
        line.push(b);
        if line.len() > 1024 {
            bail!("the agent's relay answered with an overlong line");
        }
    }
}

/// Copies both ways until both sides have finished, half-closes included.
pub async fn splice<A, B>(a: &mut A, b: &mut B) -> std::io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    tokio::io::copy_bidirectional_with_sizes(a, b, COPY_BUFFER, COPY_BUFFER).await
}

/// Carries one host TCP connection to `port` of `container` over `up`, a
/// new stream to the agent's port relay.
pub async fn relay_tcp(
    up: GuestStream,
    mut conn: TcpStream,
    container: &str,
    port: u32,
) -> Result<()> {
    let mut up = ask_relay(up, false, container, port).await?;
    splice(&mut conn, &mut up).await?;
    Ok(())
}

/// Carries the datagrams sent to `socket` (the host's published UDP port)
/// to `port` of `container` and the answers back, one relay connection per
/// client address, dropped after [`UDP_IDLE`] without a datagram.
pub async fn relay_udp(
    relay: GuestPort,
    socket: UdpSocket,
    container: String,
    port: u32,
) -> Result<()> {
    type Clients =
        Mutex<std::collections::HashMap<std::net::SocketAddr, tokio::sync::mpsc::Sender<Vec<u8>>>>;
    let socket = Arc::new(socket);
    let clients: Arc<Clients> = Arc::default();
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, from) = socket.recv_from(&mut buf).await?;
        let datagram = buf[..n].to_vec();
        let mut map = clients.lock().await;
        if let Some(tx) = map.get(&from) {
            if tx.try_send(datagram.clone()).is_ok() {
                continue;
            }
            map.remove(&from);
        }
        let up = match relay.open_relay(true, &container, port).await {
            Ok(up) => up,
            Err(e) => {
                tracing::debug!("UDP port {port} of {container}: {e:#}");
                continue;
            }
        };
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(256);
        let _ = tx.try_send(datagram);
        map.insert(from, tx);
        drop(map);
        let (mut rd, mut wr) = tokio::io::split(up);
        let back = socket.clone();
        let gone = clients.clone();
        tokio::spawn(async move {
            let answers = async {
                loop {
                    let len = rd.read_u16().await?;
                    let mut payload = vec![0u8; len as usize];
                    rd.read_exact(&mut payload).await?;
                    back.send_to(&payload, from).await?;
                }
                #[allow(unreachable_code)]
                Ok::<(), std::io::Error>(())
            };
            let asks = async {
                while let Ok(Some(d)) = tokio::time::timeout(UDP_IDLE, rx.recv()).await {
                    let mut frame = Vec::with_capacity(d.len() + 2);
                    frame.extend_from_slice(&(d.len() as u16).to_be_bytes());
                    frame.extend_from_slice(&d);
                    if wr.write_all(&frame).await.is_err() {
                        break;
                    }
                }
            };
            tokio::select! { _ = answers => {}, _ = asks => {} }
            gone.lock().await.remove(&from);
        });
    }
}

/// Where the Docker API relay sends each connection's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerUpstream {
    /// The agent's vsock port beside its own (QEMU's hybrid vsock).
    Vsock(GuestPort),
    /// The agent's Engine API on a loopback TCP port with mutual TLS (the
    /// WSL2 agent), reached with the VM's client certificate.
    Tls {
        /// The loopback port.
        port: u16,
        /// The VM's certificates.
        certs: crate::tls::VmCerts,
    },
}

/// Carries one Docker client's connection to the agent's Engine API.
pub async fn carry<C>(conn: &mut C, docker: &DockerUpstream) -> Result<()>
where
    C: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    match docker {
        DockerUpstream::Vsock(port) => {
            let mut up = port
                .dial()
                .await
                .context("the Docker API in the VM did not answer")?;
            splice(conn, &mut up).await?;
        }
        DockerUpstream::Tls { port, certs } => {
            let mut up = crate::tls::dial(certs, *port).await?;
            splice(conn, &mut up).await?;
        }
    }
    Ok(())
}

/// Serves the Docker Engine API of the agent on `socket` (a Unix socket
/// path on the host): each connection's bytes go to `docker` and back.
/// Replaces a stale socket file; runs until the task is dropped.
#[cfg(unix)]
pub async fn relay_docker_socket(socket: &Path, docker: DockerUpstream) -> Result<()> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    let _guard = RemoveOnDrop(socket.to_path_buf());
    loop {
        let (mut conn, _) = listener.accept().await?;
        let docker = docker.clone();
        tokio::spawn(async move {
            if let Err(e) = carry(&mut conn, &docker).await {
                tracing::debug!("a Docker API connection ended: {e:#}");
            }
        });
    }
}

/// The named pipe Docker clients on Windows reach the VM's Engine API by:
/// `DOCKER_HOST=npipe:////./pipe/berth_engine` (Docker Desktop's own is
/// `docker_engine`; Berth leaves that name to it).
pub const DOCKER_PIPE: &str = r"\\.\pipe\berth_engine";

/// [`DOCKER_PIPE`] as Docker clients write it in `DOCKER_HOST`.
pub const DOCKER_PIPE_HOST: &str = "npipe:////./pipe/berth_engine";

/// Serves the Docker Engine API of the agent on the named pipe `name`
/// (Windows), as [`relay_docker_socket`] does on a Unix socket. The pipe
/// takes no clients from other machines, and Windows' default access list
/// for a pipe lets only its creator (and administrators) write to it.
#[cfg(windows)]
pub async fn relay_docker_pipe(name: &str, docker: DockerUpstream) -> Result<()> {
    use tokio::net::windows::named_pipe::ServerOptions;
    let mut server = ServerOptions::new()
        .first_pipe_instance(true)
        .reject_remote_clients(true)
        .create(name)
        .with_context(|| {
            format!("cannot make the named pipe {name} (is another Berth serving it?)")
        })?;
    loop {
        server.connect().await?;
        let mut conn = server;
        // The next instance exists before this one is handed off, so a
        // client never finds the pipe missing.
        server = ServerOptions::new()
            .reject_remote_clients(true)
            .create(name)
            .with_context(|| format!("cannot make another instance of {name}"))?;
        let docker = docker.clone();
        tokio::spawn(async move {
            if let Err(e) = carry(&mut conn, &docker).await {
                tracing::debug!("a Docker API connection ended: {e:#}");
            }
        });
    }
}

/// The socket file goes with the relay.
#[cfg(unix)]
struct RemoveOnDrop(PathBuf);

#[cfg(unix)]
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn only_hybrid_vsock_agents_get_raw_relays() {
        let agent: Endpoint = "hybrid-vsock:///run/vm/vm.vsock?port=1024".parse().unwrap();
        assert_eq!(
            GuestPort::beside(&agent, RELAY_PORT_OFFSET),
            Some(GuestPort {
                socket: "/run/vm/vm.vsock".into(),
                port: 1025
            })
        );
        let tcp: Endpoint = "tcp://127.0.0.1:2375".parse().unwrap();
        assert_eq!(GuestPort::beside(&tcp, DOCKER_PORT_OFFSET), None);
    }

    #[tokio::test]
    async fn a_relay_refused_by_the_agent_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm.vsock");
        let listener = UnixListener::bind(&path).unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let _ = read_line(&mut s).await.unwrap();
            s.write_all(b"OK 1025\n").await.unwrap();
            let asked = read_line(&mut s).await.unwrap();
            assert_eq!(asked, "RELAY tcp web 80");
            s.write_all(b"ERR container web is not running\n")
                .await
                .unwrap();
        });
        let relay = GuestPort {
            socket: path,
            port: 1025,
        };
        let err = relay.open_relay(false, "web", 80).await.unwrap_err();
        assert_eq!(format!("{err:#}"), "container web is not running");
    }
}
