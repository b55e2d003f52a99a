//! Downloads and uploads for the Files tab (and a volume's files): the
//! host path comes from the system's dialog ([`crate::dialog`]), never
//! from the page; a download is written beside its place, then renamed.

use std::io::Write;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use tauri::{AppHandle, State};
use tokio::io::AsyncReadExt;

use super::archive::{damaged, file_header, trailer};
use super::{clean_path, invalid, now, read_tar, split};
use crate::commands::{Reply, UiError};
use crate::dialog::{choose_path, Ask, Pick};
use crate::App;

/// A file name made of `name` (a container's), safe on every platform.
pub fn safe_name(name: &str, fallback: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_. ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = clean.trim_start_matches('.').trim();
    if clean.is_empty() {
        fallback.to_string()
    } else {
        clean.to_string()
    }
}

/// Writes container `id`'s `path` to the host file `to`: a file's data,
/// or with `folder` the folder as a tar. Written beside it first, then
/// renamed, so a failed download leaves nothing half written.
async fn write_download(app: &App, id: &str, path: &str, folder: bool, to: &Path) -> Reply<u64> {
    let io = |e: std::io::Error| UiError {
        kind: "Internal".into(),
        message: format!("cannot write {}: {e}", to.display()),
    };
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    let file = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io)?);
    let result = if folder {
        async {
            let mut file = file;
            let mut written = 0u64;
            let mut stream = app.client().copy_from(id, path, true).await?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                file.write_all(&chunk).map_err(io)?;
                written += chunk.len() as u64;
            }
            Ok((file, written))
        }
        .await
    } else {
        let (shown, to) = (path.to_string(), to.to_path_buf());
        read_tar(
            app,
            id,
            path,
            true,
            (file, 0u64),
            move |(file, written), m, d| {
                if !m.is_file() {
                    return Err(invalid(format!("{shown} is not a file to download")));
                }
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = d.read(&mut buf).map_err(|e| damaged(&e.to_string()))?;
                    if n == 0 {
                        break;
                    }
                    file.write_all(&buf[..n]).map_err(|e| UiError {
                        kind: "Internal".into(),
                        message: format!("cannot write {}: {e}", to.display()),
                    })?;
                    *written += n as u64;
                }
                if *written != m.size {
                    return Err(damaged("the file's data ended early"));
                }
                Ok(false)
            },
        )
        .await
    };
    let result = result.and_then(|(mut file, written)| file.flush().map(|()| written).map_err(io));
    match result {
        Ok(written) => {
            std::fs::rename(&tmp, to).map_err(io)?;
            Ok(written)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Asks where to save `path` of container `id` (a folder as `NAME.tar`,
/// `NAME` from `shown`'s last name or `fallback`), then saves it there;
/// the host path, or `None` when the user cancelled.
pub async fn download(
    handle: &AppHandle,
    app: &App,
    id: &str,
    path: &str,
    folder: bool,
    shown: &str,
    fallback: &str,
) -> Reply<Option<String>> {
    let name = safe_name(split(shown).1, fallback);
    let mut ask = Ask::new(
        Pick::Save,
        if folder {
            "Save the folder as a tar"
        } else {
            "Save the file"
        },
        "cannot save there",
    );
    ask.file_name = Some(if folder { format!("{name}.tar") } else { name });
    ask.directory = crate::download::downloads(handle);
    let Some(to) = choose_path(handle, ask).await? else {
        return Ok(None);
    };
    write_download(app, id, path, folder, &to).await?;
    Ok(Some(to.display().to_string()))
}

/// Asks where to save `path` of container `id` (a folder as `NAME.tar`),
/// then saves it there; returns the host path, or `None` when the user
/// cancelled.
#[tauri::command]
pub async fn download_file(
    handle: AppHandle,
    app: State<'_, App>,
    id: String,
    path: String,
    folder: bool,
) -> Reply<Option<String>> {
    let path = clean_path(&path)?;
    download(&handle, &app, &id, &path, folder, &path, "root").await
}

/// Asks for a host file, then copies it into folder `folder` of
/// container `id` (replacing a file of the same name; `shown` names the
/// folder in the dialog's title); its name, or `None` when the user
/// cancelled.
pub async fn upload(
    handle: &AppHandle,
    app: &App,
    id: &str,
    folder: &str,
    shown: &str,
) -> Reply<Option<String>> {
    let mut ask = Ask::new(
        Pick::File,
        format!("Upload a file to {shown}"),
        "that file cannot be uploaded",
    );
    ask.directory = crate::dialog::home(handle);
    let Some(from) = choose_path(handle, ask).await? else {
        return Ok(None);
    };
    let cannot = |e: std::io::Error| UiError {
        kind: "InvalidArgument".into(),
        message: format!("cannot read {}: {e}", from.display()),
    };
    let file = tokio::fs::File::open(&from).await.map_err(cannot)?;
    let meta = file.metadata().await.map_err(cannot)?;
    if !meta.is_file() {
        return Err(invalid(format!("{} is not a file", from.display())));
    }
    let name = from
        .file_name()
        .ok_or_else(|| invalid(format!("{} has no file name", from.display())))?;
    #[cfg(unix)]
    let (bytes, mode) = {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::PermissionsExt;
        (name.as_bytes().to_vec(), meta.permissions().mode() & 0o7777)
    };
    #[cfg(not(unix))]
    let (bytes, mode) = (name.to_string_lossy().as_bytes().to_vec(), 0o644);
    let size = meta.len();
    let input = std::io::Cursor::new(file_header(&bytes, size, mode, 0, 0, now())?)
        .chain(file.take(size))
        .chain(std::io::Cursor::new(trailer(size)));
    app.client()
        .copy_to(id, folder, false, Box::new(input))
        .await?;
    Ok(Some(name.to_string_lossy().into_owned()))
}

/// Asks for a host file, then copies it into folder `folder` of
/// container `id` (replacing a file of the same name); returns its name,
/// or `None` when the user cancelled.
#[tauri::command]
pub async fn upload_file(
    handle: AppHandle,
    app: State<'_, App>,
    id: String,
    folder: String,
) -> Reply<Option<String>> {
    let folder = clean_path(&folder)?;
    upload(&handle, &app, &id, &folder, &folder).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe() {
        assert_eq!(safe_name("../a b<c>", "f"), "_a b_c_");
        assert_eq!(safe_name("..", "root"), "root");
        assert_eq!(safe_name("", "root"), "root");
    }
}
