//! The Run dialog's command: a container created as `docker run -d` does
//! (pulling a missing image) and started.

use berth_client::types as pb;
use serde::Deserialize;
use tauri::State;

use crate::commands::{Reply, UiError};
use crate::dialog::{choose_path, Ask, Pick};
use crate::App;

/// A published port from the dialog.
#[derive(Debug, Deserialize)]
pub struct PortSpec {
    /// The port on the host (0: any free one).
    pub host: u32,
    /// The port in the container.
    pub container: u32,
    /// `tcp` or `udp`.
    pub protocol: String,
}

/// A host folder mounted into the container.
#[derive(Debug, Deserialize)]
pub struct VolumeSpec {
    /// The host folder (created when missing, as `-v` does), or a named
    /// volume's name.
    pub source: String,
    /// Where it appears in the container.
    pub target: String,
}

/// What the Run dialog asks for.
#[derive(Debug, Deserialize)]
pub struct RunSpec {
    /// The container's name (empty: one is made up).
    pub name: String,
    /// The image.
    pub image: String,
    /// Published ports.
    pub ports: Vec<PortSpec>,
    /// `KEY=VALUE` lines.
    pub env: Vec<String>,
    /// Host folders and named volumes.
    pub volumes: Vec<VolumeSpec>,
    /// The command, split into words (empty: the image's).
    pub cmd: Vec<String>,
}

/// The request `spec` stands for.
fn request(spec: RunSpec) -> Reply<pb::CreateContainerRequest> {
    if spec.image.trim().is_empty() {
        return Err(UiError {
            kind: "InvalidArgument".into(),
            message: "choose an image to run".into(),
        });
    }
    let mounts = spec
        .volumes
        .into_iter()
        .filter(|v| !v.source.is_empty() && !v.target.is_empty())
        .map(|v| {
            let bind = v.source.starts_with('/');
            pb::Mount {
                r#type: if bind { "bind" } else { "volume" }.into(),
                source: v.source,
                target: v.target,
                create_host_path: bind,
                ..Default::default()
            }
        })
        .collect();
    Ok(pb::CreateContainerRequest {
        name: spec.name.trim().to_string(),
        image: spec.image.trim().to_string(),
        cmd: spec.cmd,
        env: spec.env.into_iter().filter(|e| !e.is_empty()).collect(),
        ports: spec
            .ports
            .into_iter()
            .filter(|p| p.container != 0)
            .map(|p| pb::PortBinding {
                host_ip: String::new(),
                host_port: p.host,
                container_port: p.container,
                protocol: p.protocol,
            })
            .collect(),
        mounts,
        ..Default::default()
    })
}

/// Creates (pulling the image when missing) and starts a container;
/// returns its id.
#[tauri::command]
pub async fn run_container(app: State<'_, App>, spec: RunSpec) -> Reply<String> {
    let created = app.client().create_pulling(request(spec)?, |_| {}).await?;
    app.client().start_container(&created.id).await?;
    Ok(created.id)
}

/// The Run dialog's host-folder picker: the system's folder dialog,
/// opened here so the page only learns the folder the user chose (`None`
/// when cancelled).
#[tauri::command]
pub async fn pick_folder(handle: tauri::AppHandle) -> Reply<Option<String>> {
    let mut ask = Ask::new(
        Pick::Folder,
        "Choose a host folder",
        "that folder cannot be shared",
    );
    ask.directory = crate::dialog::home(&handle);
    let Some(path) = choose_path(&handle, ask).await? else {
        return Ok(None);
    };
    Ok(Some(path.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_folders_are_binds_and_names_are_volumes() {
        let req = request(RunSpec {
            name: " web ".into(),
            image: "busybox".into(),
            ports: vec![PortSpec {
                host: 8080,
                container: 80,
                protocol: "tcp".into(),
            }],
            env: vec!["A=1".into(), String::new()],
            volumes: vec![
                VolumeSpec {
                    source: "/srv/site".into(),
                    target: "/www".into(),
                },
                VolumeSpec {
                    source: "data".into(),
                    target: "/data".into(),
                },
            ],
            cmd: vec![],
        })
        .unwrap();
        assert_eq!(req.name, "web");
        assert_eq!(req.env, vec!["A=1"]);
        assert_eq!(req.mounts[0].r#type, "bind");
        assert!(req.mounts[0].create_host_path);
        assert_eq!(req.mounts[1].r#type, "volume");
        assert_eq!(req.ports[0].host_port, 8080);
    }

    #[test]
    fn an_image_is_needed() {
        let spec = RunSpec {
            name: String::new(),
            image: " ".into(),
            ports: vec![],
            env: vec![],
            volumes: vec![],
            cmd: vec![],
        };
        assert_eq!(request(spec).unwrap_err().message, "choose an image to run");
    }
}
