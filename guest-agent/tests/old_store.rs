//! A store written by an older agent opens with this one: every image,
//! container, volume and network is still there with its attributes, and
//! the records are rewritten in the current format. Then the real agent
//! binary adopts a running container whose record is in the old format
//! (as an old agent that crashed or was replaced leaves it): it is listed
//! as running, its logs work, and it stops. The fixture and how it was
//! made: `tests/fixtures/README.md`.
//!
//! Needs root (the store holds root-owned files, and containers run); it
//! runs in a network namespace of its own. Outside CI it skips without
//! root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use berth_agent::image::registry::RegistryOptions;
use berth_agent::image::ImageService;
use berth_agent::network::Networks;
use berth_agent::runtime::{Containers, LogOptions};
use berth_agent::util::gate::Gate;
use berth_agent::volume::Volumes;
use berth_api::endpoint::ClientTls;
use berth_api::v1::containers_client::ContainersClient;
use berth_api::v1::{ContainerRef, ListContainersRequest, LogsRequest, StopContainerRequest};
use berth_api::Endpoint;

/// Where the fixture's agent kept its store; records hold absolute paths
/// under it, so the test unpacks it at the same place.
const FIXTURE_DIR: &str = "/var/tmp/berth-fixture-old";
const IMAGE: &str = "127.0.0.1:5391/fixture/busybox:1.0";

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn unpack() -> PathBuf {
    let dir = Path::new(FIXTURE_DIR);
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("fixture directory");
    let tarball = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/old-store-v0.tar.gz");
    let status = Command::new("tar")
        .args(["-xzf"])
        .arg(&tarball)
        .arg("-C")
        .arg(dir)
        .status()
        .expect("tar runs");
    assert!(status.success(), "unpacking {}", tarball.display());
    dir.join("root")
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("readable")).expect("JSON")
}

#[test]
fn an_old_store_opens_with_everything_in_it_and_running_containers_are_adopted() {
    if !is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the old-store test needs root in CI"
        );
        eprintln!("skipped: the old-store test needs root");
        return;
    }
    // A network namespace of this test's own (it goes when the test
    // ends): the engine's reconcile and fx-running's bridge and veth must
    // not touch the host's, or other agents' on it.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("a network namespace");
    let lo = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status();
    assert!(lo.is_ok_and(|s| s.success()), "ip link set lo up");
    let root = unpack();
    // The engine in-process first, on a runtime of its own, so that every
    // task holding it (and the metadata database) is gone before the real
    // agent opens the same store.
    let engine = tokio::runtime::Runtime::new().expect("a runtime");
    engine.block_on(opens_with_everything_in_it(&root));
    drop(engine);
    let client = tokio::runtime::Runtime::new().expect("a runtime");
    client.block_on(adopts_a_running_container_with_an_old_record(&root));
    drop(client);
    let _ = std::fs::remove_dir_all(FIXTURE_DIR);
}

