//! Exec instances: `POST /containers/{id}/exec` makes one, `POST
//! /exec/{id}/start` runs it (hijacked, as attach), `GET /exec/{id}/json`
//! tells whether it runs and how it ended, `POST /exec/{id}/resize` sizes
//! its terminal. What an instance will run waits here until it starts;
//! from then on the engine's session record ([`Containers::exec_state`],
//! the `ExecIDs` of the container's inspect) says whether it runs and how
//! it ended, detached ones too, and a session's own id (from `ExecIDs`)
//! is inspectable as well.
//!
//! [`Containers::exec_state`]: crate::runtime::Containers::exec_state

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, Request, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{container_error, json_response, ApiError, ApiResult, State};
use crate::runtime::config::ExecOptions;
use crate::runtime::session::StdioInput;

/// One exec instance.
#[derive(Debug, Clone)]
pub struct ExecEntry {
    /// What to run, and where.
    pub opts: ExecOptions,
    /// The container's full id.
    pub container: String,
    /// Attach stdout / stderr.
    pub stdout: bool,
    /// Attach stderr.
    pub stderr: bool,
    /// The engine's session, once started.
    pub session: Option<String>,
    /// Its session's input, while it runs (for resize).
    pub input: Option<mpsc::Sender<StdioInput>>,
}

/// Exec instances by id, until the engine forgets their session.
#[derive(Default, Clone)]
pub struct ExecTable(Arc<Mutex<HashMap<String, ExecEntry>>>);

impl ExecTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ExecEntry>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, id: &str) -> Option<ExecEntry> {
        self.lock().get(id).cloned()
    }
}

fn no_such_exec(id: &str) -> ApiError {
    ApiError::missing(format!("No such exec instance: {id}"))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str().map(String::from))
        .collect()
}

/// `POST /containers/{id}/exec`.
pub async fn create(
    AxState(api): State,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let r = super::containers::record(&api, &id)?;
    let b: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("invalid JSON in the exec request: {e}")))?;
    if !r.state.is_running() {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            message: format!("container {} is not running", r.id),
        });
    }
    let cmd = strings(&b["Cmd"]);
    if cmd.is_empty() {
        return Err(ApiError::bad("No exec command specified"));
    }
    let flag = |k: &str| b[k].as_bool().unwrap_or(false);
    let opts = ExecOptions {
        container_id: r.id.clone(),
        cmd,
        env: strings(&b["Env"]),
        working_dir: b["WorkingDir"].as_str().unwrap_or_default().into(),
        user: b["User"].as_str().unwrap_or_default().into(),
        tty: flag("Tty"),
        attach_stdin: flag("AttachStdin"),
        detach: false,
        privileged: flag("Privileged"),
    };
    let exec_id = crate::digest::random_id();
    let containers = &api.agent.containers;
    let mut table = api.execs.lock();
    // Instances whose session the engine forgot, or whose container is
    // gone, go.
    table.retain(|_, e| match &e.session {
        Some(s) => containers.exec_state(s).is_ok(),
        None => containers.find(&e.container).is_ok(),
    });
    table.insert(
        exec_id.clone(),
        ExecEntry {
            opts,
            container: r.id,
            stdout: flag("AttachStdout"),
            stderr: flag("AttachStderr"),
            session: None,
            input: None,
        },
    );
    Ok(json_response(StatusCode::CREATED, json!({ "Id": exec_id })))
}

