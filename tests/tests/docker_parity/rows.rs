//! Parity rows that need more than one command: `cp` of a host folder
//! into a container (row 3), a relative bind source (row 20), a tar from
//! standard input into a missing folder (row 22), `images` of a second
//! tag (row 25), `events` and its templates (row 9), `ps`'s times (row
//! 35), `images --format json` (row 33), `inspect`'s documents (see
//! `inspect.rs`) and `system prune -f` (row 8). Each step runs on one side and returns what a user
//! saw there; [`compare`] sets the sides' answers side by side.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{clear_error, normalise, Side};

/// `run -v ./reldir:/x` from a folder holding `reldir`: exit code and
/// output (row 20).
pub(crate) fn relative_bind(side: &Side, image: &str, host: &Path) -> (i32, String) {
    let dir = host.join("relbind");
    std::fs::create_dir_all(dir.join("reldir")).unwrap();
    std::fs::write(dir.join("reldir/f"), "relative\n").unwrap();
    let out = side
        .cmd(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "./reldir:/x",
            image,
            "cat",
            "/x/f",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A tar of two files from standard input into the missing `pc:/tarin`
/// (row 22): exit code, standard error, and whether anything was written.
pub(crate) fn tar_into_missing(side: &Side, host: &Path) -> (i32, String, bool) {
    let dir = host.join("tarin");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a"), "a").unwrap();
    std::fs::write(dir.join("b"), "b").unwrap();
    let two = dir.join("two.tar");
    let made = std::process::Command::new("tar")
        .args([
            "-cf",
            two.to_str().unwrap(),
            "-C",
            dir.to_str().unwrap(),
            "a",
            "b",
        ])
        .status()
        .unwrap();
    assert!(made.success());
    let out = side
        .cmd(&["cp", "-", "pc:/tarin"])
        .stdin(std::fs::File::open(&two).unwrap())
        .output()
        .unwrap();
    let written = side.run(&["exec", "pc", "test", "-e", "/tarin"]).0 == 0;
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        written,
    )
}

/// `cp` of a host folder into the running `pc`: its contents (`src/.`)
/// into a missing path, the folder itself into a missing path and into a
/// folder that exists (row 3): what `find` lists there, sorted.
pub(crate) fn cp_in(side: &Side, host: &Path) -> String {
    let src = host.join("cpin/src");
    std::fs::create_dir_all(src.join("d1/d2")).unwrap();
    std::fs::write(src.join("d1/d2/f2"), "2").unwrap();
    std::fs::write(src.join("f1"), "1").unwrap();
    let s = src.to_str().unwrap();
    side.ok(&["cp", &format!("{s}/."), "pc:/newd"]);
    side.ok(&["cp", s, "pc:/newd2"]);
    side.ok(&["exec", "pc", "mkdir", "/have"]);
    side.ok(&["cp", s, "pc:/have"]);
    let out = side.ok(&["exec", "pc", "find", "/newd", "/newd2", "/have"]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    lines.join(" ")
}

/// `images` of a second name `byid` of the image (row 25), and of the
/// image's own name and repository with digests (whose RepoDigests the
/// reference filter narrows as it narrows RepoTags): the listings, ids
/// normalised. With `api` (a `DOCKER_HOST` serving Berth's Docker Engine
/// API), the same listings from Docker's CLI through it follow, so the
/// engine's filter is checked where no Berth CLI filters after it.
pub(crate) fn images_by_second_name(side: &Side, image: &str, api: Option<&str>) -> Vec<String> {
    side.ok(&["tag", image, "byid"]);
    let repo = image.rsplit_once(':').map_or(image, |(r, _)| r);
    let digests = "{{.Repository}}:{{.Tag}} {{.Digest}}";
    let listings: [&[&str]; 5] = [
        &["images", "byid"],
        &["images", "--format", "{{.Repository}}:{{.Tag}}", "byid"],
        &["images", "-q", "byid:latest"],
        &["images", "--digests", "--format", digests, image],
        &["images", "--digests", "--format", digests, repo],
    ];
    let mut seen: Vec<String> = listings
        .iter()
        .map(|args| normalise(&side.ok(args)))
        .collect();
    if let Some(host) = api {
        let config = tempfile::tempdir().unwrap();
        for args in listings {
            let out = std::process::Command::new(berth_tests::docker::docker_cli())
                .args(args)
                .env("DOCKER_HOST", host)
                .env("DOCKER_CONFIG", config.path())
                .env("DOCKER_CLI_HINTS", "false")
                .output()
                .unwrap();
            let said = if out.status.success() {
                String::from_utf8_lossy(&out.stdout).into_owned()
            } else {
                format!("failed: {}", String::from_utf8_lossy(&out.stderr))
            };
            seen.push(format!("through the API: {}", normalise(&said)));
        }
    }
    side.ok(&["rmi", "byid"]);
    seen
}

/// Seconds since the epoch, with nanoseconds, as `events` takes them.
fn now() -> String {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

/// The events of one `run --rm` (row 9), through a template, as JSON's
/// keys and as the default line without its time: first the attach
/// events alone, then the others.
pub(crate) fn events(side: &Side, image: &str) -> Vec<String> {
    let since = now();
    let run = [
        "run",
        "--rm",
        "--name",
        "evc",
        "-l",
        "ev=1",
        "--network",
        "none",
        image,
        "true",
    ];
    side.ok(&run);
    // Docker writes the destroy event as its CLI returns.
    std::thread::sleep(Duration::from_millis(300));
    let until = now();
    let window = [
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "container=evc",
    ];
    let events = |filters: &[&str], format: Option<&str>| {
        let format = format.map_or(vec![], |f| vec!["--format", f]);
        let args = [&["events"][..], &window[..], filters, &format[..]].concat();
        side.ok(&args)
    };
    let attach = events(&["--filter", "event=attach"], Some("{{.Action}}"));
    let rest = [
        "--filter",
        "event=create",
        "--filter",
        "event=start",
        "--filter",
        "event=die",
        "--filter",
        "event=destroy",
    ];
    let template = "{{.Type}} {{.Status}} {{.Action}} {{.From}} {{.Actor.Attributes.name}} {{.Actor.Attributes.image}} {{len .Actor.ID}} {{.Scope}}";
    let keys: Vec<String> = events(&rest, Some("json"))
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
            let mut keys: Vec<&String> = v
                .as_object()
                .map(|o| o.keys().collect())
                .unwrap_or_default();
            keys.sort();
            format!("{keys:?}")
        })
        .collect();
    let plain = events(&rest, None);
    let plain: Vec<&str> = plain
        .lines()
        .map(|l| l.split_once(' ').map_or(l, |(_, rest)| rest))
        .collect();
    vec![
        attach,
        normalise(&events(&rest, Some(template))),
        normalise(&events(&rest, Some("{{json .Actor.Attributes}}"))),
        keys.join("\n"),
        normalise(&plain.join("\n")),
    ]
}

/// `inspect` of a created container given `-v` (a named volume and a
/// read-only host folder), `--shm-size`, `--security-opt`, `--init` and
/// `--stop-signal`: those settings through a template, and how its
/// document differs from `docker`'s (see `inspect.rs`), which the caller
/// compares once both sides have answered.
pub(crate) fn inspect_flags(
    side: &Side,
    image: &str,
    bind: &Path,
) -> (String, Vec<(String, serde_json::Value)>) {
    let ro = format!("{}:/ro:ro", bind.display());
    side.ok(&[
        "create",
        "--name",
        "ib",
        "--network",
        "none",
        "-v",
        "ibv:/data",
        "-v",
        &ro,
        "--shm-size",
        "8m",
        "--security-opt",
        "no-new-privileges",
        "--init",
        "--stop-signal",
        "SIGUSR1",
        "--stop-timeout",
        "3",
        image,
        "true",
    ]);
    // Docker's CLI gathers `-v` in a Go map, so its `Binds` come in any
    // order (Berth keeps the command line's): they are compared sorted.
    let binds = side.ok(&["inspect", "-f", "{{json .HostConfig.Binds}}", "ib"]);
    let mut binds: Vec<String> = serde_json::from_str(binds.trim()).unwrap();
    binds.sort();
    let template = "{{.HostConfig.ShmSize}} {{json .HostConfig.SecurityOpt}} {{json .HostConfig.Init}} {{.Config.StopSignal}} {{json .Config.StopTimeout}} {{json .Config.OnBuild}}";
    let said = format!("{binds:?} {}", side.ok(&["inspect", "-f", template, "ib"]));
    let paths = super::inspect::inspect_paths(side, "ib");
    side.ok(&["rm", "-v", "ib"]);
    side.ok(&["volume", "rm", "ibv"]);
    (said, paths)
}

/// Digits become `N`.
fn no_digits(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_digit() { 'N' } else { c })
        .collect()
}

