//! The OCI runtime spec of a container, from the image's config and the
//! user's flags, with Docker's defaults: its capability set, seccomp
//! profile, masked and read-only paths, mounts and device rules.
//!
//! The spec is written as the runtime-spec JSON and then read back as
//! oci-spec's `Spec`, so every field is checked against the schema
//! libcontainer reads.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::config::ContainerConfig;
use super::{seccomp, user};
use crate::error::{Error, Result};
use crate::image::manifest::RunConfig;

pub use super::caps::{cap_name, capabilities, ALL_CAPS, DEFAULT_CAPS};
pub use super::limits::{resources, rlimits, swap_accounting};

/// Paths Docker hides from containers.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only in containers.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Where a statically linked init for `--init` is found on the host.
pub const INIT_BINARIES: &[&str] = &["/usr/bin/tini-static", "/usr/bin/docker-init"];

/// The default `PATH` when an image sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What a spec is built from.
pub struct SpecInput<'a> {
    /// The container's id.
    pub id: &'a str,
    /// The user's flags.
    pub config: &'a ContainerConfig,
    /// The image's run config.
    pub image: &'a RunConfig,
    /// The image's layer directories, top first (for `/etc/passwd`).
    pub layers: &'a [PathBuf],
    /// The container's mounted root filesystem.
    pub rootfs: &'a Path,
    /// The directory holding the `hosts`, `hostname` and `resolv.conf`
    /// Berth manages.
    pub etc_dir: &'a Path,
    /// The pinned network namespace it joins (bridge networks); `None`
    /// makes a fresh one, or shares the host's with `--network host`.
    pub netns: Option<std::path::PathBuf>,
    /// The user's binds, volumes and tmpfs mounts.
    pub mounts: &'a [super::mounts::MountPoint],
}

/// A spec and what it runs.
#[derive(Debug)]
pub struct Built {
    /// The runtime-spec JSON.
    pub spec: Value,
    /// The executable, as the user sees it (`Path` in inspect).
    pub path: String,
    /// Its arguments (`Args` in inspect).
    pub args: Vec<String>,
    /// The container's hostname.
    pub hostname: String,
    /// Its seccomp profile (`linux.seccomp`), kept out of `spec` so that
    /// Berth installs it precompiled ([`seccomp::filter`]).
    pub seccomp: Option<Value>,
}

/// The command a container runs: the entrypoint (the user's or the
/// image's) followed by the command; `--entrypoint` drops the image's CMD
/// as Docker does.
pub fn command(config: &ContainerConfig, image: &RunConfig) -> Result<Vec<String>> {
    let entrypoint = if config.entrypoint_set {
        config.entrypoint.clone()
    } else {
        image.entrypoint.clone().unwrap_or_default()
    };
    let cmd = if !config.cmd.is_empty() {
        config.cmd.clone()
    } else if config.entrypoint_set {
        Vec::new()
    } else {
        image.cmd.clone().unwrap_or_default()
    };
    let all: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if all.is_empty() {
        return Err(Error::InvalidArgument(
            "no command specified: the image has no CMD or ENTRYPOINT; give a command after the image name".into(),
        ));
    }
    Ok(all)
}

/// The environment: the image's, then the user's, then Berth's own
/// (`HOSTNAME`, `HOME`, `TERM`) where not set.
pub fn environment(
    config: &ContainerConfig,
    image: &RunConfig,
    hostname: &str,
    home: &str,
) -> Vec<String> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |pair: &str, env: &mut Vec<(String, String)>| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match env.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.to_string(),
            None => env.push((k.to_string(), v.to_string())),
        }
    };
    set(&format!("PATH={DEFAULT_PATH}"), &mut env);
    set(&format!("HOSTNAME={hostname}"), &mut env);
    for pair in image.env.iter().flatten().chain(&config.env) {
        set(pair, &mut env);
    }
    if config.tty && !env.iter().any(|(k, _)| k == "TERM") {
        env.push(("TERM".into(), "xterm".into()));
    }
    if !env.iter().any(|(k, _)| k == "HOME") {
        env.push(("HOME".into(), home.to_string()));
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Devices the runtime makes in every container anyway.
const DEFAULT_DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
    "/dev/tty",
    "/dev/ptmx",
    "/dev/console",
];

/// Every character and block device of the host under `dir` (but the
/// runtime's defaults and `pts`, `shm`, `mqueue`), as `--privileged`
/// gives them, Docker's way.
fn host_devices(dir: &Path) -> Vec<Value> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let ft = meta.file_type();
        let name = e.file_name();
        if ft.is_dir() && !["pts", "shm", "mqueue"].contains(&name.to_string_lossy().as_ref()) {
            out.extend(host_devices(&path));
            continue;
        }
        let kind = if ft.is_char_device() {
            "c"
        } else if ft.is_block_device() {
            "b"
        } else {
            continue;
        };
        if DEFAULT_DEVICES.contains(&path.to_string_lossy().as_ref()) {
            continue;
        }
        let rdev = meta.rdev();
        out.push(json!({
            "path": path, "type": kind,
            "major": libc::major(rdev), "minor": libc::minor(rdev),
            "fileMode": meta.mode() & 0o777, "uid": meta.uid(), "gid": meta.gid(),
        }));
    }
    out
}

