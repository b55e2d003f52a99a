//! What the agent and a container's monitor say to each other over the
//! monitor's Unix socket, and the files the monitor leaves behind.
//!
//! A connection starts with one JSON line (a [`Request`]); the monitor
//! answers with one JSON line (a [`Reply`]). An attach connection then
//! carries frames: one kind byte, a big-endian u32 length, the payload.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub use crate::util::jsonfile::{read_json, write_json_atomic, write_json_durable};

/// Frame kinds from the agent: bytes for the container's stdin.
pub const STDIN: u8 = 0;
/// Frame kind from the agent: the client's stdin ended.
pub const CLOSE_STDIN: u8 = 1;
/// Frame kind from the agent: the terminal's new size (rows, cols as u16).
pub const RESIZE: u8 = 2;
/// Frame kind from the monitor: the container's stdout.
pub const STDOUT: u8 = 1;
/// Frame kind from the monitor: the container's stderr.
pub const STDERR: u8 = 2;
/// Frame kind from the monitor: the main process exited (i32 status).
pub const EXIT: u8 = 3;

/// The first line of a connection to a monitor.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// Start the created container's process.
    Start,
    /// Join the container's I/O; the connection stays open until the
    /// process exits (with no streams asked, it just waits for the exit).
    Attach {
        /// Send stdin frames.
        stdin: bool,
        /// Receive stdout frames.
        stdout: bool,
        /// Receive stderr frames.
        stderr: bool,
    },
}

/// The monitor's answer to a request.
#[derive(Debug, Serialize, Deserialize, Default)]
pub struct Reply {
    /// Why the request failed; empty when it worked.
    #[serde(default)]
    pub error: String,
}

/// What a monitor writes to `run.json` as the container's run goes on.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RunState {
    /// The monitor's pid.
    pub monitor_pid: i32,
    /// The container's main process, as a host pid (0 before it exists).
    pub pid: i32,
    /// When the process was started.
    pub started_at: Option<DateTime<Utc>>,
    /// How it ended, once it has.
    pub exit: Option<ExitStatus>,
}

/// How a run ended.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ExitStatus {
    /// The exit code; 128 + signal for a signal.
    pub code: i32,
    /// True when the kernel's OOM killer acted in the container's cgroup.
    pub oom_killed: bool,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it never ran, when it never did.
    #[serde(default)]
    pub error: String,
}

/// Writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: u8,
    data: &[u8],
) -> std::io::Result<()> {
    let mut header = [0u8; 5];
    header[0] = kind;
    header[1..].copy_from_slice(&(data.len() as u32).to_be_bytes());
    w.write_all(&header).await?;
    w.write_all(data).await?;
    w.flush().await
}

/// Reads one frame; `None` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut header = [0u8; 5];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if len > 16 << 20 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut data = vec![0u8; len];
    r.read_exact(&mut data).await?;
    Ok(Some((header[0], data)))
}

/// Reads one JSON line (at most 64 KiB), byte by byte so nothing after it
/// is consumed.
pub async fn read_line<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<String> {
    let mut line = Vec::new();
    loop {
        let b = r.read_u8().await?;
        if b == b'\n' {
            break;
        }
        line.push(b);
        if line.len() > 64 << 10 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "line too long",
            ));
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Writes `value` as one JSON line.
pub async fn write_line<W: AsyncWrite + Unpin, T: Serialize>(
    w: &mut W,
    value: &T,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    w.write_all(&bytes).await?;
    w.flush().await
}
