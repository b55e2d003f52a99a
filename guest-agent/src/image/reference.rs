//! Image references as users write them ("alpine", "host:5000/app:v1",
//! "app@sha256:…"), normalised as Docker does ("alpine" is
//! "docker.io/library/alpine:latest"), with clear errors.
//!
//! The grammar (distribution's `reference` package) is walked by hand
//! rather than with oci-spec's `Reference::from_str`: that one compiles a
//! large regex on first use and keeps it, about 10 MB of the agent's
//! memory for the rest of its life (the agent's idle RSS went from 25 MB
//! to 12 MB without it). The result is still oci-client's `Reference`.

pub use berth_api::names::familiar;

use oci_client::Reference;

/// True when a reference as a user wrote it names a tag or a digest
/// (`name:tag`, `name@sha256:…`), not only a repository.
pub fn has_tag_or_digest(input: &str) -> bool {
    let last = input.rsplit('/').next().unwrap_or(input);
    input.contains('@') || last.contains(':')
}

use crate::error::{Error, Result};

/// A parsed, normalised image reference.
#[derive(Debug, Clone)]
pub struct ImageRef {
    /// The oci-client form, for registry calls.
    pub oci: Reference,
}

impl ImageRef {
    /// Parses what a user typed.
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::InvalidArgument(format!(
                "'{input}' is not a valid image reference ({why}): use NAME[:TAG] or NAME@sha256:DIGEST, in lowercase"
            ))
        };
        if input.is_empty() {
            return Err(bad("it is empty"));
        }
        if input.len() > 512 || input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it has spaces or is too long"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (input, None),
        };
        if let Some(d) = digest {
            crate::digest::hex_of(d).map_err(|_| bad("a digest is sha256: and 64 hex digits"))?;
        }
        // A tag follows the last ':' after the last '/' (before it, a
        // ':' is a registry's port).
        let last = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last..].rfind(':') {
            Some(i) => (&rest[..last + i], Some(&rest[last + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(bad(
                    "a tag is up to 128 letters, digits, _ . and -, not starting with . or -",
                ));
            }
        }
        if name.is_empty() || name.len() > 255 {
            return Err(bad("the name is empty or longer than 255 characters"));
        }
        // Docker's rule: the first component is a registry when it has a
        // '.' or a ':', or is "localhost".
        let (registry, remote) = match name.split_once('/') {
            Some((first, remote)) if first.contains(['.', ':']) || first == "localhost" => {
                if !valid_registry(first) {
                    return Err(bad(
                        "the registry must be a host name or address, with an optional :port",
                    ));
                }
                (first, remote)
            }
            _ => ("docker.io", name),
        };
        let registry = if registry == "index.docker.io" {
            "docker.io"
        } else {
            registry
        };
        let repository = if registry == "docker.io" && !remote.contains('/') {
            format!("library/{remote}")
        } else {
            remote.to_string()
        };
        if !repository.split('/').all(valid_path_component) {
            return Err(bad(
                "repository names are lowercase letters, digits and . _ - separators",
            ));
        }
        let (registry, tag) = (registry.to_string(), tag.map(String::from));
        let oci = match (tag, digest) {
            (Some(t), Some(d)) => {
                Reference::with_tag_and_digest(registry, repository, t, d.to_string())
            }
            (None, Some(d)) => Reference::with_digest(registry, repository, d.to_string()),
            (t, None) => {
                Reference::with_tag(registry, repository, t.unwrap_or_else(|| "latest".into()))
            }
        };
        Ok(ImageRef { oci })
    }

    /// The registry host as written in references ("docker.io", "localhost:5000").
    pub fn registry(&self) -> &str {
        self.oci.registry()
    }

    /// "registry/repository" without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.oci.registry(), self.oci.repository())
    }

    /// The digest, when the reference pins one.
    pub fn digest(&self) -> Option<&str> {
        self.oci.digest()
    }

    /// The tag; "latest" when neither tag nor digest was given.
    pub fn tag(&self) -> Option<&str> {
        match (self.oci.tag(), self.oci.digest()) {
            (Some(t), _) => Some(t),
            (None, None) => Some("latest"),
            (None, Some(_)) => None,
        }
    }

    /// The full key stored for a tag ("docker.io/library/alpine:latest"),
    /// or for a digest reference ("…/alpine@sha256:…").
    pub fn key(&self) -> String {
        match (self.tag(), self.digest()) {
            (Some(t), _) => format!("{}:{t}", self.name()),
            (None, Some(d)) => format!("{}@{d}", self.name()),
            (None, None) => unreachable!("tag() defaults to latest"),
        }
    }

    /// The same repository pinned at a digest.
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.oci.registry().to_string(),
            self.oci.repository().to_string(),
            digest.to_string(),
        )
    }
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn valid_tag(t: &str) -> bool {
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

/// A registry: host name components (letters, digits, inner '-')
/// separated by '.', or a bracketed IPv6 address, then maybe `:port`.
fn valid_registry(r: &str) -> bool {
    let (host, port) = match r.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, rest)) if addr.parse::<std::net::Ipv6Addr>().is_ok() => match rest {
                "" => (None, None),
                _ => match rest.strip_prefix(':') {
                    Some(p) => (None, Some(p)),
                    None => return false,
                },
            },
            _ => return false,
        },
        None => match r.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(r), None),
        },
    };
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
    };
    host.is_none_or(|h| h.split('.').all(label_ok))
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
}

