//! A container as Docker's `inspect` shows it: every key dockerd 20.10
//! writes (its `ContainerJSON`), with Berth's values where it has them and
//! Docker's defaults where the setting does not exist in Berth (blkio
//! weights, realtime CPU periods, IPC and UTS modes, …).
//!
//! A few keys Docker's JSON leaves out when empty (`omitempty` in its
//! types: `Config.ExposedPorts`, `Config.StopSignal`, `Config.StopTimeout`,
//! `HostConfig.Init`) are kept here with an empty value, because Docker's
//! CLI reads templates against its types, where the field is always
//! there: `{{.Config.StopSignal}}` prints an empty line rather than
//! failing, and Berth's templates read this document.

use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::super::config::ContainerConfig;
use super::super::record::Record;
use super::super::Containers;

/// `/dev/shm`'s size when `--shm-size` is not given, as Docker's.
const DEFAULT_SHM_SIZE: i64 = 64 << 20;

/// The stop signal every container gets when neither the user nor the
/// image names one.
const DEFAULT_STOP_SIGNAL: &str = "SIGTERM";

/// The seconds `stop` waits when `--stop-timeout` is not given.
const DEFAULT_STOP_TIMEOUT: i32 = 10;

/// `HostConfig.Binds`: the `-v` mounts as `SOURCE:TARGET[:ro]` (named
/// volumes and host folders; `--tmpfs` and anonymous volumes are not
/// binds), `null` when there are none, as Docker's.
pub(crate) fn binds(c: &ContainerConfig) -> Value {
    let list: Vec<String> = c
        .mounts
        .iter()
        .filter(|m| {
            (m.kind == "bind" && m.create_host_path) || (m.kind == "volume" && !m.source.is_empty())
        })
        .map(|m| {
            let mut opts: Vec<&str> = Vec::new();
            if m.read_only {
                opts.push("ro");
            }
            if m.options.iter().any(|o| o == "nocopy") {
                opts.push("nocopy");
            }
            let mut s = format!("{}:{}", m.source, m.target);
            if !opts.is_empty() {
                s.push(':');
                s.push_str(&opts.join(","));
            }
            s
        })
        .collect();
    if list.is_empty() {
        Value::Null
    } else {
        json!(list)
    }
}

/// A list, or `null` when it is empty (Docker's nil slices).
fn list_or_null(v: &[String]) -> Value {
    if v.is_empty() {
        Value::Null
    } else {
        json!(v)
    }
}

impl Containers {
    /// The container as Docker's `inspect` JSON.
    pub fn inspect_json(&self, r: &Record) -> Value {
        let time = |t: Option<DateTime<Utc>>| {
            t.map(|t| t.to_rfc3339_opts(SecondsFormat::Nanos, true))
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
        };
        let exec_ids = Some(self.exec_ids(&r.id)).filter(|ids| !ids.is_empty());
        let dir = self.dir_of(&r.id);
        let mut v = json!({
            "Id": r.id,
            "Created": r.created.to_rfc3339_opts(SecondsFormat::Nanos, true),
            "Path": r.path,
            "Args": r.args,
            "State": {
                "Status": r.state.status,
                "Running": r.state.is_running(),
                "Paused": r.state.status == "paused",
                "Restarting": r.state.status == "restarting",
                "OOMKilled": r.state.oom_killed,
                "Dead": r.state.status == "dead",
                "Pid": r.state.pid,
                "ExitCode": r.state.exit_code,
                "Error": r.state.error,
                "StartedAt": time(r.state.started_at),
                "FinishedAt": time(r.state.finished_at),
            },
            "Image": r.image_id,
            "ResolvConfPath": dir.join("resolv.conf"),
            "HostnamePath": dir.join("hostname"),
            "HostsPath": dir.join("hosts"),
            "LogPath": self.log_path(&r.id),
            "Name": format!("/{}", r.name),
            "RestartCount": r.restart_count,
            "Driver": "overlay2",
            "Platform": "linux",
            "MountLabel": "",
            "ProcessLabel": "",
            "AppArmorProfile": "",
            "ExecIDs": exec_ids,
            "HostConfig": self.host_config_json(r),
            "GraphDriver": {
                "Name": "overlay2",
                "Data": {
                    "LowerDir": self.lower_dirs(r),
                    "UpperDir": dir.join("upper"),
                    "WorkDir": dir.join("work"),
                    "MergedDir": dir.join("bundle").join("rootfs"),
                },
            },
            "Mounts": self.mounts_json(r),
            "Config": self.config_json(r),
            "NetworkSettings": self.network_settings_json(r),
        });
        if let Some(h) = &r.state.health {
            v["State"]["Health"] = super::super::health::state_json(h);
        }
        v
    }

