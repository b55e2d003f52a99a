//! New images made here rather than pulled: `commit` (a container's
//! changes as one more layer over its image) and `import` (a filesystem
//! tar as a single-layer image), with Dockerfile-style `--change`s to the
//! config.

use std::io::{self, Read, Write};
use std::sync::Arc;

use serde_json::{json, Value};

use super::manifest::{self, Descriptor, Manifest};
use super::ImageService;
use crate::digest::Hasher;
use crate::error::{Error, Result};
use crate::store::ImageRecord;

/// A layer blob written to the content store.
#[derive(Debug, Clone)]
pub struct NewLayer {
    /// Its descriptor (gzip).
    pub desc: Descriptor,
    /// The digest of its uncompressed tar.
    pub diff_id: String,
}

/// Hashes what passes through to `inner`.
struct Hashing<W> {
    inner: W,
    hash: Hasher,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl ImageService {
    /// Stores the tar that `write` produces as a gzip layer blob.
    pub fn store_layer(
        &self,
        write: impl FnOnce(&mut dyn Write) -> Result<()>,
    ) -> Result<NewLayer> {
        let spool = self.spool_file()?;
        let file = spool
            .reopen()
            .map_err(|e| Error::io("spooling a layer", e))?;
        let compressed = Hashing {
            inner: io::BufWriter::new(file),
            hash: Hasher::default(),
        };
        let gz = flate2::write::GzEncoder::new(compressed, flate2::Compression::fast());
        let mut plain = Hashing {
            inner: gz,
            hash: Hasher::default(),
        };
        write(&mut plain)?;
        let diff_id = plain.hash.finish();
        let mut compressed = plain
            .inner
            .finish()
            .map_err(|e| Error::io("compressing a layer", e))?;
        compressed
            .flush()
            .map_err(|e| Error::io("spooling a layer", e))?;
        let size = compressed.hash.len;
        let digest = compressed.hash.finish();
        if !self.content.has(&digest) {
            let mut w = self.content.ingest(&digest)?;
            let mut f = spool
                .open_read()
                .map_err(|e| Error::io("reading a spooled layer", e))?;
            io::copy(&mut f, &mut w).map_err(|e| Error::io("storing a layer", e))?;
            w.commit(Some(size))?;
        }
        Ok(NewLayer {
            desc: Descriptor {
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                digest,
                size,
                platform: None,
                annotations: None,
            },
            diff_id,
        })
    }

    /// Stores a new image: `base`'s layers and then `layer` (when given), with
    /// `config` (whose `rootfs` and `history` are filled in here), named
    /// `name` when given. Returns its id.
    pub async fn store_composed(
        self: &Arc<Self>,
        base: Option<&ImageRecord>,
        layer: Option<NewLayer>,
        mut config: Value,
        history: Value,
        name: Option<&str>,
    ) -> Result<String> {
        let mut layers: Vec<Descriptor> = Vec::new();
        let mut diff_ids: Vec<Value> = Vec::new();
        if let Some(b) = base {
            for l in &b.layers {
                layers.push(Descriptor {
                    media_type: l.media_type.clone(),
                    digest: l.digest.clone(),
                    size: l.size,
                    platform: None,
                    annotations: None,
                });
                diff_ids.push(json!(l.diff_id));
            }
        }
        if let Some(layer) = &layer {
            layers.push(layer.desc.clone());
            diff_ids.push(json!(layer.diff_id));
        }
        config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
        if !config["history"].is_array() {
            config["history"] = json!([]);
        }
        if let Some(h) = config["history"]
            .as_array_mut()
            .filter(|_| !history.is_null())
        {
            h.push(history);
        }
        config["created"] = json!(chrono::Utc::now().to_rfc3339());
        let config_bytes =
            serde_json::to_vec(&config).map_err(|e| Error::Internal(e.to_string()))?;
        let config_digest = crate::digest::of_bytes(&config_bytes);
        self.content.write(&config_digest, &config_bytes)?;
        let m = Manifest {
            schema_version: 2,
            media_type: Some(manifest::OCI_MANIFEST.into()),
            config: Descriptor {
                media_type: "application/vnd.oci.image.config.v1+json".into(),
                digest: config_digest,
                size: config_bytes.len() as u64,
                platform: None,
                annotations: None,
            },
            layers,
        };
        let bytes = serde_json::to_vec(&m).map_err(|e| Error::Internal(e.to_string()))?;
        let names: Vec<String> = match name {
            Some(n) => vec![super::reference::ImageRef::parse(n)?.key()],
            None => Vec::new(),
        };
        let empty = self.root().join("ingest");
        self.store_loaded(&empty, &bytes, &names).await
    }
}

/// Applies Dockerfile-style instructions (`CMD`, `ENTRYPOINT`, `ENV`,
/// `EXPOSE`, `LABEL`, `USER`, `WORKDIR`, `VOLUME`, `STOPSIGNAL`) to an
/// image config's `config` object.
pub fn apply_changes(config: &mut Value, changes: &[String]) -> Result<()> {
    if !config["config"].is_object() {
        config["config"] = json!({});
    }
    let c = &mut config["config"];
    for change in changes {
        let change = change.trim();
        let (word, rest) = change
            .split_once(char::is_whitespace)
            .unwrap_or((change, ""));
        let rest = rest.trim();
        let list = || -> Value {
            match serde_json::from_str::<Vec<String>>(rest) {
                Ok(v) => json!(v),
                Err(_) => json!(["/bin/sh", "-c", rest]),
            }
        };
        match word.to_ascii_uppercase().as_str() {
            "CMD" => c["Cmd"] = list(),
            "ENTRYPOINT" => c["Entrypoint"] = list(),
            "USER" => c["User"] = json!(rest),
            "WORKDIR" => c["WorkingDir"] = json!(rest),
            "STOPSIGNAL" => c["StopSignal"] = json!(rest),
            "ENV" => {
                let pairs: Vec<(String, String)> = if rest.contains('=') {
                    rest.split_whitespace()
                        .filter_map(|p| p.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
                        .collect()
                } else {
                    let (k, v) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                    vec![(k.to_string(), v.trim().to_string())]
                };
                let mut env: Vec<String> = c["Env"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
                    .unwrap_or_default();
                for (k, v) in pairs {
                    env.retain(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) != k);
                    env.push(format!("{k}={v}"));
                }
                c["Env"] = json!(env);
            }
            "EXPOSE" | "VOLUME" => {
                let key = if word.eq_ignore_ascii_case("EXPOSE") { "ExposedPorts" } else { "Volumes" };
                if !c[key].is_object() {
                    c[key] = json!({});
                }
                let items: Vec<String> = match serde_json::from_str::<Vec<String>>(rest) {
                    Ok(v) => v,
                    Err(_) => rest.split_whitespace().map(String::from).collect(),
                };
                for i in items {
                    let i = if key == "ExposedPorts" && !i.contains('/') { format!("{i}/tcp") } else { i };
                    c[key][i] = json!({});
                }
            }
            "LABEL" => {
                if !c["Labels"].is_object() {
                    c["Labels"] = json!({});
                }
                for p in rest.split_whitespace() {
                    if let Some((k, v)) = p.split_once('=') {
                        c["Labels"][k] = json!(v.trim_matches('"'));
                    }
                }
            }
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "invalid --change {change:?}: use CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, VOLUME or STOPSIGNAL"
                )))
            }
        }
    }
    Ok(())
}

