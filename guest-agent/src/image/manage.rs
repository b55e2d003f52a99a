//! Finding, listing, tagging and removing stored images, and collecting
//! the blobs and snapshots no image needs any more.

use std::collections::{HashMap, HashSet};

use super::reference::{familiar, ImageRef};
use super::ImageService;
use crate::error::{Error, Result};
use crate::store::ImageRecord;

/// A stored image with its tags.
#[derive(Debug, Clone)]
pub struct ImageEntry {
    /// The record.
    pub record: ImageRecord,
    /// Full references that name it.
    pub tags: Vec<String>,
}

/// One line of `rmi` / `prune` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// A name was removed.
    Untagged(String),
    /// An image or layer was deleted.
    Deleted(String),
}

impl ImageService {
    /// Every stored image, newest first, except the build cache's own
    /// steps (untagged images a build made; see [`super::cache`]).
    pub fn list(&self) -> Result<Vec<ImageEntry>> {
        let cache = self.cache_ids()?;
        let mut out: Vec<ImageEntry> = self
            .meta
            .images()?
            .into_iter()
            .filter(|(record, tags)| !tags.is_empty() || !cache.contains(&record.id))
            .map(|(record, tags)| ImageEntry { record, tags })
            .collect();
        out.sort_by(|a, b| {
            b.record
                .stored_at
                .cmp(&a.record.stored_at)
                .then(a.record.id.cmp(&b.record.id))
        });
        Ok(out)
    }

