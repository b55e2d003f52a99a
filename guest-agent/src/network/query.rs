//! Reading networks for clients: the list's filters, `prune`'s choice, and
//! the published ports as they change.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::{ports, NetworkRecord, Networks, Published};

impl Networks {
    /// Every change to the published ports from now on, starting with all
    /// of them as added: `(added, container id, port)`. The list changes
    /// only when a container starts or stops, so it is read again on
    /// container events only.
    pub fn watch_published(
        self: &Arc<Self>,
    ) -> tokio::sync::mpsc::Receiver<(bool, String, Published)> {
        let me = self.clone();
        let (_, mut events) = self.events.subscribe(None);
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            let mut known = Vec::new();
            loop {
                let now = me.published();
                for change in ports::changes(&known, &now) {
                    if tx.send(change).await.is_err() {
                        return;
                    }
                }
                known = now;
                loop {
                    match events.recv().await {
                        Ok(ev) if ev.kind == "container" => break,
                        Ok(_) => {}
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                        Err(_) => return,
                    }
                }
            }
        });
        rx
    }
}

/// Docker's network filters: `name` (substring), `id` (prefix), `driver`;
/// every key must pass, any of its values.
pub fn network_wanted(filters: &HashMap<String, Vec<String>>, n: &NetworkRecord) -> bool {
    let test = |key: &str, ok: &dyn Fn(&str) -> bool| {
        filters.get(key).is_none_or(|l| l.iter().any(|v| ok(v)))
    };
    test("name", &|v| n.name.contains(v))
        && test("id", &|v| n.id.starts_with(v))
        && test("driver", &|v| n.driver == v)
}

/// True for a network `prune` removes: a user network no container uses.
pub fn network_prunable(n: &NetworkRecord, in_use: &BTreeSet<String>) -> bool {
    !n.builtin() && !in_use.contains(&n.id)
}

impl Networks {
    /// The networks `filters` pass (see [`network_wanted`]).
    pub fn list_filtered(&self, filters: &HashMap<String, Vec<String>>) -> Vec<NetworkRecord> {
        self.list()
            .into_iter()
            .filter(|n| network_wanted(filters, n))
            .collect()
    }

    /// Removes every network [`network_prunable`] says may go; returns
    /// their names.
    pub fn prune(&self, in_use: &BTreeSet<String>) -> Vec<String> {
        self.list()
            .into_iter()
            .filter(|n| network_prunable(n, in_use) && self.remove(&n.id).is_ok())
            .map(|n| n.name)
            .collect()
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    fn net(name: &str, id: &str) -> NetworkRecord {
        NetworkRecord {
            version: crate::network::NETWORK_RECORD_VERSION,
            id: id.into(),
            name: name.into(),
            driver: "bridge".into(),
            created: chrono::Utc::now(),
            internal: false,
            subnet: String::new(),
            gateway: String::new(),
            bridge: String::new(),
            labels: Default::default(),
            options: Default::default(),
            endpoints: Default::default(),
        }
    }

    use crate::util::filters as f;

    #[test]
    fn network_filters_and_prune_selection() {
        let n = net("front-net", "abc123");
        assert!(network_wanted(&f(&[]), &n));
        assert!(network_wanted(&f(&[("name", &["front"])]), &n));
        assert!(network_wanted(
            &f(&[("id", &["abc"]), ("driver", &["bridge"])]),
            &n
        ));
        assert!(!network_wanted(&f(&[("driver", &["host"])]), &n));
        assert!(!network_wanted(&f(&[("id", &["123"])]), &n));
        let used: BTreeSet<String> = ["abc123".to_string()].into();
        assert!(!network_prunable(&n, &used));
        assert!(network_prunable(&n, &Default::default()));
        assert!(!network_prunable(&net("bridge", "x"), &Default::default()));
    }
}
