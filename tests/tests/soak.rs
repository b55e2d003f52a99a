//! kill -9 of the agent never orphans a container, and never leaves a
//! half-written image: the agent is killed at random moments while pulls,
//! `run -d`, `run --rm`, `commit` and writes into a volume are in flight,
//! then started again on the same root. After every restart: the store
//! opens, every container whose `run -d` returned an id is listed, running
//! ones still run and can be stopped and their logs read, every image
//! reported pulled or committed is intact (its blobs re-hashed), nothing
//! half-written is visible, files a finished volume write reported are
//! there, and no process, mount, cgroup, network namespace or veth exists
//! that the agent does not know.
//!
//! `SOAK_KILLS` sets the number of kills (10 here; `bench/soak.sh` runs
//! 50), `SOAK_SEED` the random moments' seed (printed, to replay a run).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_tests::containers::{cgroup_dirs, load_busybox, mounts_under};
use berth_tests::images::{busybox_layer, incompressible, sha, tar_of, Compression, Layout, E};
use berth_tests::registry::{Auth, Registry};
use berth_tests::{berth_processes, need_root, Agent};

/// Images in the registry that the rounds pull in turn (each removed
/// before it is pulled again, so every pull downloads).
const PULLED: usize = 3;

/// The container `run -d` starts: it logs, and writes into the volume.
const WRITER: &str =
    "i=0; while :; do echo line $i; echo $i > /data/d.$(hostname); i=$((i+1)); sleep 0.2; done";

/// A small xorshift generator: the kill moments, reproducible by seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// What one operation in flight was, and what its client was told.
#[derive(Clone, Debug)]
enum Op {
    Pull(String),
    RunDetached,
    RunRemoved,
    Commit(String),
    VolumeWrite(String),
}

/// What a client was told: success, its output, when it ran.
struct Told {
    op: Op,
    ok: bool,
    out: String,
    /// "START-ENDms" after the round began.
    span: String,
}

/// Everything the soak learned, to check after each restart.
struct Soak {
    agent: Agent,
    registry: String,
    rng: Rng,
    /// Every container id that ever had a directory under the agent's root.
    seen: BTreeSet<String>,
    /// Ids `run -d` returned (in order), until the test removes them.
    runs: Vec<String>,
    /// Images reported pulled or committed, not yet verified by `save`.
    unverified: BTreeSet<String>,
    /// Every image reported pulled or committed.
    reported: BTreeSet<String>,
    /// Files a volume write reported written (name in the volume).
    written: Vec<String>,
    /// Counts of what clients were told succeeded.
    succeeded: BTreeMap<&'static str, usize>,
    /// Running containers seen adopted after a restart.
    adopted: usize,
    /// Images whose saved blobs were re-hashed.
    verified: usize,
    leftovers: usize,
}

