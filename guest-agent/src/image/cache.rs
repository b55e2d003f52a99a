//! The build cache: each Dockerfile step's result is an image of its own
//! (its layers and its config so far), found again by a key of the
//! step's inputs. Those images are hidden from `images` while no tag
//! names them, counted as "Build Cache" by `system df`, and removed by
//! `builder prune` (and `system prune`), never by `image prune`.

use std::collections::HashSet;

use super::manage::Removed;
use super::ImageService;
use crate::error::Result;

/// The build cache's share of the disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUsage {
    /// Images build steps made that still exist.
    pub entries: u32,
    /// Bytes of layers only the cache's images hold.
    pub bytes: u64,
}

impl ImageService {
    /// The ids of images build steps made.
    pub(super) fn cache_ids(&self) -> Result<HashSet<String>> {
        Ok(self.meta.build_images()?.into_iter().collect())
    }

    /// The image a build step with `key` made, when it still exists.
    pub fn cached_step(&self, key: &str) -> Result<Option<crate::store::ImageRecord>> {
        match self.meta.cached(key)? {
            Some(id) => self.meta.image(&id),
            None => Ok(None),
        }
    }

    /// What `system df` shows for the build cache.
    pub fn cache_usage(&self) -> Result<CacheUsage> {
        let ids = self.meta.build_images()?;
        let mut visible_chains = HashSet::new();
        for e in self.list()? {
            for l in &e.record.layers {
                visible_chains.insert(l.chain_id.clone());
            }
        }
        let mut counted = HashSet::new();
        let mut usage = CacheUsage::default();
        for id in ids {
            let Some(record) = self.meta.image(&id)? else {
                continue;
            };
            usage.entries += 1;
            for l in record.layers {
                if !visible_chains.contains(&l.chain_id) && counted.insert(l.chain_id.clone()) {
                    usage.bytes += self.snapshots.info(&l.chain_id).map_or(0, |i| i.bytes);
                }
            }
        }
        Ok(usage)
    }

    /// `builder prune`: forgets every cache entry, deletes the cache's
    /// images that no tag names and no container uses, then collects the
    /// blobs and layers nothing needs. Returns the entries removed and
    /// the bytes reclaimed.
    pub async fn prune_build_cache(&self) -> Result<(Vec<String>, u64)> {
        let _guard = self.gc_lock.write().await;
        let (entries, ids) = self.meta.clear_cache()?;
        let tagged: HashSet<String> = self
            .meta
            .images()?
            .into_iter()
            .filter(|(_, tags)| !tags.is_empty())
            .map(|(r, _)| r.id)
            .collect();
        let deleted = entries.into_iter().map(|(key, _)| key).collect();
        for id in ids {
            if tagged.contains(&id) || self.user_of(&id).is_some() {
                continue;
            }
            self.meta.remove_image(&id)?;
        }
        let mut out: Vec<Removed> = Vec::new();
        let reclaimed = self.collect_garbage(&mut out)?;
        Ok((deleted, reclaimed))
    }
}
