//! `POST /containers/create`: Docker's `Config` + `HostConfig` +
//! `NetworkingConfig` mapped onto the engine's [`ContainerConfig`].
//!
//! Every field is either mapped, known to be harmless when left at its
//! default, or refused: a field Berth does not honour answers 400 naming
//! it when the request sets it to anything but its zero value, so a
//! client never believes a limit or an option took effect when it did not.

use std::collections::HashMap;

use axum::extract::{Query, State as AxState};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::{image_error, json_response, ApiError, ApiResult, State};
use crate::runtime::config::{
    ContainerConfig, HealthConfig, MountRequest, PortBinding, Resources, RestartPolicy, Ulimit,
};

/// `Config` fields this module maps (the attach flags are recorded for
/// inspect), or that only shape the client's own session (stdin-once), so
/// they never change behaviour.
const CONFIG_KNOWN: &[&str] = &[
    "Hostname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ExposedPorts",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Image",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "NetworkDisabled",
    "ArgsEscaped",
    "OnBuild",
    "HostConfig",
    "NetworkingConfig",
    "Healthcheck",
];

/// `HostConfig` fields this module maps (or that carry no behaviour).
const HOST_KNOWN: &[&str] = &[
    "Binds",
    "PortBindings",
    "AutoRemove",
    "RestartPolicy",
    "Memory",
    "MemorySwap",
    "NanoCpus",
    "CpuShares",
    "PidsLimit",
    "CpusetCpus",
    "NetworkMode",
    "Privileged",
    "CapAdd",
    "CapDrop",
    "Init",
    "Tmpfs",
    "Mounts",
    "Dns",
    "ExtraHosts",
    "GroupAdd",
    "Sysctls",
    "ShmSize",
    "SecurityOpt",
    "Ulimits",
    "ReadonlyRootfs",
    "PublishAllPorts",
    "PidMode",
    "ConsoleSize",
    "LogConfig",
    "ContainerIDFile",
    "Runtime",
    "Isolation",
    "MemorySwappiness",
];

/// True when `v` is JSON's zero for its type: what a client sends for an
/// option the user did not set.
pub fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.values().all(is_zero),
    }
}

/// The first field of `obj` that is set but neither in `known` nor zero.
pub fn unsupported<'a>(obj: &'a Map<String, Value>, known: &[&str]) -> Option<&'a str> {
    obj.iter()
        .find(|(k, v)| !known.contains(&k.as_str()) && !is_zero(v))
        .map(|(k, _)| k.as_str())
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        Value::String(s) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn string(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// A `-v` bind: `SRC:DST[:OPTS]` (a host path or a volume name) or `DST`
/// alone (an anonymous volume).
pub fn parse_bind(spec: &str) -> ApiResult<MountRequest> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, opts) = match parts.as_slice() {
        [dst] => ("", *dst, ""),
        [src, dst] => (*src, *dst, ""),
        [src, dst, opts] => (*src, *dst, *opts),
        _ => {
            return Err(ApiError::bad(format!(
                "invalid volume specification: '{spec}'"
            )))
        }
    };
    let mut m = MountRequest {
        kind: if source.starts_with('/') {
            "bind"
        } else {
            "volume"
        }
        .into(),
        source: source.into(),
        target: target.into(),
        create_host_path: true,
        ..Default::default()
    };
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => m.read_only = true,
            "rw" => m.read_only = false,
            "nocopy" => m.options.push(o.into()),
            "z" | "Z" | "rprivate" | "private" => {}
            other => {
                return Err(ApiError::bad(format!(
                    "invalid volume specification: '{spec}': the mode {other:?} is not supported by Berth"
                )))
            }
        }
    }
    Ok(m)
}

