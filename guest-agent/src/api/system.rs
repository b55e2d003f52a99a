//! The System service.

use std::pin::Pin;
use std::sync::Arc;

use berth_api::v1::{self as pb, system_server::System};
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::status::to_status;
use super::Agent;
use crate::events::Event;
use crate::image::registry::{check_login, Credentials};

/// System over the agent.
pub struct SystemApi(pub Arc<Agent>);

/// Converts API credentials to the engine's.
pub fn credentials(auth: Option<pb::RegistryAuth>) -> Credentials {
    let a = auth.unwrap_or_default();
    Credentials {
        username: a.username,
        password: a.password,
        token: if a.registry_token.is_empty() {
            a.identity_token
        } else {
            a.registry_token
        },
    }
}

#[tonic::async_trait]
impl System for SystemApi {
    async fn version(
        &self,
        _: Request<pb::VersionRequest>,
    ) -> Result<Response<pb::VersionResponse>, Status> {
        Ok(Response::new(pb::VersionResponse {
            version: env!("CARGO_PKG_VERSION").into(),
            api_version: berth_api::API_VERSION.into(),
            git_commit: option_env!("BERTH_GIT_COMMIT").unwrap_or("").into(),
            os: std::env::consts::OS.into(),
            arch: crate::image::manifest::Platform::host().architecture,
            kernel_version: crate::host::kernel_release(),
        }))
    }

    async fn ping(
        &self,
        _: Request<pb::PingRequest>,
    ) -> Result<Response<pb::PingResponse>, Status> {
        Ok(Response::new(pb::PingResponse {}))
    }

    async fn info(
        &self,
        _: Request<pb::InfoRequest>,
    ) -> Result<Response<pb::InfoResponse>, Status> {
        let images = self.0.images.list().map_err(to_status)?.len() as u64;
        let host = crate::host::info();
        let counts = self.0.containers.counts();
        Ok(Response::new(pb::InfoResponse {
            id: self.0.id.clone(),
            root_dir: self.0.images.root().display().to_string(),
            images,
            containers: counts.total,
            containers_running: counts.running,
            containers_paused: counts.paused,
            containers_stopped: counts.stopped,
            storage_driver: "overlayfs".into(),
            cgroup_version: host.cgroup_version,
            kernel_version: host.kernel_version,
            operating_system: host.operating_system,
            os: std::env::consts::OS.into(),
            arch: host.arch,
            cpus: host.cpus,
            memory_bytes: host.memory_bytes,
            server_version: env!("CARGO_PKG_VERSION").into(),
            insecure_registries: self.0.images.registries.insecure.clone(),
            hostname: host.hostname,
        }))
    }

    async fn disk_usage(
        &self,
        _: Request<pb::DiskUsageRequest>,
    ) -> Result<Response<pb::DiskUsageResponse>, Status> {
        let (layers_size, blobs_size) = self.0.images.disk_usage().map_err(to_status)?;
        let cache = self.0.images.cache_usage().map_err(to_status)?;
        let usage = self
            .0
            .images
            .usage()
            .map_err(to_status)?
            .into_iter()
            .map(|u| pb::ImageUsage {
                repo_tags: u.repo_tags,
                size: u.size,
                shared_size: u.shared_size,
                unique_size: u.unique_size,
                containers: self.0.images.user_count(&u.id),
                id: u.id,
            })
            .collect();
        let containers = self
            .0
            .containers
            .usage()
            .into_iter()
            .map(|c| pb::ContainerUsage {
                id: c.id,
                name: c.name,
                image: c.image,
                size_rw: c.size_rw,
                state: c.state,
            })
            .collect();
        let volumes = self
            .0
            .containers
            .volume_usage()
            .into_iter()
            .map(|v| pb::VolumeUsage {
                name: v.name,
                size: v.size,
                ref_count: v.ref_count,
            })
            .collect();
        Ok(Response::new(pb::DiskUsageResponse {
            images: usage,
            containers,
            volumes,
            layers_size,
            blobs_size,
            build_cache_count: cache.entries,
            build_cache_size: cache.bytes,
        }))
    }

    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let req = request.into_inner();
        let creds = credentials(req.auth);
        check_login(&self.0.images.registries, &req.server, &creds)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::LoginResponse {
            status: "Login Succeeded".into(),
        }))
    }

    type EventsStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

    async fn events(
        &self,
        request: Request<pb::EventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        let req = request.into_inner();
        let time = |t: Option<prost_types::Timestamp>| {
            t.and_then(|t| std::time::SystemTime::try_from(t).ok())
        };
        let filters = super::convert::filters(req.filters);
        let rx = self
            .0
            .images
            .events
            .stream(filters, time(req.since), time(req.until));
        let out = tokio_stream::wrappers::ReceiverStream::new(rx).map(|ev: Event| {
            Ok(pb::Event {
                r#type: ev.kind.into(),
                action: ev.action,
                id: ev.id,
                attributes: ev.attributes.into_iter().collect(),
                time: Some(prost_types::Timestamp::from(ev.time)),
            })
        });
        Ok(Response::new(Box::pin(out)))
    }
}