/// One path component of a repository name, per the distribution
/// grammar: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_tag_or_digest_is_told_from_a_port() {
        assert!(!super::has_tag_or_digest("127.0.0.1:5000/a/b"));
        assert!(super::has_tag_or_digest("host:5000/a/b:1"));
        assert!(super::has_tag_or_digest("a@sha256:00"));
        assert!(!super::has_tag_or_digest("alpine"));
    }

    use super::*;

    #[test]
    fn normalises_like_docker() {
        let r = ImageRef::parse("alpine").unwrap();
        assert_eq!(r.key(), "docker.io/library/alpine:latest");
        assert_eq!(familiar(&r.key()), "alpine:latest");
        let r = ImageRef::parse("localhost:5000/a/b:v1").unwrap();
        assert_eq!(r.key(), "localhost:5000/a/b:v1");
        assert_eq!(familiar(&r.key()), "localhost:5000/a/b:v1");
        let d = format!("sha256:{}", "ab".repeat(32));
        let r = ImageRef::parse(&format!("user/app:v2@{d}")).unwrap();
        assert_eq!(
            (r.name().as_str(), r.tag(), r.digest()),
            ("docker.io/user/app", Some("v2"), Some(d.as_str()))
        );
        let r = ImageRef::parse(&format!("127.0.0.1:5000/app@{d}")).unwrap();
        assert_eq!((r.registry(), r.tag()), ("127.0.0.1:5000", None));
        assert_eq!(
            ImageRef::parse("index.docker.io/x").unwrap().key(),
            "docker.io/library/x:latest"
        );
        assert_eq!(
            ImageRef::parse("[::1]:5000/a").unwrap().registry(),
            "[::1]:5000"
        );
        assert_eq!(
            ImageRef::parse("localhost/a:1.0-rc_1").unwrap().key(),
            "localhost/a:1.0-rc_1"
        );
    }

    #[test]
    fn refuses_malformed_references_with_a_sentence() {
        for bad in [
            "",
            "UPPER",
            "UPPER/case",
            "a b",
            "x@sha256:zz",
            "a::b",
            "-x",
            "a/b..c",
            "a/_b",
            "a:-x",
            "a:",
            "a/",
            "my-.host:5000/a",
            "host:50x0/a",
            "a@sha256:abc",
        ] {
            let e = ImageRef::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("reference") || e.contains("digest"),
                "{bad}: {e}"
            );
        }
    }
}
