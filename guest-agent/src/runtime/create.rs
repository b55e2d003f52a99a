//! `create`: a container's record, directories, managed `/etc` files and
//! OCI bundle, from an image and the user's flags.

use std::io::Read;
use std::path::PathBuf;

use chrono::Utc;

use super::config::ContainerConfig;
use super::record::{Record, State};
use super::{protocol, seccomp, spec, Containers};
use crate::error::{Error, Result};
use crate::image::manifest::{parse_config, RunConfig};

impl Containers {
    /// Creates a container; returns its id and any warnings. Like a start,
    /// it first waits until the agent is ready (in the VM, bind sources in
    /// shared folders exist once PID 1 has mounted them).
    pub async fn create(&self, mut config: ContainerConfig) -> Result<(String, Vec<String>)> {
        self.wait_ready().await;
        let t = std::time::Instant::now();
        let (networks, mut warnings) = self.joins_for(&config)?;
        let swap = config
            .resources
            .as_ref()
            .is_some_and(|r| r.memory_swap_bytes != 0);
        if swap && !spec::swap_accounting() {
            warnings.push("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.".into());
        }
        if let Some(h) = &config.healthcheck {
            super::health::validate(h)?;
        }
        super::logs::limits(&config.log_opts)?;
        let name = self.claim_name(&config.name)?;
        let image = self.images.find(&config.image)?;
        let run = self.image_config(&image.record.id)?;
        let id = self.new_id();
        let dir = self.dir_of(&id);
        let mut mounts = Vec::new();
        let made = (|| -> Result<Record> {
            let bundle = dir.join("bundle");
            for d in [bundle.join("rootfs"), dir.join("upper"), dir.join("work")] {
                std::fs::create_dir_all(&d)
                    .map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
            }
            let layers = self.layer_dirs(&image.record)?;
            mounts = self.resolve_mounts(&config, &run)?;
            if config.stop_signal.is_empty() {
                config.stop_signal = run.stop_signal.clone().unwrap_or_else(|| "SIGTERM".into());
            }
            if config.stop_timeout <= 0 {
                config.stop_timeout = 10;
            }
            let built = spec::build(&spec::SpecInput {
                id: &id,
                config: &config,
                image: &run,
                layers: &layers,
                rootfs: &bundle.join("rootfs"),
                etc_dir: &dir,
                netns: (!networks.is_empty()).then(|| self.networks.ns_path(&id)),
                mounts: &mounts,
            })?;
            write_etc_files(&dir, &built.hostname, &config)?;
            std::fs::write(
                bundle.join("config.json"),
                serde_json::to_vec_pretty(&built.spec)
                    .map_err(|e| Error::Internal(e.to_string()))?,
            )
            .map_err(|e| Error::io("writing the container's bundle", e))?;
            if let Some(profile) = &built.seccomp {
                std::fs::write(
                    bundle.join(seccomp::filter::PROFILE_FILE),
                    profile.to_string(),
                )
                .map_err(|e| Error::io("writing the container's seccomp profile", e))?;
            }
            Ok(Record {
                version: super::record::RECORD_VERSION,
                id: id.clone(),
                name: name.clone(),
                created: Utc::now(),
                image: config.image.clone(),
                image_id: image.record.id.clone(),
                path: built.path,
                args: built.args,
                hostname: built.hostname,
                config: config.clone(),
                restart_count: 0,
                networks: networks.clone(),
                mounts: mounts.clone(),
                state: State {
                    status: "created".into(),
                    ..Default::default()
                },
            })
        })();
        let record = match made {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                let in_use = self.volumes_in_use();
                for m in mounts.iter().filter(|m| m.anonymous) {
                    let _ = self.volumes.remove(&m.name, &in_use);
                }
                return Err(e);
            }
        };
        protocol::write_json_atomic(&dir.join("container.json"), &record)
            .map_err(|e| Error::io("saving the container's record", e))?;
        self.images.hold(&record.image_id, &id);
        self.insert(record.clone());
        self.emit("create", &record, &[]);
        tracing::debug!("create {id}: made in {:?}", t.elapsed());
        Ok((id, warnings))
    }

    /// The image's run config.
    pub(super) fn image_config(&self, image_id: &str) -> Result<RunConfig> {
        let bytes = self.images.content.read(image_id)?;
        Ok(parse_config(&bytes)?.config.unwrap_or_default())
    }

    /// The image's layer directories, top first.
    pub(super) fn layer_dirs(&self, image: &crate::store::ImageRecord) -> Result<Vec<PathBuf>> {
        image
            .layers
            .iter()
            .rev()
            .map(|l| self.images.snapshots.fs_path(&l.chain_id))
            .collect()
    }

    /// Checks a requested name, or makes one up as Docker does.
    fn claim_name(&self, wanted: &str) -> Result<String> {
        let wanted = wanted.strip_prefix('/').unwrap_or(wanted);
        if wanted.is_empty() {
            let taken: Vec<String> = self.all().iter().map(|e| e.record().name).collect();
            return Ok(generated_name(|n| taken.iter().any(|t| t == n)));
        }
        valid_name(wanted)?;
        if let Some(other) = self
            .all()
            .iter()
            .map(|e| e.record())
            .find(|r| r.name == wanted)
        {
            return Err(Error::AlreadyExists(format!(
                "the container name \"/{wanted}\" is already in use by container {}; remove or rename that container, or choose another name",
                other.id
            )));
        }
        Ok(wanted.to_string())
    }

    /// A fresh 64-hex id whose 12-character prefix is unique.
    fn new_id(&self) -> String {
        loop {
            let id = crate::digest::random_id();
            let prefix = &id[..12];
            if !self.table().keys().any(|k| k.starts_with(prefix)) {
                return id;
            }
        }
    }
}

/// Docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> Result<()> {
    if !crate::util::names::is_valid_name(name) {
        return Err(Error::InvalidArgument(format!(
            "invalid container name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least two characters"
        )));
    }
    Ok(())
}

/// An "adjective_noun" name no container has.
fn generated_name(taken: impl Fn(&str) -> bool) -> String {
    const LEFT: &[&str] = &[
        "brave", "calm", "eager", "fond", "keen", "lucid", "merry", "nimble", "quiet", "sharp",
        "swift", "tidy", "vivid", "warm", "wise", "zen",
    ];
    const RIGHT: &[&str] = &[
        "anchor", "bollard", "buoy", "cleat", "dock", "ferry", "harbor", "hull", "jetty", "keel",
        "mooring", "pier", "quay", "rudder", "tug", "wharf",
    ];
    let mut seed = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut seed);
    }
    let mut n = u64::from_le_bytes(seed);
    loop {
        let name = format!(
            "{}_{}",
            LEFT[(n % 16) as usize],
            RIGHT[((n / 16) % 16) as usize]
        );
        if !taken(&name) {
            return name;
        }
        let suffixed = format!("{name}{}", n % 1000);
        if !taken(&suffixed) {
            return suffixed;
        }
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
    }
}

/// Writes the `hosts`, `hostname` and `resolv.conf` Berth manages.
fn write_etc_files(dir: &std::path::Path, hostname: &str, config: &ContainerConfig) -> Result<()> {
    let hosts = hosts_file(config, None)?;
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv = resolv_conf(&host_resolv, &config.dns);
    let w = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|e| Error::io(format!("writing {name}"), e))
    };
    w("hosts", &hosts)?;
    w("hostname", &format!("{hostname}\n"))?;
    w("resolv.conf", &resolv)
}

/// The container's base `/etc/hosts`: localhost and `--add-host`
/// entries (`host-gateway` is `gateway`, the network's own address).
pub(super) fn hosts_file(
    config: &ContainerConfig,
    gateway: Option<std::net::Ipv4Addr>,
) -> Result<String> {
    let mut hosts = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for extra in &config.extra_hosts {
        let (name, ip) = extra
            .split_once(':')
            .or_else(|| extra.split_once('='))
            .filter(|(n, i)| !n.is_empty() && !i.is_empty())
            .ok_or_else(|| {
                Error::InvalidArgument(format!("invalid --add-host {extra:?}: use name:address"))
            })?;
        let ip = match (ip, gateway) {
            ("host-gateway", Some(gw)) => gw.to_string(),
            ("host-gateway", None) => continue,
            (ip, _) => {
                ip.parse::<std::net::IpAddr>().map_err(|_| {
                    Error::InvalidArgument(format!(
                        "invalid --add-host {extra:?}: {ip} is not an IP address (or host-gateway)"
                    ))
                })?;
                ip.to_string()
            }
        };
        hosts.push_str(&format!("{ip}\t{name}\n"));
    }
    Ok(hosts)
}

/// The container's resolv.conf: the host's without loopback name servers
/// (they would point into the container itself), or the `--dns` ones.
pub fn resolv_conf(host: &str, dns: &[String]) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let is_server = line.trim_start().starts_with("nameserver");
        if is_server {
            let addr = line.split_whitespace().nth(1).unwrap_or("");
            if !dns.is_empty() || addr.starts_with("127.") || addr == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    for d in dns {
        out.push_str(&format!("nameserver {d}\n"));
        servers += 1;
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        assert!(valid_name("web-1.a_b").is_ok());
        for bad in ["", "a", "-x", "a/b", "a b", "ünï"] {
            assert!(valid_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn loopback_name_servers_are_dropped() {
        let r = resolv_conf(
            "search lan\nnameserver 127.0.0.53\nnameserver 10.0.0.1\n",
            &[],
        );
        assert_eq!(r, "search lan\nnameserver 10.0.0.1\n");
        assert!(resolv_conf("nameserver 127.0.0.1\n", &[]).contains("8.8.8.8"));
        assert_eq!(
            resolv_conf("nameserver 10.0.0.1\n", &["1.1.1.1".into()]),
            "nameserver 1.1.1.1\n"
        );
    }
}
