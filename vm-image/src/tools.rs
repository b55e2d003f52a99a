//! The few host programs the guest runs besides the agent (`nft` for
//! container networks, `mkfs.ext4` and `e2fsck` for the data disk, Debian's
//! `tini-static` for `--init`), each with the shared libraries `ldd` says it
//! needs, copied from the build machine's Debian packages.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// A program and where it goes in the guest.
pub struct Tool {
    /// Where it is on the build machine.
    pub host: &'static str,
    /// Where it goes in the initramfs.
    pub guest: &'static str,
}

/// The guest's tools (Debian packages nftables, e2fsprogs, tini).
pub const TOOLS: &[Tool] = &[
    Tool {
        host: "/usr/sbin/nft",
        guest: "usr/sbin/nft",
    },
    Tool {
        host: "/usr/sbin/mke2fs",
        guest: "usr/sbin/mkfs.ext4",
    },
    Tool {
        host: "/usr/sbin/e2fsck",
        guest: "usr/sbin/e2fsck",
    },
    Tool {
        host: "/usr/bin/tini-static",
        guest: "usr/bin/tini-static",
    },
];

/// The shared libraries (and the dynamic loader) `binary` needs, as
/// absolute paths on the build machine; none for a static binary.
pub fn shared_libraries(binary: &Path) -> Result<BTreeSet<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("cannot run ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = BTreeSet::new();
    for line in text.lines() {
        // "libx.so.1 => /lib/x86_64-linux-gnu/libx.so.1 (0x…)" or
        // "/lib64/ld-linux-x86-64.so.2 (0x…)"; vdso has no path.
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.insert(PathBuf::from(p));
        }
    }
    Ok(libs)
}

/// Checks that `binary` links nothing dynamically.
pub fn ensure_static(binary: &Path) -> Result<()> {
    let bytes =
        std::fs::read(binary).with_context(|| format!("cannot read {}", binary.display()))?;
    // An ELF that asks for an interpreter names it in a PT_INTERP segment;
    // its path string is the tell-tale.
    if bytes.windows(14).any(|w| w == b"/lib64/ld-linu")
        || bytes.windows(12).any(|w| w == b"/lib/ld-linu")
    {
        bail!(
            "{} is linked dynamically: build the guest's agent with RUSTFLAGS='-C target-feature=+crt-static' --target {}",
            binary.display(),
            crate::Arch::host().rust_target()
        );
    }
    Ok(())
}
