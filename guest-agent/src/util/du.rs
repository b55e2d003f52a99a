//! Directory sizes, as Docker counts them (its `directory.Size`): every
//! entry but folders by `lstat`'s size (a file's length, a symbolic
//! link's target length), each inode once, links not followed.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The bytes of the files and symbolic links under `path`, hard links
/// counted once (0 when it is missing).
pub fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut seen = HashSet::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&p) {
            for e in rd.flatten() {
                match e.metadata() {
                    Ok(m) if m.is_dir() => stack.push(e.path()),
                    Ok(m) if m.len() > 0 && (m.nlink() < 2 || seen.insert((m.dev(), m.ino()))) => {
                        total += m.len()
                    }
                    _ => {}
                }
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_files_in_subfolders_and_links_as_lstat_does() {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::create_dir(dir.path().join("a")).expect("mkdir");
        std::fs::write(dir.path().join("a/f"), [0u8; 100]).expect("write");
        std::fs::write(dir.path().join("g"), [0u8; 20]).expect("write");
        std::os::unix::fs::symlink("/usr", dir.path().join("l")).expect("symlink");
        std::fs::hard_link(dir.path().join("g"), dir.path().join("h")).expect("link");
        // 100 + 20 (once for two names) + 4 for the link's target "/usr".
        assert_eq!(dir_size(dir.path()), 124);
        assert_eq!(dir_size(&dir.path().join("missing")), 0);
    }
}
