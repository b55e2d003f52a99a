//! "Open in editor" for a host folder: the user's own code editor, found
//! as a command — `BERTH_EDITOR` when set, else the first of the common
//! editors that open a folder as a project (VS Code, VSCodium, Cursor,
//! Zed, Sublime Text) — and started on the folder without a shell. A
//! desktop app does not get the login shell's `PATH` on macOS, so the
//! places their installers put those commands are searched too. Which
//! folders may be opened is `host`'s check, the same as "Open folder".

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tauri::State;

use crate::commands::{Reply, UiError};
use crate::App;

/// The editors tried when `BERTH_EDITOR` is not set, by command and by
/// the name shown on the button.
const KNOWN: [(&str, &str); 6] = [
    ("code", "VS Code"),
    ("codium", "VSCodium"),
    ("cursor", "Cursor"),
    ("zed", "Zed"),
    ("zeditor", "Zed"),
    ("subl", "Sublime Text"),
];

/// An editor found on this machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Editor {
    /// What the button says ("VS Code", or the command of `BERTH_EDITOR`).
    pub name: String,
    /// The program started with the folder as its one argument.
    pub program: PathBuf,
}

/// The folders searched for an editor's command: `path` (the `PATH`
/// variable), then where installers put them on macOS.
fn search_dirs(path: Option<OsString>) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = path
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if cfg!(target_os = "macos") {
        for d in [
            "/usr/local/bin",
            "/opt/homebrew/bin",
            "/Applications/Visual Studio Code.app/Contents/Resources/app/bin",
            "/Applications/Cursor.app/Contents/Resources/app/bin",
        ] {
            dirs.push(PathBuf::from(d));
        }
    }
    dirs
}

/// `command` as a program in `dirs` (with Windows' `.cmd`/`.exe`), or as
/// given when it is a path to a file.
fn which(command: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    let given = Path::new(command);
    if given.components().count() > 1 {
        return given.is_file().then(|| given.to_path_buf());
    }
    let names: Vec<String> = if cfg!(windows) {
        vec![format!("{command}.cmd"), format!("{command}.exe")]
    } else {
        vec![command.to_string()]
    };
    dirs.iter()
        .flat_map(|d| names.iter().map(move |n| d.join(n)))
        .find(|p| p.is_file())
}

/// The editor to use, given `BERTH_EDITOR` (`chosen`) and `PATH`.
pub fn find(chosen: Option<OsString>, path: Option<OsString>) -> Result<Editor, String> {
    let dirs = search_dirs(path);
    if let Some(chosen) = chosen.filter(|c| !c.is_empty()) {
        let chosen = chosen.to_string_lossy().into_owned();
        return which(&chosen, &dirs)
            .map(|program| Editor {
                name: chosen.clone(),
                program,
            })
            .ok_or_else(|| {
                format!("BERTH_EDITOR is {chosen}, which is not a command here: set it to your editor's command (for example code)")
            });
    }
    KNOWN
        .iter()
        .find_map(|(command, name)| {
            which(command, &dirs).map(|program| Editor {
                name: name.to_string(),
                program,
            })
        })
        .ok_or_else(|| {
            "No code editor found: install VS Code, VSCodium, Cursor, Zed or Sublime Text (with its command on PATH), or set BERTH_EDITOR to your editor's command; Open folder shows it in the file manager".to_string()
        })
}

fn this_machines() -> Result<Editor, String> {
    find(std::env::var_os("BERTH_EDITOR"), std::env::var_os("PATH"))
}

/// The editor "Open in editor" would use, or why there is none.
#[tauri::command]
pub fn editor() -> Reply<Editor> {
    this_machines().map_err(|message| UiError {
        kind: "NotFound".into(),
        message,
    })
}

/// Opens host folder `path` (a bind mount's or shared folder's, checked
/// as "Open folder" checks it) in the user's editor; answers its name.
#[tauri::command]
pub async fn open_in_editor(app: State<'_, App>, path: String) -> Reply<String> {
    let real = crate::host::allowed(&path, &crate::host::known(&app).await?)?;
    let editor = editor()?;
    std::process::Command::new(&editor.program)
        .arg(&real)
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| UiError {
            kind: "Internal".into(),
            message: format!("cannot start {}: {e}", editor.program.display()),
        })?;
    Ok(editor.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(if cfg!(windows) {
            format!("{name}.cmd")
        } else {
            name.to_string()
        });
        std::fs::write(&p, "").unwrap();
        p
    }

    #[test]
    fn finds_the_chosen_editor_then_the_known_ones_in_order() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let path = std::env::join_paths([a.path(), b.path()]).unwrap();
        assert!(find(None, Some(path.clone()))
            .unwrap_err()
            .contains("No code editor found"));
        let subl = program(a.path(), "subl");
        let code = program(b.path(), "code");
        // VS Code before Sublime Text, whatever the PATH order.
        assert_eq!(
            find(None, Some(path.clone())).unwrap(),
            Editor {
                name: "VS Code".into(),
                program: code
            }
        );
        assert_eq!(
            find(Some("subl".into()), Some(path.clone()))
                .unwrap()
                .program,
            subl
        );
        // A path is taken as it is; a command that is not here is a sentence.
        let mine = program(a.path(), "my-editor");
        let by_path = find(Some(mine.clone().into()), None).unwrap();
        assert_eq!(by_path.program, mine);
        assert!(find(Some("nano-gui".into()), Some(path))
            .unwrap_err()
            .contains("BERTH_EDITOR is nano-gui"));
    }
}
