//! The Engine API's sockets: Unix sockets (mode 0660, group `berth`, as
//! the gRPC socket), TCP on loopback and, in the VM, a vsock port (the VM
//! supervisor on the host relays a Unix socket's bytes to it), served with
//! hyper's upgrades so attach and exec can take over their connections.

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

/// Binds every endpoint now, so the sockets exist before the agent says
/// it serves. Plain TCP is refused off loopback: the Engine API has no
/// TLS here yet.
pub async fn bind(endpoints: &[Endpoint]) -> Result<Vec<Listener>> {
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
                if !loopback {
                    bail!("refusing to serve the Docker API on {ep}: plain TCP is allowed only on loopback");
                }
                let l = tokio::net::TcpListener::bind((host.as_str(), *port))
                    .await
                    .with_context(|| format!("cannot listen on {ep} (--docker-listen)"))?;
                out.push(Listener::Tcp(l));
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
        tracing::info!("serving the Docker Engine API on {ep}");
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
                Listener::Vsock(l) => axum::serve(l, app).with_graceful_shutdown(signal).await,
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}
