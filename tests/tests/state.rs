//! A container's state into images and files in and out: commit, diff,
//! export and import, and cp in both directions, safe against the
//! container's own symlinks.

use std::io::Write;
use std::process::{Command, Stdio};

use berth_tests::containers::agent_with_busybox;

#[test]
fn commit_diff_export_and_import_keep_a_containers_changes() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    agent.ok(&[
        "run",
        "--name",
        "work",
        bb,
        "sh",
        "-c",
        "mkdir -p /srv/app && echo v2 > /srv/app/version && rm /etc/group",
    ]);
    let diff = agent.ok(&["diff", "work"]);
    assert_eq!(
        diff.lines().collect::<Vec<_>>(),
        [
            "C /etc",
            "D /etc/group",
            "A /srv",
            "A /srv/app",
            "A /srv/app/version"
        ],
        "{diff}"
    );
    let id = agent.ok(&[
        "commit",
        "-c",
        "CMD [\"cat\", \"/srv/app/version\"]",
        "-c",
        "ENV STAGE=committed",
        "-m",
        "version two",
        "-a",
        "tester",
        "work",
        "app:v2",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(agent.ok(&["run", "--rm", "app:v2"]), "v2\n");
    let out = agent.ok(&[
        "run",
        "--rm",
        "app:v2",
        "sh",
        "-c",
        "echo $STAGE; test -e /etc/group || echo no-group",
    ]);
    assert_eq!(out, "committed\nno-group\n");
    let history = agent.ok(&["image", "history", "--format", "json", "app:v2"]);
    assert!(history.contains("version two"), "{history}");
    // export → import: the same files, as one layer, runnable.
    let tarball = agent.dir.path().join("work.tar");
    agent.ok(&["export", "-o", tarball.to_str().unwrap(), "work"]);
    let listing = Command::new("tar")
        .arg("-tf")
        .arg(&tarball)
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(names.lines().any(|l| l == "srv/app/version"), "{names}");
    assert!(
        !names.lines().any(|l| l == "etc/group"),
        "a deleted file was exported"
    );
    agent.ok(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        tarball.to_str().unwrap(),
        "restored:1",
    ]);
    assert_eq!(
        agent.ok(&["run", "--rm", "restored:1", "cat", "/srv/app/version"]),
        "v2\n"
    );
    // From standard input, gzip-compressed.
    let gz = Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -c {}", tarball.display()))
        .output()
        .unwrap()
        .stdout;
    let mut import = agent
        .berth_cmd(&["import", "-", "restored:gz"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    import.stdin.take().unwrap().write_all(&gz).unwrap();
    assert!(import.wait_with_output().unwrap().status.success());
    assert_eq!(
        agent.ok(&["run", "--rm", "restored:gz", "cat", "/srv/app/version"]),
        "v2\n"
    );
    // Bad input.
    let err = agent.fails(&["commit", "-c", "RUN rm -rf /", "work"]);
    assert!(err.contains("invalid --change"), "{err}");
    let junk = agent.dir.path().join("junk.tar");
    std::fs::write(&junk, b"this is not a tar archive at all").unwrap();
    let err = agent.fails(&["import", junk.to_str().unwrap()]);
    assert!(!err.is_empty());
}

#[test]
fn cp_copies_both_ways_and_never_leaves_the_container() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    // Hostile links inside the container: to the root, and climbing out.
    agent.ok(&[
        "run", "-d", "--name", "box", bb, "sh", "-c",
        "ln -s / /escape; ln -s ../../../../../../.. /up; mkdir /data; echo inside > /data/f; exec sleep 600",
    ]);
    // The container makes /data as it starts: wait for it, or a copy into
    // /data/ can land before the folder exists.
    for _ in 0..100 {
        if agent.run(&["exec", "box", "test", "-f", "/data/f"]).0 == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let host = agent.dir.path();
    std::fs::write(host.join("note"), "from the host\n").unwrap();
    // In: a file into a directory, and under a new name.
    agent.ok(&["cp", host.join("note").to_str().unwrap(), "box:/data/"]);
    agent.ok(&[
        "cp",
        host.join("note").to_str().unwrap(),
        "box:/data/renamed",
    ]);
    assert_eq!(
        agent.ok(&["exec", "box", "cat", "/data/note", "/data/renamed"]),
        "from the host\nfrom the host\n"
    );
    // Out: a directory to a new name, and a file to stdout as a tar.
    agent.ok(&["cp", "box:/data", host.join("copied").to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(host.join("copied/f")).unwrap(),
        "inside\n"
    );
    // Through the links: every path stays inside the container.
    let marker = format!("/tmp/berth-cp-escape-{}", std::process::id());
    let _ = std::fs::remove_file(&marker);
    agent.ok(&[
        "cp",
        host.join("note").to_str().unwrap(),
        &format!("box:/up{marker}"),
    ]);
    agent.ok(&[
        "cp",
        host.join("note").to_str().unwrap(),
        &format!("box:/escape{marker}"),
    ]);
    assert!(
        !std::path::Path::new(&marker).exists(),
        "cp wrote on the host through a container's symlink"
    );
    assert_eq!(
        agent.ok(&["exec", "box", "cat", &marker]),
        "from the host\n"
    );
    // Reading through them reads the container's files, not the host's.
    agent.ok(&[
        "cp",
        "box:/escape/etc/passwd",
        host.join("passwd").to_str().unwrap(),
    ]);
    let copied = std::fs::read_to_string(host.join("passwd")).unwrap();
    assert_eq!(copied, agent.ok(&["exec", "box", "cat", "/etc/passwd"]));
    // A hostile archive is refused with nothing written.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    {
        // Write a raw name with `..`, which tar::Builder itself refuses.
        let name = b"../../escaped";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
    }
    b.append(&h, &b"evil"[..]).unwrap();
    let archive = b.into_inner().unwrap();
    let mut cp = agent
        .berth_cmd(&["cp", "-", "box:/data"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    cp.stdin.take().unwrap().write_all(&archive).unwrap();
    let out = cp.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(".."),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        agent
            .ok(&[
                "exec",
                "box",
                "sh",
                "-c",
                "ls /escaped / 2>/dev/null | grep -c escaped || true"
            ])
            .trim(),
        "0"
    );
    // A stopped container can be copied from and into as well.
    agent.ok(&["stop", "-t", "1", "box"]);
    agent.ok(&["cp", host.join("note").to_str().unwrap(), "box:/data/late"]);
    agent.ok(&["cp", "box:/data/late", host.join("late").to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(host.join("late")).unwrap(),
        "from the host\n"
    );
    let err = agent.fails(&["cp", "box:/nope", host.join("x").to_str().unwrap()]);
    assert!(err.contains("could not find"), "{err}");
}
