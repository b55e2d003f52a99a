//! Host file events for shared folders: watched with `notify`, batched for
//! a few milliseconds, turned into changes by comparing each path's state
//! with what was last sent, and streamed to the agent (Files.Notify), which
//! replays them so inotify watchers in containers fire.
//!
//! Comparing states rather than forwarding raw events is what stops echoes:
//! the agent's replays touch the files through the share, and the host sees
//! those touches, but they leave size, time and existence as they were, so
//! nothing new is sent.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use berth_api::v1::{self as pb, files_client::FilesClient};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// The directory (at each share's root) where the agent puts a second name
/// of a file for a moment while it replays; nothing under it is forwarded.
pub use berth_api::FILE_REPLAY_DIR as ASIDE_DIR;

/// How long the folders must be quiet before a batch of events is
/// compared and sent.
pub const BATCH: Duration = Duration::from_millis(10);

/// The longest a batch waits for quiet.
pub const MAX_BATCH: Duration = Duration::from_millis(250);

/// A path's state as last seen or sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not there.
    Absent,
    /// A directory.
    Dir,
    /// A file (or link) with this size and modification time.
    File {
        /// Bytes.
        size: u64,
        /// Modification time in nanoseconds since the epoch.
        mtime_ns: i128,
    },
}

impl Seen {
    /// The state of `path` now.
    pub fn of(path: &Path) -> Seen {
        match std::fs::symlink_metadata(path) {
            Err(_) => Seen::Absent,
            Ok(m) if m.is_dir() => Seen::Dir,
            Ok(m) => Seen::File {
                size: m.len(),
                mtime_ns: m.modified().map(epoch_ns).unwrap_or(0),
            },
        }
    }
}

/// Nanoseconds between the epoch and `t` (negative before it): the same
/// figure as `st_mtime`/`st_mtime_nsec` on Unix, and portable to Windows.
fn epoch_ns(t: std::time::SystemTime) -> i128 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// What the host's watcher reported, reduced to what matters here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    /// Something at this path was created, changed or removed.
    Touched(PathBuf, HintKind),
    /// A move, both ends known.
    Renamed(PathBuf, PathBuf),
}

/// The watcher's word for a touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HintKind {
    /// Created.
    Create,
    /// Content or metadata changed.
    Modify,
    /// Removed.
    Remove,
}

/// Remembers what was sent for each path and decides what a batch of
/// hints means.
#[derive(Debug, Default)]
pub struct Tracker {
    sent: HashMap<PathBuf, Seen>,
}

/// An event about `path`, carrying the state it is about (for a delete,
/// the state before).
fn event(kind: &str, path: &Path, to: Option<&Path>, seen: Seen) -> pb::FileEvent {
    let (size, mtime_ns) = match seen {
        Seen::File { size, mtime_ns } => (size, mtime_ns as i64),
        _ => (0, 0),
    };
    pb::FileEvent {
        kind: kind.into(),
        path: path.display().to_string(),
        to_path: to.map(|t| t.display().to_string()).unwrap_or_default(),
        is_dir: seen == Seen::Dir,
        size,
        mtime_ns,
    }
}

impl Tracker {
    /// Turns one batch of hints into the events to send, in order; `state`
    /// says what a path is now (the file system, or a test's table).
    pub fn decide(&mut self, hints: &[Hint], state: &dyn Fn(&Path) -> Seen) -> Vec<pb::FileEvent> {
        let mut out = Vec::new();
        let mut done: Vec<PathBuf> = Vec::new();
        for hint in hints {
            match hint {
                Hint::Renamed(from, to) => {
                    let (f, t) = (state(from), state(to));
                    let was = self.sent.get(from).copied();
                    if f == Seen::Absent
                        && t != Seen::Absent
                        && was.is_some_and(|w| w != Seen::Absent)
                        && self.sent.get(to).copied().unwrap_or(Seen::Absent) == Seen::Absent
                    {
                        out.push(event("rename", from, Some(to), t));
                        self.sent.insert(from.clone(), Seen::Absent);
                        self.sent.insert(to.clone(), t);
                        done.push(from.clone());
                        done.push(to.clone());
                    } else {
                        for p in [from, to] {
                            if !done.contains(p) {
                                out.extend(self.one(p, HintKind::Modify, state(p)));
                                done.push(p.clone());
                            }
                        }
                    }
                }
                Hint::Touched(p, kind) => {
                    if !done.contains(p) {
                        out.extend(self.one(p, *kind, state(p)));
                        done.push(p.clone());
                    }
                }
            }
        }
        out
    }

