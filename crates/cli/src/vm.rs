//! `berth vm` (also `berth machine`): boots, stops and inspects Berth's
//! Linux VM through the `berth-vm` manager. `start` leaves a supervisor
//! process running in the background (it health-checks and restarts the VM,
//! relays published ports and host file events) and returns once the agent
//! in the VM answers.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use berth_client::vm::{
    default_dir, Machine, Network, Progress, RunState, Settings, SharedFolder, Started,
};
use clap::{Args, Subcommand};

/// `berth vm …`
#[derive(Subcommand, Debug)]
pub enum VmCommand {
    /// Boot the VM and keep it running in the background.
    Start(StartArgs),
    /// Power the VM off cleanly.
    Stop(DirArgs),
    /// Power the VM off, then boot it again.
    Restart(StartArgs),
    /// Show whether the VM runs, where its agent is, and its boot time.
    Status(StatusArgs),
    /// Show the VM's console (kernel, init and agent messages).
    Logs(LogsArgs),
    /// Run the VM supervisor in the foreground (what `start` runs).
    #[command(hide = true)]
    Supervise(DirArgs),
    /// Copy stdin and stdout to a TCP address (QEMU runs this for each
    /// guest connection to a forwarded host port).
    #[command(hide = true)]
    ConnectStdio {
        /// HOST:PORT.
        address: String,
    },
}

/// Which VM.
#[derive(Args, Debug, Clone)]
pub struct DirArgs {
    /// The VM's state directory.
    #[arg(long, env = "BERTH_VM_DIR")]
    pub dir: Option<PathBuf>,
}

impl DirArgs {
    fn path(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(default_dir)
    }
}

/// `berth vm start` and `restart`: settings given here are kept for later boots.
#[derive(Args, Debug)]
pub struct StartArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// The guest image directory (from scripts/build-vm-image.sh).
    #[arg(long)]
    image: Option<PathBuf>,
    /// Virtual CPUs.
    #[arg(long)]
    cpus: Option<u32>,
    /// Memory in MiB.
    #[arg(long)]
    memory: Option<u32>,
    /// A host folder to share at the same path, PATH[:ro] (repeatable; replaces the list).
    #[arg(long = "share")]
    shares: Vec<String>,
    /// Share no folders.
    #[arg(long, conflicts_with = "shares")]
    no_shares: bool,
    /// kvm, hvf, whpx or tcg.
    #[arg(long)]
    accel: Option<String>,
    /// nat, none, or restricted (reaches only --forward ports on the host's loopback).
    #[arg(long)]
    network: Option<String>,
    /// A host loopback port the guest may reach at 10.0.2.100 (repeatable; with --network restricted).
    #[arg(long = "forward")]
    forwards: Vec<u16>,
    /// Stay in the foreground (print progress and run until Ctrl-C).
    #[arg(long)]
    foreground: bool,
}

/// `berth vm status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// json for the raw state.
    #[arg(long)]
    format: Option<String>,
}

/// `berth vm logs`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    #[command(flatten)]
    dir: DirArgs,
    /// Keep printing what the console writes.
    #[arg(short, long)]
    follow: bool,
}

/// Runs a `berth vm` command.
pub async fn vm(cmd: VmCommand) -> Result<()> {
    match cmd {
        VmCommand::Start(a) => start(a).await,
        VmCommand::Restart(a) => {
            stop(&a.dir.path()).await?;
            start(a).await
        }
        VmCommand::Stop(d) => stop(&d.path()).await,
        VmCommand::Status(a) => status(a).await,
        VmCommand::Logs(a) => logs(a),
        VmCommand::Supervise(d) => supervise(&d.path(), false).await,
        VmCommand::ConnectStdio { address } => connect_stdio(&address),
    }
}

fn apply(a: &StartArgs, s: &mut Settings) -> Result<()> {
    if let Some(i) = &a.image {
        s.image = Some(std::path::absolute(i)?);
    }
    if let Some(c) = a.cpus {
        s.cpus = c;
    }
    if let Some(m) = a.memory {
        s.memory_mib = m;
    }
    if a.no_shares {
        s.shares.clear();
    } else if !a.shares.is_empty() {
        s.shares = a
            .shares
            .iter()
            .map(|sh| {
                let (path, ro) = match sh.strip_suffix(":ro") {
                    Some(p) => (p, true),
                    None => (sh.as_str(), false),
                };
                Ok(SharedFolder {
                    path: std::path::absolute(path)?,
                    read_only: ro,
                })
            })
            .collect::<Result<_>>()?;
    }
    if let Some(acc) = &a.accel {
        s.accel = Some(acc.clone());
    }
    match a.network.as_deref() {
        None if a.forwards.is_empty() => {}
        None | Some("restricted") => {
            s.network = Network::Restricted {
                forwards: a.forwards.clone(),
            }
        }
        Some("nat") => s.network = Network::Nat,
        Some("none") => s.network = Network::None,
        Some(other) => bail!("'{other}' is not a VM network: use nat, none or restricted"),
    }
    Ok(())
}

