//! `berth-client` against a real agent: every operation family at least
//! once, the error kind of each "not found", and the kinds `run` turns
//! into Docker's exit codes — read from the agent's reasons, not its words.

use std::time::Duration;

use berth_client::containers::WaitFor;
use berth_client::images::Progress;
use berth_client::session::{AttachOptions, ExecOptions, Output};
use berth_client::types as pb;
use berth_client::{Client, ConnectOptions, ErrorKind, Object};
use berth_tests::containers::agent_with_busybox;
use berth_tests::images::{busybox_layer, Compression, Layout};
use berth_tests::registry::{Auth, Registry};
use futures::StreamExt;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn client(host: String) -> Client {
    Client::new(ConnectOptions {
        host: Some(host),
        ..Default::default()
    })
}

fn create_req(image: &str, cmd: &[&str]) -> pb::CreateContainerRequest {
    pb::CreateContainerRequest {
        image: image.to_string(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        network: "none".into(),
        ..Default::default()
    }
}

/// Reads a session to its end: (stdout, stderr, exit code).
async fn collect(mut out: berth_client::Stream<Output>) -> (String, String, i32) {
    let (mut o, mut e) = (Vec::new(), Vec::new());
    while let Some(item) = out.next().await {
        match item.expect("session output") {
            Output::Stdout(d) => o.extend(d),
            Output::Stderr(d) => e.extend(d),
            Output::Exit(code) => {
                return (
                    String::from_utf8_lossy(&o).into(),
                    String::from_utf8_lossy(&e).into(),
                    code,
                )
            }
        }
    }
    panic!("the session ended without an exit code");
}

#[test]
fn every_operation_family_works_through_the_client() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let c = client(agent.host());
    runtime().block_on(async {
        // System.
        let v = c.version().await.unwrap();
        assert_eq!(v.api_version, berth_client::API_VERSION);
        c.ping().await.unwrap();
        assert!(c.info().await.unwrap().images >= 1);

        // Images.
        let images = c.list_images(Default::default()).await.unwrap();
        assert!(images
            .iter()
            .any(|i| i.repo_tags.iter().any(|t| t.contains("bb"))));
        let doc = c.inspect_image_json(bb).await.unwrap();
        assert_eq!(doc["Os"], "linux", "{doc}");
        assert!(!c.image_history(bb).await.unwrap().is_empty());
        c.tag_image(bb, "bb-client:v1").await.unwrap();
        let removed = c.remove_image("bb-client:v1", false, false).await.unwrap();
        assert!(
            removed.iter().any(|r| r.action == "Untagged"),
            "{removed:?}"
        );

        // A container run as `docker run` runs it: create, attach, start.
        let created = c
            .create_pulling(
                create_req(bb, &["sh", "-c", "echo out; echo err >&2; exit 3"]),
                |_| {},
            )
            .await
            .unwrap();
        let session = c
            .attach(
                &created.id,
                AttachOptions {
                    stdin: false,
                    start: true,
                },
            )
            .await
            .unwrap();
        let (out, err, code) = collect(session.output).await;
        assert_eq!((out.as_str(), err.as_str(), code), ("out\n", "err\n", 3));
        assert_eq!(
            c.wait_container(&created.id, WaitFor::NotRunning)
                .await
                .unwrap(),
            3
        );
        let mut logs = c
            .logs(pb::LogsRequest {
                id: created.id.clone(),
                tail: -1,
                stdout: true,
                stderr: true,
                ..Default::default()
            })
            .await
            .unwrap();
        let mut streams = Vec::new();
        while let Some(e) = logs.next().await {
            let e = e.unwrap();
            streams.push((e.stream, String::from_utf8_lossy(&e.data).into_owned()));
        }
        assert!(
            streams.contains(&("stdout".into(), "out\n".into())),
            "{streams:?}"
        );
        assert!(
            streams.contains(&("stderr".into(), "err\n".into())),
            "{streams:?}"
        );
        let doc = c.inspect_container_json(&created.id).await.unwrap();
        assert_eq!(doc["State"]["ExitCode"], 3, "{doc}");
        c.remove_container(&created.id, false, false).await.unwrap();

        // A running container: events, exec, top, stats, cp, stop.
        let mut events = c
            .events(pb::EventsRequest {
                filters: [(
                    "type".to_string(),
                    pb::StringList {
                        values: vec!["container".into()],
                    },
                )]
                .into_iter()
                .collect(),
                ..Default::default()
            })
            .await
            .unwrap();
        let mut req = create_req(bb, &["sleep", "60"]);
        req.name = "client-long".into();
        let long = c.create_container(req).await.unwrap();
        c.start_container("client-long").await.unwrap();
        let session = c
            .exec(
                "client-long",
                ExecOptions {
                    cmd: vec!["sh".into(), "-c".into(), "echo from-exec $X".into()],
                    env: vec!["X=1".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(!session.exec_id.is_empty());
        assert_eq!(
            collect(session.output).await,
            ("from-exec 1\n".into(), String::new(), 0)
        );
        let top = c.top("client-long", vec![]).await.unwrap();
        assert!(
            top.processes
                .iter()
                .any(|p| p.values.iter().any(|v| v.contains("sleep"))),
            "{top:?}"
        );
        let mut stats = c.stats("client-long", false).await.unwrap();
        let sample = stats.next().await.unwrap().unwrap();
        assert!(sample.memory_usage > 0, "{sample:?}");
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "hello.txt", &b"hello"[..]).unwrap();
        let data = tar.into_inner().unwrap();
        c.copy_to(
            "client-long",
            "/tmp",
            false,
            Box::new(std::io::Cursor::new(data)),
        )
        .await
        .unwrap();
        let mut back = Vec::new();
        let mut s = c
            .copy_from("client-long", "/tmp/hello.txt", false)
            .await
            .unwrap();
        while let Some(chunk) = s.next().await {
            back.extend(chunk.unwrap());
        }
        let mut archive = tar::Archive::new(&back[..]);
        let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
        assert_eq!(text, "hello");
        let list = c.list_containers(Default::default()).await.unwrap();
        assert!(list.iter().any(|x| x.id == long.id));
        c.stop_container("client-long", Some(1), "").await.unwrap();
        let mut actions = Vec::new();
        while !actions.iter().any(|a| a == "die") {
            let e = tokio::time::timeout(Duration::from_secs(10), events.next())
                .await
                .expect("an event within 10 s")
                .unwrap()
                .unwrap();
            actions.push(e.action);
        }
        assert!(actions.iter().any(|a| a == "start"), "{actions:?}");
        c.remove_container("client-long", true, false)
            .await
            .unwrap();

        // Volumes and networks.
        let v = c
            .create_volume(pb::CreateVolumeRequest {
                name: "client-vol".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(c.inspect_volume("client-vol").await.unwrap().name, v.name);
        assert_eq!(berth_client::volumes::docker_json(&v)["Name"], "client-vol");
        assert!(c
            .list_volumes(Default::default())
            .await
            .unwrap()
            .iter()
            .any(|x| x.name == v.name));
        c.remove_volume("client-vol", false).await.unwrap();
        let n = c
            .create_network(pb::CreateNetworkRequest {
                name: "client-net".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(c.inspect_network("client-net").await.unwrap().id, n.id);
        assert!(c
            .list_networks(Default::default())
            .await
            .unwrap()
            .iter()
            .any(|x| x.name == "client-net"));
        c.remove_network("client-net").await.unwrap();
        assert!(c.disk_usage().await.is_ok());
    });
}

#[test]
fn each_missing_thing_has_its_own_kind() {
    let Some((agent, bb)) = agent_with_busybox() else {
        return;
    };
    let c = client(agent.host());
    runtime().block_on(async {
        let kind = |r: Result<(), berth_client::Error>| r.expect_err("must fail").kind();
        assert_eq!(
            kind(c.inspect_image("no-such-image:1").await.map(drop)),
            ErrorKind::NotFound(Object::Image)
        );
        assert_eq!(
            kind(c.inspect_container("no-such-container").await.map(drop)),
            ErrorKind::NotFound(Object::Container)
        );
        assert_eq!(
            kind(c.start_container("no-such-container").await),
            ErrorKind::NotFound(Object::Container)
        );
        assert_eq!(
            kind(c.inspect_volume("no-such-volume").await.map(drop)),
            ErrorKind::NotFound(Object::Volume)
        );
        assert_eq!(
            kind(c.inspect_network("no-such-network").await.map(drop)),
            ErrorKind::NotFound(Object::Network)
        );
        assert_eq!(
            kind(
                c.create_container(create_req("no-such-image:1", &["true"]))
                    .await
                    .map(drop)
            ),
            ErrorKind::NotFound(Object::Image)
        );
        // A name in use.
        let mut req = create_req(bb, &["true"]);
        req.name = "taken".into();
        c.create_container(req.clone()).await.unwrap();
        assert_eq!(
            kind(c.create_container(req).await.map(drop)),
            ErrorKind::AlreadyExists
        );
        // The container's command: missing (127) and not runnable (126).
        let missing = c
            .create_container(create_req(bb, &["/no/such/cmd"]))
            .await
            .unwrap();
        let e = c
            .start_container(&missing.id)
            .await
            .expect_err("no such command");
        assert_eq!(e.kind(), ErrorKind::CommandNotFound, "{e}");
        assert_eq!(e.kind().run_exit_code(), 127);
        let dir = c.create_container(create_req(bb, &["/etc"])).await.unwrap();
        let e = c.start_container(&dir.id).await.expect_err("a directory");
        assert_eq!(e.kind(), ErrorKind::CommandCannotRun, "{e}");
        assert_eq!(e.kind().run_exit_code(), 126);
    });
}

#[test]
fn a_pull_streams_typed_progress_per_layer() {
    if !berth_tests::need_root() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let mut layout = Layout::new();
    let (d, s) = layout.image(&[busybox_layer()], Compression::Gzip, "amd64");
    layout.tag("t", &d, s, false);
    let name = format!("{}/client/busybox:1", reg.addr);
    layout.push("t", &name, &[]);
    let agent = berth_tests::Agent::start();
    let c = client(agent.host());
    runtime().block_on(async {
        let mut s = c.pull(&name, "").await.unwrap();
        let (mut layers, mut done) = (Vec::new(), None);
        while let Some(p) = s.next().await {
            match p.unwrap() {
                Progress::Layer { id, status, .. } => layers.push((id, status)),
                Progress::Pulled(d) => done = Some(d),
                Progress::Pushed(_) => panic!("a push item in a pull"),
            }
        }
        let done = done.expect("the pull finished");
        assert!(done.digest.starts_with("sha256:"), "{done:?}");
        assert!(
            layers
                .iter()
                .any(|(id, st)| !id.is_empty() && st == "Pull complete"),
            "{layers:?}"
        );
        // Pulled progress serializes for a UI as tagged JSON.
        let json = serde_json::to_value(Progress::Pulled(done)).unwrap();
        assert_eq!(json["kind"], "pulled");
        let missing = c
            .pull_all(&format!("{}/client/missing:1", reg.addr), "")
            .await
            .expect_err("not in the registry");
        assert_eq!(
            missing.kind(),
            ErrorKind::NotFound(Object::Image),
            "{missing}"
        );
    });
}

#[test]
fn one_client_carries_on_after_the_agent_restarts() {
    let Some((mut agent, _bb)) = agent_with_busybox() else {
        return;
    };
    let c = client(agent.host());
    let rt = runtime();
    rt.block_on(async { c.ping().await.unwrap() });
    agent.restart();
    rt.block_on(async {
        // The first call after the restart may still see the old
        // connection go; the client dials again by itself.
        let mut last = None;
        for _ in 0..50 {
            match c.list_containers(Default::default()).await {
                Ok(_) => return,
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
                    last = Some(e);
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the client never got through again: {last:?}");
    });
}
