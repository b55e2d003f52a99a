//! Walking a container's files without ever following a link out of it,
//! and writing them as a tar: for `export`, `cp` out of a container,
//! `diff` and `commit`.
//!
//! A running container can swap a directory for a symlink while the agent
//! reads (the CVE-2018-15664 class), so every step here is relative to an
//! open directory descriptor: each child is looked at with `fstatat`
//! (no follow), directories are entered with `openat(O_NOFOLLOW |
//! O_DIRECTORY)`, files opened with `O_NOFOLLOW`, links read with
//! `readlinkat`. Written by hand: the tar crate's directory walker goes by
//! path names, which a swapped symlink redirects.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fstatat, FileStat, Mode, SFlag};

/// One entry met by [`visit`].
pub struct Node<'a> {
    /// Its directory.
    pub parent: &'a OwnedFd,
    /// Its name there.
    pub name: &'a OsStr,
    /// Its path from the walk's root, starting with '/'.
    pub path: &'a str,
    /// Its metadata (not following links).
    pub stat: FileStat,
}

impl Node<'_> {
    /// The kind bits of its mode.
    pub fn kind(&self) -> SFlag {
        SFlag::from_bits_truncate(self.stat.st_mode & SFlag::S_IFMT.bits())
    }
}

/// Opens a child directory without following a link.
pub fn open_dir(parent: &OwnedFd, name: &OsStr) -> io::Result<OwnedFd> {
    let fd = openat(
        Some(parent.as_raw_fd()),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: openat returned a new descriptor that we alone own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens a directory by path (the walk's root, which Berth chose).
pub fn open_root(path: &std::path::Path) -> io::Result<OwnedFd> {
    Ok(OwnedFd::from(std::fs::File::open(path)?))
}

/// Calls `f` for every entry under `dir` (whose path is `base`), parents
/// before children, in name order; `f` says whether to enter a directory.
pub fn visit(
    dir: &OwnedFd,
    base: &str,
    f: &mut dyn FnMut(&Node) -> io::Result<bool>,
) -> io::Result<()> {
    let dup = nix::unistd::dup(dir.as_raw_fd())?;
    let mut listing = nix::dir::Dir::from_fd(dup)?;
    let mut names: Vec<OsString> = listing
        .iter()
        .filter_map(|e| e.ok())
        .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
        .filter(|n| n != "." && n != "..")
        .collect();
    names.sort();
    for name in names {
        let stat = match fstatat(
            Some(dir.as_raw_fd()),
            name.as_os_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(s) => s,
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        let path = format!("{}/{}", base.trim_end_matches('/'), name.to_string_lossy());
        let node = Node {
            parent: dir,
            name: &name,
            path: &path,
            stat,
        };
        let enter = f(&node)?;
        if enter && node.kind() == SFlag::S_IFDIR {
            let child = open_dir(dir, &name)?;
            visit(&child, &path, f)?;
        }
    }
    Ok(())
}

/// How [`append`] writes entries.
#[derive(Default)]
pub struct TarOptions {
    /// Paths (from the walk's root) left out, with what is under them.
    pub skip: BTreeSet<String>,
    /// Turn overlayfs whiteouts into OCI `.wh.` files (for layers).
    pub whiteouts: bool,
}

/// Sets the owner names of `h` (uid and gid already set) from the host's
/// user and group databases, remembered per thread: every tar written
/// here names owners, as Docker's `cp`, `export` and layer tars do.
pub fn set_names(h: &mut tar::Header, uid: u32, gid: u32) {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static USERS: RefCell<HashMap<u32, String>> = RefCell::new(HashMap::new());
        static GROUPS: RefCell<HashMap<u32, String>> = RefCell::new(HashMap::new());
    }
    let user = USERS.with(|m| {
        m.borrow_mut()
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                    .ok()
                    .flatten()
                    .map_or_else(String::new, |u| u.name)
            })
            .clone()
    });
    let group = GROUPS.with(|m| {
        m.borrow_mut()
            .entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
                    .ok()
                    .flatten()
                    .map_or_else(String::new, |g| g.name)
            })
            .clone()
    });
    // A name too long for the header is left out, as tar leaves it.
    let _ = h.set_username(&user);
    let _ = h.set_groupname(&group);
}

