//! A VM's settings, kept as `settings.json` in its state directory so that
//! the CLI, the desktop app and a restart all boot the same machine.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// A host folder shared into the VM at the same absolute path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedFolder {
    /// The host folder (absolute).
    pub path: PathBuf,
    /// Mounted read-only in the VM.
    #[serde(default)]
    pub read_only: bool,
}

/// How the VM reaches networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum Network {
    /// NAT through the VMM (QEMU user networking, VZ NAT, WSL's NAT).
    Nat,
    /// NAT that reaches nothing but the listed host loopback ports, each
    /// at 10.0.2.100:PORT in the guest (what tests use).
    Restricted {
        /// Host loopback ports the guest may reach.
        forwards: Vec<u16>,
    },
    /// No network device.
    None,
}

/// Everything that shapes the VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Virtual CPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// The data disk's size in bytes: a bigger value grows the disk image
    /// at the next start and the guest grows its file system to match; a
    /// smaller one than a used disk has is refused.
    pub disk_size: u64,
    /// Host folders shared at their own paths.
    pub shares: Vec<SharedFolder>,
    /// The guest image directory (built by berth-vm-image).
    pub image: Option<PathBuf>,
    /// The accelerator: kvm, hvf, whpx or tcg; unset picks the best the
    /// host has.
    pub accel: Option<String>,
    /// The network.
    pub network: Network,
    /// The guest vsock port the agent serves on.
    pub agent_port: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            cpus: 2,
            memory_mib: 2048,
            disk_size: 64 << 30,
            shares: home_dir()
                .map(|path| {
                    vec![SharedFolder {
                        path,
                        read_only: false,
                    }]
                })
                .unwrap_or_default(),
            image: bundled_image(),
            accel: std::env::var("BERTH_VM_ACCEL").ok(),
            network: Network::Nat,
            agent_port: 1024,
        }
    }
}

/// The guest image that came with this Berth: `BERTH_VM_IMAGE` when set,
/// else the `vm-image` folder its installer put beside the running program
/// ([`image_beside`]).
pub fn bundled_image() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("BERTH_VM_IMAGE").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    image_beside(&std::env::current_exe().ok()?)
}

/// The `vm-image` folder installed with the program at `exe`, where each
/// bundle puts the app's resources (`src-tauri/bundle/`): a macOS app's
/// `Contents/Resources/vm-image` (the programs are in `Contents/MacOS`),
/// the install folder on Windows (beside `berth.exe`), `/usr/lib/Berth`
/// for `/usr/bin/berth` from the .deb. Only a folder with a manifest
/// counts, so a build tree never picks one up by accident.
pub fn image_beside(exe: &Path) -> Option<PathBuf> {
    let exe = exe.canonicalize().unwrap_or_else(|_| exe.to_path_buf());
    let dir = exe.parent()?;
    let up = dir.parent()?;
    [
        up.join("Resources/vm-image"),
        dir.join("vm-image"),
        up.join("lib/Berth/vm-image"),
    ]
    .into_iter()
    .find(|d| d.join("manifest.json").is_file())
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os(if cfg!(windows) { "USERPROFILE" } else { "HOME" })
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

impl Settings {
    /// Reads `DIR/settings.json`, or the defaults when there is none.
    pub fn load(dir: &Path) -> Result<Settings> {
        let path = dir.join("settings.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!(
                    "{} is not valid VM settings: fix or delete it",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes `DIR/settings.json` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.check()?;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let tmp = dir.join("settings.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, dir.join("settings.json"))?;
        Ok(())
    }

    /// Refuses settings no VM can boot with, each with one sentence.
    pub fn check(&self) -> Result<()> {
        if self.cpus == 0 || self.cpus > 256 {
            bail!("{} CPUs is not possible: give 1 to 256", self.cpus);
        }
        if self.memory_mib < 256 {
            bail!(
                "{} MiB of memory is too little for the VM: give at least 256",
                self.memory_mib
            );
        }
        for s in &self.shares {
            if !s.path.is_absolute() {
                bail!(
                    "the shared folder {} is not an absolute path",
                    s.path.display()
                );
            }
        }
        if self.disk_size < MIN_DISK {
            bail!(
                "a data disk of {} bytes is too small for the VM: give at least 1G",
                self.disk_size
            );
        }
        if let Some(a) = &self.accel {
            if !["kvm", "hvf", "whpx", "tcg"].contains(&a.as_str()) {
                bail!("'{a}' is not an accelerator: use kvm, hvf, whpx or tcg");
            }
        }
        Ok(())
    }
}

/// The smallest data disk a VM is given (1 GiB).
pub const MIN_DISK: u64 = 1 << 30;

/// The default state directory: `BERTH_VM_DIR`, else the platform's data
/// folder (`~/.local/share/berth/vm`, `~/Library/Application Support/Berth/vm`,
/// `%LOCALAPPDATA%\Berth\vm`).
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BERTH_VM_DIR") {
        return PathBuf::from(d);
    }
    let home = home_dir().unwrap_or_else(|| PathBuf::from("/var/lib"));
    if cfg!(target_os = "macos") {
        home.join("Library/Application Support/Berth/vm")
    } else if cfg!(windows) {
        std::env::var_os("LOCALAPPDATA")
            .map(PathBuf::from)
            .unwrap_or(home)
            .join("Berth")
            .join("vm")
    } else {
        std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".local/share"))
            .join("berth/vm")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_nonsense() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Settings::load(dir.path()).unwrap();
        s.cpus = 3;
        s.network = Network::Restricted {
            forwards: vec![5000],
        };
        s.save(dir.path()).unwrap();
        assert_eq!(Settings::load(dir.path()).unwrap(), s);
        s.memory_mib = 10;
        assert!(s
            .save(dir.path())
            .unwrap_err()
            .to_string()
            .contains("too little"));
        s.memory_mib = 512;
        s.accel = Some("warp".into());
        assert!(s
            .check()
            .unwrap_err()
            .to_string()
            .contains("not an accelerator"));
        s.accel = None;
        s.disk_size = 1000;
        assert!(s.check().unwrap_err().to_string().contains("too small"));
        std::fs::write(dir.path().join("settings.json"), "{").unwrap();
        assert!(Settings::load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("not valid"));
    }

    #[test]
    fn finds_the_image_each_bundle_installs() {
        let root = tempfile::tempdir().unwrap();
        let image = |d: &Path| {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("manifest.json"), "{}").unwrap();
        };
        // A macOS app: Berth.app/Contents/{MacOS/berth, Resources/vm-image}.
        let app = root.path().join("Berth.app/Contents");
        image(&app.join("Resources/vm-image"));
        let found = image_beside(&app.join("MacOS/berth")).unwrap();
        assert!(found.ends_with("Resources/vm-image"), "{}", found.display());
        // The .deb: /usr/bin/berth and /usr/lib/Berth/vm-image.
        let usr = root.path().join("usr");
        image(&usr.join("lib/Berth/vm-image"));
        assert!(image_beside(&usr.join("bin/berth")).is_some());
        // A build tree, or a folder without a manifest, has none.
        std::fs::create_dir_all(root.path().join("target/debug/vm-image")).unwrap();
        assert_eq!(image_beside(&root.path().join("target/debug/berth")), None);
    }
}
