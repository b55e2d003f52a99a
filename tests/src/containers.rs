//! Container helpers: a busybox image loaded straight into an agent, a
//! real pseudo-terminal to drive `run -it`, and what the host shows of a
//! container (mounts, cgroups) to check that nothing leaks.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::images::{tar_of, Compression, Layout, E};
use crate::Agent;

/// A busybox root filesystem with every applet, users and groups, and
/// `/tmp`, as one layer.
pub fn busybox_rootfs() -> Vec<u8> {
    let bb = std::fs::read("/bin/busybox").expect("/bin/busybox (apt-get install busybox-static)");
    let list = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    let applets: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|a| *a != "busybox" && !a.is_empty())
        .map(|a| format!("bin/{a}"))
        .collect();
    let mut entries =
        vec![
        E::Dir("bin/", 0o755, 0, 0),
        E::File("bin/busybox", 0o755, 0, 0, &bb),
        E::Dir("etc/", 0o755, 0, 0),
        E::File(
            "etc/passwd",
            0o644,
            0,
            0,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home/nobody:/bin/sh\n",
        ),
        E::File("etc/group", 0o644, 0, 0, b"root:x:0:\nnogroup:x:65534:\nstaff:x:50:nobody\n"),
        E::Dir("tmp/", 0o1777, 0, 0),
        E::Dir("root/", 0o700, 0, 0),
    ];
    for a in &applets {
        entries.push(E::Symlink(a, "busybox"));
    }
    tar_of(&entries)
}

/// An agent in a network namespace of its own with the busybox image
/// loaded, for tests that run containers; `None` when the test must skip
/// (not root, outside CI).
pub fn agent_with_busybox() -> Option<(Agent, &'static str)> {
    if !crate::need_root() {
        return None;
    }
    let agent = Agent::start_in_own_network();
    let image = load_busybox(&agent);
    Some((agent, image))
}

/// Writes the busybox image, tagged `bb:latest`, as an OCI archive at
/// `tar` (what `berth load -i` takes).
pub fn busybox_archive(tar: &Path) {
    let mut layout = Layout::new();
    let (digest, size) = layout.image(&[busybox_rootfs()], Compression::Gzip, host_arch());
    layout.tag("docker.io/library/bb:latest", &digest, size, false);
    let status = Command::new("tar")
        .arg("-cf")
        .arg(tar)
        .arg("-C")
        .arg(layout.dir.path())
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
}

/// Loads the busybox image into `agent` as `bb:latest`; returns its name.
pub fn load_busybox(agent: &Agent) -> &'static str {
    let tar = agent.dir.path().join("bb.tar");
    busybox_archive(&tar);
    let out = agent.ok(&["load", "-i", tar.to_str().unwrap()]);
    let _ = std::fs::remove_file(&tar);
    if !agent.ok(&["images", "-q", "bb"]).trim().is_empty() {
        return "bb";
    }
    let id = out
        .split_whitespace()
        .last()
        .expect("loaded id")
        .to_string();
    agent.ok(&["tag", &id, "bb"]);
    "bb"
}

/// The OCI name of this machine's architecture.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A process on a real pseudo-terminal, read and written by the test.
pub struct PtySession {
    /// The process.
    pub child: Child,
    master: std::fs::File,
}

impl PtySession {
    /// Starts `cmd` with a new pty as its stdin, stdout and stderr.
    pub fn spawn(mut cmd: Command) -> PtySession {
        let (mut master, mut slave) = (0, 0);
        let ws = libc::winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty fills two descriptors.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                &ws,
            )
        };
        assert_eq!(rc, 0, "openpty");
        // SAFETY: both descriptors were just created for us.
        let slave = unsafe { OwnedFd::from_raw_fd(slave) };
        let master = unsafe { std::fs::File::from_raw_fd(master) };
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave));
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid and TIOCSCTTY only, between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                libc::ioctl(0, libc::TIOCSCTTY, 0);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn on pty");
        PtySession { child, master }
    }

    /// Types `text`.
    pub fn write(&mut self, text: &str) {
        self.master.write_all(text.as_bytes()).unwrap();
    }

    /// Reads until `want` appears (or fails after `limit`); returns all read.
    pub fn read_until(&mut self, want: &str, limit: Duration) -> String {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&self.master);
        let deadline = Instant::now() + limit;
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        while !seen.contains(want) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "never saw {want:?}; got {seen:?}");
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd.
            if unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) } <= 0 {
                continue;
            }
            match self.master.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        seen
    }

    /// Waits for the process; returns its exit code.
    pub fn wait(&mut self, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "the process did not exit");
            // Keep the pty drained so the process never blocks on output.
            let mut buf = [0u8; 4096];
            let fd = std::os::fd::AsRawFd::as_raw_fd(&self.master);
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one pollfd.
            if unsafe { libc::poll(&mut pfd, 1, 20) } > 0 {
                let _ = self.master.read(&mut buf);
            }
        }
    }
}

/// Mount points under `dir` that the host still has.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(String::from))
        .filter(|m| m.starts_with(&prefix))
        .collect()
}

/// The cgroup directories of container `id` that exist (any hierarchy).
pub fn cgroup_dirs(id: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            for p in [
                e.path().join("berth").join(id),
                Path::new("/sys/fs/cgroup/berth").join(id),
            ] {
                if p.exists() {
                    out.push(p.display().to_string());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A cgroup file of container `id` for a v1 controller or the v2 name.
pub fn cgroup_file(id: &str, v1_controller: &str, v1_name: &str, v2_name: &str) -> String {
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let path = if v2 {
        format!("/sys/fs/cgroup/berth/{id}/{v2_name}")
    } else {
        format!("/sys/fs/cgroup/{v1_controller}/berth/{id}/{v1_name}")
    };
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .to_string()
}
