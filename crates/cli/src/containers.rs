//! Container verbs: start, stop, kill, restart, pause, unpause, rm,
//! rename, wait, inspect, ps, top, prune (`create` and `run` are in
//! `run.rs`).

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use berth_client::containers::WaitFor;
use berth_client::types as pb;
use berth_client::ErrorKind;
use clap::{Args, Subcommand};

use crate::{format, session, Conn, Exit};

/// `berth start`.
#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals.
    #[arg(short = 'a', long = "attach")]
    pub attach: bool,
    /// Attach container's STDIN.
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Override the key sequence for detaching a container.
    #[arg(long = "detach-keys", default_value = crate::detach::DEFAULT)]
    pub detach_keys: String,
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Runs `berth start`.
pub async fn start(conn: &Conn, a: StartArgs) -> Result<()> {
    if a.attach || a.interactive {
        if a.containers.len() > 1 {
            bail!("you cannot start and attach multiple containers at once");
        }
        let r = inspect_one(conn, &a.containers[0]).await?;
        let tty = r.config.as_ref().is_some_and(|c| c.tty);
        let ended = session::attach(
            conn,
            session::AttachPlan {
                id: r.id,
                start: true,
                stdin: a.interactive,
                stdout: true,
                stderr: true,
                tty,
                sig_proxy: !tty,
                detach_keys: crate::detach::parse(&a.detach_keys)?,
            },
        )
        .await?;
        return match ended {
            session::Ended::Exited(code) if code != 0 => Err(Exit(code).into()),
            _ => Ok(()),
        };
    }
    each(&a.containers, |id| async move {
        conn.start_container(&id).await?;
        Ok(id)
    })
    .await
}

/// Runs one action per named thing (containers, networks, volumes), up to
/// 50 at once as Docker's CLI does (`stop` of 100 containers that ignore
/// SIGTERM takes one timeout, not a hundred), printing each name in the
/// order given, and fails (exit 1) if any failed.
pub async fn each<F, Fut>(ids: &[String], f: F) -> Result<()>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<String>>,
{
    use futures::StreamExt;
    let mut failed = false;
    let mut results = futures::stream::iter(ids.iter().map(|id| {
        let done = f(id.clone());
        async move { (id, done.await) }
    }))
    .buffered(50);
    while let Some((id, result)) = results.next().await {
        match result {
            Ok(_) => println!("{id}"),
            Err(e) => {
                eprintln!("Error response from agent: {e:#}");
                failed = true;
            }
        }
    }
    if failed {
        return Err(Exit(1).into());
    }
    Ok(())
}

/// `berth stop` / `berth restart`.
#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container.
    #[arg(
        short = 't',
        long = "time",
        alias = "timeout",
        allow_hyphen_values = true
    )]
    pub time: Option<i32>,
    /// Signal to send to the container.
    #[arg(short = 's', long = "signal")]
    pub signal: Option<String>,
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Runs `berth stop`.
pub async fn stop(conn: &Conn, a: StopArgs) -> Result<()> {
    let timeout = a.time.unwrap_or(i32::MIN);
    each(&a.containers, |id| {
        let signal = a.signal.clone().unwrap_or_default();
        async move {
            let timeout = (timeout != i32::MIN).then_some(timeout);
            conn.stop_container(&id, timeout, &signal).await?;
            Ok(id)
        }
    })
    .await
}

/// Runs `berth restart`.
pub async fn restart(conn: &Conn, a: StopArgs) -> Result<()> {
    let timeout = a.time;
    each(&a.containers, |id| async move {
        conn.restart_container(&id, timeout).await?;
        Ok(id)
    })
    .await
}

/// `berth kill`.
#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container.
    #[arg(short = 's', long = "signal", default_value = "KILL")]
    pub signal: String,
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Runs `berth kill`.
pub async fn kill(conn: &Conn, a: KillArgs) -> Result<()> {
    each(&a.containers, |id| {
        let signal = a.signal.clone();
        async move {
            conn.kill_container(&id, &signal).await?;
            Ok(id)
        }
    })
    .await
}

