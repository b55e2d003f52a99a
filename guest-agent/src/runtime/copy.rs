//! `cp` in both directions, safe against a container's symlinks.
//!
//! Every path in the container is resolved with
//! `openat2(RESOLVE_IN_ROOT)` against the container's root, so a link to
//! `/` or `../../..` means the container's own root, even if the
//! container swaps links while the copy runs (CVE-2018-15664). Each
//! archive entry is written relative to its resolved parent directory with
//! `O_NOFOLLOW`/`O_EXCL`, and names with `..` are refused.
//!
//! A copy sees the container's volumes and binds where the container sees
//! them, as Docker's does: [`in_view`] runs it in a thread with a mount
//! namespace of its own in which each is mounted over the root (at a
//! place resolved in the root too), so nothing changes in the agent's or
//! the container's namespace.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

use super::tree::{self, Node, TarOptions};
use crate::error::{Error, Result};
use crate::util::copy::open_in_root;

/// Writes what the container's `root` has at `path` to `out` as a tar
/// whose top entry is the path's last name; with `follow` a final symlink
/// is copied as what it points to.
pub fn copy_out(root: &Path, path: &str, follow: bool, out: impl Write) -> Result<()> {
    let missing = |e: io::Error| {
        Error::not_found(format!(
            "could not find the file {path} in the container ({e})"
        ))
    };
    let clean = path.trim_end_matches('/');
    let (parent, name) = clean.rsplit_once('/').unwrap_or(("", clean));
    let mut b = tar::Builder::new(out);
    let opts = TarOptions::default();
    let io_err = |e: io::Error| Error::io("copying out of the container", e);
    if name.is_empty() {
        let dir = open_in_root(root, "/", OFlag::O_RDONLY | OFlag::O_DIRECTORY).map_err(missing)?;
        tree::append_tree(&mut b, &dir, "", &opts).map_err(io_err)?;
        return finish(b).map_err(io_err);
    }
    let parent_fd =
        open_in_root(root, parent, OFlag::O_RDONLY | OFlag::O_DIRECTORY).map_err(missing)?;
    let stat = nix::sys::stat::fstatat(
        Some(parent_fd.as_raw_fd()),
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| missing(e.into()))?;
    let is_link = SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFLNK;
    if follow && is_link {
        // The link's target, resolved in the container's root.
        let target = open_in_root(root, clean, OFlag::O_PATH).map_err(missing)?;
        let tstat = fstat(target.as_raw_fd()).map_err(|e| io_err(e.into()))?;
        let kind = SFlag::from_bits_truncate(tstat.st_mode & SFlag::S_IFMT.bits());
        let flags = if kind == SFlag::S_IFDIR {
            OFlag::O_RDONLY | OFlag::O_DIRECTORY
        } else {
            OFlag::O_RDONLY
        };
        let opened = open_in_root(root, clean, flags).map_err(missing)?;
        write_opened(&mut b, opened, tstat, name, &opts).map_err(io_err)?;
        return finish(b).map_err(io_err);
    }
    let node = Node {
        parent: &parent_fd,
        name: OsStr::new(name),
        path: clean,
        stat,
    };
    tree::append(&mut b, &node, name, &opts).map_err(io_err)?;
    if node.kind() == SFlag::S_IFDIR {
        let dir = tree::open_dir(&parent_fd, OsStr::new(name)).map_err(io_err)?;
        tree::append_tree(&mut b, &dir, name, &opts).map_err(io_err)?;
    }
    finish(b).map_err(io_err)
}

