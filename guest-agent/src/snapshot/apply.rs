//! Applies one layer tar onto a snapshot directory (the "upper"), over the
//! read-only snapshots of the layers below it.
//!
//! The `tar` crate reads the archive (long names, PAX headers, sparse
//! files); its own `unpack` is not used because it resolves names on the
//! host rather than inside the image, cannot see the layers below, and does
//! not turn `.wh.` entries into overlay whiteouts. Every name is resolved
//! with [`MergedView`], so nothing outside `upper` is ever created, changed,
//! removed or followed, whatever the archive holds.

use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use filetime::FileTime;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use tar::EntryType;

use super::overlay::{is_whiteout, make_whiteout, set_opaque};
use super::resolve::{clean_components, Dir, Entry, MergedView};

/// What one layer wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct ApplyStats {
    /// Entries applied.
    pub entries: u64,
    /// Bytes written as Docker's overlay2 counts them: file contents, and
    /// each symbolic link's target length.
    pub bytes: u64,
}

/// xattrs an image may carry; overlay's own (`trusted.overlay.*`) and other
/// trusted or security names never come from an archive.
fn xattr_allowed(name: &[u8]) -> bool {
    name.starts_with(b"user.") || name == b"security.capability"
}

/// Writes a layer into `upper`, resolving names over `lowers` (top first).
pub fn apply_layer<R: Read>(reader: R, upper: &Path, lowers: &[PathBuf]) -> io::Result<ApplyStats> {
    let mut applier = Applier {
        view: MergedView { upper, lowers },
        cache: None,
        dir_times: Vec::new(),
        stats: ApplyStats::default(),
        buf: vec![0u8; 256 * 1024],
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.into_owned();
        applier
            .apply(&mut entry)
            .map_err(|e| io::Error::new(e.kind(), format!("entry '{}': {e}", name.display())))?;
    }
    // Directory times last: writing into a directory changes its mtime. A
    // later entry may have replaced the directory or one of its parents
    // (even with a symlink), so only paths that are still real directories
    // all the way down from `upper` are touched.
    for (path, mtime) in applier.dir_times.iter().rev() {
        if is_real_dir_below(upper, path) {
            filetime::set_symlink_file_times(path, *mtime, *mtime)?;
        }
    }
    Ok(applier.stats)
}

struct Applier<'a> {
    view: MergedView<'a>,
    /// The last parent directory resolved, ensured in the upper layer.
    cache: Option<(Vec<OsString>, Dir)>,
    dir_times: Vec<(PathBuf, FileTime)>,
    stats: ApplyStats,
    buf: Vec<u8>,
}

