//! Hijacked streams: `POST /containers/{id}/attach` (and the plumbing
//! `exec` shares). When the client asks (`Upgrade: tcp`), the answer is
//! 101 and the connection becomes a raw byte stream both ways: the
//! client's bytes are stdin, and its half-close is the end of stdin; the
//! output goes back as 8-byte multiplexed frames, or raw for a TTY, and
//! the agent half-closes when the process ends. Without the upgrade the
//! answer is 200 with the output as the body (no stdin).
//!
//! `docker run` attaches before it starts the container: such an attach
//! waits in [`Pending`] and the start hands it the output, so no output
//! is missed.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State as AxState};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::{container_error, truthy, ApiError, ApiResult, DockerApi, State};
use crate::error::Result;
use crate::runtime::session::{StdioInput, StdioOutput};
use crate::runtime::start::AttachWanted;

/// An attach waiting for its container to start.
struct Waiting {
    wanted: AttachWanted,
    input: mpsc::Receiver<StdioInput>,
    output: oneshot::Sender<mpsc::Receiver<StdioOutput>>,
}

/// Attaches waiting for a start, and the input channels of live sessions
/// (for `resize`), by container id.
#[derive(Default)]
pub struct Pending {
    waiting: Mutex<HashMap<String, Vec<Waiting>>>,
    live: Mutex<HashMap<String, Vec<mpsc::Sender<StdioInput>>>>,
}

impl Pending {
    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Waiting>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers a live session's input, for `resize`.
    pub fn add_live(&self, id: &str, tx: mpsc::Sender<StdioInput>) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let list = live.entry(id.to_string()).or_default();
        list.retain(|t| !t.is_closed());
        list.push(tx);
    }
}

/// Starts container `id`; the first attach waiting for it gets the start's
/// own attach connection, the others attach once it runs.
pub async fn start_with_waiting_attaches(api: &DockerApi, id: &str) -> Result<()> {
    let waiting = api.pending.waiting().remove(id).unwrap_or_default();
    let containers = &api.agent.containers;
    // An attach whose client went away before the start is dropped.
    let mut waiting = waiting.into_iter().filter(|w| !w.output.is_closed());
    let Some(first) = waiting.next() else {
        containers.start(id, None).await?;
        return Ok(());
    };
    let rx = containers
        .attach_session(id, first.wanted, true, first.input)
        .await?;
    let _ = first.output.send(rx);
    for w in waiting {
        if let Ok(rx) = containers
            .attach_session(id, w.wanted, false, w.input)
            .await
        {
            let _ = w.output.send(rx);
        }
    }
    Ok(())
}

/// The terminal size in `h` and `w`.
pub fn size_of(q: &HashMap<String, String>) -> ApiResult<(u16, u16)> {
    let get = |k: &str| {
        q.get(k)
            .and_then(|v| v.parse::<u16>().ok())
            .ok_or_else(|| ApiError::bad(format!("{k} must be a terminal size (0 to 65535)")))
    };
    Ok((get("h")?, get("w")?))
}

/// Resizes the terminal of every live attach session of container `id`.
pub async fn resize(api: &DockerApi, id: &str, rows: u16, cols: u16) {
    let senders = api
        .pending
        .live
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(id)
        .cloned()
        .unwrap_or_default();
    for tx in senders {
        let _ = tx.send(StdioInput::Resize { rows, cols }).await;
    }
}

/// The two ends of a hijacked (or plain) stream.
pub struct Stream {
    /// Output bytes for the client; dropping it ends the stream.
    pub out: mpsc::Sender<Bytes>,
    /// The client's bytes (None without an upgrade).
    pub input: Option<Box<dyn AsyncRead + Send + Unpin>>,
}

