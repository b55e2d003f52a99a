//! One blob download that several readers can follow while it streams in:
//! the downloader writes the content store's ingest file; a [`FollowReader`]
//! reads that same file as it grows, so a layer is decompressed and unpacked
//! while it arrives, with no second copy. Readers learn of new bytes through
//! a condvar (no polling), and of the end through the final verdict.

use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Condvar, Mutex};

use tokio::sync::watch;

use crate::error::{Error, Result};

#[derive(Default)]
struct State {
    written: u64,
    /// Set when the blob is committed (Ok) or abandoned (Err).
    done: Option<Result<()>>,
}

/// A blob on its way into the content store.
pub struct Download {
    state: Mutex<State>,
    grown: Condvar,
    partial: PathBuf,
    final_path: PathBuf,
    /// Bytes written so far, and whether it is finished, for async watchers.
    pub progress: watch::Sender<(u64, bool)>,
    /// The blob's size per its descriptor.
    pub size: u64,
}

impl Download {
    /// A download that will write `partial` and end at `final_path`.
    pub fn new(partial: PathBuf, final_path: PathBuf, size: u64) -> Self {
        Download {
            state: Mutex::new(State::default()),
            grown: Condvar::new(),
            partial,
            final_path,
            progress: watch::channel((0, false)).0,
            size,
        }
    }

    /// Records that the file now holds `written` bytes.
    pub fn advance(&self, written: u64) {
        self.state.lock().expect("poisoned").written = written;
        self.grown.notify_all();
        self.progress.send_replace((written, false));
    }

    /// Runs `commit` (which moves the blob into place) and records the
    /// verdict, under the lock, so a reader opens either the partial file
    /// before the move or the final one after it.
    pub fn finish(&self, commit: impl FnOnce() -> Result<()>) -> Result<()> {
        let mut st = self.state.lock().expect("poisoned");
        let verdict = commit();
        st.done = Some(verdict.clone());
        drop(st);
        self.grown.notify_all();
        let written = self.progress.borrow().0;
        self.progress.send_replace((written, true));
        verdict
    }

    /// Waits (async) until the download has finished, and returns its verdict.
    pub async fn wait(&self) -> Result<()> {
        let mut rx = self.progress.subscribe();
        let _ = rx.wait_for(|(_, done)| *done).await;
        self.state
            .lock()
            .expect("poisoned")
            .done
            .clone()
            .unwrap_or_else(|| Err(Error::Internal("a download ended without a verdict".into())))
    }

    /// Opens a reader that follows the blob as it is written.
    pub fn reader(self: &std::sync::Arc<Self>) -> io::Result<FollowReader> {
        let st = self.state.lock().expect("poisoned");
        let file = match &st.done {
            Some(Ok(())) => File::open(&self.final_path)?,
            Some(Err(e)) => return Err(io::Error::other(e.to_string())),
            None => File::open(&self.partial)?,
        };
        drop(st);
        Ok(FollowReader {
            file,
            pos: 0,
            download: self.clone(),
        })
    }
}

/// Reads a blob while it is being downloaded.
pub struct FollowReader {
    file: File,
    pos: u64,
    download: std::sync::Arc<Download>,
}

impl Read for FollowReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            {
                let mut st = self.download.state.lock().expect("poisoned");
                loop {
                    if let Some(Err(e)) = &st.done {
                        return Err(io::Error::other(e.to_string()));
                    }
                    if st.written > self.pos || st.done.is_some() {
                        break;
                    }
                    st = self.download.grown.wait(st).expect("poisoned");
                }
            }
            let n = self.file.read(buf)?;
            self.pos += n as u64;
            if n > 0 {
                return Ok(n);
            }
            if self.download.state.lock().expect("poisoned").done.is_some() {
                return Ok(0);
            }
        }
    }
}