impl Applier<'_> {
    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<R>) -> io::Result<()> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let comps = clean_components(&entry.path()?);
        self.stats.entries += 1;
        let Some((name, parent)) = comps.split_last() else {
            // The archive's root ("./" or "/"): only its metadata applies.
            if kind == EntryType::Directory {
                let root = self.view.upper.to_path_buf();
                self.set_metadata(&root, entry, true)?;
            }
            return Ok(());
        };
        if name.as_bytes() == b".wh..wh..opq" {
            self.invalidate(parent);
            let dir = self.writable_dir(parent)?;
            return set_opaque(&self.view.upper.join(&dir.rel));
        }
        if let Some(hidden) = name.as_bytes().strip_prefix(b".wh.") {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a whiteout must name one file",
                ));
            }
            let mut target = parent.to_vec();
            target.push(OsStr::from_bytes(hidden).to_os_string());
            self.invalidate(&target);
            let dir = self.writable_dir(parent)?;
            let path = self
                .view
                .upper
                .join(&dir.rel)
                .join(OsStr::from_bytes(hidden));
            remove_any(&path)?;
            return make_whiteout(&path);
        }
        self.invalidate(&comps);
        let dir = self.writable_dir(parent)?;
        let dest = self.view.upper.join(&dir.rel).join(name);
        match kind {
            EntryType::Directory => {
                match fs::symlink_metadata(&dest) {
                    Ok(meta) if meta.is_dir() => {}
                    Ok(meta) => {
                        let was_whiteout = is_whiteout(&meta);
                        fs::remove_file(&dest)?;
                        fs::DirBuilder::new().mode(0o700).create(&dest)?;
                        if was_whiteout {
                            set_opaque(&dest)?;
                        }
                    }
                    Err(_) => fs::DirBuilder::new().mode(0o700).create(&dest)?,
                }
                self.set_metadata(&dest, entry, true)
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                remove_any(&dest)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&dest)?;
                loop {
                    let n = entry.read(&mut self.buf)?;
                    if n == 0 {
                        break;
                    }
                    file.write_all(&self.buf[..n])?;
                    self.stats.bytes += n as u64;
                }
                drop(file);
                self.set_metadata(&dest, entry, false)
            }
            EntryType::Symlink => {
                let target = entry.link_name()?.ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "a symlink without a target")
                })?;
                remove_any(&dest)?;
                std::os::unix::fs::symlink(&target, &dest)?;
                // As Docker's overlay2 counts a layer: a link's size is its
                // target's length (lstat's).
                self.stats.bytes += target.as_os_str().len() as u64;
                let h = entry.header();
                std::os::unix::fs::lchown(&dest, Some(h.uid()? as u32), Some(h.gid()? as u32))?;
                let mtime = FileTime::from_unix_time(h.mtime()? as i64, 0);
                filetime::set_symlink_file_times(&dest, mtime, mtime)
            }
            EntryType::Link => {
                let target = entry.link_name()?.ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "a hardlink without a target")
                })?;
                let source = self.hardlink_source(&clean_components(&target))?;
                if source == dest {
                    return Ok(());
                }
                remove_any(&dest)?;
                fs::hard_link(&source, &dest)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let h = entry.header();
                let (flag, dev) = match kind {
                    EntryType::Char => (SFlag::S_IFCHR, dev_of(h)?),
                    EntryType::Block => (SFlag::S_IFBLK, dev_of(h)?),
                    _ => (SFlag::S_IFIFO, 0),
                };
                remove_any(&dest)?;
                mknod(&dest, flag, Mode::from_bits_truncate(0o600), dev)
                    .map_err(io::Error::from)?;
                self.set_metadata(&dest, entry, false)
            }
            // Sockets and unknown kinds are not part of an image.
            _ => Ok(()),
        }
    }

    /// Drops the cached parent when this entry may change how it resolves.
    fn invalidate(&mut self, changed: &[OsString]) {
        if let Some((key, _)) = &self.cache {
            if key.starts_with(changed) {
                self.cache = None;
            }
        }
    }

    /// Resolves a parent directory and makes sure the upper layer has it.
    fn writable_dir(&mut self, parent: &[OsString]) -> io::Result<Dir> {
        if let Some((key, dir)) = &self.cache {
            if key.as_slice() == parent {
                return Ok(dir.clone());
            }
        }
        let dir = self.view.resolve_dir(parent)?;
        if !dir.in_upper {
            self.copy_up_dirs(&dir.rel)?;
        }
        let dir = Dir {
            in_upper: true,
            ..dir
        };
        self.cache = Some((parent.to_vec(), dir.clone()));
        Ok(dir)
    }

    /// Creates every directory of `rel` (a resolved, symlink-free path) in
    /// the upper layer, with the metadata of the lower directory it covers,
    /// as overlayfs does on copy-up.
    fn copy_up_dirs(&self, rel: &Path) -> io::Result<()> {
        let mut dir = self.view.root();
        for name in rel.iter() {
            let next = match self.view.lookup(&dir, name)? {
                Entry::Dir(d) => d,
                _ => Dir {
                    rel: dir.rel.join(name),
                    in_upper: false,
                    lowers: vec![],
                },
            };
            let path = self.view.upper.join(&next.rel);
            match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {}
                Ok(meta) if is_whiteout(&meta) => {
                    fs::remove_file(&path)?;
                    fs::DirBuilder::new().mode(0o755).create(&path)?;
                    set_opaque(&path)?;
                }
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotADirectory,
                        format!("/{} is not a directory", next.rel.display()),
                    ))
                }
                Err(_) => {
                    fs::DirBuilder::new().mode(0o755).create(&path)?;
                    if let Some(&i) = next.lowers.first() {
                        let meta = fs::symlink_metadata(self.view.lowers[i].join(&next.rel))?;
                        std::os::unix::fs::lchown(&path, Some(meta.uid()), Some(meta.gid()))?;
                        fs::set_permissions(
                            &path,
                            fs::Permissions::from_mode(meta.mode() & 0o7777),
                        )?;
                        let mtime = FileTime::from_last_modification_time(&meta);
                        filetime::set_symlink_file_times(&path, mtime, mtime)?;
                    }
                }
            }
            dir = Dir {
                in_upper: true,
                ..next
            };
        }
        Ok(())
    }

    /// Finds the file a hardlink points at, inside the image. A target that
    /// only a lower layer holds is first copied up, as overlayfs would.
    fn hardlink_source(&mut self, target: &[OsString]) -> io::Result<PathBuf> {
        let missing = || {
            io::Error::new(
                io::ErrorKind::NotFound,
                "the hardlink's target is not in the image",
            )
        };
        let (name, parent) = target.split_last().ok_or_else(missing)?;
        let dir = self.view.resolve_dir(parent)?;
        let upper_path = self.view.upper.join(&dir.rel).join(name);
        match self.view.lookup(&dir, name)? {
            Entry::Other { in_upper: true, .. } => Ok(upper_path),
            Entry::Symlink(_) if fs::symlink_metadata(&upper_path).is_ok() => Ok(upper_path),
            Entry::Other { lower: Some(i), .. } => {
                let dir = self.writable_dir(parent)?;
                let src = self.view.lowers[i].join(&dir.rel).join(name);
                let dest = self.view.upper.join(&dir.rel).join(name);
                copy_file_up(&src, &dest)?;
                Ok(dest)
            }
            _ => Err(missing()),
        }
    }

    /// Sets owner, mode, xattrs and (for non-directories) mtime from the
    /// entry's header. Directory mtimes are set at the end.
    fn set_metadata<R: Read>(
        &mut self,
        path: &Path,
        entry: &mut tar::Entry<R>,
        is_dir: bool,
    ) -> io::Result<()> {
        let h = entry.header();
        let (uid, gid, mode) = (h.uid()? as u32, h.gid()? as u32, h.mode()? & 0o7777);
        let mtime = FileTime::from_unix_time(h.mtime()? as i64, 0);
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
        fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
        if let Some(exts) = entry.pax_extensions()? {
            for ext in exts {
                let ext = ext?;
                if let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    if xattr_allowed(name) {
                        xattr::set(path, OsStr::from_bytes(name), ext.value_bytes())?;
                    }
                }
            }
        }
        if is_dir {
            self.dir_times.push((path.to_path_buf(), mtime));
            Ok(())
        } else {
            filetime::set_symlink_file_times(path, mtime, mtime)
        }
    }
}

