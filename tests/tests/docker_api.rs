//! The Docker Engine API end to end: the stock `docker` CLI (28) against
//! berth-agent's `--docker-listen` socket, running real containers as
//! root from the harness's busybox image and pulling from a real
//! registry.

use std::io::Write;
use std::process::Stdio;

use berth_tests::containers::{busybox_rootfs, host_arch};
use berth_tests::dockerapi::DockerAgent;
use berth_tests::images::{Compression, Layout};
use berth_tests::need_root;
use berth_tests::registry::{Auth, Registry};

#[test]
fn version_info_and_errors_speak_docker() {
    if !need_root() {
        return;
    }
    let d = DockerAgent::start(false);
    let v = d.ok(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.Os}}",
    ]);
    assert_eq!(v.trim(), "1.51 linux");
    let info = d.ok(&[
        "info",
        "--format",
        "{{.OSType}} {{.Driver}} {{.Containers}}",
    ]);
    assert_eq!(info.trim(), "linux overlayfs 0");
    let (code, _, err) = d.docker(&["inspect", "no-such-thing-here"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("No such object") || err.contains("No such"),
        "{err}"
    );
    let (code, _, err) = d.docker(&["stop", "nosuchcontainer"]);
    assert_eq!(code, 1);
    assert!(err.contains("No such container: nosuchcontainer"), "{err}");
}

#[test]
fn pull_images_inspect_tag_and_remove() {
    if !need_root() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let mut layout = Layout::new();
    let (dg, size) = layout.image(&[busybox_rootfs()], Compression::Gzip, host_arch());
    layout.tag("t", &dg, size, false);
    let image = format!("{}/test/busybox:1", reg.addr);
    layout.push("t", &image, &[]);
    let d = DockerAgent::start(false);
    let out = d.ok(&["pull", &image]);
    assert!(
        out.contains("Pull complete") || out.contains("Downloaded"),
        "{out}"
    );
    assert!(out.trim_end().ends_with(&image), "{out}");
    let again = d.ok(&["pull", &image]);
    assert!(again.contains("Image is up to date"), "{again}");
    let list = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(list.contains(&image), "{list}");
    let arch = d.ok(&[
        "image",
        "inspect",
        "-f",
        "{{.Architecture}} {{.Os}}",
        &image,
    ]);
    assert_eq!(arch.trim(), format!("{} linux", host_arch()));
    d.ok(&["tag", &image, "mine:2"]);
    let list = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(list.contains("mine:2"), "{list}");
    let history = d.ok(&["history", "-q", "mine:2"]);
    assert!(!history.trim().is_empty());
    let rm = d.ok(&["rmi", "mine:2"]);
    assert!(rm.contains("Untagged: mine:2"), "{rm}");
    let (code, _, err) = d.docker(&["pull", &format!("{}/test/nope:1", reg.addr)]);
    assert_eq!(code, 1, "{err}");
    // `run` of an image not stored pulls it first, as Docker does.
    d.ok(&["rmi", &image]);
    let (code, out, err) =
        d.docker(&["run", "--rm", "--network", "none", &image, "echo", "pulled"]);
    assert_eq!((code, out.as_str()), (0, "pulled\n"), "{err}");
    assert!(err.contains("Unable to find image"), "{err}");
    // Push under another name, pull it back; save and load.
    let pushed = format!("{}/test/again:2", reg.addr);
    d.ok(&["tag", &image, &pushed]);
    let out = d.ok(&["push", &pushed]);
    assert!(out.contains("digest: sha256:"), "{out}");
    d.ok(&["rmi", &pushed]);
    d.ok(&["pull", &pushed]);
    let tar = d.dir.path().join("saved.tar");
    d.ok(&["save", "-o", tar.to_str().unwrap(), &pushed]);
    d.ok(&["rmi", &pushed]);
    let out = d.ok(&["load", "-i", tar.to_str().unwrap()]);
    assert!(out.contains("Loaded image"), "{out}");
    let list = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(list.contains(&pushed), "{list}");
}

