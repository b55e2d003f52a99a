//! `GET /images/search?term=&limit=&filters=`: the registry's search API
//! (Docker Hub's index unless the term names a registry), filtered by
//! `stars`, `is-official` and `is-automated` as dockerd filters. A registry
//! that cannot be reached, or has no search API, answers 503 with a
//! sentence saying which.

use std::collections::HashMap;

use axum::extract::{Query, State as AxState};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{only_filters, parse_filters, ApiError, ApiResult, State};
use crate::image::registry;

/// `GET /images/search`.
pub async fn search(
    AxState(api): State,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let term = q.get("term").cloned().unwrap_or_default();
    if term.is_empty() {
        return Err(ApiError::bad("a search needs a term"));
    }
    let limit = match q.get("limit").map(|l| l.parse::<u32>()) {
        None => 25,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => return Err(ApiError::bad("limit must be between 1 and 100")),
    };
    let filters = parse_filters(q.get("filters"))?;
    only_filters(&filters, &["stars", "is-official", "is-automated"])?;
    let mut stars = 0;
    for s in filters.get("stars").into_iter().flatten() {
        stars = s
            .parse::<u64>()
            .map_err(|_| ApiError::bad(format!("invalid filter 'stars={s}'")))?;
    }
    let flag = |k: &str| -> ApiResult<Option<bool>> {
        match filters.get(k).and_then(|v| v.last()) {
            None => Ok(None),
            Some(v) => v
                .parse::<bool>()
                .map(Some)
                .map_err(|_| ApiError::bad(format!("invalid filter '{k}={v}'"))),
        }
    };
    let (official, automated) = (flag("is-official")?, flag("is-automated")?);
    let found = registry::search(&api.agent.images.registries, &term, limit).await?;
    let out: Vec<_> = found
        .into_iter()
        .filter(|r| r.star_count >= stars)
        .filter(|r| official.is_none_or(|o| r.is_official == o))
        .filter(|r| automated.is_none_or(|a| r.is_automated == a))
        .map(|r| {
            json!({
                "name": r.name,
                "description": r.description,
                "star_count": r.star_count,
                "is_official": r.is_official,
                "is_automated": r.is_automated,
            })
        })
        .collect();
    Ok(axum::Json(out).into_response())
}
