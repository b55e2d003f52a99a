//! Containers: list, inspect, start, stop, restart, kill, wait, logs,
//! resize and remove.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::SecondsFormat;
use futures::StreamExt;
use serde_json::json;
use tokio_stream::wrappers::ReceiverStream;

use super::{container_error, truthy, ApiError, ApiResult, State};
use crate::network::NetworkRecord;
use crate::runtime::{LogOptions, Record};

type Params = Query<HashMap<String, String>>;

/// The container's record, or Docker's "No such container".
pub fn record(api: &super::DockerApi, id: &str) -> ApiResult<Record> {
    api.agent
        .containers
        .find(id)
        .map(|e| e.record())
        .map_err(|e| container_error(e, id))
}

/// `GET /containers/json?all=&limit=&filters=`.
pub async fn list(AxState(api): State, Query(q): Params) -> ApiResult<Response> {
    let mut filters = super::parse_filters(q.get("filters"))?;
    let labels = super::take_filter(&mut filters, "label");
    let mut list = api.agent.containers.list(truthy(q.get("all")), &filters)?;
    list.retain(|s| super::labels_match(&labels, |k| s.record.config.labels.get(k).cloned()));
    if let Some(n) = q.get("limit").and_then(|l| l.parse::<usize>().ok()) {
        if n > 0 {
            list.truncate(n);
        }
    }
    let nets = api.agent.networks.list();
    let out: Vec<_> = list
        .into_iter()
        .map(|s| {
            let r = s.record;
            let command: Vec<String> = std::iter::once(r.path.clone())
                .chain(r.args.clone())
                .collect();
            let ports: Vec<_> = r
                .state
                .ports
                .iter()
                .map(|p| {
                    json!({
                        "IP": if p.host_ip.is_empty() { "0.0.0.0" } else { p.host_ip.as_str() },
                        "PrivatePort": p.container_port,
                        "PublicPort": p.host_port,
                        "Type": p.protocol,
                    })
                })
                .collect();
            let network = if r.config.network.is_empty() {
                "bridge".to_string()
            } else {
                r.config.network.clone()
            };
            json!({
                "Id": r.id,
                "Names": [format!("/{}", r.name)],
                "Image": r.image,
                "ImageID": r.image_id,
                "Command": command.join(" "),
                "Created": r.created.timestamp(),
                "Ports": ports,
                "Labels": r.config.labels,
                "State": r.state.status,
                "Status": s.status,
                "HostConfig": { "NetworkMode": network },
                "NetworkSettings": { "Networks": list_networks(&r, &nets) },
                "Mounts": [],
            })
        })
        .collect();
    Ok(axum::Json(out).into_response())
}

/// A container's networks as `GET /containers/json` shows them (clients
/// such as testcontainers read the gateway and address from there).
fn list_networks(r: &Record, nets: &[NetworkRecord]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for j in &r.networks {
        let Some(net) = nets.iter().find(|n| n.id == j.network) else {
            continue;
        };
        let ep = net.endpoints.get(&r.id);
        let prefix = net.subnet().map_or(0, |s| s.prefix_len());
        out.insert(
            net.name.clone(),
            json!({
                "IPAMConfig": null,
                "Links": null,
                "Aliases": null,
                "MacAddress": ep.map(|e| e.mac.clone()).unwrap_or_default(),
                "DriverOpts": null,
                "NetworkID": net.id,
                "EndpointID": ep.map(|e| e.veth.clone()).unwrap_or_default(),
                "Gateway": if ep.is_some() { net.gateway.clone() } else { String::new() },
                "IPAddress": ep.map(|e| e.ip.to_string()).unwrap_or_default(),
                "IPPrefixLen": if ep.is_some() { prefix } else { 0 },
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "DNSNames": null,
            }),
        );
    }
    if r.networks.is_empty() {
        let mode = if r.config.network.is_empty() {
            "none"
        } else {
            r.config.network.as_str()
        };
        if let Some(net) = nets.iter().find(|n| n.name == mode || n.id == mode) {
            out.insert(
                net.name.clone(),
                json!({ "NetworkID": net.id, "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": "" }),
            );
        }
    }
    out.into()
}

