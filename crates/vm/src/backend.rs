//! The one interface every VMM backend implements, and the platform-neutral
//! parts of a launch: the kernel command line PID 1 reads, share tags and
//! the data disk's place.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use berth_api::endpoint::ClientTls;
use berth_api::Endpoint;

use crate::image::GuestImage;
use crate::settings::{Network, Settings};

/// A host folder as the VMM shares it.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareSpec {
    /// The VMM's tag (`berth0`, `berth1`, …).
    pub tag: String,
    /// The host folder, mounted at the same path in the guest.
    pub path: PathBuf,
    /// Read-only.
    pub read_only: bool,
}

/// Everything a backend needs to boot the guest once.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// The guest image.
    pub image: GuestImage,
    /// The VM's own data disk (a copy of the image's blank disk).
    pub disk: PathBuf,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Shared folders.
    pub shares: Vec<ShareSpec>,
    /// The network.
    pub network: Network,
    /// The accelerator asked for, if any.
    pub accel: Option<String>,
    /// The guest vsock port of the agent.
    pub agent_port: u32,
    /// Where the backend keeps sockets and pid files for this run.
    pub run_dir: PathBuf,
    /// The VM's state directory (settings, disks, [`crate::tls`]).
    pub state_dir: PathBuf,
    /// Where the guest's console goes (appended).
    pub console_log: PathBuf,
}

impl LaunchSpec {
    /// Builds the spec for `settings` in state directory `dir`.
    pub fn new(dir: &Path, settings: &Settings, image: GuestImage) -> LaunchSpec {
        let disk_name = match image.manifest.disk.format {
            crate::image::DiskFormat::Qcow2 => "data.qcow2",
            crate::image::DiskFormat::Raw => "data.img",
        };
        LaunchSpec {
            disk: dir.join(disk_name),
            image,
            cpus: settings.cpus,
            memory_mib: settings.memory_mib,
            shares: settings
                .shares
                .iter()
                .enumerate()
                .map(|(i, s)| ShareSpec {
                    tag: format!("berth{i}"),
                    path: s.path.clone(),
                    read_only: s.read_only,
                })
                .collect(),
            network: settings.network.clone(),
            accel: settings.accel.clone(),
            agent_port: settings.agent_port,
            run_dir: dir.join("run"),
            state_dir: dir.to_path_buf(),
            console_log: dir.join("console.log"),
        }
    }

    /// The kernel command line: console, quiet boot, and the `berth.*`
    /// parameters PID 1 reads (see the agent's `init::config`).
    /// `virtiofs` says whether shares are virtiofs (VZ) or 9p (QEMU).
    pub fn cmdline(&self, console: &str, virtiofs: bool) -> String {
        let mut words = vec![
            format!("console={console}"),
            "panic=-1".to_string(),
            "quiet".to_string(),
            "loglevel=3".to_string(),
            "rdinit=/init".to_string(),
            format!("berth.port={}", self.agent_port),
            "berth.disk=/dev/vda".to_string(),
            "berth.system=/dev/vdb".to_string(),
        ];
        for s in &self.shares {
            let mut w = format!(
                "berth.share={}:{}",
                s.tag,
                escape(&s.path.to_string_lossy())
            );
            if s.read_only {
                w.push_str(":ro");
            }
            if virtiofs {
                w.push_str(":virtiofs");
            }
            words.push(w);
        }
        match &self.network {
            Network::None => {}
            Network::Nat | Network::Restricted { .. } => {
                words.push("berth.net=10.0.2.15/24,10.0.2.2,10.0.2.3".to_string())
            }
        }
        if let Network::Restricted { forwards } = &self.network {
            for p in forwards {
                words.push(format!("berth.insecure=10.0.2.100:{p}"));
            }
        }
        // BERTH_VM_LOG=debug in the supervisor's environment: a chattier agent.
        if let Ok(level) = std::env::var("BERTH_VM_LOG") {
            words.push(format!("berth.log={level}"));
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        words.push(format!(
            "berth.time={}.{:03}",
            now.as_secs(),
            now.subsec_millis()
        ));
        words.join(" ")
    }
}

/// Escapes what the kernel command line cannot carry in a path.
pub fn escape(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_graphic() && b != b'%' && b != b':' && b != b'"' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A running guest, as a backend started it.
#[tonic::async_trait]
pub trait Instance: Send {
    /// Where the host reaches the agent.
    fn endpoint(&self) -> Endpoint;
    /// The VMM's process id, where there is one.
    fn pid(&self) -> Option<u32>;
    /// True while the VM runs; false once it has exited (crash or power-off).
    fn is_running(&mut self) -> bool;
    /// Asks the guest to power off (ACPI power button).
    async fn request_power_off(&mut self) -> Result<()>;
    /// Ends the VM at once.
    async fn kill(&mut self);
    /// True when the guest's console log shows
    /// [`berth_api::AGENT_SERVING_LINE`] once the agent listens: the host
    /// then makes no connection before it. QEMU's hybrid vsock needs this.
    fn announces_serving(&self) -> bool {
        false
    }
    /// Called once the agent answers after a boot: what the VMM needed
    /// only to boot can be let go of.
    fn booted(&mut self) {}
    /// The certificates the host shows the agent (mutual TLS, for an agent
    /// reached over TCP); none by default.
    fn tls(&self) -> ClientTls {
        ClientTls::default()
    }
    /// Where the host reaches the agent's Docker Engine API when it is not
    /// on the vsock port beside the agent's: the WSL2 agent's TLS port.
    fn docker_api(&self) -> Option<crate::relay::DockerUpstream> {
        None
    }
}

/// A way of running VMs on this host.
#[tonic::async_trait]
pub trait Backend: Send + Sync {
    /// Its name (`qemu`, `vz`, `wsl`).
    fn name(&self) -> &'static str;
    /// Boots the guest; returns once the VMM runs (not once the agent is
    /// ready).
    async fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>>;
}

/// The backend this platform uses by default.
pub fn default_backend() -> Box<dyn Backend> {
    #[cfg(target_os = "macos")]
    if std::env::var("BERTH_VM_BACKEND").as_deref() != Ok("qemu") {
        return Box::new(crate::vz::VzBackend);
    }
    #[cfg(windows)]
    if std::env::var("BERTH_VM_BACKEND").as_deref() != Ok("qemu") {
        return Box::new(crate::wsl::WslBackend);
    }
    Box::new(crate::qemu::QemuBackend::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_the_command_line_splits_on() {
        assert_eq!(escape("/Users/me/My Code:x%"), "/Users/me/My%20Code%3Ax%25");
    }
}