async fn opens_with_everything_in_it(root: &Path) {
    let root = root.to_path_buf();
    let images = ImageService::open(&root, RegistryOptions::default()).expect("images open");
    let networks = Networks::open(&root, images.events.clone()).expect("networks open");
    let volumes = Arc::new(Volumes::open(&root, images.events.clone()).expect("volumes open"));
    let containers = Containers::open(
        &root,
        images.clone(),
        networks.clone(),
        volumes.clone(),
        Gate::open(),
    )
    .await
    .expect("containers open");

    // Images: one image, two names, its layer and config.
    let list = images.list().expect("images list");
    assert_eq!(list.len(), 1, "{list:?}");
    let image = images.find(IMAGE).expect("the image by name");
    assert_eq!(
        image.record.id,
        images
            .find("fixture/busybox")
            .expect("by its tag")
            .record
            .id
    );
    assert_eq!(image.record.layers.len(), 1);
    assert!(
        image.record.id.starts_with("sha256:5047955c0a01"),
        "{}",
        image.record.id
    );
    assert_eq!(
        image.record.version,
        berth_agent::store::IMAGE_RECORD_VERSION
    );
    assert!(
        image
            .tags
            .iter()
            .any(|t| t.ends_with("fixture/busybox:latest")),
        "{:?}",
        image.tags
    );

    // Volumes: the named one with its label and its data.
    let vol = volumes.find("fx-data").expect("the volume");
    assert_eq!(
        vol.labels.get("purpose").map(String::as_str),
        Some("fixture")
    );
    assert!(!vol.anonymous);
    assert_eq!(
        std::fs::read_to_string(volumes.data_path("fx-data").join("f")).expect("its file"),
        "kept\n"
    );

    // Networks: the user one with its subnet and label, and the builtins.
    let net = networks.find("fx-net").expect("the network");
    assert_eq!(net.subnet, "10.99.7.0/24");
    assert_eq!(
        net.labels.get("purpose").map(String::as_str),
        Some("fixture")
    );
    for builtin in ["bridge", "host", "none"] {
        networks.find(builtin).expect("a builtin network");
    }
    assert_eq!(networks.list().len(), 4);

    // Containers: all three, with what they were created with and their
    // state.
    assert_eq!(containers.all().len(), 3);
    let done = containers.find("fx-done").expect("fx-done").record();
    assert_eq!(done.state.status, "exited");
    assert_eq!(done.state.exit_code, 0);
    assert_eq!(
        done.config.labels.get("role").map(String::as_str),
        Some("done")
    );
    assert_eq!(done.config.env, ["FX=1"]);
    assert_eq!(done.config.network, "fx-net");
    assert_eq!(done.config.mounts.len(), 1);
    assert_eq!(done.config.mounts[0].kind, "volume");
    assert_eq!(done.config.mounts[0].source, "fx-data");
    assert_eq!(done.config.mounts[0].target, "/data");
    assert_eq!(done.networks.len(), 1);
    assert_eq!(done.networks[0].network, net.id);
    assert_eq!(done.image_id, image.record.id);
    let created = containers.find("fx-created").expect("fx-created").record();
    assert_eq!(created.state.status, "created");
    assert_eq!(created.config.cmd, ["sleep", "1000"]);
    assert_eq!(created.config.ports.len(), 1);
    assert_eq!(created.config.ports[0].host_port, 18080);
    assert_eq!(created.config.ports[0].container_port, 80);
    assert_eq!(created.config.ports[0].host_ip, "127.0.0.1");
    let stopped = containers.find("fx-running").expect("fx-running").record();
    assert_eq!(stopped.state.status, "exited");
    assert_eq!(stopped.state.exit_code, 137);

    // Logs of both containers that ran.
    let lines = |id: &str| {
        let opts = LogOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let mut rx = containers.logs(id, opts).expect("logs");
        async move {
            let mut out = Vec::new();
            while let Some(l) = rx.recv().await {
                out.push((l.stream, l.log));
            }
            out
        }
    };
    let done_logs = lines(&done.id).await;
    assert!(
        done_logs.contains(&("stdout".into(), "hello from the old agent\n".into())),
        "{done_logs:?}"
    );
    assert!(
        done_logs.contains(&("stderr".into(), "err\n".into())),
        "{done_logs:?}"
    );
    let stopped_logs = lines(&stopped.id).await;
    assert!(
        stopped_logs.contains(&("stdout".into(), "started\n".into())),
        "{stopped_logs:?}"
    );

    // The records were rewritten in the current format, atomically (no
    // temporary files left beside them).
    for c in containers.all() {
        let path = containers.dir_of(&c.record().id).join("container.json");
        assert_eq!(json(&path)["version"], 1, "{}", path.display());
    }
    assert_eq!(
        json(&root.join("volumes/fx-data/volume.json"))["version"],
        1
    );
    assert_eq!(
        json(&root.join(format!("networks/{}.json", net.id)))["version"],
        1
    );
    for dir in ["networks", "volumes/fx-data"] {
        for e in std::fs::read_dir(root.join(dir))
            .expect("readable")
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(!name.contains(".tmp"), "{dir}/{name} left behind");
        }
    }
}

