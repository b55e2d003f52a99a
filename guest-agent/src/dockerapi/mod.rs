//! The Docker Engine API, served by the agent from its own engine objects
//! (the same [`Agent`] the gRPC services use: no second engine or store),
//! so the stock `docker` CLI and other Engine API clients drive Berth.
//!
//! Like `api/`, this is a front end: it translates HTTP requests into
//! engine calls and engine errors into Docker's `{"message": …}` answers
//! ([`ApiError`]); the engine knows nothing of it. It is built on axum
//! (already the agent's HTTP layer under tonic) and hyper's upgrades for
//! the hijacked attach and exec streams. Every path may carry a
//! `/v1.NN/` prefix (1.24 to [`API_VERSION`]) or none.
//!
//! One file per area: [`system`] (`/_ping`, `/version`, `/info`,
//! `/system/df`), [`events`], [`images`], [`transfer`] (push, save,
//! load), [`search`] (the registry's search API), [`containers`]
//! (lifecycle, list, inspect, logs, wait, rename, pause, top), [`create`]
//! (the create body mapped onto the engine's `ContainerConfig`),
//! [`update`] (limits and restart policy), [`attach`] (hijacked streams),
//! [`exec`], [`stats`], [`archive`] (`docker cp`), [`commit`] (changes,
//! export, commit, login), [`build`], [`networks`], [`volumes`], [`prune`]
//! and [`listen`] (the sockets).
//!
//! ## Not served yet, and how each answers
//! - Paths not listed above — `/containers/{id}/attach/ws`, `/session`
//!   (BuildKit), `/distribution`, swarm, plugins, secrets, configs —
//!   answer 404 with a sentence naming the path. `POST /build?version=2`
//!   (BuildKit) answers 400: build with `DOCKER_BUILDKIT=0`.
//! - Create fields Berth cannot honour answer 400 naming the field when
//!   set to anything but their zero value: `Config.Domainname`,
//!   `Config.MacAddress`, `HostConfig.Links`, `VolumesFrom`, `IpcMode`,
//!   `UTSMode`, `UsernsMode`, `CgroupParent`, `Devices`, `DeviceRequests`,
//!   `DeviceCgroupRules`, `DnsOptions`, `DnsSearch`, `OomScoreAdj`,
//!   `OomKillDisable`, `MemoryReservation`, `MemorySwappiness`,
//!   `KernelMemory`, `Blkio*`, `CpuPeriod`, `CpuQuota`, `CpuRealtime*`,
//!   `CpusetMems`, `MaskedPaths`, `ReadonlyPaths`, `CgroupnsMode`,
//!   `Annotations`, a `LogConfig.Type` other than json-file, a `Runtime`
//!   other than runc, a second network in `NetworkingConfig`; `HostConfig
//!   .Mounts` of types other than bind, volume and tmpfs.
//! - `update` fields other than memory, swap, CPUs, CPU shares, pids, CPU
//!   set and restart policy answer 400 naming the field (see [`update`]).
//! - Filters the engine does not know answer 400 (container, network and
//!   volume lists, prune, events); label filters are applied here, every
//!   one required, as dockerd does.
//! - `POST /images/create?fromSrc=-` (`docker import`) imports the tar
//!   in the body through the engine's import; `fromSrc=URL` answers 400
//!   (download it, then import the file), and a `platform` other than
//!   the host's answers 400. The message is kept in the image's history,
//!   not in inspect's `Comment`.
//! - `/build` unpacks gzip and zstd contexts as they arrive (`docker
//!   build --compress`, docker-py's `gzip=True`); a bzip2 or xz context
//!   answers with an error in the build stream naming its compression.
//! - A commit's config body applies `Cmd`, `Entrypoint`, `Env`,
//!   `Labels`, `ExposedPorts`, `Volumes`, `WorkingDir`, `User` and
//!   `StopSignal` (then `changes` over them), ignores run-only fields
//!   (`Hostname`, `Tty`, `AttachStd*`, …) and answers 400 naming any
//!   other set field (`Healthcheck`, `OnBuild`, `Shell`, …), and a label
//!   or a blank-holding `Env` value with quotes, blanks or `=` the
//!   engine's instructions cannot carry.
//! - `/images/search` answers 503 with a sentence when the registry cannot
//!   be reached or has no v1 search API (distribution has none).
//! - An exec instance created but never started lives in this module's
//!   memory only (the engine records sessions from their start): it does
//!   not survive an agent restart. `Pid` in exec inspect is 0.
//! - A container's short id is listed among its aliases on user networks
//!   at every API version (dockerd stopped at 1.44): compose 1.29
//!   disconnects and reconnects a created container whose aliases lack it.

