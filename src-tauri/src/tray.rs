//! The tray (menu-bar) icon: whether the engine is connected and how many
//! containers run, the VM's phase, and quick actions (show the window,
//! start or stop the VM, quit). The window tells it the engine's state
//! through [`tray_status`] as that state changes; nothing polls.

use std::sync::Mutex;

use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{MouseButton, MouseButtonState, TrayIcon, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager, Wry};

/// The tray's items whose text or state changes.
pub struct Tray {
    icon: TrayIcon<Wry>,
    engine: MenuItem<Wry>,
    vm: MenuItem<Wry>,
    start: MenuItem<Wry>,
    stop: MenuItem<Wry>,
    /// The engine's line, kept for the tooltip.
    engine_line: Mutex<String>,
}

/// The engine's line in the tray menu.
pub fn engine_line(connected: bool, running: u32) -> String {
    match (connected, running) {
        (false, _) => "Engine: not reachable".to_string(),
        (true, 1) => "Engine: connected, 1 container running".to_string(),
        (true, n) => format!("Engine: connected, {n} containers running"),
    }
}

/// The VM's line in the tray menu.
pub fn vm_line(phase: &str) -> String {
    match phase {
        "ready" => "VM: running".to_string(),
        "stopped" => "VM: stopped".to_string(),
        other => format!("VM: {other}"),
    }
}

/// Adds the tray icon. A desktop without a tray (no status-notifier host)
/// gets none, and the app runs on without it.
pub fn install(app: &AppHandle) {
    match build(app) {
        Ok(tray) => {
            app.manage(tray);
        }
        Err(e) => eprintln!("berth-desktop: no tray icon: {e}"),
    }
}

fn build(app: &AppHandle) -> tauri::Result<Tray> {
    let phase = crate::vm::status_now().phase;
    let engine = MenuItem::with_id(app, "engine", engine_line(false, 0), false, None::<&str>)?;
    let vm = MenuItem::with_id(app, "vm", vm_line(&phase), false, None::<&str>)?;
    let show = MenuItem::with_id(app, "show", "Show Berth", true, None::<&str>)?;
    let start = MenuItem::with_id(app, "vm-start", "Start the VM", true, None::<&str>)?;
    let stop = MenuItem::with_id(app, "vm-stop", "Stop the VM", true, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit Berth", true, None::<&str>)?;
    let menu = Menu::with_items(
        app,
        &[
            &engine,
            &vm,
            &PredefinedMenuItem::separator(app)?,
            &show,
            &start,
            &stop,
            &PredefinedMenuItem::separator(app)?,
            &quit,
        ],
    )?;
    let mut builder = TrayIconBuilder::with_id("berth")
        .tooltip(format!("Berth: {}", engine_line(false, 0)))
        .menu(&menu)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| match event.id.as_ref() {
            "show" => show_window(app),
            "vm-start" => crate::vm::spawn_action(app, true),
            "vm-stop" => crate::vm::spawn_action(app, false),
            "quit" => app.exit(0),
            _ => {}
        })
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                show_window(tray.app_handle());
            }
        });
    if let Some(icon) = app.default_window_icon() {
        builder = builder.icon(icon.clone());
    }
    let icon = builder.build(app)?;
    let tray = Tray {
        icon,
        engine,
        vm,
        start,
        stop,
        engine_line: Mutex::new(engine_line(false, 0)),
    };
    tray.set_vm(&phase);
    Ok(tray)
}

impl Tray {
    fn set_vm(&self, phase: &str) {
        let _ = self.vm.set_text(vm_line(phase));
        let _ = self.start.set_enabled(phase == "stopped");
        let _ = self.stop.set_enabled(phase != "stopped");
    }

    fn tooltip(&self) {
        let engine = self.engine_line.lock().unwrap().clone();
        let _ = self.icon.set_tooltip(Some(format!("Berth: {engine}")));
    }
}

/// Brings the main window up (shown, unminimized, focused).
fn show_window(app: &AppHandle) {
    if let Some(w) = app.get_webview_window("main") {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}

/// The VM's phase changed: its line and which of start/stop is offered.
pub fn vm_changed(app: &AppHandle, phase: &str) {
    if let Some(tray) = app.try_state::<Tray>() {
        tray.set_vm(phase);
    }
}

/// The window's word on the engine: connected or not, and how many
/// containers run. Returns the line the tray shows.
#[tauri::command]
pub fn tray_status(app: AppHandle, connected: bool, running: u32) -> String {
    let line = engine_line(connected, running);
    if let Some(tray) = app.try_state::<Tray>() {
        let _ = tray.engine.set_text(&line);
        *tray.engine_line.lock().unwrap() = line.clone();
        tray.tooltip();
        tray.set_vm(&crate::vm::status_now().phase);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_the_engine_and_vm_state_in_words() {
        assert_eq!(engine_line(false, 3), "Engine: not reachable");
        assert_eq!(
            engine_line(true, 1),
            "Engine: connected, 1 container running"
        );
        assert_eq!(
            engine_line(true, 0),
            "Engine: connected, 0 containers running"
        );
        assert_eq!(vm_line("ready"), "VM: running");
        assert_eq!(vm_line("stopped"), "VM: stopped");
        assert_eq!(vm_line("booting"), "VM: booting");
    }
}
