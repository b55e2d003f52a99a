//! Images (tag, history, inspect), volumes and networks (create, inspect,
//! remove): each command one call into `berth-client`; the engine's
//! refusals (a volume in use, a network with containers) reach the UI as
//! its sentence.

use std::collections::HashMap;

use berth_client::types as pb;
use serde::Serialize;
use tauri::State;

use crate::commands::{Reply, UiError};
use crate::App;

/// Gives image `source` the name `target` (`repo[:tag]`).
#[tauri::command]
pub async fn tag_image(app: State<'_, App>, source: String, target: String) -> Reply<()> {
    let target = target.trim();
    if target.is_empty() {
        return Err(invalid("write the new name, e.g. myapp:1.0"));
    }
    app.client().tag_image(&source, target).await?;
    Ok(())
}

/// One step of an image's history, as the history panel shows it.
#[derive(Debug, Serialize)]
pub struct Step {
    /// The instruction that made the step (`RUN …`, `COPY …`).
    pub created_by: String,
    /// When, as RFC 3339 text.
    pub created: Option<String>,
    /// The bytes the step added (0 for a step without a layer).
    pub size: u64,
    /// The step made no layer (ENV, CMD, …).
    pub empty_layer: bool,
    /// The comment, if any.
    pub comment: String,
}

/// The steps that built an image, newest first.
#[tauri::command]
pub async fn image_history(app: State<'_, App>, reference: String) -> Reply<Vec<Step>> {
    let steps = app.client().image_history(&reference).await?;
    Ok(steps
        .into_iter()
        .map(|h| Step {
            created_by: h.created_by,
            created: h.created.map(|t| t.to_string()),
            size: h.size,
            empty_layer: h.empty_layer,
            comment: h.comment,
        })
        .collect())
}

/// An image as `docker image inspect` shows it.
#[tauri::command]
pub async fn inspect_image(app: State<'_, App>, reference: String) -> Reply<serde_json::Value> {
    Ok(app.client().inspect_image_json(&reference).await?)
}

/// `KEY=VALUE` lines as a map; a line without `=` is refused.
fn labels(lines: Vec<String>) -> Reply<HashMap<String, String>> {
    lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(invalid(&format!(
                "{l} is not a label: write KEY=VALUE, one a line"
            ))),
        })
        .collect()
}

fn invalid(message: &str) -> UiError {
    UiError {
        kind: "InvalidArgument".into(),
        message: message.into(),
    }
}

/// Creates a volume (a name is made up when `name` is empty).
#[tauri::command]
pub async fn create_volume(
    app: State<'_, App>,
    name: String,
    labels: Vec<String>,
) -> Reply<pb::Volume> {
    let req = pb::CreateVolumeRequest {
        name: name.trim().to_string(),
        labels: self::labels(labels)?,
        ..Default::default()
    };
    Ok(app.client().create_volume(req).await?)
}

/// Removes a volume; one a container uses is refused with the engine's
/// sentence (the app's own helper for browsing it is removed first).
#[tauri::command]
pub async fn remove_volume(
    app: State<'_, App>,
    helpers: State<'_, crate::files::volume::Helpers>,
    name: String,
) -> Reply<()> {
    helpers.close(&app, &name).await;
    app.client().remove_volume(&name, false).await?;
    Ok(())
}

/// A volume as `docker volume inspect` shows it.
#[tauri::command]
pub async fn inspect_volume(app: State<'_, App>, name: String) -> Reply<serde_json::Value> {
    let v = app.client().inspect_volume(&name).await?;
    Ok(berth_client::volumes::docker_json(&v))
}

/// Creates a bridge network, with a subnet when one is given.
#[tauri::command]
pub async fn create_network(
    app: State<'_, App>,
    name: String,
    subnet: String,
    internal: bool,
    labels: Vec<String>,
) -> Reply<pb::Network> {
    let name = name.trim();
    if name.is_empty() {
        return Err(invalid("name the network"));
    }
    let subnet = subnet.trim();
    let req = pb::CreateNetworkRequest {
        name: name.to_string(),
        driver: "bridge".into(),
        internal,
        subnets: if subnet.is_empty() {
            vec![]
        } else {
            vec![pb::Subnet {
                subnet: subnet.to_string(),
                ..Default::default()
            }]
        },
        labels: self::labels(labels)?,
        ..Default::default()
    };
    Ok(app.client().create_network(req).await?)
}

/// Removes a network; one with containers is refused with the engine's
/// sentence.
#[tauri::command]
pub async fn remove_network(app: State<'_, App>, id: String) -> Reply<()> {
    app.client().remove_network(&id).await?;
    Ok(())
}

/// A network as `docker network inspect` shows it.
#[tauri::command]
pub async fn inspect_network(app: State<'_, App>, id: String) -> Reply<serde_json::Value> {
    let n = app.client().inspect_network(&id).await?;
    Ok(berth_client::networks::docker_json(&n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_key_value_lines() {
        let m = labels(vec!["a=1".into(), " ".into(), "b=x=y".into()]).unwrap();
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "x=y");
        let e = labels(vec!["nope".into()]).unwrap_err();
        assert_eq!(
            e.message,
            "nope is not a label: write KEY=VALUE, one a line"
        );
    }
}