pub mod archive;
pub mod attach;
pub mod build;
pub mod commit;
pub mod containers;
pub mod create;
pub mod events;
pub mod exec;
pub mod images;
pub mod listen;
pub mod networks;
pub mod prune;
pub mod search;
pub mod stats;
pub mod system;
pub mod transfer;
pub mod update;
pub mod volumes;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use crate::api::Agent;
use crate::error::{Error, What};

/// The newest Engine API version served.
pub const API_VERSION: &str = "1.51";
/// The oldest Engine API version served.
pub const MIN_API_VERSION: &str = "1.24";

/// What the handlers share: the engine and the API's own session state.
pub struct DockerApi {
    /// The agent's engine objects.
    pub agent: Arc<Agent>,
    /// Attaches waiting for their container to start.
    pub pending: attach::Pending,
    /// Exec instances made by `POST /containers/{id}/exec`.
    pub execs: exec::ExecTable,
}

/// The state handlers receive.
pub type State = axum::extract::State<Arc<DockerApi>>;

/// An error as Docker answers it: a status and `{"message": …}`.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The one sentence the user reads.
    pub message: String,
}

impl ApiError {
    /// 400: the request asks for something malformed or unsupported.
    pub fn bad(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 404 with Docker's sentence for a missing `what`.
    pub fn missing(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::NotFound(..) => StatusCode::NOT_FOUND,
            Error::InvalidArgument(_) | Error::CommandNotFound(_) | Error::CommandCannotRun(_) => {
                StatusCode::BAD_REQUEST
            }
            Error::AlreadyExists(_) | Error::Conflict(_) | Error::FailedPrecondition(_) => {
                StatusCode::CONFLICT
            }
            Error::PermissionDenied(_) => StatusCode::FORBIDDEN,
            Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Error::Unimplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        // The docker CLI picks its exit code (127, 126) from these words;
        // the runtime's own sentences (`exec: "X": …`) carry them.
        let message = match e {
            Error::CommandNotFound(m) | Error::CommandCannotRun(m) if m.starts_with("exec: \"") => {
                format!("failed to create task for container: {m}")
            }
            Error::CommandNotFound(m) => {
                format!("failed to create task for container: {m}: exec: executable file not found in $PATH")
            }
            Error::CommandCannotRun(m) => {
                format!("failed to create task for container: {m}: permission denied")
            }
            other => other.to_string(),
        };
        ApiError { status, message }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({ "message": self.message }))).into_response()
    }
}

/// A handler's result.
pub type ApiResult<T> = Result<T, ApiError>;

/// Rewrites an engine error about a container into Docker's sentence
/// ("No such container: NAME"), which clients match on.
pub fn container_error(e: Error, name: &str) -> ApiError {
    match e {
        Error::NotFound(What::Container, _) => {
            ApiError::missing(format!("No such container: {name}"))
        }
        other => other.into(),
    }
}

/// Rewrites an engine error about an image into Docker's sentence.
pub fn image_error(e: Error, name: &str) -> ApiError {
    match e {
        Error::NotFound(What::Image, _) => ApiError::missing(format!("No such image: {name}")),
        other => other.into(),
    }
}

/// A JSON answer with `status`.
pub fn json_response(status: StatusCode, value: serde_json::Value) -> Response {
    (status, axum::Json(value)).into_response()
}

