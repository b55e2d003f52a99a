//! `POST /containers/{id}/update`: new memory, CPU and pids limits, CPU
//! set and restart policy for a created or running container (the engine
//! applies them to a running one's cgroup at once). The other fields of
//! Docker's body — block I/O weights and rates, `CpuPeriod`/`CpuQuota`,
//! real-time CPU, `CpusetMems`, `MemoryReservation`, `KernelMemory`,
//! `OomKillDisable`, devices, ulimits — answer 400 naming the field when
//! set; a zero or absent field leaves its setting as it is, as dockerd
//! does.

use axum::extract::{Path, State as AxState};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::create::unsupported;
use super::{container_error, ApiError, ApiResult, State};
use crate::runtime::config::RestartPolicy;

/// The fields this endpoint maps.
const KNOWN: &[&str] = &[
    "Memory",
    "MemorySwap",
    "NanoCpus",
    "CpuShares",
    "PidsLimit",
    "CpusetCpus",
    "RestartPolicy",
    "MemorySwappiness",
];

/// `POST /containers/{id}/update`: `{"Memory", "MemorySwap", "NanoCpus",
/// "CpuShares", "PidsLimit", "CpusetCpus", "RestartPolicy"}`.
pub async fn update(
    AxState(api): State,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let b: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("invalid JSON in the update request: {e}")))?;
    let empty = Map::new();
    if let Some(f) = unsupported(b.as_object().unwrap_or(&empty), KNOWN) {
        return Err(ApiError::bad(format!(
            "{f} cannot be updated by Berth: it updates Memory, MemorySwap, NanoCpus, CpuShares, PidsLimit, CpusetCpus and RestartPolicy"
        )));
    }
    if !b["MemorySwappiness"].is_null() && b["MemorySwappiness"].as_i64() != Some(-1) {
        return Err(ApiError::bad("MemorySwappiness is not supported by Berth"));
    }
    let set = |k: &str| b[k].as_i64().filter(|v| *v != 0);
    let cpuset = b["CpusetCpus"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(String::from);
    let policy = b["RestartPolicy"]["Name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(|name| RestartPolicy {
            name: name.to_string(),
            maximum_retry_count: b["RestartPolicy"]["MaximumRetryCount"]
                .as_u64()
                .unwrap_or(0) as u32,
        });
    // PidsLimit: null leaves it, 0 or -1 lifts it.
    let pids = b["PidsLimit"].as_i64().map(|p| p.max(0));
    let (memory, swap, cpus, shares) = (
        set("Memory"),
        set("MemorySwap"),
        set("NanoCpus"),
        set("CpuShares"),
    );
    let r = super::containers::record(&api, &id)?;
    api.agent
        .containers
        .update_limits(&r.id, |c| {
            let mut res = c.resources.unwrap_or_default();
            if let Some(m) = memory {
                res.memory_bytes = m;
            }
            if let Some(s) = swap {
                res.memory_swap_bytes = s;
            }
            if let Some(n) = cpus {
                res.nano_cpus = n;
            }
            if let Some(s) = shares {
                res.cpu_shares = s;
            }
            if let Some(p) = pids {
                res.pids_limit = p;
            }
            c.resources = Some(res);
            if let Some(s) = cpuset {
                c.cpuset_cpus = s;
            }
            if let Some(p) = policy {
                c.restart_policy = Some(p);
            }
        })
        .await
        .map_err(|e| container_error(e, &id))?;
    Ok(axum::Json(json!({ "Warnings": [] })).into_response())
}
