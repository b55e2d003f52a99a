//! Berth's firewall: one nftables table, `ip berth`, holding the NAT for
//! outbound traffic, published ports, and the isolation of networks.
//!
//! The table is rendered whole from the engine's state and replaced in one
//! nftables transaction by Debian's `nft` (delete and re-create, atomic),
//! so it is never half-applied, a crash is mended by the next render, and
//! removing Berth's rules is deleting one table. Rules are written as nft
//! text rather than through a netlink crate: the Rust nftables crates
//! either shell out to `nft` all the same (`nftables`, JSON) or are young
//! and incomplete for NAT expressions, and the text is what an
//! administrator reads with `nft list table ip berth`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;

use crate::error::{Error, Result};

/// The table's name (family `ip`).
pub const TABLE: &str = "berth";

/// One bridge network that has containers.
#[derive(Debug, Clone, PartialEq)]
pub struct Bridge {
    /// The bridge link's name.
    pub name: String,
    /// Its subnet.
    pub subnet: Ipv4Net,
    /// No traffic in or out of the network.
    pub internal: bool,
}

/// One published port.
#[derive(Debug, Clone, PartialEq)]
pub struct Forward {
    /// The host address it is published on; `None` for all of them.
    pub host_ip: Option<Ipv4Addr>,
    /// The host port.
    pub host_port: u16,
    /// "tcp" or "udp".
    pub protocol: String,
    /// The container's address.
    pub ip: Ipv4Addr,
    /// The container's port.
    pub port: u16,
}

/// The table's text for these bridges and ports (empty when there is
/// nothing to do).
pub fn render(bridges: &[Bridge], forwards: &[Forward]) -> String {
    if bridges.is_empty() && forwards.is_empty() {
        return String::new();
    }
    let mut dnat = String::new();
    for f in forwards {
        let to = match f.host_ip {
            Some(ip) if !ip.is_unspecified() => format!("ip daddr {ip}"),
            _ => "fib daddr type local".into(),
        };
        let _ = writeln!(
            dnat,
            "    {to} {p} dport {} dnat to {}:{}",
            f.host_port,
            f.ip,
            f.port,
            p = f.protocol
        );
    }
    let mut post = String::new();
    let mut forward = String::new();
    for b in bridges {
        let (n, s) = (&b.name, &b.subnet);
        // Clients on the host's loopback reach published ports (the
        // bridge has route_localnet), and containers reach their own
        // network's published ports through the host (hairpin).
        let _ = writeln!(post, "    ip saddr 127.0.0.0/8 oifname \"{n}\" masquerade");
        let _ = writeln!(
            post,
            "    oifname \"{n}\" ip saddr {s} ct status dnat masquerade"
        );
        if b.internal {
            let _ = writeln!(forward, "    iifname \"{n}\" oifname != \"{n}\" drop");
            let _ = writeln!(forward, "    oifname \"{n}\" iifname != \"{n}\" drop");
        } else {
            let _ = writeln!(post, "    ip saddr {s} oifname != \"{n}\" masquerade");
        }
        let others: Vec<String> = bridges
            .iter()
            .filter(|o| o.name != *n)
            .map(|o| format!("\"{}\"", o.name))
            .collect();
        if !others.is_empty() {
            let _ = writeln!(
                forward,
                "    iifname \"{n}\" oifname {{ {} }} drop",
                others.join(", ")
            );
        }
    }
    format!(
        "table ip {TABLE} {{\n  chain prerouting {{\n    type nat hook prerouting priority dstnat; policy accept;\n{dnat}  }}\n  chain output {{\n    type nat hook output priority -100; policy accept;\n{dnat}  }}\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n{post}  }}\n  chain forward {{\n    type filter hook forward priority filter; policy accept;\n{forward}  }}\n}}\n"
    )
}

/// Replaces Berth's table with `rules` (removes it when empty), in one
/// transaction.
pub fn apply(rules: &str) -> Result<()> {
    // Declaring the table first makes the delete valid when it is absent.
    let script = format!("table ip {TABLE} {{}}\ndelete table ip {TABLE}\n{rules}");
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::FailedPrecondition(format!(
                "nft cannot be run ({e}): install Debian's nftables package for container networks"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io("running nft", e))?;
    if !out.status.success() {
        return Err(Error::Internal(format!(
            "the firewall rules were refused by nft: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_cover_nat_ports_and_isolation() {
        let bridges = [
            Bridge {
                name: "berth0".into(),
                subnet: "10.213.0.0/16".parse().unwrap(),
                internal: false,
            },
            Bridge {
                name: "bth-abc".into(),
                subnet: "10.214.0.0/24".parse().unwrap(),
                internal: true,
            },
        ];
        let fwd = [Forward {
            host_ip: Some(Ipv4Addr::LOCALHOST),
            host_port: 8080,
            protocol: "tcp".into(),
            ip: Ipv4Addr::new(10, 213, 0, 2),
            port: 80,
        }];
        let text = render(&bridges, &fwd);
        assert!(text.contains("ip daddr 127.0.0.1 tcp dport 8080 dnat to 10.213.0.2:80"));
        assert!(text.contains("ip saddr 10.213.0.0/16 oifname != \"berth0\" masquerade"));
        assert!(!text.contains("ip saddr 10.214.0.0/24 oifname != \"bth-abc\" masquerade"));
        assert!(text.contains("iifname \"bth-abc\" oifname != \"bth-abc\" drop"));
        assert!(text.contains("iifname \"berth0\" oifname { \"bth-abc\" } drop"));
        assert!(render(&[], &[]).is_empty());
    }
}
