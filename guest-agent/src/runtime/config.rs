//! What a container was created with, as the engine keeps it: Berth's own
//! types, stored in the container's record on disk. They are not the API's
//! messages, so changing the `.proto` files never changes the disk format;
//! the gRPC layer converts between the two.
//!
//! The JSON field names are the ones records written before these types
//! existed used (they stored the API's request as JSON), so those records
//! read as they are; see [`super::record::RECORD_VERSION`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// How a container is to be made and run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerConfig {
    /// Its name (empty: one is chosen).
    pub name: String,
    /// The image as the user named it.
    pub image: String,
    /// The command (the image's when empty).
    pub cmd: Vec<String>,
    /// The entrypoint, when `entrypoint_set`.
    pub entrypoint: Vec<String>,
    /// True when the entrypoint was given (an empty one clears the image's).
    pub entrypoint_set: bool,
    /// `NAME=value` pairs added to the image's.
    pub env: Vec<String>,
    /// The working directory (the image's when empty).
    pub working_dir: String,
    /// The user (the image's when empty).
    pub user: String,
    /// The hostname (the id's first 12 characters when empty).
    pub hostname: String,
    /// Give it a terminal.
    pub tty: bool,
    /// Keep its stdin open.
    pub open_stdin: bool,
    /// The streams a client was to attach when it was made ("stdin",
    /// "stdout", "stderr"), shown by inspect as `Config.AttachStd*`.
    pub attach: Vec<String>,
    /// Remove it when it exits.
    pub auto_remove: bool,
    /// Run a small init as PID 1.
    pub init: bool,
    /// Mount its root filesystem read-only.
    pub read_only: bool,
    /// Give it every capability and device.
    pub privileged: bool,
    /// Capabilities to add.
    pub cap_add: Vec<String>,
    /// Capabilities to drop.
    pub cap_drop: Vec<String>,
    /// Resource limits of its processes.
    pub ulimits: Vec<Ulimit>,
    /// Cgroup limits.
    pub resources: Option<Resources>,
    /// When to restart it.
    pub restart_policy: Option<RestartPolicy>,
    /// Published ports.
    pub ports: Vec<PortBinding>,
    /// Publish every exposed port on a free host port.
    pub publish_all: bool,
    /// Binds, volumes and tmpfs mounts.
    pub mounts: Vec<MountRequest>,
    /// "bridge", "host", "none", or a network's name.
    pub network: String,
    /// More names it answers to on its network.
    pub network_aliases: Vec<String>,
    /// DNS servers for it.
    pub dns: Vec<String>,
    /// `host:ip` lines added to its hosts file.
    pub extra_hosts: Vec<String>,
    /// User labels.
    pub labels: HashMap<String, String>,
    /// The signal that stops it.
    pub stop_signal: String,
    /// Seconds to wait before killing it on stop.
    pub stop_timeout: i32,
    /// The platform wanted (`os/arch[/variant]`).
    pub platform: String,
    /// "" (its own) or "host" (the host's PID namespace).
    pub pid_mode: String,
    /// Supplementary groups (names or ids) for the process.
    pub group_add: Vec<String>,
    /// Namespaced kernel parameters.
    pub sysctls: HashMap<String, String>,
    /// The size of /dev/shm in bytes (0: 64 MiB).
    pub shm_size: i64,
    /// The CPUs the container may use ("0-1", "0,2"; empty: all).
    pub cpuset_cpus: String,
    /// `--security-opt` values.
    pub security_opt: Vec<String>,
    /// Ports exposed without publishing ("80", "53/udp").
    pub expose: Vec<String>,
    /// The health check (`--health-*`, `--no-healthcheck`); the image's
    /// fills in what it leaves unset.
    pub healthcheck: Option<HealthConfig>,
    /// Options of the json-file log (`--log-opt`: `max-size`, `max-file`,
    /// …); empty: Berth's defaults.
    pub log_opts: HashMap<String, String>,
    /// Host devices given to it (`--device`).
    pub devices: Vec<DeviceMapping>,
}

/// A host device given to a container (`--device HOST[:CONTAINER[:PERMS]]`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceMapping {
    /// The device (or a directory of devices) on the host.
    pub path_on_host: String,
    /// Where it appears in the container (the host path when empty).
    pub path_in_container: String,
    /// Some of `r`, `w`, `m` (empty: `rwm`).
    pub cgroup_permissions: String,
}

/// A health check as Docker's `HealthConfig` has it (durations in
/// nanoseconds, 0: the image's or the default).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `[]` (inherit), `["NONE"]`, `["CMD", args…]` or `["CMD-SHELL", cmd]`.
    pub test: Vec<String>,
    /// Between checks.
    pub interval: i64,
    /// How long one check may take.
    pub timeout: i64,
    /// Failures in this time after the start do not count.
    pub start_period: i64,
    /// Between checks during the start period.
    pub start_interval: i64,
    /// Failures in a row that make the container unhealthy.
    pub retries: i32,
}

/// One resource limit (`--ulimit`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Ulimit {
    /// Its name, as `nofile`.
    pub name: String,
    /// The soft limit.
    pub soft: i64,
    /// The hard limit.
    pub hard: i64,
}

/// Cgroup limits (zero: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// Memory in bytes.
    pub memory_bytes: i64,
    /// Memory and swap in bytes (-1: unlimited swap).
    pub memory_swap_bytes: i64,
    /// CPUs in billionths (Docker's NanoCPUs).
    pub nano_cpus: i64,
    /// The relative CPU weight.
    pub cpu_shares: i64,
    /// The most processes.
    pub pids_limit: i64,
}

/// When a container restarts by itself.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RestartPolicy {
    /// "no", "on-failure", "always", "unless-stopped".
    pub name: String,
    /// The most restarts for "on-failure" (0: no limit).
    pub maximum_retry_count: u32,
}

/// A port to publish.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PortBinding {
    /// The host address (empty: every address).
    pub host_ip: String,
    /// The host port (0: a free one).
    pub host_port: u32,
    /// The container's port.
    pub container_port: u32,
    /// "tcp" or "udp".
    pub protocol: String,
}

/// A mount as requested (`-v`, `--mount`, `--tmpfs`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MountRequest {
    /// "bind", "volume", "tmpfs".
    #[serde(rename = "type")]
    pub kind: String,
    /// A host path or a volume's name.
    pub source: String,
    /// Where it appears in the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// Mount options.
    pub options: Vec<String>,
    /// Docker's `-v` creates a missing bind source; `--mount` refuses it.
    pub create_host_path: bool,
}

/// What to run in a running container (`exec`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExecOptions {
    /// The container's id or name.
    pub container_id: String,
    /// The command and its arguments.
    pub cmd: Vec<String>,
    /// `NAME=value` pairs added to the container's.
    pub env: Vec<String>,
    /// The working directory (the container's when empty).
    pub working_dir: String,
    /// The user (the container's when empty).
    pub user: String,
    /// Give it a terminal.
    pub tty: bool,
    /// Give it stdin.
    pub attach_stdin: bool,
    /// Do not wait for it.
    pub detach: bool,
    /// Every capability.
    pub privileged: bool,
}