    fn one(&mut self, path: &Path, hint: HintKind, now: Seen) -> Option<pb::FileEvent> {
        let before = self.sent.get(path).copied();
        self.sent.insert(path.to_path_buf(), now);
        match (before, now) {
            (Some(Seen::Absent), Seen::Absent) => None,
            (None, Seen::Absent) => {
                (hint == HintKind::Remove).then(|| event("delete", path, None, Seen::Absent))
            }
            (Some(b), Seen::Absent) => Some(event("delete", path, None, b)),
            (Some(Seen::Absent), n) => Some(event("create", path, None, n)),
            (None, n) => match hint {
                HintKind::Create => Some(event("create", path, None, n)),
                HintKind::Modify if n != Seen::Dir => Some(event("modify", path, None, n)),
                _ => None,
            },
            (Some(b), n) if b == n => None,
            (Some(_), Seen::Dir) => None,
            (Some(_), n) => Some(event("modify", path, None, n)),
        }
    }
}

/// Turns one `notify` event into hints, leaving out the agent's aside
/// names and anything under `ignore`.
pub fn hints_of(ev: &notify::Event, ignore: &[PathBuf]) -> Vec<Hint> {
    let keep = |p: &PathBuf| {
        !p.components().any(|c| c.as_os_str() == ASIDE_DIR)
            && !ignore.iter().any(|i| p.starts_with(i))
    };
    use notify::event::{ModifyKind, RenameMode};
    match ev.kind {
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if ev.paths.len() == 2 => {
            match (keep(&ev.paths[0]), keep(&ev.paths[1])) {
                (true, true) => vec![Hint::Renamed(ev.paths[0].clone(), ev.paths[1].clone())],
                (true, false) => vec![Hint::Touched(ev.paths[0].clone(), HintKind::Remove)],
                (false, true) => vec![Hint::Touched(ev.paths[1].clone(), HintKind::Create)],
                (false, false) => vec![],
            }
        }
        _ => {
            let kind = match ev.kind {
                EventKind::Create(_) => HintKind::Create,
                EventKind::Remove(_) => HintKind::Remove,
                EventKind::Modify(_) => HintKind::Modify,
                _ => return vec![],
            };
            ev.paths
                .iter()
                .filter(|p| keep(p))
                .map(|p| Hint::Touched(p.clone(), kind))
                .collect()
        }
    }
}

