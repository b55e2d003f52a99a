//! berth-agent: Berth's engine, its gRPC service and the Docker Engine API.
//!
//! The engine — `image` (registry, content store, pull/push, archives,
//! queries), `snapshot` (layers), `store` (image metadata), `runtime`
//! (containers: create, start, stop, lifecycle, sessions, stats, relay,
//! spec), `cgroups`, `network`, `volume`, `shares`, `events`, `host` and
//! the shared helpers in `util` — knows nothing of gRPC: it takes and
//! returns its own types, keeps its own versioned records on disk, and
//! fails with typed [`error::Error`]s. Tests drive it directly, and
//! `tests/layering.rs` fails the build if an engine module imports `api`,
//! `dockerapi`, `init`, `server`, `berth_api::v1`, prost or tonic. `api`
//! only converts protobuf messages to and from engine types and engine
//! errors to statuses (`api::status`, the one place, with a
//! `berth_api::Reason` in every status); `dockerapi` is the second front
//! end, the Docker Engine API over the same engine objects (HTTP/JSON,
//! Docker's error shape); `server` puts the gRPC API on its listeners;
//! `init` is PID 1 in the VM, which hands the engine readiness gates
//! rather than being asked by it.

#![warn(missing_docs)]

pub mod api;
pub mod build;
pub mod cgroups;
pub mod digest;
pub mod dockerapi;
pub mod error;
pub mod events;
pub mod host;
pub mod image;
pub mod init;
pub mod network;
pub mod relay;
pub mod runtime;
pub mod server;
pub mod shares;
pub mod snapshot;
pub mod store;
pub mod util;
pub mod volume;