/// A `berth-agent` process on the fixture's store, killed when dropped.
struct AgentProcess {
    child: std::process::Child,
    socket: PathBuf,
}

impl AgentProcess {
    async fn start(root: &Path) -> AgentProcess {
        let socket = Path::new(FIXTURE_DIR).join("agent.sock");
        let _ = std::fs::remove_file(&socket);
        let child = Command::new(env!("CARGO_BIN_EXE_berth-agent"))
            .arg("--root")
            .arg(root)
            .arg("--listen")
            .arg(format!("unix://{}", socket.display()))
            .stderr(std::fs::File::create(Path::new(FIXTURE_DIR).join("agent.log")).expect("log"))
            .spawn()
            .expect("berth-agent starts");
        for _ in 0..400 {
            if socket.exists() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert!(socket.exists(), "the agent never listened: {}", agent_log());
        AgentProcess { child, socket }
    }

    async fn containers(&self) -> ContainersClient<tonic::transport::Channel> {
        let channel = Endpoint::Unix(self.socket.clone())
            .connect(&ClientTls::default())
            .await
            .expect("the agent answers");
        ContainersClient::new(channel)
    }

    /// Ends the agent as a crash would (`kill -9`): its containers run on.
    fn crash(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

fn agent_log() -> String {
    std::fs::read_to_string(Path::new(FIXTURE_DIR).join("agent.log")).unwrap_or_default()
}

async fn status_of(c: &mut ContainersClient<tonic::transport::Channel>, name: &str) -> String {
    c.inspect(ContainerRef { id: name.into() })
        .await
        .expect("inspect")
        .into_inner()
        .state
        .map(|s| s.status)
        .unwrap_or_default()
}

async fn adopts_a_running_container_with_an_old_record(root: &Path) {
    // Start fx-running with this agent, then crash the agent.
    let agent = AgentProcess::start(root).await;
    let mut c = agent.containers().await;
    c.start(ContainerRef {
        id: "fx-running".into(),
    })
    .await
    .unwrap_or_else(|e| panic!("start: {e}; {}", agent_log()));
    assert_eq!(status_of(&mut c, "fx-running").await, "running");
    let id = c
        .inspect(ContainerRef {
            id: "fx-running".into(),
        })
        .await
        .expect("inspect")
        .into_inner()
        .id;
    drop(c);
    agent.crash();
    // Its record as an old agent writes it: no format version.
    let path = root.join("containers").join(&id).join("container.json");
    let mut record = json(&path);
    record.as_object_mut().expect("an object").remove("version");
    std::fs::write(&path, serde_json::to_vec_pretty(&record).expect("JSON")).expect("written");

    // The next agent adopts it: listed as running, logs, stop.
    let agent = AgentProcess::start(root).await;
    let mut c = agent.containers().await;
    let listed = c
        .list(ListContainersRequest {
            all: false,
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .containers;
    assert!(
        listed.iter().any(|s| s.id == id && s.state == "running"),
        "{listed:?}"
    );
    let mut logs = c
        .logs(LogsRequest {
            id: id.clone(),
            tail: -1,
            stdout: true,
            stderr: true,
            ..Default::default()
        })
        .await
        .expect("logs")
        .into_inner();
    let mut text = String::new();
    while let Some(entry) = logs.message().await.expect("a log entry") {
        text.push_str(&String::from_utf8_lossy(&entry.data));
    }
    assert_eq!(text, "started\nstarted\n", "both runs' output");
    c.stop(StopContainerRequest {
        id: id.clone(),
        timeout: 1,
        signal: String::new(),
    })
    .await
    .unwrap_or_else(|e| panic!("stop: {e}; {}", agent_log()));
    assert_eq!(status_of(&mut c, &id).await, "exited");
    assert_eq!(json(&path)["version"], 1, "the adopted record was upgraded");
    drop(c);
    drop(agent);
}