#[test]
fn kill_9_of_the_agent_never_orphans_a_container_nor_half_writes_an_image() {
    if !need_root() {
        return;
    }
    let kills: usize = std::env::var("SOAK_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let seed: u64 = std::env::var("SOAK_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("soak: seed {seed} (SOAK_SEED={seed} replays these moments)");
    let agent = Agent::start_in_own_network();
    // The registry lives in the agent's network, where the agent reaches
    // it on loopback.
    let (registry, addr) = agent.in_net(|| {
        let reg = Registry::start(Auth::None);
        let addr = reg.addr.clone();
        for n in 0..PULLED {
            publish(&reg, n);
        }
        (reg, addr)
    });
    load_busybox(&agent);
    agent.ok(&["volume", "create", "soakdata"]);
    let mut soak = Soak {
        agent,
        registry: addr,
        rng: Rng(seed),
        seen: BTreeSet::new(),
        runs: Vec::new(),
        unverified: BTreeSet::new(),
        reported: BTreeSet::new(),
        written: Vec::new(),
        succeeded: BTreeMap::new(),
        adopted: 0,
        verified: 0,
        leftovers: 0,
    };
    let started = Instant::now();
    for round in 0..kills {
        soak.round(round);
        soak.check(round);
    }
    soak.finish();
    let took = started.elapsed();
    // What the restarted agents did, from their log.
    let log = soak.agent.log();
    let stopped = log.matches("the agent died while it started them").count();
    let thawed = log.matches("thawed container").count();
    eprintln!(
        "soak: {kills} kills in {:.1} s; told succeeded: {:?}; running containers adopted across restarts: {}; cut starts stopped: {stopped}; frozen containers thawed: {thawed}; images verified: {}; leftovers found: {}",
        took.as_secs_f64(),
        soak.succeeded,
        soak.adopted,
        soak.verified,
        soak.leftovers
    );
    assert_eq!(soak.leftovers, 0, "leftovers after the kills");
    drop(registry);
}

/// Pushes pulled image `n` ("soak/pN:1"): a MB of incompressible data,
/// so a pull takes long enough to be cut, over a busybox layer.
fn publish(reg: &Registry, n: usize) {
    let data = incompressible(1 << 20, 0x9e3779b97f4a7c15u64 ^ (n as u64 + 1));
    let mut layout = Layout::new();
    let (d, s) = layout.image(
        &[
            tar_of(&[E::File("data", 0o644, 0, 0, &data)]),
            busybox_layer(),
        ],
        Compression::None,
        "amd64",
    );
    layout.tag("t", &d, s, false);
    layout.push("t", &format!("{}/soak/p{n}:1", reg.addr), &[]);
}

impl Soak {
    /// Starts this round's operations at random moments, kills the agent
    /// at another, and collects what each client was told.
    fn round(&mut self, round: usize) {
        let pulled = format!("{}/soak/p{}:1", self.registry, round % PULLED);
        if self.reported.remove(&pulled) {
            self.unverified.remove(&pulled);
            self.agent.ok(&["rmi", &pulled]);
        }
        let file = format!("r{round}");
        let write = format!("head -c 65536 /dev/urandom > /data/{file}.tmp && mv /data/{file}.tmp /data/{file} && sync");
        let mut ops = vec![
            (Op::Pull(pulled.clone()), args("pull -q", &[&pulled])),
            (
                Op::RunDetached,
                args("run -d -v soakdata:/data bb sh -c", &[WRITER]),
            ),
            (
                Op::RunRemoved,
                args("run --rm bb sh -c", &["echo hello; sleep 0.3"]),
            ),
            (
                Op::VolumeWrite(file),
                args("run --rm -v soakdata:/data bb sh -c", &[&write]),
            ),
        ];
        let running = self.running();
        if let Some(source) = self.runs.iter().rev().find(|id| running.contains(*id)) {
            let committed = format!("soak/c{round}:1");
            ops.push((
                Op::Commit(committed.clone()),
                args("commit", &[source, &committed]),
            ));
        }
        let results: Arc<Mutex<Vec<Told>>> = Arc::default();
        let mut threads = Vec::new();
        let t0 = Instant::now();
        for (op, args) in ops {
            let delay = Duration::from_millis(self.rng.below(500));
            let cmd = {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let mut c = self.agent.berth_cmd(&args);
                c.stdout(Stdio::piped()).stderr(Stdio::null());
                c
            };
            let results = results.clone();
            threads.push(std::thread::spawn(move || {
                std::thread::sleep(delay);
                let mut cmd = cmd;
                let (ok, out) = match cmd.spawn() {
                    Ok(child) => finish(child),
                    Err(_) => (false, String::new()),
                };
                let span = format!("{}-{}ms", delay.as_millis(), t0.elapsed().as_millis());
                results.lock().unwrap().push(Told { op, ok, out, span });
            }));
        }
        let kill_at = Duration::from_millis(30 + self.rng.below(1500));
        std::thread::sleep(kill_at.saturating_sub(t0.elapsed()));
        self.agent.kill9();
        for t in threads {
            t.join().expect("an operation's thread");
        }
        // What the dead agent had on disk: every container it made.
        if let Ok(rd) = std::fs::read_dir(self.agent.root().join("containers")) {
            for e in rd.flatten() {
                self.seen
                    .insert(e.file_name().to_string_lossy().to_string());
            }
        }
        let mut told = Vec::new();
        for Told { op, ok, out, span } in results.lock().unwrap().drain(..) {
            told.push(format!("{op:?} {span} {}", if ok { "ok" } else { "cut" }));
            if !ok {
                continue;
            }
            let kind = match &op {
                Op::Pull(name) | Op::Commit(name) => {
                    self.reported.insert(name.clone());
                    self.unverified.insert(name.clone());
                    if matches!(op, Op::Pull(_)) {
                        "pull"
                    } else {
                        "commit"
                    }
                }
                Op::RunDetached => {
                    let id = out.trim().to_string();
                    assert_eq!(id.len(), 64, "run -d printed {out:?}");
                    self.seen.insert(id.clone());
                    self.runs.push(id);
                    "run -d"
                }
                Op::RunRemoved => "run --rm",
                Op::VolumeWrite(file) => {
                    self.written.push(file.clone());
                    "volume write"
                }
            };
            *self.succeeded.entry(kind).or_default() += 1;
        }
        eprintln!(
            "soak: kill {} at {}ms: {}",
            round + 1,
            kill_at.as_millis(),
            told.join(", ")
        );
        self.agent.restart();
    }

    /// Ids of running containers.
    fn running(&self) -> BTreeSet<String> {
        self.ids(&["ps", "-q", "--no-trunc"])
    }

    fn ids(&self, args: &[&str]) -> BTreeSet<String> {
        self.agent
            .ok(args)
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    /// Everything a restart must hold to; counts leftovers.
    fn check(&mut self, round: usize) {
        let listed = self.ids(&["ps", "-a", "-q", "--no-trunc"]);
        for id in &self.runs {
            assert!(
                listed.contains(id),
                "round {round}: container {id}, whose run -d returned, is not listed after the restart\n{}",
                self.agent.log()
            );
        }
        let running = self.running();
        for id in self.runs.iter().filter(|id| running.contains(*id)) {
            self.adopted += 1;
            let logs = self.agent.ok(&["logs", id]);
            assert!(
                logs.contains("line "),
                "round {round}: logs of {id}: {logs:?}"
            );
        }
        // Stopped ones go, and all but the two newest running ones are
        // stopped and removed: both must work on adopted containers.
        let keep: Vec<String> = self
            .runs
            .iter()
            .rev()
            .filter(|id| running.contains(*id))
            .take(2)
            .cloned()
            .collect();
        for id in std::mem::take(&mut self.runs) {
            if keep.contains(&id) {
                self.runs.push(id);
                continue;
            }
            if running.contains(&id) {
                self.agent.ok(&["stop", "-t", "1", &id]);
                let status = self.agent.ok(&["inspect", "-f", "{{.State.Status}}", &id]);
                assert_eq!(status.trim(), "exited", "round {round}: {id} after stop");
            }
            self.agent.ok(&["rm", &id]);
        }
        self.verify_images(round);
        self.verify_volume(round);
        let found = self.wait_for_no_leftovers(round);
        self.leftovers += found;
    }

    /// Every image reported is listed, and `save` gives blobs that match
    /// their digests; every blob in the store matches its name; nothing
    /// half-written is visible.
    fn verify_images(&mut self, round: usize) {
        for name in std::mem::take(&mut self.unverified) {
            self.agent.ok(&["image", "inspect", &name]);
            let tar = self.agent.dir.path().join("verify.tar");
            self.agent.ok(&["save", "-o", tar.to_str().unwrap(), &name]);
            let blobs = verify_archive(&tar);
            assert!(blobs >= 3, "round {round}: {name} saved {blobs} blobs");
            self.verified += 1;
            let _ = std::fs::remove_file(&tar);
        }
        let root = self.agent.root();
        let store = root.join("blobs/sha256");
        for e in std::fs::read_dir(&store).expect("the blob store").flatten() {
            let data = std::fs::read(e.path()).expect("a blob");
            let name = e.file_name().to_string_lossy().to_string();
            assert_eq!(
                sha(&data),
                format!("sha256:{name}"),
                "round {round}: blob {name} does not match its digest"
            );
        }
        let partial = half_written(&root);
        assert!(
            partial.is_empty(),
            "round {round}: half-written files visible: {partial:?}"
        );
    }

    /// Files a finished volume write reported are there, whole.
    fn verify_volume(&self, round: usize) {
        let inspect = self.agent.ok(&["volume", "inspect", "soakdata"]);
        let v: serde_json::Value = serde_json::from_str(&inspect).expect("volume JSON");
        let dir = PathBuf::from(v[0]["Mountpoint"].as_str().expect("a mount point"));
        for file in &self.written {
            let len = std::fs::metadata(dir.join(file)).map(|m| m.len());
            assert_eq!(len.ok(), Some(65536), "round {round}: volume file {file}");
        }
    }

    /// Waits (at most 10 s, for cleanups the agent does in the
    /// background) until nothing is left that the agent does not know;
    /// returns how many such things were still there.
    fn wait_for_no_leftovers(&self, round: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self.leftovers_now();
            if found.is_empty() {
                return 0;
            }
            if Instant::now() >= deadline {
                eprintln!("soak: round {round}: leftovers {found:#?}");
                return found.len();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Monitors, helpers, mounts, cgroups, network namespaces and veths
    /// that belong to no running container the agent lists.
    fn leftovers_now(&self) -> Vec<String> {
        let running = self.running();
        let root = self.agent.root();
        let containers = root.join("containers");
        let mut out = Vec::new();
        for (pid, name, dir) in berth_processes() {
            let id = dir
                .strip_prefix(&containers)
                .ok()
                .map(|p| p.display().to_string());
            let ours = id.is_some() || dir.starts_with(&root);
            if !ours {
                continue;
            }
            let known = name == "berth-monitor" && id.as_ref().is_some_and(|i| running.contains(i));
            if !known {
                out.push(format!("process {pid} {name} {}", dir.display()));
            }
        }
        for id in self.seen.iter().filter(|id| !running.contains(*id)) {
            for d in cgroup_dirs(id) {
                out.push(format!("cgroup {d}"));
            }
        }
        for m in mounts_under(&root) {
            let known = running.iter().any(|id| {
                Path::new(&m) == containers.join(id).join("bundle/rootfs")
                    || Path::new(&m) == root.join("netns").join(id)
            });
            if !known {
                out.push(format!("mount {m}"));
            }
        }
        if let Ok(rd) = std::fs::read_dir(root.join("netns")) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().to_string();
                if !running.contains(&id) {
                    out.push(format!("network namespace {id}"));
                }
            }
        }
        let links = self.agent.sh("ip -o link show");
        for line in String::from_utf8_lossy(&links.stdout).lines() {
            let Some(name) = line.split(": ").nth(1) else {
                continue;
            };
            let name = name.split('@').next().unwrap_or(name);
            if let Some(rest) = name.strip_prefix("vb") {
                let short = &rest[..rest.len().min(8)];
                if !running.iter().any(|id| id.starts_with(short)) {
                    out.push(format!("veth {name}"));
                }
            }
        }
        out
    }

    /// After the last round: everything removed, nothing left at all.
    fn finish(&mut self) {
        let all = self.ids(&["ps", "-a", "-q", "--no-trunc"]);
        for id in &all {
            // A `--rm` container the restart found cut may be going already.
            let (code, _, err) = self.agent.run(&["rm", "-f", id]);
            assert!(
                code == 0 || err.contains("no such container"),
                "rm -f {id}: {err}"
            );
        }
        self.runs.clear();
        let left = self.ids(&["ps", "-a", "-q", "--no-trunc"]);
        assert!(left.is_empty(), "containers left after rm -f: {left:?}");
        self.leftovers += self.wait_for_no_leftovers(usize::MAX);
        for name in self.reported.clone() {
            self.unverified.insert(name);
        }
        self.verify_images(usize::MAX);
    }
}

/// A command line: `words` split at spaces, then `more` as they are.
fn args(words: &str, more: &[&str]) -> Vec<String> {
    words
        .split(' ')
        .chain(more.iter().copied())
        .map(String::from)
        .collect()
}

/// Waits for a client (at most 30 s); returns whether it succeeded and its
/// standard output.
fn finish(mut child: Child) -> (bool, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut out = String::new();
                if let Some(mut o) = child.stdout.take() {
                    let _ = o.read_to_string(&mut out);
                }
                return (status.success(), out);
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return (false, String::new());
            }
        }
    }
}

