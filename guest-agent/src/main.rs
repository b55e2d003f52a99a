//! `berth-agent`: serves Berth's API over Unix sockets, TCP or vsock.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use berth_agent::api::{routes, Agent};
use berth_agent::image::registry::RegistryOptions;
use berth_agent::image::ImageService;
use berth_agent::network::Networks;
use berth_agent::runtime::Containers;
use berth_agent::server::{serve, TlsFiles};
use berth_agent::util::gate::Gate;
use berth_agent::volume::Volumes;
use berth_api::Endpoint;
use clap::Parser;

/// Berth's engine: images and containers, served over gRPC.
#[derive(Parser, Debug)]
#[command(name = "berth-agent", version)]
struct Args {
    /// Where to listen (repeatable): unix:///path, tcp://host:port, vsock://CID:PORT.
    #[arg(long = "listen", default_value = berth_api::DEFAULT_ENDPOINT)]
    listen: Vec<String>,
    /// Where images and metadata are stored.
    #[arg(long, default_value = "/var/lib/berth")]
    root: PathBuf,
    /// error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// The agent's TLS certificate (PEM), for TCP listeners.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// The agent's TLS private key (PEM).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// The CA that signs accepted client certificates (PEM).
    #[arg(long)]
    tls_client_ca: Option<PathBuf>,
    /// Where to serve the Docker Engine API (repeatable): unix:///path or
    /// tcp://HOST:PORT (plain on loopback only; with the --tls-* files,
    /// mutual TLS anywhere). With the default --listen and no
    /// --docker-listen, unix:///run/berth/docker.sock.
    #[arg(long = "docker-listen")]
    docker_listen: Vec<String>,
    /// Where to serve the raw port relay (repeatable): vsock://CID:PORT or
    /// unix:///path; the VM's host carries published ports through it.
    #[arg(long = "relay-listen")]
    relay_listen: Vec<String>,
    /// A registry (host:port) that may be reached over plain HTTP (repeatable).
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
}

