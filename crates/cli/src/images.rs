//! Image commands: pull, push, images, image inspect/ls/prune/history,
//! tag, rmi, save, load.

use std::io::Write;

use anyhow::{bail, Context, Result};
use berth_client::images::Progress;
use berth_client::types as pb;
use clap::{Args, Subcommand};
use futures::StreamExt;
use serde_json::json;

use berth_client::names::{familiar, short_id};

use crate::progress::Display;
use crate::{format, Conn};

/// `berth pull`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// NAME[:TAG|@DIGEST]
    pub reference: String,
    /// Pull for another platform (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    /// Print only the image reference.
    #[arg(short, long)]
    pub quiet: bool,
    /// Pull every tag of the repository.
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
}

/// `berth push`.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// NAME[:TAG]
    pub reference: String,
    /// Print only the digest line.
    #[arg(short, long)]
    pub quiet: bool,
}

/// `berth images`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only this repository (NAME or NAME:TAG, `*` allowed).
    pub reference: Option<String>,
    /// Show all images.
    #[arg(short, long)]
    pub all: bool,
    /// Only show image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Show full ids.
    #[arg(long)]
    pub no_trunc: bool,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// Filter: dangling=true|false, reference=PATTERN.
    #[arg(short, long = "filter")]
    pub filter: Vec<String>,
    /// "table" (default), "json", or a Go template ("table {{.Repository}}").
    #[arg(long)]
    pub format: Option<String>,
}

/// `berth image …`.
#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images.
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Show images in detail (JSON).
    Inspect(InspectArgs),
    /// Remove unused images.
    Prune(PruneArgs),
    /// Show an image's history.
    History(HistoryArgs),
    /// Remove images.
    Rm(RmiArgs),
    /// Download an image.
    Pull(PullArgs),
    /// Upload an image.
    Push(PushArgs),
    /// Give an image another name.
    Tag(TagArgs),
    /// Write images to an archive.
    Save(SaveArgs),
    /// Load images from an archive.
    Load(LoadArgs),
}

/// `berth image inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Images to inspect.
    #[arg(required = true)]
    pub references: Vec<String>,
    /// "json" (default) or a Go template ("{{.Config.Env}}").
    #[arg(short, long)]
    pub format: Option<String>,
}

/// `berth image prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all images no container uses, not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// `berth tag`.
#[derive(Args, Debug)]
pub struct TagArgs {
    /// SOURCE_IMAGE[:TAG]
    pub source: String,
    /// TARGET_IMAGE[:TAG]
    pub target: String,
}

/// `berth rmi`.
#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Images to remove.
    #[arg(required = true)]
    pub references: Vec<String>,
    /// Remove even when referenced by several names.
    #[arg(short, long)]
    pub force: bool,
    /// Keep untagged parents.
    #[arg(long)]
    pub no_prune: bool,
}

/// `berth save`.
#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Images to save.
    #[arg(required = true)]
    pub references: Vec<String>,
    /// Write to this file instead of standard output.
    #[arg(short, long)]
    pub output: Option<std::path::PathBuf>,
}

/// `berth load`.
#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from this file instead of standard input.
    #[arg(short, long)]
    pub input: Option<std::path::PathBuf>,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Runs `berth image …`.
pub async fn image(conn: &Conn, cmd: ImageCommand) -> Result<()> {
    match cmd {
        ImageCommand::Ls(a) => list(conn, a).await,
        ImageCommand::Inspect(a) => inspect(conn, a).await,
        ImageCommand::Prune(a) => prune(conn, a).await,
        ImageCommand::History(a) => history(conn, a).await,
        ImageCommand::Rm(a) => rmi(conn, a).await,
        ImageCommand::Pull(a) => pull(conn, a).await,
        ImageCommand::Push(a) => push(conn, a).await,
        ImageCommand::Tag(a) => tag(conn, a).await,
        ImageCommand::Save(a) => save(conn, a).await,
        ImageCommand::Load(a) => load(conn, a).await,
    }
}

/// Shows a pull's or push's layers until its last item, which it returns.
async fn follow(
    mut stream: berth_client::Stream<Progress>,
    quiet: bool,
    what: &str,
) -> Result<Progress> {
    let mut display = Display::new(quiet);
    while let Some(p) = stream.next().await {
        match p? {
            Progress::Layer {
                id,
                status,
                current,
                total,
            } => display.show(&id, &status, current, total),
            last => return Ok(last),
        }
    }
    bail!("the Berth agent ended the {what} without finishing it")
}

/// Runs `berth pull`.
pub async fn pull(conn: &Conn, a: PullArgs) -> Result<()> {
    let platform = a.platform.unwrap_or_default();
    let last = a.reference.rsplit('/').next().unwrap_or(&a.reference);
    let tagged = a.reference.contains('@') || last.contains(':');
    if a.all_tags && tagged {
        bail!("tag can't be used with --all-tags/-a");
    }
    if !a.all_tags && !tagged && !a.quiet {
        println!("Using default tag: latest");
    }
    let stream = conn.pull_tags(&a.reference, &platform, a.all_tags).await?;
    if let Progress::Pulled(done) = follow(stream, a.quiet, "pull").await? {
        println!("{}", familiar(&done.reference));
    }
    Ok(())
}

