//! The signal state a container's process starts with: every signal at its
//! default action and none blocked, as under Docker (runc).
//!
//! Ignored signals and the blocked mask survive `exec`, and Berth's
//! processes between the user and the container pass theirs on: Rust
//! programs (the agent, its monitors and helpers) ignore SIGPIPE, so
//! `yes | head -1` printed "Broken pipe" errors instead of ending quietly;
//! a shell that ignores SIGQUIT passes that on to the agent it starts; the
//! VM's PID 1 blocks the signals it waits for. The container's init resets
//! all of it right before the payload is executed.

use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};

/// Signals the kernel numbers, 1 to 64 on Linux (`_NSIG`).
const LAST_SIGNAL: libc::c_int = 64;

/// Sets every signal that can be changed to its default action and
/// unblocks them all, in the calling (single-threaded) process about to
/// `exec`.
pub fn reset_to_default() -> std::io::Result<()> {
    for signal in 1..=LAST_SIGNAL {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // The kernel's own `struct sigaction`, all zero: SIG_DFL, no flags,
        // an empty mask. The raw call, because glibc refuses to touch the
        // signals it reserves (32 and 33), which can be ignored too.
        let default = [0u64; 4];
        // SAFETY: rt_sigaction reads a kernel sigaction (at most 32 bytes
        // on Linux's 64-bit targets) from `default` and writes nothing.
        let done = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signal,
                default.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
        if done != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
    Ok(())
}
