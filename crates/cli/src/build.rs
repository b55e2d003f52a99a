//! `berth build` and `berth builder prune`: Docker's flags, and BuildKit's
//! plain progress on stderr (`#N [stage i/n] STEP`, `#N 0.253 output`,
//! `#N DONE 0.4s`, `#N CACHED`, `#N ERROR: …`), the image id on stdout
//! with `-q`. A failed build ends with `ERROR: failed to solve: …` and
//! exit code 1, as `docker build` does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Result};
use berth_client::build::normalize_tag;
use berth_client::{BuildEvent, BuildOptions, Secret};
use clap::{Args, Subcommand};
use futures::StreamExt;

use crate::{format, Conn, Exit};

/// `berth build`.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The build context: a directory.
    pub path: PathBuf,
    /// Name and optionally a tag (format: "name:tag").
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (default: "PATH/Dockerfile"; "-" reads it from stdin).
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Set build-time variables (NAME alone takes the value from the environment).
    #[arg(long = "build-arg", value_name = "NAME[=VALUE]")]
    pub build_args: Vec<String>,
    /// Set metadata for an image.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Set the target build stage to build.
    #[arg(long)]
    pub target: Option<String>,
    /// Do not use cache when building the image.
    #[arg(long)]
    pub no_cache: bool,
    /// Always attempt to pull all referenced images.
    #[arg(long)]
    pub pull: bool,
    /// Suppress the build output and print image ID on success.
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image ID to the file.
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Set the networking mode for the RUN instructions during build ("default", "none", "host").
    #[arg(long)]
    pub network: Option<String>,
    /// Secret to expose to the build (format: "id=mysecret[,src=/local/secret]" or "id=KEY,env=VAR").
    #[arg(long = "secret", value_name = "id=ID,src=FILE")]
    pub secrets: Vec<String>,
    /// Set target platform for build.
    #[arg(long)]
    pub platform: Option<String>,
    /// Set type of progress output ("auto", "plain", "tty", "quiet", "rawjson").
    #[arg(long, default_value = "auto", value_parser = ["auto", "plain", "tty", "quiet", "rawjson"])]
    pub progress: String,
    /// Remove intermediate containers after a successful build (always done).
    #[arg(long, default_value_t = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Set)]
    pub rm: bool,
    /// Always remove intermediate containers (always done).
    #[arg(long)]
    pub force_rm: bool,
}

/// `berth builder …`.
#[derive(Subcommand, Debug)]
pub enum BuilderCommand {
    /// Remove build cache.
    Prune(PruneArgs),
}

/// `berth builder prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused build cache, not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// Runs `berth build`; a failure is printed here as BuildKit prints it
/// and ends with exit code 1.
pub async fn build(conn: &Conn, a: BuildArgs) -> Result<()> {
    match run(conn, a).await {
        Ok(()) => Ok(()),
        Err(e) if e.is::<Exit>() => Err(e),
        Err(e) => {
            eprintln!("ERROR: {e:#}");
            Err(Exit(1).into())
        }
    }
}

