//! Async reads and writes on raw descriptors tokio has no type for: a pty
//! master (not a FIFO, so not a `tokio::net::unix::pipe`), pipes handed to
//! containers, and a pidfd that turns readable when its process exits.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use tokio::io::unix::AsyncFd;

/// A non-blocking descriptor driven by tokio's reactor.
pub struct Fd(AsyncFd<OwnedFd>);

impl Fd {
    /// Takes `fd`, makes it non-blocking and registers it.
    pub fn new(fd: OwnedFd) -> io::Result<Fd> {
        let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        // SAFETY: an OwnedFd stays open, and is the same descriptor, for
        // as long as the AsyncFd owns it.
        unsafe { AsyncFd::register(fd) }
            .map(Fd)
            .map_err(|e| io::Error::other(e.to_string()))
    }

    /// Reads some bytes; 0 means the other side is gone (a pty's EIO
    /// included).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.0.readable().await?;
            match guard.try_io(|fd| nix::unistd::read(fd.as_raw_fd(), buf).map_err(io::Error::from))
            {
                Ok(Ok(n)) => return Ok(n),
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes all of `data`.
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.0.writable().await?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Waits until the descriptor is readable (a pidfd: its process exited).
    pub async fn readable(&self) -> io::Result<()> {
        let mut guard = self.0.readable().await?;
        guard.retain_ready();
        Ok(())
    }

    /// The raw descriptor (for ioctls).
    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// A pidfd for `pid`: readable once the process has exited.
pub fn pidfd(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sets a terminal's window size.
pub fn set_window_size(fd: RawFd, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receives one descriptor sent with SCM_RIGHTS over a Unix socket.
pub fn receive_fd(socket: RawFd) -> io::Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        socket,
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(fd) = fds.first() {
                // SAFETY: SCM_RIGHTS just installed this descriptor for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "no descriptor was sent on the console socket",
    ))
}

/// Makes a child see each `(descriptor, number)` pair at that number (3
/// and up), open across its exec. The descriptors are first copied above
/// every target number, so one pair can never overwrite another's source.
/// The returned copies must live until the child is spawned.
pub fn pass_fds(
    cmd: &mut std::process::Command,
    fds: &[(RawFd, RawFd)],
) -> io::Result<Vec<OwnedFd>> {
    use std::os::unix::process::CommandExt;
    let above = fds.iter().map(|(_, n)| *n).max().unwrap_or(2) + 1;
    let mut copies = Vec::with_capacity(fds.len());
    let mut pairs = Vec::with_capacity(fds.len());
    for (fd, target) in fds {
        let copy = fcntl(*fd, FcntlArg::F_DUPFD_CLOEXEC(above))?;
        // SAFETY: fcntl just made this descriptor for us alone.
        copies.push(unsafe { OwnedFd::from_raw_fd(copy) });
        pairs.push((copy, *target));
    }
    // SAFETY: only dup2, which is async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for (copy, target) in &pairs {
                // dup2 leaves the new descriptor without FD_CLOEXEC.
                if libc::dup2(*copy, *target) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    Ok(copies)
}
