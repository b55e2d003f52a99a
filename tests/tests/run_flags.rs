//! Run and exec flags end to end, against Docker's behaviour:
//! `exec --privileged`, `--log-opt` for the json-file log, `--device`, and
//! the init layer every container gets (`/etc/mtab`).

use berth_tests::containers::agent_with_busybox;
use berth_tests::Agent;

/// The `CapEff` line of a process `exec` starts in container `id`.
fn exec_caps(agent: &Agent, id: &str, flags: &[&str]) -> String {
    let mut args = vec!["exec"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&[id, "grep", "^CapEff", "/proc/self/status"]);
    let out = agent.ok(&args);
    out.split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn exec_privileged_has_every_capability_the_host_gives() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    // What the agent (root, like this test) may hand out.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let host = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim()
        .to_string();
    let id = agent
        .ok(&["run", "-d", "--cap-drop", "ALL", bb, "sleep", "60"])
        .trim()
        .to_string();
    assert_eq!(exec_caps(&agent, &id, &[]), "0000000000000000");
    assert_eq!(exec_caps(&agent, &id, &["--privileged"]), host);
    agent.ok(&["rm", "-f", &id]);
}

#[test]
fn log_opts_rotate_the_json_file_log() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    // 2000 lines of about 60 bytes in JSON: 120 kB, over 10 kB files.
    let script = "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done";
    let id = agent
        .ok(&[
            "run",
            "-d",
            "--log-opt",
            "max-size=10k",
            "--log-opt",
            "max-file=2",
            bb,
            "sh",
            "-c",
            script,
        ])
        .trim()
        .to_string();
    assert_eq!(agent.ok(&["wait", &id]).trim(), "0");
    let config = agent.ok(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", &id]);
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(
        config,
        serde_json::json!({"Type": "json-file", "Config": {"max-size": "10k", "max-file": "2"}})
    );
    let log = agent.ok(&["inspect", "-f", "{{.LogPath}}", &id]);
    let log = std::path::PathBuf::from(log.trim());
    let size = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len());
    let rotated = log.with_file_name(format!("{}.1", log.file_name().unwrap().to_string_lossy()));
    let third = log.with_file_name(format!("{}.2", log.file_name().unwrap().to_string_lossy()));
    assert!(size(&log).unwrap() <= 10_000, "{:?}", size(&log));
    assert!(size(&rotated).unwrap() <= 10_000, "{:?}", size(&rotated));
    assert!(size(&third).is_err(), "a third file was kept");
    // `logs` has what the two files keep: the end, not the start.
    let out = agent.ok(&["logs", &id]);
    assert!(
        out.ends_with("line-1999\n"),
        "{}",
        &out[out.len().saturating_sub(100)..]
    );
    assert!(!out.contains("line-0\n"));
    agent.ok(&["rm", &id]);

    for (opt, sentence) in [
        ("max-file=0", "max-file cannot be less than 1"),
        (
            "mode=fast",
            "unknown log opt 'mode' for json-file log driver",
        ),
        ("max-size", "invalid key value pair format in logging opts"),
    ] {
        let (code, _, err) = agent.run(&["run", "--log-opt", opt, bb, "true"]);
        assert_eq!(code, 125, "{opt}: {err}");
        assert!(err.contains(sentence), "{opt}: {err}");
    }
}

