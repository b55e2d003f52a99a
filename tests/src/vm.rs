//! The VM harness: Berth's guest image (built by
//! `scripts/build-vm-image.sh` before the tests), booted under QEMU TCG by
//! the real `berth vm` commands, each VM with its own state directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::bin;

/// The guest image directory: `BERTH_VM_IMAGE`, else `target/vm-image`.
pub fn image_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("BERTH_VM_IMAGE") {
        return PathBuf::from(d);
    }
    // target/<profile>/berth → target/vm-image
    bin("berth")
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("vm-image")
}

/// True when the VM tests may run: root and a built image; without them
/// they fail under CI and skip (with one line) elsewhere.
pub fn can_boot() -> bool {
    if !crate::need_root() {
        return false;
    }
    if image_dir().join("manifest.json").exists() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "no guest image at {}: CI builds it with scripts/build-vm-image.sh",
        image_dir().display()
    );
    eprintln!("skipped: no guest image (run scripts/build-vm-image.sh)");
    false
}

/// A VM started with `berth vm start`, stopped when dropped.
pub struct Vm {
    /// Its state directory.
    pub dir: tempfile::TempDir,
    endpoint: String,
}

impl Vm {
    /// Boots a VM under TCG with `extra` start flags; panics with the
    /// console's tail if it does not come up.
    pub fn start(extra: &[&str]) -> Vm {
        let dir = tempfile::tempdir().expect("VM dir");
        let mut vm = Vm {
            dir,
            endpoint: String::new(),
        };
        let image = image_dir();
        let mut args = vec![
            "start",
            "--image",
            image.to_str().unwrap(),
            "--accel",
            "tcg",
            "--memory",
            "1024",
        ];
        args.extend_from_slice(extra);
        let out = vm.vm(&args);
        assert!(
            out.status.success(),
            "berth vm start failed: {}\n{}\nconsole:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            vm.console()
        );
        let status: serde_json::Value =
            serde_json::from_slice(&vm.vm(&["status", "--format", "json"]).stdout).unwrap();
        vm.endpoint = status["endpoint"].as_str().unwrap().to_string();
        vm
    }

    /// Runs `berth vm ARGS --dir DIR`.
    pub fn vm(&self, args: &[&str]) -> Output {
        Command::new(bin("berth"))
            .arg("vm")
            .args(args)
            .arg("--dir")
            .arg(self.dir.path())
            .output()
            .expect("run berth vm")
    }

    /// `berth vm ARGS --dir DIR`, which must succeed.
    pub fn vm_ok(&self, args: &[&str]) {
        let out = self.vm(args);
        assert!(
            out.status.success(),
            "berth vm {args:?} failed: {}\nconsole tail:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.console_tail()
        );
    }

    /// `berth ARGS` against the VM's agent.
    pub fn berth(&self, args: &[&str]) -> Output {
        Command::new(bin("berth"))
            .args(args)
            .env("BERTH_HOST", &self.endpoint)
            .env("BERTH_CONFIG", self.dir.path().join("client"))
            .output()
            .expect("run berth")
    }

    /// `berth ARGS` that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed: {}\n{}\nconsole tail:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.console_tail()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The guest's console so far.
    pub fn console(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("console.log")).unwrap_or_default()
    }

    /// The last 40 lines of the console.
    pub fn console_tail(&self) -> String {
        let c = self.console();
        let lines: Vec<&str> = c.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `berth vm status --format json`.
    pub fn status(&self) -> serde_json::Value {
        serde_json::from_slice(&self.vm(&["status", "--format", "json"]).stdout).unwrap_or_default()
    }

    /// Waits until `berth vm status` says ready and the agent answers.
    pub fn wait_ready(&self, limit: Duration) -> serde_json::Value {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.status();
            if s["phase"] == "ready" && s["agent_answers"] == true {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "the VM did not become ready: {s}\n{}",
                self.console_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.vm(&["stop"]);
    }
}
