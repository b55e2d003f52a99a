//! The gRPC layer: thin service implementations that turn requests into
//! engine calls and engine errors into statuses. Calls of services not
//! built yet answer UNIMPLEMENTED with a sentence naming what is missing.

pub mod containers;
pub mod convert;
pub mod files;
pub mod images;
pub mod networks;
pub mod ports;
pub mod status;
pub mod system;
pub mod volumes;

/// How much a DataChunk carries.
const CHUNK: usize = 256 * 1024;

/// A blocking writer that sends what it is given as DataChunk messages
/// (`flush` sends what it holds).
pub(crate) struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Result<berth_api::v1::DataChunk, tonic::Status>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    /// A writer sending on `tx`.
    pub(crate) fn new(
        tx: tokio::sync::mpsc::Sender<Result<berth_api::v1::DataChunk, tonic::Status>>,
    ) -> Self {
        ChunkWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    /// Sends what is held.
    pub(crate) fn flush_out(&mut self) -> crate::error::Result<()> {
        if !self.buf.is_empty() {
            let data = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
            self.tx
                .blocking_send(Ok(berth_api::v1::DataChunk { data }))
                .map_err(|_| crate::error::Error::Cancelled("the client stopped reading".into()))?;
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

/// Runs `work` (which writes a tar to the writer it is given) and streams
/// what it writes; its error, if any, ends the stream.
pub(crate) fn stream_written<F, Fut>(
    work: F,
) -> std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<berth_api::v1::DataChunk, tonic::Status>> + Send>,
>
where
    F: FnOnce(ChunkWriter) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = crate::error::Result<()>> + Send,
{
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let writer = ChunkWriter::new(tx.clone());
    tokio::spawn(async move {
        if let Err(e) = work(writer).await {
            let _ = tx.send(Err(status::to_status(e))).await;
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Writes the data of each message of `incoming` to `spool` (`data`
/// picks it out), finishing the file before it returns.
pub(crate) async fn spool_stream<T>(
    spool: &crate::image::archive::Spool,
    incoming: &mut tonic::Streaming<T>,
    data: impl Fn(T) -> Option<Vec<u8>>,
) -> Result<(), tonic::Status> {
    use tokio::io::AsyncWriteExt;
    let failed = |e: std::io::Error| {
        status::to_status(crate::error::Error::Internal(format!(
            "cannot spool the upload: {e}"
        )))
    };
    let mut file = tokio::fs::File::from_std(spool.reopen().map_err(failed)?);
    while let Some(msg) = incoming.message().await? {
        if let Some(d) = data(msg) {
            file.write_all(&d).await.map_err(failed)?;
        }
    }
    // tokio's File finishes its last write in the background: wait for it.
    file.flush().await.map_err(failed)
}

use std::sync::Arc;

use berth_api::v1::containers_server::ContainersServer;
use berth_api::v1::files_server::FilesServer;
use berth_api::v1::images_server::ImagesServer;
use berth_api::v1::networks_server::NetworksServer;
use berth_api::v1::ports_server::PortsServer;
use berth_api::v1::system_server::SystemServer;
use berth_api::v1::volumes_server::VolumesServer;
use tonic::service::Routes;

use crate::image::ImageService;
use crate::network::Networks;
use crate::runtime::Containers;
use crate::volume::Volumes;

/// Everything the services need.
pub struct Agent {
    /// The image engine.
    pub images: Arc<ImageService>,
    /// The container engine.
    pub containers: Arc<Containers>,
    /// The network engine.
    pub networks: Arc<Networks>,
    /// The volume engine.
    pub volumes: Arc<Volumes>,
    /// A random id for this agent's store.
    pub id: String,
}

/// The agent's routes: every built service plus the UNIMPLEMENTED fallback.
pub fn routes(agent: Arc<Agent>) -> Routes {
    let mut builder = Routes::builder();
    builder
        .add_service(SystemServer::new(system::SystemApi(agent.clone())))
        .add_service(ContainersServer::new(containers::ContainersApi(
            agent.clone(),
        )))
        .add_service(NetworksServer::new(networks::NetworksApi(agent.clone())))
        .add_service(PortsServer::new(ports::PortsApi(agent.clone())))
        .add_service(VolumesServer::new(volumes::VolumesApi(agent.clone())))
        .add_service(FilesServer::new(files::FilesApi(agent.clone())))
        .add_service(
            ImagesServer::new(images::ImagesApi(agent))
                .max_decoding_message_size(64 << 20)
                .max_encoding_message_size(64 << 20),
        );
    let router = builder.routes().into_axum_router();
    Routes::from(router.fallback(|req: axum::extract::Request| async move {
        status::not_built(req.uri().path()).into_http::<axum::body::Body>()
    }))
}
