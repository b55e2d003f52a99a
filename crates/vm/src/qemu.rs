//! The QEMU backend (Linux hosts, and macOS and Windows as a fallback):
//! the uncompressed kernel booted directly, the qcow2 data disk on
//! virtio-blk, shares over virtio-9p, the agent's vsock through
//! `vhost-device-vsock` in hybrid mode (the host side is a Unix socket),
//! QMP for the ACPI power button. KVM, HVF or WHPX when the host has one;
//! TCG otherwise.
//!
//! vhost-device-vsock and QEMU's monitor are reached over Unix sockets, so
//! this backend boots guests on Unix hosts only; on Windows it says so and
//! the WSL2 backend (the default there) is the way.

#[cfg(unix)]
use std::path::Path;
use std::path::PathBuf;
#[cfg(unix)]
use std::process::Stdio;
#[cfg(unix)]
use std::time::Duration;

#[cfg(unix)]
use anyhow::Context;
use anyhow::{bail, Result};
#[cfg(unix)]
use berth_api::Endpoint;
#[cfg(unix)]
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
#[cfg(unix)]
use tokio::process::{Child, Command};

use crate::backend::{Backend, Instance, LaunchSpec};
use crate::image::Arch;
use crate::settings::Network;

/// The guest's vsock context id (each VM has its own vsock device).
#[cfg(unix)]
const GUEST_CID: u32 = 3;

/// Boots the guest under QEMU.
#[derive(Debug, Clone, Default)]
pub struct QemuBackend {
    /// The QEMU binary; default `qemu-system-<arch>` on PATH or `BERTH_QEMU`.
    pub qemu: Option<PathBuf>,
}

/// The accelerator to use: the one asked for, else the host's own.
pub fn pick_accel(asked: Option<&str>) -> String {
    if let Some(a) = asked {
        return a.to_string();
    }
    if cfg!(target_os = "macos") {
        "hvf".into()
    } else if cfg!(windows) {
        "whpx".into()
    } else if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
    {
        "kvm".into()
    } else {
        "tcg".into()
    }
}

/// The `-cpu` model for `accel`: the host's own under a hypervisor, QEMU's
/// `max` under TCG, on x86 less ERMS and FSRM. With them the guest's kernel
/// and libc copy and clear memory with `rep movsb` and `rep stosb`, which
/// TCG runs one byte per step (every page the kernel zeroes, every module
/// it loads); without them they move eight bytes at a time. Measured with
/// interleaved boots: later boots about 0.25 s faster, the floor (kernel
/// and busybox) unchanged within noise.
fn cpu_model(arch: Arch, accel: &str) -> &'static str {
    match (accel, arch) {
        ("tcg", Arch::X86_64) => "max,-erms,-fsrm",
        ("tcg", Arch::Aarch64) => "max",
        _ => "host",
    }
}

/// TCG's translation cache in MiB. QEMU sizes it at up to 1 GiB (an
/// eighth of the host's memory), and the cache's pages stay resident once
/// written: the VM's host memory grew with every kernel path the guest
/// ever ran. Measured here (2 vCPUs; `BERTH_VM_TCG_CACHE_MIB` overrides
/// the size): boot to ready is the same from 16 to 128 MiB (3.7–5.3 s,
/// within noise), but the VM test's container work took 39.5 s at 128 MiB,
/// 42 s at 64, 50 s at 32 and 71 s at 16 (a full cache is flushed and
/// everything that runs is translated again). 64 MiB keeps the work's
/// speed and caps what the cache holds.
pub const TCG_CACHE_MIB: u32 = 64;

/// The `-accel` option for `accel`: TCG with [`TCG_CACHE_MIB`] of
/// translation cache (`BERTH_VM_TCG_CACHE_MIB` overrides it, for
/// measuring), a hypervisor as it comes.
fn accel_option(accel: &str) -> String {
    match accel {
        "tcg" => {
            let mib = std::env::var("BERTH_VM_TCG_CACHE_MIB")
                .ok()
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(TCG_CACHE_MIB);
            format!("tcg,tb-size={mib}")
        }
        _ => accel.to_string(),
    }
}

