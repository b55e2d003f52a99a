//! Streams to the UI: events, pull progress, logs, stats and terminals. Each is
//! a task that forwards a `berth-client` [`berth_client::Stream`] (or a
//! [`Session`]'s output) to a `tauri::ipc::Channel` until it ends, fails
//! or the UI calls [`stop_stream`]. Nothing is polled: the agent pushes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_client::images::Progress;
use berth_client::session::{ExecOptions, Input, Output, Session, TerminalSize};
use berth_client::types as pb;
use berth_client::{ErrorKind, Stream};
use futures::StreamExt;
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;
use tokio::sync::mpsc;

use crate::commands::{Reply, UiError};
use crate::App;

/// One message on a stream's channel: items, then `end` or `error`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Msg<T> {
    /// The next item.
    Item {
        /// The item.
        item: T,
    },
    /// The stream finished.
    End,
    /// The stream failed; nothing follows.
    Error {
        /// Why, as a sentence with its kind.
        error: UiError,
    },
}

/// The open streams: a task to abort for each, and a terminal's input.
#[derive(Default)]
pub struct Registry {
    next: AtomicU32,
    tasks: Mutex<HashMap<u32, tokio::task::AbortHandle>>,
    inputs: Mutex<HashMap<u32, mpsc::Sender<Input>>>,
}

impl Registry {
    /// Forwards `stream` to `channel` (through `f`) in a task of its own;
    /// returns the id `stop_stream` takes.
    fn spawn<T, U>(&self, stream: Stream<T>, channel: Channel<Msg<U>>, f: fn(T) -> U) -> u32
    where
        T: Send + 'static,
        U: Serialize + Clone + Send + 'static,
    {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let task = tauri::async_runtime::spawn(forward(stream, channel, f));
        self.tasks
            .lock()
            .unwrap()
            .insert(id, task.inner().abort_handle());
        id
    }

    /// Stops stream `id` (nothing when it has ended).
    fn stop(&self, id: u32) {
        if let Some(t) = self.tasks.lock().unwrap().remove(&id) {
            t.abort();
        }
        self.inputs.lock().unwrap().remove(&id);
    }
}

/// Sends every item, then `End`, or the error that ended the stream.
async fn forward<T, U: Serialize + Clone>(
    mut stream: Stream<T>,
    channel: Channel<Msg<U>>,
    f: fn(T) -> U,
) {
    while let Some(item) = stream.next().await {
        let msg = match item {
            Ok(item) => Msg::Item { item: f(item) },
            Err(e) => {
                let _ = channel.send(Msg::Error { error: e.into() });
                return;
            }
        };
        if channel.send(msg).is_err() {
            return; // the page went away
        }
    }
    let _ = channel.send(Msg::End);
}

/// What happens in the engine, from now on. The stream fails when the
/// agent goes away: the UI says so and subscribes again with a backoff.
#[tauri::command]
pub async fn events(app: State<'_, App>, channel: Channel<Msg<pb::Event>>) -> Reply<u32> {
    let s = app.client().events(Default::default()).await?;
    Ok(app.streams.spawn(s, channel, |e| e))
}

/// Pulls an image; its per-layer progress goes to `channel`.
#[tauri::command]
pub async fn pull(
    app: State<'_, App>,
    reference: String,
    channel: Channel<Msg<Progress>>,
) -> Reply<u32> {
    let s = app.client().pull(&reference, "").await?;
    Ok(app.streams.spawn(s, channel, |p| p))
}

/// Pushes an image to its registry; per-layer progress goes to `channel`.
#[tauri::command]
pub async fn push(
    app: State<'_, App>,
    reference: String,
    channel: Channel<Msg<Progress>>,
) -> Reply<u32> {
    let s = app.client().push(&reference).await?;
    Ok(app.streams.spawn(s, channel, |p| p))
}

