//! Containers end to end: the real agent and CLI, real containers as
//! root, from a busybox image the harness builds.

use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_tests::containers::{
    agent_with_busybox, cgroup_dirs, cgroup_file, mounts_under, PtySession,
};
use berth_tests::Agent;

#[path = "containers/endurance.rs"]
mod endurance;

fn inspect(agent: &Agent, id: &str, template: &str) -> String {
    agent
        .ok(&["inspect", "-f", template, id])
        .trim()
        .to_string()
}

/// `inspect` again every 100 ms until it gives `want` or `limit` passes;
/// returns the last answer.
fn inspect_until(agent: &Agent, id: &str, template: &str, want: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let got = inspect(agent, id, template);
        if got == want || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn isolation_is_what_docker_gives() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let script = r#"
        echo "pid1=$(tr '\0' ' ' < /proc/1/cmdline)"
        echo "procs=$(ls -d /proc/[0-9]* | wc -l)"
        echo "hostname=$(hostname)"
        mount -t tmpfs none /mnt 2>/dev/null && echo mount=yes || echo mount=no
        cat /proc/kcore > /dev/null 2>&1 && echo kcore=yes || echo kcore=no
        echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo procsys=yes || echo procsys=no
        unshare -n true 2>/dev/null && echo unshare=yes || echo unshare=no
        insmod /nonexistent.ko 2>/dev/null && echo insmod=yes || echo insmod=no
        grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status | tr -d '\t' | tr ':' '='
        echo "mounts=$(grep -c ' / ' /proc/self/mountinfo)"
    "#;
    let out = agent.ok(&["run", "--rm", "--hostname", "box1", bb, "sh", "-c", script]);
    let has = |line: &str| {
        assert!(
            out.lines().any(|l| l.trim() == line),
            "missing {line:?} in:\n{out}"
        )
    };
    assert!(
        out.starts_with("pid1=sh -c"),
        "PID 1 is not the command: {out}"
    );
    has("hostname=box1");
    for denied in [
        "mount=no",
        "kcore=no",
        "procsys=no",
        "unshare=no",
        "insmod=no",
    ] {
        has(denied);
    }
    // Docker's 14 default capabilities, seccomp in filter mode, no_new_privs.
    has("CapEff=00000000a80425fb");
    has("Seccomp=2");
    has("NoNewPrivs=1");
    let procs: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("procs="))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(procs <= 4, "host processes are visible: {procs}");
    // --cap-add and --privileged change what the container may do.
    let out = agent.ok(&[
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        bb,
        "sh",
        "-c",
        "unshare -u true && echo ok",
    ]);
    assert_eq!(out.trim(), "ok");
    let out = agent.ok(&[
        "run",
        "--rm",
        "--privileged",
        bb,
        "sh",
        "-c",
        "mount -t tmpfs none /tmp && echo ok && ls /dev/kmsg",
    ]);
    assert_eq!(
        out, "ok\n/dev/kmsg\n",
        "--privileged gives the host's devices"
    );
    let (code, _, _) = agent.run(&["run", "--rm", bb, "ls", "/dev/kmsg"]);
    assert_ne!(code, 0, "an unprivileged container has a host device");
    let out = agent.ok(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        bb,
        "sh",
        "-c",
        "grep CapEff /proc/self/status",
    ]);
    assert!(out.contains("0000000000000000"), "{out}");
    // Users resolve from the image's /etc/passwd and /etc/group.
    let out = agent.ok(&[
        "run",
        "--rm",
        "-u",
        "nobody",
        bb,
        "sh",
        "-c",
        "id -u; id -G; echo $HOME",
    ]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["65534", "65534", "50", "/home/nobody"]
    );
    // Read-only root, managed /etc files, environment and working directory.
    let (code, _, _) = agent.run(&["run", "--rm", "--read-only", bb, "touch", "/x"]);
    assert_ne!(code, 0, "a read-only root filesystem accepted a write");
    let out = agent.ok(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "-w",
        "/work/dir",
        "--add-host",
        "db:10.1.2.3",
        bb,
        "sh",
        "-c",
        "echo $A; pwd; grep -w db /etc/hosts; test -s /etc/resolv.conf && echo resolv",
    ]);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["1", "/work/dir", "10.1.2.3\tdb", "resolv"]
    );
}

