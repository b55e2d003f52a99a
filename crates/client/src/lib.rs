//! `berth-client`: the one way a Rust program uses Berth — the `berth`
//! CLI, the desktop app, the Docker Engine API front, and programs that
//! embed Berth.
//!
//! - **Connecting**: [`Client::new`] finds the agent (an explicit host,
//!   `BERTH_HOST`, the local socket, a running VM; see [`connect`]), dials
//!   on first use with a timeout, shares one connection, dials again after
//!   the agent comes back, and refuses an agent of another API version
//!   with a sentence.
//! - **Operations** are methods on [`Client`]: images (pull and push with
//!   typed [`images::Progress`] streams, list, inspect — also as Docker's
//!   JSON —, history, tag, remove, prune, save, load, import), containers
//!   ([`Client::create_pulling`] for `run`'s semantics, start, stop,
//!   restart, kill, pause, remove, rename, wait, inspect, list, top, diff,
//!   export, commit, copy in and out), image builds ([`Client::build`]
//!   with typed [`BuildEvent`]s, the build cache's prune), [`session`]s
//!   for attach and exec, logs, stats and events as [`Stream`]s, networks, volumes, system
//!   (version, info, disk usage, login, published ports), and the VM
//!   ([`vm`], with the `vm` feature).
//! - **Types**: the agent's messages ([`types`], the `berth.v1` API) all
//!   derive serde's traits, so a front end can hand them on as JSON; the
//!   client adds its own where a stream or a choice needs one
//!   ([`images::Progress`], [`session::Output`], [`containers::Created`]).
//! - **Errors**: one [`Error`] with an [`ErrorKind`] a program can match,
//!   read from the machine-readable reason the agent sends with every
//!   failure (never from its words). The CLI's exit codes follow the kind:
//!
//! | kind | `berth`'s exit code |
//! |---|---|
//! | [`ErrorKind::CommandNotFound`] | 127 (from `run`, `create`, `start -a`, `exec`) |
//! | [`ErrorKind::CommandCannotRun`] | 126 (the same commands) |
//! | any other kind, from `run`, `create`, `exec` | 125 (Docker's "refused") |
//! | any kind, from any other command | 1 |
//!
//! ```no_run
//! # async fn demo() -> berth_client::Result<()> {
//! use berth_client::{Client, ConnectOptions, ErrorKind, Object};
//! let client = Client::connect(ConnectOptions::default()).await?;
//! match client.inspect_container("web").await {
//!     Ok(c) => println!("{} is {}", c.name, c.state.map(|s| s.status).unwrap_or_default()),
//!     Err(e) if e.kind() == ErrorKind::NotFound(Object::Container) => println!("no web yet"),
//!     Err(e) => return Err(e),
//! }
//! # Ok(()) }
//! ```

pub mod build;
pub mod connect;
pub mod containers;
pub mod credentials;
pub mod dockerignore;
pub mod error;
pub mod images;
pub mod networks;
pub mod observe;
pub mod session;
pub mod stream;
pub mod system;
#[cfg(feature = "vm")]
pub mod vm;
pub mod volumes;

pub use berth_api::endpoint::ClientTls;
/// Docker's short forms of names and ids (`familiar`, `short_id`).
pub use berth_api::names;
/// The agent's messages (the `berth.v1` API), serde-serializable.
pub use berth_api::v1 as types;
/// The API version this client speaks.
pub use berth_api::API_VERSION;
pub use build::{BuildEvent, BuildOptions, Secret};
pub use connect::{discover, Client, ConnectOptions, Source};
pub use error::{Error, ErrorKind, Object, Result};
/// A point in time, as the agent's messages carry it.
pub use prost_types::Timestamp;
pub use stream::{Reader, Stream};