/// Starts `fresh`, a container `ps_times` reads a few seconds later.
pub(crate) fn start_fresh(side: &Side, image: &str) {
    side.ok(&[
        "run",
        "-d",
        "--name",
        "fresh",
        "--network",
        "none",
        image,
        "sleep",
        "60",
    ]);
}

/// `ps`'s CREATED and STATUS of `fresh`, digits as `N`, through a
/// template and in the default table (row 35).
pub(crate) fn ps_times(side: &Side) -> String {
    let mut out = side.ok(&[
        "ps",
        "--filter",
        "name=fresh",
        "--format",
        "{{.RunningFor}}|{{.Status}}|{{.CreatedAt}}",
    ]);
    // The default table, its runs of digits and of spaces as one.
    let table = no_digits(&normalise(&side.ok(&["ps", "--filter", "name=fresh"])));
    for line in table.lines() {
        let mut line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        while line.contains("NN") {
            line = line.replace("NN", "N");
        }
        out.push_str(&line);
        out.push('\n');
    }
    side.ok(&["rm", "-f", "fresh"]);
    no_digits(&out)
}

/// `images --format json` of the image (row 33): the line as written
/// (ids normalised) with VirtualSize's value as `<SIZE>`, and that value
/// as a number of bytes.
pub(crate) fn images_json(side: &Side, image: &str) -> (String, f64) {
    let out = normalise(side.ok(&["images", "--format", "json", image]).trim());
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    let size = v["VirtualSize"].as_str().unwrap_or_default().to_string();
    let key = format!("\"VirtualSize\":\"{size}\"");
    (
        out.replace(&key, "\"VirtualSize\":\"<SIZE>\""),
        bytes(&size),
    )
}

