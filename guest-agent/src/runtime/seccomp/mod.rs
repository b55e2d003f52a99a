//! Docker's default seccomp profile, as an OCI `linux.seccomp` section:
//! an allowlist where everything else fails with EPERM, plus the calls
//! that are allowed only with a capability (`mount` and `unshare` with
//! CAP_SYS_ADMIN, `ptrace` family with CAP_SYS_PTRACE, …).
//!
//! It follows moby's `profiles/seccomp/default.json`. Names the running
//! libseccomp does not know are skipped, as runc does. [`filter`] compiles
//! it once and installs it in the container.

pub mod filter;

use serde_json::{json, Value};

/// Allowed for every container.
const ALLOWED: &str = "accept accept4 access adjtimex alarm bind brk cachestat capget capset \
chdir chmod chown chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 \
clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect \
copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old \
epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit \
exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod \
fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr flock \
fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate \
ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat getcpu \
getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups \
getgroups32 getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom \
getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid \
getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr \
inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy \
io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit \
io_uring_enter io_uring_register io_uring_setup ipc kill landlock_add_rule \
landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link linkat listen \
listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise \
map_shadow_stack membarrier memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock \
mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open mq_timedreceive \
mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv \
msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open \
openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free \
pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease \
pselect6 pselect6_time64 ptrace pwrite64 pwritev pwritev2 read readahead readlink readlinkat \
readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename \
renameat renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask \
rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 \
rt_tgsigqueueinfo sched_getaffinity sched_getattr sched_getparam sched_get_priority_max \
sched_get_priority_min sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64 \
sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield seccomp select \
semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg \
sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 \
setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 \
setreuid setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area \
set_tid_address setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack \
signalfd signalfd4 sigprocmask sigreturn socket socketcall socketpair splice stat stat64 \
statfs statfs64 statx symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time \
timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime \
timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime \
timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat \
utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev \
arch_prctl modify_ldt";

/// Calls allowed only when the container holds the capability.
const BY_CAPABILITY: &[(&str, &str)] = &[
    (
        "CAP_SYS_ADMIN",
        "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount \
         mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname \
         sethostname setns syslog umount umount2 unshare",
    ),
    ("CAP_SYS_BOOT", "reboot"),
    ("CAP_SYS_CHROOT", "chroot"),
    ("CAP_SYS_MODULE", "delete_module init_module finit_module"),
    ("CAP_SYS_PACCT", "acct"),
    (
        "CAP_SYS_PTRACE",
        "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev",
    ),
    ("CAP_SYS_RAWIO", "iopl ioperm"),
    (
        "CAP_SYS_TIME",
        "settimeofday stime clock_settime clock_settime64",
    ),
    ("CAP_SYS_TTY_CONFIG", "vhangup"),
    (
        "CAP_SYS_NICE",
        "get_mempolicy mbind set_mempolicy set_mempolicy_home_node",
    ),
    ("CAP_SYSLOG", "syslog"),
    ("CAP_BPF", "bpf"),
    ("CAP_PERFMON", "perf_event_open"),
];

/// Namespace flags `clone` may not carry without CAP_SYS_ADMIN
/// (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET).
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;

fn names(list: &str) -> Vec<&str> {
    list.split_whitespace().collect()
}

/// The profile for a container holding `caps` (names like "CAP_CHOWN").
pub fn profile(caps: &[String]) -> Value {
    let has = |c: &str| caps.iter().any(|x| x == c);
    let mut syscalls = vec![json!({ "names": names(ALLOWED), "action": "SCMP_ACT_ALLOW" })];
    for personality in [0x0u64, 0x8, 0x20000, 0x20008, 0xffff_ffff] {
        syscalls.push(json!({
            "names": ["personality"], "action": "SCMP_ACT_ALLOW",
            "args": [{ "index": 0, "value": personality, "op": "SCMP_CMP_EQ" }]
        }));
    }
    let mut granted: Vec<&str> = Vec::new();
    for (cap, list) in BY_CAPABILITY {
        if has(cap) {
            granted.extend(names(list));
        }
    }
    granted.sort_unstable();
    granted.dedup();
    if !has("CAP_SYS_ADMIN") {
        syscalls.push(json!({
            "names": ["clone"], "action": "SCMP_ACT_ALLOW",
            "args": [{ "index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ" }]
        }));
        // glibc falls back to clone when clone3 is "not implemented".
        syscalls.push(json!({ "names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38 }));
    }
    if !granted.is_empty() {
        syscalls.push(json!({ "names": granted, "action": "SCMP_ACT_ALLOW" }));
    }
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": architectures(),
        "syscalls": syscalls
    })
}

/// The host's architecture and the 32-bit one it can also execute.
///
/// Docker also lists x32 on x86_64; Berth leaves it out. Debian's and
/// Ubuntu's kernels ship the x32 ABI off or not at all, and libseccomp
/// spends about 9 ms per extra architecture building every container's
/// filter (measured here: 80 ms -> 69 ms per `run --rm true`). Without it
/// in the filter, an x32 system call meets the filter's bad-architecture
/// action and the process is killed: stricter than Docker, never looser.
fn architectures() -> Vec<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "aarch64" => vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        _ => vec!["SCMP_ARCH_NATIVE"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(p: &Value, name: &str) -> bool {
        p["syscalls"].as_array().unwrap().iter().any(|s| {
            s["action"] == "SCMP_ACT_ALLOW"
                && s.get("args").is_none()
                && s["names"].as_array().unwrap().iter().any(|n| n == name)
        })
    }

    #[test]
    fn namespaces_and_keys_need_more_than_the_default_capabilities() {
        let default = profile(&["CAP_CHOWN".into(), "CAP_SYS_CHROOT".into()]);
        for denied in [
            "unshare",
            "mount",
            "keyctl",
            "add_key",
            "setns",
            "init_module",
            "clone",
        ] {
            assert!(!allowed(&default, denied), "{denied} is allowed by default");
        }
        for ok in ["read", "execve", "chroot", "ptrace"] {
            assert!(allowed(&default, ok), "{ok} is refused by default");
        }
        let admin = profile(&["CAP_SYS_ADMIN".into()]);
        assert!(allowed(&admin, "unshare") && allowed(&admin, "mount") && allowed(&admin, "clone"));
        assert!(!allowed(&admin, "keyctl"));
    }
}
