//! The tar that `copy_from` sends and `copy_to` takes, through the `tar`
//! crate: read as it arrives (the chunk stream bridged to a blocking
//! reader on a blocking thread), and written for one file at a time.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use tar::{Archive, Builder, EntryType, Header};
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::commands::{Reply, UiError};

/// A tar block.
const BLOCK: u64 = 512;
/// The longest name a header holds without a PAX record.
const NAME_LIMIT: usize = 100;

/// A tar that cannot be read, as a sentence.
pub fn damaged(why: &str) -> UiError {
    UiError {
        kind: "Internal".into(),
        message: format!("the container's files came back damaged ({why}); try again"),
    }
}

fn cannot_write(e: io::Error) -> UiError {
    UiError {
        kind: "Internal".into(),
        message: format!("cannot write the tar of the file: {e}"),
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

    fn of<R: Read>(e: &tar::Entry<'_, R>) -> Member {
        let h = e.header();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Member {
            path: text(&e.path_bytes()),
            kind: h.entry_type().as_byte(),
            size: e.size(),
            mode: h.mode().unwrap_or(0) & 0o7777,
            uid: h.uid().unwrap_or(0),
            gid: h.gid().unwrap_or(0),
            mtime: h.mtime().unwrap_or(0),
            link: e.link_name_bytes().map(|l| text(&l)).unwrap_or_default(),
        }
    }
}

/// Reads the tar in `input`, handing each member and a reader of its data
/// to `on` until it returns `false` or the tar ends.
pub fn read_members<R, F>(input: R, mut on: F) -> Reply<()>
where
    R: Read,
    F: FnMut(&Member, &mut dyn Read) -> Reply<bool>,
{
    let mut archive = Archive::new(input);
    let entries = archive.entries().map_err(|e| damaged(&e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| damaged(&e.to_string()))?;
        if entry.header().entry_type().is_pax_global_extensions() {
            continue;
        }
        let m = Member::of(&entry);
        if !on(&m, &mut entry)? {
            break;
        }
    }
    Ok(())
}

/// Reads the tar arriving in `chunks` on a blocking thread, handing
/// `state`, each member and a reader of its data to `on` until it returns
/// `false` or the tar ends; gives `state` back. When the stream itself
/// failed, its error is the answer.
pub async fn read_stream<S, F>(
    chunks: berth_client::Stream<Vec<u8>>,
    state: S,
    mut on: F,
) -> Reply<S>
where
    S: Send + 'static,
    F: FnMut(&mut S, &Member, &mut dyn Read) -> Reply<bool> + Send + 'static,
{
    let failed: Arc<Mutex<Option<berth_client::Error>>> = Arc::default();
    let slot = failed.clone();
    let bytes = chunks.map(move |c| {
        c.map(io::Cursor::new).map_err(|e| {
            if let Ok(mut s) = slot.lock() {
                *s = Some(e);
            }
            io::Error::other("the stream of the container's files failed")
        })
    });
    let input = SyncIoBridge::new(StreamReader::new(bytes));
    let read = tokio::task::spawn_blocking(move || {
        let mut state = state;
        read_members(input, |m, data| on(&mut state, m, data)).map(|()| state)
    })
    .await
    .map_err(|e| damaged(&format!("the reader stopped: {e}")))?;
    let stream_error = failed.lock().ok().and_then(|mut s| s.take());
    match (read, stream_error) {
        (Err(_), Some(e)) => Err(e.into()),
        (read, _) => read,
    }
}

/// A header for one regular file of `size` bytes.
fn header(size: u64, mode: u32, uid: u64, gid: u64, mtime: u64) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(EntryType::Regular);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(gid);
    h.set_mtime(mtime);
    h
}

/// `name` (one file name, no `/`) as a path for a header.
fn as_path(name: &[u8]) -> std::borrow::Cow<'_, std::path::Path> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        std::path::Path::new(std::ffi::OsStr::from_bytes(name)).into()
    }
    #[cfg(not(unix))]
    {
        std::path::PathBuf::from(String::from_utf8_lossy(name).into_owned()).into()
    }
}

/// The tar headers of one regular file `name` of `size` bytes, its data
/// to follow them (then [`trailer`]); a name longer than a header holds
/// goes in a PAX record before it.
pub fn file_header(
    name: &[u8],
    size: u64,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
) -> Reply<Vec<u8>> {
    let mut h = header(size, mode, uid, gid, mtime);
    let mut out = Vec::new();
    if name.len() > NAME_LIMIT {
        let mut pax = Builder::new(Vec::new());
        pax.append_pax_extensions([("path", name)])
            .map_err(cannot_write)?;
        // The PAX member alone: the end blocks the builder adds when
        // dropped go to the empty buffer left in its place.
        out = std::mem::take(pax.get_mut());
        // Readers without PAX see the name cut to what the header holds.
        h.as_old_mut().name.copy_from_slice(&name[..NAME_LIMIT]);
    } else {
        h.set_path(as_path(name)).map_err(cannot_write)?;
    }
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    Ok(out)
}

/// What follows a file's `size` bytes of data to end the archive: its
/// padding to a whole block and two zero blocks.
pub fn trailer(size: u64) -> Vec<u8> {
    vec![0u8; ((BLOCK - size % BLOCK) % BLOCK + 2 * BLOCK) as usize]
}

