//! The VM's disks, shares and network: the data disk (formatted on first
//! boot, checked on later ones) mounted at the agent's root, host folders
//! at their host paths, and the NIC.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::mount::{mount, MsFlags};

use super::config::{Net, Share};

/// What the data disk holds, read from the ext superblock at byte 1024.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskState {
    /// No ext file system: a new disk to format.
    Blank,
    /// An ext file system unmounted cleanly, with no recorded errors.
    Clean,
    /// An ext file system that wants e2fsck.
    NeedsCheck,
}

/// Reads the superblock's magic (offset 56, 0xEF53) and `s_state` (offset
/// 58: EXT2_VALID_FS = 1, EXT2_ERROR_FS = 2) in one read.
pub fn disk_state(device: &Path) -> Result<DiskState> {
    let mut f =
        std::fs::File::open(device).with_context(|| format!("cannot open {}", device.display()))?;
    let mut fields = [0u8; 4];
    f.seek(SeekFrom::Start(1024 + 56))?;
    f.read_exact(&mut fields)?;
    let magic = u16::from_le_bytes([fields[0], fields[1]]);
    let state = u16::from_le_bytes([fields[2], fields[3]]);
    Ok(match (magic, state & 3) {
        (0xEF53, 1) => DiskState::Clean,
        (0xEF53, _) => DiskState::NeedsCheck,
        _ => DiskState::Blank,
    })
}

/// Waits up to `secs` for a device node to appear (virtio probing is
/// asynchronous).
pub fn wait_for(device: &Path, secs: u64) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if device.exists() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    device.exists()
}

/// Formats `device` as ext4 when it holds no file system, checks it
/// otherwise, and mounts it at `root`.
pub fn mount_data_disk(device: &Path, root: &Path) -> Result<()> {
    if !wait_for(device, 10) {
        bail!("the data disk {} did not appear", device.display());
    }
    match disk_state(device)? {
        // Unmounted cleanly last time: nothing for e2fsck to do.
        DiskState::Clean => {}
        DiskState::NeedsCheck => {
            // e2fsck -p: exit 0 clean, 1 fixed, 2 fixed and wants a reboot;
            // anything above means it could not repair alone.
            let status = super::supervise::child_command("e2fsck")
                .arg("-p")
                .arg(device)
                .status()
                .context("cannot run e2fsck")?;
            if status.code().unwrap_or(8) > 2 {
                eprintln!(
                    "berth-init: e2fsck could not repair {} alone (status {status}); mounting anyway",
                    device.display()
                );
            }
        }
        DiskState::Blank => {
            eprintln!("berth-init: formatting the data disk {}", device.display());
            let status = super::supervise::child_command("mkfs.ext4")
                .args([
                    "-q",
                    "-F",
                    "-L",
                    "berth-data",
                    "-E",
                    // The VM manager makes every data disk new and all
                    // zeros (a copy of the image's unallocated qcow2, or a
                    // sparse raw file): nothing to discard, and inode tables
                    // and journal need no zeroing, neither now nor by the
                    // kernel's lazy init afterwards. Measured on a 64 GiB
                    // disk: mkfs 0.39 s natively with the default discard,
                    // 0.07 s like this; about 1.1 s under TCG before.
                    "lazy_itable_init=1,lazy_journal_init=1,nodiscard,assume_storage_prezeroed=1",
                ])
                .arg(device)
                .status()
                .context("cannot run mkfs.ext4")?;
            if !status.success() {
                bail!("mkfs.ext4 failed on {}", device.display());
            }
        }
    }
    std::fs::create_dir_all(root)?;
    // discard: blocks ext4 frees (a removed container's upper directory,
    // an image's layers and blobs) are discarded once their transaction
    // commits, and the VMM (QEMU's discard=unmap) gives them back to the
    // host's disk file, with no periodic fstrim.
    mount(
        Some(device),
        root,
        Some("ext4"),
        MsFlags::MS_NOATIME,
        Some("discard"),
    )
    .with_context(|| format!("cannot mount {} on {}", device.display(), root.display()))?;
    if let Err(e) = grow_to_device(device, root) {
        eprintln!("berth-init: the data disk's file system was not grown: {e:#}");
    }
    Ok(())
}

mod ioctl {
    nix::ioctl_read!(blk_getsize64, 0x12, 114, u64);
    nix::ioctl_write_ptr!(ext4_resize_fs, b'f', 16, u64);
}

