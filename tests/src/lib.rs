//! The end-to-end harness: a real `docker-registry` on a free loopback
//! port (plain, basic auth, or bearer tokens from a token endpoint of our
//! own), images built offline as OCI layouts and pushed with skopeo, and
//! the real `berth-agent` and `berth` binaries.

pub mod build;
pub mod containers;
pub mod docker;
pub mod dockerapi;
pub mod images;
pub mod registry;
pub mod vm;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// True when the test may run; without root it fails under CI and skips
/// (with one line) elsewhere.
pub fn need_root() -> bool {
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "this test needs root, and CI runs as root"
    );
    eprintln!("skipped: this test needs root");
    false
}

/// A TCP port on loopback that nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The workspace's target directory, where the binaries are.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// A running berth-agent with its own root and socket.
pub struct Agent {
    /// Its private directory (root, socket).
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    args: Vec<String>,
    /// The network namespace it runs in, when it has its own.
    netns: Option<String>,
}

impl Agent {
    /// Starts an agent.
    pub fn start() -> Agent {
        Self::start_with(&[])
    }

    /// Starts an agent with extra flags.
    pub fn start_with(extra: &[&str]) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut agent = Agent {
            dir,
            child: None,
            args: extra.iter().map(|s| s.to_string()).collect(),
            netns: None,
        };
        agent.spawn();
        agent
    }

    /// Starts an agent in a network namespace of its own (made here, with
    /// `lo` up), as if on a machine of its own: its bridges, addresses,
    /// firewall table and published ports are its alone, so tests that
    /// run containers on networks can run side by side. Restarts stay in
    /// the same namespace; it is deleted with the agent.
    pub fn start_in_own_network() -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = format!(
            "berth-test-{}",
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
        let mut agent = Agent {
            dir,
            child: None,
            args: Vec::new(),
            netns: Some(name),
        };
        agent.spawn();
        agent
    }

    /// The path of the agent's own network namespace, if it has one.
    pub fn netns_path(&self) -> Option<PathBuf> {
        self.netns.as_ref().map(|n| Path::new("/run/netns").join(n))
    }

    /// Runs `f` on a thread inside the agent's network (the host's when it
    /// has none of its own): what a program on the agent's machine sees.
    pub fn in_net<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let ns = self.netns_path();
        std::thread::spawn(move || {
            if let Some(ns) = ns {
                enter_netns(&ns);
            }
            f()
        })
        .join()
        .expect("the thread in the agent's network panicked")
    }

    /// Runs a shell script in the agent's network.
    pub fn sh(&self, script: &str) -> Output {
        let mut c = match self.netns_path() {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display())).arg("sh");
                c
            }
            None => Command::new("sh"),
        };
        c.arg("-c").arg(script).output().expect("run sh")
    }

    /// The agent's store.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The agent's endpoint URL.
    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("berth.sock").display())
    }

    fn spawn(&mut self) {
        let sock = self.dir.path().join("berth.sock");
        let _ = std::fs::remove_file(&sock);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))
            .unwrap();
        let mut cmd = match self.netns_path() {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display()))
                    .arg(bin("berth-agent"));
                c
            }
            None => Command::new(bin("berth-agent")),
        };
        let child = cmd
            .arg("--root")
            .arg(self.root())
            .arg("--listen")
            .arg(self.host())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start berth-agent");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            assert!(
                Instant::now() < deadline,
                "berth-agent did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// The running agent's process id.
    pub fn pid(&self) -> Option<i32> {
        self.child.as_ref().map(|c| c.id() as i32)
    }

    /// Kills the agent with SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the agent again on the same root.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Runs `berth ARGS` against this agent.
    pub fn berth(&self, args: &[&str]) -> Output {
        self.berth_cmd(args).output().expect("run berth")
    }

    /// Runs `berth ARGS`; returns its exit code, stdout and stderr.
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.berth(args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A `berth` command against this agent, for callers that need more control.
    pub fn berth_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("berth"));
        c.args(args)
            .env("BERTH_HOST", self.host())
            .env("BERTH_CONFIG", self.dir.path().join("client"));
        c
    }

    /// Runs `berth ARGS` and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed: {}\n{}\nagent log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `berth ARGS`, asserts failure with exit status 1, returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "berth {args:?} should fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(
            err.trim().lines().count(),
            1,
            "one sentence expected, got: {err}"
        );
        err
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Containers outlive their agent by design: remove what a test left.
        if self.child.is_some() && self.root().join("containers").exists() {
            if let Ok(out) = self.berth_cmd(&["ps", "-aq", "--no-trunc"]).output() {
                for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = self.berth_cmd(&["rm", "-f", id]).output();
                }
            }
        }
        if let Some(c) = &self.child {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        }
        if let Some(mut c) = self.child.take() {
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
        if let Some(name) = &self.netns {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// Moves the calling thread into the network namespace pinned at `ns`.
pub fn enter_netns(ns: &Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(ns).expect("open the network namespace");
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// Live processes named berth-monitor or berth-create (a container's
/// monitor and create helper, of any agent): (pid, name, the container
/// directory they were started for). Zombies are left out.
pub fn berth_processes() -> Vec<(i32, String, std::path::PathBuf)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // A zombie holds nothing but its pid, until its reaper waits.
        if stat
            .rsplit_once(") ")
            .is_some_and(|(_, s)| s.starts_with('Z'))
        {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let mut args = cmdline.split(|b| *b == 0);
        let exe = String::from_utf8_lossy(args.next().unwrap_or_default()).to_string();
        let name = exe.rsplit('/').next().unwrap_or_default().to_string();
        if name != "berth-monitor" && name != "berth-create" {
            continue;
        }
        let dir = std::path::PathBuf::from(
            String::from_utf8_lossy(args.next().unwrap_or_default()).to_string(),
        );
        out.push((pid, name, dir));
    }
    out
}
