//! Building images from a Dockerfile (`berth build`): the options, the
//! build context sent as a tar stream while the agent builds, the typed
//! [`BuildEvent`]s it streams back, and the build cache's prune.
//!
//! The context is walked and written as a tar on a blocking task and sent
//! in 256 KiB messages as it is written, so no context is held in memory
//! whole. It honours `.dockerignore` at the context's root, or
//! `<Dockerfile>.dockerignore` next to the Dockerfile when that exists (as
//! BuildKit does); the Dockerfile and the ignore file are always sent.
//! Entries keep their mode, owner, mtime and symlinks (never followed).
//! When every COPY, ADD and bind-mount source is a plain path or a simple
//! glob, no source is a symlink, and every base image is stored without
//! ONBUILD triggers, only what those sources can match is sent (see
//! [`Uses`]); anything else sends the whole context.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_api::v1::{self as pb, build_request::Part, images_client::ImagesClient};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::{Error, ErrorKind, Object, Result};
use crate::stream::Stream;
use crate::Client;

mod context;
mod uses;
pub use context::Context;
use context::Sender;
pub use uses::Uses;

/// The size of one context message.
const CHUNK: usize = 256 << 10;

/// How to build: `docker build`'s flags.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct BuildOptions {
    /// Names for the built image (`-t`).
    pub tags: Vec<String>,
    /// The Dockerfile (`-f`), relative to the current directory when not
    /// absolute; `None` is `Dockerfile` in the context.
    pub dockerfile: Option<PathBuf>,
    /// The Dockerfile's text itself (`-f -`); wins over `dockerfile`.
    pub dockerfile_text: Option<Vec<u8>>,
    /// `--build-arg NAME=VALUE`.
    pub build_args: BTreeMap<String, String>,
    /// The stage to build (`--target`); the last one when empty.
    pub target: String,
    /// Use no cached step (`--no-cache`).
    pub no_cache: bool,
    /// Pull every `FROM` image even when it is stored (`--pull`).
    pub pull: bool,
    /// Labels for the built image (`--label`).
    pub labels: BTreeMap<String, String>,
    /// `os/arch[/variant]` (`--platform`); empty is the agent's own.
    pub platform: String,
    /// `RUN`'s network (`--network`): `default`, `none` or `host`.
    pub network: String,
    /// Secrets by id (`--secret`), for `RUN --mount=type=secret`.
    pub secrets: BTreeMap<String, Secret>,
}

/// Where a secret's contents come from.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Secret {
    /// A file on the client's machine, read before the build starts.
    File(PathBuf),
    /// The contents themselves (from an environment variable, say).
    Bytes(Vec<u8>),
}

/// One event of a build, in order. Steps are numbered from 1 (Docker's
/// `#N`); each starts with [`BuildEvent::Step`], may have
/// [`BuildEvent::Output`], and ends with [`BuildEvent::Done`] or
/// [`BuildEvent::Failed`]. A successful build ends with
/// [`BuildEvent::Built`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BuildEvent {
    /// A step started: `name` is the agent's, e.g. `[2/4] RUN make`.
    Step {
        /// The step's number.
        vertex: u32,
        /// The step's name.
        name: String,
    },
    /// A line of a step's output.
    Output {
        /// The step's number.
        vertex: u32,
        /// The line, without its newline.
        text: String,
        /// Seconds since the step started.
        seconds: f64,
    },
    /// A step finished.
    Done {
        /// The step's number.
        vertex: u32,
        /// The cache held the step's result.
        cached: bool,
        /// How long the step took, in seconds.
        seconds: f64,
    },
    /// A step, or (with `vertex` 0) the build, failed.
    Failed {
        /// The step's number; 0 for the build as a whole.
        vertex: u32,
        /// The sentence to show.
        message: String,
        /// A `RUN`'s exit code (0 when not from a process).
        exit_code: i32,
    },
    /// The image is built: the last event.
    Built {
        /// The image's id (`sha256:…`).
        image_id: String,
    },
}

impl From<pb::BuildProgress> for BuildEvent {
    fn from(m: pb::BuildProgress) -> BuildEvent {
        let vertex = m.vertex;
        if !m.image_id.is_empty() {
            BuildEvent::Built {
                image_id: m.image_id,
            }
        } else if !m.error.is_empty() {
            BuildEvent::Failed {
                vertex,
                message: m.error,
                exit_code: m.exit_code,
            }
        } else if m.done {
            BuildEvent::Done {
                vertex,
                cached: m.cached,
                seconds: m.seconds,
            }
        } else if !m.step.is_empty() {
            BuildEvent::Step {
                vertex,
                name: m.step,
            }
        } else {
            BuildEvent::Output {
                vertex,
                text: m.output,
                seconds: m.seconds,
            }
        }
    }
}