#[test]
fn run_propagates_output_and_exit_codes() {
    if !need_root() {
        return;
    }
    let d = DockerAgent::start(true);
    let bb = d.load_busybox();
    let out = d.ok(&["run", "--rm", bb, "echo", "hi"]);
    assert_eq!(out, "hi\n");
    let (code, _, _) = d.docker(&["run", "--rm", bb, "sh", "-c", "exit 3"]);
    assert_eq!(code, 3);
    let (code, out, err) = d.docker(&["run", "--rm", bb, "sh", "-c", "echo out; echo err >&2"]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "out\n", "err\n"));
    // Stdin piped in, its end passed on.
    let mut child = d
        .docker_cmd(&["run", "-i", "--rm", bb, "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert!(out.status.success());
    let left = d.ok(&["ps", "-aq"]);
    assert!(left.trim().is_empty(), "--rm left {left}");
}

#[test]
fn detached_containers_list_log_exec_stop_and_remove() {
    if !need_root() {
        return;
    }
    let d = DockerAgent::start(true);
    let bb = d.load_busybox();
    let id = d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--label",
        "tier=front",
        bb,
        "sh",
        "-c",
        "echo started; echo oops >&2; exec sleep 300",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    let ps = d.ok(&["ps", "--format", "{{.Names}} {{.State}}"]);
    assert_eq!(ps.trim(), "web running");
    let ps = d.ok(&["ps", "-q", "--filter", "label=tier=front"]);
    assert_eq!(ps.trim(), &id[..12]);
    let mut logs = String::new();
    for _ in 0..50 {
        let (_, out, err) = d.docker(&["logs", "web"]);
        logs = format!("{out}|{err}");
        if logs == "started\n|oops\n" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(logs, "started\n|oops\n");
    assert_eq!(d.ok(&["exec", "web", "echo", "x"]), "x\n");
    let (code, _, _) = d.docker(&["exec", "web", "sh", "-c", "exit 5"]);
    assert_eq!(code, 5);
    let mut child = d
        .docker_cmd(&["exec", "-i", "web", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"piped\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "piped\n");
    let state = d.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.Name}} {{.Config.Image}}",
        "web",
    ]);
    assert_eq!(state.trim(), format!("running /web {bb}"));
    d.ok(&["stop", "-t", "1", "web"]);
    let state = d.ok(&["inspect", "-f", "{{.State.Status}}", "web"]);
    assert_eq!(state.trim(), "exited");
    let ps = d.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    assert_eq!(ps.trim(), "web exited");
    d.ok(&["rm", "web"]);
    let (code, _, err) = d.docker(&["logs", "web"]);
    assert_eq!(code, 1);
    assert!(err.contains("No such container: web"), "{err}");
}

#[test]
fn networks_volumes_and_refused_options() {
    if !need_root() {
        return;
    }
    let d = DockerAgent::start(true);
    let bb = d.load_busybox();
    d.ok(&["network", "create", "appnet"]);
    let ls = d.ok(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    assert!(ls.lines().any(|l| l == "appnet bridge"), "{ls}");
    let sub = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        "appnet",
    ]);
    assert!(sub.contains('/'), "{sub}");
    // Containers on a user network reach each other by name and alias.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--network",
        "appnet",
        "--network-alias",
        "db",
        bb,
        "sleep",
        "300",
    ]);
    for name in ["srv", "db"] {
        let out = d.ok(&[
            "run",
            "--rm",
            "--network",
            "appnet",
            bb,
            "ping",
            "-c",
            "1",
            "-W",
            "5",
            name,
        ]);
        assert!(out.contains("1 packets received"), "{name}: {out}");
    }
    d.ok(&["rm", "-f", "srv"]);
    d.ok(&["network", "rm", "appnet"]);
    let (code, _, _) = d.docker(&["network", "inspect", "appnet"]);
    assert_eq!(code, 1);
    d.ok(&["volume", "create", "data1"]);
    let ls = d.ok(&["volume", "ls", "-q"]);
    assert!(ls.lines().any(|l| l == "data1"), "{ls}");
    let out = d.ok(&[
        "run",
        "--rm",
        "-v",
        "data1:/data",
        bb,
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    assert_eq!(out, "");
    let out = d.ok(&["run", "--rm", "-v", "data1:/data", bb, "cat", "/data/f"]);
    assert_eq!(out, "kept\n");
    d.ok(&["volume", "rm", "data1"]);
    // An option Berth cannot honour is refused by name, not ignored.
    let (code, _, err) = d.docker(&["run", "--rm", "--link", "a:b", bb, "true"]);
    assert_ne!(code, 0);
    assert!(err.contains("HostConfig.Links"), "{err}");
}

#[test]
fn classic_build_streams_steps_and_tags_the_image() {
    if !need_root() {
        return;
    }
    let d = DockerAgent::start(true);
    let bb = d.load_busybox();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {bb}\nCOPY hello.txt /hello.txt\nRUN cat /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n"),
    )
    .unwrap();
    std::fs::write(ctx.path().join("hello.txt"), "from the context\n").unwrap();
    let out = d
        .docker_cmd(&["build", "-t", "built:1", ctx.path().to_str().unwrap()])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Step 1/3 : FROM bb"), "{text}");
    assert!(text.contains("Successfully built"), "{text}");
    assert!(text.contains("Successfully tagged built:1"), "{text}");
    assert_eq!(d.ok(&["run", "--rm", "built:1"]), "from the context\n");
    // A failing RUN fails the build; the CLI exits with the step's code,
    // as with dockerd.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {bb}\nRUN exit 7\n"),
    )
    .unwrap();
    let out = d
        .docker_cmd(&["build", ctx.path().to_str().unwrap()])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    let df = d.ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"]);
    assert!(df.lines().any(|l| l == "Images 2"), "{df}");
    assert!(df.lines().any(|l| l.starts_with("Build Cache ")), "{df}");
}

