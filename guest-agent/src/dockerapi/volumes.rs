//! Volumes: list, create, inspect and remove, in Docker's shapes.

use std::collections::HashMap;

use axum::extract::{Path, Query, State as AxState};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{json_response, truthy, ApiError, ApiResult, DockerApi, State};
use crate::error::{Error, What};
use crate::volume::VolumeRecord;

/// Docker's sentence for a missing volume.
fn volume_error(e: Error, name: &str) -> ApiError {
    match e {
        Error::NotFound(What::Volume, _) => {
            ApiError::missing(format!("get {name}: no such volume"))
        }
        other => other.into(),
    }
}

/// A volume as Docker shows it.
fn volume_json(api: &DockerApi, v: &VolumeRecord) -> Value {
    json!({
        "Name": v.name,
        "Driver": v.driver,
        "Mountpoint": api.agent.volumes.data_path(&v.name).display().to_string(),
        "CreatedAt": v.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "Labels": v.labels,
        "Options": v.options,
        "Scope": "local",
    })
}

/// `GET /volumes?filters=`.
pub async fn list(
    AxState(api): State,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let mut filters = super::parse_filters(q.get("filters"))?;
    super::only_filters(&filters, &["name", "dangling", "driver", "label"])?;
    let labels = super::take_filter(&mut filters, "label");
    let drivers = super::take_filter(&mut filters, "driver");
    let in_use = api.agent.containers.volumes_in_use();
    let volumes: Vec<Value> = api
        .agent
        .volumes
        .list_filtered(&filters, &in_use)
        .iter()
        .filter(|v| super::labels_match(&labels, |k| v.labels.get(k).cloned()))
        .filter(|v| drivers.is_empty() || drivers.contains(&v.driver))
        .map(|v| volume_json(&api, v))
        .collect();
    Ok(axum::Json(json!({ "Volumes": volumes, "Warnings": [] })).into_response())
}

/// `GET /volumes/{name}`.
pub async fn inspect(AxState(api): State, Path(name): Path<String>) -> ApiResult<Response> {
    let v = api
        .agent
        .volumes
        .find(&name)
        .map_err(|e| volume_error(e, &name))?;
    Ok(axum::Json(volume_json(&api, &v)).into_response())
}

fn string_map(v: &Value) -> std::collections::BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

/// `POST /volumes/create`.
pub async fn create(AxState(api): State, body: axum::body::Bytes) -> ApiResult<Response> {
    let b: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad(format!("invalid JSON in the volume request: {e}")))?
    };
    if !b["ClusterVolumeSpec"].is_null() {
        return Err(ApiError::bad("ClusterVolumeSpec is not supported by Berth"));
    }
    let v = api.agent.volumes.create(
        b["Name"].as_str().unwrap_or_default(),
        b["Driver"].as_str().unwrap_or_default(),
        string_map(&b["Labels"]),
        string_map(&b["DriverOpts"]),
    )?;
    Ok(json_response(StatusCode::CREATED, volume_json(&api, &v)))
}

/// `DELETE /volumes/{name}?force=`.
pub async fn remove(
    AxState(api): State,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let in_use = api.agent.containers.volumes_in_use();
    match api.agent.volumes.remove(&name, &in_use) {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(Error::NotFound(..)) if truthy(q.get("force")) => {
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(e) => Err(volume_error(e, &name)),
    }
}
