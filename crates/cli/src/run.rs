//! `berth create` and `berth run`: Docker's flags turned into a creation
//! request, the image pulled when it is missing, and an attached run that
//! exits with the container's code.

use anyhow::{bail, Context, Result};
use berth_client::containers::WaitFor;
use berth_client::types as pb;
use clap::Args;

use crate::{session, Conn, Exit};

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
    #[arg(short = 'i', long = "interactive", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, default_value_t = false)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long = "tty", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, default_value_t = false)]
    pub tty: bool,
    /// Automatically remove the container when it exits.
    #[arg(long = "rm", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, default_value_t = false)]
    pub rm: bool,
    /// Run an init inside the container that forwards signals and reaps processes.
    #[arg(long = "init", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, default_value_t = false)]
    pub init: bool,
    /// Mount the container's root filesystem as read only.
    #[arg(long = "read-only", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, default_value_t = false)]
    pub read_only: bool,
    /// Give extended privileges to this container.
    #[arg(long = "privileged", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, default_value_t = false)]
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
    /// Add additional groups to join.
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// Sysctl options (KEY=VALUE).
    #[arg(long = "sysctl")]
    pub sysctl: Vec<String>,
    /// Size of /dev/shm (e.g. 128m).
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Security options (no-new-privileges, seccomp=unconfined, …).
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Expose a port or a range of ports.
    #[arg(long = "expose")]
    pub expose: Vec<String>,
    /// Mount the volumes of the given container (CONTAINER[:ro|:rw]).
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Write the container ID to the file.
    #[arg(long)]
    pub cidfile: Option<std::path::PathBuf>,
    /// Pull image before running: always, missing or never.
    #[arg(long, default_value = "missing", value_parser = ["always", "missing", "never"])]
    pub pull: String,
    /// Add a host device to the container (HOST[:CONTAINER][:PERMS]).
    #[arg(long = "device")]
    pub device: Vec<String>,
    /// Log driver options (max-size=10m, max-file=3).
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    #[command(flatten)]
    pub health: crate::health::HealthArgs,
    /// The image, then the container's command and its arguments: every
    /// word after the image is the container's, flags and `--` too (as
    /// Docker stops parsing its own flags at the image).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    pub args: Vec<String>,
}

impl CreateArgs {
    /// The image, or an error for a flag Berth does not know (which lands
    /// here as the first word, since flags stop at the image).
    pub fn image(&self) -> Result<&str> {
        let first = self.args.first().map(String::as_str).unwrap_or_default();
        if first.starts_with('-') && first.len() > 1 {
            bail!("unknown flag: {first}\nSee 'berth run --help'.");
        }
        Ok(first)
    }

    /// The container's command and its arguments (after the image).
    pub fn command(&self) -> &[String] {
        self.args.get(1..).unwrap_or_default()
    }
}

/// `berth run`.
#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run container in background and print container ID.
    #[arg(short = 'd', long = "detach", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, default_value_t = false)]
    pub detach: bool,
    /// Attach to STDIN, STDOUT or STDERR (repeatable).
    #[arg(short = 'a', long = "attach", value_parser = ["stdin", "stdout", "stderr"])]
    pub attach: Vec<String>,
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
    let n: f64 = num.parse().map_err(|_| {
        anyhow::anyhow!("invalid size {text:?}: use a number with an optional unit (b, k, m, g)")
    })?;
    Ok((n * mult as f64) as i64)
}

fn parse_env_file(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let why = e.to_string();
        let why = why
            .split(" (os error")
            .next()
            .unwrap_or_default()
            .to_string();
        anyhow::anyhow!("cannot read the env file {}: {why}", path.display())
    })?;
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
        image: a.image()?.to_string(),
        cmd: a.command().to_vec(),
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
        attach: attached(&[], a.interactive),
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
        group_add: a.group_add.clone(),
        sysctls: a
            .sysctl
            .iter()
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .with_context(|| format!("invalid --sysctl {kv:?}: write KEY=VALUE"))
            })
            .collect::<Result<_>>()?,
        shm_size: a
            .shm_size
            .as_deref()
            .map(parse_bytes)
            .transpose()?
            .unwrap_or(0),
        cpuset_cpus: a.cpuset_cpus.clone().unwrap_or_default(),
        security_opt: a.security_opt.clone(),
        expose: a.expose.clone(),
        healthcheck: a.health.config()?,
        devices: a
            .device
            .iter()
            .map(|d| crate::mounts::parse_device(d))
            .collect::<Result<_>>()?,
        log_opts: a
            .log_opt
            .iter()
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .with_context(|| {
                        format!("invalid key value pair format in logging opts: {kv:?}")
                    })
            })
            .collect::<Result<_>>()?,
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