fn dev_of(h: &tar::Header) -> io::Result<u64> {
    let major = h.device_major()?.unwrap_or(0);
    let minor = h.device_minor()?.unwrap_or(0);
    Ok(makedev(major.into(), minor.into()))
}

/// True when every component of `path` below `root` is a directory, not a
/// symlink or anything else.
fn is_real_dir_below(root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    let mut cur = root.to_path_buf();
    for part in rel.iter() {
        cur.push(part);
        match fs::symlink_metadata(&cur) {
            Ok(meta) if meta.is_dir() => {}
            _ => return false,
        }
    }
    true
}

/// Removes whatever is at `path` (never following a symlink there).
fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Copies a regular file from a lower layer with its owner, mode and mtime.
fn copy_file_up(src: &Path, dest: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a hardlink may only point at a file",
        ));
    }
    let mut from = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(src)?;
    let mut to = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dest)?;
    io::copy(&mut from, &mut to)?;
    drop(to);
    std::os::unix::fs::lchown(dest, Some(meta.uid()), Some(meta.gid()))?;
    fs::set_permissions(dest, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    let mtime = FileTime::from_last_modification_time(&meta);
    filetime::set_symlink_file_times(dest, mtime, mtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar whose names are written raw (so `..` and absolute names survive),
    /// owned by the current user so the test needs no privileges.
    fn layer(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
        let (uid, gid) = (
            nix::unistd::getuid().as_raw() as u64,
            nix::unistd::getgid().as_raw() as u64,
        );
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, link, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            h.set_entry_type(*kind);
            h.set_mode(if *kind == EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_uid(uid);
            h.set_gid(gid);
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn apply(dir: &Path, name: &str, tar: &[u8], lowers: &[&str]) -> io::Result<PathBuf> {
        let upper = dir.join(name);
        fs::create_dir_all(&upper).unwrap();
        let lowers: Vec<PathBuf> = lowers.iter().map(|l| dir.join(l)).collect();
        apply_layer(tar, &upper, &lowers).map(|_| upper)
    }

    use EntryType::{Directory as D, Regular as F, Symlink as L};

    #[test]
    fn names_that_climb_or_are_absolute_land_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let abs = format!("{}/abs", outside.display());
        let tar = layer(&[
            ("../../../../escape", F, "", b"1"),
            (abs.as_str(), F, "", b"2"),
            ("link", L, outside.to_str().unwrap(), b""),
            ("link/through", F, "", b"3"),
        ]);
        let upper = apply(tmp.path(), "l0", &tar, &[]).unwrap();
        assert_eq!(fs::read(upper.join("escape")).unwrap(), b"1");
        assert_eq!(
            fs::read(upper.join(abs.trim_start_matches('/'))).unwrap(),
            b"2"
        );
        assert_eq!(
            fs::read(
                upper
                    .join(outside.strip_prefix("/").unwrap())
                    .join("through")
            )
            .unwrap(),
            b"3"
        );
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing written outside"
        );
    }

    #[test]
    fn a_later_layer_writes_through_a_lower_symlink_as_the_image_means() {
        let tmp = tempfile::tempdir().unwrap();
        let lower = layer(&[
            ("run/", D, "", b""),
            ("var/", D, "", b""),
            ("var/run", L, "/run", b""),
        ]);
        apply(tmp.path(), "l0", &lower, &[]).unwrap();
        let upper = apply(
            tmp.path(),
            "l1",
            &layer(&[("var/run/app.pid", F, "", b"42")]),
            &["l0"],
        )
        .unwrap();
        assert_eq!(fs::read(upper.join("run/app.pid")).unwrap(), b"42");
        assert!(
            !upper.join("var/run").exists(),
            "the lower symlink is kept, not replaced"
        );
        // An explicit directory entry replaces the symlink, as containerd does.
        let upper2 = apply(
            tmp.path(),
            "l2",
            &layer(&[("var/run/", D, "", b""), ("var/run/x", F, "", b"x")]),
            &["l0"],
        )
        .unwrap();
        assert!(fs::symlink_metadata(upper2.join("var/run"))
            .unwrap()
            .is_dir());
        assert_eq!(fs::read(upper2.join("var/run/x")).unwrap(), b"x");
    }

    #[test]
    fn directory_times_never_follow_a_symlink_that_replaced_a_parent() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir_all(outside.join("y")).unwrap();
        let old = FileTime::from_unix_time(1_000_000_000, 0);
        filetime::set_file_times(outside.join("y"), old, old).unwrap();
        let tar = layer(&[
            ("x/", D, "", b""),
            ("x/y/", D, "", b""),
            ("x", L, outside.to_str().unwrap(), b""),
        ]);
        let upper = apply(tmp.path(), "l0", &tar, &[]).unwrap();
        assert!(fs::symlink_metadata(upper.join("x"))
            .unwrap()
            .file_type()
            .is_symlink());
        let after =
            FileTime::from_last_modification_time(&fs::metadata(outside.join("y")).unwrap());
        assert_eq!(after, old, "the host directory's mtime must not change");
    }

    #[test]
    fn symlink_loops_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let tar = layer(&[("a", L, "b", b""), ("b", L, "a", b""), ("a/x", F, "", b"x")]);
        let err = apply(tmp.path(), "l0", &tar, &[]).unwrap_err().to_string();
        assert!(err.contains("too many levels of symbolic links"), "{err}");
    }
}
