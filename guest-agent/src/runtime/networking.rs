//! A container's side of networking: the networks it joins (chosen at
//! create, changed by connect and disconnect), and while it runs its
//! namespace, addresses, managed `/etc/hosts` and `/etc/resolv.conf`, and
//! published ports (see [`crate::network`] for the host's side).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::config::ContainerConfig;
use super::{Containers, Record};
use crate::error::{Error, Result};
use crate::network::{dns, Join, Member, Published, DEFAULT};

impl Containers {
    /// The networks a new container joins, from `--network` and
    /// `--network-alias`; and warnings for flags that do nothing there.
    pub(super) fn joins_for(&self, config: &ContainerConfig) -> Result<(Vec<Join>, Vec<String>)> {
        let mode = if config.network.is_empty() {
            DEFAULT
        } else {
            config.network.as_str()
        };
        let mut warnings = Vec::new();
        let publishes = !config.ports.is_empty() || config.publish_all;
        if mode.starts_with("container:") {
            return Err(Error::Unimplemented(
                "--network container:NAME is not built yet: use a user-defined network so the containers reach each other by name".into(),
            ));
        }
        let net = self.networks.find(mode)?;
        if net.driver != "bridge" {
            if publishes && net.driver == "host" {
                warnings.push("Published ports are discarded when using host network mode".into());
            }
            return Ok((Vec::new(), warnings));
        }
        if net.name == DEFAULT && !config.network_aliases.is_empty() {
            return Err(Error::InvalidArgument(
                "network-scoped aliases are supported only for containers in user-defined networks: create one with `berth network create`".into(),
            ));
        }
        for p in &config.ports {
            if p.host_port > 65535 || p.container_port > 65535 {
                return Err(Error::InvalidArgument(format!(
                    "invalid port {}:{}: ports go from 1 to 65535",
                    p.host_port, p.container_port
                )));
            }
            Published::from(p).checked()?;
        }
        Ok((
            vec![Join {
                network: net.id,
                aliases: config.network_aliases.clone(),
                ip: None,
            }],
            warnings,
        ))
    }

    /// Brings up a starting container's networks, managed `/etc` files
    /// and published ports; returns the ports as published.
    pub(super) async fn network_up(
        self: &std::sync::Arc<Self>,
        record: &Record,
    ) -> Result<Vec<Published>> {
        if record.networks.is_empty() {
            return Ok(Vec::new());
        }
        let t = std::time::Instant::now();
        self.networks
            .attach(&member_of(record), &record.networks)
            .await?;
        tracing::debug!("network up for {} in {:?}", record.id, t.elapsed());
        let done = (|| {
            let eps = self.networks.endpoints_of(&record.id);
            let Some((_, first)) = eps.first() else {
                return Ok(Vec::new());
            };
            self.write_net_files(record, &eps)?;
            let wanted = self.wanted_ports(record)?;
            self.networks.publish(&record.id, first.ip, &wanted)
        })();
        if done.is_err() {
            self.networks.detach(&record.id).await;
        }
        done
    }

    /// Takes a stopped container off its networks.
    pub(super) async fn network_down(&self, id: &str) {
        self.networks.detach(id).await;
    }

    /// What `reconcile` needs of each running container.
    pub(super) fn running_members(&self) -> BTreeMap<String, (Member, Vec<Published>)> {
        self.all()
            .iter()
            .map(|e| e.record())
            .filter(|r| r.state.is_running())
            .map(|r| (r.id.clone(), (member_of(&r), r.state.ports.clone())))
            .collect()
    }

    /// `network connect`: joins a container to one more network (at once
    /// when it runs, at its next start otherwise).
    pub async fn connect(
        &self,
        container: &str,
        network: &str,
        aliases: Vec<String>,
        ip: &str,
    ) -> Result<()> {
        let entry = self.find(container)?;
        let _busy = entry.busy.lock().await;
        let record = entry.record();
        let net = self.networks.find(network)?;
        // The container's own mode, not what it joins now: one that left
        // its only network (compose does that before joining its project's)
        // can join another.
        let mode = if record.config.network.is_empty() {
            DEFAULT
        } else {
            record.config.network.as_str()
        };
        let bridged = !mode.starts_with("container:")
            && self
                .networks
                .find(mode)
                .map(|n| n.driver == "bridge")
                .unwrap_or(true);
        if net.driver != "bridge" || !bridged {
            return Err(Error::FailedPrecondition(format!(
                "container {} cannot join {}: a container on host or none networking, or joining them, stays on that alone",
                record.name, net.name
            )));
        }
        if record.networks.iter().any(|j| j.network == net.id) {
            return Err(Error::AlreadyExists(format!(
                "container {} is already connected to network {}",
                record.name, net.name
            )));
        }
        let ip = match ip {
            "" => None,
            text => Some(text.parse::<Ipv4Addr>().map_err(|_| {
                Error::InvalidArgument(format!("invalid address {text:?}: write an IPv4 address"))
            })?),
        };
        let join = Join {
            network: net.id.clone(),
            aliases,
            ip,
        };
        if record.state.is_running() {
            if !self.networks.ns_path(&record.id).exists() {
                return Err(Error::FailedPrecondition(format!(
                    "container {} was started without a network, so it cannot join {} while it runs: stop it, connect it, and start it again",
                    record.name, net.name
                )));
            }
            self.networks.connect(&member_of(&record), &join).await?;
        }
        let record = self.update(&entry, |r| r.networks.push(join))?;
        if record.state.is_running() {
            self.write_net_files(&record, &self.networks.endpoints_of(&record.id))?;
        }
        Ok(())
    }

