//! Replays run on a few threads of their own, so that a branch switch's
//! thousand events do not wait for each other's 9p round trips one by one:
//! the events about one path all go to the same thread, in the order they
//! came, so a file's creation is always replayed before its removal. (A
//! new folder's files may be replayed before it: no watcher watches it
//! before it is announced anyway.)

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::mpsc::{channel, Sender};
use std::sync::OnceLock;

use super::replay::{replay as replay_now, Event, Kind};
use super::{check_inside, MountedShare};
use crate::error::{Error, Result};

/// How many replays may be under way at once.
pub const WORKERS: usize = 6;

type Job = (Vec<MountedShare>, Event);

static QUEUES: OnceLock<Vec<Sender<Job>>> = OnceLock::new();

fn queues() -> &'static [Sender<Job>] {
    QUEUES.get_or_init(|| {
        (0..WORKERS)
            .filter_map(|i| {
                let (tx, rx) = channel::<Job>();
                std::thread::Builder::new()
                    .name(format!("replay-{i}"))
                    .spawn(move || {
                        for (shares, ev) in rx {
                            if let Err(e) = replay_now(&shares, &ev) {
                                tracing::debug!("file event not replayed: {e}");
                            }
                        }
                    })
                    .ok()
                    .map(|_| tx)
            })
            .collect()
    })
}

/// Checks one host event and queues its replay (see [`super::replay`]):
/// a path outside the shares is refused here; a replay that finds the
/// host changed the path again meanwhile does nothing, as before. The
/// host's naming of an aside folder takes effect at once.
pub fn replay(shares: &[MountedShare], ev: &Event) -> Result<()> {
    check_inside(shares, &ev.path)?;
    if let Some(to) = &ev.to {
        check_inside(shares, to)?;
    }
    let queues = queues();
    if ev.kind == Kind::Scratch || queues.is_empty() {
        return replay_now(shares, ev);
    }
    let mut h = DefaultHasher::new();
    ev.path.hash(&mut h);
    queues[h.finish() as usize % queues.len()]
        .send((shares.to_vec(), ev.clone()))
        .map_err(|_| Error::Internal("the replay threads stopped".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_path_outside_the_shares_is_refused_before_it_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let shares = vec![MountedShare {
            tag: "t".into(),
            path: dir.path().to_path_buf(),
            read_only: false,
            virtiofs: false,
        }];
        let ev = |p: &str| Event {
            kind: Kind::Delete,
            path: Path::new(p).to_path_buf(),
            to: None,
            is_dir: false,
            seen: None,
        };
        assert!(replay(&shares, &ev("/etc/passwd")).is_err());
        let inside = dir.path().join("gone");
        assert!(replay(&shares, &ev(inside.to_str().unwrap())).is_ok());
    }
}
