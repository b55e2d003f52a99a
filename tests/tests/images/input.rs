//! Images from bad, hostile and unusual input: corrupt blobs, layers that
//! reach outside the store, malformed references and archives, older
//! `docker save` archives and umoci-built images.

use super::*;

#[test]
fn a_corrupt_blob_fails_with_a_digest_error_and_leaves_nothing() {
    if !need_root() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let noise: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let mut layout = Layout::new();
    let (d, s) = layout.image(
        &[tar_of(&[E::File("noise", 0o644, 0, 0, &noise)])],
        Compression::Gzip,
        "amd64",
    );
    layout.tag("t", &d, s, false);
    let name = format!("{}/corrupt:1", reg.addr);
    layout.push("t", &name, &[]);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(layout.dir.path().join("blobs/sha256").join(&d[7..])).unwrap(),
    )
    .unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let path = reg.blob_path(layer);
    let mut data = std::fs::read(&path).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&path, data).unwrap();

    let agent = Agent::start();
    let err = agent.fails(&["pull", &name]);
    assert!(
        err.to_lowercase().contains("digest")
            || err.contains("hashes to")
            || err.contains("corrupt"),
        "{err}"
    );
    assert_eq!(agent.ok(&["images", "-q"]).trim(), "");
    assert_eq!(snapshot_count(&agent), 0, "no snapshot may remain");
    let ingest = std::fs::read_dir(agent.root().join("ingest"))
        .unwrap()
        .count();
    assert_eq!(ingest, 0, "no partial blob may remain");
}

#[test]
fn hostile_layers_never_touch_anything_outside_the_store() {
    if !need_root() {
        return;
    }
    let canary = tempfile::Builder::new()
        .prefix("berth-canary")
        .tempdir_in("/tmp")
        .unwrap();
    std::fs::write(canary.path().join("keep"), "original").unwrap();
    let c = canary.path().display().to_string();
    let up = format!("../../../../../../../..{c}");
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        (
            "dotdot",
            vec![tar_of(&[
                E::File(&format!("{up}/pwned"), 0o644, 0, 0, b"x"),
                E::File(&format!("{up}/keep"), 0o644, 0, 0, b"x"),
            ])],
        ),
        (
            "absolute",
            vec![tar_of(&[
                E::File(&format!("{c}/pwned"), 0o644, 0, 0, b"x"),
                E::File(&format!("{c}/keep"), 0o644, 0, 0, b"x"),
            ])],
        ),
        (
            "symlink-then-file",
            vec![tar_of(&[
                E::Symlink("evil", &c),
                E::File("evil/pwned", 0o644, 0, 0, b"x"),
                E::File("evil/keep", 0o644, 0, 0, b"x"),
            ])],
        ),
        (
            "relative-symlink-then-file",
            vec![tar_of(&[
                E::Symlink("evil", &up),
                E::File("evil/keep", 0o644, 0, 0, b"x"),
            ])],
        ),
        (
            "symlink-across-layers",
            vec![
                tar_of(&[E::Symlink("evil", &c)]),
                tar_of(&[
                    E::File("evil/pwned", 0o644, 0, 0, b"x"),
                    E::File("evil/keep", 0o644, 0, 0, b"x"),
                ]),
            ],
        ),
        (
            "hardlink-out",
            vec![tar_of(&[
                E::Hardlink("stolen", &format!("{c}/keep")),
                E::Hardlink("passwd", "/etc/passwd"),
            ])],
        ),
        (
            "hardlink-up",
            vec![tar_of(&[E::Hardlink("stolen", &format!("{up}/keep"))])],
        ),
        (
            "whiteout-out",
            vec![
                tar_of(&[E::File(&format!("{up}/.wh.keep"), 0o644, 0, 0, b"")]),
                tar_of(&[E::File(&format!("{c}/.wh.keep"), 0o644, 0, 0, b"")]),
            ],
        ),
        (
            "symlink-dir-whiteout",
            vec![
                tar_of(&[E::Symlink("evil", &c)]),
                tar_of(&[
                    E::File("evil/.wh.keep", 0o644, 0, 0, b""),
                    E::File("evil/.wh..wh..opq", 0o644, 0, 0, b""),
                ]),
            ],
        ),
        (
            "symlink-loop",
            vec![tar_of(&[
                E::Symlink("a", "b"),
                E::Symlink("b", "a"),
                E::File("a/x", 0o644, 0, 0, b"x"),
            ])],
        ),
    ];
    let reg = Registry::start(Auth::None);
    let agent = Agent::start();
    let before = describe_tree(canary.path());
    for (name, layers) in &cases {
        let r = publish(
            &reg,
            &format!("hostile/{name}:1"),
            layers,
            Compression::Gzip,
            &[],
        );
        let out = agent.berth(&["pull", &r]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{name}: {err}");
        if !out.status.success() {
            assert_eq!(
                err.trim().lines().count(),
                1,
                "{name}: one sentence expected: {err}"
            );
            assert!(err.contains("cannot be unpacked"), "{name}: {err}");
        }
        assert_eq!(
            describe_tree(canary.path()),
            before,
            "{name} changed something outside the store"
        );
        assert!(!std::path::Path::new("/etc/passwd.berth").exists());
    }
    // The contained cases really landed inside the image root.
    let found = Command::new("find")
        .arg(agent.root().join("snapshots"))
        .args(["-name", "pwned"])
        .output()
        .unwrap();
    assert!(
        !found.stdout.is_empty(),
        "absolute and ../ names should land inside the root"
    );
    assert!(agent.log().lines().all(|l| !l.contains("panicked")));
}