    /// Finds the image a user means: a full or short id, a name, or a
    /// name@digest.
    pub fn find(&self, input: &str) -> Result<ImageEntry> {
        let missing = || {
            Error::no_image(format!(
                "no such image: {input}; `berth images` lists the stored ones"
            ))
        };
        let all = self.list()?;
        let hex = input.strip_prefix("sha256:").unwrap_or(input);
        // A build step's image (hidden from the list) by its full id.
        if hex.len() == 64 {
            let id = format!("sha256:{hex}");
            if let Some(record) = self.meta.image(&id)? {
                let tags = all
                    .iter()
                    .find(|e| e.record.id == id)
                    .map(|e| e.tags.clone())
                    .unwrap_or_default();
                return Ok(ImageEntry { record, tags });
            }
        }
        if hex.len() >= 4 && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hits: Vec<&ImageEntry> = all
                .iter()
                .filter(|e| e.record.id[7..].starts_with(hex))
                .collect();
            match hits.len() {
                1 => return Ok(hits[0].clone()),
                0 => {}
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "the id prefix {input} matches several images: give more of it"
                    )))
                }
            }
        }
        let image = ImageRef::parse(input).map_err(|_| missing())?;
        if let Some(d) = image.digest() {
            let want = format!("{}@{d}", image.name());
            return all
                .into_iter()
                .find(|e| e.record.repo_digests.contains(&want))
                .ok_or_else(missing);
        }
        let key = image.key();
        all.into_iter()
            .find(|e| e.tags.contains(&key))
            .ok_or_else(missing)
    }

    /// Gives an image another name.
    pub fn tag(&self, source: &str, target: &str) -> Result<String> {
        let entry = self.find(source)?;
        let target = ImageRef::parse(target)?;
        if target.digest().is_some() {
            return Err(Error::InvalidArgument(
                "a tag cannot be a digest: use NAME[:TAG]".into(),
            ));
        }
        self.meta.set_tag(&target.key(), &entry.record.id)?;
        self.emit("tag", &entry.record.id, &target.key());
        Ok(target.key())
    }

    /// Removes a name, or the image when it was the last name (or an id was
    /// given), as `docker rmi` does.
    pub async fn remove(
        &self,
        input: &str,
        force: bool,
        no_prune: bool,
    ) -> Result<(Vec<Removed>, u64)> {
        self.remove_with(input, force, no_prune, None).await
    }

    /// [`Self::remove`], told which running container (if any) uses the
    /// image. An image some container uses is never deleted: without
    /// `force` the removal is refused with Docker's sentences; with it,
    /// its names are removed and it stays, nameless, while a container
    /// uses it (as Docker's containerd image store keeps it), unless a
    /// running container uses an image given by id, which Docker refuses
    /// even when forced.
    pub async fn remove_with(
        &self,
        input: &str,
        force: bool,
        no_prune: bool,
        running: Option<&str>,
    ) -> Result<(Vec<Removed>, u64)> {
        let _guard = self.gc_lock.write().await;
        let entry = self.find(input)?;
        let id = entry.record.id.clone();
        let by_name = ImageRef::parse(input)
            .ok()
            .filter(|r| entry.tags.contains(&r.key()));
        let mut out = Vec::new();
        let user = self.user_of(&id);
        let short = |c: &str| c[..12.min(c.len())].to_string();
        if let Some(container) = &user {
            let image = super::short_id(&id);
            let refusal = match (&by_name, running) {
                (Some(_), _) if !force && entry.tags.len() <= 1 => Some(format!(
                    "conflict: unable to remove repository reference \"{input}\" (must force) - container {} is using its referenced image {image}; remove the container first (berth rm)",
                    short(container)
                )),
                (None, Some(c)) => Some(format!(
                    "conflict: unable to delete {image} (cannot be forced) - image is being used by running container {}",
                    short(c)
                )),
                (None, None) if !force => Some(format!(
                    "conflict: unable to delete {image} (must be forced) - image is being used by stopped container {}",
                    short(container)
                )),
                _ => None,
            };
            if let Some(sentence) = refusal {
                return Err(Error::Conflict(sentence));
            }
        }
        if let Some(name) = by_name {
            self.meta.remove_tag(&name.key())?;
            out.push(Removed::Untagged(familiar(&name.key())));
            self.emit("untag", &id, &name.key());
            if entry.tags.len() > 1 || user.is_some() {
                return Ok((out, 0));
            }
        } else if entry.tags.len() > 1 && !force {
            return Err(Error::Conflict(format!(
                "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories ({}); remove the names one by one or use -f",
                super::short_id(&id),
                entry.tags.iter().map(|t| familiar(t)).collect::<Vec<_>>().join(", ")
            )));
        }
        if user.is_some() {
            // Forced, by id, used by stopped containers: every name goes,
            // the image stays for them.
            for name in &entry.tags {
                self.meta.remove_tag(name)?;
                out.push(Removed::Untagged(familiar(name)));
                self.emit("untag", &id, name);
            }
            return Ok((out, 0));
        }
        for name in self.meta.remove_image(&id)? {
            out.push(Removed::Untagged(familiar(&name)));
        }
        for d in &entry.record.repo_digests {
            if !out.contains(&Removed::Untagged(familiar(d))) {
                out.push(Removed::Untagged(familiar(d)));
            }
        }
        out.push(Removed::Deleted(id.clone()));
        self.emit("delete", &id, "");
        let reclaimed = if no_prune {
            0
        } else {
            self.collect_garbage(&mut out)?
        };
        Ok((out, reclaimed))
    }

    /// Deletes dangling images (every image with `all`), then collects
    /// garbage.
    pub async fn prune(&self, all: bool) -> Result<(Vec<Removed>, u64)> {
        let _guard = self.gc_lock.write().await;
        let mut out = Vec::new();
        for entry in self.list()? {
            if (all || entry.tags.is_empty()) && self.user_of(&entry.record.id).is_none() {
                for name in self.meta.remove_image(&entry.record.id)? {
                    out.push(Removed::Untagged(familiar(&name)));
                }
                out.push(Removed::Deleted(entry.record.id.clone()));
                self.emit("delete", &entry.record.id, "");
            }
        }
        let reclaimed = self.collect_garbage(&mut out)?;
        Ok((out, reclaimed))
    }

    /// Removes every blob and snapshot that no image record references.
    /// Callers hold the gc lock exclusively.
    pub(super) fn collect_garbage(&self, out: &mut Vec<Removed>) -> Result<u64> {
        let mut blobs = HashSet::new();
        let mut chains = HashSet::new();
        for (record, _) in self.meta.images()? {
            blobs.insert(record.id.clone());
            blobs.insert(record.manifest_digest.clone());
            for l in &record.layers {
                blobs.insert(l.digest.clone());
                chains.insert(l.chain_id.clone());
            }
        }
        let mut reclaimed = 0;
        for chain in self.snapshots.list()? {
            if !chains.contains(&chain) {
                reclaimed += self.snapshots.remove(&chain)?;
                out.push(Removed::Deleted(chain));
            }
        }
        for (digest, _) in self.content.list()? {
            if !blobs.contains(&digest) {
                reclaimed += self.content.remove(&digest)?;
            }
        }
        Ok(reclaimed)
    }

    /// Bytes used by snapshots and blobs.
    pub fn disk_usage(&self) -> Result<(u64, u64)> {
        let layers = self
            .snapshots
            .list()?
            .iter()
            .filter_map(|c| self.snapshots.info(c))
            .map(|i| i.bytes)
            .sum();
        let blobs = self.content.list()?.iter().map(|(_, s)| s).sum();
        Ok((layers, blobs))
    }
}