    /// `network disconnect`.
    pub async fn disconnect(&self, container: &str, network: &str) -> Result<()> {
        let entry = self.find(container)?;
        let _busy = entry.busy.lock().await;
        let record = entry.record();
        let net = self.networks.find(network)?;
        if !record.networks.iter().any(|j| j.network == net.id) {
            return Err(Error::FailedPrecondition(format!(
                "container {} is not connected to network {}",
                record.name, net.name
            )));
        }
        if record.state.is_running() {
            self.networks.disconnect(&record.id, &net.id).await?;
        }
        self.update(&entry, |r| r.networks.retain(|j| j.network != net.id))?;
        Ok(())
    }

    /// The ids of every network some container joins.
    pub fn networks_in_use(&self) -> std::collections::BTreeSet<String> {
        self.all()
            .iter()
            .flat_map(|e| e.record().networks.into_iter().map(|j| j.network))
            .collect()
    }

    /// Where a connection to port `port` of running container `input`
    /// goes: its address on its first network, or the host's loopback
    /// for `--network host`.
    pub fn port_target(&self, input: &str, port: u16) -> Result<std::net::SocketAddr> {
        let r = self.find(input)?.record();
        if !r.state.is_running() {
            return Err(Error::FailedPrecondition(format!(
                "container {} is not running",
                r.name
            )));
        }
        if let Some((_, ep)) = self.networks.endpoints_of(&r.id).first() {
            return Ok((ep.ip, port).into());
        }
        if r.config.network == "host" {
            return Ok((Ipv4Addr::LOCALHOST, port).into());
        }
        Err(Error::FailedPrecondition(format!(
            "container {} has no network to reach port {port} on",
            r.name
        )))
    }

    /// The ports to publish: `-p`, and with `-P` every port the image
    /// exposes on a free host port.
    fn wanted_ports(&self, record: &Record) -> Result<Vec<Published>> {
        let mut wanted: Vec<Published> = record.config.ports.iter().map(Published::from).collect();
        if record.config.publish_all {
            let image = self.image_config(&record.image_id)?;
            for key in image.exposed_ports.unwrap_or_default().keys() {
                let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
                let Ok(port) = port.parse::<u16>() else {
                    continue;
                };
                if !wanted
                    .iter()
                    .any(|w| w.container_port == port && w.protocol == proto)
                {
                    wanted.push(Published {
                        container_port: port,
                        protocol: proto.to_string(),
                        ..Default::default()
                    });
                }
            }
        }
        Ok(wanted)
    }

    /// Rewrites the container's `hosts` (its addresses, `--add-host`,
    /// `host.docker.internal`) and `resolv.conf` (the embedded name
    /// server) in place, as bind mounts need.
    fn write_net_files(
        &self,
        record: &Record,
        eps: &[(crate::network::NetworkRecord, crate::network::Endpoint)],
    ) -> Result<()> {
        let dir = self.dir_of(&record.id);
        let gateway = eps.first().and_then(|(n, _)| n.gateway());
        let mut hosts = super::create::hosts_file(&record.config, gateway)?;
        if let Some(gw) = gateway {
            hosts.push_str(&format!("{gw}\thost.docker.internal\n"));
        }
        for (_, ep) in eps {
            hosts.push_str(&format!("{}\t{}\n", ep.ip, record.hostname));
        }
        let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let mut resolv = format!("nameserver {}\n", dns::ADDRESS);
        for line in host_resolv.lines() {
            if line.starts_with("search") {
                resolv.push_str(line);
                resolv.push('\n');
            }
        }
        resolv.push_str("options ndots:0\n");
        for (name, text) in [("hosts", hosts), ("resolv.conf", resolv)] {
            std::fs::write(dir.join(name), text)
                .map_err(|e| Error::io(format!("writing the container's {name}"), e))?;
        }
        Ok(())
    }
}

