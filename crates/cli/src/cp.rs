//! Where `berth cp CONTAINER:SRC DEST` puts what it copied, by Docker's
//! rules:
//!
//! | SRC | DEST | result |
//! |---|---|---|
//! | a file | missing | the file, named DEST (DEST's folder must exist) |
//! | a file | `DEST/` missing | refused: the folder does not exist |
//! | a file | a file | DEST overwritten |
//! | a file | a folder | `DEST/name` |
//! | a folder | missing | DEST made, with the folder's contents |
//! | a folder | a file | refused |
//! | a folder | a folder | `DEST/name`, merged with what is there |
//! | `folder/.` | a folder | the folder's contents merged into DEST |
//!
//! The archive is unpacked next to DEST first and moved into place only
//! when it unpacked whole, so a failed copy writes nothing at DEST.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Unpacks `archive` (a tar whose top entry is SRC's last name, or `.` for
/// `SRC/.`) at `dest` as the table in the module doc says.
pub fn place(archive: &[u8], src: &str, dest: &Path) -> Result<()> {
    let contents = src.ends_with("/.") || src == ".";
    let dest_meta = std::fs::metadata(dest).ok();
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let trailing_slash = dest.as_os_str().to_string_lossy().ends_with('/');
    if dest_meta.is_none() && !parent.is_dir() {
        bail!(
            "the destination directory {} does not exist",
            parent.display()
        );
    }
    let base = if dest_meta.as_ref().is_some_and(|m| m.is_dir()) {
        dest.to_path_buf()
    } else {
        parent.clone()
    };
    let scratch = base.join(format!(".berth-cp-{}", std::process::id()));
    std::fs::create_dir(&scratch)
        .with_context(|| format!("cannot write into {}", base.display()))?;
    let result = (|| -> Result<()> {
        tar::Archive::new(archive)
            .unpack(&scratch)
            .context("cannot unpack what the container sent")?;
        // What was copied: the one top entry, or (for SRC/.) the scratch
        // folder's contents.
        let top = if contents {
            scratch.clone()
        } else {
            let mut entries = std::fs::read_dir(&scratch)?;
            let first = entries.next().context("the container sent nothing")??;
            first.path()
        };
        let is_dir = std::fs::symlink_metadata(&top)?.is_dir();
        match (&dest_meta, is_dir) {
            (None, false) if trailing_slash => {
                bail!(
                    "the destination directory {} does not exist",
                    dest.display()
                )
            }
            (None, _) => move_to(&top, dest),
            (Some(m), true) if !m.is_dir() => bail!(
                "cannot copy a directory to a file: {} is a file",
                dest.display()
            ),
            (Some(m), _) if m.is_dir() => {
                if contents {
                    for entry in std::fs::read_dir(&top)? {
                        let entry = entry?;
                        if entry.path() != scratch {
                            merge(&entry.path(), &dest.join(entry.file_name()))?;
                        }
                    }
                    Ok(())
                } else {
                    let name = top.file_name().context("the copied entry has no name")?;
                    merge(&top, &dest.join(name))
                }
            }
            (Some(_), _) => move_to(&top, dest),
        }
    })();
    if scratch.exists() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    result
}

/// Renames `from` to `to`, replacing a file (never a folder) there.
fn move_to(from: &Path, to: &Path) -> Result<()> {
    if std::fs::symlink_metadata(to).is_ok_and(|m| !m.is_dir()) {
        std::fs::remove_file(to).with_context(|| format!("cannot replace {}", to.display()))?;
    }
    std::fs::rename(from, to).with_context(|| format!("cannot write {}", to.display()))
}