/// Containers to act on.
#[derive(Args, Debug)]
pub struct IdsArgs {
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Runs `berth pause` or `berth unpause`.
pub async fn pause(conn: &Conn, a: IdsArgs, paused: bool) -> Result<()> {
    each(&a.containers, |id| async move {
        conn.pause_container(&id, paused).await?;
        Ok(id)
    })
    .await
}

/// `berth rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL).
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Remove anonymous volumes associated with the container.
    #[arg(short = 'v', long = "volumes")]
    pub volumes: bool,
    /// Containers.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

/// Runs `berth rm`.
pub async fn rm(conn: &Conn, a: RmArgs) -> Result<()> {
    each(&a.containers, |id| async move {
        conn.remove_container(&id, a.force, a.volumes).await?;
        Ok(id)
    })
    .await
}

/// `berth rename`.
#[derive(Args, Debug)]
pub struct RenameArgs {
    /// The container.
    pub container: String,
    /// Its new name.
    pub new_name: String,
}

/// Runs `berth rename`.
pub async fn rename(conn: &Conn, a: RenameArgs) -> Result<()> {
    conn.rename_container(&a.container, &a.new_name).await?;
    Ok(())
}

/// Runs `berth wait`: prints each container's exit code.
pub async fn wait(conn: &Conn, a: IdsArgs) -> Result<()> {
    for id in a.containers {
        println!("{}", conn.wait_container(&id, WaitFor::NotRunning).await?);
    }
    Ok(())
}

/// Looks one container up.
pub async fn inspect_one(conn: &Conn, id: &str) -> Result<pb::ContainerDetail> {
    Ok(conn.inspect_container(id).await?)
}

/// `berth inspect` / `berth container inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format the output using a Go-style template ({{.State.Status}}) or json.
    #[arg(short = 'f', long = "format")]
    pub format: Option<String>,
    /// Only objects of this type: container, image, network or volume.
    #[arg(long = "type", value_parser = ["container", "image", "network", "volume"])]
    pub kind: Option<String>,
    /// Objects to inspect.
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// One object of the named type, as Docker's inspect shows it.
async fn inspect_as(
    conn: &Conn,
    kind: &str,
    name: &str,
) -> Result<serde_json::Value, berth_client::Error> {
    match kind {
        "image" => conn.inspect_image_json(name).await,
        "network" => Ok(berth_client::networks::docker_json(
            &conn.inspect_network(name).await?,
        )),
        "volume" => Ok(berth_client::volumes::docker_json(
            &conn.inspect_volume(name).await?,
        )),
        _ => conn.inspect_container_json(name).await,
    }
}

/// Runs `berth container inspect`; with `any_type`, names that are not
/// containers are looked up as images, networks and volumes, in Docker's
/// order (`berth inspect`), unless `--type` names one.
pub async fn inspect(conn: &Conn, a: InspectArgs, any_type: bool) -> Result<()> {
    let kinds: Vec<&str> = match (&a.kind, any_type) {
        (Some(k), true) => vec![k.as_str()],
        (_, false) => vec!["container"],
        (None, true) => vec!["container", "image", "network", "volume"],
    };
    let mut docs = Vec::new();
    let mut failed = Vec::new();
    'names: for name in &a.names {
        for kind in &kinds {
            match inspect_as(conn, kind, name).await {
                Ok(doc) => {
                    docs.push(doc);
                    continue 'names;
                }
                Err(e) if kinds.len() > 1 && matches!(e.kind(), ErrorKind::NotFound(_)) => {}
                Err(e) => {
                    failed.push(e.into());
                    continue 'names;
                }
            }
        }
        failed.push(anyhow::anyhow!("No such object: {name}"));
    }
    format::print_inspected(a.format.as_deref(), &docs, failed)
}

/// `berth ps`.
#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running).
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Only display container IDs.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Filter output based on conditions provided (status=, name=, ancestor=, …).
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output: table, json, or a template ({{.ID}} {{.Names}}).
    #[arg(long)]
    pub format: Option<String>,
    /// Show n last created containers.
    #[arg(short = 'n', long = "last")]
    pub last: Option<u32>,
    /// Show the latest created container.
    #[arg(short = 'l', long = "latest")]
    pub latest: bool,
    /// Don't truncate output.
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Display total file sizes.
    #[arg(short = 's', long = "size")]
    pub size: bool,
}

/// Runs `berth ps`.
pub async fn ps(conn: &Conn, a: PsArgs) -> Result<()> {
    let mut filters: HashMap<String, pb::StringList> = HashMap::new();
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("the filter '{f}' is not KEY=VALUE (e.g. status=exited)"))?;
        const STATES: [&str; 7] = [
            "created",
            "restarting",
            "running",
            "removing",
            "paused",
            "exited",
            "dead",
        ];
        if k == "status" && !STATES.contains(&v) {
            bail!(
                "Invalid filter '{f}': a status is one of {}",
                STATES.join(", ")
            );
        }
        filters
            .entry(k.to_string())
            .or_default()
            .values
            .push(v.to_string());
    }
    let limit = if a.latest { 1 } else { a.last.unwrap_or(0) };
    let req = pb::ListContainersRequest {
        all: a.all || limit > 0,
        filters,
        limit,
        size: a.size,
    };
    let list = conn.list_containers(req).await?;
    if a.quiet {
        for c in &list {
            println!(
                "{}",
                if a.no_trunc {
                    c.id.clone()
                } else {
                    c.id[..12].to_string()
                }
            );
        }
        return Ok(());
    }
    let rows: Vec<serde_json::Value> = list
        .iter()
        .map(|c| {
            let created = c.created.as_ref().map_or(0, |t| t.seconds);
            let mut command = c.command.clone();
            if !a.no_trunc && command.chars().count() > 20 {
                command = format!("{}…", command.chars().take(19).collect::<String>());
            }
            serde_json::json!({
                "ID": if a.no_trunc { c.id.clone() } else { c.id[..12].to_string() },
                "Image": if c.image == c.image_id && !a.no_trunc {
                    c.image_id.trim_start_matches("sha256:").chars().take(12).collect()
                } else {
                    c.image.clone()
                },
                "Command": format!("\"{command}\""),
                "CreatedAt": chrono::DateTime::from_timestamp(created, 0).map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()).unwrap_or_default(),
                "RunningFor": format::ago(created),
                "Status": c.status,
                "State": c.state,
                "Ports": crate::ports::column(&c.ports),
                "Names": c.names.iter().map(|n| n.trim_start_matches('/')).collect::<Vec<_>>().join(","),
                "Labels": c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
                "Size": match c.size_root_fs {
                    0 => format::size(c.size_rw),
                    all => format!("{} (virtual {})", format::size(c.size_rw), format::size(all)),
                },
                "Mounts": c.mounts.join(","),
            })
        })
        .collect();
    let mut columns = vec![
        ("CONTAINER ID", "ID"),
        ("IMAGE", "Image"),
        ("COMMAND", "Command"),
        ("CREATED", "RunningFor"),
        ("STATUS", "Status"),
        ("PORTS", "Ports"),
        ("NAMES", "Names"),
    ];
    if a.size {
        columns.push(("SIZE", "Size"));
    }
    format::print_rows(a.format.as_deref(), &rows, &columns)?;
    Ok(())
}

