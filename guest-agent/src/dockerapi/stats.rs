//! `GET /containers/{id}/stats?stream=&one-shot=`: the engine's usage
//! samples in Docker's shape. CPU counters are the container's real CPU
//! time and the host's (`/proc/stat`), so clients compute the percent as
//! they do against dockerd.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State as AxState};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{container_error, truthy, ApiError, ApiResult, State};
use crate::runtime::Sample;

/// The host's total CPU time in nanoseconds (all CPUs), and the CPU count.
fn host_cpu() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let mut total = 0;
    let mut cpus = 0;
    for line in stat.lines() {
        if let Some(rest) = line.strip_prefix("cpu ") {
            // USER_HZ is 100 on Linux: one tick is 10 ms.
            total = rest
                .split_whitespace()
                .take(8)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>()
                * 10_000_000;
        } else if line.starts_with("cpu") {
            cpus += 1;
        }
    }
    (total, cpus.max(1))
}

/// One reading: the sample, the host's CPU time, when.
#[derive(Clone)]
struct Reading {
    sample: Sample,
    system: u64,
    cpus: u64,
    at: chrono::DateTime<chrono::Utc>,
}

fn cpu_json(r: Option<&Reading>) -> Value {
    match r {
        Some(r) => json!({
            "cpu_usage": { "total_usage": r.sample.cpu_total_ns, "usage_in_kernelmode": 0, "usage_in_usermode": 0 },
            "system_cpu_usage": r.system,
            "online_cpus": r.cpus,
            "throttling_data": { "periods": 0, "throttled_periods": 0, "throttled_time": 0 },
        }),
        None => json!({ "cpu_usage": { "total_usage": 0 }, "throttling_data": {} }),
    }
}

fn stats_json(id: &str, name: &str, now: &Reading, before: Option<&Reading>) -> Value {
    let s = &now.sample;
    let time = |r: Option<&Reading>| {
        r.map_or("0001-01-01T00:00:00Z".to_string(), |r| {
            r.at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        })
    };
    json!({
        "id": id,
        "name": format!("/{name}"),
        "read": time(Some(now)),
        "preread": time(before),
        "pids_stats": { "current": s.pids },
        "blkio_stats": { "io_service_bytes_recursive": [
            { "major": 0, "minor": 0, "op": "read", "value": s.block_read },
            { "major": 0, "minor": 0, "op": "write", "value": s.block_write },
        ]},
        "cpu_stats": cpu_json(Some(now)),
        "precpu_stats": cpu_json(before),
        "memory_stats": { "usage": s.memory_usage, "limit": s.memory_limit, "stats": {} },
        "networks": {},
    })
}

/// `GET /containers/{id}/stats`.
pub async fn stats(
    AxState(api): State,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let r = super::containers::record(&api, &id)?;
    let stream = q.get("stream").is_none_or(|v| truthy(Some(v)));
    let one_shot = truthy(q.get("one-shot"));
    if one_shot && stream {
        return Err(ApiError::bad("one-shot needs stream=false"));
    }
    let containers = api.agent.containers.clone();
    let read = move |id: &str| -> crate::error::Result<Reading> {
        let sample = containers.sample(id)?;
        let (system, cpus) = host_cpu();
        Ok(Reading {
            sample,
            system,
            cpus,
            at: chrono::Utc::now(),
        })
    };
    let first = read(&r.id).map_err(|e| container_error(e, &id))?;
    let (tx, rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    tokio::spawn(async move {
        let line = |v: Value| {
            let mut b = serde_json::to_vec(&v).unwrap_or_default();
            b.push(b'\n');
            bytes::Bytes::from(b)
        };
        if one_shot {
            let _ = tx
                .send(line(stats_json(&r.id, &r.name, &first, None)))
                .await;
            return;
        }
        let mut before = first;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let Ok(now) = read(&r.id) else { return };
            if tx
                .send(line(stats_json(&r.id, &r.name, &now, Some(&before))))
                .await
                .is_err()
                || !stream
            {
                return;
            }
            before = now;
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    Ok((
        [("Content-Type", "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}
