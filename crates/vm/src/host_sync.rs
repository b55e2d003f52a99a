//! Keeps the guest in step with the host while the VM runs: the host's
//! clock (a guest under a VMM that was frozen while the host slept wakes
//! with its clock behind) and the host's resolver configuration (a VPN
//! coming up, another network), pushed to the guest's PID 1 as JSON lines
//! over its own vsock port, the agent's port plus
//! [`HOST_SYNC_PORT_OFFSET`]:
//!
//! ```text
//! {"time":1733551234.123456789}
//! {"resolv":"nameserver 192.168.1.1\nsearch corp.example\n"}
//! ```
//!
//! The time goes every [`TIME_INTERVAL`] (the guest steps its clock when it
//! is off by more than a fifth of a second), so a guest is right again
//! within a second of the host waking; the resolver configuration goes at
//! connect and whenever the host's file changes (checked as often).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use berth_api::Endpoint;

/// The guest port PID 1 listens on, relative to the agent's.
pub const HOST_SYNC_PORT_OFFSET: u32 = 16;
/// How often the host's time is sent and its resolver file looked at.
pub const TIME_INTERVAL: Duration = Duration::from_millis(500);

/// The host file whose resolver settings the guest follows:
/// `BERTH_VM_RESOLV_CONF` (for tests), else `/etc/resolv.conf` (Unix
/// hosts; Windows has none, and sends none).
pub fn host_resolv_conf() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BERTH_VM_RESOLV_CONF") {
        return Some(PathBuf::from(p));
    }
    cfg!(unix).then(|| PathBuf::from("/etc/resolv.conf"))
}

/// Where PID 1's sync port is reached, next to the agent's endpoint; `None`
/// for backends whose guest is not reached over (hybrid) vsock.
pub fn sync_endpoint(agent: &Endpoint) -> Option<Endpoint> {
    match agent {
        Endpoint::HybridVsock { path, port } => Some(Endpoint::HybridVsock {
            path: path.clone(),
            port: port + HOST_SYNC_PORT_OFFSET,
        }),
        _ => None,
    }
}

/// One line of the time message: the host's clock now.
pub fn time_line(now: SystemTime) -> String {
    let t = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{{\"time\":{}.{:09}}}\n", t.as_secs(), t.subsec_nanos())
}

/// One line carrying a resolver file's text.
pub fn resolv_line(text: &str) -> String {
    let mut line = serde_json::json!({ "resolv": text }).to_string();
    line.push('\n');
    line
}

/// Sends the host's time and resolver settings to the guest until the
/// connection fails (the caller connects again).
#[cfg(unix)]
pub async fn sync_once(endpoint: &Endpoint, resolv: Option<&Path>) -> Result<()> {
    use anyhow::Context;
    use tokio::io::AsyncWriteExt;
    let Endpoint::HybridVsock { path, port } = endpoint else {
        anyhow::bail!("the host sync reaches only hybrid-vsock guests");
    };
    let mut stream = berth_api::endpoint::hybrid_vsock_connect(path, *port)
        .await
        .context("cannot reach PID 1's sync port")?;
    let mut sent: Option<String> = None;
    let mut tick = tokio::time::interval(TIME_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut out = time_line(SystemTime::now());
        if let Some(p) = resolv {
            if let Ok(text) = std::fs::read_to_string(p) {
                if sent.as_deref() != Some(text.as_str()) {
                    out.push_str(&resolv_line(&text));
                    sent = Some(text);
                }
            }
        }
        stream.write_all(out.as_bytes()).await?;
    }
}

/// Without Unix sockets there is no hybrid vsock to reach the guest by.
#[cfg(not(unix))]
pub async fn sync_once(_endpoint: &Endpoint, _resolv: Option<&Path>) -> Result<()> {
    anyhow::bail!("the host sync reaches only hybrid-vsock guests")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_the_guest_reads() {
        let t = UNIX_EPOCH + Duration::new(1_733_551_234, 5);
        let v: serde_json::Value = serde_json::from_str(&time_line(t)).unwrap();
        assert!((v["time"].as_f64().unwrap() - 1_733_551_234.0).abs() < 1e-6);
        let v: serde_json::Value =
            serde_json::from_str(&resolv_line("nameserver 1.1.1.1\n\"x\"\n")).unwrap();
        assert_eq!(v["resolv"], "nameserver 1.1.1.1\n\"x\"\n");
        let agent = Endpoint::HybridVsock {
            path: "/r/vm.vsock".into(),
            port: 1024,
        };
        assert_eq!(
            sync_endpoint(&agent),
            Some(Endpoint::HybridVsock {
                path: "/r/vm.vsock".into(),
                port: 1040
            })
        );
        assert_eq!(sync_endpoint(&Endpoint::Unix("/s".into())), None);
    }
}
