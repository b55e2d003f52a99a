//! `POST /build`: a tar context in the body, the engine's [`Builder`]
//! over it, and the classic builder's JSON stream back (`{"stream":
//! "Step 1/3 : FROM …\n"}` … `{"aux": {"ID": "sha256:…"}}`,
//! `Successfully built …`, `Successfully tagged …`), which
//! `DOCKER_BUILDKIT=0 docker build` and compose's builds read.
//!
//! [`Builder`]: crate::build::Builder

use std::collections::{BTreeMap, HashMap};

use axum::body::Body;
use axum::extract::{Query, Request, State as AxState};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::{ApiError, ApiResult, State};
use crate::build::{BuildEvent, BuildOptions};

/// Query parameters Berth's builds do not honour, refused when set.
const REFUSED: &[&str] = &[
    "remote",
    "extrahosts",
    "squash",
    "memory",
    "memswap",
    "cpushares",
    "cpusetcpus",
    "cpuperiod",
    "cpuquota",
    "shmsize",
    "isolation",
    "ulimits",
    "outputs",
];

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    b.into()
}

fn stream(text: impl Into<String>) -> Bytes {
    line(&json!({ "stream": text.into() }))
}

/// "[2/4] RUN make" (or "[stage 2/4] RUN make") as the classic builder
/// names it: "Step 2/4 : RUN make"; None for the builder's own steps.
pub fn classic_step(name: &str) -> Option<String> {
    let inner_end = name.find(']')?;
    let inner = name.strip_prefix('[')?.get(..inner_end - 1)?;
    let count = inner.split_whitespace().last()?;
    if !count.contains('/') {
        return None;
    }
    Some(format!("Step {count} : {}\n", name[inner_end + 1..].trim()))
}

/// One build event as the classic stream shows it.
fn event_line(e: BuildEvent) -> Option<Bytes> {
    match e {
        BuildEvent::Step { name, .. } => classic_step(&name).map(stream),
        BuildEvent::Output { text, .. } => {
            let text = if text.ends_with('\n') {
                text
            } else {
                format!("{text}\n")
            };
            Some(stream(text))
        }
        BuildEvent::Done { cached: true, .. } => Some(stream(" ---> Using cache\n")),
        BuildEvent::Done { .. } => None,
        BuildEvent::Failed {
            message, exit_code, ..
        } => Some(line(&json!({
            "errorDetail": { "code": exit_code, "message": message },
            "error": message,
        }))),
    }
}

fn json_map(raw: Option<&String>, what: &str) -> ApiResult<BTreeMap<String, String>> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let v: HashMap<String, Option<String>> = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad(format!("invalid {what} {raw:?}: {e}")))?;
    Ok(v.into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect())
}