/// QEMU's arguments for `spec` (without the binary).
pub fn qemu_args(spec: &LaunchSpec, accel: &str) -> Vec<String> {
    let arch = spec.image.manifest.arch;
    let run = &spec.run_dir;
    let mut a: Vec<String> = Vec::new();
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    let machine = match arch {
        Arch::X86_64 => "q35",
        Arch::Aarch64 => "virt",
    };
    push(&["-machine", machine, "-accel", &accel_option(accel)]);
    push(&["-cpu", cpu_model(arch, accel)]);
    push(&[
        "-smp",
        &spec.cpus.to_string(),
        "-m",
        &format!("{}M", spec.memory_mib),
    ]);
    push(&[
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ]);
    push(&["-kernel", &spec.image.kernel().to_string_lossy()]);
    push(&["-initrd", &spec.image.initramfs().to_string_lossy()]);
    let console = if arch == Arch::X86_64 {
        "ttyS0"
    } else {
        "ttyAMA0"
    };
    push(&["-append", &spec.cmdline(console, false)]);
    push(&[
        "-chardev",
        &format!("file,id=con,path={},append=on", spec.console_log.display()),
        "-serial",
        "chardev:con",
    ]);
    // vhost-user needs guest memory shared with the backend process.
    push(&[
        "-object",
        &format!(
            "memory-backend-memfd,id=mem,size={}M,share=on",
            spec.memory_mib
        ),
        "-numa",
        "node,memdev=mem",
    ]);
    push(&[
        "-chardev",
        &format!("socket,id=vsock,path={}", run.join("vhost.sock").display()),
        "-device",
        "vhost-user-vsock-pci,chardev=vsock",
    ]);
    // Free page reporting: the guest's `virtio_balloon` tells QEMU which
    // 2 MiB blocks it has freed (a few seconds after they go free) and QEMU
    // discards them, punching holes in the shared memfd, so the memory a
    // container used goes back to the host once it exits. Nothing is
    // inflated: the guest keeps all its memory to use again.
    push(&["-device", "virtio-balloon-pci,free-page-reporting=on"]);
    // discard=unmap: the guest's discards (its data disk is mounted with
    // `discard`) free the qcow2's clusters and punch holes in the file.
    push(&[
        "-drive",
        &format!(
            "file={},if=virtio,format={},cache=writeback,discard=unmap",
            spec.disk.display(),
            spec.image.manifest.disk.format
        ),
    ]);
    // The system disk comes second: the guest's /dev/vdb.
    push(&[
        "-drive",
        &format!(
            "file={},if=virtio,format=raw,readonly=on",
            spec.image.system_disk().display()
        ),
    ]);
    #[cfg(unix)]
    let root = nix::unistd::geteuid().is_root();
    #[cfg(not(unix))]
    let root = false;
    let security = if root { "passthrough" } else { "mapped-xattr" };
    for s in &spec.shares {
        push(&[
            "-virtfs",
            &format!(
                "local,path={},mount_tag={},security_model={security}{}",
                s.path.display(),
                s.tag,
                if s.read_only { ",readonly=on" } else { "" }
            ),
        ]);
    }
    match &spec.network {
        Network::None => {}
        Network::Nat => push(&[
            "-netdev",
            "user,id=net0",
            "-device",
            "virtio-net-pci,netdev=net0,romfile=",
        ]),
        Network::Restricted { forwards } => {
            // One forwarder process per guest connection (slirp's cmd:),
            // since a tcp: guestfwd is a single connection made at start.
            let exe = forwarder();
            let mut n = "user,id=net0,restrict=on".to_string();
            for p in forwards {
                n.push_str(&format!(
                    ",guestfwd=tcp:10.0.2.100:{p}-cmd:{} vm connect-stdio 127.0.0.1:{p}",
                    exe.display()
                ));
            }
            push(&[
                "-netdev",
                &n,
                "-device",
                "virtio-net-pci,netdev=net0,romfile=",
            ]);
        }
    }
    push(&[
        "-qmp",
        &format!("unix:{},server=on,wait=off", run.join("qmp.sock").display()),
    ]);
    a
}

#[tonic::async_trait]
impl Backend for QemuBackend {
    fn name(&self) -> &'static str {
        "qemu"
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>> {
        self.start(spec).await
    }
}

impl QemuBackend {
    #[cfg(not(unix))]
    async fn start(&self, _spec: &LaunchSpec) -> Result<Box<dyn Instance>> {
        bail!(
            "the QEMU backend needs vhost-device-vsock and Unix sockets, which Windows lacks: \
             use the WSL2 backend (the default; unset BERTH_VM_BACKEND)"
        )
    }

