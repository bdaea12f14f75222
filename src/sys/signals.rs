//! Termination signals as readable events: `signalfd(2)`.
//!
//! The launcher's loop learns about SIGINT, SIGTERM and SIGHUP by polling a
//! signalfd, so no code runs in signal-handler context. For that the signals
//! must be *blocked* (otherwise their default action kills the process
//! before the descriptor sees them). SIGCHLD is deliberately left alone:
//! child exits are seen through pidfds (see [`super::pidfd`]), and its
//! default disposition (ignored, but not auto-reaped) is what pidfd reaping
//! needs. Never set SIGCHLD to `SIG_IGN`: the kernel would then auto-reap
//! children and a PID could be recycled before `pidfd_open` runs.
//!
//! Blocked masks are inherited through `fork` and `exec`, and a program
//! started with SIGTERM blocked ignores `kill -TERM`. `std::process::Command`
//! resets the mask in the child already (checked by a test in
//! [`super::child`]); [`unblock_all_in_child`] is there for code that needs
//! its own `pre_exec` hook anyway.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::cvt;

/// The signals that mean "shut down" (all three, as in the original).
pub(crate) const SHUTDOWN_SIGNALS: [i32; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// A non-blocking, close-on-exec signalfd for a fixed set of signals, which
/// are blocked in the calling thread.
///
/// Create it in `main` **before any other thread is started**: the mask is
/// per thread and inherited by threads created later, and a process-directed
/// signal is delivered to any thread that does not block it.
#[derive(Debug)]
pub(crate) struct SignalFd {
    fd: OwnedFd,
}

fn sigset(signals: &[i32]) -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it fully
    // before any other use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t.
    cvt(unsafe { libc::sigemptyset(&mut set) })?;
    for &s in signals {
        // SAFETY: `set` is initialised; an invalid signal number makes
        // sigaddset return -1 (EINVAL), which cvt reports.
        cvt(unsafe { libc::sigaddset(&mut set, s) })?;
    }
    Ok(set)
}

impl SignalFd {
    /// Blocks `signals` in the calling thread and returns a signalfd that
    /// reports them.
    pub(crate) fn new(signals: &[i32]) -> io::Result<SignalFd> {
        let set = sigset(signals)?;
        // SAFETY: `set` is an initialised sigset_t; the old mask is not
        // wanted (null). pthread_sigmask returns an errno value, not -1.
        let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        // SAFETY: -1 asks for a new descriptor; `set` is initialised.
        let fd = cvt(unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) })?;
        // SAFETY: the descriptor was just created for us and has no other
        // owner.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(SignalFd { fd })
    }

    /// [`SignalFd::new`] for [`SHUTDOWN_SIGNALS`].
    pub(crate) fn shutdown_signals() -> io::Result<SignalFd> {
        SignalFd::new(&SHUTDOWN_SIGNALS)
    }

    /// The next pending signal number, or `None` when none is pending.
    /// Call until `None` after each readiness event (mio is edge-triggered).
    pub(crate) fn read(&self) -> io::Result<Option<i32>> {
        // SAFETY: signalfd_siginfo is plain data; all-zero is valid.
        let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::signalfd_siginfo>();
        loop {
            // SAFETY: `info` is a writable buffer of exactly `size` bytes
            // that outlives the call.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            match cvt(n) {
                Ok(n) if n as usize == size => {
                    return Ok(i32::try_from(info.ssi_signo).ok());
                }
                Ok(_) => return Err(io::Error::other("short read from signalfd")),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}

impl SignalFd {
    /// A new `mio::Poll` that reports these signals at `token`: how each event loop starts.
    /// The error says which of the two steps failed.
    pub(crate) fn new_poll(&self, token: mio::Token) -> Result<mio::Poll, String> {
        let poll = mio::Poll::new().map_err(|e| format!("cannot create poll: {e}"))?;
        poll.registry()
            .register(
                &mut mio::unix::SourceFd(&self.as_raw_fd()),
                token,
                mio::Interest::READABLE,
            )
            .map_err(|e| format!("cannot watch signals: {e}"))?;
        Ok(poll)
    }
}

impl AsRawFd for SignalFd {
    /// For registration with `mio::unix::SourceFd`.
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Empties the calling thread's signal mask.
///
/// Async-signal-safe, so it may run in `Command::pre_exec` between `fork`
/// and `exec`.
pub(crate) fn unblock_all_in_child() -> io::Result<()> {
    let set = sigset(&[])?;
    // SAFETY: `set` is an initialised (empty) sigset_t.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    Ok(())
}

/// The calling thread's blocked-signal mask contains `sig`.
#[cfg(test)]
pub(crate) fn is_blocked(sig: i32) -> io::Result<bool> {
    // SAFETY: plain data, filled in by pthread_sigmask below.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: a null new set only queries; `old` is writable.
    let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut old) };
    if r != 0 {
        return Err(io::Error::from_raw_os_error(r));
    }
    // SAFETY: `old` was initialised by pthread_sigmask.
    Ok(cvt(unsafe { libc::sigismember(&old, sig) })? == 1)
}

/// Sends `sig` to the calling thread only (for tests and self-checks).
#[cfg(test)]
pub(crate) fn raise_in_this_thread(sig: i32) -> io::Result<()> {
    // SAFETY: raise(3) sends to the calling thread; no memory involved.
    cvt(unsafe { libc::raise(sig) })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each test runs in its own thread (the test harness), so blocking a
    // signal here and raising it at this thread does not disturb others.
    #[test]
    fn reports_a_raised_signal() {
        std::thread::spawn(|| {
            let sfd = SignalFd::new(&[libc::SIGUSR2]).unwrap();
            assert!(is_blocked(libc::SIGUSR2).unwrap());
            assert_eq!(sfd.read().unwrap(), None);
            raise_in_this_thread(libc::SIGUSR2).unwrap();
            assert_eq!(sfd.read().unwrap(), Some(libc::SIGUSR2));
            assert_eq!(sfd.read().unwrap(), None);
            unblock_all_in_child().unwrap();
            assert!(!is_blocked(libc::SIGUSR2).unwrap());
        })
        .join()
        .unwrap();
    }

    #[test]
    fn works_with_mio() {
        std::thread::spawn(|| {
            let sfd = SignalFd::new(&[libc::SIGUSR1]).unwrap();
            let mut poll = mio::Poll::new().unwrap();
            let raw = sfd.as_raw_fd();
            poll.registry()
                .register(
                    &mut mio::unix::SourceFd(&raw),
                    mio::Token(1),
                    mio::Interest::READABLE,
                )
                .unwrap();
            raise_in_this_thread(libc::SIGUSR1).unwrap();
            let mut events = mio::Events::with_capacity(4);
            poll.poll(&mut events, Some(std::time::Duration::from_secs(5)))
                .unwrap();
            assert!(events.iter().any(|e| e.token() == mio::Token(1)));
            assert_eq!(sfd.read().unwrap(), Some(libc::SIGUSR1));
        })
        .join()
        .unwrap();
    }
}