/// True for a query value Docker reads as true ("1", "true", "True").
pub fn truthy(v: Option<&String>) -> bool {
    v.is_some_and(|v| matches!(v.as_str(), "1" | "true" | "True" | "TRUE" | "yes"))
}

/// Docker's `filters` query parameter (`{"key": ["v"]}` or the old
/// `{"key": {"v": true}}`) as the engine takes filters.
pub fn parse_filters(raw: Option<&String>) -> ApiResult<HashMap<String, Vec<String>>> {
    let mut out = HashMap::new();
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(out);
    };
    let v: serde_json::Value = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad(format!("invalid filters {raw:?}: {e}")))?;
    for (k, vals) in v.as_object().into_iter().flatten() {
        let list = match vals {
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            serde_json::Value::Object(m) => m.keys().cloned().collect(),
            _ => Vec::new(),
        };
        out.insert(k.clone(), list);
    }
    Ok(out)
}

/// Takes the filter `key` out of `filters`, for a handler to apply itself.
pub fn take_filter(filters: &mut HashMap<String, Vec<String>>, key: &str) -> Vec<String> {
    filters.remove(key).unwrap_or_default()
}

/// Docker's `label` filter: true when every `key` or `key=value` in
/// `wanted` holds for the labels `get` reads (dockerd requires them all;
/// the engine's own filters take any of a key's values).
pub fn labels_match(wanted: &[String], get: impl Fn(&str) -> Option<String>) -> bool {
    wanted.iter().all(|w| match w.split_once('=') {
        Some((k, v)) => get(k).is_some_and(|x| x == v),
        None => get(w).is_some(),
    })
}

/// Refuses a filter key outside `allowed`, naming it, as dockerd does.
pub fn only_filters(filters: &HashMap<String, Vec<String>>, allowed: &[&str]) -> ApiResult<()> {
    match filters.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad(format!(
            "invalid filter {k:?}: use {}",
            allowed.join(", ")
        ))),
        None => Ok(()),
    }
}

