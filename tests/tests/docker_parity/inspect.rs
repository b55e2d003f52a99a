//! `inspect`'s documents beside Docker's: for a container, an image, a
//! volume and a network, the keys (top level, the keys of each object
//! there — `Config`, `HostConfig`, `State`, `NetworkSettings`,
//! `GraphDriver`, `IPAM`, … — and `GraphDriver.Data`'s) must be Docker's,
//! each value of the same JSON type, and equal where the meaning is the
//! same. Ids, times, paths and a few settings that are Berth's own by
//! design ([`VARIES`]) are compared by type only; arrays and objects by
//! type, their keys being compared as keys.
//!
//! Berth may have a key dockerd 20.10's JSON lacks only when it is one
//! of [`EMPTY_IN_DOCKER`] with an empty value, or one of [`BERTH_ONLY`].
//! A value Berth cannot give yet is [`KNOWN`], with why: reported, not
//! failed.

use serde_json::Value;

use super::Side;

/// Keys Docker's JSON leaves out when empty (`omitempty` in its types)
/// and Berth keeps, empty: Docker's CLI runs `-f` templates against its
/// types, where the field always is (`{{.Config.StopSignal}}` prints an
/// empty line); Berth's run against the document.
const EMPTY_IN_DOCKER: &[&str] = &[
    "Config.ExposedPorts",
    "Config.StopSignal",
    "Config.StopTimeout",
    "HostConfig.Init",
    "Variant",
];

/// Keys of Berth's image document dockerd 20.10 does not have:
/// `Descriptor` is current Docker's (API 1.48); `Layers` (each layer's
/// digest, diff id, media type and sizes) is Berth's, read by its own
/// tests (`tests/images.rs`) and tools.
const BERTH_ONLY: &[&str] = &[
    "Descriptor",
    "Descriptor.digest",
    "Descriptor.mediaType",
    "Layers",
];

/// Keys whose values differ by nature (ids, times, paths, process ids;
/// `Metadata.LastTagTime` is when the image was last tagged here, which
/// Berth's store does not record: its value is always the zero time),
/// or by Berth's design: its runtime is itself (`Runtime`), its
/// containers' cgroups are under `/berth` (`CgroupParent`) and each has
/// its own cgroup namespace (`CgroupnsMode`; dockerd 20.10 shares the
/// host's on a cgroup v1 host). A name ending in `.` covers the keys
/// under it.
const VARIES: &[&str] = &[
    "Id",
    "Created",
    "CreatedAt",
    "Mountpoint",
    "ResolvConfPath",
    "HostnamePath",
    "HostsPath",
    "LogPath",
    "State.Pid",
    "State.StartedAt",
    "State.FinishedAt",
    "Metadata.LastTagTime",
    "Config.Hostname",
    "NetworkSettings.SandboxID",
    "NetworkSettings.SandboxKey",
    "HostConfig.Runtime",
    "HostConfig.CgroupParent",
    "HostConfig.CgroupnsMode",
    "GraphDriver.Data.",
];

/// Values Berth cannot give yet, each with why: reported as known, not
/// failed (the keys are still compared).
/// (None now: the attach flags, the last, are recorded since the engine
/// keeps which streams a client was to attach.)
const KNOWN: &[(&str, &str)] = &[];

/// Every key path of the first document `inspect OBJECT` prints, with
/// its value: the top level, the keys of each object there, and
/// `GraphDriver.Data`'s.
pub(crate) fn inspect_paths(side: &Side, object: &str) -> Vec<(String, Value)> {
    let out = side.ok(&["inspect", object]);
    let docs: Value = serde_json::from_str(&out).unwrap_or_default();
    let mut paths = Vec::new();
    if let Some(top) = docs[0].as_object() {
        for (k, v) in top {
            paths.push((k.clone(), v.clone()));
            for (i, w) in v.as_object().into_iter().flatten() {
                paths.push((format!("{k}.{i}"), w.clone()));
            }
        }
    }
    for (k, v) in docs[0]["GraphDriver"]["Data"]
        .as_object()
        .into_iter()
        .flatten()
    {
        paths.push((format!("GraphDriver.Data.{k}"), v.clone()));
    }
    paths.sort_by(|a, b| a.0.cmp(&b.0));
    paths
}

/// The JSON type of a value.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Whether a value is empty: null, false, 0, "", [] or {}.
fn empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// How Berth's document differs from Docker's (nothing when it does
/// not): keys missing, keys too many, values of another type or another
/// value; then the differences in values that are [`KNOWN`].
pub(crate) fn differences(
    berth: &[(String, Value)],
    docker: &[(String, Value)],
) -> (Vec<String>, Vec<String>) {
    let find = |list: &[(String, Value)], k: &str| {
        list.iter().find(|(p, _)| p == k).map(|(_, v)| v.clone())
    };
    let (mut out, mut known) = (Vec::new(), Vec::new());
    for (k, d) in docker {
        let Some(b) = find(berth, k) else {
            out.push(format!("lacks {k}"));
            continue;
        };
        let varies = VARIES
            .iter()
            .any(|v| k == v || (v.ends_with('.') && k.starts_with(v)));
        let scalar = !b.is_array() && !b.is_object();
        if kind(&b) != kind(d) || (!varies && scalar && b != *d) {
            let line = format!("{k} is {b} where Docker's is {d}");
            match KNOWN.iter().find(|(key, _)| key == k) {
                Some((_, why)) if kind(&b) == kind(d) => known.push(format!("{line}: {why}")),
                _ => out.push(line),
            }
        }
    }
    for (k, b) in berth {
        if find(docker, k).is_some() || BERTH_ONLY.contains(&k.as_str()) {
            continue;
        }
        if !(EMPTY_IN_DOCKER.contains(&k.as_str()) && empty(b)) {
            out.push(format!("has {k} ({b}), which Docker's has not"));
        }
    }
    (out, known)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn paths(v: &[(&str, Value)]) -> Vec<(String, Value)> {
        v.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn differences_name_keys_types_and_values() {
        let docker = paths(&[
            ("Id", json!("a")),
            ("HostConfig.ShmSize", json!(67108864)),
            ("HostConfig.Binds", json!(null)),
            ("Config.Env", json!(["X=1"])),
        ]);
        let same = paths(&[
            ("Id", json!("b")),
            ("HostConfig.ShmSize", json!(67108864)),
            ("HostConfig.Binds", json!(null)),
            ("Config.Env", json!(["X=1", "Y=2"])),
            ("HostConfig.Init", json!(null)),
            ("Layers", json!([])),
        ]);
        assert_eq!(differences(&same, &docker), (vec![], vec![]));
        let other = paths(&[
            ("Id", json!(1)),
            ("HostConfig.ShmSize", json!(0)),
            ("Config.Env", json!(["X=1"])),
            ("HostConfig.Init", json!(true)),
        ]);
        assert_eq!(differences(&other, &docker).0.len(), 4);
        let attached = paths(&[("Config.AttachStdout", json!(true))]);
        let detached = paths(&[("Config.AttachStdout", json!(false))]);
        let (wrong, known) = differences(&detached, &attached);
        assert!(wrong.len() == 1 && known.is_empty(), "{wrong:?} {known:?}");
    }
}
