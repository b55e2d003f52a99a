//! Finding the program a container or exec process runs, and saying in
//! Docker's words why it cannot be run.
//!
//! Checked in the container's init, as the container's user, inside its
//! root, just before the program is executed ([`check`], where
//! libcontainer's own executor would validate it): the failures read as
//! Go's `exec.LookPath` (which runc uses) words them, one sentence naming
//! the command, e.g. `exec: "nope": executable file not found in $PATH`.
//! The docker CLI picks its exit code (127, 126) from these words, and so
//! does [`super::start_failure`].

use std::ffi::CString;
use std::path::Path;

use nix::errno::Errno;
use nix::unistd::AccessFlags;

/// The search path when the process's environment has none (Docker's).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The words after `exec: "NAME": ` for a program that is missing.
pub const NOT_FOUND: &str = "executable file not found in $PATH";

/// Why `path` cannot be executed, if it cannot: Go's `findExecutable`.
fn unusable(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Err(e) => Some(describe_errno(Errno::from_raw(
            e.raw_os_error().unwrap_or(0),
        ))),
        Ok(m) if m.is_dir() => Some(describe_errno(Errno::EISDIR)),
        Ok(_) => nix::unistd::access(path, AccessFlags::X_OK)
            .err()
            .map(describe_errno),
    }
}

/// An errno as Go writes it: `no such file or directory`.
fn describe_errno(e: Errno) -> String {
    let text = e.desc();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("{e}"),
    }
}

/// The sentence for `name` failing with `why`.
fn sentence(name: &str, why: &str) -> String {
    format!("exec: \"{name}\": {why}")
}

/// Checks that `name` can be executed with the search path `path` (the
/// process's `PATH`, `None` when it has none): a name with a slash must
/// be an executable file, other names are looked up in `path`.
pub fn check(name: &str, path: Option<&str>) -> Result<(), String> {
    if name.contains('/') {
        return match unusable(Path::new(name)) {
            None => Ok(()),
            Some(why) => Err(sentence(name, &why)),
        };
    }
    if !name.is_empty() {
        for dir in path.unwrap_or(DEFAULT_PATH).split(':') {
            let dir = if dir.is_empty() { "." } else { dir };
            if unusable(&Path::new(dir).join(name)).is_none() {
                return Ok(());
            }
        }
    }
    Err(sentence(name, NOT_FOUND))
}

/// The sentence for a failed `execvp` of `name` (a script whose
/// interpreter is missing, say).
pub fn exec_failed(name: &str, e: Errno) -> String {
    sentence(name, &describe_errno(e))
}

/// Replaces the calling process with `args` (the first is looked up in
/// `PATH`); returns only the sentence for why it could not.
pub fn exec(args: &[String]) -> String {
    let Some(name) = args.first() else {
        return sentence("", NOT_FOUND);
    };
    let c: Result<Vec<CString>, _> = args.iter().map(|a| CString::new(a.as_bytes())).collect();
    match c {
        Ok(c) => match nix::unistd::execvp(&c[0], &c) {
            Err(e) => exec_failed(name, e),
            Ok(never) => match never {},
        },
        Err(_) => sentence(name, "the command holds a NUL byte"),
    }
}

/// The sentence in a runtime's error chain, when it is one of ours: the
/// words from `exec: "` on.
pub fn sentence_in(chain: &str) -> Option<&str> {
    chain.find("exec: \"").map(|at| chain[at..].trim_end())
}

/// Whether the sentence says the program is missing (Docker's 127), as
/// opposed to present but not runnable (126).
pub fn is_missing(sentence: &str) -> bool {
    sentence.ends_with(NOT_FOUND) || sentence.ends_with("no such file or directory")
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn names_the_command_and_what_is_wrong() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let d = dir.path().to_str().expect("utf-8");
        assert_eq!(check("sh", None), Ok(()));
        assert_eq!(check("/bin/sh", Some("")), Ok(()));
        assert_eq!(
            check("nope-nowhere", Some("/usr/bin:/bin")),
            Err("exec: \"nope-nowhere\": executable file not found in $PATH".into())
        );
        assert_eq!(
            check("/no/such", None),
            Err("exec: \"/no/such\": no such file or directory".into())
        );
        assert_eq!(
            check(d, None),
            Err(format!("exec: \"{d}\": is a directory"))
        );
        let file = dir.path().join("script");
        std::fs::write(&file, "#!/bin/sh\n").expect("written");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let f = file.to_str().expect("utf-8");
        // Root may execute a file with no execute bit at all only when
        // some bit is set; none is here.
        assert_eq!(
            check(f, None),
            Err(format!("exec: \"{f}\": permission denied"))
        );
        // A directory or a plain file named in PATH is skipped.
        assert!(check("script", Some(d)).is_err());
    }

    #[test]
    fn finds_our_sentence_in_a_chain() {
        let chain = "failed to create container: exec process failed with error error in executing process : exec: \"x\": permission denied";
        assert_eq!(sentence_in(chain), Some("exec: \"x\": permission denied"));
        assert_eq!(sentence_in("mount failed: EPERM"), None);
        assert!(is_missing(
            "exec: \"x\": executable file not found in $PATH"
        ));
        assert!(is_missing(&exec_failed("x", Errno::ENOENT)));
        assert!(!is_missing(&exec_failed("x", Errno::EACCES)));
    }
}
