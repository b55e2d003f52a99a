use super::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The agent's side, as the agent builds it from the same files.
fn server_config(certs: &VmCerts) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(certs.ca()).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()
            .unwrap();
    let chain = CertificateDer::pem_file_iter(certs.server_cert())
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(certs.server_key()).unwrap();
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

/// An echo server on loopback speaking TLS with `certs`' agent side;
/// returns its port.
async fn echo_server(certs: &VmCerts) -> u16 {
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(certs));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(conn).await {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = tls.read(&mut buf).await {
                        if n == 0 || tls.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        let _ = tls.flush().await;
                    }
                }
            });
        }
    });
    port
}

#[test]
fn the_files_are_made_once_private_and_whole() {
    let dir = tempfile::tempdir().unwrap();
    let certs = VmCerts::of(dir.path());
    assert!(!certs.exist());
    certs.ensure().unwrap();
    assert!(certs.exist());
    for p in certs.all() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        assert!(std::fs::read_to_string(&p)
            .unwrap()
            .starts_with("-----BEGIN"));
    }
    let ca = std::fs::read(certs.ca()).unwrap();
    certs.ensure().unwrap();
    assert_eq!(std::fs::read(certs.ca()).unwrap(), ca, "kept when whole");
    std::fs::remove_file(certs.client_key()).unwrap();
    certs.ensure().unwrap();
    assert!(certs.exist());
    assert_ne!(
        std::fs::read(certs.ca()).unwrap(),
        ca,
        "a partial set is made again"
    );
    assert_eq!(
        certs.client_tls().cert.as_deref(),
        Some(dir.path().join("tls/cert.pem").as_path())
    );
}

#[tokio::test]
async fn the_client_certificate_gets_in_and_another_cas_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let certs = VmCerts::of(&dir.path().join("vm"));
    certs.ensure().unwrap();
    let port = echo_server(&certs).await;

    let mut tls = dial(&certs, port).await.unwrap();
    tls.write_all(b"ping").await.unwrap();
    tls.flush().await.unwrap();
    let mut got = [0u8; 4];
    tls.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"ping");

    // Another VM's certificates: the agent does not know that CA, and the
    // client does not trust the agent's either.
    let other = VmCerts::of(&dir.path().join("other"));
    other.ensure().unwrap();
    let refused = async {
        let mut tls = dial(&other, port).await?;
        tls.write_all(b"ping").await?;
        tls.flush().await?;
        let mut got = [0u8; 4];
        tls.read_exact(&mut got).await?;
        Ok::<_, anyhow::Error>(())
    };
    assert!(refused.await.is_err(), "another CA's client got in");
}

/// What the Windows named pipe carries, through the Unix socket relay that
/// shares its code: a client without certificates speaks plain bytes, and
/// the relay speaks mutual TLS to the agent.
#[cfg(unix)]
#[tokio::test]
async fn the_docker_relay_carries_plain_bytes_to_the_agents_tls_port() {
    use crate::relay::{relay_docker_socket, DockerUpstream};
    let dir = tempfile::tempdir().unwrap();
    let certs = VmCerts::of(dir.path());
    certs.ensure().unwrap();
    let port = echo_server(&certs).await;
    let socket = dir.path().join("docker.sock");
    let relay = tokio::spawn({
        let socket = socket.clone();
        async move { relay_docker_socket(&socket, DockerUpstream::Tls { port, certs }).await }
    });
    let mut conn = loop {
        if let Ok(c) = tokio::net::UnixStream::connect(&socket).await {
            break c;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    conn.write_all(b"GET /_ping").await.unwrap();
    let mut got = [0u8; 10];
    conn.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"GET /_ping");
    relay.abort();
}
