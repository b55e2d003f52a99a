//! The engine's event bus: what happens to images and containers, for the
//! Events stream (`berth events`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::broadcast;

/// Something that happened.
#[derive(Debug, Clone)]
pub struct Event {
    /// "image" or "container".
    pub kind: &'static str,
    /// "pull", "tag", "delete", "create", "start", "die", "oom", ...
    pub action: String,
    /// The object's id.
    pub id: String,
    /// Details ("name", "image", "exitCode", "signal", ...).
    pub attributes: BTreeMap<String, String>,
    /// When.
    pub time: SystemTime,
}

/// How many past events are kept for `events --since`, as Docker keeps.
pub const HISTORY: usize = 256;

/// A sender of events; keeps the last [`HISTORY`] of them.
#[derive(Debug, Clone)]
pub struct Events {
    live: broadcast::Sender<Event>,
    past: Arc<Mutex<VecDeque<Event>>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            live: broadcast::channel(1024).0,
            past: Arc::default(),
        }
    }
}

impl Events {
    /// Publishes an event.
    pub fn emit(&self, kind: &'static str, action: &str, id: &str, attributes: &[(&str, &str)]) {
        let event = Event {
            kind,
            action: action.into(),
            id: id.into(),
            attributes: attributes
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            time: SystemTime::now(),
        };
        // Recorded and sent under one lock, so a subscriber sees each
        // event once: in the history it copies or from its receiver.
        let mut past = self.past.lock().unwrap_or_else(|e| e.into_inner());
        if past.len() == HISTORY {
            past.pop_front();
        }
        past.push_back(event.clone());
        let _ = self.live.send(event);
    }

    /// The kept events at or after `since` (none without it), and a
    /// receiver of every event after them.
    pub fn subscribe(&self, since: Option<SystemTime>) -> (Vec<Event>, broadcast::Receiver<Event>) {
        let past = self.past.lock().unwrap_or_else(|e| e.into_inner());
        let replay = match since {
            Some(t) => past.iter().filter(|e| e.time >= t).cloned().collect(),
            None => Vec::new(),
        };
        (replay, self.live.subscribe())
    }
}
