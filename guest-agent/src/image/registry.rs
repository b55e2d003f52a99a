//! Registry access through oci-client: one client per operation, plain
//! HTTP only for loopback registries and `--insecure-registry` entries, and
//! registry failures turned into sentences a user can act on.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::Client;

use crate::error::Error;
use crate::image::reference::ImageRef;

/// Credentials for one request, as the client sent them.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// User name for basic auth.
    pub username: String,
    /// Password for basic auth.
    pub password: String,
    /// A token to present as it is.
    pub token: String,
}

impl Credentials {
    /// The oci-client form.
    pub fn to_oci(&self) -> RegistryAuth {
        if !self.token.is_empty() {
            RegistryAuth::Bearer(self.token.clone())
        } else if !self.username.is_empty() {
            RegistryAuth::Basic(self.username.clone(), self.password.clone())
        } else {
            RegistryAuth::Anonymous
        }
    }
}

/// Which registries may be reached without TLS.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// "host:port" entries allowed over plain HTTP.
    pub insecure: Vec<String>,
    /// Opens once the network is up (in the VM, when PID 1 has loaded the
    /// NIC's modules); registry calls wait at it.
    pub network_ready: crate::util::gate::Gate,
}

/// True for registries on this machine's loopback.
fn is_loopback(registry: &str) -> bool {
    let host = registry.rsplit_once(':').map_or(registry, |(h, p)| {
        if p.parse::<u16>().is_ok() {
            h
        } else {
            registry
        }
    });
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

impl RegistryOptions {
    /// A client for one registry.
    pub fn client(&self, image: &ImageRef) -> Client {
        let registry = image.oci.resolve_registry().to_string();
        let plain = is_loopback(&registry)
            || self
                .insecure
                .iter()
                .any(|r| r == &registry || r == image.registry());
        Client::new(ClientConfig {
            protocol: if plain {
                ClientProtocol::HttpsExcept(vec![registry])
            } else {
                ClientProtocol::Https
            },
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(15)),
            // A registry that stops sending mid-blob fails the pull instead of hanging it.
            read_timeout: Some(std::time::Duration::from_secs(120)),
            ..Default::default()
        })
    }
}

/// Turns a registry failure into one sentence.
pub fn registry_error(image: &ImageRef, what: &str, e: OciDistributionError) -> Error {
    let name = image.oci.whole();
    match e {
        OciDistributionError::AuthenticationFailure(m) | OciDistributionError::UnauthorizedError { url: m } => {
            Error::Unauthenticated(format!(
                "{what} {name} was refused: the registry wants credentials ({m}); run `berth login {}` first",
                image.registry()
            ))
        }
        OciDistributionError::ImageManifestNotFoundError(_) => {
            Error::no_image(format!("{name} was not found in its registry: check the name and tag"))
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            let text = envelope.errors.iter().map(|e| format!("{:?}: {}", e.code, e.message)).collect::<Vec<_>>().join("; ");
            let any = |f: fn(&OciErrorCode) -> bool| envelope.errors.iter().any(|e| f(&e.code));
            if any(|c| matches!(c, OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown)) {
                Error::no_image(format!("{name} was not found in its registry: check the name and tag"))
            } else if any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied)) {
                Error::Unauthenticated(format!(
                    "{what} {name} was refused by the registry ({text}); run `berth login {}` with an account that has access",
                    image.registry()
                ))
            } else {
                Error::Unavailable(format!("{what} {name} failed: the registry answered {text}"))
            }
        }
        OciDistributionError::DigestError(d) => Error::DataLoss(format!("{what} {name} failed: {d}")),
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(&other);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            if text.contains("401") {
                Error::Unauthenticated(format!(
                    "{what} {name} was refused: the registry wants credentials; run `berth login {}` first",
                    image.registry()
                ))
            } else if text.contains("404") {
                Error::no_image(format!("{name} was not found in its registry: check the name and tag"))
            } else {
                Error::Unavailable(format!("{what} {name} failed: {text}"))
            }
        }
    }
}

/// Checks credentials against a registry the way `docker login` does:
/// `GET /v2/`, then basic auth or the bearer realm's token endpoint.
pub async fn check_login(
    options: &RegistryOptions,
    server: &str,
    creds: &Credentials,
) -> crate::error::Result<()> {
    // In the VM, the NIC comes up once the agent serves.
    options.network_ready.wait().await;
    let host = server
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .trim_end_matches("/v1")
        .to_string();
    let host = if host.is_empty() || host == "docker.io" {
        "index.docker.io".to_string()
    } else {
        host
    };
    let plain = is_loopback(&host) || options.insecure.contains(&host);
    let base = format!("{}://{host}/v2/", if plain { "http" } else { "https" });
    let unreachable =
        |e: reqwest::Error| Error::Unavailable(format!("cannot reach the registry {host}: {e}"));
    let refused = || {
        Error::Unauthenticated(format!(
            "login to {host} failed: the registry refused that user name and password"
        ))
    };
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(15))
        .build()
        .map_err(|e| Error::Internal(format!("cannot build an HTTP client: {e}")))?;
    let first = http.get(&base).send().await.map_err(unreachable)?;
    if first.status().is_success() {
        return Ok(());
    }
    let challenge = first
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if challenge.to_ascii_lowercase().starts_with("bearer") {
        let param = |name: &str| {
            challenge.split([',', ' ']).find_map(|p| {
                p.strip_prefix(&format!("{name}=\""))
                    .map(|v| v.trim_end_matches('"').to_string())
            })
        };
        let realm = param("realm").ok_or_else(|| {
            Error::Unavailable(format!("{host} sent a bearer challenge without a realm"))
        })?;
        let mut req = http
            .get(&realm)
            .query(&[("account", creds.username.as_str())]);
        if let Some(service) = param("service") {
            req = req.query(&[("service", service.as_str())]);
        }
        let resp = req
            .basic_auth(&creds.username, Some(&creds.password))
            .send()
            .await
            .map_err(unreachable)?;
        return if resp.status().is_success() {
            Ok(())
        } else {
            Err(refused())
        };
    }
    let resp = http
        .get(&base)
        .basic_auth(&creds.username, Some(&creds.password))
        .send()
        .await
        .map_err(unreachable)?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_plain_by_default() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example.com"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }
}
