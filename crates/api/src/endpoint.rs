//! Where the agent listens and how clients reach it.
//!
//! | URL | transport |
//! |---|---|
//! | `unix:///run/berth/berth.sock` | a Unix socket |
//! | `tcp://127.0.0.1:7070` | TCP; TLS when certificates are given |
//! | `vsock://3:1024` | AF_VSOCK, context id and port |
//! | `hybrid-vsock:///path/vm.vsock?port=1024` | a Unix socket in front of a VM's vsock (Firecracker / vhost-device-vsock "hybrid vsock": the client writes `CONNECT <port>\n` and reads `OK <n>\n`, then the socket is a byte stream to the guest's port) |

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use hyper_util::rt::TokioIo;
#[cfg(unix)]
use tokio::io::{AsyncReadExt, AsyncWriteExt};
#[cfg(unix)]
use tokio::net::UnixStream;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity, Uri};

/// An address the agent listens on or a client dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A Unix domain socket at this path.
    Unix(PathBuf),
    /// A TCP address; `host` is a name or an IP literal.
    Tcp {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// An AF_VSOCK address.
    Vsock {
        /// Context id (2 is the host, 3+ are guests).
        cid: u32,
        /// vsock port.
        port: u32,
    },
    /// A hybrid-vsock Unix socket plus the guest port to ask it for.
    HybridVsock {
        /// The VMM's Unix socket.
        path: PathBuf,
        /// The guest's vsock port.
        port: u32,
    },
}

/// Why an endpoint could not be parsed or reached.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The URL is not one of the forms Berth understands.
    #[error("'{0}' is not a Berth endpoint: use unix:///path, tcp://host:port, vsock://CID:PORT or hybrid-vsock:///path?port=N")]
    Malformed(String),
    /// The agent could not be reached.
    #[error("cannot reach the Berth agent at {endpoint}: {reason}; is berth-agent running there?")]
    Unreachable {
        /// The endpoint that was dialed.
        endpoint: String,
        /// What went wrong, in a few words.
        reason: String,
    },
    /// A TLS file could not be read.
    #[error("cannot read the TLS file {path}: {reason}")]
    TlsFile {
        /// The file.
        path: String,
        /// Why not.
        reason: String,
    },
}

impl std::str::FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let bad = || EndpointError::Malformed(url.to_string());
        let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
        match scheme {
            "unix" => {
                if !rest.starts_with('/') {
                    return Err(bad());
                }
                Ok(Endpoint::Unix(PathBuf::from(rest)))
            }
            "tcp" => {
                let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let port = port.trim_end_matches('/').parse().map_err(|_| bad())?;
                if host.is_empty() {
                    return Err(bad());
                }
                Ok(Endpoint::Tcp {
                    host: host.to_string(),
                    port,
                })
            }
            "vsock" => {
                let (cid, port) = rest.split_once(':').ok_or_else(bad)?;
                Ok(Endpoint::Vsock {
                    cid: cid.parse().map_err(|_| bad())?,
                    port: port.trim_end_matches('/').parse().map_err(|_| bad())?,
                })
            }
            "hybrid-vsock" => {
                let (path, query) = rest.split_once("?port=").ok_or_else(bad)?;
                if !path.starts_with('/') {
                    return Err(bad());
                }
                Ok(Endpoint::HybridVsock {
                    path: PathBuf::from(path),
                    port: query.parse().map_err(|_| bad())?,
                })
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix://{}", path.display()),
            Endpoint::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp://[{host}]:{port}")
            }
            Endpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Endpoint::Vsock { cid, port } => write!(f, "vsock://{cid}:{port}"),
            Endpoint::HybridVsock { path, port } => {
                write!(f, "hybrid-vsock://{}?port={port}", path.display())
            }
        }
    }
}

/// Client certificates for a TCP endpoint with mutual TLS.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// PEM file of the CA that signed the agent's certificate.
    pub ca: Option<PathBuf>,
    /// PEM file of the client's certificate.
    pub cert: Option<PathBuf>,
    /// PEM file of the client's private key.
    pub key: Option<PathBuf>,
}

impl ClientTls {
    fn is_set(&self) -> bool {
        self.ca.is_some() || self.cert.is_some()
    }
}