    /// The overlay's lower folders, top first and joined by `:` as
    /// Docker's `LowerDir`: the init layer, then the image's layers;
    /// `null` when the image is gone.
    fn lower_dirs(&self, r: &Record) -> Value {
        let Ok(image) = self.images.find(&r.image_id) else {
            return Value::Null;
        };
        let mut dirs: Vec<PathBuf> = vec![self.init_layer.clone()];
        dirs.extend(self.layer_dirs(&image.record).unwrap_or_default());
        let joined: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        json!(joined.join(":"))
    }

    /// `HostConfig`: what the container was created with, in Docker's
    /// keys, Docker's defaults for settings Berth does not have.
    fn host_config_json(&self, r: &Record) -> Value {
        let c = &r.config;
        let res = c.resources.unwrap_or_default();
        let policy = c.restart_policy.clone().unwrap_or_default();
        let masked = |paths: &[&str]| {
            if c.privileged {
                Value::Null
            } else {
                json!(paths)
            }
        };
        let mut host = json!({
            "Binds": binds(c),
            "ContainerIDFile": "",
            "LogConfig": { "Type": "json-file", "Config": if c.log_opts.is_empty() {
                json!({ "max-size": "10m", "max-file": "3" })
            } else {
                json!(c.log_opts)
            } },
            "NetworkMode": if c.network.is_empty() { "bridge".to_string() } else { c.network.clone() },
            "PortBindings": super::super::networking::port_bindings_json(&c.ports),
            "RestartPolicy": { "Name": if policy.name.is_empty() { "no".to_string() } else { policy.name }, "MaximumRetryCount": policy.maximum_retry_count },
            "AutoRemove": c.auto_remove,
            "VolumeDriver": "",
            "VolumesFrom": Value::Null,
            "CapAdd": list_or_null(&c.cap_add),
            "CapDrop": list_or_null(&c.cap_drop),
            "CgroupnsMode": "private",
            "Dns": c.dns,
            "DnsOptions": [],
            "DnsSearch": [],
            "ExtraHosts": list_or_null(&c.extra_hosts),
            "GroupAdd": list_or_null(&c.group_add),
            "IpcMode": "private",
            "Cgroup": "",
            "Links": Value::Null,
            "OomScoreAdj": 0,
            "PidMode": c.pid_mode,
            "Privileged": c.privileged,
            "PublishAllPorts": c.publish_all,
            "ReadonlyRootfs": c.read_only,
            "SecurityOpt": list_or_null(&c.security_opt),
            "UTSMode": "",
            "UsernsMode": "",
            "ShmSize": if c.shm_size > 0 { c.shm_size } else { DEFAULT_SHM_SIZE },
            "Runtime": "berth",
            "ConsoleSize": [0, 0],
            "Init": if c.init { json!(true) } else { Value::Null },
        });
        // Resources, in a second part (one `json!` this long is too deep
        // for the macro).
        let more = json!({
            "Isolation": "",
            "CpuShares": res.cpu_shares,
            "Memory": res.memory_bytes,
            "NanoCpus": res.nano_cpus,
            "CgroupParent": "/berth",
            "BlkioWeight": 0,
            "BlkioWeightDevice": [],
            "BlkioDeviceReadBps": [],
            "BlkioDeviceWriteBps": [],
            "BlkioDeviceReadIOps": [],
            "BlkioDeviceWriteIOps": [],
            "CpuPeriod": 0,
            "CpuQuota": 0,
            "CpuRealtimePeriod": 0,
            "CpuRealtimeRuntime": 0,
            "CpusetCpus": c.cpuset_cpus,
            "CpusetMems": "",
            "Devices": super::super::devices::devices_json(&c.devices),
            "DeviceCgroupRules": Value::Null,
            "DeviceRequests": Value::Null,
            "KernelMemory": 0,
            "KernelMemoryTCP": 0,
            "MemoryReservation": 0,
            "MemorySwap": res.memory_swap_bytes,
            "MemorySwappiness": Value::Null,
            "OomKillDisable": false,
            "PidsLimit": if res.pids_limit > 0 { json!(res.pids_limit) } else { Value::Null },
            "Ulimits": c.ulimits.iter().map(|u| json!({"Name": u.name, "Soft": u.soft, "Hard": u.hard})).collect::<Vec<_>>(),
            "CpuCount": 0,
            "CpuPercent": 0,
            "IOMaximumIOps": 0,
            "IOMaximumBandwidth": 0,
            "MaskedPaths": masked(crate::runtime::spec::MASKED_PATHS),
            "ReadonlyPaths": masked(crate::runtime::spec::READONLY_PATHS),
        });
        if let (Some(all), Value::Object(more)) = (host.as_object_mut(), more) {
            all.extend(more);
        }
        host
    }

