//! Run and exec flags end to end, against Docker's behaviour:
//! `exec --privileged` and `--log-opt` for the json-file log.

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
