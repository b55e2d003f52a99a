//! `POST /containers/prune`, `/images/prune`, `/volumes/prune` and
//! `/networks/prune`: the engine's prunes, in Docker's answers. Filters
//! other than the ones named here are refused, not ignored.

use std::collections::HashMap;

use axum::extract::{Query, State as AxState};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{parse_filters, ApiError, ApiResult, State};
use crate::image::manage::Removed;

type Params = Query<HashMap<String, String>>;

/// The filters of a prune, refusing every key but `allowed`.
fn filters(
    q: &HashMap<String, String>,
    allowed: &[&str],
) -> ApiResult<HashMap<String, Vec<String>>> {
    let f = parse_filters(q.get("filters"))?;
    if let Some(k) = f.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::bad(format!(
            "the prune filter {k:?} is not supported by Berth"
        )));
    }
    Ok(f)
}

/// `POST /containers/prune`: every stopped container.
pub async fn containers(AxState(api): State, Query(q): Params) -> ApiResult<Response> {
    filters(&q, &[])?;
    let (deleted, reclaimed) = api.agent.containers.prune().await;
    Ok(
        axum::Json(json!({ "ContainersDeleted": deleted, "SpaceReclaimed": reclaimed }))
            .into_response(),
    )
}

/// `POST /images/prune`: dangling images, or (`dangling=false`) every
/// image no container uses.
pub async fn images(AxState(api): State, Query(q): Params) -> ApiResult<Response> {
    let f = filters(&q, &["dangling"])?;
    let all = f
        .get("dangling")
        .is_some_and(|v| v.iter().any(|d| d == "false" || d == "0"));
    let (items, reclaimed) = api.agent.images.prune(all).await?;
    let deleted: Vec<_> = items
        .into_iter()
        .map(|r| match r {
            Removed::Untagged(v) => json!({ "Untagged": v }),
            Removed::Deleted(v) => json!({ "Deleted": v }),
        })
        .collect();
    Ok(
        axum::Json(json!({ "ImagesDeleted": deleted, "SpaceReclaimed": reclaimed }))
            .into_response(),
    )
}

/// `POST /volumes/prune`: anonymous unused volumes, or (`all=true`) every
/// unused one.
pub async fn volumes(AxState(api): State, Query(q): Params) -> ApiResult<Response> {
    let f = filters(&q, &["all"])?;
    let all = f
        .get("all")
        .is_some_and(|v| v.iter().any(|d| d == "true" || d == "1"));
    let in_use = api.agent.containers.volumes_in_use();
    let (deleted, reclaimed) = api.agent.volumes.prune(all, &in_use);
    Ok(
        axum::Json(json!({ "VolumesDeleted": deleted, "SpaceReclaimed": reclaimed }))
            .into_response(),
    )
}

/// `POST /networks/prune`: user networks no container uses.
pub async fn networks(AxState(api): State, Query(q): Params) -> ApiResult<Response> {
    filters(&q, &[])?;
    let in_use = api.agent.containers.networks_in_use();
    let deleted = api.agent.networks.prune(&in_use);
    Ok(axum::Json(json!({ "NetworksDeleted": deleted })).into_response())
}
