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

/// Why a registry could not be reached, when `e` is (or wraps) an HTTP
/// failure to connect or a timeout: the innermost cause in a few words
/// (`connection refused`), without the HTTP client's chain around it.
pub fn unreachable_cause(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut http = None;
    let mut last = e;
    while let Some(c) = cause {
        if let Some(r) = c.downcast_ref::<reqwest::Error>() {
            http.get_or_insert(r);
        }
        last = c;
        cause = c.source();
    }
    let http = http?;
    if http.is_timeout() {
        return Some("it did not answer in time".into());
    }
    if !http.is_connect() {
        return None;
    }
    let text = last.to_string();
    let text = match text.find(" (os error ") {
        Some(at) => &text[..at],
        None => &text,
    };
    let mut chars = text.chars();
    Some(match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "no connection".into(),
    })
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
            // A transparent wrapper: its source skips the HTTP error itself.
            let why = match &other {
                OciDistributionError::RequestError(r) => unreachable_cause(r),
                other => unreachable_cause(other),
            };
            if let Some(why) = why {
                return Error::Unavailable(format!(
                    "{what} {name} failed: the registry {} cannot be reached ({why}); check that it is running and that its address and port are right",
                    image.registry()
                ));
            }
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
    let unreachable = |e: reqwest::Error| {
        let why = unreachable_cause(&e).unwrap_or_else(|| e.to_string());
        Error::Unavailable(format!(
            "cannot reach the registry {host} ({why}): check that it is running and that its address and port are right"
        ))
    };
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

/// One result of a registry search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchResult {
    /// The repository ("library/busybox", or "HOST/NAME" elsewhere).
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its stars.
    pub star_count: u64,
    /// An official image.
    pub is_official: bool,
    /// An automated build.
    pub is_automated: bool,
}

/// The registry a search term names ("HOST/TERM"; Docker Hub's index
/// otherwise) and the term to send it.
pub fn search_target(term: &str) -> (String, String) {
    match term.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            let host = if host == "docker.io" || host == "index.docker.io" {
                "index.docker.io"
            } else {
                host
            };
            (host.to_string(), rest.to_string())
        }
        _ => ("index.docker.io".to_string(), term.to_string()),
    }
}

/// Searches the v1 search API (`GET /v1/search?q=&n=`) of the registry
/// `term` names, as `docker search` does; an unreachable registry, or one
/// without that API, is an error saying so.
pub async fn search(
    options: &RegistryOptions,
    term: &str,
    limit: u32,
) -> crate::error::Result<Vec<SearchResult>> {
    options.network_ready.wait().await;
    let (host, query) = search_target(term);
    let plain = is_loopback(&host) || options.insecure.contains(&host);
    let url = format!(
        "{}://{host}/v1/search",
        if plain { "http" } else { "https" }
    );
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(15))
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| Error::Internal(format!("cannot build an HTTP client: {e}")))?;
    let unreachable = |e: reqwest::Error| {
        // reqwest's own sentence names only the URL: say why.
        let why = unreachable_cause(&e).unwrap_or_else(|| e.to_string());
        Error::Unavailable(format!(
            "cannot search {host}: the registry cannot be reached ({why})"
        ))
    };
    let resp = http
        .get(&url)
        .query(&[("q", query.as_str()), ("n", &limit.to_string())])
        .send()
        .await
        .map_err(unreachable)?;
    if !resp.status().is_success() {
        return Err(Error::Unavailable(format!(
            "cannot search {host}: its search API (GET /v1/search) answered {}; not every registry offers one",
            resp.status()
        )));
    }
    let body: serde_json::Value = resp.json().await.map_err(|e| {
        Error::Unavailable(format!(
            "cannot search {host}: its answer is not a search result ({e})"
        ))
    })?;
    let prefix = if host == "index.docker.io" {
        String::new()
    } else {
        format!("{host}/")
    };
    Ok(body["results"]
        .as_array()
        .into_iter()
        .flatten()
        .take(limit as usize)
        .map(|r| SearchResult {
            name: format!("{prefix}{}", r["name"].as_str().unwrap_or_default()),
            description: r["description"].as_str().unwrap_or_default().to_string(),
            star_count: r["star_count"].as_u64().unwrap_or(0),
            is_official: r["is_official"].as_bool().unwrap_or(false),
            is_automated: r["is_automated"].as_bool().unwrap_or(false),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_registry_is_said_in_a_few_words() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let e = reqwest::get("http://127.0.0.1:1/v2/")
            .await
            .expect_err("nothing listens on port 1");
        assert_eq!(unreachable_cause(&e).as_deref(), Some("connection refused"));
        let wrapped = OciDistributionError::RequestError(e);
        let image = ImageRef::parse("127.0.0.1:1/no/such:1").expect("a name");
        let said = registry_error(&image, "pulling", wrapped).to_string();
        assert_eq!(
            said,
            "pulling 127.0.0.1:1/no/such:1 failed: the registry 127.0.0.1:1 cannot be reached (connection refused); check that it is running and that its address and port are right"
        );
    }

    #[test]
    fn only_loopback_is_plain_by_default() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example.com"));
        assert!(!is_loopback("10.0.0.1:5000"));
    }

    #[test]
    fn a_search_term_names_its_registry() {
        let t = |term: &str| search_target(term);
        assert_eq!(t("busybox"), ("index.docker.io".into(), "busybox".into()));
        assert_eq!(
            t("bitnami/redis"),
            ("index.docker.io".into(), "bitnami/redis".into())
        );
        assert_eq!(
            t("localhost:5000/web"),
            ("localhost:5000".into(), "web".into())
        );
        assert_eq!(
            t("docker.io/busybox"),
            ("index.docker.io".into(), "busybox".into())
        );
    }
}
