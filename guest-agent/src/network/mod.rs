//! Container networks: Docker's `bridge`, `host` and `none`, and
//! user-defined bridge networks whose containers find each other by name.
//!
//! Each bridge network is a Linux bridge (made when its first container
//! starts, removed when its last one stops), each container on it a veth
//! pair with an address from the network's stored IPAM, and the host's
//! side is one nftables table (see [`firewall`]). Links are made through
//! rtnetlink, not Debian's CNI plugins: the plugins are one exec per
//! container and network (each re-reading its config and taking a file
//! lock), and they would leave Berth's addresses in the plugins' own
//! store, apart from the records it reconciles after a crash.
//!
//! Stored state: `<root>/networks/<id>.json` per network (its endpoints
//! are the running containers on it), `<root>/netns/<id>` pins each
//! running container's network namespace.

pub mod dns;
pub mod firewall;
pub mod ipam;
pub mod ports;
pub mod query;
mod store;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

pub use ports::Published;
pub use store::{Endpoint, NetworkRecord, NewNetwork, NETWORK_RECORD_VERSION};

use crate::error::{Error, Result};
use crate::events::Events;
use crate::util::links::Netlink;
use crate::util::netns;

/// The default network's name and bridge.
pub const DEFAULT: &str = "bridge";
const DEFAULT_BRIDGE: &str = "berth0";
/// Host-side veth names start with this.
const VETH_PREFIX: &str = "vb";

/// One network a container joins when it starts.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Join {
    /// The network's id.
    pub network: String,
    /// Extra names the container answers to on it.
    pub aliases: Vec<String>,
    /// A fixed address (`--ip`).
    pub ip: Option<Ipv4Addr>,
}

/// What a container brings to its networks.
#[derive(Debug, Clone, Default)]
pub struct Member {
    /// The container's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its `--dns` servers.
    pub dns: Vec<String>,
}

/// The network engine.
pub struct Networks {
    store: store::Store,
    ns_dir: PathBuf,
    /// Serializes changes to links, addresses and the firewall.
    busy: tokio::sync::Mutex<()>,
    dns: Mutex<BTreeMap<String, JoinHandle<()>>>,
    upstreams: Mutex<BTreeMap<String, Vec<SocketAddr>>>,
    ports: ports::Reservations,
    events: Events,
    /// The default bridge once it is up: it stays up while the agent
    /// runs (as Docker's `docker0`), so a container's start and exit do
    /// not create and delete it, nor change the firewall.
    default_up: std::sync::atomic::AtomicBool,
    /// The rules `nft` was last given; the same rules are not given again.
    last_rules: Mutex<Option<String>>,
}

impl Networks {
    /// Opens the networks under `root` (making the default ones).
    pub fn open(root: &Path, events: Events) -> Result<Arc<Networks>> {
        let ns_dir = root.join("netns");
        std::fs::create_dir_all(&ns_dir)
            .map_err(|e| Error::io(format!("creating {}", ns_dir.display()), e))?;
        Ok(Arc::new(Networks {
            store: store::Store::open(&root.join("networks"), DEFAULT_BRIDGE)?,
            ns_dir,
            busy: tokio::sync::Mutex::new(()),
            dns: Mutex::default(),
            upstreams: Mutex::default(),
            ports: ports::Reservations::default(),
            events,
            default_up: Default::default(),
            last_rules: Mutex::default(),
        }))
    }

    /// Creates a user-defined network.
    pub fn create(&self, req: NewNetwork) -> Result<NetworkRecord> {
        let rec = self.store.create(req)?;
        self.events.emit(
            "network",
            "create",
            &rec.id,
            &[("name", &rec.name), ("type", &rec.driver)],
        );
        Ok(rec)
    }

    /// Every network, by name.
    pub fn list(&self) -> Vec<NetworkRecord> {
        self.store.all()
    }

    /// A network by id, unique id prefix, or name.
    pub fn find(&self, input: &str) -> Result<NetworkRecord> {
        self.store.find(input)
    }

    /// Removes a user-defined network that has no running containers.
    pub fn remove(&self, input: &str) -> Result<String> {
        let rec = self.store.find(input)?;
        if rec.builtin() {
            return Err(Error::FailedPrecondition(format!(
                "{} is a pre-defined network and cannot be removed",
                rec.name
            )));
        }
        if !rec.endpoints.is_empty() {
            return Err(Error::Conflict(format!(
                "network {} has active endpoints: stop or disconnect its containers first",
                rec.name
            )));
        }
        self.store.delete(&rec.id)?;
        self.events.emit(
            "network",
            "destroy",
            &rec.id,
            &[("name", &rec.name), ("type", &rec.driver)],
        );
        Ok(rec.id)
    }

