//! The agent's listeners and API surface, driven in-process through the
//! real berth-api client: mutual TLS, the loopback rule for plain TCP,
//! hybrid vsock, and UNIMPLEMENTED answers that name what is missing.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use berth_agent::api::{routes, Agent};
use berth_agent::image::registry::RegistryOptions;
use berth_agent::image::ImageService;
use berth_agent::network::Networks;
use berth_agent::runtime::Containers;
use berth_agent::server::{serve, TlsFiles};
use berth_agent::util::gate::Gate;
use berth_agent::volume::Volumes;
use berth_api::endpoint::ClientTls;
use berth_api::v1::{system_client::SystemClient, PingRequest, PingResponse};
use berth_api::Endpoint;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::watch;

async fn agent(root: &Path) -> Arc<Agent> {
    let images = ImageService::open(root, RegistryOptions::default()).unwrap();
    let networks = Networks::open(root, images.events.clone()).unwrap();
    let volumes = Arc::new(Volumes::open(root, images.events.clone()).unwrap());
    // The network gate stays shut for the test's life: these tests need no
    // networks, and the reconcile behind it would tidy the host's links.
    let (opener, gate) = Gate::closed();
    std::mem::forget(opener);
    let containers = Containers::open(
        root,
        images.clone(),
        networks.clone(),
        volumes.clone(),
        gate,
    )
    .await
    .unwrap();
    Arc::new(Agent {
        builder: berth_agent::build::Builder::new(root, images.clone(), containers.clone()),
        images,
        containers,
        networks,
        volumes,
        id: "test".into(),
    })
}

/// Starts serving on `endpoints`; returns the stop switch.
async fn start(
    root: &Path,
    endpoints: Vec<Endpoint>,
    tls: TlsFiles,
) -> (
    watch::Sender<bool>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (tx, rx) = watch::channel(false);
    let routes = routes(agent(root).await);
    let task = tokio::spawn(async move { serve(&endpoints, routes, &tls, rx).await });
    (tx, task)
}

async fn wait_for_socket(path: &Path) {
    for _ in 0..200 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("{} never appeared", path.display());
}

#[tokio::test]
async fn unbuilt_services_answer_unimplemented_with_a_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("a.sock");
    let (stop, task) = start(
        &dir.path().join("root"),
        vec![Endpoint::Unix(sock.clone())],
        TlsFiles::default(),
    )
    .await;
    wait_for_socket(&sock).await;
    let channel = Endpoint::Unix(sock.clone())
        .connect(&ClientTls::default())
        .await
        .unwrap();
    SystemClient::new(channel.clone())
        .ping(PingRequest {})
        .await
        .unwrap();
    // A service this agent does not have (a newer client's, say).
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let err = grpc
        .unary::<PingRequest, PingResponse, _>(
            tonic::Request::new(PingRequest {}),
            "/berth.v1.Builds/Build".parse().unwrap(),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    assert!(
        err.message().contains("/berth.v1.Builds/Build") && err.message().contains("not built"),
        "{}",
        err.message()
    );
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
    assert!(!sock.exists(), "the socket is removed on shutdown");
}

#[tokio::test]
async fn plain_tcp_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let ep: Endpoint = "tcp://0.0.0.0:0".parse().unwrap();
    let (_stop, task) = start(&dir.path().join("root"), vec![ep], TlsFiles::default()).await;
    let err = task.await.unwrap().unwrap_err().to_string();
    assert!(
        err.contains("plain TCP is allowed only on loopback") && err.contains("--tls-cert"),
        "{err}"
    );
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate.
fn make_certs(dir: &Path) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=berth-test-ca",
        ],
        dir,
    );
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth",
        ),
        ("client", "extendedKeyUsage=clientAuth"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
            dir,
        );
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
            dir,
        );
    }
}

#[tokio::test]
async fn tcp_with_mutual_tls_needs_a_client_certificate() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ep = Endpoint::Tcp {
        host: "127.0.0.1".into(),
        port,
    };
    let tls = TlsFiles {
        cert: Some(dir.path().join("server.pem")),
        key: Some(dir.path().join("server.key")),
        client_ca: Some(dir.path().join("ca.pem")),
    };
    let (stop, task) = start(&dir.path().join("root"), vec![ep.clone()], tls).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let with_cert = ClientTls {
        ca: Some(dir.path().join("ca.pem")),
        cert: Some(dir.path().join("client.pem")),
        key: Some(dir.path().join("client.key")),
    };
    let channel = ep.connect(&with_cert).await.unwrap();
    SystemClient::new(channel)
        .ping(PingRequest {})
        .await
        .unwrap();

    let without = ClientTls {
        ca: Some(dir.path().join("ca.pem")),
        cert: None,
        key: None,
    };
    let refused = match ep.connect(&without).await {
        Err(_) => true,
        Ok(ch) => SystemClient::new(ch).ping(PingRequest {}).await.is_err(),
    };
    assert!(refused, "a client without a certificate must be refused");
    let plain = ep.connect(&ClientTls::default()).await;
    let refused = match plain {
        Err(_) => true,
        Ok(ch) => SystemClient::new(ch).ping(PingRequest {}).await.is_err(),
    };
    assert!(refused, "plain gRPC to a TLS listener must fail");
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
}

/// A stand-in for a VMM's hybrid-vsock socket: answers `CONNECT <port>`
/// with `OK <port>` and then relays bytes to the agent's Unix socket; with
/// `ready` false it closes at once, as a VMM does before the guest listens.
async fn hybrid_vsock_proxy(listen: &Path, agent: std::path::PathBuf, ready: bool) {
    let listener = tokio::net::UnixListener::bind(listen).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let agent = agent.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                reader.read_line(&mut line).await.unwrap();
                let port = line.trim().strip_prefix("CONNECT ").unwrap().to_string();
                if !ready {
                    return;
                }
                let mut stream = reader.into_inner();
                stream
                    .write_all(format!("OK {port}\n").as_bytes())
                    .await
                    .unwrap();
                let mut upstream = tokio::net::UnixStream::connect(agent).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
            });
        }
    });
}

#[tokio::test]
async fn hybrid_vsock_clients_do_the_connect_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let (stop, task) = start(
        &dir.path().join("root"),
        vec![Endpoint::Unix(sock.clone())],
        TlsFiles::default(),
    )
    .await;
    wait_for_socket(&sock).await;
    hybrid_vsock_proxy(&dir.path().join("vm.vsock"), sock.clone(), true).await;
    let url = format!(
        "hybrid-vsock://{}?port=1024",
        dir.path().join("vm.vsock").display()
    );
    let ep: Endpoint = url.parse().unwrap();
    let channel = ep.connect(&ClientTls::default()).await.unwrap();
    SystemClient::new(channel)
        .ping(PingRequest {})
        .await
        .unwrap();

    hybrid_vsock_proxy(&dir.path().join("early.vsock"), sock.clone(), false).await;
    let early = Endpoint::HybridVsock {
        path: dir.path().join("early.vsock"),
        port: 1024,
    };
    let err = early
        .connect(&ClientTls::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot reach the Berth agent"), "{err}");
    stop.send(true).unwrap();
    task.await.unwrap().unwrap();
}