/// Seconds since the epoch.
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `ExecIDs` of container `id` (empty for Docker's `null`).
fn exec_ids(agent: &Agent, id: &str) -> Vec<String> {
    let out = agent.ok(&["inspect", "-f", "{{json .ExecIDs}}", id]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    match v {
        serde_json::Value::Null => Vec::new(),
        v => serde_json::from_value(v).unwrap(),
    }
}

#[test]
fn exec_sessions_are_listed_while_they_run_and_end_with_their_code() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let since = now_secs().to_string();
    let id = agent
        .ok(&["run", "-d", bb, "sleep", "60"])
        .trim()
        .to_string();
    assert!(exec_ids(&agent, &id).is_empty());
    agent.ok(&["exec", "-d", &id, "sleep", "30"]);
    agent.ok(&["exec", "-d", &id, "sleep", "31"]);
    let mut running = exec_ids(&agent, &id);
    running.sort();
    assert_eq!(running.len(), 2, "{running:?}");
    let (code, _, _) = agent.run(&["exec", &id, "sh", "-c", "exit 3"]);
    assert_eq!(code, 3);
    // The finished session is not listed; the running ones still are.
    let mut still = exec_ids(&agent, &id);
    still.sort();
    assert_eq!(still, running);
    // Their ends are events with the exit codes; a stopped container
    // has no sessions.
    agent.ok(&["kill", &id]);
    agent.ok(&["wait", &id]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !exec_ids(&agent, &id).is_empty() {
        assert!(std::time::Instant::now() < deadline, "sessions left listed");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let until = (now_secs() + 1).to_string();
    let filter = format!("container={id}");
    let events = agent.ok(&[
        "events", "--since", &since, "--until", &until, "--filter", &filter,
    ]);
    let dies: Vec<&str> = events
        .lines()
        .filter(|l| l.contains(" exec_die "))
        .collect();
    assert_eq!(dies.len(), 3, "{events}");
    assert!(dies.iter().any(|l| l.contains("exitCode=3")), "{events}");
    for exec in &running {
        assert!(
            dies.iter().any(|l| l.contains(&format!("execID={exec}"))),
            "no exec_die for {exec}: {events}"
        );
    }
    agent.ok(&["rm", &id]);
}

#[test]
fn device_gives_a_host_device_with_the_permissions_asked_for() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    // An unbound loop device: reading it is harmless (it is empty), and
    // writing it fails with "No space left" where the cgroup allows it.
    let host = "/dev/loop7";
    if !std::path::Path::new(host).exists() {
        assert!(
            std::process::Command::new("mknod")
                .args([host, "b", "7", "7"])
                .status()
                .unwrap()
                .success(),
            "mknod {host}"
        );
    }
    let script = "ls -l /dev/xloop; \
        dd if=/dev/xloop of=/dev/null count=1 2>/dev/null && echo read=ok || echo read=refused; \
        dd if=/dev/zero of=/dev/xloop count=1 2>&1 | grep -q 'not permitted' && echo write=refused || echo write=allowed";
    let device = format!("{host}:/dev/xloop:r");
    let out = agent.ok(&["run", "--rm", "--device", &device, bb, "sh", "-c", script]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with('b'), "{out}");
    assert!(
        lines[0].contains("7,   7") || lines[0].contains("7, 7"),
        "{out}"
    );
    assert_eq!(&lines[1..], ["read=ok", "write=refused"], "{out}");
    let device = format!("{host}:/dev/xloop");
    let out = agent.ok(&["run", "--rm", "--device", &device, bb, "sh", "-c", script]);
    assert!(out.ends_with("read=ok\nwrite=allowed\n"), "{out}");
    // Without --device the container has no such node.
    let out = agent.ok(&["run", "--rm", bb, "sh", "-c", "ls /dev/loop7 2>&1 || true"]);
    assert!(out.contains("No such file"), "{out}");

    let id = agent
        .ok(&["create", "--device", "/dev/loop7:rw", bb])
        .trim()
        .to_string();
    let devices = agent.ok(&["inspect", "-f", "{{json .HostConfig.Devices}}", &id]);
    let devices: serde_json::Value = serde_json::from_str(&devices).unwrap();
    assert_eq!(
        devices,
        serde_json::json!([{"PathOnHost": "/dev/loop7", "PathInContainer": "/dev/loop7", "CgroupPermissions": "rw"}])
    );
    agent.ok(&["rm", &id]);

    for (spec, sentence) in [
        (
            "/dev/no-such-dev",
            "error gathering device information while adding custom device \"/dev/no-such-dev\": no such file or directory",
        ),
        ("/dev/loop7:/dev/x:rwz", "bad mode specified: rwz"),
    ] {
        let (code, _, err) = agent.run(&["run", "--device", spec, bb, "true"]);
        assert_eq!(code, 125, "{spec}: {err}");
        assert!(err.contains(sentence), "{spec}: {err}");
    }
}

#[test]
fn etc_mtab_lists_the_containers_mounts_and_is_no_change_of_its_own() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    // As in Docker: /etc/mtab is /proc/mounts and /.dockerenv is there,
    // from the container's init layer, so `diff` of a fresh container is
    // empty.
    let out = agent.ok(&[
        "run",
        "--name",
        "fresh",
        bb,
        "sh",
        "-c",
        "readlink /etc/mtab; grep -c ' / overlay ' /etc/mtab; test -f /.dockerenv && echo in",
    ]);
    assert_eq!(out, "/proc/mounts\n1\nin\n");
    assert_eq!(agent.ok(&["diff", "fresh"]), "");
    agent.ok(&["commit", "fresh", "fresh:img"]);
    let out = agent.ok(&["image", "history", "--format", "{{.Size}}", "fresh:img"]);
    assert!(
        out.lines().next().is_some_and(|l| l.starts_with('0')),
        "{out}"
    );
}
