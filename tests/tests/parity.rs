//! Docker's habits, end to end: what the CLI hands the container, and the
//! exit codes scripts read (`../shared/parity-2026-12-06.md`).

use berth_tests::containers::agent_with_busybox;
use berth_tests::Agent;

/// Runs `berth ARGS`; returns (exit code, stdout, stderr).
fn run(agent: &Agent, args: &[&str]) -> (i32, String, String) {
    let (code, out, err) = agent.run(args);
    assert!(!err.contains("panicked"), "berth {args:?}: {err}");
    (code, out, err)
}

#[test]
fn words_after_the_image_or_the_container_are_the_commands() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    fn with<'a>(rest: &[&'a str]) -> Vec<&'a str> {
        [&["run", "--rm", "--network", "none"][..], rest].concat()
    }
    let net = ["--network", "none"];
    // Flags of Berth's own after the image belong to the container.
    let out = agent.ok(&with(&["--entrypoint", "/bin/sh", bb, "-c", "echo ok"]));
    assert_eq!(out, "ok\n");
    let out = agent.ok(&with(&["--entrypoint", "ls", bb, "-d", "/etc"]));
    assert_eq!(out, "/etc\n", "ran detached instead of listing");
    let out = agent.ok(&with(&[bb, "env"]));
    assert!(!out.contains("X=1"), "{out}");
    let out = agent.ok(&with(&[bb, "echo", "-e", "X=1"]));
    assert_eq!(out, "X=1\n");
    // `--` after the image is passed on.
    let out = agent.ok(&with(&[bb, "echo", "--", "-c"]));
    assert_eq!(out, "-- -c\n");
    // exec: flags after the container are the command's.
    agent.ok(&[
        &["run", "-d", "--name", "execs"][..],
        &net[..],
        &[bb, "sleep", "60"],
    ]
    .concat());
    let out = agent.ok(&["exec", "execs", "ls", "-d", "/etc"]);
    assert_eq!(out, "/etc\n");
    let out = agent.ok(&["exec", "execs", "sh", "-c", "echo $0", "-i"]);
    assert_eq!(out, "-i\n");
    agent.ok(&["rm", "-f", "execs"]);
}