/// A go-units size (`1.984MB`) as bytes.
fn bytes(size: &str) -> f64 {
    let split = size
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(size.len());
    let (n, unit) = size.split_at(split);
    let scale = match unit {
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => 1.0,
    };
    n.parse::<f64>().unwrap_or(-1.0) * scale
}

/// `system prune -f` after a stopped container and an unused network are
/// made (row 8): the output with ids normalised, each section's lines
/// sorted and the reclaimed size left out; then what is left.
pub(crate) fn system_prune(side: &Side, image: &str) -> Vec<String> {
    side.ok(&["create", "--name", "sp", "--network", "none", image, "true"]);
    side.ok(&["network", "create", "spn"]);
    let out = side.ok(&["system", "prune", "-f"]);
    let mut sections = Vec::new();
    for section in normalise(&out).split("\n\n") {
        let mut lines: Vec<&str> = section.lines().collect();
        if lines.len() > 1 {
            lines[1..].sort();
        }
        let text = lines.join("\n");
        sections.push(if text.starts_with("Total reclaimed space: ") {
            "Total reclaimed space: <SIZE>".to_string()
        } else {
            text
        });
    }
    vec![
        sections.join("\n\n"),
        side.ok(&["ps", "-a", "--format", "{{.Names}}"]),
        side.ok(&[
            "network",
            "ls",
            "--filter",
            "name=spn",
            "--format",
            "{{.Name}}",
        ]),
    ]
}

