//! The guest image's manifest: what `berth-vm-image` writes beside the
//! kernel, initramfs, system disk and data disk, and what the VM manager
//! reads to boot them.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// A guest architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Intel and AMD 64-bit.
    #[value(name = "x86_64")]
    #[serde(rename = "x86_64")]
    X86_64,
    /// 64-bit ARM (Apple Silicon).
    Aarch64,
}

impl Arch {
    /// The machine this program runs on.
    pub fn host() -> Arch {
        if cfg!(target_arch = "aarch64") {
            Arch::Aarch64
        } else {
            Arch::X86_64
        }
    }

    /// Debian's name for it (`amd64`, `arm64`).
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Aarch64 => "arm64",
        }
    }

    /// Rust's target triple for static Linux binaries of it.
    pub fn rust_target(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-unknown-linux-gnu",
            Arch::Aarch64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// The uncompressed kernel's file name in an image directory.
    pub fn kernel_file(self) -> &'static str {
        match self {
            Arch::X86_64 => "vmlinux",
            Arch::Aarch64 => "Image",
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        })
    }
}

/// How the data disk is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    /// QEMU's copy-on-write format, sparse on every host file system.
    Qcow2,
    /// A plain (sparse) image, for Virtualization.framework.
    Raw,
}

impl std::fmt::Display for DiskFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DiskFormat::Qcow2 => "qcow2",
            DiskFormat::Raw => "raw",
        })
    }
}

/// The kernel an image boots.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KernelInfo {
    /// The uncompressed kernel (`vmlinux` with a PVH entry, or `Image`).
    pub file: String,
    /// The compressed kernel as Debian ships it (for VMMs that want a bzImage).
    pub compressed: String,
    /// The kernel release (`uname -r` in the guest).
    pub release: String,
    /// The Debian package it came from.
    pub package: String,
    /// That package's version.
    pub package_version: String,
}

/// The empty data disk an image starts with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DiskInfo {
    /// Its file name.
    pub file: String,
    /// qcow2 or raw.
    pub format: DiskFormat,
    /// Its virtual size in bytes.
    pub size: u64,
}

/// The manifest format this Berth reads (2: with a system disk).
pub const MANIFEST_FORMAT: u32 = 2;

/// `manifest.json` of an image directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest's own format version ([`MANIFEST_FORMAT`]).
    pub format: u32,
    /// The guest's architecture.
    pub arch: Arch,
    /// The version of the agent inside.
    pub agent_version: String,
    /// The kernel.
    pub kernel: KernelInfo,
    /// The initramfs file name (uncompressed newc cpio): stage one of the
    /// boot and the modules for the disks.
    pub initramfs: String,
    /// The read-only system disk (raw ext4): the agent and its helpers,
    /// the other modules, the tools.
    pub system: String,
    /// The empty data disk.
    pub disk: DiskInfo,
    /// The kernel modules the guest loads, in load order.
    pub modules: Vec<String>,
    /// Host tools and libraries copied in.
    pub tools: Vec<String>,
    /// sha256 of each file, by name.
    pub sha256: std::collections::BTreeMap<String, String>,
}

/// An image directory with its manifest read.
#[derive(Debug, Clone)]
pub struct GuestImage {
    /// The directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

impl GuestImage {
    /// Reads `DIR/manifest.json` and checks the files it names exist.
    pub fn open(dir: &Path) -> Result<GuestImage> {
        let path = dir.join("manifest.json");
        let text = std::fs::read(&path).with_context(|| {
            format!(
                "{} is not a guest image: build one with berth-vm-image (no manifest.json)",
                dir.display()
            )
        })?;
        let manifest: Manifest = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not a valid guest manifest", path.display()))?;
        if manifest.format != MANIFEST_FORMAT {
            bail!(
                "{} has manifest format {}; this Berth reads format {MANIFEST_FORMAT}: rebuild it with berth-vm-image",
                dir.display(),
                manifest.format
            );
        }
        for f in [
            &manifest.kernel.file,
            &manifest.initramfs,
            &manifest.system,
            &manifest.disk.file,
        ] {
            if !dir.join(f).is_file() {
                bail!(
                    "the guest image in {} lacks {f}: rebuild it with berth-vm-image",
                    dir.display()
                );
            }
        }
        Ok(GuestImage {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// The uncompressed kernel.
    pub fn kernel(&self) -> PathBuf {
        self.dir.join(&self.manifest.kernel.file)
    }

    /// The initramfs.
    pub fn initramfs(&self) -> PathBuf {
        self.dir.join(&self.manifest.initramfs)
    }

    /// The read-only system disk, shared by every VM of this image.
    pub fn system_disk(&self) -> PathBuf {
        self.dir.join(&self.manifest.system)
    }

    /// The empty data disk a new VM copies.
    pub fn blank_disk(&self) -> PathBuf {
        self.dir.join(&self.manifest.disk.file)
    }
}
