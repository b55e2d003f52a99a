//! Attach and exec sessions: the stream protocol with the agent, behind a
//! small typed surface. A front end sends [`Input`]s (stdin bytes, the end
//! of stdin, a terminal size) on the session's sender and reads
//! [`Output`]s (stdout, stderr, and last the exit code) from its stream;
//! the terminal itself (raw mode, signals, detach keys) is the front
//! end's.

use berth_api::v1::{self as pb, attach_input, attach_output, exec_input, exec_output};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::{Error, Result};
use crate::stream::Stream;
use crate::Client;

/// A terminal's size in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TerminalSize {
    /// Rows.
    pub rows: u32,
    /// Columns.
    pub cols: u32,
}

impl From<TerminalSize> for pb::TerminalSize {
    fn from(s: TerminalSize) -> Self {
        pb::TerminalSize {
            rows: s.rows,
            cols: s.cols,
        }
    }
}

/// What a front end sends into a session.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Bytes for the process's stdin.
    Stdin(Vec<u8>),
    /// The end of stdin.
    CloseStdin,
    /// The terminal was resized.
    Resize(TerminalSize),
}

/// What comes out of a session.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Output {
    /// The process wrote to stdout (or its terminal).
    Stdout(Vec<u8>),
    /// The process wrote to stderr.
    Stderr(Vec<u8>),
    /// The process ended with this code; nothing follows.
    Exit(i32),
}

/// A live session: send input on `input`, read `output` to the end.
pub struct Session {
    /// Where input goes; dropping it does not end the session (use
    /// [`Input::CloseStdin`]).
    pub input: mpsc::Sender<Input>,
    /// The process's output, ending with [`Output::Exit`].
    pub output: Stream<Output>,
    /// The exec session's id (empty for attach).
    pub exec_id: String,
}

/// How to attach.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    /// Send stdin.
    pub stdin: bool,
    /// Start the container once attached, so no output is missed (`run`,
    /// `start -a`).
    pub start: bool,
}

/// What to run with exec.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// The command and its arguments.
    pub cmd: Vec<String>,
    /// `KEY=VALUE` pairs added to the container's environment.
    pub env: Vec<String>,
    /// The working directory (empty: the container's).
    pub working_dir: String,
    /// `user[:group]` (empty: the container's).
    pub user: String,
    /// Give it a terminal.
    pub tty: bool,
    /// The terminal's size at the start.
    pub size: Option<TerminalSize>,
    /// Send stdin.
    pub stdin: bool,
    /// Run it in the background: the session ends at once.
    pub detach: bool,
    /// Extended privileges.
    pub privileged: bool,
}

/// Forwards typed input as request messages; keeps the request stream open
/// after the sender goes (closing it would end the session).
fn forward<M: Send + 'static>(
    wrap: fn(Input) -> M,
) -> (mpsc::Sender<Input>, mpsc::Sender<M>, ReceiverStream<M>) {
    let (in_tx, mut in_rx) = mpsc::channel::<Input>(16);
    let (msg_tx, msg_rx) = mpsc::channel::<M>(16);
    let tx = msg_tx.clone();
    tokio::spawn(async move {
        while let Some(i) = in_rx.recv().await {
            if tx.send(wrap(i)).await.is_err() {
                return;
            }
        }
        // Hold the request stream open until the agent ends the session.
        tx.closed().await;
    });
    (in_tx, msg_tx, ReceiverStream::new(msg_rx))
}