/// One entry of `HostConfig.Mounts`.
fn parse_mount(v: &Value) -> ApiResult<MountRequest> {
    let obj = v.as_object().cloned().unwrap_or_default();
    let kind = string(&v["Type"]);
    if !["bind", "volume", "tmpfs"].contains(&kind.as_str()) {
        return Err(ApiError::bad(format!(
            "mount type {kind:?} is not supported by Berth: use bind, volume or tmpfs"
        )));
    }
    let known = [
        "Type",
        "Source",
        "Target",
        "ReadOnly",
        "VolumeOptions",
        "TmpfsOptions",
        "BindOptions",
        "Consistency",
    ];
    if let Some(f) = unsupported(&obj, &known) {
        return Err(ApiError::bad(format!(
            "HostConfig.Mounts.{f} is not supported by Berth"
        )));
    }
    let mut m = MountRequest {
        kind,
        source: string(&v["Source"]),
        target: string(&v["Target"]),
        read_only: v["ReadOnly"].as_bool().unwrap_or(false),
        ..Default::default()
    };
    if v["VolumeOptions"]["NoCopy"].as_bool() == Some(true) {
        m.options.push("nocopy".into());
    }
    let t = &v["TmpfsOptions"];
    if int(&t["SizeBytes"]) > 0 {
        m.options.push(format!("size={}", int(&t["SizeBytes"])));
    }
    if int(&t["Mode"]) > 0 {
        m.options.push(format!("mode={:o}", int(&t["Mode"])));
    }
    Ok(m)
}

/// `PortBindings`: `{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`.
fn parse_ports(v: &Value) -> ApiResult<Vec<PortBinding>> {
    let mut out = Vec::new();
    for (key, bindings) in v.as_object().into_iter().flatten() {
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        let container_port: u32 = port.parse().map_err(|_| {
            ApiError::bad(format!("invalid port {key:?}: ranges are not supported"))
        })?;
        let list = bindings.as_array().cloned().unwrap_or_default();
        let list = if list.is_empty() {
            vec![json!({})]
        } else {
            list
        };
        for b in list {
            let host_port = string(&b["HostPort"]);
            out.push(PortBinding {
                host_ip: string(&b["HostIp"]),
                host_port: if host_port.is_empty() {
                    0
                } else {
                    host_port.parse().map_err(|_| {
                        ApiError::bad(format!(
                            "invalid host port {host_port:?}: ranges are not supported"
                        ))
                    })?
                },
                container_port,
                protocol: proto.to_string(),
            });
        }
    }
    Ok(out)
}