/// The namespaces: all of Docker's, sharing the host's network with
/// `--network host` and its PIDs with `--pid host`.
fn namespaces(network: &str, netns: Option<&Path>, pid_host: bool) -> Value {
    let mut list: Vec<Value> = ["pid", "ipc", "uts", "mount", "cgroup"]
        .into_iter()
        .filter(|t| !(pid_host && *t == "pid"))
        .map(|t| json!({ "type": t }))
        .collect();
    match netns {
        Some(path) => list.push(json!({ "type": "network", "path": path })),
        None if network != "host" => list.push(json!({ "type": "network" })),
        None => {}
    }
    Value::Array(list)
}

/// Builds the spec.
pub fn build(input: &SpecInput) -> Result<Built> {
    let config = input.config;
    if !["", "host"].contains(&config.pid_mode.as_str()) {
        return Err(Error::InvalidArgument(format!(
            "--pid '{}' is not supported: use --pid host, or leave it out for the container's own",
            config.pid_mode
        )));
    }
    let mut argv = command(config, input.image)?;
    let hostname = if !config.hostname.is_empty() {
        config.hostname.clone()
    } else if config.network == "host" {
        // On the host's network a container keeps the host's name, as
        // under Docker.
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| input.id[..12].to_string())
    } else {
        input.id[..12].to_string()
    };
    let user_spec = if config.user.is_empty() {
        input.image.user.clone().unwrap_or_default()
    } else {
        config.user.clone()
    };
    let ids = user::resolve(
        &user_spec,
        &user::read_etc(input.layers, "passwd"),
        &user::read_etc(input.layers, "group"),
    )?;
    let env = environment(config, input.image, &hostname, &ids.home);
    let cwd = if !config.working_dir.is_empty() {
        config.working_dir.clone()
    } else {
        input
            .image
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into())
    };
    if !cwd.starts_with('/') {
        return Err(Error::InvalidArgument(format!(
            "the working directory {cwd:?} is not absolute: give a path starting with /"
        )));
    }
    let (path, args) = (argv[0].clone(), argv[1..].to_vec());
    let caps = capabilities(config)?;
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if config.privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", if config.privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": super::options::shm_options(config)?}),
    ];
    for name in ["resolv.conf", "hostname", "hosts"] {
        let mut options = vec!["rbind", "rprivate"];
        if config.read_only {
            options.push("ro");
        }
        mounts.push(json!({
            "destination": format!("/etc/{name}"), "type": "bind",
            "source": input.etc_dir.join(name), "options": options
        }));
    }
    mounts.extend(super::mounts::spec_mounts(input.mounts));
    if config.init {
        let init = INIT_BINARIES
            .iter()
            .find(|p| Path::new(p).exists())
            .ok_or_else(|| {
                Error::FailedPrecondition(
                    "--init needs a static init on the host: install Debian's tini package (apt-get install tini)".into(),
                )
            })?;
        mounts.push(json!({"destination": "/sbin/docker-init", "type": "bind", "source": init, "options": ["rbind", "ro", "rprivate"]}));
        argv = ["/sbin/docker-init".to_string(), "--".to_string()]
            .into_iter()
            .chain(argv)
            .collect();
    }
    let mut linux = json!({
        "cgroupsPath": crate::cgroups::path_of(input.id),
        "resources": resources(config, config.privileged)?,
        "namespaces": namespaces(&config.network, input.netns.as_deref(), config.pid_mode == "host"),
    });
    let security = super::options::security(config)?;
    super::options::exposed(config)?;
    let sysctls = super::options::sysctls(config)?;
    if !sysctls.is_empty() {
        linux["sysctl"] = json!(sysctls);
    }
    let mut seccomp = None;
    if config.privileged {
        linux["devices"] = json!(host_devices(Path::new("/dev")));
    } else {
        let (nodes, rules) = super::devices::mapped(&config.devices)?;
        if !nodes.is_empty() {
            linux["devices"] = json!(nodes);
            if let Some(list) = linux["resources"]["devices"].as_array_mut() {
                list.extend(rules);
            }
        }
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
        if !security.seccomp_unconfined {
            seccomp = Some(seccomp::profile(&caps));
        }
    }
    let mut groups = ids.additional_gids.clone();
    for g in super::options::extra_groups(config, &user::read_etc(input.layers, "group"))? {
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": config.tty,
            "user": { "uid": ids.uid, "gid": ids.gid, "additionalGids": groups },
            "args": argv,
            "env": env,
            "cwd": cwd,
            "capabilities": { "bounding": caps, "effective": caps, "permitted": caps },
            "rlimits": rlimits(config)?,
            "noNewPrivileges": security.no_new_privileges,
        },
        "root": { "path": input.rootfs, "readonly": config.read_only },
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
    });
    serde_json::from_value::<oci_spec::runtime::Spec>(spec.clone())
        .map_err(|e| Error::Internal(format!("the container's runtime spec is invalid: {e}")))?;
    Ok(Built {
        spec,
        path,
        args,
        hostname,
        seccomp,
    })
}