/// The file system's size in blocks and its block size, from the ext
/// superblock at byte 1024 (blocks count low at 4, log block size at 24,
/// blocks count high at 0x150 with the 64bit feature, incompat bit 0x80).
pub fn fs_blocks(superblock: &[u8; 1024]) -> (u64, u64) {
    let u32_at = |o: usize| {
        u32::from_le_bytes([
            superblock[o],
            superblock[o + 1],
            superblock[o + 2],
            superblock[o + 3],
        ])
    };
    let block = 1024u64 << u32_at(24).min(6);
    let mut blocks = u32_at(4) as u64;
    if u32_at(0x60) & 0x80 != 0 {
        blocks |= (u32_at(0x150) as u64) << 32;
    }
    (blocks, block)
}

/// Grows the ext4 file system mounted at `root` to fill `device` when the
/// VM manager has made the disk bigger (`settings.disk_size`): the kernel's
/// online resize, what resize2fs does for a mounted file system.
fn grow_to_device(device: &Path, root: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let mut dev = std::fs::File::open(device)?;
    let mut bytes = 0u64;
    // SAFETY: BLKGETSIZE64 writes one u64.
    unsafe { ioctl::blk_getsize64(dev.as_raw_fd(), &mut bytes) }?;
    let mut sb = [0u8; 1024];
    dev.seek(SeekFrom::Start(1024))?;
    dev.read_exact(&mut sb)?;
    let (blocks, block) = fs_blocks(&sb);
    let fits = bytes / block;
    // Less than a megabyte more is not worth a resize.
    if fits <= blocks + (1 << 20) / block {
        return Ok(());
    }
    super::stamp(&format!(
        "growing the data disk's file system from {} to {} MiB",
        (blocks * block) >> 20,
        (fits * block) >> 20
    ));
    let dir = std::fs::File::open(root)?;
    // SAFETY: EXT4_IOC_RESIZE_FS reads one u64, the new block count.
    unsafe { ioctl::ext4_resize_fs(dir.as_raw_fd(), &fits) }
        .with_context(|| format!("the kernel could not grow {}", root.display()))?;
    super::stamp("data disk's file system grown");
    Ok(())
}

/// Mounts a host folder at its own path.
pub fn mount_share(share: &Share) -> Result<()> {
    std::fs::create_dir_all(&share.path)?;
    let mut flags = MsFlags::MS_NODEV;
    if share.read_only {
        flags |= MsFlags::MS_RDONLY;
    }
    let (fstype, data) = if share.virtiofs {
        ("virtiofs", String::new())
    } else {
        // cache=none: host edits are seen at once.
        (
            "9p",
            "trans=virtio,version=9p2000.L,cache=none,msize=524288".to_string(),
        )
    };
    mount(
        Some(share.tag.as_str()),
        &share.path,
        Some(fstype),
        flags,
        Some(data.as_str()),
    )
    .with_context(|| {
        format!(
            "cannot mount share {} on {}",
            share.tag,
            share.path.display()
        )
    })
}

/// Brings `lo` and `eth0` up with the given address and route, and points
/// `/etc/resolv.conf` at the DNS server.
pub fn network_up(net: Option<&Net>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let nl = crate::util::links::Netlink::host()?;
        nl.lo_up().await?;
        if let Some(net) = net {
            let mut tries = 0;
            while nl.find("eth0").await.is_none() && tries < 200 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                tries += 1;
            }
            nl.address_up("eth0", net.address, net.prefix, Some(net.gateway))
                .await?;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    if let Some(dns) = net.and_then(|n| n.dns) {
        // The host's resolver may have been pushed already (host_sync).
        let current = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        if !current.starts_with(super::host_sync::HEADER) {
            std::fs::write("/etc/resolv.conf", format!("nameserver {dns}\n"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_file_systems_size_from_its_superblock() {
        let mut sb = [0u8; 1024];
        sb[4..8].copy_from_slice(&4_194_304u32.to_le_bytes());
        sb[24..28].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(fs_blocks(&sb), (4_194_304, 4096));
        sb[0x60..0x64].copy_from_slice(&0x80u32.to_le_bytes());
        sb[0x150..0x154].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(fs_blocks(&sb), ((1 << 32) + 4_194_304, 4096));
    }

    #[test]
    fn reads_magic_and_state_from_one_superblock_read() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("d");
        let mut sb = vec![0u8; 4096];
        std::fs::write(&disk, &sb).unwrap();
        assert_eq!(disk_state(&disk).unwrap(), DiskState::Blank);
        sb[1080..1082].copy_from_slice(&0xEF53u16.to_le_bytes());
        sb[1082..1084].copy_from_slice(&1u16.to_le_bytes());
        std::fs::write(&disk, &sb).unwrap();
        assert_eq!(disk_state(&disk).unwrap(), DiskState::Clean);
        sb[1082..1084].copy_from_slice(&3u16.to_le_bytes());
        std::fs::write(&disk, &sb).unwrap();
        assert_eq!(disk_state(&disk).unwrap(), DiskState::NeedsCheck);
    }
}
