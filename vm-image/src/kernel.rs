//! The guest kernel: Debian's `linux-image` package, fetched with
//! `apt-get download` (or given as a `.deb`), unpacked with `dpkg-deb`, and
//! turned into what the VMMs boot: the uncompressed `vmlinux` with its PVH
//! entry on x86_64 (two to three times quicker to boot under emulation than
//! the bzImage), the uncompressed `Image` on aarch64.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::Arch;

/// A kernel package unpacked into a directory.
pub struct Kernel {
    /// The unpacked package's root (`boot/`, `lib/modules/`).
    pub root: PathBuf,
    /// The kernel release, e.g. `6.1.0-56-amd64`.
    pub release: String,
    /// The Debian package version, e.g. `6.1.192-2`.
    pub package_version: String,
    /// The `.deb` it came from.
    pub deb: PathBuf,
}

impl Kernel {
    /// The compressed kernel as shipped (`boot/vmlinuz-RELEASE`).
    pub fn vmlinuz(&self) -> PathBuf {
        self.root
            .join("boot")
            .join(format!("vmlinuz-{}", self.release))
    }

    /// The directory holding the release's modules.
    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.release)
    }
}

/// Finds the kernel package that `linux-image-ARCH` points at and downloads
/// it into `cache` (kept between builds), unless `deb` names one already.
pub fn fetch(arch: Arch, cache: &Path, deb: Option<&Path>) -> Result<PathBuf> {
    if let Some(deb) = deb {
        return Ok(deb.to_path_buf());
    }
    std::fs::create_dir_all(cache).with_context(|| format!("cannot create {}", cache.display()))?;
    let meta = if arch == Arch::host() {
        format!("linux-image-{}", arch.debian())
    } else {
        format!("linux-image-{0}:{0}", arch.debian())
    };
    let out = Command::new("apt-cache")
        .args(["depends", &meta])
        .output()
        .context("cannot run apt-cache: berth-vm-image builds on Debian (or give --kernel-deb)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let package = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .map(|p| p.split(':').next().unwrap_or(p).to_string())
        .with_context(|| format!("apt-cache knows no kernel behind {meta}: run apt-get update, or add the {} architecture with dpkg --add-architecture", arch.debian()))?;
    let qualified = if arch == Arch::host() {
        package.clone()
    } else {
        format!("{package}:{}", arch.debian())
    };
    if let Some(found) = find_deb(cache, &package)? {
        return Ok(found);
    }
    let status = Command::new("apt-get")
        .args(["download", "-q", &qualified])
        .current_dir(cache)
        .status()
        .context("cannot run apt-get download")?;
    if !status.success() {
        bail!(
            "apt-get download {qualified} failed: check the package sources, or give --kernel-deb"
        );
    }
    find_deb(cache, &package)?.with_context(|| {
        format!(
            "apt-get download left no {package} .deb in {}",
            cache.display()
        )
    })
}

fn find_deb(dir: &Path, package: &str) -> Result<Option<PathBuf>> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.starts_with(&format!("{package}_")) && name.ends_with(".deb") {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// Unpacks a kernel `.deb` into `into`.
pub fn unpack(deb: &Path, into: &Path) -> Result<Kernel> {
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(deb)
        .arg(into)
        .status()
        .context("cannot run dpkg-deb")?;
    if !status.success() {
        bail!("dpkg-deb could not unpack {}", deb.display());
    }
    let modules = into.join("lib/modules");
    let release = std::fs::read_dir(&modules)
        .with_context(|| {
            format!(
                "{} holds no lib/modules: is it a linux-image package?",
                deb.display()
            )
        })?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .context("the kernel package holds no modules directory")?;
    let out = Command::new("dpkg-deb")
        .args(["-f"])
        .arg(deb)
        .arg("Version")
        .output()
        .context("cannot run dpkg-deb")?;
    Ok(Kernel {
        root: into.to_path_buf(),
        release,
        package_version: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        deb: deb.to_path_buf(),
    })
}

/// Extracts the uncompressed kernel from a compressed one: on x86_64 the
/// ELF `vmlinux` is the XZ stream inside the bzImage; on aarch64 Debian's
/// `vmlinuz` is a gzip of the `Image`.
pub fn uncompressed(arch: Arch, vmlinuz: &[u8]) -> Result<Vec<u8>> {
    match arch {
        Arch::X86_64 => {
            const XZ_MAGIC: &[u8] = &[0xFD, b'7', b'z', b'X', b'Z', 0x00];
            let start = vmlinuz
                .windows(XZ_MAGIC.len())
                .position(|w| w == XZ_MAGIC)
                .context(
                    "the bzImage holds no XZ stream: is the kernel built with CONFIG_KERNEL_XZ?",
                )?;
            let mut out = Vec::new();
            liblzma::read::XzDecoder::new(&vmlinuz[start..])
                .read_to_end(&mut out)
                .context("the bzImage's XZ stream is corrupt")?;
            if !out.starts_with(b"\x7fELF") {
                bail!("the kernel inside the bzImage is not an ELF vmlinux");
            }
            Ok(out)
        }
        Arch::Aarch64 => {
            if !vmlinuz.starts_with(&[0x1f, 0x8b]) {
                // Already an uncompressed Image.
                return Ok(vmlinuz.to_vec());
            }
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(vmlinuz)
                .read_to_end(&mut out)
                .context("the arm64 vmlinuz is not a valid gzip")?;
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn finds_the_xz_stream_after_the_setup_code() {
        let mut elf = b"\x7fELF".to_vec();
        elf.extend_from_slice(&[7u8; 1000]);
        let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
        enc.write_all(&elf).unwrap();
        let xz = enc.finish().unwrap();
        let mut bz = vec![0x55u8; 4096];
        bz.extend_from_slice(&xz);
        bz.extend_from_slice(&[0u8; 64]); // trailing size fields
        assert_eq!(uncompressed(Arch::X86_64, &bz).unwrap(), elf);
        let err = uncompressed(Arch::X86_64, &[0u8; 100]).unwrap_err();
        assert!(err.to_string().contains("no XZ stream"));
    }

    #[test]
    fn gunzips_an_arm64_image() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"ARMd image").unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(uncompressed(Arch::Aarch64, &gz).unwrap(), b"ARMd image");
    }
}