    /// The path pinning a container's network namespace.
    pub fn ns_path(&self, id: &str) -> PathBuf {
        self.ns_dir.join(id)
    }

    /// Gives a starting container its namespace and joins it to `joins`
    /// (the first one carries the default route).
    pub async fn attach(self: &Arc<Self>, m: &Member, joins: &[Join]) -> Result<()> {
        let t = std::time::Instant::now();
        let ns = self.ns_path(&m.id);
        netns::remove(&ns);
        netns::create(&ns)?;
        tracing::debug!("attach {}: namespace made in {:?}", m.id, t.elapsed());
        let done = async {
            Netlink::inside(&ns)?.lo_up().await?;
            tracing::debug!("attach {}: lo up at {:?}", m.id, t.elapsed());
            for (i, j) in joins.iter().enumerate() {
                self.join(m, j, i).await?;
            }
            let socket = dns::bind(&ns)?;
            tracing::debug!("attach {}: DNS bound at {:?}", m.id, t.elapsed());
            self.set_upstreams(m);
            let task = dns::serve(socket, m.id.clone(), self.clone());
            if let Some(old) = self.dns_tasks().insert(m.id.clone(), task) {
                old.abort();
            }
            Ok(())
        };
        if let Err(e) = done.await {
            self.detach(&m.id).await;
            return Err(e);
        }
        Ok(())
    }

    /// Joins a running container (namespace made) to one more network.
    pub async fn connect(&self, m: &Member, j: &Join) -> Result<()> {
        // The lowest free interface number: after a disconnect, the count
        // of endpoints would name a veth and an ethN still in use.
        let used: Vec<String> = self
            .endpoints_of(&m.id)
            .into_iter()
            .map(|(_, e)| e.interface)
            .collect();
        let index = (0..)
            .find(|i| !used.contains(&format!("eth{i}")))
            .unwrap_or_default();
        self.join(m, j, index).await
    }

