//! Keeping the idle app light on Linux, where the WebView is WebKitGTK
//! (a web process and a network process beside the app). The app shows
//! one local page of tables, so it needs no GPU compositing, no WebGL or
//! Web Audio, no back/forward page cache and no browser-sized memory
//! cache. `bench/desktop.sh` measures the effect (`VARIANTS=all` adds
//! WebKit's defaults for comparison). Measured 2026-12-07, desktop
//! profile, 50 containers, WebKitGTK 2.50 under Xvfb: 480 MiB resident
//! (300 MiB Pss) with WebKit's defaults, 388 MiB (215 MiB Pss) tuned.
//! Either environment variable alone gives the drop; the WebView
//! settings add nothing measurable on top. What remains is mostly
//! Mesa's llvmpipe (libLLVM, ~44 MiB resident in the app and in the web
//! process each): the web process aborts without an EGL display, so GL
//! cannot be left out.
//!
//! `BERTH_DESKTOP_WEBKIT_DEFAULTS` keeps WebKit's own defaults, for
//! measuring: `all` (or `1`) skips everything here, `env` only the
//! environment, `settings` only the WebView settings.

/// The environment WebKitGTK reads when its processes start; a variable
/// the user has set is left alone.
const ENV: &[(&str, &str)] = &[
    // Paint with the CPU into shared memory instead of GL (Mesa's
    // llvmpipe under Xvfb or in a VM): no GL context or its buffers.
    ("WEBKIT_DISABLE_COMPOSITING_MODE", "1"),
    ("WEBKIT_DISABLE_DMABUF_RENDERER", "1"),
    ("WEBKIT_SKIA_ENABLE_CPU_RENDERING", "1"),
];

fn skipped(what: &str) -> bool {
    match std::env::var("BERTH_DESKTOP_WEBKIT_DEFAULTS") {
        Ok(v) => v == "1" || v == "all" || v == what,
        Err(_) => false,
    }
}

/// Sets [`ENV`]; call first thing in `main`, before any thread starts.
pub fn tune_env() {
    if !cfg!(target_os = "linux") || skipped("env") {
        return;
    }
    for (k, v) in ENV {
        if std::env::var_os(k).is_none() {
            std::env::set_var(k, v);
        }
    }
}

/// Applies the settings to the main window's WebView. (The hardware
/// acceleration policy is left alone: WEBKIT_DISABLE_COMPOSITING_MODE
/// already keeps the page out of GL, and switching the policy on a live
/// view made WebKitWebDriver's screenshots hang.)
#[cfg(target_os = "linux")]
pub fn tune_webview(window: &tauri::WebviewWindow) {
    use webkit2gtk::{CacheModel, SettingsExt, WebContextExt, WebViewExt};
    if skipped("settings") {
        return;
    }
    let _ = window.with_webview(|w| {
        let view = w.inner();
        if let Some(s) = view.settings() {
            s.set_enable_webgl(false);
            s.set_enable_webaudio(false);
            s.set_enable_page_cache(false);
            s.set_enable_media(false);
        }
        if let Some(c) = view.context() {
            c.set_cache_model(CacheModel::DocumentViewer);
        }
    });
}

/// Nothing to tune where the WebView is not WebKitGTK.
#[cfg(not(target_os = "linux"))]
pub fn tune_webview(_window: &tauri::WebviewWindow) {}
