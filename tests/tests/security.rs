//! Other users and other networks, with the real binaries: the socket is
//! its group's, plain TCP is loopback only, and mutual TLS takes only
//! client certificates from the agent's own CA.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::{bin, need_root};

fn sh(script: &str) -> std::process::Output {
    Command::new("sh").arg("-c").arg(script).output().unwrap()
}

/// A CA named `ca` and certificates it signs: `NAME.pem`/`NAME.key` for a
/// server at 127.0.0.1 or a client.
fn certs(dir: &Path, ca: &str, names: &[(&str, bool)]) {
    let d = dir.display();
    let mut script = format!(
        "cd {d} && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
         -keyout {ca}.key -out {ca}.pem -days 2 -subj /CN={ca} 2>/dev/null"
    );
    for (name, server) in names {
        let ext = if *server {
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"
        } else {
            "extendedKeyUsage=clientAuth"
        };
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        script += &format!(
            " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout {name}.key \
             -out {name}.csr -subj /CN={name} 2>/dev/null \
             && openssl x509 -req -in {name}.csr -CA {ca}.pem -CAkey {ca}.key -CAcreateserial \
             -out {name}.pem -days 2 -extfile {name}.ext 2>/dev/null"
        );
    }
    let out = sh(&script);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts berth-agent with `args`; waits until `ready` says so.
fn agent(root: &Path, args: &[&str], ready: impl Fn() -> bool) -> std::process::Child {
    let child = Command::new(bin("berth-agent"))
        .arg("--root")
        .arg(root)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "the agent did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[test]
fn a_user_outside_the_sockets_group_is_refused_with_a_sentence() {
    if !need_root() {
        return;
    }
    let user = format!("bthout{}", std::process::id() % 100_000);
    assert!(sh("groupadd -f berth").status.success());
    let made = sh(&format!("useradd -M -N -s /bin/sh {user}"));
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    // Others may reach the socket's folder; the socket itself decides.
    sh(&format!("chmod 755 {}", dir.path().display()));
    let sock = dir.path().join("berth.sock");
    let host = format!("unix://{}", sock.display());
    let mut child = agent(&dir.path().join("root"), &["--listen", &host], || {
        sock.exists()
    });
    let meta = sh(&format!("stat -c '%a %G' {}", sock.display()));
    let result = std::panic::catch_unwind(|| {
        assert_eq!(String::from_utf8_lossy(&meta.stdout).trim(), "660 berth");
        let berth = bin("berth");
        let out = sh(&format!(
            "runuser -u {user} -- {} -H {host} ps",
            berth.display()
        ));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("permission") && err.contains("group berth"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        // In the group, the same user gets in.
        assert!(sh(&format!("usermod -aG berth {user}")).status.success());
        let out = sh(&format!(
            "runuser -u {user} -- {} -H {host} ps",
            berth.display()
        ));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let _ = child.kill();
    let _ = child.wait();
    sh(&format!("userdel {user}"));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn plain_tcp_off_loopback_is_refused_at_start() {
    if !need_root() {
        return;
    }
    let err = refused_at_start(&[
        "--listen",
        &format!("tcp://0.0.0.0:{}", berth_tests::free_port()),
    ]);
    assert!(
        err.contains("plain TCP is allowed only on loopback"),
        "{err}"
    );
}

/// Starts berth-agent with `args`, expecting it to refuse; its stderr.
fn refused_at_start(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin("berth-agent"))
        .arg("--root")
        .arg(dir.path().join("root"))
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the agent started with {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_client_certificate_from_another_ca_is_refused() {
    if !need_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certs(d, "ca", &[("server", true), ("client", false)]);
    certs(d, "otherca", &[("stranger", false)]);
    let port = berth_tests::free_port();
    let host = format!("tcp://127.0.0.1:{port}");
    let p = |f: &str| d.join(f).display().to_string();
    let mut child = agent(
        &d.join("root"),
        &[
            "--listen",
            &host,
            "--tls-cert",
            &p("server.pem"),
            "--tls-key",
            &p("server.key"),
            "--tls-client-ca",
            &p("ca.pem"),
        ],
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    let berth = |cert: &str| {
        Command::new(bin("berth"))
            .env_remove("BERTH_HOST")
            .args([
                "-H",
                &host,
                "--tlscacert",
                &p("ca.pem"),
                "--tlscert",
                &p(&format!("{cert}.pem")),
                "--tlskey",
                &p(&format!("{cert}.key")),
                "ps",
            ])
            .output()
            .unwrap()
    };
    let ours = berth("client");
    let theirs = berth("stranger");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let err = String::from_utf8_lossy(&theirs.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        theirs.status.code(),
        Some(1),
        "signal {:?}: {err}",
        theirs.status.signal()
    );
    assert!(err.starts_with("Error: "), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn the_docker_api_takes_mutual_tls_off_loopback_and_nothing_plain() {
    if !need_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Plain TCP off loopback is refused at start, for the Docker API too.
    let err = refused_at_start(&[
        "--listen",
        &format!("unix://{}/r.sock", d.display()),
        "--docker-listen",
        &format!("tcp://0.0.0.0:{}", berth_tests::free_port()),
    ]);
    assert!(
        err.contains("Docker API") && err.contains("without TLS"),
        "{err}"
    );

    certs(d, "ca", &[("server", true), ("client", false)]);
    certs(d, "otherca", &[("stranger", false)]);
    let port = berth_tests::free_port();
    let p = |f: &str| d.join(f).display().to_string();
    let mut child = agent(
        &d.join("root"),
        &[
            "--listen",
            &format!("unix://{}/b.sock", d.display()),
            "--docker-listen",
            &format!("tcp://0.0.0.0:{port}"),
            "--tls-cert",
            &p("server.pem"),
            "--tls-key",
            &p("server.key"),
            "--tls-client-ca",
            &p("ca.pem"),
        ],
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    let host = format!("tcp://127.0.0.1:{port}");
    // Docker's own client, as a user points it at a remote dockerd on 2376.
    let docker = |cert: Option<&str>, args: &[&str]| {
        let mut c = Command::new("docker");
        c.env_remove("DOCKER_HOST")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .env("DOCKER_CONFIG", d.join("docker-config"))
            .args(["-H", &host]);
        if let Some(cert) = cert {
            c.args(["--tlsverify", "--tlscacert", &p("ca.pem")])
                .args(["--tlscert", &p(&format!("{cert}.pem"))])
                .args(["--tlskey", &p(&format!("{cert}.key"))]);
        }
        c.args(args).output().unwrap()
    };
    let version = docker(
        Some("client"),
        &["version", "--format", "{{.Server.APIVersion}}"],
    );
    let made = docker(Some("client"), &["volume", "create", "overtls"]);
    let listed = docker(Some("client"), &["volume", "ls", "-q"]);
    let stranger = docker(Some("stranger"), &["volume", "ls", "-q"]);
    let plain = docker(None, &["volume", "ls", "-q"]);
    let _ = child.kill();
    let _ = child.wait();
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    assert!(version.status.success(), "{}", text(&version));
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), "1.51");
    assert!(made.status.success(), "{}", text(&made));
    assert!(
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .any(|l| l == "overtls"),
        "{}",
        text(&listed)
    );
    assert!(
        !stranger.status.success(),
        "another CA's client got in: {}",
        text(&stranger)
    );
    assert!(
        !plain.status.success(),
        "a client without TLS got in: {}",
        text(&plain)
    );
}
