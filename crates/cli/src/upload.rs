//! Uploads: a request stream of an optional first message and then what
//! a reader yields, in 1 MiB chunks, read while the agent receives (for
//! `load`, `import` and `cp` into a container), so no upload is held in
//! memory whole.

use std::path::Path;

use anyhow::{Context, Result};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

/// An upload in progress: the stream to hand to the RPC, and the reader,
/// which tells after the call whether the input could be read.
pub struct Upload<T> {
    /// The request stream.
    pub stream: ReceiverStream<T>,
    /// The reading task.
    pub reader: JoinHandle<std::io::Result<()>>,
}

/// Sends `first` (when given), then `input` wrapped chunk by chunk.
pub fn upload<T: Send + 'static>(
    first: Option<T>,
    mut input: impl AsyncRead + Unpin + Send + 'static,
    wrap: fn(Vec<u8>) -> T,
) -> Upload<T> {
    let (tx, rx) = mpsc::channel::<T>(4);
    let reader = tokio::spawn(async move {
        if let Some(f) = first {
            if tx.send(f).await.is_err() {
                return Ok(());
            }
        }
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = input.read(&mut buf).await?;
            if n == 0 || tx.send(wrap(buf[..n].to_vec())).await.is_err() {
                return Ok(());
            }
        }
    });
    Upload {
        stream: ReceiverStream::new(rx),
        reader,
    }
}

/// A file, or standard input for `-`.
pub async fn open_input(name: &str) -> Result<Box<dyn AsyncRead + Unpin + Send>> {
    if name == "-" {
        return Ok(Box::new(tokio::io::stdin()));
    }
    Ok(Box::new(
        tokio::fs::File::open(name)
            .await
            .with_context(|| format!("cannot open {name}"))?,
    ))
}

/// A tar of the host path `src` (named by its last component), written by
/// a thread as it is read; `follow` archives what symlinks point to.
pub fn tar_of(src: &Path, follow: bool) -> Result<impl AsyncRead + Unpin + Send + 'static> {
    let meta = if follow {
        std::fs::metadata(src)
    } else {
        std::fs::symlink_metadata(src)
    }
    .with_context(|| format!("could not find the file {} on the host", src.display()))?;
    let name = src
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into());
    let (read, write) = nix::unistd::pipe().context("cannot make a pipe")?;
    let src = src.to_path_buf();
    std::thread::spawn(move || {
        let mut b = tar::Builder::new(std::fs::File::from(write));
        b.follow_symlinks(follow);
        let written = if meta.is_dir() {
            b.append_dir_all(&name, &src)
        } else {
            b.append_path_with_name(&src, &name)
        };
        match written.and_then(|_| b.finish()) {
            // The agent stopped reading: it says why itself.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => eprintln!("Error: cannot read {}: {e}", src.display()),
            Ok(()) => {}
        }
    });
    Ok(tokio::fs::File::from_std(std::fs::File::from(read)))
}
