//! JSON files replaced atomically: the engine's records and the monitor's
//! state files.

use serde::{Deserialize, Serialize};

/// Writes `value` as JSON to `path` atomically (temporary file, rename).
pub fn write_json_atomic<T: Serialize>(path: &std::path::Path, value: &T) -> std::io::Result<()> {
    write_json_via_temp(path, value, false)
}

/// Like [`write_json_atomic`], and the bytes reach the disk before the
/// rename can: for the records users make (networks, volumes), which must
/// not come back empty after a power cut or a killed VM (ext4 may commit a
/// rename to a new name before the file's data). Not for state written on
/// every container start, where the fsync would cost each start.
pub fn write_json_durable<T: Serialize>(path: &std::path::Path, value: &T) -> std::io::Result<()> {
    write_json_via_temp(path, value, true)
}

fn write_json_via_temp<T: Serialize>(
    path: &std::path::Path,
    value: &T,
    sync: bool,
) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?)?;
    if sync {
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Reads JSON from `path`.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &std::path::Path) -> std::io::Result<T> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}
