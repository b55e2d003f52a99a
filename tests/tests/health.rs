//! Health checks end to end, as Docker runs them: `--health-*` flags and
//! an image's HEALTHCHECK (made with `berth build`) run in the container
//! every interval; `inspect` shows `State.Health` and the merged
//! `Config.Healthcheck`; `ps` shows and filters by health; checks time
//! out, stop with the container and resume after an agent restart.
//! Intervals are 200 ms so the whole file takes seconds.

use std::time::{Duration, Instant, SystemTime};

use berth_tests::containers::agent_with_busybox;
use berth_tests::Agent;
use serde_json::Value;

/// A detached container from `args` (flags, image, command); its id.
fn run_d(agent: &Agent, args: &[&str]) -> String {
    let mut all = vec!["run", "-d"];
    all.extend_from_slice(args);
    agent.ok(&all).trim().to_string()
}

/// `State.Health` as JSON (`Null` when the container has none).
fn health(agent: &Agent, id: &str) -> Value {
    let state: Value =
        serde_json::from_str(&agent.ok(&["inspect", "-f", "{{json .State}}", id])).unwrap();
    state["Health"].clone()
}

/// Polls `State.Health` every 100 ms until `done` holds (or 15 s pass, a
/// failure); returns it.
fn health_until(agent: &Agent, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let h = health(agent, id);
        if done(&h) {
            return h;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: State.Health is {h}\nagent log:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn status_is(want: &'static str) -> impl Fn(&Value) -> bool {
    move |h| h["Status"] == want
}

/// `Config.Healthcheck` as JSON.
fn healthcheck_config(agent: &Agent, id: &str) -> Value {
    let config: Value =
        serde_json::from_str(&agent.ok(&["inspect", "-f", "{{json .Config}}", id])).unwrap();
    config["Healthcheck"].clone()
}

/// The ids (12 characters) `ps -a --filter health=VALUE` lists.
fn ps_health(agent: &Agent, value: &str) -> Vec<String> {
    let filter = format!("health={value}");
    agent
        .ok(&["ps", "-a", "-q", "--filter", &filter])
        .lines()
        .map(String::from)
        .collect()
}

/// The STATUS column of `ps` for container `id`.
fn ps_status(agent: &Agent, id: &str) -> String {
    let filter = format!("id={id}");
    agent
        .ok(&["ps", "-a", "--filter", &filter, "--format", "{{.Status}}"])
        .trim()
        .to_string()
}

#[test]
fn a_passing_check_makes_the_container_healthy_and_ps_shows_it() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let since = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let id = run_d(
        &agent,
        &[
            "--health-cmd",
            "echo ok",
            "--health-interval",
            "200ms",
            bb,
            "sleep",
            "60",
        ],
    );
    let h = health_until(&agent, &id, "healthy", status_is("healthy"));
    assert_eq!(h["FailingStreak"], 0);
    let log = h["Log"].as_array().unwrap();
    assert!(!log.is_empty());
    assert_eq!(log[0]["ExitCode"], 0);
    assert_eq!(log[0]["Output"], "ok\n");
    assert_eq!(
        healthcheck_config(&agent, &id),
        serde_json::json!({"Test": ["CMD-SHELL", "echo ok"], "Interval": 200_000_000})
    );
    let status = ps_status(&agent, &id);
    assert!(
        status.starts_with("Up ") && status.ends_with(" (healthy)"),
        "{status}"
    );
    assert_eq!(ps_health(&agent, "healthy"), [id[..12].to_string()]);
    assert!(ps_health(&agent, "unhealthy").is_empty());

    // A check whose first run is a minute away is still starting.
    let slow = run_d(
        &agent,
        &[
            "--health-cmd",
            "true",
            "--health-interval",
            "1m",
            bb,
            "sleep",
            "60",
        ],
    );
    assert_eq!(health(&agent, &slow)["Status"], "starting");
    let status = ps_status(&agent, &slow);
    assert!(status.ends_with(" (health: starting)"), "{status}");
    assert_eq!(ps_health(&agent, "starting"), [slow[..12].to_string()]);
    // A container without a check has health "none", and no State.Health.
    let plain = run_d(&agent, &[bb, "sleep", "60"]);
    assert_eq!(health(&agent, &plain), Value::Null);
    assert_eq!(ps_health(&agent, "none"), [plain[..12].to_string()]);
    let (code, _, err) = agent.run(&["ps", "--filter", "health=sick"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("Unrecognised filter value for health: sick"),
        "{err}"
    );

    // The change of status was an event.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let until = (now + 1).to_string();
    let filter = format!("container={id}");
    let events = agent.ok(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until,
        "--filter",
        &filter,
    ]);
    assert!(events.contains("health_status: healthy"), "{events}");
    agent.ok(&["rm", "-f", &id, &slow, &plain]);
}

#[test]
fn a_failing_check_turns_unhealthy_after_its_retries() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let id = run_d(
        &agent,
        &[
            "--health-cmd",
            "echo boom >&2; exit 3",
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
            bb,
            "sleep",
            "60",
        ],
    );
    let h = health_until(&agent, &id, "unhealthy", status_is("unhealthy"));
    assert!(h["FailingStreak"].as_u64().unwrap() >= 2, "{h}");
    let first = &h["Log"][0];
    assert_eq!(first["ExitCode"], 3);
    assert_eq!(first["Output"], "boom\n", "stderr is kept");
    // Only the last five results are kept; the streak goes on.
    let h = health_until(&agent, &id, "six failures", |h| {
        h["FailingStreak"].as_u64().unwrap_or(0) >= 6
    });
    assert_eq!(h["Log"].as_array().unwrap().len(), 5, "{h}");
    assert_eq!(h["Status"], "unhealthy");
    let status = ps_status(&agent, &id);
    assert!(status.ends_with(" (unhealthy)"), "{status}");
    assert_eq!(ps_health(&agent, "unhealthy"), [id[..12].to_string()]);
    agent.ok(&["rm", "-f", &id]);
}

