//! A container's settings as Docker shows them in `inspect`'s `Config`:
//! the image's (`ENV`, `CMD`, `ENTRYPOINT`, `USER`, `WORKDIR`, `LABEL`,
//! `EXPOSE`, `VOLUME`) with the user's over them, merged as Docker merges
//! them at create.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::config::ContainerConfig;
use crate::image::manifest::RunConfig;

/// The merged settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The user's variables first, then the image's not set by the user.
    pub env: Vec<String>,
    /// The user's command, else the image's (dropped by `--entrypoint`);
    /// `null` when there is none.
    pub cmd: Value,
    /// The user's entrypoint, else the image's; `null` when there is none.
    pub entrypoint: Value,
    /// The user's, else the image's.
    pub user: String,
    /// The user's, else the image's.
    pub working_dir: String,
    /// The image's labels with the user's over them.
    pub labels: BTreeMap<String, String>,
    /// The image's exposed ports and the published ones (`"80/tcp": {}`),
    /// `null` when there are none.
    pub exposed_ports: Value,
    /// The image's volumes and the user's anonymous ones, `null` when none.
    pub volumes: Value,
}

/// Merges the image's settings under the user's.
pub fn merged_config(c: &ContainerConfig, image: &RunConfig) -> Merged {
    let mut env = c.env.clone();
    for pair in image.env.iter().flatten() {
        let key = pair.split_once('=').map_or(pair.as_str(), |(k, _)| k);
        let set_by_user = c
            .env
            .iter()
            .any(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key);
        if !set_by_user {
            env.push(pair.clone());
        }
    }
    let list = |v: &[String]| if v.is_empty() { Value::Null } else { json!(v) };
    let entrypoint = if c.entrypoint_set {
        list(&c.entrypoint)
    } else {
        image.entrypoint.as_deref().map_or(Value::Null, list)
    };
    let cmd = if !c.cmd.is_empty() {
        json!(c.cmd)
    } else if c.entrypoint_set {
        Value::Null
    } else {
        image.cmd.as_deref().map_or(Value::Null, list)
    };
    let or_image = |mine: &str, theirs: &Option<String>| {
        if mine.is_empty() {
            theirs.clone().unwrap_or_default()
        } else {
            mine.to_string()
        }
    };
    let mut labels: BTreeMap<String, String> = image.labels.clone().unwrap_or_default();
    labels.extend(c.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut ports: BTreeMap<String, Value> = image.exposed_ports.clone().unwrap_or_default();
    for p in &c.ports {
        let proto = if p.protocol.is_empty() {
            "tcp"
        } else {
            &p.protocol
        };
        ports.insert(format!("{}/{proto}", p.container_port), json!({}));
    }
    for e in super::options::exposed(c).unwrap_or_default() {
        ports.insert(e, json!({}));
    }
    let mut volumes: BTreeMap<String, Value> = image.volumes.clone().unwrap_or_default();
    for m in c
        .mounts
        .iter()
        .filter(|m| m.kind == "volume" && m.source.is_empty())
    {
        volumes.insert(m.target.clone(), json!({}));
    }
    let map_or_null =
        |m: BTreeMap<String, Value>| if m.is_empty() { Value::Null } else { json!(m) };
    Merged {
        env,
        cmd,
        entrypoint,
        user: or_image(&c.user, &image.user),
        working_dir: or_image(&c.working_dir, &image.working_dir),
        labels,
        exposed_ports: map_or_null(ports),
        volumes: map_or_null(volumes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> RunConfig {
        RunConfig {
            env: Some(vec!["PATH=/bin".into(), "LANG=C".into()]),
            cmd: Some(vec!["nginx".into()]),
            entrypoint: Some(vec!["/entry".into()]),
            user: Some("www".into()),
            working_dir: Some("/srv".into()),
            labels: Some(
                [
                    ("a".to_string(), "image".to_string()),
                    ("b".into(), "image".into()),
                ]
                .into(),
            ),
            exposed_ports: Some([("80/tcp".to_string(), json!({}))].into()),
            volumes: Some([("/data".to_string(), json!({}))].into()),
            ..Default::default()
        }
    }

    #[test]
    fn the_users_settings_win_and_the_images_fill_in() {
        let mut c = ContainerConfig {
            env: vec!["LANG=en".into(), "X=1".into()],
            labels: [("b".to_string(), "mine".to_string())].into(),
            ..Default::default()
        };
        c.ports.push(super::super::config::PortBinding {
            container_port: 53,
            protocol: "udp".into(),
            ..Default::default()
        });
        let m = merged_config(&c, &image());
        assert_eq!(m.env, ["LANG=en", "X=1", "PATH=/bin"]);
        assert_eq!(m.cmd, json!(["nginx"]));
        assert_eq!(m.entrypoint, json!(["/entry"]));
        assert_eq!((m.user.as_str(), m.working_dir.as_str()), ("www", "/srv"));
        assert_eq!(m.labels["a"], "image");
        assert_eq!(m.labels["b"], "mine");
        assert_eq!(m.exposed_ports, json!({"53/udp": {}, "80/tcp": {}}));
        assert_eq!(m.volumes, json!({"/data": {}}));
    }

    #[test]
    fn an_entrypoint_of_the_users_drops_the_images_command() {
        let c = ContainerConfig {
            entrypoint: vec!["sh".into()],
            entrypoint_set: true,
            user: "root".into(),
            ..Default::default()
        };
        let m = merged_config(&c, &image());
        assert_eq!((m.entrypoint, m.cmd), (json!(["sh"]), Value::Null));
        assert_eq!(m.user, "root");
        let bare = merged_config(&ContainerConfig::default(), &RunConfig::default());
        assert_eq!(
            (bare.cmd, bare.exposed_ports, bare.volumes),
            (Value::Null, Value::Null, Value::Null)
        );
    }
}
