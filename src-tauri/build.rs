//! Builds the Tauri context. The UI (`ui/dist`) is embedded into the
//! binary; when it has not been built yet (a plain `cargo build` of the
//! workspace before `npm run build`), a placeholder page saying so is
//! written there, so the workspace always compiles.

use std::path::Path;

fn main() {
    let dist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/dist");
    let index = dist.join("index.html");
    if !index.exists() {
        std::fs::create_dir_all(&dist).expect("cannot create ui/dist");
        std::fs::write(
            &index,
            "<!doctype html><meta charset=\"utf-8\"><title>Berth</title>\
             <p>The UI was not built: run scripts/build-desktop.sh.</p>",
        )
        .expect("cannot write ui/dist/index.html");
    }
    println!("cargo:rerun-if-changed=../ui/dist");
    tauri_build::build()
}
