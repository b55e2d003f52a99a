//! The tar that `copy_from` sends and `copy_to` takes, read as it
//! arrives (headers, GNU long names, PAX records, data in pieces) and
//! written for one file at a time.

use crate::commands::{Reply, UiError};

/// A tar block.
const BLOCK: usize = 512;
/// The most a long name or a PAX extension may hold.
const EXT_LIMIT: u64 = 1 << 20;

/// A tar that cannot be read, as a sentence.
pub fn damaged(why: &str) -> UiError {
    UiError {
        kind: "Internal".into(),
        message: format!("the container's files came back damaged ({why}); try again"),
    }
}

/// One member of a tar, as its header (and any GNU or PAX extension
/// before it) describes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Member {
    /// The name in the archive (`etc/`, `etc/hostname`).
    pub path: String,
    /// The tar type flag (`b'0'` a file, `b'5'` a folder, `b'2'` a link).
    pub kind: u8,
    /// The bytes of data that follow.
    pub size: u64,
    /// The permission bits.
    pub mode: u32,
    /// The owner's user id.
    pub uid: u64,
    /// The owner's group id.
    pub gid: u64,
    /// The modification time, in seconds since 1970.
    pub mtime: u64,
    /// A link's target.
    pub link: String,
}

impl Member {
    /// `folder`, `file`, `link` or `other` (devices, pipes).
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            b'5' => "folder",
            b'0' | 0 | b'7' | b'1' => "file",
            b'2' => "link",
            _ => "other",
        }
    }

    /// A regular file.
    pub fn is_file(&self) -> bool {
        matches!(self.kind, b'0' | 0 | b'7')
    }
}

/// What [`TarReader`] hands its caller: a member, then its data in pieces.
pub enum Event<'a> {
    /// A new member starts.
    Member(&'a Member),
    /// Some of the current member's data.
    Data(&'a [u8]),
}

/// A tar read as it arrives, in chunks of any size.
#[derive(Default)]
pub struct TarReader {
    /// The header block read so far.
    block: Vec<u8>,
    /// Data bytes left of the current member or extension.
    data_left: u64,
    /// Padding bytes left after them.
    pad_left: u64,
    /// An extension being collected (its type flag and data).
    ext: Option<(u8, Vec<u8>)>,
    /// A GNU long name or link for the next member.
    long_name: Option<String>,
    long_link: Option<String>,
    /// PAX records for the next member.
    pax: Vec<(String, String)>,
    /// The archive ended, or the caller wants no more.
    pub done: bool,
}

impl TarReader {
    /// Reads `chunk`, calling `on` with each member and its data; `on`
    /// returns `false` to stop reading.
    pub fn feed<F>(&mut self, mut chunk: &[u8], on: &mut F) -> Reply<()>
    where
        F: FnMut(Event<'_>) -> Reply<bool>,
    {
        while !chunk.is_empty() && !self.done {
            if self.data_left > 0 {
                let n = self.data_left.min(chunk.len() as u64) as usize;
                let (data, rest) = chunk.split_at(n);
                chunk = rest;
                self.data_left -= n as u64;
                match &mut self.ext {
                    Some((_, buf)) => buf.extend_from_slice(data),
                    None => {
                        if !on(Event::Data(data))? {
                            self.done = true;
                        }
                    }
                }
                if self.data_left == 0 {
                    if let Some((kind, buf)) = self.ext.take() {
                        self.extension(kind, buf);
                    }
                }
                continue;
            }
            if self.pad_left > 0 {
                let n = self.pad_left.min(chunk.len() as u64);
                chunk = &chunk[n as usize..];
                self.pad_left -= n;
                continue;
            }
            let n = (BLOCK - self.block.len()).min(chunk.len());
            self.block.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if self.block.len() == BLOCK {
                let block = std::mem::take(&mut self.block);
                self.header(&block, on)?;
            }
        }
        Ok(())
    }

    /// The archive ended where a member could end.
    pub fn complete(&self) -> bool {
        self.done || (self.block.is_empty() && self.data_left == 0 && self.ext.is_none())
    }

    fn header<F>(&mut self, h: &[u8], on: &mut F) -> Reply<()>
    where
        F: FnMut(Event<'_>) -> Reply<bool>,
    {
        if h.iter().all(|b| *b == 0) {
            self.done = true;
            return Ok(());
        }
        let stored = number(&h[148..156]).map_err(|_| damaged("a header's checksum"))?;
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    *b as u64
                }
            })
            .sum();
        if sum != stored {
            return Err(damaged("a header's checksum does not match"));
        }
        let kind = h[156];
        let mut size = number(&h[124..136]).map_err(|_| damaged("a size"))?;
        if matches!(kind, b'L' | b'K' | b'x' | b'g') {
            if size > EXT_LIMIT {
                return Err(damaged("a name longer than 1 MiB"));
            }
            self.data_left = size;
            self.pad_left = padding(size);
            if size == 0 {
                self.extension(kind, Vec::new());
            } else {
                self.ext = Some((kind, Vec::with_capacity(size as usize)));
            }
            return Ok(());
        }
        let mut path = text(&h[..100]);
        if &h[257..263] == b"ustar\0" {
            let prefix = text(&h[345..500]);
            if !prefix.is_empty() {
                path = format!("{prefix}/{path}");
            }
        }
        let mut link = text(&h[157..257]);
        if let Some(n) = self.long_name.take() {
            path = n;
        }
        if let Some(l) = self.long_link.take() {
            link = l;
        }
        for (k, v) in std::mem::take(&mut self.pax) {
            match k.as_str() {
                "path" => path = v,
                "linkpath" => link = v,
                "size" => size = v.parse().map_err(|_| damaged("a PAX size"))?,
                _ => {}
            }
        }
        let m = Member {
            path,
            kind,
            size,
            mode: (number(&h[100..108]).unwrap_or(0) & 0o7777) as u32,
            uid: number(&h[108..116]).unwrap_or(0),
            gid: number(&h[116..124]).unwrap_or(0),
            mtime: number(&h[136..148]).unwrap_or(0),
            link,
        };
        self.data_left = size;
        self.pad_left = padding(size);
        if !on(Event::Member(&m))? {
            self.done = true;
        }
        Ok(())
    }

    fn extension(&mut self, kind: u8, data: Vec<u8>) {
        let name = || text(&data);
        match kind {
            b'L' => self.long_name = Some(name()),
            b'K' => self.long_link = Some(name()),
            b'x' => self.pax = pax_records(&data),
            _ => {}
        }
    }
}

