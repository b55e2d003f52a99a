//! The Containers service: requests into engine calls, streams relayed
//! between gRPC and the monitor, exec helper or log files.

use std::pin::Pin;
use std::sync::Arc;

use berth_api::v1::{self as pb, containers_server::Containers as ContainersRpc};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::convert::{filters, from_ts, ts};
use super::status::to_status;
use super::Agent;
use crate::error::Error;
use crate::runtime::session::{StdioInput, StdioOutput};
use crate::runtime::start::AttachWanted;
use crate::runtime::{LogOptions, Record};
use crate::util::chunks::written;

/// Containers over the agent.
pub struct ContainersApi(pub Arc<Agent>);

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The answer to a verb that acts on one container.
fn action(
    done: crate::error::Result<String>,
) -> Result<Response<pb::ContainerActionResponse>, Status> {
    let id = done.map_err(to_status)?;
    Ok(Response::new(pb::ContainerActionResponse { id }))
}

fn state(r: &Record) -> pb::ContainerState {
    pb::ContainerState {
        status: r.state.status.clone(),
        running: r.state.is_running(),
        paused: r.state.status == "paused",
        restarting: r.state.status == "restarting",
        oom_killed: r.state.oom_killed,
        dead: r.state.status == "dead",
        pid: r.state.pid,
        exit_code: r.state.exit_code,
        error: r.state.error.clone(),
        started_at: ts(r.state.started_at),
        finished_at: ts(r.state.finished_at),
        health: r.state.health.as_ref().map(super::convert::health),
    }
}

/// A published port as the API carries it.
pub fn port_binding(p: &crate::network::Published) -> pb::PortBinding {
    pb::PortBinding {
        host_ip: p.host_ip.clone(),
        host_port: p.host_port.into(),
        container_port: p.container_port.into(),
        protocol: p.protocol.clone(),
    }
}

/// Carries a client's session input into the engine's channel: `pick`
/// takes the input out of each message (None skips it).
fn stdio_input<T: Send + 'static>(
    mut incoming: Streaming<T>,
    pick: fn(T) -> Option<StdioInput>,
) -> mpsc::Receiver<StdioInput> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        while let Ok(Some(msg)) = incoming.message().await {
            if let Some(input) = pick(msg) {
                if tx.send(input).await.is_err() {
                    break;
                }
            }
        }
    });
    rx
}

fn size(s: &pb::TerminalSize) -> (u16, u16) {
    let clamp = |v: u32| v.min(u16::MAX as u32) as u16;
    (clamp(s.rows), clamp(s.cols))
}

