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
