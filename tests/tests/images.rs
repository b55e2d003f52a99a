//! Images end to end: the real agent and CLI against a real registry.

use std::process::Command;

use berth_tests::images::{
    busybox_layer, describe_tree, incompressible, remote_digest, sha, tar_of, Compression, Layout,
    E,
};
use berth_tests::registry::{Auth, Registry, PASS, USER};
use berth_tests::{need_root, Agent};

#[path = "images/input.rs"]
mod input;

/// Pushes a one-image layout to `reg` as `name:tag`; returns "addr/name:tag".
fn publish(
    reg: &Registry,
    name: &str,
    layers: &[Vec<u8>],
    compression: Compression,
    extra: &[String],
) -> String {
    let mut layout = Layout::new();
    let (d, s) = layout.image(layers, compression, "amd64");
    layout.tag("t", &d, s, false);
    let dest = format!("{}/{name}", reg.addr);
    layout.push("t", &dest, extra);
    dest
}

fn snapshot_count(agent: &Agent) -> usize {
    std::fs::read_dir(agent.root().join("snapshots")).map_or(0, |r| r.count())
}

fn blob_count(agent: &Agent) -> usize {
    std::fs::read_dir(agent.root().join("blobs/sha256")).map_or(0, |r| r.count())
}

#[test]
fn pull_by_tag_and_digest_then_list_inspect_and_repull_as_a_no_op() {
    if !need_root() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let name = publish(
        &reg,
        "tools/busybox:1.0",
        &[busybox_layer()],
        Compression::Gzip,
        &[],
    );
    let agent = Agent::start();
    let out = agent.ok(&["pull", &name]);
    assert!(
        out.contains("Pull complete") && out.contains("Downloaded newer image"),
        "{out}"
    );
    let images = agent.ok(&["images"]);
    assert!(
        images.contains(&format!("{}/tools/busybox", reg.addr)) && images.contains("1.0"),
        "{images}"
    );
    let err = agent.fails(&["pull", &format!("{}/tools/missing:1.0", reg.addr)]);
    assert!(err.contains("was not found in its registry"), "{err}");
    let again = agent.ok(&["pull", &name]);
    assert!(again.contains("Image is up to date"), "{again}");
    assert!(!again.contains("Downloading"), "{again}");

    let inspect: serde_json::Value =
        serde_json::from_str(&agent.ok(&["image", "inspect", &name])).unwrap();
    let img = &inspect[0];
    assert_eq!(img["Config"]["Cmd"][0], "/bin/sh");
    assert_eq!(img["Config"]["Env"][0], "PATH=/bin");
    assert_eq!(img["Config"]["StopSignal"], "SIGTERM");
    assert!(img["Config"]["ExposedPorts"].get("8080/tcp").is_some());
    assert_eq!(img["Config"]["Labels"]["made-by"], "berth-tests");
    assert_eq!(img["Architecture"], "amd64");

    let digest = remote_digest(&name);
    let by_digest = format!("{}/tools/busybox@{digest}", reg.addr);
    let agent2 = Agent::start();
    agent2.ok(&["pull", &by_digest]);
    let listed = agent2.ok(&["images", "--digests"]);
    assert!(
        listed.contains(&digest) && listed.contains("<none>"),
        "{listed}"
    );
    let quiet = agent2.ok(&["images", "-q"]);
    assert_eq!(quiet.trim().len(), 12, "{quiet}");
}

