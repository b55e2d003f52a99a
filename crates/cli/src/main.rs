//! `berth`: the command-line client. Docker's verbs, flags, output and exit
//! codes, over Berth's gRPC API.

mod ask;
mod build;
mod containers;
mod cp;
mod detach;
mod format;
mod health;
mod images;
mod mounts;
mod network;
mod observe;
mod ports;
mod progress;
mod run;
mod session;
mod system;
mod template;
mod transfer;
mod upload;
mod usage;
mod vm;
mod volume;

use berth_client::{ClientTls, ConnectOptions};
use clap::{Parser, Subcommand};

/// The connection to the agent every command uses (dialed on first use).
pub type Conn = berth_client::Client;

/// Docker-style containers, fast.
#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "Docker-style containers for Windows, macOS and Linux"
)]
struct Cli {
    /// The agent to talk to: unix:///path, tcp://host:port, vsock://CID:PORT, hybrid-vsock:///path?port=N.
    /// Unset: BERTH_HOST, else the local agent's socket, else a running VM.
    #[arg(short = 'H', long = "host", global = true)]
    host: Option<String>,
    /// CA certificate that signed the agent's (TLS over tcp://).
    #[arg(long = "tlscacert", global = true)]
    tls_ca: Option<std::path::PathBuf>,
    /// Client certificate (TLS over tcp://).
    #[arg(long = "tlscert", global = true)]
    tls_cert: Option<std::path::PathBuf>,
    /// Client key (TLS over tcp://).
    #[arg(long = "tlskey", global = true)]
    tls_key: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Download an image from a registry.
    Pull(images::PullArgs),
    /// Upload an image to a registry.
    Push(images::PushArgs),
    /// List images.
    Images(images::ListArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(images::ImageCommand),
    /// Give an image another name.
    Tag(images::TagArgs),
    /// Remove one or more images.
    Rmi(images::RmiArgs),
    /// Write images to a tar archive.
    Save(images::SaveArgs),
    /// Show the history of an image.
    History(images::HistoryArgs),
    /// Load images from a tar archive.
    Load(images::LoadArgs),
    /// Build an image from a Dockerfile.
    Build(build::BuildArgs),
    /// Manage builds.
    #[command(subcommand)]
    Builder(build::BuilderCommand),
    /// Log in to a registry.
    Login(system::LoginArgs),
    /// Log out from a registry.
    Logout(system::LogoutArgs),
    /// Show the client's and the agent's versions.
    Version(system::FormatArgs),
    /// Show system-wide information.
    Info(system::FormatArgs),
    /// Manage Berth itself.
    #[command(subcommand)]
    System(system::SystemCommand),
    /// Create and run a new container from an image.
    Run(run::RunArgs),
    /// Create a new container.
    Create(run::CreateArgs),
    /// Start one or more stopped containers.
    Start(containers::StartArgs),
    /// Stop one or more running containers.
    Stop(containers::StopArgs),
    /// Restart one or more containers.
    Restart(containers::StopArgs),
    /// Kill one or more running containers.
    Kill(containers::KillArgs),
    /// Pause all processes within one or more containers.
    Pause(containers::IdsArgs),
    /// Unpause all processes within one or more containers.
    Unpause(containers::IdsArgs),
    /// Remove one or more containers.
    Rm(containers::RmArgs),
    /// Rename a container.
    Rename(containers::RenameArgs),
    /// Block until containers stop, then print their exit codes.
    Wait(containers::IdsArgs),
    /// Return low-level information on containers or images.
    Inspect(containers::InspectArgs),
    /// List containers.
    Ps(containers::PsArgs),
    /// Display the running processes of a container.
    Top(containers::TopArgs),
    /// Fetch the logs of a container.
    Logs(observe::LogsArgs),
    /// Display a live stream of container resource usage.
    Stats(observe::StatsArgs),
    /// Get real-time events from the agent.
    Events(observe::EventsArgs),
    /// Run a command in a running container.
    Exec(session::ExecArgs),
    /// Attach to a running container's input and output.
    Attach(session::AttachArgs),
    /// Manage containers.
    #[command(subcommand)]
    Container(containers::ContainerCommand),
    /// Manage networks.
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// List port mappings or a specific mapping for the container.
    Port(ports::PortArgs),
    /// Manage volumes.
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Manage Berth's Linux VM (start, stop, status, logs).
    #[command(subcommand, alias = "machine")]
    Vm(vm::VmCommand),
    /// Create a new image from a container's changes.
    Commit(transfer::CommitArgs),
    /// Export a container's filesystem as a tar archive.
    Export(transfer::ExportArgs),
    /// Import the contents from a tarball to create a filesystem image.
    Import(transfer::ImportArgs),
    /// Inspect changes to files or directories on a container's filesystem.
    Diff(transfer::DiffArgs),
    /// Copy files/folders between a container and the local filesystem.
    Cp(transfer::CpArgs),
}

/// Ends the CLI with an exit code: the container's or command's own, or
/// 125 when the agent refused a `run`/`create` (Docker's codes).
#[derive(Debug)]
pub struct Exit(pub i32);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

impl Exit {
    /// An agent error during `run`/`create`/`exec`: printed, then Docker's
    /// code for its kind: 127 when the command was not found, 126 when it
    /// could not be run, 125 for everything else.
    pub fn daemon(e: anyhow::Error) -> anyhow::Error {
        eprintln!("Error: {e:#}");
        let code = e
            .downcast_ref::<berth_client::Error>()
            .map_or(125, |e| e.kind().run_exit_code());
        Exit(code).into()
    }
}

/// Parses the command line, exiting as Docker's CLI does on bad input
/// (see [`usage::refusal`]).
fn parse() -> Cli {
    use clap::CommandFactory;
    use std::io::Write;
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let args: Vec<String> = std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let r = usage::refusal(&e, &Cli::command(), &args);
            if r.to_stderr {
                let _ = std::io::stderr().write_all(r.text.as_bytes());
            } else {
                let _ = std::io::stdout().write_all(r.text.as_bytes());
            }
            std::process::exit(r.code);
        }
    }
}