/// The Dockerfile's place: its path in the context, or its text.
fn locate_dockerfile(
    root: &Path,
    opts: &BuildOptions,
) -> Result<(Option<String>, pb::BuildOptions)> {
    let mut o = pb::BuildOptions::default();
    if let Some(text) = &opts.dockerfile_text {
        o.dockerfile_text = text.clone();
        o.dockerfile_name = "Dockerfile".into();
        return Ok((None, o));
    }
    let given = opts
        .dockerfile
        .clone()
        .unwrap_or_else(|| root.join("Dockerfile"));
    let shown = opts
        .dockerfile
        .as_ref()
        .map_or("Dockerfile".into(), |p| p.display().to_string());
    let missing = |e: std::io::Error| {
        let why = if e.kind() == std::io::ErrorKind::NotFound {
            "no such file or directory".to_string()
        } else {
            e.to_string()
        };
        Error::new(
            ErrorKind::NotFound(Object::Other),
            format!("failed to read dockerfile: open {shown}: {why}"),
        )
    };
    let real = std::fs::canonicalize(&given).map_err(missing)?;
    if real.is_dir() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("failed to read dockerfile: {shown} is a directory"),
        ));
    }
    let root = std::fs::canonicalize(root).map_err(|e| Error::io("cannot open the context", e))?;
    match real.strip_prefix(&root).ok().and_then(|r| r.to_str()) {
        Some(rel) => {
            let rel = rel.replace(std::path::MAIN_SEPARATOR, "/");
            // Sent beside the context, so .dockerignore may exclude it.
            o.dockerfile_text = std::fs::read(&real).map_err(missing)?;
            o.dockerfile = rel.clone();
            o.dockerfile_name = Path::new(&rel)
                .file_name()
                .map_or(rel.clone(), |n| n.to_string_lossy().into());
            Ok((Some(rel), o))
        }
        None => {
            o.dockerfile_text = std::fs::read(&real).map_err(missing)?;
            o.dockerfile_name = real
                .file_name()
                .map_or("Dockerfile".into(), |n| n.to_string_lossy().into());
            Ok((None, o))
        }
    }
}

/// The request's options: everything but the context.
fn request_options(context_dir: &Path, opts: &BuildOptions) -> Result<(Context, pb::BuildOptions)> {
    if !context_dir.is_dir() {
        let why = if context_dir.exists() {
            "is not a directory"
        } else {
            "not found"
        };
        return Err(Error::new(
            ErrorKind::NotFound(Object::Other),
            format!(
                "unable to prepare context: path {:?} {why}",
                context_dir.display().to_string()
            ),
        ));
    }
    let (in_context, mut o) = locate_dockerfile(context_dir, opts)?;
    let context = Context::new(context_dir, in_context.as_deref())?;
    for (id, s) in &opts.secrets {
        let bytes = match s {
            Secret::Bytes(b) => b.clone(),
            Secret::File(p) => std::fs::read(p).map_err(|e| {
                Error::io(
                    format_args!("failed to read secret {id:?} from {}", p.display()),
                    e,
                )
            })?,
        };
        o.secrets.insert(id.clone(), bytes);
    }
    o.tags = opts.tags.clone();
    o.build_args = opts.build_args.clone().into_iter().collect();
    o.target = opts.target.clone();
    o.no_cache = opts.no_cache;
    o.pull = opts.pull;
    o.labels = opts.labels.clone().into_iter().collect();
    o.platform = opts.platform.clone();
    o.network = opts.network.clone();
    Ok((context, o))
}

