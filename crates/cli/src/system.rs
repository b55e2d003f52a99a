//! System commands: version, info, system df/info, login, logout.

use std::io::IsTerminal;

use anyhow::{bail, Result};
use berth_client::credentials as auth;
use berth_client::API_VERSION;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::{format, Conn};

/// `--format` for version and info.
#[derive(Args, Debug)]
pub struct FormatArgs {
    /// "json" for JSON output.
    #[arg(short, long)]
    pub format: Option<String>,
}

/// `berth system …`.
#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Show system-wide information.
    Info(FormatArgs),
    /// Show disk usage.
    Df(DfArgs),
    /// Remove unused data: stopped containers, unused networks, dangling
    /// images, unused build cache (and with -a every unused image and all
    /// build cache, with --volumes unused anonymous volumes).
    Prune(PruneArgs),
}

/// `berth system prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Prune anonymous volumes.
    #[arg(long)]
    pub volumes: bool,
}

/// `berth system df`.
#[derive(Args, Debug)]
pub struct DfArgs {
    /// Show every image.
    #[arg(short, long)]
    pub verbose: bool,
    /// "json", or a Go template ("{{.Type}}: {{.Size}}").
    #[arg(long)]
    pub format: Option<String>,
}

/// `berth login`.
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The registry (default: Docker Hub).
    pub server: Option<String>,
    /// User name.
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password.
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

/// `berth logout`.
#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// The registry (default: Docker Hub).
    pub server: Option<String>,
}

/// Prints one document as `--format` asks: `json`, a Go template (a bad
/// one refused with 64, as Docker's `version` and `info`), or (no format)
/// the text `plain` writes.
fn show(format: Option<&str>, doc: &serde_json::Value, plain: impl FnOnce()) -> Result<()> {
    match format {
        None | Some("") => plain(),
        Some("json") => println!("{doc}"),
        Some(f) => println!("{}", crate::format::parse_template(f)?.render(doc)?),
    }
    Ok(())
}

/// Runs `berth version`.
pub async fn version(conn: &Conn, a: FormatArgs) -> Result<()> {
    let client_v = env!("CARGO_PKG_VERSION");
    let client = json!({"Version": client_v, "ApiVersion": API_VERSION, "Os": std::env::consts::OS, "Arch": std::env::consts::ARCH});
    let s = match conn.version().await {
        Ok(v) => v,
        Err(e) => {
            if a.format.is_none() {
                println!("Client:\n Version:\t{client_v}\n API version:\t{API_VERSION}");
            }
            return Err(e.into());
        }
    };
    let doc = json!({"Client": client,
        "Server": {"Version": s.version, "ApiVersion": s.api_version, "Os": s.os, "Arch": s.arch, "KernelVersion": s.kernel_version, "GitCommit": s.git_commit}});
    show(a.format.as_deref(), &doc, || {
        println!("Client:\n Version:\t{client_v}\n API version:\t{API_VERSION}\n");
        println!(
            "Server: Berth Agent\n Version:\t{}\n API version:\t{}\n OS/Arch:\t{}/{}\n Kernel:\t{}",
            s.version, s.api_version, s.os, s.arch, s.kernel_version
        );
    })
}

/// Runs `berth info`.
pub async fn info(conn: &Conn, a: FormatArgs) -> Result<()> {
    let i = conn.info().await?;
    let doc = json!({"ID": i.id, "Containers": i.containers, "ContainersRunning": i.containers_running,
        "ContainersPaused": i.containers_paused, "ContainersStopped": i.containers_stopped, "Images": i.images,
        "Driver": i.storage_driver, "CgroupVersion": i.cgroup_version, "KernelVersion": i.kernel_version,
        "OperatingSystem": i.operating_system, "OSType": i.os, "Architecture": i.arch, "NCPU": i.cpus,
        "MemTotal": i.memory_bytes, "DockerRootDir": i.root_dir, "BerthRootDir": i.root_dir, "ServerVersion": i.server_version,
        "Name": i.hostname, "InsecureRegistries": i.insecure_registries});
    show(a.format.as_deref(), &doc, || {
        println!("Server:");
        println!(
            " Containers: {}\n  Running: {}\n  Paused: {}\n  Stopped: {}",
            i.containers, i.containers_running, i.containers_paused, i.containers_stopped
        );
        println!(" Images: {}", i.images);
        println!(" Server Version: {}", i.server_version);
        println!(" Storage Driver: {}", i.storage_driver);
        println!(" Cgroup Version: {}", i.cgroup_version);
        println!(" Kernel Version: {}", i.kernel_version);
        println!(" Operating System: {}", i.operating_system);
        println!(
            " OSType: {}\n Architecture: {}\n CPUs: {}\n Total Memory: {}",
            i.os,
            i.arch,
            i.cpus,
            format::size(i.memory_bytes)
        );
        println!(
            " Name: {}\n ID: {}\n Berth Root Dir: {}",
            i.hostname, i.id, i.root_dir
        );
        if !i.insecure_registries.is_empty() {
            println!(
                " Insecure Registries:\n  {}",
                i.insecure_registries.join("\n  ")
            );
        }
    })
}

