//! Process file descriptors (Linux 5.4+).
//!
//! A pidfd names one process for its whole life, so signalling or waiting
//! through it can never hit a recycled PID. It becomes readable (`EPOLLIN`)
//! when the process exits, which is how the event loop learns about exits
//! without `SIGCHLD`: register it with `mio::unix::SourceFd`. This works for
//! our own children and for processes that are not our children (the
//! daemonised qemu, adopted from its pidfile), although only children can be
//! reaped with [`waitid_pidfd`].

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::cvt;

/// How a child process ended, as `waitid` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildStatus {
    /// Normal exit with this status (0..=255).
    Exited(i32),
    /// Killed by this signal (a core dump is folded in here).
    Signaled(i32),
}

impl ChildStatus {
    /// True for `Exited(0)`.
    pub fn success(&self) -> bool {
        *self == ChildStatus::Exited(0)
    }

    /// The exit status, `None` when killed by a signal.
    pub fn code(&self) -> Option<i32> {
        match *self {
            ChildStatus::Exited(c) => Some(c),
            ChildStatus::Signaled(_) => None,
        }
    }

    /// The shell convention: the exit status, or 128 + signal number.
    pub fn as_shell_status(&self) -> i32 {
        match *self {
            ChildStatus::Exited(c) => c,
            ChildStatus::Signaled(s) => 128 + s,
        }
    }
}

impl fmt::Display for ChildStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ChildStatus::Exited(c) => write!(f, "exit status {c}"),
            ChildStatus::Signaled(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// `pidfd_open(2)`: a close-on-exec pidfd for `pid`.
///
/// Fails with `ESRCH` when no such process exists (already exited and
/// reaped). A pidfd obtained for a process that is then reaped by someone
/// else still becomes readable, and signals sent through it fail with
/// `ESRCH` instead of hitting a new process with the same PID.
pub(crate) fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "PID out of range"))?;
    // SAFETY: the pidfd_open syscall takes a pid and a flags word (0 gives a
    // close-on-exec descriptor); it touches no memory of ours.
    let fd = cvt(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) })?;
    let fd = libc::c_int::try_from(fd)
        .map_err(|_| io::Error::other("pidfd_open returned an out-of-range descriptor"))?;
    // SAFETY: the kernel just returned this descriptor to us and nothing
    // else owns it, so OwnedFd may take ownership and close it on drop.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_send_signal(2)`: sends `sig` to the process behind `fd`.
///
/// `ESRCH` means the process has already exited.
pub(crate) fn pidfd_send_signal(fd: &OwnedFd, sig: i32) -> io::Result<()> {
    // SAFETY: the descriptor is valid for the borrow; a null siginfo pointer
    // asks the kernel to fill in the defaults (as kill(2) would); flags 0.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0 as libc::c_uint,
        )
    })?;
    Ok(())
}

/// Reaps our child behind `fd` if it has exited: `waitid(P_PIDFD, fd,
/// WEXITED | WNOHANG)`.
///
/// `Ok(None)`: still running. `Ok(Some(status))`: it exited and is now
/// reaped (a second call then fails with `ECHILD`). `ECHILD` is also what a
/// pidfd of a process that is not our child gives.
pub(crate) fn waitid_pidfd(fd: &OwnedFd) -> io::Result<Option<ChildStatus>> {
    // SAFETY: siginfo_t is plain old data for which all-zero is valid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let id = libc::id_t::try_from(fd.as_raw_fd())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad pidfd"))?;
    loop {
        // SAFETY: `info` is a valid, writable siginfo_t that outlives the
        // call; the descriptor is valid for the borrow.
        let r =
            unsafe { libc::waitid(libc::P_PIDFD, id, &mut info, libc::WEXITED | libc::WNOHANG) };
        match cvt(r) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    // SAFETY: waitid filled `info` in (or left it zeroed under WNOHANG when
    // nothing changed, which si_pid() == 0 reports); reading the SIGCHLD
    // union fields is what waitid's contract allows.
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some(match info.si_code {
        libc::CLD_EXITED => ChildStatus::Exited(status),
        _ => ChildStatus::Signaled(status),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    // The children are reaped through their pidfds, which clippy cannot see.
    #[test]
    #[allow(clippy::zombie_processes)]
    fn open_signal_reap() {
        let child = Command::new("sleep").arg("30").spawn().unwrap();
        let fd = pidfd_open(child.id()).unwrap();
        assert_eq!(waitid_pidfd(&fd).unwrap(), None);
        pidfd_send_signal(&fd, libc::SIGTERM).unwrap();
        let status = loop {
            if let Some(s) = waitid_pidfd(&fd).unwrap() {
                break s;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(status, ChildStatus::Signaled(libc::SIGTERM));
        assert_eq!(status.as_shell_status(), 128 + 15);
        // Reaped: a second wait says ECHILD, a signal says ESRCH.
        assert!(waitid_pidfd(&fd).is_err());
        let e = pidfd_send_signal(&fd, libc::SIGTERM).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESRCH));
    }

    #[test]
    #[allow(clippy::zombie_processes)]
    fn exit_code() {
        let child = Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
        let fd = pidfd_open(child.id()).unwrap();
        let status = loop {
            if let Some(s) = waitid_pidfd(&fd).unwrap() {
                break s;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(status, ChildStatus::Exited(7));
        assert_eq!(status.code(), Some(7));
        assert!(!status.success());
        assert_eq!(status.to_string(), "exit status 7");
    }

    #[test]
    fn no_such_process() {
        assert!(pidfd_open(u32::MAX).is_err());
    }
}
