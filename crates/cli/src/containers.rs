//! Container verbs: create, run, start, stop, kill, restart, pause,
//! unpause, rm, rename, wait, inspect, ps, top, prune.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use berth_client::containers::WaitFor;
use berth_client::types as pb;
use berth_client::{ErrorKind, Object};
use clap::{Args, Subcommand};

use crate::{format, session, Conn, Exit};

/// Flags shared by `create` and `run` (`-h` is the hostname, as in
/// Docker, so help is `--help` only).
#[derive(Args, Debug, Clone)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to copy it from here).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long = "env-file")]
    pub env_file: Vec<std::path::PathBuf>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: name|uid[:group|gid]).
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Overwrite the image's ENTRYPOINT.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Container host name.
    #[arg(short = 'h', long = "hostname")]
    pub hostname: Option<String>,
    /// Keep STDIN open even if not attached.
    #[arg(short = 'i', long = "interactive")]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// Automatically remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Run an init inside the container that forwards signals and reaps processes.
    #[arg(long)]
    pub init: bool,
    /// Mount the container's root filesystem as read only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Give extended privileges to this container.
    #[arg(long)]
    pub privileged: bool,
    /// PID namespace to use: host, or leave out for the container's own.
    #[arg(long = "pid", default_value = "")]
    pub pid: String,
    /// Add Linux capabilities.
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities.
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Ulimit options (name=soft[:hard]).
    #[arg(long = "ulimit")]
    pub ulimit: Vec<String>,
    /// Memory limit (e.g. 512m, 1g).
    #[arg(short = 'm', long = "memory")]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs (e.g. 0.5).
    #[arg(long)]
    pub cpus: Option<f64>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// Tune container pids limit.
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Restart policy: no, on-failure[:max-retries], always, unless-stopped.
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Signal to stop the container.
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container.
    #[arg(long = "stop-timeout")]
    pub stop_timeout: Option<i32>,
    /// Set metadata on a container (KEY=VALUE).
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip).
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Set custom DNS servers.
    #[arg(long)]
    pub dns: Vec<String>,
    /// Connect a container to a network.
    #[arg(long = "network", alias = "net")]
    pub network: Option<String>,
    /// Publish a container's port(s) to the host.
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Add network-scoped alias for the container.
    #[arg(long = "network-alias")]
    pub network_alias: Vec<String>,
    /// Bind mount a volume.
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container.
    #[arg(long = "mount")]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory.
    #[arg(long = "tmpfs")]
    pub tmpfs: Vec<String>,
    /// Set platform if server is multi-platform capable.
    #[arg(long)]
    pub platform: Option<String>,
    /// The image to run.
    pub image: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `berth run`.
#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run container in background and print container ID.
    #[arg(short = 'd', long = "detach")]
    pub detach: bool,
    /// Proxy received signals to the process.
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container.
    #[arg(long = "detach-keys", default_value = crate::detach::DEFAULT)]
    pub detach_keys: String,
    #[command(flatten)]
    pub create: CreateArgs,
}

/// Parses "512m", "1g", "1024" (bytes).
pub fn parse_bytes(text: &str) -> Result<i64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().with_context(|| {
        format!("invalid size {text:?}: use a number with an optional unit (b, k, m, g)")
    })?;
    Ok((n * mult as f64) as i64)
}

fn parse_env_file(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the env file {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(expand_env)
        .collect())
}

/// "KEY=VALUE" stays; "KEY" takes this process's value (dropped when unset).
fn expand_env(pair: &str) -> Option<String> {
    if pair.contains('=') {
        Some(pair.to_string())
    } else {
        std::env::var(pair).ok().map(|v| format!("{pair}={v}"))
    }
}