/// One image's share of the disk, for `system df`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUsage {
    /// The image's id.
    pub id: String,
    /// Its names, as users write them.
    pub repo_tags: Vec<String>,
    /// Its unpacked size.
    pub size: u64,
    /// The bytes of its layers that other images use too.
    pub shared_size: u64,
    /// The rest.
    pub unique_size: u64,
}

/// Each image's usage; `layer_bytes` gives a layer's size by chain id.
pub fn usage_of(images: &[ImageEntry], layer_bytes: impl Fn(&str) -> u64) -> Vec<ImageUsage> {
    let mut chain_users: HashMap<&str, u32> = HashMap::new();
    for e in images {
        for l in &e.record.layers {
            *chain_users.entry(l.chain_id.as_str()).or_default() += 1;
        }
    }
    images
        .iter()
        .map(|e| {
            let shared: u64 = e
                .record
                .layers
                .iter()
                .filter(|l| chain_users.get(l.chain_id.as_str()).copied().unwrap_or(0) > 1)
                .map(|l| layer_bytes(&l.chain_id))
                .sum();
            ImageUsage {
                id: e.record.id.clone(),
                repo_tags: e.tags.iter().map(|t| familiar(t)).collect(),
                size: e.record.size,
                shared_size: shared,
                unique_size: e.record.size.saturating_sub(shared),
            }
        })
        .collect()
}

impl ImageService {
    /// Every image's share of the disk.
    pub fn usage(&self) -> Result<Vec<ImageUsage>> {
        let images = self.list()?;
        Ok(usage_of(&images, |chain| {
            self.snapshots.info(chain).map_or(0, |i| i.bytes)
        }))
    }
}

#[cfg(test)]
mod usage_tests {
    use super::*;
    use crate::store::{ImageRecord, LayerRecord};

    fn image(id: &str, chains: &[&str], size: u64) -> ImageEntry {
        ImageEntry {
            record: ImageRecord {
                version: crate::store::IMAGE_RECORD_VERSION,
                id: id.into(),
                manifest_digest: String::new(),
                manifest_media_type: String::new(),
                layers: chains
                    .iter()
                    .map(|c| LayerRecord {
                        digest: String::new(),
                        media_type: String::new(),
                        size: 0,
                        diff_id: String::new(),
                        chain_id: c.to_string(),
                    })
                    .collect(),
                repo_digests: Vec::new(),
                size,
                stored_at: 0,
            },
            tags: vec!["docker.io/library/busybox:latest".into()],
        }
    }

    #[test]
    fn layers_two_images_use_count_as_shared() {
        let images = [image("a", &["base", "a1"], 30), image("b", &["base"], 10)];
        let usage = usage_of(&images, |chain| if chain == "base" { 10 } else { 20 });
        assert_eq!(usage[0].shared_size, 10);
        assert_eq!(usage[0].unique_size, 20);
        assert_eq!(usage[1].shared_size, 10);
        assert_eq!(usage[1].unique_size, 0);
        assert_eq!(usage[0].repo_tags, ["busybox:latest"]);
    }
}