/// Strips a `/v1.NN` prefix, refusing versions outside the served range.
pub fn strip_version(path: &str) -> Result<&str, ApiError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok(path);
    };
    let (version, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Some(minor) = version
        .strip_prefix("1.")
        .and_then(|m| m.parse::<u32>().ok())
    else {
        return Ok(path);
    };
    if minor > 51 {
        return Err(ApiError::bad(format!(
            "client version 1.{minor} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    if minor < 24 {
        return Err(ApiError::bad(format!(
            "client version 1.{minor} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    Ok(if tail.is_empty() { "/" } else { tail })
}

async fn versioned(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    match strip_version(&path) {
        Ok(p) if p.len() != path.len() => {
            let pq = match req.uri().query() {
                Some(q) => format!("{p}?{q}"),
                None => p.to_string(),
            };
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = pq.parse().ok();
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
            next.run(req).await
        }
        Ok(_) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn not_found(req: Request) -> ApiError {
    ApiError::missing(format!(
        "page not found: {} {} is not part of the Engine API Berth serves",
        req.method(),
        req.uri().path()
    ))
}

/// The Engine API's routes over `agent`.
pub fn router(agent: Arc<Agent>) -> Router {
    let state = Arc::new(DockerApi {
        agent,
        pending: Default::default(),
        execs: Default::default(),
    });
    let inner = Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/events", get(events::events))
        .route("/system/df", get(system::df))
        .route("/auth", post(commit::auth))
        .route("/commit", post(commit::commit))
        .route("/containers/{id}/changes", get(commit::changes))
        .route("/containers/{id}/export", get(commit::export))
        .route("/images/json", get(images::list))
        .route("/images/create", post(images::create))
        .route("/images/get", get(transfer::get_many))
        .route("/images/load", post(transfer::load))
        .route("/images/search", get(search::search))
        .route(
            "/images/{*rest}",
            get(images::get_any)
                .delete(images::remove)
                .post(images::post_any),
        )
        .route("/containers/json", get(containers::list))
        .route("/containers/prune", post(prune::containers))
        .route("/images/prune", post(prune::images))
        .route("/volumes/prune", post(prune::volumes))
        .route("/networks/prune", post(prune::networks))
        .route("/containers/{id}/rename", post(containers::rename))
        .route("/containers/{id}/update", post(update::update))
        .route("/containers/{id}/pause", post(containers::pause))
        .route("/containers/{id}/unpause", post(containers::pause))
        .route("/containers/{id}/top", get(containers::top))
        .route("/containers/{id}/stats", get(stats::stats))
        .route(
            "/containers/{id}/archive",
            get(archive::get).put(archive::put),
        )
        .route("/networks/{id}/connect", post(networks::connect))
        .route("/networks/{id}/disconnect", post(networks::disconnect))
        .route("/containers/create", post(create::create))
        .route("/containers/{id}/json", get(containers::inspect))
        .route("/containers/{id}/start", post(containers::start))
        .route("/containers/{id}/stop", post(containers::stop))
        .route("/containers/{id}/restart", post(containers::restart))
        .route("/containers/{id}/kill", post(containers::kill))
        .route("/containers/{id}/wait", post(containers::wait))
        .route("/containers/{id}/logs", get(containers::logs))
        .route("/containers/{id}/resize", post(containers::resize))
        .route("/containers/{id}/attach", post(attach::attach))
        .route("/containers/{id}/exec", post(exec::create))
        .route(
            "/containers/{id}",
            axum::routing::delete(containers::remove),
        )
        .route("/exec/{id}/start", post(exec::start))
        .route("/exec/{id}/json", get(exec::inspect))
        .route("/exec/{id}/resize", post(exec::resize))
        .route("/build", post(build::build))
        .route("/networks", get(networks::list))
        .route("/networks/create", post(networks::create))
        .route(
            "/networks/{id}",
            get(networks::inspect).delete(networks::remove),
        )
        .route("/volumes", get(volumes::list))
        .route("/volumes/create", post(volumes::create))
        .route(
            "/volumes/{name}",
            get(volumes::inspect).delete(volumes::remove),
        )
        .fallback(not_found)
        .with_state(state);
    Router::new()
        .fallback_service(inner)
        .layer(axum::middleware::from_fn(versioned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes_are_stripped_within_the_served_range() {
        assert_eq!(strip_version("/v1.51/info").unwrap(), "/info");
        assert_eq!(strip_version("/v1.24/_ping").unwrap(), "/_ping");
        assert_eq!(strip_version("/info").unwrap(), "/info");
        assert_eq!(strip_version("/volumes/v1").unwrap(), "/volumes/v1");
        assert_eq!(strip_version("/v1.52/info").unwrap_err().status, 400);
        assert_eq!(strip_version("/v1.12/info").unwrap_err().status, 400);
    }

    #[test]
    fn engine_errors_become_docker_statuses() {
        let e: ApiError = Error::no_container("x").into();
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        let e: ApiError = Error::Conflict("x".into()).into();
        assert_eq!(e.status, StatusCode::CONFLICT);
        let e = container_error(Error::no_container("x"), "web");
        assert_eq!(e.message, "No such container: web");
        let e: ApiError = Error::CommandNotFound("nope".into()).into();
        assert!(e.message.contains("executable file not found"));
    }

    #[test]
    fn filters_read_both_shapes() {
        let f = parse_filters(Some(
            &r#"{"status":["exited"],"label":{"a=b":true}}"#.into(),
        ))
        .unwrap();
        assert_eq!(f["status"], vec!["exited"]);
        assert_eq!(f["label"], vec!["a=b"]);
        assert!(parse_filters(Some(&"nope".into())).is_err());
        let labels: HashMap<&str, &str> = [("a", "1"), ("b", "2")].into();
        let get = |k: &str| labels.get(k).map(|v| v.to_string());
        assert!(labels_match(&["a=1".into(), "b".into()], get));
        assert!(!labels_match(&["a=1".into(), "b=3".into()], get));
        assert!(!labels_match(&["c".into()], get));
    }
}
