//! The app's own settings (`settings.json` in its config folder), and
//! what happens on quit: with "stop the engine when I quit", the VM the
//! app shares with the CLI is stopped as `berth vm stop` stops it (its
//! supervisor gets SIGTERM and powers it off). Otherwise quitting leaves
//! the engine and its containers running.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_client::vm::RunState;
use serde::{Deserialize, Serialize};
use tauri::{AppHandle, Manager, State};

use crate::commands::{Reply, UiError};

/// What the user chose.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Stop the VM when the app quits.
    pub stop_engine_on_quit: bool,
    /// Engines the user saved, to switch between.
    pub endpoints: Vec<SavedEndpoint>,
    /// The endpoint in use; empty: `BERTH_HOST`, else discovery.
    pub endpoint: String,
}

/// An engine the user saved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SavedEndpoint {
    /// What the user calls it.
    pub name: String,
    /// Its URL, as `BERTH_HOST` takes it (`unix://…`, `tcp://…`, `vsock://…`).
    pub url: String,
}

/// The settings and where they are kept.
pub struct Store {
    path: Option<PathBuf>,
    current: Mutex<Settings>,
}

impl Store {
    /// The settings in `path` (defaults when it is missing or unreadable).
    pub fn open(path: Option<PathBuf>) -> Store {
        let current = path
            .as_deref()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Store {
            path,
            current: Mutex::new(current),
        }
    }

    /// The settings now.
    pub fn get(&self) -> Settings {
        self.current.lock().unwrap().clone()
    }

    /// Saves `s` (write, then rename) and makes it current.
    pub fn set(&self, s: Settings) -> std::io::Result<()> {
        if let Some(path) = &self.path {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(&s)?)?;
            std::fs::rename(&tmp, path)?;
        }
        *self.current.lock().unwrap() = s;
        Ok(())
    }

    /// Where they are kept.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

/// The settings file in the app's config folder.
pub fn path(app: &AppHandle) -> Option<PathBuf> {
    app.path()
        .app_config_dir()
        .ok()
        .map(|d| d.join("settings.json"))
}

/// The settings, what the quit setting will stop, and where they live.
#[derive(Debug, Serialize)]
pub struct SettingsView {
    /// The settings.
    pub settings: Settings,
    /// The file they are saved in.
    pub file: String,
    /// Whether a VM runs now (only a VM is stopped on quit; a local
    /// agent is left to its service).
    pub vm_running: bool,
}

/// The settings as the Settings view shows them.
#[tauri::command]
pub fn get_settings(store: State<'_, Store>) -> SettingsView {
    SettingsView {
        settings: store.get(),
        file: store
            .path()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        vm_running: running_vm(&crate::vm::dir()).is_some(),
    }
}

/// Saves the settings.
#[tauri::command]
pub fn save_settings(store: State<'_, Store>, settings: Settings) -> Reply<()> {
    store.set(settings).map_err(|e| UiError {
        kind: "Internal".into(),
        message: format!("cannot save the settings: {e}"),
    })
}

/// Switches the app to `url` (empty: `BERTH_HOST`, else discovery) and
/// remembers the choice; the UI then connects again.
#[tauri::command]
pub fn use_endpoint(store: State<'_, Store>, app: State<'_, crate::App>, url: String) -> Reply<()> {
    let url = url.trim().to_string();
    if !url.is_empty() && !url.contains("://") {
        return Err(UiError {
            kind: "InvalidArgument".into(),
            message: format!(
                "{url} is not an endpoint: write unix:///path, tcp://host:port or vsock://cid:port"
            ),
        });
    }
    let mut s = store.get();
    s.endpoint = url.clone();
    store.set(s).map_err(|e| UiError {
        kind: "Internal".into(),
        message: format!("cannot save the settings: {e}"),
    })?;
    app.use_endpoint((!url.is_empty()).then_some(url));
    Ok(())
}

/// The VM's supervisor in `dir`, when it is alive.
fn running_vm(dir: &Path) -> Option<RunState> {
    RunState::load(dir).filter(|r| r.supervisor_alive())
}

/// Stops the VM kept in `dir` with `berth vm stop`'s own function (its
/// supervisor gets SIGTERM and powers it off). Returns whether a VM was
/// running.
pub fn stop_vm(dir: &Path) -> bool {
    match tauri::async_runtime::block_on(berth_client::vm::stop(dir)) {
        Ok(true) => {
            eprintln!("berth-desktop: stopped the VM, as the settings ask on quit");
            true
        }
        Ok(false) => false,
        Err(e) => {
            eprintln!("berth-desktop: {e}");
            true
        }
    }
}

/// Runs when the app exits: applies "stop the engine when I quit".
pub fn on_exit(app: &AppHandle) {
    if app.state::<Store>().get().stop_engine_on_quit {
        stop_vm(&crate::vm::dir());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_saved_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app/settings.json");
        let s = Store::open(Some(path.clone()));
        assert!(!s.get().stop_engine_on_quit);
        s.set(Settings {
            stop_engine_on_quit: true,
            ..Default::default()
        })
        .unwrap();
        assert!(Store::open(Some(path)).get().stop_engine_on_quit);
    }

    #[test]
    fn quitting_stops_a_running_vm_supervisor() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!stop_vm(dir.path()));
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let run = RunState {
            supervisor_pid: child.id(),
            phase: "ready".into(),
            ..Default::default()
        };
        std::fs::write(
            dir.path().join("run.json"),
            serde_json::to_vec(&run).unwrap(),
        )
        .unwrap();
        // The child stays a zombie until waited for, so kill(pid, 0)
        // still finds it: reap it on another thread while stop_vm waits.
        let reaper = std::thread::spawn(move || child.wait().unwrap());
        assert!(stop_vm(dir.path()));
        let status = reaper.join().unwrap();
        assert!(!status.success(), "sleep was signalled: {status:?}");
    }
}
