//! testcontainers-python 4 (PyPI) driving berth-agent's Docker Engine API
//! socket: a `DockerContainer` with a published port and a wait strategy
//! on it, reached the three ways testcontainers connects (the Docker host,
//! the network's gateway, the container's own address), exec, logs, and
//! nothing left behind. Ryuk, its reaper, comes from Docker Hub, so it is
//! disabled (`TESTCONTAINERS_RYUK_DISABLED=true`), as offline users do.

use std::process::Command;

use berth_tests::dockerapi::DockerAgent;
use berth_tests::need_root;

const SCRIPT: &str = r#"
import urllib.request
import docker
from testcontainers.core.config import ConnectionMode, testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy, PortWaitStrategy

for mode in ["docker_host", "gateway_ip", "bridge_ip"]:
    testcontainers_config.connection_mode_override = ConnectionMode(mode)
    web = (
        DockerContainer("bb")
        .with_command(["sh", "-c", "sleep 1; echo index > /tmp/index.html; echo listening; exec httpd -f -p 8080 -h /tmp"])
        .with_exposed_ports(8080)
        .with_env("GREETING", "hello")
        .waiting_for(PortWaitStrategy(8080).with_startup_timeout(30))
    )
    with web:
        host = web.get_container_host_ip()
        port = int(web.get_exposed_port(8080))
        url = f"http://{host}:{port}/index.html"
        body = urllib.request.urlopen(url, timeout=5).read()
        assert body == b"index\n", (mode, url, body)
        code, out = web.exec(["sh", "-c", "echo $GREETING"])
        assert (code, out) == (0, b"hello\n"), (code, out)
        out, err = web.get_logs()
        assert b"listening" in out, (out, err)
        labels = web.get_wrapped_container().labels
        assert any(k.startswith("org.testcontainers") for k in labels), labels
    print(mode, host, port)

ready = DockerContainer("bb").with_command(["sh", "-c", "sleep 0.5; echo go; exec sleep 300"])
with ready.waiting_for(LogMessageWaitStrategy("go")):
    assert ready.get_wrapped_container().status in ("created", "running")
left = docker.from_env().containers.list(all=True)
assert not left, left
print("ok")
"#;

#[test]
fn testcontainers_python_waits_on_a_port() {
    if !need_root() {
        return;
    }
    let have = Command::new("python3")
        .args(["-c", "import testcontainers.core.wait_strategies"])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "testcontainers is not installed: scripts/setup.sh installs it"
        );
        eprintln!("skipped: testcontainers is not installed (scripts/setup.sh installs it)");
        return;
    }
    let d = DockerAgent::start(true);
    d.load_busybox();
    // In the agent's network namespace, where its published ports are.
    let netns = format!(
        "berth-dapi-{}",
        d.dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches('.')
    );
    let out = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{netns}"))
        .args(["python3", "-c", SCRIPT])
        .env("DOCKER_HOST", format!("unix://{}", d.socket().display()))
        .env("TESTCONTAINERS_RYUK_DISABLED", "true")
        .env_remove("TESTCONTAINERS_HOST_OVERRIDE")
        .env_remove("TC_HOST")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}\nagent log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
    assert!(stdout.ends_with("ok\n"), "{stdout}");
}
