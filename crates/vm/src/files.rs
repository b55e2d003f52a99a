//! Host file events for shared folders: watched with `notify`, batched for
//! a few milliseconds, turned into changes by comparing each path's state
//! with what was last sent, and streamed to the agent (Files.Notify), which
//! replays them so inotify watchers in containers fire.
//!
//! Comparing states rather than forwarding raw events is what stops echoes:
//! the agent's replays touch the files through the share, and the host sees
//! those touches, but they leave size, time and existence as they were, so
//! nothing new is sent. Each stream opens by naming, for a share that
//! holds Berth's state directory, the aside folder there that the agent's
//! replays use, so none of theirs shows in the user's folders.
//!
//! One echo needs more than a comparison: the guest kernel rounds the
//! times a replay puts back on a 9p file to whole seconds (9p leaves the
//! superblock's time granularity at a second, and `utimensat` truncates
//! to it), so a replayed file came back with its modification time cut to
//! the second — a change for the host (sent back, and replayed a second
//! time) and for the user's tools (a source older than the object built
//! from it). A file whose only change is that cut gets its exact time back
//! here, from what was sent ([`Tracker::take_repairs`]), and sends nothing.
//! The last few exact states sent are kept for this.
//!
//! A batch may also look while a replay is under way, and see one of two
//! passing states: a file of the same size with another time (the
//! replay's write, before it put the time back), or an empty file where a
//! removal was sent (the replay of a removal makes the name again for a
//! few milliseconds, longer while other replays hold the folder). When an
//! event for the path went out under [`ECHO_WINDOW`] ago (replays of a
//! burst run seconds behind), such a state is held back
//! ([`Tracker::take_later`]) and looked at again: unchanged at least
//! [`RECHECK`] later, it is the user's and is sent; gone, or cut to the
//! second, it was the replay's.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use berth_api::v1::{self as pb, files_client::FilesClient};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// The directory older agents made at each share's root for the second
/// name of a file they replay; nothing under it is forwarded, and an empty
/// one is removed. The agent's aside folder is now in Berth's own state
/// directory ([`scratch_events`]), which is never forwarded either.
pub use berth_api::FILE_REPLAY_DIR as ASIDE_DIR;

/// How long the folders must be quiet before a batch of events is
/// compared and sent.
pub const BATCH: Duration = Duration::from_millis(10);

/// The longest a batch waits for quiet.
pub const MAX_BATCH: Duration = Duration::from_millis(250);

/// How long after an event for a path went out a state of it may be a
/// replay's passing one (see the module doc).
pub const ECHO_WINDOW: Duration = Duration::from_secs(10);

/// How long a state held back as a possible echo must stay the same to be
/// the user's; and how often held paths are looked at again.
pub const RECHECK: Duration = Duration::from_millis(100);

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
#[derive(Debug)]
pub struct Tracker {
    sent: HashMap<PathBuf, Seen>,
    repairs: Vec<(PathBuf, i128)>,
    exact: HashMap<PathBuf, Vec<Seen>>,
    sent_at: HashMap<PathBuf, std::time::Instant>,
    /// The size of `sent_at` at which its old entries are dropped next.
    prune_at: usize,
    held: HashMap<PathBuf, (Seen, std::time::Instant)>,
    later: Vec<PathBuf>,
    echo_window: Duration,
    recheck: Duration,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            sent: HashMap::new(),
            repairs: Vec::new(),
            exact: HashMap::new(),
            sent_at: HashMap::new(),
            prune_at: 4096,
            held: HashMap::new(),
            later: Vec::new(),
            echo_window: ECHO_WINDOW,
            recheck: RECHECK,
        }
    }
}

/// Nanoseconds in a second.
const SECOND_NS: i128 = 1_000_000_000;

/// True when `now` is `sent` with its modification time cut to the whole
/// second, as a replay in the guest leaves it.
fn cut_to_the_second(sent: Seen, now: Seen) -> bool {
    match (sent, now) {
        (
            Seen::File { size, mtime_ns },
            Seen::File {
                size: now_size,
                mtime_ns: now_mtime,
            },
        ) => {
            let part = mtime_ns.rem_euclid(SECOND_NS);
            size == now_size && part != 0 && now_mtime == mtime_ns - part
        }
        _ => false,
    }
}