    #[cfg(unix)]
    async fn start(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>> {
        let run = &spec.run_dir;
        std::fs::create_dir_all(run).with_context(|| format!("cannot create {}", run.display()))?;
        for f in ["vhost.sock", "vm.vsock", "qmp.sock"] {
            let _ = std::fs::remove_file(run.join(f));
        }
        let vhost_bin = std::env::var_os("BERTH_VHOST_VSOCK")
            .map(PathBuf::from)
            .unwrap_or_else(|| "vhost-device-vsock".into());
        warn_unless_fixed(&vhost_bin, &spec.console_log);
        let mut vhost = Command::new(&vhost_bin)
            .arg("--vm")
            .arg(format!(
                "guest-cid={GUEST_CID},socket={},uds-path={}",
                run.join("vhost.sock").display(),
                run.join("vm.vsock").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(open_log(&spec.console_log)?))
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {}: install it with cargo install vhost-device-vsock (scripts/setup.sh does)", vhost_bin.display()))?;
        wait_for_path(&run.join("vhost.sock"), Duration::from_secs(10))
            .await
            .context("vhost-device-vsock did not create its socket")?;
        let qemu = self
            .qemu
            .clone()
            .or_else(|| std::env::var_os("BERTH_QEMU").map(PathBuf::from))
            .unwrap_or_else(|| {
                PathBuf::from(match spec.image.manifest.arch {
                    Arch::X86_64 => "qemu-system-x86_64",
                    Arch::Aarch64 => "qemu-system-aarch64",
                })
            });
        let accel = pick_accel(spec.accel.as_deref());
        let child = Command::new(&qemu)
            .args(qemu_args(spec, &accel))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(open_log(&spec.console_log)?))
            .kill_on_drop(true)
            .process_group(0)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                let _ = vhost.kill().await;
                bail!(
                    "cannot start {}: {e} (install Debian's qemu-system-x86 package)",
                    qemu.display()
                );
            }
        };
        Ok(Box::new(QemuInstance {
            qemu: child,
            vhost,
            run: run.clone(),
            port: spec.agent_port,
            #[cfg(target_os = "linux")]
            kernel: spec.image.kernel(),
        }))
    }
}

/// The version of vhost-device-vsock that carries Berth's fix
/// (`scripts/vhost-device-vsock.patch`).
#[cfg(unix)]
const FIXED_VHOST_VSOCK: &str = "+berth.1";

/// Notes in the console log when `vhost_bin` is a vhost-device-vsock
/// without Berth's fix: one connection carrying heavy traffic both ways at
/// once (a build context, a Docker exec) can stall with it for good.
#[cfg(unix)]
fn warn_unless_fixed(vhost_bin: &Path, console_log: &Path) {
    let Ok(out) = std::process::Command::new(vhost_bin)
        .arg("--version")
        .output()
    else {
        return;
    };
    let version = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && !version.trim_end().ends_with(FIXED_VHOST_VSOCK) {
        if let Ok(mut log) = open_log(console_log) {
            use std::io::Write;
            let _ = writeln!(
                log,
                "berth vm: {} is without Berth's fix ({}): heavy traffic both ways on one \
                 connection may stall; run scripts/setup.sh to install the fixed build",
                vhost_bin.display(),
                version.trim()
            );
        }
    }
}

/// The program slirp runs for each guest connection to a forwarded port:
/// `BERTH_VM_FORWARDER`, else this program (the `berth` CLI), run as
/// `PROGRAM vm connect-stdio HOST:PORT`.
pub fn forwarder() -> PathBuf {
    std::env::var_os("BERTH_VM_FORWARDER")
        .map(PathBuf::from)
        .or_else(|| std::env::current_exe().ok())
        .unwrap_or_else(|| PathBuf::from("berth"))
}

#[cfg(unix)]
fn open_log(path: &Path) -> Result<std::fs::File> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

