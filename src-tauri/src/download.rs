//! Saving a container's logs to a file. The save dialog is opened here,
//! in Rust: the page never names a path, so no page can make the app
//! write anywhere the user did not choose.

use std::io::Write;
use std::path::{Path, PathBuf};

use berth_client::types as pb;
use futures::StreamExt;
use tauri::{AppHandle, State};

use crate::commands::{Reply, UiError};
use crate::dialog::{choose_path, Ask, Pick};
use crate::App;

/// The log file's name for container `name`, safe on every platform.
pub fn file_name(name: &str) -> String {
    format!(
        "{}.log",
        crate::files::safe_name(name.trim_start_matches('/'), "logs")
    )
}

/// The text of one log entry as `docker logs [-t]` prints it.
fn line(e: &pb::LogEntry, timestamps: bool, out: &mut Vec<u8>) {
    if timestamps {
        if let Some(t) = &e.time {
            out.extend_from_slice(t.to_string().as_bytes());
            out.push(b' ');
        }
    }
    out.extend_from_slice(&e.data);
}

/// Writes every log line of container `id` so far to `path`.
async fn write_logs(app: &App, id: &str, timestamps: bool, path: &Path) -> Reply<u64> {
    let req = pb::LogsRequest {
        id: id.to_string(),
        follow: false,
        tail: -1,
        stdout: true,
        stderr: true,
        timestamps: true,
        ..Default::default()
    };
    let mut logs = app.client().logs(req).await?;
    let io = |e: std::io::Error| UiError {
        kind: "Internal".into(),
        message: format!("cannot write {}: {e}", path.display()),
    };
    let tmp = path.with_extension("log.part");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
    let mut buf = Vec::new();
    let mut written = 0;
    while let Some(entry) = logs.next().await {
        buf.clear();
        line(&entry?, timestamps, &mut buf);
        file.write_all(&buf).map_err(io)?;
        written += buf.len() as u64;
    }
    file.flush().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(written)
}

/// The user's Downloads folder: the desktop's own setting (XDG user
/// dirs), else `~/Downloads` when it exists, else the home folder.
pub fn downloads(handle: &AppHandle) -> Option<PathBuf> {
    let paths = tauri::Manager::path(handle);
    if let Ok(d) = paths.download_dir() {
        return Some(d);
    }
    let home = paths.home_dir().ok()?;
    let d = home.join("Downloads");
    Some(if d.is_dir() { d } else { home })
}

/// Asks where to save container `id`'s logs (offering `NAME.log` in the
/// Downloads folder), then writes them there; returns the path, or
/// `None` when the user cancelled.
#[tauri::command]
pub async fn save_logs(
    handle: AppHandle,
    app: State<'_, App>,
    id: String,
    name: String,
    timestamps: bool,
) -> Reply<Option<String>> {
    let mut ask = Ask::new(Pick::Save, "Save the logs", "cannot save there");
    ask.file_name = Some(file_name(&name));
    ask.directory = downloads(&handle);
    ask.filter = Some(("Log files", &["log", "txt"]));
    let Some(path) = choose_path(&handle, ask).await? else {
        return Ok(None);
    };
    write_logs(&app, &id, timestamps, &path).await?;
    Ok(Some(path.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe() {
        assert_eq!(file_name("/web"), "web.log");
        assert_eq!(file_name("../../etc/passwd"), "_.._etc_passwd.log");
        assert_eq!(file_name(""), "logs.log");
        assert_eq!(file_name("a b<c>"), "a b_c_.log");
    }

    #[test]
    fn lines_carry_times_when_asked() {
        let e = pb::LogEntry {
            stream: "stdout".into(),
            data: b"hi\n".to_vec(),
            time: Some(berth_client::Timestamp {
                seconds: 0,
                nanos: 0,
            }),
        };
        let mut out = Vec::new();
        line(&e, false, &mut out);
        assert_eq!(out, b"hi\n");
        out.clear();
        line(&e, true, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "1970-01-01T00:00:00Z hi\n");
    }
}
