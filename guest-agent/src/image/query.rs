//! Reading stored images for `images`, `inspect` and `history`: the
//! list's filters, an image's config, its history with layer sizes.

use std::collections::HashMap;

use super::manage::ImageEntry;
use super::manifest::{parse_config, ImageConfig};
use super::reference::familiar;
use super::ImageService;
use crate::error::Result;

/// One step of an image's history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryItem {
    /// When (RFC 3339), if the image says.
    pub created: Option<String>,
    /// The command that made it.
    pub created_by: String,
    /// Who.
    pub author: String,
    /// A comment.
    pub comment: String,
    /// True when the step made no layer.
    pub empty_layer: bool,
    /// The image's id on the newest step, else empty.
    pub id: String,
    /// The unpacked size of the step's layer.
    pub size: u64,
}

/// Docker's reference filter: `*` matches within one path component; a
/// pattern without a tag matches every tag.
pub fn reference_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && t[0] != b'/' && go(p, &t[1..])),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    let with_tag = if pattern.contains(':') {
        pattern.to_string()
    } else {
        format!("{pattern}:*")
    };
    go(with_tag.as_bytes(), name.as_bytes())
}

/// True when `entry` passes `images`' filters: `dangling=true|false` and
/// `reference=PATTERN` (any of them, against the names users write).
pub fn image_wanted(entry: &ImageEntry, filters: &HashMap<String, Vec<String>>) -> bool {
    let dangling = filters
        .get("dangling")
        .and_then(|l| l.first())
        .map(|v| v == "true");
    if dangling.is_some_and(|d| d != entry.tags.is_empty()) {
        return false;
    }
    match filters.get("reference") {
        Some(patterns) if !patterns.is_empty() => entry.tags.iter().any(|t| {
            let name = familiar(t);
            patterns.iter().any(|p| reference_matches(p, &name))
        }),
        _ => true,
    }
}

impl ImageService {
    /// The stored images `filters` pass (see [`image_wanted`]).
    pub fn list_filtered(&self, filters: &HashMap<String, Vec<String>>) -> Result<Vec<ImageEntry>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|e| image_wanted(e, filters))
            .collect())
    }

    /// An image's config, parsed and as stored.
    pub fn config_of(&self, entry: &ImageEntry) -> Result<(ImageConfig, String)> {
        let bytes = self.content.read(&entry.record.id)?;
        let config = parse_config(&bytes)?;
        Ok((config, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// The unpacked bytes of the layer with chain id `chain_id`.
    pub fn layer_bytes(&self, chain_id: &str) -> u64 {
        self.snapshots.info(chain_id).map_or(0, |i| i.bytes)
    }

    /// An image's history, newest first, with each layer's size.
    pub fn history(&self, config: &ImageConfig, entry: &ImageEntry) -> Vec<HistoryItem> {
        let mut layers = entry.record.layers.iter();
        let mut out: Vec<HistoryItem> = config
            .history
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|h| {
                let empty = h.empty_layer.unwrap_or(false);
                let size = if empty {
                    0
                } else {
                    layers.next().map_or(0, |l| self.layer_bytes(&l.chain_id))
                };
                HistoryItem {
                    created: h.created,
                    created_by: h.created_by.unwrap_or_default(),
                    author: h.author.unwrap_or_default(),
                    comment: h.comment.unwrap_or_default(),
                    empty_layer: empty,
                    id: String::new(),
                    size,
                }
            })
            .collect();
        out.reverse();
        if let Some(first) = out.first_mut() {
            first.id = entry.record.id.clone();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ImageRecord;

    fn entry(tags: &[&str]) -> ImageEntry {
        ImageEntry {
            record: ImageRecord {
                version: crate::store::IMAGE_RECORD_VERSION,
                id: "sha256:1".into(),
                manifest_digest: String::new(),
                manifest_media_type: String::new(),
                layers: Vec::new(),
                repo_digests: Vec::new(),
                size: 0,
                stored_at: 0,
            },
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    use crate::util::filters as f;

    #[test]
    fn reference_patterns_match_within_a_component() {
        assert!(reference_matches("busybox", "busybox:latest"));
        assert!(reference_matches("busy*", "busybox:1.36"));
        assert!(reference_matches("*/app:v1", "me/app:v1"));
        assert!(!reference_matches("*", "me/app:v1"));
        assert!(!reference_matches("busybox:1", "busybox:latest"));
    }

    #[test]
    fn images_filters_dangling_and_reference() {
        let tagged = entry(&["docker.io/library/busybox:latest"]);
        let dangling = entry(&[]);
        assert!(image_wanted(&tagged, &f(&[])));
        assert!(image_wanted(&dangling, &f(&[("dangling", &["true"])])));
        assert!(!image_wanted(&tagged, &f(&[("dangling", &["true"])])));
        assert!(image_wanted(&tagged, &f(&[("dangling", &["false"])])));
        assert!(image_wanted(&tagged, &f(&[("reference", &["busybox"])])));
        assert!(!image_wanted(&tagged, &f(&[("reference", &["alpine"])])));
        assert!(!image_wanted(&dangling, &f(&[("reference", &["*"])])));
    }
}