/// Writes the entry `node` (named `tar_name` in the archive) to `out`.
pub fn append<W: Write>(
    out: &mut tar::Builder<W>,
    node: &Node,
    tar_name: &str,
    opts: &TarOptions,
) -> io::Result<()> {
    let st = &node.stat;
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid.into());
    h.set_gid(st.st_gid.into());
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    set_names(&mut h, st.st_uid, st.st_gid);
    let kind = node.kind();
    if opts.whiteouts && kind == SFlag::S_IFCHR && st.st_rdev == 0 {
        let (dir, base) = tar_name.rsplit_once('/').unwrap_or(("", tar_name));
        let wh = if dir.is_empty() {
            format!(".wh.{base}")
        } else {
            format!("{dir}/.wh.{base}")
        };
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        return out.append_data(&mut h, wh, io::empty());
    }
    match kind {
        SFlag::S_IFDIR => {
            h.set_entry_type(tar::EntryType::Directory);
            out.append_data(&mut h, format!("{tar_name}/"), io::empty())?;
            let opaque = opts.whiteouts
                && xattr_of(node.parent, node.name, "trusted.overlay.opaque").as_deref()
                    == Some(b"y".as_slice());
            if opaque {
                let mut o = tar::Header::new_gnu();
                o.set_entry_type(tar::EntryType::Regular);
                o.set_mode(0o644);
                o.set_size(0);
                out.append_data(&mut o, format!("{tar_name}/.wh..wh..opq"), io::empty())?;
            }
            Ok(())
        }
        SFlag::S_IFREG => {
            let fd = openat(
                Some(node.parent.as_raw_fd()),
                node.name,
                OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            // SAFETY: openat returned a new descriptor that we alone own.
            let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(file.metadata()?.len());
            out.append_data(&mut h, tar_name, file)
        }
        SFlag::S_IFLNK => {
            let target = readlinkat(Some(node.parent.as_raw_fd()), node.name)?;
            h.set_entry_type(tar::EntryType::Symlink);
            out.append_link(&mut h, tar_name, std::path::Path::new(&target))
        }
        SFlag::S_IFCHR | SFlag::S_IFBLK | SFlag::S_IFIFO => {
            h.set_entry_type(match kind {
                SFlag::S_IFCHR => tar::EntryType::Char,
                SFlag::S_IFBLK => tar::EntryType::Block,
                _ => tar::EntryType::Fifo,
            });
            let rdev = st.st_rdev;
            h.set_device_major(libc::major(rdev))?;
            h.set_device_minor(libc::minor(rdev))?;
            out.append_data(&mut h, tar_name, io::empty())
        }
        // Sockets cannot be archived.
        _ => Ok(()),
    }
}

/// Writes everything under `dir` to `out`, each name prefixed by `prefix`
/// ("" for the archive's root).
pub fn append_tree<W: Write>(
    out: &mut tar::Builder<W>,
    dir: &OwnedFd,
    prefix: &str,
    opts: &TarOptions,
) -> io::Result<()> {
    visit(dir, "", &mut |node| {
        if opts.skip.contains(node.path) {
            return Ok(false);
        }
        let rel = node.path.trim_start_matches('/');
        let name = if prefix.is_empty() {
            rel.to_string()
        } else {
            format!("{prefix}/{rel}")
        };
        append(out, node, &name, opts)?;
        Ok(true)
    })
}

/// An extended attribute of a child, read without following a link.
fn xattr_of(parent: &OwnedFd, name: &OsStr, key: &str) -> Option<Vec<u8>> {
    let path = format!(
        "/proc/self/fd/{}/{}",
        parent.as_raw_fd(),
        name.to_string_lossy()
    );
    xattr::get(path, key).ok().flatten()
}