/// Writes an already opened file or directory (a followed link).
fn write_opened<W: Write>(
    b: &mut tar::Builder<W>,
    opened: OwnedFd,
    stat: nix::sys::stat::FileStat,
    name: &str,
    opts: &TarOptions,
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_mode(stat.st_mode & 0o7777);
    h.set_uid(stat.st_uid.into());
    h.set_gid(stat.st_gid.into());
    h.set_mtime(stat.st_mtime.max(0) as u64);
    tree::set_names(&mut h, stat.st_uid, stat.st_gid);
    if SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFDIR {
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        b.append_data(&mut h, format!("{name}/"), io::empty())?;
        tree::append_tree(b, &opened, name, opts)?;
    } else {
        let file = std::fs::File::from(opened);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(file.metadata()?.len());
        b.append_data(&mut h, name, file)?;
    }
    Ok(())
}

/// Ends the archive and flushes what holds it.
fn finish<W: Write>(b: tar::Builder<W>) -> io::Result<()> {
    b.into_inner()?.flush()
}

/// Calls `each` with every entry of a tar and its name's parts (without
/// `.` and `/`), refusing names with `..`.
fn each_entry<R: Read>(
    input: R,
    mut each: impl FnMut(&mut tar::Entry<'_, R>, Vec<std::ffi::OsString>) -> Result<()>,
) -> Result<()> {
    let mut archive = tar::Archive::new(input);
    let entries = archive.entries().map_err(|e| {
        Error::InvalidArgument(format!("the copied data is not a tar archive: {e}"))
    })?;
    for entry in entries {
        let mut entry = entry.map_err(|e| {
            Error::InvalidArgument(format!("the copied tar archive is damaged: {e}"))
        })?;
        let name = entry.path().map_err(|e| bad_name(&e))?.to_path_buf();
        let parts: Vec<std::ffi::OsString> = name
            .iter()
            .filter(|c| *c != "." && *c != "/")
            .map(|c| c.to_os_string())
            .collect();
        if parts.iter().any(|c| c == "..") {
            return Err(Error::InvalidArgument(format!(
                "the archive entry {} leaves its directory: entries with .. are refused",
                name.display()
            )));
        }
        each(&mut entry, parts)?;
    }
    Ok(())
}

/// The top-level names of a tar (`a` for `a/b/c`), checking every entry's
/// name first: nothing is written for an archive that would be refused
/// half way.
fn top_names(input: impl Read) -> Result<std::collections::BTreeSet<String>> {
    let mut names = std::collections::BTreeSet::new();
    each_entry(input, |_, parts| {
        if let Some(first) = parts.first() {
            names.insert(first.to_string_lossy().into_owned());
        }
        Ok(())
    })?;
    Ok(names)
}

/// Extracts the tar that `open` reads into the container's directory
/// `dest`, never writing outside the container's `root`. The archive is
/// read twice: once to check it, once to write it, so a refused copy
/// writes nothing. A missing `dest` takes the one item the archive holds
/// (its name in its parent, as `docker cp` does); an archive of several
/// items needs `dest` to exist.
pub fn copy_in<R: Read>(
    root: &Path,
    dest: &str,
    keep_owner: bool,
    open: impl Fn() -> io::Result<R>,
) -> Result<()> {
    let reading = |e: io::Error| Error::io("reading the copy", e);
    let names = top_names(open().map_err(reading)?)?;
    let input = open().map_err(reading)?;
    let mut dest = dest.trim_end_matches('/').to_string();
    // Into an existing directory; otherwise the copied item takes the
    // destination's name in its parent, as `docker cp` does.
    let mut rename: Option<String> = None;
    if open_in_root(root, &dest, OFlag::O_RDONLY | OFlag::O_DIRECTORY).is_err() {
        let (parent, name) = dest.rsplit_once('/').unwrap_or(("", &dest));
        let (parent, name) = (parent.to_string(), name.to_string());
        open_in_root(root, &parent, OFlag::O_RDONLY | OFlag::O_DIRECTORY).map_err(|e| {
            Error::not_found(format!(
                "the destination directory {parent}/ does not exist in the container ({e})"
            ))
        })?;
        if names.len() > 1 {
            return Err(Error::not_found(format!(
                "could not find the folder {dest} in the container: copying several items needs a folder that exists"
            )));
        }
        rename = Some(name);
        dest = parent;
    }
    each_entry(input, |entry, mut parts| {
        if let (Some(new), Some(first)) = (&rename, parts.first_mut()) {
            *first = new.into();
        }
        let Some((leaf, dirs)) = parts.split_last() else {
            return Ok(());
        };
        // Parents, made as needed, each resolved inside the root.
        let mut rel = dest.clone();
        for dir in dirs {
            let parent = open_in_root(root, &rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
                .map_err(|e| write_err(&rel, e))?;
            let _ = nix::sys::stat::mkdirat(
                Some(parent.as_raw_fd()),
                dir.as_os_str(),
                Mode::from_bits_truncate(0o755),
            );
            rel = format!("{rel}/{}", dir.to_string_lossy());
        }
        let parent = open_in_root(root, &rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
            .map_err(|e| write_err(&rel, e))?;
        write_entry(&parent, leaf, entry, keep_owner)
            .map_err(|e| write_err(&format!("{rel}/{}", leaf.to_string_lossy()), e))
    })
}

fn bad_name(e: &io::Error) -> Error {
    Error::InvalidArgument(format!("the copied tar archive has a bad name: {e}"))
}

fn write_err(path: &str, e: io::Error) -> Error {
    Error::FailedPrecondition(format!("{path} cannot be written in the container: {e}"))
}

/// Makes one archive entry as `name` in the directory `parent`.
fn write_entry<R: Read>(
    parent: &OwnedFd,
    name: &OsStr,
    entry: &mut tar::Entry<R>,
    keep_owner: bool,
) -> io::Result<()> {
    let h = entry.header().clone();
    let mode = Mode::from_bits_truncate(h.mode().unwrap_or(0o644) & 0o7777);
    let dirfd = Some(parent.as_raw_fd());
    let kind = h.entry_type();
    if !kind.is_dir() {
        // Replace whatever is there (a link is removed, not followed).
        match nix::unistd::unlinkat(dirfd, name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    match kind {
        tar::EntryType::Directory => match nix::sys::stat::mkdirat(dirfd, name, mode) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        },
        tar::EntryType::Symlink => {
            let target = entry
                .link_name()?
                .ok_or_else(|| io::Error::other("a symlink without a target"))?;
            nix::unistd::symlinkat(target.as_ref(), dirfd, name)?;
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            let kind_bits = match kind {
                tar::EntryType::Char => SFlag::S_IFCHR,
                tar::EntryType::Block => SFlag::S_IFBLK,
                _ => SFlag::S_IFIFO,
            };
            let dev = libc::makedev(
                h.device_major()?.unwrap_or(0),
                h.device_minor()?.unwrap_or(0),
            );
            nix::sys::stat::mknodat(dirfd, name, kind_bits, mode, dev)?;
        }
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            let fd = openat(
                dirfd,
                name,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                mode,
            )?;
            // SAFETY: openat returned a new descriptor that we alone own.
            let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
            io::copy(entry, &mut file)?;
            nix::sys::stat::fchmod(file.as_raw_fd(), mode)?;
        }
        // Hard links and metadata entries are not copied in.
        _ => return Ok(()),
    }
    if keep_owner {
        let (uid, gid) = (h.uid()? as u32, h.gid()? as u32);
        nix::unistd::fchownat(
            dirfd,
            name,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
    }
    Ok(())
}

/// A host folder or file that a copy sees at `destination` in the
/// container (a volume, a bind, or one of the `/etc` files Berth writes).
#[derive(Debug, Clone)]
pub struct Bound {
    /// The host path.
    pub source: PathBuf,
    /// Where the container sees it.
    pub destination: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// Made in the root when missing and the copy writes (Docker makes a
    /// container's mount points when it copies into it).
    pub make: bool,
}

/// Runs `f` where `root` holds everything in `bound` at its destination:
/// in a thread of its own, in a private mount namespace that ends with
/// it. A destination that is missing is made when `writable` and the
/// entry asks for it, else left out.
pub fn in_view<T: Send>(
    root: &Path,
    bound: &[Bound],
    writable: bool,
    f: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    if bound.is_empty() {
        return f();
    }
    std::thread::scope(|s| {
        s.spawn(move || {
            enter_view(root, bound, writable)?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Internal("the copy crashed".into())))
    })
}

/// Unshares this thread's mounts and mounts `bound` over `root`.
fn enter_view(root: &Path, bound: &[Bound], writable: bool) -> Result<()> {
    use nix::mount::{mount, MsFlags};
    let fail = |what: &str, e: io::Error| Error::Internal(format!("{what} for the copy: {e}"));
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| fail("a mount namespace cannot be made", e.into()))?;
    // Nothing mounted here may reach the agent's namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| fail("the mounts cannot be made private", e.into()))?;
    // Outer mounts first, so an inner one lands inside its volume.
    let mut order: Vec<&Bound> = bound.iter().collect();
    order.sort_by_key(|b| b.destination.matches('/').count());
    for b in order {
        let is_dir = b.source.is_dir();
        let target = match open_in_root(root, &b.destination, OFlag::O_PATH) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound && writable && b.make => {
                make_point(root, &b.destination, is_dir)
                    .and_then(|_| open_in_root(root, &b.destination, OFlag::O_PATH))
                    .map_err(|e| fail(&format!("{} cannot be made", b.destination), e))?
            }
            Err(_) => continue,
        };
        mount_at(&b.source, &target, b.read_only)
            .map_err(|e| fail(&format!("{} cannot be mounted", b.destination), e))?;
    }
    Ok(())
}

/// Mounts a copy of the host's `source` on the opened `target` (the new
/// mount API: no path is looked up again once `target` is open).
fn mount_at(source: &Path, target: &OwnedFd, read_only: bool) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    const OPEN_TREE_CLONE: libc::c_uint = 1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    const MOUNT_ATTR_RDONLY: u64 = 1;
    let check = |rc: libc::c_long| {
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    };
    let src = CString::new(source.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: open_tree reads the NUL-terminated path and returns a new
    // descriptor (a detached copy of the mount) that we alone own.
    let tree = unsafe {
        let fd = check(libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            src.as_ptr(),
            OPEN_TREE_CLONE | AT_RECURSIVE | libc::O_CLOEXEC as libc::c_uint,
        ))?;
        OwnedFd::from_raw_fd(fd as i32)
    };
    if read_only {
        #[repr(C)]
        struct MountAttr {
            set: u64,
            clr: u64,
            propagation: u64,
            userns_fd: u64,
        }
        let attr = MountAttr {
            set: MOUNT_ATTR_RDONLY,
            clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        // SAFETY: the attributes live across the call, with their size.
        check(unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                tree.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        })?;
    }
    // SAFETY: both descriptors are open; the paths are empty strings.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// Makes a missing mount point (a folder, or an empty file for a file)
/// and its parents, each step resolved inside `root`.
fn make_point(root: &Path, dest: &str, dir: bool) -> io::Result<()> {
    let parts: Vec<&str> = dest.split('/').filter(|p| !p.is_empty()).collect();
    let Some((last, parents)) = parts.split_last() else {
        return Ok(());
    };
    let mut rel = String::new();
    for (i, name) in parts.iter().enumerate() {
        let parent = open_in_root(root, &rel, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        let made = if i < parents.len() || dir {
            nix::sys::stat::mkdirat(
                Some(parent.as_raw_fd()),
                *name,
                Mode::from_bits_truncate(0o755),
            )
        } else {
            openat(
                Some(parent.as_raw_fd()),
                *last,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            // SAFETY: openat returned a new descriptor that we alone own.
            .map(|fd| drop(unsafe { OwnedFd::from_raw_fd(fd) }))
        };
        match made {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        rel = format!("{rel}/{name}");
    }
    Ok(())
}
