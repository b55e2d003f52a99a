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

/// Docker's default capability set.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability the kernels Berth supports know (0 to 40).
pub const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

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

/// Normalizes a capability name ("net_admin", "CAP_NET_ADMIN", "ALL").
pub fn cap_name(name: &str) -> Result<String> {
    let upper = name.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if ALL_CAPS.contains(&full.as_str()) {
        Ok(full)
    } else {
        Err(Error::InvalidArgument(format!(
            "unknown capability {name:?}: use a name such as NET_ADMIN or SYS_PTRACE, or ALL"
        )))
    }
}

/// The capability set after `--privileged`, `--cap-add` and `--cap-drop`,
/// limited to what the agent itself may hand out (its bounding set: on
/// some hosts even root lacks e.g. CAP_SYS_RESOURCE).
pub fn capabilities(config: &ContainerConfig) -> Result<Vec<String>> {
    let bounding = host_bounding_set();
    Ok(requested_capabilities(config)?
        .into_iter()
        .filter(|c| {
            ALL_CAPS
                .iter()
                .position(|k| k == c)
                .is_some_and(|bit| bounding & (1u64 << bit) != 0)
        })
        .collect())
}

/// The agent's capability bounding set (all bits when unknown).
fn host_bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
}

fn requested_capabilities(config: &ContainerConfig) -> Result<Vec<String>> {
    if config.privileged {
        return Ok(ALL_CAPS.iter().map(|s| s.to_string()).collect());
    }
    let add = config
        .cap_add
        .iter()
        .map(|c| cap_name(c))
        .collect::<Result<Vec<_>>>()?;
    let drop = config
        .cap_drop
        .iter()
        .map(|c| cap_name(c))
        .collect::<Result<Vec<_>>>()?;
    let mut caps: Vec<String> = if drop.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPS
            .iter()
            .filter(|c| !drop.iter().any(|d| d == *c))
            .map(|s| s.to_string())
            .collect()
    };
    if add.iter().any(|c| c == "ALL") {
        caps = ALL_CAPS.iter().map(|s| s.to_string()).collect();
    }
    for c in add {
        if c != "ALL" && !caps.contains(&c) {
            caps.push(c);
        }
    }
    Ok(caps)
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

/// The rlimits: Docker's `nofile` default (1048576) capped at the host's
/// hard limit, then each `--ulimit`, which may not exceed it either.
pub fn rlimits(config: &ContainerConfig) -> Result<Vec<Value>> {
    let mut out: Vec<(String, u64, u64)> = Vec::new();
    let (_, nofile_hard) = host_limit("nofile").unwrap_or((1024, 1024));
    let nofile = nofile_hard.min(1 << 20);
    out.push(("RLIMIT_NOFILE".into(), nofile, nofile));
    for u in &config.ulimits {
        let name = u.name.to_ascii_lowercase();
        let (_, hard_max) = host_limit(&name).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "unknown ulimit {:?}: use one of nofile, nproc, core, memlock, stack, fsize, cpu, as, data, locks, msgqueue, nice, rtprio, sigpending",
                u.name
            ))
        })?;
        let (soft, hard) = (u.soft.max(0) as u64, u.hard.max(0) as u64);
        if soft > hard {
            return Err(Error::InvalidArgument(format!(
                "--ulimit {name}: the soft limit {soft} is above the hard limit {hard}"
            )));
        }
        if hard > hard_max {
            return Err(Error::InvalidArgument(format!(
                "--ulimit {name}={soft}:{hard} is above the host's hard limit of {hard_max}; ask for at most that"
            )));
        }
        let key = format!("RLIMIT_{}", name.to_ascii_uppercase());
        out.retain(|(k, _, _)| *k != key);
        out.push((key, soft, hard));
    }
    Ok(out
        .into_iter()
        .map(|(t, soft, hard)| json!({ "type": t, "soft": soft, "hard": hard }))
        .collect())
}