/// Bytes of padding after `size` bytes of data.
fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// A NUL-ended header field as text.
fn text(field: &[u8]) -> String {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// A numeric header field: octal text, or GNU's base-256.
fn number(field: &[u8]) -> Result<u64, ()> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        let mut v: u64 = (field[0] & 0x7f) as u64;
        for b in &field[1..] {
            v = v.checked_mul(256).ok_or(())? | *b as u64;
        }
        return Ok(v);
    }
    let s = text(field);
    let s = s.trim_matches(|c: char| c == ' ' || c == '\0');
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(s, 8).map_err(|_| ())
}

/// `LEN key=value\n` records.
fn pax_records(mut data: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some(space) = data.iter().position(|b| *b == b' ') {
        let Some(len) = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
            .filter(|l| *l > space + 1 && *l <= data.len())
        else {
            break;
        };
        let record = &data[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(eq) = record.iter().position(|b| *b == b'=') {
            out.push((
                String::from_utf8_lossy(&record[..eq]).into_owned(),
                String::from_utf8_lossy(&record[eq + 1..]).into_owned(),
            ));
        }
        data = &data[len..];
    }
    out
}

/// Writes `v` into a numeric header field: octal when it fits, else
/// base-256.
fn put_number(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    if digits >= 22 || v < 1u64 << (3 * digits) {
        let s = format!("{v:0digits$o}");
        field[..digits].copy_from_slice(s.as_bytes());
        field[digits] = 0;
    } else {
        field.fill(0);
        let bytes = v.to_be_bytes();
        let n = field.len();
        field[n - 8..].copy_from_slice(&bytes);
        field[0] |= 0x80;
    }
}

/// One GNU tar header block.
pub(super) fn header_block(
    name: &[u8],
    kind: u8,
    size: u64,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
) -> Vec<u8> {
    let mut h = vec![0u8; BLOCK];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    put_number(&mut h[100..108], mode as u64);
    put_number(&mut h[108..116], uid);
    put_number(&mut h[116..124], gid);
    put_number(&mut h[124..136], size);
    put_number(&mut h[136..148], mtime);
    h[156] = kind;
    h[257..265].copy_from_slice(b"ustar  \0");
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|b| *b as u64).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// The tar headers of one regular file `name` of `size` bytes (a GNU
/// long-name member first when the name is longer than a header holds).
pub fn file_header(name: &[u8], size: u64, mode: u32, uid: u64, gid: u64, mtime: u64) -> Vec<u8> {
    let mut out = Vec::new();
    if name.len() > 100 {
        let mut long = name.to_vec();
        long.push(0);
        out.extend(header_block(
            b"././@LongLink",
            b'L',
            long.len() as u64,
            0o644,
            0,
            0,
            0,
        ));
        out.extend_from_slice(&long);
        out.resize(out.len() + padding(long.len() as u64) as usize, 0);
    }
    out.extend(header_block(name, b'0', size, mode, uid, gid, mtime));
    out
}

/// What follows a file's `size` bytes of data to end the archive: its
/// padding and two zero blocks.
pub fn trailer(size: u64) -> Vec<u8> {
    vec![0u8; padding(size) as usize + 2 * BLOCK]
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Every member and its data, the tar fed `step` bytes at a time.
    pub fn read(tar: &[u8], step: usize) -> Vec<(Member, Vec<u8>)> {
        let mut out: Vec<(Member, Vec<u8>)> = Vec::new();
        let mut r = TarReader::default();
        for chunk in tar.chunks(step) {
            r.feed(chunk, &mut |e| {
                match e {
                    Event::Member(m) => out.push((m.clone(), Vec::new())),
                    Event::Data(d) => out.last_mut().unwrap().1.extend_from_slice(d),
                }
                Ok(true)
            })
            .unwrap();
        }
        assert!(r.complete());
        out
    }

    /// A member `name` of type `kind` holding `data` (a link to `link`).
    pub fn member(name: &str, kind: u8, data: &[u8], link: &str) -> Vec<u8> {
        let mut h = header_block(name.as_bytes(), kind, data.len() as u64, 0o755, 1000, 50, 7);
        if !link.is_empty() {
            h[157..157 + link.len()].copy_from_slice(link.as_bytes());
            h[148..156].fill(b' ');
            let sum: u64 = h.iter().map(|b| *b as u64).sum();
            h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        }
        h.extend_from_slice(data);
        h.resize(h.len() + padding(data.len() as u64) as usize, 0);
        h
    }

    /// A folder's tar as `copy_from` writes it.
    pub fn etc() -> Vec<u8> {
        let long = format!("etc/{}", "n".repeat(120));
        let mut tar = Vec::new();
        tar.extend(member("etc/", b'5', b"", ""));
        tar.extend(member("etc/hostname", b'0', b"box\n", ""));
        tar.extend(member("etc/ssl/", b'5', b"", ""));
        tar.extend(member("etc/ssl/cert.pem", b'0', &[7u8; 700], ""));
        tar.extend(member("etc/mtab", b'2', b"", "/proc/mounts"));
        tar.extend(file_header(long.as_bytes(), 3, 0o600, 0, 0, 1));
        tar.extend_from_slice(b"abc");
        tar.extend(trailer(3));
        tar
    }

    #[test]
    fn members_and_data_read_in_any_chunks() {
        for step in [1, 7, 512, 513, 100_000] {
            let all = read(&etc(), step);
            let names: Vec<&str> = all.iter().map(|(m, _)| m.path.as_str()).collect();
            assert_eq!(
                names[..5],
                [
                    "etc/",
                    "etc/hostname",
                    "etc/ssl/",
                    "etc/ssl/cert.pem",
                    "etc/mtab"
                ]
            );
            assert_eq!(
                names[5],
                format!("etc/{}", "n".repeat(120)),
                "a GNU long name"
            );
            assert_eq!(all[1].1, b"box\n");
            assert_eq!(
                (all[1].0.mode, all[1].0.uid, all[1].0.gid, all[1].0.mtime),
                (0o755, 1000, 50, 7)
            );
            assert_eq!(all[3].1, vec![7u8; 700]);
            assert_eq!(all[4].0.link, "/proc/mounts");
            assert_eq!(all[5].1, b"abc");
        }
    }

    #[test]
    fn pax_and_ustar_prefix_names() {
        let records = b"29 path=etc/a-very-long-name\n";
        let mut tar = member("PaxHeaders/x", b'x', records, "");
        tar.extend(member("etc/short", b'0', b"z", ""));
        let mut h = header_block(b"name", b'0', 0, 0o644, 0, 0, 0);
        h[257..265].copy_from_slice(b"ustar\x0000");
        h[345..348].copy_from_slice(b"etc");
        h[148..156].fill(b' ');
        let sum: u64 = h.iter().map(|b| *b as u64).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        tar.extend(h);
        tar.extend(trailer(0));
        let names: Vec<String> = read(&tar, 33).into_iter().map(|(m, _)| m.path).collect();
        assert_eq!(names, ["etc/a-very-long-name", "etc/name"]);
    }

    #[test]
    fn big_numbers_and_damage() {
        let mut field = [0u8; 12];
        put_number(&mut field, 1 << 40);
        assert_eq!(number(&field), Ok(1 << 40));
        put_number(&mut field, 0o644);
        assert_eq!(&field, b"00000000644\0");
        let mut tar = member("x", b'0', b"", "");
        tar[0] = b'y';
        let mut r = TarReader::default();
        let e = r.feed(&tar, &mut |_| Ok(true)).unwrap_err();
        assert!(e.message.contains("checksum"), "{}", e.message);
        let mut r = TarReader::default();
        r.feed(&member("x", b'0', b"abc", "")[..514], &mut |_| Ok(true))
            .unwrap();
        assert!(!r.complete());
    }
}
