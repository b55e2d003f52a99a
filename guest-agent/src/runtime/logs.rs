//! Container logs in Docker's `json-file` format: one JSON object per line
//! (`{"log":"…\n","stream":"stdout","time":"…"}`), rotated by size into
//! `<name>.1`, `<name>.2`, … The monitor writes them; the agent reads
//! them for `logs`, following new lines through inotify.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// The default size at which a log file is rotated.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 20;
/// The default number of files kept (the live one included).
pub const DEFAULT_MAX_FILES: u32 = 3;
/// The `--log-opt` keys Docker's json-file driver takes.
const LOG_OPTS: &[&str] = &[
    "max-size",
    "max-file",
    "compress",
    "labels",
    "labels-regex",
    "env",
    "env-regex",
    "tag",
];

/// The rotation size and file count `--log-opt` asks for (Berth's
/// defaults for what it leaves out), refusing what Docker's json-file
/// driver refuses, with its sentences.
pub fn limits(
    opts: &std::collections::HashMap<String, String>,
) -> crate::error::Result<(u64, u32)> {
    use crate::error::Error;
    if let Some(key) = opts.keys().find(|k| !LOG_OPTS.contains(&k.as_str())) {
        return Err(Error::InvalidArgument(format!(
            "unknown log opt '{key}' for json-file log driver"
        )));
    }
    let size = match opts.get("max-size") {
        None => None,
        Some(text) => Some(human_size(text).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "invalid size: '{text}': use a number with an optional unit (k, m, g)"
            ))
        })?),
    };
    let files = match opts.get("max-file") {
        None => None,
        Some(text) => {
            let n: i64 = text.parse().map_err(|_| {
                Error::InvalidArgument(format!("invalid max-file {text:?}: it is a number"))
            })?;
            if n < 1 {
                return Err(Error::InvalidArgument(
                    "max-file cannot be less than 1".into(),
                ));
            }
            Some(n.min(u32::MAX as i64) as u32)
        }
    };
    if files.is_some_and(|n| n > 1) && size.is_none() {
        return Err(Error::InvalidArgument(
            "max-file can only be set if max-size is set".into(),
        ));
    }
    Ok((
        size.unwrap_or(DEFAULT_MAX_SIZE),
        files.unwrap_or(if size.is_some() { 1 } else { DEFAULT_MAX_FILES }),
    ))
}

/// A size as Docker's `units.FromHumanSize` reads it ("10m", "1.5k",
/// "20kb"; decimal units).
fn human_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let digits = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let n: f64 = t[..digits].parse().ok()?;
    let mult = match &t[digits..] {
        "" => 1e0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        _ => return None,
    };
    (n >= 0.0).then_some((n * mult) as u64)
}

/// The longest line kept in memory before it is written as a partial line.
const MAX_LINE: usize = 16 << 10;

/// One log line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Line {
    /// The text, with its newline when it had one.
    pub log: String,
    /// "stdout" or "stderr".
    pub stream: String,
    /// When it was written.
    pub time: DateTime<Utc>,
}

/// Appends lines to a container's log, rotating by size.
pub struct Writer {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
    max_size: u64,
    max_files: u32,
    partial: [Vec<u8>; 2],
}

