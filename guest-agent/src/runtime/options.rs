//! Run options that shape the process and its kernel view beyond the
//! basics: `--sysctl`, `--shm-size`, `--group-add`, `--security-opt` and
//! `--expose`, each checked with a sentence when it cannot apply.

use std::collections::BTreeMap;

use super::config::ContainerConfig;
use crate::error::{Error, Result};

/// Kernel parameters a container may set: the namespaced ones, as Docker
/// allows (`net.*` only with a network namespace of its own).
pub fn sysctls(config: &ContainerConfig) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (key, value) in &config.sysctls {
        let ipc = [
            "kernel.msgmax",
            "kernel.msgmnb",
            "kernel.msgmni",
            "kernel.sem",
            "kernel.shmall",
            "kernel.shmmax",
            "kernel.shmmni",
            "kernel.shm_rmid_forced",
        ];
        let allowed = ipc.contains(&key.as_str())
            || key.starts_with("fs.mqueue.")
            || (key.starts_with("net.") && config.network != "host");
        if !allowed {
            return Err(Error::InvalidArgument(format!(
                "the sysctl {key} is not allowed in a container: only namespaced ones (net.* without --network host, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*) can be set"
            )));
        }
        out.insert(key.clone(), value.clone());
    }
    Ok(out)
}

/// The options of the container's `/dev/shm` (64 MiB unless `--shm-size`).
pub fn shm_options(config: &ContainerConfig) -> Result<Vec<String>> {
    if config.shm_size < 0 {
        return Err(Error::InvalidArgument(
            "--shm-size cannot be negative".into(),
        ));
    }
    let kib = if config.shm_size == 0 {
        65536
    } else {
        (config.shm_size / 1024).max(1)
    };
    Ok(["nosuid", "noexec", "nodev", "mode=1777"]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("size={kib}k")])
        .collect())
}

/// What `--security-opt` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Security {
    /// The process may not gain privileges (setuid binaries, file caps).
    pub no_new_privileges: bool,
    /// No seccomp filter.
    pub seccomp_unconfined: bool,
}

/// Reads `--security-opt` values; `no-new-privileges` is already the
/// default of an unprivileged container.
pub fn security(config: &ContainerConfig) -> Result<Security> {
    let mut s = Security {
        no_new_privileges: !config.privileged,
        seccomp_unconfined: config.privileged,
    };
    for opt in &config.security_opt {
        let (key, value) = opt.split_once(['=', ':']).unwrap_or((opt.as_str(), ""));
        match (key, value) {
            ("no-new-privileges", "" | "true") => s.no_new_privileges = true,
            ("no-new-privileges", "false") => s.no_new_privileges = false,
            ("seccomp", "unconfined") => s.seccomp_unconfined = true,
            // Berth's hosts and VM run no AppArmor or SELinux policy to
            // choose from.
            ("apparmor", _) | ("label", _) => {}
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "--security-opt {opt:?} is not supported: use no-new-privileges[=true|false], seccomp=unconfined, apparmor=… or label=…"
                )))
            }
        }
    }
    Ok(s)
}

/// `--group-add` values as group ids, names looked up in the image's
/// `/etc/group`.
pub fn extra_groups(config: &ContainerConfig, etc_group: &str) -> Result<Vec<u32>> {
    config
        .group_add
        .iter()
        .map(|g| {
            g.parse::<u32>().or_else(|_| {
                etc_group
                    .lines()
                    .find_map(|l| {
                        let f: Vec<&str> = l.split(':').collect();
                        (f.len() >= 3 && f[0] == g).then(|| f[2].parse::<u32>().ok()).flatten()
                    })
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "unable to find group {g}: no matching entries in the image's /etc/group; give a gid instead"
                        ))
                    })
            })
        })
        .collect()
}

/// `--expose` values as `PORT/PROTO` keys ("80" → "80/tcp").
pub fn exposed(config: &ContainerConfig) -> Result<Vec<String>> {
    config
        .expose
        .iter()
        .map(|e| {
            let (port, proto) = e.split_once('/').unwrap_or((e, "tcp"));
            if port.parse::<u16>().is_err() || !["tcp", "udp", "sctp"].contains(&proto) {
                return Err(Error::InvalidArgument(format!(
                    "invalid --expose {e:?}: give PORT or PORT/tcp|udp"
                )));
            }
            Ok(format!("{port}/{proto}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_namespaced_sysctls_pass() {
        let mut c = ContainerConfig::default();
        c.sysctls.insert("net.ipv4.ip_forward".into(), "1".into());
        c.sysctls.insert("kernel.shmmax".into(), "1000".into());
        assert_eq!(sysctls(&c).unwrap().len(), 2);
        c.sysctls.insert("kernel.hostname".into(), "x".into());
        assert!(sysctls(&c)
            .unwrap_err()
            .to_string()
            .contains("kernel.hostname"));
        let mut host = ContainerConfig {
            network: "host".into(),
            ..Default::default()
        };
        host.sysctls
            .insert("net.ipv4.ip_forward".into(), "1".into());
        assert!(sysctls(&host).is_err());
    }

    #[test]
    fn shm_security_groups_and_expose_read_as_docker_does() {
        let c = ContainerConfig {
            shm_size: 128 << 20,
            ..Default::default()
        };
        assert!(shm_options(&c)
            .unwrap()
            .contains(&"size=131072k".to_string()));
        assert!(shm_options(&ContainerConfig::default())
            .unwrap()
            .contains(&"size=65536k".to_string()));
        let c = ContainerConfig {
            security_opt: vec![
                "seccomp=unconfined".into(),
                "no-new-privileges:false".into(),
            ],
            ..Default::default()
        };
        assert_eq!(
            security(&c).unwrap(),
            Security {
                no_new_privileges: false,
                seccomp_unconfined: true
            }
        );
        let c = ContainerConfig {
            security_opt: vec!["bogus".into()],
            ..Default::default()
        };
        assert!(security(&c).is_err());
        let c = ContainerConfig {
            group_add: vec!["audio".into(), "1234".into()],
            ..Default::default()
        };
        assert_eq!(
            extra_groups(&c, "root:x:0:\naudio:x:29:\n").unwrap(),
            [29, 1234]
        );
        let c = ContainerConfig {
            group_add: vec!["nope".into()],
            ..Default::default()
        };
        assert!(extra_groups(&c, "").is_err());
        let c = ContainerConfig {
            expose: vec!["80".into(), "53/udp".into()],
            ..Default::default()
        };
        assert_eq!(exposed(&c).unwrap(), ["80/tcp", "53/udp"]);
        let c = ContainerConfig {
            expose: vec!["x".into()],
            ..Default::default()
        };
        assert!(exposed(&c).is_err());
    }
}
