//! Berth Desktop: a Tauri 2 window over `berth-client`.
//!
//! Every command in [`commands`] is a thin call into the client; long
//! operations (pull progress, logs, events, terminals) are [`streams`]
//! that send their items to the UI over a `tauri::ipc::Channel` until
//! they end or the UI calls `stop_stream`. [`vm`] starts and stops the
//! VM the app shares with the CLI; [`tray`] is the menu-bar icon.

#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

mod commands;
mod dialog;
mod download;
mod editor;
mod files;
mod host;
mod manage;
mod prune;
mod run;
mod settings;
mod streams;
mod tray;
mod vm;
mod webkit;

use berth_client::{Client, ConnectOptions};
use tauri::Manager;

/// What every command shares: the client (one connection, dialed on
/// first use and again after the agent comes back) and the live streams.
pub struct App {
    /// The agent's client: `BERTH_HOST` when set, else the endpoint the
    /// user chose in Settings, else discovery.
    client: std::sync::RwLock<Client>,
    /// The streams and sessions the UI has open.
    pub streams: streams::Registry,
}

impl App {
    /// The client now (a cheap clone sharing its connection).
    pub fn client(&self) -> Client {
        self.client.read().unwrap().clone()
    }

    /// Talks to `endpoint` from now on (`None`: `BERTH_HOST`, else
    /// discovery).
    pub fn use_endpoint(&self, endpoint: Option<String>) {
        let options = ConnectOptions {
            host: endpoint,
            ..Default::default()
        };
        *self.client.write().unwrap() = Client::new(options);
    }
}

fn main() {
    let _ = commands::STARTED.set(std::time::Instant::now());
    webkit::tune_env();
    let app = App {
        client: std::sync::RwLock::new(Client::new(ConnectOptions::default())),
        streams: streams::Registry::default(),
    };
    tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .manage(app)
        .manage(files::volume::Helpers::default())
        .setup(|app| {
            let store = settings::Store::open(settings::path(app.handle()));
            let saved = store.get().endpoint;
            if std::env::var_os("BERTH_HOST").is_none() && !saved.is_empty() {
                app.state::<App>().use_endpoint(Some(saved));
            }
            app.manage(store);
            if let Some(w) = app.get_webview_window("main") {
                webkit::tune_webview(&w);
            }
            tray::install(app.handle());
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::connection,
            commands::version,
            commands::info,
            commands::list_containers,
            commands::container_action,
            commands::inspect_container,
            commands::list_images,
            commands::remove_image,
            commands::list_volumes,
            commands::list_networks,
            commands::open_port,
            commands::painted,
            commands::change_painted,
            manage::tag_image,
            manage::image_history,
            manage::inspect_image,
            manage::create_volume,
            manage::remove_volume,
            manage::inspect_volume,
            manage::create_network,
            manage::remove_network,
            manage::inspect_network,
            download::save_logs,
            files::list_files,
            files::read_text_file,
            files::save_text_file,
            files::transfer::download_file,
            files::transfer::upload_file,
            files::volume::list_volume_files,
            files::volume::read_volume_file,
            files::volume::save_volume_file,
            files::volume::download_volume_file,
            files::volume::upload_volume_file,
            files::volume::close_volume,
            host::host_folders,
            host::open_host_folder,
            editor::editor,
            editor::open_in_editor,
            prune::disk_usage,
            prune::prune,
            settings::get_settings,
            settings::save_settings,
            settings::use_endpoint,
            run::run_container,
            run::pick_folder,
            tray::tray_status,
            vm::vm_status,
            vm::vm_start,
            vm::vm_stop,
            vm::vm_console,
            streams::events,
            streams::pull,
            streams::push,
            streams::logs,
            streams::stats,
            streams::terminal,
            streams::terminal_input,
            streams::terminal_resize,
            streams::stop_stream,
        ])
        .build(tauri::generate_context!())
        .expect("error while starting Berth Desktop")
        .run(|handle, event| {
            if let tauri::RunEvent::Exit = event {
                files::volume::on_exit(handle);
                settings::on_exit(handle);
            }
        });
}
