//! A build's workspace: the context the client sent, unpacked, and the
//! files a build needs for a while (secrets). Removed when the build
//! ends, however it ends; a crash's leftovers go at the next start.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::BuildOptions;
use crate::error::{Error, Result};

/// One build's directory under `<root>/build/work`.
pub struct Workspace {
    dir: PathBuf,
    /// The unpacked context.
    pub context: PathBuf,
}

impl Drop for Workspace {
    /// Removes the workspace on a thread of its own (a big context takes
    /// a while), so the build's answer does not wait for it.
    fn drop(&mut self) {
        let dir = self.dir.clone();
        let spawned = std::thread::Builder::new()
            .name("build-cleanup".into())
            .spawn(move || {
                let _ = std::fs::remove_dir_all(&dir);
            });
        if spawned.is_err() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Reads the chunks a channel brings as one byte stream (for the tar
/// reader, on a blocking thread).
struct ChunkReader {
    rx: mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    at: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at >= self.buf.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.buf = chunk;
                    self.at = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Workspace {
    /// Makes a workspace under `work` and unpacks the context tar that
    /// `chunks` bring into it (never writing outside it, whatever the
    /// archive holds).
    pub async fn receive(work: &Path, chunks: mpsc::Receiver<Vec<u8>>) -> Result<Workspace> {
        let dir = work.join(&crate::digest::random_id()[..16]);
        let context = dir.join("context");
        std::fs::create_dir_all(&context)
            .map_err(|e| Error::io("making the build's workspace", e))?;
        let me = Workspace { dir, context };
        let target = me.context.clone();
        tokio::task::spawn_blocking(move || {
            let mut reader = ChunkReader {
                rx: chunks,
                buf: Vec::new(),
                at: 0,
            };
            let applied = crate::snapshot::apply::apply_layer(&mut reader, &target, &[]);
            // Drain what a refused archive left, so the sender is not stuck.
            let _ = io::copy(&mut reader, &mut io::sink());
            applied
        })
        .await
        .map_err(|e| Error::Internal(format!("unpacking the context crashed: {e}")))?
        .map_err(|e| {
            Error::InvalidArgument(format!(
                "the build context is not a readable tar archive: {e}"
            ))
        })?;
        Ok(me)
    }

    /// The workspace's own directory (for secrets and the like).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The Dockerfile's name (for messages) and text: the one sent
    /// beside the context, or the one the options name inside it.
    pub fn dockerfile(&self, opts: &BuildOptions) -> Result<(String, String)> {
        let path = if opts.dockerfile.is_empty() {
            "Dockerfile"
        } else {
            opts.dockerfile.as_str()
        };
        let name = if opts.dockerfile_name.is_empty() {
            path.rsplit('/').next().unwrap_or(path).to_string()
        } else {
            opts.dockerfile_name.clone()
        };
        if let Some(text) = &opts.dockerfile_text {
            return Ok((name, text.clone()));
        }
        let fd = crate::util::copy::open_in_root(&self.context, path, nix::fcntl::OFlag::O_RDONLY)
            .map_err(|e| {
                Error::InvalidArgument(format!(
                    "failed to read dockerfile: open {path}: {}; give its path with -f",
                    no_such(&e)
                ))
            })?;
        let mut text = String::new();
        std::fs::File::from(fd)
            .take(16 << 20)
            .read_to_string(&mut text)
            .map_err(|e| {
                Error::InvalidArgument(format!("failed to read dockerfile {path}: {e}"))
            })?;
        Ok((name, text))
    }
}

fn no_such(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::NotFound {
        "no such file or directory".into()
    } else {
        e.to_string()
    }
}