#[test]
fn lifecycle_signals_and_exit_codes() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let (code, out, _) = agent.run(&[
        "run",
        "--name",
        "three",
        bb,
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!((code, out.as_str()), (3, "out\n"));
    assert_eq!(
        inspect(&agent, "three", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 3"
    );
    assert_eq!(agent.ok(&["wait", "three"]).trim(), "3");
    // A container's process starts as under Docker, with every signal at
    // its default and none blocked, whatever the agent inherited: the
    // writer of a pipe ends quietly when its reader goes.
    let defaults = "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n";
    let status = agent.ok(&["run", "--rm", bb, "grep", "^Sig[BI]", "/proc/self/status"]);
    assert_eq!(status, defaults);
    let (code, out, err) = agent.run(&["run", "--rm", bb, "sh", "-c", "yes | head -1"]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "y\n", ""));
    let logs = agent.berth(&["logs", "three"]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&logs.stderr), "err\n");
    // events --since replays what happened; --until ends the stream.
    let events = agent.ok(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        "container=three",
    ]);
    let actions: Vec<&str> = events.lines().filter_map(|l| l.split(' ').nth(2)).collect();
    // As Docker's run: the client attaches before the start.
    assert_eq!(actions, ["create", "attach", "start", "die"], "{events}");
    // create, start, stop with the stop signal, kill -s, restart, rename.
    let id = agent
        .ok(&["create", "--name", "svc", "--init", bb, "sleep", "300"])
        .trim()
        .to_string();
    assert_eq!(inspect(&agent, "svc", "{{.State.Status}}"), "created");
    agent.ok(&["start", "svc"]);
    assert_eq!(inspect(&agent, &id[..12], "{{.State.Running}}"), "true");
    let t = Instant::now();
    agent.ok(&["stop", "svc"]);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stop waited for the timeout: tini forwards SIGTERM"
    );
    assert_eq!(inspect(&agent, "svc", "{{.State.ExitCode}}"), "143");
    agent.ok(&["start", "svc"]);
    agent.ok(&["kill", "-s", "USR1", "svc"]);
    assert_eq!(agent.ok(&["wait", "svc"]).trim(), "138");
    agent.ok(&["restart", "-t", "1", "svc"]);
    assert_eq!(inspect(&agent, "svc", "{{.State.Status}}"), "running");
    agent.ok(&["pause", "svc"]);
    assert_eq!(inspect(&agent, "svc", "{{.State.Status}}"), "paused");
    assert!(agent.fails(&["exec", "svc", "true"]).contains("paused"));
    agent.ok(&["unpause", "svc"]);
    agent.ok(&["rename", "svc", "svc2"]);
    let status = agent.ok(&["exec", "svc2", "grep", "^Sig[BI]", "/proc/self/status"]);
    assert_eq!(status, defaults, "an exec'd process");
    // A process that ignores SIGTERM is killed after -t.
    let t = Instant::now();
    agent.ok(&["run", "-d", "--name", "stubborn", bb, "sleep", "300"]);
    agent.ok(&["stop", "-t", "1", "stubborn"]);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(inspect(&agent, "stubborn", "{{.State.ExitCode}}"), "137");
    // ps: filters, quiet, formats.
    let running = agent.ok(&["ps", "--format", "{{.Names}}"]);
    assert_eq!(running.trim(), "svc2");
    let exited = agent.ok(&[
        "ps",
        "-a",
        "--filter",
        "status=exited",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(exited.lines().count(), 2, "{exited}");
    assert_eq!(
        agent
            .ok(&["ps", "-aq", "--filter", "ancestor=bb"])
            .lines()
            .count(),
        3
    );
    let top = agent.ok(&["top", "svc2"]);
    assert!(top.contains("sleep 300"), "{top}");
    // rm: refused while running, forced with -f; nothing left behind.
    assert!(agent.fails(&["rm", "svc2"]).contains("stop it first"));
    assert!(agent
        .fails(&["rmi", "bb"])
        .contains("remove the container first"));
    agent.ok(&["rm", "-f", "svc2", "three", "stubborn"]);
    assert!(agent.ok(&["ps", "-aq"]).trim().is_empty());
    assert!(
        mounts_under(&agent.root()).is_empty(),
        "{:?}",
        mounts_under(&agent.root())
    );
    assert!(cgroup_dirs(&id).is_empty(), "{:?}", cgroup_dirs(&id));
    // run --rm leaves nothing.
    agent.ok(&["run", "--rm", bb, "true"]);
    assert!(agent.ok(&["ps", "-aq"]).trim().is_empty());
    // An attached run returns once the container is recorded as stopped,
    // so `rm` right after it never finds it running.
    for i in 0..10 {
        let name = format!("quick{i}");
        agent.ok(&["run", "--name", &name, bb, "true"]);
        agent.ok(&["rm", &name]);
    }
}

#[test]
fn limits_oom_fork_bomb_and_cpus() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    // A memory hog dies alone: 137, OOMKilled, and the agent lives on.
    let (code, _, _) = agent.run(&[
        "run",
        "--name",
        "hog",
        "-m",
        "32m",
        bb,
        "sh",
        "-c",
        "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
    ]);
    assert_eq!(code, 137);
    assert_eq!(inspect(&agent, "hog", "{{.State.OOMKilled}}"), "true");
    agent.ok(&["version"]);
    // A fork bomb stops at --pids-limit; the agent stays responsive.
    let id = agent
        .ok(&["run", "-d", "--pids-limit", "20", bb, "sleep", "60"])
        .trim()
        .to_string();
    agent.ok(&[
        "exec",
        "-d",
        &id,
        "sh",
        "-c",
        "for i in $(seq 200); do sleep 60 & done; wait",
    ]);
    std::thread::sleep(Duration::from_millis(800));
    let pids: u32 = cgroup_file(&id, "pids", "pids.current", "pids.current")
        .parse()
        .unwrap();
    assert!(pids <= 20, "{pids} processes under --pids-limit 20");
    let t = Instant::now();
    agent.ok(&["ps"]);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "the agent is slow during a fork bomb"
    );
    let stats = agent.ok(&["stats", "--no-stream", "--format", "json", &id]);
    let v: serde_json::Value = serde_json::from_str(stats.trim()).unwrap();
    assert_eq!(v["PIDs"], pids.to_string());
    agent.ok(&["rm", "-f", &id]);
    // --cpus and --cpu-shares land in the cgroup.
    let id = agent
        .ok(&[
            "run",
            "-d",
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
            bb,
            "sleep",
            "60",
        ])
        .trim()
        .to_string();
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert_eq!(cgroup_file(&id, "cpu", "", "cpu.max"), "50000 100000");
    } else {
        assert_eq!(cgroup_file(&id, "cpu", "cpu.cfs_quota_us", ""), "50000");
        assert_eq!(cgroup_file(&id, "cpu", "cpu.shares", ""), "512");
    }
    assert_eq!(
        inspect(&agent, &id, "{{.HostConfig.NanoCpus}}"),
        "500000000"
    );
    agent.ok(&["rm", "-f", &id]);
    assert!(cgroup_dirs(&id).is_empty());
}