fn main() {
    // Output cut short by its reader (`berth image inspect X | head`) ends
    // the program quietly with a broken pipe's status, as Docker's does,
    // instead of a panic. (SIGPIPE itself stays ignored: a broken
    // connection to the agent must be an error with a sentence, not a
    // silent death.)
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if text.starts_with("failed printing to std") && text.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
    let cli = parse();
    let conn = Conn::new(ConnectOptions {
        host: cli.host,
        tls: ClientTls {
            ca: cli.tls_ca,
            cert: cli.tls_cert,
            key: cli.tls_key,
        },
        connect_timeout: None,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Pull(a) => images::pull(&conn, a).await,
            Command::Push(a) => images::push(&conn, a).await,
            Command::Images(a) => images::list(&conn, a).await,
            Command::Image(c) => images::image(&conn, c).await,
            Command::Tag(a) => images::tag(&conn, a).await,
            Command::Rmi(a) => images::rmi(&conn, a).await,
            Command::Save(a) => images::save(&conn, a).await,
            Command::History(a) => images::history(&conn, a).await,
            Command::Load(a) => images::load(&conn, a).await,
            Command::Build(a) => build::build(&conn, a).await,
            Command::Builder(c) => build::builder(&conn, c).await,
            Command::Login(a) => system::login(&conn, a).await,
            Command::Logout(a) => system::logout(a),
            Command::Version(a) => system::version(&conn, a).await,
            Command::Info(a) => system::info(&conn, a).await,
            Command::System(c) => system::system(&conn, c).await,
            Command::Run(a) => run::run(&conn, a).await,
            Command::Create(a) => run::create(&conn, a).await,
            Command::Start(a) => containers::start(&conn, a).await,
            Command::Stop(a) => containers::stop(&conn, a).await,
            Command::Restart(a) => containers::restart(&conn, a).await,
            Command::Kill(a) => containers::kill(&conn, a).await,
            Command::Pause(a) => containers::pause(&conn, a, true).await,
            Command::Unpause(a) => containers::pause(&conn, a, false).await,
            Command::Rm(a) => containers::rm(&conn, a).await,
            Command::Rename(a) => containers::rename(&conn, a).await,
            Command::Wait(a) => containers::wait(&conn, a).await,
            Command::Inspect(a) => containers::inspect(&conn, a, true).await,
            Command::Ps(a) => containers::ps(&conn, a).await,
            Command::Top(a) => containers::top(&conn, a).await,
            Command::Logs(a) => observe::logs(&conn, a).await,
            Command::Stats(a) => observe::stats(&conn, a).await,
            Command::Events(a) => observe::events(&conn, a).await,
            Command::Exec(a) => session::exec(&conn, a).await,
            Command::Attach(a) => session::attach_cmd(&conn, a).await,
            Command::Container(c) => containers::container(&conn, c).await,
            Command::Network(c) => network::network(&conn, c).await,
            Command::Port(a) => ports::port(&conn, a).await,
            Command::Volume(c) => volume::volume(&conn, c).await,
            Command::Vm(c) => vm::vm(c).await,
            Command::Commit(a) => transfer::commit(&conn, a).await,
            Command::Export(a) => transfer::export(&conn, a).await,
            Command::Import(a) => transfer::import(&conn, a).await,
            Command::Diff(a) => transfer::diff(&conn, a).await,
            Command::Cp(a) => transfer::cp(&conn, a).await,
        }
    });
    // A read of stdin may still be blocked on its thread (attach, exec):
    // do not wait for it.
    runtime.shutdown_background();
    if let Err(e) = result {
        if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
            std::process::exit(*code);
        }
        // Output cut short by its reader (`berth logs C | head`), written
        // with `?` rather than print!: quiet, as above.
        let cut = e
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
        if cut {
            std::process::exit(141);
        }
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
