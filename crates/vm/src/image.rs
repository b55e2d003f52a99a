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

/// True when version `a` (`1.2.3`) is older than `b`; parts that are not
/// numbers count as 0.
pub fn older(a: &str, b: &str) -> bool {
    let parts = |v: &str| -> Vec<u64> {
        v.split(['.', '-', '+'])
            .take(3)
            .map(|p| p.parse().unwrap_or(0))
            .collect()
    };
    parts(a) < parts(b)
}

/// The virtual size in bytes of the data disk at `path`.
pub fn disk_size(path: &Path, format: DiskFormat) -> Result<u64> {
    match format {
        DiskFormat::Raw => Ok(std::fs::metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .len()),
        DiskFormat::Qcow2 => Ok(Qcow2Header::read(path)?.size),
    }
}

/// Resizes the data disk at `path` to `size` bytes. A disk that holds
/// nothing yet (`fresh`) may shrink; any other only grows, and a smaller
/// `size` is refused with one sentence.
pub fn resize_disk(path: &Path, format: DiskFormat, size: u64, fresh: bool) -> Result<()> {
    let current = disk_size(path, format)?;
    if size == current {
        return Ok(());
    }
    if size < current && !fresh {
        bail!(
            "the VM's data disk is {} and cannot shrink to {}: set disk_size to {} or more (or remove {} to start over without images and containers)",
            gib(current),
            gib(size),
            gib(current),
            path.display()
        );
    }
    match format {
        DiskFormat::Raw => std::fs::OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(size)
            .with_context(|| format!("cannot resize {}", path.display())),
        DiskFormat::Qcow2 => resize_qcow2(path, size),
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// The fields of a qcow2 header a resize reads and writes.
#[derive(Debug, Clone, Copy)]
struct Qcow2Header {
    cluster_bits: u32,
    size: u64,
    l1_size: u32,
    l1_offset: u64,
    snapshots: u32,
}

impl Qcow2Header {
    fn read(path: &Path) -> Result<Qcow2Header> {
        use std::io::Read;
        let mut h = [0u8; 72];
        std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut h))
            .with_context(|| format!("cannot read {}", path.display()))?;
        if &h[..4] != b"QFI\xfb" {
            bail!("{} is not a qcow2 disk", path.display());
        }
        let u32_at = |o: usize| u32::from_be_bytes(h[o..o + 4].try_into().unwrap_or_default());
        let u64_at = |o: usize| u64::from_be_bytes(h[o..o + 8].try_into().unwrap_or_default());
        Ok(Qcow2Header {
            cluster_bits: u32_at(20),
            size: u64_at(24),
            l1_size: u32_at(36),
            l1_offset: u64_at(40),
            snapshots: u32_at(60),
        })
    }
}

/// Resizes a qcow2 disk in place: its size and its L1 table's length,
/// within the clusters the L1 table already has (4 TiB of disk with the
/// usual 64 KiB clusters). Entries the table gains or loses must be
/// unused. Beyond that `qemu-img resize` does it, where installed.
fn resize_qcow2(path: &Path, size: u64) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let h = Qcow2Header::read(path)?;
    if h.snapshots != 0 || !(9..=21).contains(&h.cluster_bits) {
        return qemu_img_resize(path, size);
    }
    let cluster = 1u64 << h.cluster_bits;
    let per_entry = cluster * (cluster / 8);
    let new_l1 = size.div_ceil(per_entry);
    let room = (h.l1_size as u64 * 8).div_ceil(cluster).max(1) * cluster / 8;
    if new_l1 > room {
        return qemu_img_resize(path, size);
    }
    let (lo, hi) = (new_l1.min(h.l1_size as u64), new_l1.max(h.l1_size as u64));
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let mut entries = vec![0u8; ((hi - lo) * 8) as usize];
    f.seek(SeekFrom::Start(h.l1_offset + lo * 8))?;
    // Past the file's end reads as zeros (a table not written out yet).
    let got = f.read(&mut entries)?;
    let mut rest = &mut entries[got..];
    while !rest.is_empty() {
        let n = f.read(rest)?;
        if n == 0 {
            break;
        }
        rest = &mut rest[n..];
    }
    if entries.iter().any(|b| *b != 0) {
        bail!(
            "{} has data beyond {}: it cannot be resized in place",
            path.display(),
            gib(size)
        );
    }
    f.seek(SeekFrom::Start(24))?;
    f.write_all(&size.to_be_bytes())?;
    f.seek(SeekFrom::Start(36))?;
    f.write_all(&(new_l1 as u32).to_be_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn qemu_img_resize(path: &Path, size: u64) -> Result<()> {
    let status = std::process::Command::new("qemu-img")
        .args(["resize", "-q", "-f", "qcow2"])
        .arg(path)
        .arg(size.to_string())
        .status()
        .context("growing this data disk needs qemu-img: install QEMU's utilities (qemu-utils)")?;
    if !status.success() {
        bail!("qemu-img could not resize {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A qcow2 header as qemu-img writes it for `size` (64 KiB clusters,
    /// the L1 table in the fourth cluster).
    fn blank_qcow2(path: &Path, size: u64) {
        let mut f = vec![0u8; 4 << 16];
        f[..4].copy_from_slice(b"QFI\xfb");
        f[4..8].copy_from_slice(&3u32.to_be_bytes());
        f[20..24].copy_from_slice(&16u32.to_be_bytes());
        f[24..32].copy_from_slice(&size.to_be_bytes());
        f[36..40].copy_from_slice(&(size.div_ceil(512 << 20) as u32).to_be_bytes());
        f[40..48].copy_from_slice(&(3u64 << 16).to_be_bytes());
        std::fs::write(path, f).unwrap();
    }

    #[test]
    fn versions_compare_by_number() {
        assert!(older("0.1.0", "0.2.0"));
        assert!(older("0.9.0", "0.10.0"));
        assert!(!older("0.1.0", "0.1.0"));
        assert!(!older("1.0.0", "0.9.9"));
    }

    #[test]
    fn a_qcow2_grows_in_place_and_a_used_one_never_shrinks() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("data.qcow2");
        blank_qcow2(&disk, 16 << 30);
        resize_disk(&disk, DiskFormat::Qcow2, 64 << 30, false).unwrap();
        assert_eq!(disk_size(&disk, DiskFormat::Qcow2).unwrap(), 64 << 30);
        assert_eq!(Qcow2Header::read(&disk).unwrap().l1_size, 128);
        let err = resize_disk(&disk, DiskFormat::Qcow2, 8 << 30, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("the VM's data disk is 64.0 GiB and cannot shrink to 8.0 GiB: set disk_size to 64.0 GiB or more (or remove {} to start over without images and containers)", disk.display())
        );
        // A disk that holds nothing yet may shrink.
        resize_disk(&disk, DiskFormat::Qcow2, 8 << 30, true).unwrap();
        assert_eq!(disk_size(&disk, DiskFormat::Qcow2).unwrap(), 8 << 30);
        // A used L1 entry beyond the new end is never dropped.
        let mut bytes = std::fs::read(&disk).unwrap();
        let used = (3 << 16) + 10 * 8;
        bytes[used..used + 8].copy_from_slice(&(5u64 << 16).to_be_bytes());
        std::fs::write(&disk, bytes).unwrap();
        resize_disk(&disk, DiskFormat::Qcow2, 64 << 30, true).unwrap();
        assert!(resize_disk(&disk, DiskFormat::Qcow2, 1 << 30, true).is_err());
    }
}
