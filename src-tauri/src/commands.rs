//! The UI's one-shot commands: each is one call into `berth-client`, and
//! each failure reaches the UI as the client's sentence with its kind.

use std::sync::{Once, OnceLock};
use std::time::Instant;

use berth_client::types as pb;
use berth_client::{Error, ErrorKind, Source};
use serde::Serialize;
use tauri::State;

use crate::App;

/// A failure as the UI shows it: a sentence, and its kind for decisions
/// (`Unavailable` means the agent is not reachable).
#[derive(Debug, Clone, Serialize)]
pub struct UiError {
    /// The kind, as the client names it (`Unavailable`, `Conflict`, …).
    pub kind: String,
    /// The client's sentence.
    pub message: String,
}

impl From<Error> for UiError {
    fn from(e: Error) -> UiError {
        let kind = match e.kind() {
            ErrorKind::NotFound(_) => "NotFound".to_string(),
            k => format!("{k:?}"),
        };
        UiError {
            kind,
            message: e.message().to_string(),
        }
    }
}

/// What a command returns.
pub type Reply<T> = Result<T, UiError>;

/// Where the app connects, and how that was chosen.
#[derive(Debug, Serialize)]
pub struct Connection {
    /// The endpoint URL.
    pub endpoint: String,
    /// `given`, `environment` (BERTH_HOST), `local socket`, `vm`, `default`.
    pub source: String,
}

/// The endpoint the app talks to.
#[tauri::command]
pub fn connection(app: State<'_, App>) -> Connection {
    let client = app.client();
    let source = match client.source() {
        Source::Given => "your saved endpoint",
        Source::Environment => "BERTH_HOST",
        Source::LocalSocket => "the local socket",
        Source::Vm(_) => "the VM",
        Source::Default => "the default socket",
    };
    Connection {
        endpoint: client.endpoint().to_string(),
        source: source.to_string(),
    }
}

/// The agent's version.
#[tauri::command]
pub async fn version(app: State<'_, App>) -> Reply<pb::VersionResponse> {
    Ok(app.client().version().await?)
}

/// The engine's counts and host facts.
#[tauri::command]
pub async fn info(app: State<'_, App>) -> Reply<pb::InfoResponse> {
    Ok(app.client().info().await?)
}

/// Every container, running or not (but the helpers the Volumes view
/// browses a volume through).
#[tauri::command]
pub async fn list_containers(app: State<'_, App>) -> Reply<Vec<pb::ContainerSummary>> {
    let mut all = app
        .client()
        .list_containers(pb::ListContainersRequest {
            all: true,
            ..Default::default()
        })
        .await?;
    all.retain(|c| !crate::files::volume::is_helper(c));
    Ok(all)
}

/// One container's outcome in a bulk action: `None` when it worked.
#[derive(Debug, Serialize)]
pub struct ActionResult {
    /// The container.
    pub id: String,
    /// Why it failed, when it did.
    pub error: Option<UiError>,
}

/// `start`, `stop`, `restart` or `remove` (forced) on each container, one
/// after the other; every container gets its own outcome.
#[tauri::command]
pub async fn container_action(
    app: State<'_, App>,
    ids: Vec<String>,
    action: String,
) -> Reply<Vec<ActionResult>> {
    let c = &app.client();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let r = match action.as_str() {
            "start" => c.start_container(&id).await,
            "stop" => c.stop_container(&id, None, "").await,
            "restart" => c.restart_container(&id, None).await,
            "remove" => c.remove_container(&id, true, false).await,
            other => {
                return Err(UiError {
                    kind: "InvalidArgument".into(),
                    message: format!("there is no container action called {other}"),
                })
            }
        };
        out.push(ActionResult {
            id,
            error: r.err().map(UiError::from),
        });
    }
    Ok(out)
}

/// A container as `docker inspect` shows it.
#[tauri::command]
pub async fn inspect_container(app: State<'_, App>, id: String) -> Reply<serde_json::Value> {
    Ok(app.client().inspect_container_json(&id).await?)
}

/// Every image.
#[tauri::command]
pub async fn list_images(app: State<'_, App>) -> Reply<Vec<pb::ImageSummary>> {
    Ok(app.client().list_images(Default::default()).await?)
}

/// Removes an image (untags it; deletes it when no name is left).
#[tauri::command]
pub async fn remove_image(app: State<'_, App>, reference: String, force: bool) -> Reply<()> {
    app.client().remove_image(&reference, force, false).await?;
    Ok(())
}

/// Every volume.
#[tauri::command]
pub async fn list_volumes(app: State<'_, App>) -> Reply<Vec<pb::Volume>> {
    Ok(app.client().list_volumes(Default::default()).await?)
}

/// Every network.
#[tauri::command]
pub async fn list_networks(app: State<'_, App>) -> Reply<Vec<pb::Network>> {
    Ok(app.client().list_networks(Default::default()).await?)
}

/// Opens `http://localhost:PORT` in the user's browser. Only a port
/// number crosses from the UI, so no page can make the app open anything
/// else.
#[tauri::command]
pub fn open_port(port: u16) -> Reply<()> {
    let url = format!("http://localhost:{port}/");
    crate::host::open(url.as_ref()).map_err(|e| UiError {
        kind: "Internal".into(),
        message: format!("cannot open {url} in a browser: {e}"),
    })
}

/// When the process started (set first thing in `main`), for [`painted`].
pub static STARTED: OnceLock<Instant> = OnceLock::new();

/// The UI painted its first container list: says on stderr, once, how
/// long after the process started (`bench/desktop.sh` reads the line).
/// Answers whether the UI should report its later lists too
/// ([`change_painted`]): only with `BERTH_DESKTOP_TIMINGS` set.
#[tauri::command]
pub fn painted(count: usize) -> bool {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let ms = STARTED.get().map(|t| t.elapsed().as_millis()).unwrap_or(0);
        eprintln!(
            "berth-desktop: first container list ({count} containers) painted {ms} ms after start"
        );
    });
    std::env::var_os("BERTH_DESKTOP_TIMINGS").is_some_and(|v| !v.is_empty())
}

/// The UI painted a container list holding a change: `what` is `change`
/// (the state an event says, shown at once) or `list refresh` (the
/// engine's list asked for after the event). Says on stderr how long
/// after the engine sent the event and after the UI heard it
/// (`bench/desktop.sh` reads the line). Only called with timings on.
#[tauri::command]
pub fn change_painted(after_event: f64, after_heard: f64, count: usize, what: String) {
    let what = if what == "change" {
        "change"
    } else {
        "list refresh"
    };
    eprintln!(
        "berth-desktop: container {what} painted {after_event:.1} ms after its event \
         ({after_heard:.1} ms after the app heard it; {count} containers)"
    );
}
