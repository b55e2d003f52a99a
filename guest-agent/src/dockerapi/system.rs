//! `/_ping`, `/version` and `/info`: what clients ask first, to learn the
//! API version and what kind of engine they talk to.

use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{ApiResult, State, API_VERSION, MIN_API_VERSION};

/// The `Server` header and the version string clients show.
fn server_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Headers every ping carries: the API version and the engine's kind.
fn ping_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    put("Api-Version", API_VERSION.into());
    put("Ostype", "linux".into());
    put("Builder-Version", "1".into());
    put("Docker-Experimental", "false".into());
    put("Server", format!("Berth/{} (linux)", server_version()));
    put(
        "Cache-Control",
        "no-cache, no-store, must-revalidate".into(),
    );
    put("Pragma", "no-cache".into());
    h
}

/// `GET|HEAD /_ping`: "OK" with the version headers.
pub async fn ping() -> Response {
    let mut headers = ping_headers();
    headers.insert(
        "Content-Type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    (StatusCode::OK, headers, "OK").into_response()
}

/// `GET /version`.
pub async fn version() -> Response {
    let arch = crate::image::manifest::Platform::host().architecture;
    let kernel = crate::host::kernel_release();
    let version = server_version();
    let body = json!({
        "Platform": { "Name": "Berth" },
        "Components": [{
            "Name": "Engine",
            "Version": version,
            "Details": {
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "Os": "linux",
                "Arch": arch,
                "KernelVersion": kernel,
                "GitCommit": option_env!("BERTH_GIT_COMMIT").unwrap_or(""),
            }
        }],
        "Version": version,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": option_env!("BERTH_GIT_COMMIT").unwrap_or(""),
        "GoVersion": "",
        "Os": "linux",
        "Arch": arch,
        "KernelVersion": kernel,
        "BuildTime": "",
    });
    (ping_headers(), axum::Json(body)).into_response()
}

/// `GET /info`.
pub async fn info(AxState(api): State) -> ApiResult<Response> {
    let agent = &api.agent;
    let images = agent.images.list()?.len() as u64;
    let host = crate::host::info();
    let counts = agent.containers.counts();
    let arch = match host.arch.as_str() {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        other => other,
    };
    let insecure = &agent.images.registries.insecure;
    let body = json!({
        "ID": agent.id,
        "Containers": counts.total,
        "ContainersRunning": counts.running,
        "ContainersPaused": counts.paused,
        "ContainersStopped": counts.stopped,
        "Images": images,
        "Driver": "overlayfs",
        "DriverStatus": [],
        "DockerRootDir": agent.images.root().display().to_string(),
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "null"],
            "Authorization": null,
            "Log": ["json-file"],
        },
        "MemoryLimit": true,
        "SwapLimit": crate::runtime::spec::swap_accounting(),
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "CPUSet": true,
        "PidsLimit": true,
        "IPv4Forwarding": true,
        "Debug": false,
        "NFd": 0,
        "NGoroutines": 0,
        "SystemTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    });
    let more = json!({
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": host.cgroup_version,
        "NEventsListener": 0,
        "KernelVersion": host.kernel_version,
        "OperatingSystem": host.operating_system,
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": arch,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "InsecureRegistryCIDRs": ["127.0.0.0/8"],
            "IndexConfigs": {},
            "Mirrors": [],
        },
        "InsecureRegistries": insecure,
        "NCPU": host.cpus,
        "MemTotal": host.memory_bytes,
        "Name": host.hostname,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": server_version(),
        "Runtimes": { "berth": { "path": "berth-agent" } },
        "DefaultRuntime": "berth",
        "Swarm": { "NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                   "ControlAvailable": false, "Error": "", "RemoteManagers": null },
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": [],
    });
    let mut body = body;
    if let (Some(b), serde_json::Value::Object(m)) = (body.as_object_mut(), more) {
        b.extend(m);
    }
    Ok(axum::Json(body).into_response())
}

/// `GET /system/df`: what images, containers, volumes and the build cache
/// hold. The build cache is one entry with its total (the engine counts
/// it as a whole).
pub async fn df(AxState(api): State) -> ApiResult<Response> {
    let a = &api.agent;
    let (layers_size, _) = a.images.disk_usage()?;
    let cache = a.images.cache_usage()?;
    let images: Vec<_> = a
        .images
        .usage()?
        .into_iter()
        .map(|u| {
            json!({
                "Id": u.id, "ParentId": "", "RepoTags": u.repo_tags, "RepoDigests": [],
                "Created": 0, "Size": u.size, "SharedSize": u.shared_size,
                "Containers": a.images.user_count(&u.id), "Labels": {},
            })
        })
        .collect();
    let containers: Vec<_> = a
        .containers
        .usage()
        .into_iter()
        .map(|c| {
            json!({
                "Id": c.id, "Names": [format!("/{}", c.name)], "Image": c.image,
                "ImageID": "", "Command": "", "Created": 0, "State": c.state, "Status": "",
                "SizeRw": c.size_rw, "SizeRootFs": 0, "Labels": {}, "Ports": [], "Mounts": [],
            })
        })
        .collect();
    let volumes: Vec<_> = a
        .containers
        .volume_usage()
        .into_iter()
        .map(|v| {
            json!({
                "Name": v.name, "Driver": "local",
                "Mountpoint": a.volumes.data_path(&v.name).display().to_string(),
                "Labels": {}, "Scope": "local", "Options": {},
                "UsageData": { "Size": v.size, "RefCount": v.ref_count },
            })
        })
        .collect();
    let build_cache = if cache.entries == 0 {
        json!([])
    } else {
        json!([{
            "ID": "berth-build-cache", "Type": "regular", "Size": cache.bytes,
            "InUse": false, "Shared": false,
            "Description": format!("{} cached build steps", cache.entries),
            "UsageCount": cache.entries,
        }])
    };
    Ok(axum::Json(json!({
        "LayersSize": layers_size,
        "Images": images,
        "Containers": containers,
        "Volumes": volumes,
        "BuildCache": build_cache,
    }))
    .into_response())
}
