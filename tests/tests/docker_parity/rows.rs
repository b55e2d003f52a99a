//! Parity rows that need more than one command: a relative bind source
//! (row 20), a tar from standard input into a missing folder (row 22),
//! `images` of a second tag (row 25), `events` and its templates (row 9),
//! `ps`'s times (row 35), `images --format json` (row 33) and `system
//! prune -f` (row 8), each run on one side and returning what a user saw.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{normalise, Side};

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

/// `images byid` where `byid` is a second name of the image (row 25): the
/// listing, ids normalised.
pub(crate) fn images_by_second_name(side: &Side, image: &str) -> Vec<String> {
    side.ok(&["tag", image, "byid"]);
    let seen = vec![
        normalise(&side.ok(&["images", "byid"])),
        normalise(&side.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}", "byid"])),
        normalise(&side.ok(&["images", "-q", "byid:latest"])),
    ];
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

/// `ps`'s CREATED and STATUS of `fresh`, digits as `N` (row 35).
pub(crate) fn ps_times(side: &Side) -> String {
    let out = side.ok(&[
        "ps",
        "--filter",
        "name=fresh",
        "--format",
        "{{.RunningFor}}|{{.Status}}|{{.CreatedAt}}",
    ]);
    side.ok(&["rm", "-f", "fresh"]);
    no_digits(&out)
}

/// `images --format json` of the image (row 33): every key but
/// VirtualSize as it is (ids normalised), VirtualSize as a number of bytes.
pub(crate) fn images_json(side: &Side, image: &str) -> (serde_json::Value, f64) {
    let out = side.ok(&["images", "--format", "json", image]);
    let mut v: serde_json::Value = serde_json::from_str(&normalise(out.trim())).unwrap();
    let size = v
        .as_object_mut()
        .and_then(|o| o.remove("VirtualSize"))
        .and_then(|s| s.as_str().map(String::from))
        .unwrap_or_default();
    (v, bytes(&size))
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
