//! The container engine's verbs against containers that are not running,
//! driven through the engine's own types: no gRPC server, no root, no
//! container processes. Each refusal is the typed error a client tells
//! apart, with its sentence.

use std::path::Path;
use std::sync::Arc;

use berth_agent::error::{Error, What};
use berth_agent::image::registry::RegistryOptions;
use berth_agent::image::ImageService;
use berth_agent::network::Networks;
use berth_agent::runtime::config::{ContainerConfig, ExecOptions};
use berth_agent::runtime::record::RECORD_VERSION;
use berth_agent::runtime::session::StdioInput;
use berth_agent::runtime::start::AttachWanted;
use berth_agent::runtime::{Containers, Record, State};
use berth_agent::util::gate::{Gate, Opener};
use berth_agent::volume::Volumes;

const CREATED: &str = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0";
const EXITED: &str = "e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1";

/// A record as the engine writes it, in `status`, on `--network none`.
fn write_record(root: &Path, id: &str, name: &str, status: &str) {
    let record = Record {
        version: RECORD_VERSION,
        id: id.into(),
        name: name.into(),
        created: chrono::Utc::now(),
        image: "busybox".into(),
        image_id: "sha256:1111".into(),
        config: ContainerConfig {
            name: name.into(),
            network: "none".into(),
            ..Default::default()
        },
        path: "true".into(),
        args: Vec::new(),
        hostname: name.into(),
        restart_count: 0,
        networks: Vec::new(),
        mounts: Vec::new(),
        state: State {
            status: status.into(),
            exit_code: if status == "exited" { 3 } else { 0 },
            ..Default::default()
        },
    };
    let dir = root.join("containers").join(id);
    std::fs::create_dir_all(&dir).expect("container dir");
    std::fs::write(
        dir.join("container.json"),
        serde_json::to_vec_pretty(&record).expect("JSON"),
    )
    .expect("record written");
}

/// The engine on `root`, with the network-modules gate held shut (so the
/// network reconcile, which needs root, never runs): keep the opener.
async fn engine(root: &Path) -> (Arc<Containers>, Opener) {
    let images = ImageService::open(root, RegistryOptions::default()).expect("images");
    let networks = Networks::open(root, images.events.clone()).expect("networks");
    let volumes = Arc::new(Volumes::open(root, images.events.clone()).expect("volumes"));
    let (opener, gate) = Gate::closed();
    let containers = Containers::open(root, images, networks, volumes, gate)
        .await
        .expect("containers");
    (containers, opener)
}

fn assert_precondition(e: Error, says: &str) {
    assert!(
        matches!(&e, Error::FailedPrecondition(m) if m.contains(says)),
        "{e:?}"
    );
}

#[tokio::test]
async fn verbs_on_stopped_containers_refuse_with_typed_errors() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let root = dir.path();
    write_record(root, CREATED, "made", "created");
    write_record(root, EXITED, "done", "exited");
    let (c, _opener) = engine(root).await;

    // Lookup: by name, by prefix; a miss says it is a container.
    assert_eq!(c.find("made").expect("by name").record().id, CREATED);
    assert_eq!(c.find("e1e1").expect("by prefix").record().id, EXITED);
    let missing = c.find("nope").err().expect("no such container");
    assert!(
        matches!(&missing, Error::NotFound(What::Container, m) if m.starts_with("no such container: nope")),
        "{missing:?}"
    );
    assert!(matches!(
        c.remove("nope", false, false).await,
        Err(Error::NotFound(What::Container, _))
    ));

    // Verbs that need a running process.
    assert_precondition(
        c.kill("made", "").await.expect_err("kill"),
        "is not running",
    );
    assert_precondition(
        c.pause("done", true).await.expect_err("pause"),
        "is not running",
    );
    assert_precondition(c.stats("made", false).expect_err("stats"), "is not running");
    let exec = ExecOptions {
        container_id: "done".into(),
        cmd: vec!["sh".into()],
        ..Default::default()
    };
    assert_precondition(c.exec(&exec).await.err().expect("exec"), "is not running");
    let (_tx, input) = tokio::sync::mpsc::channel::<StdioInput>(1);
    let attach = c
        .attach_session("done", AttachWanted::default(), false, input)
        .await
        .expect_err("attach");
    assert_precondition(attach, "you cannot attach to a stopped container");
    assert!(matches!(
        c.kill("made", "NOPE").await,
        Err(Error::InvalidArgument(_))
    ));

    // Names: taken is AlreadyExists, bad is InvalidArgument.
    assert!(
        matches!(c.rename("made", "done"), Err(Error::AlreadyExists(m)) if m.contains("already in use"))
    );
    assert!(matches!(
        c.rename("made", "-x"),
        Err(Error::InvalidArgument(_))
    ));
    c.rename("made", "renamed").expect("a free name");
    assert_eq!(c.find("renamed").expect("renamed").record().id, CREATED);

    // Wait on an exited container answers its code at once.
    assert_eq!(c.wait("done", "not-running").await.expect("wait"), 3);

    // Prune takes both (neither runs), and they are gone from disk too.
    let (mut deleted, _) = c.prune().await;
    deleted.sort();
    assert_eq!(deleted, [CREATED.to_string(), EXITED.to_string()]);
    assert!(c.all().is_empty());
    assert!(!root.join("containers").join(CREATED).exists());
}
