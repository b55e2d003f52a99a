//! Host folders the Volumes view offers to open in the user's own tools:
//! the bind mounts of containers and the VM's shared folders. The page
//! sends back a path it was given, and the app opens it only when it is,
//! now, one of those folders and a folder on this machine — so no page
//! can make the app open anything else. Opening is the system's opener
//! (`xdg-open`, `open`, `explorer`), started without a shell, which
//! hands the folder to the user's file manager or editor.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use berth_client::types as pb;
use serde::Serialize;
use tauri::State;

use crate::commands::{Reply, UiError};
use crate::App;

/// A host folder as the Volumes view lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostFolder {
    /// Its absolute path.
    pub path: String,
    /// `bind` (a container mounts it) or `shared` (the VM shares it).
    pub kind: String,
    /// The containers that mount it, by name.
    pub containers: Vec<String>,
    /// Whether it is a folder on this machine (else it cannot be opened
    /// here: a remote engine's folder, or one not made yet).
    pub here: bool,
}

/// The host folders the containers' bind mounts (from their summaries:
/// a mount given as an absolute path is a bind) and `shares` name, each
/// once, binds first.
pub fn folders(containers: &[pb::ContainerSummary], shares: &[PathBuf]) -> Vec<HostFolder> {
    let mut binds: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in containers {
        let name = c
            .names
            .first()
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_else(|| c.id.chars().take(12).collect());
        for m in c.mounts.iter().filter(|m| Path::new(m).is_absolute()) {
            binds.entry(m.clone()).or_default().push(name.clone());
        }
    }
    let mut out: Vec<HostFolder> = binds
        .into_iter()
        .map(|(path, containers)| HostFolder {
            here: Path::new(&path).is_dir(),
            path,
            kind: "bind".into(),
            containers,
        })
        .collect();
    for s in shares {
        let path = s.display().to_string();
        if !out.iter().any(|f| f.path == path) {
            out.push(HostFolder {
                here: s.is_dir(),
                path,
                kind: "shared".into(),
                containers: Vec::new(),
            });
        }
    }
    out
}

/// The VM's shared folders, when this machine has a VM set up (its
/// settings file exists); none otherwise.
fn shares() -> Vec<PathBuf> {
    let dir = crate::vm::dir();
    if !dir.join("settings.json").is_file() {
        return Vec::new();
    }
    berth_client::vm::Settings::load(&dir)
        .map(|s| s.shares.into_iter().map(|f| f.path).collect())
        .unwrap_or_default()
}

/// The host folders now (what the page may ask to open).
pub async fn known(app: &App) -> Reply<Vec<HostFolder>> {
    let containers = app
        .client()
        .list_containers(pb::ListContainersRequest {
            all: true,
            ..Default::default()
        })
        .await?;
    Ok(folders(&containers, &shares()))
}

/// The bind mounts and shared folders.
#[tauri::command]
pub async fn host_folders(app: State<'_, App>) -> Reply<Vec<HostFolder>> {
    known(&app).await
}

fn refused(message: String) -> UiError {
    UiError {
        kind: "InvalidArgument".into(),
        message,
    }
}

/// `asked` as a folder that may be opened: one of `known` exactly, and a
/// folder on this machine (its real path, links resolved).
pub fn allowed(asked: &str, known: &[HostFolder]) -> Reply<PathBuf> {
    if !known.iter().any(|f| f.path == asked) {
        return Err(refused(format!(
            "{asked} is not a bind mount or shared folder of this engine"
        )));
    }
    let path = Path::new(asked);
    if !path.is_absolute() {
        return Err(refused(format!("{asked} is not an absolute path")));
    }
    let real = path.canonicalize().map_err(|e| {
        refused(format!(
            "{asked} is not a folder on this computer ({e}): it may belong to a remote engine"
        ))
    })?;
    if !real.is_dir() {
        return Err(refused(format!("{asked} is not a folder")));
    }
    Ok(real)
}

/// Opens `target` (a folder or a URL) with the system's opener.
pub fn open(target: &OsStr) -> std::io::Result<()> {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(target)
        .stdin(std::process::Stdio::null())
        .spawn()
        .map(|_| ())
}

/// Opens host folder `path` (a bind mount's or shared folder's, checked
/// again here) with the system's opener.
#[tauri::command]
pub async fn open_host_folder(app: State<'_, App>, path: String) -> Reply<()> {
    let real = allowed(&path, &known(&app).await?)?;
    open(real.as_os_str()).map_err(|e| UiError {
        kind: "Internal".into(),
        message: format!("cannot open {path}: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str, mounts: &[&str]) -> pb::ContainerSummary {
        pb::ContainerSummary {
            id: format!("{name}-id"),
            names: vec![format!("/{name}")],
            mounts: mounts.iter().map(|m| m.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn binds_and_shares_are_listed_once() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site");
        std::fs::create_dir(&site).unwrap();
        let site_s = site.display().to_string();
        let list = folders(
            &[
                container("web", &[&site_s, "data"]),
                container("db", &["/nowhere/at/all", &site_s]),
            ],
            &[dir.path().to_path_buf(), site.clone()],
        );
        let rows: Vec<(&str, &str, Vec<String>, bool)> = list
            .iter()
            .map(|f| {
                (
                    f.path.as_str(),
                    f.kind.as_str(),
                    f.containers.clone(),
                    f.here,
                )
            })
            .collect();
        let top = dir.path().display().to_string();
        assert_eq!(
            rows,
            [
                ("/nowhere/at/all", "bind", vec!["db".to_string()], false),
                (
                    site_s.as_str(),
                    "bind",
                    vec!["web".into(), "db".into()],
                    true
                ),
                (top.as_str(), "shared", vec![], true),
            ]
        );
    }

    #[test]
    fn only_a_known_folder_here_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site");
        std::fs::create_dir(&site).unwrap();
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        let as_folder = |p: &Path| HostFolder {
            path: p.display().to_string(),
            kind: "bind".into(),
            containers: vec![],
            here: true,
        };
        let known = [
            as_folder(&site),
            as_folder(&dir.path().join("file")),
            as_folder(&dir.path().join("gone")),
            as_folder(Path::new("relative")),
        ];
        let site_s = site.display().to_string();
        assert_eq!(
            allowed(&site_s, &known).unwrap(),
            site.canonicalize().unwrap()
        );
        for asked in [
            format!("{site_s}/"),
            format!("{site_s}/.."),
            "/etc".to_string(),
            "/".to_string(),
            String::new(),
        ] {
            let e = allowed(&asked, &known).unwrap_err();
            assert!(
                e.message.contains("not a bind mount"),
                "{asked}: {}",
                e.message
            );
        }
        let file = dir.path().join("file").display().to_string();
        assert!(allowed(&file, &known)
            .unwrap_err()
            .message
            .contains("not a folder"));
        let gone = dir.path().join("gone").display().to_string();
        assert!(allowed(&gone, &known)
            .unwrap_err()
            .message
            .contains("not a folder on this"));
        assert!(allowed("relative", &known)
            .unwrap_err()
            .message
            .contains("absolute"));
    }
}