#[test]
fn a_check_that_hangs_times_out_and_is_killed() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let id = run_d(
        &agent,
        &[
            "--health-cmd",
            "sleep 37",
            "--health-interval",
            "200ms",
            "--health-timeout",
            "300ms",
            "--health-retries",
            "1",
            bb,
            "sleep",
            "60",
        ],
    );
    // Three timed-out checks: none of them is left running.
    let h = health_until(&agent, &id, "three timeouts", |h| {
        h["FailingStreak"].as_u64().unwrap_or(0) >= 3
    });
    assert_eq!(h["Status"], "unhealthy");
    let first = &h["Log"][0];
    assert_eq!(first["ExitCode"], -1, "{h}");
    assert_eq!(first["Output"], "Health check exceeded timeout (300ms)");
    // The check's process is gone, not left running in the container.
    let procs = agent.ok(&["exec", &id, "ps"]);
    let hung = procs.lines().filter(|l| l.contains("sleep 37")).count();
    assert!(hung <= 1, "checks were left running:\n{procs}");
    agent.ok(&["rm", "-f", &id]);
}

#[test]
fn an_images_healthcheck_is_run_merged_with_flags_or_disabled() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let context = tempfile::tempdir().unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        format!("FROM {bb}\nHEALTHCHECK --interval=200ms --retries=2 CMD true\n"),
    )
    .unwrap();
    agent.ok(&[
        "build",
        "-q",
        "-t",
        "checked",
        context.path().to_str().unwrap(),
    ]);

    let id = run_d(&agent, &["checked", "sleep", "60"]);
    health_until(&agent, &id, "healthy", status_is("healthy"));
    assert_eq!(
        healthcheck_config(&agent, &id),
        serde_json::json!({"Test": ["CMD-SHELL", "true"], "Interval": 200_000_000, "Retries": 2})
    );

    // The user's command over the image's timing.
    let failing = run_d(
        &agent,
        &["--health-cmd", "exit 1", "checked", "sleep", "60"],
    );
    let h = health_until(&agent, &failing, "unhealthy", status_is("unhealthy"));
    assert_eq!(h["Log"][0]["ExitCode"], 1);
    assert_eq!(
        healthcheck_config(&agent, &failing),
        serde_json::json!({"Test": ["CMD-SHELL", "exit 1"], "Interval": 200_000_000, "Retries": 2})
    );

    // --no-healthcheck turns the image's check off.
    let off = run_d(&agent, &["--no-healthcheck", "checked", "sleep", "60"]);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(health(&agent, &off), Value::Null);
    // As Docker merges: the image's timing stays beside the user's NONE.
    assert_eq!(
        healthcheck_config(&agent, &off),
        serde_json::json!({"Test": ["NONE"], "Interval": 200_000_000, "Retries": 2})
    );
    assert_eq!(ps_health(&agent, "none"), [off[..12].to_string()]);
    let status = ps_status(&agent, &off);
    assert!(!status.contains('('), "{status}");
    // A shell-form check runs in the image's SHELL, as Docker runs it.
    std::fs::write(
        context.path().join("Dockerfile"),
        format!(
            "FROM {bb}\nSHELL [\"/bin/echo\", \"via\"]\nHEALTHCHECK --interval=200ms CMD shell\n"
        ),
    )
    .unwrap();
    agent.ok(&[
        "build",
        "-q",
        "-t",
        "shelled",
        context.path().to_str().unwrap(),
    ]);
    let shelled = run_d(&agent, &["shelled", "sleep", "60"]);
    let h = health_until(&agent, &shelled, "healthy", status_is("healthy"));
    assert_eq!(h["Log"][0]["Output"], "via shell\n");
    agent.ok(&["rm", "-f", &id, &failing, &off, &shelled]);
}