#[test]
fn run_it_through_a_real_pty() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let mut cmd = agent.berth_cmd(&["run", "-it", "--rm", bb, "sh"]);
    cmd.env("TERM", "xterm");
    let mut s = PtySession::spawn(cmd);
    s.read_until("# ", Duration::from_secs(10));
    s.write("tty; stty size; echo $((6*7))\r");
    let out = s.read_until("42", Duration::from_secs(10));
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(
        out.contains("24 80"),
        "the terminal size came through: {out}"
    );
    s.write("exit 5\r");
    assert_eq!(s.wait(Duration::from_secs(10)), 5);
    // Ctrl-C reaches the container's foreground process through the pty.
    let mut s = PtySession::spawn(agent.berth_cmd(&["run", "-it", "--rm", bb, "sh"]));
    s.read_until("# ", Duration::from_secs(10));
    s.write("sleep 100; echo interrupted\r");
    std::thread::sleep(Duration::from_millis(300));
    s.write("\x03");
    s.write("echo alive-$((1+1))\r");
    s.read_until("alive-2", Duration::from_secs(5));
    s.write("exit 0\r");
    assert_eq!(s.wait(Duration::from_secs(10)), 0);
    // exec -it, too.
    let id = agent
        .ok(&["run", "-d", bb, "sleep", "60"])
        .trim()
        .to_string();
    let mut s = PtySession::spawn(agent.berth_cmd(&["exec", "-it", &id, "sh"]));
    s.read_until("# ", Duration::from_secs(10));
    s.write("tty; exit 4\r");
    assert_eq!(s.wait(Duration::from_secs(10)), 4);
    // Ctrl-P Ctrl-Q detaches: the CLI returns 0 and the container runs on;
    // attach takes it up again.
    let mut s = PtySession::spawn(agent.berth_cmd(&["run", "-it", "--name", "det", bb, "sh"]));
    s.read_until("# ", Duration::from_secs(10));
    s.write("\x10\x11");
    assert_eq!(s.wait(Duration::from_secs(10)), 0);
    assert_eq!(
        agent
            .ok(&["inspect", "-f", "{{.State.Status}}", "det"])
            .trim(),
        "running"
    );
    let mut s = PtySession::spawn(agent.berth_cmd(&["attach", "det"]));
    s.write("echo back-$((2+2))\r");
    s.read_until("back-4", Duration::from_secs(5));
    s.write("exit 3\r");
    assert_eq!(s.wait(Duration::from_secs(10)), 3);
}

