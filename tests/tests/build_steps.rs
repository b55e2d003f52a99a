//! `berth build` beyond the everyday Dockerfile: a build the user stops
//! half-way leaves nothing behind, ADD fetches a URL (or says why it
//! cannot), RUN steps get the network `--network` asks for, `--platform`
//! takes only the engine's own, `--pull` fetches the base again, the
//! cache outlives the agent, and only the files the Dockerfile can read
//! are sent.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_tests::build::{containers, context, BuildEnv};
use berth_tests::containers::{host_arch, mounts_under};
use berth_tests::images::{tar_of, E};

#[test]
fn a_build_stopped_half_way_leaves_no_container_mount_or_workspace() {
    let Some(env) = BuildEnv::start() else {
        return;
    };
    let text = format!("FROM {}\nRUN echo started; sleep 67\n", env.base);
    let ctx = context(&[("Dockerfile", &text)]);
    let mut child = env
        .agent
        .berth_cmd(&["build", "--progress", "plain", ctx.path().to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the RUN step's container, then stop the client as Ctrl-C
    // (or a closed terminal) would.
    let deadline = Instant::now() + Duration::from_secs(30);
    while containers(&env.agent).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the RUN step never started\n{}",
            env.agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let work = env.agent.root().join("build/work");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = containers(&env.agent);
        let mounts = mounts_under(&env.agent.root());
        let files: Vec<_> = std::fs::read_dir(&work)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        if left.is_empty() && mounts.is_empty() && files.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a stopped build left containers {left:?}, mounts {mounts:?}, workspace {files:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let sleepers = env.agent.sh("pgrep -fx 'sleep [6]7' || true");
    assert!(
        String::from_utf8_lossy(&sleepers.stdout).trim().is_empty(),
        "the RUN step's process outlived the build"
    );
}

#[test]
fn add_fetches_a_url_and_says_when_it_cannot() {
    let Some(env) = BuildEnv::start() else {
        return;
    };
    // A web server in the agent's network, where the agent fetches.
    let listener = env
        .agent
        .in_net(|| TcpListener::bind("127.0.0.1:0").unwrap());
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let body = "fetched over http\n";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let text = format!(
        "FROM {}\nADD http://127.0.0.1:{port}/files/hello.txt /web/\n",
        env.base
    );
    let ctx = context(&[("Dockerfile", &text)]);
    env.build_ok(ctx.path(), &["-t", "fetched"]);
    let out = env.agent.ok(&[
        "run",
        "--rm",
        "fetched",
        "sh",
        "-c",
        "cat /web/hello.txt; stat -c %a /web/hello.txt",
    ]);
    assert_eq!(
        out, "fetched over http\n600\n",
        "ADD of a URL keeps its name, mode 600"
    );

    let text = format!("FROM {}\nADD http://127.0.0.1:1/nothing.txt /n\n", env.base);
    let ctx = context(&[("Dockerfile", &text)]);
    let b = env.build(ctx.path(), &[]);
    assert_ne!(b.code, 0);
    assert!(
        b.stderr.contains("Dockerfile:2") && b.stderr.contains("failed to fetch"),
        "{}",
        b.stderr
    );
}

/// A web server on every address of the agent's network that answers
/// every request with `reached`; its port.
fn serve_everywhere(env: &BuildEnv) -> u16 {
    let listener = env.agent.in_net(|| TcpListener::bind("0.0.0.0:0").unwrap());
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nreached\n"
            );
        }
    });
    port
}

