//! The engine under load, as a busy laptop or CI runner puts it: many
//! containers at once on the default bridge, many clients calling at once,
//! and many short runs that must leave nothing behind — and exits seen as
//! they happen.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_tests::containers::{agent_with_busybox, mounts_under};
use berth_tests::Agent;

/// A count from the environment (the benchmark raises them), or `default`.
fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `f(i)` for i in 0..n on `threads` threads at once; returns each
/// call's latency, by `i`.
fn concurrently(
    n: usize,
    threads: usize,
    f: impl Fn(usize) + Send + Sync + 'static,
) -> Vec<(Duration, usize)> {
    let next = Arc::new(AtomicUsize::new(0));
    let times = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let f = Arc::new(f);
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (next, times, f) = (next.clone(), times.clone(), f.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    return;
                }
                let t = Instant::now();
                f(i);
                times.lock().unwrap().push((t.elapsed(), i));
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a client thread panicked");
    }
    let mut t = Arc::try_unwrap(times).unwrap().into_inner().unwrap();
    t.sort();
    t
}

/// The `p`th percentile of latencies.
fn percentile(times: &[(Duration, usize)], p: f64) -> Duration {
    let mut sorted: Vec<Duration> = times.iter().map(|t| t.0).collect();
    sorted.sort();
    let i = ((sorted.len() as f64 * p / 100.0).ceil() as usize).clamp(1, sorted.len());
    sorted[i - 1]
}

/// Every container id the agent reports an event for, collected from
/// `berth events` while the test runs.
struct Seen {
    ids: Arc<Mutex<std::collections::BTreeSet<String>>>,
    child: std::process::Child,
}

impl Seen {
    fn start(agent: &Agent) -> Seen {
        let mut child = agent
            .berth_cmd(&[
                "events",
                "--filter",
                "type=container",
                "--format",
                "{{.ID}}",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let ids = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
        let i = ids.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                i.lock().unwrap().insert(line.trim().to_string());
            }
        });
        std::thread::sleep(Duration::from_millis(200));
        Seen { ids, child }
    }
}

impl Drop for Seen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the host holds for this agent's containers, counted: mounts under
/// its root, cgroups of the containers it reported, network namespaces,
/// veths and nftables rules in its network, its descriptors and its
/// monitor processes. (Other tests run beside this one: only what is this
/// agent's is counted.)
fn footprint(agent: &Agent, agent_pid: u32, seen: &Seen) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    out.insert("mounts", mounts_under(&agent.root()).len());
    let ids = seen.ids.lock().unwrap().clone();
    let cgroups: usize = ids
        .iter()
        .filter(|id| id.len() >= 12)
        .map(|id| {
            // Full ids only: events carry them.
            berth_tests::containers::cgroup_dirs(id).len()
        })
        .sum();
    out.insert("cgroups", cgroups);
    let netns = std::fs::read_dir(agent.root().join("netns"))
        .map(|rd| rd.count())
        .unwrap_or(0);
    out.insert("netns", netns);
    let sh = |script: &str| {
        String::from_utf8_lossy(&agent.sh(script).stdout)
            .trim()
            .parse::<usize>()
            .unwrap_or(0)
    };
    out.insert("veths", sh("ip -o link show type veth | wc -l"));
    out.insert("nft rules", sh("nft -a list ruleset | grep -c handle"));
    let fds = std::fs::read_dir(format!("/proc/{agent_pid}/fd"))
        .map(|rd| rd.count())
        .unwrap_or(0);
    out.insert("agent fds", fds);
    let root = agent.root().display().to_string();
    let monitors = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|p| {
            let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.contains("berth-monitor") && cmd.contains(&root)
        })
        .count();
    out.insert("monitors", monitors);
    out
}

/// The agent's process id (found by its root folder, which is its alone).
fn agent_pid(agent: &Agent) -> u32 {
    let out = Command::new("pgrep")
        .args(["-f", &format!("berth-agent.*{}", agent.root().display())])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("the agent's pid")
}

