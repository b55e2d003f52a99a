//! The Docker Engine API with other clients than Docker's CLI 28:
//! docker-py 7 (when installed), Debian's docker 20.10 client (API 1.41),
//! and `docker login` against a registry that wants credentials, with
//! commit, diff and export; `docker update` of a running container and
//! `docker search`; exec instances backed by the engine's sessions;
//! `docker import` from a file and stdin, `docker build --compress` and a
//! commit's config body.

use berth_tests::dockerapi::DockerAgent;
use berth_tests::need_root;
use berth_tests::registry::{Auth, Registry};

/// docker-py's everyday calls, when it is installed (PyPI `docker` 7).
const DOCKER_PY: &str = r#"
import io, sys, tarfile, docker
c = docker.from_env()
assert c.ping()
out = c.containers.run("bb", ["sh", "-c", "echo py"], remove=True)
assert out == b"py\n", out
box = c.containers.run("bb", ["sleep", "300"], detach=True, name="pybox")
code, got = box.exec_run(["sh", "-c", "echo ex; exit 2"])
assert (code, got) == (2, b"ex\n"), (code, got)
data = io.BytesIO()
with tarfile.open(fileobj=data, mode="w") as t:
    body = b"put\n"
    info = tarfile.TarInfo("put.txt"); info.size = len(body)
    t.addfile(info, io.BytesIO(body))
assert box.put_archive("/tmp", data.getvalue())
stream, stat = box.get_archive("/tmp/put.txt")
raw = b"".join(stream)
with tarfile.open(fileobj=io.BytesIO(raw)) as t:
    assert t.extractfile("put.txt").read() == b"put\n"
assert stat["name"] == "put.txt", stat
box.reload(); assert box.status == "running", box.status
box.stop(timeout=1); box.reload(); assert box.status == "exited"
assert box.wait()["StatusCode"] == 137 or box.wait()["StatusCode"] >= 0
logs = c.containers.run("bb", ["sh", "-c", "echo a; echo b >&2"], detach=True)
logs.wait()
assert logs.logs(stdout=True, stderr=False) == b"a\n", logs.logs()
logs.remove()
df = io.BytesIO(b"FROM bb\nRUN echo built > /b\nCMD [\"cat\", \"/b\"]\n")
img, log = c.images.build(fileobj=df, tag="pybuilt:1", rm=True)
assert "pybuilt:1" in img.tags, img.tags
assert c.containers.run("pybuilt:1", remove=True) == b"built\n"
import os, tempfile
ctx = tempfile.mkdtemp()
with open(os.path.join(ctx, "Dockerfile"), "w") as f:
    f.write("FROM bb\nCOPY Dockerfile /df\nCMD [\"wc\", \"-l\", \"/df\"]\n")
img, _ = c.images.build(path=ctx, gzip=True, tag="pygz:1")
assert c.containers.run("pygz:1", remove=True) == b"3 /df\n"
img = box.commit(repository="pycommit", tag="1", conf={
    "Cmd": ["sh", "-c", "echo $X; pwd"], "Env": ["X=one two"],
    "Labels": {"team": "core"}, "WorkingDir": "/tmp"})
assert img.labels["team"] == "core", img.labels
assert c.containers.run("pycommit:1", remove=True) == b"one two\n/tmp\n"
box.remove(force=True)
print("ok")
"#;

#[test]
fn docker_py_drives_berth() {
    if !need_root() {
        return;
    }
    let have = std::process::Command::new("python3")
        .args(["-c", "import docker"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "docker-py is not installed: scripts/setup.sh installs it"
        );
        eprintln!("skipped: docker-py is not installed (scripts/setup.sh installs it)");
        return;
    }
    let d = DockerAgent::start(true);
    d.load_busybox();
    let out = std::process::Command::new("python3")
        .args(["-c", DOCKER_PY])
        .env("DOCKER_HOST", format!("unix://{}", d.socket().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}\nagent log:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
}

#[test]
fn commit_diff_export_and_login() {
    if !need_root() {
        return;
    }
    let reg = Registry::start(Auth::Basic);
    let d = DockerAgent::start(false);
    let (code, _, err) = d.docker(&["login", "-u", "nobody", "-p", "wrong", &reg.addr]);
    assert_eq!(code, 1, "{err}");
    let out = d.ok(&[
        "login",
        "-u",
        berth_tests::registry::USER,
        "-p",
        berth_tests::registry::PASS,
        &reg.addr,
    ]);
    assert!(out.contains("Login Succeeded"), "{out}");
    let bb = d.load_busybox();
    d.ok(&[
        "run",
        "--name",
        "chg",
        "--network",
        "none",
        bb,
        "sh",
        "-c",
        "echo new > /made && rm /etc/hostname.orig 2>/dev/null; true",
    ]);
    let diff = d.ok(&["diff", "chg"]);
    assert!(diff.lines().any(|l| l == "A /made"), "{diff}");
    d.ok(&[
        "commit",
        "-c",
        "CMD [\"cat\", \"/made\"]",
        "chg",
        "committed:1",
    ]);
    assert_eq!(
        d.ok(&["run", "--rm", "--network", "none", "committed:1"]),
        "new\n"
    );
    let tar = d.dir.path().join("export.tar");
    d.ok(&["export", "-o", tar.to_str().unwrap(), "chg"]);
    let list = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&tar)
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&list.stdout);
    assert!(
        names.lines().any(|l| l.trim_start_matches("./") == "made"),
        "{names}"
    );
    // A registry that needs credentials: the CLI sends them (X-Registry-Auth).
    let image = format!("{}/private/bb:1", reg.addr);
    d.ok(&["tag", bb, &image]);
    d.ok(&["push", &image]);
}

