//! berth-agent: Berth's engine and its gRPC service.
//!
//! The engine modules (`image`, `snapshot`, `store`) know nothing of gRPC
//! and are driven directly by tests; `api` translates gRPC calls into
//! engine calls; `server` puts the API on its listeners.

#![warn(missing_docs)]

pub mod api;
pub mod cgroups;
pub mod digest;
pub mod error;
pub mod events;
pub mod image;
pub mod init;
pub mod network;
pub mod runtime;
pub mod server;
pub mod shares;
pub mod snapshot;
pub mod store;
pub mod util;
pub mod volume;
