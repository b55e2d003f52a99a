//! `berth-vm-image` builds the Linux guest that Berth boots on macOS and
//! Windows (and on Linux when asked): a kernel the VMM can boot directly,
//! an initramfs whose `/init` is the static `berth-agent` with the kernel
//! modules and the few tools it needs, and an empty sparse data disk. It
//! writes them to one directory with a `manifest.json` (versions, sizes,
//! sha256s) that the VM manager (`berth-vm`) reads.

pub mod cpio;
pub mod disk;
pub mod kernel;
pub mod modules;
pub mod tools;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
pub use berth_vm::image::{Arch, DiskFormat, Manifest};
use berth_vm::image::{DiskInfo, KernelInfo};
use cpio::{CpioWriter, Entry};
use sha2::{Digest, Sha256};

/// The guest binaries built from this workspace, all static.
pub const AGENT_BINARIES: &[&str] = &["berth-agent", "berth-monitor", "berth-create"];

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The output directory (created; its previous image files are replaced).
    pub out: PathBuf,
    /// The guest's architecture.
    pub arch: Arch,
    /// The directory holding static `berth-agent`, `berth-monitor`, `berth-create`.
    pub agent_dir: PathBuf,
    /// Where downloaded kernel packages are kept between builds.
    pub cache: PathBuf,
    /// A kernel `.deb` to use instead of downloading one.
    pub kernel_deb: Option<PathBuf>,
    /// The data disk's virtual size in bytes.
    pub disk_size: u64,
    /// qcow2 (QEMU) or raw (Virtualization.framework).
    pub disk_format: DiskFormat,
}

/// Builds the guest into `opts.out` and returns its manifest (also written
/// as `manifest.json`).
pub fn build(opts: &BuildOptions, progress: &mut dyn FnMut(&str)) -> Result<Manifest> {
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    for name in AGENT_BINARIES {
        let path = opts.agent_dir.join(name);
        if !path.is_file() {
            bail!(
                "{} is missing: build the guest binaries first (scripts/build-vm-image.sh does)",
                path.display()
            );
        }
        if opts.arch == Arch::host() {
            tools::ensure_static(&path)?;
        }
    }
    progress("fetching the kernel package");
    let deb = kernel::fetch(opts.arch, &opts.cache, opts.kernel_deb.as_deref())?;
    let unpacked = tempfile::tempdir()?;
    let kernel = kernel::unpack(&deb, unpacked.path())?;
    progress(&format!("kernel {}", kernel.release));
    let vmlinuz = std::fs::read(kernel.vmlinuz())
        .with_context(|| format!("cannot read {}", kernel.vmlinuz().display()))?;
    let kernel_file = opts.arch.kernel_file();
    write_file(
        &opts.out.join(kernel_file),
        &kernel::uncompressed(opts.arch, &vmlinuz)?,
    )?;
    write_file(&opts.out.join("vmlinuz"), &vmlinuz)?;

    progress("choosing kernel modules");
    let index = modules::index(&kernel.modules_dir())?;
    let chosen = modules::resolve(&index, modules::WANTED)?;
    let names = |wanted| -> Result<Vec<String>> {
        Ok(modules::resolve(&index, wanted)?
            .into_iter()
            .map(|m| m.name)
            .collect())
    };
    let lists = ModuleLists {
        at_boot: names(modules::AT_BOOT)?,
        filesystem: names(modules::FILESYSTEM)?,
        devices: names(modules::DEVICES)?,
    };
    if let Some(both) = lists.filesystem.iter().find(|m| lists.at_boot.contains(m)) {
        bail!("the module {both} is needed by both boot lists, which load side by side");
    }

    progress("writing the initramfs");
    let initramfs = opts.out.join("initramfs.cpio");
    let tools_added = write_initramfs(&initramfs, opts, &chosen, &lists)?;

    progress("writing the data disk");
    let disk_file = match opts.disk_format {
        DiskFormat::Qcow2 => {
            let p = opts.out.join("data.qcow2");
            disk::write_qcow2(&p, opts.disk_size)?;
            p
        }
        DiskFormat::Raw => {
            let p = opts.out.join("data.img");
            disk::write_raw(&p, opts.disk_size)?;
            p
        }
    };

    let mut files = std::collections::BTreeMap::new();
    for name in [kernel_file, "vmlinuz", "initramfs.cpio"] {
        files.insert(name.to_string(), sha256_file(&opts.out.join(name))?);
    }
    let disk_name = disk_file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    files.insert(disk_name.clone(), sha256_file(&disk_file)?);
    let manifest = Manifest {
        format: 1,
        arch: opts.arch,
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        kernel: KernelInfo {
            file: kernel_file.to_string(),
            compressed: "vmlinuz".to_string(),
            release: kernel.release.clone(),
            package: deb
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .split('_')
                .next()
                .unwrap_or_default()
                .to_string(),
            package_version: kernel.package_version.clone(),
        },
        initramfs: "initramfs.cpio".to_string(),
        disk: DiskInfo {
            file: disk_name,
            format: opts.disk_format,
            size: opts.disk_size,
        },
        modules: chosen.iter().map(|m| m.name.clone()).collect(),
        tools: tools_added,
        sha256: files,
    };
    std::fs::write(
        opts.out.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest)?,
    )?;
    Ok(manifest)
}

