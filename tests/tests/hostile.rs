//! Hostile containers: what a process in a container can reach of the
//! host. No descriptor or working directory of the host leaks into `run`
//! or `exec` (CVE-2024-21626's class), the host's binaries cannot be
//! opened for writing through `/proc/PID/exe` (CVE-2019-5736's class), a
//! fork bomb is held by `--pids-limit`, and a memory hog is killed alone.

use std::time::{Duration, Instant};

use berth_tests::containers::agent_with_busybox;

#[test]
fn run_and_exec_hold_no_host_descriptor_or_folder() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    agent.ok(&[
        "run",
        "-d",
        "--name",
        "fds",
        "--network",
        "none",
        bb,
        "sleep",
        "60",
    ]);
    agent.ok(&["exec", "-d", "fds", "sleep", "61"]);
    agent.ok(&["exec", "-d", "-w", "/tmp", "fds", "sleep", "62"]);
    std::thread::sleep(Duration::from_millis(300));
    // Each sleep's descriptors and folder, seen from inside.
    let script = "for p in $(pidof sleep); do \
                  echo \"$(cat /proc/$p/cmdline | tr '\\0' ' ')| $(ls /proc/$p/fd | tr '\\n' ' ')| $(readlink /proc/$p/cwd)\"; done";
    let out = agent.ok(&["exec", "fds", "sh", "-c", script]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "sleep 60 | 0 1 2 | /",
            "sleep 61 | 0 1 2 | /",
            "sleep 62 | 0 1 2 | /tmp"
        ],
        "{out}"
    );
    agent.ok(&["rm", "-f", "fds"]);
}

#[test]
fn host_binaries_cannot_be_rewritten_through_proc_exe() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let host_bins: Vec<_> = ["berth-agent", "berth-monitor", "berth-create"]
        .iter()
        .map(|b| berth_tests::bin(b))
        .collect();
    let before: Vec<Vec<u8>> = host_bins
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    // The container tries, over and over, to open every process's exe
    // for writing; a success leaves a mark.
    let attack = "while :; do for p in /proc/[0-9]*; do \
                  if (echo x >> $p/exe) 2>/dev/null; then echo $p > /tmp/won; fi; done; done";
    agent.ok(&[
        "run",
        "-d",
        "--name",
        "attacker",
        "--network",
        "none",
        bb,
        "sh",
        "-c",
        attack,
    ]);
    for _ in 0..200 {
        agent.ok(&["exec", "attacker", "true"]);
    }
    let (code, out, _) = {
        let o = agent.berth(&["exec", "attacker", "cat", "/tmp/won"]);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            (),
        )
    };
    agent.ok(&["rm", "-f", "attacker"]);
    assert_ne!(code, Some(0), "the container opened {out} for writing");
    for (p, b) in host_bins.iter().zip(before) {
        assert!(std::fs::read(p).unwrap() == b, "{} changed", p.display());
    }
}

#[test]
fn a_fork_bomb_is_held_by_the_pids_limit() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    agent.ok(&[
        "run",
        "-d",
        "--name",
        "bomb",
        "--pids-limit",
        "32",
        "--network",
        "none",
        bb,
        "sh",
        "-c",
        "b() { b | b & }; b; sleep 60",
    ]);
    std::thread::sleep(Duration::from_secs(2));
    let pids: u32 = agent
        .ok(&["stats", "--no-stream", "--format", "{{.PIDs}}", "bomb"])
        .trim()
        .parse()
        .unwrap();
    assert!(pids <= 32, "{pids} processes under a limit of 32");
    // The host still runs containers, and the bomb goes when asked.
    assert_eq!(
        agent.ok(&["run", "--rm", "--network", "none", bb, "echo", "ok"]),
        "ok\n"
    );
    let start = Instant::now();
    agent.ok(&["rm", "-f", "bomb"]);
    assert!(start.elapsed() < Duration::from_secs(15));
}

#[test]
fn a_memory_hog_is_killed_alone() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    agent.ok(&[
        "run",
        "-d",
        "--name",
        "bystander",
        "--network",
        "none",
        bb,
        "sleep",
        "60",
    ]);
    let out = agent.berth(&[
        "run",
        "--name",
        "hog",
        "-m",
        "32m",
        "--memory-swap",
        "32m",
        "--network",
        "none",
        bb,
        "sh",
        "-c",
        "head -c 200m /dev/zero | tail > /dev/null",
    ]);
    assert_eq!(
        out.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        agent.ok(&[
            "inspect",
            "-f",
            "{{.State.OOMKilled}} {{.State.ExitCode}}",
            "hog"
        ]),
        "true 137\n"
    );
    assert_eq!(
        agent.ok(&["inspect", "-f", "{{.State.Running}}", "bystander"]),
        "true\n"
    );
    agent.ok(&["rm", "-f", "hog", "bystander"]);
}

#[test]
fn cp_never_follows_a_containers_symlink_onto_the_host() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let host = tempfile::tempdir().unwrap();
    let canary_dir = host.path().join("canary");
    std::fs::create_dir(&canary_dir).unwrap();
    std::fs::write(canary_dir.join("f"), "host-secret\n").unwrap();
    let payload = host.path().join("f");
    std::fs::write(&payload, "from-the-copy\n").unwrap();
    let target = canary_dir.display().to_string();
    let depth = "../".repeat(12);
    // /w/x flips between a real folder and symlinks (absolute and
    // relative) to where the canary is on the host.
    let flip = format!(
        "mkdir -p /w/real && echo inside > /w/real/f; while :; do \
         rm -rf /w/x; ln -s {target} /w/x; rm -rf /w/x; ln -s {depth}{target} /w/x; \
         rm -rf /w/x; ln -s /w/real /w/x; done"
    );
    agent.ok(&[
        "run",
        "-d",
        "--name",
        "flipper",
        "--network",
        "none",
        bb,
        "sh",
        "-c",
        &flip,
    ]);
    let out_dir = host.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let copies = 200;
    for i in 0..copies {
        let _ = agent.berth(&["cp", payload.to_str().unwrap(), "flipper:/w/x/f"]);
        let dest = out_dir.join(format!("got{i}"));
        let _ = agent.berth(&["cp", "flipper:/w/x/f", dest.to_str().unwrap()]);
        if let Ok(text) = std::fs::read_to_string(&dest) {
            assert_ne!(text, "host-secret\n", "copy {i} read the host's file");
        }
        assert_eq!(
            std::fs::read_to_string(canary_dir.join("f")).unwrap(),
            "host-secret\n",
            "copy {i} wrote the host's file"
        );
    }
    assert_eq!(
        std::fs::read_dir(&canary_dir).unwrap().count(),
        1,
        "nothing new beside the canary"
    );
    agent.ok(&["rm", "-f", "flipper"]);
}
