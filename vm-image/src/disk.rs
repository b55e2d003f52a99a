//! The guest's disks. The data disk: an empty sparse image the VM formats
//! on its first boot, qcow2 (written with `qcow2-rs`) for QEMU, raw for
//! Virtualization.framework, which takes only raw disks. The system disk: a
//! read-only raw ext4 image made from a folder by `mkfs.ext4 -d`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use qcow2_rs::meta::Qcow2Header;

/// 64 KiB clusters, QEMU's default.
const CLUSTER_BITS: usize = 16;
/// 16-bit refcounts, QEMU's default.
const REFCOUNT_ORDER: u8 = 4;

/// Writes an empty qcow2 image of `size` virtual bytes to `path`.
pub fn write_qcow2(path: &Path, size: u64) -> Result<()> {
    let block = 512;
    let (rc_table, rc_block, _) =
        Qcow2Header::calculate_meta_params(size, CLUSTER_BITS, REFCOUNT_ORDER, block);
    let clusters = 1 + rc_table.1 as u64 + rc_block.1 as u64;
    let mut buf = vec![0u8; ((clusters << CLUSTER_BITS) + block as u64) as usize];
    Qcow2Header::format_qcow2(&mut buf, size, CLUSTER_BITS, REFCOUNT_ORDER, block)
        .map_err(|e| anyhow::anyhow!("qcow2-rs could not lay out a {size}-byte image: {e:?}"))?;
    let mut file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(&buf)?;
    file.sync_all()?;
    Ok(())
}

/// Writes an empty sparse raw image of `size` bytes to `path`.
pub fn write_raw(path: &Path, size: u64) -> Result<()> {
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    file.set_len(size)?;
    Ok(())
}

/// Writes a raw ext4 image of the folder `from` to `path`, sized to its
/// contents (no journal: the VM mounts it read-only).
pub fn write_ext4_from(path: &Path, from: &Path, label: &str) -> Result<()> {
    let mut bytes = 0u64;
    let mut files = 0u64;
    let mut pending = vec![from.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            files += 1;
            bytes += meta.len().div_ceil(4096) * 4096;
            if meta.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    // Room for ext4's own metadata (inode tables, bitmaps, directories).
    let size = (bytes + bytes / 8 + files * 4096 + (16 << 20)).div_ceil(1 << 20) << 20;
    write_raw(path, size)?;
    let status = std::process::Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-b",
            "4096",
            "-m",
            "0",
            "-O",
            "^has_journal",
            "-L",
            label,
        ])
        .args(["-E", "root_owner=0:0", "-d"])
        .arg(from)
        .arg(path)
        .status()
        .context("cannot run mkfs.ext4: install e2fsprogs (scripts/setup.sh does)")?;
    if !status.success() {
        anyhow::bail!(
            "mkfs.ext4 could not make {} from {}",
            path.display(),
            from.display()
        );
    }
    Ok(())
}

/// Parses a size such as `64G`, `512M` or a plain byte count.
pub fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let (num, shift) = match t.chars().last() {
        Some('K' | 'k') => (&t[..t.len() - 1], 10),
        Some('M' | 'm') => (&t[..t.len() - 1], 20),
        Some('G' | 'g') => (&t[..t.len() - 1], 30),
        Some('T' | 't') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("'{text}' is not a size: write e.g. 64G, 512M or a byte count"))?;
    n.checked_shl(shift)
        .filter(|v| v >> shift == n)
        .with_context(|| format!("'{text}' is too large a size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64G").unwrap(), 64 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("lots")
            .unwrap_err()
            .to_string()
            .contains("not a size"));
    }

    #[test]
    fn qcow2_is_small_and_says_its_virtual_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.qcow2");
        write_qcow2(&p, 64 << 30).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert!(bytes.len() < 1 << 20, "{} bytes", bytes.len());
        assert_eq!(&bytes[..4], b"QFI\xfb");
        assert_eq!(
            u64::from_be_bytes(bytes[24..32].try_into().unwrap()),
            64 << 30
        );
    }
}
