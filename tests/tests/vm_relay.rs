//! The VM's byte relays, end to end under QEMU TCG:
//! - heavy traffic both ways at once on one hybrid-vsock connection, the
//!   pattern that stalled `vhost-device-vsock` 0.3.0 for good (its event
//!   loop never flushed the bytes it held for the host while the host's
//!   socket was readable too; `scripts/vhost-device-vsock.patch`): 256 MiB
//!   each way through the agent's echo probe, and through
//!   `berth exec -i CONTAINER cat` (gRPC on the agent's one connection);
//! - published ports through the raw relay (one vsock connection per
//!   forwarded connection): bulk both ways, a half-close, UDP;
//! - the Docker Engine API on the VM's `docker.sock`, which `berth vm
//!   start` prints, driven by the stock `docker` CLI.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_tests::containers::busybox_archive;
use berth_tests::vm::{can_boot, Vm};

/// The byte at offset `i` of the test stream: changes every byte and
/// every MiB, so a lost, repeated or reordered block shows.
fn pattern(i: u64) -> u8 {
    ((i % 251) ^ (i >> 20)) as u8
}

/// How long without a byte moving counts as a stall.
const STALL: Duration = Duration::from_secs(30);

/// What the vsock backend holds for each of its file descriptors (epoll
/// registrations and socket queues), for a stall's report.
fn backend_state(vm: &Vm) -> String {
    let dir = vm.dir.path().to_string_lossy().to_string();
    let mut out = String::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for p in procs.flatten() {
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !cmdline.contains("vhost-device-vsock") || !cmdline.contains(&dir) {
            continue;
        }
        let ticks = || {
            let stat = std::fs::read_to_string(p.path().join("stat")).unwrap_or_default();
            // After the command's name: state is field 3, utime 14, stime 15.
            let f: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .collect();
            let field = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
            field(11) + field(12)
        };
        let before = ticks();
        std::thread::sleep(Duration::from_secs(1));
        out.push_str(&format!(
            "{cmdline}\nCPU in the last second: {} ticks of 100\n",
            ticks() - before
        ));
        for fd in std::fs::read_dir(p.path().join("fdinfo"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
            if info.contains("tfd:") {
                out.push_str(&format!("epoll fd {:?}:\n{info}", fd.file_name()));
            }
        }
    }
    if let Ok(ss) = Command::new("ss").args(["-xanp"]).output() {
        for line in String::from_utf8_lossy(&ss.stdout).lines() {
            if line.contains(&dir) || line.contains("vhost-device") {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// Writes `total` bytes of [`pattern`] to `writer` while reading them
/// back from `reader`; returns the seconds it took. Panics with `state()`
/// (the backend's state) if nothing moves for [`STALL`].
fn pump(
    what: &str,
    mut writer: impl Write + Send + 'static,
    mut reader: impl Read + Send + 'static,
    total: u64,
    state: impl Fn() -> String,
) -> f64 {
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let sending = {
        let sent = sent.clone();
        std::thread::spawn(move || {
            let mut chunk = vec![0u8; 256 << 10];
            let mut at = 0u64;
            while at < total {
                let n = chunk.len().min((total - at) as usize);
                for (k, b) in chunk[..n].iter_mut().enumerate() {
                    *b = pattern(at + k as u64);
                }
                if writer.write_all(&chunk[..n]).is_err() {
                    return;
                }
                at += n as u64;
                sent.store(at, Ordering::Relaxed);
            }
            // The end of what is sent (a half-close where there is one).
            drop(writer);
        })
    };
    let reading = {
        let received = received.clone();
        std::thread::spawn(move || -> Result<(), String> {
            let mut buf = vec![0u8; 256 << 10];
            let mut at = 0u64;
            loop {
                let n = reader.read(&mut buf).map_err(|e| e.to_string())?;
                if n == 0 {
                    return Ok(());
                }
                if let Some(k) = (0..n).find(|&k| buf[k] != pattern(at + k as u64)) {
                    return Err(format!("byte {} came back changed", at + k as u64));
                }
                at += n as u64;
                received.store(at, Ordering::Relaxed);
            }
        })
    };
    let mut last = (0, 0);
    let mut moved = Instant::now();
    while received.load(Ordering::Relaxed) < total && !reading.is_finished() {
        std::thread::sleep(Duration::from_millis(50));
        let now = (
            sent.load(Ordering::Relaxed),
            received.load(Ordering::Relaxed),
        );
        if now != last {
            last = now;
            moved = Instant::now();
        } else if moved.elapsed() > STALL {
            panic!(
                "{what}: the connection stalled with {} of {total} bytes sent and {} received; \
                 nothing moved for {STALL:?}\nvsock backend:\n{}",
                now.0,
                now.1,
                state()
            );
        }
    }
    let took = started.elapsed().as_secs_f64();
    let checked = reading.join().unwrap();
    assert_eq!(checked, Ok(()), "{what}");
    assert_eq!(
        received.load(Ordering::Relaxed),
        total,
        "{what}: the connection ended after {} of {total} bytes came back",
        received.load(Ordering::Relaxed)
    );
    sending.join().unwrap();
    let mib = (total >> 20) as f64;
    eprintln!(
        "{what}: {mib} MiB each way at once in {took:.1} s, {:.1} MiB/s each way",
        mib / took
    );
    took
}

/// The VM's hybrid-vsock socket (from `berth vm status`).
fn vsock_socket(vm: &Vm) -> PathBuf {
    let endpoint = vm.status()["endpoint"].as_str().unwrap().to_string();
    let path = endpoint
        .strip_prefix("hybrid-vsock://")
        .and_then(|p| p.split('?').next())
        .unwrap_or_else(|| panic!("not a hybrid-vsock endpoint: {endpoint}"));
    PathBuf::from(path)
}

/// Reads one line, a byte at a time.
fn line(s: &mut UnixStream) -> String {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).unwrap() == 1 && b[0] != b'\n' {
        out.push(b[0]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A connection to the agent's port relay (the agent's port + 1) that has
/// asked `ask` and been answered `OK`.
fn relay_connection(socket: &Path, ask: &str) -> UnixStream {
    let mut s = UnixStream::connect(socket).unwrap();
    s.write_all(b"CONNECT 1025\n").unwrap();
    let ok = line(&mut s);
    assert!(ok.starts_with("OK "), "hybrid vsock answered {ok:?}");
    s.write_all(format!("{ask}\n").as_bytes()).unwrap();
    assert_eq!(line(&mut s), "OK", "the relay refused {ask}");
    s
}

/// Half-closes a Unix stream's writing side when dropped.
struct WriteHalf(UnixStream);

impl Write for WriteHalf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl Drop for WriteHalf {
    fn drop(&mut self) {
        let _ = self.0.shutdown(Shutdown::Write);
    }
}

/// Half-closes a TCP stream's writing side when dropped.
struct TcpWriteHalf(TcpStream);

impl Write for TcpWriteHalf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl Drop for TcpWriteHalf {
    fn drop(&mut self) {
        let _ = self.0.shutdown(Shutdown::Write);
    }
}

/// MiB for the both-ways transfers: `BERTH_VM_RELAY_MIB`, default 256.
fn heavy_mib() -> u64 {
    std::env::var("BERTH_VM_RELAY_MIB")
        .ok()
        .and_then(|m| m.parse::<u64>().ok())
        .unwrap_or(256)
}

/// Waits until a TCP connection to `port` echoes a probe.
fn echoing(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = (|| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
            s.write_all(b"probe").ok()?;
            let mut back = [0u8; 5];
            s.read_exact(&mut back).ok()?;
            s.set_read_timeout(None).ok()?;
            (&back == b"probe").then_some(s)
        })();
        if let Some(s) = attempt {
            return s;
        }
        assert!(Instant::now() < deadline, "port {port} never echoed");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs the docker CLI against `socket`.
fn docker(
    socket: &Path,
    config: &Path,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> (bool, String, String) {
    let mut child = Command::new(berth_tests::docker::docker_cli())
        .args(args)
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .env("DOCKER_CONFIG", config)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run docker");
    if let Some(data) = stdin {
        let mut w = child.stdin.take().unwrap();
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = w.write_all(&data);
        });
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_vm_relays_heavy_traffic_both_ways_published_ports_and_the_docker_api() {
    if !can_boot() {
        return;
    }
    let tools = tempfile::tempdir_in("/tmp").unwrap();
    let tools_path = tools.path().to_str().unwrap().to_string();
    let vm = Vm::start(&["--share", &tools_path, "--network", "none"]);
    let socket = vsock_socket(&vm);
    let mib = heavy_mib();
    let total = mib << 20;

    // 1. The stall's pattern on a raw vsock connection: the agent echoes
    // what it reads while the host writes and reads at once.
    let conn = relay_connection(&socket, "ECHO");
    let writer = WriteHalf(conn.try_clone().unwrap());
    pump("raw vsock echo", writer, conn, total, || backend_state(&vm));

    // Raw vsock one way, for the relay's comparison.
    let mut sink = relay_connection(&socket, "SINK");
    let one_way = 64u64 << 20;
    let started = Instant::now();
    let chunk = vec![7u8; 256 << 10];
    for _ in 0..one_way / chunk.len() as u64 {
        sink.write_all(&chunk).unwrap();
    }
    sink.shutdown(Shutdown::Write).unwrap();
    assert_eq!(line(&mut sink), one_way.to_string());
    let raw_mibs = 64.0 / started.elapsed().as_secs_f64();
    eprintln!("raw vsock one way: {raw_mibs:.1} MiB/s");

    // 2. gRPC on the agent's one connection: exec's stdin and stdout.
    let tar = vm.dir.path().join("bb.tar");
    busybox_archive(&tar);
    vm.ok(&["load", "-i", tar.to_str().unwrap()]);
    vm.ok(&["run", "-d", "--name", "pipe", "bb", "sleep", "3600"]);
    let endpoint = vm.status()["endpoint"].as_str().unwrap().to_string();
    let mut exec = Command::new(berth_tests::bin("berth"))
        .args(["exec", "-i", "pipe", "cat"])
        .env("BERTH_HOST", &endpoint)
        .env("BERTH_CONFIG", vm.dir.path().join("client"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run berth exec");
    let (stdin, stdout) = (exec.stdin.take().unwrap(), exec.stdout.take().unwrap());
    pump(
        "exec -i cat (gRPC)",
        stdin,
        stdout,
        (mib / 4).max(1) << 20,
        || backend_state(&vm),
    );
    assert!(exec.wait().unwrap().success());

    // 3. A published TCP port through the raw relay: bulk both ways, then
    // a half-close that must reach the container while its answer still
    // comes back.
    let port = berth_tests::free_port();
    vm.ok(&[
        "run",
        "-d",
        "--name",
        "echo",
        "-p",
        &format!("{port}:7"),
        "bb",
        "nc",
        "-ll",
        "-p",
        "7",
        "-e",
        "cat",
    ]);
    let conn = echoing(port);
    let writer = TcpWriteHalf(conn.try_clone().unwrap());
    let relay_took = pump(
        "published port",
        writer,
        conn,
        (mib / 4).max(1) << 20,
        || backend_state(&vm),
    );
    let mut half = echoing(port);
    half.write_all(b" and the end").unwrap();
    half.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    half.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    half.read_to_string(&mut answer)
        .expect("the answer after a half-close never ended");
    assert_eq!(answer, " and the end");
    eprintln!(
        "published port vs raw vsock: {:.1} MiB/s each way at once, raw one way {raw_mibs:.1}",
        ((mib / 4).max(1)) as f64 / relay_took
    );

    // 4. A published UDP port.
    let built = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(tools.path().join("udp-echo"))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/udp-echo.c"))
        .status()
        .unwrap();
    assert!(built.success());
    let uport = berth_tests::free_port();
    let tools_mount = format!("{tools_path}:/tools:ro");
    vm.ok(&[
        "run",
        "-d",
        "--name",
        "dns",
        "-p",
        &format!("{uport}:53/udp"),
        "-v",
        &tools_mount,
        "bb",
        "/tools/udp-echo",
        "53",
    ]);
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 64];
    let got = loop {
        udp.send_to(b"who is there", ("127.0.0.1", uport)).unwrap();
        if let Ok(n) = udp.recv(&mut buf) {
            break buf[..n].to_vec();
        }
        assert!(
            Instant::now() < deadline,
            "the published UDP port {uport} never answered\n{}",
            vm.console_tail()
        );
    };
    assert_eq!(got, b"who is there");

    // 5. The Docker API: `berth vm start` prints the socket; the stock
    // docker CLI runs a container and an exec with a large stdin.
    vm.vm_ok(&["stop"]);
    let started = vm.vm(&["start"]);
    let said = String::from_utf8_lossy(&started.stdout).into_owned();
    let docker_sock = vm.dir.path().join("docker.sock");
    assert!(
        said.contains(&format!(
            "export DOCKER_HOST=unix://{}",
            docker_sock.display()
        )),
        "berth vm start did not print the Docker socket:\n{said}"
    );
    let config = tempfile::tempdir().unwrap();
    let (ok, out, err) = docker(
        &docker_sock,
        config.path(),
        &["run", "--rm", "bb", "echo", "hi"],
        None,
    );
    assert!(ok && out == "hi\n", "docker run through the VM: {out}{err}");
    let (ok, out, err) = docker(
        &docker_sock,
        config.path(),
        &["run", "-d", "--name", "dpipe", "bb", "sleep", "3600"],
        None,
    );
    assert!(ok, "docker run -d through the VM: {out}{err}");
    let stdin: Vec<u8> = (0..32u64 << 20).map(pattern).collect();
    let (ok, out, err) = docker(
        &docker_sock,
        config.path(),
        &["exec", "-i", "dpipe", "wc", "-c"],
        Some(&stdin),
    );
    assert!(
        ok && out.trim() == (32u64 << 20).to_string(),
        "docker exec -i with 32 MiB of stdin through the VM: {out}{err}"
    );
}
