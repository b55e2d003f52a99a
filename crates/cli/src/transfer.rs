//! `commit`, `export`, `import`, `diff` and `cp`: a container's files
//! and state, out and in.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use berth_client::types as pb;
use berth_client::Stream;
use clap::Args;
use futures::StreamExt;

use crate::Conn;

/// `berth commit`.
#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>").
    #[arg(short, long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image.
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Commit message.
    #[arg(short, long)]
    pub message: Option<String>,
    /// Pause container during commit.
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pause: bool,
    /// The container.
    pub container: String,
    /// The new image's name.
    pub reference: Option<String>,
}

/// `berth export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// The container.
    pub container: String,
}

/// `berth import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image.
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Set commit message for imported image.
    #[arg(short, long)]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable.
    #[arg(long)]
    pub platform: Option<String>,
    /// A tar file (plain, gzip or zstd), or - for standard input.
    pub file: String,
    /// The new image's name.
    pub reference: Option<String>,
}

/// `berth diff`.
#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The container.
    pub container: String,
}

/// `berth cp`.
#[derive(Args, Debug)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information).
    #[arg(short, long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH.
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// CONTAINER:SRC_PATH or a local path (- for a tar on stdin).
    pub src: String,
    /// CONTAINER:DEST_PATH or a local path (- for a tar on stdout).
    pub dest: String,
}

/// Runs `berth commit`.
pub async fn commit(conn: &Conn, a: CommitArgs) -> Result<()> {
    let r = conn
        .commit(pb::CommitRequest {
            id: a.container,
            reference: a.reference.unwrap_or_default(),
            author: a.author.unwrap_or_default(),
            message: a.message.unwrap_or_default(),
            changes: a.change,
            pause: a.pause,
        })
        .await?;
    println!("{}", r.image_id);
    Ok(())
}

/// Writes a stream of chunks to `out`.
async fn drain(mut stream: Stream<Vec<u8>>, out: &mut dyn Write) -> Result<()> {
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk?)?;
    }
    out.flush()?;
    Ok(())
}

/// Runs `berth export`.
pub async fn export(conn: &Conn, a: ExportArgs) -> Result<()> {
    if a.output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        bail!(
            "refusing to write an archive to the terminal: use -o FILE or redirect standard output"
        );
    }
    let stream = conn.export_container(&a.container).await?;
    match a.output {
        Some(p) => {
            let mut f = std::fs::File::create(&p)
                .with_context(|| format!("cannot write {}", p.display()))?;
            drain(stream, &mut f).await
        }
        None => drain(stream, &mut std::io::stdout().lock()).await,
    }
}

/// Runs `berth import`.
pub async fn import(conn: &Conn, a: ImportArgs) -> Result<()> {
    if a.file.contains("://") {
        bail!("importing from a URL is not supported: download the file and give its path");
    }
    let input = crate::upload::open_input(&a.file).await?;
    let options = pb::ImportOptions {
        reference: a.reference.unwrap_or_default(),
        changes: a.change,
        message: a.message.unwrap_or_default(),
        platform: a.platform.unwrap_or_default(),
    };
    let r = conn.import_image(options, input).await?;
    println!("{}", r.image_id);
    Ok(())
}

/// Runs `berth diff`.
pub async fn diff(conn: &Conn, a: DiffArgs) -> Result<()> {
    for c in conn.diff_container(&a.container).await? {
        println!("{} {}", c.kind, c.path);
    }
    Ok(())
}

/// `CONTAINER:PATH` split, or `None` for a local path.
fn remote(spec: &str) -> Option<(&str, &str)> {
    if spec.starts_with('/') || spec.starts_with('.') {
        return None;
    }
    spec.split_once(':').filter(|(c, _)| !c.is_empty())
}

/// Runs `berth cp`.
pub async fn cp(conn: &Conn, a: CpArgs) -> Result<()> {
    match (remote(&a.src), remote(&a.dest)) {
        (Some((ctr, path)), None) => copy_out(conn, ctr, path, &a.dest, a.follow_link).await,
        (None, Some((ctr, path))) => {
            copy_in(conn, &a.src, ctr, path, a.archive, a.follow_link).await
        }
        (Some(_), Some(_)) => {
            bail!("copying between containers is not supported: copy to the host first")
        }
        (None, None) => bail!("must specify at least one container source: write CONTAINER:PATH"),
    }
}

async fn copy_out(conn: &Conn, ctr: &str, path: &str, dest: &str, follow: bool) -> Result<()> {
    let stream = conn.copy_from(ctr, path, follow).await?;
    if dest == "-" {
        return drain(stream, &mut std::io::stdout().lock()).await;
    }
    let mut data = Vec::new();
    drain(stream, &mut data).await?;
    crate::cp::place(&data, path, Path::new(dest))
}

async fn copy_in(
    conn: &Conn,
    src: &str,
    ctr: &str,
    path: &str,
    keep: bool,
    follow: bool,
) -> Result<()> {
    let input: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if src == "-" {
        Box::new(tokio::io::stdin())
    } else {
        Box::new(crate::upload::tar_of(Path::new(src), follow)?)
    };
    conn.copy_to(ctr, path, keep, input).await?;
    Ok(())
}
