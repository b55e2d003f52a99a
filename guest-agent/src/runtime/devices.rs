//! Host devices given to a container (`--device HOST[:CONTAINER[:PERMS]]`):
//! each becomes a device node in the container's `/dev` and a rule of the
//! device cgroup that allows just the permissions asked for, as Docker
//! does. A directory gives every device under it.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::config::DeviceMapping;
use crate::error::{Error, Result};

/// True for Docker's device permissions: some of `r`, `w`, `m`, once each.
pub fn valid_permissions(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 3
        && p.chars().all(|c| "rwm".contains(c))
        && p.chars()
            .enumerate()
            .all(|(i, c)| !p[i + c.len_utf8()..].contains(c))
}

/// One device node found on the host.
#[derive(Debug, Clone, PartialEq)]
struct Node {
    host: PathBuf,
    kind: &'static str,
    major: u64,
    minor: u64,
    mode: u32,
    uid: u32,
    gid: u32,
}

fn node_of(path: &Path) -> Option<Node> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(path).ok()?;
    let ft = meta.file_type();
    let kind = if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else {
        return None;
    };
    let rdev = meta.rdev();
    Some(Node {
        host: path.to_path_buf(),
        kind,
        major: libc::major(rdev) as u64,
        minor: libc::minor(rdev) as u64,
        mode: meta.mode() & 0o777,
        uid: meta.uid(),
        gid: meta.gid(),
    })
}

/// Every device under `dir`, with its path relative to `dir`.
fn nodes_under(dir: &Path, rel: &Path, out: &mut Vec<(PathBuf, Node)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let path = e.path();
        let rel = rel.join(e.file_name());
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => nodes_under(&path, &rel, out),
            Ok(_) => {
                if let Some(n) = node_of(&path) {
                    out.push((rel, n));
                }
            }
            Err(_) => {}
        }
    }
}

/// The OCI `linux.devices` entries and the device cgroup rules for the
/// requested devices.
pub fn mapped(devices: &[DeviceMapping]) -> Result<(Vec<Value>, Vec<Value>)> {
    let (mut nodes, mut rules) = (Vec::new(), Vec::new());
    for d in devices {
        let perms = if d.cgroup_permissions.is_empty() {
            "rwm"
        } else {
            d.cgroup_permissions.as_str()
        };
        if !valid_permissions(perms) {
            return Err(Error::InvalidArgument(format!(
                "bad mode specified: {perms}"
            )));
        }
        let target = if d.path_in_container.is_empty() {
            &d.path_on_host
        } else {
            &d.path_in_container
        };
        if !target.starts_with('/') {
            return Err(Error::InvalidArgument(format!(
                "{target} is not an absolute path"
            )));
        }
        let gathering = |why: &str| {
            Error::InvalidArgument(format!(
                "error gathering device information while adding custom device \"{}\": {why}",
                d.path_on_host
            ))
        };
        let host = Path::new(&d.path_on_host);
        let meta = std::fs::metadata(host).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => gathering("no such file or directory"),
            _ => gathering(&e.to_string()),
        })?;
        let mut found = Vec::new();
        if meta.is_dir() {
            nodes_under(host, Path::new(""), &mut found);
        } else {
            let node = node_of(host).ok_or_else(|| gathering("not a device node"))?;
            found.push((PathBuf::new(), node));
        }
        for (rel, n) in found {
            let path = if rel.as_os_str().is_empty() {
                PathBuf::from(target)
            } else {
                Path::new(target).join(rel)
            };
            nodes.push(json!({
                "path": path, "type": n.kind, "major": n.major, "minor": n.minor,
                "fileMode": n.mode, "uid": n.uid, "gid": n.gid,
            }));
            rules.push(json!({
                "allow": true, "type": n.kind, "major": n.major, "minor": n.minor,
                "access": perms,
            }));
            tracing::debug!("device {} as {}", n.host.display(), path.display());
        }
    }
    Ok((nodes, rules))
}

/// `HostConfig.Devices` as Docker shows it.
pub fn devices_json(devices: &[DeviceMapping]) -> Value {
    json!(devices
        .iter()
        .map(|d| json!({
            "PathOnHost": d.path_on_host,
            "PathInContainer": d.path_in_container,
            "CgroupPermissions": d.cgroup_permissions,
        }))
        .collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(host: &str, perms: &str) -> DeviceMapping {
        DeviceMapping {
            path_on_host: host.into(),
            path_in_container: "/dev/x".into(),
            cgroup_permissions: perms.into(),
        }
    }

    #[test]
    fn permissions_are_some_of_rwm_once_each() {
        for ok in ["r", "rw", "rwm", "mr"] {
            assert!(valid_permissions(ok), "{ok}");
        }
        for bad in ["", "rr", "rwx", "rwmw"] {
            assert!(!valid_permissions(bad), "{bad}");
        }
    }

    #[test]
    fn a_device_becomes_a_node_and_a_rule() {
        let (nodes, rules) = mapped(&[map("/dev/null", "r")]).expect("mapped");
        assert_eq!(nodes[0]["path"], "/dev/x");
        assert_eq!(
            (nodes[0]["type"].clone(), nodes[0]["major"].clone()),
            (json!("c"), json!(1))
        );
        assert_eq!(rules[0]["access"], "r");
        assert_eq!(rules[0]["minor"], 3);
    }

    #[test]
    fn missing_or_plain_files_are_refused_with_docker_s_sentence() {
        let e = mapped(&[map("/dev/no-such-device", "")]).unwrap_err();
        assert!(e.to_string().contains(
            "error gathering device information while adding custom device \"/dev/no-such-device\": no such file or directory"
        ), "{e}");
        assert!(mapped(&[map("/etc/hostname", "")]).is_err());
        assert!(mapped(&[map("/dev/null", "rwx")]).is_err());
    }
}
