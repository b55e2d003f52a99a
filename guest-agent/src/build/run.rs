//! `RUN`: the command in a container of the engine's own runtime, its
//! output streamed as it comes, its changes stored as the step's layer.
//! Cache, secret, bind and tmpfs mounts are bind mounts of the container,
//! so what they hold never lands in the layer (mount points are left out
//! of a container's changes).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use super::ast::{Instruction, MountKind, Run as RunStep};
use super::stage::{args_key, key_of, Run, State};
use super::{config, BuildEvent};
use crate::error::{Error, Result};
use crate::runtime::config::{ContainerConfig, MountRequest};
use crate::runtime::{Containers, LogOptions};

/// Removes a step's container however the step ends (the build's future
/// may be dropped when its client goes away).
pub(super) struct Scratch {
    containers: Arc<Containers>,
    id: Option<String>,
}

impl Scratch {
    /// Watches container `id`.
    pub fn new(containers: Arc<Containers>, id: String) -> Scratch {
        Scratch {
            containers,
            id: Some(id),
        }
    }

    /// The container's id.
    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }

    /// Removes the container now, then hands back `outcome`: a step that
    /// failed returns only once its container is gone.
    pub async fn finish<T>(mut self, outcome: Result<T>) -> Result<T> {
        if let Some(id) = self.id.take() {
            remove_retrying(&self.containers, &id).await;
        }
        outcome
    }
}

/// Removes container `id`, trying again for a while when the removal
/// fails (the container still stopping).
async fn remove_retrying(containers: &Containers, id: &str) {
    for _ in 0..25 {
        match containers.remove(id, true, true).await {
            Ok(_) | Err(Error::NotFound(..)) => return,
            Err(e) => tracing::debug!("removing build step {id}: {e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    tracing::warn!("a build step's container {id} could not be removed");
}

impl Scratch {
    /// Creates a step's container. The create runs as a task of its own:
    /// a build dropped meanwhile (its client gone) still gets the
    /// container removed, never left half-made.
    pub async fn create(containers: &Arc<Containers>, cfg: ContainerConfig) -> Result<Scratch> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let c = containers.clone();
        tokio::spawn(async move {
            let made = c
                .create(cfg)
                .await
                .map(|(id, _)| Scratch::new(c.clone(), id));
            // Nobody waits any more: the Scratch sent back is dropped here,
            // which removes the container.
            let _ = tx.send(made);
        });
        rx.await
            .map_err(|_| Error::Internal("creating a build step's container crashed".into()))?
    }

    /// Starts the container, as a task of its own: a dropped build
    /// never leaves a start half-done (the removal waits for it).
    pub async fn start(&self) -> Result<()> {
        let (c, id) = (self.containers.clone(), self.id().to_string());
        tokio::spawn(async move { c.start(&id, None).await.map(|_| ()) })
            .await
            .map_err(|e| Error::Internal(format!("starting a build step crashed: {e}")))?
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            let containers = self.containers.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { remove_retrying(&containers, &id).await });
            }
        }
    }
}

