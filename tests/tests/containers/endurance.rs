//! Containers over time and in numbers: a killed agent, restart policies,
//! fifty at once and two hundred parallel cycles.

use std::process::Command;

use berth_tests::berth_processes;

use super::*;

#[test]
fn containers_survive_a_killed_agent() {
    let Some((mut agent, bb)) = agent_with_busybox() else {
        return;
    };
    let a = agent
        .ok(&[
            "run",
            "-d",
            "--name",
            "one",
            bb,
            "sh",
            "-c",
            "echo before; sleep 300",
        ])
        .trim()
        .to_string();
    let b = agent
        .ok(&[
            "run",
            "-d",
            "--name",
            "two",
            bb,
            "sh",
            "-c",
            "sleep 1; echo finished; exit 4",
        ])
        .trim()
        .to_string();
    let pid: i32 = inspect(&agent, "one", "{{.State.Pid}}").parse().unwrap();
    agent.kill9();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        unsafe { libc::kill(pid, 0) },
        0,
        "the container died with its agent"
    );
    agent.restart();
    assert_eq!(inspect(&agent, "one", "{{.State.Status}}"), "running");
    // b ended while the agent was away: its code and logs were kept. (Its
    // monitor may still be recording the exit when the agent comes back;
    // the agent then follows it and records the exit a moment later.)
    let two = inspect_until(
        &agent,
        "two",
        "{{.State.Status}} {{.State.ExitCode}}",
        "exited 4",
        Duration::from_secs(10),
    );
    assert_eq!(two, "exited 4");
    assert_eq!(agent.ok(&["logs", "two"]), "finished\n");
    assert_eq!(agent.ok(&["logs", "one"]), "before\n");
    agent.ok(&["exec", "one", "true"]);
    agent.ok(&["stop", "-t", "1", "one"]);
    assert_eq!(inspect(&agent, "one", "{{.State.ExitCode}}"), "137");
    agent.ok(&["rm", "one", "two"]);
    assert!(
        mounts_under(&agent.root()).is_empty(),
        "{:?}",
        mounts_under(&agent.root())
    );
    assert!(cgroup_dirs(&a).is_empty() && cgroup_dirs(&b).is_empty());
    // No zombies: nothing this agent or its monitors should reap stays
    // defunct. (The monitors orphaned by the kill belong to the machine's
    // init now, and it reaps them in its own time; other tests' agents,
    // running beside this one, reap theirs in their own time too.) A child
    // is defunct for a moment between its exit and its reaping, so this
    // waits a little.
    let ours = |ppid: i32| {
        Some(ppid) == agent.pid()
            || berth_processes()
                .iter()
                .any(|(pid, _, dir)| *pid == ppid && dir.starts_with(agent.root()))
    };
    let zombies = || -> Vec<String> {
        let ps = Command::new("ps")
            .args(["-eo", "stat=,ppid=,pid=,comm="])
            .output()
            .unwrap();
        String::from_utf8_lossy(&ps.stdout)
            .lines()
            .filter(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() == 4
                    && f[0].starts_with('Z')
                    && f[3].contains("berth")
                    && f[1].parse().is_ok_and(ours)
            })
            .map(String::from)
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    while !zombies().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let zombies = zombies();
    assert!(zombies.is_empty(), "{zombies:?}");
}

#[test]
fn restart_policies_are_honoured() {
    let Some((mut agent, bb)) = agent_with_busybox() else {
        return;
    };
    agent.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        bb,
        "sh",
        "-c",
        "exit 1",
    ]);
    agent.ok(&[
        "run",
        "-d",
        "--name",
        "loop",
        "--restart",
        "always",
        bb,
        "sh",
        "-c",
        "sleep 0.2",
    ]);
    agent.ok(&[
        "run",
        "-d",
        "--name",
        "fine",
        "--restart",
        "on-failure",
        bb,
        "true",
    ]);
    let flaky = inspect_until(
        &agent,
        "flaky",
        "{{.RestartCount}} {{.State.Status}}",
        "2 exited",
        Duration::from_secs(15),
    );
    assert_eq!(
        flaky, "2 exited",
        "on-failure:2 did not stop after two restarts"
    );
    assert!(
        inspect(&agent, "loop", "{{.RestartCount}}")
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    assert_eq!(inspect(&agent, "fine", "{{.RestartCount}}"), "0");
    // stop wins over "always" until the agent starts again.
    agent.ok(&["stop", "-t", "1", "loop"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(inspect(&agent, "loop", "{{.State.Status}}"), "exited");
    agent.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while inspect(&agent, "loop", "{{.State.Status}}") == "exited" {
        assert!(
            Instant::now() < deadline,
            "always did not start the container with the agent"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn fifty_containers_at_once() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let agent = std::sync::Arc::new(agent);
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let agent = agent.clone();
            std::thread::spawn(move || {
                agent.ok(&["run", "-d", "--name", &format!("c{i}"), bb, "sleep", "120"])
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(agent.ok(&["ps", "-q"]).lines().count(), 50);
    let ids: Vec<String> = agent
        .ok(&["ps", "-q", "--no-trunc"])
        .lines()
        .map(String::from)
        .collect();
    let mut args = vec!["rm", "-f"];
    args.extend(ids.iter().map(String::as_str));
    agent.ok(&args);
    assert!(agent.ok(&["ps", "-aq"]).trim().is_empty());
    assert!(mounts_under(&agent.root()).is_empty());
    assert!(ids.iter().all(|id| cgroup_dirs(id).is_empty()));
}

#[test]
fn two_hundred_parallel_cycles_while_the_agent_serves() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let agent = std::sync::Arc::new(agent);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pinger = {
        let (agent, done) = (agent.clone(), done.clone());
        std::thread::spawn(move || {
            let mut worst = Duration::ZERO;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                agent.ok(&["ps", "-q"]);
                worst = worst.max(t.elapsed());
            }
            worst
        })
    };
    let t = Instant::now();
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let agent = agent.clone();
            std::thread::spawn(move || {
                for _ in 0..25 {
                    let (code, _, err) = agent.run(&["run", "--rm", bb, "true"]);
                    assert_eq!(code, 0, "{err}");
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let worst = pinger.join().unwrap();
    eprintln!(
        "200 cycles in {:?}; slowest `ps` meanwhile {worst:?}",
        t.elapsed()
    );
    assert!(
        worst < Duration::from_secs(2),
        "the agent stalled for {worst:?}"
    );
    assert!(agent.ok(&["ps", "-aq"]).trim().is_empty());
    assert!(mounts_under(&agent.root()).is_empty());
}