#[test]
fn stdin_logs_follow_and_exec() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    // -i: stdin reaches the container and its end closes it.
    let mut child = agent
        .berth_cmd(&["run", "-i", "--rm", bb, "sh", "-c", "tr a-z A-Z; echo done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO\ndone\n");
    // logs -f shows lines as they come and ends when the container stops.
    let id = agent
        .ok(&[
            "run",
            "-d",
            bb,
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do echo line $i; sleep 0.3; done",
        ])
        .trim()
        .to_string();
    let t = Instant::now();
    let out = agent.ok(&["logs", "-f", &id]);
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(
        t.elapsed() >= Duration::from_millis(600),
        "logs -f returned before the container ended"
    );
    assert_eq!(agent.ok(&["logs", "--tail", "2", &id]), "line 4\nline 5\n");
    let stamped = agent.ok(&["logs", "-t", "--tail", "1", &id]);
    assert!(
        stamped.starts_with("20") && stamped.contains("Z line 5"),
        "{stamped}"
    );
    // exec: environment, working directory, user, exit code, stdin.
    let id = agent
        .ok(&["run", "-d", bb, "sleep", "60"])
        .trim()
        .to_string();
    let out = agent.ok(&[
        "exec",
        "-e",
        "X=7",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        &id,
        "sh",
        "-c",
        "echo $X $(pwd) $(id -u)",
    ]);
    assert_eq!(out.trim(), "7 /tmp 65534");
    // An exec'd process is under the container's seccomp filter too.
    let out = agent.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status | tr -d '\\t'; unshare -n true 2>/dev/null || echo refused",
    ]);
    assert_eq!(out, "Seccomp:2\nrefused\n");
    let (code, _, _) = agent.run(&["exec", &id, "sh", "-c", "exit 9"]);
    assert_eq!(code, 9);
    let (code, _, err) = agent.run(&["exec", &id, "/no/such/binary"]);
    assert_eq!(code, 127, "{err}");
    let mut child = agent
        .berth_cmd(&["exec", "-i", &id, "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through exec\n")
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout),
        "through exec\n"
    );
    // The exec joined the container's PID namespace.
    let out = agent.ok(&["exec", &id, "sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline"]);
    assert_eq!(out.trim(), "sleep 60");
}

#[test]
fn bad_input_gets_one_sentence() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    assert!(agent
        .fails(&["stop", "nosuch"])
        .contains("no such container: nosuch"));
    assert!(agent
        .fails(&["logs", "nosuch"])
        .contains("no such container"));
    // Refused before anything runs, by the CLI or the agent: Docker's 125.
    for (args, says) in [
        (
            vec!["run", "--rm", "-m", "lots", bb, "true"],
            "invalid size",
        ),
        (
            vec!["run", "--rm", "--restart", "sometimes", bb, "true"],
            "invalid restart policy",
        ),
        (
            vec!["run", "--rm", "--restart", "always", bb, "true"],
            "cannot specify both",
        ),
        (
            vec!["run", "--rm", "--cap-add", "bogus", bb, "true"],
            "unknown capability",
        ),
        (
            vec![
                "run",
                "--rm",
                "--ulimit",
                "nofile=99999999:99999999",
                bb,
                "true",
            ],
            "hard limit",
        ),
        (
            vec!["run", "--rm", "-u", "ghost", bb, "true"],
            "unable to find user ghost",
        ),
        (
            vec!["run", "--rm", "--name", "a/b", bb, "true"],
            "invalid container name",
        ),
        (
            vec!["run", "--rm", "--network", "container:web", bb, "true"],
            "not built",
        ),
    ] {
        let (code, _, err) = agent.run(&args);
        assert_eq!(code, 125, "{args:?}: {err}");
        assert!(
            err.contains(says) && err.trim().lines().count() == 1,
            "{args:?}: {err}"
        );
    }
    let (code, _, err) = agent.run(&["run", "--rm", bb, "/no/such/binary"]);
    assert_eq!(code, 127, "{err}");
    assert!(
        agent.ok(&["ps", "-aq"]).trim().is_empty(),
        "a failed --rm run left a container"
    );
    agent.ok(&["create", "--name", "dup", bb, "true"]);
    // As Docker's CLI: `create` reports the engine's refusal with 1.
    let (code, _, err) = agent.run(&["create", "--name", "dup", bb, "true"]);
    assert_eq!(code, 1);
    assert!(err.contains("already in use"), "{err}");
    assert!(agent.fails(&["kill", "dup"]).contains("is not running"));
}
