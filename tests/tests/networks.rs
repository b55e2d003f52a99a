//! Networks and published ports end to end: real bridges, veths, nftables
//! and DNS, each agent in a network namespace of its own (its "host").

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use berth_tests::containers::agent_with_busybox;
use berth_tests::{enter_netns, Agent};

/// A busybox web server answering `body` on `port`.
fn web(body: &str, port: u16) -> String {
    format!("mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p {port} -h /www")
}

/// A shell loop that fetches `url` until it answers (the server may
/// still be starting). Debian's static busybox wget crashes with `-T`,
/// so `timeout` bounds each try.
fn fetch(url: &str) -> String {
    format!(
        "(for i in $(seq 50); do timeout 3 wget -q -O - {url} && exit 0; sleep 0.1; done; exit 1)"
    )
}

/// Berth's links, tables and namespaces left in the agent's network.
fn leftovers(agent: &Agent) -> String {
    // The default bridge (berth0, 10.213/16) and its NAT stay up while the
    // agent runs, as Docker's docker0 does; user networks' bridges and
    // rules, veths and namespaces go. A veth goes with its container's
    // namespace, which the kernel frees a moment after the container.
    let mut text = String::new();
    for _ in 0..30 {
        let out = agent.sh(
            "ip -o link | grep -E ' (berth[1-9]|bth-|vb)' ; nft list table ip berth 2>/dev/null | grep -E 'bth-|10\\.214\\.'; ip -o addr | grep -E '10\\.214\\.'",
        );
        text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Ok(rd) = std::fs::read_dir(agent.root().join("netns")) {
        for e in rd.flatten() {
            text.push_str(&format!("netns {}\n", e.path().display()));
        }
    }
    text
}

/// An HTTP GET from the agent's machine; returns the whole response.
fn http_get(agent: &Agent, port: u16) -> String {
    agent.in_net(move || {
        let mut last = String::new();
        for _ in 0..50 {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(mut s) => {
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
                    let mut out = String::new();
                    let _ = s.read_to_string(&mut out);
                    if !out.is_empty() {
                        return out;
                    }
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("nothing answered on 127.0.0.1:{port}: {last}");
    })
}

fn host_port(agent: &Agent, container: &str, port: &str) -> u16 {
    let line = agent.ok(&["port", container, port]);
    line.trim().rsplit(':').next().unwrap().parse().unwrap()
}

#[test]
fn containers_on_a_user_network_reach_each_other_by_name() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    agent.ok(&["network", "create", "appnet"]);
    agent.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "appnet",
        "--network-alias",
        "www",
        bb,
        "sh",
        "-c",
        &web("hello-web", 80),
    ]);
    let script = format!(
        "{} && {} && grep host.docker.internal /etc/hosts && grep -c db /etc/hosts && cat /etc/resolv.conf",
        fetch("http://web/"),
        fetch("http://www/")
    );
    let out = agent.ok(&[
        "run",
        "--rm",
        "--network",
        "appnet",
        "--add-host",
        "db:host-gateway",
        bb,
        "sh",
        "-c",
        &script,
    ]);
    assert_eq!(out.matches("hello-web").count(), 2, "{out}");
    let inspect = agent.ok(&["network", "inspect", "appnet"]);
    let net: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let gateway = net[0]["IPAM"]["Config"][0]["Gateway"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        out.contains(&format!("{gateway}\thost.docker.internal")),
        "{out}"
    );
    assert!(out.contains("nameserver 127.0.0.11"), "{out}");
    let web_ip = agent
        .ok(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", "web"])
        .trim()
        .to_string();
    let nets: serde_json::Value = serde_json::from_str(&web_ip).unwrap();
    let web_ip = nets["appnet"]["IPAddress"].as_str().unwrap().to_string();
    assert!(web_ip.starts_with("10.214."), "{nets}");
    assert_eq!(
        net[0]["Containers"].as_object().unwrap().len(),
        1,
        "only the running web is on it: {inspect}"
    );
    // Networks are isolated from each other: the default bridge cannot
    // reach appnet's containers.
    let url = format!("http://{web_ip}/");
    let probe = format!("timeout 3 wget -q -O - {url}; echo rc=$?");
    let same = agent.ok(&["run", "--rm", "--network", "appnet", bb, "sh", "-c", &probe]);
    assert!(
        same.contains("hello-web") && same.contains("rc=0"),
        "{same}"
    );
    let other = agent.ok(&["run", "--rm", bb, "sh", "-c", &probe]);
    assert!(
        !other.contains("hello-web") && !other.contains("rc=0"),
        "the default bridge reached appnet: {other}"
    );
    // A network with running containers cannot be removed.
    let err = agent.fails(&["network", "rm", "appnet"]);
    assert!(err.contains("active endpoints"), "{err}");
    // connect: a second network reaches web by name; disconnect ends it.
    agent.ok(&["network", "create", "other"]);
    agent.ok(&["network", "connect", "other", "web"]);
    agent.ok(&[
        "run",
        "--rm",
        "--network",
        "other",
        bb,
        "sh",
        "-c",
        &fetch("http://web/"),
    ]);
    agent.ok(&["network", "disconnect", "other", "web"]);
    let gone = agent.ok(&[
        "run",
        "--rm",
        "--network",
        "other",
        bb,
        "sh",
        "-c",
        "timeout 3 wget -q -O - http://web/; echo rc=$?",
    ]);
    assert!(!gone.contains("rc=0"), "web is still on other: {gone}");
    // Interface numbers are reused: leave the first network while on a
    // second, then join a third.
    agent.ok(&["network", "connect", "other", "web"]);
    agent.ok(&["network", "disconnect", "appnet", "web"]);
    agent.ok(&["network", "create", "third"]);
    agent.ok(&["network", "connect", "third", "web"]);
    for net in ["other", "third"] {
        agent.ok(&[
            "run",
            "--rm",
            "--network",
            net,
            bb,
            "sh",
            "-c",
            &fetch("http://web/"),
        ]);
    }
    // As compose does: a created container leaves the default bridge, its
    // only network, joins another, and starts there.
    agent.ok(&["create", "--name", "late", bb, "sleep", "300"]);
    agent.ok(&["network", "disconnect", "bridge", "late"]);
    agent.ok(&["network", "connect", "third", "late"]);
    agent.ok(&["start", "late"]);
    let nets = agent.ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "late",
    ]);
    assert_eq!(nets.trim(), "third");
    agent.ok(&["exec", "late", "sh", "-c", &fetch("http://web/")]);
    agent.ok(&["rm", "-f", "late"]);
    // Bad input: one sentence each.
    let err = agent.fails(&["network", "create", "appnet"]);
    assert!(err.contains("already exists"), "{err}");
    let err = agent.fails(&["network", "create", "--subnet", "10.214.0.0/16", "clash"]);
    assert!(err.contains("overlaps"), "{err}");
    let err = agent.fails(&["network", "rm", "bridge"]);
    assert!(err.contains("pre-defined"), "{err}");
    let err = agent.fails(&["network", "inspect", "nope"]);
    assert!(err.contains("not found"), "{err}");
    agent.ok(&["rm", "-f", "web"]);
    agent.ok(&["network", "rm", "appnet", "other", "third"]);
    assert_eq!(leftovers(&agent), "");
    assert_eq!(
        agent.ok(&["network", "ls", "--format", "{{.Name}}"]),
        "bridge\nhost\nnone\n"
    );
}