#[cfg(test)]
mod tests {
    use super::super::caps::{host_bounding_set, requested_capabilities};
    use super::super::limits::host_limit;
    use super::*;

    fn image() -> RunConfig {
        RunConfig {
            entrypoint: Some(vec!["/entry".into()]),
            cmd: Some(vec!["serve".into()]),
            env: Some(vec!["PATH=/bin".into(), "A=image".into()]),
            ..Default::default()
        }
    }

    #[test]
    fn entrypoint_and_cmd_combine_as_in_docker() {
        let mut c = ContainerConfig::default();
        assert_eq!(command(&c, &image()).unwrap(), ["/entry", "serve"]);
        c.cmd = vec!["other".into()];
        assert_eq!(command(&c, &image()).unwrap(), ["/entry", "other"]);
        c.cmd.clear();
        c.entrypoint_set = true;
        c.entrypoint = vec!["/bin/sh".into()];
        assert_eq!(command(&c, &image()).unwrap(), ["/bin/sh"]);
        c.entrypoint.clear();
        assert!(command(&c, &image())
            .unwrap_err()
            .to_string()
            .contains("no command"));
    }

    #[test]
    fn capabilities_follow_add_drop_and_privileged() {
        let mut c = ContainerConfig::default();
        assert_eq!(
            requested_capabilities(&c).unwrap().len(),
            DEFAULT_CAPS.len()
        );
        c.cap_add = vec!["net_admin".into()];
        c.cap_drop = vec!["CAP_CHOWN".into(), "kill".into()];
        let caps = requested_capabilities(&c).unwrap();
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(
            !caps.contains(&"CAP_CHOWN".to_string()) && !caps.contains(&"CAP_KILL".to_string())
        );
        c.cap_drop = vec!["ALL".into()];
        assert_eq!(requested_capabilities(&c).unwrap(), ["CAP_NET_ADMIN"]);
        c.cap_add = vec!["bogus".into()];
        assert!(capabilities(&c).is_err());
        c.cap_add.clear();
        c.privileged = true;
        assert_eq!(requested_capabilities(&c).unwrap().len(), ALL_CAPS.len());
        // Never more than the agent itself holds.
        let bounding = host_bounding_set();
        for cap in capabilities(&c).unwrap() {
            let bit = ALL_CAPS.iter().position(|k| *k == cap).unwrap();
            assert!(
                bounding & (1 << bit) != 0,
                "{cap} is outside the agent's bounding set"
            );
        }
    }

    #[test]
    fn environment_layers_image_then_user() {
        let mut c = ContainerConfig {
            env: vec!["A=user".into(), "B=2".into()],
            tty: true,
            ..Default::default()
        };
        let env = environment(&c, &image(), "host1", "/root");
        assert!(env.contains(&"PATH=/bin".to_string()));
        assert!(env.contains(&"A=user".to_string()) && env.contains(&"B=2".to_string()));
        assert!(
            env.contains(&"HOSTNAME=host1".to_string()) && env.contains(&"TERM=xterm".to_string())
        );
        assert!(env.contains(&"HOME=/root".to_string()));
        c.env = vec!["HOME=/x".into()];
        assert!(environment(&c, &image(), "h", "/root").contains(&"HOME=/x".to_string()));
    }

    #[test]
    fn ulimits_never_exceed_the_hosts_hard_limit() {
        let (_, hard) = host_limit("nofile").unwrap();
        let mut c = ContainerConfig::default();
        let r = rlimits(&c).unwrap();
        assert!(r[0]["hard"].as_u64().unwrap() <= hard);
        c.ulimits = vec![crate::runtime::config::Ulimit {
            name: "nofile".into(),
            soft: (hard + 1) as i64,
            hard: (hard + 1) as i64,
        }];
        assert!(rlimits(&c)
            .unwrap_err()
            .to_string()
            .contains("host's hard limit"));
        c.ulimits[0].name = "bogus".into();
        assert!(rlimits(&c)
            .unwrap_err()
            .to_string()
            .contains("unknown ulimit"));
    }
}