/// Moves `from` to `to`, merging folders with what is already there.
fn merge(from: &Path, to: &Path) -> Result<()> {
    let from_dir = std::fs::symlink_metadata(from)?.is_dir();
    match std::fs::symlink_metadata(to) {
        Ok(m) if m.is_dir() && from_dir => {
            for entry in std::fs::read_dir(from)? {
                let entry = entry?;
                merge(&entry.path(), &to.join(entry.file_name()))?;
            }
            Ok(())
        }
        Ok(m) if m.is_dir() => bail!(
            "cannot overwrite directory {} with a non-directory",
            to.display()
        ),
        Ok(_) if from_dir => bail!(
            "cannot overwrite non-directory {} with a directory",
            to.display()
        ),
        Ok(_) => move_to(from, to),
        Err(_) => {
            std::fs::rename(from, to).with_context(|| format!("cannot write {}", to.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of a folder `top` holding d1/d2/f2, e1/f3 and f1.
    fn tree(top: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let prefix = if top == "." {
            "./".to_string()
        } else {
            format!("{top}/")
        };
        let mut dir = |path: &str| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            h.set_cksum();
            b.append_data(&mut h, format!("{prefix}{path}"), std::io::empty())
                .unwrap();
        };
        for d in ["", "d1/", "d1/d2/", "e1/"] {
            dir(d);
        }
        for (f, text) in [("d1/d2/f2", "2"), ("e1/f3", "3"), ("f1", "1")] {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(1);
            h.set_cksum();
            b.append_data(&mut h, format!("{prefix}{f}"), text.as_bytes())
                .unwrap();
        }
        b.into_inner().unwrap()
    }

    fn file(name: &str, text: &str) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(text.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, name, text.as_bytes()).unwrap();
        b.into_inner().unwrap()
    }

    fn listing(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                if p.is_dir() {
                    out.push(format!("{rel}/"));
                    walk(root, &p, out);
                } else {
                    out.push(format!("{rel}={}", std::fs::read_to_string(&p).unwrap()));
                }
            }
        }
        walk(root, root, &mut out);
        out.sort();
        out
    }

    const TREE: [&str; 6] = ["d1/", "d1/d2/", "d1/d2/f2=2", "e1/", "e1/f3=3", "f1=1"];

    #[test]
    fn a_folders_contents_go_whole_into_a_new_destination() {
        let t = tempfile::tempdir().unwrap();
        place(&tree("."), "/q/.", &t.path().join("q1")).unwrap();
        assert_eq!(listing(&t.path().join("q1")), TREE);
        assert_eq!(
            listing(t.path()).len(),
            TREE.len() + 1,
            "nothing left beside q1"
        );
    }

    #[test]
    fn a_folder_goes_into_an_existing_folder_by_its_name_or_as_its_contents() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("out");
        std::fs::create_dir(&dest).unwrap();
        std::fs::write(dest.join("kept"), "k").unwrap();
        place(&tree("q"), "/q", &dest).unwrap();
        let want: Vec<String> = TREE
            .iter()
            .map(|e| format!("q/{e}"))
            .chain(["kept=k".into(), "q/".into()])
            .collect();
        let mut want = want;
        want.sort();
        assert_eq!(listing(&dest), want);
        place(&tree("."), "/q/.", &dest).unwrap();
        assert!(listing(&dest).contains(&"f1=1".to_string()));
        assert!(listing(&dest).contains(&"d1/d2/f2=2".to_string()));
        // A new folder: made, with the contents.
        place(&tree("q"), "/q", &t.path().join("new")).unwrap();
        assert_eq!(listing(&t.path().join("new")), TREE);
    }

    #[test]
    fn files_take_the_destinations_name_or_go_into_its_folder() {
        let t = tempfile::tempdir().unwrap();
        place(
            &file("hostname", "web\n"),
            "/etc/hostname",
            &t.path().join("h"),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("h")).unwrap(),
            "web\n"
        );
        place(
            &file("hostname", "db\n"),
            "/etc/hostname",
            &t.path().join("h"),
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("h")).unwrap(), "db\n");
        place(&file("hostname", "x\n"), "/etc/hostname", t.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("hostname")).unwrap(),
            "x\n"
        );
    }

    #[test]
    fn refusals_write_nothing() {
        let t = tempfile::tempdir().unwrap();
        let before = listing(t.path());
        let e = place(&file("f", "x"), "/f", &t.path().join("nodir/f")).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        let e = place(&file("f", "x"), "/f", &t.path().join("missing/")).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        std::fs::write(t.path().join("afile"), "a").unwrap();
        let e = place(&tree("q"), "/q", &t.path().join("afile")).unwrap_err();
        assert!(
            e.to_string().contains("cannot copy a directory to a file"),
            "{e}"
        );
        let mut after = listing(t.path());
        after.retain(|e| e != "afile=a");
        assert_eq!(after, before);
    }
}
