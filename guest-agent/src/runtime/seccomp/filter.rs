//! A container's seccomp profile compiled once, then installed by Berth's
//! own libcontainer executor.
//!
//! libcontainer compiles `linux.seccomp` with libseccomp inside every
//! container's init: about 10 ms for Docker's profile on this machine,
//! a third of a whole `berth run --rm IMAGE true`. So Berth keeps the
//! profile out of `config.json` and writes it beside it as
//! [`PROFILE_FILE`]. The create and exec helpers turn it into a classic
//! BPF program (libseccomp's own compiler, exported instead of loaded),
//! cached on disk under the sha256 of the profile, and [`FilteringExecutor`]
//! installs that program as the last step of the container's init, right
//! before the payload is executed, where libcontainer would have loaded
//! its own. The program is a binary tree over system call numbers, which
//! the kernel attaches in a third of the time of the default linear list.
//! The translation from the OCI profile is written here because
//! libcontainer only offers compile-and-load in one call.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, FromRawFd};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{
    Executor, ExecutorError, ExecutorSetEnvsError, ExecutorValidationError,
};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::Spec;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The profile's file in a container's bundle, next to `config.json`.
pub const PROFILE_FILE: &str = "seccomp.json";

/// Changes whenever Berth would compile the same profile differently, so
/// that programs cached by an older agent are not reused (the running
/// libseccomp's version is part of the key too).
const COMPILER_VERSION: &str = "binary-tree-1";

/// The kernel's limit on a filter's length, in instructions.
const MAX_INSTRUCTIONS: usize = 4096;

/// One classic BPF instruction, as `struct sock_filter` lays it out.
const INSTRUCTION_BYTES: usize = 8;

/// A compiled filter, ready to install.
#[derive(Clone, Debug)]
pub struct Filter {
    program: Arc<Vec<libc::sock_filter>>,
    flags: libc::c_ulong,
}

impl Filter {
    /// The program's length in instructions.
    pub fn len(&self) -> usize {
        self.program.len()
    }

    /// Whether the program is empty (never, for a compiled profile).
    pub fn is_empty(&self) -> bool {
        self.program.is_empty()
    }

    /// Installs the filter on the calling thread, which must have
    /// no_new_privs set or hold CAP_SYS_ADMIN.
    pub fn install(&self) -> std::io::Result<()> {
        let prog = libc::sock_fprog {
            len: self.program.len() as u16,
            filter: self.program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at a live program for the duration of the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }
}

/// The filter for the container whose bundle is `bundle`, or `None` when
/// it has no profile (privileged, or created before profiles moved out of
/// `config.json`, in which case libcontainer applies it). Compiled
/// programs are cached in `cache`.
pub fn for_bundle(bundle: &Path, cache: &Path) -> Result<Option<Filter>, String> {
    let text = match std::fs::read(bundle.join(PROFILE_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "the container's seccomp profile cannot be read: {e}"
            ))
        }
    };
    let profile: Value = serde_json::from_slice(&text)
        .map_err(|e| format!("the container's seccomp profile is not valid JSON: {e}"))?;
    let flags = filter_flags(&profile)?;
    let key = hex::encode(
        Sha256::new()
            .chain_update(COMPILER_VERSION)
            .chain_update(libseccomp_version())
            .chain_update(std::env::consts::ARCH)
            .chain_update(&text)
            .finalize(),
    );
    let cached = cache.join(format!("{key}.bpf"));
    // A cache entry without a program's shape is compiled again.
    let program = match std::fs::read(&cached).ok().and_then(|b| instructions(&b)) {
        Some(p) => p,
        None => {
            let bytes = compile(&profile)?;
            let program = instructions(&bytes).ok_or_else(|| {
                format!(
                    "the container's seccomp profile compiles to {} bytes, not a program the kernel takes",
                    bytes.len()
                )
            })?;
            store(cache, &cached, &bytes);
            program
        }
    };
    Ok(Some(Filter {
        program: Arc::new(program),
        flags,
    }))
}

/// The running libseccomp's version: a newer one may know more system
/// call names, so its programs are cached apart.
fn libseccomp_version() -> String {
    libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default()
}

/// The cache directory for the libcontainer state root `state_root`.
pub fn cache_dir(state_root: &Path) -> PathBuf {
    state_root.with_file_name("seccomp")
}

/// Writes a program to the cache atomically; a failure only costs the
/// next container a compile.
fn store(cache: &Path, path: &Path, bytes: &[u8]) {
    let _ = std::fs::create_dir_all(cache);
    let tmp = cache.join(format!(".{}.tmp", std::process::id()));
    if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, path).is_ok() {
        return;
    }
    let _ = std::fs::remove_file(&tmp);
}

