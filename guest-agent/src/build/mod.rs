//! `berth build`: images from Dockerfiles, in the engine itself — no
//! builder VM or daemon.
//!
//! `ast` is the parsed Dockerfile, `parse` reads one, `words` expands
//! build variables the way Docker does. [`Builder`] runs a build: the
//! context (a tar the client streams) is unpacked into a workspace
//! ([`context`]), the stages the target needs are built — independent
//! ones at the same time — ([`stage`]), each RUN in a container of the
//! engine's own runtime ([`run`]), each COPY/ADD through a container's
//! root filesystem ([`copy`]), metadata instructions into the config
//! ([`config`]). Every step's result is an image of its own, cached under
//! a key of its inputs (see [`crate::image::cache`]), so a rebuild of an
//! unchanged Dockerfile makes no container at all. A COPY/ADD layer that
//! is new is made with hard links to the unchanged files of the layer the
//! same instruction made last ([`donor`]).
//!
//! # What is left out
//! Checked against the parser (`parse/`), the executor and `berth build
//! --help`; each answers as said:
//! - `# syntax=` and `# check=` are accepted and ignored: the built-in
//!   dialect is always used and no build checks (lint warnings) run.
//! - Platforms: only the engine's own. `--platform` naming another (or a
//!   list) is refused before anything runs; `FROM --platform=…` is read
//!   but not checked (every stage is the engine's platform). The
//!   automatic platform ARGs (`BUILDPLATFORM`, `TARGETARCH`, …) are the
//!   engine's platform, as BuildKit defines them (FROM lines see them, a
//!   stage once it declares them).
//! - `RUN --mount=type=ssh`, `--mount=…,env=` (secrets as variables) and
//!   tmpfs `size=` are refused at parse time ("not supported by Berth").
//!   Cache mounts ignore `uid=`, `gid=`, `mode=` (the folder is root's,
//!   0755), `sharing=` (all are `shared`) and `from=`/`source=` (a cache
//!   starts empty); secret mounts ignore `uid=`/`gid=` (root owns the
//!   file; `mode=` is honoured).
//! - `RUN --network=` takes `default`, `none` or `host`; other values are
//!   refused at parse time. `RUN --security=…` and `RUN --device=…` are
//!   refused.
//! - `ADD` of a git repository (`git@…`, `git://…`, a `.git` URL) is
//!   refused; `ADD --checksum`, `--keep-git-dir`, `--unpack` and `COPY`/
//!   `ADD --parents`, `--exclude` are refused at parse time. An ADD of a
//!   URL gives the file the download's time, not `Last-Modified`.
//! - `COPY --link` is accepted without its semantics: the layer is made
//!   over the step's parent as any COPY, so it is not reused when an
//!   earlier step changes. `--chmod` takes octal modes only. `COPY --from`
//!   with a wildcard source is refused.
//! - Heredocs: `COPY <<EOF` bodies are written as they are, without
//!   expanding ARG/ENV variables (BuildKit expands them when the word is
//!   not quoted); RUN heredocs are expanded by the shell, as in BuildKit.
//! - The CLI has no BuildKit cache import/export (`--cache-from`,
//!   `--cache-to`), no `--output`/`-o`, `--push`, `--load`, `--ssh`,
//!   `--build-context`, `--add-host`, `--shm-size`, `--ulimit`,
//!   `--allow`, `--no-cache-filter`, `--call`/`--check`, attestations
//!   (`--sbom`, `--provenance`, `--attest`), `--annotation` or
//!   `--metadata-file`: each is refused as an unknown flag. The
//!   context is a directory (no tar on stdin, no URL or git context;
//!   `-f -` reads the Dockerfile from stdin). `--progress` takes
//!   BuildKit's values, and every one but `quiet` prints the plain
//!   format; `--rm`/`--force-rm` are accepted (intermediate containers
//!   are always removed).

pub mod ast;
mod config;
pub mod context;
mod copy;
mod donor;
mod from;
pub mod parse;
mod run;
mod stage;
pub mod words;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::image::ImageService;
use crate::runtime::Containers;

