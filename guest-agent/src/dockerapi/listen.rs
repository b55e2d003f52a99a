//! The Engine API's sockets: Unix sockets (mode 0660, group `berth`, as
//! the gRPC socket), TCP (plain on loopback only; with the agent's mutual
//! TLS anywhere, as `dockerd --tlsverify` on port 2376) and, in the VM, a
//! vsock port (the VM supervisor on the host relays a Unix socket's bytes
//! to it), served with hyper's upgrades so attach and exec can take over
//! their connections.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use berth_api::Endpoint;
use tokio::sync::watch;

use crate::api::Agent;

/// Where the agent serves the Engine API when it runs with its default
/// listeners.
pub const DEFAULT_DOCKER_ENDPOINT: &str = "unix:///run/berth/docker.sock";

/// A bound socket, not yet served.
pub enum Listener {
    /// A Unix socket and its path (removed when serving ends).
    Unix(tokio::net::UnixListener, PathBuf),
    /// A TCP socket on loopback.
    Tcp(tokio::net::TcpListener),
    /// A TCP socket whose clients show a certificate of the agent's CA.
    Tls(TlsListener),
    /// A vsock port: only the VM's host reaches it.
    Vsock(VsockListener),
}

/// A vsock listener that axum can serve.
pub struct VsockListener(tokio_vsock::VsockListener);

impl axum::serve::Listener for VsockListener {
    type Io = tokio_vsock::VsockStream;
    type Addr = tokio_vsock::VsockAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok(conn) => return conn,
                Err(e) => {
                    // Out of descriptors or memory: wait rather than spin.
                    tracing::warn!("the Docker API's vsock port cannot accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A TCP listener whose connections are handed over once their TLS
/// handshake is done: handshakes run in tasks of their own, so a client
/// that connects and says nothing holds up no one else.
pub struct TlsListener {
    addr: std::net::SocketAddr,
    ready: tokio::sync::mpsc::Receiver<(TlsStream, std::net::SocketAddr)>,
}

/// A Docker API connection over TLS.
pub type TlsStream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// How long a new connection has to finish its TLS handshake.
const HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(10);

impl TlsListener {
    fn new(tcp: tokio::net::TcpListener, config: Arc<rustls::ServerConfig>) -> Result<TlsListener> {
        let addr = tcp.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (conn, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!("the Docker API's TLS port cannot accept: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let (acceptor, ready) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE, acceptor.accept(conn)).await {
                        Ok(Ok(tls)) => {
                            let _ = ready.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::info!("Docker API client {peer} refused: {e}"),
                        Err(_) => tracing::info!("Docker API client {peer} sent no TLS handshake"),
                    }
                });
            }
        });
        Ok(TlsListener { addr, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accepting task never ends while this listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// Binds every endpoint now, so the sockets exist before the agent says
/// it serves. TCP takes `tls` (the agent's `--tls-*` files) when given,
/// and is then open to clients anywhere with a certificate of the agent's
/// CA; without it, plain TCP is refused off loopback.
pub async fn bind(
    endpoints: &[Endpoint],
    tls: Option<Arc<rustls::ServerConfig>>,
) -> Result<Vec<Listener>> {
    let mut out = Vec::new();
    for ep in endpoints {
        match ep {
            Endpoint::Unix(path) => {
                let l = crate::server::bind_unix(path)
                    .with_context(|| format!("cannot listen on {ep} (--docker-listen)"))?;
                out.push(Listener::Unix(l, path.clone()));
            }
            Endpoint::Tcp { host, port } => {
                let loopback = host == "localhost"
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                if !loopback && tls.is_none() {
                    bail!("refusing to serve the Docker API on {ep} without TLS: plain TCP is allowed only on loopback; give --tls-cert, --tls-key and --tls-client-ca");
                }
                let l = tokio::net::TcpListener::bind((host.as_str(), *port))
                    .await
                    .with_context(|| format!("cannot listen on {ep} (--docker-listen)"))?;
                match &tls {
                    Some(config) => out.push(Listener::Tls(TlsListener::new(l, config.clone())?)),
                    None => out.push(Listener::Tcp(l)),
                }
            }
            Endpoint::Vsock { cid, port } => {
                let l = tokio_vsock::VsockListener::bind(tokio_vsock::VsockAddr::new(*cid, *port))
                    .with_context(|| format!("cannot listen on {ep} (--docker-listen)"))?;
                out.push(Listener::Vsock(VsockListener(l)));
            }
            other => {
                bail!("--docker-listen takes unix:///PATH, tcp://127.0.0.1:PORT or vsock://CID:PORT, not {other}")
            }
        }
        let how = if matches!(ep, Endpoint::Tcp { .. }) && tls.is_some() {
            " with mutual TLS"
        } else {
            ""
        };
        tracing::info!("serving the Docker Engine API on {ep}{how}");
    }
    Ok(out)
}

/// Serves the Engine API over `agent` on `listeners` until `shutdown`.
pub async fn serve(
    listeners: Vec<Listener>,
    agent: Arc<Agent>,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let app = super::router(agent);
    let mut tasks = Vec::new();
    for l in listeners {
        let mut stop = shutdown.clone();
        let signal = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            match l {
                Listener::Unix(l, path) => {
                    let r = axum::serve(l, app).with_graceful_shutdown(signal).await;
                    let _ = std::fs::remove_file(path);
                    r
                }
                Listener::Tcp(l) => axum::serve(l, app).with_graceful_shutdown(signal).await,
                Listener::Tls(l) => axum::serve(l, app).with_graceful_shutdown(signal).await,
                Listener::Vsock(l) => axum::serve(l, app).with_graceful_shutdown(signal).await,
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}
