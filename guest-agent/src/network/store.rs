//! Network records on disk: one JSON file per network, replaced
//! atomically, with its IPAM (the endpoints' addresses) inside.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::ipam;
use crate::error::{Error, Result};
use crate::util::jsonfile::{read_json, write_json_atomic, write_json_durable};

/// The format of network records this agent writes. Version 0 had no
/// `version` field and is otherwise the same; opening the store rewrites
/// such records as version 1.
pub const NETWORK_RECORD_VERSION: u32 = 1;

/// One network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// The record's format ([`NETWORK_RECORD_VERSION`] when written by
    /// this agent).
    #[serde(default)]
    pub version: u32,
    /// 64 hex characters.
    pub id: String,
    /// Its unique name.
    pub name: String,
    /// "bridge", "host" or "null".
    pub driver: String,
    /// When it was made.
    pub created: DateTime<Utc>,
    /// No traffic leaves or enters the network.
    pub internal: bool,
    /// Its subnet (bridge networks).
    pub subnet: String,
    /// Its gateway, the bridge's address (bridge networks).
    pub gateway: String,
    /// The bridge link's name (bridge networks).
    pub bridge: String,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options, kept as given.
    pub options: BTreeMap<String, String>,
    /// Running containers on it, by container id.
    pub endpoints: BTreeMap<String, Endpoint>,
}

impl NetworkRecord {
    /// The subnet of a bridge network.
    pub fn subnet(&self) -> Option<Ipv4Net> {
        self.subnet.parse().ok()
    }

    /// The gateway of a bridge network.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.gateway.parse().ok()
    }

    /// True for `bridge`, `host` and `none`.
    pub fn builtin(&self) -> bool {
        ["bridge", "host", "none"].contains(&self.name.as_str())
    }
}

/// A running container's place on a network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    /// The container's id.
    pub container: String,
    /// The container's name.
    pub name: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Its MAC address.
    pub mac: String,
    /// The host side of its veth pair.
    pub veth: String,
    /// The interface inside the container ("eth0").
    pub interface: String,
    /// Other names it answers to on this network.
    pub aliases: Vec<String>,
}

impl Endpoint {
    /// True when `name` (lowercase) is this container's name, alias or
    /// id (12 characters or more).
    pub fn answers_to(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
            || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
            || (name.len() >= 12 && self.container.starts_with(name))
    }
}

/// A request for a user-defined network.
#[derive(Debug, Clone, Default)]
pub struct NewNetwork {
    /// Its name.
    pub name: String,
    /// "bridge" (or empty).
    pub driver: String,
    /// No traffic in or out.
    pub internal: bool,
    /// A subnet; one is chosen when absent.
    pub subnet: Option<String>,
    /// A gateway; the subnet's first address when absent.
    pub gateway: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options.
    pub options: BTreeMap<String, String>,
}

/// The records, in memory and on disk.
pub struct Store {
    dir: PathBuf,
    table: Mutex<BTreeMap<String, NetworkRecord>>,
}

