//! The Engine view's disk usage and its Prune button: what images,
//! containers, volumes and the build cache take (as `berth system df`
//! counts it), and one prune of stopped containers, dangling images,
//! unused networks and the build cache, told back as one sentence.

use berth_client::types as pb;
use serde::Serialize;
use tauri::State;

use crate::commands::Reply;
use crate::App;

/// One row of the disk usage table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRow {
    /// `Images`, `Containers`, `Volumes` or `Build cache`.
    pub kind: String,
    /// How many there are.
    pub count: u64,
    /// How many are in use (images with containers, running containers,
    /// volumes a container mounts).
    pub active: u64,
    /// The bytes they take.
    pub size: u64,
    /// The bytes that removing the unused ones would give back.
    pub reclaimable: u64,
}

/// The disk usage table's rows from the engine's answer.
pub fn rows(d: &pb::DiskUsageResponse) -> Vec<UsageRow> {
    let row = |kind: &str, count: usize, active: usize, size: u64, reclaimable: u64| UsageRow {
        kind: kind.to_string(),
        count: count as u64,
        active: active as u64,
        size,
        reclaimable: reclaimable.min(size),
    };
    let images_size = d
        .layers_size
        .max(d.images.iter().map(|i| i.unique_size).sum::<u64>());
    let unused_images = d.images.iter().filter(|i| i.containers == 0);
    let running = |c: &&pb::ContainerUsage| c.state == "running" || c.state == "paused";
    let stopped = d.containers.iter().filter(|c| !running(c));
    vec![
        row(
            "Images",
            d.images.len(),
            d.images.iter().filter(|i| i.containers > 0).count(),
            images_size,
            unused_images.map(|i| i.unique_size).sum(),
        ),
        row(
            "Containers",
            d.containers.len(),
            d.containers.iter().filter(running).count(),
            d.containers.iter().map(|c| c.size_rw).sum(),
            stopped.map(|c| c.size_rw).sum(),
        ),
        row(
            "Volumes",
            d.volumes.len(),
            d.volumes.iter().filter(|v| v.ref_count > 0).count(),
            d.volumes.iter().map(|v| v.size).sum(),
            d.volumes
                .iter()
                .filter(|v| v.ref_count == 0)
                .map(|v| v.size)
                .sum(),
        ),
        row(
            "Build cache",
            d.build_cache_count as usize,
            0,
            d.build_cache_size,
            d.build_cache_size,
        ),
    ]
}

/// What images, containers, volumes and the build cache take on disk.
#[tauri::command]
pub async fn disk_usage(app: State<'_, App>) -> Reply<Vec<UsageRow>> {
    Ok(rows(&app.client().disk_usage().await?))
}

/// What one prune removed.
#[derive(Debug, Default, Serialize)]
pub struct Pruned {
    /// Stopped containers removed.
    pub containers: usize,
    /// Images deleted (untagged names not counted).
    pub images: usize,
    /// Networks removed.
    pub networks: usize,
    /// Build cache entries removed.
    pub build_cache: usize,
    /// The bytes given back.
    pub reclaimed: u64,
    /// All of it as one sentence.
    pub sentence: String,
}

/// `1 stopped container`, `2 stopped containers`.
fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Bytes as a short size, 1000-based as the UI and Docker print them.
fn size(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

impl Pruned {
    /// The sentence the Engine view shows.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            (self.containers, "stopped container", "stopped containers"),
            (self.images, "image", "images"),
            (self.networks, "network", "networks"),
            (self.build_cache, "build cache entry", "build cache entries"),
        ]
        .into_iter()
        .filter(|(n, ..)| *n > 0)
        .map(|(n, one, many)| count(n, one, many))
        .collect();
        match parts.as_slice() {
            [] => "There was nothing to prune.".to_string(),
            [one] => format!("Removed {one}, reclaiming {}.", size(self.reclaimed)),
            [rest @ .., last] => format!(
                "Removed {} and {last}, reclaiming {}.",
                rest.join(", "),
                size(self.reclaimed)
            ),
        }
    }
}

/// Removes stopped containers, dangling images, networks no container
/// uses and the build cache, in that order (a removed container frees
/// its image and networks); volumes are kept.
#[tauri::command]
pub async fn prune(app: State<'_, App>) -> Reply<Pruned> {
    let c = app.client();
    let mut p = Pruned::default();
    let containers = c.prune_containers(Default::default()).await?;
    p.containers = containers.deleted.len();
    p.reclaimed += containers.space_reclaimed;
    let images = c.prune_images(false).await?;
    p.images = images
        .items
        .iter()
        .filter(|i| i.action == "Deleted")
        .count();
    p.reclaimed += images.space_reclaimed;
    p.networks = c.prune_networks().await?.len();
    let (cache, freed) = c.prune_build_cache(false).await?;
    p.build_cache = cache.len();
    p.reclaimed += freed;
    p.sentence = p.describe();
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_count_what_is_unused_as_reclaimable() {
        let d = pb::DiskUsageResponse {
            images: vec![
                pb::ImageUsage {
                    unique_size: 5_000,
                    containers: 1,
                    ..Default::default()
                },
                pb::ImageUsage {
                    unique_size: 3_000,
                    ..Default::default()
                },
            ],
            containers: vec![
                pb::ContainerUsage {
                    size_rw: 100,
                    state: "running".into(),
                    ..Default::default()
                },
                pb::ContainerUsage {
                    size_rw: 40,
                    state: "exited".into(),
                    ..Default::default()
                },
            ],
            volumes: vec![pb::VolumeUsage {
                size: 9,
                ref_count: 0,
                ..Default::default()
            }],
            layers_size: 7_000,
            build_cache_count: 2,
            build_cache_size: 64,
            ..Default::default()
        };
        let r = rows(&d);
        let brief: Vec<(&str, u64, u64, u64, u64)> = r
            .iter()
            .map(|r| (r.kind.as_str(), r.count, r.active, r.size, r.reclaimable))
            .collect();
        assert_eq!(
            brief,
            [
                ("Images", 2, 1, 8_000, 3_000),
                ("Containers", 2, 1, 140, 40),
                ("Volumes", 1, 0, 9, 9),
                ("Build cache", 2, 0, 64, 64),
            ]
        );
    }

    #[test]
    fn the_sentence_names_what_went() {
        let mut p = Pruned::default();
        assert_eq!(p.describe(), "There was nothing to prune.");
        p.containers = 1;
        p.reclaimed = 512;
        assert_eq!(
            p.describe(),
            "Removed 1 stopped container, reclaiming 512 B."
        );
        p.containers = 2;
        p.images = 1;
        p.build_cache = 3;
        p.reclaimed = 8_400_000;
        assert_eq!(
            p.describe(),
            "Removed 2 stopped containers, 1 image and 3 build cache entries, reclaiming 8.4 MB."
        );
    }
}
