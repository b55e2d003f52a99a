//! What containers and their volumes amount to, for `info` and `system
//! df`: counts by state, each container's writable layer, each volume's
//! size and users (each image's users are the image service's
//! `user_count`).

use super::Containers;
use crate::util::du::dir_size;

/// How many containers there are, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Every container.
    pub total: u64,
    /// Running (a paused one is counted as paused).
    pub running: u64,
    /// Paused.
    pub paused: u64,
    /// Not running: created, exited, dead.
    pub stopped: u64,
}

/// One container's writable layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUsage {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The image it was made from, as the user named it.
    pub image: String,
    /// Bytes in its writable layer.
    pub size_rw: u64,
    /// Its state ("running", "exited", …).
    pub state: String,
}

/// One volume's size and how many containers mount it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeUsage {
    /// Its name.
    pub name: String,
    /// Bytes in it.
    pub size: u64,
    /// Containers that mount it.
    pub ref_count: u32,
}

/// Counts states as `info` reports them.
pub fn count<'a>(states: impl Iterator<Item = &'a str>) -> Counts {
    let mut c = Counts::default();
    for s in states {
        c.total += 1;
        match s {
            "running" | "restarting" => c.running += 1,
            "paused" => c.paused += 1,
            _ => c.stopped += 1,
        }
    }
    c
}

impl Containers {
    /// The containers by state.
    pub fn counts(&self) -> Counts {
        let states: Vec<String> = self.all().iter().map(|e| e.record().state.status).collect();
        count(states.iter().map(String::as_str))
    }

    /// The bytes in container `id`'s writable layer.
    pub fn size_rw(&self, id: &str) -> u64 {
        dir_size(&self.dir_of(id).join("upper"))
    }

    /// Each container's writable layer.
    pub fn usage(&self) -> Vec<ContainerUsage> {
        self.all()
            .iter()
            .map(|e| {
                let r = e.record();
                ContainerUsage {
                    size_rw: dir_size(&self.dir_of(&r.id).join("upper")),
                    id: r.id,
                    name: r.name,
                    image: r.image,
                    state: r.state.status,
                }
            })
            .collect()
    }

    /// Each volume's size and users.
    pub fn volume_usage(&self) -> Vec<VolumeUsage> {
        self.volumes
            .list()
            .into_iter()
            .map(|v| VolumeUsage {
                size: self.volumes.size(&v.name),
                ref_count: self.volume_users(&v.name) as u32,
                name: v.name,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn states_are_counted_as_info_reports_them() {
        let c = super::count(
            [
                "running",
                "paused",
                "exited",
                "created",
                "restarting",
                "dead",
            ]
            .into_iter(),
        );
        assert_eq!((c.total, c.running, c.paused, c.stopped), (6, 2, 1, 3));
    }
}