/// The request for `create`/`run`.
pub fn request(a: &CreateArgs) -> Result<pb::CreateContainerRequest> {
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(parse_env_file(f)?);
    }
    env.extend(a.env.iter().filter_map(|e| expand_env(e)));
    let mut ulimits = Vec::new();
    for u in &a.ulimit {
        let (name, vals) = u
            .split_once('=')
            .with_context(|| format!("invalid --ulimit {u:?}: use name=soft[:hard]"))?;
        let (soft, hard) = vals.split_once(':').unwrap_or((vals, vals));
        let num = |s: &str| {
            s.parse::<i64>()
                .with_context(|| format!("invalid --ulimit {u:?}: limits are numbers"))
        };
        ulimits.push(pb::Ulimit {
            name: name.into(),
            soft: num(soft)?,
            hard: num(hard)?,
        });
    }
    let (policy, retries) = a.restart.split_once(':').unwrap_or((&a.restart, "0"));
    if !["no", "on-failure", "always", "unless-stopped"].contains(&policy) {
        bail!("invalid restart policy {:?}: use no, on-failure[:max-retries], always or unless-stopped", a.restart);
    }
    let retries: u32 = retries.parse().with_context(|| {
        format!(
            "invalid restart policy {:?}: the retry count is a number",
            a.restart
        )
    })?;
    if retries > 0 && policy != "on-failure" {
        bail!("maximum retry count cannot be used with restart policy '{policy}'");
    }
    if a.rm && policy != "no" {
        bail!("conflicting options: cannot specify both --restart and --rm");
    }
    if a.cpus.is_some_and(|c| c <= 0.0) {
        bail!("invalid --cpus: give a positive number such as 0.5");
    }
    let entrypoint = a.entrypoint.clone();
    let labels = a
        .label
        .iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    Ok(pb::CreateContainerRequest {
        name: a.name.clone().unwrap_or_default(),
        image: a.image.clone(),
        cmd: a.command.clone(),
        entrypoint_set: entrypoint.is_some(),
        entrypoint: entrypoint
            .filter(|e| !e.is_empty())
            .map(|e| vec![e])
            .unwrap_or_default(),
        env,
        working_dir: a.workdir.clone().unwrap_or_default(),
        user: a.user.clone().unwrap_or_default(),
        hostname: a.hostname.clone().unwrap_or_default(),
        tty: a.tty,
        open_stdin: a.interactive,
        auto_remove: a.rm,
        init: a.init,
        read_only: a.read_only,
        privileged: a.privileged,
        pid_mode: a.pid.clone(),
        cap_add: a.cap_add.clone(),
        cap_drop: a.cap_drop.clone(),
        ulimits,
        resources: Some(pb::Resources {
            memory_bytes: a
                .memory
                .as_deref()
                .map(parse_bytes)
                .transpose()?
                .unwrap_or(0),
            memory_swap_bytes: match a.memory_swap.as_deref() {
                Some("-1") => -1,
                Some(s) => parse_bytes(s)?,
                None => 0,
            },
            nano_cpus: a.cpus.map(|c| (c * 1e9) as i64).unwrap_or(0),
            cpu_shares: a.cpu_shares.unwrap_or(0),
            pids_limit: a.pids_limit.unwrap_or(0),
        }),
        restart_policy: Some(pb::RestartPolicy {
            name: policy.into(),
            maximum_retry_count: retries,
        }),
        network: a.network.clone().unwrap_or_default(),
        dns: a.dns.clone(),
        extra_hosts: a.add_host.clone(),
        labels,
        stop_signal: a.stop_signal.clone().unwrap_or_default(),
        stop_timeout: a.stop_timeout.unwrap_or(0),
        platform: a.platform.clone().unwrap_or_default(),
        ports: a
            .publish
            .iter()
            .map(|p| crate::ports::parse_publish(p))
            .collect::<Result<Vec<_>>>()?
            .concat(),
        publish_all: a.publish_all,
        network_aliases: a.network_alias.clone(),
        mounts: a
            .volume
            .iter()
            .map(|v| crate::mounts::parse_volume(v))
            .chain(a.mount.iter().map(|m| crate::mounts::parse_mount(m)))
            .chain(a.tmpfs.iter().map(|t| crate::mounts::parse_tmpfs(t)))
            .collect::<Result<Vec<_>>>()?,
    })
}

/// Creates a container, pulling its image first when it is missing.
async fn create_pulling(conn: &Conn, req: pb::CreateContainerRequest) -> Result<String> {
    let image = req.image.clone();
    let created = conn
        .create_pulling(req, |p| match p {
            None => eprintln!("Unable to find image '{image}' locally"),
            Some(berth_client::images::Progress::Pulled(done)) => eprintln!(
                "Status: Downloaded newer image for {}",
                berth_client::names::familiar(&done.reference)
            ),
            Some(_) => {}
        })
        .await?;
    created
        .warnings
        .iter()
        .for_each(|w| eprintln!("WARNING: {w}"));
    Ok(created.id)
}

/// Runs `berth create`.
pub async fn create(conn: &Conn, a: CreateArgs) -> Result<()> {
    let id = create_pulling(conn, request(&a)?)
        .await
        .map_err(Exit::daemon)?;
    println!("{id}");
    Ok(())
}

