//! An image as `docker image inspect` shows it: the keys dockerd 20.10
//! writes (its `ImageInspect`), from the image's config as stored, with
//! `GraphDriver` naming the agent's layer folders as Docker names its
//! overlay2 folders. Two keys Docker's JSON does not have are kept:
//! `Descriptor` (current Docker's, API 1.48, which dockerd 20.10
//! predates) and `Layers` (each layer's digest, diff id, media type and
//! sizes, which Berth's own tests and tools read).
//!
//! The layer folders are named by chain id, which the agent does not send;
//! it is computed here ([`chain_ids`]).

use berth_api::v1 as pb;
use serde_json::{json, Map, Value};

/// The keys of Docker's `container.Config` that its JSON always has, with
/// the value (as JSON text) it writes when the image's config lacks them.
const RUN_CONFIG_KEYS: &[(&str, &str)] = &[
    ("Hostname", r#""""#),
    ("Domainname", r#""""#),
    ("User", r#""""#),
    ("AttachStdin", "false"),
    ("AttachStdout", "false"),
    ("AttachStderr", "false"),
    ("Tty", "false"),
    ("OpenStdin", "false"),
    ("StdinOnce", "false"),
    ("Env", "null"),
    ("Cmd", "null"),
    ("Image", r#""""#),
    ("Volumes", "null"),
    ("WorkingDir", r#""""#),
    ("Entrypoint", "null"),
    ("OnBuild", "null"),
    ("Labels", "null"),
];

/// Keys Docker's JSON leaves out when empty but its CLI's templates
/// always see (its types have the field): kept, empty, in `Config` so
/// `{{.Config.StopSignal}}` prints as Docker's does.
const TEMPLATE_KEYS: &[(&str, &str)] = &[("ExposedPorts", "null"), ("StopSignal", r#""""#)];

/// A run config (`config` or `container_config` of an image config) in
/// Docker's shape: its fixed keys, then whatever else the image has
/// (`Healthcheck`, `Shell`, `ArgsEscaped`, …); with `for_templates`, the
/// [`TEMPLATE_KEYS`] too.
fn run_config(raw: Option<&Value>, for_templates: bool) -> Value {
    let raw = raw.and_then(Value::as_object).cloned().unwrap_or_default();
    let mut out = Map::new();
    let fixed = RUN_CONFIG_KEYS
        .iter()
        .chain(if for_templates { TEMPLATE_KEYS } else { &[] });
    for (key, default) in fixed {
        let v = raw.get(*key).cloned().unwrap_or(Value::Null);
        let v = if v.is_null() {
            serde_json::from_str(default).unwrap_or(Value::Null)
        } else {
            v
        };
        out.insert((*key).into(), v);
    }
    for (k, v) in raw {
        if !out.contains_key(&k) && !v.is_null() {
            out.insert(k, v);
        }
    }
    Value::Object(out)
}

/// An image as `docker image inspect` shows it; `root_dir` is the agent's
/// store (`info`'s), where its layer folders are.
pub fn docker_json(d: &pb::ImageDetail, root_dir: &str) -> Value {
    let raw: Value = serde_json::from_str(&d.config_json).unwrap_or_default();
    let text = |k: &str| raw[k].as_str().unwrap_or_default().to_string();
    let diff_ids: Vec<String> = d.layers.iter().map(|l| l.diff_id.clone()).collect();
    json!({
        "Id": d.id,
        "RepoTags": d.repo_tags,
        "RepoDigests": d.repo_digests,
        "Parent": "",
        "Comment": text("comment"),
        "Created": d.created.as_ref().map(|t| t.to_string()),
        "Container": text("container"),
        "ContainerConfig": run_config(raw.get("container_config"), false),
        "DockerVersion": text("docker_version"),
        "Author": d.author,
        "Config": run_config(raw.get("config"), true),
        "Architecture": d.architecture,
        "Variant": d.variant,
        "Os": d.os,
        "Size": d.size,
        "VirtualSize": d.size,
        "GraphDriver": graph_driver(root_dir, &diff_ids),
        "RootFS": { "Type": "layers", "Layers": diff_ids },
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
        "Descriptor": { "mediaType": d.manifest_media_type, "digest": d.manifest_digest },
        "Layers": d.layers.iter().map(|l| json!({"Digest": l.digest, "DiffID": l.diff_id, "MediaType": l.media_type, "Size": l.size, "UnpackedSize": l.unpacked_size})).collect::<Vec<_>>(),
    })
}

/// `GraphDriver` as Docker's overlay2 shows an image: the top layer's
/// folder as `UpperDir`, the others (top first, `:` between) as
/// `LowerDir` when there are others. Berth mounts no overlay of an image
/// alone, so `MergedDir` and `WorkDir` are empty.
fn graph_driver(root_dir: &str, diff_ids: &[String]) -> Value {
    let dirs: Vec<String> = chain_ids(diff_ids)
        .iter()
        .rev()
        .map(|c| {
            let hex = c.strip_prefix("sha256:").unwrap_or(c);
            format!("{}/snapshots/{hex}/fs", root_dir.trim_end_matches('/'))
        })
        .collect();
    let mut data = json!({
        "MergedDir": "",
        "UpperDir": dirs.first().cloned().unwrap_or_default(),
        "WorkDir": "",
    });
    if dirs.len() > 1 {
        data["LowerDir"] = json!(dirs[1..].join(":"));
    }
    json!({ "Name": "overlay2", "Data": data })
}

/// The OCI chain ids of layers given their diff ids: the first layer's is
/// its diff id, each next one `sha256(parent + " " + diff_id)`.
pub(crate) fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match out.last() {
            None => diff.clone(),
            Some(parent) => format!(
                "sha256:{}",
                hex(&sha256(format!("{parent} {diff}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `input` (the `sha2` crate, as the agent's digests).
fn sha256(input: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(input).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_standard_vectors() {
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(
            hex(&sha256(long)),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
    }

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let ids = chain_ids(&["sha256:a".into(), "sha256:b".into()]);
        assert_eq!(ids[0], "sha256:a");
        assert_eq!(
            ids[1],
            format!("sha256:{}", hex(&sha256(b"sha256:a sha256:b")))
        );
    }

    #[test]
    fn documents_have_docker_s_keys() {
        let d = pb::ImageDetail {
            config_json: r#"{"config":{"Env":["PATH=/bin"],"Shell":["/bin/sh"]},"comment":"c"}"#
                .into(),
            layers: vec![
                pb::ImageLayer {
                    diff_id: "sha256:a".into(),
                    ..Default::default()
                },
                pb::ImageLayer {
                    diff_id: "sha256:b".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let v = docker_json(&d, "/r/");
        assert_eq!(v["Comment"], "c");
        assert_eq!(v["Config"]["Env"], json!(["PATH=/bin"]));
        assert_eq!(v["Config"]["Shell"], json!(["/bin/sh"]));
        assert_eq!(v["Config"]["Cmd"], Value::Null);
        assert_eq!(v["Config"]["StopSignal"], "");
        assert!(v["ContainerConfig"].get("StopSignal").is_none());
        assert_eq!(v["ContainerConfig"]["Hostname"], "");
        let top = chain_ids(&["sha256:a".into(), "sha256:b".into()])[1].clone();
        assert_eq!(
            v["GraphDriver"]["Data"]["UpperDir"],
            format!("/r/snapshots/{}/fs", &top[7..])
        );
        assert_eq!(v["GraphDriver"]["Data"]["LowerDir"], "/r/snapshots/a/fs");
    }
}
