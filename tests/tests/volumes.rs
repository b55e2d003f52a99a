//! Volumes and mounts end to end: named and anonymous volumes, bind
//! mounts seen both ways at once, tmpfs, and Docker's rules for missing
//! sources.

use berth_tests::containers::agent_with_busybox;

#[test]
fn named_volumes_are_filled_from_the_image_and_outlive_containers() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    // First mount: the image's /etc is copied into the empty volume.
    let out = agent.ok(&[
        "run",
        "--rm",
        "-v",
        "conf:/etc",
        bb,
        "sh",
        "-c",
        "grep -c nobody /etc/passwd; echo kept > /etc/mine",
    ]);
    assert_eq!(out.trim(), "1", "{out}");
    // The container is gone; the volume and its change stay.
    let out = agent.ok(&[
        "run",
        "--rm",
        "-v",
        "conf:/etc:ro",
        bb,
        "sh",
        "-c",
        "cat /etc/mine; touch /etc/x 2>/dev/null || echo read-only",
    ]);
    assert_eq!(out, "kept\nread-only\n");
    let inspect: serde_json::Value =
        serde_json::from_str(&agent.ok(&["volume", "inspect", "conf"])).unwrap();
    let mountpoint = inspect[0]["Mountpoint"].as_str().unwrap().to_string();
    assert_eq!(
        std::fs::read_to_string(format!("{mountpoint}/mine")).unwrap(),
        "kept\n"
    );
    // In use: not removable; then removed with its data.
    agent.ok(&[
        "run",
        "-d",
        "--name",
        "user",
        "-v",
        "conf:/etc",
        bb,
        "sleep",
        "600",
    ]);
    let err = agent.fails(&["volume", "rm", "conf"]);
    assert!(err.contains("in use"), "{err}");
    agent.ok(&["rm", "-f", "user"]);
    agent.ok(&["volume", "rm", "conf"]);
    assert!(!std::path::Path::new(&mountpoint).exists());
    // Anonymous volumes (-v /path) go with `run --rm` and `rm -v`.
    agent.ok(&["run", "--rm", "-v", "/scratch", bb, "touch", "/scratch/f"]);
    agent.ok(&[
        "run", "-d", "--name", "anon", "-v", "/scratch", bb, "sleep", "600",
    ]);
    assert_eq!(agent.ok(&["volume", "ls", "-q"]).lines().count(), 1);
    agent.ok(&["rm", "-f", "-v", "anon"]);
    assert_eq!(agent.ok(&["volume", "ls", "-q"]), "");
    // prune: anonymous only unless --all.
    agent.ok(&["volume", "create", "keepme"]);
    agent.ok(&["volume", "prune", "-f"]);
    assert_eq!(agent.ok(&["volume", "ls", "-q"]), "keepme\n");
    agent.ok(&["volume", "prune", "-f", "--all"]);
    assert_eq!(agent.ok(&["volume", "ls", "-q"]), "");
    let err = agent.fails(&["volume", "create", "bad/name"]);
    assert!(err.contains("invalid volume name"), "{err}");
    let err = agent.fails(&["volume", "inspect", "ghost"]);
    assert!(err.contains("no such volume"), "{err}");
}

#[test]
fn bind_mounts_show_edits_both_ways_at_once() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let host = agent.dir.path().join("project");
    std::fs::create_dir(&host).unwrap();
    let spec = format!("{}:/app", host.display());
    agent.ok(&[
        "run", "-d", "--name", "dev", "-v", &spec, bb, "sleep", "600",
    ]);
    std::fs::write(host.join("from-host"), "edited on the host\n").unwrap();
    assert_eq!(
        agent.ok(&["exec", "dev", "cat", "/app/from-host"]),
        "edited on the host\n"
    );
    agent.ok(&[
        "exec",
        "dev",
        "sh",
        "-c",
        "echo edited inside > /app/from-ctr",
    ]);
    assert_eq!(
        std::fs::read_to_string(host.join("from-ctr")).unwrap(),
        "edited inside\n"
    );
    agent.ok(&["rm", "-f", "dev"]);
    assert!(host.join("from-ctr").exists(), "rm touched the bind source");
    // -v makes a missing host directory; --mount refuses it, as Docker.
    let made = agent.dir.path().join("made-by-v");
    agent.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/m", made.display()),
        bb,
        "true",
    ]);
    assert!(made.is_dir());
    let missing = agent.dir.path().join("missing");
    let out = agent.berth(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,src={},dst=/m", missing.display()),
        bb,
        "true",
    ]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bind source path does not exist"));
    assert!(!missing.exists());
    // Read-only binds and tmpfs.
    let out = agent.ok(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,src={},dst=/ro,readonly", host.display()),
        "--tmpfs",
        "/scratch:size=1m",
        bb,
        "sh",
        "-c",
        "touch /ro/x 2>/dev/null || echo ro; grep ' /scratch ' /proc/mounts | cut -d' ' -f3",
    ]);
    assert_eq!(out, "ro\ntmpfs\n");
    // Bad mounts get one sentence.
    for (args, says) in [
        (vec!["-v", "rel/dir:/x"], "absolute path"),
        (vec!["-v", "data:relative"], "must be absolute"),
        (
            vec!["--mount", "type=nfs,target=/x"],
            "type is bind, volume or tmpfs",
        ),
    ] {
        let mut all = vec!["run", "--rm"];
        all.extend(args);
        all.extend([bb, "true"]);
        let out = agent.berth(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says) && err.lines().count() == 1,
            "{all:?}: {err}"
        );
    }
}
