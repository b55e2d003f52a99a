//! Containers: create, run, stop and observe them.
//!
//! The runtime is youki's `libcontainer` rather than one of our own: it
//! already does namespaces, pivot_root, masked paths, capabilities,
//! rlimits and cgroups v1 and v2 the way runc does, and it is a library
//! (no runc binary to install or exec per call). Seccomp is Berth's own
//! step in libcontainer's init ([`seccomp::filter`]: compiled once, not
//! per container). libcontainer's one hazard — it clones inside the
//! calling process, unsafe in a multi-threaded tokio process — is met by
//! creating every container and exec process from a single-threaded
//! re-exec of the agent (see [`monitor`] and [`exec`]).
//!
//! Layout under the agent's root: `containers/<id>/` holds the record
//! (`container.json`), the OCI bundle (`bundle/config.json`, `rootfs`
//! mount point), the writable layer (`upper`, `work`), the managed
//! `hosts`/`hostname`/`resolv.conf`, the log and the monitor's
//! `run.json`; `rt/` is libcontainer's state; `seccomp/` holds compiled
//! seccomp programs ([`seccomp::filter`]); `m/<id12>` are monitor
//! sockets (short, for the socket address limit).

mod adopt;
mod caps;
mod changes;
pub mod command;
pub mod config;
pub mod copy;
mod create;
mod devices;
pub mod exec;
pub mod execs;
pub mod health;
pub mod lifecycle;
mod limits;
pub mod logs;
mod merge;
pub mod monitor;
pub mod mounts;
mod networking;
mod observe;
mod options;
pub mod protocol;
pub mod record;
pub mod relay;
pub mod seccomp;
pub mod session;
pub mod signals;
pub mod spec;
pub mod start;
pub mod stats;
pub mod stop;
pub mod transfer;
pub mod tree;
pub mod usage;
pub mod user;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

pub use changes::Change;
pub use create::valid_name;
pub use observe::{ContainerSummary, LogOptions, Sample, TopTable};
pub use record::{Record, State};

use crate::error::{Error, Result};
use crate::events::Events;
use crate::image::ImageService;
use crate::network::Networks;
use crate::util::gate::Gate;
use crate::util::trash::Trash;
use crate::volume::Volumes;

/// Waits for child `pid` and returns its exit code as Docker reports it
/// (128 + the signal for a killed process, 255 when it cannot be waited
/// for).
pub fn wait_exit_code(pid: i32) -> i32 {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => return 128 + sig as i32,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 255,
        }
    }
}

/// The engine error for a container or exec process that failed to start,
/// from the runtime's report of it: [`Error::CommandNotFound`] when the
/// command does not exist (Docker's 127), [`Error::CommandCannotRun`] when
/// it is a directory or not executable (Docker's 126), each with the one
/// sentence [`command`] wrote (`exec: "X": …`), else
/// [`Error::FailedPrecondition`]. The runtime (libcontainer, in the
/// container's init) reports these only as text across a process
/// boundary, so this is the one place that reads it.
pub fn start_failure(text: String) -> Error {
    match command::sentence_in(&text) {
        Some(s) if command::is_missing(s) => Error::CommandNotFound(s.to_string()),
        Some(s) => Error::CommandCannotRun(s.to_string()),
        None => Error::FailedPrecondition(text),
    }
}

/// Brings a record read from `path` to [`record::RECORD_VERSION`],
/// rewriting the file (atomically) when it was older.
fn upgrade(path: &Path, mut record: Record) -> Result<Record> {
    if record.version < record::RECORD_VERSION {
        // Version 0 stored the API's creation request, whose JSON is the
        // shape of [`config::ContainerConfig`]: only the version changes.
        record.version = record::RECORD_VERSION;
        protocol::write_json_durable(path, &record)
            .map_err(|e| Error::io(format!("upgrading {}", path.display()), e))?;
        tracing::info!("upgraded {} to format {}", path.display(), record.version);
    }
    Ok(record)
}

/// One container in memory.
pub struct Entry {
    record: Mutex<Record>,
    /// Bumped on every state change, for `wait`, `logs -f` and stop.
    changed: watch::Sender<u64>,
    /// Serializes lifecycle operations on this container.
    busy: tokio::sync::Mutex<()>,
}