/// Puts `mtime_ns` back as `path`'s modification time (a regular file
/// only; its access time is left as it is).
fn restore_mtime(path: &Path, mtime_ns: i128) -> std::io::Result<()> {
    let epoch = std::time::UNIX_EPOCH;
    let offset = Duration::from_nanos(mtime_ns.unsigned_abs() as u64);
    let time = if mtime_ns >= 0 {
        epoch.checked_add(offset)
    } else {
        epoch.checked_sub(offset)
    }
    .ok_or_else(|| std::io::Error::other("time out of range"))?;
    if !std::fs::symlink_metadata(path)?.is_file() {
        return Ok(());
    }
    std::fs::File::open(path)?.set_times(std::fs::FileTimes::new().set_modified(time))
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
        let mut done: std::collections::HashSet<PathBuf> = Default::default();
        for hint in hints {
            match hint {
                Hint::Renamed(from, to) => {
                    let (f, t) = (state(from), state(to));
                    let was = self.sent.get(from).copied();
                    // A path never sent was there before the watch began
                    // (a rename's source existed).
                    if f == Seen::Absent
                        && t != Seen::Absent
                        && was != Some(Seen::Absent)
                        && self.sent.get(to).copied().unwrap_or(Seen::Absent) == Seen::Absent
                    {
                        out.push(event("rename", from, Some(to), t));
                        self.sent.insert(from.clone(), Seen::Absent);
                        self.sent.insert(to.clone(), t);
                        done.insert(from.clone());
                        done.insert(to.clone());
                    } else {
                        for p in [from, to] {
                            if done.insert(p.clone()) {
                                out.extend(self.one(p, HintKind::Modify, state(p)));
                            }
                        }
                    }
                }
                Hint::Touched(p, kind) => {
                    if done.insert(p.clone()) {
                        out.extend(self.one(p, *kind, state(p)));
                    }
                }
            }
        }
        out
    }

    /// The files whose modification time a replay cut to the second, with
    /// the exact time to put back (see the module doc).
    pub fn take_repairs(&mut self) -> Vec<(PathBuf, i128)> {
        std::mem::take(&mut self.repairs)
    }

    /// The paths held back as a replay's possible passing state, to be
    /// decided again after [`RECHECK`] (see the module doc).
    pub fn take_later(&mut self) -> Vec<Hint> {
        self.later
            .drain(..)
            .map(|p| Hint::Touched(p, HintKind::Create))
            .collect()
    }

    fn one(&mut self, path: &Path, hint: HintKind, now: Seen) -> Option<pb::FileEvent> {
        let before = self.sent.get(path).copied();
        let cut_of = self
            .exact
            .get(path)
            .and_then(|sent| sent.iter().rev().find(|x| cut_to_the_second(**x, now)))
            .copied();
        if let Some(exact @ Seen::File { mtime_ns, .. }) = cut_of {
            self.repairs.push((path.to_path_buf(), mtime_ns));
            self.sent.insert(path.to_path_buf(), exact);
            self.held.remove(path);
            return None;
        }
        if self.maybe_echo(path, before, now) {
            self.later.push(path.to_path_buf());
            return None;
        }
        self.held.remove(path);
        self.sent.insert(path.to_path_buf(), now);
        if let Seen::File { mtime_ns, .. } = now {
            if mtime_ns.rem_euclid(SECOND_NS) != 0 {
                let kept = self.exact.entry(path.to_path_buf()).or_default();
                if kept.last() != Some(&now) {
                    kept.push(now);
                }
                if kept.len() > 3 {
                    kept.remove(0);
                }
            }
        } else {
            self.exact.remove(path);
        }
        let event = match (before, now) {
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
        };
        if event.is_some() {
            if self.sent_at.len() >= self.prune_at {
                // Pruned again only once it has doubled: a burst of many
                // recent paths is not walked on every event.
                let window = self.echo_window;
                self.sent_at.retain(|_, t| t.elapsed() < window);
                self.prune_at = (2 * self.sent_at.len()).max(4096);
            }
            self.sent_at
                .insert(path.to_path_buf(), std::time::Instant::now());
        }
        event
    }

    /// True when `now` may be a replay's passing state, to be looked at
    /// again (see the module doc).
    fn maybe_echo(&mut self, path: &Path, before: Option<Seen>, now: Seen) -> bool {
        let recent = self
            .sent_at
            .get(path)
            .is_some_and(|t| t.elapsed() < self.echo_window);
        let passing = match (before, now) {
            (Some(Seen::Absent), Seen::File { size: 0, .. }) => true,
            (Some(Seen::File { size, .. }), Seen::File { size: now_size, .. }) => {
                size == now_size && before != Some(now)
            }
            _ => false,
        };
        if !(recent && passing) {
            return false;
        }
        // The same state RECHECK later is the user's.
        match self.held.get(path) {
            Some((held, since)) if *held == now => since.elapsed() < self.recheck,
            _ => {
                self.held
                    .insert(path.to_path_buf(), (now, std::time::Instant::now()));
                true
            }
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

/// What new folders already hold when their events are handled (one level;
/// the caller goes on with the folders among them): a program that makes
/// a folder and fills it at once (`mkdir -p`, a checkout) fills it before
/// the watch on it begins, so nothing else reports these.
fn contents_of_new_folders(events: &[pb::FileEvent], ignore: &[PathBuf]) -> Vec<Hint> {
    let mut out = Vec::new();
    let dirs = events
        .iter()
        .filter(|e| e.kind == "create" && e.is_dir)
        .map(|e| PathBuf::from(&e.path));
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == ASIDE_DIR)
                || ignore.iter().any(|i| p.starts_with(i))
            {
                continue;
            }
            out.push(Hint::Touched(p, HintKind::Create));
        }
    }
    out
}

