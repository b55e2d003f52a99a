//! What a `kill -9` can leave of the records kept as files beside the
//! database: networks (`networks/<id>.json`), volumes
//! (`volumes/<name>/volume.json`), containers (`containers/<id>/
//! container.json` and the monitor's options `monitor.json`) and compiled
//! seccomp programs (`seccomp/`). Each is written to a temporary file and
//! renamed into place (see [`crate::util::jsonfile`]), so a kill between
//! the two leaves the record as it was and a temporary file beside it,
//! which no one would ever remove: the agent removes them at start,
//! before it opens any of these. A monitor's own `run.json` is left
//! alone: its writer, the monitor, may be alive and writing it.

use std::path::{Path, PathBuf};

/// Removes the temporary files of interrupted record writes under the
/// agent's `root`; returns the paths removed.
pub fn remove_half_written(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let tmp = |p: &Path| p.extension().is_some_and(|e| e == "tmp");
    let files = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    found.extend(files(&root.join("networks")).into_iter().filter(|p| tmp(p)));
    found.extend(files(&root.join("seccomp")).into_iter().filter(|p| tmp(p)));
    for volume in files(&root.join("volumes")) {
        found.push(volume.join("volume.tmp"));
    }
    for container in files(&root.join("containers")) {
        found.push(container.join("container.tmp"));
        found.push(container.join("monitor.tmp"));
    }
    found.retain(|p| p.symlink_metadata().is_ok_and(|m| m.is_file()));
    for p in &found {
        match std::fs::remove_file(p) {
            Ok(()) => tracing::info!("removed {}, left by an interrupted write", p.display()),
            Err(e) => tracing::warn!("{} cannot be removed: {e}", p.display()),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_of_records_go_and_records_and_run_state_stay() {
        let root = tempfile::tempdir().expect("a temp dir");
        let r = root.path();
        let id = "c".repeat(64);
        for d in ["networks", "seccomp", "volumes/v/_data"] {
            std::fs::create_dir_all(r.join(d)).expect("made");
        }
        std::fs::create_dir_all(r.join("containers").join(&id)).expect("made");
        let c = r.join("containers").join(&id);
        let keep = [
            r.join("networks/n.json"),
            r.join("volumes/v/volume.json"),
            r.join("volumes/v/_data/data.tmp"),
            c.join("container.json"),
            c.join("run.tmp"),
            r.join("seccomp/abc"),
        ];
        let gone = [
            r.join("networks/n.tmp"),
            r.join("volumes/v/volume.tmp"),
            c.join("container.tmp"),
            c.join("monitor.tmp"),
            r.join("seccomp/.42.tmp"),
        ];
        for p in keep.iter().chain(&gone) {
            std::fs::write(p, "{").expect("written");
        }
        let mut removed = remove_half_written(r);
        removed.sort();
        let mut want = gone.to_vec();
        want.sort();
        assert_eq!(removed, want);
        assert!(keep.iter().all(|p| p.exists()));
        assert!(gone.iter().all(|p| !p.exists()));
    }
}
