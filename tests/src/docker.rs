//! A private `dockerd` (Debian's docker.io) to compare Berth with: its own
//! data root, exec root and socket in a temporary folder, no default
//! bridge and no iptables rules (so it leaves the host's firewall, and
//! Berth's own bridge tests, alone), and registries on loopback taken as
//! insecure, as TESTING.md describes.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running dockerd, stopped (and its folder removed) when dropped.
pub struct Dockerd {
    dir: tempfile::TempDir,
    child: Child,
}

/// Docker's CLI: the one on the machine (Docker 28), else Debian's.
pub fn docker_cli() -> PathBuf {
    ["/usr/local/bin/docker", "/usr/bin/docker"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("a docker CLI: scripts/setup.sh installs Debian's docker.io")
}

impl Dockerd {
    /// Starts dockerd and waits until it answers.
    pub fn start() -> Dockerd {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let config = serde_json::json!({
            "data-root": d.join("root"),
            "exec-root": d.join("exec"),
            "pidfile": d.join("pid"),
            "hosts": [format!("unix://{}", d.join("d.sock").display())],
            "bridge": "none",
            "iptables": false,
            "ip-masq": false,
            "insecure-registries": ["127.0.0.0/8"],
        });
        std::fs::write(d.join("daemon.json"), config.to_string()).unwrap();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("dockerd: scripts/setup.sh installs Debian's docker.io");
        let me = Dockerd { dir, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = me.docker(&["version"]).status.success();
            if ok {
                return me;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within 30 s:\n{}",
                std::fs::read_to_string(me.dir.path().join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The `DOCKER_HOST` of this dockerd.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("d.sock").display())
    }

    /// A `docker ARGS` command against this dockerd.
    pub fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(docker_cli());
        c.args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("client"))
            .env("DOCKER_CLI_HINTS", "false");
        c
    }

    /// Runs `docker ARGS` against this dockerd.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_cmd(args).output().expect("run docker")
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // Its containers first, then dockerd itself (it stops its
        // containerd and unmounts its layers on SIGTERM).
        let ids = self.docker(&["ps", "-aq"]);
        for id in String::from_utf8_lossy(&ids.stdout).split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        let _ = nix_kill(self.child.id(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nix_kill(pid: u32, sig: i32) -> i32 {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as i32, sig) }
}
