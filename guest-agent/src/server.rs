//! Puts the API on its listeners: Unix sockets (mode 0660, group `berth`
//! when it exists), TCP (plain only on loopback; mutual TLS otherwise) and
//! vsock, all served by one set of routes until shutdown.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use anyhow::{bail, Context as _, Result};
use berth_api::Endpoint;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tonic::service::Routes;
use tonic::transport::server::Connected;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

/// Certificates for mutual TLS on TCP listeners.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// The agent's certificate (PEM).
    pub cert: Option<PathBuf>,
    /// The agent's private key (PEM).
    pub key: Option<PathBuf>,
    /// The CA whose client certificates are accepted (PEM).
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn config(&self) -> Result<Option<ServerTlsConfig>> {
        match (&self.cert, &self.key, &self.client_ca) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => {
                let read = |p: &PathBuf| {
                    std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))
                };
                Ok(Some(
                    ServerTlsConfig::new()
                        .identity(Identity::from_pem(read(cert)?, read(key)?))
                        .client_ca_root(Certificate::from_pem(read(ca)?)),
                ))
            }
            _ => bail!("mutual TLS needs all three of --tls-cert, --tls-key and --tls-client-ca"),
        }
    }
}

impl TlsFiles {
    /// The same mutual TLS as a rustls server configuration, for the
    /// listeners that tonic does not serve (the Docker Engine API's TCP
    /// sockets); `None` when no TLS was asked for.
    pub fn rustls_config(&self) -> Result<Option<std::sync::Arc<rustls::ServerConfig>>> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let (cert, key, ca) = match (&self.cert, &self.key, &self.client_ca) {
            (None, None, None) => return Ok(None),
            (Some(c), Some(k), Some(a)) => (c, k, a),
            _ => bail!("mutual TLS needs all three of --tls-cert, --tls-key and --tls-client-ca"),
        };
        let certs = |p: &PathBuf| {
            CertificateDer::pem_file_iter(p)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("cannot read the certificates in {}", p.display()))
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in certs(ca)? {
            roots
                .add(c)
                .with_context(|| format!("{} holds a certificate rustls refuses", ca.display()))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(roots.into())
            .build()
            .with_context(|| format!("{} cannot verify client certificates", ca.display()))?;
        let key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("cannot read the private key in {}", key.display()))?;
        let config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs(cert)?, key)
            .context("the agent's certificate and key do not match")?;
        Ok(Some(std::sync::Arc::new(config)))
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Serves `routes` on every endpoint until `shutdown` turns true.
pub async fn serve(
    endpoints: &[Endpoint],
    routes: Routes,
    tls: &TlsFiles,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let tls_config = tls.config()?;
    let mut tasks = Vec::new();
    for ep in endpoints {
        let mut stop = shutdown.clone();
        let signal = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let routes = routes.clone();
        let task = match ep {
            Endpoint::Unix(path) => {
                let listener = bind_unix(path).with_context(|| format!("cannot listen on {ep}"))?;
                let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
                tokio::spawn(
                    Server::builder()
                        .add_routes(routes)
                        .serve_with_incoming_shutdown(incoming, signal),
                )
            }
            Endpoint::Tcp { host, port } => {
                let mut builder = Server::builder();
                match &tls_config {
                    Some(cfg) => builder = builder.tls_config(cfg.clone())?,
                    None if !is_loopback(host) => bail!(
                        "refusing to serve {ep} without TLS: plain TCP is allowed only on loopback; give --tls-cert, --tls-key and --tls-client-ca"
                    ),
                    None => {}
                }
                let listener = tokio::net::TcpListener::bind((host.as_str(), *port))
                    .await
                    .with_context(|| format!("cannot listen on {ep}"))?;
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                tokio::spawn(
                    builder
                        .add_routes(routes)
                        .serve_with_incoming_shutdown(incoming, signal),
                )
            }
            Endpoint::Vsock { cid, port } => {
                let listener =
                    tokio_vsock::VsockListener::bind(tokio_vsock::VsockAddr::new(*cid, *port))
                        .with_context(|| format!("cannot listen on {ep}"))?;
                let incoming = futures::StreamExt::map(listener.incoming(), |s| s.map(VsockConn));
                tokio::spawn(
                    Server::builder()
                        .add_routes(routes)
                        .serve_with_incoming_shutdown(incoming, signal),
                )
            }
            Endpoint::HybridVsock { .. } => {
                bail!("{ep} is a client-side address: the agent listens on vsock://CID:PORT inside the VM")
            }
        };
        tracing::info!("listening on {ep}");
        tasks.push(task);
    }
    crate::init::tell_serving();
    if std::env::var_os(berth_api::ANNOUNCE_SERVING_ENV).is_some() {
        // Whatever the log level: the host waits for this line.
        eprintln!("{}", berth_api::AGENT_SERVING_LINE);
    }
    for t in tasks {
        t.await??;
    }
    for ep in endpoints {
        if let Endpoint::Unix(path) = ep {
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(())
}

/// Binds a Unix socket at `path` (making its folder, replacing a stale
/// socket) with mode 0660 and group `berth` when that group exists.
///
/// The socket is made under a temporary name beside `path` and renamed
/// into place once it listens with its mode and group: a client that sees
/// the file can connect (no "connection refused" between bind and listen)
/// and no one else ever could (no moment with the umask's mode).
pub fn bind_unix(path: &std::path::Path) -> Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let temp = path.with_file_name(format!(".{}-{n}.sock", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    // A temporary name too long for a socket address: bind in place.
    let (listener, at) = match tokio::net::UnixListener::bind(&temp) {
        Ok(l) => (l, temp.as_path()),
        Err(_) => {
            let _ = std::fs::remove_file(path);
            (tokio::net::UnixListener::bind(path)?, path)
        }
    };
    std::fs::set_permissions(at, std::fs::Permissions::from_mode(0o660))?;
    if let Some(gid) = group_id("berth") {
        let _ = nix::unistd::chown(at, None, Some(gid));
    }
    if at != path {
        std::fs::rename(at, path)
            .with_context(|| format!("cannot put the socket at {}", path.display()))?;
    }
    Ok(listener)
}

/// A vsock connection that tonic can serve.
pub struct VsockConn(tokio_vsock::VsockStream);

impl Connected for VsockConn {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for VsockConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for VsockConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The id of the local group `name`. A static build (the VM's guest) reads
/// `/etc/group` itself: glibc's NSS would load the host's shared modules
/// (libnss_systemd) into a static binary, which crashes it.
fn group_id(name: &str) -> Option<nix::unistd::Gid> {
    if cfg!(target_feature = "crt-static") {
        let groups = std::fs::read_to_string("/etc/group").ok()?;
        gid_in(&groups, name).map(nix::unistd::Gid::from_raw)
    } else {
        nix::unistd::Group::from_name(name).ok()?.map(|g| g.gid)
    }
}

/// The id of group `name` in the text of an `/etc/group` file.
fn gid_in(groups: &str, name: &str) -> Option<u32> {
    groups.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        fields.nth(1)?.parse().ok()
    })
}

#[cfg(test)]
mod group_tests {
    use super::gid_in;

    #[test]
    fn finds_a_group_id_in_etc_group() {
        let text = "root:x:0:\nberthx:x:5:\nberth:x:998:alice,bob\nbad:x:nope:\n";
        assert_eq!(gid_in(text, "berth"), Some(998));
        assert_eq!(gid_in(text, "bad"), None);
        assert_eq!(gid_in(text, "missing"), None);
    }
}
