//! Streams the client hands out, and uploads it sends: the plumbing every
//! streaming operation shares.

use std::pin::Pin;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::{Error, Result};

/// A stream of typed items from the agent; it ends when the operation
/// does, and yields an [`Error`] when it fails.
pub type Stream<T> = Pin<Box<dyn futures::Stream<Item = Result<T>> + Send>>;

/// Wraps a tonic stream: statuses become [`Error`]s, messages go through `f`.
pub(crate) fn typed<M, T>(s: tonic::Streaming<M>, f: fn(M) -> T) -> Stream<T>
where
    M: Send + 'static,
    T: Send + 'static,
{
    Box::pin(s.map(move |m| m.map(f).map_err(Error::from)))
}

/// A byte source for an upload: a file, stdin, a pipe, a tar being
/// written.
pub type Reader = Box<dyn AsyncRead + Unpin + Send>;

/// An upload in progress: the request stream, and the task reading the
/// source, which tells after the call whether the input could be read.
pub(crate) struct Upload<T> {
    pub stream: ReceiverStream<T>,
    pub reader: JoinHandle<std::io::Result<()>>,
}

/// Sends `first` (when given), then `input` in 1 MiB chunks wrapped by
/// `wrap`, read while the agent receives, so no upload is held in memory
/// whole.
pub(crate) fn upload<T: Send + 'static>(
    first: Option<T>,
    mut input: Reader,
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

/// An upload reader's outcome: an error when the source could not be read.
pub(crate) async fn finish(reader: JoinHandle<std::io::Result<()>>, what: &str) -> Result<()> {
    {
        match reader.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::io(format_args!("cannot read {what}"), e)),
            Err(e) => Err(Error::io(
                format_args!("cannot read {what}"),
                std::io::Error::other(e.to_string()),
            )),
        }
    }
}