/// `GET /containers/{id}/json`: the engine's Docker-shaped inspect. The
/// container's short id is one of its aliases on each user network (as
/// dockerd answered before API 1.44; later ones list it in `DNSNames`
/// only, which Berth's DNS answers too): compose 1.29 disconnects and
/// reconnects a created container whose aliases lack it.
pub async fn inspect(AxState(api): State, Path(id): Path<String>) -> ApiResult<Response> {
    let r = record(&api, &id)?;
    let mut v = api.agent.containers.inspect_json(&r);
    let short = &r.id[..12.min(r.id.len())];
    let nets = v["NetworkSettings"]["Networks"].as_object_mut();
    for (name, ep) in nets.into_iter().flatten() {
        if ["bridge", "host", "none"].contains(&name.as_str()) {
            continue;
        }
        if let Some(aliases) = ep["Aliases"].as_array_mut() {
            if !aliases.iter().any(|a| a == short) {
                aliases.push(json!(short));
            }
        }
    }
    Ok(axum::Json(v).into_response())
}

/// `POST /containers/{id}/start`: starts it, handing the output to an
/// attach that waits for this start.
pub async fn start(AxState(api): State, Path(id): Path<String>) -> ApiResult<Response> {
    let r = record(&api, &id)?;
    if r.state.is_running() {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    super::attach::start_with_waiting_attaches(&api, &r.id)
        .await
        .map_err(|e| container_error(e, &id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn timeout(q: &HashMap<String, String>) -> Option<i32> {
    q.get("t")
        .or_else(|| q.get("timeout"))
        .and_then(|t| t.parse::<i32>().ok())
        .filter(|t| *t >= 0)
}

/// `POST /containers/{id}/stop?t=&signal=`.
pub async fn stop(
    AxState(api): State,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    let r = record(&api, &id)?;
    if !r.state.is_running() && r.state.status != "restarting" {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let signal = q.get("signal").cloned().unwrap_or_default();
    api.agent
        .containers
        .stop(&r.id, timeout(&q), Some(&signal))
        .await
        .map_err(|e| container_error(e, &id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /containers/{id}/restart?t=`.
pub async fn restart(
    AxState(api): State,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    let r = record(&api, &id)?;
    api.agent
        .containers
        .restart(&r.id, timeout(&q))
        .await
        .map_err(|e| container_error(e, &id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /containers/{id}/kill?signal=`.
pub async fn kill(
    AxState(api): State,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    let r = record(&api, &id)?;
    if !r.state.is_running() {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            message: format!(
                "cannot kill container: {id}: container {} is not running",
                r.id
            ),
        });
    }
    let signal = q
        .get("signal")
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| "SIGKILL".into());
    api.agent
        .containers
        .kill(&r.id, &signal)
        .await
        .map_err(|e| container_error(e, &id))?;
    // As dockerd: a SIGKILL answers once the container is down.
    if ["KILL", "SIGKILL", "9"].contains(&signal.to_ascii_uppercase().as_str()) {
        let down = api.agent.containers.wait(&r.id, "not-running");
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), down).await;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /containers/{id}/wait?condition=`: the headers go at once (the
/// client starts the container after them), the exit code when it comes.
pub async fn wait(
    AxState(api): State,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    let r = record(&api, &id)?;
    let condition = q
        .get("condition")
        .filter(|c| !c.is_empty())
        .cloned()
        .unwrap_or_else(|| "not-running".into());
    if !["not-running", "next-exit", "removed"].contains(&condition.as_str()) {
        return Err(ApiError::bad(format!(
            "invalid condition {condition:?}: use not-running, next-exit or removed"
        )));
    }
    let containers = api.agent.containers.clone();
    let mut waiting = Box::pin(async move { containers.wait(&r.id, &condition).await });
    // Poll once here, so the engine watches for the exit before the client
    // hears the headers and starts the container.
    let first = futures::poll!(waiting.as_mut());
    let body = futures::stream::once(async move {
        let result = match first {
            std::task::Poll::Ready(r) => r,
            std::task::Poll::Pending => waiting.await,
        };
        let v = match result {
            Ok(code) => json!({ "StatusCode": code, "Error": null }),
            Err(e) => json!({ "StatusCode": -1, "Error": { "Message": e.to_string() } }),
        };
        let mut b = serde_json::to_vec(&v).unwrap_or_default();
        b.push(b'\n');
        Ok::<_, std::io::Error>(bytes::Bytes::from(b))
    });
    Ok((
        [("Content-Type", "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

/// An 8-byte multiplexed frame: stream, three zero bytes, length.
pub fn frame(stream: u8, data: &[u8]) -> bytes::Bytes {
    let mut b = Vec::with_capacity(8 + data.len());
    b.push(stream);
    b.extend_from_slice(&[0, 0, 0]);
    b.extend_from_slice(&(data.len() as u32).to_be_bytes());
    b.extend_from_slice(data);
    b.into()
}

/// `GET /containers/{id}/logs`: multiplexed frames, raw for a TTY.
pub async fn logs(
    AxState(api): State,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    let r = record(&api, &id)?;
    let stdout = truthy(q.get("stdout"));
    let stderr = truthy(q.get("stderr"));
    if !stdout && !stderr {
        return Err(ApiError::bad(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let seconds = |k: &str| {
        q.get(k)
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .and_then(|s| {
                chrono::DateTime::from_timestamp(s.trunc() as i64, (s.fract() * 1e9) as u32)
            })
    };
    let opts = LogOptions {
        follow: truthy(q.get("follow")),
        tail: q.get("tail").and_then(|t| t.parse::<usize>().ok()),
        since: seconds("since"),
        until: seconds("until"),
        stdout,
        stderr,
    };
    let timestamps = truthy(q.get("timestamps"));
    let tty = r.config.tty;
    let lines = api
        .agent
        .containers
        .logs(&r.id, opts)
        .map_err(|e| container_error(e, &id))?;
    let body = ReceiverStream::new(lines).map(move |l| {
        let mut text = Vec::new();
        if timestamps {
            text.extend_from_slice(
                l.time
                    .to_rfc3339_opts(SecondsFormat::Nanos, true)
                    .as_bytes(),
            );
            text.push(b' ');
        }
        text.extend_from_slice(l.log.as_bytes());
        let stream = if l.stream == "stderr" { 2 } else { 1 };
        Ok::<_, std::io::Error>(if tty {
            text.into()
        } else {
            frame(stream, &text)
        })
    });
    let kind = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Ok(([("Content-Type", kind)], Body::from_stream(body)).into_response())
}

/// `POST /containers/{id}/resize?h=&w=`.
pub async fn resize(
    AxState(api): State,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    let r = record(&api, &id)?;
    let (rows, cols) = super::attach::size_of(&q)?;
    super::attach::resize(&api, &r.id, rows, cols).await;
    Ok(StatusCode::OK.into_response())
}

/// `DELETE /containers/{id}?force=&v=`.
pub async fn remove(
    AxState(api): State,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    let r = record(&api, &id)?;
    let force = truthy(q.get("force"));
    if r.state.is_running() && !force {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            message: format!(
                "cannot remove container \"/{}\": container is running: stop the container before removing or force remove",
                r.name
            ),
        });
    }
    api.agent
        .containers
        .remove(&r.id, force, truthy(q.get("v")))
        .await
        .map_err(|e| container_error(e, &id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /containers/{id}/rename?name=`.
pub async fn rename(
    AxState(api): State,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    let r = record(&api, &id)?;
    let name = q.get("name").cloned().unwrap_or_default();
    api.agent
        .containers
        .rename(&r.id, &name)
        .map_err(|e| container_error(e, &id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /containers/{id}/pause` and `/unpause`.
pub async fn pause(
    AxState(api): State,
    Path(id): Path<String>,
    req: axum::extract::Request,
) -> ApiResult<Response> {
    let r = record(&api, &id)?;
    let paused = !req.uri().path().ends_with("/unpause");
    api.agent
        .containers
        .pause(&r.id, paused)
        .await
        .map_err(|e| container_error(e, &id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /containers/{id}/top?ps_args=`.
pub async fn top(
    AxState(api): State,
    Path(id): Path<String>,
    Query(q): Params,
) -> ApiResult<Response> {
    let r = record(&api, &id)?;
    let args: Vec<String> = q
        .get("ps_args")
        .map(|a| a.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let t = api
        .agent
        .containers
        .top(&r.id, &args)
        .await
        .map_err(|e| container_error(e, &id))?;
    Ok(axum::Json(json!({ "Titles": t.titles, "Processes": t.rows })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_stream_and_a_big_endian_length() {
        assert_eq!(&frame(2, b"hi")[..], &[2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
    }
}