/// Which chosen modules go in which of PID 1's load lists.
struct ModuleLists {
    at_boot: Vec<String>,
    filesystem: Vec<String>,
    devices: Vec<String>,
}

fn write_initramfs(
    path: &Path,
    opts: &BuildOptions,
    chosen: &[modules::Module],
    lists: &ModuleLists,
) -> Result<Vec<String>> {
    let file = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    let mut cpio = CpioWriter::new(file);
    let mut dirs = std::collections::BTreeSet::new();
    for d in [
        "dev",
        "proc",
        "sys",
        "run",
        "tmp",
        "mnt",
        "etc",
        "root",
        "var/lib/berth",
        "usr/bin",
        "usr/sbin",
        "lib/modules/berth",
    ] {
        add_dir(&mut cpio, &mut dirs, d)?;
    }
    for name in AGENT_BINARIES {
        let bytes = std::fs::read(opts.agent_dir.join(name))?;
        cpio.add(&format!("usr/bin/{name}"), 0o755, Entry::File(&bytes))?;
    }
    cpio.add("init", 0o777, Entry::Symlink("/usr/bin/berth-agent"))?;
    cpio.add(
        "etc/passwd",
        0o644,
        Entry::File(b"root:x:0:0:root:/root:/bin/sh\n"),
    )?;
    cpio.add("etc/group", 0o644, Entry::File(b"root:x:0:\n"))?;
    cpio.add("etc/hostname", 0o644, Entry::File(b"berth\n"))?;

    // Boot modules in `load-order` and, side by side, `load-fs`; device
    // modules (less what boot loads) in `load-devices`; the rest in
    // `load-later`. Each list is in dependency order.
    let mut order = String::new();
    let mut filesystem = String::new();
    let mut devices = String::new();
    let mut later = String::new();
    for m in chosen {
        let bytes = std::fs::read(&m.path)?;
        cpio.add(
            &format!("lib/modules/berth/{}.ko", m.name),
            0o644,
            Entry::File(modules::strip_signature(&bytes)),
        )?;
        let list = if lists.at_boot.contains(&m.name) {
            &mut order
        } else if lists.filesystem.contains(&m.name) {
            &mut filesystem
        } else if lists.devices.contains(&m.name) {
            &mut devices
        } else {
            &mut later
        };
        list.push_str(&m.name);
        list.push('\n');
    }
    for (name, list) in [
        ("load-order", &order),
        ("load-fs", &filesystem),
        ("load-devices", &devices),
        ("load-later", &later),
    ] {
        cpio.add(
            &format!("lib/modules/berth/{name}"),
            0o644,
            Entry::File(list.as_bytes()),
        )?;
    }

    let mut added = Vec::new();
    if opts.arch == Arch::host() {
        let mut libs = std::collections::BTreeSet::new();
        for tool in tools::TOOLS {
            let host = Path::new(tool.host);
            if !host.exists() {
                bail!(
                    "{} is missing: install nftables, e2fsprogs and tini (scripts/setup.sh does)",
                    tool.host
                );
            }
            let bytes = std::fs::read(host)?;
            if let Some(parent) = Path::new(tool.guest).parent() {
                add_dir(&mut cpio, &mut dirs, &parent.to_string_lossy())?;
            }
            cpio.add(tool.guest, 0o755, Entry::File(&bytes))?;
            libs.extend(tools::shared_libraries(host)?);
            added.push(tool.guest.to_string());
        }
        for lib in libs {
            // Copy the file a symlinked library points at under the
            // library's own name.
            let bytes =
                std::fs::read(&lib).with_context(|| format!("cannot read {}", lib.display()))?;
            let guest = lib.to_string_lossy().trim_start_matches('/').to_string();
            if let Some(parent) = Path::new(&guest).parent() {
                add_dir(&mut cpio, &mut dirs, &parent.to_string_lossy())?;
            }
            cpio.add(&guest, 0o755, Entry::File(&bytes))?;
            added.push(guest);
        }
    }
    let mut out = cpio.finish()?;
    std::io::Write::flush(&mut out)?;
    Ok(added)
}

fn add_dir<W: std::io::Write>(
    cpio: &mut CpioWriter<W>,
    dirs: &mut std::collections::BTreeSet<String>,
    path: &str,
) -> Result<()> {
    let mut so_far = String::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if !so_far.is_empty() {
            so_far.push('/');
        }
        so_far.push_str(part);
        if dirs.insert(so_far.clone()) {
            cpio.add(&so_far, 0o755, Entry::Dir)?;
        }
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}