/// The engine's configuration for a create body, or a 400 naming the
/// first field Berth cannot honour.
pub fn container_config(name: &str, body: &Value) -> ApiResult<ContainerConfig> {
    let empty = Map::new();
    let cfg = body.as_object().unwrap_or(&empty);
    if let Some(f) = unsupported(cfg, CONFIG_KNOWN) {
        return Err(ApiError::bad(format!(
            "Config.{f} is not supported by Berth"
        )));
    }
    let healthcheck = match &body["Healthcheck"] {
        Value::Null => None,
        h => Some(
            serde_json::from_value::<HealthConfig>(h.clone())
                .map_err(|e| ApiError::bad(format!("invalid Config.Healthcheck: {e}")))?,
        ),
    };
    let host = body["HostConfig"].as_object().unwrap_or(&empty);
    if let Some(f) = unsupported(host, HOST_KNOWN) {
        return Err(ApiError::bad(format!(
            "HostConfig.{f} is not supported by Berth"
        )));
    }
    let h = &body["HostConfig"];
    // -1 is the CLI's "not set".
    if !h["MemorySwappiness"].is_null() && h["MemorySwappiness"].as_i64() != Some(-1) {
        return Err(ApiError::bad(
            "HostConfig.MemorySwappiness is not supported by Berth",
        ));
    }
    let log = string(&h["LogConfig"]["Type"]);
    if !log.is_empty() && log != "json-file" {
        return Err(ApiError::bad(format!(
            "HostConfig.LogConfig.Type {log:?} is not supported by Berth: it logs json-file"
        )));
    }
    let isolation = string(&h["Isolation"]);
    if !isolation.is_empty() && isolation != "default" {
        return Err(ApiError::bad(format!(
            "HostConfig.Isolation {isolation:?} is not supported by Berth"
        )));
    }
    let runtime = string(&h["Runtime"]);
    if !runtime.is_empty() && runtime != "runc" && runtime != "berth" {
        return Err(ApiError::bad(format!(
            "HostConfig.Runtime {runtime:?} is not supported by Berth"
        )));
    }
    let mut mounts = Vec::new();
    for b in strings(&h["Binds"]) {
        mounts.push(parse_bind(&b)?);
    }
    for m in h["Mounts"].as_array().into_iter().flatten() {
        mounts.push(parse_mount(m)?);
    }
    for (target, opts) in h["Tmpfs"].as_object().into_iter().flatten() {
        mounts.push(MountRequest {
            kind: "tmpfs".into(),
            target: target.clone(),
            options: string(opts)
                .split(',')
                .filter(|o| !o.is_empty())
                .map(String::from)
                .collect(),
            ..Default::default()
        });
    }
    for target in body["Volumes"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        if !mounts.iter().any(|m| &m.target == target) {
            mounts.push(MountRequest {
                kind: "volume".into(),
                target: target.clone(),
                ..Default::default()
            });
        }
    }
    let mut network = string(&h["NetworkMode"]);
    if network == "default" {
        network = String::new();
    }
    if body["NetworkDisabled"].as_bool() == Some(true) {
        network = "none".into();
    }
    let endpoints = &body["NetworkingConfig"]["EndpointsConfig"];
    let mut aliases = Vec::new();
    for (net, ep) in endpoints.as_object().into_iter().flatten() {
        let same = net == &network || (network.is_empty() && (net == "bridge" || net == "default"));
        if !same {
            return Err(ApiError::bad(format!(
                "NetworkingConfig.EndpointsConfig.{net}: joining a second network at create is not supported by Berth yet; connect it after creating"
            )));
        }
        aliases.extend(strings(&ep["Aliases"]));
    }
    let restart = &h["RestartPolicy"];
    let restart_name = string(&restart["Name"]);
    let resources = Resources {
        memory_bytes: int(&h["Memory"]),
        memory_swap_bytes: int(&h["MemorySwap"]),
        nano_cpus: int(&h["NanoCpus"]),
        cpu_shares: int(&h["CpuShares"]),
        pids_limit: int(&h["PidsLimit"]).max(0),
    };
    let entrypoint = &body["Entrypoint"];
    let stop_timeout = int(&body["StopTimeout"]) as i32;
    let labels: HashMap<String, String> = body["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), string(v)))
        .collect();
    Ok(ContainerConfig {
        name: name.to_string(),
        image: string(&body["Image"]),
        cmd: strings(&body["Cmd"]),
        entrypoint: strings(entrypoint),
        entrypoint_set: !entrypoint.is_null(),
        env: strings(&body["Env"]),
        working_dir: string(&body["WorkingDir"]),
        user: string(&body["User"]),
        hostname: string(&body["Hostname"]),
        tty: body["Tty"].as_bool().unwrap_or(false),
        open_stdin: body["OpenStdin"].as_bool().unwrap_or(false),
        attach: ["Stdin", "Stdout", "Stderr"]
            .into_iter()
            .filter(|s| body[format!("Attach{s}")].as_bool().unwrap_or(false))
            .map(|s| s.to_ascii_lowercase())
            .collect(),
        auto_remove: h["AutoRemove"].as_bool().unwrap_or(false),
        init: h["Init"].as_bool().unwrap_or(false),
        read_only: h["ReadonlyRootfs"].as_bool().unwrap_or(false),
        privileged: h["Privileged"].as_bool().unwrap_or(false),
        cap_add: strings(&h["CapAdd"]),
        cap_drop: strings(&h["CapDrop"]),
        ulimits: h["Ulimits"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|u| Ulimit {
                name: string(&u["Name"]),
                soft: int(&u["Soft"]),
                hard: int(&u["Hard"]),
            })
            .collect(),
        resources: (!is_zero(&json!([
            resources.memory_bytes,
            resources.memory_swap_bytes,
            resources.nano_cpus,
            resources.cpu_shares,
            resources.pids_limit
        ])))
        .then_some(resources),
        restart_policy: (!restart_name.is_empty() && restart_name != "no").then(|| RestartPolicy {
            name: restart_name,
            maximum_retry_count: int(&restart["MaximumRetryCount"]).max(0) as u32,
        }),
        ports: parse_ports(&h["PortBindings"])?,
        publish_all: h["PublishAllPorts"].as_bool().unwrap_or(false),
        mounts,
        network,
        network_aliases: aliases,
        dns: strings(&h["Dns"]),
        extra_hosts: strings(&h["ExtraHosts"]),
        labels,
        stop_signal: string(&body["StopSignal"]),
        stop_timeout,
        pid_mode: string(&h["PidMode"]),
        group_add: strings(&h["GroupAdd"]),
        sysctls: h["Sysctls"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), string(v)))
            .collect(),
        shm_size: int(&h["ShmSize"]),
        cpuset_cpus: string(&h["CpusetCpus"]),
        security_opt: strings(&h["SecurityOpt"]),
        expose: body["ExposedPorts"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect(),
        healthcheck,
        log_opts: h["LogConfig"]["Config"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), string(v)))
            .collect(),
        ..Default::default()
    })
}

