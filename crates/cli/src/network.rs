//! `berth network …`: user-defined networks.

use anyhow::Result;
use berth_client::types as pb;
use clap::{Args, Subcommand};

use crate::{format, Conn};

/// `berth network` subcommands.
#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network.
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(ListArgs),
    /// Display detailed information on one or more networks.
    Inspect(InspectArgs),
    /// Remove one or more networks.
    #[command(alias = "remove")]
    Rm(NamesArgs),
    /// Connect a container to a network.
    Connect(ConnectArgs),
    /// Disconnect a container from a network.
    Disconnect(DisconnectArgs),
    /// Remove all unused networks.
    Prune(PruneArgs),
}

/// `network create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Driver to manage the network.
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format.
    #[arg(long)]
    pub subnet: Option<String>,
    /// Gateway for the subnet.
    #[arg(long)]
    pub gateway: Option<String>,
    /// Restrict external access to the network.
    #[arg(long)]
    pub internal: bool,
    /// Set metadata on a network (KEY=VALUE).
    #[arg(long = "label")]
    pub label: Vec<String>,
    /// Set driver specific options (KEY=VALUE).
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// The network's name.
    pub name: String,
}

/// `network ls`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Only display network IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter output (name=, id=, driver=).
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Do not truncate the output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format: json, or a Go-style template.
    #[arg(long)]
    pub format: Option<String>,
}

/// Commands naming networks.
#[derive(Args, Debug)]
pub struct NamesArgs {
    /// Networks.
    #[arg(required = true)]
    pub networks: Vec<String>,
}

/// `inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format the output using a Go template ("{{.Name}}"), or json.
    #[arg(short, long)]
    pub format: Option<String>,
    /// Networks.
    #[arg(required = true)]
    pub networks: Vec<String>,
}

/// `network connect`.
#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// Add a network-scoped alias for the container.
    #[arg(long = "alias")]
    pub alias: Vec<String>,
    /// IPv4 address.
    #[arg(long)]
    pub ip: Option<String>,
    /// The network.
    pub network: String,
    /// The container.
    pub container: String,
}

/// `network disconnect`.
#[derive(Args, Debug)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network.
    #[arg(short, long)]
    pub force: bool,
    /// The network.
    pub network: String,
    /// The container.
    pub container: String,
}

/// `network prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
}

/// Runs a `berth network` subcommand.
pub async fn network(conn: &Conn, cmd: NetworkCommand) -> Result<()> {
    let c = conn;
    match cmd {
        NetworkCommand::Create(a) => {
            let subnet = a.subnet.clone().unwrap_or_default();
            let n = c
                .create_network(pb::CreateNetworkRequest {
                    name: a.name,
                    driver: a.driver,
                    internal: a.internal,
                    subnets: if subnet.is_empty() && a.gateway.is_none() {
                        Vec::new()
                    } else {
                        vec![pb::Subnet {
                            subnet,
                            gateway: a.gateway.unwrap_or_default(),
                            ip_range: String::new(),
                        }]
                    },
                    labels: format::pairs(&a.label),
                    options: format::pairs(&a.opt),
                })
                .await?;
            println!("{}", n.id);
        }
        NetworkCommand::Ls(a) => {
            let filters = format::filters(&a.filter)?;
            let list = c.list_networks(pb::ListNetworksRequest { filters }).await?;
            let id = |n: &pb::Network| {
                if a.no_trunc {
                    n.id.clone()
                } else {
                    n.id[..12].to_string()
                }
            };
            if a.quiet {
                list.iter().for_each(|n| println!("{}", id(n)));
                return Ok(());
            }
            let rows: Vec<serde_json::Value> = list
                .iter()
                .map(|n| serde_json::json!({"ID": id(n), "Name": n.name, "Driver": n.driver, "Scope": "local", "Internal": n.internal}))
                .collect();
            format::print_rows(
                a.format.as_deref(),
                &rows,
                &[
                    ("NETWORK ID", "ID"),
                    ("NAME", "Name"),
                    ("DRIVER", "Driver"),
                    ("SCOPE", "Scope"),
                ],
            )?;
        }
        NetworkCommand::Inspect(a) => {
            let mut out = Vec::new();
            let mut failed = Vec::new();
            for name in &a.networks {
                match c.inspect_network(name).await {
                    Ok(v) => out.push(berth_client::networks::docker_json(&v)),
                    Err(e) => failed.push(e.into()),
                }
            }
            format::print_inspected(a.format.as_deref(), &out, failed)?;
        }
        NetworkCommand::Rm(a) => {
            crate::containers::each(&a.networks, |name| async move {
                c.remove_network(&name).await?;
                Ok(name)
            })
            .await?;
        }
        NetworkCommand::Connect(a) => {
            c.connect_network(pb::ConnectNetworkRequest {
                network: a.network,
                container: a.container,
                aliases: a.alias,
                ipv4_address: a.ip.unwrap_or_default(),
            })
            .await?;
        }
        NetworkCommand::Disconnect(a) => {
            c.disconnect_network(pb::DisconnectNetworkRequest {
                network: a.network,
                container: a.container,
                force: a.force,
            })
            .await?;
        }
        NetworkCommand::Prune(a) => {
            let warning = "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?";
            if !crate::ask::confirm(a.force, warning)? {
                return Ok(());
            }
            let deleted = c.prune_networks().await?;
            if !deleted.is_empty() {
                println!("Deleted Networks:");
                deleted.iter().for_each(|n| println!("{n}"));
                println!();
            }
        }
    }
    Ok(())
}