#[test]
fn exit_codes_follow_dockers() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    agent.ok(&[
        "run",
        "-d",
        "--name",
        "codes",
        "--network",
        "none",
        bb,
        "sleep",
        "60",
    ]);
    let cases: &[(&[&str], i32)] = &[
        // Refused before anything runs: 125.
        (&["run", "--bogus", bb], 125),
        (&["ps", "--bogus"], 125),
        (
            &["run", "--rm", "--env-file", "/nonexistent", bb, "true"],
            125,
        ),
        (&["run", "--rm", "-p", "abc", bb, "true"], 125),
        (&["run", "--rm", "-m", "64x", bb, "true"], 125),
        (&["run", "--rm", "--restart", "always", bb, "true"], 125),
        (
            &["run", "--rm", "--network", "no-such-net", bb, "true"],
            125,
        ),
        (&["create", "--bogus", bb], 125),
        // A missing argument or an unknown command: 1.
        (&["run"], 1),
        (&["exec", "codes"], 1),
        (&["no-such-command"], 1),
        // The container's command: not runnable 126, not found 127.
        (&["run", "--rm", "--network", "none", bb, "/etc"], 126),
        (
            &["run", "--rm", "--network", "none", bb, "/etc/passwd"],
            126,
        ),
        (
            &["run", "--rm", "--network", "none", bb, "no-such-command"],
            127,
        ),
        (&["exec", "codes", "/etc/passwd"], 126),
        (&["exec", "codes", "no-such-command"], 127),
        // The command's own status.
        (
            &["run", "--rm", "--network", "none", bb, "sh", "-c", "exit 3"],
            3,
        ),
        (&["exec", "codes", "sh", "-c", "exit 4"], 4),
    ];
    let mut wrong = Vec::new();
    for (args, want) in cases {
        let (code, _, err) = run(&agent, args);
        if code != *want {
            wrong.push(format!("berth {args:?}: {code}, want {want}: {err}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    agent.ok(&["rm", "-f", "codes"]);
}

#[test]
fn output_cut_short_by_its_reader_ends_quietly() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let cmd = format!(
        "{} image inspect {bb} | head -c 10 >/dev/null; {} inspect {bb} | head -c 1",
        berth_tests::bin("berth").display(),
        berth_tests::bin("berth").display()
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .env("BERTH_HOST", agent.host())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.is_empty(), "{err}");
}

#[test]
fn formats_are_go_templates_everywhere() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    agent.ok(&[
        "run", "-d", "--name", "fmt", "-e", "X=1", "-l", "k=v", bb, "sleep", "60",
    ]);
    agent.ok(&["volume", "create", "fmtvol"]);
    agent.ok(&["network", "create", "fmtnet"]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["inspect", "-f", "{{.Name}} {{.State.Running}}", "fmt"],
            "/fmt true\n",
        ),
        (
            &[
                "inspect",
                "-f",
                "{{index .Config.Labels \"k\"}} {{len .Config.Labels}}",
                "fmt",
            ],
            "v 2\n",
        ),
        (
            &[
                "inspect",
                "-f",
                "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{end}}",
                "fmt",
            ],
            "k=vmade-by=berth-tests\n",
        ),
        (
            &["inspect", "-f", "{{.Config.Labels}}", "fmt"],
            "map[k:v made-by:berth-tests]\n",
        ),
        (
            &[
                "inspect",
                "-f",
                "{{if gt (len .Id) 10}}long{{else}}short{{end}}",
                "fmt",
            ],
            "long\n",
        ),
        (
            &[
                "inspect",
                "-f",
                "{{upper .Config.Labels.k}} {{json .Config.Labels}}",
                "fmt",
            ],
            "V {\"k\":\"v\",\"made-by\":\"berth-tests\"}\n",
        ),
        (&["image", "inspect", "-f", "{{.Os}}", bb], "linux\n"),
        (
            &["images", "--format", "{{.Repository}}:{{.Tag}}", bb],
            "bb:latest\n",
        ),
        (
            &["volume", "inspect", "-f", "{{.Name}} {{.Driver}}", "fmtvol"],
            "fmtvol local\n",
        ),
        (
            &["network", "inspect", "-f", "{{.Name}}", "fmtnet"],
            "fmtnet\n",
        ),
        (
            &["ps", "--format", "{{.Names}} {{.State}}"],
            "fmt running\n",
        ),
        (
            &["ps", "--format", "table {{.Names}}\t{{.Image}}"],
            "NAMES     IMAGE\nfmt       bb\n",
        ),
        (&["version", "-f", "{{.Server.ApiVersion}}"], "1.0\n"),
        (
            &["stats", "--no-stream", "--format", "{{.Name}}", "fmt"],
            "fmt\n",
        ),
        (
            &["system", "df", "--format", "{{.Type}}"],
            "Images\nContainers\nLocal Volumes\nBuild Cache\n",
        ),
    ];
    let mut wrong = Vec::new();
    for (args, want) in cases {
        let (code, out, err) = run(&agent, args);
        if code != 0 || out != *want {
            wrong.push(format!(
                "berth {args:?}: rc {code}, {out:?} (want {want:?}) {err}"
            ));
        }
    }
    let (code, _, err) = run(&agent, &["inspect", "-f", "{{.Nope}}", "fmt"]);
    if code != 1 || !err.contains("Nope") {
        wrong.push(format!("inspect -f {{{{.Nope}}}}: rc {code}: {err}"));
    }
    let (code, out, _) = run(&agent, &["inspect", "-f", "{{.Config.Env}}", "fmt"]);
    if code != 0 || !out.starts_with('[') || out.contains('"') || !out.contains("X=1") {
        wrong.push(format!("inspect -f {{{{.Config.Env}}}}: rc {code}: {out}"));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    agent.ok(&["rm", "-f", "fmt"]);
}

#[test]
fn cp_out_follows_dockers_rules() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    agent.ok(&[
        "run", "-d", "--name", "cpq", "--network", "none", bb, "sh", "-c",
        "mkdir -p /q/d1/d2 /q/e1 && echo 2 > /q/d1/d2/f2 && echo 3 > /q/e1/f3 && echo 1 > /q/f1 && sleep 60",
    ]);
    // Wait for the tree.
    for _ in 0..50 {
        if run(&agent, &["exec", "cpq", "test", "-f", "/q/f1"]).0 == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let host = tempfile::tempdir().unwrap();
    let files = |dir: &std::path::Path| {
        let out = std::process::Command::new("find")
            .arg(".")
            .current_dir(dir)
            .output()
            .unwrap();
        let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    let q1 = host.path().join("q1");
    agent.ok(&["cp", "cpq:/q/.", q1.to_str().unwrap()]);
    assert_eq!(
        files(&q1),
        [
            ".",
            "./d1",
            "./d1/d2",
            "./d1/d2/f2",
            "./e1",
            "./e1/f3",
            "./f1"
        ],
        "the whole tree, contents at the top"
    );
    let into = host.path().join("into");
    std::fs::create_dir(&into).unwrap();
    agent.ok(&["cp", "cpq:/q", into.to_str().unwrap()]);
    assert!(into.join("q/d1/d2/f2").is_file());
    // The files Berth manages in /etc come out as the container sees them.
    let h = host.path().join("hostname");
    agent.ok(&["cp", "cpq:/etc/hostname", h.to_str().unwrap()]);
    let name = agent.ok(&["exec", "cpq", "hostname"]);
    assert_eq!(std::fs::read_to_string(&h).unwrap(), name);
    let hosts = host.path().join("hosts");
    agent.ok(&["cp", "cpq:/etc/hosts", hosts.to_str().unwrap()]);
    assert!(std::fs::read_to_string(&hosts)
        .unwrap()
        .contains("localhost"));
    // A tar from stdin into a missing folder (row 22) is compared with
    // Docker's in docker_parity.rs.
    // A file into a missing folder writes nothing.
    let (code, _, err) = run(
        &agent,
        &[
            "cp",
            "cpq:/q/f1",
            host.path().join("no/f").to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(!host.path().join("no").exists());
    agent.ok(&["rm", "-f", "cpq"]);
}

#[test]
fn run_flags_scripts_use() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // --cidfile: the id is written, and a second run refuses the same file.
    let cid = dir.path().join("cid");
    let cid_s = cid.to_str().unwrap();
    let out = agent.ok(&[
        "run",
        "-d",
        "--cidfile",
        cid_s,
        "--network",
        "none",
        bb,
        "sleep",
        "60",
    ]);
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), out.trim());
    let (code, _, err) = run(&agent, &["run", "--rm", "--cidfile", cid_s, bb, "true"]);
    assert_eq!(code, 125, "{err}");
    agent.ok(&["rm", "-f", out.trim()]);
    // --pull never: a missing image is not pulled.
    let (code, _, err) = run(
        &agent,
        &["run", "--rm", "--pull", "never", "nosuch/image:1", "true"],
    );
    assert_eq!(code, 125, "{err}");
    assert!(!err.contains("Unable to find image"), "{err}");
    // -a stdout: only the container's stdout.
    let out = agent.berth(&[
        "run",
        "--rm",
        "-a",
        "stdout",
        "--network",
        "none",
        bb,
        "sh",
        "-c",
        "echo out; echo err >&2",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("err"));
    // --tty=false and -i=false are accepted.
    let out = agent.ok(&[
        "run",
        "--rm",
        "--tty=false",
        "--network",
        "none",
        bb,
        "echo",
        "plain",
    ]);
    assert_eq!(out, "plain\n");
    // A relative bind source (row 20) is compared with Docker's in
    // docker_parity.rs.
    // More CPUs than the host has is refused.
    let (code, _, err) = run(&agent, &["run", "--rm", "--cpus", "999", bb, "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("CPUs available"), "{err}");
}

#[test]
fn history_and_system_prune() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let table = agent.ok(&["history", bb]);
    assert!(table.starts_with("IMAGE"), "{table}");
    assert!(table.contains("CREATED BY"), "{table}");
    let ids = agent.ok(&["history", "-q", bb]);
    assert!(!ids.trim().is_empty());
    let full = agent.ok(&["history", "--no-trunc", "--format", "{{.ID}}", bb]);
    assert!(
        full.lines()
            .all(|l| l == "<missing>" || l.starts_with("sha256:")),
        "{full}"
    );
    agent.ok(&[
        "create",
        "--name",
        "stopped",
        "--network",
        "none",
        bb,
        "true",
    ]);
    agent.ok(&["network", "create", "unused"]);
    let out = agent.ok(&["system", "prune", "-f"]);
    assert!(
        out.contains("Deleted Containers:") && out.contains("Deleted Networks:"),
        "{out}"
    );
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert!(agent.ok(&["ps", "-aq"]).trim().is_empty());
    assert!(!agent.ok(&["network", "ls"]).contains("unused"));
    // The image is still there: in use or not, it is not dangling.
    assert!(agent.ok(&["images", "-q", bb]).trim().len() >= 12);
    // Without -f it asks, as Docker's does; no answer is no.
    let (code, out, _) = run(&agent, &["system", "prune"]);
    assert_eq!(code, 0);
    assert!(
        out.ends_with("Are you sure you want to continue? [y/N] "),
        "{out}"
    );
    assert!(agent.ok(&["images", "-q", bb]).trim().len() >= 12);
}

#[test]
fn login_asks_for_the_user_and_the_password_without_echo() {
    use berth_tests::containers::PtySession;
    use berth_tests::registry::{Auth, Registry, PASS, USER};
    if !berth_tests::need_root() {
        return;
    }
    let reg = Registry::start(Auth::Basic);
    let agent = Agent::start();
    let wait = std::time::Duration::from_secs(10);
    let mut s = PtySession::spawn(agent.berth_cmd(&["login", &reg.addr]));
    s.read_until("Username: ", wait);
    s.write(&format!("{USER}\r"));
    s.read_until("Password: ", wait);
    s.write(&format!("{PASS}\r"));
    let out = s.read_until("Login Succeeded", wait);
    assert!(!out.contains(PASS), "the password was echoed: {out}");
    assert_eq!(s.wait(wait), 0);
}

#[test]
fn volumes_from_shares_another_containers_volumes() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let bind = format!("{}:/b", dir.path().display());
    agent.ok(&[
        "create",
        "--name",
        "holder",
        "-v",
        "shared:/data",
        "-v",
        &bind,
        "--network",
        "none",
        bb,
        "true",
    ]);
    agent.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "holder",
        "--network",
        "none",
        bb,
        "sh",
        "-c",
        "echo hi > /data/f; echo b > /b/f",
    ]);
    let out = agent.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "holder:ro",
        "--network",
        "none",
        bb,
        "sh",
        "-c",
        "cat /data/f /b/f; touch /data/x 2>/dev/null || echo read-only",
    ]);
    assert_eq!(out, "hi\nb\nread-only\n");
    let (code, _, err) = run(
        &agent,
        &["run", "--rm", "--volumes-from", "nosuch", bb, "true"],
    );
    assert_eq!(code, 125, "{err}");
    agent.ok(&["rm", "holder"]);
}

