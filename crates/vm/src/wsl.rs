//! The Windows backend: a WSL2 distribution named `berth` holding the
//! guest's files, with the agent started inside it by `wsl.exe`.
//!
//! WSL2 runs its own kernel and init, so the agent is not PID 1 there: the
//! init duties (`init/`) are WSL's, and the agent serves on TCP loopback
//! inside the distribution, which WSL2 forwards to the Windows host's
//! loopback (its `localhostForwarding`, on by default). Windows drives are
//! already shared by WSL at `/mnt/<drive>`. The distribution is imported
//! once from `rootfs.tar` in the image directory (the initramfs's files as
//! a tar).

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use berth_api::Endpoint;
use tokio::process::{Child, Command};

use crate::backend::{Backend, Instance, LaunchSpec};

/// The WSL distribution's name.
pub const DISTRO: &str = "berth";
/// The loopback port the agent serves on inside WSL (forwarded to Windows).
pub const AGENT_TCP_PORT: u16 = 17070;

/// Runs the guest as a WSL2 distribution.
#[derive(Debug, Default)]
pub struct WslBackend;

async fn wsl(args: &[&str]) -> Result<String> {
    let out = Command::new("wsl.exe")
        .args(args)
        .output()
        .await
        .context("cannot run wsl.exe: install WSL (wsl --install) first")?;
    // wsl.exe writes UTF-16 for its own messages.
    let text: String = if out.stdout.len() % 2 == 0 && out.stdout.get(1) == Some(&0) {
        let units: Vec<u16> = out
            .stdout
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    } else {
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    if !out.status.success() {
        bail!("wsl.exe {} failed: {}", args.join(" "), text.trim());
    }
    Ok(text)
}

#[tonic::async_trait]
impl Backend for WslBackend {
    fn name(&self) -> &'static str {
        "wsl"
    }

    async fn launch(&self, spec: &LaunchSpec) -> Result<Box<dyn Instance>> {
        let listed = wsl(&["--list", "--quiet"]).await?;
        if !listed.lines().any(|l| l.trim() == DISTRO) {
            let rootfs = spec.image.dir.join("rootfs.tar");
            if !rootfs.is_file() {
                bail!(
                    "{} is missing: the WSL backend imports the guest from it",
                    rootfs.display()
                );
            }
            let home: PathBuf = spec.run_dir.join("wsl");
            std::fs::create_dir_all(&home)?;
            wsl(&[
                "--import",
                DISTRO,
                &home.to_string_lossy(),
                &rootfs.to_string_lossy(),
                "--version",
                "2",
            ])
            .await?;
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.console_log)?;
        let child = Command::new("wsl.exe")
            .args([
                "-d",
                DISTRO,
                "-u",
                "root",
                "--exec",
                "/usr/bin/berth-agent",
                "--listen",
            ])
            .arg(format!("tcp://127.0.0.1:{AGENT_TCP_PORT}"))
            .args(["--root", "/var/lib/berth"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the agent in WSL")?;
        Ok(Box::new(WslInstance { child }))
    }
}

/// The agent running in the WSL distribution.
pub struct WslInstance {
    child: Child,
}

#[tonic::async_trait]
impl Instance for WslInstance {
    fn endpoint(&self) -> Endpoint {
        Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port: AGENT_TCP_PORT,
        }
    }

    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    async fn request_power_off(&mut self) -> Result<()> {
        wsl(&["--terminate", DISTRO]).await.map(|_| ())
    }

    async fn kill(&mut self) {
        let _ = self.child.kill().await;
        let _ = wsl(&["--terminate", DISTRO]).await;
    }
}