/// Runs `berth system …`.
pub async fn system(conn: &Conn, cmd: SystemCommand) -> Result<()> {
    match cmd {
        SystemCommand::Info(a) => info(conn, a).await,
        SystemCommand::Df(a) => df(conn, a).await,
        SystemCommand::Prune(a) => prune(conn, a).await,
    }
}

async fn prune(conn: &Conn, a: PruneArgs) -> Result<()> {
    {
        let mut what = vec![
            "all stopped containers",
            "all networks not used by at least one container",
        ];
        if a.volumes {
            what.push("all anonymous volumes not used by at least one container");
        }
        what.push(if a.all {
            "all images without at least one container associated to them"
        } else {
            "all dangling images"
        });
        what.push(if a.all {
            "all build cache"
        } else {
            "unused build cache"
        });
        let list: String = what.iter().map(|w| format!("\n  - {w}")).collect();
        if !crate::ask::confirm(
            a.force,
            &format!("WARNING! This will remove:{list}\n\nAre you sure you want to continue?"),
        )? {
            return Ok(());
        }
    }
    let mut reclaimed = 0u64;
    let containers = conn.prune_containers(Default::default()).await?;
    reclaimed += containers.space_reclaimed;
    if !containers.deleted.is_empty() {
        println!("Deleted Containers:");
        containers.deleted.iter().for_each(|c| println!("{c}"));
        println!();
    }
    let networks = conn.prune_networks().await?;
    if !networks.is_empty() {
        println!("Deleted Networks:");
        networks.iter().for_each(|n| println!("{n}"));
        println!();
    }
    if a.volumes {
        let volumes = conn.prune_volumes(Default::default()).await?;
        reclaimed += volumes.space_reclaimed;
        if !volumes.deleted.is_empty() {
            println!("Deleted Volumes:");
            volumes.deleted.iter().for_each(|v| println!("{v}"));
            println!();
        }
    }
    let images = conn.prune_images(a.all).await?;
    reclaimed += images.space_reclaimed;
    if !images.items.is_empty() {
        println!("Deleted Images:");
        for item in &images.items {
            println!("{}: {}", item.action.to_lowercase(), item.value);
        }
        println!();
    }
    // An agent without a build cache has nothing to prune there.
    match conn.prune_build_cache(a.all).await {
        Ok((deleted, space)) => {
            reclaimed += space;
            crate::build::print_pruned(&deleted);
        }
        Err(e) if e.kind() == berth_client::ErrorKind::Unimplemented => {}
        Err(e) => return Err(e.into()),
    }
    println!("Total reclaimed space: {}", format::size(reclaimed));
    Ok(())
}

/// One row of `system df`: what there is, what is in use, and what a prune
/// would give back.
fn usage_row(
    kind: &str,
    total: usize,
    active: usize,
    size: u64,
    reclaimable: u64,
) -> serde_json::Value {
    let percent = (reclaimable * 100).checked_div(size).unwrap_or(0);
    json!({"Type": kind, "TotalCount": total.to_string(), "Active": active.to_string(),
        "Size": format::size(size), "Reclaimable": format!("{} ({percent}%)", format::size(reclaimable))})
}

