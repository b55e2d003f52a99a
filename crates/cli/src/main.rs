//! `berth`: the command-line client. Docker's verbs, flags, output and exit
//! codes, over Berth's gRPC API.

mod auth;
mod format;
mod images;
mod progress;
mod system;

use anyhow::Result;
use berth_api::endpoint::ClientTls;
use berth_api::Endpoint;
use clap::{Parser, Subcommand};
use tonic::transport::Channel;

/// Docker-style containers, fast.
#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "Docker-style containers for Windows, macOS and Linux"
)]
struct Cli {
    /// The agent to talk to: unix:///path, tcp://host:port, vsock://CID:PORT, hybrid-vsock:///path?port=N.
    #[arg(short = 'H', long = "host", env = "BERTH_HOST", default_value = berth_api::DEFAULT_ENDPOINT, global = true)]
    host: String,
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
    /// Load images from a tar archive.
    Load(images::LoadArgs),
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
}

/// Connection settings, used by commands when they need the agent.
pub struct Conn {
    endpoint: String,
    tls: ClientTls,
}

impl Conn {
    /// Dials the agent.
    pub async fn channel(&self) -> Result<Channel> {
        let ep: Endpoint = self.endpoint.parse()?;
        Ok(ep.connect(&self.tls).await?)
    }
}

/// Turns a gRPC failure into the agent's own sentence.
pub fn status_error(s: tonic::Status) -> anyhow::Error {
    if s.code() == tonic::Code::Unavailable && s.message().contains("transport") {
        anyhow::anyhow!("lost the connection to the Berth agent: {}", s.message())
    } else {
        anyhow::anyhow!("{}", s.message())
    }
}

fn main() {
    let cli = Cli::parse();
    let conn = Conn {
        endpoint: cli.host,
        tls: ClientTls {
            ca: cli.tls_ca,
            cert: cli.tls_cert,
            key: cli.tls_key,
        },
    };
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
            Command::Load(a) => images::load(&conn, a).await,
            Command::Login(a) => system::login(&conn, a).await,
            Command::Logout(a) => system::logout(a),
            Command::Version(a) => system::version(&conn, a).await,
            Command::Info(a) => system::info(&conn, a).await,
            Command::System(c) => system::system(&conn, c).await,
        }
    });
    if let Err(e) = result {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}
