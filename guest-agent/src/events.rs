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
    /// Publishes an event; attributes with empty values are left out.
    pub fn emit(&self, kind: &'static str, action: &str, id: &str, attributes: &[(&str, &str)]) {
        let attributes = attributes
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.publish(kind, action, id, attributes);
    }

    /// Publishes an event with exactly these attributes.
    pub fn publish(
        &self,
        kind: &'static str,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
    ) {
        let event = Event {
            kind,
            action: action.into(),
            id: id.into(),
            attributes,
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

/// Docker-style filters: a key ("type", "event", "container") and the
/// values any of which passes.
pub type Filters = std::collections::HashMap<String, Vec<String>>;

/// True when `ev` passes `filters` (type, event, container).
pub fn wanted(filters: &Filters, ev: &Event) -> bool {
    let any = |key: &str, value: &str| {
        filters
            .get(key)
            .is_none_or(|l| l.iter().any(|v| v == value))
    };
    // As Docker: a container filter leaves out every event not of a
    // matching container.
    let container = filters.get("container").is_none_or(|l| {
        ev.kind == "container"
            && l.iter()
                .any(|v| ev.id.starts_with(v.as_str()) || ev.attributes.get("name") == Some(v))
    });
    any("type", ev.kind) && any("event", &ev.action) && container
}

impl Events {
    /// The events `filters` pass: with `since` or `until`, the kept ones
    /// first (from the oldest when only `until` is given, as Docker), then
    /// new ones as they happen, until `until` or until the receiver is
    /// dropped.
    pub fn stream(
        &self,
        filters: Filters,
        since: Option<SystemTime>,
        until: Option<SystemTime>,
    ) -> tokio::sync::mpsc::Receiver<Event> {
        let from = since.or(until.map(|_| std::time::UNIX_EPOCH));
        let (replay, mut rx) = self.subscribe(from);
        let (tx, out) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let after_until = |t: SystemTime| until.is_some_and(|u| t > u);
            let send = |ev: Event| {
                let tx = tx.clone();
                let pass = wanted(&filters, &ev);
                async move { !pass || tx.send(ev).await.is_ok() }
            };
            for ev in replay {
                if after_until(ev.time) || !send(ev).await {
                    return;
                }
            }
            let deadline = until.map(|u| {
                let left = u.duration_since(SystemTime::now()).unwrap_or_default();
                tokio::time::Instant::now() + left
            });
            loop {
                let next = match deadline {
                    Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                        Ok(r) => r,
                        Err(_) => return,
                    },
                    None => rx.recv().await,
                };
                match next {
                    Ok(ev) if after_until(ev.time) => return,
                    Ok(ev) => {
                        if !send(ev).await {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                }
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn filters(pairs: &[(&str, &[&str])]) -> Filters {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn event(kind: &'static str, action: &str, id: &str, name: &str) -> Event {
        Event {
            kind,
            action: action.into(),
            id: id.into(),
            attributes: [("name".to_string(), name.to_string())].into(),
            time: SystemTime::now(),
        }
    }

    #[test]
    fn filters_by_type_event_and_container() {
        let start = event("container", "start", "abc123", "web");
        let pull = event("image", "pull", "sha256:1", "busybox");
        assert!(wanted(&Filters::new(), &start));
        assert!(wanted(&filters(&[("type", &["container"])]), &start));
        assert!(!wanted(&filters(&[("type", &["container"])]), &pull));
        assert!(wanted(&filters(&[("event", &["die", "start"])]), &start));
        assert!(!wanted(&filters(&[("event", &["die"])]), &start));
        // By name or id prefix; and a container filter drops image events.
        assert!(wanted(&filters(&[("container", &["web"])]), &start));
        assert!(wanted(&filters(&[("container", &["abc"])]), &start));
        assert!(!wanted(&filters(&[("container", &["db"])]), &start));
        assert!(!wanted(&filters(&[("container", &["busybox"])]), &pull));
    }

    #[tokio::test]
    async fn replays_kept_events_then_streams_until_the_bound() {
        let events = Events::default();
        let before = SystemTime::now() - Duration::from_secs(1);
        events.emit("container", "create", "c1", &[("name", "a")]);
        events.emit("image", "pull", "i1", &[]);
        // No bound: only new events, filtered.
        let mut live = events.stream(filters(&[("type", &["container"])]), None, None);
        // --since: the kept ones first.
        let mut replayed = events.stream(Filters::new(), Some(before), None);
        events.emit("image", "tag", "i1", &[]);
        events.emit("container", "start", "c1", &[("name", "a")]);
        assert_eq!(live.recv().await.map(|e| e.action), Some("start".into()));
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(replayed.recv().await.map(|e| e.action).unwrap_or_default());
        }
        assert_eq!(seen, ["create", "pull", "tag", "start"]);
        // --until in the past: the kept events up to it, then the end.
        let mut bounded = events.stream(Filters::new(), None, Some(SystemTime::now()));
        let mut n = 0;
        while bounded.recv().await.is_some() {
            n += 1;
        }
        assert_eq!(n, 4);
    }
}