    async fn join(&self, m: &Member, j: &Join, index: usize) -> Result<()> {
        let _busy = self.busy.lock().await;
        let net = self.store.find(&j.network)?;
        let (Some(subnet), Some(gateway)) = (net.subnet(), net.gateway()) else {
            return Err(Error::InvalidArgument(format!(
                "a container cannot join {} as well as other networks",
                net.name
            )));
        };
        if net.endpoints.contains_key(&m.id) {
            return Err(Error::AlreadyExists(format!(
                "container {} is already on network {}",
                m.name, net.name
            )));
        }
        let used: Vec<Ipv4Addr> = net.endpoints.values().map(|e| e.ip).collect();
        let ip = match j.ip {
            Some(want) => ipam::check_wanted(&subnet, gateway, &used, want)?,
            None => ipam::next_free(&subnet, gateway, &used)?,
        };
        let t = std::time::Instant::now();
        let host = Netlink::host()?;
        let first_bridge = self.active_bridges().is_empty();
        host.ensure_bridge(&net.bridge, &subnet, gateway).await?;
        if net.name == DEFAULT {
            self.default_up
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        tracing::debug!("join {}: bridge ready in {:?}", m.id, t.elapsed());
        set_sysctl(&format!("net/ipv4/conf/{}/route_localnet", net.bridge), "1");
        if first_bridge {
            self.store.enable_forwarding();
        }
        let short = &m.id[..8];
        let veth = format!("{VETH_PREFIX}{short}{index:x}");
        let peer = format!("vp{short}{index:x}");
        let ns = self.ns_path(&m.id);
        if host.add_veth(&veth, &peer, &net.bridge, &ns).await.is_err() {
            // The same container's last pair, which the kernel frees with
            // its old namespace, may not be gone yet: remove it and retry.
            host.delete(&veth).await;
            host.add_veth(&veth, &peer, &net.bridge, &ns).await?;
        }
        tracing::debug!("join {}: veth added at {:?}", m.id, t.elapsed());
        let mac = ipam::mac_of(ip);
        let inside = Netlink::inside(&ns)?;
        let interface = format!("eth{index}");
        let route = (index == 0 && !net.internal).then_some(gateway);
        if let Err(e) = inside
            .configure(&peer, &interface, mac, ip, subnet.prefix_len(), route)
            .await
        {
            host.delete(&veth).await;
            return Err(e);
        }
        let mut aliases = j.aliases.clone();
        aliases.retain(|a| !a.is_empty());
        let ep = Endpoint {
            container: m.id.clone(),
            name: m.name.clone(),
            ip,
            mac: mac
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
            veth,
            interface,
            aliases,
        };
        tracing::debug!("join {}: addresses set at {:?}", m.id, t.elapsed());
        self.store.set_endpoint_of(&net.id, &m.id, Some(ep))?;
        tracing::debug!("join {}: endpoint stored at {:?}", m.id, t.elapsed());
        self.refresh_firewall()?;
        tracing::debug!("join {}: firewall at {:?}", m.id, t.elapsed());
        self.events.emit(
            "network",
            "connect",
            &net.id,
            &[
                ("container", &m.id),
                ("name", &net.name),
                ("type", &net.driver),
            ],
        );
        Ok(())
    }

    /// Takes a container off one network (while it runs).
    pub async fn disconnect(&self, id: &str, network: &str) -> Result<()> {
        let _busy = self.busy.lock().await;
        let net = self.store.find(network)?;
        let Some(ep) = net.endpoints.get(id).cloned() else {
            return Err(Error::FailedPrecondition(format!(
                "container {id} is not connected to network {}",
                net.name
            )));
        };
        self.drop_endpoint(&net, &ep, false).await;
        self.refresh_firewall()
    }

    /// Takes an endpoint off its network. With `keep_veth` (the
    /// container's namespace is going away, which frees the pair) the
    /// veth is left to the kernel: deleting it waits for the network
    /// stack to settle, tens of milliseconds a container.
    async fn drop_endpoint(&self, net: &NetworkRecord, ep: &Endpoint, keep_veth: bool) {
        if let Ok(host) = Netlink::host() {
            if !keep_veth {
                host.delete(&ep.veth).await;
            }
            let _ = self.store.set_endpoint_of(&net.id, &ep.container, None);
            if net.name != DEFAULT
                && self
                    .store
                    .find(&net.id)
                    .is_ok_and(|n| n.endpoints.is_empty())
            {
                host.delete(&net.bridge).await;
            }
        }
        self.events.emit(
            "network",
            "disconnect",
            &net.id,
            &[
                ("container", &ep.container),
                ("name", &net.name),
                ("type", &net.driver),
            ],
        );
    }

    /// Takes a stopped container off every network and removes its
    /// namespace, ports and name server.
    pub async fn detach(&self, id: &str) {
        let served = self.dns_tasks().remove(id).map(|t| t.abort()).is_some();
        self.upstreams_map().remove(id);
        let published = self.ports.release(id);
        let ns = self.ns_path(id);
        if !served && !published && !ns.exists() && self.endpoints_of(id).is_empty() {
            // Never networked (--network none or host): nothing to undo.
            return;
        }
        let t = std::time::Instant::now();
        {
            let _busy = self.busy.lock().await;
            for (net, ep) in self.endpoints_of(id) {
                self.drop_endpoint(&net, &ep, true).await;
            }
            tracing::debug!("detach {id}: endpoints dropped in {:?}", t.elapsed());
            if self.active_bridges().is_empty() {
                self.store.restore_forwarding();
            }
            if let Err(e) = self.refresh_firewall() {
                tracing::warn!("{e}");
            }
            tracing::debug!("detach {id}: firewall at {:?}", t.elapsed());
        }
        netns::remove(&ns);
        tracing::debug!("detach {id}: namespace removed at {:?}", t.elapsed());
    }

    /// Publishes a running container's ports: reserves each host port
    /// (choosing free ones for port 0) and forwards it to `ip`.
    pub fn publish(&self, id: &str, ip: Ipv4Addr, wanted: &[Published]) -> Result<Vec<Published>> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let got = self.ports.reserve(id, ip, wanted)?;
        if let Err(e) = self.refresh_firewall() {
            self.ports.release(id);
            return Err(e);
        }
        Ok(got)
    }

    /// Every published port of every container.
    pub fn published(&self) -> Vec<(String, Published)> {
        self.ports.all()
    }

    /// The networks container `id` is on, with its endpoint on each, in
    /// the order it joined them.
    pub fn endpoints_of(&self, id: &str) -> Vec<(NetworkRecord, Endpoint)> {
        let mut out: Vec<(NetworkRecord, Endpoint)> = self
            .store
            .all()
            .into_iter()
            .filter_map(|n| n.endpoints.get(id).cloned().map(|e| (n, e)))
            .collect();
        out.sort_by(|a, b| a.1.interface.cmp(&b.1.interface));
        out
    }

