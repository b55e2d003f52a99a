//! The Windows backend: a WSL2 distribution named `berth` holding the
//! guest's files, with the agent started inside it by `wsl.exe`.
//!
//! WSL2 runs its own kernel and init, so the agent is not PID 1 there: the
//! init duties (`init/`) are WSL's, and the agent serves on TCP loopback
//! inside the distribution, which WSL2 forwards to the Windows host's
//! loopback (its `localhostForwarding`, on by default). Every local user
//! and program reaches that loopback, so the agent takes only mutual TLS
//! there, with the VM's own certificates ([`crate::tls`]): its gRPC API on
//! [`AGENT_TCP_PORT`] and its Docker Engine API on [`DOCKER_TCP_PORT`],
//! which the supervisor offers Docker clients as a named pipe
//! ([`crate::relay::DOCKER_PIPE`]). Windows drives are already shared by
//! WSL at `/mnt/<drive>`, which is how the agent reads the certificates.
//! The distribution is imported once from `rootfs.tar` in the image
//! directory (the initramfs's files as a tar).
//!
//! Compiled on every platform so that its tests run; only Windows uses it.

use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use berth_api::Endpoint;
use tokio::process::{Child, Command};

use crate::backend::{Backend, Instance, LaunchSpec};
use crate::relay::DockerUpstream;
use crate::tls::VmCerts;

/// The WSL distribution's name.
pub const DISTRO: &str = "berth";
/// The loopback port the agent serves on inside WSL (forwarded to Windows).
pub const AGENT_TCP_PORT: u16 = 17070;
/// The loopback port of the agent's Docker Engine API inside WSL.
pub const DOCKER_TCP_PORT: u16 = 17072;

/// Where WSL shows a Windows path (`C:\Users\me` → `/mnt/c/Users/me`);
/// `None` for a path on no drive letter (a UNC path), which WSL does not
/// mount.
pub fn wsl_path(windows: &str) -> Option<String> {
    let windows = windows.strip_prefix(r"\\?\").unwrap_or(windows);
    let mut chars = windows.chars();
    let drive = chars.next().filter(char::is_ascii_alphabetic)?;
    if chars.next() != Some(':') {
        return None;
    }
    let rest: String = chars.as_str().replace('\\', "/");
    if !rest.is_empty() && !rest.starts_with('/') {
        return None;
    }
    Some(format!("/mnt/{}{rest}", drive.to_ascii_lowercase()))
}

/// The agent's command line in WSL: both APIs on loopback with mutual TLS
/// from `certs` (as WSL sees them).
fn agent_args(certs: &VmCerts) -> Result<Vec<String>> {
    let inside = |p: std::path::PathBuf| {
        wsl_path(&p.to_string_lossy()).with_context(|| {
            format!(
                "{} is not on a drive WSL mounts: keep Berth's state directory on a lettered drive",
                p.display()
            )
        })
    };
    Ok(vec![
        "--listen".into(),
        format!("tcp://127.0.0.1:{AGENT_TCP_PORT}"),
        "--docker-listen".into(),
        format!("tcp://127.0.0.1:{DOCKER_TCP_PORT}"),
        "--tls-cert".into(),
        inside(certs.server_cert())?,
        "--tls-key".into(),
        inside(certs.server_key())?,
        "--tls-client-ca".into(),
        inside(certs.ca())?,
        "--root".into(),
        "/var/lib/berth".into(),
    ])
}

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
        let certs = VmCerts::of(&spec.state_dir);
        certs.ensure()?;
        let args = agent_args(&certs)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.console_log)?;
        let child = Command::new("wsl.exe")
            .args(["-d", DISTRO, "-u", "root", "--exec", "/usr/bin/berth-agent"])
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the agent in WSL")?;
        Ok(Box::new(WslInstance { child, certs }))
    }
}

/// The agent running in the WSL distribution.
pub struct WslInstance {
    child: Child,
    certs: VmCerts,
}

#[tonic::async_trait]
impl Instance for WslInstance {
    fn endpoint(&self) -> Endpoint {
        Endpoint::Tcp {
            host: "127.0.0.1".into(),
            port: AGENT_TCP_PORT,
        }
    }

    fn tls(&self) -> berth_api::endpoint::ClientTls {
        self.certs.client_tls()
    }

    fn docker_api(&self) -> Option<DockerUpstream> {
        Some(DockerUpstream::Tls {
            port: DOCKER_TCP_PORT,
            certs: self.certs.clone(),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_paths_become_wsl_mounts() {
        assert_eq!(
            wsl_path(r"C:\Users\Me\AppData\Local\Berth\vm\tls\ca.pem").as_deref(),
            Some("/mnt/c/Users/Me/AppData/Local/Berth/vm/tls/ca.pem")
        );
        assert_eq!(wsl_path(r"\\?\D:\x").as_deref(), Some("/mnt/d/x"));
        assert_eq!(wsl_path("E:").as_deref(), Some("/mnt/e"));
        assert_eq!(wsl_path(r"\\server\share\x"), None);
        assert_eq!(wsl_path("C:relative"), None);
    }

    #[test]
    fn the_agent_takes_only_mutual_tls() {
        let certs = VmCerts::of(std::path::Path::new(r"C:\Users\me\berth"));
        let args = agent_args(&certs).unwrap().join(" ");
        assert!(args.contains("--listen tcp://127.0.0.1:17070"), "{args}");
        assert!(
            args.contains("--docker-listen tcp://127.0.0.1:17072"),
            "{args}"
        );
        for flag in ["--tls-cert", "--tls-key", "--tls-client-ca"] {
            assert!(
                args.contains(&format!("{flag} /mnt/c/Users/me/berth/tls/")),
                "{args}"
            );
        }
    }
}
