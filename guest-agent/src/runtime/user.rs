//! `--user` resolution against the image's own `/etc/passwd` and
//! `/etc/group`, as Docker does: `name`, `uid`, `name:group`, `uid:gid`,
//! plus the user's supplementary groups.
//!
//! The files are read from the image's layer directories on the host,
//! top layer first. A file that is not a plain file there (a symlink an
//! image could point at the host's own `/etc/shadow`) is ignored, and a
//! whiteout hides what lower layers had.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The ids a container process runs with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ids {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups: the primary group, then (for a user given
    /// without a group) the groups `/etc/group` lists the user in.
    pub additional_gids: Vec<u32>,
    /// The home directory from `/etc/passwd`, for `HOME`.
    pub home: String,
}

/// Reads `etc/<name>` from the topmost layer that has it.
pub fn read_etc(layers_top_first: &[PathBuf], name: &str) -> String {
    for layer in layers_top_first {
        let path = layer.join("etc").join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => return std::fs::read_to_string(&path).unwrap_or_default(),
            Ok(m) if m.file_type().is_char_device() => return String::new(),
            Ok(_) => return String::new(),
            Err(_) => {
                if is_opaque(&layer.join("etc")) {
                    return String::new();
                }
            }
        }
    }
    String::new()
}

fn is_opaque(dir: &Path) -> bool {
    xattr::get(dir, "trusted.overlay.opaque")
        .ok()
        .flatten()
        .is_some_and(|v| v == b"y")
}

/// Resolves `spec` ("", "name", "uid", "name:group", "uid:gid") with the
/// given passwd and group file contents.
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<Ids> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let entry = passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        let matches = f[0] == user || (user.parse::<u32>().is_ok() && f[2] == user);
        matches.then(|| {
            (
                f[0].to_string(),
                f[2].parse::<u32>().ok(),
                f[3].parse::<u32>().ok(),
                f[5].to_string(),
            )
        })
    });
    let (name, uid, gid, home) = match (entry, user.parse::<u32>()) {
        (Some((name, Some(uid), Some(gid), home)), _) => (Some(name), uid, gid, home),
        (_, Ok(uid)) => (None, uid, 0, "/".to_string()),
        _ => {
            return Err(Error::InvalidArgument(format!(
                "unable to find user {user}: no matching entries in the image's /etc/passwd; give a uid instead or add the user to the image"
            )))
        }
    };
    let groups: Vec<(String, u32, Vec<String>)> = group
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            let members = f[3]
                .split(',')
                .filter(|m| !m.is_empty())
                .map(String::from)
                .collect();
            Some((f[0].to_string(), f[2].parse().ok()?, members))
        })
        .collect();
    let gid = match grp {
        None | Some("") => gid,
        Some(g) => match groups.iter().find(|(n, _, _)| n == g) {
            Some((_, id, _)) => *id,
            None => g.parse::<u32>().map_err(|_| {
                Error::InvalidArgument(format!(
                    "unable to find group {g}: no matching entries in the image's /etc/group; give a gid instead"
                ))
            })?,
        },
    };
    // The primary group comes first, as Docker (since 20.10.18) passes it
    // too: `id` shows it under `groups=`.
    let mut additional_gids = vec![gid];
    if let (Some(name), None) = (&name, grp) {
        for (_, id, members) in &groups {
            if members.iter().any(|m| m == name) && !additional_gids.contains(id) {
                additional_gids.push(*id);
            }
        }
    }
    Ok(Ids {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\n";
    const GROUP: &str = "root:x:0:\nwww:x:33:\nstaff:x:50:www,other\n";

    #[test]
    fn names_ids_and_groups_resolve_like_docker() {
        let r = |s| resolve(s, PASSWD, GROUP).unwrap();
        assert_eq!((r("").uid, r("").gid, r("").home.as_str()), (0, 0, "/root"));
        let www = r("www");
        assert_eq!(
            (www.uid, www.gid, www.additional_gids.clone()),
            (33, 33, vec![33, 50])
        );
        assert_eq!(www.home, "/var/www");
        assert_eq!((r("33").uid, r("33").gid), (33, 33));
        assert_eq!((r("1234").uid, r("1234").gid), (1234, 0));
        assert_eq!(
            (r("www:staff").gid, r("www:staff").additional_gids),
            (50, vec![50]),
            "an explicit group: only it"
        );
        assert_eq!(r("root").additional_gids, vec![0]);
        assert_eq!(r("1234").additional_gids, vec![0]);
        assert_eq!(r("1000:2000").gid, 2000);
        assert!(resolve("nobody", PASSWD, GROUP)
            .unwrap_err()
            .to_string()
            .contains("unable to find user nobody"));
        assert!(resolve("www:nogroup", PASSWD, GROUP).is_err());
    }
}