#[test]
fn debian_docker_20_10_client_works_too() {
    if !need_root() || !std::path::Path::new("/usr/bin/docker").exists() {
        return;
    }
    let d = DockerAgent::start(true);
    let bb = d.load_busybox();
    let old = |args: &[&str]| {
        let mut c = std::process::Command::new("/usr/bin/docker");
        c.args(args)
            .env("DOCKER_HOST", format!("unix://{}", d.socket().display()))
            .env("DOCKER_CONFIG", d.dir.path().join("docker-config-old"));
        let out = c.output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = old(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!((code, out.trim()), (0, "1.51"), "{err}");
    let (code, out, err) = old(&["run", "--rm", bb, "echo", "old client"]);
    assert_eq!((code, out.as_str()), (0, "old client\n"), "{err}");
    let (code, _, _) = old(&["run", "--rm", bb, "sh", "-c", "exit 9"]);
    assert_eq!(code, 9);
    let (code, out, err) = old(&["run", "-d", "--name", "o1", bb, "sleep", "60"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim().len(), 64);
    let (code, out, _) = old(&["exec", "o1", "echo", "in"]);
    assert_eq!((code, out.as_str()), (0, "in\n"));
    let (_, out, _) = old(&["ps", "--format", "{{.Names}}"]);
    assert_eq!(out.trim(), "o1");
    let (code, _, _) = old(&["rm", "-f", "o1"]);
    assert_eq!(code, 0);
}

#[test]
fn update_changes_the_limits_of_a_running_container() {
    if !need_root() {
        return;
    }
    let d = DockerAgent::start(false);
    let bb = d.load_busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "lim",
        "--network",
        "none",
        "-m",
        "64m",
        bb,
        "sleep",
        "300",
    ]);
    d.ok(&[
        "update",
        "--memory",
        "96m",
        "--memory-swap",
        "192m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "--restart",
        "on-failure:3",
        "lim",
    ]);
    let got = d.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}",
        "lim",
    ]);
    assert_eq!(got.trim(), "100663296 500000000 50 on-failure");
    // The running container's cgroup has them (v1 or v2 layout).
    let id = d.ok(&["inspect", "-f", "{{.Id}}", "lim"]);
    let id = id.trim();
    let read = |controller: &str, v1: &str, v2: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{controller}/berth/{id}/{v1}"))
            .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/berth/{id}/{v2}")))
            .unwrap_or_default()
    };
    let memory = read("memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(memory.trim(), "100663296");
    assert_eq!(read("pids", "pids.max", "pids.max").trim(), "50");
    let (code, _, err) = d.docker(&["update", "--blkio-weight", "300", "lim"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("BlkioWeight cannot be updated by Berth"),
        "{err}"
    );
    d.ok(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "gone",
        "--network",
        "none",
        bb,
        "sleep",
        "60",
    ]);
    let (code, _, err) = d.docker(&["update", "--restart", "always", "gone"]);
    assert_eq!(code, 1);
    assert!(err.contains("AutoRemove"), "{err}");
}

