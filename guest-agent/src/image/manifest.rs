//! The registry documents Berth reads: manifests, indexes (manifest lists)
//! and image configs, in both OCI and Docker schema 2 form.
//!
//! These are small lenient serde types rather than oci-spec's: real
//! registries serve documents oci-spec's strict types refuse (umoci's
//! manifests have no `mediaType`; Docker configs carry `null` for empty
//! lists), and Berth must keep the exact bytes anyway, since digests are
//! over bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// The media types Berth asks registries for.
pub const ACCEPTED: [&str; 4] = [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST];

/// A content descriptor.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type; may be absent in documents that omit it.
    #[serde(default)]
    pub media_type: String,
    /// Digest of the content.
    pub digest: String,
    /// Size of the content in bytes.
    pub size: u64,
    /// The platform, in an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An OS / architecture pair.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct Platform {
    /// e.g. "amd64".
    #[serde(default)]
    pub architecture: String,
    /// e.g. "linux".
    #[serde(default)]
    pub os: String,
    /// e.g. "v8".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this agent runs containers for.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            other => other,
        };
        Platform {
            architecture: arch.into(),
            os: "linux".into(),
            variant: None,
        }
    }

    /// Parses "os/arch[/variant]".
    pub fn parse(text: &str) -> Result<Platform> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => {
                Ok(Platform { os: os.to_string(), architecture: arch.to_string(), variant: None })
            }
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(Error::InvalidArgument(format!(
                "'{text}' is not a platform: write it as os/arch or os/arch/variant, e.g. linux/arm64"
            ))),
        }
    }

    fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && (self.variant.is_none() || self.variant == other.variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// An image manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// Media type, when the document states it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layer blobs, bottom first.
    pub layers: Vec<Descriptor>,
}

/// An image index / manifest list.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// Media type, when stated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests it lists.
    pub manifests: Vec<Descriptor>,
}

/// A parsed registry document.
pub enum Document {
    /// A single image.
    Manifest(Manifest),
    /// A list of images, one per platform.
    Index(Index),
}

/// Parses a manifest or index from its bytes.
pub fn parse_document(bytes: &[u8]) -> Result<Document> {
    let bad =
        |why: String| Error::DataLoss(format!("the registry sent a malformed manifest: {why}"));
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if value.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) {
        return Err(Error::InvalidArgument(
            "this image uses the retired Docker schema 1 manifest, which Berth does not pull: push it again with a current client".into(),
        ));
    }
    if value.get("manifests").is_some() {
        Ok(Document::Index(
            serde_json::from_value(value).map_err(|e| bad(e.to_string()))?,
        ))
    } else {
        Ok(Document::Manifest(
            serde_json::from_value(value).map_err(|e| bad(e.to_string()))?,
        ))
    }
}

impl Index {
    /// Picks the manifest for a platform.
    pub fn select(&self, want: &Platform) -> Result<&Descriptor> {
        let candidates: Vec<&Descriptor> = self
            .manifests
            .iter()
            .filter(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
            .collect();
        // Prefer an exact variant match, then arm64's usual v8, then the first.
        candidates
            .iter()
            .find(|d| d.platform.as_ref().map(|p| &p.variant) == Some(&want.variant))
            .or_else(|| {
                candidates
                    .iter()
                    .find(|d| d.platform.as_ref().and_then(|p| p.variant.as_deref()) == Some("v8"))
            })
            .or_else(|| candidates.first())
            .copied()
            .ok_or_else(|| {
                let have: Vec<String> = self
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref())
                    .filter(|p| p.os != "unknown")
                    .map(|p| p.to_string())
                    .collect();
                Error::no_image(format!(
                    "this image has no variant for {want}; it has {}: choose one with --platform",
                    have.join(", ")
                ))
            })
    }
}

/// The part of an image config that runs containers.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// Default user.
    #[serde(default)]
    pub user: Option<String>,
    /// Ports the image declares ("80/tcp" → {}).
    #[serde(default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    /// Environment.
    #[serde(default)]
    pub env: Option<Vec<String>>,
    /// Entrypoint.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Command.
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    /// Volumes ("/data" → {}).
    #[serde(default)]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    /// Working directory.
    #[serde(default)]
    pub working_dir: Option<String>,
    /// Labels.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    /// Stop signal.
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// The health check (`HEALTHCHECK`), as Docker's `HealthConfig` JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<serde_json::Value>,
    /// The shell of shell-form commands (`SHELL`), `/bin/sh -c` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

/// One history step.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct History {
    /// When.
    #[serde(default)]
    pub created: Option<String>,
    /// The command.
    #[serde(default)]
    pub created_by: Option<String>,
    /// Who.
    #[serde(default)]
    pub author: Option<String>,
    /// A comment.
    #[serde(default)]
    pub comment: Option<String>,
    /// True when the step made no layer.
    #[serde(default)]
    pub empty_layer: Option<bool>,
}

/// The rootfs section.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RootFs {
    /// Always "layers".
    #[serde(default, rename = "type")]
    pub kind: String,
    /// Digests of the uncompressed layers, bottom first.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// An image config document.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ImageConfig {
    /// Creation time, RFC 3339.
    #[serde(default)]
    pub created: Option<String>,
    /// Author.
    #[serde(default)]
    pub author: Option<String>,
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// OS.
    #[serde(default)]
    pub os: String,
    /// Architecture variant.
    #[serde(default)]
    pub variant: Option<String>,
    /// How containers run.
    #[serde(default)]
    pub config: Option<RunConfig>,
    /// The layers.
    #[serde(default)]
    pub rootfs: RootFs,
    /// Build history.
    #[serde(default)]
    pub history: Option<Vec<History>>,
}

/// Parses an image config.
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfig> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::DataLoss(format!("the image config is malformed: {e}")))
}
