//! The API's messages ⇄ the engine's types, field by field.

use std::collections::HashMap;

use berth_api::v1 as pb;

use crate::runtime::config::{
    ContainerConfig, DeviceMapping, ExecOptions, HealthConfig, MountRequest, PortBinding,
    Resources, RestartPolicy, Ulimit,
};
use crate::runtime::health::Health;

/// A time as the API carries it.
pub fn ts(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<prost_types::Timestamp> {
    t.map(|t| prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    })
}

/// A time from the API.
pub fn from_ts(t: Option<prost_types::Timestamp>) -> Option<chrono::DateTime<chrono::Utc>> {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
}

/// Docker-style filters as the engine takes them.
pub fn filters(f: HashMap<String, pb::StringList>) -> HashMap<String, Vec<String>> {
    f.into_iter().map(|(k, v)| (k, v.values)).collect()
}

/// A creation request as the engine takes it.
pub fn container_config(r: pb::CreateContainerRequest) -> ContainerConfig {
    ContainerConfig {
        name: r.name,
        image: r.image,
        cmd: r.cmd,
        entrypoint: r.entrypoint,
        entrypoint_set: r.entrypoint_set,
        env: r.env,
        working_dir: r.working_dir,
        user: r.user,
        hostname: r.hostname,
        tty: r.tty,
        open_stdin: r.open_stdin,
        attach: r.attach,
        auto_remove: r.auto_remove,
        init: r.init,
        read_only: r.read_only,
        privileged: r.privileged,
        cap_add: r.cap_add,
        cap_drop: r.cap_drop,
        ulimits: r
            .ulimits
            .into_iter()
            .map(|u| Ulimit {
                name: u.name,
                soft: u.soft,
                hard: u.hard,
            })
            .collect(),
        resources: r.resources.map(|x| Resources {
            memory_bytes: x.memory_bytes,
            memory_swap_bytes: x.memory_swap_bytes,
            nano_cpus: x.nano_cpus,
            cpu_shares: x.cpu_shares,
            pids_limit: x.pids_limit,
        }),
        restart_policy: r.restart_policy.map(|p| RestartPolicy {
            name: p.name,
            maximum_retry_count: p.maximum_retry_count,
        }),
        ports: r
            .ports
            .into_iter()
            .map(|p| PortBinding {
                host_ip: p.host_ip,
                host_port: p.host_port,
                container_port: p.container_port,
                protocol: p.protocol,
            })
            .collect(),
        publish_all: r.publish_all,
        mounts: r
            .mounts
            .into_iter()
            .map(|m| MountRequest {
                kind: m.r#type,
                source: m.source,
                target: m.target,
                read_only: m.read_only,
                options: m.options,
                create_host_path: m.create_host_path,
            })
            .collect(),
        network: r.network,
        network_aliases: r.network_aliases,
        dns: r.dns,
        extra_hosts: r.extra_hosts,
        labels: r.labels,
        stop_signal: r.stop_signal,
        stop_timeout: r.stop_timeout,
        platform: r.platform,
        pid_mode: r.pid_mode,
        group_add: r.group_add,
        sysctls: r.sysctls,
        shm_size: r.shm_size,
        cpuset_cpus: r.cpuset_cpus,
        security_opt: r.security_opt,
        expose: r.expose,
        healthcheck: r.healthcheck.map(|h| HealthConfig {
            test: h.test,
            interval: h.interval,
            timeout: h.timeout,
            start_period: h.start_period,
            start_interval: h.start_interval,
            retries: h.retries,
        }),
        log_opts: r.log_opts,
        devices: r
            .devices
            .into_iter()
            .map(|d| DeviceMapping {
                path_on_host: d.path_on_host,
                path_in_container: d.path_in_container,
                cgroup_permissions: d.cgroup_permissions,
            })
            .collect(),
    }
}

