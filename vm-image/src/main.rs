//! `berth-vm-image`: builds Berth's Linux guest into a directory.

use std::path::PathBuf;

use berth_vm_image::{build, disk, Arch, BuildOptions, DiskFormat};
use clap::Parser;

/// Builds the guest: kernel, initramfs (stage one of the boot), system disk
/// with the agent, data disk.
#[derive(Parser, Debug)]
#[command(name = "berth-vm-image", version)]
struct Args {
    /// Output directory.
    #[arg(long, default_value = "target/vm-image")]
    out: PathBuf,
    /// x86_64 or aarch64.
    #[arg(long, default_value_t = Arch::host())]
    arch: Arch,
    /// Directory holding the static berth-agent, berth-monitor and berth-create.
    #[arg(long)]
    agent_dir: PathBuf,
    /// Where kernel packages are downloaded and kept.
    #[arg(long, default_value = "target/vm-image-cache")]
    cache: PathBuf,
    /// Use this linux-image .deb instead of downloading one.
    #[arg(long)]
    kernel_deb: Option<PathBuf>,
    /// The data disk's virtual size (e.g. 64G).
    #[arg(long, default_value = "64G")]
    disk_size: String,
    /// qcow2 (QEMU) or raw (macOS Virtualization.framework).
    #[arg(long, default_value = "qcow2")]
    disk_format: DiskFormat,
}

fn main() {
    let args = Args::parse();
    let run = || -> anyhow::Result<()> {
        let opts = BuildOptions {
            out: args.out.clone(),
            arch: args.arch,
            agent_dir: args.agent_dir.clone(),
            cache: args.cache.clone(),
            kernel_deb: args.kernel_deb.clone(),
            disk_size: disk::parse_size(&args.disk_size)?,
            disk_format: args.disk_format,
        };
        let manifest = build(&opts, &mut |step| eprintln!("berth-vm-image: {step}"))?;
        println!(
            "{}: kernel {} ({} modules), {} disk of {} bytes",
            args.out.display(),
            manifest.kernel.release,
            manifest.modules.len(),
            manifest.disk.format,
            manifest.disk.size
        );
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("berth-vm-image: {e:#}");
        std::process::exit(1);
    }
}
