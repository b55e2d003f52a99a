//! Containers: create (pulling the image when it is missing, as `docker
//! run` does), start, stop, restart, kill, pause, remove, rename, wait,
//! inspect (and health), list, top, prune, commit, export, diff, and
//! copying files in and out.

use berth_api::v1::{self as pb, containers_client::ContainersClient};
use tonic::transport::Channel;

use crate::error::{Error, Object, Result};
use crate::images::Progress;
use crate::stream::{self, Reader, Stream};
use crate::Client;

/// A created container.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Created {
    /// Its id.
    pub id: String,
    /// What the agent warns about (a limit the kernel cannot apply).
    pub warnings: Vec<String>,
}

/// What `wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// The container is not running (returns at once when it is not).
    NotRunning,
    /// The container's next exit.
    NextExit,
    /// The container is gone (`run --rm`).
    Removed,
}

impl WaitFor {
    fn as_str(self) -> &'static str {
        match self {
            WaitFor::NotRunning => "not-running",
            WaitFor::NextExit => "next-exit",
            WaitFor::Removed => "removed",
        }
    }
}

impl Client {
    pub(crate) async fn containers(&self) -> Result<ContainersClient<Channel>> {
        Ok(ContainersClient::new(self.channel().await?)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20))
    }

    /// Creates a container; fails with `NotFound(Image)` when its image is
    /// not stored.
    pub async fn create_container(&self, req: pb::CreateContainerRequest) -> Result<Created> {
        let r = self.containers().await?.create(req).await?.into_inner();
        Ok(Created {
            id: r.id,
            warnings: r.warnings,
        })
    }

    /// Creates a container as `docker run` and `docker create` do: when
    /// the image is missing it is pulled (its progress goes to
    /// `on_pull`, which is called first with `None` to say a pull starts),
    /// then the creation is tried again.
    pub async fn create_pulling(
        &self,
        req: pb::CreateContainerRequest,
        mut on_pull: impl FnMut(Option<&Progress>),
    ) -> Result<Created> {
        match self.create_container(req.clone()).await {
            Err(e) if e.is_not_found(Object::Image) => {
                on_pull(None);
                self.pull_watching(&req.image, &req.platform, |p| on_pull(Some(p)))
                    .await?;
                self.create_container(req).await
            }
            other => other,
        }
    }

    /// Starts a created or stopped container.
    pub async fn start_container(&self, id: &str) -> Result<()> {
        self.containers().await?.start(reference(id)).await?;
        Ok(())
    }

    /// Stops a container: its stop signal (or `signal`), then SIGKILL
    /// after `timeout` seconds (`None`: the container's own timeout).
    pub async fn stop_container(&self, id: &str, timeout: Option<i32>, signal: &str) -> Result<()> {
        let req = pb::StopContainerRequest {
            id: id.to_string(),
            timeout: timeout.unwrap_or(-2),
            signal: signal.to_string(),
        };
        self.containers().await?.stop(req).await?;
        Ok(())
    }

    /// Stops a container (as [`Client::stop_container`]) and starts it
    /// again.
    pub async fn restart_container(&self, id: &str, timeout: Option<i32>) -> Result<()> {
        let req = pb::StopContainerRequest {
            id: id.to_string(),
            timeout: timeout.unwrap_or(-2),
            signal: String::new(),
        };
        self.containers().await?.restart(req).await?;
        Ok(())
    }

    /// Sends a signal (a name such as `TERM` or a number) to a
    /// container's process.
    pub async fn kill_container(&self, id: &str, signal: &str) -> Result<()> {
        let req = pb::KillContainerRequest {
            id: id.to_string(),
            signal: signal.to_string(),
        };
        self.containers().await?.kill(req).await?;
        Ok(())
    }

    /// Freezes (`true`) or thaws (`false`) a container's processes.
    pub async fn pause_container(&self, id: &str, paused: bool) -> Result<()> {
        let mut c = self.containers().await?;
        if paused {
            c.pause(reference(id)).await?;
        } else {
            c.unpause(reference(id)).await?;
        }
        Ok(())
    }

    /// Removes a container (a running one only with `force`), and with
    /// `volumes` its anonymous volumes.
    pub async fn remove_container(&self, id: &str, force: bool, volumes: bool) -> Result<()> {
        let req = pb::RemoveContainerRequest {
            id: id.to_string(),
            force,
            volumes,
        };
        self.containers().await?.remove(req).await?;
        Ok(())
    }

    /// Renames a container.
    pub async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        let req = pb::RenameContainerRequest {
            id: id.to_string(),
            new_name: new_name.to_string(),
        };
        self.containers().await?.rename(req).await?;
        Ok(())
    }

    /// Waits for a container and returns its exit code.
    pub async fn wait_container(&self, id: &str, condition: WaitFor) -> Result<i32> {
        let req = pb::WaitContainerRequest {
            id: id.to_string(),
            condition: condition.as_str().to_string(),
        };
        Ok(self
            .containers()
            .await?
            .wait(req)
            .await?
            .into_inner()
            .exit_code)
    }

    /// One container in full (`json` holds Docker's inspect document).
    pub async fn inspect_container(&self, id: &str) -> Result<pb::ContainerDetail> {
        Ok(self
            .containers()
            .await?
            .inspect(reference(id))
            .await?
            .into_inner())
    }

    /// One container as `docker inspect` shows it.
    pub async fn inspect_container_json(&self, id: &str) -> Result<serde_json::Value> {
        let d = self.inspect_container(id).await?;
        serde_json::from_str(&d.json).map_err(|e| {
            Error::new(
                crate::ErrorKind::Internal,
                format!("the agent's inspect document for {id} is not JSON: {e}"),
            )
        })
    }

    /// A container's health (`None` when it has no health check): its
    /// status ("starting", "healthy", "unhealthy"), failing streak and last
    /// results.
    pub async fn container_health(&self, id: &str) -> Result<Option<pb::ContainerHealth>> {
        Ok(self
            .inspect_container(id)
            .await?
            .state
            .and_then(|s| s.health))
    }

    /// Lists containers.
    pub async fn list_containers(
        &self,
        req: pb::ListContainersRequest,
    ) -> Result<Vec<pb::ContainerSummary>> {
        Ok(self
            .containers()
            .await?
            .list(req)
            .await?
            .into_inner()
            .containers)
    }

    /// A container's processes, as `ps` shows them with `ps_args`.
    pub async fn top(&self, id: &str, ps_args: Vec<String>) -> Result<pb::TopResponse> {
        let req = pb::TopRequest {
            id: id.to_string(),
            ps_args,
        };
        Ok(self.containers().await?.top(req).await?.into_inner())
    }

    /// Removes stopped containers.
    pub async fn prune_containers(
        &self,
        req: pb::PruneContainersRequest,
    ) -> Result<pb::PruneContainersResponse> {
        Ok(self.containers().await?.prune(req).await?.into_inner())
    }

    /// Makes an image of a container's changes.
    pub async fn commit(&self, req: pb::CommitRequest) -> Result<pb::CommitResponse> {
        Ok(self.containers().await?.commit(req).await?.into_inner())
    }

    /// A container's filesystem as a tar, in chunks.
    pub async fn export_container(&self, id: &str) -> Result<Stream<Vec<u8>>> {
        let s = self
            .containers()
            .await?
            .export(reference(id))
            .await?
            .into_inner();
        Ok(stream::typed(s, |c: pb::DataChunk| c.data))
    }

    /// What changed in a container's filesystem against its image.
    pub async fn diff_container(&self, id: &str) -> Result<Vec<pb::DiffEntry>> {
        Ok(self
            .containers()
            .await?
            .diff(reference(id))
            .await?
            .into_inner()
            .changes)
    }

    /// A tar of `path` in a container (named by its last component), in
    /// chunks; `follow` archives what a symlink there points to.
    pub async fn copy_from(&self, id: &str, path: &str, follow: bool) -> Result<Stream<Vec<u8>>> {
        let req = pb::CopyFromRequest {
            id: id.to_string(),
            path: path.to_string(),
            follow_link: follow,
        };
        let s = self.containers().await?.copy_from(req).await?.into_inner();
        Ok(stream::typed(s, |c: pb::DataChunk| c.data))
    }

    /// Unpacks a tar read from `input` at `path` in a container; with
    /// `keep_owner` its files keep the tar's owners.
    pub async fn copy_to(
        &self,
        id: &str,
        path: &str,
        keep_owner: bool,
        input: Reader,
    ) -> Result<()> {
        use pb::copy_to_request::Part;
        let first = pb::CopyToRequest {
            part: Some(Part::Target(pb::CopyToTarget {
                id: id.to_string(),
                path: path.to_string(),
                copy_uid_gid: keep_owner,
            })),
        };
        let up = stream::upload(Some(first), input, |d| pb::CopyToRequest {
            part: Some(Part::Data(d)),
        });
        let done = self.containers().await?.copy_to(up.stream).await;
        stream::finish(up.reader, "what to copy").await?;
        done?;
        Ok(())
    }
}