fn read_pem(path: &PathBuf) -> Result<Vec<u8>, EndpointError> {
    std::fs::read(path).map_err(|e| EndpointError::TlsFile {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

impl Endpoint {
    /// Opens a gRPC channel to the agent at this endpoint.
    pub async fn connect(&self, tls: &ClientTls) -> Result<Channel, EndpointError> {
        let unreachable = |e: &(dyn std::error::Error + 'static)| EndpointError::Unreachable {
            endpoint: self.to_string(),
            reason: describe(e),
        };
        let result = match self {
            Endpoint::Tcp { host, port } => {
                let scheme = if tls.is_set() { "https" } else { "http" };
                let uri = if host.contains(':') {
                    format!("{scheme}://[{host}]:{port}")
                } else {
                    format!("{scheme}://{host}:{port}")
                };
                let mut ep = Channel::from_shared(uri)
                    .map_err(|_| EndpointError::Malformed(self.to_string()))?
                    .connect_timeout(Duration::from_secs(10));
                if tls.is_set() {
                    let mut cfg = ClientTlsConfig::new().domain_name(host.clone());
                    if let Some(ca) = &tls.ca {
                        cfg = cfg.ca_certificate(Certificate::from_pem(read_pem(ca)?));
                    }
                    if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
                        cfg = cfg.identity(Identity::from_pem(read_pem(cert)?, read_pem(key)?));
                    }
                    ep = ep.tls_config(cfg).map_err(|e| unreachable(&e))?;
                }
                ep.connect().await
            }
            other => {
                let target = other.clone();
                tonic::transport::Endpoint::from_static("http://berth.agent")
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let target = target.clone();
                        async move { target.dial_stream().await.map(TokioIo::new) }
                    }))
                    .await
            }
        };
        result.map_err(|e| unreachable(&e))
    }

    /// Opens a raw byte stream to a non-TCP endpoint.
    async fn dial_stream(&self) -> std::io::Result<BoxedStream> {
        match self {
            #[cfg(unix)]
            Endpoint::Unix(path) => Ok(Box::new(UnixStream::connect(path).await?)),
            #[cfg(target_os = "linux")]
            Endpoint::Vsock { cid, port } => {
                let addr = tokio_vsock::VsockAddr::new(*cid, *port);
                Ok(Box::new(tokio_vsock::VsockStream::connect(addr).await?))
            }
            #[cfg(unix)]
            Endpoint::HybridVsock { path, port } => {
                Ok(Box::new(hybrid_vsock_connect(path, *port).await?))
            }
            // Tokio has no AF_UNIX on Windows; the WSL2 VM's agent is
            // reached over TCP there.
            #[cfg(not(unix))]
            Endpoint::Unix(_) | Endpoint::HybridVsock { .. } => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "unix:// and hybrid-vsock:// endpoints need Unix sockets, which Berth does not \
                 use on Windows: reach the agent with tcp://HOST:PORT",
            )),
            // AF_VSOCK from a host is Linux's alone (macOS reaches its VM's
            // vsock through the VM manager's Unix socket).
            #[cfg(not(target_os = "linux"))]
            Endpoint::Vsock { .. } => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "vsock:// endpoints can be dialed only on Linux: on this host use the VM's \
                 endpoint that `berth vm status` shows",
            )),
            Endpoint::Tcp { host, port } => Ok(Box::new(
                tokio::net::TcpStream::connect((host.as_str(), *port)).await?,
            )),
        }
    }
}

/// A byte stream of any transport.
pub trait AsyncStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> AsyncStream for T {}
type BoxedStream = Box<dyn AsyncStream>;

/// Connects through a hybrid-vsock Unix socket to a guest port: writes
/// `CONNECT <port>\n` and expects `OK <n>\n` before any payload.
#[cfg(unix)]
pub async fn hybrid_vsock_connect(
    path: &std::path::Path,
    port: u32,
) -> std::io::Result<UnixStream> {
    let mut stream = UnixStream::connect(path).await?;
    stream
        .write_all(format!("CONNECT {port}\n").as_bytes())
        .await?;
    // Read one byte at a time so nothing after the reply line is consumed.
    let mut line = Vec::with_capacity(16);
    loop {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                format!("the VM's vsock port {port} closed the connection before answering (the guest is not listening yet)"),
            ));
        }
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
        if line.len() > 64 {
            return Err(std::io::Error::other(
                "the hybrid-vsock socket answered with an overlong line",
            ));
        }
    }
    if !line.starts_with(b"OK ") {
        return Err(std::io::Error::other(format!(
            "the hybrid-vsock socket answered '{}' instead of OK",
            String::from_utf8_lossy(&line)
        )));
    }
    Ok(stream)
}

/// Flattens an error and its sources into one line, skipping repeats.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_form() {
        for url in [
            "unix:///run/berth/berth.sock",
            "tcp://127.0.0.1:7070",
            "tcp://[::1]:7070",
            "vsock://3:1024",
            "hybrid-vsock:///tmp/vm.vsock?port=1024",
        ] {
            let ep: Endpoint = url.parse().unwrap();
            assert_eq!(ep.to_string(), url);
        }
    }

    #[test]
    fn rejects_malformed_urls_with_a_sentence() {
        for url in [
            "",
            "unix://relative",
            "tcp://host",
            "vsock://x:1",
            "http://a:1",
            "hybrid-vsock:///p",
        ] {
            let err = url.parse::<Endpoint>().unwrap_err().to_string();
            assert!(err.contains("is not a Berth endpoint"), "{err}");
        }
    }
}
