//! The Containers service: requests into engine calls, streams relayed
//! between gRPC and the monitor, exec helper or log files.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_api::v1::{self as pb, containers_server::Containers as ContainersRpc};
use futures::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::status::to_status;
use super::Agent;
use crate::error::Error;
use crate::runtime::lifecycle::AttachWanted;
use crate::runtime::protocol;
use crate::runtime::{Containers, LogOptions, Record};
use crate::util::fdio::Fd;

/// Containers over the agent.
pub struct ContainersApi(pub Arc<Agent>);

type Stream_<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn ts(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<prost_types::Timestamp> {
    t.map(|t| prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    })
}

fn from_ts(t: Option<prost_types::Timestamp>) -> Option<chrono::DateTime<chrono::Utc>> {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
}

fn filters(f: HashMap<String, pb::StringList>) -> HashMap<String, Vec<String>> {
    f.into_iter().map(|(k, v)| (k, v.values)).collect()
}

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

/// Relays stdout/stderr frames from a monitor connection, then the exit
/// once the agent has recorded it.
async fn relay_attach(
    containers: Arc<Containers>,
    id: String,
    conn: tokio::net::UnixStream,
    mut input: Streaming<pb::AttachInput>,
    tx: mpsc::Sender<Result<pb::AttachOutput, Status>>,
) {
    use pb::attach_input::Input;
    use pb::attach_output::Output;
    let (mut read, mut write) = conn.into_split();
    let forward = tokio::spawn(async move {
        while let Ok(Some(msg)) = input.message().await {
            let frame = match msg.input {
                Some(Input::Stdin(data)) => (protocol::STDIN, data),
                Some(Input::Resize(s)) => (protocol::RESIZE, size_bytes(&s)),
                Some(Input::CloseStdin(_)) => (protocol::CLOSE_STDIN, Vec::new()),
                _ => continue,
            };
            if protocol::write_frame(&mut write, frame.0, &frame.1)
                .await
                .is_err()
            {
                break;
            }
        }
    });
    while let Ok(Some((kind, data))) = protocol::read_frame(&mut read).await {
        let out = match kind {
            protocol::STDOUT => Output::Stdout(data),
            protocol::STDERR => Output::Stderr(data),
            protocol::EXIT if data.len() == 4 => {
                Output::ExitCode(i32::from_be_bytes([data[0], data[1], data[2], data[3]]))
            }
            _ => continue,
        };
        let last = matches!(out, Output::ExitCode(_));
        if last {
            containers.exit_recorded(&id).await;
        }
        if tx
            .send(Ok(pb::AttachOutput { output: Some(out) }))
            .await
            .is_err()
            || last
        {
            break;
        }
    }
    forward.abort();
}

