//! Watches the guest's console log (appended across boots) for one line,
//! reading only what was written since the watch began.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A watch on the console log from a given point on.
pub struct ConsoleWatch {
    path: PathBuf,
    offset: u64,
    /// The last line read so far, while it has no newline yet.
    partial: Vec<u8>,
}

impl ConsoleWatch {
    /// Starts at the log's current end (or its start, when there is no log
    /// yet): call it before the VMM starts writing.
    pub fn from_end(path: &Path) -> ConsoleWatch {
        let offset = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        ConsoleWatch {
            path: path.to_path_buf(),
            offset,
            partial: Vec::new(),
        }
    }

    /// Reads what was written since the last call; true when one of the
    /// lines it completed contains one of `needles` (a line still being
    /// written waits for its newline, so no line counts twice).
    pub fn saw(&mut self, needles: &[&str]) -> bool {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return false;
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            // Truncated behind our back: what is there now is all new.
            self.offset = 0;
            self.partial.clear();
        }
        let mut fresh = Vec::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err() || file.read_to_end(&mut fresh).is_err()
        {
            return false;
        }
        self.offset += fresh.len() as u64;
        self.partial.extend_from_slice(&fresh);
        let holds = |line: &[u8]| needles.iter().any(|n| contains(line, n.as_bytes()));
        let mut found = false;
        let mut rest = &self.partial[..];
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            found |= holds(&rest[..end]);
            rest = &rest[end + 1..];
        }
        self.partial = rest.to_vec();
        found
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn sees_only_lines_written_after_the_watch_began() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        append(&log, "old boot\nberth-agent: serving the API\n");
        let mut watch = ConsoleWatch::from_end(&log);
        assert!(!watch.saw(&["serving"]), "an earlier boot's line counted");
        append(&log, "kernel says hello\nberth-agent: ser");
        assert!(!watch.saw(&["serving"]), "half a line counted");
        append(&log, "ving the API");
        assert!(
            !watch.saw(&["serving the API"]),
            "a line without its end counted"
        );
        append(&log, "\r\n");
        assert!(watch.saw(&["serving the API"]));
        assert!(!watch.saw(&["serving the API"]), "one line counted twice");
        append(&log, "an older agent: listening on vsock://\n");
        assert!(
            watch.saw(&["serving the API", "listening on vsock"]),
            "any needle counts"
        );
    }

    #[test]
    fn a_missing_or_truncated_log_is_read_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("console.log");
        let mut watch = ConsoleWatch::from_end(&log);
        assert!(!watch.saw(&["ready"]));
        append(&log, "ready\n");
        assert!(watch.saw(&["ready"]));
        std::fs::write(&log, "ok\n").unwrap();
        assert!(watch.saw(&["ok"]), "a log cut shorter is read again");
    }
}