impl Entry {
    /// A copy of the record.
    pub fn record(&self) -> Record {
        self.record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The container engine.
pub struct Containers {
    dir: PathBuf,
    state_root: PathBuf,
    sockets: PathBuf,
    /// Removed containers' directories go here, deleted in the background.
    trash: Trash,
    /// The init layer every container's root has (see
    /// [`start::make_init_layer`]).
    init_layer: PathBuf,
    images: Arc<ImageService>,
    networks: Arc<Networks>,
    volumes: Arc<Volumes>,
    events: Events,
    table: Mutex<BTreeMap<String, Arc<Entry>>>,
    /// Exec sessions, running and recently ended.
    execs: execs::ExecTable,
    /// True once networks are reconciled with the records; starts wait for
    /// it (in the VM it waits for PID 1 to load the network modules).
    ready: watch::Sender<bool>,
}

impl Containers {
    /// Opens the containers under `root`, finds running ones again, and
    /// applies restart policies to those that stopped while the agent was
    /// away. Networks are reconciled with the records once `modules_ready`
    /// opens (in the VM, when PID 1 has loaded the network modules); starts
    /// wait for that.
    pub async fn open(
        root: &Path,
        images: Arc<ImageService>,
        networks: Arc<Networks>,
        volumes: Arc<Volumes>,
        modules_ready: Gate,
    ) -> Result<Arc<Containers>> {
        let me = Arc::new(Containers {
            dir: root.join("containers"),
            state_root: root.join("rt"),
            sockets: root.join("m"),
            trash: Trash::open(&root.join("trash"))
                .map_err(|e| Error::io(format!("opening {}", root.join("trash").display()), e))?,
            init_layer: root.join("init-layer"),
            events: images.events.clone(),
            images,
            networks,
            volumes,
            table: Mutex::new(BTreeMap::new()),
            execs: Default::default(),
            ready: watch::channel(false).0,
        });
        for d in [&me.dir, &me.state_root, &me.sockets] {
            std::fs::create_dir_all(d)
                .map_err(|e| Error::io(format!("creating {}", d.display()), e))?;
        }
        start::make_init_layer(&me.init_layer)?;
        // Every process an earlier agent started here, before anything
        // is decided about the records (see [`adopt`]).
        let mut processes = adopt::scan(&me.dir);
        let mut found = Vec::new();
        if let Ok(rd) = std::fs::read_dir(&me.dir) {
            for ent in rd.flatten() {
                let path = ent.path().join("container.json");
                let id = ent.file_name().to_string_lossy().to_string();
                // A container skipped here is not this agent's to stop.
                let procs = processes.remove(&id).unwrap_or_default();
                match protocol::read_json::<Record>(&path) {
                    Ok(record) if record.version > record::RECORD_VERSION => tracing::warn!(
                        "skipping {}: it was written by a newer agent (format {})",
                        path.display(),
                        record.version
                    ),
                    Ok(record) => {
                        if procs != adopt::Found::default() {
                            processes.insert(id, procs);
                        }
                        found.push(upgrade(&path, record)?)
                    }
                    Err(_) if !path.exists() => {
                        // A create (or removal) that never finished.
                        me.stop_orphan(&id, &procs);
                        let _ = std::fs::remove_dir_all(ent.path());
                    }
                    Err(e) => tracing::warn!("skipping {}: {e}", path.display()),
                }
            }
        }
        for record in found {
            me.images.hold(&record.image_id, &record.id);
            me.insert(record);
        }
        let cut = me.settle(&processes);
        me.recover().await;
        me.remove_cut(cut);
        // Serving need not wait for the reconcile: starts do.
        let reconciling = me.clone();
        tokio::spawn(async move {
            modules_ready.wait().await;
            reconciling
                .networks
                .reconcile(&reconciling.running_members())
                .await;
            reconciling.ready.send_replace(true);
        });
        Ok(me)
    }

    /// Waits until the networks are reconciled after the agent started.
    pub async fn wait_ready(&self) {
        let mut ready = self.ready.subscribe();
        let _ = ready.wait_for(|r| *r).await;
    }

    fn insert(&self, record: Record) -> Arc<Entry> {
        let id = record.id.clone();
        let entry = Arc::new(Entry {
            record: Mutex::new(record),
            changed: watch::channel(0).0,
            busy: tokio::sync::Mutex::new(()),
        });
        self.table().insert(id, entry.clone());
        entry
    }

    fn table(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Entry>>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Finds a container by full id, unique id prefix, or name.
    pub fn find(&self, input: &str) -> Result<Arc<Entry>> {
        let table = self.table();
        let name = input.strip_prefix('/').unwrap_or(input);
        if let Some(e) = table.get(input) {
            return Ok(e.clone());
        }
        if let Some(e) = table.values().find(|e| e.record().name == name) {
            return Ok(e.clone());
        }
        let hits: Vec<&Arc<Entry>> = if input.is_empty() {
            Vec::new()
        } else {
            table
                .iter()
                .filter(|(id, _)| id.starts_with(input))
                .map(|(_, e)| e)
                .collect()
        };
        match hits.len() {
            1 => Ok(hits[0].clone()),
            0 => Err(Error::no_container(format!(
                "no such container: {input}; `berth ps -a` lists them"
            ))),
            _ => Err(Error::InvalidArgument(format!(
                "{input} matches several containers: give more of the id"
            ))),
        }
    }

    /// Every container.
    pub fn all(&self) -> Vec<Arc<Entry>> {
        self.table().values().cloned().collect()
    }

    /// The directory of container `id`.
    pub fn dir_of(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    fn socket_of(&self, id: &str) -> PathBuf {
        self.sockets.join(&id[..12])
    }

    /// The container's json-file log.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir_of(id).join(format!("{id}-json.log"))
    }

    /// Changes a record, saves it, and wakes whoever waits on it.
    fn update(&self, entry: &Entry, change: impl FnOnce(&mut Record)) -> Result<Record> {
        let record = {
            let mut r = entry.record.lock().unwrap_or_else(|e| e.into_inner());
            change(&mut r);
            r.clone()
        };
        protocol::write_json_atomic(&self.dir_of(&record.id).join("container.json"), &record)
            .map_err(|e| Error::io("saving the container's record", e))?;
        entry.changed.send_modify(|v| *v += 1);
        Ok(record)
    }

    /// Publishes a container event. As Docker's, its attributes are the
    /// container's labels (the image's with the user's over them), then
    /// its name, its image and `extra`.
    fn emit(&self, action: &str, record: &Record, extra: &[(&str, &str)]) {
        let attrs = self.event_attributes(record, extra);
        self.events.publish("container", action, &record.id, attrs);
    }

    /// A container event's attributes (see [`Containers::emit`]).
    fn event_attributes(
        &self,
        record: &Record,
        extra: &[(&str, &str)],
    ) -> std::collections::BTreeMap<String, String> {
        let mut attrs = self.labels_of(record);
        let own = [
            ("name", record.name.as_str()),
            ("image", record.image.as_str()),
        ];
        for (k, v) in own.iter().chain(extra).filter(|(_, v)| !v.is_empty()) {
            attrs.insert(k.to_string(), v.to_string());
        }
        attrs
    }

    /// The container's labels: its image's (while the image is there)
    /// with the user's over them.
    fn labels_of(&self, record: &Record) -> std::collections::BTreeMap<String, String> {
        let mut labels = self
            .image_config(&record.image_id)
            .ok()
            .and_then(|c| c.labels)
            .unwrap_or_default();
        labels.extend(record.config.labels.clone());
        labels
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// What the check in the container's init says about `command`, as
    /// the create helper reports it (its sentence at the end of
    /// libcontainer's chain).
    fn verdict(command: &str) -> Option<Error> {
        command::check(command, Some("/usr/bin:/bin")).err().map(|e| {
            start_failure(format!(
                "the container could not be created: failed to create container: exec process failed with error error in executing process : {e}"
            ))
        })
    }

    #[test]
    fn a_missing_command_is_command_not_found() {
        for command in ["/no/such/binary", "no-such-command-anywhere"] {
            let e = verdict(command).expect("refused");
            assert!(matches!(e, Error::CommandNotFound(_)), "{e:?}");
            assert!(
                e.to_string().starts_with(&format!("exec: \"{command}\": ")),
                "{e}"
            );
        }
    }

    #[test]
    fn a_directory_is_a_command_that_cannot_run() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let e = verdict(dir.path().to_str().expect("utf-8")).expect("refused");
        assert!(matches!(e, Error::CommandCannotRun(_)), "{e:?}");
        assert!(e.to_string().ends_with(": is a directory"), "{e}");
    }

    #[test]
    fn a_file_without_execute_permission_cannot_run() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let file = dir.path().join("script");
        std::fs::write(&file, "#!/bin/sh\n").expect("written");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let e = verdict(file.to_str().expect("utf-8")).expect("refused");
        assert!(matches!(e, Error::CommandCannotRun(_)), "{e:?}");
        assert!(e.to_string().ends_with(": permission denied"), "{e}");
    }

    #[test]
    fn an_existing_command_passes_and_other_failures_stay_preconditions() {
        assert!(verdict("sh").is_none());
        let e = start_failure("the container could not be created: mount failed: EPERM".into());
        assert!(matches!(e, Error::FailedPrecondition(_)), "{e:?}");
    }

    #[test]
    fn exec_failures_are_read_from_execvp_errno() {
        let e = start_failure(command::exec_failed("/x", nix::errno::Errno::ENOENT));
        assert!(matches!(e, Error::CommandNotFound(_)), "{e:?}");
        let e = start_failure(command::exec_failed("/x", nix::errno::Errno::EACCES));
        assert!(matches!(e, Error::CommandCannotRun(_)), "{e:?}");
    }
}
