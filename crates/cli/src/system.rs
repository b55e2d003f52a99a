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
}

/// `berth system df`.
#[derive(Args, Debug)]
pub struct DfArgs {
    /// Show every image.
    #[arg(short, long)]
    pub verbose: bool,
    /// "json" for JSON output.
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

fn check_format(f: &Option<String>) -> Result<bool> {
    match f.as_deref() {
        None | Some("table") => Ok(false),
        Some("json") => Ok(true),
        Some(other) => bail!("--format '{other}' is not supported: use json"),
    }
}

/// Runs `berth version`.
pub async fn version(conn: &Conn, a: FormatArgs) -> Result<()> {
    let json_out = check_format(&a.format)?;
    let client_v = env!("CARGO_PKG_VERSION");
    let server = match conn.version().await {
        Ok(v) => Some(v),
        Err(e) => {
            if !json_out {
                println!(
                    "Client:\n Version:\t{client_v}\n API version:\t{}",
                    API_VERSION
                );
            }
            return Err(e.into());
        }
    };
    let s = server.expect("set");
    if json_out {
        println!(
            "{}",
            json!({"Client": {"Version": client_v, "ApiVersion": API_VERSION},
            "Server": {"Version": s.version, "ApiVersion": s.api_version, "Os": s.os, "Arch": s.arch, "KernelVersion": s.kernel_version}})
        );
    } else {
        println!(
            "Client:\n Version:\t{client_v}\n API version:\t{}\n",
            API_VERSION
        );
        println!(
            "Server: Berth Agent\n Version:\t{}\n API version:\t{}\n OS/Arch:\t{}/{}\n Kernel:\t{}",
            s.version, s.api_version, s.os, s.arch, s.kernel_version
        );
    }
    Ok(())
}

/// Runs `berth info`.
pub async fn info(conn: &Conn, a: FormatArgs) -> Result<()> {
    let json_out = check_format(&a.format)?;
    let i = conn.info().await?;
    if json_out {
        println!(
            "{}",
            json!({"ID": i.id, "Containers": i.containers, "ContainersRunning": i.containers_running,
            "ContainersPaused": i.containers_paused, "ContainersStopped": i.containers_stopped, "Images": i.images,
            "Driver": i.storage_driver, "CgroupVersion": i.cgroup_version, "KernelVersion": i.kernel_version,
            "OperatingSystem": i.operating_system, "OSType": i.os, "Architecture": i.arch, "NCPU": i.cpus,
            "MemTotal": i.memory_bytes, "BerthRootDir": i.root_dir, "ServerVersion": i.server_version,
            "Name": i.hostname, "InsecureRegistries": i.insecure_registries})
        );
        return Ok(());
    }
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
    Ok(())
}

/// Runs `berth system …`.
pub async fn system(conn: &Conn, cmd: SystemCommand) -> Result<()> {
    match cmd {
        SystemCommand::Info(a) => info(conn, a).await,
        SystemCommand::Df(a) => df(conn, a).await,
    }
}

async fn df(conn: &Conn, a: DfArgs) -> Result<()> {
    let json_out = check_format(&a.format)?;
    let d = conn.disk_usage().await?;
    let total: u64 = d.layers_size;
    if json_out {
        println!(
            "{}",
            json!({"Type": "Images", "TotalCount": d.images.len(), "Active": 0, "Size": format::size(total), "Reclaimable": format::size(total)})
        );
        println!(
            "{}",
            json!({"Type": "Containers", "TotalCount": 0, "Active": 0, "Size": "0B", "Reclaimable": "0B"})
        );
        println!(
            "{}",
            json!({"Type": "Local Volumes", "TotalCount": 0, "Active": 0, "Size": "0B", "Reclaimable": "0B"})
        );
        return Ok(());
    }
    format::table(
        &["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
        &[
            vec![
                "Images".into(),
                d.images.len().to_string(),
                "0".into(),
                format::size(total),
                format!("{} (100%)", format::size(total)),
            ],
            vec![
                "Containers".into(),
                "0".into(),
                "0".into(),
                "0B".into(),
                "0B".into(),
            ],
            vec![
                "Local Volumes".into(),
                "0".into(),
                "0".into(),
                "0B".into(),
                "0B".into(),
            ],
        ],
    );
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
    }
    Ok(())
}

/// Runs `berth login`.
pub async fn login(conn: &Conn, a: LoginArgs) -> Result<()> {
    let server = a.server.unwrap_or_else(|| "docker.io".into());
    let Some(username) = a.username else {
        bail!("give the user name with -u (Berth does not prompt yet)");
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
        bail!("give the password with --password-stdin (or -p)");
    };
    let (status, _) = conn.login(&server, &username, &password).await?;
    println!("{status}");
    Ok(())
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
