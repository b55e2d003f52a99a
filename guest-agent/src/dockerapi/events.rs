//! `GET /events?since=&until=&filters=`: the engine's event bus as
//! Docker's JSON lines.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Query, State as AxState};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::json;
use tokio_stream::wrappers::ReceiverStream;

use super::{parse_filters, ApiError, ApiResult, State};
use crate::events::Event;

/// A time as Docker's `since`/`until` carry it: seconds since the epoch,
/// with an optional fraction.
fn time_of(raw: Option<&String>) -> ApiResult<Option<SystemTime>> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    let secs: f64 = raw.parse().map_err(|_| {
        ApiError::bad(format!(
            "invalid time {raw:?}: give seconds since the epoch"
        ))
    })?;
    Ok(Some(UNIX_EPOCH + Duration::from_secs_f64(secs.max(0.0))))
}

/// One event as dockerd writes it.
pub fn event_json(ev: &Event) -> serde_json::Value {
    let nanos = ev
        .time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mut v = json!({
        "Type": ev.kind,
        "Action": ev.action,
        "Actor": { "ID": ev.id, "Attributes": ev.attributes },
        "scope": "local",
        "time": (nanos / 1_000_000_000) as u64,
        "timeNano": nanos as u64,
    });
    if ev.kind == "container" {
        v["status"] = json!(ev.action);
        v["id"] = json!(ev.id);
        if let Some(image) = ev.attributes.get("image") {
            v["from"] = json!(image);
        }
    }
    v
}

/// `GET /events`.
pub async fn events(
    AxState(api): State,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let filters = parse_filters(q.get("filters"))?;
    if let Some(k) = filters
        .keys()
        .find(|k| !["type", "event", "container"].contains(&k.as_str()))
    {
        return Err(ApiError::bad(format!(
            "the event filter {k:?} is not supported by Berth: use type, event or container"
        )));
    }
    let since = time_of(q.get("since"))?;
    let until = time_of(q.get("until"))?;
    let rx = api.agent.images.events.stream(filters, since, until);
    let body = ReceiverStream::new(rx).map(|ev| {
        let mut b = serde_json::to_vec(&event_json(&ev)).unwrap_or_default();
        b.push(b'\n');
        Ok::<_, std::io::Error>(bytes::Bytes::from(b))
    });
    Ok((
        [("Content-Type", "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}
