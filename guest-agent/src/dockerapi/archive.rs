//! `HEAD|GET|PUT /containers/{id}/archive?path=`: what `docker cp` uses.
//! HEAD and GET carry the path's stat in `X-Docker-Container-Path-Stat`
//! (base64 JSON, Go's file mode bits); GET streams the engine's tar of
//! the path, PUT extracts a tar into a directory.

use std::collections::HashMap;
use std::os::fd::AsRawFd;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State as AxState};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use futures::StreamExt;
use nix::fcntl::OFlag;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::{container_error, truthy, ApiError, ApiResult, State};
use crate::error::{Error, Result};

/// Go's `os.FileMode` for a stat's `st_mode`, as Docker sends it.
pub fn go_mode(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    let fmt = st_mode & libc::S_IFMT;
    m |= match fmt {
        libc::S_IFDIR => 1 << 31,
        libc::S_IFLNK => 1 << 27,
        libc::S_IFIFO => 1 << 25,
        libc::S_IFSOCK => 1 << 24,
        libc::S_IFBLK => 1 << 26,
        libc::S_IFCHR => (1 << 26) | (1 << 21),
        _ => 0,
    };
    if st_mode & libc::S_ISUID != 0 {
        m |= 1 << 23;
    }
    if st_mode & libc::S_ISGID != 0 {
        m |= 1 << 22;
    }
    if st_mode & libc::S_ISVTX != 0 {
        m |= 1 << 20;
    }
    m
}

/// The stat of `path` in the container (not following a final symlink).
async fn stat(api: &super::DockerApi, id: &str, path: &str) -> Result<serde_json::Value> {
    let path = path.to_string();
    // Through the container's volumes and binds, as `docker cp` copies.
    api.agent
        .containers
        .with_files(id, false, move |root| {
            let missing = |e: std::io::Error| {
                Error::not_found(format!("Could not find the file {path} in container: {e}"))
            };
            let fd =
                crate::util::copy::open_in_root(root, &path, OFlag::O_PATH | OFlag::O_NOFOLLOW)
                    .map_err(missing)?;
            let st = nix::sys::stat::fstat(fd.as_raw_fd())
                .map_err(|e| missing(std::io::Error::from(e)))?;
            let link = if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                nix::fcntl::readlinkat(Some(fd.as_raw_fd()), "")
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                String::new()
            };
            let clean = path.trim_end_matches('/');
            let name = clean
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or("/");
            let mtime = chrono::DateTime::from_timestamp(st.st_mtime, st.st_mtime_nsec as u32)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            Ok(json!({
                "name": name,
                "size": st.st_size,
                "mode": go_mode(st.st_mode),
                "mtime": mtime,
                "linkTarget": link,
            }))
        })
        .await
}

fn stat_header(v: &serde_json::Value) -> HeaderValue {
    let enc = base64::engine::general_purpose::STANDARD.encode(v.to_string());
    HeaderValue::from_str(&enc).unwrap_or(HeaderValue::from_static(""))
}

/// `HEAD` and `GET /containers/{id}/archive?path=`.
pub async fn get(
    AxState(api): State,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    method: Method,
) -> ApiResult<Response> {
    let r = super::containers::record(&api, &id)?;
    let path = q
        .get("path")
        .filter(|p| !p.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::bad("path is required"))?;
    let st = stat(&api, &r.id, &path)
        .await
        .map_err(|e| container_error(e, &id))?;
    let header = stat_header(&st);
    if method == Method::HEAD {
        let mut resp = StatusCode::OK.into_response();
        resp.headers_mut()
            .insert("X-Docker-Container-Path-Stat", header);
        return Ok(resp);
    }
    let containers = api.agent.containers.clone();
    let rx = crate::util::chunks::written(move |w| async move {
        containers.copy_from(&r.id, &path, false, w).await
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|c| {
            let item = c
                .map(bytes::Bytes::from)
                .map_err(|e| std::io::Error::other(e.to_string()));
            (item, rx)
        })
    });
    let mut resp = Body::from_stream(body).into_response();
    let h = resp.headers_mut();
    h.insert(
        "Content-Type",
        HeaderValue::from_static("application/x-tar"),
    );
    h.insert("X-Docker-Container-Path-Stat", header);
    Ok(resp)
}

/// `PUT /containers/{id}/archive?path=&copyUIDGID=`: a tar body
/// extracted into the directory `path`.
pub async fn put(
    AxState(api): State,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> ApiResult<Response> {
    let r = super::containers::record(&api, &id)?;
    let path = q
        .get("path")
        .filter(|p| !p.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::bad("path is required"))?;
    let containers = &api.agent.containers;
    let spool = containers.scratch_file()?;
    let failed = |e: std::io::Error| ApiError::from(Error::io("spooling the copy", e));
    let mut file = tokio::fs::File::from_std(spool.reopen().map_err(failed)?);
    let mut body = req.into_body().into_data_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad(format!("reading the archive: {e}")))?;
        file.write_all(&chunk).await.map_err(failed)?;
    }
    file.flush().await.map_err(failed)?;
    containers
        .copy_to(
            &r.id,
            &path,
            truthy(q.get("copyUIDGID")),
            spool.path().to_path_buf(),
        )
        .await
        .map_err(|e| container_error(e, &id))?;
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_go_s() {
        assert_eq!(go_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_mode(libc::S_IFREG | 0o644), 0o644);
        assert_eq!(go_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
    }
}