    /// The container's `Config` as Docker shows it: the image's settings
    /// with the user's over them (Docker stores this merge at create).
    fn config_json(&self, r: &Record) -> Value {
        let c = &r.config;
        // An image removed with `rmi -f` leaves the user's settings alone.
        let image = self.image_config(&r.image_id).unwrap_or_default();
        let merged = super::super::merge::merged_config(c, &image);
        let health = super::super::health::merged(
            c.healthcheck.as_ref(),
            image
                .healthcheck
                .as_ref()
                .and_then(super::super::health::from_image),
        );
        // The engine records SIGTERM and 10 s when nothing was asked;
        // Docker shows only what the user or the image set.
        let stop_signal = if c.stop_signal != DEFAULT_STOP_SIGNAL || image.stop_signal.is_some() {
            c.stop_signal.as_str()
        } else {
            ""
        };
        let stop_timeout = if c.stop_timeout != DEFAULT_STOP_TIMEOUT {
            json!(c.stop_timeout)
        } else {
            Value::Null
        };
        let mut v = json!({
            "Hostname": r.hostname,
            "Domainname": "",
            "User": merged.user,
            "AttachStdin": c.attach.iter().any(|s| s == "stdin"),
            "AttachStdout": c.attach.iter().any(|s| s == "stdout"),
            "AttachStderr": c.attach.iter().any(|s| s == "stderr"),
            "ExposedPorts": merged.exposed_ports,
            "Tty": c.tty,
            "OpenStdin": c.open_stdin,
            "StdinOnce": c.open_stdin,
            "Env": merged.env,
            "Cmd": merged.cmd,
            "Image": r.image,
            "Volumes": merged.volumes,
            "WorkingDir": merged.working_dir,
            "Entrypoint": merged.entrypoint,
            "OnBuild": Value::Null,
            "Labels": merged.labels,
            "StopSignal": stop_signal,
            "StopTimeout": stop_timeout,
        });
        if let Some(h) = health {
            v["Healthcheck"] = super::super::health::config_json(&h);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::config::MountRequest;

    fn mount(kind: &str, source: &str, target: &str, ro: bool, from_v: bool) -> MountRequest {
        MountRequest {
            kind: kind.into(),
            source: source.into(),
            target: target.into(),
            read_only: ro,
            create_host_path: from_v,
            ..Default::default()
        }
    }

    #[test]
    fn binds_are_the_v_mounts_as_docker_writes_them() {
        let mut c = ContainerConfig::default();
        assert_eq!(binds(&c), Value::Null);
        c.mounts = vec![
            mount("volume", "data", "/data", false, false),
            mount("bind", "/host", "/ro", true, true),
            mount("bind", "/host", "/m", false, false),
            mount("volume", "", "/anon", false, false),
            mount("tmpfs", "", "/t", false, false),
        ];
        assert_eq!(binds(&c), json!(["data:/data", "/host:/ro:ro"]));
    }
}
