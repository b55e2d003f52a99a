//! A container's files, for the Files tab: folders listed, files
//! downloaded and uploaded, small text files edited. Everything goes
//! through `berth-client`'s `copy_from` (a tar of a path) and `copy_to`
//! (a tar unpacked into a folder); the tar is read and written with the
//! `tar` crate as the bytes arrive, so nothing large is held in memory
//! (`files/archive.rs`). Downloads and uploads are in `files/transfer.rs`,
//! their save and open dialogs opened in Rust: the page never names a host
//! path. `files/volume.rs` shows a volume's files the same way.

use serde::Serialize;
use tauri::State;

use crate::commands::{Reply, UiError};
use crate::App;

mod archive;
pub mod transfer;
pub mod volume;

use archive::{damaged, read_stream, small_file, Member};
pub use transfer::safe_name;

/// The largest file the editor opens or saves (256 KiB).
pub const EDIT_LIMIT: u64 = 256 * 1024;

fn invalid(message: String) -> UiError {
    UiError {
        kind: "InvalidArgument".into(),
        message,
    }
}

/// One entry of a folder as the Files tab shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileEntry {
    /// The name in its folder.
    pub name: String,
    /// `folder`, `file`, `link` or `other`.
    pub kind: String,
    /// The size in bytes (0 for a folder or link).
    pub size: u64,
    /// The permission bits.
    pub mode: u32,
    /// A link's target.
    pub link: String,
    /// The modification time, in seconds since 1970.
    pub mtime: u64,
}

/// A folder's entries, or the one file at a path that is not a folder
/// (a link to a file, followed).
#[derive(Debug, Serialize)]
pub struct Listing {
    /// The path listed, cleaned (`/etc`).
    pub path: String,
    /// Whether it is a folder.
    pub folder: bool,
    /// Folders first, then by name; the file itself when it is not a folder.
    pub entries: Vec<FileEntry>,
}

/// Collects the direct children of folder `top` (its last name; empty
/// for `/`) from the members of its tar as `copy_from` writes it
/// (`etc/`, `etc/hostname`, `etc/ssl/…`); deeper members are skipped.
#[derive(Default)]
pub struct Lister {
    top: String,
    /// The path's own member (none for `/`).
    pub itself: Option<Member>,
    /// The direct children by name (a name seen twice keeps its last).
    pub children: std::collections::BTreeMap<String, FileEntry>,
}

impl Lister {
    /// A lister for the folder named `top`.
    pub fn new(top: &str) -> Lister {
        Lister {
            top: top.to_string(),
            ..Default::default()
        }
    }

    /// Takes one member of the tar.
    pub fn member(&mut self, m: &Member) {
        let name = m.path.trim_start_matches("./");
        let rel = if self.top.is_empty() {
            name
        } else if name.trim_end_matches('/') == self.top {
            ""
        } else if let Some(rel) = name.strip_prefix(&format!("{}/", self.top)) {
            rel
        } else {
            return;
        };
        let rel = rel.trim_end_matches('/');
        if rel.is_empty() {
            if !self.top.is_empty() {
                self.itself = Some(m.clone());
            }
        } else if !rel.contains('/') {
            self.children.insert(rel.to_string(), entry(rel, m));
        }
    }

    /// The listing of `path`.
    pub fn finish(self, path: &str) -> Listing {
        match self.itself {
            Some(m) if m.kind != b'5' => Listing {
                path: path.to_string(),
                folder: false,
                entries: vec![entry(&self.top, &m)],
            },
            _ => {
                let mut entries: Vec<FileEntry> = self.children.into_values().collect();
                entries.sort_by_key(|e| e.kind != "folder");
                Listing {
                    path: path.to_string(),
                    folder: true,
                    entries,
                }
            }
        }
    }
}

fn entry(name: &str, m: &Member) -> FileEntry {
    FileEntry {
        name: name.to_string(),
        kind: m.kind_name().to_string(),
        size: if m.kind == b'5' { 0 } else { m.size },
        mode: m.mode,
        link: m.link.clone(),
        mtime: m.mtime,
    }
}