/// Blob names in an archive from `berth save` that do not match their
/// content fail the test; returns how many blobs it holds.
fn verify_archive(tar: &Path) -> usize {
    let mut archive = tar::Archive::new(std::fs::File::open(tar).expect("the saved archive"));
    let mut blobs = 0;
    for entry in archive.entries().expect("a tar") {
        let mut entry = entry.expect("an entry");
        let path = entry.path().expect("a path").display().to_string();
        let Some(hex) = path.strip_prefix("blobs/sha256/") else {
            continue;
        };
        if hex.is_empty() {
            continue;
        }
        let hex = hex.to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("a blob");
        assert_eq!(sha(&data), format!("sha256:{hex}"), "saved blob {hex}");
        blobs += 1;
    }
    blobs
}

/// Files and directories under the agent's root a crash half-wrote and
/// the start must have removed: partial snapshots, temporary records
/// (a monitor's `run.tmp` aside: a live monitor may be writing it), an
/// ingest directory that is not empty. Containers' and volumes' own
/// trees and the layers' contents are theirs, and not walked.
fn half_written(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        let parent = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            let temporary = name.ends_with(".tmp") && name != "run.tmp" && !is_dir;
            if name.contains(".partial") || temporary || (parent == "ingest" && depth == 1) {
                out.push(path.display().to_string());
            }
            let walk = match depth {
                0 => !["netns", "rt", "m", "blobs", "snapshots"].contains(&name.as_str()),
                1 => parent == "containers" || parent == "volumes",
                _ => false,
            };
            if is_dir && walk {
                stack.push((path, depth + 1));
            }
        }
    }
    for e in std::fs::read_dir(root.join("snapshots"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().to_string();
        if name.contains(".partial") {
            out.push(format!("snapshot {name}"));
        }
    }
    out
}
