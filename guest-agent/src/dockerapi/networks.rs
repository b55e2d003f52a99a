//! Networks: list, create, inspect and remove, in Docker's shapes.

use std::collections::HashMap;

use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{json_response, ApiError, ApiResult, State};
use crate::error::{Error, What};
use crate::network::{NetworkRecord, NewNetwork};

/// Docker's sentence for a missing network.
fn network_error(e: Error, name: &str) -> ApiError {
    match e {
        Error::NotFound(What::Network, _) => ApiError::missing(format!("network {name} not found")),
        other => other.into(),
    }
}

/// A network as Docker shows it.
fn network_json(n: &NetworkRecord) -> Value {
    let prefix = n.subnet().map_or(0, |s| s.prefix_len());
    let config: Vec<Value> = if n.subnet.is_empty() {
        Vec::new()
    } else {
        vec![json!({ "Subnet": n.subnet, "Gateway": n.gateway })]
    };
    let containers: serde_json::Map<String, Value> = n
        .endpoints
        .values()
        .map(|e| {
            (
                e.container.clone(),
                json!({
                    "Name": e.name,
                    "EndpointID": "",
                    "MacAddress": e.mac,
                    "IPv4Address": format!("{}/{prefix}", e.ip),
                    "IPv6Address": "",
                }),
            )
        })
        .collect();
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv4": true,
        "EnableIPv6": false,
        "IPAM": { "Driver": "default", "Options": null, "Config": config },
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": containers,
        "Options": n.options,
        "Labels": n.labels,
    })
}

/// `GET /networks?filters=`.
pub async fn list(
    AxState(api): State,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let mut filters = super::parse_filters(q.get("filters"))?;
    super::only_filters(
        &filters,
        &["name", "id", "driver", "label", "type", "scope"],
    )?;
    let labels = super::take_filter(&mut filters, "label");
    let kinds = super::take_filter(&mut filters, "type");
    let scopes = super::take_filter(&mut filters, "scope");
    let out: Vec<Value> = api
        .agent
        .networks
        .list_filtered(&filters)
        .iter()
        .filter(|n| super::labels_match(&labels, |k| n.labels.get(k).cloned()))
        .filter(|n| {
            let kind = if n.builtin() { "builtin" } else { "custom" };
            kinds.is_empty() || kinds.iter().any(|k| k == kind)
        })
        .filter(|_| scopes.is_empty() || scopes.iter().any(|s| s == "local"))
        .map(network_json)
        .collect();
    Ok(axum::Json(out).into_response())
}

/// `GET /networks/{id}`.
pub async fn inspect(AxState(api): State, Path(id): Path<String>) -> ApiResult<Response> {
    let n = api
        .agent
        .networks
        .find(&id)
        .map_err(|e| network_error(e, &id))?;
    Ok(axum::Json(network_json(&n)).into_response())
}

fn string_map(v: &Value) -> std::collections::BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

/// `POST /networks/create`.
pub async fn create(AxState(api): State, body: axum::body::Bytes) -> ApiResult<Response> {
    let b: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("invalid JSON in the network request: {e}")))?;
    let name = b["Name"].as_str().unwrap_or_default().to_string();
    if name.is_empty() {
        return Err(ApiError::bad("a network needs a Name"));
    }
    // Attachable (compose sets it) only matters to swarm's overlay
    // networks: every Berth network takes standalone containers.
    for f in ["EnableIPv6", "Ingress", "ConfigOnly"] {
        if b[f].as_bool() == Some(true) {
            return Err(ApiError::bad(format!(
                "{f} is not supported by Berth's networks"
            )));
        }
    }
    let ipam = b["IPAM"]["Config"].as_array().cloned().unwrap_or_default();
    if ipam.len() > 1 {
        return Err(ApiError::bad(
            "Berth's networks take one IPAM.Config subnet",
        ));
    }
    let first = ipam.first();
    let field = |k: &str| {
        first
            .and_then(|c| c[k].as_str())
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    if field("IPRange").is_some() {
        return Err(ApiError::bad(
            "IPAM.Config.IPRange is not supported by Berth",
        ));
    }
    let rec = api.agent.networks.create(NewNetwork {
        name,
        driver: b["Driver"].as_str().unwrap_or_default().to_string(),
        internal: b["Internal"].as_bool().unwrap_or(false),
        subnet: field("Subnet"),
        gateway: field("Gateway"),
        labels: string_map(&b["Labels"]),
        options: string_map(&b["Options"]),
    })?;
    Ok(json_response(
        StatusCode::CREATED,
        json!({ "Id": rec.id, "Warning": "" }),
    ))
}

/// `DELETE /networks/{id}`.
pub async fn remove(AxState(api): State, Path(id): Path<String>) -> ApiResult<Response> {
    api.agent
        .networks
        .remove(&id)
        .map_err(|e| network_error(e, &id))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /networks/{id}/connect`: `{"Container", "EndpointConfig":
/// {"Aliases", "IPAMConfig": {"IPv4Address"}}}`.
pub async fn connect(
    AxState(api): State,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let b: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("invalid JSON in the connect request: {e}")))?;
    let container = b["Container"].as_str().unwrap_or_default().to_string();
    let ep = &b["EndpointConfig"];
    for f in ["Links", "MacAddress", "DriverOpts"] {
        if !ep[f].is_null() && ep[f] != json!([]) && ep[f] != json!("") && ep[f] != json!({}) {
            return Err(ApiError::bad(format!(
                "EndpointConfig.{f} is not supported by Berth"
            )));
        }
    }
    let aliases: Vec<String> = ep["Aliases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    let ip = ep["IPAMConfig"]["IPv4Address"].as_str().unwrap_or_default();
    api.agent
        .networks
        .find(&id)
        .map_err(|e| network_error(e, &id))?;
    api.agent
        .containers
        .connect(&container, &id, aliases, ip)
        .await
        .map_err(|e| super::container_error(e, &container))?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /networks/{id}/disconnect`: `{"Container", "Force"}`.
pub async fn disconnect(
    AxState(api): State,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let b: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("invalid JSON in the disconnect request: {e}")))?;
    let container = b["Container"].as_str().unwrap_or_default().to_string();
    api.agent
        .networks
        .find(&id)
        .map_err(|e| network_error(e, &id))?;
    api.agent
        .containers
        .disconnect(&container, &id)
        .await
        .map_err(|e| super::container_error(e, &container))?;
    Ok(StatusCode::OK.into_response())
}
