//! The System service.

use std::pin::Pin;
use std::sync::Arc;

use berth_api::v1::{self as pb, system_server::System};
use futures::Stream;
use tonic::{Request, Response, Status};

use super::status::to_status;
use super::Agent;
use crate::events::Event;
use crate::image::registry::{check_login, Credentials};

/// System over the agent.
pub struct SystemApi(pub Arc<Agent>);

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn cgroup_version() -> &'static str {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    }
}

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
            kernel_version: kernel_release(),
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
        let mem = nix::sys::sysinfo::sysinfo()
            .map(|s| s.ram_total())
            .unwrap_or(0);
        Ok(Response::new(pb::InfoResponse {
            id: self.0.id.clone(),
            root_dir: self.0.images.root().display().to_string(),
            images,
            storage_driver: "overlayfs".into(),
            cgroup_version: cgroup_version().into(),
            kernel_version: kernel_release(),
            operating_system: std::fs::read_to_string("/etc/os-release")
                .ok()
                .and_then(|t| {
                    t.lines().find_map(|l| {
                        l.strip_prefix("PRETTY_NAME=")
                            .map(|v| v.trim_matches('"').to_string())
                    })
                })
                .unwrap_or_default(),
            os: std::env::consts::OS.into(),
            arch: crate::image::manifest::Platform::host().architecture,
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            memory_bytes: mem,
            server_version: env!("CARGO_PKG_VERSION").into(),
            insecure_registries: self.0.images.registries.insecure.clone(),
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            ..Default::default()
        }))
    }

    async fn disk_usage(
        &self,
        _: Request<pb::DiskUsageRequest>,
    ) -> Result<Response<pb::DiskUsageResponse>, Status> {
        let images = self.0.images.list().map_err(to_status)?;
        let (layers_size, blobs_size) = self.0.images.disk_usage().map_err(to_status)?;
        let mut chain_users: std::collections::HashMap<String, u32> = Default::default();
        for e in &images {
            for l in &e.record.layers {
                *chain_users.entry(l.chain_id.clone()).or_default() += 1;
            }
        }
        let usage = images
            .iter()
            .map(|e| {
                let mut shared = 0;
                for l in &e.record.layers {
                    if chain_users.get(&l.chain_id).copied().unwrap_or(0) > 1 {
                        shared += self
                            .0
                            .images
                            .snapshots
                            .info(&l.chain_id)
                            .map_or(0, |i| i.bytes);
                    }
                }
                pb::ImageUsage {
                    id: e.record.id.clone(),
                    repo_tags: e
                        .tags
                        .iter()
                        .map(|t| crate::image::reference::familiar(t))
                        .collect(),
                    size: e.record.size,
                    shared_size: shared,
                    unique_size: e.record.size.saturating_sub(shared),
                    containers: 0,
                }
            })
            .collect();
        Ok(Response::new(pb::DiskUsageResponse {
            images: usage,
            layers_size,
            blobs_size,
            ..Default::default()
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
        let (since, until) = (time(req.since), time(req.until));
        // As Docker: either bound replays the kept events (from the
        // oldest when only --until is given).
        let from = since.or(until.map(|_| std::time::UNIX_EPOCH));
        let (replay, mut rx) = self.0.images.events.subscribe(from);
        let filters = req.filters;
        let (tx, out) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let send = |ev: Event| {
                let tx = tx.clone();
                let wanted = event_wanted(&filters, &ev);
                async move {
                    if !wanted {
                        return true;
                    }
                    let event = pb::Event {
                        r#type: ev.kind.into(),
                        action: ev.action,
                        id: ev.id,
                        attributes: ev.attributes.into_iter().collect(),
                        time: Some(prost_types::Timestamp::from(ev.time)),
                    };
                    tx.send(Ok(event)).await.is_ok()
                }
            };
            let after_until = |t: std::time::SystemTime| until.is_some_and(|u| t > u);
            for ev in replay {
                if after_until(ev.time) || !send(ev).await {
                    return;
                }
            }
            let deadline = until.map(|u| {
                let left = u
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default();
                tokio::time::Instant::now() + left
            });
            loop {
                let next = match deadline {
                    Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                        Ok(r) => r,
                        Err(_) => return,
                    },
                    None => rx.recv().await,
                };
                match next {
                    Ok(ev) if after_until(ev.time) => return,
                    Ok(ev) => {
                        if !send(ev).await {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(out),
        )))
    }
}

/// True when `ev` passes the Docker-style filters (type, event, container).
fn event_wanted(filters: &std::collections::HashMap<String, pb::StringList>, ev: &Event) -> bool {
    let wanted = |key: &str, value: &str| {
        filters
            .get(key)
            .is_none_or(|l| l.values.iter().any(|v| v == value))
    };
    // As Docker: a container filter leaves out every event not of a
    // matching container.
    let container_wanted = filters.get("container").is_none_or(|l| {
        ev.kind == "container"
            && l.values
                .iter()
                .any(|v| ev.id.starts_with(v.as_str()) || ev.attributes.get("name") == Some(v))
    });
    wanted("type", ev.kind) && wanted_action(filters, &ev.action) && container_wanted
}

fn wanted_action(
    filters: &std::collections::HashMap<String, pb::StringList>,
    action: &str,
) -> bool {
    filters
        .get("event")
        .is_none_or(|l| l.values.iter().any(|v| v == action))
}