/// The events of one batch of hints, followed by what the new folders
/// among them already hold, a level at a time.
fn decide_with_contents(
    tracker: &mut Tracker,
    hints: &[Hint],
    ignore: &[PathBuf],
) -> Vec<pb::FileEvent> {
    let mut events = tracker.decide(hints, &Seen::of);
    let mut inside = contents_of_new_folders(&events, ignore);
    while !inside.is_empty() {
        let more = tracker.decide(&inside, &Seen::of);
        inside = contents_of_new_folders(&more, ignore);
        events.extend(more);
    }
    for (path, mtime_ns) in tracker.take_repairs() {
        if let Err(e) = restore_mtime(&path, mtime_ns) {
            tracing::debug!("cannot put {}'s time back: {e}", path.display());
        }
    }
    events
}

/// The events that open a stream: for each folder that holds Berth's own
/// state (an ignored folder), the aside folder the agent's replays may use
/// there (made here first), so nothing of theirs shows in a user's folder.
/// An empty `.berth-replay` an older agent left at a folder's root goes.
fn scratch_events(folders: &[PathBuf], ignore: &[PathBuf]) -> Vec<pb::FileEvent> {
    let mut out = Vec::new();
    for f in folders {
        let _ = std::fs::remove_dir(f.join(ASIDE_DIR));
        if let Some(state) = ignore.iter().find(|i| i.starts_with(f) && *i != f) {
            let scratch = state.join("replay");
            if std::fs::create_dir_all(&scratch).is_ok() {
                out.push(event("scratch", &scratch, None, Seen::Dir));
            }
        }
    }
    out
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
    for ev in scratch_events(&folders, &ignore) {
        if tx.send(ev).await.is_err() {
            break;
        }
    }
    let mut tracker = Tracker::default();
    let mut later: Vec<Hint> = Vec::new();
    loop {
        // Paths held back as possible echoes are looked at again after
        // RECHECK, even when nothing else happens.
        let mut hints = std::mem::take(&mut later);
        let first = if hints.is_empty() {
            Some(raw_rx.recv().await)
        } else {
            tokio::time::timeout(RECHECK, raw_rx.recv()).await.ok()
        };
        match first {
            Some(None) => break,
            Some(Some(ev)) => hints.extend(hints_of(&ev, &ignore)),
            None => {}
        }
        // A batch ends once the folders have been quiet for BATCH (or after
        // MAX_BATCH): a file still being written is sent once, as it ends.
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
        let events = decide_with_contents(&mut tracker, &hints, &ignore);
        later = tracker.take_later();
        for ev in events {
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
#[path = "files_tests.rs"]
mod tests;
