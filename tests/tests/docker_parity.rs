//! Berth beside Docker: the same everyday commands against Berth and
//! against Docker's CLI with a private dockerd (Debian's docker.io), on
//! the same image from the same local registry, comparing exit codes and
//! output (ids normalised), so parity cannot drift. The rows follow
//! `../shared/parity-2026-12-06.md`. Wherever Docker refuses, Berth must
//! refuse with the same code and say why in one clear sentence. A
//! difference that is known and not fixed yet (each an engine's, named
//! with its reason) is reported with a `known` line, not failed.
//!
//! The one-command cases are in `docker_parity/cases.rs`, the rows that
//! take several commands in `docker_parity/rows.rs` and
//! `docker_parity/steps.rs`, the comparison of `inspect`'s documents in
//! `docker_parity/inspect.rs`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use berth_tests::containers::{busybox_rootfs, host_arch};
use berth_tests::docker::Dockerd;
use berth_tests::images::{Compression, Layout};
use berth_tests::registry::{Auth, Registry};
use berth_tests::{need_root, Agent};

#[path = "docker_parity/cases.rs"]
mod cases;
#[path = "docker_parity/inspect.rs"]
mod inspect;
#[path = "docker_parity/rows.rs"]
mod rows;
#[path = "docker_parity/steps.rs"]
mod steps;
use cases::{clear_error, Compare, CASES};
use steps::{cidfile, cp_through_mounts, diffs, export_and_owners, pulls, rmi_in_use};

/// Berth or Docker.
enum Side<'a> {
    Berth(&'a Agent),
    Docker(&'a Dockerd),
}

impl Side<'_> {
    fn cmd(&self, args: &[&str]) -> Command {
        match self {
            Side::Berth(a) => a.berth_cmd(args),
            Side::Docker(d) => d.docker_cmd(args),
        }
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.cmd(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "{} {args:?}: {err}", self.name());
        out
    }

    fn name(&self) -> &'static str {
        match self {
            Side::Berth(_) => "berth",
            Side::Docker(_) => "docker",
        }
    }
}

