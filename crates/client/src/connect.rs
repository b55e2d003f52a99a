//! Finding the agent and connecting to it.
//!
//! Where the agent is, in the order a user expects: an explicit host (the
//! CLI's `-H`), then `BERTH_HOST`, then the local socket
//! (`/run/berth/berth.sock`) when it exists, then a running VM in the
//! default state directory (so on macOS and Windows `berth ps` works with
//! nothing exported), and last the local socket again, so the error names
//! the place a Linux user expects.
//!
//! One connection is dialed on first use and shared by every call (HTTP/2
//! carries them side by side); tonic's channel dials again by itself after
//! the agent goes away and comes back. On first use the client also asks
//! the agent for its API version and refuses to go on, with a sentence,
//! when the two differ in their major version.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_api::endpoint::ClientTls;
use berth_api::v1::system_client::SystemClient;
use berth_api::Endpoint;
use tonic::transport::Channel;

use crate::error::{Error, ErrorKind, Result};

/// Where the endpoint came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Given by the program (the CLI's `-H`).
    Given,
    /// The `BERTH_HOST` environment variable.
    Environment,
    /// The local agent's socket, which exists.
    LocalSocket,
    /// A running VM, from its state directory.
    Vm(PathBuf),
    /// Nothing was found; the local socket is the default.
    Default,
}

/// How to reach the agent.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// An endpoint URL (`unix:///…`, `tcp://…`, `vsock://…`,
    /// `hybrid-vsock://…`); `None` to discover it.
    pub host: Option<String>,
    /// Certificates for `tcp://` with (mutual) TLS.
    pub tls: ClientTls,
    /// How long dialing may take (default 10 s).
    pub connect_timeout: Option<Duration>,
}

/// Finds the agent's endpoint as the module doc says.
pub fn discover(host: Option<&str>) -> (String, Source) {
    if let Some(h) = host.filter(|h| !h.is_empty()) {
        return (h.to_string(), Source::Given);
    }
    if let Some(h) = std::env::var("BERTH_HOST").ok().filter(|h| !h.is_empty()) {
        return (h, Source::Environment);
    }
    let local = berth_api::DEFAULT_ENDPOINT;
    if cfg!(unix) && std::path::Path::new(local.trim_start_matches("unix://")).exists() {
        return (local.to_string(), Source::LocalSocket);
    }
    #[cfg(feature = "vm")]
    if let Some((endpoint, dir)) = crate::vm::running_endpoint() {
        return (endpoint, Source::Vm(dir));
    }
    (local.to_string(), Source::Default)
}

struct Inner {
    endpoint: String,
    source: Source,
    tls: ClientTls,
    timeout: Duration,
    channel: tokio::sync::OnceCell<Channel>,
}

/// A client of one Berth agent. Cheap to clone; clones share the
/// connection. Nothing is dialed until the first call.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// A client for the agent `options` names or discovery finds; the
    /// connection is made on first use.
    pub fn new(options: ConnectOptions) -> Client {
        let (endpoint, source) = discover(options.host.as_deref());
        // The VM's agent over TCP (WSL2) takes only its own certificates:
        // found, like its endpoint, in the VM's state directory.
        #[cfg(feature = "vm")]
        let tls = match options.tls {
            t if t.ca.is_none() && t.cert.is_none() => crate::vm::tls_for(&endpoint).unwrap_or(t),
            t => t,
        };
        #[cfg(not(feature = "vm"))]
        let tls = options.tls;
        Client {
            inner: Arc::new(Inner {
                endpoint,
                source,
                tls,
                timeout: options.connect_timeout.unwrap_or(Duration::from_secs(10)),
                channel: Default::default(),
            }),
        }
    }

    /// A client, connected and version-checked now.
    pub async fn connect(options: ConnectOptions) -> Result<Client> {
        let c = Client::new(options);
        c.channel().await?;
        Ok(c)
    }

    /// The endpoint this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// Where the endpoint came from.
    pub fn source(&self) -> &Source {
        &self.inner.source
    }

    /// The shared connection, dialed and checked on first use.
    pub async fn channel(&self) -> Result<Channel> {
        let ch = self
            .inner
            .channel
            .get_or_try_init(|| async {
                let channel = self.dial().await?;
                check_version(&self.inner.endpoint, channel.clone()).await?;
                Ok::<_, Error>(channel)
            })
            .await?;
        Ok(ch.clone())
    }

    async fn dial(&self) -> Result<Channel> {
        let endpoint = &self.inner.endpoint;
        let ep: Endpoint = endpoint.parse().map_err(|e: berth_api::EndpointError| {
            Error::new(ErrorKind::InvalidArgument, e.to_string())
        })?;
        let unreachable = |why: String| {
            let hint = match &self.inner.source {
                Source::Default => {
                    "; is berth-agent running there? Start it, or boot the VM with \
                     `berth vm start`, or set BERTH_HOST"
                }
                Source::Vm(_) => "; the VM may be stopping: see `berth vm status`",
                _ => "; is berth-agent running there?",
            };
            Error::new(
                ErrorKind::Unavailable,
                format!("cannot reach the Berth agent at {endpoint}: {why}{hint}"),
            )
        };
        match tokio::time::timeout(self.inner.timeout, ep.connect(&self.inner.tls)).await {
            Err(_) => Err(unreachable(format!(
                "no answer within {} s",
                self.inner.timeout.as_secs()
            ))),
            Ok(Err(berth_api::EndpointError::Unreachable { reason, .. })) => {
                if let Some(sentence) = socket_refused(&ep) {
                    return Err(Error::new(
                        ErrorKind::PermissionDenied,
                        format!("cannot reach the Berth agent at {endpoint}: {sentence}"),
                    ));
                }
                Err(unreachable(reason))
            }
            Ok(Err(e)) => Err(Error::new(ErrorKind::InvalidArgument, e.to_string())),
            Ok(Ok(ch)) => Ok(ch),
        }
    }
}