/// A running container's resource use (CPU, memory, network, block I/O),
/// a sample a second until it stops or the UI calls `stop_stream`. Each
/// item is a batch: with `every` (seconds, more than 1) the first sample
/// comes alone at once, then those of each `every` seconds together at
/// the clock's multiples of `every`, so the streams of the container list
/// reach the page together: one message per container, and one repaint,
/// every few seconds instead of one a second each. Without it, a batch of
/// one a second.
#[tauri::command]
pub async fn stats(
    app: State<'_, App>,
    id: String,
    every: Option<u32>,
    channel: Channel<Msg<Vec<pb::StatsSample>>>,
) -> Reply<u32> {
    let s = app.client().stats(&id, true).await?;
    let every = Duration::from_secs(every.unwrap_or(1).clamp(1, 60).into());
    Ok(app.streams.spawn(batched(s, every), channel, |b| b))
}

/// `stream`'s items in batches (see [`stats`]): the first alone, then
/// what came until the next multiple of `every` of the clock; an error
/// or the end comes after the batch before it.
fn batched<T: Send + 'static>(stream: Stream<T>, every: Duration) -> Stream<Vec<T>> {
    if every <= Duration::from_secs(1) {
        return Box::pin(stream.map(|r| r.map(|t| vec![t])));
    }
    struct St<T> {
        stream: Stream<T>,
        first: bool,
        failed: Option<berth_client::Error>,
        done: bool,
    }
    let st = St {
        stream,
        first: true,
        failed: None,
        done: false,
    };
    Box::pin(futures::stream::unfold(st, move |mut st| async move {
        if let Some(e) = st.failed.take() {
            st.done = true;
            return Some((Err(e), st));
        }
        if st.done {
            return None;
        }
        let mut batch = match st.stream.next().await? {
            Ok(t) => vec![t],
            Err(e) => {
                st.done = true;
                return Some((Err(e), st));
            }
        };
        if st.first {
            st.first = false;
            return Some((Ok(batch), st));
        }
        // Only while samples come: a stopped stream leaves no timer.
        let deadline = tokio::time::Instant::now() + until_multiple(every, SystemTime::now());
        loop {
            match tokio::time::timeout_at(deadline, st.stream.next()).await {
                Err(_) => break,
                Ok(Some(Ok(t))) => batch.push(t),
                Ok(Some(Err(e))) => {
                    st.failed = Some(e);
                    break;
                }
                Ok(None) => {
                    st.done = true;
                    break;
                }
            }
        }
        Some((Ok(batch), st))
    }))
}

/// The time from `now` to the next multiple of `every` since the epoch.
fn until_multiple(every: Duration, now: SystemTime) -> Duration {
    let ms = every.as_millis().max(1);
    let since = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    Duration::from_millis((ms - since % ms) as u64)
}

/// One log line (or chunk) as the UI shows it.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The text (invalid UTF-8 replaced).
    pub text: String,
    /// When it was written (RFC 3339), when known.
    pub time: Option<String>,
}

/// A container's logs: everything so far, and with `follow` what comes.
#[tauri::command]
pub async fn logs(
    app: State<'_, App>,
    id: String,
    follow: bool,
    channel: Channel<Msg<LogLine>>,
) -> Reply<u32> {
    let req = pb::LogsRequest {
        id,
        follow,
        tail: -1,
        stdout: true,
        stderr: true,
        timestamps: true,
        ..Default::default()
    };
    let s = app.client().logs(req).await?;
    Ok(app.streams.spawn(s, channel, |e: pb::LogEntry| LogLine {
        stream: e.stream,
        text: String::from_utf8_lossy(&e.data).into_owned(),
        time: e.time.map(|t| t.to_string()),
    }))
}

/// Terminal output as the UI gets it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TermOut {
    /// Bytes for the terminal.
    Data {
        /// The bytes.
        data: Vec<u8>,
    },
    /// The shell ended.
    Exit {
        /// Its exit code.
        code: i32,
    },
    /// Which shell was started.
    Shell {
        /// `bash` or `sh`.
        shell: String,
    },
}

