//! The VM's life as a user notices it, under QEMU TCG: `berth vm stop`
//! with running containers takes about a second when they exit on their
//! stop signal (and a container that ignores it still gets its whole stop
//! timeout), the first boot is not much slower than later ones, the
//! guest's clock comes back to the host's within a second after it went
//! wrong (as after the host slept), new containers follow the host's
//! resolver without a restart, and `settings.disk_size` grows a used data
//! disk but never shrinks it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_tests::containers::busybox_archive;
use berth_tests::vm::{can_boot, Vm};

/// The longest `berth vm stop` may take with containers that exit on
/// their signal: the target is 1 s, met here at load 3 to 5 (0.4 to
/// 0.96 s); at load 11 stops took 1.1 to 2.3 s, and CI runs this beside
/// other tests.
const STOP_LIMIT: Duration = Duration::from_millis(3000);

/// `berth vm stop`, timed.
fn timed_stop(vm: &Vm) -> Duration {
    let asked = Instant::now();
    vm.vm_ok(&["stop"]);
    let took = asked.elapsed();
    assert_eq!(vm.status()["phase"], "stopped");
    took
}

/// `berth vm start` again; returns its boot time to agent-ready in ms.
fn restart(vm: &Vm) -> u64 {
    vm.vm_ok(&["start"]);
    vm.wait_ready(Duration::from_secs(60))["boot_ms"]
        .as_u64()
        .unwrap()
}

/// Edits the VM's settings.json.
fn set_disk_size(vm: &Vm, bytes: u64) {
    let path = vm.dir.path().join("settings.json");
    let mut s: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    s["disk_size"] = bytes.into();
    std::fs::write(&path, serde_json::to_vec_pretty(&s).unwrap()).unwrap();
}

/// Starts `n` containers whose main process exits on SIGTERM.
fn run_prompt_containers(vm: &Vm, n: usize) {
    for i in 0..n {
        vm.ok(&[
            "run",
            "-d",
            "--name",
            &format!("prompt{i}"),
            "bb",
            "sh",
            "-c",
            "trap 'exit 0' TERM; echo up; while :; do sleep 0.1; done",
        ]);
    }
}

fn host_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn the_vm_stops_in_a_second_and_keeps_in_step_with_the_host() {
    if !can_boot() {
        return;
    }
    // The host's resolver file, as the supervisor reads it.
    let host = tempfile::tempdir().unwrap();
    let resolv = host.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.53\nsearch before.example\n").unwrap();
    std::env::set_var("BERTH_VM_RESOLV_CONF", &resolv);
    let vm = Vm::start(&["--network", "restricted", "--no-shares"]);
    let first_boot = vm.status()["boot_ms"].as_u64().unwrap();
    let tar = vm.dir.path().join("bb.tar");
    busybox_archive(&tar);
    vm.ok(&["load", "-i", tar.to_str().unwrap()]);

    // The clock: set wrong inside the VM (a privileged container shares the
    // VM's clock), it is the host's again within a second.
    let out = vm.ok(&[
        "run",
        "--rm",
        "--privileged",
        "bb",
        "sh",
        "-c",
        "date -s @1000000000 >/dev/null; read a _ </proc/uptime; \
         i=0; while [ $(date +%s) -lt 1700000000 ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i+1)); done; \
         read b _ </proc/uptime; echo $a $b $(date +%s)",
    ]);
    let f: Vec<f64> = out.split_whitespace().map(|w| w.parse().unwrap()).collect();
    let corrected_after = f[1] - f[0];
    println!("guest clock set 1.7e9 s back: the host's again after {corrected_after:.3} s");
    assert!(
        corrected_after < 1.0,
        "the guest clock was wrong for {corrected_after} s\n{}",
        vm.console_tail()
    );
    assert!(
        (f[2] - host_now()).abs() < 5.0,
        "guest {} host {}",
        f[2],
        host_now()
    );

    // DNS: new containers see the host's resolver, and its changes, with
    // no restart.
    // On a bridge the container asks the embedded resolver, which asks the
    // VM's name servers; with the host's network it asks them itself.
    let seen = vm.ok(&["run", "--rm", "bb", "cat", "/etc/resolv.conf"]);
    assert!(seen.contains("search before.example"), "{seen}");
    let seen = vm.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "bb",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(
        seen.contains("search before.example") && seen.contains("nameserver 10.0.2.3"),
        "{seen}"
    );
    std::fs::write(&resolv, "nameserver 192.0.2.53\nsearch after.example\n").unwrap();
    let changed = Instant::now();
    loop {
        let seen = vm.ok(&[
            "run",
            "--rm",
            "--network",
            "host",
            "bb",
            "cat",
            "/etc/resolv.conf",
        ]);
        if seen.contains("search after.example") && seen.contains("nameserver 192.0.2.53") {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(15),
            "the host's new resolver did not reach a new container:\n{seen}"
        );
    }

    // Stop with three running containers that exit on SIGTERM.
    run_prompt_containers(&vm, 3);
    let quick = timed_stop(&vm);
    println!("berth vm stop with 3 containers that exit on SIGTERM: {quick:?}");
    assert!(
        quick < STOP_LIMIT,
        "berth vm stop took {quick:?}\n{}",
        vm.console_tail()
    );
    assert!(vm
        .console()
        .contains("power-off: containers stopped (0 killed"));

    // A later boot: the disk is formatted already.
    let later_boot = restart(&vm);
    println!("boot to ready: first {first_boot} ms, later {later_boot} ms");
    assert!(
        (first_boot as f64) <= later_boot as f64 * 1.2 + 1000.0,
        "the first boot ({first_boot} ms) is much slower than a later one ({later_boot} ms)"
    );
    // The containers were stopped, not killed: their exits were recorded.
    let ps = vm.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.contains("prompt0 Exited (0)"), "{ps}");

    // A container that ignores SIGTERM gets its whole stop timeout.
    vm.ok(&["run", "-d", "--stop-timeout", "2", "bb", "sleep", "1000"]);
    let slow = timed_stop(&vm);
    println!("berth vm stop with a container that ignores SIGTERM (timeout 2 s): {slow:?}");
    assert!(
        slow >= Duration::from_secs(2) && vm.console().contains("did not stop within 2 s"),
        "stopped after {slow:?}\n{}",
        vm.console_tail()
    );
}