#[test]
fn tty_runs_and_missing_commands_exit_as_docker() {
    if !need_root() {
        return;
    }
    let d = DockerAgent::start(true);
    let bb = d.load_busybox();
    let (code, _, err) = d.docker(&["run", "--rm", bb, "no-such-command"]);
    assert_eq!(code, 127, "{err}");
    // Output of a TTY container is raw (no frames), with the terminal's
    // line endings.
    let out = d.ok(&["run", "--rm", "-t", bb, "echo", "tty"]);
    assert_eq!(out, "tty\r\n");
    let id = d.ok(&["create", bb, "echo", "later"]);
    let out = d.ok(&["start", "-a", id.trim()]);
    assert_eq!(out, "later\n");
    let out = d.ok(&["logs", id.trim()]);
    assert_eq!(out, "later\n");
    // attach?logs=1 without a live stream replays what it wrote, framed
    // (here without an upgrade: the body is the stream).
    let raw = std::process::Command::new("curl")
        .args([
            "-s",
            "-X",
            "POST",
            "--unix-socket",
            d.socket().to_str().unwrap(),
        ])
        .arg(format!(
            "http://x/v1.51/containers/{}/attach?logs=1&stdout=1&stderr=1",
            id.trim()
        ))
        .output()
        .unwrap()
        .stdout;
    assert_eq!(raw, b"\x01\0\0\0\0\0\0\x06later\n");
}

#[test]
fn health_restart_kill_and_force_remove() {
    if !need_root() {
        return;
    }
    let d = DockerAgent::start(true);
    let bb = d.load_busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        bb,
        "sleep",
        "300",
    ]);
    let mut health = String::new();
    for _ in 0..50 {
        health = d.ok(&["inspect", "-f", "{{.State.Health.Status}}", "hc"]);
        if health.trim() == "healthy" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(health.trim(), "healthy");
    let ps = d.ok(&["ps", "--format", "{{.Status}}"]);
    assert!(ps.contains("(healthy)"), "{ps}");
    let before = d.ok(&["inspect", "-f", "{{.State.Pid}}", "hc"]);
    d.ok(&["restart", "-t", "1", "hc"]);
    let after = d.ok(&["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "hc"]);
    assert!(after.starts_with("running "), "{after}");
    assert_ne!(after.split_whitespace().nth(1), Some(before.trim()));
    d.ok(&["kill", "hc"]);
    let state = d.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "hc",
    ]);
    assert_eq!(state.trim(), "exited 137");
    d.ok(&["start", "hc"]);
    let (code, _, err) = d.docker(&["rm", "hc"]);
    assert_eq!(code, 1);
    assert!(err.contains("container is running"), "{err}");
    d.ok(&["rm", "-f", "hc"]);
    assert!(d.ok(&["ps", "-aq"]).trim().is_empty());
}

#[test]
fn interactive_terminal_sessions_and_resize() {
    if !need_root() {
        return;
    }
    use berth_tests::containers::PtySession;
    use std::time::Duration;
    let d = DockerAgent::start(true);
    let bb = d.load_busybox();
    let mut s =
        PtySession::spawn(d.docker_cmd(&["run", "-it", "--rm", "--name", "tty1", bb, "sh"]));
    s.write("stty size; echo $((6*7))\n");
    let seen = s.read_until("42", Duration::from_secs(20));
    assert!(
        seen.contains("24 80"),
        "the terminal's size did not reach the container: {seen:?}"
    );
    s.write("exit 4\n");
    assert_eq!(s.wait(Duration::from_secs(20)), 4);
    // exec -it into a running container.
    d.ok(&["run", "-d", "--name", "box", bb, "sleep", "300"]);
    let mut s = PtySession::spawn(d.docker_cmd(&["exec", "-it", "box", "sh"]));
    s.write("echo $((7*7)); exit\n");
    s.read_until("49", Duration::from_secs(20));
    assert_eq!(s.wait(Duration::from_secs(20)), 0);
}