async fn run(conn: &Conn, a: BuildArgs) -> Result<()> {
    let quiet = a.quiet || a.progress == "quiet";
    let mut names = Vec::new();
    for t in &a.tags {
        match normalize_tag(t) {
            Ok(n) => names.push(n),
            Err(e) => bail!("invalid tag {t:?}: {e}"),
        }
    }
    let opts = options(&a)?;
    let mut stream = conn.build(&a.path, opts).await?;
    let mut show = Plain::new(quiet);
    let mut failure: Option<String> = None;
    let mut image_id = None;
    while let Some(ev) = stream.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                failure.get_or_insert_with(|| e.message().to_string());
                break;
            }
        };
        match ev {
            BuildEvent::Failed {
                vertex, message, ..
            } => {
                show.failed(vertex, &message);
                failure.get_or_insert(message);
            }
            BuildEvent::Built { image_id: id } => image_id = Some(id),
            ev => show.event(ev),
        }
    }
    if let Some(message) = failure {
        eprintln!("ERROR: failed to solve: {message}");
        return Err(Exit(1).into());
    }
    let Some(id) = image_id else {
        bail!("failed to solve: the Berth agent ended the build without an image");
    };
    show.exported(&id, &names);
    if quiet {
        println!("{id}");
    }
    if let Some(path) = &a.iidfile {
        std::fs::write(path, &id)
            .map_err(|e| anyhow::anyhow!("failed to write image ID to {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The client's options from the flags.
fn options(a: &BuildArgs) -> Result<BuildOptions> {
    let mut o = BuildOptions {
        tags: a.tags.clone(),
        target: a.target.clone().unwrap_or_default(),
        no_cache: a.no_cache,
        pull: a.pull,
        platform: a.platform.clone().unwrap_or_default(),
        network: a.network.clone().unwrap_or_default(),
        labels: format::pairs(&a.labels).into_iter().collect(),
        ..Default::default()
    };
    for arg in &a.build_args {
        match arg.split_once('=') {
            Some((k, v)) => {
                o.build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(arg) {
                    o.build_args.insert(arg.clone(), v);
                }
            }
        }
    }
    match a.file.as_deref() {
        Some(p) if p.as_os_str() == "-" => {
            let mut text = Vec::new();
            std::io::stdin().read_to_end(&mut text)?;
            o.dockerfile_text = Some(text);
        }
        Some(p) => o.dockerfile = Some(p.to_path_buf()),
        None => {}
    }
    for s in &a.secrets {
        let (id, secret) = secret(s)?;
        o.secrets.insert(id, secret);
    }
    Ok(o)
}

/// One `--secret`: `id=ID[,src=FILE|,env=VAR][,type=file|env]`. Without a
/// source, the environment variable named ID when it is set, else the
/// file named ID.
fn secret(spec: &str) -> Result<(String, Secret)> {
    let mut f: BTreeMap<&str, &str> = BTreeMap::new();
    for field in spec.split(',') {
        let Some((k, v)) = field.split_once('=') else {
            bail!("invalid secret {spec:?}: {field:?} is not KEY=VALUE");
        };
        let k = match k.trim() {
            "source" => "src",
            k => k,
        };
        if !matches!(k, "id" | "src" | "env" | "type" | "required") {
            bail!("invalid secret {spec:?}: unexpected key {k:?}");
        }
        f.insert(k, v);
    }
    let src = f.get("src").copied();
    let env = f.get("env").copied();
    let id = match (f.get("id"), src, env) {
        (Some(id), _, _) => id.to_string(),
        (None, Some(src), _) => std::path::Path::new(src)
            .file_name()
            .map_or(src.to_string(), |n| n.to_string_lossy().into()),
        (None, None, Some(env)) => env.to_string(),
        (None, None, None) => bail!("invalid secret {spec:?}: it needs an id"),
    };
    let from_env = |var: &str| {
        std::env::var_os(var)
            .map(|v| Secret::Bytes(v.into_encoded_bytes()))
            .ok_or_else(|| {
                anyhow::anyhow!("secret {id:?}: the environment variable {var} is not set")
            })
    };
    let s = match (f.get("type").copied(), src, env) {
        (Some("env"), s, e) => from_env(e.or(s).unwrap_or(&id))?,
        (_, Some(src), _) => Secret::File(src.into()),
        (_, None, Some(env)) => from_env(env)?,
        (Some("file"), None, None) => Secret::File(id.clone().into()),
        (None, None, None) => match std::env::var_os(&id) {
            Some(v) => Secret::Bytes(v.into_encoded_bytes()),
            None => Secret::File(id.clone().into()),
        },
        (Some(t), _, _) => bail!("invalid secret {spec:?}: unsupported type {t:?}"),
    };
    Ok((id, s))
}

/// BuildKit's plain progress, on stderr.
struct Plain {
    quiet: bool,
    names: HashMap<u32, String>,
    /// Each step's last output lines, shown again when it fails.
    tails: HashMap<u32, VecDeque<String>>,
    last_vertex: u32,
}

impl Plain {
    fn new(quiet: bool) -> Plain {
        Plain {
            quiet,
            names: HashMap::new(),
            tails: HashMap::new(),
            last_vertex: 0,
        }
    }

    fn event(&mut self, ev: BuildEvent) {
        let v = match &ev {
            BuildEvent::Step { vertex, .. }
            | BuildEvent::Output { vertex, .. }
            | BuildEvent::Done { vertex, .. }
            | BuildEvent::Failed { vertex, .. } => *vertex,
            BuildEvent::Built { .. } => 0,
        };
        self.last_vertex = self.last_vertex.max(v);
        match ev {
            BuildEvent::Step { vertex, name } => {
                self.line(format!("#{vertex} {name}"));
                self.names.insert(vertex, name);
            }
            BuildEvent::Output {
                vertex,
                text,
                seconds,
            } => {
                let line = format!("{seconds:.3} {text}");
                let tail = self.tails.entry(vertex).or_default();
                if tail.len() == 10 {
                    tail.pop_front();
                }
                tail.push_back(line.clone());
                self.line(format!("#{vertex} {line}"));
            }
            BuildEvent::Done {
                vertex,
                cached: true,
                ..
            } => self.line(format!("#{vertex} CACHED\n")),
            BuildEvent::Done {
                vertex, seconds, ..
            } => self.line(format!("#{vertex} DONE {seconds:.1}s\n")),
            BuildEvent::Failed { .. } | BuildEvent::Built { .. } => {}
        }
    }

    /// A failed step: its error, then (as BuildKit does) its name and
    /// last output lines in a box.
    fn failed(&mut self, vertex: u32, message: &str) {
        if vertex == 0 {
            return;
        }
        self.line(format!("#{vertex} ERROR: {message}"));
        if let Some(name) = self.names.get(&vertex) {
            let mut boxed = format!("------\n > {name}:\n");
            for l in self.tails.get(&vertex).into_iter().flatten() {
                boxed.push_str(l);
                boxed.push('\n');
            }
            boxed.push_str("------");
            eprintln!("{boxed}");
        }
    }

    /// The export step after the last of the agent's.
    fn exported(&mut self, id: &str, names: &[String]) {
        let n = self.last_vertex + 1;
        self.line(format!("#{n} exporting to image"));
        self.line(format!("#{n} writing image {id} done"));
        for name in names {
            self.line(format!("#{n} naming to {name} done"));
        }
        self.line(format!("#{n} DONE 0.0s\n"));
    }

    fn line(&self, text: String) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }
}

/// Runs `berth builder …`.
pub async fn builder(conn: &Conn, cmd: BuilderCommand) -> Result<()> {
    match cmd {
        BuilderCommand::Prune(a) => prune(conn, a).await,
    }
}

async fn prune(conn: &Conn, a: PruneArgs) -> Result<()> {
    let what = if a.all { "all" } else { "all dangling" };
    let question =
        format!("WARNING! This will remove {what} build cache. Are you sure you want to continue?");
    if !crate::ask::confirm(a.force, &question)? {
        return Ok(());
    }
    let (deleted, reclaimed) = conn.prune_build_cache(a.all).await?;
    print_pruned(&deleted);
    println!("Total reclaimed space: {}", format::size(reclaimed));
    Ok(())
}

/// Docker's list of deleted cache entries (nothing when there are none).
pub fn print_pruned(deleted: &[String]) {
    if !deleted.is_empty() {
        println!("Deleted build cache objects:");
        deleted.iter().for_each(|d| println!("{d}"));
        println!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_read_like_buildx() {
        let (id, s) = secret("id=npm,src=/tmp/npmrc").unwrap();
        assert_eq!(id, "npm");
        assert!(matches!(s, Secret::File(p) if p == std::path::Path::new("/tmp/npmrc")));
        let (id, _) = secret("src=/run/token").unwrap();
        assert_eq!(id, "token");
        std::env::set_var("BERTH_TEST_SECRET_X", "v");
        let (id, s) = secret("id=x,env=BERTH_TEST_SECRET_X").unwrap();
        assert_eq!(id, "x");
        assert!(matches!(s, Secret::Bytes(b) if b == b"v"));
        assert!(secret("id=x,bogus=1").is_err());
        assert!(secret("type=file").is_err());
    }
}