async fn df(conn: &Conn, a: DfArgs) -> Result<()> {
    let d = conn.disk_usage().await?;
    let images_active = d.images.iter().filter(|i| i.containers > 0).count();
    let images_size: u64 = d
        .layers_size
        .max(d.images.iter().map(|i| i.unique_size).sum::<u64>());
    let images_free: u64 = d
        .images
        .iter()
        .filter(|i| i.containers == 0)
        .map(|i| i.unique_size)
        .sum();
    let running =
        |c: &&berth_client::types::ContainerUsage| c.state == "running" || c.state == "paused";
    let containers_size: u64 = d.containers.iter().map(|c| c.size_rw).sum();
    let containers_free: u64 = d
        .containers
        .iter()
        .filter(|c| !running(c))
        .map(|c| c.size_rw)
        .sum();
    let volumes_size: u64 = d.volumes.iter().map(|v| v.size).sum();
    let volumes_free: u64 = d
        .volumes
        .iter()
        .filter(|v| v.ref_count == 0)
        .map(|v| v.size)
        .sum();
    let rows = vec![
        usage_row(
            "Images",
            d.images.len(),
            images_active,
            images_size,
            images_free.min(images_size),
        ),
        usage_row(
            "Containers",
            d.containers.len(),
            d.containers.iter().filter(running).count(),
            containers_size,
            containers_free,
        ),
        usage_row(
            "Local Volumes",
            d.volumes.len(),
            d.volumes.iter().filter(|v| v.ref_count > 0).count(),
            volumes_size,
            volumes_free,
        ),
        usage_row(
            "Build Cache",
            d.build_cache_count as usize,
            0,
            d.build_cache_size,
            d.build_cache_size,
        ),
    ];
    format::print_rows(
        a.format.as_deref(),
        &rows,
        &[
            ("TYPE", "Type"),
            ("TOTAL", "TotalCount"),
            ("ACTIVE", "Active"),
            ("SIZE", "Size"),
            ("RECLAIMABLE", "Reclaimable"),
        ],
    )?;
    if a.verbose {
        println!("\nImages space usage:\n");
        let rows: Vec<Vec<String>> = d
            .images
            .iter()
            .map(|i| {
                vec![
                    i.repo_tags.first().cloned().unwrap_or("<none>".into()),
                    berth_client::names::short_id(&i.id),
                    format::size(i.size),
                    format::size(i.shared_size),
                    format::size(i.unique_size),
                    i.containers.to_string(),
                ]
            })
            .collect();
        format::table(
            &[
                "REPOSITORY:TAG",
                "IMAGE ID",
                "SIZE",
                "SHARED SIZE",
                "UNIQUE SIZE",
                "CONTAINERS",
            ],
            &rows,
        );
        println!("\nBuild cache usage: {}", format::size(d.build_cache_size));
    }
    Ok(())
}

/// Runs `berth login`.
pub async fn login(conn: &Conn, a: LoginArgs) -> Result<()> {
    let server = a.server.unwrap_or_else(|| "docker.io".into());
    let username = match a.username {
        Some(u) => u,
        None if a.password_stdin => {
            bail!("give the user name with -u when the password comes from standard input")
        }
        None => prompt("Username: ", true)?,
    };
    let password = if a.password_stdin {
        let mut p = String::new();
        std::io::stdin().read_line(&mut p)?;
        p.trim_end_matches(['\n', '\r']).to_string()
    } else if let Some(p) = a.password {
        if std::io::stderr().is_terminal() {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        }
        p
    } else {
        prompt("Password: ", false)?
    };
    if username.is_empty() || password.is_empty() {
        bail!("a user name and a password are both needed to log in");
    }
    let (status, _) = conn.login(&server, &username, &password).await?;
    println!("{status}");
    Ok(())
}

/// Asks for one line on the terminal; with `echo` false what is typed is
/// not shown (a password).
fn prompt(question: &str, echo: bool) -> Result<String> {
    use nix::sys::termios::{self, LocalFlags, SetArg};
    use std::io::Write;
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(
            "cannot ask for {} without a terminal: use -u and --password-stdin",
            question.trim_end_matches(": ").to_lowercase()
        );
    }
    // Echo goes off before the prompt shows, so nothing typed after it is
    // ever echoed.
    let saved = termios::tcgetattr(&stdin).ok();
    if let (false, Some(saved)) = (echo, &saved) {
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    if let (false, Some(saved)) = (echo, &saved) {
        let _ = termios::tcsetattr(&stdin, SetArg::TCSANOW, saved);
        eprintln!();
    }
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Runs `berth logout`.
pub fn logout(a: LogoutArgs) -> Result<()> {
    let server = a.server.unwrap_or_else(|| "docker.io".into());
    if auth::remove(&server)? {
        println!(
            "Removing login credentials for {}",
            auth::server_key(&server)
        );
    } else {
        println!("Not logged in to {}", auth::server_key(&server));
    }
    Ok(())
}
