//! Exec instances: `POST /containers/{id}/exec` makes one, `POST
//! /exec/{id}/start` runs it (hijacked, as attach), `GET /exec/{id}/json`
//! tells whether it runs and how it ended, `POST /exec/{id}/resize` sizes
//! its terminal. The engine runs an exec as one call; the instances
//! between create and start live here, in memory, for the agent's life.

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
    /// Started and not yet ended.
    pub running: bool,
    /// Its exit code, once it ended.
    pub exit_code: Option<i32>,
    /// Its session's input, while it runs (for resize).
    pub input: Option<mpsc::Sender<StdioInput>>,
}

/// Exec instances by id.
#[derive(Default, Clone)]
pub struct ExecTable(Arc<Mutex<HashMap<String, ExecEntry>>>);

impl ExecTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ExecEntry>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, id: &str) -> ApiResult<ExecEntry> {
        self.lock()
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::missing(format!("No such exec instance: {id}")))
    }
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
    api.execs.lock().insert(
        exec_id.clone(),
        ExecEntry {
            opts,
            container: r.id,
            stdout: flag("AttachStdout"),
            stderr: flag("AttachStderr"),
            running: false,
            exit_code: None,
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
    let entry = api.execs.get(&id)?;
    if entry.running || entry.exit_code.is_some() {
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
    let (_, output) = api
        .agent
        .containers
        .exec_session(&opts, size, input_rx)
        .await
        .map_err(|e| container_error(e, &entry.container))?;
    if let Some(e) = api.execs.lock().get_mut(&id) {
        e.running = !opts.detach;
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
        let record = |code: i32| {
            if let Some(e) = execs.lock().get_mut(&id) {
                e.running = false;
                e.exit_code = Some(code);
                e.input = None;
            }
        };
        match stream.await {
            Ok(stream) => super::attach::pump(stream, tty, stdin, input_tx, output, record).await,
            Err(_) => {
                // The client left before the stream: let the process run
                // out and keep its exit code.
                let mut output = output;
                while let Some(o) = output.recv().await {
                    if let crate::runtime::session::StdioOutput::Exit(code) = o {
                        record(code);
                    }
                }
            }
        }
    });
    Ok(resp)
}

/// `GET /exec/{id}/json`.
pub async fn inspect(AxState(api): State, Path(id): Path<String>) -> ApiResult<Response> {
    let e = api.execs.get(&id)?;
    let o = &e.opts;
    Ok(axum::Json(json!({
        "ID": id,
        "Running": e.running,
        "ExitCode": e.exit_code,
        "ProcessConfig": {
            "tty": o.tty,
            "entrypoint": o.cmd.first(),
            "arguments": o.cmd.iter().skip(1).collect::<Vec<_>>(),
            "privileged": o.privileged,
            "user": o.user,
        },
        "OpenStdin": o.attach_stdin,
        "OpenStdout": e.stdout,
        "OpenStderr": e.stderr,
        "CanRemove": false,
        "ContainerID": e.container,
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
    let e = api.execs.get(&id)?;
    let (rows, cols) = super::attach::size_of(&q)?;
    if let Some(tx) = e.input {
        let _ = tx.send(StdioInput::Resize { rows, cols }).await;
    }
    Ok(StatusCode::OK.into_response())
}