impl Client {
    /// The mounts of another container, as `--volumes-from C[:ro|:rw]`
    /// gives them to a new one: its volumes and bind mounts at the same
    /// places, read-only with `:ro`, else as they are there (tmpfs mounts
    /// are the container's own and are not shared).
    pub async fn volumes_from(&self, spec: &str) -> Result<Vec<pb::Mount>> {
        let (id, mode) = match spec.rsplit_once(':') {
            Some((id, m @ ("ro" | "rw"))) => (id, Some(m)),
            Some(_) => {
                return Err(Error::new(
                    crate::ErrorKind::InvalidArgument,
                    format!("invalid --volumes-from {spec:?}: write CONTAINER, CONTAINER:ro or CONTAINER:rw"),
                ))
            }
            None => (spec, None),
        };
        let doc = self.inspect_container_json(id).await?;
        let mut out = Vec::new();
        for m in doc["Mounts"].as_array().into_iter().flatten() {
            let kind = m["Type"].as_str().unwrap_or_default();
            let source = match kind {
                "volume" => m["Name"].as_str().unwrap_or_default(),
                "bind" => m["Source"].as_str().unwrap_or_default(),
                _ => continue,
            };
            out.push(pb::Mount {
                r#type: kind.to_string(),
                source: source.to_string(),
                target: m["Destination"].as_str().unwrap_or_default().to_string(),
                read_only: match mode {
                    Some(m) => m == "ro",
                    None => !m["RW"].as_bool().unwrap_or(true),
                },
                ..Default::default()
            });
        }
        Ok(out)
    }
}

fn reference(id: &str) -> pb::ContainerRef {
    pb::ContainerRef { id: id.to_string() }
}