/// The host's (soft, hard) limit for a ulimit name.
fn host_limit(name: &str) -> Option<(u64, u64)> {
    use nix::sys::resource::{getrlimit, Resource};
    let r = match name {
        "nofile" => Resource::RLIMIT_NOFILE,
        "nproc" => Resource::RLIMIT_NPROC,
        "core" => Resource::RLIMIT_CORE,
        "memlock" => Resource::RLIMIT_MEMLOCK,
        "stack" => Resource::RLIMIT_STACK,
        "fsize" => Resource::RLIMIT_FSIZE,
        "cpu" => Resource::RLIMIT_CPU,
        "as" => Resource::RLIMIT_AS,
        "data" => Resource::RLIMIT_DATA,
        "locks" => Resource::RLIMIT_LOCKS,
        "msgqueue" => Resource::RLIMIT_MSGQUEUE,
        "nice" => Resource::RLIMIT_NICE,
        "rtprio" => Resource::RLIMIT_RTPRIO,
        "sigpending" => Resource::RLIMIT_SIGPENDING,
        _ => return None,
    };
    getrlimit(r).ok()
}

/// The cgroup resources for the flags.
pub fn resources(config: &ContainerConfig, privileged: bool) -> Result<Value> {
    let r = config.resources.unwrap_or_default();
    let mut res = json!({});
    res["devices"] = if privileged {
        json!([{ "allow": true, "access": "rwm" }])
    } else {
        json!([{ "allow": false, "access": "rwm" }])
    };
    if r.memory_bytes < 0 || r.nano_cpus < 0 || r.cpu_shares < 0 {
        return Err(Error::InvalidArgument(
            "--memory, --cpus and --cpu-shares cannot be negative".into(),
        ));
    }
    if r.memory_bytes > 0 && r.memory_bytes < 6 << 20 {
        return Err(Error::InvalidArgument(
            "minimum memory limit allowed is 6MB: give -m 6m or more".into(),
        ));
    }
    let mut memory = json!({});
    if r.memory_bytes > 0 {
        memory["limit"] = json!(r.memory_bytes);
    }
    if r.memory_swap_bytes != 0 {
        if r.memory_bytes == 0 {
            return Err(Error::InvalidArgument(
                "--memory-swap needs --memory as well: set both".into(),
            ));
        }
        if r.memory_swap_bytes > 0 && r.memory_swap_bytes < r.memory_bytes {
            return Err(Error::InvalidArgument(
                "--memory-swap must be at least --memory (it is memory plus swap); use -1 for unlimited swap".into(),
            ));
        }
        if swap_accounting() {
            memory["swap"] = json!(r.memory_swap_bytes);
        }
    }
    if memory != json!({}) {
        res["memory"] = memory;
    }
    let mut cpu = json!({});
    if r.nano_cpus > 0 {
        let period: i64 = 100_000;
        cpu["period"] = json!(period);
        cpu["quota"] = json!((r.nano_cpus * period / 1_000_000_000).max(1000));
    }
    if r.cpu_shares > 0 {
        cpu["shares"] = json!(r.cpu_shares);
    }
    if cpu != json!({}) {
        res["cpu"] = cpu;
    }
    if r.pids_limit > 0 {
        res["pids"] = json!({ "limit": r.pids_limit });
    }
    Ok(res)
}

/// True when the kernel accounts swap per cgroup (v2, or v1 with memsw).
pub fn swap_accounting() -> bool {
    Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
        || Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
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
    let hostname = if config.hostname.is_empty() {
        input.id[..12].to_string()
    } else {
        config.hostname.clone()
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
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
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
    let mut seccomp = None;
    if config.privileged {
        linux["devices"] = json!(host_devices(Path::new("/dev")));
    } else {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
        seccomp = Some(seccomp::profile(&caps));
    }
    let spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": config.tty,
            "user": { "uid": ids.uid, "gid": ids.gid, "additionalGids": ids.additional_gids },
            "args": argv,
            "env": env,
            "cwd": cwd,
            "capabilities": { "bounding": caps, "effective": caps, "permitted": caps },
            "rlimits": rlimits(config)?,
            "noNewPrivileges": !config.privileged,
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