/// Creates a container as `--pull` says (pulling a missing image by
/// default), and writes its id to `--cidfile`.
async fn create_pulling(
    conn: &Conn,
    a: &CreateArgs,
    req: pb::CreateContainerRequest,
) -> Result<String> {
    if let Some(f) = &a.cidfile {
        if f.exists() {
            bail!(
                "container ID file found, make sure the other container isn't running or delete {}",
                f.display()
            );
        }
    }
    if let Some(cpus) = a.cpus {
        let host = conn.info().await?.cpus;
        if host > 0 && cpus > f64::from(host) {
            bail!(
                "range of CPUs is from 0.01 to {host}.00, as there are only {host} CPUs available"
            );
        }
    }
    let mut req = req;
    for spec in &a.volumes_from {
        for m in conn.volumes_from(spec).await? {
            // A mount of the new container's own at the same place wins.
            if !req.mounts.iter().any(|own| own.target == m.target) {
                req.mounts.push(m);
            }
        }
    }
    let image = req.image.clone();
    let say_pulled = |p: Option<&berth_client::images::Progress>| match p {
        None => eprintln!("Unable to find image '{image}' locally"),
        Some(berth_client::images::Progress::Pulled(done)) => eprintln!(
            "Status: Downloaded newer image for {}",
            berth_client::names::familiar(&done.reference)
        ),
        Some(_) => {}
    };
    let created = match a.pull.as_str() {
        "never" => conn.create_container(req).await?,
        "always" => {
            conn.pull_all(&req.image, &req.platform).await?;
            conn.create_container(req).await?
        }
        _ => conn.create_pulling(req, say_pulled).await?,
    };
    created
        .warnings
        .iter()
        .for_each(|w| eprintln!("WARNING: {w}"));
    if let Some(f) = &a.cidfile {
        std::fs::write(f, &created.id)
            .with_context(|| format!("cannot write the container ID file {}", f.display()))?;
    }
    Ok(created.id)
}

/// The streams a client attaches, as Docker's CLI records them in
/// `Config.AttachStd*`: those `-a` names, or stdout and stderr when it
/// names none; stdin too with `-i`.
fn attached(names: &[String], interactive: bool) -> Vec<String> {
    ["stdin", "stdout", "stderr"]
        .into_iter()
        .filter(|s| {
            names.iter().any(|n| n == s)
                || (*s == "stdin" && interactive)
                || (*s != "stdin" && names.is_empty())
        })
        .map(String::from)
        .collect()
}

/// Runs `berth create`.
pub async fn create(conn: &Conn, a: CreateArgs) -> Result<()> {
    let req = request(&a).map_err(Exit::daemon)?;
    // Docker's `create` refuses bad flags with 125 but reports what the
    // engine refuses with 1 (`run` uses 125 for both).
    let id = create_pulling(conn, &a, req).await?;
    println!("{id}");
    Ok(())
}

/// Runs `berth run`.
pub async fn run(conn: &Conn, a: RunArgs) -> Result<()> {
    let detach_keys = crate::detach::parse(&a.detach_keys).map_err(Exit::daemon)?;
    if a.detach && !a.attach.is_empty() {
        return Err(Exit::daemon(anyhow::anyhow!(
            "conflicting options: cannot specify both --attach and --detach"
        )));
    }
    let mut req = request(&a.create).map_err(Exit::daemon)?;
    req.attach = if a.detach {
        Vec::new()
    } else {
        attached(&a.attach, a.create.interactive)
    };
    let id = create_pulling(conn, &a.create, req)
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
            stdin: a.create.interactive || a.attach.iter().any(|s| s == "stdin"),
            stdout: a.attach.is_empty() || a.attach.iter().any(|s| s == "stdout"),
            stderr: a.attach.is_empty() || a.attach.iter().any(|s| s == "stderr"),
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