/// `POST /build?t=&dockerfile=&buildargs=&target=&nocache=&q=&labels=…`.
pub async fn build(
    AxState(api): State,
    Query(pairs): Query<Vec<(String, String)>>,
    req: Request,
) -> ApiResult<Response> {
    let q: HashMap<String, String> = pairs.iter().cloned().collect();
    if q.get("version").is_some_and(|v| v == "2") {
        return Err(ApiError::bad(
            "BuildKit sessions (version=2) are not served by Berth: build with DOCKER_BUILDKIT=0 or `berth build`",
        ));
    }
    for f in REFUSED {
        if q.get(*f).is_some_and(|v| {
            !v.is_empty() && v != "0" && v != "false" && v != "{}" && v != "[]" && v != "null"
        }) {
            return Err(ApiError::bad(format!(
                "the build option {f:?} is not supported by Berth"
            )));
        }
    }
    let tags: Vec<String> = pairs
        .iter()
        .filter(|(k, v)| k == "t" && !v.is_empty())
        .map(|(_, v)| v.clone())
        .collect();
    let quiet = super::truthy(q.get("q"));
    let opts = BuildOptions {
        tags: tags.clone(),
        dockerfile: q.get("dockerfile").cloned().unwrap_or_default(),
        build_args: json_map(q.get("buildargs"), "buildargs")?,
        target: q.get("target").cloned().unwrap_or_default(),
        no_cache: super::truthy(q.get("nocache")),
        pull: super::truthy(q.get("pull")),
        labels: json_map(q.get("labels"), "labels")?,
        platform: q.get("platform").cloned().unwrap_or_default(),
        network: match q.get("networkmode").map(String::as_str) {
            None | Some("") | Some("default") | Some("bridge") => String::new(),
            Some(other) => other.to_string(),
        },
        ..Default::default()
    };
    // The body is the context: carried to the builder as it arrives.
    let (ctx_tx, ctx_rx) = mpsc::channel::<Vec<u8>>(16);
    let (out, rx) = mpsc::unbounded_channel::<Bytes>();
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut body = req.into_body().into_data_stream();
    let (reader_out, reader_refused) = (out.clone(), refused.clone());
    tokio::spawn(async move {
        let mut first = true;
        while let Some(Ok(chunk)) = body.next().await {
            if first && chunk.starts_with(&[0x1f, 0x8b]) {
                reader_refused.store(true, std::sync::atomic::Ordering::SeqCst);
                let _ = reader_out.send(super::images::stream_error(
                    "a compressed build context is not supported by Berth yet: build without --compress",
                ));
                return;
            }
            first = false;
            if ctx_tx.send(chunk.to_vec()).await.is_err() {
                return;
            }
        }
    });
    let (etx, mut erx) = mpsc::unbounded_channel::<BuildEvent>();
    let builder = api.agent.builder.clone();
    tokio::spawn(async move {
        let build = builder.build(opts, ctx_rx, etx);
        tokio::pin!(build);
        let result = loop {
            tokio::select! {
                Some(e) = erx.recv() => {
                    if let Some(b) = event_line(e).filter(|_| !quiet) {
                        if out.send(b).is_err() {
                            return;
                        }
                    }
                }
                r = &mut build => break r,
                // The client left: dropping the build cleans up after it.
                _ = out.closed() => return,
            }
        };
        while let Ok(e) = erx.try_recv() {
            if let Some(b) = event_line(e).filter(|_| !quiet) {
                let _ = out.send(b);
            }
        }
        match result {
            Ok(id) => {
                let _ = out.send(line(&json!({ "aux": { "ID": id } })));
                let short = id
                    .trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect::<String>();
                if quiet {
                    let _ = out.send(stream(format!("{id}\n")));
                    return;
                }
                let _ = out.send(stream(format!("Successfully built {short}\n")));
                for t in &tags {
                    let _ = out.send(stream(format!("Successfully tagged {}\n", with_tag(t))));
                }
            }
            Err(_) if refused.load(std::sync::atomic::Ordering::SeqCst) => {}
            Err(e) => {
                let _ = out.send(super::images::stream_error(&e.to_string()));
            }
        }
    });
    let body = UnboundedReceiverStream::new(rx).map(Ok::<_, std::io::Error>);
    Ok((
        [("Content-Type", "application/json")],
        Body::from_stream(body),
    )
        .into_response())
}

/// `name` with `:latest` when it has no tag, as dockerd reports it.
fn with_tag(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_read_as_the_classic_builder_s() {
        assert_eq!(
            classic_step("[2/4] RUN make").as_deref(),
            Some("Step 2/4 : RUN make\n")
        );
        assert_eq!(
            classic_step("[build 1/3] FROM bb").as_deref(),
            Some("Step 1/3 : FROM bb\n")
        );
        assert_eq!(classic_step("[internal] load context"), None);
        assert_eq!(with_tag("a/b"), "a/b:latest");
        assert_eq!(with_tag("127.0.0.1:5000/a:1"), "127.0.0.1:5000/a:1");
    }
}
