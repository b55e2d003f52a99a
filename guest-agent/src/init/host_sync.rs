//! PID 1's side of the VM manager's host sync (`berth-vm`'s `host_sync`):
//! on vsock port `berth.port` + [`PORT_OFFSET`] the host sends JSON lines with its clock
//! (`{"time":SECONDS}`, twice a second) and its resolver file
//! (`{"resolv":"TEXT"}`, when it changes). A clock more than
//! [`STEP_OVER`] away from the host's is stepped to it (a VM frozen while
//! the host slept wakes behind); the resolver file becomes the guest's
//! `/etc/resolv.conf`, which new containers copy.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    accept, bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, VsockAddr,
};

/// PID 1 listens this far above the agent's vsock port (the ports just
/// above the agent's are the agent's own relays).
pub const PORT_OFFSET: u32 = 16;

/// The guest clock is stepped when it is further than this from the host's.
pub const STEP_OVER: Duration = Duration::from_millis(200);

/// The first line of a resolver file made from the host's.
pub const HEADER: &str = "# the host's resolver, kept in step by berth\n";

/// Where the guest's resolver configuration lives.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Serves the host sync on vsock `port` for the life of the VM (in a
/// thread of its own). `dns` is the VMM's DNS server, used when the host
/// names none the guest can reach; without one (no network) resolver
/// updates are ignored.
pub fn serve(port: u32, dns: Option<Ipv4Addr>) {
    let listener = (0..50).find_map(|_| match listen_on(port) {
        Ok(l) => Some(l),
        Err(_) => {
            std::thread::sleep(Duration::from_millis(100));
            None
        }
    });
    let Some(listener) = listener else {
        eprintln!("berth-init: cannot listen on vsock port {port}: the clock and DNS will not follow the host");
        return;
    };
    loop {
        let Ok(fd) = accept(listener.as_raw_fd()) else {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        };
        // SAFETY: accept returned a new descriptor that nothing else owns.
        let conn = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        for line in BufReader::new(conn).lines() {
            let Ok(line) = line else { break };
            apply(&line, dns);
        }
    }
}

fn listen_on(port: u32) -> nix::Result<OwnedFd> {
    let fd = socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(fd.as_raw_fd(), &VsockAddr::new(libc::VMADDR_CID_ANY, port))?;
    listen(&fd, Backlog::new(4)?)?;
    Ok(fd)
}

/// Applies one line from the host.
fn apply(line: &str, dns: Option<Ipv4Addr>) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
        return;
    };
    if let Some(t) = v["time"].as_f64() {
        if let Some(off) = step_clock(t) {
            eprintln!("berth-init: the clock was {off:+.3} s off the host's; set");
        }
    }
    if let (Some(text), Some(dns)) = (v["resolv"].as_str(), dns) {
        let new = resolver_config(text, dns);
        if std::fs::read_to_string(RESOLV_CONF).ok().as_deref() != Some(new.as_str()) {
            let tmp = format!("{RESOLV_CONF}.berth");
            if std::fs::write(&tmp, &new).is_ok() && std::fs::rename(&tmp, RESOLV_CONF).is_ok() {
                eprintln!("berth-init: the resolver follows the host's");
            }
        }
    }
}

/// Steps the clock to `host` (seconds since the epoch) when it is more than
/// [`STEP_OVER`] away; returns by how much the guest was off.
fn step_clock(host: f64) -> Option<f64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let off = now - host;
    if off.abs() <= STEP_OVER.as_secs_f64() || !host.is_finite() || host <= 0.0 {
        return None;
    }
    let tv = libc::timespec {
        tv_sec: host.trunc() as libc::time_t,
        tv_nsec: (host.fract() * 1e9) as libc::c_long,
    };
    // SAFETY: clock_settime reads a valid timespec.
    (unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &tv) } == 0).then_some(off)
}

/// The guest's resolver file made from the host's: the host's name servers
/// the guest can reach through the VMM's NAT (IPv4, not loopback), else
/// the VMM's own DNS server `dns` (which asks the host's resolver), and
/// the host's `search`, `domain` and `options` lines.
pub fn resolver_config(host: &str, dns: Ipv4Addr) -> String {
    let mut servers = Vec::new();
    let mut rest = Vec::new();
    for line in host.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                if let Some(IpAddr::V4(ip)) = words.next().and_then(|w| w.parse().ok()) {
                    if !ip.is_loopback() && !ip.is_unspecified() && !servers.contains(&ip) {
                        servers.push(ip);
                    }
                }
            }
            Some("search" | "domain" | "options") => rest.push(line.to_string()),
            _ => {}
        }
    }
    if servers.is_empty() {
        servers.push(dns);
    }
    let mut out = String::from(HEADER);
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    for l in rest {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_resolver_becomes_one_the_guest_can_reach() {
        let dns: Ipv4Addr = "10.0.2.3".parse().unwrap();
        let vpn = "# by the VPN\nnameserver 10.8.0.1\nnameserver ::1\nnameserver 127.0.0.53\nsearch corp.example\noptions edns0 trust-ad\n";
        assert_eq!(
            resolver_config(vpn, dns),
            "# the host's resolver, kept in step by berth\nnameserver 10.8.0.1\nsearch corp.example\noptions edns0 trust-ad\n"
        );
        // systemd-resolved's stub on the host: the VMM's DNS asks it.
        let stub = resolver_config("nameserver 127.0.0.53\nsearch lan\n", dns);
        assert!(stub.contains("nameserver 10.0.2.3\n") && stub.contains("search lan\n"));
        assert!(resolver_config("", dns).contains("nameserver 10.0.2.3\n"));
    }

    #[test]
    fn a_clock_close_to_the_hosts_is_left_alone() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert_eq!(step_clock(now + 0.05), None);
        assert_eq!(step_clock(f64::NAN), None);
    }
}