#[test]
fn the_hosts_network_keeps_the_hosts_name() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    // The agent runs in a network namespace of its own; its host name is
    // the machine's (UTS is not separated).
    let host = String::from_utf8(
        std::process::Command::new("hostname")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let out = agent.ok(&["run", "--rm", "--network", "host", bb, "hostname"]);
    assert_eq!(out, host);
    let out = agent.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "-h",
        "mine",
        bb,
        "hostname",
    ]);
    assert_eq!(out, "mine\n");
}

#[test]
fn more_run_flags_reach_the_container() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let run_in = |flags: &[&str], script: &str| {
        let args = [&["run", "--rm"][..], flags, &[bb, "sh", "-c", script]].concat();
        agent.ok(&args)
    };
    // --group-add by name (from the image's /etc/group) and by id.
    let out = run_in(&["--group-add", "nogroup", "--group-add", "1234"], "id -G");
    let groups: Vec<&str> = out.split_whitespace().collect();
    assert!(groups.contains(&"1234"), "{out}");
    // --sysctl of a namespaced key.
    let out = run_in(
        &["--sysctl", "net.ipv4.ip_unprivileged_port_start=100"],
        "cat /proc/sys/net/ipv4/ip_unprivileged_port_start",
    );
    assert_eq!(out, "100\n");
    let (code, _, err) = run(
        &agent,
        &["run", "--rm", "--sysctl", "kernel.hostname=x", bb, "true"],
    );
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("not allowed in a container"), "{err}");
    // --shm-size.
    let out = run_in(
        &["--shm-size", "128m", "--network", "none"],
        "df -k /dev/shm | tail -1 | awk '{print $2}'",
    );
    assert_eq!(out, "131072\n");
    // --cpuset-cpus.
    let out = run_in(
        &["--cpuset-cpus", "0", "--network", "none"],
        "grep Cpus_allowed_list /proc/self/status | cut -f2",
    );
    assert_eq!(out, "0\n");
    // --security-opt.
    let out = run_in(
        &["--security-opt", "no-new-privileges", "--network", "none"],
        "grep NoNewPrivs /proc/self/status | cut -f2",
    );
    assert_eq!(out, "1\n");
    let out = run_in(
        &["--security-opt", "seccomp=unconfined", "--network", "none"],
        "grep Seccomp: /proc/self/status | cut -f2",
    );
    assert_eq!(out, "0\n");
    let (code, _, err) = run(
        &agent,
        &["run", "--rm", "--security-opt", "bogus", bb, "true"],
    );
    assert_eq!(code, 125, "{err}");
    // --expose shows in the container's config.
    agent.ok(&[
        "create", "--name", "exposed", "--expose", "80", "--expose", "53/udp", bb, "true",
    ]);
    let out = agent.ok(&["inspect", "-f", "{{json .Config.ExposedPorts}}", "exposed"]);
    assert!(
        out.contains("\"80/tcp\"") && out.contains("\"53/udp\""),
        "{out}"
    );
    agent.ok(&["rm", "exposed"]);
}
