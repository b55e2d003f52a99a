//! Image references as users write them ("alpine", "host:5000/app:v1",
//! "app@sha256:…"), normalised as Docker does ("alpine" is
//! "docker.io/library/alpine:latest"). Parsing is oci-spec's (through
//! oci-client); this module adds Docker's familiar names and clear errors.

pub use berth_api::names::familiar;
use oci_client::Reference;

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
        let oci: Reference = input
            .parse()
            .map_err(|e: oci_client::ParseError| bad(&e.to_string()))?;
        if let Some(d) = oci.digest() {
            crate::digest::hex_of(d)?;
        }
        if !oci.repository().split('/').all(valid_path_component) {
            return Err(bad(
                "repository names are lowercase letters, digits and . _ - separators",
            ));
        }
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
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let r = ImageRef::parse("alpine").unwrap();
        assert_eq!(r.key(), "docker.io/library/alpine:latest");
        assert_eq!(familiar(&r.key()), "alpine:latest");
        let r = ImageRef::parse("localhost:5000/a/b:v1").unwrap();
        assert_eq!(r.key(), "localhost:5000/a/b:v1");
        assert_eq!(familiar(&r.key()), "localhost:5000/a/b:v1");
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
        ] {
            let e = ImageRef::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains("reference") || e.contains("digest"),
                "{bad}: {e}"
            );
        }
    }
}