#[test]
fn ports_rename_pause_top_and_prune() {
    if !need_root() {
        return;
    }
    let d = DockerAgent::start(true);
    let bb = d.load_busybox();
    d.ok(&[
        "run", "-d", "--name", "srv", "-p", "18080:80", bb, "sleep", "300",
    ]);
    let port = d.ok(&["port", "srv", "80"]);
    assert!(port.contains(":18080"), "{port}");
    let ps = d.ok(&["ps", "--format", "{{.Ports}}"]);
    assert!(ps.contains("18080->80/tcp"), "{ps}");
    d.ok(&["rename", "srv", "srv2"]);
    d.ok(&["pause", "srv2"]);
    let st = d.ok(&["inspect", "-f", "{{.State.Status}}", "srv2"]);
    assert_eq!(st.trim(), "paused");
    d.ok(&["unpause", "srv2"]);
    let top = d.ok(&["top", "srv2"]);
    assert!(top.contains("sleep 300"), "{top}");
    d.ok(&["create", "--name", "idle", bb, "true"]);
    let pruned = d.ok(&["container", "prune", "-f"]);
    assert!(pruned.contains("Deleted Containers"), "{pruned}");
    let names = d.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(names.trim(), "srv2");
    d.ok(&["volume", "create", "unused"]);
    let pruned = d.ok(&["volume", "prune", "-a", "-f"]);
    assert!(pruned.contains("unused"), "{pruned}");
    d.ok(&["network", "create", "spare"]);
    let pruned = d.ok(&["network", "prune", "-f"]);
    assert!(pruned.contains("spare"), "{pruned}");
}

#[test]
fn events_stats_and_network_connect() {
    if !need_root() {
        return;
    }
    let d = DockerAgent::start(true);
    let bb = d.load_busybox();
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    d.ok(&["run", "-d", "--name", "ev", bb, "sleep", "300"]);
    // The stream ends at `until`: a second from now.
    let until = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    let since = since.to_string();
    let events = d.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "container=ev",
        "--format",
        "{{.Type}} {{.Action}}",
    ]);
    assert!(events.lines().any(|l| l == "container create"), "{events}");
    assert!(events.lines().any(|l| l == "container start"), "{events}");
    let stats = d.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}}",
        "ev",
    ]);
    assert_eq!(stats.trim(), "ev 1");
    d.ok(&["network", "create", "side"]);
    d.ok(&["network", "connect", "--alias", "evy", "side", "ev"]);
    let nets = d.ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "ev",
    ]);
    assert!(nets.contains("side"), "{nets}");
    d.ok(&["network", "disconnect", "side", "ev"]);
    let nets = d.ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "ev",
    ]);
    assert!(!nets.contains("side"), "{nets}");
}

#[test]
fn cp_in_and_out() {
    if !need_root() {
        return;
    }
    let d = DockerAgent::start(true);
    let bb = d.load_busybox();
    d.ok(&["run", "-d", "--name", "cpbox", bb, "sleep", "300"]);
    let host = tempfile::tempdir().unwrap();
    let src = host.path().join("in.txt");
    std::fs::write(&src, "to the container\n").unwrap();
    d.ok(&["cp", src.to_str().unwrap(), "cpbox:/tmp/"]);
    assert_eq!(
        d.ok(&["exec", "cpbox", "cat", "/tmp/in.txt"]),
        "to the container\n"
    );
    d.ok(&[
        "exec",
        "cpbox",
        "sh",
        "-c",
        "mkdir -p /out/sub && echo back > /out/sub/f",
    ]);
    let dest = host.path().join("copied");
    d.ok(&["cp", "cpbox:/out", dest.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(dest.join("sub/f")).unwrap(),
        "back\n"
    );
    let (code, _, err) = d.docker(&["cp", "cpbox:/no/such/file", host.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("Could not find the file"), "{err}");
    // A stopped container's files too.
    d.ok(&["stop", "-t", "0", "cpbox"]);
    d.ok(&[
        "cp",
        "cpbox:/tmp/in.txt",
        host.path().join("again.txt").to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(host.path().join("again.txt")).unwrap(),
        "to the container\n"
    );
}