/// `bytes` as instructions, when they are whole instructions, as many as
/// the kernel takes.
fn instructions(bytes: &[u8]) -> Option<Vec<libc::sock_filter>> {
    let count = bytes.len() / INSTRUCTION_BYTES;
    if !bytes.len().is_multiple_of(INSTRUCTION_BYTES) || !(1..=MAX_INSTRUCTIONS).contains(&count) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(INSTRUCTION_BYTES)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

/// The profile's `flags` as seccomp(2) flags.
fn filter_flags(profile: &Value) -> Result<libc::c_ulong, String> {
    let mut flags = 0;
    for f in profile["flags"].as_array().into_iter().flatten() {
        flags |= match f.as_str().unwrap_or_default() {
            "SECCOMP_FILTER_FLAG_LOG" => libc::SECCOMP_FILTER_FLAG_LOG,
            "SECCOMP_FILTER_FLAG_TSYNC" => libc::SECCOMP_FILTER_FLAG_TSYNC,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            other => return Err(format!("the seccomp flag {other:?} is not supported")),
        };
    }
    Ok(flags)
}

/// An action with its errno (EPERM when the profile names none).
fn action(name: &Value, errno: &Value) -> Result<ScmpAction, String> {
    let name = name.as_str().unwrap_or_default();
    if name == "SCMP_ACT_NOTIFY" {
        return Err("seccomp notification (SCMP_ACT_NOTIFY) is not supported".into());
    }
    let value = errno.as_i64().map(|v| v as i32);
    let value = match name {
        "SCMP_ACT_ERRNO" => Some(value.unwrap_or(libc::EPERM)),
        "SCMP_ACT_TRACE" => Some(value.unwrap_or(0)),
        _ => None,
    };
    ScmpAction::from_str(name, value).map_err(|e| format!("the seccomp action {name:?}: {e}"))
}

/// One argument comparison.
fn comparison(arg: &Value) -> Result<ScmpArgCompare, String> {
    let op = arg["op"].as_str().unwrap_or_default();
    let value = arg["value"].as_u64().unwrap_or(0);
    let op = match ScmpCompareOp::from_str(op) {
        Ok(ScmpCompareOp::MaskedEqual(_)) => ScmpCompareOp::MaskedEqual(value),
        Ok(o) => o,
        Err(e) => return Err(format!("the seccomp operator {op:?}: {e}")),
    };
    let datum = match op {
        ScmpCompareOp::MaskedEqual(_) => arg["valueTwo"].as_u64().unwrap_or(0),
        _ => value,
    };
    let index = arg["index"].as_u64().unwrap_or(0) as u32;
    Ok(ScmpArgCompare::new(index, op, datum))
}

/// Compiles an OCI `linux.seccomp` profile into a BPF program, the way
/// libcontainer (and runc) read it: rules whose action is the default are
/// skipped, names this libseccomp does not know are skipped, and several
/// comparisons on one argument become separate rules.
pub fn compile(profile: &Value) -> Result<Vec<u8>, String> {
    let fail = |what: &str, e: libseccomp::error::SeccompError| format!("{what}: {e}");
    let default = action(&profile["defaultAction"], &profile["defaultErrnoRet"])?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| fail("creating the filter", e))?;
    // A binary tree over the system call numbers rather than libseccomp's
    // default linear list: the kernel checks a new filter by running it
    // for every system call number (its action cache), so attaching
    // Docker's profile takes 0.4 ms instead of 1.1 ms here.
    ctx.set_ctl_optimize(2)
        .map_err(|e| fail("asking for a binary tree", e))?;
    for arch in profile["architectures"].as_array().into_iter().flatten() {
        let name = arch.as_str().unwrap_or_default();
        let arch = ScmpArch::from_str(name).map_err(|e| fail(name, e))?;
        ctx.add_arch(arch).map_err(|e| fail(name, e))?;
    }
    for rule in profile["syscalls"].as_array().into_iter().flatten() {
        let act = action(&rule["action"], &rule["errnoRet"])?;
        if act == default {
            continue;
        }
        let args = rule["args"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let compares = args.iter().map(comparison).collect::<Result<Vec<_>, _>>()?;
        let mut indexes: Vec<u64> = args
            .iter()
            .map(|a| a["index"].as_u64().unwrap_or(0))
            .collect();
        indexes.sort_unstable();
        indexes.dedup();
        let groups: Vec<&[ScmpArgCompare]> = if indexes.len() == compares.len() {
            vec![&compares[..]]
        } else {
            compares.iter().map(std::slice::from_ref).collect()
        };
        for name in rule["names"].as_array().into_iter().flatten() {
            let Ok(call) = ScmpSyscall::from_name(name.as_str().unwrap_or_default()) else {
                continue;
            };
            for group in &groups {
                ctx.add_rule_conditional(act, call, group)
                    .map_err(|e| fail(&format!("the rule for {name}"), e))?;
            }
        }
    }
    // SAFETY: a plain memfd_create with a literal name.
    let fd = unsafe { libc::memfd_create(c"berth-seccomp".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!(
            "exporting the filter: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `fd` was just created and is owned by nothing else.
    let mut out = File::from(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) });
    ctx.export_bpf(out.as_fd())
        .map_err(|e| fail("exporting the filter", e))?;
    let mut bytes = Vec::new();
    std::io::Seek::rewind(&mut out)
        .and_then(|_| out.read_to_end(&mut bytes))
        .map_err(|e| format!("exporting the filter: {e}"))?;
    Ok(bytes)
}

/// libcontainer's executor with, just before the payload is executed, the
/// signal state reset to Docker's ([`crate::runtime::signals`]) and the
/// container's compiled filter installed; the program is checked and
/// executed by [`crate::runtime::command`], which words its failures as
/// Docker does.
#[derive(Clone)]
pub struct FilteringExecutor {
    filter: Option<Filter>,
}

impl FilteringExecutor {
    /// An executor installing `filter` (none: libcontainer's own executor).
    pub fn new(filter: Option<Filter>) -> Self {
        Self { filter }
    }
}

/// The process's arguments (none when the spec has none).
fn args(spec: &Spec) -> &[String] {
    spec.process()
        .as_ref()
        .and_then(|p| p.args().as_deref())
        .unwrap_or_default()
}

impl Executor for FilteringExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        crate::runtime::signals::reset_to_default().map_err(|e| {
            ExecutorError::Other(format!(
                "the signals cannot be reset to their defaults: {e}"
            ))
        })?;
        if let Some(filter) = &self.filter {
            filter.install().map_err(|e| {
                ExecutorError::Other(format!("the seccomp filter cannot be installed: {e}"))
            })?;
        }
        Err(ExecutorError::Other(crate::runtime::command::exec(args(
            spec,
        ))))
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        let path = spec
            .process()
            .as_ref()
            .and_then(|p| p.env().as_ref())
            .and_then(|env| env.iter().find_map(|e| e.strip_prefix("PATH=")));
        let name = args(spec).first().map_or("", String::as_str);
        crate::runtime::command::check(name, path)
            .map_err(ExecutorValidationError::ArgValidationError)
    }

    fn setup_envs(
        &self,
        envs: std::collections::HashMap<String, String>,
    ) -> Result<(), ExecutorSetEnvsError> {
        DefaultExecutor {}.setup_envs(envs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default_profile() -> Value {
        super::super::profile(&["CAP_CHOWN".into(), "CAP_KILL".into()])
    }

    #[test]
    fn the_default_profile_compiles_once_and_is_read_back_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("bundle");
        std::fs::create_dir(&bundle).unwrap();
        let cache = dir.path().join("seccomp");
        assert!(for_bundle(&bundle, &cache).unwrap().is_none());
        std::fs::write(
            bundle.join(PROFILE_FILE),
            serde_json::to_vec(&default_profile()).unwrap(),
        )
        .unwrap();
        let first = for_bundle(&bundle, &cache).unwrap().unwrap();
        assert!(first.len() > 100, "{} instructions", first.len());
        let cached: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
        assert_eq!(cached.len(), 1);
        let again = for_bundle(&bundle, &cache).unwrap().unwrap();
        assert_eq!(again.len(), first.len());
    }

    #[test]
    fn an_installed_filter_refuses_what_docker_refuses() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PROFILE_FILE), default_profile().to_string()).unwrap();
        let filter = for_bundle(dir.path(), &dir.path().join("c"))
            .unwrap()
            .unwrap();
        // SAFETY: the child makes only raw system calls, then _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: plain system calls in the forked child.
            unsafe {
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                let code = if filter.install().is_err() {
                    10
                } else if libc::unshare(libc::CLONE_NEWUTS) == 0 {
                    11
                } else if *libc::__errno_location() != libc::EPERM {
                    12
                } else if libc::syscall(libc::SYS_keyctl, 0, 0, 0, 0, 0) != -1 {
                    13
                } else if libc::getppid() <= 0 {
                    14
                } else {
                    0
                };
                libc::_exit(code);
            }
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status),
            "the filtered child was killed: {status}"
        );
        assert_eq!(libc::WEXITSTATUS(status), 0, "see the codes in the child");
    }

    #[test]
    fn a_damaged_cache_entry_is_compiled_again() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(PROFILE_FILE),
            serde_json::to_vec(&default_profile()).unwrap(),
        )
        .unwrap();
        let cache = dir.path().join("cache");
        let good = for_bundle(dir.path(), &cache).unwrap().unwrap().len();
        let entry = std::fs::read_dir(&cache)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::write(&entry, b"12345").unwrap();
        assert_eq!(for_bundle(dir.path(), &cache).unwrap().unwrap().len(), good);
    }

    #[test]
    fn unsupported_profiles_are_refused_in_one_sentence() {
        let mut p = default_profile();
        p["defaultAction"] = "SCMP_ACT_NOTIFY".into();
        assert!(compile(&p).unwrap_err().contains("not supported"));
        let mut p = default_profile();
        p["flags"] = serde_json::json!(["SECCOMP_FILTER_FLAG_BOGUS"]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PROFILE_FILE), p.to_string()).unwrap();
        let e = for_bundle(dir.path(), &dir.path().join("c")).unwrap_err();
        assert!(e.contains("SECCOMP_FILTER_FLAG_BOGUS"), "{e}");
    }
}
