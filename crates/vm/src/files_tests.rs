//! Tests of `files.rs`: what a batch of host hints becomes.

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
fn a_time_cut_to_the_second_by_a_replay_is_put_back_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("f.txt");
    std::fs::write(&f, "abc").unwrap();
    let exact = std::time::UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
    let set = |t| {
        std::fs::File::open(&f)
            .unwrap()
            .set_times(std::fs::FileTimes::new().set_modified(t))
            .unwrap()
    };
    set(exact);
    let mut t = Tracker::default();
    let touch = [Hint::Touched(f.clone(), HintKind::Modify)];
    let out = decide_with_contents(&mut t, &touch, &[]);
    assert_eq!(kinds(&out), vec![format!("modify {}", f.display())]);
    // The guest's replay leaves the time at the whole second.
    set(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    assert!(decide_with_contents(&mut t, &touch, &[]).is_empty());
    assert_eq!(std::fs::metadata(&f).unwrap().modified().unwrap(), exact);
    // A batch that looks while a replay is under way sees its write (the
    // time of the write): held back, not sent; the cut that follows gets
    // the exact time back, and the repair echoes nothing.
    set(std::time::UNIX_EPOCH + Duration::new(1_700_000_000, 500_000_000));
    assert!(decide_with_contents(&mut t, &touch, &[]).is_empty());
    assert_eq!(t.take_later(), [Hint::Touched(f.clone(), HintKind::Create)]);
    set(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    assert!(decide_with_contents(&mut t, &touch, &[]).is_empty());
    assert_eq!(std::fs::metadata(&f).unwrap().modified().unwrap(), exact);
    assert!(decide_with_contents(&mut t, &touch, &[]).is_empty());
    // A state that was seen then anyway (the replay was slow) is sent
    // when it is still the same RECHECK later; the cut after it still
    // goes back to the exact time.
    set(std::time::UNIX_EPOCH + Duration::new(1_700_000_002, 5));
    assert!(decide_with_contents(&mut t, &touch, &[]).is_empty());
    assert!(
        decide_with_contents(&mut t, &touch, &[]).is_empty(),
        "too soon"
    );
    std::thread::sleep(RECHECK);
    assert_eq!(decide_with_contents(&mut t, &touch, &[]).len(), 1);
    set(std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    assert!(decide_with_contents(&mut t, &touch, &[]).is_empty());
    assert_eq!(std::fs::metadata(&f).unwrap().modified().unwrap(), exact);
    // A real change to another time is sent once it stayed RECHECK, or at
    // once when no event went out for the file lately.
    t.recheck = Duration::ZERO;
    set(std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000));
    assert!(decide_with_contents(&mut t, &touch, &[]).is_empty());
    assert_eq!(decide_with_contents(&mut t, &touch, &[]).len(), 1);
    t.echo_window = Duration::ZERO;
    set(std::time::UNIX_EPOCH + Duration::from_secs(1_500_000_000));
    assert_eq!(decide_with_contents(&mut t, &touch, &[]).len(), 1);
    // A time that was whole already is never "cut".
    let whole = Seen::File {
        size: 1,
        mtime_ns: 5 * SECOND_NS,
    };
    assert!(!cut_to_the_second(whole, whole));
    let before_1970 = Seen::File {
        size: 1,
        mtime_ns: -SECOND_NS / 2,
    };
    let cut = Seen::File {
        size: 1,
        mtime_ns: -SECOND_NS,
    };
    assert!(cut_to_the_second(before_1970, cut));
}

#[test]
fn an_empty_file_just_after_a_removal_waits_to_be_told_from_the_replays() {
    let fs: RefCell<HashMap<PathBuf, Seen>> = RefCell::new(HashMap::new());
    let state = |p: &Path| fs.borrow().get(p).copied().unwrap_or(Seen::Absent);
    let a = PathBuf::from("/s/a");
    let touch = |k| [Hint::Touched(a.clone(), k)];
    let file = |size| Seen::File { size, mtime_ns: 7 };
    let mut t = Tracker::default();
    fs.borrow_mut().insert(a.clone(), file(3));
    assert_eq!(t.decide(&touch(HintKind::Create), &state).len(), 1);
    fs.borrow_mut().remove(&a);
    assert_eq!(
        kinds(&t.decide(&touch(HintKind::Remove), &state)),
        ["delete /s/a"]
    );
    // The replay's empty file, seen by a batch: held back, not sent.
    fs.borrow_mut().insert(a.clone(), file(0));
    assert!(t.decide(&touch(HintKind::Create), &state).is_empty());
    let later = t.take_later();
    assert_eq!(later, touch(HintKind::Create));
    // Gone when looked at again: nothing at all was sent.
    fs.borrow_mut().remove(&a);
    assert!(t.decide(&later, &state).is_empty());
    assert!(t.take_later().is_empty());
    // A file with content is the user's: sent at once.
    fs.borrow_mut().insert(a.clone(), file(5));
    assert_eq!(
        kinds(&t.decide(&touch(HintKind::Create), &state)),
        ["create /s/a"]
    );
    // An empty file that stays RECHECK is the user's, sent as new.
    fs.borrow_mut().remove(&a);
    assert_eq!(t.decide(&touch(HintKind::Remove), &state).len(), 1);
    fs.borrow_mut().insert(a.clone(), file(0));
    assert!(t.decide(&touch(HintKind::Create), &state).is_empty());
    std::thread::sleep(RECHECK);
    let later = t.take_later();
    assert_eq!(kinds(&t.decide(&later, &state)), ["create /s/a"]);
    // Long after the removal, an empty file is sent at once.
    fs.borrow_mut().remove(&a);
    assert_eq!(t.decide(&touch(HintKind::Remove), &state).len(), 1);
    t.echo_window = Duration::ZERO;
    fs.borrow_mut().insert(a.clone(), file(0));
    assert_eq!(t.decide(&touch(HintKind::Create), &state).len(), 1);
}

#[test]
fn a_rename_of_a_path_never_sent_is_a_rename() {
    let fs: RefCell<HashMap<PathBuf, Seen>> = RefCell::new(HashMap::new());
    let state = |p: &Path| fs.borrow().get(p).copied().unwrap_or(Seen::Absent);
    let (a, b) = (PathBuf::from("/s/x/a"), PathBuf::from("/s/y/a"));
    let file = Seen::File {
        size: 1,
        mtime_ns: 1,
    };
    fs.borrow_mut().insert(b.clone(), file);
    let mut t = Tracker::default();
    let out = t.decide(&[Hint::Renamed(a.clone(), b.clone())], &state);
    assert_eq!(kinds(&out), vec!["rename /s/x/a"]);
    assert_eq!(out[0].to_path, "/s/y/a");
    // An editor's save: a temporary file made and moved over the name.
    let tmp = PathBuf::from("/s/y/.a.swp");
    fs.borrow_mut().insert(
        b.clone(),
        Seen::File {
            size: 2,
            mtime_ns: 2,
        },
    );
    let save = [
        Hint::Touched(tmp.clone(), HintKind::Create),
        Hint::Renamed(tmp.clone(), b.clone()),
    ];
    assert_eq!(kinds(&t.decide(&save, &state)), vec!["modify /s/y/a"]);
}

#[test]
fn a_new_folder_brings_what_it_holds_and_state_gets_an_aside_folder() {
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    let state = share.join(".local/berth/vm");
    std::fs::create_dir_all(share.join(ASIDE_DIR)).unwrap();
    std::fs::create_dir_all(share.join("new/a/b")).unwrap();
    std::fs::write(share.join("new/a/b/f.txt"), "x").unwrap();
    let evs = decide_with_contents(
        &mut Tracker::default(),
        &[Hint::Touched(share.join("new"), HintKind::Create)],
        std::slice::from_ref(&state),
    );
    let root = share.display().to_string();
    let made: Vec<String> = kinds(&evs).iter().map(|k| k.replace(&root, "")).collect();
    assert_eq!(
        made,
        [
            "create /new",
            "create /new/a",
            "create /new/a/b",
            "create /new/a/b/f.txt"
        ]
    );
    let evs = scratch_events(
        &[share.clone(), dir.path().join("other")],
        std::slice::from_ref(&state),
    );
    assert_eq!(
        kinds(&evs),
        vec![format!("scratch {}", state.join("replay").display())]
    );
    assert!(state.join("replay").is_dir());
    assert!(!share.join(ASIDE_DIR).exists(), "the old aside folder went");
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
