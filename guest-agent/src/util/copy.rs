//! Filling a new volume from the image, as Docker does on a volume's
//! first mount: the image's files at the mount point are copied into the
//! empty volume, keeping modes, owners, times and links.
//!
//! The mount point is resolved inside the container's root with
//! `openat2(RESOLVE_IN_ROOT)`, so an image whose path is a symlink to
//! somewhere on the host is read inside its own root; the copy never
//! follows a symlink (links are copied as links). It is written by hand:
//! the copying crates (fs_extra, copy_dir) follow symlinks or drop owners.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};

/// Opens `path` inside `root` as the container would see it (symlinks
/// resolved within `root`), with `flags`.
pub fn open_in_root(root: &Path, path: &str, flags: OFlag) -> std::io::Result<OwnedFd> {
    let root_fd = std::fs::File::open(root)?;
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    use std::os::fd::AsRawFd;
    let fd = openat2(root_fd.as_raw_fd(), rel, how).map_err(std::io::Error::from)?;
    // SAFETY: openat2 returned a new descriptor that we alone own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Copies what the container's `root` has at `path` into the empty
/// directory `volume`; nothing when the path is missing or not a
/// directory, or the volume is not empty.
pub fn fill_volume(root: &Path, path: &str, volume: &Path) -> std::io::Result<()> {
    if std::fs::read_dir(volume)?.next().is_some() {
        return Ok(());
    }
    let dir = match open_in_root(root, path, OFlag::O_PATH | OFlag::O_DIRECTORY) {
        Ok(fd) => fd,
        Err(_) => return Ok(()),
    };
    use std::os::fd::AsRawFd;
    let src = std::path::PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let meta = std::fs::metadata(&src)?;
    copy_children(&src, volume)?;
    std::fs::set_permissions(
        volume,
        std::fs::Permissions::from_mode(meta.mode() & 0o7777),
    )?;
    std::os::unix::fs::chown(volume, Some(meta.uid()), Some(meta.gid()))?;
    keep_times(volume, &meta)
}

/// Gives `to` the access and modification times of `meta` (a link's own).
fn keep_times(to: &Path, meta: &std::fs::Metadata) -> std::io::Result<()> {
    let atime = filetime::FileTime::from_last_access_time(meta);
    let mtime = filetime::FileTime::from_last_modification_time(meta);
    filetime::set_symlink_file_times(to, atime, mtime)
}

fn copy_children(src: &Path, dst: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        copy_entry(&entry.path(), &dst.join(entry.file_name()))?;
    }
    Ok(())
}

/// Copies `from` to the new path `to` (a folder with everything in it),
/// keeping modes, owners, times and links; never follows a symlink.
pub fn copy_entry(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(from)?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        std::os::unix::fs::symlink(std::fs::read_link(from)?, to)?;
    } else if ft.is_dir() {
        std::fs::create_dir(to)?;
        copy_children(from, to)?;
    } else if ft.is_file() {
        let mut r = std::fs::File::open(from)?;
        let mut w = std::fs::File::create(to)?;
        std::io::copy(&mut r, &mut w)?;
    } else {
        // Devices, fifos and sockets: made again, not read.
        nix::sys::stat::mknod(
            to,
            nix::sys::stat::SFlag::from_bits_truncate(meta.mode()),
            nix::sys::stat::Mode::from_bits_truncate(meta.mode()),
            meta.rdev(),
        )?;
    }
    std::os::unix::fs::lchown(to, Some(meta.uid()), Some(meta.gid()))?;
    if !ft.is_symlink() {
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    // Last, after a folder's children changed its times.
    keep_times(to, &meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlinked_mount_point_is_read_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let (root, outside, vol) = (
            t.path().join("root"),
            t.path().join("outside"),
            t.path().join("vol"),
        );
        for d in [&root.join("data/sub"), &outside, &vol] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(root.join("data/sub/f"), "in").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("data/link")).unwrap();
        std::fs::write(outside.join("secret"), "host").unwrap();
        // An image path that points at the host's directory by absolute link.
        std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
        let then = filetime::FileTime::from_unix_time(1_700_000_000, 0);
        filetime::set_file_times(root.join("data/sub/f"), then, then).unwrap();
        filetime::set_file_times(root.join("data/sub"), then, then).unwrap();
        fill_volume(&root, "/data", &vol).unwrap();
        assert_eq!(std::fs::read_to_string(vol.join("sub/f")).unwrap(), "in");
        for kept in ["sub/f", "sub"] {
            let m = std::fs::metadata(vol.join(kept)).unwrap();
            assert_eq!(
                filetime::FileTime::from_last_modification_time(&m),
                then,
                "{kept}"
            );
        }
        assert_eq!(
            std::fs::read_link(vol.join("link")).unwrap(),
            Path::new("/etc/passwd")
        );
        let vol2 = t.path().join("vol2");
        std::fs::create_dir(&vol2).unwrap();
        fill_volume(&root, "/evil", &vol2).unwrap();
        assert!(
            !vol2.join("secret").exists(),
            "the copy left the container's root"
        );
    }
}
