//! Berth Desktop's Linux package, as a user gets it: the .deb that
//! `scripts/bundle-desktop.sh --debug` makes with Tauri's bundler (the
//! README's test command runs it before the tests), installed for real with
//! `dpkg -i`, used, and removed with `dpkg -r`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use berth_tests::{bin, need_root};

fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The .deb the bundle script made from the debug build, if any.
fn built_deb() -> Option<PathBuf> {
    let debug = bin("berth").parent().unwrap().to_path_buf();
    let dir = debug.join("bundle/deb");
    let found = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"));
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no .deb in {}: scripts/bundle-desktop.sh --debug makes it",
            dir.display()
        );
        eprintln!("skipped: no .deb built (scripts/bundle-desktop.sh --debug)");
    }
    found
}

/// Removes the package when the test ends, passed or not.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = run("dpkg", &["-r", "berth"]);
    }
}

#[test]
fn the_deb_installs_the_app_the_cli_and_the_engine_as_a_service() {
    if !need_root() {
        return;
    }
    let Some(deb) = built_deb() else { return };
    let deb = deb.to_str().unwrap();

    // What apt shows before installing: the name and what it needs.
    let fields = text(&run("dpkg-deb", &["-f", deb, "Package", "Depends"]));
    assert!(fields.contains("Package: berth"), "{fields}");
    for dep in ["libwebkit2gtk-4.1-0", "nftables"] {
        assert!(fields.contains(dep), "Depends lacks {dep}: {fields}");
    }

    let installed = run("dpkg", &["-i", deb]);
    let _cleanup = Installed;
    let said = text(&installed);
    assert!(installed.status.success(), "dpkg -i failed: {said}");
    // The user is told how to use the engine without sudo.
    assert!(said.contains("usermod -aG berth"), "{said}");
    assert!(
        run("getent", &["group", "berth"]).status.success(),
        "the package made no group berth"
    );

    // The three programs on PATH, the engine's unit, the menu entry.
    for prog in ["berth-desktop", "berth", "berth-agent"] {
        let p = Path::new("/usr/bin").join(prog);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .permissions(),
        );
        assert!(mode & 0o111 != 0, "{} is not executable", p.display());
    }
    let unit = std::fs::read_to_string("/usr/lib/systemd/system/berth-agent.service")
        .expect("the package installs the berth-agent service");
    assert!(unit.contains("ExecStart=/usr/bin/berth-agent"), "{unit}");
    assert!(unit.contains("KillMode=process"), "{unit}");
    let desktop = std::fs::read_dir("/usr/share/applications")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .find(|d| d.contains("Exec=berth-desktop"));
    let desktop = desktop.expect("no menu entry runs berth-desktop");
    assert!(desktop.contains("Name=Berth"), "{desktop}");

    // The installed CLI and engine work together (on a socket of the
    // test's own, so the machine's default one is left alone).
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("berth.sock");
    let host = format!("unix://{}", sock.display());
    let mut agent = Command::new("/usr/bin/berth-agent")
        .args(["--listen", &host, "--root"])
        .arg(dir.path().join("root"))
        .spawn()
        .expect("start the installed berth-agent");
    let start = Instant::now();
    while !sock.exists() && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let version = run("/usr/bin/berth", &["-H", &host, "version"]);
    let _ = agent.kill();
    let _ = agent.wait();
    let shown = text(&version);
    assert!(version.status.success(), "berth version failed: {shown}");
    assert!(shown.contains("Server"), "{shown}");

    // Removing it takes the programs and the unit away.
    let removed = run("dpkg", &["-r", "berth"]);
    assert!(removed.status.success(), "{}", text(&removed));
    for gone in [
        "/usr/bin/berth-desktop",
        "/usr/bin/berth",
        "/usr/bin/berth-agent",
        "/usr/lib/systemd/system/berth-agent.service",
    ] {
        assert!(!Path::new(gone).exists(), "{gone} is left after dpkg -r");
    }
}
