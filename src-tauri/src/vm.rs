//! The Engine view's VM controls and the tray's: status, start and stop of
//! the one VM the app shares with the CLI (the same state directory,
//! settings and supervisor), each a call into `berth_client::vm` — the
//! functions `berth vm start` and `berth vm stop` call.

use std::path::PathBuf;

use berth_client::vm::{self, Progress, Started};
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::{AppHandle, Emitter, Manager};

use crate::commands::{Reply, UiError};
use crate::App;

/// The VM as the Engine view shows it.
#[derive(Debug, Clone, Serialize)]
pub struct VmStatus {
    /// `stopped`, `booting`, `ready`, … (the supervisor's phase).
    pub phase: String,
    /// Where its agent is, while it runs.
    pub endpoint: String,
    /// The VMM (`qemu`, …), while it runs.
    pub backend: String,
    /// Milliseconds from launch to the agent's first answer.
    pub boot_ms: Option<u64>,
    /// Restarts after crashes since it was started.
    pub restarts: u32,
    /// Virtual CPUs in the saved settings.
    pub cpus: u32,
    /// Memory in MiB in the saved settings.
    pub memory_mib: u32,
    /// The state directory the app and the CLI share.
    pub dir: String,
}

/// The state directory: `BERTH_VM_DIR` when set (as the CLI reads it),
/// else the default one.
pub fn dir() -> PathBuf {
    std::env::var_os("BERTH_VM_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(vm::default_dir)
}

/// The `berth` CLI that runs the VM's supervisor: the one installed
/// beside the app, else the one on `PATH`.
fn berth_cli() -> PathBuf {
    let name = if cfg!(windows) { "berth.exe" } else { "berth" };
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join(name)))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// The VM's status now.
pub fn status_now() -> VmStatus {
    let dir = dir();
    let (phase, run) = vm::phase(&dir);
    let settings = vm::Settings::load(&dir).unwrap_or_default();
    let running = phase != "stopped";
    VmStatus {
        phase,
        endpoint: if running { run.endpoint } else { String::new() },
        backend: if running { run.backend } else { String::new() },
        boot_ms: run.boot_ms.filter(|_| running),
        restarts: run.restarts,
        cpus: settings.cpus,
        memory_mib: settings.memory_mib,
        dir: dir.display().to_string(),
    }
}

/// Tells every window and the tray that the VM changed.
fn changed(app: &AppHandle) {
    let status = status_now();
    crate::tray::vm_changed(app, &status.phase);
    let _ = app.emit("vm", status);
}

/// The VM's phase, endpoint and settings.
#[tauri::command]
pub fn vm_status() -> VmStatus {
    status_now()
}

/// Boots the VM as `berth vm start` does and waits for its agent; each
/// step goes to `channel` as a sentence. Unless `BERTH_HOST` or a saved
/// endpoint says otherwise, the app then finds its agent by discovery.
#[tauri::command]
pub async fn vm_start(app: AppHandle, channel: Channel<String>) -> Reply<VmStatus> {
    let _ = channel.send("Booting the VM…".into());
    let tell = channel.clone();
    let on = move |p: &Progress| {
        let line = match p {
            Progress::Booting { attempt } if *attempt > 1 => {
                format!("Booting the VM again (attempt {attempt})…")
            }
            Progress::Crashed { reason } => format!("The VM crashed ({reason}); restarting it."),
            _ => return,
        };
        let _ = tell.send(line);
    };
    let result = vm::start_background(&berth_cli(), &dir(), on).await;
    changed(&app);
    match result? {
        Started::AlreadyRunning { endpoint } => {
            let _ = channel.send(format!(
                "The VM was running already; its agent is at {endpoint}."
            ));
        }
        Started::Ready { boot_ms, endpoint } => {
            let _ = channel.send(format!(
                "The VM is ready ({:.1} s); its agent is at {endpoint}.",
                boot_ms as f64 / 1000.0
            ));
        }
    }
    rediscover(&app);
    Ok(status_now())
}

/// Powers the VM off as `berth vm stop` does.
#[tauri::command]
pub async fn vm_stop(app: AppHandle) -> Reply<VmStatus> {
    let result = vm::stop(&dir()).await;
    changed(&app);
    result?;
    rediscover(&app);
    Ok(status_now())
}

/// The VM's console log (the kernel's, init's and the agent's lines),
/// its last `max` bytes.
#[tauri::command]
pub fn vm_console(max: Option<u64>) -> Reply<String> {
    use std::io::{Read, Seek, SeekFrom};
    let path = dir().join("console.log");
    let Ok(mut f) = std::fs::File::open(&path) else {
        return Ok(String::new());
    };
    let max = max.unwrap_or(64 * 1024);
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let io = |e: std::io::Error| UiError {
        kind: "Internal".into(),
        message: format!("cannot read the VM's console log: {e}"),
    };
    f.seek(SeekFrom::Start(len.saturating_sub(max)))
        .map_err(io)?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).map_err(io)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Finds the agent again by discovery when nothing pins the endpoint (the
/// VM's agent appeared or went away).
fn rediscover(app: &AppHandle) {
    let pinned = std::env::var_os("BERTH_HOST").is_some()
        || !app
            .state::<crate::settings::Store>()
            .get()
            .endpoint
            .is_empty();
    if !pinned {
        app.state::<App>().use_endpoint(None);
    }
}

/// Starts or stops the VM for the tray, in the background; a failure is
/// told to the window as a `vm-error` event.
pub fn spawn_action(app: &AppHandle, start: bool) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let r = if start {
            let on = |_: &Progress| {};
            vm::start_background(&berth_cli(), &dir(), on)
                .await
                .map(|_| ())
        } else {
            vm::stop(&dir()).await.map(|_| ())
        };
        changed(&app);
        match r {
            Ok(()) => rediscover(&app),
            Err(e) => {
                let _ = app.emit("vm-error", UiError::from(e));
            }
        }
    });
}