/// The rows that take several commands (20, 22, 25, 9, 35, 33), each
/// compared between the sides, `api` being the `DOCKER_HOST` of Berth's
/// Docker Engine API; differences go to `failures`.
pub(crate) fn compare(
    sides: &[Side; 2],
    image: &str,
    host: &Path,
    api: &str,
    failures: &mut Vec<String>,
    report: &mut Vec<String>,
) {
    let dir = |side: &Side| host.join(side.name());
    let mut same = Vec::new();
    let mut differ = |what: &str, b: String, d: String| {
        if b != d {
            failures.push(format!("{what}:\nberth  {b}\ndocker {d}"));
        } else {
            same.push(format!("same {what}: {b}"));
        }
    };
    // cp of a host folder, or its contents, into a container (row 3).
    let seen: Vec<_> = sides.iter().map(|s| cp_in(s, &dir(s))).collect();
    differ("cp DIR/. and DIR into pc", seen[0].clone(), seen[1].clone());
    // A relative bind source is the current folder's (row 20).
    let seen: Vec<_> = sides
        .iter()
        .map(|s| relative_bind(s, image, &dir(s)))
        .collect();
    if seen[0] != (0, "relative\n".to_string()) {
        differ(
            "run -v ./reldir:/x, expected (0, relative)",
            format!("{:?}", seen[0]),
            format!("{:?}", seen[1]),
        );
    }
    differ(
        "run -v ./reldir:/x",
        format!("{:?}", seen[0]),
        format!("{:?}", seen[1]),
    );
    // A tar from standard input into a missing folder: refused, nothing
    // written, one sentence (row 22).
    let seen: Vec<_> = sides.iter().map(|s| tar_into_missing(s, &dir(s))).collect();
    let say = |(code, err, written): &(i32, String, bool)| (*code, *written, err.is_empty());
    differ(
        "cp - pc:/tarin (exit code, written, silent)",
        format!("{:?}", say(&seen[0])),
        format!("{:?}", say(&seen[1])),
    );
    if let Some(w) = clear_error(&seen[0].1) {
        differ("cp - pc:/tarin: berth's error", w, String::new());
    }
    // images of a second name lists only that name (row 25).
    // Docker's CLI through Berth's Docker API lists what it lists
    // through dockerd.
    let berth = images_by_second_name(&sides[0], image, Some(api));
    let docker = images_by_second_name(&sides[1], image, None);
    let (cli, through_api) = berth.split_at(docker.len());
    differ("images byid", format!("{cli:?}"), format!("{docker:?}"));
    let through_api: Vec<String> = through_api
        .iter()
        .map(|l| l.trim_start_matches("through the API: ").to_string())
        .collect();
    differ(
        "images byid through Berth's Docker API",
        format!("{through_api:?}"),
        format!("{docker:?}"),
    );
    // events through templates, as JSON, and as lines, with the attach
    // event a client's attach sends and the container's labels in the
    // attributes (row 9).
    let seen: Vec<_> = sides.iter().map(|s| events(s, image)).collect();
    differ("events", format!("{:?}", seen[0]), format!("{:?}", seen[1]));
    // ps's CREATED and STATUS a few seconds after the start (row 35).
    for side in sides {
        start_fresh(side, image);
    }
    std::thread::sleep(Duration::from_secs(3));
    let seen: Vec<_> = sides.iter().map(ps_times).collect();
    differ("ps CREATED and STATUS", seen[0].clone(), seen[1].clone());
    // images --format json: every key as Docker's, and the unpacked size
    // to the byte: symbolic links count their targets' lengths, as in
    // Docker's overlay2 (row 33).
    let seen: Vec<_> = sides.iter().map(|s| images_json(s, image)).collect();
    differ("images --format json", seen[0].0.clone(), seen[1].0.clone());
    let (b, d) = (seen[0].1, seen[1].1);
    if b <= 0.0 || b != d {
        differ(
            "images --format json's VirtualSize (bytes)",
            b.to_string(),
            d.to_string(),
        );
    }
    // inspect of a container given -v and other flags: the flags'
    // values, then (below) its document as the others'.
    let bind = host.join("ibind");
    std::fs::create_dir_all(&bind).unwrap();
    let flags: Vec<_> = sides
        .iter()
        .map(|s| inspect_flags(s, image, &bind))
        .collect();
    differ(
        "inspect of -v and other flags",
        flags[0].0.clone(),
        flags[1].0.clone(),
    );
    // inspect's documents: Docker's keys, values of the same types, the
    // same values where the meaning is the same (see `inspect.rs`).
    for object in ["pc", image, "pv", "pn"] {
        let seen: Vec<_> = sides
            .iter()
            .map(|s| super::inspect::inspect_paths(s, object))
            .collect();
        let (wrong, known) = super::inspect::differences(&seen[0], &seen[1]);
        if !wrong.is_empty() {
            failures.push(format!("inspect {object}: Berth's {}", wrong.join("; ")));
        }
        report.extend(
            known
                .iter()
                .map(|k| format!("known: inspect {object}: {k}")),
        );
    }
    let (wrong, known) = super::inspect::differences(&flags[0].1, &flags[1].1);
    if !wrong.is_empty() {
        failures.push(format!("inspect ib: Berth's {}", wrong.join("; ")));
    }
    report.extend(known.iter().map(|k| format!("known: inspect ib: {k}")));
    report.extend(same);
}