/// What to build and how (the `docker build` options that reach the
/// engine).
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Names for the image.
    pub tags: Vec<String>,
    /// The Dockerfile's path in the context ("Dockerfile" when empty).
    pub dockerfile: String,
    /// The Dockerfile itself, when it is not in the context.
    pub dockerfile_text: Option<String>,
    /// The Dockerfile's name in messages.
    pub dockerfile_name: String,
    /// `--build-arg`s.
    pub build_args: BTreeMap<String, String>,
    /// The stage to build; the last when empty.
    pub target: String,
    /// Ignore the cache.
    pub no_cache: bool,
    /// Pull base images even when stored.
    pub pull: bool,
    /// Labels added to the image.
    pub labels: BTreeMap<String, String>,
    /// The platform asked for; only the agent's own is built.
    pub platform: String,
    /// RUN steps' network: "default", "none" or "host".
    pub network: String,
    /// Secrets by id, for `RUN --mount=type=secret`.
    pub secrets: HashMap<String, Vec<u8>>,
}

/// One event of a build, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildEvent {
    /// A step started.
    Step {
        /// Its number (Docker's `#N`).
        vertex: u32,
        /// "[2/4] RUN make".
        name: String,
    },
    /// A line of a step's output.
    Output {
        /// The step.
        vertex: u32,
        /// The line.
        text: String,
        /// Seconds since the step started.
        seconds: f64,
    },
    /// A step finished.
    Done {
        /// The step.
        vertex: u32,
        /// Its result came from the cache.
        cached: bool,
        /// How long it took.
        seconds: f64,
    },
    /// A step failed.
    Failed {
        /// The step.
        vertex: u32,
        /// Why.
        message: String,
        /// A RUN's exit code (0 otherwise).
        exit_code: i32,
    },
}

/// Where build events go; a closed receiver means the client left, and
/// the build stops.
pub type EventTx = mpsc::UnboundedSender<BuildEvent>;

/// Runs builds.
pub struct Builder {
    images: Arc<ImageService>,
    containers: Arc<Containers>,
    /// `<agent root>/build`: workspaces and cache mounts.
    dir: PathBuf,
}

impl Builder {
    /// A builder over the engine's images and containers, keeping its
    /// files under `root/build`. Workspaces a crash left are removed.
    pub fn new(
        root: &std::path::Path,
        images: Arc<ImageService>,
        containers: Arc<Containers>,
    ) -> Arc<Self> {
        let dir = root.join("build");
        let _ = std::fs::remove_dir_all(dir.join("work"));
        donor::tidy(&dir, &images.snapshots);
        Arc::new(Builder {
            images,
            containers,
            dir,
        })
    }

    /// Builds: unpacks the context `chunks` bring, runs the Dockerfile's
    /// stages that the target needs, names the result. Returns the
    /// image's id. A build whose client goes away (its future dropped)
    /// leaves no container, mount or workspace behind.
    pub async fn build(
        self: &Arc<Self>,
        opts: BuildOptions,
        chunks: mpsc::Receiver<Vec<u8>>,
        tx: EventTx,
    ) -> Result<String> {
        let own = crate::image::manifest::Platform::host();
        if !opts.platform.is_empty() {
            let want = crate::image::manifest::Platform::parse(&opts.platform)?;
            if want.os != own.os || want.architecture != own.architecture {
                return Err(Error::InvalidArgument(format!(
                    "cannot build for {}: this engine builds for its own platform only ({}/{})",
                    opts.platform, own.os, own.architecture
                )));
            }
        }
        for tag in &opts.tags {
            crate::image::reference::ImageRef::parse(tag)
                .map_err(|e| Error::InvalidArgument(format!("invalid tag {tag:?}: {e}")))?;
        }
        let started = std::time::Instant::now();
        let work = context::Workspace::receive(&self.dir.join("work"), chunks).await?;
        tracing::info!("build: context received in {:?}", started.elapsed());
        let (name, text) = work.dockerfile(&opts)?;
        let file = parse::parse(&text).map_err(|e| {
            Error::InvalidArgument(format!(
                "dockerfile parse error on line {} ({name}:{}): {}",
                e.line, e.line, e.message
            ))
        })?;
        let plan = stage::Plan::new(&file, &opts, &name)?;
        let run = stage::Run {
            builder: self.clone(),
            opts: Arc::new(opts),
            work: Arc::new(work),
            file: Arc::new(file),
            plan: Arc::new(plan),
            tx,
            done: Default::default(),
            exit: Default::default(),
        };
        let id = run.build().await?;
        tracing::info!("build: done in {:?}", started.elapsed());
        let opts = &run.opts;
        for tag in &opts.tags {
            let key = crate::image::reference::ImageRef::parse(tag)?.key();
            self.images.meta.set_tag(&key, &id)?;
            self.images
                .events
                .emit("image", "tag", &id, &[("name", &key)]);
        }
        Ok(id)
    }
}
