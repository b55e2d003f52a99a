//! The parity test's longer steps: `cp` through volumes and binds,
//! `rmi` of an image in use, `diff`, `pull` and `run --cidfile`, each run on one side
//! (Berth or Docker) and returning what a user saw there.

use std::path::Path;
use std::time::Duration;

use super::{clear_error, normalise, Side};

/// The first file in the tar `cp SRC -` writes, as text.
fn cp_out_text(side: &Side, src: &str) -> String {
    let out = side.cmd(&["cp", src, "-"]).output().unwrap();
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let Ok(entries) = archive.entries() else {
        return String::new();
    };
    for mut e in entries.flatten() {
        if e.header().entry_type().is_file() {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut e, &mut text).unwrap();
            return text.trim_end().to_string();
        }
    }
    String::new()
}

/// `cp` in and out of a volume, a bind and a read-only bind of a running
/// container, then of the stopped container: what each step saw.
pub(crate) fn cp_through_mounts(side: &Side, image: &str, host: &Path) -> Vec<String> {
    let bind = host.join("bind");
    std::fs::create_dir_all(&bind).unwrap();
    std::fs::write(bind.join("b"), "bind\n").unwrap();
    let file = host.join("in");
    std::fs::write(&file, "in\n").unwrap();
    let (file, b) = (file.to_str().unwrap(), bind.to_str().unwrap());
    let (bnd, ro) = (format!("{b}:/bnd"), format!("{b}:/ro:ro"));
    side.ok(&[
        "run",
        "-d",
        "--name",
        "vc",
        "--network",
        "none",
        "-v",
        "vcv:/data",
        "-v",
        &bnd,
        "-v",
        &ro,
        image,
        "sh",
        "-c",
        "echo vol > /data/v; sleep 600",
    ]);
    for _ in 0..100 {
        if side.run(&["exec", "vc", "test", "-f", "/data/v"]).0 == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut seen = vec![cp_out_text(side, "vc:/data/v")];
    side.ok(&["cp", file, "vc:/data/in"]);
    seen.push(
        side.ok(&["exec", "vc", "cat", "/data/in"])
            .trim()
            .to_string(),
    );
    seen.push(cp_out_text(side, "vc:/bnd/b"));
    side.ok(&["cp", file, "vc:/bnd/in2"]);
    seen.push(
        std::fs::read_to_string(bind.join("in2"))
            .unwrap_or_default()
            .trim()
            .into(),
    );
    let (code, _, err) = side.run(&["cp", file, "vc:/ro/x"]);
    let refused = code == 1 && !bind.join("x").exists() && said_clearly(side, &err);
    seen.push(
        if refused {
            "read-only refused"
        } else {
            "read-only written"
        }
        .into(),
    );
    side.ok(&["stop", "-t", "0", "vc"]);
    seen.push(cp_out_text(side, "vc:/data/in"));
    side.ok(&["cp", file, "vc:/data/in3"]);
    let out = side.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "vcv:/data",
        image,
        "cat",
        "/data/in3",
    ]);
    seen.push(out.trim().to_string());
    let out = side.cmd(&["cp", "vc:/data", "-"]).output().unwrap();
    let mut names: Vec<String> = tar::Archive::new(&out.stdout[..])
        .entries()
        .unwrap()
        .flatten()
        .map(|e| e.path().unwrap().display().to_string())
        .collect();
    names.sort();
    seen.push(names.join(" "));
    side.ok(&["rm", "-f", "vc"]);
    side.ok(&["volume", "rm", "vcv"]);
    seen
}

/// `rmi` of an image a stopped container uses, with and without -f, and
/// by id of one a running container uses: each step's exit code, first
/// line of output and error (ids normalised).
pub(crate) fn rmi_in_use(side: &Side, image: &str) -> Vec<(i32, String, String)> {
    side.ok(&["commit", "pc", "local/inuse:1"]);
    let id = side
        .ok(&["images", "-q", "local/inuse:1"])
        .trim()
        .to_string();
    side.ok(&[
        "create",
        "--name",
        "iu",
        "--network",
        "none",
        "local/inuse:1",
        "true",
    ]);
    let base = side.ok(&["images", "-q", image]).trim().to_string();
    let steps: [&[&str]; 8] = [
        &["rmi", "local/inuse:1"],
        &["rmi", &id],
        &["rmi", "-f", "local/inuse:1"],
        &["images", "-q", "local/inuse:1"],
        &["ps", "-a", "--filter", "name=iu", "--format", "{{.Image}}"],
        &["start", "-a", "iu"],
        &["rmi", "-f", "local/inuse:1"],
        &["rmi", "-f", &base],
    ];
    let seen = steps
        .iter()
        .map(|args| {
            let (code, out, err) = side.run(args);
            let first = out.lines().next().unwrap_or("").to_string();
            (code, normalise(&first), normalise(err.trim()))
        })
        .collect();
    side.ok(&["rm", "iu"]);
    // Docker deleted it at the forced rmi; Berth kept it for the container.
    let _ = side.run(&["rmi", &id]);
    seen
}