async fn start(a: StartArgs) -> Result<()> {
    let dir = a.dir.path();
    let mut settings = Settings::load(&dir)?;
    apply(&a, &mut settings)?;
    settings.save(&dir)?;
    let alive = RunState::load(&dir).filter(|r| r.supervisor_alive());
    if a.foreground && alive.is_none() {
        return supervise(&dir, true).await;
    }
    let started =
        berth_client::vm::start_background(&std::env::current_exe()?, &dir, |p| match p {
            Progress::Booting { .. } => eprintln!("Booting the VM…"),
            Progress::Crashed { reason } => eprintln!("The VM crashed ({reason}); restarting it"),
            _ => {}
        })
        .await?;
    match started {
        Started::AlreadyRunning { endpoint } => {
            println!("The VM is already running; its agent is at {endpoint}")
        }
        Started::Ready { boot_ms, endpoint } => {
            println!(
                "The VM is ready ({:.1} s); its agent is at {endpoint}",
                boot_ms as f64 / 1000.0
            );
            println!("Use it with: export BERTH_HOST='{endpoint}'");
            // The supervisor relays the Docker API: QEMU's to a socket in
            // the VM's directory, WSL2's to a named pipe.
            if endpoint.starts_with("hybrid-vsock://") {
                let socket = dir.join(berth_client::vm::DOCKER_SOCKET);
                println!(
                    "Docker clients: export DOCKER_HOST=unix://{}",
                    socket.display()
                );
            } else if cfg!(windows) && endpoint.starts_with("tcp://") {
                println!(
                    "Docker clients: $env:DOCKER_HOST = \"{}\"",
                    berth_client::vm::DOCKER_PIPE_HOST
                );
            }
        }
    }
    Ok(())
}

/// Runs the supervisor here until SIGTERM or Ctrl-C.
async fn supervise(dir: &std::path::Path, human: bool) -> Result<()> {
    let machine = Machine::open(dir)?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("signal handler");
        let mut int = signal(SignalKind::interrupt()).expect("signal handler");
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        let _ = tx.send(true);
    });
    let report = move |p: &Progress| {
        // The starting CLI may have gone: its pipe closing is fine.
        let line = if human {
            format!("{p:?}")
        } else {
            serde_json::to_string(p).unwrap_or_default()
        };
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    machine.run(rx, &report).await
}

async fn stop(dir: &std::path::Path) -> Result<()> {
    if berth_client::vm::stop(dir).await? {
        println!("The VM is stopped");
    } else {
        println!("The VM is not running");
    }
    Ok(())
}

async fn status(a: StatusArgs) -> Result<()> {
    let dir = a.dir.path();
    let run = RunState::load(&dir).unwrap_or_default();
    let alive = run.supervisor_alive();
    let phase = if alive {
        run.phase.clone()
    } else {
        "stopped".into()
    };
    let answering = if alive && phase == "ready" {
        let options = berth_client::ConnectOptions {
            host: Some(run.endpoint.clone()),
            connect_timeout: Some(Duration::from_secs(5)),
            ..Default::default()
        };
        let agent = berth_client::Client::new(options);
        tokio::time::timeout(Duration::from_secs(5), agent.ping())
            .await
            .is_ok_and(|r| r.is_ok())
    } else {
        false
    };
    if a.format.as_deref() == Some("json") {
        let mut v = serde_json::to_value(&run)?;
        v["phase"] = phase.clone().into();
        v["agent_answers"] = answering.into();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("Status:    {phase}");
        if alive {
            println!("Backend:   {}", run.backend);
            println!(
                "Agent:     {} ({})",
                run.endpoint,
                if answering {
                    "answering"
                } else {
                    "not answering"
                }
            );
            if let Some(ms) = run.boot_ms {
                println!("Boot:      {:.1} s to agent-ready", ms as f64 / 1000.0);
            }
            println!("Restarts:  {}", run.restarts);
        }
        println!("Directory: {}", dir.display());
    }
    if phase == "ready" {
        Ok(())
    } else {
        Err(crate::Exit(1).into())
    }
}

fn logs(a: LogsArgs) -> Result<()> {
    let path = a.dir.path().join("console.log");
    let mut f = std::fs::File::open(&path)
        .with_context(|| format!("the VM has no console log yet ({})", path.display()))?;
    let mut out = std::io::stdout();
    std::io::copy(&mut f, &mut out)?;
    if !a.follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let pos = f.stream_position()?;
        if f.metadata()?.len() < pos {
            f.seek(SeekFrom::Start(0))?;
        }
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        out.write_all(&buf)?;
        out.flush()?;
    }
}

fn connect_stdio(address: &str) -> Result<()> {
    let conn = std::net::TcpStream::connect(address)
        .with_context(|| format!("cannot connect to {address}"))?;
    let mut up = conn.try_clone()?;
    let sender = std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut up);
        let _ = up.shutdown(std::net::Shutdown::Write);
    });
    let mut down = conn;
    std::io::copy(&mut down, &mut std::io::stdout().lock())?;
    let _ = sender.join();
    Ok(())
}