/// A stored configuration as the API shows it.
pub fn create_request(c: ContainerConfig) -> pb::CreateContainerRequest {
    pb::CreateContainerRequest {
        name: c.name,
        image: c.image,
        cmd: c.cmd,
        entrypoint: c.entrypoint,
        entrypoint_set: c.entrypoint_set,
        env: c.env,
        working_dir: c.working_dir,
        user: c.user,
        hostname: c.hostname,
        tty: c.tty,
        open_stdin: c.open_stdin,
        attach: c.attach,
        auto_remove: c.auto_remove,
        init: c.init,
        read_only: c.read_only,
        privileged: c.privileged,
        cap_add: c.cap_add,
        cap_drop: c.cap_drop,
        ulimits: c
            .ulimits
            .into_iter()
            .map(|u| pb::Ulimit {
                name: u.name,
                soft: u.soft,
                hard: u.hard,
            })
            .collect(),
        resources: c.resources.map(|x| pb::Resources {
            memory_bytes: x.memory_bytes,
            memory_swap_bytes: x.memory_swap_bytes,
            nano_cpus: x.nano_cpus,
            cpu_shares: x.cpu_shares,
            pids_limit: x.pids_limit,
        }),
        restart_policy: c.restart_policy.map(|p| pb::RestartPolicy {
            name: p.name,
            maximum_retry_count: p.maximum_retry_count,
        }),
        ports: c.ports.iter().map(port_binding).collect(),
        publish_all: c.publish_all,
        mounts: c
            .mounts
            .into_iter()
            .map(|m| pb::Mount {
                r#type: m.kind,
                source: m.source,
                target: m.target,
                read_only: m.read_only,
                options: m.options,
                create_host_path: m.create_host_path,
            })
            .collect(),
        network: c.network,
        network_aliases: c.network_aliases,
        dns: c.dns,
        extra_hosts: c.extra_hosts,
        labels: c.labels,
        stop_signal: c.stop_signal,
        stop_timeout: c.stop_timeout,
        platform: c.platform,
        pid_mode: c.pid_mode,
        group_add: c.group_add,
        sysctls: c.sysctls,
        shm_size: c.shm_size,
        cpuset_cpus: c.cpuset_cpus,
        security_opt: c.security_opt,
        expose: c.expose,
        healthcheck: c.healthcheck.map(|h| pb::HealthConfig {
            test: h.test,
            interval: h.interval,
            timeout: h.timeout,
            start_period: h.start_period,
            start_interval: h.start_interval,
            retries: h.retries,
        }),
        log_opts: c.log_opts,
        devices: c
            .devices
            .into_iter()
            .map(|d| pb::DeviceMapping {
                path_on_host: d.path_on_host,
                path_in_container: d.path_in_container,
                cgroup_permissions: d.cgroup_permissions,
            })
            .collect(),
    }
}

/// A container's health as the API carries it.
pub fn health(h: &Health) -> pb::ContainerHealth {
    pb::ContainerHealth {
        status: h.status.clone(),
        failing_streak: h.failing_streak,
        log: h
            .log
            .iter()
            .map(|r| pb::HealthcheckResult {
                start: ts(Some(r.start)),
                end: ts(Some(r.end)),
                exit_code: r.exit_code,
                output: r.output.clone(),
            })
            .collect(),
    }
}

/// A port binding as the API carries it.
pub fn port_binding(p: &PortBinding) -> pb::PortBinding {
    pb::PortBinding {
        host_ip: p.host_ip.clone(),
        host_port: p.host_port,
        container_port: p.container_port,
        protocol: p.protocol.clone(),
    }
}

/// An exec request as the engine takes it.
pub fn exec_options(s: &pb::ExecStart) -> ExecOptions {
    ExecOptions {
        container_id: s.container_id.clone(),
        cmd: s.cmd.clone(),
        env: s.env.clone(),
        working_dir: s.working_dir.clone(),
        user: s.user.clone(),
        tty: s.tty,
        attach_stdin: s.attach_stdin,
        detach: s.detach,
        privileged: s.privileged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_survives_the_round_trip_through_the_engine_type() {
        let r = pb::CreateContainerRequest {
            name: "web".into(),
            cmd: vec!["sh".into()],
            resources: Some(pb::Resources {
                memory_bytes: 64 << 20,
                ..Default::default()
            }),
            restart_policy: Some(pb::RestartPolicy {
                name: "on-failure".into(),
                maximum_retry_count: 3,
            }),
            ports: vec![pb::PortBinding {
                host_port: 8080,
                container_port: 80,
                protocol: "tcp".into(),
                ..Default::default()
            }],
            mounts: vec![pb::Mount {
                r#type: "volume".into(),
                source: "data".into(),
                target: "/data".into(),
                ..Default::default()
            }],
            labels: [("a".to_string(), "b".to_string())].into(),
            stop_timeout: 7,
            ..Default::default()
        };
        assert_eq!(create_request(container_config(r.clone())), r);
    }
}