/// Copies a possibly compressed tar from `input` into `out` as plain tar.
pub fn decompress_into(input: impl Read + Send + 'static, out: &mut dyn Write) -> Result<()> {
    let mut plain = super::layers::decompress(input)
        .map_err(|e| Error::InvalidArgument(format!("the imported data cannot be read: {e}")))?;
    io::copy(&mut plain, out)
        .map_err(|e| Error::InvalidArgument(format!("the imported data cannot be read: {e}")))?;
    Ok(())
}

impl ImageService {
    /// `import`: the (possibly compressed) filesystem tar in `spool` as a
    /// single-layer image, with `changes`; returns its id.
    pub async fn import(
        self: &Arc<Self>,
        spool: super::archive::Spool,
        reference: &str,
        changes: &[String],
        message: &str,
    ) -> Result<String> {
        let me = self.clone();
        let layer = tokio::task::spawn_blocking(move || {
            let file = spool
                .open_read()
                .map_err(|e| Error::io("reading the imported data", e))?;
            let layer = me.store_layer(|w| decompress_into(file, w));
            drop(spool);
            layer
        })
        .await
        .map_err(|e| Error::Internal(format!("the import crashed: {e}")))??;
        let mut config = json!({
            "architecture": super::manifest::Platform::host().architecture,
            "os": "linux",
            "config": {},
        });
        apply_changes(&mut config, changes)?;
        let history = json!({
            "created": chrono::Utc::now().to_rfc3339(),
            "created_by": "berth import",
            "comment": if message.is_empty() { "Imported from -" } else { message },
        });
        let name = (!reference.is_empty()).then_some(reference);
        let id = self
            .store_composed(None, Some(layer), config, history, name)
            .await?;
        self.events
            .emit("image", "import", &id, &[("name", reference)]);
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_edit_the_config_as_a_dockerfile_would() {
        let mut c = json!({"config": {"Env": ["A=1", "PATH=/bin"]}});
        apply_changes(
            &mut c,
            &[
                "CMD [\"httpd\", \"-f\"]".into(),
                "ENV A=2 B=3".into(),
                "EXPOSE 80".into(),
                "LABEL team=core".into(),
                "WORKDIR /srv".into(),
            ],
        )
        .unwrap();
        assert_eq!(c["config"]["Cmd"], json!(["httpd", "-f"]));
        assert_eq!(c["config"]["Env"], json!(["PATH=/bin", "A=2", "B=3"]));
        assert!(c["config"]["ExposedPorts"]["80/tcp"].is_object());
        assert_eq!(c["config"]["Labels"]["team"], "core");
        assert!(apply_changes(&mut c, &["RUN rm -rf /".into()]).is_err());
    }
}
