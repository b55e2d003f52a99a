//! A container's limits: rlimits (`--ulimit`, never above the host's hard
//! limit) and cgroup resources (memory, swap, CPU, pids), which `update`
//! changes on a created or running container.

use std::path::Path;

use serde_json::{json, Value};

use super::config::ContainerConfig;
use super::{Containers, Record};
use crate::error::{Error, Result};

impl Containers {
    /// `update`: new limits (resources, `cpuset_cpus`) and restart policy
    /// for container `input`, made by `change` on a copy of its
    /// configuration (nothing else it changes is kept), checked as `run`'s
    /// flags are, applied to its cgroup at once when it runs and kept for
    /// its later starts.
    pub async fn update_limits(
        &self,
        input: &str,
        change: impl FnOnce(&mut ContainerConfig),
    ) -> Result<Record> {
        let entry = self.find(input)?;
        let _busy = entry.busy.lock().await;
        let record = entry.record();
        let mut config = record.config.clone();
        change(&mut config);
        let res = config.resources.unwrap_or_default();
        let old = record.config.resources.unwrap_or_default();
        if res.memory_swap_bytes == old.memory_swap_bytes
            && res.memory_swap_bytes > 0
            && res.memory_bytes > res.memory_swap_bytes
        {
            return Err(Error::InvalidArgument(
                "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time".into(),
            ));
        }
        let policy = config
            .restart_policy
            .clone()
            .filter(|p| !matches!(p.name.as_str(), "" | "no"));
        if config.auto_remove && policy.is_some() {
            return Err(Error::Conflict(
                "Restart policy cannot be updated because AutoRemove is enabled for the container"
                    .into(),
            ));
        }
        config.restart_policy = policy;
        let mut wanted = resources(&config, config.privileged)?;
        if record.state.is_running() {
            // The devices were set at create (with --device); leave them.
            if let Some(o) = wanted.as_object_mut() {
                o.remove("devices");
            }
            if res.pids_limit == 0 {
                wanted["pids"] = json!({ "limit": -1 });
            }
            let oci: oci_spec::runtime::LinuxResources = serde_json::from_value(wanted)
                .map_err(|e| Error::Internal(format!("the new limits do not parse: {e}")))?;
            crate::cgroups::Cgroup::of(&record.id).set(&oci)?;
        }
        self.update(&entry, |r| {
            r.config.resources = config.resources;
            r.config.cpuset_cpus = config.cpuset_cpus.clone();
            r.config.restart_policy = config.restart_policy.clone();
        })
    }
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
pub(super) fn host_limit(name: &str) -> Option<(u64, u64)> {
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
    if !config.cpuset_cpus.is_empty() {
        let ok = config.cpuset_cpus.split(',').all(|part| {
            part.split('-').all(|n| n.parse::<u32>().is_ok()) && part.split('-').count() <= 2
        });
        if !ok {
            return Err(Error::InvalidArgument(format!(
                "invalid --cpuset-cpus {:?}: give CPUs such as 0-1 or 0,2",
                config.cpuset_cpus
            )));
        }
        cpu["cpus"] = json!(config.cpuset_cpus);
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