#[tonic::async_trait]
impl ContainersRpc for ContainersApi {
    async fn create(
        &self,
        request: Request<pb::CreateContainerRequest>,
    ) -> Result<Response<pb::CreateContainerResponse>, Status> {
        let (id, warnings) = self
            .0
            .containers
            .create(super::convert::container_config(request.into_inner()))
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::CreateContainerResponse { id, warnings }))
    }

    async fn start(
        &self,
        request: Request<pb::ContainerRef>,
    ) -> Result<Response<pb::ContainerActionResponse>, Status> {
        let id = request.into_inner().id;
        self.0
            .containers
            .start(&id, None)
            .await
            .map_err(to_status)?;
        action(self.0.containers.find(&id).map(|e| e.record().id))
    }

    async fn stop(
        &self,
        request: Request<pb::StopContainerRequest>,
    ) -> Result<Response<pb::ContainerActionResponse>, Status> {
        let r = request.into_inner();
        let timeout = (r.timeout >= 0).then_some(r.timeout);
        action(
            self.0
                .containers
                .stop(&r.id, timeout, Some(&r.signal))
                .await,
        )
    }

    async fn kill(
        &self,
        request: Request<pb::KillContainerRequest>,
    ) -> Result<Response<pb::ContainerActionResponse>, Status> {
        let r = request.into_inner();
        action(self.0.containers.kill(&r.id, &r.signal).await)
    }

    async fn restart(
        &self,
        request: Request<pb::StopContainerRequest>,
    ) -> Result<Response<pb::ContainerActionResponse>, Status> {
        let r = request.into_inner();
        let timeout = (r.timeout >= 0).then_some(r.timeout);
        action(self.0.containers.restart(&r.id, timeout).await)
    }

    async fn pause(
        &self,
        request: Request<pb::ContainerRef>,
    ) -> Result<Response<pb::ContainerActionResponse>, Status> {
        action(
            self.0
                .containers
                .pause(&request.into_inner().id, true)
                .await,
        )
    }

    async fn unpause(
        &self,
        request: Request<pb::ContainerRef>,
    ) -> Result<Response<pb::ContainerActionResponse>, Status> {
        action(
            self.0
                .containers
                .pause(&request.into_inner().id, false)
                .await,
        )
    }

    async fn remove(
        &self,
        request: Request<pb::RemoveContainerRequest>,
    ) -> Result<Response<pb::ContainerActionResponse>, Status> {
        let r = request.into_inner();
        action(self.0.containers.remove(&r.id, r.force, r.volumes).await)
    }

    async fn rename(
        &self,
        request: Request<pb::RenameContainerRequest>,
    ) -> Result<Response<pb::ContainerActionResponse>, Status> {
        let r = request.into_inner();
        action(self.0.containers.rename(&r.id, &r.new_name).map(|()| r.id))
    }

    async fn wait(
        &self,
        request: Request<pb::WaitContainerRequest>,
    ) -> Result<Response<pb::WaitContainerResponse>, Status> {
        let r = request.into_inner();
        let code = self
            .0
            .containers
            .wait(&r.id, &r.condition)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::WaitContainerResponse {
            exit_code: code,
            error: String::new(),
        }))
    }

    async fn inspect(
        &self,
        request: Request<pb::ContainerRef>,
    ) -> Result<Response<pb::ContainerDetail>, Status> {
        let c = &self.0.containers;
        let r = c
            .find(&request.into_inner().id)
            .map_err(to_status)?
            .record();
        let json = serde_json::to_string_pretty(&c.inspect_json(&r)).unwrap_or_default();
        Ok(Response::new(pb::ContainerDetail {
            id: r.id.clone(),
            name: r.name.clone(),
            created: ts(Some(r.created)),
            image: r.image.clone(),
            image_id: r.image_id.clone(),
            args: r.args.clone(),
            path: r.path.clone(),
            state: Some(state(&r)),
            config: Some(super::convert::create_request(r.config.clone())),
            restart_count: r.restart_count,
            log_path: c.log_path(&r.id).display().to_string(),
            json,
            ..Default::default()
        }))
    }

    async fn list(
        &self,
        request: Request<pb::ListContainersRequest>,
    ) -> Result<Response<pb::ListContainersResponse>, Status> {
        let r = request.into_inner();
        let mut list = self
            .0
            .containers
            .list(r.all, &filters(r.filters))
            .map_err(to_status)?;
        if r.limit > 0 {
            list.truncate(r.limit as usize);
        }
        // As dockerd: the name a container was made from while it still
        // names the container's image, else the image's id (a name that
        // was removed or moved to another image). One lookup per name.
        let mut named: std::collections::HashMap<String, bool> = Default::default();
        let images = &self.0.images;
        let sizes = r.size;
        let containers = list
            .into_iter()
            .map(|s| {
                let mut r = s.record;
                let still = *named
                    .entry(format!("{}\n{}", r.image, r.image_id))
                    .or_insert_with(|| {
                        images
                            .find(&r.image)
                            .is_ok_and(|e| e.record.id == r.image_id)
                    });
                if !still {
                    r.image = r.image_id.clone();
                }
                // `ps -s`: the writable layer, and it over the image.
                let size_rw = sizes.then(|| self.0.containers.size_rw(&r.id));
                let size_root_fs =
                    size_rw.map(|rw| rw + images.find(&r.image_id).map_or(0, |e| e.record.size));
                // As dockerd writes it: arguments with a space in quotes.
                let cmd: Vec<String> = std::iter::once(r.path.clone())
                    .chain(r.args.iter().map(|a| match a.contains(' ') {
                        true => format!("'{a}'"),
                        false => a.clone(),
                    }))
                    .collect();
                pb::ContainerSummary {
                    id: r.id,
                    names: vec![format!("/{}", r.name)],
                    image: r.image,
                    image_id: r.image_id,
                    command: cmd.join(" "),
                    created: ts(Some(r.created)),
                    state: r.state.status.clone(),
                    status: s.status,
                    ports: r.state.ports.iter().map(port_binding).collect(),
                    health: r
                        .state
                        .health
                        .as_ref()
                        .map_or("none", |h| h.status.as_str())
                        .to_string(),
                    labels: r.config.labels,
                    mounts: r
                        .mounts
                        .iter()
                        .filter(|m| m.kind != "tmpfs")
                        .map(|m| match m.name.is_empty() {
                            true => m.source.display().to_string(),
                            false => m.name.clone(),
                        })
                        .collect(),
                    size_rw: size_rw.unwrap_or(0),
                    size_root_fs: size_root_fs.unwrap_or(0),
                }
            })
            .collect();
        Ok(Response::new(pb::ListContainersResponse { containers }))
    }

    async fn top(
        &self,
        request: Request<pb::TopRequest>,
    ) -> Result<Response<pb::TopResponse>, Status> {
        let r = request.into_inner();
        let t = self
            .0
            .containers
            .top(&r.id, &r.ps_args)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::TopResponse {
            titles: t.titles,
            processes: t
                .rows
                .into_iter()
                .map(|values| pb::StringList { values })
                .collect(),
        }))
    }

    type LogsStream = Stream_<pb::LogEntry>;

    async fn logs(
        &self,
        request: Request<pb::LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        let r = request.into_inner();
        let both = !r.stdout && !r.stderr;
        let opts = LogOptions {
            follow: r.follow,
            tail: (r.tail >= 0).then_some(r.tail as usize),
            since: from_ts(r.since),
            until: from_ts(r.until),
            stdout: r.stdout || both,
            stderr: r.stderr || both,
        };
        let lines = self.0.containers.logs(&r.id, opts).map_err(to_status)?;
        let out = ReceiverStream::new(lines).map(|l| {
            Ok(pb::LogEntry {
                stream: l.stream,
                data: l.log.into_bytes(),
                time: ts(Some(l.time)),
            })
        });
        Ok(Response::new(Box::pin(out)))
    }

    type AttachStream = Stream_<pb::AttachOutput>;

    async fn attach(
        &self,
        request: Request<Streaming<pb::AttachInput>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        use pb::attach_input::Input;
        use pb::attach_output::Output;
        let mut input = request.into_inner();
        let first = input.message().await?;
        let Some(pb::AttachInput {
            input: Some(Input::Start(start)),
        }) = first
        else {
            return Err(to_status(Error::InvalidArgument(
                "an attach stream must begin with the container to attach to".into(),
            )));
        };
        let wanted = AttachWanted {
            stdin: start.stdin,
            stdout: start.stdout,
            stderr: start.stderr,
        };
        let input = stdio_input(input, |m: pb::AttachInput| match m.input? {
            Input::Stdin(data) => Some(StdioInput::Stdin(data)),
            Input::Resize(s) => {
                let (rows, cols) = size(&s);
                Some(StdioInput::Resize { rows, cols })
            }
            Input::CloseStdin(_) => Some(StdioInput::CloseStdin),
            Input::Start(_) => None,
        });
        let rx = self
            .0
            .containers
            .attach_session(&start.id, wanted, start.start, input)
            .await
            .map_err(to_status)?;
        let out = ReceiverStream::new(rx).map(|o| {
            let output = match o {
                StdioOutput::Stdout(d) => Output::Stdout(d),
                StdioOutput::Stderr(d) => Output::Stderr(d),
                StdioOutput::Exit(c) => Output::ExitCode(c),
            };
            Ok(pb::AttachOutput {
                output: Some(output),
            })
        });
        Ok(Response::new(Box::pin(out)))
    }

    type ExecStream = Stream_<pb::ExecOutput>;

    async fn exec(
        &self,
        request: Request<Streaming<pb::ExecInput>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        use pb::exec_input::Input;
        use pb::exec_output::Output;
        let mut input = request.into_inner();
        let first = input.message().await?;
        let Some(pb::ExecInput {
            input: Some(Input::Start(start)),
        }) = first
        else {
            return Err(to_status(Error::InvalidArgument(
                "an exec stream must begin with what to run".into(),
            )));
        };
        let input = stdio_input(input, |m: pb::ExecInput| match m.input? {
            Input::Stdin(data) => Some(StdioInput::Stdin(data)),
            Input::Resize(s) => {
                let (rows, cols) = size(&s);
                Some(StdioInput::Resize { rows, cols })
            }
            Input::CloseStdin(_) => Some(StdioInput::CloseStdin),
            Input::Start(_) => None,
        });
        let (id, rx) = self
            .0
            .containers
            .exec_session(
                &super::convert::exec_options(&start),
                start.size.as_ref().map(size),
                input,
            )
            .await
            .map_err(to_status)?;
        let first = futures::stream::once(async move { Ok(Output::ExecId(id)) });
        let rest = ReceiverStream::new(rx).map(|o| {
            Ok(match o {
                StdioOutput::Stdout(d) => Output::Stdout(d),
                StdioOutput::Stderr(d) => Output::Stderr(d),
                StdioOutput::Exit(c) => Output::ExitCode(c),
            })
        });
        let out = first.chain(rest).map(|o: Result<Output, Status>| {
            o.map(|output| pb::ExecOutput {
                output: Some(output),
            })
        });
        Ok(Response::new(Box::pin(out)))
    }

    type StatsStream = Stream_<pb::StatsSample>;

    async fn stats(
        &self,
        request: Request<pb::StatsRequest>,
    ) -> Result<Response<Self::StatsStream>, Status> {
        let r = request.into_inner();
        let rx = self
            .0
            .containers
            .stats(&r.id, r.stream)
            .map_err(to_status)?;
        let out = ReceiverStream::new(rx).map(|s| {
            Ok(pb::StatsSample {
                id: s.id,
                name: s.name,
                time: Some(prost_types::Timestamp::from(s.time)),
                cpu_percent: s.cpu_percent,
                memory_usage: s.memory_usage,
                memory_limit: s.memory_limit,
                pids: s.pids,
                block_read: s.block_read,
                block_write: s.block_write,
                ..Default::default()
            })
        });
        Ok(Response::new(Box::pin(out)))
    }

    async fn commit(
        &self,
        request: Request<pb::CommitRequest>,
    ) -> Result<Response<pb::CommitResponse>, Status> {
        let r = request.into_inner();
        let image_id = self
            .0
            .containers
            .commit(
                &r.id,
                &r.reference,
                &r.author,
                &r.message,
                &r.changes,
                r.pause,
            )
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::CommitResponse { image_id }))
    }

    type ExportStream = Stream_<pb::DataChunk>;

    async fn export(
        &self,
        request: Request<pb::ContainerRef>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let c = self.0.containers.clone();
        let id = request.into_inner().id;
        c.find(&id).map_err(to_status)?;
        Ok(Response::new(super::chunk_stream(written(
            move |w| async move { c.export(&id, w).await },
        ))))
    }

    async fn diff(
        &self,
        request: Request<pb::ContainerRef>,
    ) -> Result<Response<pb::DiffResponse>, Status> {
        let changes = self
            .0
            .containers
            .changes(&request.into_inner().id)
            .map_err(to_status)?
            .into_iter()
            .map(|c| pb::DiffEntry {
                kind: c.kind.to_string(),
                path: c.path,
            })
            .collect();
        Ok(Response::new(pb::DiffResponse { changes }))
    }

    type CopyFromStream = Stream_<pb::DataChunk>;

    async fn copy_from(
        &self,
        request: Request<pb::CopyFromRequest>,
    ) -> Result<Response<Self::CopyFromStream>, Status> {
        let r = request.into_inner();
        let c = self.0.containers.clone();
        c.find(&r.id).map_err(to_status)?;
        Ok(Response::new(super::chunk_stream(written(
            move |w| async move { c.copy_from(&r.id, &r.path, r.follow_link, w).await },
        ))))
    }

    async fn copy_to(
        &self,
        request: Request<Streaming<pb::CopyToRequest>>,
    ) -> Result<Response<pb::CopyToResponse>, Status> {
        use pb::copy_to_request::Part;
        let mut incoming = request.into_inner();
        let target = match incoming.message().await? {
            Some(pb::CopyToRequest {
                part: Some(Part::Target(t)),
            }) => t,
            _ => {
                return Err(to_status(Error::InvalidArgument(
                    "a copy starts with its target: the container and the directory in it".into(),
                )))
            }
        };
        let c = &self.0.containers;
        let spool = c.scratch_file().map_err(to_status)?;
        super::spool_stream(&spool, &mut incoming, |m| match m.part {
            Some(Part::Data(d)) => Some(d),
            _ => None,
        })
        .await?;
        c.copy_to(
            &target.id,
            &target.path,
            target.copy_uid_gid,
            spool.path().to_path_buf(),
        )
        .await
        .map_err(to_status)?;
        Ok(Response::new(pb::CopyToResponse {}))
    }

    async fn prune(
        &self,
        _: Request<pb::PruneContainersRequest>,
    ) -> Result<Response<pb::PruneContainersResponse>, Status> {
        let (deleted, reclaimed) = self.0.containers.prune().await;
        Ok(Response::new(pb::PruneContainersResponse {
            deleted,
            space_reclaimed: reclaimed,
        }))
    }
}