#[test]
fn published_ports_answer_from_the_host() {
    let Some((mut agent, bb)) = agent_with_busybox() else {
        return;
    };
    agent.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "127.0.0.1::80",
        bb,
        "sh",
        "-c",
        &web("hello-port", 80),
    ]);
    let port = host_port(&agent, "web", "80");
    let reply = http_get(&agent, port);
    assert!(
        reply.starts_with("HTTP/1.") && reply.contains("hello-port"),
        "{reply}"
    );
    // The same port through the agent's API (the Ports relay a VM's host
    // uses to publish it on its own localhost).
    let mut relay = std::process::Command::new(berth_tests::bin("tcp-throughput"))
        .args(["relay-cat", &agent.host(), "web", "80"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    relay
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .unwrap();
    let out = relay.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("hello-port"),
        "{text}"
    );
    let ps = agent.ok(&["ps", "--format", "{{.Ports}}"]);
    assert_eq!(ps.trim(), format!("127.0.0.1:{port}->80/tcp"));
    // The host port is taken: a second container cannot have it.
    let out = agent.berth(&[
        "run",
        "-d",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        bb,
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already in use"));
    // -P: every exposed port (8080 in this image) on a free port.
    agent.ok(&[
        "run",
        "-d",
        "--name",
        "all",
        "-P",
        bb,
        "sh",
        "-c",
        &web("hello-all", 8080),
    ]);
    let port_all = host_port(&agent, "all", "8080");
    assert!(http_get(&agent, port_all).contains("hello-all"));
    // A container reaches a published port through the host's address
    // (hairpin NAT back onto the same bridge).
    let url = format!("http://host.docker.internal:{port_all}/");
    let hair = agent.ok(&["run", "--rm", bb, "sh", "-c", &fetch(&url)]);
    assert!(hair.contains("hello-all"), "{hair}");
    // UDP: a socket in the container's network answers through the port.
    agent.ok(&[
        "run",
        "-d",
        "--name",
        "udp",
        "-p",
        "127.0.0.1::5353/udp",
        bb,
        "sleep",
        "600",
    ]);
    let udp_port = host_port(&agent, "udp", "5353/udp");
    let pid = agent
        .ok(&["inspect", "-f", "{{.State.Pid}}", "udp"])
        .trim()
        .to_string();
    let server = std::thread::spawn(move || {
        enter_netns(std::path::Path::new(&format!("/proc/{pid}/ns/net")));
        let s = UdpSocket::bind("0.0.0.0:5353").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = s.recv_from(&mut buf).unwrap();
        s.send_to(&[b"echo:".as_slice(), &buf[..n]].concat(), from)
            .unwrap();
    });
    std::thread::sleep(Duration::from_millis(200));
    let answer = agent.in_net(move || {
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.send_to(b"ping", ("127.0.0.1", udp_port)).unwrap();
        let mut buf = [0u8; 64];
        let n = c.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    });
    server.join().unwrap();
    assert_eq!(answer, "echo:ping");
    // A killed agent: the ports keep answering, and after its restart
    // they are held and removed as before.
    agent.kill9();
    assert!(http_get(&agent, port).contains("hello-port"));
    agent.restart();
    assert!(http_get(&agent, port).contains("hello-port"));
    agent.ok(&["rm", "-f", "web", "all", "udp"]);
    assert_eq!(leftovers(&agent), "");
    // Bad -p values are refused before anything is made.
    for bad in ["80/sctp", "70000:80", "x:80"] {
        let out = agent.berth(&["run", "-p", bad, bb, "true"]);
        assert_ne!(out.status.code(), Some(0), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("invalid -p") && err.lines().count() == 1,
            "{bad}: {err}"
        );
    }
}

#[test]
fn containers_reach_a_server_beyond_the_host() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    // A "remote" machine: a namespace linked to the agent's by a veth,
    // serving HTTP on 192.168.251.2:8080.
    let remote = format!(
        "{}-remote",
        agent
            .netns_path()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
    );
    let dir = agent.dir.path().join("remote-www");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "hello-remote\n").unwrap();
    let setup = format!(
        "set -e; ip netns add {r}; ip link add rmt0 type veth peer name rmt1 netns {r}; \
         ip addr add 192.168.251.1/30 dev rmt0; ip link set rmt0 up; \
         ip -n {r} addr add 192.168.251.2/30 dev rmt1; ip -n {r} link set rmt1 up; ip -n {r} link set lo up; \
         ip netns exec {r} busybox httpd -p 8080 -h {d}",
        r = remote,
        d = dir.display()
    );
    let out = agent.sh(&setup);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // --network host shares the agent's network, veth to the remote too.
    let host = agent.ok(&["run", "--rm", "--network", "host", bb, "ip", "-o", "addr"]);
    assert!(host.contains("192.168.251.1/30"), "{host}");
    let got = agent.berth(&[
        "run",
        "--rm",
        bb,
        "sh",
        "-c",
        &fetch("http://192.168.251.2:8080/"),
    ]);
    let _ = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ip netns pids {remote} | xargs -r kill; ip netns del {remote}"
        ))
        .status();
    assert!(
        String::from_utf8_lossy(&got.stdout).contains("hello-remote"),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    // --network none has only its loopback.
    let none = agent.ok(&["run", "--rm", "--network", "none", bb, "ip", "-o", "link"]);
    assert_eq!(none.lines().count(), 1, "{none}");
    assert!(none.contains("LOOPBACK,UP"), "lo is down: {none}");
    assert_eq!(leftovers(&agent), "");
}