fn size_bytes(s: &pb::TerminalSize) -> Vec<u8> {
    let mut b = (s.rows.min(u16::MAX as u32) as u16).to_be_bytes().to_vec();
    b.extend_from_slice(&(s.cols.min(u16::MAX as u32) as u16).to_be_bytes());
    b
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
        let containers = list
            .into_iter()
            .map(|s| {
                let r = s.record;
                let cmd: Vec<String> = std::iter::once(r.path.clone())
                    .chain(r.args.clone())
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
                    labels: r.config.labels,
                    ..Default::default()
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
        let mut lines = self.0.containers.logs(&r.id, opts).map_err(to_status)?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            while let Some(l) = lines.recv().await {
                let entry = pb::LogEntry {
                    stream: l.stream,
                    data: l.log.into_bytes(),
                    time: ts(Some(l.time)),
                };
                if tx.send(Ok(entry)).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type AttachStream = Stream_<pb::AttachOutput>;

    async fn attach(
        &self,
        request: Request<Streaming<pb::AttachInput>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let mut input = request.into_inner();
        let first = input.message().await?;
        let Some(pb::AttachInput {
            input: Some(pb::attach_input::Input::Start(start)),
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
        let c = &self.0.containers;
        let id = c.find(&start.id).map_err(to_status)?.record().id;
        let conn = if start.start {
            c.start(&start.id, Some(wanted)).await.map_err(to_status)?
        } else {
            let r = c.find(&start.id).map_err(to_status)?.record();
            if !r.state.is_running() {
                return Err(to_status(Error::FailedPrecondition(format!(
                    "you cannot attach to a stopped container {}: start it first",
                    r.id
                ))));
            }
            Some(c.attach_conn(&r.id, wanted).await.map_err(to_status)?)
        };
        let conn = conn.ok_or_else(|| to_status(Error::Internal("no attach connection".into())))?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(relay_attach(c.clone(), id, conn, input, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
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
        let mut p = self
            .0
            .containers
            .exec(&super::convert::exec_options(&start))
            .await
            .map_err(to_status)?;
        let (tx, rx) = mpsc::channel(64);
        let _ = tx
            .send(Ok(pb::ExecOutput {
                output: Some(Output::ExecId(p.id.clone())),
            }))
            .await;
        if start.detach {
            tokio::spawn(async move {
                let _ = p.child.wait().await;
            });
            return Ok(Response::new(Box::pin(ReceiverStream::new(rx))));
        }
        let master = match p.master.take().map(Fd::new) {
            Some(Ok(m)) => Some(Arc::new(m)),
            Some(Err(e)) => return Err(to_status(Error::Internal(format!("exec terminal: {e}")))),
            None => None,
        };
        if let (Some(m), Some(size)) = (&master, &start.size) {
            let _ = crate::util::fdio::set_window_size(m.raw(), size.rows as u16, size.cols as u16);
        }
        // Input: stdin, resizes, end of input.
        let mut stdin = p.stdin.take();
        let input_master = master.clone();
        let forward = tokio::spawn(async move {
            while let Ok(Some(msg)) = input.message().await {
                match msg.input {
                    Some(Input::Stdin(data)) => {
                        if let Some(m) = &input_master {
                            let _ = m.write_all(&data).await;
                        } else if let Some(s) = stdin.as_mut() {
                            if s.write_all(&data).await.is_err() {
                                stdin = None;
                            }
                        }
                    }
                    Some(Input::Resize(s)) => {
                        if let Some(m) = &input_master {
                            let _ = crate::util::fdio::set_window_size(
                                m.raw(),
                                s.rows as u16,
                                s.cols as u16,
                            );
                        }
                    }
                    Some(Input::CloseStdin(_)) => {
                        if let Some(m) = &input_master {
                            let _ = m.write_all(&[4]).await;
                        }
                        stdin = None;
                    }
                    _ => {}
                }
            }
        });
        let mut readers = Vec::new();
        if let Some(m) = master {
            let tx = tx.clone();
            readers.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 32 << 10];
                while let Ok(n) = m.read(&mut buf).await {
                    if n == 0
                        || tx
                            .send(Ok(pb::ExecOutput {
                                output: Some(Output::Stdout(buf[..n].to_vec())),
                            }))
                            .await
                            .is_err()
                    {
                        break;
                    }
                }
            }));
        }
        for (reader, is_err) in [
            (
                p.stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
                false,
            ),
            (
                p.stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
                true,
            ),
        ] {
            if let Some(mut reader) = reader {
                let tx = tx.clone();
                readers.push(tokio::spawn(async move {
                    let mut buf = vec![0u8; 32 << 10];
                    while let Ok(n) = reader.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let data = buf[..n].to_vec();
                        let out = if is_err {
                            Output::Stderr(data)
                        } else {
                            Output::Stdout(data)
                        };
                        if tx
                            .send(Ok(pb::ExecOutput { output: Some(out) }))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                }));
            }
        }
        tokio::spawn(async move {
            let status = p.child.wait().await;
            for r in readers {
                let _ = tokio::time::timeout(Duration::from_secs(5), r).await;
            }
            forward.abort();
            let code = status.ok().and_then(|s| s.code()).unwrap_or(255);
            let _ = tx
                .send(Ok(pb::ExecOutput {
                    output: Some(Output::ExitCode(code)),
                }))
                .await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type StatsStream = Stream_<pb::StatsSample>;

    async fn stats(
        &self,
        request: Request<pb::StatsRequest>,
    ) -> Result<Response<Self::StatsStream>, Status> {
        let r = request.into_inner();
        let c = self.0.containers.clone();
        let entry = c.find(&r.id).map_err(to_status)?;
        let record = entry.record();
        if !record.state.is_running() {
            return Err(to_status(Error::FailedPrecondition(format!(
                "container {} is not running",
                record.id
            ))));
        }
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut prev: Option<(Instant, u64)> = None;
            loop {
                let record = entry.record();
                let Ok(s) = c.sample(&record.id) else { break };
                let now = Instant::now();
                let Some((then, cpu)) = prev else {
                    prev = Some((now, s.cpu_total_ns));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                };
                let wall = now.duration_since(then).as_nanos().max(1) as f64;
                let sample = pb::StatsSample {
                    id: record.id.clone(),
                    name: record.name.clone(),
                    time: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
                    cpu_percent: s.cpu_total_ns.saturating_sub(cpu) as f64 / wall * 100.0,
                    memory_usage: s.memory_usage,
                    memory_limit: s.memory_limit,
                    pids: s.pids,
                    block_read: s.block_read,
                    block_write: s.block_write,
                    ..Default::default()
                };
                prev = Some((now, s.cpu_total_ns));
                if tx.send(Ok(sample)).await.is_err() || !r.stream {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
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
        Ok(Response::new(super::stream_written(move |w| async move {
            c.export(&id, w).await
        })))
    }

    async fn diff(
        &self,
        request: Request<pb::ContainerRef>,
    ) -> Result<Response<pb::DiffResponse>, Status> {
        let changes = self
            .0
            .containers
            .diff(&request.into_inner().id)
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
        Ok(Response::new(super::stream_written(move |w| async move {
            c.copy_from(&r.id, &r.path, r.follow_link, w).await
        })))
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
        let c = &self.0.containers;
        let mut deleted = Vec::new();
        let mut reclaimed = 0;
        for e in c.all() {
            let r = e.record();
            if r.state.is_running() || r.state.status == "restarting" {
                continue;
            }
            reclaimed += dir_size(&c.dir_of(&r.id).join("upper"));
            if c.remove(&r.id, false, false).await.is_ok() {
                deleted.push(r.id);
            }
        }
        Ok(Response::new(pb::PruneContainersResponse {
            deleted,
            space_reclaimed: reclaimed,
        }))
    }
}

fn dir_size(path: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&p) {
            for e in rd.flatten() {
                if let Ok(m) = e.metadata() {
                    if m.is_dir() {
                        stack.push(e.path());
                    } else {
                        total += m.len();
                    }
                }
            }
        }
    }
    total
}
