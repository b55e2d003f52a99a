//! `berth-vm-image` builds the Linux guest that Berth boots on macOS and
//! Windows (and on Linux when asked): a kernel the VMM can boot directly,
//! a small initramfs (stage one of the boot, `berth-init`, with the modules
//! for the disks), a read-only system disk (the static `berth-agent` and
//! its helpers, the other kernel modules and the few tools they need), and
//! an empty sparse data disk. It
//! writes them to one directory with a `manifest.json` (versions, sizes,
//! sha256s) that the VM manager (`berth-vm`) reads.

pub mod cpio;
pub mod disk;
pub mod kernel;
pub mod modules;
pub mod tools;
pub mod tree;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
pub use berth_vm::image::{Arch, DiskFormat, Manifest};
use berth_vm::image::{DiskInfo, KernelInfo};
use sha2::{Digest, Sha256};
use tree::{CpioTree, DirTree, Tree};

/// The guest binaries built from this workspace that live on the system
/// disk, all static.
pub const AGENT_BINARIES: &[&str] = &["berth-agent", "berth-monitor", "berth-create"];

/// Stage one of the boot, the initramfs's `/init` (static too).
pub const INIT_BINARY: &str = "berth-init";

/// The system disk's file name: a read-only ext4 image.
pub const SYSTEM_DISK: &str = "system.img";

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
    for name in AGENT_BINARIES.iter().chain(&[INIT_BINARY]) {
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
    write_initramfs(&initramfs, opts, &chosen, &lists)?;

    progress("writing the system disk");
    let staging = tempfile::tempdir()?;
    let tools_added = write_system(staging.path(), opts, &chosen, &lists)?;
    disk::write_ext4_from(&opts.out.join(SYSTEM_DISK), staging.path(), "berth-system")?;

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
    for name in [kernel_file, "vmlinuz", "initramfs.cpio", SYSTEM_DISK] {
        files.insert(name.to_string(), sha256_file(&opts.out.join(name))?);
    }
    let disk_name = disk_file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    files.insert(disk_name.clone(), sha256_file(&disk_file)?);
    let manifest = Manifest {
        format: 2,
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
        system: SYSTEM_DISK.to_string(),
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

impl ModuleLists {
    /// The load list (its file name) a chosen module goes in: `load-order`
    /// and `load-fs` at boot, then `load-devices`, then `load-later`.
    fn list_of(&self, name: &str) -> &'static str {
        let has = |list: &[String]| list.iter().any(|m| m == name);
        if has(&self.at_boot) {
            "load-order"
        } else if has(&self.filesystem) {
            "load-fs"
        } else if has(&self.devices) {
            "load-devices"
        } else {
            "load-later"
        }
    }
}

/// Writes the initramfs: stage one of the boot (`berth-init` as `/init`)
/// and the modules it loads to reach the system disk and the data disk.
/// The kernel copies every byte of the initramfs into memory before `/init`
/// runs (about 9 ms per MB under emulation, measured against the floor), so
/// nothing else goes in it.
fn write_initramfs(
    path: &Path,
    opts: &BuildOptions,
    chosen: &[modules::Module],
    lists: &ModuleLists,
) -> Result<()> {
    let file = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    let mut tree = CpioTree::new(file);
    for d in ["dev", "proc", "sys", "newroot", "system"] {
        tree.dir(d)?;
    }
    tree.file(
        "init",
        0o755,
        &std::fs::read(opts.agent_dir.join(INIT_BINARY))?,
    )?;
    // `load-order` and, side by side, `load-fs`.
    add_modules(&mut tree, chosen, lists, &["load-order", "load-fs"])?;
    let mut out = tree.finish()?;
    std::io::Write::flush(&mut out)?;
    Ok(())
}

/// Writes the system disk's files into `staging`: the agent and its
/// helpers, `/etc`, the modules that load after boot (`load-devices`:
/// device modules less what boot loads; `load-later`: the rest), and the
/// host tools with their libraries. Returns the tools and libraries added.
fn write_system(
    staging: &Path,
    opts: &BuildOptions,
    chosen: &[modules::Module],
    lists: &ModuleLists,
) -> Result<Vec<String>> {
    let mut tree = DirTree::new(staging)?;
    for d in [
        "dev",
        "proc",
        "sys",
        "run",
        "tmp",
        "mnt",
        "root",
        "var/lib/berth",
    ] {
        tree.dir(d)?;
    }
    for name in AGENT_BINARIES {
        let bytes = std::fs::read(opts.agent_dir.join(name))?;
        tree.file(&format!("usr/bin/{name}"), 0o755, &bytes)?;
    }
    tree.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")?;
    tree.file("etc/group", 0o644, b"root:x:0:\n")?;
    tree.file("etc/hostname", 0o644, b"berth\n")?;
    add_modules(&mut tree, chosen, lists, &["load-devices", "load-later"])?;

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
            tree.file(tool.guest, 0o755, &std::fs::read(host)?)?;
            libs.extend(tools::shared_libraries(host)?);
            added.push(tool.guest.to_string());
        }
        for lib in libs {
            // Copy the file a symlinked library points at under the
            // library's own name.
            let bytes =
                std::fs::read(&lib).with_context(|| format!("cannot read {}", lib.display()))?;
            let guest = lib.to_string_lossy().trim_start_matches('/').to_string();
            tree.file(&guest, 0o755, &bytes)?;
            added.push(guest);
        }
    }
    Ok(added)
}

/// Adds the chosen modules that go in the load lists `names`, and each
/// list's file (module names in dependency order, the order of `chosen`).
fn add_modules(
    tree: &mut dyn Tree,
    chosen: &[modules::Module],
    lists: &ModuleLists,
    names: &[&str],
) -> Result<()> {
    for name in names {
        let mut list = String::new();
        for m in chosen.iter().filter(|m| lists.list_of(&m.name) == *name) {
            let bytes = std::fs::read(&m.path)?;
            tree.file(
                &format!("lib/modules/berth/{}.ko", m.name),
                0o644,
                &modules::for_guest(&bytes),
            )?;
            list.push_str(&m.name);
            list.push('\n');
        }
        tree.file(&format!("lib/modules/berth/{name}"), 0o644, list.as_bytes())?;
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
