//! The gRPC layer: thin service implementations that turn requests into
//! engine calls and engine errors into statuses. Calls of services not
//! built yet answer UNIMPLEMENTED with a sentence naming what is missing.

pub mod build;
pub mod containers;
pub mod convert;
pub mod files;
pub mod images;
pub mod networks;
pub mod ports;
pub mod status;
pub mod system;
pub mod volumes;

/// Engine bytes as a stream of DataChunk messages; an error ends it.
pub(crate) fn chunk_stream(
    rx: tokio::sync::mpsc::Receiver<crate::util::chunks::Chunk>,
) -> std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<berth_api::v1::DataChunk, tonic::Status>> + Send>,
> {
    use futures::StreamExt;
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx).map(|c| {
        c.map(|data| berth_api::v1::DataChunk { data })
            .map_err(status::to_status)
    }))
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
    /// Dockerfile builds.
    pub builder: Arc<crate::build::Builder>,
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
