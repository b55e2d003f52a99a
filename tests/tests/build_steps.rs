//! `berth build` beyond the everyday Dockerfile: a build the user stops
//! half-way leaves nothing behind, and ADD fetches a URL (or says why it
//! cannot).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_tests::build::{containers, context, BuildEnv};
use berth_tests::containers::mounts_under;

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
