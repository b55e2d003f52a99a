//! Berth's Linux VM end to end, under QEMU TCG: the guest image boots with
//! the agent as PID 1 on vsock; containers run, exec and log; a published
//! port answers on the host's loopback; a shared host folder is seen at
//! once and its changes fire inotify watchers in a container; the agent
//! restarts inside the VM; the VM comes back after `kill -9` of QEMU with
//! its images and volumes; bulk traffic both ways crosses the transport;
//! the memory and disk a container used go back to the host.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use berth_tests::containers::busybox_archive;
use berth_tests::vm::{can_boot, Vm};

fn http_get(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// A connection to the echo server on `port` that has echoed a probe, or
/// `None` if the server is not answering yet.
fn echoing_connection(port: u16) -> Option<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"probe").ok()?;
    let mut back = [0u8; 5];
    s.read_exact(&mut back).ok()?;
    (&back == b"probe").then_some(s)
}

/// Waits until `berth logs NAME` holds `want`; returns how long it took.
fn wait_log(vm: &Vm, name: &str, want: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let logs = vm.ok(&["logs", name]);
        if logs.contains(want) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "'{want}' not in the logs of {name} after {limit:?}:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_vm_runs_containers_shares_folders_and_survives_crashes() {
    if !can_boot() {
        return;
    }
    let share = tempfile::tempdir_in("/tmp").unwrap();
    let share_path = share.path().to_str().unwrap().to_string();
    let vm = Vm::start(&["--share", &share_path, "--network", "none"]);
    let version = vm.ok(&["version"]);
    assert!(version.contains("Kernel:\t6."), "{version}");

    // A stop right after the first boot, before the guest's power button
    // driver has loaded, is still a clean power-off (the files the agent
    // wrote reach the disk), not the supervisor's kill after 30 s.
    let asked = Instant::now();
    vm.vm_ok(&["stop"]);
    assert!(
        asked.elapsed() < Duration::from_secs(20)
            && vm.console().contains("berth-init: powering off"),
        "the first stop was not a clean power-off after {:?}\n{}",
        asked.elapsed(),
        vm.console_tail()
    );
    vm.vm_ok(&["start"]);
    assert!(
        !vm.console().contains("skipping"),
        "records written before the first stop were lost\n{}",
        vm.console_tail()
    );

    // An image through the vsock transport, then a container.
    let tar = vm.dir.path().join("bb.tar");
    busybox_archive(&tar);
    vm.ok(&["load", "-i", tar.to_str().unwrap()]);
    assert_eq!(
        vm.ok(&["run", "--rm", "bb", "echo", "hello from the VM"])
            .trim(),
        "hello from the VM"
    );
    // A build whose context crosses vsock: a host folder's file, copied
    // into the image and read by a RUN step in the guest.
    let ctx = tempfile::tempdir_in("/tmp").unwrap();
    std::fs::write(ctx.path().join("hello.txt"), "built in the VM\n").unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM bb\nCOPY hello.txt /srv/\nRUN cat /srv/hello.txt > /srv/copy.txt\n",
    )
    .unwrap();
    vm.ok(&[
        "build",
        "--network",
        "none",
        "-t",
        "vm-built",
        ctx.path().to_str().unwrap(),
    ]);
    assert_eq!(
        vm.ok(&["run", "--rm", "vm-built", "cat", "/srv/copy.txt"])
            .trim(),
        "built in the VM"
    );
    // A container's process starts with no signal blocked: `berth stop`'s
    // SIGTERM and a terminal's Ctrl-C reach it (PID 1 in the VM blocks the
    // signals it waits for; nothing below it may inherit that).
    let status = vm.ok(&["run", "--rm", "bb", "cat", "/proc/self/status"]);
    assert!(
        status.contains("SigBlk:\t0000000000000000")
            && status.contains("SigIgn:\t0000000000000000"),
        "a container in the VM starts with signals blocked or ignored:\n{status}"
    );
    // Under TCG the guest's CPU has no ERMS, so its kernel and libc do
    // not copy memory with `rep movsb`, which TCG runs a byte per step.
    let cpuinfo = vm.ok(&["run", "--rm", "bb", "cat", "/proc/cpuinfo"]);
    assert!(
        cpuinfo.contains("flags") && !cpuinfo.contains(" erms") && !cpuinfo.contains(" fsrm"),
        "the guest under TCG copies memory byte by byte:\n{cpuinfo}"
    );

    // A published port answers on the host's loopback, relayed by the VM
    // supervisor through the agent.
    std::fs::create_dir(share.path().join("www")).unwrap();
    std::fs::write(
        share.path().join("www/index.html"),
        "served from the host folder\n",
    )
    .unwrap();
    let port = berth_tests::free_port();
    let www = format!("{share_path}/www:/www:ro");
    let publish = format!("{port}:80");
    vm.ok(&[
        "run", "-d", "--name", "web", "-p", &publish, "-v", &www, "bb", "httpd", "-f", "-p", "80",
        "-h", "/www",
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let page = loop {
        if let Some(p) = http_get(port).filter(|p| p.contains("200 OK")) {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the published port {port} never answered\n{}",
            vm.console_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(page.contains("served from the host folder"), "{page}");
    // A host edit is served at once.
    std::fs::write(share.path().join("www/index.html"), "edited on the host\n").unwrap();
    assert!(http_get(port).unwrap().contains("edited on the host"));
    assert_eq!(
        vm.ok(&["exec", "web", "cat", "/www/index.html"]),
        "edited on the host\n"
    );

    // Bulk traffic both ways at once over the transport: 16 MiB through an
    // echo server, written and read at the same time.
    let echo_port = berth_tests::free_port();
    vm.ok(&[
        "run",
        "-d",
        "--name",
        "echo",
        "-p",
        &format!("{echo_port}:7"),
        "bb",
        "nc",
        "-ll",
        "-p",
        "7",
        "-e",
        "cat",
    ]);
    // The host listens as soon as the port is published, before `nc` in
    // the container may be listening: such an early connection is closed,
    // as with Docker. Wait until a connection echoes.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut conn = loop {
        if let Some(c) = echoing_connection(echo_port) {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "the echo server on port {echo_port} never echoed\n{}",
            vm.console_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let total = 16usize << 20;
    let mut writer = conn.try_clone().unwrap();
    let started = Instant::now();
    let sending = std::thread::spawn(move || {
        let chunk: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
        for _ in 0..total / chunk.len() {
            writer.write_all(&chunk)?;
        }
        writer.shutdown(std::net::Shutdown::Write)
    });
    let mut echoed = Vec::with_capacity(total);
    let mut buf = vec![0u8; 1 << 16];
    while echoed.len() < total {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => echoed.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "the transport stalled after {} of {total} bytes both ways: {e}",
                echoed.len()
            ),
        }
    }
    assert_eq!(
        echoed.len(),
        total,
        "the relay closed the connection after echoing {} of {total} bytes\n{}",
        echoed.len(),
        vm.console_tail()
    );
    sending.join().unwrap().unwrap();
    assert!(echoed
        .iter()
        .enumerate()
        .all(|(i, b)| *b == ((i % 65536) % 251) as u8));
    eprintln!(
        "16 MiB each way at once through the relay in {:?}",
        started.elapsed()
    );

    // Host file events reach an inotify watcher in a container, in order.
    let tools = share.path().join("tools");
    std::fs::create_dir(&tools).unwrap();
    let watcher = tools.join("inotify-watch");
    let built = std::process::Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&watcher)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/inotify-watch.c"
        ))
        .status()
        .unwrap();
    assert!(built.success());
    std::fs::create_dir(share.path().join("watched")).unwrap();
    let watched = format!("{share_path}/watched:/w");
    let tool = format!("{}:/inotify-watch:ro", watcher.display());
    vm.ok(&[
        "run",
        "-d",
        "--name",
        "watch",
        "-v",
        &watched,
        "-v",
        &tool,
        "bb",
        "/inotify-watch",
        "/w",
    ]);
    wait_log(&vm, "watch", "watching", Duration::from_secs(20));
    let f = share.path().join("watched/f.txt");
    std::fs::write(&f, "one\n").unwrap();
    // On 9p a new host file reaches the watcher as moved in (or, in a
    // share that holds no aside folder of Berth's, as changed: the VM's
    // state folder is outside this one), and its name never goes missing
    // on the host while the agent replays it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looker = {
        let (f, stop) = (f.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut missing = 0;
            // A look every 50 µs: a replay that took the name away would
            // leave it missing for a 9p round trip or more.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                missing += usize::from(std::fs::symlink_metadata(&f).is_err());
                std::thread::sleep(Duration::from_micros(50));
            }
            missing
        })
    };
    let started = Instant::now();
    let first = loop {
        let logs = vm.ok(&["logs", "watch"]);
        let found = ["moved_to\tf.txt", "create\tf.txt", "modify\tf.txt"]
            .into_iter()
            .filter_map(|e| logs.find(e).map(|at| (at, e)))
            .min();
        if let Some((_, e)) = found {
            break e;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no event for the new f.txt after 10 s:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let create = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(looker.join().unwrap(), 0, "times the host lost f.txt");
    assert_eq!(vm.ok(&["exec", "watch", "cat", "/w/f.txt"]), "one\n");
    std::thread::sleep(Duration::from_millis(300));
    let changes_before = vm.ok(&["logs", "watch"]).matches("modify\tf.txt").count();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&f)
        .unwrap()
        .write_all(b"two\n")
        .unwrap();
    let started = Instant::now();
    while vm.ok(&["logs", "watch"]).matches("modify\tf.txt").count() <= changes_before {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the append to f.txt reached no watcher"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let modify = started.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::remove_file(&f).unwrap();
    let delete = wait_log(&vm, "watch", "delete\tf.txt", Duration::from_secs(10));
    eprintln!("host change → watcher in a container: create {create:?}, modify {modify:?}, delete {delete:?} (including log polling)");
    let logs = vm.ok(&["logs", "watch"]);
    // Created (or first changed), changed, deleted: in that order.
    let order = [
        logs.find(first).unwrap(),
        logs.rfind("modify\tf.txt").unwrap(),
        logs.find("delete\tf.txt").unwrap(),
    ];
    assert!(
        order[0] <= order[1] && order[1] < order[2],
        "events out of order:\n{logs}"
    );
    assert!(
        !logs.contains(".berth-replay"),
        "aside names leaked to the watcher:\n{logs}"
    );

    // A volume, to find again after a crash.
    vm.ok(&["volume", "create", "keep"]);
    vm.ok(&[
        "run",
        "--rm",
        "-v",
        "keep:/data",
        "bb",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);

    // The agent restarts inside the VM: kill it from a container that sees
    // the VM's processes. Containers live on.
    let _ = vm.berth(&[
        "run",
        "--rm",
        "--privileged",
        "--pid",
        "host",
        "bb",
        "sh",
        "-c",
        "kill -9 $(pidof berth-agent)",
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while vm.berth(&["version"]).status.code() != Some(0) {
        assert!(
            Instant::now() < deadline,
            "the agent did not come back\n{}",
            vm.console_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        vm.console().contains("the agent exited"),
        "{}",
        vm.console_tail()
    );
    let running = vm.ok(&["ps", "--format", "{{.Names}}"]);
    assert!(
        running.contains("web") && running.contains("watch"),
        "{running}"
    );
    assert!(http_get(port)
        .unwrap_or_default()
        .contains("edited on the host"));

    // kill -9 of QEMU: the supervisor boots it again, and the data disk
    // still holds the image and the volume.
    let before = vm.status();
    let qemu = before["vmm_pid"].as_u64().expect("qemu pid") as i32;
    unsafe { libc::kill(qemu, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(120);
    let after = loop {
        let s = vm.status();
        if s["restarts"].as_u64() == Some(1) && s["phase"] == "ready" && s["agent_answers"] == true
        {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the VM was not restarted after kill -9: {s}\n{}",
            vm.console_tail()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_ne!(after["vmm_pid"], before["vmm_pid"]);
    assert!(vm.ok(&["images", "-q", "bb"]).trim().len() >= 12);
    assert_eq!(
        vm.ok(&["run", "--rm", "-v", "keep:/data", "bb", "cat", "/data/f"]),
        "kept\n"
    );

    // A clean stop powers the guest off through ACPI.
    vm.vm_ok(&["stop"]);
    assert!(
        vm.console().contains("berth-init: powering off"),
        "{}",
        vm.console_tail()
    );
    assert_eq!(vm.status()["phase"], "stopped");
}

#[test]
fn bad_vm_settings_get_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let berth = berth_tests::bin("berth");
    let run = |args: &[&str]| {
        std::process::Command::new(&berth)
            .arg("vm")
            .args(args)
            .arg("--dir")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let out = run(&["start", "--image", "/nonexistent", "--accel", "tcg"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a guest image"), "{err}");
    let out = run(&["start", "--memory", "10"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("too little"));
    let out = run(&["start", "--accel", "warp"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an accelerator"));
    let out = run(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("stopped"));
}

/// The QEMU process's resident memory (`VmRSS`) in MiB.
fn resident_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib / 1024
}

/// The blocks a file holds on the host's disk (what `du` counts), in MiB.
fn allocated_mib(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    (std::fs::metadata(path).unwrap().blocks() * 512) >> 20
}

/// Polls `sample` each second for up to `limit` until it is at most
/// `goal`; returns the last sample and when it was taken.
fn wait_down_to(goal: u64, limit: Duration, sample: impl Fn() -> u64) -> (u64, Duration) {
    let start = Instant::now();
    loop {
        let now = sample();
        if now <= goal || start.elapsed() >= limit {
            return (now, start.elapsed());
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Memory and disk go back to the host: the idle VM's QEMU is small under
/// TCG, the memory a container filled is returned once it exits (free
/// page reporting through virtio-balloon), and the blocks a removed
/// container wrote leave the qcow2 file (the data disk is mounted with
/// `discard`, the drive passes it through). The VM has 1 GiB, so the
/// container fills 600 MiB, not the 1 GiB.
#[test]
fn the_vm_gives_memory_and_disk_back_to_the_host() {
    if !can_boot() {
        return;
    }
    let vm = Vm::start(&["--no-shares", "--network", "none"]);
    let pid = vm.status()["vmm_pid"].as_u64().expect("qemu pid") as u32;
    let disk = vm.dir.path().join("data.qcow2");
    assert!(disk.exists(), "no data disk at {}", disk.display());

    // Idle with the agent running: what boot freed is reported once PID 1
    // has loaded the balloon's module (after the agent serves, later on a
    // busy machine); wait up to 30 s for it to settle near what was
    // measured, and take the lowest sample.
    let (idle, _) = wait_down_to(250, Duration::from_secs(30), || resident_mib(pid));
    eprintln!("QEMU resident, idle VM with the agent running: {idle} MiB (target 200 MiB)");
    // Measured here: 247 MiB (was 425 MiB before TCG's cache was bounded
    // and free page reporting came). The 200 MiB is not met yet:
    // about 125 MiB is the guest's own (kernel image, slab, page cache,
    // the agent), 64 MiB TCG's cache (smaller caches slowed container
    // work, see `TCG_CACHE_MIB`), the rest QEMU itself. This guards
    // against going back (425 MiB before), with room for a CI machine
    // running other tests beside it (306 MiB seen there).
    assert!(
        idle <= 360,
        "the idle VM holds {idle} MiB of the host's memory (247 MiB when measured; target 200 MiB)"
    );

    let tar = vm.dir.path().join("bb.tar");
    busybox_archive(&tar);
    vm.ok(&["load", "-i", tar.to_str().unwrap()]);

    // Memory: a container fills 600 MiB of tmpfs and holds it.
    let before = resident_mib(pid);
    vm.ok(&[
        "run",
        "-d",
        "--name",
        "hog",
        "--tmpfs",
        "/t:size=700m",
        "bb",
        "sh",
        "-c",
        "dd if=/dev/zero of=/t/fill bs=1M count=600 2>/dev/null; echo filled; sleep 1000",
    ]);
    wait_log(&vm, "hog", "filled", Duration::from_secs(120));
    let loaded = resident_mib(pid);
    let rise = loaded.saturating_sub(before);
    assert!(
        rise >= 500,
        "600 MiB in the guest raised QEMU's memory only {before} → {loaded} MiB"
    );
    vm.ok(&["rm", "-f", "hog"]);
    // Waits for 90% to come back, for the figure; asserts 75%.
    let goal = loaded - rise * 3 / 4;
    let (after, took) = wait_down_to(loaded - rise * 9 / 10, Duration::from_secs(30), || {
        resident_mib(pid)
    });
    eprintln!(
        "QEMU resident: {before} MiB before, {loaded} MiB with 600 MiB in a container's tmpfs, \
         {after} MiB {took:?} after it exited ({}% of the rise given back)",
        (loaded - after.min(loaded)) * 100 / rise
    );
    assert!(
        after <= goal,
        "30 s after the container exited QEMU still holds {after} MiB \
         (was {before} MiB before, {loaded} MiB loaded; goal {goal} MiB)"
    );

    // Disk: a container writes 600 MiB to its own file system, is
    // removed, and the qcow2 file gives the blocks back.
    let disk_before = allocated_mib(&disk);
    vm.ok(&[
        "run",
        "--name",
        "writer",
        "bb",
        "sh",
        "-c",
        "dd if=/dev/zero of=/big bs=1M count=600 2>/dev/null; sync",
    ]);
    // The guest's writes reach the file once QEMU flushes them: wait for
    // the growth before measuring it.
    let start = Instant::now();
    let mut disk_full = allocated_mib(&disk);
    while disk_full < disk_before + 500 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(500));
        disk_full = allocated_mib(&disk);
    }
    let grown = disk_full.saturating_sub(disk_before);
    assert!(
        grown >= 500,
        "600 MiB written in the guest grew the disk file only {disk_before} → {disk_full} MiB"
    );
    vm.ok(&["rm", "writer"]);
    let goal = disk_full - grown * 3 / 4;
    let (disk_after, took) = wait_down_to(goal, Duration::from_secs(60), || allocated_mib(&disk));
    eprintln!(
        "data disk allocated on the host (du): {disk_before} MiB before, {disk_full} MiB with a \
         600 MiB container, {disk_after} MiB {took:?} after it was removed"
    );
    assert!(
        disk_after <= goal,
        "a minute after the container was removed the disk file still holds {disk_after} MiB \
         (was {disk_before} MiB, {disk_full} MiB full; goal {goal} MiB)"
    );
    vm.vm_ok(&["stop"]);
}