/// The resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_hundred_containers_on_the_default_bridge_are_listed_stopped_and_removed() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let agent = Arc::new(agent);
    let a = agent.clone();
    let t = Instant::now();
    concurrently(100, 4, move |i| {
        a.ok(&[
            "run",
            "-d",
            "--name",
            &format!("many-{i}"),
            bb,
            "sleep",
            "600",
        ]);
    });
    let started = t.elapsed();
    let ids = agent.ok(&["ps", "-q", "--filter", "status=running"]);
    assert_eq!(ids.lines().count(), 100, "{ids}");
    // Every one has its own address on the default bridge.
    let addrs = agent.ok(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        "name=many-",
        "--format",
        "{{.ID}}",
    ]);
    let mut ips = Vec::new();
    for id in addrs.lines() {
        let ip = agent.ok(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            id,
        ]);
        assert!(!ip.trim().is_empty(), "{id} has no address");
        ips.push(ip.trim().to_string());
    }
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 100, "addresses are unique");
    let rss = rss_kib(agent_pid(&agent));
    eprintln!(
        "agent RSS with 100 running containers: {:.1} MiB",
        rss as f64 / 1024.0
    );
    if !cfg!(debug_assertions) {
        assert!(
            rss <= 15 * 1024,
            "the agent (release build) holds {rss} KiB with 100 containers"
        );
    }
    let t = Instant::now();
    let mut args = vec!["stop", "-t", "1"];
    args.extend(ids.lines());
    agent.ok(&args);
    let stopped = t.elapsed();
    assert_eq!(agent.ok(&["ps", "-q"]).trim(), "");
    let mut args = vec!["rm"];
    args.extend(ids.lines());
    agent.ok(&args);
    assert_eq!(agent.ok(&["ps", "-aq"]).trim(), "");
    eprintln!("100 containers: started in {started:?}, stopped in {stopped:?}");
}

