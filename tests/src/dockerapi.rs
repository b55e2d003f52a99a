//! A berth-agent serving the Docker Engine API (`--docker-listen`) and
//! the stock `docker` CLI pointed at it with `DOCKER_HOST`.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::bin;

/// A running agent with both its gRPC socket and its Docker socket,
/// optionally in a network namespace of its own.
pub struct DockerAgent {
    /// Its private directory (root, sockets, log).
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    netns: Option<String>,
}

impl DockerAgent {
    /// Starts an agent on the host's network (it can reach a registry on
    /// loopback), or in a namespace of its own (bridges of its own).
    pub fn start(own_network: bool) -> DockerAgent {
        let dir = tempfile::tempdir().expect("tempdir");
        let netns = own_network.then(|| {
            let name = format!(
                "berth-dapi-{}",
                dir.path()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .trim_start_matches('.')
            );
            for args in [
                vec!["netns", "add", &name],
                vec!["-n", &name, "link", "set", "lo", "up"],
            ] {
                let st = Command::new("ip").args(&args).status().expect("run ip");
                assert!(st.success(), "ip {args:?} failed");
            }
            name
        });
        let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
        let mut cmd = match &netns {
            Some(n) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{n}"))
                    .arg(bin("berth-agent"));
                c
            }
            None => Command::new(bin("berth-agent")),
        };
        let d = dir.path();
        let child = cmd
            .arg("--root")
            .arg(d.join("root"))
            .arg("--listen")
            .arg(format!("unix://{}", d.join("berth.sock").display()))
            .arg("--docker-listen")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start berth-agent");
        let me = DockerAgent {
            dir,
            child: Some(child),
            netns,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(me.socket().exists() && me.dir.path().join("berth.sock").exists()) {
            assert!(
                Instant::now() < deadline,
                "berth-agent did not start: {}",
                me.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        me
    }

    /// The Docker socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// A `docker` command against this agent.
    pub fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(crate::docker::docker_cli());
        c.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null());
        c
    }

    /// Runs `docker ARGS`: exit code, stdout, stderr.
    pub fn docker(&self, args: &[&str]) -> (i32, String, String) {
        let out: Output = self.docker_cmd(args).output().expect("run docker");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs `docker ARGS`, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.docker(args);
        assert_eq!(
            code,
            0,
            "docker {args:?} failed: {err}\n{out}\nagent log:\n{}",
            self.log()
        );
        out
    }

    /// Runs `berth ARGS` against the same agent; asserts success.
    pub fn berth(&self, args: &[&str]) -> String {
        let out = Command::new(bin("berth"))
            .args(args)
            .env(
                "BERTH_HOST",
                format!("unix://{}", self.dir.path().join("berth.sock").display()),
            )
            .env("BERTH_CONFIG", self.dir.path().join("client"))
            .output()
            .expect("run berth");
        assert!(
            out.status.success(),
            "berth {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Loads the harness's busybox image as `bb:latest`; returns "bb".
    pub fn load_busybox(&self) -> &'static str {
        let tar = self.dir.path().join("bb.tar");
        crate::containers::busybox_archive(&tar);
        self.berth(&["load", "-i", tar.to_str().unwrap()]);
        let _ = std::fs::remove_file(&tar);
        "bb"
    }
}

impl Drop for DockerAgent {
    fn drop(&mut self) {
        let (_, ids, _) = self.docker(&["ps", "-aq", "--no-trunc"]);
        for id in ids.split_whitespace() {
            let _ = self.docker(&["rm", "-f", id]);
        }
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(n) = &self.netns {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}
