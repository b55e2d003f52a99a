//! The engine's layering, enforced by the build: no engine module imports
//! a front end (`api`, `dockerapi`, `server`, the raw port `relay`), PID 1's code (`init`), or the API's
//! generated types (`berth_api::v1`, prost, tonic). Records on disk and
//! the engine's calls use Berth's own types; `api/` translates.

use std::path::{Path, PathBuf};

/// The engine: every module of the agent's library except the front ends
/// (`api`, `dockerapi`), `init` and `server`.
const ENGINE: &[&str] = &[
    "build",
    "cgroups",
    "image",
    "network",
    "runtime",
    "shares",
    "snapshot",
    "store",
    "volume",
    "util",
    "digest.rs",
    "error.rs",
    "events.rs",
    "host.rs",
];

/// What an engine module may not name.
const FORBIDDEN: &[&str] = &[
    "crate::api",
    "crate::dockerapi",
    "crate::init",
    "crate::relay",
    "crate::server",
    "berth_api::v1",
    "prost",
    "tonic",
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .expect("a readable source folder")
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            rust_files(&p, out);
        }
    } else if path.extension().is_some_and(|x| x == "rs") {
        out.push(path.to_path_buf());
    }
}

/// The forbidden names `source` uses outside comments.
fn violations(source: &str) -> Vec<(usize, &'static str)> {
    let mut found = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for f in FORBIDDEN {
            if code.contains(f) {
                found.push((n + 1, *f));
            }
        }
    }
    found
}

#[test]
fn no_engine_module_imports_the_grpc_layer_init_or_protobuf_types() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for part in ENGINE {
        let p = src.join(part);
        assert!(p.exists(), "{} is gone: update ENGINE", p.display());
        rust_files(&p, &mut files);
    }
    assert!(files.len() > 50, "only {} engine files found", files.len());
    let mut bad = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("a readable source file");
        for (line, what) in violations(&text) {
            bad.push(format!(
                "{}:{line} uses {what}",
                f.strip_prefix(&src).unwrap_or(f).display()
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "engine modules cross the layering:\n{}",
        bad.join("\n")
    );
}

#[test]
fn every_module_of_the_library_is_engine_or_a_known_outer_layer() {
    let lib = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"))
        .expect("lib.rs");
    for line in lib.lines() {
        if let Some(name) = line
            .strip_prefix("pub mod ")
            .and_then(|l| l.strip_suffix(';'))
        {
            let known = ["api", "dockerapi", "init", "relay", "server"].contains(&name)
                || ENGINE.contains(&name)
                || ENGINE.contains(&format!("{name}.rs").as_str());
            assert!(
                known,
                "module {name} is neither engine nor api/dockerapi/init/relay/server: add it to ENGINE"
            );
        }
    }
}

#[test]
fn the_scan_sees_imports_and_ignores_comments() {
    assert_eq!(
        violations("use berth_api::v1::Mount;"),
        [(1, "berth_api::v1")]
    );
    assert_eq!(
        violations("    crate::init::modules_ready().await;"),
        [(1, "crate::init")]
    );
    assert!(violations("// the api layer uses tonic").is_empty());
    assert!(violations("use berth_api::names::familiar;").is_empty());
}
