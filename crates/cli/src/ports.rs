//! Published ports in the CLI: Docker's `-p` syntax, the PORTS column,
//! and `berth port`.

use anyhow::{bail, Context, Result};
use berth_client::types as pb;
use clap::Args;

use crate::Conn;

/// Parses one `-p` value: `[ip:][hostPort:]containerPort[/proto]`, where
/// ports may be equal-length ranges (`8000-8001:80-81`).
pub fn parse_publish(spec: &str) -> Result<Vec<pb::PortBinding>> {
    let bad = |why: &str| {
        anyhow::anyhow!(
            "invalid -p {spec:?}: {why}; write [ip:][hostPort:]containerPort[/tcp|udp], e.g. 127.0.0.1:8080:80"
        )
    };
    let (addr, proto) = spec.rsplit_once('/').unwrap_or((spec, "tcp"));
    if !["tcp", "udp"].contains(&proto) {
        return Err(bad("the protocol is tcp or udp"));
    }
    if addr.starts_with('[') {
        return Err(bad("IPv6 host addresses are not supported yet"));
    }
    let parts: Vec<&str> = addr.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [c] => ("", "", *c),
        [h, c] => ("", *h, *c),
        [ip, h, c] => (*ip, *h, *c),
        _ => return Err(bad("too many ':'")),
    };
    if !ip.is_empty() && ip.parse::<std::net::Ipv4Addr>().is_err() {
        return Err(bad("the host address is not an IPv4 address"));
    }
    let range = |text: &str| -> Result<(u32, u32)> {
        let (a, b) = text.split_once('-').unwrap_or((text, text));
        let n = |t: &str| {
            t.parse::<u32>()
                .ok()
                .filter(|p| (1..=65535).contains(p))
                .ok_or_else(|| bad("ports are numbers from 1 to 65535"))
        };
        let (a, b) = (n(a)?, n(b)?);
        if b < a {
            return Err(bad("a range goes from low to high"));
        }
        Ok((a, b))
    };
    let (c0, c1) = range(container)?;
    let hosts = if host.is_empty() {
        None
    } else {
        Some(range(host)?)
    };
    if let Some((h0, h1)) = hosts {
        if h1 - h0 != c1 - c0 {
            return Err(bad("the host and container ranges differ in length"));
        }
    }
    Ok((c0..=c1)
        .map(|c| pb::PortBinding {
            host_ip: ip.to_string(),
            host_port: hosts.map_or(0, |(h0, _)| h0 + (c - c0)),
            container_port: c,
            protocol: proto.to_string(),
        })
        .collect())
}

/// Docker's PORTS column: `0.0.0.0:8080->80/tcp, 127.0.0.1:5353->53/udp`.
pub fn column(ports: &[pb::PortBinding]) -> String {
    ports
        .iter()
        .map(|p| {
            let ip = if p.host_ip.is_empty() {
                "0.0.0.0"
            } else {
                p.host_ip.as_str()
            };
            format!("{ip}:{}->{}/{}", p.host_port, p.container_port, p.protocol)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `berth port`.
#[derive(Args, Debug)]
pub struct PortArgs {
    /// The container.
    pub container: String,
    /// Only this port (PORT[/PROTO]).
    pub port: Option<String>,
}

/// Lists a container's published ports as Docker does.
pub async fn port(conn: &Conn, a: PortArgs) -> Result<()> {
    let r = crate::containers::inspect_one(conn, &a.container).await?;
    let detail: serde_json::Value =
        serde_json::from_str(&r.json).context("the agent's inspect answer is not JSON")?;
    let ports = detail["NetworkSettings"]["Ports"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let wanted = a.port.as_deref().map(|p| {
        if p.contains('/') {
            p.to_string()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut any = false;
    for (key, bindings) in &ports {
        if wanted.as_ref().is_some_and(|w| w != key) {
            continue;
        }
        for b in bindings.as_array().into_iter().flatten() {
            any = true;
            let (ip, port) = (
                b["HostIp"].as_str().unwrap_or(""),
                b["HostPort"].as_str().unwrap_or(""),
            );
            match &wanted {
                Some(_) => println!("{ip}:{port}"),
                None => println!("{key} -> {ip}:{port}"),
            }
        }
    }
    if let (Some(w), false) = (&wanted, any) {
        bail!("no public port '{w}' published for {}", a.container);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs_parse_as_docker_reads_them() {
        let p = parse_publish("127.0.0.1:8080:80").unwrap();
        assert_eq!(
            (p[0].host_ip.as_str(), p[0].host_port, p[0].container_port),
            ("127.0.0.1", 8080, 80)
        );
        let p = parse_publish("53/udp").unwrap();
        assert_eq!((p[0].host_port, p[0].protocol.as_str()), (0, "udp"));
        let p = parse_publish("8000-8001:80-81").unwrap();
        assert_eq!(
            p.iter()
                .map(|b| (b.host_port, b.container_port))
                .collect::<Vec<_>>(),
            [(8000, 80), (8001, 81)]
        );
        for bad in [
            "",
            "x",
            "80/sctp",
            "70000",
            "1:2:3:4",
            "8000-8002:80-81",
            "nothost:1:2",
        ] {
            assert!(parse_publish(bad).is_err(), "{bad}");
        }
    }
}
