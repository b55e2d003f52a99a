//! Attach and exec sessions: a client's input (stdin, terminal sizes, end
//! of input) carried to a container's monitor or an exec process, and its
//! output and exit code carried back, over channels of the engine's own
//! types. The gRPC layer only converts messages.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::config::ExecOptions;
use super::protocol;
use super::start::AttachWanted;
use super::Containers;
use crate::error::{Error, Result};
use crate::util::fdio::{self, Fd};

/// What a client sends into a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StdioInput {
    /// Bytes for the process's stdin.
    Stdin(Vec<u8>),
    /// The client's terminal has a new size.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
    /// The client's stdin ended.
    CloseStdin,
}

/// What a session sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StdioOutput {
    /// Bytes from stdout (or the terminal).
    Stdout(Vec<u8>),
    /// Bytes from stderr.
    Stderr(Vec<u8>),
    /// The process ended with this code; nothing follows.
    Exit(i32),
}

/// A terminal size as the monitor's RESIZE frame carries it.
fn size_frame(rows: u16, cols: u16) -> Vec<u8> {
    let mut b = rows.to_be_bytes().to_vec();
    b.extend_from_slice(&cols.to_be_bytes());
    b
}

/// The monitor's frame for one input.
fn input_frame(input: StdioInput) -> (u8, Vec<u8>) {
    match input {
        StdioInput::Stdin(data) => (protocol::STDIN, data),
        StdioInput::Resize { rows, cols } => (protocol::RESIZE, size_frame(rows, cols)),
        StdioInput::CloseStdin => (protocol::CLOSE_STDIN, Vec::new()),
    }
}

/// The output a monitor's frame carries, if any.
fn output_of(kind: u8, data: Vec<u8>) -> Option<StdioOutput> {
    match kind {
        protocol::STDOUT => Some(StdioOutput::Stdout(data)),
        protocol::STDERR => Some(StdioOutput::Stderr(data)),
        protocol::EXIT => {
            let code: [u8; 4] = data.as_slice().try_into().ok()?;
            Some(StdioOutput::Exit(i32::from_be_bytes(code)))
        }
        _ => None,
    }
}

