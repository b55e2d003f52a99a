//! How a snapshot directory records deletions so that overlayfs honours
//! them: a whiteout is a character device 0:0, an opaque directory carries
//! the `trusted.overlay.opaque=y` xattr (the kernel's own format).

use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// The xattr that makes an overlay directory hide the layers below it.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// True when this entry is an overlay whiteout.
pub fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// True when this directory is marked opaque.
pub fn is_opaque(dir: &Path) -> bool {
    matches!(xattr::get(dir, OPAQUE_XATTR), Ok(Some(v)) if v == b"y")
}

/// Marks a directory opaque.
pub fn set_opaque(dir: &Path) -> io::Result<()> {
    xattr::set(dir, OPAQUE_XATTR, b"y")
}

/// Creates a whiteout at `path` (which must not exist).
pub fn make_whiteout(path: &Path) -> io::Result<()> {
    nix::sys::stat::mknod(
        path,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        0,
    )
    .map_err(io::Error::from)
}