/// Runs `berth run`.
pub async fn run(conn: &Conn, a: RunArgs) -> Result<()> {
    let detach_keys = crate::detach::parse(&a.detach_keys)?;
    let id = create_pulling(conn, request(&a.create)?)
        .await
        .map_err(Exit::daemon)?;
    if a.detach {
        conn.start_container(&id)
            .await
            .map_err(|e| Exit::daemon(e.into()))?;
        println!("{id}");
        return Ok(());
    }
    let ended = session::attach(
        conn,
        session::AttachPlan {
            id: id.clone(),
            start: true,
            stdin: a.create.interactive,
            tty: a.create.tty,
            sig_proxy: a.sig_proxy && !a.create.tty,
            detach_keys,
        },
    )
    .await?;
    let session::Ended::Exited(code) = ended else {
        // Detached: the container runs on, as with -d.
        return Ok(());
    };
    if a.create.rm {
        // Docker's `run --rm` returns once the container is gone.
        let _ = conn.wait_container(&id, WaitFor::Removed).await;
    }
    if code != 0 {
        return Err(Exit(code).into());
    }
    Ok(())
}

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

/// Runs one action per named thing (containers, networks, volumes),
/// printing each name as Docker does, and fails (exit 1) if any failed.
pub async fn each<F, Fut>(ids: &[String], f: F) -> Result<()>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<String>>,
{
    let mut failed = false;
    for id in ids {
        match f(id.clone()).await {
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
    /// Objects to inspect.
    #[arg(required = true)]
    pub names: Vec<String>,
}

/// Runs `berth container inspect`; with `images_too`, names that are not
/// containers are looked up as images (`berth inspect`).
pub async fn inspect(conn: &Conn, a: InspectArgs, images_too: bool) -> Result<()> {
    let mut docs = Vec::new();
    for name in &a.names {
        match conn.inspect_container_json(name).await {
            Ok(doc) => docs.push(doc),
            Err(e) if images_too && e.kind() == ErrorKind::NotFound(Object::Container) => {
                docs.push(
                    conn.inspect_image_json(name)
                        .await
                        .map_err(|_| anyhow::anyhow!("no such object: {name}"))?,
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    match a.format.as_deref() {
        None => println!("{}", serde_json::to_string_pretty(&docs)?),
        Some(f) => {
            for d in &docs {
                println!("{}", format::template(f, d));
            }
        }
    }
    Ok(())
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
}

/// Runs `berth ps`.
pub async fn ps(conn: &Conn, a: PsArgs) -> Result<()> {
    let mut filters: HashMap<String, pb::StringList> = HashMap::new();
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("the filter '{f}' is not KEY=VALUE (e.g. status=exited)"))?;
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
        size: false,
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
                "Image": c.image,
                "Command": format!("\"{command}\""),
                "CreatedAt": chrono::DateTime::from_timestamp(created, 0).map(|t| t.to_string()).unwrap_or_default(),
                "RunningFor": format::ago(created),
                "Status": c.status,
                "State": c.state,
                "Ports": crate::ports::column(&c.ports),
                "Names": c.names.iter().map(|n| n.trim_start_matches('/')).collect::<Vec<_>>().join(","),
                "Labels": c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
            })
        })
        .collect();
    match a.format.as_deref() {
        Some("json") => {
            for r in &rows {
                println!("{r}");
            }
        }
        Some(t) if !t.starts_with("table") => {
            for r in &rows {
                println!("{}", format::template(t, r));
            }
        }
        _ => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    [
                        "ID",
                        "Image",
                        "Command",
                        "RunningFor",
                        "Status",
                        "Ports",
                        "Names",
                    ]
                    .iter()
                    .map(|k| r[*k].as_str().unwrap_or_default().to_string())
                    .collect()
                })
                .collect();
            format::table(
                &[
                    "CONTAINER ID",
                    "IMAGE",
                    "COMMAND",
                    "CREATED",
                    "STATUS",
                    "PORTS",
                    "NAMES",
                ],
                &cells,
            );
        }
    }
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
    Create(CreateArgs),
    /// Create and run a new container.
    Run(RunArgs),
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
pub async fn prune(conn: &Conn, _a: PruneArgs) -> Result<()> {
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
        ContainerCommand::Create(a) => create(conn, a).await,
        ContainerCommand::Run(a) => run(conn, a).await,
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
