//! Bytes that engine work writes (a tar of a container, an image archive),
//! carried out in chunks over a channel, for whoever streams them on.

use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// How many bytes one chunk carries.
pub const CHUNK: usize = 256 * 1024;

/// What a stream of written bytes carries: chunks, or the error that
/// ended it.
pub type Chunk = Result<Vec<u8>>;

/// A blocking writer that sends what it holds once that is [`CHUNK`]
/// bytes or more (`flush` sends what it holds).
pub struct ChunkWriter {
    tx: mpsc::Sender<Chunk>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    /// A writer sending on `tx`.
    pub fn new(tx: mpsc::Sender<Chunk>) -> Self {
        ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    /// Sends what is held.
    pub fn flush_out(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
            self.tx
                .blocking_send(Ok(data))
                .map_err(|_| Error::Cancelled("the client stopped reading".into()))?;
        }
        Ok(())
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.flush_out()
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// Runs async `work` (which writes to the writer it is given) and returns
/// what it writes; its error, if any, ends the stream.
pub fn written<F, Fut>(work: F) -> mpsc::Receiver<Chunk>
where
    F: FnOnce(ChunkWriter) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let (tx, rx) = mpsc::channel(8);
    let writer = ChunkWriter::new(tx.clone());
    tokio::spawn(async move {
        if let Err(e) = work(writer).await {
            let _ = tx.send(Err(e)).await;
        }
    });
    rx
}

/// Runs blocking `work` on a blocking thread and returns what it writes;
/// its error, if any, ends the stream.
pub fn written_blocking<F>(work: F) -> mpsc::Receiver<Chunk>
where
    F: FnOnce(&mut ChunkWriter) -> Result<()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(8);
    tokio::task::spawn_blocking(move || {
        let mut writer = ChunkWriter::new(tx.clone());
        if let Err(e) = work(&mut writer).and_then(|()| writer.flush_out()) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[tokio::test]
    async fn written_bytes_arrive_in_chunks_then_the_error() {
        let mut rx = written_blocking(|w| {
            w.write_all(&vec![7u8; CHUNK + 10])
                .map_err(|e| Error::io("writing", e))?;
            Err(Error::DataLoss("broken".into()))
        });
        let mut sizes = Vec::new();
        let mut failed = None;
        while let Some(c) = rx.recv().await {
            match c {
                Ok(d) => sizes.push(d.len()),
                Err(e) => failed = Some(e),
            }
        }
        // A write that fills the buffer sends all it holds; the error ends
        // the stream (the 3 bytes held are not sent after a failure).
        assert_eq!(sizes, [CHUNK + 10]);
        assert_eq!(failed, Some(Error::DataLoss("broken".into())));
    }
}