/// Runs `berth push`.
pub async fn push(conn: &Conn, a: PushArgs) -> Result<()> {
    let stream = conn.push(&a.reference).await?;
    if let Progress::Pushed(done) = follow(stream, a.quiet, "push").await? {
        if a.quiet {
            println!("{}", done.digest);
        }
    }
    Ok(())
}

/// Runs `berth images`.
pub async fn list(conn: &Conn, a: ListArgs) -> Result<()> {
    let mut filters = std::collections::HashMap::<String, pb::StringList>::new();
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("the filter '{f}' is not KEY=VALUE (e.g. dangling=true)"))?;
        if !matches!(k, "dangling" | "reference" | "label") {
            bail!(
                "the filter '{k}' is not supported: use dangling=true|false or reference=PATTERN"
            );
        }
        filters.entry(k.into()).or_default().values.push(v.into());
    }
    if let Some(r) = &a.reference {
        filters
            .entry("reference".into())
            .or_default()
            .values
            .push(r.clone());
    }
    // The engine keeps only the names the reference filter matches, as
    // dockerd lists them (`images byid` shows byid, not the image's other
    // names), so every name it sends is a row.
    let images = conn
        .list_images(pb::ListImagesRequest {
            all: a.all,
            filters,
        })
        .await?;
    // Newest first by when each was built, as Docker lists them.
    let mut images = images;
    images.sort_by_key(|i| std::cmp::Reverse(i.created.as_ref().map_or(0, |t| t.seconds)));
    let id_of = |i: &pb::ImageSummary| {
        if a.no_trunc {
            i.id.clone()
        } else {
            short_id(&i.id)
        }
    };
    if a.quiet {
        let mut seen = std::collections::HashSet::new();
        for i in &images {
            if seen.insert(i.id.clone()) {
                println!("{}", id_of(i));
            }
        }
        return Ok(());
    }
    let mut rows = Vec::new();
    for i in &images {
        let created = i
            .created
            .as_ref()
            .map_or("N/A".to_string(), |t| format::ago(t.seconds));
        let digest = i
            .repo_digests
            .first()
            .and_then(|d| d.split_once('@'))
            .map_or("<none>".to_string(), |(_, d)| d.to_string());
        let tags: Vec<(String, String)> = if i.repo_tags.is_empty() {
            let repo = i
                .repo_digests
                .first()
                .and_then(|d| d.split_once('@'))
                .map_or("<none>".into(), |(r, _)| r.to_string());
            vec![(repo, "<none>".into())]
        } else {
            i.repo_tags
                .iter()
                .map(|t| match t.rsplit_once(':') {
                    Some((r, tag)) if !tag.contains('/') => (r.to_string(), tag.to_string()),
                    _ => (t.clone(), "<none>".into()),
                })
                .collect()
        };
        let created_at = i
            .created
            .as_ref()
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
            .map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
            .unwrap_or_default();
        for (repo, tag) in tags {
            rows.push(json!({
                "Repository": repo, "Tag": tag, "ID": id_of(i), "Digest": if a.digests { digest.clone() } else { "<none>".into() },
                "CreatedAt": created_at, "CreatedSince": created,
                "Size": format::size(i.size), "VirtualSize": format::human_size(i.size),
                "SharedSize": "N/A", "UniqueSize": "N/A", "Containers": "N/A",
            }));
        }
    }
    let mut columns = vec![("REPOSITORY", "Repository"), ("TAG", "Tag")];
    if a.digests {
        columns.push(("DIGEST", "Digest"));
    }
    columns.extend([
        ("IMAGE ID", "ID"),
        ("CREATED", "CreatedSince"),
        ("SIZE", "Size"),
    ]);
    format::print_rows(a.format.as_deref(), &rows, &columns)
}

/// Runs `berth image inspect`.
pub async fn inspect(conn: &Conn, a: InspectArgs) -> Result<()> {
    let mut out = Vec::new();
    let mut failed = Vec::new();
    for r in &a.references {
        match conn.inspect_image_json(r).await {
            Ok(d) => out.push(d),
            Err(e) => failed.push(e.into()),
        }
    }
    format::print_inspected(a.format.as_deref(), &out, failed)
}

/// `berth history` / `berth image history`.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// Only show image IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Print sizes and dates in human readable format.
    #[arg(long = "human", default_value_t = true, action = clap::ArgAction::Set)]
    pub human: bool,
    /// "table" (default), "json", or a Go template ("{{.CreatedBy}}").
    #[arg(long)]
    pub format: Option<String>,
    /// The image.
    pub image: String,
}