impl Store {
    /// Loads the records under `dir`, making `bridge`, `host` and `none`
    /// the first time.
    pub fn open(dir: &Path, default_bridge: &str) -> Result<Store> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let mut table = BTreeMap::new();
        for ent in std::fs::read_dir(dir).map_err(|e| Error::io("reading networks", e))? {
            let path = ent.map_err(|e| Error::io("reading networks", e))?.path();
            if path.extension().is_some_and(|x| x == "json") {
                match read_json::<NetworkRecord>(&path) {
                    Ok(r) if r.version > NETWORK_RECORD_VERSION => tracing::warn!(
                        "skipping {}: it was written by a newer agent (format {})",
                        path.display(),
                        r.version
                    ),
                    Ok(r) => {
                        table.insert(r.id.clone(), r);
                    }
                    Err(e) => tracing::warn!("skipping {}: {e}", path.display()),
                }
            }
        }
        // Endpoints come and go with every run: they are kept beside the
        // record (see `set_endpoint_of`); a file there is the newer word.
        let eps_dir = dir.join("endpoints");
        for rec in table.values_mut() {
            if let Ok(eps) = read_json(&eps_dir.join(format!("{}.json", rec.id))) {
                rec.endpoints = eps;
            }
        }
        if let Ok(rd) = std::fs::read_dir(&eps_dir) {
            for e in rd.flatten() {
                let stem = e
                    .path()
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned());
                let known = stem.is_some_and(|s| table.contains_key(&s));
                if !known || e.path().extension().is_some_and(|x| x == "tmp") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let old: Vec<NetworkRecord> = table
            .values()
            .filter(|r| r.version < NETWORK_RECORD_VERSION)
            .cloned()
            .collect();
        let store = Store {
            dir: dir.to_path_buf(),
            table: Mutex::new(table),
        };
        for rec in old {
            // Version 0 differs only in lacking the version.
            store.save(rec)?;
        }
        for (name, driver) in [("bridge", "bridge"), ("host", "host"), ("none", "null")] {
            if store.find(name).is_err() {
                let (subnet, bridge) = match driver {
                    "bridge" => (ipam::DEFAULT_SUBNET.to_string(), default_bridge.to_string()),
                    _ => (String::new(), String::new()),
                };
                let gateway = subnet
                    .parse::<Ipv4Net>()
                    .map(|s| ipam::gateway_of(&s).to_string())
                    .unwrap_or_default();
                store.save(NetworkRecord {
                    version: NETWORK_RECORD_VERSION,
                    id: crate::digest::random_id(),
                    name: name.into(),
                    driver: driver.into(),
                    created: Utc::now(),
                    internal: false,
                    subnet,
                    gateway,
                    bridge,
                    labels: BTreeMap::new(),
                    options: BTreeMap::new(),
                    endpoints: BTreeMap::new(),
                })?;
            }
        }
        Ok(store)
    }

    fn table(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, NetworkRecord>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, mut rec: NetworkRecord) -> Result<()> {
        rec.version = NETWORK_RECORD_VERSION;
        write_json_durable(&self.dir.join(format!("{}.json", rec.id)), &rec)
            .map_err(|e| Error::io("saving a network", e))?;
        self.table().insert(rec.id.clone(), rec);
        Ok(())
    }

