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

/// How a build context is packed, read off its first bytes.
#[derive(Debug, PartialEq)]
enum Packing {
    /// A plain tar, carried as it is.
    Plain,
    /// gzip or zstd, unpacked on the way (as the engine unpacks layers).
    Compressed,
    /// A compression Berth has no decoder for, named.
    Unsupported(&'static str),
}

/// Reads the packing off a context's first bytes (at least 6, or all).
fn packing(head: &[u8]) -> Packing {
    use crate::image::layers::Compression;
    if head.starts_with(b"BZh") {
        Packing::Unsupported("bzip2")
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Packing::Unsupported("xz")
    } else if Compression::sniff(head) == Compression::None {
        Packing::Plain
    } else {
        Packing::Compressed
    }
}

/// The body's chunks as a blocking reader, for a decompressor.
struct ChunkReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Unpacks a compressed context from `rx` into `ctx` as it arrives, on
/// a blocking thread; the error says what could not be read.
fn unpack(rx: mpsc::Receiver<Bytes>, ctx: mpsc::Sender<Vec<u8>>) -> Result<(), String> {
    use std::io::Read;
    let reader = ChunkReader {
        rx,
        current: Bytes::new(),
    };
    let mut plain = crate::image::layers::decompress(reader).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = plain.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 || ctx.blocking_send(buf[..n].to_vec()).is_err() {
            return Ok(());
        }
    }
}

/// Carries the request body to the builder as its context: a plain tar
/// as it is, a gzip or zstd one unpacked as a stream (`docker build
/// --compress`, docker-py's `gzip=True`). Anything it cannot carry is
/// told in the build stream, with `refused` set so the builder's own
/// error about the cut-short context is not told too.
async fn carry_context(
    mut body: axum::body::BodyDataStream,
    ctx: mpsc::Sender<Vec<u8>>,
    out: mpsc::UnboundedSender<Bytes>,
    refused: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let refuse = |message: String| {
        refused.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = out.send(super::images::stream_error(&message));
    };
    // Enough of the start to know its packing.
    let mut head = Vec::new();
    while head.len() < 6 {
        match body.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(e)) => return refuse(format!("reading the build context: {e}")),
            None => break,
        }
    }
    match packing(&head) {
        Packing::Unsupported(what) => refuse(format!(
            "a {what}-compressed build context is not supported by Berth: send it as a plain, gzip or zstd tar"
        )),
        Packing::Plain => {
            if ctx.send(head).await.is_err() {
                return;
            }
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(c) => {
                        if ctx.send(c.to_vec()).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => return refuse(format!("reading the build context: {e}")),
                }
            }
        }
        Packing::Compressed => {
            let (tx, rx) = mpsc::channel::<Bytes>(16);
            let unpacking = tokio::task::spawn_blocking(move || unpack(rx, ctx));
            let mut sent = tx.send(Bytes::from(head)).await.is_ok();
            while let Some(chunk) = body.next().await.filter(|_| sent) {
                match chunk {
                    Ok(c) => sent = tx.send(c).await.is_ok(),
                    Err(e) => {
                        // Marked before the unpacker ends the context.
                        refuse(format!("reading the build context: {e}"));
                        break;
                    }
                }
            }
            drop(tx);
            match unpacking.await {
                Ok(Ok(())) => {}
                _ if refused.load(std::sync::atomic::Ordering::SeqCst) => {}
                Ok(Err(e)) => refuse(format!("the compressed build context cannot be read: {e}")),
                Err(e) => refuse(format!("unpacking the build context crashed: {e}")),
            }
        }
    }
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
    let body = req.into_body().into_data_stream();
    tokio::spawn(carry_context(body, ctx_tx, out.clone(), refused.clone()));
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

    #[test]
    fn contexts_are_told_apart_by_their_first_bytes() {
        assert_eq!(packing(b"Dockerfile\0\0"), Packing::Plain);
        assert_eq!(packing(&[0x1f, 0x8b, 8, 0, 0, 0]), Packing::Compressed);
        assert_eq!(
            packing(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0]),
            Packing::Compressed
        );
        assert_eq!(packing(b"BZh91AY"), Packing::Unsupported("bzip2"));
        assert_eq!(
            packing(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
            Packing::Unsupported("xz")
        );
        assert_eq!(packing(b""), Packing::Plain);
    }

    #[test]
    fn a_gzipped_context_unpacks_as_a_stream() {
        use std::io::Write;
        let plain: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let packed = gz.finish().unwrap();
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        let (ctx, mut got) = mpsc::channel::<Vec<u8>>(4);
        let feeder = std::thread::spawn(move || {
            for c in packed.chunks(1000) {
                tx.blocking_send(Bytes::copy_from_slice(c)).unwrap();
            }
        });
        let unpacker = std::thread::spawn(move || unpack(rx, ctx));
        let mut out = Vec::new();
        while let Some(c) = got.blocking_recv() {
            out.extend(c);
        }
        feeder.join().unwrap();
        assert_eq!(unpacker.join().unwrap(), Ok(()));
        assert_eq!(out, plain);
    }
}
