//! What the VM manager tells PID 1, read from the kernel command line:
//!
//! | parameter | meaning |
//! |---|---|
//! | `berth.port=1024` | the vsock port the agent serves on (PID 1 takes the host's clock and resolver 16 above it, see [`super::host_sync`]) |
//! | `berth.disk=/dev/vda` | the data disk (formatted on first boot) |
//! | `berth.system=/dev/vdb` | the read-only system disk (stage one of the boot mounts it) |
//! | `berth.share=TAG:/abs/path[:ro][:virtiofs]` | a host folder, mounted at the same path (`%20` etc. escape the path) |
//! | `berth.net=10.0.2.15/24,10.0.2.2,10.0.2.3` | the VM NIC's address, gateway and DNS server |
//! | `berth.time=SECONDS` | the host's clock at launch, used when the RTC is behind it |
//! | `berth.insecure=HOST:PORT` | a registry the agent may reach over plain HTTP |
//! | `berth.log=debug` | the agent's log level (`debug` also times each module PID 1 loads) |

use std::net::Ipv4Addr;
use std::path::PathBuf;

/// A host folder to mount.
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    /// The VMM's tag for it.
    pub tag: String,
    /// Where it goes, the same path as on the host.
    pub path: PathBuf,
    /// Mounted read-only.
    pub read_only: bool,
    /// virtiofs rather than 9p.
    pub virtiofs: bool,
}

/// The VM's network settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Net {
    /// The NIC's address.
    pub address: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// The default gateway.
    pub gateway: Ipv4Addr,
    /// The DNS server.
    pub dns: Option<Ipv4Addr>,
}

/// Everything PID 1 reads from `/proc/cmdline`.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The agent's vsock port.
    pub port: u32,
    /// The data disk's device.
    pub disk: Option<PathBuf>,
    /// The system disk's device.
    pub system: Option<PathBuf>,
    /// Host folders.
    pub shares: Vec<Share>,
    /// The NIC, when there is one.
    pub net: Option<Net>,
    /// The host's time at launch (seconds since the epoch).
    pub time: Option<f64>,
    /// Registries reachable over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// The agent's log level, when not the default.
    pub log_level: Option<String>,
}

impl Config {
    /// Whether PID 1 prints how long each kernel module took to load
    /// (`berth.log=debug`).
    pub fn times_modules(&self) -> bool {
        self.log_level.as_deref() == Some("debug")
    }

    /// Parses a kernel command line; unknown words are someone else's.
    pub fn parse(cmdline: &str) -> Config {
        let mut c = Config {
            port: 1024,
            disk: None,
            system: None,
            shares: Vec::new(),
            net: None,
            time: None,
            insecure_registries: Vec::new(),
            log_level: None,
        };
        for word in cmdline.split_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            match key {
                "berth.port" => c.port = value.parse().unwrap_or(c.port),
                "berth.disk" => c.disk = Some(PathBuf::from(value)),
                "berth.system" => c.system = Some(PathBuf::from(value)),
                "berth.share" => c.shares.extend(parse_share(value)),
                "berth.net" => c.net = parse_net(value),
                "berth.time" => c.time = value.parse().ok(),
                "berth.insecure" => c.insecure_registries.push(value.to_string()),
                "berth.log" => c.log_level = Some(value.to_string()),
                _ => {}
            }
        }
        c
    }
}

fn parse_share(value: &str) -> Option<Share> {
    let mut parts = value.split(':');
    let tag = parts.next()?.to_string();
    let path = PathBuf::from(unescape(parts.next()?));
    if tag.is_empty() || !path.is_absolute() {
        return None;
    }
    let flags: Vec<&str> = parts.collect();
    Some(Share {
        tag,
        path,
        read_only: flags.contains(&"ro"),
        virtiofs: flags.contains(&"virtiofs"),
    })
}

fn parse_net(value: &str) -> Option<Net> {
    let mut parts = value.split(',');
    let (addr, prefix) = parts.next()?.split_once('/')?;
    Some(Net {
        address: addr.parse().ok()?,
        prefix: prefix.parse().ok()?,
        gateway: parts.next()?.parse().ok()?,
        dns: parts.next().and_then(|d| d.parse().ok()),
    })
}

/// Undoes `%XX` escapes (the manager escapes spaces, `%` and `:` in paths).
pub fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_managers_parameters() {
        let c = Config::parse(
            "console=ttyS0 berth.port=2000 berth.disk=/dev/vda berth.system=/dev/vdb berth.share=s0:/home/me%20too \
             berth.share=s1:/srv:ro:virtiofs berth.share=bad:relative berth.net=10.0.2.15/24,10.0.2.2,10.0.2.3 \
             berth.time=1700000000.5 berth.insecure=10.0.2.100:5000 quiet",
        );
        assert_eq!(c.port, 2000);
        assert_eq!(c.disk, Some(PathBuf::from("/dev/vda")));
        assert_eq!(c.system, Some(PathBuf::from("/dev/vdb")));
        assert_eq!(c.shares.len(), 2);
        assert_eq!(c.shares[0].path, PathBuf::from("/home/me too"));
        assert!(c.shares[1].read_only && c.shares[1].virtiofs);
        let net = c.net.unwrap();
        assert_eq!(net.prefix, 24);
        assert_eq!(net.dns, Some("10.0.2.3".parse().unwrap()));
        assert_eq!(c.time, Some(1_700_000_000.5));
        assert_eq!(c.insecure_registries, vec!["10.0.2.100:5000"]);
        assert_eq!(Config::parse("").port, 1024);
    }
}
