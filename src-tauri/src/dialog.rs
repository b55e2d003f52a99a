//! The system's file dialogs, opened here in Rust: the page asks for a
//! dialog by calling a command and only learns what the user chose, so no
//! page can make the app read or write a host path the user did not pick.
//! Every dialog of the app (save the logs, download a file, upload a
//! file, the Run dialog's host folder) goes through [`choose_path`].

use std::path::PathBuf;

use tauri::AppHandle;
use tauri_plugin_dialog::{DialogExt, FilePath};

use crate::commands::{Reply, UiError};

/// What the dialog picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Where to save a new file.
    Save,
    /// An existing file.
    File,
    /// An existing folder.
    Folder,
}

/// One dialog: what it picks, what it says, where it starts.
#[derive(Debug)]
pub struct Ask<'a> {
    /// What it picks.
    pub pick: Pick,
    /// Its title.
    pub title: String,
    /// The file name it offers (for [`Pick::Save`]).
    pub file_name: Option<String>,
    /// The folder it opens in.
    pub directory: Option<PathBuf>,
    /// A filter's name and extensions (`("Log files", &["log"])`).
    pub filter: Option<(&'a str, &'a [&'a str])>,
    /// The sentence's beginning when the choice is not a local path
    /// (`cannot save there`).
    pub refused: &'a str,
}

impl<'a> Ask<'a> {
    /// A dialog picking `pick`, titled `title`, with nothing else set.
    pub fn new(pick: Pick, title: impl Into<String>, refused: &'a str) -> Ask<'a> {
        Ask {
            pick,
            title: title.into(),
            file_name: None,
            directory: None,
            filter: None,
            refused,
        }
    }
}

/// The user's home folder.
pub fn home(handle: &AppHandle) -> Option<PathBuf> {
    tauri::Manager::path(handle).home_dir().ok()
}

/// Shows the dialog `ask` describes and waits for the user (without
/// holding a thread); the chosen path, or `None` when they cancelled.
pub async fn choose_path(handle: &AppHandle, ask: Ask<'_>) -> Reply<Option<PathBuf>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut dialog = handle.dialog().file().set_title(ask.title);
    if let Some(name) = ask.file_name {
        dialog = dialog.set_file_name(name);
    }
    if let Some(dir) = ask.directory {
        dialog = dialog.set_directory(dir);
    }
    if let Some((name, extensions)) = ask.filter {
        dialog = dialog.add_filter(name, extensions);
    }
    let done = move |p: Option<FilePath>| {
        let _ = tx.send(p);
    };
    match ask.pick {
        Pick::Save => dialog.save_file(done),
        Pick::File => dialog.pick_file(done),
        Pick::Folder => dialog.pick_folder(done),
    }
    chosen(rx.await.ok().flatten(), ask.refused)
}

/// The dialog's answer as a local path.
fn chosen(answer: Option<FilePath>, refused: &str) -> Reply<Option<PathBuf>> {
    answer
        .map(|p| {
            p.into_path().map_err(|e| UiError {
                kind: "InvalidArgument".into(),
                message: format!("{refused}: {e}"),
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_local_paths_or_sentences() {
        assert_eq!(chosen(None, "x").unwrap(), None);
        let p = FilePath::Path(PathBuf::from("/home/me/web.log"));
        assert_eq!(
            chosen(Some(p), "x").unwrap(),
            Some(PathBuf::from("/home/me/web.log"))
        );
        let url = FilePath::Url("https://example.com/a".parse().unwrap());
        let e = chosen(Some(url), "cannot save there").unwrap_err();
        assert_eq!(e.kind, "InvalidArgument");
        assert!(
            e.message.starts_with("cannot save there: "),
            "{}",
            e.message
        );
    }
}