impl Client {
    /// Builds an image from `context_dir`: the context is sent as a tar
    /// while the agent builds; the stream carries the build's events and
    /// ends with [`BuildEvent::Built`], or an error. A context that cannot
    /// be read fails the build with the reason.
    pub async fn build(
        &self,
        context_dir: &Path,
        opts: BuildOptions,
    ) -> Result<Stream<BuildEvent>> {
        let (mut context, options) = request_options(context_dir, &opts)?;
        if let Some(uses) = self.context_uses(&options).await {
            context = context.only(uses);
        }
        let (tx, rx) = mpsc::channel::<Option<pb::BuildRequest>>(4);
        let first = pb::BuildRequest {
            part: Some(Part::Options(options)),
        };
        tx.send(Some(first))
            .await
            .map_err(|_| Error::protocol("build"))?;
        let mut reader: JoinHandle<std::io::Result<()>> = tokio::task::spawn_blocking(move || {
            let mut out = Sender {
                tx: tx.clone(),
                buf: Vec::with_capacity(CHUNK),
            };
            let r = context.write_tar(&mut out);
            if r.is_err() {
                // The agent must not build a cut context: hold the
                // request open until the call is dropped.
                let _ = tx.blocking_send(None);
            }
            r
        });
        // `None` is the reader's failure: the request then never ends.
        let requests = ReceiverStream::new(rx).flat_map(|m| match m {
            Some(m) => futures::stream::once(async { m }).boxed(),
            None => futures::stream::pending().boxed(),
        });
        let mut images = ImagesClient::new(self.channel().await?)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(64 << 20);
        let call = images.build(requests);
        tokio::pin!(call);
        let mut reader_done = false;
        let response = loop {
            tokio::select! {
                r = &mut call => break r,
                r = &mut reader, if !reader_done => {
                    reader_done = true;
                    context_result(r)?;
                }
            }
        };
        let response = match response {
            Ok(r) => r.into_inner(),
            Err(status) => {
                if !reader_done {
                    if let Ok(r) =
                        tokio::time::timeout(std::time::Duration::from_secs(2), &mut reader).await
                    {
                        context_result(r)?;
                    }
                }
                return Err(status.into());
            }
        };
        let reader = (!reader_done).then_some(reader);
        Ok(Box::pin(futures::stream::unfold(
            Some((response, reader)),
            |state| async move {
                let (mut response, mut reader) = state?;
                loop {
                    let item = tokio::select! {
                        r = async { reader.as_mut().expect("reader").await }, if reader.is_some() => {
                            reader = None;
                            match context_result(r) {
                                Ok(()) => continue,
                                Err(e) => return Some((Err(e), None)),
                            }
                        }
                        m = response.next() => m,
                    };
                    return match item {
                        Some(Ok(m)) => Some((Ok(BuildEvent::from(m)), Some((response, reader)))),
                        Some(Err(status)) => {
                            if let Some(r) = reader.as_mut() {
                                if let Ok(r) =
                                    tokio::time::timeout(std::time::Duration::from_secs(2), r).await
                                {
                                    if let Err(e) = context_result(r) {
                                        return Some((Err(e), None));
                                    }
                                }
                            }
                            Some((Err(status.into()), None))
                        }
                        None => None,
                    };
                }
            },
        )))
    }

    /// Removes the build cache (`all`: every entry, not only unused ones);
    /// returns the removed entries' ids and the bytes freed.
    pub async fn prune_build_cache(&self, all: bool) -> Result<(Vec<String>, u64)> {
        let r = ImagesClient::new(self.channel().await?)
            .prune_build_cache(pb::PruneBuildCacheRequest { all })
            .await?
            .into_inner();
        Ok((r.deleted, r.space_reclaimed))
    }
}

/// The context reader's outcome as the build's error.
fn context_result(
    r: std::result::Result<std::io::Result<()>, tokio::task::JoinError>,
) -> Result<()> {
    match r {
        Ok(Ok(())) => Ok(()),
        // The call ended first; the agent's answer says why.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Ok(Err(e)) => Err(Error::io("error from sender", e)),
        Err(e) => Err(Error::new(
            ErrorKind::Internal,
            format!("error from sender: {e}"),
        )),
    }
}

/// A tag for `-t` checked and written in full, as Docker names it:
/// `app` is `docker.io/library/app:latest`. The error is Docker's:
/// `invalid reference format` (with why, when the name has capitals).
pub fn normalize_tag(tag: &str) -> Result<String> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("invalid reference format{why}"),
        )
    };
    if tag.is_empty() || tag.len() > 255 || tag.contains('@') {
        return Err(bad(""));
    }
    let last = tag.rfind('/').map_or(0, |i| i + 1);
    let (name, t) = match tag[last..].rfind(':') {
        Some(i) => (&tag[..last + i], &tag[last + i + 1..]),
        None => (tag, "latest"),
    };
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let tb = t.as_bytes();
    if tb.is_empty()
        || tb.len() > 128
        || !word(tb[0])
        || !tb.iter().all(|&c| word(c) || c == b'.' || c == b'-')
    {
        return Err(bad(""));
    }
    let (registry, remote) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            let host_ok = first
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b".-:[]".contains(&c));
            if !host_ok || first.starts_with([':', '.', '-']) || first.ends_with(':') {
                return Err(bad(""));
            }
            (first, rest.to_string())
        }
        _ if !name.contains('/') => ("docker.io", format!("library/{name}")),
        _ => ("docker.io", name.to_string()),
    };
    if !remote.split('/').all(component_ok) {
        if remote.to_lowercase().split('/').all(component_ok) {
            return Err(bad(&format!(
                ": repository name ({remote}) must be lowercase"
            )));
        }
        return Err(bad(""));
    }
    Ok(format!("{registry}/{remote}:{t}"))
}