#[test]
fn a_thousand_concurrent_calls_all_answer_quickly_and_short_runs_leave_nothing() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let pid = agent_pid(&agent);
    let seen = Seen::start(&agent);
    // Warm up: the first runs set up the default bridge and its rules.
    for _ in 0..5 {
        agent.ok(&["run", "--rm", bb, "true"]);
    }
    let target = agent.ok(&[
        "run",
        "-d",
        "--name",
        "target",
        bb,
        "sh",
        "-c",
        "echo hello; exec sleep 600",
    ]);
    let target = target.trim().to_string();
    let before = footprint(&agent, pid, &seen);
    let rss_before = rss_kib(pid);

    // 1,000 calls from 8 clients at once (BERTH_LOAD_CLIENTS): 40% list,
    // 20% inspect, 20% logs, 10% run --rm, 10% exec.
    let clients = knob("BERTH_LOAD_CLIENTS", 8);
    let agent = Arc::new(agent);
    let (a, t, errors) = (
        agent.clone(),
        target.clone(),
        Arc::new(Mutex::new(Vec::new())),
    );
    let errs = errors.clone();
    let times = concurrently(1000, clients, move |i| {
        let args: Vec<&str> = match i % 10 {
            0..=3 => vec!["ps", "-a"],
            4 | 5 => vec!["inspect", &t],
            6 | 7 => vec!["logs", &t],
            8 => vec!["run", "--rm", bb, "true"],
            _ => vec!["exec", &t, "true"],
        };
        let out = a.berth(&args);
        if !out.status.success() {
            errs.lock().unwrap().push(format!(
                "berth {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        } else if args[0] == "logs" && String::from_utf8_lossy(&out.stdout) != "hello\n" {
            errs.lock().unwrap().push("logs lost a line".into());
        }
    });
    let errors = errors.lock().unwrap();
    assert!(
        errors.is_empty(),
        "{} calls failed: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    let (p50, p99) = (percentile(&times, 50.0), percentile(&times, 99.0));
    eprintln!(
        "1000 calls from {clients} clients: p50 {p50:?}, p99 {p99:?}, max {:?}",
        times.last().unwrap().0
    );
    for (kind, digits) in [
        ("ps -a", &[0, 1, 2, 3][..]),
        ("inspect", &[4, 5]),
        ("logs", &[6, 7]),
        ("run --rm", &[8]),
        ("exec", &[9]),
    ] {
        let of: Vec<_> = times
            .iter()
            .filter(|(_, i)| digits.contains(&(i % 10)))
            .cloned()
            .collect();
        eprintln!(
            "  {kind:10} p50 {:?}, p99 {:?}",
            percentile(&of, 50.0),
            percentile(&of, 99.0)
        );
    }
    // A debug build's `run` does several times the work of a release
    // build's (CI runs debug builds beside other tests): there, runs get 2 s.
    let (quick, runs_p99): (Vec<_>, Vec<_>) = times.iter().partition(|(_, i)| i % 10 != 8);
    let quick_p99 = percentile(&quick, 99.0);
    let run_p99 = percentile(&runs_p99, 99.0);
    let run_limit = if cfg!(debug_assertions) { 2000 } else { 1000 };
    assert!(
        quick_p99 < Duration::from_secs(1),
        "p99 {quick_p99:?} is 1 s or more"
    );
    assert!(
        run_p99 < Duration::from_millis(run_limit),
        "run --rm p99 {run_p99:?} is over {run_limit} ms"
    );

    // 200 more short runs (BERTH_LOAD_RUNS) on the default bridge, then
    // count what is left.
    let runs = knob("BERTH_LOAD_RUNS", 200);
    let a = agent.clone();
    concurrently(runs, 2, move |_| {
        a.ok(&["run", "--rm", bb, "true"]);
    });
    let mut after = footprint(&agent, pid, &seen);
    for _ in 0..50 {
        if after == before {
            break;
        }
        // Namespaces and veths go a moment after their last process.
        std::thread::sleep(Duration::from_millis(100));
        after = footprint(&agent, pid, &seen);
    }
    assert_eq!(after, before, "what the runs left behind (before vs after)");
    let rss_after = rss_kib(pid);
    eprintln!(
        "agent RSS: {:.1} MiB before, {:.1} MiB after {} runs and 1000 calls",
        rss_before as f64 / 1024.0,
        rss_after as f64 / 1024.0,
        runs + 100
    );
    assert!(
        rss_after < rss_before + 8 * 1024,
        "the agent grew from {rss_before} KiB to {rss_after} KiB"
    );
    if !cfg!(debug_assertions) {
        assert!(
            rss_after <= 15 * 1024,
            "the agent (release build) holds {rss_after} KiB, over 15 MiB"
        );
    }
    let _ = std::io::stderr().flush();
}

#[test]
fn wait_returns_as_the_process_exits() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    // The container's process exits when the host writes to a fifo it
    // reads; `berth wait`, already waiting, must return right after.
    let dir = agent.dir.path().join("exits");
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("go");
    let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o666) }, 0);
    let bind = format!("{}:/x", dir.display());
    let mut late: Vec<(Duration, usize)> = Vec::new();
    for _ in 0..100 {
        let id = agent.ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "-v",
            &bind,
            bb,
            "sh",
            "-c",
            "read x < /x/go",
        ]);
        let id = id.trim();
        let wait = agent
            .berth_cmd(&["wait", id])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        // Let the wait call reach the agent.
        std::thread::sleep(Duration::from_millis(30));
        let t = Instant::now();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .unwrap()
            .write_all(b"go\n")
            .unwrap();
        let out = wait.wait_with_output().unwrap();
        late.push((t.elapsed(), 0));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
        agent.ok(&["rm", id]);
    }
    late.sort();
    let (p50, p99) = (percentile(&late, 50.0), percentile(&late, 99.0));
    eprintln!(
        "wait after the exit: p50 {p50:?}, p99 {p99:?}, max {:?}",
        late.last().unwrap().0
    );
    // The release build (bench/load.sh) is held to 20 ms; a debug build
    // beside other tests on two cores gets twice that, and no exit may be
    // seen half a second late (as one was before).
    let (median, worst) = if cfg!(debug_assertions) {
        (40, 400)
    } else {
        (20, 100)
    };
    assert!(
        p50 <= Duration::from_millis(median),
        "median {p50:?} over {median} ms"
    );
    assert!(
        late.last().unwrap().0 < Duration::from_millis(worst),
        "an exit was seen late: {late:?}"
    );
}
