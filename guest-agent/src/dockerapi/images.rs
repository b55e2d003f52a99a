//! Images: list, pull and import (`POST /images/create`, with dockerd's
//! JSON progress stream), inspect, history, tag and remove.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Query, Request, State as AxState};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::{image_error, truthy, ApiError, ApiResult, State};
use crate::image::manage::{ImageEntry, Removed};
use crate::image::reference::familiar;
use crate::image::registry::Credentials;
use crate::image::Progress;

type Params = Query<HashMap<String, String>>;

/// Seconds since the epoch of an RFC 3339 time, or 0.
fn unix_seconds(rfc3339: Option<&str>) -> i64 {
    rfc3339
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(0, |t| t.timestamp())
}

/// `GET /images/json`.
pub async fn list(AxState(api): State, Query(q): Params) -> ApiResult<Response> {
    let filters = super::parse_filters(q.get("filters"))?;
    let images = &api.agent.images;
    let mut out = Vec::new();
    for entry in images.list_filtered(&filters)? {
        let (config, _) = images.config_of(&entry)?;
        let labels = config.config.and_then(|c| c.labels).unwrap_or_default();
        out.push(json!({
            "Id": entry.record.id,
            "ParentId": "",
            "RepoTags": entry.tags.iter().map(|t| familiar(t)).collect::<Vec<_>>(),
            "RepoDigests": entry.record.repo_digests.iter().map(|d| familiar(d)).collect::<Vec<_>>(),
            "Created": unix_seconds(config.created.as_deref()),
            "Size": entry.record.size,
            "SharedSize": -1,
            "VirtualSize": entry.record.size,
            "Labels": labels,
            "Containers": images.user_count(&entry.record.id),
        }));
    }
    Ok(axum::Json(out).into_response())
}

/// Credentials from the `X-Registry-Auth` header (base64url JSON).
pub(super) fn credentials(headers: &HeaderMap) -> Credentials {
    let Some(raw) = headers.get("X-Registry-Auth").and_then(|v| v.to_str().ok()) else {
        return Credentials::default();
    };
    let raw = raw.trim().trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(raw))
        .unwrap_or_default();
    let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    let token = if s("registrytoken").is_empty() {
        s("identitytoken")
    } else {
        s("registrytoken")
    };
    Credentials {
        username: s("username"),
        password: s("password"),
        token,
    }
}

/// One progress message as dockerd writes it.
pub(super) fn progress_json(p: &Progress) -> Value {
    let mut m = json!({ "status": p.status });
    if !p.id.is_empty() {
        m["id"] = json!(p.id);
    }
    if p.total > 0 && p.status == "Downloading" {
        m["progressDetail"] = json!({ "current": p.current, "total": p.total });
    } else {
        m["progressDetail"] = json!({});
    }
    m
}

/// A line of a JSON stream.
fn line(v: &Value) -> bytes::Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    b.into()
}

/// An error at the end of a JSON stream, as dockerd sends it.
pub fn stream_error(message: &str) -> bytes::Bytes {
    line(&json!({ "errorDetail": { "message": message }, "error": message }))
}