fn main() {
    // The exec helper is the agent re-executed: it must stay
    // single-threaded until the exec process exists. The agent started as
    // PID 1 (an image without `berth-init`) becomes the VM's init.
    if berth_agent::init::is_pid1() {
        berth_agent::init::main();
    }
    berth_agent::init::take_serving_fd();
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("__exec") {
        std::process::exit(berth_agent::runtime::exec::helper_main(&argv[2..]));
    }
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("berth-agent: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let started = std::time::Instant::now();
    keep_the_heap_small();
    tracing_subscriber::fmt()
        .with_env_filter(
            // libcontainer and libcgroups narrate every container at info.
            // At debug, the HTTP/2 and TLS layers' frame-by-frame narration
            // would bury Berth's own timelines: they say info and up.
            tracing_subscriber::EnvFilter::try_new(format!(
                "{},libcgroups=error,libcontainer=error{}",
                args.log_level,
                if args.log_level == "debug" {
                    ",h2=info,hyper=info,hyper_util=info,tower=info,tonic=info,rustls=info"
                } else {
                    ""
                }
            ))
            .context("--log-level takes error, warn, info, debug or trace")?,
        )
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let endpoints = args
        .listen
        .iter()
        .map(|l| l.parse::<Endpoint>())
        .collect::<Result<Vec<_>, _>>()?;
    let mut docker_listen = args.docker_listen.clone();
    if docker_listen.is_empty() && args.listen == [berth_api::DEFAULT_ENDPOINT] {
        docker_listen.push(berth_agent::dockerapi::listen::DEFAULT_DOCKER_ENDPOINT.into());
    }
    let docker_endpoints = docker_listen
        .iter()
        .map(|l| l.parse::<Endpoint>())
        .collect::<Result<Vec<_>, _>>()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // In the VM, PID 1 mounts the data disk while the agent starts.
    berth_agent::init::storage_ready();
    if let Ok(cmdline) = std::fs::read_to_string("/proc/cmdline") {
        let config = berth_agent::init::config::Config::parse(&cmdline);
        berth_agent::shares::set_shared_folders(
            config.shares.into_iter().map(|s| s.path).collect(),
        );
    }
    runtime.block_on(async move {
        // The engine waits at this gate for what PID 1 brings up in the VM
        // (at once outside it).
        let (opener, modules_ready) = Gate::closed();
        tokio::spawn(async move {
            berth_agent::init::modules_ready().await;
            berth_agent::shares::pin_mounted_in_background();
            opener.open();
        });
        // Records kept as files: what a kill left of a write goes first.
        berth_agent::store::records::remove_half_written(&args.root);
        let images = ImageService::open(
            &args.root,
            RegistryOptions {
                insecure: args.insecure_registries.clone(),
                network_ready: modules_ready.clone(),
            },
        )?;
        let id = std::fs::read_to_string(args.root.join("agent-id")).unwrap_or_else(|_| {
            let id = berth_agent::digest::of_bytes(
                format!("{:?}{}", std::time::SystemTime::now(), std::process::id()).as_bytes(),
            )[7..19]
                .to_string();
            let _ = std::fs::write(args.root.join("agent-id"), &id);
            id
        });
        tracing::debug!("images open after {:?}", started.elapsed());
        let networks = Networks::open(&args.root, images.events.clone())?;
        let volumes = Arc::new(Volumes::open(&args.root, images.events.clone())?);
        let containers = Containers::open(
            &args.root,
            images.clone(),
            networks.clone(),
            volumes.clone(),
            modules_ready,
        )
        .await?;
        tracing::debug!("containers open after {:?}", started.elapsed());
        let builder =
            berth_agent::build::Builder::new(&args.root, images.clone(), containers.clone());
        let agent = Arc::new(Agent {
            builder,
            images,
            containers,
            networks,
            volumes,
            id: id.trim().to_string(),
        });
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate()).expect("signal handler");
            let mut int = signal(SignalKind::interrupt()).expect("signal handler");
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            tracing::info!("shutting down");
            let _ = stop_tx.send(true);
        });
        let tls = TlsFiles {
            cert: args.tls_cert,
            key: args.tls_key,
            client_ca: args.tls_client_ca,
        };
        // Graceful shutdown waits for open connections; a client that never
        // closes (a vsock peer gone without a reset) must not hold it up.
        let mut stopped = stop_rx.clone();
        let grace = async move {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        };
        let relay_endpoints = args
            .relay_listen
            .iter()
            .map(|l| l.parse::<Endpoint>())
            .collect::<Result<Vec<_>, _>>()?;
        let relays = berth_agent::relay::bind(&relay_endpoints)?;
        let relays = berth_agent::relay::serve(relays, agent.containers.clone(), stop_rx.clone());
        let docker_tls = tls.rustls_config()?;
        let docker = berth_agent::dockerapi::listen::bind(&docker_endpoints, docker_tls).await?;
        let docker = berth_agent::dockerapi::listen::serve(docker, agent.clone(), stop_rx.clone());
        let grpc = serve(&endpoints, routes(agent), &tls, stop_rx);
        tokio::select! {
            served = async { tokio::try_join!(grpc, docker, relays).map(|_| ()) } => served,
            _ = grace => {
                tracing::warn!("connections still open 3 s after shutdown began; leaving them");
                Ok(())
            }
        }
    })
}

/// The agent is mostly idle between requests, so memory freed after a burst
/// (an image load, a hundred starts) should go back to the kernel: one
/// malloc arena instead of one per thread that ever allocated, and free
/// memory at the heap's top returned once it passes 128 kB (a fixed
/// threshold, which glibc otherwise raises to megabytes after the first
/// large free). Measured with a load and five runs: about 0.8 MB less
/// resident.
fn keep_the_heap_small() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets allocator parameters, before any thread
    // other than this one exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
    }
}