/// A registry search API on loopback answering every request with two
/// results; returns its address.
fn fake_search_api() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let body = r#"{"num_results":2,"query":"web","results":[
                {"name":"team/web","description":"a web server","star_count":7,"is_official":false,"is_automated":false},
                {"name":"team/webby","description":null,"star_count":1,"is_official":true,"is_automated":false}]}"#;
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[test]
fn search_asks_the_registry_and_says_when_it_cannot() {
    if !need_root() {
        return;
    }
    let d = DockerAgent::start(false);
    let api = fake_search_api();
    let out = d.ok(&[
        "search",
        "--format",
        "{{.Name}} {{.StarCount}} {{.IsOfficial}}",
        &format!("{api}/web"),
    ]);
    assert_eq!(out, format!("{api}/team/web 7 \n{api}/team/webby 1 [OK]\n"));
    let out = d.ok(&[
        "search",
        "--filter",
        "stars=5",
        "--format",
        "{{.Name}}",
        &format!("{api}/web"),
    ]);
    assert_eq!(out, format!("{api}/team/web\n"));
    // A registry without the search API (distribution), and none at all.
    let reg = Registry::start(Auth::None);
    let (code, _, err) = d.docker(&["search", &format!("{}/bb", reg.addr)]);
    assert_eq!(code, 1);
    assert!(
        err.contains("its search API (GET /v1/search) answered 404"),
        "{err}"
    );
    let closed = berth_tests::free_port();
    let (code, _, err) = d.docker(&["search", &format!("127.0.0.1:{closed}/bb")]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the registry cannot be reached (connection refused)"),
        "{err}"
    );
}