impl Containers {
    /// Attaches to a container (starting it first with `start`, so no
    /// output is missed): `input` goes to it, and the returned receiver
    /// gets its output, then its exit code once the engine has recorded
    /// the exit.
    pub async fn attach_session(
        self: &Arc<Self>,
        container: &str,
        wanted: AttachWanted,
        start: bool,
        mut input: mpsc::Receiver<StdioInput>,
    ) -> Result<mpsc::Receiver<StdioOutput>> {
        let r = self.find(container)?.record();
        let id = r.id.clone();
        // As Docker's, an attach event before the start it may bring.
        let conn = if start {
            self.emit("attach", &r, &[]);
            self.start(&id, Some(wanted)).await?
        } else {
            if !r.state.is_running() {
                return Err(Error::FailedPrecondition(format!(
                    "you cannot attach to a stopped container {}: start it first",
                    r.id
                )));
            }
            self.emit("attach", &r, &[]);
            Some(self.attach_conn(&r.id, wanted).await?)
        };
        let conn = conn.ok_or_else(|| Error::Internal("no attach connection".into()))?;
        let (tx, rx) = mpsc::channel(64);
        let me = self.clone();
        tokio::spawn(async move {
            let (mut read, mut write) = conn.into_split();
            let forward = tokio::spawn(async move {
                while let Some(msg) = input.recv().await {
                    let (kind, data) = input_frame(msg);
                    if protocol::write_frame(&mut write, kind, &data)
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            });
            while let Ok(Some((kind, data))) = protocol::read_frame(&mut read).await {
                let Some(out) = output_of(kind, data) else {
                    continue;
                };
                let last = matches!(out, StdioOutput::Exit(_));
                if last {
                    me.exit_recorded(&id).await;
                }
                if tx.send(out).await.is_err() || last {
                    break;
                }
            }
            forward.abort();
        });
        Ok(rx)
    }

    /// Runs an exec session: starts `opts.cmd` in its container, feeds it
    /// `input`, and returns the session's id and a receiver of its output,
    /// then its exit code. A detached session gets no output.
    pub async fn exec_session(
        &self,
        opts: &ExecOptions,
        size: Option<(u16, u16)>,
        mut input: mpsc::Receiver<StdioInput>,
    ) -> Result<(String, mpsc::Receiver<StdioOutput>)> {
        let mut p = self.exec(opts).await?;
        let (tx, rx) = mpsc::channel(64);
        let id = p.id.clone();
        if opts.detach {
            tokio::spawn(async move {
                let status = p.child.wait().await;
                p.end
                    .ended(status.ok().and_then(|s| s.code()).unwrap_or(255), false);
            });
            return Ok((id, rx));
        }
        let master = match p.master.take().map(Fd::new) {
            Some(Ok(m)) => Some(Arc::new(m)),
            Some(Err(e)) => return Err(Error::Internal(format!("exec terminal: {e}"))),
            None => None,
        };
        if let (Some(m), Some((rows, cols))) = (&master, size) {
            let _ = fdio::set_window_size(m.raw(), rows, cols);
        }
        // Input: stdin, resizes, end of input.
        let mut stdin = p.stdin.take();
        let input_master = master.clone();
        let forward = tokio::spawn(async move {
            while let Some(msg) = input.recv().await {
                match (msg, &input_master) {
                    (StdioInput::Stdin(data), Some(m)) => {
                        let _ = m.write_all(&data).await;
                    }
                    (StdioInput::Stdin(data), None) => {
                        if let Some(s) = stdin.as_mut() {
                            if s.write_all(&data).await.is_err() {
                                stdin = None;
                            }
                        }
                    }
                    (StdioInput::Resize { rows, cols }, Some(m)) => {
                        let _ = fdio::set_window_size(m.raw(), rows, cols);
                    }
                    (StdioInput::Resize { .. }, None) => {}
                    (StdioInput::CloseStdin, m) => {
                        if let Some(m) = m {
                            // ^D: the terminal's end of input.
                            let _ = m.write_all(&[4]).await;
                        }
                        stdin = None;
                    }
                }
            }
        });
        let mut readers = Vec::new();
        if let Some(m) = master {
            let tx = tx.clone();
            readers.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 32 << 10];
                while let Ok(n) = m.read(&mut buf).await {
                    if n == 0
                        || tx
                            .send(StdioOutput::Stdout(buf[..n].to_vec()))
                            .await
                            .is_err()
                    {
                        break;
                    }
                }
            }));
        }
        let pipes: [(Option<Box<dyn AsyncRead + Send + Unpin>>, bool); 2] = [
            (p.stdout.take().map(|s| Box::new(s) as _), false),
            (p.stderr.take().map(|s| Box::new(s) as _), true),
        ];
        for (reader, is_err) in pipes {
            if let Some(mut reader) = reader {
                let tx = tx.clone();
                readers.push(tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 << 10];
                    while let Ok(n) = reader.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let data = buf[..n].to_vec();
                        let out = if is_err {
                            StdioOutput::Stderr(data)
                        } else {
                            StdioOutput::Stdout(data)
                        };
                        if tx.send(out).await.is_err() {
                            break;
                        }
                    }
                }));
            }
        }
        tokio::spawn(async move {
            let status = p.child.wait().await;
            for r in readers {
                let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
            }
            forward.abort();
            let code = status.ok().and_then(|s| s.code()).unwrap_or(255);
            p.end.ended(code, false);
            let _ = tx.send(StdioOutput::Exit(code)).await;
        });
        Ok((id, rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_become_monitor_frames_and_frames_become_outputs() {
        assert_eq!(
            input_frame(StdioInput::Resize { rows: 24, cols: 80 }),
            (protocol::RESIZE, vec![0, 24, 0, 80])
        );
        assert_eq!(
            input_frame(StdioInput::CloseStdin),
            (protocol::CLOSE_STDIN, vec![])
        );
        assert_eq!(
            output_of(protocol::EXIT, 137i32.to_be_bytes().to_vec()),
            Some(StdioOutput::Exit(137))
        );
        assert_eq!(
            output_of(protocol::STDERR, b"x".to_vec()),
            Some(StdioOutput::Stderr(b"x".to_vec()))
        );
        // A short exit frame or an unknown kind is skipped, not a panic.
        assert_eq!(output_of(protocol::EXIT, vec![1, 2]), None);
        assert_eq!(output_of(200, vec![]), None);
    }
}