/// When a Unix socket exists but this user may not write to it: a sentence
/// naming the socket's group and what to do.
#[cfg(unix)]
fn socket_refused(ep: &Endpoint) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let Endpoint::Unix(path) = ep else {
        return None;
    };
    let meta = std::fs::metadata(path).ok()?;
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: access(2) on a NUL-terminated path.
    if unsafe { libc::access(c_path.as_ptr(), libc::W_OK) } == 0 {
        return None;
    }
    let group = std::fs::read_to_string("/etc/group")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let mut f = l.split(':');
                let name = f.next()?;
                let gid: u32 = f.nth(1)?.parse().ok()?;
                (gid == meta.gid()).then(|| name.to_string())
            })
        })
        .unwrap_or_else(|| meta.gid().to_string());
    Some(format!(
        "permission denied: the socket belongs to group {group}; add your user to it \
         (sudo usermod -aG {group} $USER, then log in again) or run as root"
    ))
}

#[cfg(not(unix))]
fn socket_refused(_: &Endpoint) -> Option<String> {
    None
}

/// The major part of an API version (`1` of `1.0`).
fn major(v: &str) -> &str {
    v.split('.').next().unwrap_or(v)
}

/// Asks the agent for its API version; refuses another major version.
async fn check_version(endpoint: &str, channel: Channel) -> Result<()> {
    let ours = berth_api::API_VERSION;
    let theirs = match SystemClient::new(channel)
        .version(berth_api::v1::VersionRequest {})
        .await
    {
        Ok(r) => r.into_inner().api_version,
        Err(s) if s.code() == tonic::Code::Unimplemented => String::from("unknown"),
        // The first call broke before the agent said anything of its own:
        // most often a TLS listener that refused this client's certificate
        // (TLS 1.3 finishes the handshake before the server checks it).
        Err(s) if !crate::error::has_error_info(&s) => {
            let hint = if endpoint.starts_with("tcp://") {
                "; if the agent uses TLS, check that your client certificate (--tlscert, \
                 --tlskey) is signed by the CA the agent trusts"
            } else {
                ""
            };
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!(
                    "cannot talk to the Berth agent at {endpoint}: the connection broke \
                     ({}){hint}",
                    s.message()
                ),
            ));
        }
        Err(s) => return Err(Error::from(s)),
    };
    if major(&theirs) != major(ours) {
        return Err(Error::new(
            ErrorKind::VersionMismatch,
            format!(
                "the Berth agent at {endpoint} speaks API {theirs} and this client speaks {ours}: \
                 use a berth and berth-agent of the same release (for the VM, `berth vm restart` \
                 boots the image that came with this berth)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_host_wins_over_everything() {
        let (e, s) = discover(Some("tcp://127.0.0.1:1"));
        assert_eq!(e, "tcp://127.0.0.1:1");
        assert_eq!(s, Source::Given);
    }

    #[tokio::test]
    async fn an_agent_that_is_not_there_is_named_in_a_sentence() {
        let dir = tempfile::tempdir().unwrap();
        let host = format!("unix://{}/none.sock", dir.path().display());
        let err = Client::connect(ConnectOptions {
            host: Some(host.clone()),
            ..Default::default()
        })
        .await
        .err()
        .expect("no agent there");
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(
            err.message()
                .starts_with(&format!("cannot reach the Berth agent at {host}")),
            "{err}"
        );
    }

    #[test]
    fn majors_are_compared() {
        assert_eq!(major("1.0"), "1");
        assert_eq!(major("2"), "2");
    }
}