/// `berth top`.
#[derive(Args, Debug)]
pub struct TopArgs {
    /// The container.
    pub container: String,
    /// ps options.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// Runs `berth top`.
pub async fn top(conn: &Conn, a: TopArgs) -> Result<()> {
    let t = conn.top(&a.container, a.ps_args).await?;
    let titles: Vec<&str> = t.titles.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = t.processes.into_iter().map(|p| p.values).collect();
    format::table(&titles, &rows);
    Ok(())
}

/// `berth container …`.
#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// List containers.
    #[command(alias = "list", alias = "ps")]
    Ls(PsArgs),
    /// Create a new container.
    Create(crate::run::CreateArgs),
    /// Create and run a new container.
    Run(crate::run::RunArgs),
    /// Start stopped containers.
    Start(StartArgs),
    /// Stop running containers.
    Stop(StopArgs),
    /// Restart containers.
    Restart(StopArgs),
    /// Kill running containers.
    Kill(KillArgs),
    /// Pause all processes within containers.
    Pause(IdsArgs),
    /// Unpause all processes within containers.
    Unpause(IdsArgs),
    /// Remove containers.
    Rm(RmArgs),
    /// Rename a container.
    Rename(RenameArgs),
    /// Block until containers stop, then print their exit codes.
    Wait(IdsArgs),
    /// Display detailed information on containers.
    Inspect(InspectArgs),
    /// Display the running processes of a container.
    Top(TopArgs),
    /// Fetch the logs of a container.
    Logs(crate::observe::LogsArgs),
    /// Display a live stream of resource usage.
    Stats(crate::observe::StatsArgs),
    /// Run a command in a running container.
    Exec(session::ExecArgs),
    /// Attach to a running container.
    Attach(session::AttachArgs),
    /// Remove all stopped containers.
    Prune(PruneArgs),
}

/// `berth container prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long = "force")]
    pub force: bool,
}

/// Runs `berth container prune`.
pub async fn prune(conn: &Conn, a: PruneArgs) -> Result<()> {
    let warning =
        "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?";
    if !crate::ask::confirm(a.force, warning)? {
        return Ok(());
    }
    let r = conn
        .prune_containers(pb::PruneContainersRequest::default())
        .await?;
    if !r.deleted.is_empty() {
        println!("Deleted Containers:");
        for d in &r.deleted {
            println!("{d}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", format::size(r.space_reclaimed));
    Ok(())
}

/// Runs `berth container …`.
pub async fn container(conn: &Conn, cmd: ContainerCommand) -> Result<()> {
    match cmd {
        ContainerCommand::Ls(a) => ps(conn, a).await,
        ContainerCommand::Create(a) => crate::run::create(conn, a).await,
        ContainerCommand::Run(a) => crate::run::run(conn, a).await,
        ContainerCommand::Start(a) => start(conn, a).await,
        ContainerCommand::Stop(a) => stop(conn, a).await,
        ContainerCommand::Restart(a) => restart(conn, a).await,
        ContainerCommand::Kill(a) => kill(conn, a).await,
        ContainerCommand::Pause(a) => pause(conn, a, true).await,
        ContainerCommand::Unpause(a) => pause(conn, a, false).await,
        ContainerCommand::Rm(a) => rm(conn, a).await,
        ContainerCommand::Rename(a) => rename(conn, a).await,
        ContainerCommand::Wait(a) => wait(conn, a).await,
        ContainerCommand::Inspect(a) => inspect(conn, a, false).await,
        ContainerCommand::Top(a) => top(conn, a).await,
        ContainerCommand::Logs(a) => crate::observe::logs(conn, a).await,
        ContainerCommand::Stats(a) => crate::observe::stats(conn, a).await,
        ContainerCommand::Exec(a) => session::exec(conn, a).await,
        ContainerCommand::Attach(a) => session::attach_cmd(conn, a).await,
        ContainerCommand::Prune(a) => prune(conn, a).await,
    }
}
