//! What a container changed: `GET /containers/{id}/changes`, `GET
//! /containers/{id}/export` (its filesystem as a tar) and `POST /commit`
//! (a new image from it); and `POST /auth` (`docker login`), which checks
//! credentials against the registry and keeps nothing.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::{container_error, json_response, truthy, ApiError, ApiResult, State};
use crate::image::registry::Credentials;

/// `GET /containers/{id}/changes`: kind 0 changed, 1 added, 2 deleted.
pub async fn changes(AxState(api): State, Path(id): Path<String>) -> ApiResult<Response> {
    let list = api
        .agent
        .containers
        .changes(&id)
        .map_err(|e| container_error(e, &id))?;
    let out: Vec<Value> = list
        .into_iter()
        .map(|c| {
            let kind = match c.kind.to_string().as_str() {
                "A" => 1,
                "D" => 2,
                _ => 0,
            };
            json!({ "Path": c.path, "Kind": kind })
        })
        .collect();
    Ok(axum::Json(out).into_response())
}

/// `GET /containers/{id}/export`.
pub async fn export(AxState(api): State, Path(id): Path<String>) -> ApiResult<Response> {
    let r = super::containers::record(&api, &id)?;
    let containers = api.agent.containers.clone();
    let rx =
        crate::util::chunks::written(move |w| async move { containers.export(&r.id, w).await });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|c| {
            let item = c
                .map(bytes::Bytes::from)
                .map_err(|e| std::io::Error::other(e.to_string()));
            (item, rx)
        })
    });
    let mut resp = Body::from_stream(body).into_response();
    resp.headers_mut().insert(
        "Content-Type",
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(resp)
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`.
pub async fn commit(
    AxState(api): State,
    Query(pairs): Query<Vec<(String, String)>>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let q: HashMap<String, String> = pairs.iter().cloned().collect();
    let id = q.get("container").cloned().unwrap_or_default();
    let r = super::containers::record(&api, &id)?;
    if !body.is_empty() && body.as_ref() != b"null" && body.as_ref() != b"{}" {
        let cfg: Value = serde_json::from_slice(&body).unwrap_or_default();
        if cfg
            .as_object()
            .is_some_and(|m| m.values().any(|v| !v.is_null()))
        {
            return Err(ApiError::bad(
                "a commit's config body is not supported by Berth: give the changes as `changes` (Dockerfile instructions)",
            ));
        }
    }
    let repo = q.get("repo").cloned().unwrap_or_default();
    let reference = match (repo.is_empty(), q.get("tag").filter(|t| !t.is_empty())) {
        (true, _) => String::new(),
        (false, Some(t)) => format!("{repo}:{t}"),
        (false, None) => repo,
    };
    let changes: Vec<String> = pairs
        .iter()
        .filter(|(k, v)| k == "changes" && !v.is_empty())
        .flat_map(|(_, v)| v.lines().map(String::from).collect::<Vec<_>>())
        .collect();
    let pause = q.get("pause").is_none_or(|p| truthy(Some(p)));
    let image_id = api
        .agent
        .containers
        .commit(
            &r.id,
            &reference,
            q.get("author").map(String::as_str).unwrap_or(""),
            q.get("comment").map(String::as_str).unwrap_or(""),
            &changes,
            pause,
        )
        .await
        .map_err(|e| container_error(e, &id))?;
    Ok(json_response(
        StatusCode::CREATED,
        json!({ "Id": image_id }),
    ))
}

/// `POST /auth`: `{"username", "password", "serveraddress", …}`.
pub async fn auth(AxState(api): State, body: axum::body::Bytes) -> ApiResult<Response> {
    let b: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("invalid JSON in the login request: {e}")))?;
    let s = |k: &str| b[k].as_str().unwrap_or_default().to_string();
    let creds = Credentials {
        username: s("username"),
        password: s("password"),
        token: if s("registrytoken").is_empty() {
            s("identitytoken")
        } else {
            s("registrytoken")
        },
    };
    let server = s("serveraddress");
    crate::image::registry::check_login(&api.agent.images.registries, &server, &creds).await?;
    Ok(axum::Json(json!({ "Status": "Login Succeeded", "IdentityToken": "" })).into_response())
}