/// `path` as an absolute container path without empty, `.` or `..` parts.
pub fn clean_path(path: &str) -> Reply<String> {
    if path.contains('\0') {
        return Err(invalid(
            "a container path cannot hold a NUL character".into(),
        ));
    }
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// A clean path's folder and last name (`/` and `` for `/`).
fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => ("/", path),
    }
}

/// Reads the tar of `path` in container `id` on a blocking thread,
/// handing `state`, its members and their data to `on` until it returns
/// `false` or the tar ends; gives `state` back.
async fn read_tar<S, F>(app: &App, id: &str, path: &str, follow: bool, state: S, on: F) -> Reply<S>
where
    S: Send + 'static,
    F: FnMut(&mut S, &Member, &mut dyn std::io::Read) -> Reply<bool> + Send + 'static,
{
    let chunks = app.client().copy_from(id, path, follow).await?;
    read_stream(chunks, state, on).await
}

/// The entries of folder `path` in container `id` (a link to a folder is
/// followed); for a path that is a file, that file alone.
#[tauri::command]
pub async fn list_files(app: State<'_, App>, id: String, path: String) -> Reply<Listing> {
    list(&app, &id, &clean_path(&path)?).await
}

/// [`list_files`] of a clean path.
pub async fn list(app: &App, id: &str, path: &str) -> Reply<Listing> {
    let lister = Lister::new(split(path).1);
    let lister = read_tar(app, id, path, true, lister, |l, m, _| {
        l.member(m);
        Ok(true)
    })
    .await?;
    Ok(lister.finish(path))
}

/// The first member of the tar of `path` (not following a link), or
/// `None` when there is nothing there.
async fn stat(app: &App, id: &str, path: &str) -> Reply<Option<Member>> {
    let read = read_tar(app, id, path, false, None, |found, m, _| {
        *found = Some(m.clone());
        Ok(false)
    })
    .await;
    match read {
        Err(e) if e.kind == "NotFound" => Ok(None),
        read => read,
    }
}

/// Refuses what the editor cannot open: folders, links, devices.
fn editable(path: &str, m: &Member) -> Reply<()> {
    match m.kind {
        b'5' => Err(invalid(format!("{path} is a folder, not a file"))),
        b'2' => Err(invalid(format!(
            "{path} is a link to {}: open that file to edit it",
            m.link
        ))),
        _ if !m.is_file() => Err(invalid(format!("{path} is not a regular file"))),
        _ => Ok(()),
    }
}

/// A text file as the editor opens it.
#[derive(Debug, Serialize)]
pub struct TextFile {
    /// The path, cleaned.
    pub path: String,
    /// Its text.
    pub text: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its permission bits.
    pub mode: u32,
}

/// The text of file `path` in container `id`, for the editor: up to 256
/// KiB of UTF-8.
#[tauri::command]
pub async fn read_text_file(app: State<'_, App>, id: String, path: String) -> Reply<TextFile> {
    read_text(&app, &id, clean_path(&path)?).await
}