/// A build step's container config over `image`.
pub(super) fn step_container(image: &str, config: &serde_json::Value) -> ContainerConfig {
    let c = &config["config"];
    ContainerConfig {
        image: image.to_string(),
        // Replaced for RUN; COPY's containers never start.
        cmd: vec!["/.berth-build-step".into()],
        entrypoint_set: true,
        env: config::env_of(config),
        working_dir: c["WorkingDir"].as_str().unwrap_or_default().to_string(),
        user: c["User"].as_str().unwrap_or_default().to_string(),
        network: "none".into(),
        labels: [("dev.berth.build".to_string(), "step".to_string())].into(),
        // A build step is never health-checked.
        healthcheck: Some(crate::runtime::config::HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Run {
    /// Runs a RUN step; true when the cache held its result.
    pub(super) async fn run(
        &self,
        state: &mut State,
        args: &BTreeMap<String, String>,
        ins: &Instruction,
        step: &RunStep,
        vertex: u32,
        started: Instant,
    ) -> Result<bool> {
        let network = step
            .network
            .clone()
            .unwrap_or_else(|| self.opts.network.clone());
        let network = match network.as_str() {
            "" | "default" | "bridge" => "",
            "none" => "none",
            "host" => "host",
            other => {
                return Err(Error::InvalidArgument(format!(
                    "network mode {other:?} is not supported in a build: use default, none or host"
                )))
            }
        };
        let mut mounts_key = String::new();
        for m in &step.mounts {
            if m.kind == MountKind::Bind && m.from.is_none() {
                let src = m.source.clone().unwrap_or_default();
                mounts_key.push_str(&self.hash_context(&src)?);
            }
        }
        let key = key_of(&[&state.key, &ins.text, &args_key(args), network, &mounts_key]);
        if let Some(hit) = self.lookup(&key)? {
            self.adopt(state, key, &hit.id)?;
            return Ok(true);
        }
        let Some(image) = state.image.clone() else {
            return Err(Error::InvalidArgument(
                "RUN needs a filesystem with a shell, and FROM scratch has none: copy one in first or start FROM an image".into(),
            ));
        };
        let mut argv = match &step.command {
            // `RUN cmd <<EOF`: the shell reads the heredocs after the line.
            super::ast::Command::Shell(line) if !line.is_empty() && !step.heredocs.is_empty() => {
                let mut script = line.clone();
                for h in &step.heredocs {
                    script.push('\n');
                    script.push_str(&h.body);
                    script.push_str(&h.name);
                }
                config::argv(&state.config, &super::ast::Command::Shell(script))
            }
            command => config::argv(&state.config, command),
        };
        let mut extra = Vec::new();
        if let Some(doc) = step
            .heredocs
            .first()
            .filter(|_| argv.last().is_some_and(|a| a.is_empty()))
        {
            // `RUN <<EOF` with a `#!` script: run the file.
            let file = self.work.dir().join(format!("heredoc-{vertex}"));
            write_file(&file, doc.body.as_bytes(), 0o755)?;
            extra.push(bind(&file.to_string_lossy(), "/dev/.berth-heredoc", true));
            argv = vec!["/dev/.berth-heredoc".into()];
        }
        let mut cfg = step_container(&image.id, &state.config);
        cfg.cmd = argv.clone();
        cfg.network = network.to_string();
        for (k, v) in args {
            if !cfg
                .env
                .iter()
                .any(|e| e.split_once('=').is_some_and(|(n, _)| n == k))
            {
                cfg.env.push(format!("{k}={v}"));
            }
        }
        cfg.mounts = self.run_mounts(step, vertex).await?;
        cfg.mounts.extend(extra);
        let containers = self.builder.containers.clone();
        let scratch = Scratch::create(&containers, cfg).await?;
        let outcome = self
            .run_in(&containers, &scratch, &argv, vertex, started)
            .await;
        let layer = scratch.finish(outcome).await?;
        let created_by = format!("RUN {} # buildkit", argv.join(" "));
        self.commit(state, key, layer, &created_by).await?;
        Ok(false)
    }

    /// Starts a step's container, streams its output, waits for it and
    /// stores its changes as a layer.
    async fn run_in(
        &self,
        containers: &Arc<Containers>,
        scratch: &Scratch,
        argv: &[String],
        vertex: u32,
        started: Instant,
    ) -> Result<crate::image::compose::NewLayer> {
        scratch.start().await?;
        let mut lines = containers.logs(
            scratch.id(),
            LogOptions {
                follow: true,
                stdout: true,
                stderr: true,
                ..Default::default()
            },
        )?;
        while let Some(line) = lines.recv().await {
            self.send(BuildEvent::Output {
                vertex,
                text: line.log.trim_end_matches('\n').to_string(),
                seconds: started.elapsed().as_secs_f64(),
            })?;
        }
        let code = containers.wait(scratch.id(), "not-running").await?;
        if code != 0 {
            self.set_exit(code);
            return Err(Error::FailedPrecondition(format!(
                "process \"{}\" did not complete successfully: exit code: {code}",
                argv.join(" ")
            )));
        }
        let record = containers.find(scratch.id())?.record();
        let (c, images) = (containers.clone(), self.builder.images.clone());
        tokio::task::spawn_blocking(move || images.store_layer(|w| c.changes_tar(&record, w)))
            .await
            .map_err(|e| Error::Internal(format!("storing the step's layer crashed: {e}")))?
    }

    /// The step's `--mount`s as container mounts.
    async fn run_mounts(&self, step: &RunStep, vertex: u32) -> Result<Vec<MountRequest>> {
        let mut out = Vec::new();
        for (n, m) in step.mounts.iter().enumerate() {
            match m.kind {
                MountKind::Cache => {
                    let id = m.id.clone().unwrap_or_else(|| m.target.clone());
                    let dir = self
                        .builder
                        .dir
                        .join("cache")
                        .join(&key_of(&["cache", &id])[7..]);
                    std::fs::create_dir_all(&dir)
                        .map_err(|e| Error::io("making a cache mount", e))?;
                    out.push(bind(&dir.to_string_lossy(), &m.target, m.read_only));
                }
                MountKind::Secret => {
                    let id = m.id.clone().unwrap_or_else(|| {
                        m.target.rsplit('/').next().unwrap_or_default().to_string()
                    });
                    let target = if m.target.is_empty() {
                        format!("/run/secrets/{id}")
                    } else {
                        m.target.clone()
                    };
                    match self.opts.secrets.get(&id) {
                        Some(data) => {
                            let file = self.work.dir().join(format!("secret-{vertex}-{n}"));
                            write_file(&file, data, m.mode.unwrap_or(0o400))?;
                            out.push(bind(&file.to_string_lossy(), &target, true));
                        }
                        None if m.required => {
                            return Err(Error::InvalidArgument(format!(
                                "secret {id} is required but was not given: pass it with --secret id={id},src=FILE"
                            )))
                        }
                        None => {}
                    }
                }
                MountKind::Tmpfs => out.push(MountRequest {
                    kind: "tmpfs".into(),
                    target: m.target.clone(),
                    ..Default::default()
                }),
                MountKind::Bind => {
                    let source = m.source.clone().unwrap_or_else(|| "/".into());
                    let dir = match &m.from {
                        None => self
                            .work
                            .extract(&source, &self.work.dir().join(format!("ctx-{vertex}-{n}")))?,
                        Some(from) => self.materialize(from, &source, vertex, n).await?,
                    };
                    out.push(bind(&dir.to_string_lossy(), &m.target, !m.read_write));
                }
            }
        }
        Ok(out)
    }
}

/// A bind mount request.
fn bind(source: &str, target: &str, read_only: bool) -> MountRequest {
    MountRequest {
        kind: "bind".into(),
        source: source.into(),
        target: target.into(),
        read_only,
        ..Default::default()
    }
}

/// Writes a file for a mount (secrets, heredoc scripts) with `mode`.
fn write_file(path: &std::path::Path, data: &[u8], mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| Error::io("writing a build file", e))?;
    std::io::Write::write_all(&mut f, data).map_err(|e| Error::io("writing a build file", e))
}
