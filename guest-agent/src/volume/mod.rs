//! Named and anonymous volumes: directories under `<root>/volumes/<name>/`
//! (`_data` is what containers see, `volume.json` the record), as
//! Docker's `local` driver keeps them. Which containers use a volume is
//! the container engine's knowledge; it passes that in for `rm` and
//! `prune`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::events::Events;
use crate::util::jsonfile::{read_json, write_json_durable};

/// The format of volume records this agent writes. Version 0 had no
/// `version` field and is otherwise the same; opening the volumes
/// rewrites such records as version 1.
pub const VOLUME_RECORD_VERSION: u32 = 1;

/// One volume.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeRecord {
    /// The record's format ([`VOLUME_RECORD_VERSION`] when written by this
    /// agent).
    #[serde(default)]
    pub version: u32,
    /// Its name (64 hex characters for anonymous ones).
    pub name: String,
    /// "local".
    pub driver: String,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options, kept as given.
    pub options: BTreeMap<String, String>,
    /// Made for a container (`-v /path`, an image's VOLUME), not by name.
    pub anonymous: bool,
}

/// The volume engine.
pub struct Volumes {
    dir: PathBuf,
    events: Events,
}

impl Volumes {
    /// Opens the volumes under `root`.
    pub fn open(root: &Path, events: Events) -> Result<Volumes> {
        let dir = root.join("volumes");
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let me = Volumes { dir, events };
        for mut rec in me.list() {
            if rec.version < VOLUME_RECORD_VERSION {
                // Version 0 differs only in lacking the version.
                rec.version = VOLUME_RECORD_VERSION;
                let path = me.dir.join(&rec.name).join("volume.json");
                write_json_durable(&path, &rec)
                    .map_err(|e| Error::io(format!("upgrading {}", path.display()), e))?;
            }
        }
        Ok(me)
    }

    /// The directory containers see.
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("_data")
    }

    /// Creates a volume (a no-op for one that exists, as Docker); an
    /// empty name makes an anonymous one.
    pub fn create(
        &self,
        name: &str,
        driver: &str,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<VolumeRecord> {
        if !["", "local"].contains(&driver) {
            return Err(Error::InvalidArgument(format!(
                "the volume driver {driver:?} is not available: Berth keeps local volumes"
            )));
        }
        let anonymous = name.is_empty();
        let name = if anonymous {
            crate::digest::random_id()
        } else {
            valid_name(name)?;
            name.to_string()
        };
        if let Ok(v) = self.find(&name) {
            return Ok(v);
        }
        let rec = VolumeRecord {
            version: VOLUME_RECORD_VERSION,
            name: name.clone(),
            driver: "local".into(),
            created: Utc::now(),
            labels,
            options,
            anonymous,
        };
        let data = self.data_path(&name);
        std::fs::create_dir_all(&data)
            .map_err(|e| Error::io(format!("creating {}", data.display()), e))?;
        write_json_durable(&self.dir.join(&name).join("volume.json"), &rec)
            .map_err(|e| Error::io("saving the volume", e))?;
        self.events
            .emit("volume", "create", &name, &[("driver", "local")]);
        Ok(rec)
    }

    /// A volume by name.
    pub fn find(&self, name: &str) -> Result<VolumeRecord> {
        if valid_name(name).is_err() {
            return Err(not_found(name));
        }
        read_json(&self.dir.join(name).join("volume.json")).map_err(|_| not_found(name))
    }

    /// Every volume, by name.
    pub fn list(&self) -> Vec<VolumeRecord> {
        let mut out: Vec<VolumeRecord> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| read_json(&e.path().join("volume.json")).ok())
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a: &VolumeRecord, b| a.name.cmp(&b.name));
        out
    }

    /// Removes a volume that no container in `in_use` uses.
    pub fn remove(&self, name: &str, in_use: &BTreeSet<String>) -> Result<()> {
        let rec = self.find(name)?;
        if in_use.contains(&rec.name) {
            return Err(Error::Conflict(format!(
                "volume {name} is in use: remove the containers that use it first"
            )));
        }
        let dir = self.dir.join(&rec.name);
        std::fs::remove_dir_all(&dir)
            .map_err(|e| Error::io(format!("removing {}", dir.display()), e))?;
        self.events
            .emit("volume", "destroy", &rec.name, &[("driver", "local")]);
        Ok(())
    }

    /// Removes unused volumes (anonymous ones only unless `all`, as
    /// Docker since API 1.42); returns their names and the bytes freed.
    pub fn prune(&self, all: bool, in_use: &BTreeSet<String>) -> (Vec<String>, u64) {
        let mut deleted = Vec::new();
        let mut freed = 0;
        for v in self.list() {
            if (all || v.anonymous) && !in_use.contains(&v.name) {
                let size = self.size(&v.name);
                if self.remove(&v.name, in_use).is_ok() {
                    deleted.push(v.name);
                    freed += size;
                }
            }
        }
        (deleted, freed)
    }

    /// The bytes of a volume's files.
    pub fn size(&self, name: &str) -> u64 {
        crate::util::du::dir_size(&self.data_path(name))
    }
}

fn not_found(name: &str) -> Error {
    Error::no_volume(format!(
        "no such volume: {name}; `berth volume ls` lists them"
    ))
}

/// Docker's rule for volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
fn valid_name(name: &str) -> Result<()> {
    crate::util::names::is_valid_name(name).then_some(()).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "invalid volume name {name:?}: use letters, digits, _ . and -, starting with a letter or digit"
        ))
    })
}

/// Docker's volume filters: `name` (substring) and `dangling=true|false`
/// (used by no container, per `in_use`); every key must pass, any of its
/// values.
pub fn volume_wanted(
    v: &VolumeRecord,
    filters: &std::collections::HashMap<String, Vec<String>>,
    in_use: &BTreeSet<String>,
) -> bool {
    let test = |key: &str, ok: &dyn Fn(&str) -> bool| {
        filters.get(key).is_none_or(|l| l.iter().any(|x| ok(x)))
    };
    test("name", &|x| v.name.contains(x))
        && test("dangling", &|x| (x == "true") != in_use.contains(&v.name))
}

impl Volumes {
    /// The volumes `filters` pass (see [`volume_wanted`]).
    pub fn list_filtered(
        &self,
        filters: &std::collections::HashMap<String, Vec<String>>,
        in_use: &BTreeSet<String>,
    ) -> Vec<VolumeRecord> {
        self.list()
            .into_iter()
            .filter(|v| volume_wanted(v, filters, in_use))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_filters_by_name_and_dangling() {
        let v = VolumeRecord {
            version: VOLUME_RECORD_VERSION,
            name: "web-data".into(),
            driver: "local".into(),
            created: Utc::now(),
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            anonymous: false,
        };
        let f = |k: &str, x: &str| [(k.to_string(), vec![x.to_string()])].into();
        let used: BTreeSet<String> = ["web-data".to_string()].into();
        assert!(volume_wanted(&v, &Default::default(), &used));
        assert!(volume_wanted(&v, &f("name", "web"), &used));
        assert!(!volume_wanted(&v, &f("name", "db"), &used));
        assert!(!volume_wanted(&v, &f("dangling", "true"), &used));
        assert!(volume_wanted(&v, &f("dangling", "true"), &BTreeSet::new()));
        assert!(volume_wanted(&v, &f("dangling", "false"), &used));
    }
}