/// Opens a shell in a running container with a terminal of `rows` ×
/// `cols`: `bash` when the container has it, else `sh`.
#[tauri::command]
pub async fn terminal(
    app: State<'_, App>,
    id: String,
    rows: u32,
    cols: u32,
    channel: Channel<Msg<TermOut>>,
) -> Reply<u32> {
    let client = app.client();
    let open = |shell: &str| {
        client.exec(
            &id,
            ExecOptions {
                cmd: vec![shell.to_string()],
                env: vec!["TERM=xterm-256color".into()],
                tty: true,
                stdin: true,
                size: Some(TerminalSize { rows, cols }),
                ..Default::default()
            },
        )
    };
    // `bash` when the container has it, else `sh`: a missing bash is an
    // error at the start on some agents and an exit with 127 on others.
    let (mut session, mut shell): (Session, &str) = match open("bash").await {
        Ok(s) => (s, "bash"),
        Err(e) if e.kind() == ErrorKind::CommandNotFound => (open("sh").await?, "sh"),
        Err(e) => return Err(e.into()),
    };
    let mut first = session.output.next().await;
    if shell == "bash" && matches!(first, Some(Ok(Output::Exit(126 | 127)))) {
        session = open("sh").await?;
        shell = "sh";
        first = None;
    }
    let output: Stream<Output> = Box::pin(futures::stream::iter(first).chain(session.output));
    let _ = channel.send(Msg::Item {
        item: TermOut::Shell {
            shell: shell.into(),
        },
    });
    let input = session.input.clone();
    let sid = app.streams.spawn(output, channel, |o| match o {
        Output::Stdout(data) | Output::Stderr(data) => TermOut::Data { data },
        Output::Exit(code) => TermOut::Exit { code },
    });
    app.streams.inputs.lock().unwrap().insert(sid, input);
    Ok(sid)
}

/// The terminal's sender for stream `id`.
fn input_of(app: &App, id: u32) -> Reply<mpsc::Sender<Input>> {
    app.streams
        .inputs
        .lock()
        .unwrap()
        .get(&id)
        .cloned()
        .ok_or_else(|| UiError {
            kind: "NotFound".into(),
            message: "this terminal has ended; open a new one".into(),
        })
}

/// Keys typed into terminal `id`.
#[tauri::command]
pub async fn terminal_input(app: State<'_, App>, id: u32, data: String) -> Reply<()> {
    let tx = input_of(&app, id)?;
    let _ = tx.send(Input::Stdin(data.into_bytes())).await;
    Ok(())
}

/// Terminal `id` was resized.
#[tauri::command]
pub async fn terminal_resize(app: State<'_, App>, id: u32, rows: u32, cols: u32) -> Reply<()> {
    let tx = input_of(&app, id)?;
    let _ = tx.send(Input::Resize(TerminalSize { rows, cols })).await;
    Ok(())
}

/// Stops stream `id`: its task ends and, for a terminal, its input closes.
#[tauri::command]
pub async fn stop_stream(app: State<'_, App>, id: u32) -> Reply<()> {
    if let Some(tx) = app.streams.inputs.lock().unwrap().get(&id).cloned() {
        let _ = tx.try_send(Input::CloseStdin);
    }
    app.streams.stop(id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_end_at_the_clocks_multiples() {
        let at = |ms| UNIX_EPOCH + Duration::from_millis(ms);
        let three = Duration::from_secs(3);
        assert_eq!(
            until_multiple(three, at(999_999_500)),
            Duration::from_millis(2500)
        );
        assert_eq!(
            until_multiple(three, at(1_000_001_999)),
            Duration::from_millis(1)
        );
        assert_eq!(until_multiple(three, at(999_999_000)), three);
    }

    #[tokio::test]
    async fn the_first_sample_comes_alone_then_the_rest_with_the_end() {
        let items: Stream<u32> = Box::pin(futures::stream::iter([Ok(1), Ok(2), Ok(3)]));
        let got: Vec<_> = batched(items, Duration::from_secs(3))
            .map(|b| b.unwrap())
            .collect()
            .await;
        assert_eq!(got, vec![vec![1], vec![2, 3]]);
        let items: Stream<u32> = Box::pin(futures::stream::iter([Ok(1), Ok(2)]));
        let got: Vec<_> = batched(items, Duration::from_secs(1))
            .map(|b| b.unwrap())
            .collect()
            .await;
        assert_eq!(got, vec![vec![1], vec![2]]);
    }
}