#[test]
fn the_data_disk_grows_with_its_setting_and_never_shrinks() {
    if !can_boot() {
        return;
    }
    let vm = Vm::start(&["--network", "none", "--no-shares"]);
    let tar = vm.dir.path().join("bb.tar");
    busybox_archive(&tar);
    vm.ok(&["load", "-i", tar.to_str().unwrap()]);
    let disk_kib = |vm: &Vm| -> u64 {
        let out = vm.ok(&["run", "--rm", "bb", "df", "-k", "/"]);
        out.lines()
            .nth(1)
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|k| k.parse().ok())
            .unwrap_or_else(|| panic!("df said {out}"))
    };
    let before = disk_kib(&vm);
    vm.vm_ok(&["stop"]);
    set_disk_size(&vm, 80 << 30);
    restart(&vm);
    let after = disk_kib(&vm);
    println!("data disk: {} GiB, then {} GiB", before >> 20, after >> 20);
    assert!(
        after > before + (10 << 20) && after > 75 << 20,
        "the file system did not grow: {before} KiB, then {after} KiB\n{}",
        vm.console_tail()
    );
    // The images survived the growth.
    assert_eq!(vm.ok(&["run", "--rm", "bb", "echo", "kept"]).trim(), "kept");
    vm.vm_ok(&["stop"]);

    // An image with an older agent than this Berth's: the start boots the
    // image that came with this Berth instead (its system disk), and the
    // data disk, with the loaded image, stays.
    let old = tempfile::tempdir().unwrap();
    let current = berth_tests::vm::image_dir();
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(current.join("manifest.json")).unwrap()).unwrap();
    for name in std::fs::read_dir(&current).unwrap().flatten() {
        std::os::unix::fs::symlink(name.path(), old.path().join(name.file_name())).unwrap();
    }
    manifest["agent_version"] = "0.0.1".into();
    std::fs::remove_file(old.path().join("manifest.json")).unwrap();
    std::fs::write(
        old.path().join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    std::env::set_var("BERTH_VM_IMAGE", &current);
    vm.vm_ok(&["start", "--image", old.path().to_str().unwrap()]);
    let log = std::fs::read_to_string(vm.dir.path().join("supervisor.log")).unwrap_or_default();
    assert!(
        log.contains("has agent 0.0.1") && log.contains("the data disk is kept"),
        "{log}"
    );
    assert_eq!(vm.ok(&["run", "--rm", "bb", "echo", "kept"]).trim(), "kept");
    vm.vm_ok(&["stop"]);
    set_disk_size(&vm, 32 << 30);
    let out = vm.vm(&["start"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("data disk is 80.0 GiB and cannot shrink to 32.0 GiB"),
        "{err}"
    );
}
