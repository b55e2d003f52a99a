//! A volume's files, for the Volumes view's file browser. `berth-client`
//! has no call that reads a volume, but `cp` reaches a container's
//! volumes even when it never ran (as `docker cp` does): so the app makes
//! a helper container from an image already stored (the smallest), with
//! the volume mounted at `/volume`, never starts it, and lists, reads,
//! writes, downloads and uploads through it with the Files tab's own
//! functions. The page names only the volume and a path inside it; every
//! path is cleaned and kept under `/volume` here.
//!
//! One helper per volume open in the view, removed when the view closes
//! it or the app quits; a helper left by an app that crashed (found by
//! its label) is removed the next time a volume is opened. The app's
//! container list leaves helpers out.

use std::collections::HashMap;

use berth_client::types as pb;
use tauri::{AppHandle, Manager, State};
use tokio::sync::Mutex;

use super::{clean_path, invalid, list, read_text, save_text, transfer, Listing, TextFile};
use crate::commands::{Reply, UiError};
use crate::App;

/// The label every helper carries (its value: the volume's name).
pub const LABEL: &str = "dev.berth.desktop.volume-browser";

/// Where a helper has its volume.
const AT: &str = "/volume";

/// The helpers made so far: volume name → container id.
#[derive(Default)]
pub struct Helpers {
    open: Mutex<HashMap<String, String>>,
}

/// `path` in the volume (`/a/b`) as the helper's path (`/volume/a/b`).
pub fn inside(path: &str) -> Reply<String> {
    let clean = clean_path(path)?;
    Ok(if clean == "/" {
        AT.to_string()
    } else {
        format!("{AT}{clean}")
    })
}

/// A helper's path back as the volume's (`/volume/a` → `/a`).
pub fn outside(path: &str) -> String {
    match path.strip_prefix(AT) {
        Some("") => "/".to_string(),
        Some(rest) if rest.starts_with('/') => rest.to_string(),
        _ => path.to_string(),
    }
}

/// Whether a listed container is one of the app's helpers.
pub fn is_helper(c: &pb::ContainerSummary) -> bool {
    c.labels.contains_key(LABEL)
}