/// Runs `berth history`.
pub async fn history(conn: &Conn, a: HistoryArgs) -> Result<()> {
    let history = conn.image_history(&a.image).await?;
    let rows: Vec<serde_json::Value> = history
        .iter()
        .map(|e| {
            let id = match (e.id.is_empty(), a.no_trunc) {
                (true, _) => "<missing>".to_string(),
                (false, true) => e.id.clone(),
                (false, false) => short_id(&e.id),
            };
            let seconds = e.created.as_ref().map_or(0, |t| t.seconds);
            let created_at = chrono::DateTime::from_timestamp(seconds, 0)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
            let by = if a.no_trunc || e.created_by.chars().count() <= 45 {
                e.created_by.clone()
            } else {
                format!("{}…", e.created_by.chars().take(44).collect::<String>())
            };
            json!({
                "ID": id,
                "CreatedSince": if a.human { format::ago(seconds) } else { created_at.clone() },
                "CreatedAt": created_at,
                "CreatedBy": by,
                "Size": if a.human { format::size(e.size) } else { e.size.to_string() },
                "Comment": e.comment,
            })
        })
        .collect();
    if a.quiet {
        rows.iter()
            .for_each(|r| println!("{}", r["ID"].as_str().unwrap_or_default()));
        return Ok(());
    }
    format::print_rows(
        a.format.as_deref(),
        &rows,
        &[
            ("IMAGE", "ID"),
            ("CREATED", "CreatedSince"),
            ("CREATED BY", "CreatedBy"),
            ("SIZE", "Size"),
            ("COMMENT", "Comment"),
        ],
    )
}

/// Runs `berth tag`.
pub async fn tag(conn: &Conn, a: TagArgs) -> Result<()> {
    conn.tag_image(&a.source, &a.target).await?;
    Ok(())
}

/// Runs `berth rmi`.
pub async fn rmi(conn: &Conn, a: RmiArgs) -> Result<()> {
    let mut failed = None;
    for r in &a.references {
        match conn.remove_image(r, a.force, a.no_prune).await {
            Ok(items) => {
                for item in items {
                    println!("{}: {}", item.action, item.value);
                }
            }
            Err(e) => {
                eprintln!("Error: {e}");
                // As Docker's: with -f a missing image is told, not failed.
                let missing = matches!(e.kind(), berth_client::ErrorKind::NotFound(_));
                if !(a.force && missing) {
                    failed = Some(anyhow::anyhow!("some images could not be removed"));
                }
            }
        }
    }
    if failed.is_some() {
        std::process::exit(1);
    }
    Ok(())
}

/// Runs `berth image prune`.
pub async fn prune(conn: &Conn, a: PruneArgs) -> Result<()> {
    let what = if a.all {
        "images without at least one container associated to them"
    } else {
        "dangling images"
    };
    let warning =
        format!("WARNING! This will remove all {what}.\nAre you sure you want to continue?");
    if !crate::ask::confirm(a.force, &warning)? {
        return Ok(());
    }
    let resp = conn.prune_images(a.all).await?;
    if !resp.items.is_empty() {
        println!("Deleted Images:");
        for item in &resp.items {
            println!("{}: {}", item.action.to_lowercase(), item.value);
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        format::size(resp.space_reclaimed)
    );
    Ok(())
}

/// Runs `berth save`.
pub async fn save(conn: &Conn, a: SaveArgs) -> Result<()> {
    if a.output.is_none() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        bail!(
            "refusing to write an archive to the terminal: use -o FILE or redirect standard output"
        );
    }
    let mut stream = conn.save_images(a.references).await?;
    let tmp = a.output.as_ref().map(|o| o.with_extension("berth-partial"));
    let mut out: Box<dyn Write> = match &tmp {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let result: Result<()> = async {
        while let Some(chunk) = stream.next().await {
            out.write_all(&chunk?)?;
        }
        out.flush()?;
        Ok(())
    }
    .await;
    drop(out);
    match (result, tmp, a.output) {
        (Ok(()), Some(tmp), Some(dest)) => {
            std::fs::rename(tmp, &dest).with_context(|| format!("cannot write {}", dest.display()))
        }
        (Err(e), Some(tmp), _) => {
            let _ = std::fs::remove_file(tmp);
            Err(e)
        }
        (r, _, _) => r,
    }
}

/// Runs `berth load`.
pub async fn load(conn: &Conn, a: LoadArgs) -> Result<()> {
    let input: Box<dyn tokio::io::AsyncRead + Unpin + Send> = match &a.input {
        Some(p) => Box::new(
            tokio::fs::File::open(p)
                .await
                .with_context(|| format!("cannot open {}", p.display()))?,
        ),
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                bail!("requested load from stdin, but stdin is empty: use -i FILE or pipe an archive in");
            }
            Box::new(tokio::io::stdin())
        }
    };
    let mut stream = conn.load_images(input).await?;
    while let Some(msg) = stream.next().await {
        let msg = msg?;
        if !a.quiet && !msg.status.is_empty() {
            println!("{}", msg.status);
        }
    }
    Ok(())
}