/// Answers `req` with 101 (when it asks to upgrade) or 200, and gives the
/// stream once the connection is handed over.
pub fn hijack(mut req: Request, tty: bool) -> (Response, oneshot::Receiver<Stream>) {
    let kind = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    let (stx, srx) = oneshot::channel();
    let (out, mut orx) = mpsc::channel::<Bytes>(64);
    let upgrade = req.headers().get("Upgrade").is_some_and(|v| !v.is_empty());
    if !upgrade {
        let _ = stx.send(Stream { out, input: None });
        let body = futures::stream::poll_fn(move |cx| {
            orx.poll_recv(cx).map(|o| o.map(Ok::<_, std::io::Error>))
        });
        let mut resp = Body::from_stream(body).into_response();
        resp.headers_mut()
            .insert("Content-Type", HeaderValue::from_static(kind));
        return (resp, srx);
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let (read, mut write) = tokio::io::split(hyper_util::rt::TokioIo::new(upgraded));
        let _ = stx.send(Stream {
            out,
            input: Some(Box::new(read)),
        });
        while let Some(b) = orx.recv().await {
            if write.write_all(&b).await.is_err() || write.flush().await.is_err() {
                return;
            }
        }
        let _ = write.shutdown().await;
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert("Content-Type", HeaderValue::from_static(kind));
    h.insert("Connection", HeaderValue::from_static("Upgrade"));
    h.insert("Upgrade", HeaderValue::from_static("tcp"));
    (resp, srx)
}

/// Carries a session both ways until its process ends: the client's
/// bytes into `input` (its half-close as the end of stdin, when `stdin`),
/// the output back as frames (raw with `tty`); `on_exit` hears the exit
/// code before the stream closes.
pub async fn pump(
    stream: Stream,
    tty: bool,
    stdin: bool,
    input: mpsc::Sender<StdioInput>,
    mut output: mpsc::Receiver<StdioOutput>,
    on_exit: impl FnOnce(i32),
) {
    let reader = match (stream.input, stdin) {
        (Some(mut r), true) => Some(tokio::spawn(async move {
            let mut buf = vec![0u8; 32 << 10];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = input.send(StdioInput::CloseStdin).await;
                        return;
                    }
                    Ok(n) => {
                        if input
                            .send(StdioInput::Stdin(buf[..n].to_vec()))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        })),
        _ => None,
    };
    let mut on_exit = Some(on_exit);
    while let Some(o) = output.recv().await {
        let bytes = match o {
            StdioOutput::Stdout(d) if tty => Bytes::from(d),
            StdioOutput::Stdout(d) => super::containers::frame(1, &d),
            StdioOutput::Stderr(d) => super::containers::frame(2, &d),
            StdioOutput::Exit(code) => {
                if let Some(f) = on_exit.take() {
                    f(code);
                }
                break;
            }
        };
        if stream.out.send(bytes).await.is_err() {
            break;
        }
    }
    drop(stream.out);
    if let Some(r) = reader {
        r.abort();
    }
}

/// What the container wrote so far (`logs=1`), framed as attach frames.
async fn stored_output(api: &DockerApi, id: &str, w: AttachWanted, tty: bool) -> Vec<Bytes> {
    let opts = crate::runtime::LogOptions {
        stdout: w.stdout,
        stderr: w.stderr,
        ..Default::default()
    };
    let Ok(mut rx) = api.agent.containers.logs(id, opts) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    while let Some(l) = rx.recv().await {
        out.push(if tty {
            Bytes::from(l.log.into_bytes())
        } else {
            let stream = if l.stream == "stderr" { 2 } else { 1 };
            super::containers::frame(stream, l.log.as_bytes())
        });
    }
    out
}

/// `POST /containers/{id}/attach?stream=&logs=&stdin=&stdout=&stderr=`.
pub async fn attach(
    AxState(api): State,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> ApiResult<Response> {
    let r = super::containers::record(&api, &id)?;
    let logs = truthy(q.get("logs"));
    let live = truthy(q.get("stream"));
    if !logs && !live {
        return Err(ApiError::bad("attach needs stream=1, logs=1 or both"));
    }
    let wanted = AttachWanted {
        stdin: truthy(q.get("stdin")),
        stdout: truthy(q.get("stdout")),
        stderr: truthy(q.get("stderr")),
    };
    let tty = r.config.tty;
    let replay = if logs {
        stored_output(&api, &r.id, wanted, tty).await
    } else {
        Vec::new()
    };
    if !live {
        let (resp, stream) = hijack(req, tty);
        tokio::spawn(async move {
            if let Ok(stream) = stream.await {
                for b in replay {
                    if stream.out.send(b).await.is_err() {
                        return;
                    }
                }
            }
        });
        return Ok(resp);
    }
    let (input_tx, input_rx) = mpsc::channel(64);
    api.pending.add_live(&r.id, input_tx.clone());
    let output = if r.state.is_running() {
        let rx = api
            .agent
            .containers
            .attach_session(&r.id, wanted, false, input_rx)
            .await
            .map_err(|e| container_error(e, &id))?;
        let (tx, orx) = oneshot::channel();
        let _ = tx.send(rx);
        orx
    } else {
        let (tx, orx) = oneshot::channel();
        api.pending
            .waiting()
            .entry(r.id.clone())
            .or_default()
            .push(Waiting {
                wanted,
                input: input_rx,
                output: tx,
            });
        orx
    };
    let (resp, stream) = hijack(req, tty);
    tokio::spawn(async move {
        let Ok(stream) = stream.await else {
            return;
        };
        for b in replay {
            if stream.out.send(b).await.is_err() {
                return;
            }
        }
        // Without a start (the client gave up, or the start failed) the
        // stream just ends.
        let Ok(output) = output.await else {
            return;
        };
        pump(stream, tty, wanted.stdin, input_tx, output, |_| {}).await;
    });
    Ok(resp)
}
