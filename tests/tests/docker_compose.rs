//! Debian's docker-compose 1.29 (Python, docker-py 5, Compose file 3.x)
//! driving berth-agent's Docker Engine API socket: a two-service project
//! with a named volume, a published port and the project network, from
//! `up -d` to `down -v` leaving nothing behind.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use berth_tests::dockerapi::DockerAgent;
use berth_tests::need_root;

/// The project: `server` serves a file it wrote into a named volume
/// (busybox httpd) on a published port; `client` reaches it by its service
/// name on the project network. `init` lets SIGTERM stop them at once.
const COMPOSE_FILE: &str = r#"
version: "3.8"
services:
  server:
    image: bb
    init: true
    command: ["sh", "-c", "echo served-from-volume > /data/index.html && echo server up && exec httpd -f -p 80 -h /data"]
    volumes:
      - data:/data
    ports:
      - "18081:80"
    labels:
      tier: back
  client:
    image: bb
    init: true
    depends_on: [server]
    command: ["sh", "-c", "until wget -qO- http://server/; do sleep 0.2; done; echo client done; exec sleep 300"]
volumes:
  data:
"#;

/// docker-compose 1.29 from Debian, when installed.
fn compose_installed() -> bool {
    Command::new("docker-compose")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("1.29"))
}

struct Project<'a> {
    d: &'a DockerAgent,
    dir: std::path::PathBuf,
}

impl Project<'_> {
    fn run(&self, args: &[&str]) -> Output {
        Command::new("docker-compose")
            .args(["-p", "demo"])
            .args(args)
            .current_dir(&self.dir)
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.d.socket().display()),
            )
            .env_remove("DOCKER_CONTEXT")
            .env_remove("COMPOSE_API_VERSION")
            // Debian's docker-py 5 first: compose 1.29 breaks on docker-py 7
            // (PyPI's, which setup installs), were both on one Python.
            .env("PYTHONPATH", "/usr/lib/python3/dist-packages")
            .output()
            .expect("run docker-compose")
    }

    /// Runs `docker-compose ARGS`, asserts success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "docker-compose {args:?} failed: {}\n{}\nagent log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.d.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The network namespace `DockerAgent::start(true)` made for `d`.
fn netns_of(d: &DockerAgent) -> String {
    let dir = d.dir.path().file_name().unwrap().to_string_lossy();
    format!("berth-dapi-{}", dir.trim_start_matches('.'))
}

#[test]
fn compose_up_ps_logs_exec_down() {
    if !need_root() {
        return;
    }
    if !compose_installed() {
        assert!(
            std::env::var_os("CI").is_none(),
            "docker-compose 1.29 is not installed: scripts/setup.sh installs it"
        );
        eprintln!("skipped: docker-compose is not installed (scripts/setup.sh installs it)");
        return;
    }
    let d = DockerAgent::start(true);
    d.load_busybox();
    let dir = d.dir.path().join("project");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("docker-compose.yml"), COMPOSE_FILE).unwrap();
    let p = Project { d: &d, dir };

    p.ok(&["up", "-d"]);
    // The client found the server by name and wrote what it served.
    let deadline = Instant::now() + Duration::from_secs(20);
    let logs = loop {
        let logs = p.ok(&["logs", "--no-color"]);
        if logs.contains("client done") || Instant::now() > deadline {
            break logs;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(logs.contains("client_1  | served-from-volume"), "{logs}");
    assert!(logs.contains("server_1  | server up"), "{logs}");

    let ps = p.ok(&["ps"]);
    let lines: Vec<&str> = ps.lines().filter(|l| l.starts_with("demo_")).collect();
    assert_eq!(lines.len(), 2, "{ps}");
    assert!(lines.iter().all(|l| l.contains(" Up ")), "{ps}");
    assert!(ps.contains("0.0.0.0:18081->80/tcp"), "{ps}");
    let services = p.ok(&["ps", "--services", "--filter", "status=running"]);
    let mut names: Vec<&str> = services.lines().collect();
    names.sort();
    assert_eq!(names, ["client", "server"], "{services}");

    // exec: output, and the command's exit code.
    let out = p.ok(&["exec", "-T", "server", "cat", "/data/index.html"]);
    assert_eq!(out, "served-from-volume\n");
    let out = p.ok(&["exec", "-T", "client", "wget", "-qO-", "http://server/"]);
    assert_eq!(out, "served-from-volume\n");
    let out = p.run(&["exec", "-T", "client", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));

    // The published port, from the agent's network namespace.
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", netns_of(&d)))
        .args(["wget", "-qO-", "http://127.0.0.1:18081/"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "served-from-volume\n");

    // What compose made, seen through the docker CLI: labels, the project
    // network with the service name as an alias, the named volume.
    let project = d.ok(&[
        "inspect",
        "-f",
        "{{index .Config.Labels \"com.docker.compose.project\"}} {{index .Config.Labels \"tier\"}} {{json .NetworkSettings.Networks.demo_default.Aliases}}",
        "demo_server_1",
    ]);
    assert!(project.starts_with("demo back "), "{project}");
    assert!(project.contains("\"server\""), "{project}");
    let back = d.ok(&["ps", "-q", "--filter", "label=tier=back"]);
    assert_eq!(back.lines().count(), 1, "{back}");
    let vol = d.ok(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        "label=com.docker.compose.project=demo",
    ]);
    assert_eq!(vol.trim(), "demo_data");

    // A second `up -d` finds everything up to date.
    let again = p.run(&["up", "-d"]);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{err}");
    assert!(!err.contains("Recreating"), "{err}");

    let started = Instant::now();
    p.ok(&["down", "-v"]);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "down took {:?}",
        started.elapsed()
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    let nets = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    let mut nets: Vec<&str> = nets.lines().collect();
    nets.sort();
    assert_eq!(nets, ["bridge", "host", "none"]);
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "");
}