/// A repository path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn component_ok(c: &str) -> bool {
    let alnum = |x: char| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !c.starts_with(alnum) || !c.ends_with(alnum) {
        return false;
    }
    c.split(alnum).all(|sep| {
        sep.is_empty() || sep == "." || sep == "_" || sep == "__" || sep.chars().all(|x| x == '-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_context_and_dockerfile_say_so_as_docker_does() {
        let e = request_options(Path::new("/no/such/dir"), &BuildOptions::default()).unwrap_err();
        assert_eq!(
            e.message(),
            "unable to prepare context: path \"/no/such/dir\" not found"
        );
        let d = tempfile::tempdir().unwrap();
        let e = request_options(d.path(), &BuildOptions::default()).unwrap_err();
        assert_eq!(
            e.message(),
            "failed to read dockerfile: open Dockerfile: no such file or directory"
        );
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(outside.path(), "FROM scratch\n").unwrap();
        let opts = BuildOptions {
            dockerfile: Some(outside.path().into()),
            ..Default::default()
        };
        let (_, o) = request_options(d.path(), &opts).unwrap();
        assert_eq!(
            (o.dockerfile.as_str(), &o.dockerfile_text[..]),
            ("", &b"FROM scratch\n"[..])
        );
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/App.Dockerfile"), "FROM scratch\n").unwrap();
        let opts = BuildOptions {
            dockerfile: Some(d.path().join("sub/App.Dockerfile")),
            ..Default::default()
        };
        let (_, o) = request_options(d.path(), &opts).unwrap();
        assert_eq!(
            (o.dockerfile.as_str(), o.dockerfile_text.len()),
            ("sub/App.Dockerfile", 13),
            "a Dockerfile in the context travels beside it too, so .dockerignore may exclude it"
        );
    }

    #[test]
    fn tags_are_checked_and_named_in_full() {
        assert_eq!(
            normalize_tag("app").unwrap(),
            "docker.io/library/app:latest"
        );
        assert_eq!(normalize_tag("me/app:v1").unwrap(), "docker.io/me/app:v1");
        assert_eq!(
            normalize_tag("localhost:5000/a/b:2").unwrap(),
            "localhost:5000/a/b:2"
        );
        assert_eq!(
            normalize_tag("Bad").unwrap_err().message(),
            "invalid reference format: repository name (library/Bad) must be lowercase"
        );
        for bad in ["", "a b", "app:", "app:-x", "-app", "app@sha256:00"] {
            assert_eq!(
                normalize_tag(bad).unwrap_err().message(),
                "invalid reference format",
                "{bad}"
            );
        }
    }

    #[test]
    fn events_come_from_progress_messages() {
        let m = |f: fn(&mut pb::BuildProgress)| {
            let mut p = pb::BuildProgress {
                vertex: 2,
                ..Default::default()
            };
            f(&mut p);
            BuildEvent::from(p)
        };
        assert_eq!(
            m(|p| p.step = "[1/2] FROM x".into()),
            BuildEvent::Step {
                vertex: 2,
                name: "[1/2] FROM x".into()
            }
        );
        assert_eq!(
            m(|p| p.output = "hi".into()),
            BuildEvent::Output {
                vertex: 2,
                text: "hi".into(),
                seconds: 0.0
            }
        );
        assert_eq!(
            m(|p| {
                p.done = true;
                p.cached = true
            }),
            BuildEvent::Done {
                vertex: 2,
                cached: true,
                seconds: 0.0
            }
        );
        assert_eq!(
            m(|p| {
                p.error = "boom".into();
                p.exit_code = 3
            }),
            BuildEvent::Failed {
                vertex: 2,
                message: "boom".into(),
                exit_code: 3
            }
        );
        assert_eq!(
            m(|p| p.image_id = "sha256:1".into()),
            BuildEvent::Built {
                image_id: "sha256:1".into()
            }
        );
    }
}
