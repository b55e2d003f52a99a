//! Directory sizes, as `du` counts them (file lengths, links not followed).

use std::path::Path;

/// The bytes of the regular files under `path` (0 when it is missing).
pub fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&p) {
            for e in rd.flatten() {
                match e.file_type() {
                    Ok(t) if t.is_dir() => stack.push(e.path()),
                    Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
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
    fn counts_files_in_subfolders_and_not_links() {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::create_dir(dir.path().join("a")).expect("mkdir");
        std::fs::write(dir.path().join("a/f"), [0u8; 100]).expect("write");
        std::fs::write(dir.path().join("g"), [0u8; 20]).expect("write");
        std::os::unix::fs::symlink("/usr", dir.path().join("l")).expect("symlink");
        assert_eq!(dir_size(dir.path()), 120);
        assert_eq!(dir_size(&dir.path().join("missing")), 0);
    }
}