#[test]
fn layers_unpack_exactly_as_umoci_does() {
    if !need_root() {
        return;
    }
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let base = tar_of(&[
        E::Dir("/", 0o755, 0, 0),
        E::Dir("/etc/", 0o755, 0, 0),
        E::File("/etc/keep", 0o640, 1000, 1000, b"keep"),
        E::File("/etc/gone", 0o644, 0, 0, b"gone"),
        E::Dir("/opq/", 0o750, 12, 34),
        E::File("/opq/old", 0o600, 0, 0, b"old"),
        E::Dir("/data/", 0o1777, 0, 0),
        E::File("/data/big", 0o4755, 0, 0, &big),
        E::Hardlink("/data/big-link", "/data/big"),
        E::Symlink("/data/abs", "/etc/keep"),
        E::Symlink("/data/rel", "../etc/keep"),
        E::Dir("/usr/", 0o755, 0, 0),
        E::Dir("/usr/bin/", 0o755, 0, 0),
        E::Symlink("/bin", "usr/bin"),
        E::Dir("/dev/", 0o755, 0, 0),
        E::Char("/dev/null", 1, 3),
        E::Fifo("/dev/pipe"),
    ]);
    let top = tar_of(&[
        E::File("etc/.wh.gone", 0o644, 0, 0, b""),
        E::Dir("opq/", 0o700, 5, 6),
        E::File("opq/.wh..wh..opq", 0o644, 0, 0, b""),
        E::File("opq/new", 0o644, 7, 8, b"new"),
        E::File("etc/keep", 0o600, 1000, 1000, b"changed"),
        E::Hardlink("data/link-to-lower", "data/big"),
        E::File("bin/tool", 0o755, 0, 0, b"#!/bin/sh\n"),
    ]);
    let mut layout = Layout::new();
    let (d, s) = layout.image(&[base, top], Compression::Gzip, "amd64");
    layout.tag("t", &d, s, false);
    let reg = Registry::start(Auth::None);
    let name = format!("{}/layered:t", reg.addr);
    layout.push("t", &name, &[]);

    let agent = Agent::start();
    agent.ok(&["pull", &name]);
    let inspect: serde_json::Value =
        serde_json::from_str(&agent.ok(&["image", "inspect", &name])).unwrap();
    let layers = inspect[0]["Layers"].as_array().unwrap().clone();
    assert_eq!(layers.len(), 2);

    // Mount the snapshots as a container would see them.
    let chain_dirs: Vec<String> = std::fs::read_dir(agent.root().join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path().display().to_string())
        .collect();
    assert_eq!(chain_dirs.len(), 2);
    let diff0 = layers[0]["DiffID"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let (lower, upper): (Vec<&String>, Vec<&String>) =
        chain_dirs.iter().partition(|p| p.ends_with(&diff0));
    let merged = tempfile::tempdir().unwrap();
    let opts = format!("lowerdir={}/fs:{}/fs", upper[0], lower[0]);
    let st = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(merged.path())
        .status()
        .unwrap();
    assert!(st.success(), "overlay mount failed");
    let ours = describe_tree(merged.path());
    let _ = Command::new("umount").arg(merged.path()).status();

    let bundle = tempfile::tempdir().unwrap();
    let st = Command::new("umoci")
        .args([
            "unpack",
            "--image",
            &format!("{}:t", layout.dir.path().display()),
        ])
        .arg(bundle.path().join("b"))
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let theirs = describe_tree(&bundle.path().join("b/rootfs"));
    assert_eq!(ours, theirs, "\nberth: {ours:#?}\numoci: {theirs:#?}");
    // Spot checks a user would notice.
    assert!(
        ours.iter().any(|l| l.starts_with("usr/bin/tool file")),
        "written through /bin -> usr/bin: {ours:#?}"
    );
    assert!(!ours.iter().any(|l| l.starts_with("etc/gone")));
    assert!(!ours.iter().any(|l| l.starts_with("opq/old")));
}

#[test]
fn platform_is_chosen_from_an_index() {
    if !need_root() {
        return;
    }
    let mut layout = Layout::new();
    let amd = layout.image(
        &[tar_of(&[E::File("arch", 0o644, 0, 0, b"amd64")])],
        Compression::Gzip,
        "amd64",
    );
    let arm = layout.image(
        &[tar_of(&[E::File("arch", 0o644, 0, 0, b"arm64")])],
        Compression::Gzip,
        "arm64",
    );
    let (d, s) = layout.multi_arch(&[
        (arm.0.clone(), arm.1, "arm64"),
        (amd.0.clone(), amd.1, "amd64"),
    ]);
    layout.tag("multi", &d, s, true);
    let reg = Registry::start(Auth::None);
    let name = format!("{}/multi:1", reg.addr);
    layout.push("multi", &name, &["--all".to_string()]);

    let agent = Agent::start();
    agent.ok(&["pull", &name]);
    let host: serde_json::Value =
        serde_json::from_str(&agent.ok(&["image", "inspect", &name])).unwrap();
    assert_eq!(host[0]["Architecture"], "amd64");
    agent.ok(&["pull", "--platform", "linux/arm64", &name]);
    let arm_img: serde_json::Value =
        serde_json::from_str(&agent.ok(&["image", "inspect", &name])).unwrap();
    assert_eq!(arm_img[0]["Architecture"], "arm64");
    let err = agent.fails(&["pull", "--platform", "linux/s390x", &name]);
    assert!(
        err.contains("no variant for linux/s390x") && err.contains("linux/arm64"),
        "{err}"
    );
    let err = agent.fails(&["pull", "--platform", "nonsense", &name]);
    assert!(err.contains("os/arch"), "{err}");
}

#[test]
fn zstd_uncompressed_and_docker_format_images_pull() {
    if !need_root() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let agent = Agent::start();
    for (name, comp, extra) in [
        ("zstd:1", Compression::Zstd, vec![]),
        ("plain:1", Compression::None, vec![]),
        (
            "docker:1",
            Compression::Gzip,
            vec!["--format".to_string(), "v2s2".to_string()],
        ),
    ] {
        let r = publish(&reg, name, &[busybox_layer()], comp, &extra);
        agent.ok(&["pull", &r]);
        let i: serde_json::Value =
            serde_json::from_str(&agent.ok(&["image", "inspect", &r])).unwrap();
        assert!(i[0]["Size"].as_u64().unwrap() > 500_000, "{name}: {i}");
    }
    let i: serde_json::Value =
        serde_json::from_str(&agent.ok(&["image", "inspect", &format!("{}/docker:1", reg.addr)]))
            .unwrap();
    assert_eq!(
        i[0]["Descriptor"]["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    // One layer content, three blobs, one snapshot: shared by chain id.
    assert_eq!(snapshot_count(&agent), 1);
}

#[test]
fn basic_auth_and_bearer_tokens_need_login() {
    if !need_root() {
        return;
    }
    for auth in [Auth::Basic, Auth::Token] {
        let reg = Registry::start(auth);
        let name = publish(
            &reg,
            "secret:1",
            &[busybox_layer()],
            Compression::Gzip,
            &Registry::skopeo_creds(auth),
        );
        let agent = Agent::start();
        let err = agent.fails(&["pull", &name]);
        assert!(err.contains("berth login"), "{err}");
        let err = agent.fails(&["login", "-u", USER, "-p", "wrong", &reg.addr]);
        assert!(err.contains("refused"), "{err}");
        let mut login = agent.berth_cmd(&["login", "-u", USER, "--password-stdin", &reg.addr]);
        login
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = login.spawn().unwrap();
        std::io::Write::write_all(
            child.stdin.as_mut().unwrap(),
            format!("{PASS}\n").as_bytes(),
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).contains("Login Succeeded")
        );
        agent.ok(&["pull", &name]);
        assert!(agent
            .ok(&["logout", &reg.addr])
            .contains("Removing login credentials"));
        if auth == Auth::Token {
            // Anonymous bearer tokens, as Docker Hub gives for public images.
            let creds = Registry::skopeo_creds(auth);
            let public = publish(
                &reg,
                "public/busybox:1",
                &[busybox_layer()],
                Compression::Gzip,
                &creds,
            );
            agent.ok(&["pull", &public]);
        }
    }
}

#[test]
fn save_rmi_load_round_trip_and_push_keep_the_digest() {
    if !need_root() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let name = publish(
        &reg,
        "app:v1",
        &[
            busybox_layer(),
            tar_of(&[E::File("hello", 0o644, 0, 0, b"hi")]),
        ],
        Compression::Gzip,
        &[],
    );
    let agent = Agent::start();
    agent.ok(&["pull", &name]);
    let before: serde_json::Value =
        serde_json::from_str(&agent.ok(&["image", "inspect", &name])).unwrap();
    let archive = agent.dir.path().join("app.tar");
    agent.ok(&["save", "-o", archive.to_str().unwrap(), &name]);
    agent.ok(&["rmi", &name]);
    assert_eq!(agent.ok(&["images", "-q"]).trim(), "");
    assert_eq!(snapshot_count(&agent), 0);
    assert_eq!(blob_count(&agent), 0, "rmi gives the disk back");
    let loaded = agent.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert!(
        loaded.contains("Loaded image: ") && loaded.contains("app:v1"),
        "{loaded}"
    );
    let after: serde_json::Value =
        serde_json::from_str(&agent.ok(&["image", "inspect", &name])).unwrap();
    assert_eq!(before[0]["Id"], after[0]["Id"]);
    assert_eq!(
        before[0]["Descriptor"]["digest"],
        after[0]["Descriptor"]["digest"]
    );

    // Pulling again records where the image came from, so a push to
    // another repository of the same registry mounts its blobs.
    assert!(agent.ok(&["pull", &name]).contains("Image is up to date"));
    let target = format!("{}/copied/app:v2", reg.addr);
    agent.ok(&["tag", &name, &target]);
    let pushed = agent.ok(&["push", &target]);
    assert!(pushed.contains("digest: sha256:"), "{pushed}");
    assert!(pushed.contains("Mounted from"), "{pushed}");
    assert_eq!(
        remote_digest(&target),
        before[0]["Descriptor"]["digest"].as_str().unwrap()
    );
    // A second push finds every layer there.
    assert!(agent
        .ok(&["push", &target])
        .contains("Layer already exists"));

    // docker save's own archive layout loads too (skopeo writes it).
    let docker_tar = agent.dir.path().join("docker.tar");
    let st = Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{name}"),
            &format!("docker-archive:{}:other/app:v9", docker_tar.display()),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let loaded = agent.ok(&["load", "-i", docker_tar.to_str().unwrap()]);
    assert!(loaded.contains("other/app:v9"), "{loaded}");
    agent.ok(&["image", "inspect", "other/app:v9"]);
}

#[test]
fn rmi_and_prune_follow_docker_and_give_the_disk_back() {
    if !need_root() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let a = publish(&reg, "a:1", &[busybox_layer()], Compression::Gzip, &[]);
    let agent = Agent::start();
    agent.ok(&["pull", &a]);
    agent.ok(&["tag", &a, "second:name"]);
    let id = agent.ok(&["images", "-q"]).trim().to_string();
    let err = agent.fails(&["rmi", &id]);
    assert!(err.contains("must be forced"), "{err}");
    let out = agent.ok(&["rmi", "second:name"]);
    assert_eq!(out.trim(), "Untagged: second:name");
    assert_eq!(snapshot_count(&agent), 1);
    // Pushing a new image under the same tag leaves the old one dangling.
    let _ = publish(
        &reg,
        "a:1",
        &[tar_of(&[E::File("other", 0o644, 0, 0, b"x")])],
        Compression::Gzip,
        &[],
    );
    agent.ok(&["pull", &a]);
    let dangling = agent.ok(&["images", "--filter", "dangling=true", "-q"]);
    assert_eq!(dangling.trim(), id);
    let pruned = agent.ok(&["image", "prune", "-f"]);
    assert!(
        pruned.contains(&format!("deleted: sha256:{id}"))
            && pruned.contains("Total reclaimed space"),
        "{pruned}"
    );
    assert_eq!(snapshot_count(&agent), 1);
    agent.ok(&["image", "prune", "-a", "-f"]);
    assert_eq!(snapshot_count(&agent), 0);
    assert_eq!(blob_count(&agent), 0);
    let err = agent.fails(&["rmi", "nothing:here"]);
    assert!(err.contains("no such image"), "{err}");
}

fn big_image(reg: &Registry, name: &str) -> String {
    // Incompressible content, so the pull takes long enough to interrupt.
    let data = incompressible(48 << 20, 0x9e3779b97f4a7c15u64);
    publish(
        reg,
        name,
        &[
            tar_of(&[E::File("blob", 0o644, 0, 0, &data)]),
            busybox_layer(),
        ],
        Compression::None,
        &[],
    )
}

#[test]
fn kill_9_mid_pull_then_restart_leaves_a_consistent_store() {
    if !need_root() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let name = big_image(&reg, "big:1");
    let mut agent = Agent::start();
    let mut pull = agent
        .berth_cmd(&["pull", &name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(150));
    agent.kill9();
    let _ = pull.wait();
    agent.restart();
    assert_eq!(
        agent.ok(&["images", "-q"]).trim(),
        "",
        "a half-pulled image must not be listed"
    );
    let partials = Command::new("find")
        .arg(agent.root())
        .args(["-name", "*.partial*"])
        .output()
        .unwrap();
    assert!(
        partials.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&partials.stdout)
    );
    agent.ok(&["pull", &name]);
    assert_eq!(agent.ok(&["images", "-q"]).trim().len(), 12);
}

#[test]
fn two_concurrent_pulls_share_one_download() {
    if !need_root() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let name = big_image(&reg, "shared:1");
    let agent = Agent::start();
    let spawn = || {
        agent
            .berth_cmd(&["pull", "-q", &name])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success(), "{}", agent.log());
    // Count the registry's access-log lines per layer blob (layers are the
    // blobs over 100 kB here; the small config may be read by both pulls).
    let mut per_blob = std::collections::HashMap::<String, usize>::new();
    for line in reg.log().lines() {
        let Some(rest) = line.split("\"GET /v2/shared/blobs/").nth(1) else {
            continue;
        };
        let digest = rest.split(' ').next().unwrap_or("").to_string();
        let size: u64 = rest
            .split("\" 200 ")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if size > 100_000 {
            *per_blob.entry(digest).or_default() += 1;
        }
    }
    assert_eq!(per_blob.len(), 2, "both layers fetched: {per_blob:?}");
    assert!(
        per_blob.values().all(|&n| n == 1),
        "each layer fetched once: {per_blob:?}"
    );
    assert_eq!(snapshot_count(&agent), 2);
}