/// [`read_text_file`] of a clean path.
pub async fn read_text(app: &App, id: &str, path: String) -> Reply<TextFile> {
    let shown = path.clone();
    let (first, data) = read_tar(
        app,
        id,
        &path,
        false,
        (None, Vec::new()),
        move |(first, data), m, d| {
            use std::io::Read;
            editable(&shown, m)?;
            if m.size > EDIT_LIMIT {
                return Err(invalid(format!(
                    "{shown} is {} bytes; the editor opens files up to 256 KiB: \
                     download it instead",
                    m.size
                )));
            }
            d.take(EDIT_LIMIT + 1)
                .read_to_end(data)
                .map_err(|e| damaged(&e.to_string()))?;
            *first = Some(m.clone());
            Ok(false)
        },
    )
    .await?;
    let m = first.ok_or_else(|| damaged("no file in the archive"))?;
    if data.len() as u64 != m.size {
        return Err(damaged("the file's data ended early"));
    }
    let text = String::from_utf8(data).map_err(|_| {
        invalid(format!(
            "{path} is not UTF-8 text; the editor opens text files only: download it instead"
        ))
    })?;
    Ok(TextFile {
        path,
        text,
        size: m.size,
        mode: m.mode,
    })
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Writes `text` to file `path` in container `id`, keeping an existing
/// file's mode and owner (a new file is 0644, root's).
#[tauri::command]
pub async fn save_text_file(
    app: State<'_, App>,
    id: String,
    path: String,
    text: String,
) -> Reply<()> {
    save_text(&app, &id, &clean_path(&path)?, &text).await
}

/// [`save_text_file`] of a clean path.
pub async fn save_text(app: &App, id: &str, path: &str, text: &str) -> Reply<()> {
    let (dir, name) = split(path);
    if name.is_empty() {
        return Err(invalid("name the file to save".into()));
    }
    if text.len() as u64 > EDIT_LIMIT {
        return Err(invalid(format!(
            "the text is {} bytes; the editor saves files up to 256 KiB",
            text.len()
        )));
    }
    let (mode, uid, gid): (u32, u64, u64) = match stat(app, id, path).await? {
        Some(m) => {
            editable(path, &m)?;
            (m.mode, m.uid, m.gid)
        }
        None => (0o644, 0, 0),
    };
    let tar = small_file(name, text.as_bytes(), mode, uid, gid, now())?;
    let input = Box::new(std::io::Cursor::new(tar));
    app.client().copy_to(id, dir, true, input).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::archive::tests::{etc, member, read};
    use super::*;
    use ::tar::{Builder, EntryType};

    fn list(top: &str, path: &str, tar: &[u8]) -> Listing {
        let mut l = Lister::new(top);
        for (m, _) in read(tar, 4096).unwrap() {
            l.member(&m);
        }
        l.finish(path)
    }

    #[test]
    fn lists_direct_children_only_folders_first() {
        let listing = list("etc", "/etc", &etc());
        assert!(listing.folder);
        let rows: Vec<(&str, &str, u64)> = listing
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.kind.as_str(), e.size))
            .collect();
        let long = "n".repeat(120);
        assert_eq!(
            rows,
            [
                ("ssl", "folder", 0),
                ("hostname", "file", 4),
                ("mtab", "link", 0),
                (long.as_str(), "file", 3)
            ]
        );
        assert_eq!(listing.entries[2].link, "/proc/mounts");
    }

    #[test]
    fn lists_the_root_and_a_file_alone() {
        let mut tar = Builder::new(Vec::new());
        member(&mut tar, "bin/", EntryType::Directory, b"", "");
        member(&mut tar, "bin/sh", EntryType::Regular, b"#!", "");
        member(&mut tar, "etcfile", EntryType::Regular, b"x", "");
        member(&mut tar, "etcfile", EntryType::Regular, b"xy", "");
        let names: Vec<(String, u64)> = list("", "/", &tar.into_inner().unwrap())
            .entries
            .into_iter()
            .map(|e| (e.name, e.size))
            .collect();
        assert_eq!(
            names,
            [("bin".to_string(), 0), ("etcfile".to_string(), 2)],
            "a name seen twice keeps its last"
        );

        let mut tar = Builder::new(Vec::new());
        member(&mut tar, "hostname", EntryType::Regular, b"box\n", "");
        let one = list("hostname", "/etc/hostname", &tar.into_inner().unwrap());
        assert!(!one.folder);
        assert_eq!(
            (one.entries[0].name.as_str(), one.entries[0].size),
            ("hostname", 4)
        );
    }

    #[test]
    fn paths_are_cleaned() {
        assert_eq!(clean_path("").unwrap(), "/");
        assert_eq!(clean_path("etc//ssl/./../hosts/").unwrap(), "/etc/hosts");
        assert_eq!(clean_path("/../..").unwrap(), "/");
        assert!(clean_path("/a\0b").is_err());
        assert_eq!(split("/etc/hosts"), ("/etc", "hosts"));
        assert_eq!(split("/etc"), ("/", "etc"));
        assert_eq!(split("/"), ("/", ""));
    }
}
