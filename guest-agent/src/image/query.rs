//! Reading stored images for `images`, `inspect` and `history`: the
//! list's filters (Docker's, names narrowed by `reference` as dockerd's), an image's config, its history with layer sizes.

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

/// Go's `path.Match`, which Docker's reference filter uses: `*` is any
/// run of characters but `/`, `?` one such character, `[…]` a class
/// (`[^…]` its complement, `a-z` a range), `\\` quotes the next character.
/// A malformed class matches nothing.
pub fn path_match(pattern: &str, name: &str) -> bool {
    fn at(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len())
                .take_while(|&k| k == 0 || n[k - 1] != '/')
                .any(|k| at(&p[1..], &n[k..])),
            Some('?') => n.first().is_some_and(|c| *c != '/') && at(&p[1..], &n[1..]),
            Some('[') => {
                let Some(end) = p.iter().position(|c| *c == ']') else {
                    return false;
                };
                let Some(c) = n.first() else {
                    return false;
                };
                let (negate, class) = match p[1..end].split_first() {
                    Some(('^', rest)) => (true, rest),
                    _ => (false, &p[1..end]),
                };
                let mut hit = false;
                let mut i = 0;
                while i < class.len() {
                    if i + 2 < class.len() && class[i + 1] == '-' {
                        hit |= class[i] <= *c && *c <= class[i + 2];
                        i += 3;
                    } else {
                        hit |= class[i] == *c;
                        i += 1;
                    }
                }
                hit != negate && at(&p[end + 1..], &n[1..])
            }
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && at(&p[2..], &n[1..]),
            Some(x) => n.first() == Some(x) && at(&p[1..], &n[1..]),
        }
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    at(&p, &n)
}

/// The name of a reference without its tag or digest (`me/app:1` and
/// `me/app@sha256:…` are `me/app`; a registry's port is kept).
fn repository_of(reference: &str) -> &str {
    let name = reference.split_once('@').map_or(reference, |(n, _)| n);
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => name,
    }
}

/// Docker's reference filter (`reference.FamiliarMatch`): the pattern
/// matches the name as users write it (`busybox:latest`,
/// `me/app@sha256:…`), or that name without its tag or digest, by Go's
/// [`path_match`].
pub fn reference_matches(pattern: &str, name: &str) -> bool {
    let name = familiar(name);
    path_match(pattern, &name) || path_match(pattern, repository_of(&name))
}

/// `entry` as `images`' filters leave it, or `None` when they drop it:
/// `dangling=true|false`, and `reference=PATTERN` (any of them), which
/// keeps only the names and digests a pattern matches, as dockerd lists
/// them (`images byid` shows `byid`, not the image's other names).
pub fn image_wanted(
    entry: &ImageEntry,
    filters: &HashMap<String, Vec<String>>,
) -> Option<ImageEntry> {
    let dangling = filters
        .get("dangling")
        .and_then(|l| l.first())
        .map(|v| v == "true");
    if dangling.is_some_and(|d| d != entry.tags.is_empty()) {
        return None;
    }
    let patterns = match filters.get("reference") {
        Some(patterns) if !patterns.is_empty() => patterns,
        _ => return Some(entry.clone()),
    };
    let wanted = |name: &String| patterns.iter().any(|p| reference_matches(p, name));
    let mut out = entry.clone();
    out.tags.retain(wanted);
    out.record.repo_digests.retain(wanted);
    if out.tags.is_empty() && out.record.repo_digests.is_empty() {
        return None;
    }
    Some(out)
}

impl ImageService {
    /// The stored images `filters` pass, each with only the names they
    /// keep (see [`image_wanted`]).
    pub fn list_filtered(&self, filters: &HashMap<String, Vec<String>>) -> Result<Vec<ImageEntry>> {
        Ok(self
            .list()?
            .into_iter()
            .filter_map(|e| image_wanted(&e, filters))
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
    fn reference_patterns_match_as_docker_s_familiar_match() {
        assert!(reference_matches(
            "busybox",
            "docker.io/library/busybox:latest"
        ));
        assert!(reference_matches("busy*", "busybox:1.36"));
        assert!(reference_matches("*/app:v1", "me/app:v1"));
        assert!(!reference_matches("*", "me/app:v1"));
        assert!(reference_matches("*", "busybox:1"));
        assert!(!reference_matches("busybox:1", "busybox:latest"));
        // A registry's port is not a tag.
        assert!(reference_matches(
            "127.0.0.1:5000/t/bb",
            "127.0.0.1:5000/t/bb:1"
        ));
        assert!(reference_matches(
            "127.0.0.1:5000/t/bb",
            "127.0.0.1:5000/t/bb@sha256:ab"
        ));
        assert!(!reference_matches(
            "127.0.0.1:5000/t/bb:1",
            "127.0.0.1:5000/t/bb@sha256:ab"
        ));
    }

    #[test]
    fn references_match_as_gos_path_match() {
        let m = path_match;
        assert!(m("byid", "byid") && m("byid:latest", "byid:latest"));
        assert!(!m("byid", "127.0.0.1:5000/test/busybox"));
        assert!(m("*/test/*:1", "127.0.0.1:5000/test/busybox:1"));
        assert!(!m("*", "a/b") && m("b?s[a-z]", "busy") && !m("[^b]usy", "busy"));
        assert!(!m("[a-", "a") && m("a\\*", "a*") && !m("a\\*", "ab"));
    }

    #[test]
    fn images_filters_dangling_and_reference() {
        let tagged = entry(&["docker.io/library/busybox:latest"]);
        let dangling = entry(&[]);
        let kept = |e: &ImageEntry, f: &HashMap<String, Vec<String>>| image_wanted(e, f).is_some();
        assert!(kept(&tagged, &f(&[])));
        assert!(kept(&dangling, &f(&[("dangling", &["true"])])));
        assert!(!kept(&tagged, &f(&[("dangling", &["true"])])));
        assert!(kept(&tagged, &f(&[("dangling", &["false"])])));
        assert!(kept(&tagged, &f(&[("reference", &["busybox"])])));
        assert!(!kept(&tagged, &f(&[("reference", &["alpine"])])));
        assert!(!kept(&dangling, &f(&[("reference", &["*"])])));
    }

    #[test]
    fn the_reference_filter_keeps_only_the_names_it_matches() {
        let mut e = entry(&["127.0.0.1:5000/t/bb:1", "docker.io/library/byid:latest"]);
        e.record.repo_digests = vec!["127.0.0.1:5000/t/bb@sha256:ab".into()];
        let byid = image_wanted(&e, &f(&[("reference", &["byid"])])).unwrap();
        assert_eq!(byid.tags, ["docker.io/library/byid:latest"]);
        assert!(byid.record.repo_digests.is_empty());
        let repo = image_wanted(&e, &f(&[("reference", &["127.0.0.1:5000/t/bb"])])).unwrap();
        assert_eq!(repo.tags, ["127.0.0.1:5000/t/bb:1"]);
        assert_eq!(repo.record.repo_digests, ["127.0.0.1:5000/t/bb@sha256:ab"]);
        let tag = image_wanted(&e, &f(&[("reference", &["127.0.0.1:5000/t/bb:1"])])).unwrap();
        assert!(tag.record.repo_digests.is_empty());
        let all = image_wanted(&e, &f(&[])).unwrap();
        assert_eq!(all.tags.len(), 2);
    }
}