/// `POST /exec/{id}/start`: `{"Detach": …, "Tty": …, "ConsoleSize": [h, w]}`.
pub async fn start(
    AxState(api): State,
    Path(id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let entry = api.execs.get(&id).ok_or_else(|| no_such_exec(&id))?;
    if entry.session.is_some() {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            message: format!("Error: Exec command {id} has already run"),
        });
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::bad(format!("reading the exec start request: {e}")))?;
    let b: Value = serde_json::from_slice(&bytes).unwrap_or(json!({}));
    let mut opts = entry.opts.clone();
    opts.detach = b["Detach"].as_bool().unwrap_or(false);
    let size = b["ConsoleSize"]
        .as_array()
        .and_then(|s| Some((s.first()?.as_u64()? as u16, s.get(1)?.as_u64()? as u16)));
    let (input_tx, input_rx) = mpsc::channel(64);
    let (session, output) = api
        .agent
        .containers
        .exec_session(&opts, size, input_rx)
        .await
        .map_err(|e| container_error(e, &entry.container))?;
    if let Some(e) = api.execs.lock().get_mut(&id) {
        e.session = Some(session);
        e.input = Some(input_tx.clone());
    }
    if opts.detach {
        return Ok(StatusCode::OK.into_response());
    }
    let (resp, stream) = super::attach::hijack(
        Request::from_parts(parts, axum::body::Body::empty()),
        opts.tty,
    );
    let execs = api.execs.clone();
    let stdin = opts.attach_stdin;
    let tty = opts.tty;
    tokio::spawn(async move {
        // The engine records the exit code; the input goes with the session.
        let done = move |_: i32| {
            if let Some(e) = execs.lock().get_mut(&id) {
                e.input = None;
            }
        };
        match stream.await {
            Ok(stream) => super::attach::pump(stream, tty, stdin, input_tx, output, done).await,
            Err(_) => {
                // The client left before the stream: let the process run
                // out.
                let mut output = output;
                while output.recv().await.is_some() {}
                done(0);
            }
        }
    });
    Ok(resp)
}

/// `GET /exec/{id}/json`: an instance made here, or an engine session by
/// its own id (a container's `ExecIDs`).
pub async fn inspect(AxState(api): State, Path(id): Path<String>) -> ApiResult<Response> {
    let containers = &api.agent.containers;
    let (entry, state) = match api.execs.get(&id) {
        Some(e) => {
            let state = e
                .session
                .as_deref()
                .and_then(|s| containers.exec_state(s).ok());
            (Some(e), state)
        }
        None => (
            None,
            Some(containers.exec_state(&id).map_err(|_| no_such_exec(&id))?),
        ),
    };
    let (cmd, tty, privileged, user, container) = match (&entry, &state) {
        (Some(e), _) => (
            e.opts.cmd.clone(),
            e.opts.tty,
            e.opts.privileged,
            e.opts.user.clone(),
            e.container.clone(),
        ),
        (None, Some(s)) => (
            s.cmd.clone(),
            s.tty,
            s.privileged,
            s.user.clone(),
            s.container_id.clone(),
        ),
        (None, None) => return Err(no_such_exec(&id)),
    };
    Ok(axum::Json(json!({
        "ID": id,
        "Running": state.as_ref().is_some_and(|s| s.running),
        "ExitCode": state.as_ref().and_then(|s| s.exit_code),
        "ProcessConfig": {
            "tty": tty,
            "entrypoint": cmd.first(),
            "arguments": cmd.iter().skip(1).collect::<Vec<_>>(),
            "privileged": privileged,
            "user": user,
        },
        "OpenStdin": entry.as_ref().is_some_and(|e| e.opts.attach_stdin),
        "OpenStdout": entry.as_ref().is_none_or(|e| e.stdout),
        "OpenStderr": entry.as_ref().is_none_or(|e| e.stderr),
        "CanRemove": false,
        "ContainerID": container,
        "DetachKeys": "",
        "Pid": 0,
    }))
    .into_response())
}

/// `POST /exec/{id}/resize?h=&w=`.
pub async fn resize(
    AxState(api): State,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let e = api.execs.get(&id).ok_or_else(|| no_such_exec(&id))?;
    let (rows, cols) = super::attach::size_of(&q)?;
    if let Some(tx) = e.input {
        let _ = tx.send(StdioInput::Resize { rows, cols }).await;
    }
    Ok(StatusCode::OK.into_response())
}