/// The whole tar of one small file `name` holding `data`.
pub fn small_file(
    name: &str,
    data: &[u8],
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
) -> Reply<Vec<u8>> {
    let mut h = header(data.len() as u64, mode, uid, gid, mtime);
    let mut tar = Builder::new(Vec::with_capacity(data.len() + 4 * BLOCK as usize));
    tar.append_data(&mut h, name, data).map_err(cannot_write)?;
    tar.into_inner().map_err(cannot_write)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Every member and its data, the tar streamed `step` bytes at a time.
    pub fn read(tar: &[u8], step: usize) -> Reply<Vec<(Member, Vec<u8>)>> {
        let chunks: Vec<berth_client::Result<Vec<u8>>> =
            tar.chunks(step).map(|c| Ok(c.to_vec())).collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(read_stream(
            Box::pin(futures::stream::iter(chunks)),
            Vec::new(),
            |all: &mut Vec<(Member, Vec<u8>)>, m, data| {
                let mut bytes = Vec::new();
                data.read_to_end(&mut bytes).unwrap();
                all.push((m.clone(), bytes));
                Ok(true)
            },
        ))
    }

    /// A member `name` of type `kind` holding `data` (a link to `link`).
    pub fn member(
        tar: &mut Builder<Vec<u8>>,
        name: &str,
        kind: EntryType,
        data: &[u8],
        link: &str,
    ) {
        let mut h = header(data.len() as u64, 0o755, 1000, 50, 7);
        h.set_entry_type(kind);
        if !link.is_empty() {
            h.set_link_name(link).unwrap();
        }
        tar.append_data(&mut h, name, data).unwrap();
    }

    /// A folder's tar as `copy_from` writes it.
    pub fn etc() -> Vec<u8> {
        let mut tar = Builder::new(Vec::new());
        let global = b"17 comment=berth\n";
        member(
            &mut tar,
            "pax_global_header",
            EntryType::XGlobalHeader,
            global,
            "",
        );
        member(&mut tar, "etc/", EntryType::Directory, b"", "");
        member(&mut tar, "etc/hostname", EntryType::Regular, b"box\n", "");
        member(&mut tar, "etc/ssl/", EntryType::Directory, b"", "");
        member(
            &mut tar,
            "etc/ssl/cert.pem",
            EntryType::Regular,
            &[7u8; 700],
            "",
        );
        member(
            &mut tar,
            "etc/mtab",
            EntryType::Symlink,
            b"",
            "/proc/mounts",
        );
        let mut tar = tar.into_inner().unwrap();
        tar.truncate(tar.len() - 2 * BLOCK as usize);
        let long = format!("etc/{}", "n".repeat(120));
        tar.extend(file_header(long.as_bytes(), 3, 0o600, 0, 0, 1).unwrap());
        tar.extend_from_slice(b"abc");
        tar.extend(trailer(3));
        tar
    }

    #[test]
    fn members_and_data_read_in_any_chunks() {
        for step in [1, 7, 512, 513, 100_000] {
            let all = read(&etc(), step).unwrap();
            let names: Vec<&str> = all.iter().map(|(m, _)| m.path.as_str()).collect();
            assert_eq!(names.len(), 6, "no PAX global header: {names:?}");
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
            assert_eq!(names[5], format!("etc/{}", "n".repeat(120)), "a PAX name");
            assert_eq!(all[1].1, b"box\n");
            assert_eq!(
                (all[1].0.mode, all[1].0.uid, all[1].0.gid, all[1].0.mtime),
                (0o755, 1000, 50, 7)
            );
            assert_eq!(all[3].1, vec![7u8; 700]);
            assert_eq!(
                (all[4].0.kind_name(), all[4].0.link.as_str()),
                ("link", "/proc/mounts")
            );
            assert_eq!(all[5].1, b"abc");
            assert_eq!((all[5].0.mode, all[5].0.size), (0o600, 3));
        }
    }

    #[test]
    fn gnu_long_names_and_ustar_prefixes() {
        let long = format!("etc/{}", "g".repeat(150));
        let text = small_file(&long, b"hi", 0o640, 1, 2, 3).unwrap();
        let all = read(&text, 100).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(
            (all[0].0.path.as_str(), all[0].1.as_slice()),
            (long.as_str(), &b"hi"[..])
        );
        assert_eq!((all[0].0.mode, all[0].0.uid, all[0].0.gid), (0o640, 1, 2));

        let deep = format!("etc/{}/name", "d".repeat(100));
        let mut h = Header::new_ustar();
        h.set_path(&deep).unwrap();
        h.set_size(0);
        h.set_cksum();
        let mut tar = h.as_bytes().to_vec();
        tar.extend(trailer(0));
        let names: Vec<String> = read(&tar, 33)
            .unwrap()
            .into_iter()
            .map(|(m, _)| m.path)
            .collect();
        assert_eq!(names, [deep]);
    }

    #[test]
    fn damage_is_a_sentence() {
        let mut tar = small_file("x", b"abc", 0o644, 0, 0, 0).unwrap();
        tar[0] = b'y';
        let e = read(&tar, 512).unwrap_err();
        assert!(e.message.contains("damaged"), "{}", e.message);
        let tar = small_file("x", b"abc", 0o644, 0, 0, 0).unwrap();
        let e = read(&tar[..514], 512).unwrap_err();
        assert!(
            e.message
                .starts_with("the container's files came back damaged"),
            "{}",
            e.message
        );
        assert_eq!(read(&tar[..0], 512).unwrap(), []);
    }

    #[test]
    fn a_failed_stream_gives_its_own_error() {
        let chunks: Vec<berth_client::Result<Vec<u8>>> = vec![Err(berth_client::Error::new(
            berth_client::ErrorKind::Unavailable,
            "the agent went away",
        ))];
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let e = rt
            .block_on(read_stream(
                Box::pin(futures::stream::iter(chunks)),
                (),
                |_, _, _| Ok(true),
            ))
            .unwrap_err();
        assert_eq!(e.message, "the agent went away");
    }
}