/// The network interfaces a RUN step saw, as the image kept them.
fn interfaces(env: &BuildEnv, image: &str) -> Vec<String> {
    env.agent
        .ok(&["run", "--rm", image, "cat", "/ifs"])
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn run_steps_get_the_network_the_build_asks_for() {
    let Some(env) = BuildEnv::start() else {
        return;
    };
    let port = serve_everywhere(&env);
    let port_arg = format!("PORT={port}");
    // The interfaces a step sees.
    let text = format!(
        "FROM {}\nRUN tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort > /ifs\n",
        env.base
    );
    let ctx = context(&[("Dockerfile", &text)]);
    env.build_ok(ctx.path(), &["--network", "none", "-t", "ifs-none"]);
    assert_eq!(interfaces(&env, "ifs-none"), ["lo"], "--network none");
    env.build_ok(ctx.path(), &["-t", "ifs-default"]);
    let ifs = interfaces(&env, "ifs-default");
    assert!(
        ifs.contains(&"lo".to_string()) && ifs.len() > 1,
        "the default network gives a step an interface besides lo: {ifs:?}"
    );

    // A step that asks the server: through the default route (the
    // bridge's gateway) when there is one, else on loopback. (nc, as
    // busybox-static's wget crashes without the C library's NSS files.)
    let text = format!(
        "FROM {}\nARG PORT\nRUN gw=$(ip route | awk '/^default/ {{print $3}}'); printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 \"${{gw:-127.0.0.1}}\" \"$PORT\" > /got\n",
        env.base
    );
    let ctx = context(&[("Dockerfile", &text)]);
    for (mode, tag) in [("default", "net-default"), ("host", "net-host")] {
        env.build_ok(
            ctx.path(),
            &["--network", mode, "--build-arg", &port_arg, "-t", tag],
        );
        let got = env.agent.ok(&["run", "--rm", tag, "cat", "/got"]);
        assert!(
            got.ends_with("\r\n\r\nreached\n"),
            "--network {mode}: {got:?}"
        );
    }
    let b = env.build(
        ctx.path(),
        &[
            "--network",
            "none",
            "--build-arg",
            &port_arg,
            "-t",
            "net-none",
        ],
    );
    assert_ne!(
        b.code, 0,
        "a RUN step with --network none reached the server:\n{}",
        b.stderr
    );
    assert_eq!(b.step("RUN gw=").status, "ERROR", "{}", b.stderr);
    let (code, _, _) = env.agent.run(&["image", "inspect", "net-none"]);
    assert_ne!(code, 0, "a failed build names no image");

    let b = env.build(ctx.path(), &["--network", "bridge2", "-t", "x"]);
    assert_ne!(b.code, 0);
    assert!(
        b.stderr.contains("use default, none or host") && !b.stderr.contains("panicked"),
        "an unknown network mode is refused with a sentence:\n{}",
        b.stderr
    );
}

#[test]
fn only_the_engines_own_platform_is_built() {
    let Some(env) = BuildEnv::start() else {
        return;
    };
    let text = format!("FROM {}\nRUN echo built > /f\n", env.base);
    let ctx = context(&[("Dockerfile", &text)]);
    let other = if host_arch() == "arm64" {
        "linux/amd64"
    } else {
        "linux/arm64"
    };
    let b = env.build(ctx.path(), &["--platform", other, "-t", "other"]);
    assert_ne!(b.code, 0, "a build for {other} ran:\n{}", b.stderr);
    assert!(
        b.stderr.contains(&format!("cannot build for {other}"))
            && b.stderr.contains(&format!("linux/{}", host_arch()))
            && !b.stderr.contains("panicked"),
        "the refusal names the asked and the own platform:\n{}",
        b.stderr
    );
    assert!(
        !b.stderr.contains("RUN echo"),
        "no step runs for a refused platform:\n{}",
        b.stderr
    );
    let b = env.build(ctx.path(), &["--platform", "linux/", "-t", "bad"]);
    assert_ne!(b.code, 0, "an unreadable platform is refused");
    assert!(!b.stderr.contains("panicked"), "{}", b.stderr);

    let own = format!("linux/{}", host_arch());
    env.build_ok(ctx.path(), &["--platform", &own, "-t", "own"]);
    let out = env.agent.ok(&["image", "inspect", "own"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["Architecture"], host_arch());
    assert_eq!(v[0]["Os"], "linux");
    assert_eq!(
        env.agent.ok(&["run", "--rm", "own", "cat", "/f"]),
        "built\n"
    );

    // BuildKit's platform ARGs: FROM lines see them, a stage once it
    // declares them; an undeclared one is not in RUN's environment.
    let text = format!(
        "FROM --platform=$BUILDPLATFORM {}\nARG TARGETARCH TARGETPLATFORM\n\
         RUN echo \"$TARGETARCH $TARGETPLATFORM [$BUILDOS]\" > /p\n",
        env.base
    );
    let ctx = context(&[("Dockerfile", &text)]);
    env.build_ok(ctx.path(), &["-t", "args"]);
    assert_eq!(
        env.agent.ok(&["run", "--rm", "args", "cat", "/p"]),
        format!("{0} linux/{0} []\n", host_arch())
    );
}

#[test]
fn pull_fetches_the_base_again_from_the_registry() {
    let Some(env) = BuildEnv::start() else {
        return;
    };
    let text = format!(
        "FROM {}\nRUN (cat /etc/base-version 2>/dev/null || echo v1) > /seen\n",
        env.base
    );
    let ctx = context(&[("Dockerfile", &text)]);
    env.build_ok(ctx.path(), &["-t", "p"]);
    let seen = |tag: &str| env.agent.ok(&["run", "--rm", tag, "cat", "/seen"]);
    assert_eq!(seen("p"), "v1\n");
    // The registry's base moves on.
    env.push_base(&[tar_of(&[
        E::Dir("etc/", 0o755, 0, 0),
        E::File("etc/base-version", 0o644, 0, 0, b"v2\n"),
    ])]);
    let b = env.build_ok(ctx.path(), &["-t", "p"]);
    assert!(
        b.cached("RUN (cat"),
        "without --pull the stored base is used:\n{}",
        b.stderr
    );
    assert_eq!(seen("p"), "v1\n");
    let b = env.build_ok(ctx.path(), &["--pull", "-t", "p"]);
    assert!(
        !b.cached("RUN (cat"),
        "a step over a new base came from the cache:\n{}",
        b.stderr
    );
    assert_eq!(seen("p"), "v2\n", "--pull built on the registry's base");
    let out = env
        .agent
        .ok(&["run", "--rm", &env.base, "cat", "/etc/base-version"]);
    assert_eq!(out, "v2\n", "--pull stored the new base under its name");
    // Pulling an unchanged base keeps the cache.
    let b = env.build_ok(ctx.path(), &["--pull", "-t", "p"]);
    assert!(b.cached("RUN (cat"), "{}", b.stderr);
}

#[test]
fn the_build_cache_outlives_an_agent_restart() {
    let Some(mut env) = BuildEnv::start() else {
        return;
    };
    let text = format!(
        "FROM {} AS tool\nRUN echo tool > /tool\nFROM {}\nWORKDIR /app\nCOPY a.txt ./\nCOPY --from=tool /tool ./\nRUN cat a.txt tool > both\nENV K=v\nCMD [\"cat\", \"both\"]\n",
        env.base, env.base
    );
    let ctx = context(&[("Dockerfile", &text), ("a.txt", "a\n")]);
    let id = env.build_id(ctx.path(), &["-t", "kept"]);
    env.agent.restart();
    let b = env.build_ok(ctx.path(), &["-t", "kept"]);
    let steps = b.instruction_steps();
    assert_eq!(steps.len(), 4, "{}", b.stderr);
    for s in &steps {
        assert_eq!(
            s.status, "CACHED",
            "{} was not cached after the restart:\n{}",
            s.name, b.stderr
        );
    }
    assert_eq!(env.build_id(ctx.path(), &["-t", "kept"]), id);
    assert_eq!(env.agent.ok(&["run", "--rm", "kept"]), "a\ntool\n");
}

/// The names in the context the agent holds while a build of `ctx` runs
/// its (sleeping) RUN step.
fn context_during_build(env: &BuildEnv, ctx: &std::path::Path) -> Vec<String> {
    let mut child = env
        .agent
        .berth_cmd(&["build", "--progress", "plain", ctx.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while containers(&env.agent).is_empty() {
        assert!(Instant::now() < deadline, "the RUN step never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let work = env.agent.root().join("build/work");
    let mut names = Vec::new();
    for dir in std::fs::read_dir(&work).unwrap().flatten() {
        let tar = std::fs::File::open(dir.path().join("context.tar")).unwrap();
        for e in tar::Archive::new(tar).entries().unwrap().flatten() {
            names.push(e.path().unwrap().display().to_string());
        }
    }
    assert!(child.wait().unwrap().success(), "the build failed");
    names
}

#[test]
fn a_build_sends_only_the_files_its_sources_can_match() {
    let Some(env) = BuildEnv::start() else {
        return;
    };
    // A base stored here, without ONBUILD triggers.
    env.agent.ok(&["pull", &env.base]);
    let text = format!("FROM {}\nCOPY src/*.txt /a/\nRUN sleep 3\n", env.base);
    let ctx = context(&[
        ("Dockerfile", &text),
        ("src/a.txt", "a\n"),
        ("src/b.md", "b\n"),
        ("unused/big.bin", "x\n"),
    ]);
    let sent = context_during_build(&env, ctx.path());
    assert!(
        sent.contains(&"src/a.txt".to_string()) && sent.contains(&"Dockerfile".to_string()),
        "{sent:?}"
    );
    assert!(
        !sent
            .iter()
            .any(|n| n.contains("big.bin") || n.contains("b.md")),
        "files no source matches were sent: {sent:?}"
    );
    // COPY . sends everything.
    let text = format!("FROM {}\nCOPY . /all/\nRUN sleep 3\n", env.base);
    std::fs::write(ctx.path().join("Dockerfile"), text).unwrap();
    let sent = context_during_build(&env, ctx.path());
    for want in ["unused/big.bin", "src/b.md", "src/a.txt"] {
        assert!(
            sent.contains(&want.to_string()),
            "{want} not sent: {sent:?}"
        );
    }
}