/// `diff` of an unchanged container, of one with changes and mounts, and
/// of one that changed only a folder's mode: each sorted (Docker's order
/// is a map's), joined by `;`.
pub(crate) fn diffs(side: &Side, image: &str, host: &Path) -> Vec<String> {
    let bind = host.join("diffbind");
    std::fs::create_dir_all(&bind).unwrap();
    let bind = format!("{}:/x/y/z", bind.display());
    let script = "touch /root/f; rm /etc/group; mkdir /x-y";
    let runs: [&[&str]; 3] = [
        &["--name", "d1", image, "true"],
        &[
            "--name",
            "d2",
            "-v",
            &bind,
            "-v",
            "dv:/etc/foo",
            "-v",
            "dv2:/tmp",
            image,
            "sh",
            "-c",
            script,
        ],
        &["--name", "d3", image, "chmod", "700", "/etc"],
    ];
    let mut seen = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        side.ok(&[&["run", "--network", "none"][..], run].concat());
        let name = format!("d{}", i + 1);
        let mut lines: Vec<String> = side
            .ok(&["diff", &name])
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        seen.push(lines.join(";"));
        side.ok(&["rm", "-v", &name]);
    }
    side.ok(&["volume", "rm", "dv", "dv2"]);
    seen
}

/// The pulls of `repo` (tags 2 and latest, one new layer) Docker's CLI
/// users see: each step's exit code and output, ids normalised and
/// Docker's "Verifying Checksum" (shown or not, as timing goes) left out.
pub(crate) fn pulls(side: &Side, repo: &str, digest: &str) -> Vec<(i32, String)> {
    let by_digest = format!("{repo}@{digest}");
    let (two, missing) = (format!("{repo}:2"), format!("{repo}:nope"));
    let steps: [&[&str]; 8] = [
        &["pull", &two],
        &["pull", &two],
        &["pull", repo],
        &["pull", "-a", repo],
        &["pull", "-a", &two],
        &["pull", "-q", repo],
        &["pull", &by_digest],
        &["pull", &missing],
    ];
    steps
        .iter()
        .map(|args| {
            let (code, out, _) = side.run(args);
            let out: Vec<&str> = out
                .lines()
                .filter(|l| !l.ends_with(": Verifying Checksum"))
                .collect();
            (code, normalise(&out.join("\n")))
        })
        .collect()
}

/// What `export` of a container with a volume lists (without `bin/`'s
/// applets), each entry with its owner's names, then the owner names
/// `cp` gives `/etc/passwd`.
pub(crate) fn export_and_owners(side: &Side, image: &str) -> Vec<String> {
    side.ok(&[
        "run",
        "-d",
        "--name",
        "ex",
        "--network",
        "none",
        "-v",
        "exv:/data",
        image,
        "sleep",
        "300",
    ]);
    let listing = |args: &[&str]| -> Vec<String> {
        let out = side.cmd(args).output().unwrap();
        tar::Archive::new(&out.stdout[..])
            .entries()
            .unwrap()
            .flatten()
            .map(|e| {
                let h = e.header();
                let name = e.path().unwrap().display().to_string();
                let dir = if h.entry_type().is_dir() && !name.ends_with('/') {
                    "/"
                } else {
                    ""
                };
                let user = h.username().ok().flatten().unwrap_or("").to_string();
                let group = h.groupname().ok().flatten().unwrap_or("").to_string();
                format!("{name}{dir} {user}/{group}")
            })
            .filter(|l| !l.starts_with("bin/") || l.starts_with("bin/ "))
            .collect()
    };
    let mut seen = listing(&["export", "ex"]);
    seen.sort();
    seen.extend(listing(&["cp", "ex:/etc/passwd", "-"]));
    side.ok(&["rm", "-f", "ex"]);
    side.ok(&["volume", "rm", "exv"]);
    seen
}

/// Whether a refusal's error is one clear sentence (Berth's; Docker's
/// are the reference).
fn said_clearly(side: &Side, err: &str) -> bool {
    match side {
        Side::Berth(_) => clear_error(err).is_none(),
        Side::Docker(_) => true,
    }
}

/// `run -d --cidfile F`: whether F then holds the id `run` printed, and
/// the exit code of a second run given the same (now existing) file, 0
/// when its error is not one clear sentence.
pub(crate) fn cidfile(side: &Side, image: &str, host: &Path) -> (bool, i32) {
    std::fs::create_dir_all(host).unwrap();
    let file = host.join("cid");
    let f = file.to_str().unwrap();
    let id = side.ok(&[
        "run",
        "-d",
        "--cidfile",
        f,
        "--name",
        "cf",
        "--network",
        "none",
        image,
        "true",
    ]);
    let written = std::fs::read_to_string(&file).unwrap_or_default();
    let same = written.len() == 64 && written == id.trim();
    let (code, _, err) = side.run(&[
        "run",
        "-d",
        "--cidfile",
        f,
        "--name",
        "cf2",
        "--network",
        "none",
        image,
        "true",
    ]);
    let _ = side.run(&["rm", "-f", "cf", "cf2"]);
    (same, if said_clearly(side, &err) { code } else { 0 })
}