#[cfg(unix)]
async fn wait_for_path(path: &Path, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    while !path.exists() {
        if tokio::time::Instant::now() > deadline {
            bail!("{} did not appear", path.display());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// A QEMU process and its vsock backend.
#[cfg(unix)]
pub struct QemuInstance {
    qemu: Child,
    vhost: Child,
    run: PathBuf,
    port: u32,
    /// The kernel file, paged out of QEMU once booted (Linux only).
    #[cfg(target_os = "linux")]
    kernel: PathBuf,
}

#[cfg(unix)]
#[tonic::async_trait]
impl Instance for QemuInstance {
    fn endpoint(&self) -> Endpoint {
        Endpoint::HybridVsock {
            path: self.run.join("vm.vsock"),
            port: self.port,
        }
    }

    fn pid(&self) -> Option<u32> {
        self.qemu.id()
    }

    fn announces_serving(&self) -> bool {
        true
    }

    fn booted(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(pid) = self.qemu.id() {
            if let Err(e) = page_out_mapped_file(pid, &self.kernel) {
                eprintln!("berth vm: could not release QEMU's copy of the kernel file: {e}");
            }
        }
    }

    fn is_running(&mut self) -> bool {
        matches!(self.qemu.try_wait(), Ok(None))
    }

    async fn request_power_off(&mut self) -> Result<()> {
        qmp(&self.run.join("qmp.sock"), "system_powerdown").await
    }

    async fn kill(&mut self) {
        let _ = self.qemu.kill().await;
        let _ = self.vhost.kill().await;
    }
}

#[cfg(unix)]
impl Drop for QemuInstance {
    fn drop(&mut self) {
        let _ = self.vhost.start_kill();
    }
}

/// Takes `file`'s pages out of process `pid`'s resident set
/// (`process_madvise(MADV_PAGEOUT)` on each mapping of it); returns the
/// bytes advised. QEMU keeps the guest kernel's file mapped for the life
/// of the VM (to load it again on a reset, which `-no-reboot` never
/// does): once the guest has booted its 60 MiB are clean page cache that
/// QEMU never reads again but that its resident memory counts. They are
/// read from the file again if QEMU ever does touch them.
#[cfg(target_os = "linux")]
pub fn page_out_mapped_file(pid: u32, file: &Path) -> std::io::Result<usize> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let file = std::fs::canonicalize(file)?;
    let name = format!(" {}", file.display());
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let ranges: Vec<libc::iovec> = maps
        .lines()
        .filter(|l| l.ends_with(&name))
        .filter_map(|l| {
            let (start, end) = l.split_whitespace().next()?.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            Some(libc::iovec {
                iov_base: start as *mut libc::c_void,
                iov_len: end.checked_sub(start)?,
            })
        })
        .collect();
    if ranges.is_empty() {
        return Ok(0);
    }
    // SAFETY: plain system calls; the ranges are addresses in the other
    // process, which the kernel checks, and the descriptor is owned below.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
    if pidfd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as libc::c_int) };
    let advised = unsafe {
        libc::syscall(
            libc::SYS_process_madvise,
            std::os::fd::AsRawFd::as_raw_fd(&pidfd),
            ranges.as_ptr(),
            ranges.len(),
            libc::MADV_PAGEOUT,
            0u32,
        )
    };
    if advised < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(advised as usize)
}

/// Runs one QMP command (after the capabilities handshake).
#[cfg(unix)]
pub async fn qmp(socket: &Path, command: &str) -> Result<()> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("cannot reach QEMU's monitor at {}", socket.display()))?;
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    lines.next_line().await?; // greeting
    w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n").await?;
    lines.next_line().await?;
    w.write_all(format!("{{\"execute\":\"{command}\"}}\n").as_bytes())
        .await?;
    while let Some(line) = lines.next_line().await? {
        if line.contains("\"return\"") {
            return Ok(());
        }
        if line.contains("\"error\"") {
            bail!("QEMU refused {command}: {line}");
        }
    }
    bail!("QEMU's monitor closed before answering {command}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcg_x86_guests_get_a_cpu_without_byte_by_byte_string_copies() {
        assert_eq!(cpu_model(Arch::X86_64, "tcg"), "max,-erms,-fsrm");
        assert_eq!(cpu_model(Arch::Aarch64, "tcg"), "max");
        for accel in ["kvm", "hvf", "whpx"] {
            assert_eq!(cpu_model(Arch::X86_64, accel), "host");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_mapped_file_leaves_another_process_resident_set() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kernel");
        std::fs::write(&file, vec![7u8; 8 << 20]).unwrap();
        // A child that maps the file, reads it all, says so and waits.
        let script = format!(
            "import mmap,sys,time\nf=open('{}','rb')\nm=mmap.mmap(f.fileno(),0,prot=mmap.PROT_READ)\ns=sum(m[i] for i in range(0,len(m),4096))\nprint(s,flush=True)\ntime.sleep(60)\n",
            file.display()
        );
        let Ok(mut child) = std::process::Command::new("python3")
            .args(["-c", &script])
            .stdout(Stdio::piped())
            .spawn()
        else {
            eprintln!("skipped: no python3");
            return;
        };
        let mut out = child.stdout.take().unwrap();
        let mut byte = [0u8; 1];
        out.read_exact(&mut byte).unwrap();
        let pid = child.id();
        let file_rss = || {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            let line = status.lines().find(|l| l.starts_with("RssFile:")).unwrap();
            line.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        let before = file_rss();
        let advised = page_out_mapped_file(pid, &file).unwrap();
        let after = file_rss();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(advised, 8 << 20);
        assert!(
            before >= after + 7 * 1024,
            "RssFile {before} KiB before, {after} KiB after"
        );
    }

    #[test]
    fn tcg_gets_a_bounded_translation_cache() {
        assert_eq!(accel_option("tcg"), "tcg,tb-size=64");
        assert_eq!(accel_option("kvm"), "kvm");
    }
}
