//! A container's mounts: bind mounts, named and anonymous volumes (also
//! one for each VOLUME of the image), and tmpfs, resolved at create the
//! way Docker resolves `-v` and `--mount`, turned into OCI mounts, and
//! the volumes to fill from the image at start.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::config::{ContainerConfig, MountRequest};
use super::{Containers, Record};
use crate::error::{Error, Result};
use crate::image::manifest::RunConfig;

/// One resolved mount of a container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MountPoint {
    /// "bind", "volume" or "tmpfs".
    pub kind: String,
    /// The volume's name (volumes).
    pub name: String,
    /// The host path (binds and volumes).
    pub source: PathBuf,
    /// Where the container sees it.
    pub destination: String,
    /// Read-only.
    pub read_only: bool,
    /// A volume made for this container alone.
    pub anonymous: bool,
    /// Fill an empty volume from the image (not `nocopy`).
    pub copy_up: bool,
    /// Extra mount options (tmpfs size and mode).
    pub options: Vec<String>,
}

impl Containers {
    /// Resolves the mounts of a new container: checks each, makes missing
    /// `-v` bind sources and volumes, and adds anonymous volumes for the
    /// image's VOLUMEs that nothing else covers.
    pub(super) fn resolve_mounts(
        &self,
        config: &ContainerConfig,
        image: &RunConfig,
    ) -> Result<Vec<MountPoint>> {
        let mut out: Vec<MountPoint> = Vec::new();
        for m in &config.mounts {
            let mp = self.resolve_one(m)?;
            if out.iter().any(|o| o.destination == mp.destination) {
                return Err(Error::InvalidArgument(format!(
                    "duplicate mount point: {}",
                    mp.destination
                )));
            }
            out.push(mp);
        }
        for path in image.volumes.clone().unwrap_or_default().keys() {
            let dest = clean(path);
            if !out.iter().any(|o| o.destination == dest) {
                out.push(self.resolve_one(&MountRequest {
                    kind: "volume".into(),
                    target: dest,
                    ..Default::default()
                })?);
            }
        }
        Ok(out)
    }

    fn resolve_one(&self, m: &MountRequest) -> Result<MountPoint> {
        let destination = clean(&m.target);
        if !destination.starts_with('/') || destination == "/" {
            return Err(Error::InvalidArgument(format!(
                "invalid mount target {:?}: give an absolute path in the container other than /",
                m.target
            )));
        }
        let mut mp = MountPoint {
            kind: m.kind.clone(),
            name: String::new(),
            source: PathBuf::new(),
            destination,
            read_only: m.read_only,
            anonymous: false,
            copy_up: !m.options.iter().any(|o| o == "nocopy"),
            options: Vec::new(),
        };
        match m.kind.as_str() {
            "bind" => {
                let src = Path::new(&m.source);
                if !src.is_absolute() {
                    return Err(Error::InvalidArgument(format!(
                        "invalid bind source {:?}: give an absolute host path",
                        m.source
                    )));
                }
                crate::shares::bind_source(src)?;
                if !src.exists() {
                    if !m.create_host_path {
                        return Err(Error::InvalidArgument(format!(
                            "bind source path does not exist: {}",
                            m.source
                        )));
                    }
                    // A file the host made meanwhile is taken as it is.
                    if let Err(e) = std::fs::create_dir_all(src) {
                        if !src.exists() {
                            return Err(Error::io(format!("creating {}", src.display()), e));
                        }
                    }
                }
                mp.source = src.to_path_buf();
            }
            "volume" | "" => {
                let v = self.volumes.create(
                    &m.source,
                    "local",
                    Default::default(),
                    Default::default(),
                )?;
                mp.kind = "volume".into();
                mp.source = self.volumes.data_path(&v.name);
                mp.anonymous = v.anonymous;
                mp.name = v.name;
            }
            "tmpfs" => {
                if !m.source.is_empty() {
                    return Err(Error::InvalidArgument(
                        "a tmpfs mount has no source: leave source out".into(),
                    ));
                }
                for o in &m.options {
                    let ok = o.starts_with("size=") || o.starts_with("mode=") || o == "nocopy";
                    if !ok {
                        return Err(Error::InvalidArgument(format!(
                            "invalid tmpfs option {o:?}: use size= or mode="
                        )));
                    }
                }
                mp.options = m
                    .options
                    .iter()
                    .filter(|o| *o != "nocopy")
                    .cloned()
                    .collect();
                mp.copy_up = false;
            }
            other => {
                return Err(Error::InvalidArgument(format!(
                    "invalid mount type {other:?}: use bind, volume or tmpfs"
                )))
            }
        }
        Ok(mp)
    }

    /// The names of volumes some container uses.
    pub fn volumes_in_use(&self) -> BTreeSet<String> {
        self.all()
            .iter()
            .flat_map(|e| e.record().mounts.into_iter().map(|m| m.name))
            .filter(|n| !n.is_empty())
            .collect()
    }

    /// How many containers use volume `name`.
    pub fn volume_users(&self, name: &str) -> usize {
        self.all()
            .iter()
            .filter(|e| e.record().mounts.iter().any(|m| m.name == name))
            .count()
    }

    /// Removes a removed container's anonymous volumes (`rm -v`, `--rm`).
    pub(super) fn remove_anonymous_volumes(&self, r: &Record) {
        let in_use = self.volumes_in_use();
        for m in r.mounts.iter().filter(|m| m.anonymous) {
            let _ = self.volumes.remove(&m.name, &in_use);
        }
    }

    /// Docker's `Mounts` for `inspect`.
    pub(super) fn mounts_json(&self, r: &Record) -> Value {
        Value::Array(
            r.mounts
                .iter()
                .map(|m| {
                    json!({
                        "Type": m.kind,
                        "Name": if m.name.is_empty() { Value::Null } else { json!(m.name) },
                        "Source": m.source,
                        "Destination": m.destination,
                        "Driver": if m.kind == "volume" { "local" } else { "" },
                        "RW": !m.read_only,
                        "Propagation": if m.kind == "bind" { "rprivate" } else { "" },
                    })
                })
                .collect(),
        )
    }
}

/// The OCI mounts for a container's mount points.
pub fn spec_mounts(mounts: &[MountPoint]) -> Vec<Value> {
    mounts
        .iter()
        .map(|m| {
            if m.kind == "tmpfs" {
                let mut options = vec!["nosuid".to_string(), "nodev".into(), "noexec".into()];
                options.extend(m.options.iter().cloned());
                if m.read_only {
                    options.push("ro".into());
                }
                json!({"destination": m.destination, "type": "tmpfs", "source": "tmpfs", "options": options})
            } else {
                let mut options = vec!["rbind", "rprivate"];
                if m.read_only {
                    options.push("ro");
                }
                json!({"destination": m.destination, "type": "bind", "source": m.source, "options": options})
            }
        })
        .collect()
}

/// A path without a trailing slash or `.` components.
fn clean(p: &str) -> String {
    if p.split('/').any(|c| c == "..") {
        // Refused by the caller: not absolute after this.
        return format!("invalid:{p}");
    }
    let parts: Vec<&str> = p
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if p.starts_with('/') {
        format!("/{}", parts.join("/"))
    } else {
        parts.join("/")
    }
}