    /// After an agent start: drops what belongs to containers that are no
    /// longer running, and serves the running ones again (`running` maps
    /// their ids to their members and published ports).
    pub async fn reconcile(self: &Arc<Self>, running: &BTreeMap<String, (Member, Vec<Published>)>) {
        for net in self.store.all() {
            for ep in net.endpoints.values() {
                if !running.contains_key(&ep.container) {
                    let _busy = self.busy.lock().await;
                    self.drop_endpoint(&net, ep, false).await;
                }
            }
        }
        if let Ok(host) = Netlink::host() {
            let active = self.store.active_bridges();
            let veths: Vec<String> = self
                .store
                .all()
                .iter()
                .flat_map(|n| {
                    n.endpoints
                        .values()
                        .map(|e| e.veth.clone())
                        .collect::<Vec<_>>()
                })
                .collect();
            let ours: Vec<String> = self.store.all().iter().map(|n| n.bridge.clone()).collect();
            for name in host.names().await.unwrap_or_default() {
                let stale_veth = name.starts_with(VETH_PREFIX) && !veths.contains(&name);
                let stale_bridge = ours.contains(&name) && !active.contains(&name);
                if stale_veth || stale_bridge {
                    host.delete(&name).await;
                }
            }
            if active.is_empty() {
                self.store.restore_forwarding();
            }
        }
        if let Ok(rd) = std::fs::read_dir(&self.ns_dir) {
            for ent in rd.flatten() {
                let id = ent.file_name().to_string_lossy().to_string();
                if !running.contains_key(&id) {
                    netns::remove(&ent.path());
                }
            }
        }
        for (id, (member, published)) in running {
            let ns = self.ns_path(id);
            if !ns.exists() {
                continue;
            }
            self.set_upstreams(member);
            match dns::bind(&ns) {
                Ok(socket) => {
                    let task = dns::serve(socket, id.clone(), self.clone());
                    self.dns_tasks().insert(id.clone(), task);
                }
                Err(e) => tracing::warn!("the name server of {id} cannot be served again: {e}"),
            }
            if let Some((_, ep)) = self.endpoints_of(id).first() {
                if let Err(e) = self.ports.reserve(id, ep.ip, published) {
                    tracing::warn!("the ports of {id} cannot be published again: {e}");
                }
            }
        }
        if let Err(e) = self.refresh_firewall() {
            tracing::warn!("{e}");
        }
    }

    /// Renders and applies the firewall from the current state.
    /// Bridges with containers on them, and the default one once up.
    fn active_bridges(&self) -> Vec<String> {
        let mut active = self.store.active_bridges();
        if self.default_up.load(std::sync::atomic::Ordering::Relaxed)
            && !active.iter().any(|b| b == DEFAULT_BRIDGE)
        {
            active.push(DEFAULT_BRIDGE.to_string());
        }
        active
    }

    fn refresh_firewall(&self) -> Result<()> {
        let active = self.active_bridges();
        let bridges: Vec<firewall::Bridge> = self
            .store
            .all()
            .into_iter()
            .filter(|n| active.contains(&n.bridge))
            .filter_map(|n| {
                Some(firewall::Bridge {
                    name: n.bridge.clone(),
                    subnet: n.subnet()?,
                    internal: n.internal,
                })
            })
            .collect();
        let forwards = self.ports.forwards();
        let rules = firewall::render(&bridges, &forwards);
        let mut last = self.last_rules.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_deref() == Some(rules.as_str()) {
            return Ok(());
        }
        *last = None;
        firewall::apply(&rules)?;
        *last = Some(rules);
        Ok(())
    }

    fn set_upstreams(&self, m: &Member) {
        let servers = if m.dns.is_empty() {
            dns::nameservers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
        } else {
            m.dns
                .iter()
                .filter_map(|d| d.parse::<std::net::IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
                .collect()
        };
        self.upstreams_map().insert(m.id.clone(), servers);
    }

    fn dns_tasks(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, JoinHandle<()>>> {
        self.dns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn upstreams_map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<SocketAddr>>> {
        self.upstreams.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl dns::Resolve for Networks {
    fn lookup(&self, id: &str, name: &str) -> Option<Ipv4Addr> {
        let mine = self.endpoints_of(id);
        if name == "host.docker.internal" || name == "gateway.docker.internal" {
            return mine.first().and_then(|(n, _)| n.gateway());
        }
        // As Docker: only user-defined networks resolve container names.
        mine.iter()
            .filter(|(n, _)| n.name != DEFAULT)
            .flat_map(|(n, _)| n.endpoints.values())
            .find(|e| e.answers_to(name))
            .map(|e| e.ip)
    }

    fn upstreams(&self, id: &str) -> Vec<SocketAddr> {
        self.upstreams_map().get(id).cloned().unwrap_or_default()
    }
}

/// Writes a sysctl under /proc/sys (best effort).
fn set_sysctl(key: &str, value: &str) {
    let _ = std::fs::write(Path::new("/proc/sys").join(key), value);
}
