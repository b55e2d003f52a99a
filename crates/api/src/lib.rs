//! Berth's API: the `berth.v1` gRPC services (generated with tonic/prost),
//! and the endpoints that carry them (`unix://`, `tcp://`, `vsock://`,
//! `hybrid-vsock://`).

pub mod endpoint;
pub mod names;
pub mod reason;
pub mod serde_time;

/// The generated `berth.v1` messages, clients and servers.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("berth.v1");
}

pub use endpoint::{Endpoint, EndpointError};
pub use reason::Reason;

/// The API version this crate speaks; the agent reports it in `Version`.
pub const API_VERSION: &str = "1.0";

/// The agent's listening address on Linux when nothing else is given.
pub const DEFAULT_ENDPOINT: &str = "unix:///run/berth/berth.sock";

/// The environment variable the VM's PID 1 sets for the agent it starts:
/// the agent then prints [`AGENT_SERVING_LINE`] on its standard error (the
/// VM's console) once every endpoint listens.
pub const ANNOUNCE_SERVING_ENV: &str = "BERTH_ANNOUNCE_SERVING";

/// The console line that says the agent in a VM listens. The host makes
/// its first connection only after it: a connection in flight while the
/// guest's vsock driver comes up can leave hybrid vsock
/// (`vhost-device-vsock`) never answering again.
pub const AGENT_SERVING_LINE: &str = "berth-agent: serving the API";

/// The folder, at each shared folder's root, where the agent puts a file
/// for a moment while it replays a host event; the host forwards no events
/// from under it.
pub const FILE_REPLAY_DIR: &str = ".berth-replay";
