//! A writer for the "newc" cpio format, the only archive format the Linux
//! kernel unpacks as an initramfs.
//!
//! Written by hand: the format is one fixed 110-byte ASCII header per entry
//! plus 4-byte padding, and the crates that write it are unmaintained or
//! pull in far more than these few lines. Entries are written with fixed
//! owners (root) and a fixed time so the same inputs give the same bytes.

use std::io::{self, Write};

/// Streams newc entries to a writer; `finish` writes the trailer.
pub struct CpioWriter<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
}

/// What an entry is.
pub enum Entry<'a> {
    /// A directory.
    Dir,
    /// A regular file with its contents.
    File(&'a [u8]),
    /// A symbolic link to the given target.
    Symlink(&'a str),
}

impl<W: Write> CpioWriter<W> {
    /// Starts an archive on `out`.
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            written: 0,
            next_ino: 1,
        }
    }

    /// Adds one entry named `path` (no leading `/`) with permission `mode`.
    pub fn add(&mut self, path: &str, mode: u32, entry: Entry<'_>) -> io::Result<()> {
        let path = path.trim_start_matches('/');
        let (kind, data): (u32, &[u8]) = match entry {
            Entry::Dir => (0o040000, &[]),
            Entry::File(data) => (0o100000, data),
            Entry::Symlink(target) => (0o120000, target.as_bytes()),
        };
        let nlink = if matches!(entry, Entry::Dir) { 2 } else { 1 };
        let ino = self.next_ino;
        self.next_ino += 1;
        self.header(ino, kind | (mode & 0o7777), nlink, data.len() as u32, path)?;
        self.write_padded(data)
    }

    /// Writes the trailer and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.header(0, 0, 1, 0, "TRAILER!!!")?;
        // Pad the archive to a 512-byte block, as cpio(1) does.
        let pad = (512 - (self.written % 512)) % 512;
        self.out.write_all(&vec![0u8; pad as usize])?;
        Ok(self.out)
    }

    fn header(&mut self, ino: u32, mode: u32, nlink: u32, size: u32, name: &str) -> io::Result<()> {
        let fields = [
            ino,
            mode,
            0,
            0,
            nlink,
            0,
            size,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        let mut header = String::with_capacity(110);
        header.push_str("070701");
        for f in fields {
            header.push_str(&format!("{f:08X}"));
        }
        self.out.write_all(header.as_bytes())?;
        let mut name_bytes = name.as_bytes().to_vec();
        name_bytes.push(0);
        self.written += header.len() as u64;
        self.write_padded(&name_bytes)
    }

    fn write_padded(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.write_all(data)?;
        self.written += data.len() as u64;
        let pad = (4 - (self.written % 4)) % 4;
        self.out.write_all(&[0u8; 3][..pad as usize])?;
        self.written += pad;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_aligned_and_end_with_the_trailer() {
        let mut w = CpioWriter::new(Vec::new());
        w.add("init", 0o755, Entry::File(b"#!/bin/sh\n")).unwrap();
        w.add("/lib", 0o755, Entry::Dir).unwrap();
        w.add("bin/sh", 0o777, Entry::Symlink("busybox")).unwrap();
        let out = w.finish().unwrap();
        assert_eq!(out.len() % 512, 0);
        assert!(out.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("init\0"));
        assert!(text.contains("TRAILER!!!\0"));
        // The second header starts on a 4-byte boundary right after the
        // first entry's padded name and data.
        let second = text.match_indices("070701").nth(1).unwrap().0;
        assert_eq!(second % 4, 0);
        // File mode and size of the first entry, in hex.
        assert_eq!(&text[14..22], "000081ED");
        assert_eq!(&text[54..62], "0000000A");
    }
}