#[test]
fn bad_input_gets_one_clear_sentence() {
    if !need_root() {
        return;
    }
    let agent = Agent::start();
    for (args, says) in [
        (vec!["pull", "UPPER/case"], "not a valid image reference"),
        (vec!["pull", "a@sha256:123"], "not a valid image reference"),
        (vec!["image", "inspect", "missing"], "no such image"),
        (vec!["tag", "missing", "x"], "no such image"),
        (vec!["images", "--filter", "bogus=1"], "not supported"),
        (vec!["load", "-i", "/nonexistent/file.tar"], "cannot open"),
    ] {
        let err = agent.fails(&args);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let junk = agent.dir.path().join("junk.tar");
    std::fs::write(&junk, tar_of(&[E::File("hello", 0o644, 0, 0, b"x")])).unwrap();
    let err = agent.fails(&["load", "-i", junk.to_str().unwrap()]);
    assert!(err.contains("not an image archive"), "{err}");
    let down = Command::new(berth_tests::bin("berth"))
        .args(["-H", "unix:///nonexistent.sock", "images"])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&down.stderr).contains("is berth-agent running"));
}

/// A tar of (name, content or symlink target) written raw.
fn archive_of(entries: &[(&str, Result<&[u8], &str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, body) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        let data: &[u8] = match body {
            Ok(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                data
            }
            Err(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
                b""
            }
        };
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn older_docker_save_archives_with_linked_layers_load() {
    if !need_root() {
        return;
    }
    let layer = busybox_layer();
    let extra = tar_of(&[E::File("extra", 0o644, 0, 0, b"x")]);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha(&layer), sha(&extra), sha(&layer)]},
    }))
    .unwrap();
    let manifest = |layers: &[&str]| {
        serde_json::to_vec(&serde_json::json!([{"Config": "cfg.json", "RepoTags": ["legacy/app:1"], "Layers": layers}])).unwrap()
    };
    let agent = Agent::start();
    let good = agent.dir.path().join("legacy.tar");
    std::fs::write(
        &good,
        archive_of(&[
            ("aaa/layer.tar", Ok(&layer)),
            ("bbb/layer.tar", Ok(&extra)),
            ("ccc/layer.tar", Err("../aaa/layer.tar")),
            ("cfg.json", Ok(&config)),
            (
                "manifest.json",
                Ok(&manifest(&[
                    "aaa/layer.tar",
                    "bbb/layer.tar",
                    "ccc/layer.tar",
                ])),
            ),
        ]),
    )
    .unwrap();
    let out = agent.ok(&["load", "-i", good.to_str().unwrap()]);
    assert!(out.contains("Loaded image: legacy/app:1"), "{out}");

    // A link that leaves the archive is never followed.
    let secret = agent.dir.path().join("secret");
    std::fs::write(&secret, b"do not read").unwrap();
    let up = format!("../../../../../../..{}", secret.display());
    let evil = agent.dir.path().join("evil.tar");
    std::fs::write(
        &evil,
        archive_of(&[
            ("aaa/layer.tar", Err(up.as_str())),
            ("cfg.json", Ok(&config)),
            ("manifest.json", Ok(&manifest(&["aaa/layer.tar"]))),
        ]),
    )
    .unwrap();
    let err = agent.fails(&["load", "-i", evil.to_str().unwrap()]);
    assert!(err.contains("lacks aaa/layer.tar"), "{err}");
}

#[test]
fn umoci_built_images_without_media_types_pull() {
    if !need_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = format!("{}/layout", dir.path().display());
    let bundle = dir.path().join("bundle");
    let umoci = |args: &[&str]| {
        let out = Command::new("umoci").args(args).output().expect("umoci");
        assert!(
            out.status.success(),
            "umoci {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    umoci(&["init", "--layout", &layout]);
    umoci(&["new", "--image", &format!("{layout}:t")]);
    umoci(&[
        "unpack",
        "--image",
        &format!("{layout}:t"),
        bundle.to_str().unwrap(),
    ]);
    std::fs::create_dir_all(bundle.join("rootfs/bin")).unwrap();
    std::fs::copy("/bin/busybox", bundle.join("rootfs/bin/busybox")).unwrap();
    umoci(&[
        "repack",
        "--image",
        &format!("{layout}:t"),
        bundle.to_str().unwrap(),
    ]);
    umoci(&[
        "config",
        "--image",
        &format!("{layout}:t"),
        "--config.cmd",
        "/bin/busybox",
        "--config.user",
        "1000:1000",
        "--config.workingdir",
        "/srv",
        "--config.volume",
        "/data",
    ]);
    // umoci's manifests carry no mediaType field, and its layer names start with "/".
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{layout}/index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{layout}/blobs/sha256/{digest}")).unwrap())
            .unwrap();
    assert!(
        manifest.get("mediaType").is_none(),
        "umoci changed: {manifest}"
    );

    let reg = Registry::start(Auth::None);
    let name = format!("{}/umoci/busybox:t", reg.addr);
    berth_tests::images::push_with_skopeo(&format!("oci:{layout}:t"), &name, &[]);
    let agent = Agent::start();
    agent.ok(&["pull", &name]);
    let i: serde_json::Value =
        serde_json::from_str(&agent.ok(&["image", "inspect", &name])).unwrap();
    assert_eq!(i[0]["Config"]["User"], "1000:1000");
    assert_eq!(i[0]["Config"]["WorkingDir"], "/srv");
    assert!(i[0]["Config"]["Volumes"].get("/data").is_some());
    let found = Command::new("find")
        .arg(agent.root().join("snapshots"))
        .args(["-path", "*/fs/bin/busybox"])
        .output()
        .unwrap();
    assert!(!found.stdout.is_empty(), "busybox landed in the snapshot");
}