/// `POST /containers/create?name=&platform=`.
pub async fn create(
    AxState(api): State,
    Query(q): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("invalid JSON in the create request: {e}")))?;
    let name = q.get("name").cloned().unwrap_or_default();
    let mut config = container_config(&name, &body)?;
    config.platform = q.get("platform").cloned().unwrap_or_default();
    if config.image.is_empty() {
        return Err(ApiError::bad("Config.Image is required"));
    }
    let image = config.image.clone();
    let (id, warnings) = api
        .agent
        .containers
        .create(config)
        .await
        .map_err(|e| image_error(e, &image))?;
    Ok(json_response(
        StatusCode::CREATED,
        json!({ "Id": id, "Warnings": warnings }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cli_run_body_maps_onto_the_engine_config() {
        let body = json!({
            "Image": "bb", "Cmd": ["echo", "hi"], "Env": ["A=1"], "Tty": false,
            "AttachStdout": true, "StdinOnce": false, "Labels": {"a": "b"},
            "ExposedPorts": {"80/tcp": {}}, "Entrypoint": null,
            "HostConfig": {
                "Binds": ["/tmp/x:/x:ro", "data:/data"], "AutoRemove": true,
                "NetworkMode": "default", "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                "PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
                "Memory": 1048576, "ConsoleSize": [24, 80], "LogConfig": {"Type": "", "Config": {}},
                "Tmpfs": {"/run": "size=1m"}, "Links": null, "BlkioWeight": 0
            },
            "NetworkingConfig": {"EndpointsConfig": {}}
        });
        let c = container_config("web", &body).unwrap();
        assert_eq!(c.cmd, vec!["echo", "hi"]);
        assert!(!c.entrypoint_set);
        assert!(c.auto_remove);
        assert_eq!(c.network, "");
        assert!(c.restart_policy.is_none());
        assert_eq!(c.ports[0].host_port, 8080);
        assert_eq!(c.resources.unwrap().memory_bytes, 1048576);
        assert_eq!(c.mounts.len(), 3);
        assert!(c.mounts[0].read_only && c.mounts[0].kind == "bind");
        assert_eq!(c.mounts[1].kind, "volume");
        assert_eq!(c.expose, vec!["80/tcp"]);
        assert!(c.healthcheck.is_none());
        let body = json!({"Image": "bb", "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 1000000000, "Retries": 2}});
        let h = container_config("", &body).unwrap().healthcheck.unwrap();
        assert_eq!((h.test.len(), h.interval, h.retries), (2, 1_000_000_000, 2));
    }

    #[test]
    fn a_set_field_berth_cannot_honour_is_refused_by_name() {
        let body = json!({"Image": "bb", "HostConfig": {"Links": ["a:b"]}});
        let e = container_config("", &body).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("HostConfig.Links"), "{}", e.message);
        let body = json!({"Image": "bb", "HostConfig": {"LogConfig": {"Type": "syslog"}}});
        assert!(container_config("", &body).is_err());
        for (key, value) in [
            ("OomKillDisable", json!(true)),
            ("MaskedPaths", json!(["/proc/x"])),
            ("CgroupnsMode", json!("host")),
            ("VolumesFrom", json!(["other"])),
        ] {
            let body = json!({"Image": "bb", "HostConfig": {key: value}});
            let e = container_config("", &body).unwrap_err();
            assert!(e.message.contains(key), "{}", e.message);
        }
        let body = json!({"Image": "bb", "MacAddress": "02:42:ac:11:00:02"});
        assert!(container_config("", &body).is_err());
        let body = json!({"Image": "bb", "HostConfig": {"LogConfig": {"Type": "json-file", "Config": {"max-size": "1m"}}}});
        let c = container_config("", &body).unwrap();
        assert_eq!(c.log_opts["max-size"], "1m");
    }

    #[test]
    fn binds_parse_as_docker_s() {
        let m = parse_bind("/a:/b:ro").unwrap();
        assert_eq!((m.kind.as_str(), m.read_only), ("bind", true));
        assert_eq!(parse_bind("/data").unwrap().source, "");
        assert!(parse_bind("/a:/b:shared").is_err());
    }
}
