//! The exec sessions the engine remembers, as Docker's daemon does: a
//! container's running ones are its `ExecIDs` in `inspect`; an ended one
//! keeps its exit code (for Docker's exec inspect) for
//! [`KEEP_ENDED`], and its end is an `exec_die` event with the code.
//! Health checks are forgotten when they end, as Docker unregisters them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result, What};
use crate::events::Events;

/// How long an ended session stays inspectable (Docker's exec GC runs
/// every 5 minutes and removes what the previous run saw ended).
pub const KEEP_ENDED: Duration = Duration::from_secs(600);
/// The most ended sessions kept, whatever their age.
const MAX_ENDED: usize = 1024;

/// One exec session.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecState {
    /// The session's id.
    pub id: String,
    /// Its container's id.
    pub container_id: String,
    /// The command and its arguments.
    pub cmd: Vec<String>,
    /// With a terminal.
    pub tty: bool,
    /// With every capability.
    pub privileged: bool,
    /// The user it runs as (the container's when empty).
    pub user: String,
    /// True until it ends.
    pub running: bool,
    /// Its exit code once it ended.
    pub exit_code: Option<i32>,
    /// When it ended.
    pub ended: Option<Instant>,
}

/// The sessions, shared by the engine and the processes it started.
#[derive(Debug, Clone, Default)]
pub struct ExecTable {
    sessions: Arc<Mutex<BTreeMap<String, ExecState>>>,
}

impl ExecTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ExecState>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers a session that started (and drops old ended ones).
    pub fn started(&self, state: ExecState) {
        let mut t = self.lock();
        t.retain(|_, s| s.ended.is_none_or(|e| e.elapsed() < KEEP_ENDED));
        let ended = t.values().filter(|s| !s.running).count();
        if ended >= MAX_ENDED {
            let oldest = t
                .values()
                .filter(|s| !s.running)
                .min_by_key(|s| s.ended)
                .map(|s| s.id.clone());
            if let Some(id) = oldest {
                t.remove(&id);
            }
        }
        t.insert(state.id.clone(), state);
    }

    /// A session by id.
    pub fn get(&self, id: &str) -> Result<ExecState> {
        self.lock()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(What::Exec, format!("No such exec instance: {id}")))
    }

    /// The ids of container `container_id`'s running sessions.
    pub fn running_ids(&self, container_id: &str) -> Vec<String> {
        self.lock()
            .values()
            .filter(|s| s.running && s.container_id == container_id)
            .map(|s| s.id.clone())
            .collect()
    }
}

/// What a started exec process reports when it ends.
#[derive(Debug, Clone)]
pub struct ExecEnd {
    pub(super) table: ExecTable,
    pub(super) events: Events,
    pub(super) id: String,
    pub(super) container_id: String,
    /// The container's event attributes (labels, name, image).
    pub(super) attributes: std::collections::BTreeMap<String, String>,
}

impl ExecEnd {
    /// Records that the session ended with `code` (an `exec_die` event);
    /// with `forget`, it is dropped instead of kept for inspection.
    pub fn ended(&self, code: i32, forget: bool) {
        {
            let mut t = self.table.lock();
            if forget {
                t.remove(&self.id);
            } else if let Some(s) = t.get_mut(&self.id) {
                s.running = false;
                s.exit_code = Some(code);
                s.ended = Some(Instant::now());
            }
        }
        let mut attributes = self.attributes.clone();
        attributes.insert("execID".into(), self.id.clone());
        attributes.insert("exitCode".into(), code.to_string());
        self.events
            .publish("container", "exec_die", &self.container_id, attributes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(id: &str, container: &str) -> ExecState {
        ExecState {
            id: id.into(),
            container_id: container.into(),
            cmd: vec!["true".into()],
            tty: false,
            privileged: false,
            user: String::new(),
            running: true,
            exit_code: None,
            ended: None,
        }
    }

    #[test]
    fn running_sessions_are_listed_and_ended_ones_keep_their_code() {
        let table = ExecTable::default();
        table.started(state("e1", "c1"));
        table.started(state("e2", "c1"));
        table.started(state("e3", "c2"));
        assert_eq!(table.running_ids("c1"), ["e1", "e2"]);
        let end = |id: &str| ExecEnd {
            table: table.clone(),
            events: Events::default(),
            id: id.into(),
            container_id: "c1".into(),
            attributes: [("name".to_string(), "n".to_string())].into(),
        };
        end("e1").ended(3, false);
        end("e2").ended(0, true);
        assert!(table.running_ids("c1").is_empty());
        let e1 = table.get("e1").expect("kept");
        assert_eq!((e1.running, e1.exit_code), (false, Some(3)));
        assert!(matches!(
            table.get("e2"),
            Err(Error::NotFound(What::Exec, _))
        ));
    }
}
