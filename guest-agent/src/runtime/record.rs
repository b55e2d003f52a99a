//! A container's stored record: its creation request, what it runs, and
//! its state, kept as `container.json` in its directory and replaced
//! atomically on every change.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The format of container records this agent writes. Records of
/// version 0 (no `version` field) were written before Berth had its own
/// config type and stored the API's creation request; their JSON has the
/// same shape, and opening the store rewrites them as version 1.
pub const RECORD_VERSION: u32 = 1;

/// What the engine knows of one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The record's format ([`RECORD_VERSION`] when written by this agent).
    #[serde(default)]
    pub version: u32,
    /// 64 hex characters.
    pub id: String,
    /// Its unique name (without Docker's leading slash).
    pub name: String,
    /// When it was created.
    pub created: DateTime<Utc>,
    /// The image as the user named it.
    pub image: String,
    /// The image's id (sha256:…).
    pub image_id: String,
    /// The creation request.
    pub config: super::config::ContainerConfig,
    /// The executable it runs.
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its hostname.
    pub hostname: String,
    /// How many times a restart policy restarted it.
    pub restart_count: u32,
    /// The networks it joins when it starts (none for `--network none`
    /// or `host`).
    #[serde(default)]
    pub networks: Vec<crate::network::Join>,
    /// Its binds, volumes and tmpfs mounts.
    #[serde(default)]
    pub mounts: Vec<super::mounts::MountPoint>,
    /// Where it is in its life.
    pub state: State,
}

/// A container's state, as `inspect` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct State {
    /// "created", "running", "paused", "restarting", "exited", "dead".
    pub status: String,
    /// The main process's host pid while running.
    pub pid: i32,
    /// The monitor's pid while running.
    pub monitor_pid: i32,
    /// The last exit code.
    pub exit_code: i32,
    /// True when the last run ended by the OOM killer.
    pub oom_killed: bool,
    /// Why the last start failed.
    pub error: String,
    /// When it last started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it last stopped.
    pub finished_at: Option<DateTime<Utc>>,
    /// True after `stop`/`kill` by the user (for `unless-stopped`).
    pub stopped_by_user: bool,
    /// Its published ports while it runs.
    #[serde(default)]
    pub ports: Vec<crate::network::Published>,
    /// Its health, when it has a health check (see [`super::health`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<super::health::Health>,
}

impl State {
    /// True while the process exists (running or paused).
    pub fn is_running(&self) -> bool {
        matches!(self.status.as_str(), "running" | "paused")
    }
}

/// Docker's human status: "Up 5 minutes", "Exited (0) 2 seconds ago".
pub fn human_status(state: &State, now: DateTime<Utc>) -> String {
    let ago = |t: Option<DateTime<Utc>>| human_duration(now - t.unwrap_or(now));
    match state.status.as_str() {
        "running" => match &state.health {
            Some(h) => format!("Up {} ({})", ago(state.started_at), h.label()),
            None => format!("Up {}", ago(state.started_at)),
        },
        "paused" => format!("Up {} (Paused)", ago(state.started_at)),
        "restarting" => format!(
            "Restarting ({}) {} ago",
            state.exit_code,
            ago(state.finished_at)
        ),
        "exited" => format!(
            "Exited ({}) {} ago",
            state.exit_code,
            ago(state.finished_at)
        ),
        "created" => "Created".into(),
        other => other.to_string(),
    }
}

/// Docker's coarse durations ("Less than a second", "3 minutes").
pub fn human_duration(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    match s {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".into(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s if s < 7200 => "About an hour".into(),
        s if s < 172_800 => format!("{} hours", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record in `status`, for tests of logic over records.
    pub(crate) fn record(id: &str, name: &str, status: &str) -> Record {
        Record {
            version: RECORD_VERSION,
            id: id.into(),
            name: name.into(),
            created: Utc::now(),
            image: "busybox".into(),
            image_id: "sha256:1".into(),
            config: Default::default(),
            path: "sh".into(),
            args: Vec::new(),
            hostname: String::new(),
            restart_count: 0,
            networks: Vec::new(),
            mounts: Vec::new(),
            state: State {
                status: status.into(),
                ..Default::default()
            },
        }
    }

    #[test]
    fn running_means_the_process_exists() {
        for (status, running) in [
            ("created", false),
            ("running", true),
            ("paused", true),
            ("restarting", false),
            ("exited", false),
            ("dead", false),
        ] {
            assert_eq!(
                record("a", "a", status).state.is_running(),
                running,
                "{status}"
            );
        }
    }

    #[test]
    fn human_status_reads_as_docker_s() {
        let now = Utc::now();
        let mut r = record("a", "a", "exited");
        r.state.exit_code = 3;
        r.state.finished_at = Some(now - chrono::Duration::seconds(5));
        assert_eq!(human_status(&r.state, now), "Exited (3) 5 seconds ago");
        r.state.status = "paused".into();
        r.state.started_at = Some(now - chrono::Duration::minutes(3));
        assert_eq!(human_status(&r.state, now), "Up 3 minutes (Paused)");
        assert_eq!(
            human_status(&record("a", "a", "created").state, now),
            "Created"
        );
    }

    #[test]
    fn an_old_record_without_a_version_reads_as_version_0() {
        let mut json = serde_json::to_value(record("a", "web", "exited")).expect("JSON");
        json.as_object_mut().expect("an object").remove("version");
        json["config"]["mounts"] =
            serde_json::json!([{"type": "volume", "source": "v", "target": "/v"}]);
        let r: Record = serde_json::from_value(json).expect("an old record reads");
        assert_eq!(r.version, 0);
        assert_eq!(r.config.mounts[0].kind, "volume");
    }
}