/// `POST /images/create?fromImage=&tag=`: a pull, streamed; with
/// `fromSrc=-`, an import of the tar in the body ([`import`]).
pub async fn create(
    AxState(api): State,
    Query(pairs): Query<Vec<(String, String)>>,
    req: Request,
) -> ApiResult<Response> {
    let q: HashMap<String, String> = pairs.iter().cloned().collect();
    match q.get("fromSrc").map(String::as_str) {
        None | Some("") => {}
        Some("-") => return import(&api, &pairs, req).await,
        Some(url) => {
            return Err(ApiError::bad(format!(
                "fromSrc={url:?}: Berth imports only the tar sent in the request (fromSrc=-), not from a URL: download it and `docker import FILE`"
            )))
        }
    }
    let headers = req.headers();
    let Some(from) = q.get("fromImage").filter(|s| !s.is_empty()) else {
        return Err(ApiError::bad("fromImage is required"));
    };
    let tag = q.get("tag").map(String::as_str).unwrap_or("");
    let reference = if tag.is_empty() || from.contains('@') {
        from.clone()
    } else if tag.contains(':') {
        format!("{from}@{tag}")
    } else {
        format!("{from}:{tag}")
    };
    crate::image::reference::ImageRef::parse(&reference).map_err(ApiError::from)?;
    let platform = q.get("platform").cloned().unwrap_or_default();
    let creds = credentials(headers);
    let images = api.agent.images.clone();
    let (ptx, prx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    let (dtx, drx) = tokio::sync::mpsc::unbounded_channel::<bytes::Bytes>();
    tokio::spawn(async move {
        let platform = Some(platform.as_str());
        if let Err(e) = images.pull(&reference, platform, &creds, &ptx).await {
            let _ = dtx.send(stream_error(&e.to_string()));
        }
    });
    let progress = UnboundedReceiverStream::new(prx).map(|p| line(&progress_json(&p)));
    let body = progress
        .chain(UnboundedReceiverStream::new(drx))
        .map(Ok::<_, std::io::Error>);
    Ok((
        [("Content-Type", "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

/// The reference an import is named by: `repo` (which may carry a tag,
/// as the docker CLI sends it) and `tag`, or "" for none.
fn import_reference(repo: &str, tag: &str) -> String {
    match (repo.is_empty(), tag.is_empty()) {
        (true, _) => String::new(),
        (false, true) => repo.to_string(),
        (false, false) => format!("{repo}:{tag}"),
    }
}

/// Refuses an import `platform` other than the host's: the engine's
/// import makes images for the host's platform only.
fn import_platform(platform: &str) -> ApiResult<()> {
    if platform.is_empty() {
        return Ok(());
    }
    let host = crate::image::manifest::Platform::host();
    let wanted = if platform.contains('/') {
        crate::image::manifest::Platform::parse(platform)?
    } else {
        crate::image::manifest::Platform {
            os: platform.to_string(),
            architecture: host.architecture.clone(),
            variant: None,
        }
    };
    if wanted.os == host.os && wanted.architecture == host.architecture {
        Ok(())
    } else {
        Err(ApiError::bad(format!(
            "platform {platform:?}: Berth imports images for this machine's platform only ({}/{})",
            host.os, host.architecture
        )))
    }
}

/// `POST /images/create?fromSrc=-&repo=&tag=&changes=&message=&platform=`
/// (`docker import`): the (possibly compressed) filesystem tar in the
/// body becomes a one-layer image through the engine's import, as
/// `berth import` makes it; the answer is dockerd's stream, whose last
/// status is the new image's id.
async fn import(
    api: &super::DockerApi,
    pairs: &[(String, String)],
    req: Request,
) -> ApiResult<Response> {
    use tokio::io::AsyncWriteExt;
    let get = |k: &str| {
        pairs
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let reference = import_reference(get("repo"), get("tag"));
    let changes: Vec<String> = pairs
        .iter()
        .filter(|(k, v)| k == "changes" && !v.is_empty())
        .flat_map(|(_, v)| v.lines().map(String::from).collect::<Vec<_>>())
        .collect();
    // A reference, platform or change the engine would refuse is refused
    // before the import; the upload is read to its end first, since a
    // client still writing it would see a broken pipe, not the answer.
    let checked = (|| -> ApiResult<()> {
        if !reference.is_empty() {
            crate::image::reference::ImageRef::parse(&reference).map_err(ApiError::from)?;
        }
        import_platform(get("platform"))?;
        crate::image::compose::apply_changes(&mut json!({}), &changes)?;
        Ok(())
    })();
    if let Err(e) = checked {
        let mut body = req.into_body().into_data_stream();
        while let Some(Ok(_)) = body.next().await {}
        return Err(e);
    }
    let message = get("message").to_string();
    let images = api.agent.images.clone();
    let spool = images.spool_file()?;
    let failed =
        |e: std::io::Error| ApiError::from(crate::error::Error::io("spooling the import", e));
    let mut file = tokio::fs::File::from_std(spool.reopen().map_err(failed)?);
    let mut body = req.into_body().into_data_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad(format!("reading the imported data: {e}")))?;
        file.write_all(&chunk).await.map_err(failed)?;
    }
    file.flush().await.map_err(failed)?;
    drop(file);
    let answer = match images.import(spool, &reference, &changes, &message).await {
        Ok(id) => line(&json!({ "status": id })),
        Err(e) => stream_error(&e.to_string()),
    };
    Ok(([("Content-Type", "application/json")], Body::from(answer)).into_response())
}

/// The name and the action of a path under `/images/`.
fn split_action(rest: &str) -> (&str, &str) {
    for action in ["/json", "/history", "/tag", "/push", "/get"] {
        if let Some(name) = rest.strip_suffix(action) {
            return (name, &action[1..]);
        }
    }
    (rest, "")
}

fn rest_of(req: &Request) -> String {
    req.uri()
        .path()
        .strip_prefix("/images/")
        .unwrap_or("")
        .to_string()
}

fn find(api: &super::DockerApi, name: &str) -> ApiResult<ImageEntry> {
    api.agent
        .images
        .find(name)
        .map_err(|e| image_error(e, name))
}

/// `GET /images/{name}/json`, `/history` and `/get`.
pub async fn get_any(AxState(api): State, req: Request) -> ApiResult<Response> {
    let rest = rest_of(&req);
    let (name, action) = split_action(&rest);
    match action {
        "json" => inspect(&api, name),
        "history" => history(&api, name),
        "get" => super::transfer::save(&api, vec![name.to_string()]).await,
        _ => Err(ApiError::missing(format!(
            "page not found: GET /images/{rest} is not served by Berth"
        ))),
    }
}

fn inspect(api: &super::DockerApi, name: &str) -> ApiResult<Response> {
    let entry = find(api, name)?;
    let (config, raw) = api.agent.images.config_of(&entry)?;
    let raw: Value = serde_json::from_str(&raw).unwrap_or_default();
    let body = json!({
        "Id": entry.record.id,
        "RepoTags": entry.tags.iter().map(|t| familiar(t)).collect::<Vec<_>>(),
        "RepoDigests": entry.record.repo_digests.iter().map(|d| familiar(d)).collect::<Vec<_>>(),
        "Parent": "",
        "Comment": raw["comment"].as_str().unwrap_or(""),
        "Created": config.created.clone().unwrap_or_default(),
        "DockerVersion": "",
        "Author": config.author.clone().unwrap_or_default(),
        "Config": raw.get("config").cloned().unwrap_or(json!({})),
        "Architecture": config.architecture,
        "Variant": config.variant.clone(),
        "Os": config.os,
        "Size": entry.record.size,
        "GraphDriver": { "Name": "overlayfs", "Data": null },
        "RootFS": {
            "Type": "layers",
            "Layers": entry.record.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        },
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
        "Descriptor": {
            "mediaType": entry.record.manifest_media_type,
            "digest": entry.record.manifest_digest,
        },
    });
    Ok(axum::Json(body).into_response())
}

fn history(api: &super::DockerApi, name: &str) -> ApiResult<Response> {
    let entry = find(api, name)?;
    let images = &api.agent.images;
    let (config, _) = images.config_of(&entry)?;
    let tags: Vec<String> = entry.tags.iter().map(|t| familiar(t)).collect();
    let items: Vec<Value> = images
        .history(&config, &entry)
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            json!({
                "Id": if h.id.is_empty() { "<missing>".to_string() } else { h.id },
                "Created": unix_seconds(h.created.as_deref()),
                "CreatedBy": h.created_by,
                "Tags": if i == 0 { json!(tags) } else { json!(null) },
                "Size": h.size,
                "Comment": h.comment,
            })
        })
        .collect();
    Ok(axum::Json(items).into_response())
}

/// `POST /images/{name}/tag?repo=&tag=` and `POST /images/{name}/push`.
pub async fn post_any(
    AxState(api): State,
    Query(q): Params,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<Response> {
    let rest = rest_of(&req);
    let (name, action) = split_action(&rest);
    if action == "push" {
        return super::transfer::push(&api, name, &q, &headers).await;
    }
    if action != "tag" {
        return Err(ApiError::missing(format!(
            "page not found: POST /images/{rest} is not served by Berth yet"
        )));
    }
    let repo = q.get("repo").cloned().unwrap_or_default();
    if repo.is_empty() {
        return Err(ApiError::bad("repo is required"));
    }
    let target = match q.get("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo,
    };
    find(&api, name)?;
    api.agent.images.tag(name, &target)?;
    Ok(StatusCode::CREATED.into_response())
}

/// `DELETE /images/{name}?force=&noprune=`.
pub async fn remove(AxState(api): State, Query(q): Params, req: Request) -> ApiResult<Response> {
    let name = rest_of(&req);
    find(&api, &name)?;
    let (items, _) = api
        .agent
        .images
        .remove(&name, truthy(q.get("force")), truthy(q.get("noprune")))
        .await
        .map_err(|e| image_error(e, &name))?;
    let out: Vec<Value> = items
        .into_iter()
        .map(|r| match r {
            Removed::Untagged(v) => json!({ "Untagged": familiar(&v) }),
            Removed::Deleted(v) => json!({ "Deleted": v }),
        })
        .collect();
    Ok(axum::Json(out).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_paths_split_into_name_and_action() {
        assert_eq!(
            split_action("127.0.0.1:5000/a/b:1/json"),
            ("127.0.0.1:5000/a/b:1", "json")
        );
        assert_eq!(split_action("busybox/tag"), ("busybox", "tag"));
        assert_eq!(split_action("busybox"), ("busybox", ""));
    }

    #[test]
    fn registry_auth_headers_decode() {
        let mut h = HeaderMap::new();
        let enc = base64::engine::general_purpose::URL_SAFE
            .encode(r#"{"username":"u","password":"p","serveraddress":"r"}"#);
        h.insert("X-Registry-Auth", enc.parse().unwrap());
        let c = credentials(&h);
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
    }
}