/// Ids (runs of 12 or more hex digits) become `<ID>`.
fn normalise(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 12 {
            out.push_str("<ID>");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_hexdigit() && !c.is_ascii_uppercase() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Pulls the image and makes the container, volume and network the cases
/// name.
fn prepare(side: &Side, image: &str) {
    side.ok(&["pull", "-q", image]);
    side.ok(&[
        "run", "-d", "--name", "pc", "--network", "none", "-l", "k=v", "-e", "X=1", image, "sh", "-c",
        "mkdir -p /q/d1/d2 /q/e1 && echo 2 > /q/d1/d2/f2 && echo 3 > /q/e1/f3 && echo 1 > /q/f1 && sleep 600",
    ]);
    // Row 23: a container stopped and started again is running, with 0.
    side.ok(&[
        "run",
        "-d",
        "--name",
        "ec",
        "--network",
        "none",
        image,
        "sleep",
        "600",
    ]);
    side.ok(&["stop", "-t", "1", "ec"]);
    // A stopped container with a long log.
    side.ok(&[
        "run",
        "--name",
        "lc",
        "--network",
        "none",
        image,
        "seq",
        "1",
        "20000",
    ]);
    side.ok(&["start", "ec"]);
    // A stopped container whose log lines carry details (row 29).
    side.ok(&[
        "run",
        "--name",
        "dc",
        "--network",
        "none",
        "-l",
        "k=v",
        "-l",
        "sp=a b/c",
        "-e",
        "X=1",
        "--log-opt",
        "labels=k,sp,nope",
        "--log-opt",
        "env=X,PATH",
        image,
        "sh",
        "-c",
        "echo one; echo two",
    ]);
    side.ok(&["volume", "create", "pv"]);
    side.ok(&["network", "create", "pn"]);
    for _ in 0..100 {
        if side.run(&["exec", "pc", "test", "-f", "/q/f1"]).0 == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{}: the container did not make its files", side.name());
}

/// A sorted listing of a host folder (paths and file contents).
fn tree(dir: &Path) -> Vec<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg("find . -type f -exec sh -c 'echo \"$1=$(cat \"$1\")\"' _ {} \\; ; find . -type d")
        .current_dir(dir)
        .output()
        .unwrap();
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

#[test]
fn everyday_commands_match_docker() {
    if !need_root() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let mut layout = Layout::new();
    let (d, s) = layout.image(&[busybox_rootfs()], Compression::Gzip, host_arch());
    layout.tag("t", &d, s, false);
    let image = format!("{}/test/busybox:1", reg.addr);
    layout.push("t", &image, &[]);
    // A second repository, with two tags of an image with a layer of its own.
    let tiny =
        berth_tests::images::tar_of(&[berth_tests::images::E::File("tiny", 0o644, 0, 0, b"t\n")]);
    let (td, ts) = layout.image(&[tiny], Compression::Gzip, host_arch());
    layout.tag("tiny", &td, ts, false);
    let repo = format!("{}/test/tiny", reg.addr);
    for tag in ["2", "latest"] {
        layout.push("tiny", &format!("{repo}:{tag}"), &[]);
    }
    // On the host's network, to reach the registry on loopback; every case
    // runs with --network none, so no bridge is made.
    // Berth's agent also serves the Docker Engine API, which Docker's
    // CLI reaches for `images REF` (row 25).
    let api_dir = tempfile::tempdir().unwrap();
    let api = format!("unix://{}", api_dir.path().join("docker.sock").display());
    let agent = Agent::start_with(&["--docker-listen", &api]);
    let dockerd = Dockerd::start();
    let sides = [Side::Berth(&agent), Side::Docker(&dockerd)];
    // dockerd leaves a network's bridge on the host when it is killed:
    // the network goes first, even when the test fails.
    let _network = RemovesNetwork(&dockerd);
    for side in &sides {
        prepare(side, &image);
    }
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for c in CASES {
        let args: Vec<&str> = c
            .args
            .iter()
            .map(|a| if *a == "BB" { image.as_str() } else { a })
            .collect();
        let [(bc, bo, be), (dc, doo, de)] = [sides[0].run(&args), sides[1].run(&args)];
        let mut same =
            bc == dc && (c.compare == Compare::Code || normalise(&bo) == normalise(&doo));
        // Where Docker fails, Berth says why in one clear sentence.
        let mut why_not = None;
        if dc != 0 && !(de.trim().is_empty() && doo.trim().is_empty()) {
            why_not =
                clear_error(&be).map(|w| format!("berth's error is not one clear sentence: {w}"));
        }
        if let Some(words) = c.says {
            let lower = words.to_lowercase();
            // dockerd 20.10 writes exec's refusals on standard output.
            let docker_said = format!("{de}{doo}").to_lowercase();
            if !be.to_lowercase().contains(&lower) || !docker_said.contains(&lower) {
                why_not = Some(format!("both errors should contain {words:?}"));
            }
        }
        // The engine's own error chains are not one sentence either.
        if why_not.is_none() && (be.contains("error error") || be.contains(" : ")) {
            why_not = Some(format!(
                "the engine's wording is a chain, not a sentence: {}",
                be.trim()
            ));
        }
        same &= why_not.is_none();
        let line = format!(
            "{} berth {args:?}: berth {bc} {:?}, docker {dc} {:?}",
            if same { "same" } else { "DIFF" },
            normalise(&bo),
            normalise(&doo)
        );
        let line = match &why_not {
            Some(w) => format!("{line}: {w}"),
            None => line,
        };
        match (same, c.known) {
            (true, Some(why)) => report.push(format!(
                "{line} — now the same; remove from the known list ({why})"
            )),
            // A known difference tolerates only itself: the sentence and
            // its words are still checked.
            (false, Some(why)) if why_not.is_none() => {
                report.push(format!("{line} — known: {why}"))
            }
            (false, _) => failures.push(format!(
                "{line}\n  berth stderr: {}\n  docker stderr: {}",
                be.trim(),
                de.trim()
            )),
            (true, None) => report.push(format!(
                "{line}\n  berth stderr: {}\n  docker stderr: {}",
                be.trim(),
                de.trim()
            )),
        }
    }
    // cp of a folder's contents into a new destination (row 3).
    let host = tempfile::tempdir().unwrap();
    let mut trees = Vec::new();
    for side in &sides {
        let dest = host.path().join(side.name());
        side.ok(&["cp", "pc:/q/.", dest.to_str().unwrap()]);
        trees.push(tree(&dest));
    }
    if trees[0] != trees[1] {
        failures.push(format!(
            "cp pc:/q/. DEST: berth {:?}, docker {:?}",
            trees[0], trees[1]
        ));
    }
    // /etc/hostname and /etc/hosts come out as the container sees them (row 21).
    for file in ["hostname", "hosts"] {
        let seen: Vec<String> = sides
            .iter()
            .map(|side| {
                let dest = host.path().join(format!("{}-{file}", side.name()));
                side.ok(&["cp", &format!("pc:/etc/{file}"), dest.to_str().unwrap()]);
                let inside = side.ok(&["exec", "pc", "cat", &format!("/etc/{file}")]);
                let copied = std::fs::read_to_string(&dest).unwrap();
                assert_eq!(copied, inside, "{}: cp pc:/etc/{file}", side.name());
                normalise(&copied)
            })
            .collect();
        if seen[0] != seen[1] {
            failures.push(format!(
                "cp pc:/etc/{file}: berth {:?}, docker {:?}",
                seen[0], seen[1]
            ));
        }
    }
    // Rows 20, 22, 25, 9, 35, 33: steps of several commands.
    rows::compare(
        &sides,
        &image,
        host.path(),
        &api,
        &mut failures,
        &mut report,
    );
    // cp reaches volumes and binds, running and stopped, as it reaches
    // the files Docker mounts over /etc (row 21).
    let seen: Vec<Vec<String>> = sides
        .iter()
        .map(|side| cp_through_mounts(side, &image, &host.path().join(side.name())))
        .collect();
    let expected = [
        "vol",
        "in",
        "bind",
        "in",
        "read-only refused",
        "in",
        "in",
        "data/ data/in data/in3 data/v",
    ];
    if seen[0] != seen[1] || seen[0] != expected {
        failures.push(format!(
            "cp through mounts: berth {:?}, docker {:?}, expected {expected:?}",
            seen[0], seen[1]
        ));
    }
    // --cidfile writes the id, and refuses a file that exists (row 19).
    let cids: Vec<(bool, i32)> = sides
        .iter()
        .map(|side| cidfile(side, &image, &host.path().join(side.name())))
        .collect();
    if cids[0] != cids[1] || cids[0] != (true, 125) {
        failures.push(format!(
            "run --cidfile: berth {:?}, docker {:?}, expected (true, 125)",
            cids[0], cids[1]
        ));
    }
    // rmi of an image containers use (row 24).
    let rmi: Vec<Vec<(i32, String, String)>> =
        sides.iter().map(|s| rmi_in_use(s, &image)).collect();
    for (step, (b, d)) in rmi[0].iter().zip(&rmi[1]).enumerate() {
        let sentence =
            d.2.trim()
                .trim_start_matches("Error response from daemon: ");
        let same =
            b.0 == d.0 && b.1 == d.1 && b.2.to_lowercase().contains(&sentence.to_lowercase());
        if !same {
            failures.push(format!(
                "rmi of an image in use, step {step}: berth {b:?}, docker {d:?}"
            ));
        }
    }
    // diff: nothing for an unchanged container; mount points as Docker's (row 34).
    let diffs: Vec<Vec<String>> = sides
        .iter()
        .map(|side| diffs(side, &image, &host.path().join(side.name())))
        .collect();
    let changed = "A /etc/foo;A /root/f;A /x;A /x-y;A /x/y;A /x/y/z;C /etc;C /root;D /etc/group";
    if diffs[0] != diffs[1] || diffs[0] != ["", changed, "C /etc"] {
        failures.push(format!("diff: berth {:?}, docker {:?}", diffs[0], diffs[1]));
    }
    // pull's lines, -a, -q, by digest, a missing tag (row 38, and issue
    // 21's item 9: pull --all-tags).
    let pulled: Vec<Vec<(i32, String)>> = sides.iter().map(|s| pulls(s, &repo, &td)).collect();
    let b = &pulled[0];
    let told = b[0].1.contains(": Pull complete")
        && b[1].1.contains("Status: Image is up to date for")
        && b[2]
            .1
            .starts_with("Using default tag: latest\nlatest: Pulling from test/tiny")
        && b[3].1.contains("2: Pulling from test/tiny")
        && (b[4].0, b[7].0) == (1, 1);
    if !told {
        failures.push(format!("pull: berth told {b:?}"));
    }
    for (step, (b, d)) in pulled[0].iter().zip(&pulled[1]).enumerate() {
        if b != d {
            failures.push(format!("pull, step {step}:\nberth {b:?}\ndocker {d:?}"));
        }
    }
    // export keeps mount points as empty folders; tars name owners (rows 36, 37).
    let exported: Vec<Vec<String>> = sides.iter().map(|s| export_and_owners(s, &image)).collect();
    // Mount points stay, empty; Docker's init layer is there (/dev/console,
    // /dev/pts, /dev/shm).
    let wanted = [
        "dev/ root/root",
        "dev/console root/root",
        "dev/pts/ root/root",
        "dev/shm/ root/root",
        "proc/ root/root",
        "sys/ root/root",
        "data/ root/root",
    ];
    if exported[0] != exported[1] || !wanted.iter().all(|w| exported[0].iter().any(|l| l == w)) {
        failures.push(format!(
            "export: berth {:?}, docker {:?}",
            exported[0], exported[1]
        ));
    }
    // Output cut short by its reader ends quietly (row 28).
    for side in &sides {
        let bin = match side {
            Side::Berth(_) => berth_tests::bin("berth"),
            Side::Docker(_) => berth_tests::docker::docker_cli(),
        };
        let mut cmd = side.cmd(&[]);
        let script = format!(
            "{0} image inspect {image} | head -c 10 >/dev/null; {0} logs lc | head -c 10 >/dev/null; {0} system df -v | head -n 1 >/dev/null",
            bin.display()
        );
        let out = cmd.arg0_replace(&script).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if !err.trim().is_empty() {
            failures.push(format!(
                "{}: a cut-short image inspect printed {err}",
                side.name()
            ));
        }
    }
    // system prune -f, last: it removes the stopped containers (row 8).
    let pruned: Vec<Vec<String>> = sides
        .iter()
        .map(|s| rows::system_prune(s, &image))
        .collect();
    if pruned[0] != pruned[1] {
        failures.push(format!(
            "system prune -f:\nberth {:?}\ndocker {:?}",
            pruned[0], pruned[1]
        ));
    }
    eprintln!("{}", report.join("\n"));
    assert!(
        failures.is_empty(),
        "Berth and Docker differ:\n{}",
        failures.join("\n")
    );
}

/// Removes the `pn` network from a dockerd when dropped.
struct RemovesNetwork<'a>(&'a Dockerd);

impl Drop for RemovesNetwork<'_> {
    fn drop(&mut self) {
        let _ = self.0.docker_cmd(&["network", "rm", "pn"]).output();
    }
}

/// Runs a shell script with the command's environment instead of the
/// command itself.
trait ShellWith {
    fn arg0_replace(&mut self, script: &str) -> Command;
}

impl ShellWith for Command {
    fn arg0_replace(&mut self, script: &str) -> Command {
        let mut sh = Command::new("sh");
        sh.arg("-c").arg(script);
        for (k, v) in self.get_envs() {
            if let Some(v) = v {
                sh.env(k, v);
            }
        }
        sh
    }
}