/// Watches `folders` and streams their changes to the agent on `channel`
/// until the watcher or the agent goes away.
pub async fn forward_file_events(
    channel: Channel,
    folders: Vec<PathBuf>,
    ignore: Vec<PathBuf>,
) -> Result<()> {
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<notify::Event>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            let _ = raw_tx.send(ev);
        }
    })?;
    for f in &folders {
        if let Err(e) = watcher.watch(f, RecursiveMode::Recursive) {
            tracing::warn!("cannot watch {} for changes: {e}", f.display());
        }
    }
    let (tx, rx) = mpsc::channel::<pb::FileEvent>(1024);
    let mut client = FilesClient::new(channel);
    let call = tokio::spawn(async move {
        client
            .notify(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    let mut tracker = Tracker::default();
    while let Some(first) = raw_rx.recv().await {
        // A batch ends once the folders have been quiet for BATCH (or after
        // MAX_BATCH): a file still being written is sent once, as it ends.
        let mut hints = hints_of(&first, &ignore);
        let started = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(BATCH).await;
            let mut more = false;
            while let Ok(ev) = raw_rx.try_recv() {
                hints.extend(hints_of(&ev, &ignore));
                more = true;
            }
            if !more || started.elapsed() >= MAX_BATCH {
                break;
            }
        }
        for ev in tracker.decide(&hints, &Seen::of) {
            if tx.send(ev).await.is_err() {
                drop(watcher);
                let _ = call.await;
                anyhow::bail!("the agent stopped taking file events");
            }
        }
    }
    drop(tx);
    let _ = call.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn kinds(evs: &[pb::FileEvent]) -> Vec<String> {
        evs.iter()
            .map(|e| format!("{} {}", e.kind, e.path))
            .collect()
    }

    #[test]
    fn sends_changes_once_and_ignores_replay_echoes() {
        let fs: RefCell<HashMap<PathBuf, Seen>> = RefCell::new(HashMap::new());
        let state = |p: &Path| fs.borrow().get(p).copied().unwrap_or(Seen::Absent);
        let a = PathBuf::from("/s/a");
        let b = PathBuf::from("/s/b");
        let mut t = Tracker::default();
        let touch = |p: &PathBuf, k| Hint::Touched(p.clone(), k);

        fs.borrow_mut().insert(
            a.clone(),
            Seen::File {
                size: 0,
                mtime_ns: 1,
            },
        );
        let out = t.decide(&[touch(&a, HintKind::Create)], &state);
        assert_eq!(kinds(&out), vec!["create /s/a"]);
        // The agent's replay of that create echoes as create/modify: same state.
        assert!(t
            .decide(
                &[touch(&a, HintKind::Create), touch(&a, HintKind::Modify)],
                &state
            )
            .is_empty());

        fs.borrow_mut().insert(
            a.clone(),
            Seen::File {
                size: 5,
                mtime_ns: 2,
            },
        );
        assert_eq!(
            kinds(&t.decide(&[touch(&a, HintKind::Modify)], &state)),
            vec!["modify /s/a"]
        );
        assert!(t.decide(&[touch(&a, HintKind::Modify)], &state).is_empty());

        fs.borrow_mut().remove(&a);
        fs.borrow_mut().insert(
            b.clone(),
            Seen::File {
                size: 5,
                mtime_ns: 2,
            },
        );
        assert_eq!(
            kinds(&t.decide(&[Hint::Renamed(a.clone(), b.clone())], &state)),
            vec!["rename /s/a"]
        );
        // The replay renames b→a→b: both ends end as they were.
        assert!(t
            .decide(
                &[
                    Hint::Renamed(b.clone(), a.clone()),
                    Hint::Renamed(a.clone(), b.clone())
                ],
                &state
            )
            .is_empty());

        fs.borrow_mut().remove(&b);
        assert_eq!(
            kinds(&t.decide(&[touch(&b, HintKind::Remove)], &state)),
            vec!["delete /s/b"]
        );
        // The replay of a delete creates and removes the name: absent after.
        assert!(t
            .decide(
                &[touch(&b, HintKind::Create), touch(&b, HintKind::Remove)],
                &state
            )
            .is_empty());
    }

    #[test]
    fn leaves_out_aside_names_and_ignored_folders() {
        let ev = notify::Event::new(EventKind::Create(notify::event::CreateKind::File))
            .add_path("/s/.berth-replay/1-0".into())
            .add_path("/s/vm/console.log".into())
            .add_path("/s/real".into());
        let hints = hints_of(&ev, &[PathBuf::from("/s/vm")]);
        assert_eq!(
            hints,
            vec![Hint::Touched("/s/real".into(), HintKind::Create)]
        );
    }
}