#[test]
fn checks_stop_with_the_container_and_resume_after_an_agent_restart() {
    let Some((mut agent, bb)) = agent_with_busybox() else {
        return;
    };
    let id = run_d(
        &agent,
        &[
            "--health-cmd",
            "true",
            "--health-interval",
            "200ms",
            bb,
            "sleep",
            "300",
        ],
    );
    health_until(&agent, &id, "healthy", status_is("healthy"));

    // The agent goes away and comes back: the adopted container's checks
    // go on.
    agent.restart();
    let before = health(&agent, &id)["Log"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["End"]
        .clone();
    let h = health_until(&agent, &id, "a check after the restart", |h| {
        h["Log"].as_array().unwrap().last().unwrap()["End"] != before
    });
    assert_eq!(h["Status"], "healthy");

    // Stopped: no more checks.
    agent.ok(&["stop", "-t", "0", &id]);
    let stopped = health(&agent, &id);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        health(&agent, &id)["Log"],
        stopped["Log"],
        "checked while stopped"
    );

    // Started again: starting, then healthy.
    agent.ok(&["start", &id]);
    health_until(&agent, &id, "healthy again", status_is("healthy"));
    agent.ok(&["rm", "-f", &id]);
}

#[test]
fn the_client_sets_a_check_and_reads_the_health() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let c = berth_client::Client::new(berth_client::ConnectOptions {
        host: Some(agent.host()),
        ..Default::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let req = berth_client::types::CreateContainerRequest {
            image: bb.to_string(),
            cmd: vec!["sleep".into(), "60".into()],
            network: "none".into(),
            healthcheck: Some(berth_client::types::HealthConfig {
                test: vec!["CMD".into(), "sh".into(), "-c".into(), "echo up".into()],
                interval: 200_000_000,
                ..Default::default()
            }),
            ..Default::default()
        };
        let id = c.create_container(req).await.unwrap().id;
        assert_eq!(c.container_health(&id).await.unwrap(), None);
        c.start_container(&id).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let health = loop {
            let h = c.container_health(&id).await.unwrap().expect("a health");
            if h.status == "healthy" || Instant::now() > deadline {
                break h;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(
            (health.status.as_str(), health.failing_streak),
            ("healthy", 0)
        );
        assert_eq!(health.log[0].output, "up\n");
        assert_eq!(health.log[0].exit_code, 0);
        c.remove_container(&id, true, false).await.unwrap();
    });
}

#[test]
fn bad_health_flags_are_refused_as_docker_refuses_them() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let (code, _, err) = agent.run(&[
        "run",
        "--health-cmd",
        "true",
        "--health-interval",
        "500us",
        bb,
        "true",
    ]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("Interval in Healthcheck cannot be less than 1ms"),
        "{err}"
    );
    let (code, _, err) = agent.run(&["run", "--no-healthcheck", "--health-retries", "2", bb]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("--no-healthcheck conflicts with --health-* options"),
        "{err}"
    );
    let (code, _, err) = agent.run(&["create", "--health-timeout", "-1s", bb]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("--health-timeout cannot be negative"), "{err}");
    assert!(agent.ok(&["ps", "-a", "-q"]).trim().is_empty());
}
