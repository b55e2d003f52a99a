//! `berth volume …`: named volumes.

use anyhow::Result;
use berth_client::types as pb;
use clap::{Args, Subcommand};

use crate::{format, Conn};

/// `berth volume` subcommands.
#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume.
    Create(CreateArgs),
    /// List volumes.
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Display detailed information on one or more volumes.
    Inspect(InspectArgs),
    /// Remove one or more volumes.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove unused volumes.
    Prune(PruneArgs),
}

/// `volume create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Specify volume driver name.
    #[arg(short = 'd', long, default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume (KEY=VALUE).
    #[arg(long = "label")]
    pub label: Vec<String>,
    /// Set driver specific options (KEY=VALUE).
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// The volume's name (one is made up when absent).
    pub name: Option<String>,
}

/// `volume ls`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only display volume names.
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output (name=, dangling=true|false).
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format: json, or a Go-style template.
    #[arg(long)]
    pub format: Option<String>,
}

/// Commands naming volumes.
#[derive(Args, Debug)]
pub struct NamesArgs {
    /// Volumes.
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

/// `inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format the output using a Go template ("{{.Name}}"), or json.
    #[arg(short, long)]
    pub format: Option<String>,
    /// Volumes.
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

/// `volume rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of one or more volumes.
    #[arg(short, long)]
    pub force: bool,
    /// Volumes.
    #[arg(required = true)]
    pub volumes: Vec<String>,
}

/// `volume prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// Runs a `berth volume` subcommand.
pub async fn volume(conn: &Conn, cmd: VolumeCommand) -> Result<()> {
    let c = conn;
    match cmd {
        VolumeCommand::Create(a) => {
            let v = c
                .create_volume(pb::CreateVolumeRequest {
                    name: a.name.unwrap_or_default(),
                    driver: a.driver,
                    labels: format::pairs(&a.label),
                    options: format::pairs(&a.opt),
                })
                .await?;
            println!("{}", v.name);
        }
        VolumeCommand::Ls(a) => {
            let filters = format::filters(&a.filter)?;
            let list = c.list_volumes(pb::ListVolumesRequest { filters }).await?;
            if a.quiet {
                list.iter().for_each(|v| println!("{}", v.name));
                return Ok(());
            }
            let rows: Vec<serde_json::Value> = list
                .iter()
                .map(|v| serde_json::json!({"Driver": v.driver, "Name": v.name, "Mountpoint": v.mountpoint, "Scope": "local"}))
                .collect();
            format::print_rows(
                a.format.as_deref(),
                &rows,
                &[("DRIVER", "Driver"), ("VOLUME NAME", "Name")],
            )?;
        }
        VolumeCommand::Inspect(a) => {
            let mut out = Vec::new();
            let mut failed = Vec::new();
            for name in &a.volumes {
                match c.inspect_volume(name).await {
                    Ok(v) => out.push(berth_client::volumes::docker_json(&v)),
                    Err(e) => failed.push(e.into()),
                }
            }
            format::print_inspected(a.format.as_deref(), &out, failed)?;
        }
        VolumeCommand::Rm(a) => {
            let force = a.force;
            crate::containers::each(&a.volumes, |name| async move {
                c.remove_volume(&name, force).await?;
                Ok(name)
            })
            .await?;
        }
        VolumeCommand::Prune(a) => {
            let what = if a.all { "all" } else { "anonymous" };
            let warning = format!("WARNING! This will remove {what} local volumes not used by at least one container.\nAre you sure you want to continue?");
            if !crate::ask::confirm(a.force, &warning)? {
                return Ok(());
            }
            let r = c
                .prune_volumes(pb::PruneVolumesRequest {
                    all: a.all,
                    filters: Default::default(),
                })
                .await?;
            if !r.deleted.is_empty() {
                println!("Deleted Volumes:");
                r.deleted.iter().for_each(|n| println!("{n}"));
                println!();
            }
            println!("Total reclaimed space: {}", format::size(r.space_reclaimed));
        }
    }
    Ok(())
}
