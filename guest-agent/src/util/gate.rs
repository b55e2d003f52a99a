//! Readiness gates: something the engine must wait for before some work
//! (in the VM, PID 1 loading the network's kernel modules before a pull or
//! a container's network), handed to the engine by whoever starts it, so
//! the engine never asks `init` itself.

use tokio::sync::watch;

/// A gate the engine waits at. Clones share it. The default gate is open.
#[derive(Debug, Clone, Default)]
pub struct Gate(Option<watch::Receiver<bool>>);

/// Opens its gate (dropping it without opening opens it too: nobody is
/// left to wait for).
#[derive(Debug)]
pub struct Opener(watch::Sender<bool>);

impl Gate {
    /// A gate that never makes anyone wait.
    pub fn open() -> Gate {
        Gate(None)
    }

    /// A closed gate and what opens it.
    pub fn closed() -> (Opener, Gate) {
        let (tx, rx) = watch::channel(false);
        (Opener(tx), Gate(Some(rx)))
    }

    /// Waits until the gate is open.
    pub async fn wait(&self) {
        if let Some(rx) = &self.0 {
            let mut rx = rx.clone();
            let _ = rx.wait_for(|open| *open).await;
        }
    }

    /// True when waiting would return at once.
    pub fn is_open(&self) -> bool {
        self.0.as_ref().is_none_or(|rx| *rx.borrow())
    }
}

impl Opener {
    /// Opens the gate for every waiter, now and later.
    pub fn open(self) {
        self.0.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_pass_once_the_gate_opens() {
        let (opener, gate) = Gate::closed();
        assert!(!gate.is_open());
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.wait().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        opener.open();
        waiter.await.expect("the waiter ends");
        assert!(gate.is_open());
        Gate::open().wait().await;
    }

    #[tokio::test]
    async fn a_dropped_opener_lets_waiters_through() {
        let (opener, gate) = Gate::closed();
        drop(opener);
        gate.wait().await;
    }
}