impl Writer {
    /// Opens (appends to) the log at `path`.
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> std::io::Result<Writer> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let size = file.metadata()?.len();
        Ok(Writer {
            path: path.to_path_buf(),
            file,
            size,
            max_size: max_size.max(4096),
            max_files: max_files.max(1),
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Adds output of `stream` (0 stdout, 1 stderr), cut into lines.
    pub fn write(&mut self, stream: usize, mut data: &[u8]) -> std::io::Result<()> {
        while let Some(nl) = data.iter().position(|b| *b == b'\n') {
            let mut line = std::mem::take(&mut self.partial[stream]);
            line.extend_from_slice(&data[..=nl]);
            self.emit(stream, &line)?;
            data = &data[nl + 1..];
        }
        self.partial[stream].extend_from_slice(data);
        if self.partial[stream].len() >= MAX_LINE {
            let line = std::mem::take(&mut self.partial[stream]);
            self.emit(stream, &line)?;
        }
        Ok(())
    }

    /// Writes out whatever partial lines are held (at the end of a run).
    pub fn flush(&mut self) -> std::io::Result<()> {
        for stream in 0..2 {
            if !self.partial[stream].is_empty() {
                let line = std::mem::take(&mut self.partial[stream]);
                self.emit(stream, &line)?;
            }
        }
        Ok(())
    }

    fn emit(&mut self, stream: usize, bytes: &[u8]) -> std::io::Result<()> {
        let line = Line {
            log: String::from_utf8_lossy(bytes).into_owned(),
            stream: if stream == 0 { "stdout" } else { "stderr" }.into(),
            time: Utc::now(),
        };
        let mut json = serde_json::to_vec(&LineOut::from(&line)).map_err(std::io::Error::other)?;
        json.push(b'\n');
        if self.size > 0 && self.size + json.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(&json)?;
        self.size += json.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.max_files > 1 {
            for n in (1..self.max_files - 1).rev() {
                let _ = std::fs::rename(rotated(&self.path, n), rotated(&self.path, n + 1));
            }
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
        } else {
            std::fs::remove_file(&self.path)?;
        }
        self.file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// The serialized form, with Docker's RFC 3339 nanosecond times.
#[derive(Serialize)]
struct LineOut<'a> {
    log: &'a str,
    stream: &'a str,
    time: String,
}

impl<'a> From<&'a Line> for LineOut<'a> {
    fn from(l: &'a Line) -> Self {
        LineOut {
            log: &l.log,
            stream: &l.stream,
            time: l.time.to_rfc3339_opts(SecondsFormat::Nanos, true),
        }
    }
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Every log file of a container, oldest first.
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = (1..100)
        .map(|n| rotated(path, n))
        .take_while(|p| p.exists())
        .collect();
    out.reverse();
    out.push(path.to_path_buf());
    out
}

/// Parses the lines of one file (a torn last line is skipped).
pub fn parse(reader: impl BufRead) -> Vec<Line> {
    reader
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

/// Follows a container's current log file from where it was last read,
/// across rotations, so `logs -f` reads each byte once.
pub struct Tail {
    path: PathBuf,
    file: Option<std::fs::File>,
    ino: u64,
    /// A line not yet ended by its newline.
    partial: Vec<u8>,
}

impl Tail {
    /// Every stored line, oldest first, and a tail positioned after them.
    pub fn open(path: &Path) -> (Vec<Line>, Tail) {
        let mut tail = Tail {
            path: path.to_path_buf(),
            file: None,
            ino: 0,
            partial: Vec::new(),
        };
        // The current file is opened first, so a rotation meanwhile
        // cannot hide lines between the older files and it.
        tail.reopen();
        let all = files(path);
        let mut lines = Vec::new();
        for f in &all[..all.len() - 1] {
            if let Ok(file) = std::fs::File::open(f) {
                lines.extend(parse(std::io::BufReader::new(file)));
            }
        }
        lines.extend(tail.read_new());
        (lines, tail)
    }

    fn reopen(&mut self) {
        use std::os::unix::fs::MetadataExt;
        self.file = std::fs::File::open(&self.path).ok();
        self.ino = self
            .file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.ino());
        self.partial.clear();
    }

    /// The complete lines written since the last call.
    pub fn read_new(&mut self) -> Vec<Line> {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        let mut out = Vec::new();
        loop {
            if let Some(f) = self.file.as_mut() {
                let _ = f.read_to_end(&mut self.partial);
            }
            if let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') {
                let done: Vec<u8> = self.partial.drain(..=end).collect();
                out.extend(parse(&done[..]));
            }
            // Rotated: the old file is read to its end; go on in the new one.
            let now = std::fs::metadata(&self.path).map_or(0, |m| m.ino());
            if now == self.ino {
                return out;
            }
            self.reopen();
        }
    }
}

/// Every log file of a container, for removal.
pub fn remove(path: &Path) {
    for f in files(path) {
        let _ = std::fs::remove_file(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_opts_set_the_rotation_as_docker_s_json_file() {
        let opts = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<std::collections::HashMap<_, _>>()
        };
        assert_eq!(
            limits(&opts(&[])).unwrap(),
            (DEFAULT_MAX_SIZE, DEFAULT_MAX_FILES)
        );
        assert_eq!(limits(&opts(&[("max-size", "10k")])).unwrap(), (10_000, 1));
        assert_eq!(
            limits(&opts(&[("max-size", "1.5m"), ("max-file", "4")])).unwrap(),
            (1_500_000, 4)
        );
        for (pairs, sentence) in [
            (
                vec![("max-file", "2")],
                "max-file can only be set if max-size is set",
            ),
            (
                vec![("max-size", "1k"), ("max-file", "0")],
                "max-file cannot be less than 1",
            ),
            (vec![("max-size", "lots")], "invalid size: 'lots'"),
            (
                vec![("mode", "x")],
                "unknown log opt 'mode' for json-file log driver",
            ),
        ] {
            let e = limits(&opts(&pairs)).unwrap_err().to_string();
            assert!(e.contains(sentence), "{e}");
        }
    }

    /// Every line a container logged, oldest first.
    fn read_all(path: &Path) -> Vec<Line> {
        let mut out = Vec::new();
        for f in files(path) {
            if let Ok(file) = std::fs::File::open(&f) {
                out.extend(parse(std::io::BufReader::new(file)));
            }
        }
        out
    }

    #[test]
    fn a_tail_reads_each_line_once_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = Writer::open(&path, 4096, 3).unwrap();
        w.write(0, b"first\n").unwrap();
        w.flush().unwrap();
        let (old, mut tail) = Tail::open(&path);
        assert_eq!(old.len(), 1);
        let mut seen = Vec::new();
        let pad = "x".repeat(200);
        for i in 0..60 {
            w.write(0, format!("line {i} {pad}\n").as_bytes()).unwrap();
            w.flush().unwrap();
            if i % 3 == 0 {
                seen.extend(tail.read_new().into_iter().map(|l| l.log));
            }
        }
        seen.extend(tail.read_new().into_iter().map(|l| l.log));
        let want: Vec<String> = (0..60).map(|i| format!("line {i} {pad}\n")).collect();
        assert_eq!(seen, want);
        assert!(rotated(&path, 1).exists(), "the test did rotate");
    }

    #[test]
    fn lines_are_cut_and_rotation_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = Writer::open(&path, 4096, 3).unwrap();
        w.write(0, b"hel").unwrap();
        w.write(1, b"oops\n").unwrap();
        w.write(0, b"lo\nworld").unwrap();
        w.flush().unwrap();
        let lines = read_all(&path);
        let text: Vec<(&str, &str)> = lines
            .iter()
            .map(|l| (l.stream.as_str(), l.log.as_str()))
            .collect();
        assert_eq!(
            text,
            [
                ("stderr", "oops\n"),
                ("stdout", "hello\n"),
                ("stdout", "world")
            ]
        );
        for i in 0..1000 {
            w.write(0, format!("line {i}\n").as_bytes()).unwrap();
        }
        let files = files(&path);
        assert_eq!(files.len(), 3, "{files:?}");
        let all = read_all(&path);
        assert_eq!(all.last().unwrap().log, "line 999\n");
        assert!(all.len() < 1000, "old lines were rotated away");
        let mut prev = None;
        for l in &all {
            if let Some(n) = l
                .log
                .strip_prefix("line ")
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                assert!(
                    prev.is_none_or(|p| p + 1 == n),
                    "lines are in order without gaps"
                );
                prev = Some(n);
            }
        }
    }
}