    /// Makes a user-defined bridge network.
    pub fn create(&self, req: NewNetwork) -> Result<NetworkRecord> {
        crate::util::names::is_valid_name(&req.name).then_some(()).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "invalid network name {:?}: use letters, digits, _ . and -, starting with a letter or digit",
                req.name
            ))
        })?;
        if !["", "bridge"].contains(&req.driver.as_str()) {
            return Err(Error::InvalidArgument(format!(
                "the network driver {:?} is not available: Berth makes bridge networks",
                req.driver
            )));
        }
        if self.find(&req.name).is_ok_and(|n| n.name == req.name) {
            return Err(Error::AlreadyExists(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let taken: Vec<Ipv4Net> = self.all().iter().filter_map(|n| n.subnet()).collect();
        let subnet = match &req.subnet {
            Some(s) => {
                let s = ipam::parse_subnet(s)?;
                if let Some(other) = self
                    .all()
                    .into_iter()
                    .find(|n| n.subnet().is_some_and(|t| ipam::overlaps(&s, &t)))
                {
                    return Err(Error::AlreadyExists(format!(
                        "the subnet {s} overlaps network {}'s {}: choose another",
                        other.name, other.subnet
                    )));
                }
                s
            }
            None => ipam::free_subnet(&taken)?,
        };
        let gateway = match &req.gateway {
            Some(g) => {
                let g: Ipv4Addr = g.parse().map_err(|_| {
                    Error::InvalidArgument(format!("invalid gateway {g:?}: write an IPv4 address"))
                })?;
                ipam::check_wanted(&subnet, Ipv4Addr::UNSPECIFIED, &[], g)?
            }
            None => ipam::gateway_of(&subnet),
        };
        let id = crate::digest::random_id();
        let rec = NetworkRecord {
            version: NETWORK_RECORD_VERSION,
            bridge: format!("bth-{}", &id[..11]),
            id,
            name: req.name,
            driver: "bridge".into(),
            created: Utc::now(),
            internal: req.internal,
            subnet: subnet.to_string(),
            gateway: gateway.to_string(),
            labels: req.labels,
            options: req.options,
            endpoints: BTreeMap::new(),
        };
        self.save(rec.clone())?;
        Ok(rec)
    }

    /// Every network, by name.
    pub fn all(&self) -> Vec<NetworkRecord> {
        let mut v: Vec<NetworkRecord> = self.table().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// By id, name, or unique id prefix.
    pub fn find(&self, input: &str) -> Result<NetworkRecord> {
        let table = self.table();
        if let Some(r) = table.get(input) {
            return Ok(r.clone());
        }
        if let Some(r) = table.values().find(|r| r.name == input) {
            return Ok(r.clone());
        }
        let hits: Vec<&NetworkRecord> = table
            .values()
            .filter(|r| !input.is_empty() && r.id.starts_with(input))
            .collect();
        match hits.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::no_network(format!(
                "network {input} not found; `berth network ls` lists them"
            ))),
            _ => Err(Error::InvalidArgument(format!(
                "{input} matches several networks: give more of the id"
            ))),
        }
    }

    /// Deletes a record.
    pub fn delete(&self, id: &str) -> Result<()> {
        std::fs::remove_file(self.dir.join(format!("{id}.json")))
            .map_err(|e| Error::io("removing a network", e))?;
        let _ = std::fs::remove_file(self.endpoints_file(id));
        self.table().remove(id);
        Ok(())
    }

    fn endpoints_file(&self, id: &str) -> PathBuf {
        self.dir.join("endpoints").join(format!("{id}.json"))
    }

    /// Sets or clears container `container`'s endpoint on network `id`.
    ///
    /// Endpoints are written to a file of their own, replaced atomically
    /// but not synced: they live only as long as their containers'
    /// namespaces, which a power cut ends too, while an agent killed
    /// mid-write leaves the old file or the new one. Syncing the whole
    /// record on each join and leave cost every run on a bridge two
    /// fsyncs (5–40 ms each here under load).
    pub fn set_endpoint_of(&self, id: &str, container: &str, ep: Option<Endpoint>) -> Result<()> {
        let id = self.find(id)?.id;
        let file = self.endpoints_file(&id);
        // One writer at a time per store: concurrent joins and leaves
        // never lose each other's endpoint.
        let mut table = self.table();
        let Some(rec) = table.get_mut(&id) else {
            return Err(Error::not_found(format!("network {id} is gone")));
        };
        let mut endpoints = rec.endpoints.clone();
        match ep {
            Some(ep) => endpoints.insert(container.to_string(), ep),
            None => endpoints.remove(container),
        };
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("saving endpoints", e))?;
        }
        write_json_atomic(&file, &endpoints).map_err(|e| Error::io("saving endpoints", e))?;
        rec.endpoints = endpoints;
        Ok(())
    }

    /// The bridges of networks that have containers.
    pub fn active_bridges(&self) -> Vec<String> {
        self.table()
            .values()
            .filter(|n| !n.endpoints.is_empty() && !n.bridge.is_empty())
            .map(|n| n.bridge.clone())
            .collect()
    }

    /// Turns IPv4 forwarding on, remembering that Berth did.
    pub fn enable_forwarding(&self) {
        let key = "/proc/sys/net/ipv4/ip_forward";
        if std::fs::read_to_string(key).is_ok_and(|v| v.trim() == "0")
            && std::fs::write(key, "1").is_ok()
        {
            let _ = std::fs::write(self.dir.join("forwarding-was-off"), "");
        }
    }

    /// Turns IPv4 forwarding off again if Berth turned it on.
    pub fn restore_forwarding(&self) {
        let marker = self.dir.join("forwarding-was-off");
        if marker.exists() {
            let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", "0");
            let _ = std::fs::remove_file(marker);
        }
    }
}
