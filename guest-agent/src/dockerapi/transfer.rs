//! Moving images in and out: `POST /images/{name}/push` (JSON progress
//! as dockerd's), `GET /images/get?names=` and `GET /images/{name}/get`
//! (an archive, as `docker save`), `POST /images/load` (as `docker
//! load`).

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Query, Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::images::{credentials, progress_json, stream_error};
use super::{image_error, ApiError, ApiResult, State};
use crate::image::Progress;

fn line(v: &serde_json::Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    b.into()
}

fn json_stream(rx: mpsc::UnboundedReceiver<Bytes>) -> Response {
    let body = UnboundedReceiverStream::new(rx).map(Ok::<_, std::io::Error>);
    (
        [("Content-Type", "application/json")],
        Body::from_stream(body),
    )
        .into_response()
}

/// `POST /images/{name}/push?tag=`, streamed.
pub async fn push(
    api: &super::DockerApi,
    name: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let reference = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{name}:{t}"),
        None => name.to_string(),
    };
    api.agent
        .images
        .find(&reference)
        .map_err(|e| image_error(e, &reference))?;
    let creds = credentials(headers);
    let images = api.agent.images.clone();
    let (ptx, mut prx) = mpsc::unbounded_channel::<Progress>();
    let (out, rx) = mpsc::unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        let work = images.push(&reference, &creds, &ptx);
        tokio::pin!(work);
        let result = loop {
            tokio::select! {
                Some(p) = prx.recv() => { let _ = out.send(line(&progress_json(&p))); }
                r = &mut work => break r,
            }
        };
        while let Ok(p) = prx.try_recv() {
            let _ = out.send(line(&progress_json(&p)));
        }
        let _ = match result {
            Ok(o) => {
                let tag = o.reference.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
                let _ = out.send(line(&json!({
                    "status": format!("{tag}: digest: {} size: {}", o.digest, o.size)
                })));
                out.send(line(&json!({
                    "progressDetail": {},
                    "aux": { "Tag": tag, "Digest": o.digest, "Size": o.size },
                })))
            }
            Err(e) => out.send(stream_error(&e.to_string())),
        };
    });
    Ok(json_stream(rx))
}

/// `GET /images/get?names=…` (repeatable) or `GET /images/{name}/get`: a
/// `docker save` archive.
pub async fn save(api: &super::DockerApi, names: Vec<String>) -> ApiResult<Response> {
    if names.is_empty() {
        return Err(ApiError::bad("name at least one image to save"));
    }
    let images = api.agent.images.clone();
    let plan = images.plan_save(&names)?;
    let rx = crate::util::chunks::written_blocking(move |w| images.write_archive(&plan, w));
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|c| {
            let item = c
                .map(Bytes::from)
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

/// `GET /images/get?names=`.
pub async fn get_many(
    AxState(api): State,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let names = pairs
        .into_iter()
        .filter(|(k, v)| k == "names" && !v.is_empty())
        .map(|(_, v)| v)
        .collect();
    save(&api, names).await
}

/// `POST /images/load`: an archive in the body. `quiet` only hides
/// progress bars, which this load has none of: the names loaded are
/// always told, as dockerd tells them.
pub async fn load(AxState(api): State, req: Request) -> ApiResult<Response> {
    let images = api.agent.images.clone();
    let spool = images.spool_file()?;
    let failed =
        |e: std::io::Error| ApiError::from(crate::error::Error::io("spooling the archive", e));
    let mut file = tokio::fs::File::from_std(spool.reopen().map_err(failed)?);
    let mut body = req.into_body().into_data_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad(format!("reading the archive: {e}")))?;
        file.write_all(&chunk).await.map_err(failed)?;
    }
    file.flush().await.map_err(failed)?;
    let (ptx, _prx) = mpsc::unbounded_channel::<Progress>();
    let (out, rx) = mpsc::unbounded_channel::<Bytes>();
    tokio::spawn(async move {
        match images.load(spool, &ptx).await {
            Ok(loaded) => {
                for name in loaded {
                    let text = if name.starts_with("sha256:") {
                        format!("Loaded image ID: {name}\n")
                    } else {
                        format!("Loaded image: {name}\n")
                    };
                    let _ = out.send(line(&json!({ "stream": text })));
                }
            }
            Err(e) => {
                let _ = out.send(stream_error(&e.to_string()));
            }
        }
    });
    Ok(json_stream(rx))
}
