//! The engine's event bus: what happens to images and containers, for the
//! Events stream (`berth events`).

use std::collections::BTreeMap;
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

/// A sender of events; a bus with no subscriber drops them.
#[derive(Debug, Clone)]
pub struct Events(broadcast::Sender<Event>);

impl Default for Events {
    fn default() -> Self {
        Events(broadcast::channel(1024).0)
    }
}

impl Events {
    /// Publishes an event.
    pub fn emit(&self, kind: &'static str, action: &str, id: &str, attributes: &[(&str, &str)]) {
        let _ = self.0.send(Event {
            kind,
            action: action.into(),
            id: id.into(),
            attributes: attributes
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            time: SystemTime::now(),
        });
    }

    /// A receiver of every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.0.subscribe()
    }
}