/// `curl` against the agent's Docker socket: the body it answered.
fn api(d: &DockerAgent, method: &str, path: &str, body: &str) -> serde_json::Value {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--unix-socket"])
        .arg(d.socket())
        .args(["-X", method, "-H", "Content-Type: application/json"])
        .args(["-d", body, &format!("http://docker/v1.51{path}")])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

#[test]
fn exec_instances_are_the_engine_s_sessions() {
    if !need_root() {
        return;
    }
    let d = DockerAgent::start(false);
    let bb = d.load_busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "ex",
        "--network",
        "none",
        bb,
        "sleep",
        "300",
    ]);
    // A detached exec's exit code is kept.
    let created = api(
        &d,
        "POST",
        "/containers/ex/exec",
        r#"{"Cmd": ["sh", "-c", "exit 4"]}"#,
    );
    let id = created["Id"].as_str().unwrap().to_string();
    let before = api(&d, "GET", &format!("/exec/{id}/json"), "");
    assert_eq!(
        (&before["Running"], &before["ExitCode"]),
        (&false.into(), &serde_json::Value::Null)
    );
    api(
        &d,
        "POST",
        &format!("/exec/{id}/start"),
        r#"{"Detach": true}"#,
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let ended = loop {
        let v = api(&d, "GET", &format!("/exec/{id}/json"), "");
        if v["ExitCode"] == 4 || std::time::Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(
        (&ended["Running"], &ended["ExitCode"]),
        (&false.into(), &4.into()),
        "{ended}"
    );
    // A running session, by the id the container's inspect lists.
    d.ok(&["exec", "-d", "ex", "sleep", "30"]);
    let ids = d.ok(&["inspect", "-f", "{{range .ExecIDs}}{{.}} {{end}}", "ex"]);
    let session = ids.split_whitespace().next().expect("an exec id");
    let v = api(&d, "GET", &format!("/exec/{session}/json"), "");
    assert_eq!(v["Running"], true, "{v}");
    assert_eq!(v["ProcessConfig"]["entrypoint"], "sleep", "{v}");
    let (code, _, err) = d.docker(&["exec", "ex", "sh", "-c", "exit 5"]);
    assert_eq!(code, 5, "{err}");
}

#[test]
fn import_from_a_file_and_from_stdin_then_run() {
    if !need_root() {
        return;
    }
    let d = DockerAgent::start(false);
    let bb = d.load_busybox();
    d.ok(&["create", "--name", "src", "--network", "none", bb]);
    let tar = d.dir.path().join("rootfs.tar");
    let tar_s = tar.to_str().unwrap();
    d.ok(&["export", "-o", tar_s, "src"]);
    // From a file, with changes and a message: the id streams back.
    let out = d.ok(&[
        "import",
        "--change",
        "CMD [\"echo\", \"imported\"]",
        "--change",
        "ENV WHO=file",
        "-m",
        "from a file",
        tar_s,
        "imp:file",
    ]);
    assert!(out.trim().starts_with("sha256:"), "{out}");
    assert_eq!(
        d.ok(&["run", "--rm", "--network", "none", "imp:file"]),
        "imported\n"
    );
    let got = d.ok(&["image", "inspect", "-f", "{{.Config.Env}}", "imp:file"]);
    assert_eq!(got.trim(), "[WHO=file]");
    let got = d.ok(&["history", "--format", "{{.Comment}}", "imp:file"]);
    assert_eq!(got.trim(), "from a file");
    // From stdin, gzipped: the engine's import unpacks it.
    let gz = d.dir.path().join("rootfs.tar.gz");
    let zipped = std::process::Command::new("gzip")
        .args(["-1", "-k", tar_s])
        .status()
        .unwrap();
    assert!(zipped.success() && gz.exists());
    let out = d
        .docker_cmd(&["import", "-", "imp:stdin"])
        .stdin(std::fs::File::open(&gz).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "imp:stdin",
            "echo",
            "hi"
        ]),
        "hi\n"
    );
    // Not a tar, a URL and a bad change: each told in one sentence.
    let junk = d.dir.path().join("junk");
    std::fs::write(&junk, "not a tar at all, just words").unwrap();
    let (code, _, err) = d.docker(&["import", junk.to_str().unwrap(), "imp:junk"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot be unpacked"), "{err}");
    let (code, _, err) = d.docker(&["import", "http://127.0.0.1:9/x.tar"]);
    assert_eq!(code, 1);
    assert!(err.contains("not from a URL"), "{err}");
    let (code, _, err) = d.docker(&["import", "-c", "RUN true", tar_s]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid --change"), "{err}");
}

#[test]
fn compressed_build_contexts_and_a_commit_s_config_body() {
    if !need_root() {
        return;
    }
    let d = DockerAgent::start(false);
    let bb = d.load_busybox();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {bb}\nCOPY hello.txt /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n"),
    )
    .unwrap();
    std::fs::write(ctx.path().join("hello.txt"), "from a gzipped context\n").unwrap();
    let out = d
        .docker_cmd(&[
            "build",
            "--compress",
            "-t",
            "zipped:1",
            ctx.path().to_str().unwrap(),
        ])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Successfully tagged zipped:1"), "{text}");
    assert_eq!(
        d.ok(&["run", "--rm", "--network", "none", "zipped:1"]),
        "from a gzipped context\n"
    );
    // zstd contexts unpack too; bzip2 is named in the build stream.
    let tar = d.dir.path().join("ctx.tar");
    let packed = |tool: &[&str], path: &std::path::Path| {
        let ok = std::process::Command::new(tool[0])
            .args(&tool[1..])
            .arg(&tar)
            .status()
            .unwrap();
        assert!(ok.success() && path.exists(), "{tool:?}");
        let out = std::process::Command::new("curl")
            .args(["-sS", "--unix-socket"])
            .arg(d.socket())
            .args(["-H", "Content-Type: application/x-tar", "--data-binary"])
            .arg(format!("@{}", path.display()))
            .arg("http://docker/v1.51/build?t=packed:1")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let ok = std::process::Command::new("tar")
        .arg("-C")
        .arg(ctx.path())
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success());
    let zst = d.dir.path().join("ctx.tar.zst");
    let text = packed(&["zstd", "-q", "-k"], &zst);
    assert!(text.contains("Successfully tagged packed:1"), "{text}");
    let bz = d.dir.path().join("ctx.tar.bz2");
    let text = packed(&["bzip2", "-k"], &bz);
    assert!(
        text.contains("a bzip2-compressed build context is not supported by Berth"),
        "{text}"
    );
    assert!(!text.contains("Successfully"), "{text}");
    // A commit's config body (as docker-py's `conf`) shapes the image.
    d.ok(&["create", "--name", "base", "--network", "none", bb]);
    let body = r#"{"Cmd": ["sh", "-c", "echo $GREETING; pwd; id -un"],
        "Env": ["GREETING=hello there"], "Labels": {"team": "core"},
        "ExposedPorts": {"8080/tcp": {}}, "WorkingDir": "/tmp", "User": "nobody"}"#;
    let made = api(&d, "POST", "/commit?container=base&repo=cfg&tag=1", body);
    assert!(
        made["Id"]
            .as_str()
            .is_some_and(|id| id.starts_with("sha256:")),
        "{made}"
    );
    assert_eq!(
        d.ok(&["run", "--rm", "--network", "none", "cfg:1"]),
        "hello there\n/tmp\nnobody\n"
    );
    let got = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Config.Labels.team}} {{json .Config.ExposedPorts}}",
        "cfg:1",
    ]);
    assert_eq!(got.trim(), r#"core {"8080/tcp":{}}"#);
    // `changes` go over the body, as dockerd applies them.
    let made = api(
        &d,
        "POST",
        "/commit?container=base&repo=cfg&tag=2&changes=CMD%20%5B%22pwd%22%5D",
        body,
    );
    assert!(made["Id"].is_string(), "{made}");
    assert_eq!(
        d.ok(&["run", "--rm", "--network", "none", "cfg:2"]),
        "/tmp\n"
    );
    let refused = api(
        &d,
        "POST",
        "/commit?container=base",
        r#"{"Healthcheck": {"Test": ["CMD", "true"]}}"#,
    );
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("Healthcheck"), "{refused}");
}