impl Client {
    /// Attaches to a container's process (and starts it with
    /// `options.start`). When the output stream ends without an exit code
    /// (the agent went away), the exit code is asked for with `wait`.
    pub async fn attach(&self, id: &str, options: AttachOptions) -> Result<Session> {
        let (input, msg_tx, requests) = forward(|i| pb::AttachInput {
            input: Some(match i {
                Input::Stdin(d) => attach_input::Input::Stdin(d),
                Input::CloseStdin => attach_input::Input::CloseStdin(true),
                Input::Resize(s) => attach_input::Input::Resize(s.into()),
            }),
        });
        let start = pb::AttachInput {
            input: Some(attach_input::Input::Start(pb::AttachStart {
                id: id.to_string(),
                stdin: options.stdin,
                stdout: true,
                stderr: true,
                detach_keys: String::new(),
                start: options.start,
            })),
        };
        msg_tx
            .send(start)
            .await
            .map_err(|_| Error::protocol("attach"))?;
        drop(msg_tx);
        let stream = self
            .containers()
            .await?
            .attach(requests)
            .await?
            .into_inner();
        let client = self.clone();
        let id = id.to_string();
        let output = stream
            .filter_map(|m| async move {
                match m {
                    Err(s) => Some(Err(Error::from(s))),
                    Ok(m) => match m.output? {
                        attach_output::Output::Stdout(d) => Some(Ok(Output::Stdout(d))),
                        attach_output::Output::Stderr(d) => Some(Ok(Output::Stderr(d))),
                        attach_output::Output::ExitCode(c) => Some(Ok(Output::Exit(c))),
                    },
                }
            })
            .chain(futures::stream::once(async move {
                // Read only when the agent's stream ended without an exit
                // code (`until_exit` stops at the first one).
                Ok(Output::Exit(
                    client
                        .wait_container(&id, crate::containers::WaitFor::NotRunning)
                        .await
                        .unwrap_or(0),
                ))
            }));
        Ok(Session {
            input,
            output: Box::pin(until_exit(output)),
            exec_id: String::new(),
        })
    }

    /// Runs a command in a running container. A command the container
    /// lacks does not fail the call: the session starts and ends with exit
    /// code 127 (126 for one that cannot run), as `docker exec` reports it;
    /// a missing or stopped container fails the call.
    pub async fn exec(&self, container: &str, options: ExecOptions) -> Result<Session> {
        let (input, msg_tx, requests) = forward(|i| pb::ExecInput {
            input: Some(match i {
                Input::Stdin(d) => exec_input::Input::Stdin(d),
                Input::CloseStdin => exec_input::Input::CloseStdin(true),
                Input::Resize(s) => exec_input::Input::Resize(s.into()),
            }),
        });
        let start = pb::ExecInput {
            input: Some(exec_input::Input::Start(pb::ExecStart {
                container_id: container.to_string(),
                cmd: options.cmd,
                env: options.env,
                working_dir: options.working_dir,
                user: options.user,
                tty: options.tty,
                attach_stdin: options.stdin,
                detach: options.detach,
                privileged: options.privileged,
                size: options.size.map(Into::into),
            })),
        };
        msg_tx
            .send(start)
            .await
            .map_err(|_| Error::protocol("exec"))?;
        drop(msg_tx);
        let mut stream = self.containers().await?.exec(requests).await?.into_inner();
        // The agent's first message names the session (or says why it
        // could not start).
        let mut first = None;
        let mut exec_id = String::new();
        if !options.detach {
            match stream.next().await {
                Some(Ok(pb::ExecOutput {
                    output: Some(exec_output::Output::ExecId(id)),
                })) => exec_id = id,
                Some(Ok(other)) => first = Some(other),
                Some(Err(s)) => return Err(Error::from(s)),
                None => {}
            }
        }
        let rest = futures::stream::iter(first.map(Ok)).chain(stream);
        let output = rest.filter_map(|m| async move {
            match m {
                Err(s) => Some(Err(Error::from(s))),
                Ok(m) => match m.output? {
                    exec_output::Output::Stdout(d) => Some(Ok(Output::Stdout(d))),
                    exec_output::Output::Stderr(d) => Some(Ok(Output::Stderr(d))),
                    exec_output::Output::ExitCode(c) => Some(Ok(Output::Exit(c))),
                    exec_output::Output::ExecId(_) => None,
                },
            }
        });
        Ok(Session {
            input,
            output: Box::pin(until_exit(output)),
            exec_id,
        })
    }
}

/// Ends a session's output after its first exit code or error.
fn until_exit<S>(s: S) -> impl futures::Stream<Item = Result<Output>> + Send
where
    S: futures::Stream<Item = Result<Output>> + Send,
{
    futures::stream::unfold((Box::pin(s), false), |(mut s, done)| async move {
        if done {
            return None;
        }
        let item = s.next().await?;
        let end = !matches!(item, Ok(Output::Stdout(_)) | Ok(Output::Stderr(_)));
        Some((item, (s, end)))
    })
}