/// The request that makes volume `name`'s helper from `image`.
fn helper_request(name: &str, image: &str) -> pb::CreateContainerRequest {
    pb::CreateContainerRequest {
        image: image.to_string(),
        // Never run: a command only because an image may have none.
        cmd: vec!["true".into()],
        network: "none".into(),
        labels: [(LABEL.to_string(), name.to_string())].into(),
        mounts: vec![pb::Mount {
            r#type: "volume".into(),
            source: name.to_string(),
            target: AT.into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

impl Helpers {
    /// Volume `name`'s helper, made when there is none yet.
    async fn get(&self, app: &App, name: &str) -> Reply<String> {
        let mut open = self.open.lock().await;
        if let Some(id) = open.get(name) {
            return Ok(id.clone());
        }
        let client = app.client();
        client.inspect_volume(name).await?;
        // Helpers an earlier run left behind.
        let filters = [(
            "label".to_string(),
            pb::StringList {
                values: vec![LABEL.to_string()],
            },
        )]
        .into();
        let left = client
            .list_containers(pb::ListContainersRequest {
                all: true,
                filters,
                ..Default::default()
            })
            .await?;
        for c in left.iter().filter(|c| !open.values().any(|id| *id == c.id)) {
            let _ = client.remove_container(&c.id, true, false).await;
        }
        let image = client
            .list_images(Default::default())
            .await?
            .into_iter()
            .min_by_key(|i| i.size)
            .ok_or_else(|| UiError {
                kind: "FailedPrecondition".into(),
                message: "browsing a volume needs an image on the engine (any one, it is \
                          never run): pull one in Images first"
                    .into(),
            })?;
        let id = client
            .create_container(helper_request(name, &image.id))
            .await?
            .id;
        // A container that never ran has no /volume to mount on, and a
        // read (as cp's read is) does not make it: a write of nothing
        // makes the mount point once.
        let nothing = Box::new(std::io::Cursor::new(super::archive::trailer(0)));
        if let Err(e) = client.copy_to(&id, "/", false, nothing).await {
            let _ = client.remove_container(&id, true, false).await;
            return Err(e.into());
        }
        open.insert(name.to_string(), id.clone());
        Ok(id)
    }

    /// Runs `op` on volume `name`'s helper; when the helper turned out to
    /// be gone (removed outside the app), makes a new one and runs it
    /// once more.
    async fn with<T, F, Fut>(&self, app: &App, name: &str, op: F) -> Reply<T>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Reply<T>>,
    {
        let id = self.get(app, name).await?;
        let r = op(id.clone()).await;
        if let Err(e) = &r {
            let gone = e.kind == "NotFound" && app.client().inspect_container(&id).await.is_err();
            if gone {
                self.open.lock().await.remove(name);
                return op(self.get(app, name).await?).await;
            }
        }
        r
    }

    /// Removes volume `name`'s helper, when there is one.
    pub async fn close(&self, app: &App, name: &str) {
        if let Some(id) = self.open.lock().await.remove(name) {
            let _ = app.client().remove_container(&id, true, false).await;
        }
    }

    /// Removes every helper (the app quits).
    pub async fn close_all(&self, app: &App) {
        let ids: Vec<String> = self.open.lock().await.drain().map(|(_, id)| id).collect();
        for id in ids {
            let _ = app.client().remove_container(&id, true, false).await;
        }
    }
}

/// The entries of folder `path` in volume `name`.
#[tauri::command]
pub async fn list_volume_files(
    app: State<'_, App>,
    helpers: State<'_, Helpers>,
    name: String,
    path: String,
) -> Reply<Listing> {
    let at = inside(&path)?;
    let mut l = helpers
        .with(&app, &name, |id| {
            let at = at.clone();
            let app = &app;
            async move { list(app, &id, &at).await }
        })
        .await?;
    l.path = outside(&l.path);
    Ok(l)
}

/// A text file of volume `name`, for the editor (up to 256 KiB of UTF-8).
#[tauri::command]
pub async fn read_volume_file(
    app: State<'_, App>,
    helpers: State<'_, Helpers>,
    name: String,
    path: String,
) -> Reply<TextFile> {
    let at = inside(&path)?;
    let mut f = helpers
        .with(&app, &name, |id| {
            let (app, at) = (&app, at.clone());
            async move { read_text(app, &id, at).await }
        })
        .await?;
    f.path = outside(&f.path);
    Ok(f)
}

/// Writes `text` to file `path` of volume `name`.
#[tauri::command]
pub async fn save_volume_file(
    app: State<'_, App>,
    helpers: State<'_, Helpers>,
    name: String,
    path: String,
    text: String,
) -> Reply<()> {
    let at = inside(&path)?;
    if at == AT {
        return Err(invalid("name the file to save".into()));
    }
    helpers
        .with(&app, &name, |id| {
            let (app, at, text) = (&app, at.clone(), &text);
            async move { save_text(app, &id, &at, text).await }
        })
        .await
}

/// Asks where to save `path` of volume `name` (a folder as a tar; the
/// volume's root as `NAME.tar`), then saves it; the host path, or `None`.
#[tauri::command]
pub async fn download_volume_file(
    handle: AppHandle,
    app: State<'_, App>,
    helpers: State<'_, Helpers>,
    name: String,
    path: String,
    folder: bool,
) -> Reply<Option<String>> {
    let at = inside(&path)?;
    let shown = outside(&at);
    let id = helpers.get(&app, &name).await?;
    transfer::download(&handle, &app, &id, &at, folder, &shown, &name).await
}

/// Asks for a host file, then copies it into folder `folder` of volume
/// `name`; its name, or `None` when the user cancelled.
#[tauri::command]
pub async fn upload_volume_file(
    handle: AppHandle,
    app: State<'_, App>,
    helpers: State<'_, Helpers>,
    name: String,
    folder: String,
) -> Reply<Option<String>> {
    let at = inside(&folder)?;
    let shown = format!("{name}:{}", outside(&at));
    let id = helpers.get(&app, &name).await?;
    transfer::upload(&handle, &app, &id, &at, &shown).await
}

/// The view is done with volume `name`: its helper is removed.
#[tauri::command]
pub async fn close_volume(
    app: State<'_, App>,
    helpers: State<'_, Helpers>,
    name: String,
) -> Reply<()> {
    helpers.close(&app, &name).await;
    Ok(())
}

/// Removes every helper when the app quits.
pub fn on_exit(handle: &AppHandle) {
    let (app, helpers) = (handle.state::<App>(), handle.state::<Helpers>());
    tauri::async_runtime::block_on(helpers.close_all(&app));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_in_the_volume() {
        assert_eq!(inside("/").unwrap(), "/volume");
        assert_eq!(inside("").unwrap(), "/volume");
        assert_eq!(inside("a/b").unwrap(), "/volume/a/b");
        assert_eq!(inside("/../../etc/passwd").unwrap(), "/volume/etc/passwd");
        assert_eq!(inside("/a/../../..").unwrap(), "/volume");
        assert!(inside("/a\0").is_err());
        assert_eq!(outside("/volume"), "/");
        assert_eq!(outside("/volume/a/b"), "/a/b");
        assert_eq!(outside("/volumes"), "/volumes");
    }

    #[test]
    fn a_helper_mounts_its_volume_and_is_labelled() {
        let req = helper_request("data", "sha256:abc");
        assert_eq!(req.image, "sha256:abc");
        assert_eq!(req.network, "none");
        assert_eq!(req.labels.get(LABEL).map(String::as_str), Some("data"));
        assert_eq!(req.mounts.len(), 1);
        let m = &req.mounts[0];
        assert_eq!(
            (m.r#type.as_str(), m.source.as_str(), m.target.as_str()),
            ("volume", "data", "/volume")
        );
        assert!(!m.read_only);
        let mut c = pb::ContainerSummary::default();
        assert!(!is_helper(&c));
        c.labels.insert(LABEL.into(), "data".into());
        assert!(is_helper(&c));
    }
}
