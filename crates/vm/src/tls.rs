//! Mutual TLS between the host and an agent that the host reaches over TCP:
//! the WSL2 backend, whose agent listens on loopback inside WSL, which
//! Windows forwards to its own loopback, where every local user and program
//! could otherwise talk to it.
//!
//! The VM's state directory keeps a private CA of its own in `tls/`: the
//! agent's certificate (for `127.0.0.1` and `localhost`) and one client
//! certificate, both signed by it. The CA's key is never written: nothing
//! can be signed by it after the files are made, so only this user's
//! clients (the CLI, the app, the supervisor, who read the folder) get in.
//! The client's files carry the names Docker's clients look for in
//! `DOCKER_CERT_PATH` (`ca.pem`, `cert.pem`, `key.pem`), so the same
//! folder serves `docker --tlsverify` against the agent's Engine API.
//!
//! Certificates come from `rcgen` (ECDSA P-256) and the connection from
//! `rustls`, as the agent's own TLS; rcgen's default validity (to year
//! 4096) is kept, since the CA is local and its key gone.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use berth_api::endpoint::ClientTls;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The folder, in the VM's state directory, that holds the certificates.
pub const DIR: &str = "tls";

/// The certificate files of one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmCerts {
    dir: PathBuf,
}

impl VmCerts {
    /// The certificates kept in `vm_dir`'s [`DIR`].
    pub fn of(vm_dir: &Path) -> VmCerts {
        VmCerts {
            dir: vm_dir.join(DIR),
        }
    }

    /// The folder (Docker's `DOCKER_CERT_PATH` for the client's files).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA's certificate, which both sides trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The client's certificate.
    pub fn client_cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// The client's private key.
    pub fn client_key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// The agent's certificate.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server-cert.pem")
    }

    /// The agent's private key.
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server-key.pem")
    }

    fn all(&self) -> [PathBuf; 5] {
        [
            self.ca(),
            self.client_cert(),
            self.client_key(),
            self.server_cert(),
            self.server_key(),
        ]
    }

    /// True when every file is there.
    pub fn exist(&self) -> bool {
        self.all().iter().all(|p| p.is_file())
    }

    /// Makes the CA and both certificates unless all five files exist (a
    /// partial set, left by an interrupted start, is made again whole).
    pub fn ensure(&self) -> Result<()> {
        if self.exist() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot make {}", self.dir.display()))?;
        let made = generate().context("cannot make the VM's TLS certificates")?;
        // Keys first and the CA last: a start cut short leaves `exist()`
        // false, so the next one makes a whole new set.
        for (path, text) in [
            (self.server_key(), &made.server_key),
            (self.client_key(), &made.client_key),
            (self.server_cert(), &made.server_cert),
            (self.client_cert(), &made.client_cert),
            (self.ca(), &made.ca),
        ] {
            write_private(&path, text)?;
        }
        Ok(())
    }

    /// The client's side, as the Berth clients take it.
    pub fn client_tls(&self) -> ClientTls {
        ClientTls {
            ca: Some(self.ca()),
            cert: Some(self.client_cert()),
            key: Some(self.client_key()),
        }
    }

    /// A rustls client configuration: trusts only the VM's CA and shows the
    /// client certificate.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let read = |p: PathBuf| {
            CertificateDer::pem_file_iter(&p)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("cannot read the certificates in {}", p.display()))
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in read(self.ca())? {
            roots
                .add(c)
                .context("the VM's CA certificate is not usable")?;
        }
        let key = PrivateKeyDer::from_pem_file(self.client_key())
            .with_context(|| format!("cannot read the key in {}", self.client_key().display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(read(self.client_cert())?, key)
            .context("the VM's client certificate and key do not match")?;
        Ok(Arc::new(config))
    }
}

/// A TLS connection to the agent at `127.0.0.1:port`, with the VM's client
/// certificate.
pub async fn dial(
    certs: &VmCerts,
    port: u16,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(certs.client_config()?);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot reach the agent's port {port}"))?;
    let _ = tcp.set_nodelay(true);
    let name =
        rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
    connector
        .connect(name, tcp)
        .await
        .with_context(|| format!("the agent's port {port} refused the VM's certificate"))
}

/// One set of PEM texts.
struct Made {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn generate() -> Result<Made> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "Berth VM certificate authority");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate()?;
    let ca_pem = ca.self_signed(&ca_key)?.pem();
    let issuer = Issuer::new(ca, ca_key);

    let mut server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])?;
    server
        .distinguished_name
        .push(DnType::CommonName, "Berth agent");
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    let server_cert = server.signed_by(&server_key, &issuer)?.pem();

    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client
        .distinguished_name
        .push(DnType::CommonName, "Berth client");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate()?;
    let client_cert = client.signed_by(&client_key, &issuer)?.pem();

    Ok(Made {
        ca: ca_pem,
        server_cert,
        server_key: server_key.serialize_pem(),
        client_cert,
        client_key: client_key.serialize_pem(),
    })
}

/// Writes `text` readable by this user alone (on Unix; on Windows the
/// state directory's own access list, the user's, holds).
fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let mut f = open
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut f, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