impl Containers {
    /// Docker's `NetworkSettings` for `inspect`: each network with the
    /// container's address on it while it runs, and the published ports.
    pub(super) fn network_settings_json(&self, r: &Record) -> serde_json::Value {
        let eps = self.networks.endpoints_of(&r.id);
        let mut networks = serde_json::Map::new();
        for j in &r.networks {
            let Ok(net) = self.networks.find(&j.network) else {
                continue;
            };
            let ep = eps.iter().find(|(n, _)| n.id == net.id).map(|(_, e)| e);
            let prefix = net.subnet().map_or(0, |s| s.prefix_len());
            let mut aliases = j.aliases.clone();
            if net.name != DEFAULT {
                aliases.push(r.name.clone());
            }
            networks.insert(
                net.name.clone(),
                serde_json::json!({
                    "NetworkID": net.id,
                    "EndpointID": ep.map(|e| e.veth.clone()).unwrap_or_default(),
                    "Gateway": if ep.is_some() { net.gateway.clone() } else { String::new() },
                    "IPAddress": ep.map(|e| e.ip.to_string()).unwrap_or_default(),
                    "IPPrefixLen": if ep.is_some() { prefix } else { 0 },
                    "MacAddress": ep.map(|e| e.mac.clone()).unwrap_or_default(),
                    "Aliases": aliases,
                    "DNSNames": if net.name != DEFAULT { serde_json::json!([r.name, &r.id[..12]]) } else { serde_json::Value::Null },
                    "IPAMConfig": serde_json::Value::Null,
                    "Links": serde_json::Value::Null,
                    "IPv6Gateway": "",
                    "GlobalIPv6Address": "",
                    "GlobalIPv6PrefixLen": 0,
                    "DriverOpts": serde_json::Value::Null,
                }),
            );
        }
        if r.networks.is_empty() {
            let mode = if r.config.network.is_empty() {
                "none"
            } else {
                r.config.network.as_str()
            };
            if let Ok(net) = self.networks.find(mode) {
                networks.insert(
                    net.name.clone(),
                    serde_json::json!({
                        "IPAMConfig": serde_json::Value::Null,
                        "Links": serde_json::Value::Null,
                        "Aliases": serde_json::Value::Null,
                        "NetworkID": net.id,
                        "EndpointID": "",
                        "Gateway": "",
                        "IPAddress": "",
                        "IPPrefixLen": 0,
                        "IPv6Gateway": "",
                        "GlobalIPv6Address": "",
                        "GlobalIPv6PrefixLen": 0,
                        "MacAddress": "",
                        "DriverOpts": serde_json::Value::Null,
                    }),
                );
            }
        }
        let first = eps.first().map(|(n, e)| (n, e));
        let mut ports = serde_json::Map::new();
        for p in &r.state.ports {
            let key = format!("{}/{}", p.container_port, p.protocol);
            let entry = ports.entry(key).or_insert_with(|| serde_json::json!([]));
            if let Some(list) = entry.as_array_mut() {
                list.push(serde_json::json!({
                    "HostIp": if p.host_ip.is_empty() { "0.0.0.0" } else { p.host_ip.as_str() },
                    "HostPort": p.host_port.to_string(),
                }));
            }
        }
        // The default network's endpoint is also shown at the top, as
        // Docker's (deprecated) fields have it.
        let default = first.filter(|(n, _)| n.name == DEFAULT);
        let ns = self.networks.ns_path(&r.id);
        serde_json::json!({
            "Bridge": "",
            "SandboxID": if eps.is_empty() { String::new() } else { ns.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default() },
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports,
            "SandboxKey": if eps.is_empty() { String::new() } else { ns.display().to_string() },
            "SecondaryIPAddresses": serde_json::Value::Null,
            "SecondaryIPv6Addresses": serde_json::Value::Null,
            "EndpointID": default.map(|(_, e)| e.veth.clone()).unwrap_or_default(),
            "Gateway": default.map(|(n, _)| n.gateway.clone()).unwrap_or_default(),
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": default.map(|(_, e)| e.ip.to_string()).unwrap_or_default(),
            "IPPrefixLen": default.and_then(|(n, _)| n.subnet()).map_or(0, |s| s.prefix_len()),
            "IPv6Gateway": "",
            "MacAddress": default.map(|(_, e)| e.mac.clone()).unwrap_or_default(),
            "Networks": networks,
        })
    }
}

/// Docker's `HostConfig.PortBindings` from the requested bindings.
pub(super) fn port_bindings_json(ports: &[super::config::PortBinding]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for p in ports {
        let proto = if p.protocol.is_empty() {
            "tcp"
        } else {
            p.protocol.as_str()
        };
        let entry = out
            .entry(format!("{}/{proto}", p.container_port))
            .or_insert_with(|| serde_json::json!([]));
        if let Some(list) = entry.as_array_mut() {
            list.push(serde_json::json!({
                "HostIp": p.host_ip,
                "HostPort": if p.host_port == 0 { String::new() } else { p.host_port.to_string() },
            }));
        }
    }
    serde_json::Value::Object(out)
}

impl From<&super::config::PortBinding> for Published {
    fn from(p: &super::config::PortBinding) -> Published {
        Published {
            host_ip: p.host_ip.clone(),
            host_port: u16::try_from(p.host_port).unwrap_or(0),
            container_port: u16::try_from(p.container_port).unwrap_or(0),
            protocol: p.protocol.clone(),
        }
    }
}

fn member_of(r: &Record) -> Member {
    Member {
        id: r.id.clone(),
        name: r.name.clone(),
        dns: r.config.dns.clone(),
    }
}
