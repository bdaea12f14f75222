//! Child processes for the event loop: a pidfd to learn about the exit,
//! non-blocking output pipes, no blocking wait anywhere.
//!
//! The shell registers three descriptors of a [`Child`] with mio
//! ([`Child::pidfd_raw`], [`Child::stdout_raw`], [`Child::stderr_raw`]),
//! calls [`Child::read_output`] whenever a pipe is readable and
//! [`Child::try_wait`] when the pidfd is. Output is kept in a bounded
//! buffer (the tail survives), so a chatty tool cannot grow the daemon.
//!
//! Spawning goes through `std::process::Command`, which already resets the
//! signal mask in the child (so tools and qemu see SIGTERM even though the
//! launcher blocks it for its signalfd; a test below checks this). The
//! pidfd is opened right after `spawn`: the PID cannot be recycled in
//! between, because only we can reap our child and we have not.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::cvt;
use super::pidfd::{pidfd_open, pidfd_send_signal, waitid_pidfd, ChildStatus};

/// Default size of each output buffer: the last 64 KiB are kept.
pub(crate) const DEFAULT_OUTPUT_CAP: usize = 64 * 1024;

/// How to start a child. `Default` gives: inherited environment and
/// working directory, a new process group, 64 KiB output tails.
#[derive(Debug)]
pub(crate) struct SpawnOptions {
    /// Start from an empty environment instead of the launcher's.
    pub env_clear: bool,
    /// Variables to set (after clearing, if asked).
    pub env: Vec<(OsString, OsString)>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Bytes of stdout and of stderr to keep (each; the tail is kept).
    pub output_cap: usize,
    /// Put the child in its own process group, so a Ctrl-C on the
    /// launcher's terminal does not also hit `qemu-img` or a starting qemu.
    pub new_process_group: bool,
    /// Descriptors to pass: each `(fd, target)` appears as `target` in the
    /// child without close-on-exec (qemu gets macvtap fds at 3..6 this way).
    /// Targets must be distinct and not 0, 1 or 2; a target may be another
    /// pair's source (the sources are moved out of the way first). They
    /// are closed in the parent once the child runs, or on failure.
    pub pass_fds: Vec<(OwnedFd, RawFd)>,
}

impl Default for SpawnOptions {
    fn default() -> SpawnOptions {
        SpawnOptions {
            env_clear: false,
            env: Vec::new(),
            cwd: None,
            output_cap: DEFAULT_OUTPUT_CAP,
            new_process_group: true,
            pass_fds: Vec::new(),
        }
    }
}

/// A byte buffer that keeps at most `cap` bytes: the most recent ones.
#[derive(Debug, Clone, Default)]
pub(crate) struct TailBuf {
    buf: Vec<u8>,
    cap: usize,
    dropped: u64,
}

impl TailBuf {
    /// An empty buffer keeping at most `cap` bytes.
    pub(crate) fn new(cap: usize) -> TailBuf {
        TailBuf {
            buf: Vec::new(),
            cap,
            dropped: 0,
        }
    }

    /// Appends, discarding the oldest bytes beyond the cap.
    pub(crate) fn push(&mut self, data: &[u8]) {
        if data.len() >= self.cap {
            self.dropped += (self.buf.len() + data.len() - self.cap) as u64;
            self.buf.clear();
            self.buf.extend_from_slice(&data[data.len() - self.cap..]);
            return;
        }
        let over = (self.buf.len() + data.len()).saturating_sub(self.cap);
        if over > 0 {
            self.buf.drain(..over);
            self.dropped += over as u64;
        }
        self.buf.extend_from_slice(data);
    }

    /// The kept bytes.
    #[cfg(test)]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// How many bytes were discarded from the front.
    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The kept bytes as text (lossy), prefixed with `[N bytes dropped]`
    /// when the head was cut: for log lines and error reasons.
    #[cfg(test)]
    pub(crate) fn to_text(&self) -> String {
        let s = String::from_utf8_lossy(&self.buf);
        if self.dropped > 0 {
            format!("[{} bytes dropped] {s}", self.dropped)
        } else {
            s.into_owned()
        }
    }

    /// Takes the kept bytes out, leaving the buffer empty.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

#[derive(Debug)]
struct Pipe {
    file: File,
    buf: TailBuf,
    eof: bool,
}

impl Pipe {
    fn new(fd: OwnedFd, cap: usize) -> io::Result<Pipe> {
        set_nonblocking(&fd)?;
        Ok(Pipe {
            file: File::from(fd),
            buf: TailBuf::new(cap),
            eof: false,
        })
    }

    /// Reads until the pipe would block or reaches end of file.
    fn drain(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        while !self.eof {
            match self.file.read(&mut chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => self.buf.push(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// Sets `O_NONBLOCK` on a descriptor.
pub(crate) fn set_nonblocking(fd: &impl AsRawFd) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor we hold; F_GETFL takes no argument.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: as above; F_SETFL takes an int.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
    Ok(())
}

/// A running (or exited, not yet collected) child with its pidfd and
/// output pipes. Stdin is `/dev/null`.
///
/// Drop it only after [`Child::try_wait`] returned `Some`: dropping a live
/// child sends it SIGKILL and tries once to reap it without blocking; if it
/// has not died yet, a zombie remains (logged).
#[derive(Debug)]
pub(crate) struct Child {
    pid: u32,
    pidfd: OwnedFd,
    stdout: Pipe,
    stderr: Pipe,
    status: Option<ChildStatus>,
}

/// Starts `argv[0]` (looked up in `PATH` when it has no `/`) with the rest
/// of `argv` as arguments. Nothing passes through a shell.
pub(crate) fn spawn(argv: &[OsString], opts: SpawnOptions) -> io::Result<Child> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty argument vector"))?;
    let mut cmd = Command::new(prog);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if opts.env_clear {
        cmd.env_clear();
    }
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    if let Some(d) = &opts.cwd {
        cmd.current_dir(d);
    }
    if opts.new_process_group {
        cmd.process_group(0);
    }
    if !opts.pass_fds.is_empty() {
        let targets: Vec<RawFd> = opts.pass_fds.iter().map(|&(_, t)| t).collect();
        if targets.iter().any(|&t| t <= 2) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot pass a descriptor as stdin, stdout or stderr",
            ));
        }
        if (1..targets.len()).any(|i| targets[..i].contains(&targets[i])) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "two descriptors passed as the same number",
            ));
        }
        // Above every target: where the sources are moved first.
        let above = targets.iter().max().map_or(3, |t| t + 1);
        let mut pairs: Vec<(RawFd, RawFd)> = opts
            .pass_fds
            .iter()
            .map(|(fd, t)| (fd.as_raw_fd(), *t))
            .collect();
        // SAFETY: the hook runs between fork and exec in the child and only
        // calls async-signal-safe functions (fcntl, dup2, pthread_sigmask)
        // on descriptors that the parent keeps open until spawn returns; it
        // rewrites its own copy of `pairs` in place, without allocating.
        unsafe {
            cmd.pre_exec(move || {
                // Every source first moves above all targets (close-on-exec
                // copies), so that placing one never overwrites another's
                // source; dup2 then clears close-on-exec on the target.
                for pair in pairs.iter_mut() {
                    pair.0 = cvt(libc::fcntl(pair.0, libc::F_DUPFD_CLOEXEC, above))?;
                }
                for &(src, target) in &pairs {
                    cvt(libc::dup2(src, target))?;
                }
                super::signals::unblock_all_in_child()
            });
        }
    }
    let mut std_child = cmd.spawn()?;
    // The passed descriptors are the child's now; close our copies.
    drop(opts.pass_fds);
    let pid = std_child.id();
    let out = std_child.stdout.take().map(OwnedFd::from);
    let err = std_child.stderr.take().map(OwnedFd::from);
    // `std_child` is dropped without waiting: we reap through the pidfd.
    drop(std_child);
    let pidfd = match pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) => {
            // SAFETY: kill(2) on our own unreaped child's PID, which cannot
            // have been recycled; then a blocking reap of a killed child.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
                libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), 0);
            }
            return Err(e);
        }
    };
    let missing = || io::Error::other("child pipe missing");
    Ok(Child {
        pid,
        pidfd,
        stdout: Pipe::new(out.ok_or_else(missing)?, opts.output_cap)?,
        stderr: Pipe::new(err.ok_or_else(missing)?, opts.output_cap)?,
        status: None,
    })
}

impl Child {
    /// The child's PID.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The pidfd as a raw descriptor, for `mio::unix::SourceFd`.
    pub(crate) fn pidfd_raw(&self) -> RawFd {
        self.pidfd.as_raw_fd()
    }

    /// The stdout pipe (non-blocking), for `mio::unix::SourceFd`.
    pub(crate) fn stdout_raw(&self) -> RawFd {
        self.stdout.file.as_raw_fd()
    }

    /// The stderr pipe (non-blocking), for `mio::unix::SourceFd`.
    pub(crate) fn stderr_raw(&self) -> RawFd {
        self.stderr.file.as_raw_fd()
    }

    /// Reads whatever both pipes hold now, without blocking, until each
    /// would block or ends. Returns true once both have reached end of file
    /// (every writer, including grandchildren such as a daemonised qemu,
    /// has closed them). The pipes stay open until the `Child` is dropped,
    /// so deregister them from mio before dropping.
    pub(crate) fn read_output(&mut self) -> io::Result<bool> {
        self.stdout.drain()?;
        self.stderr.drain()?;
        Ok(self.output_done())
    }

    /// Both pipes have reached end of file.
    pub(crate) fn output_done(&self) -> bool {
        self.stdout.eof && self.stderr.eof
    }

    /// What the child wrote to stdout so far (the tail, see `output_cap`).
    #[cfg(test)]
    pub(crate) fn stdout(&self) -> &TailBuf {
        &self.stdout.buf
    }

    /// What the child wrote to stderr so far.
    #[cfg(test)]
    pub(crate) fn stderr(&self) -> &TailBuf {
        &self.stderr.buf
    }

    /// Takes (stdout, stderr) out, leaving both buffers empty.
    pub(crate) fn take_output(&mut self) -> (Vec<u8>, Vec<u8>) {
        (self.stdout.buf.take(), self.stderr.buf.take())
    }

    /// Reaps the child if it has exited (never blocks). Once `Some`, later
    /// calls return the same status.
    pub(crate) fn try_wait(&mut self) -> io::Result<Option<ChildStatus>> {
        if self.status.is_none() {
            self.status = waitid_pidfd(&self.pidfd)?;
        }
        Ok(self.status)
    }

    /// Sends `sig`. Succeeds quietly when the child has already exited.
    pub(crate) fn signal(&self, sig: i32) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        match pidfd_send_signal(&self.pidfd, sig) {
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            r => r,
        }
    }

    /// SIGKILL.
    pub(crate) fn kill(&self) -> io::Result<()> {
        self.signal(libc::SIGKILL)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        let _ = self.kill();
        match waitid_pidfd(&self.pidfd) {
            Ok(Some(_)) => {}
            _ => log::warn!(
                "child process {} dropped before it was reaped; killed, may linger as a zombie",
                self.pid
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;
    use std::time::{Duration, Instant};

    /// [`spawn`] for string arguments, with default options.
    fn spawn_simple<S: AsRef<OsStr>>(argv: &[S]) -> io::Result<Child> {
        let v: Vec<OsString> = argv.iter().map(|a| a.as_ref().to_os_string()).collect();
        spawn(&v, SpawnOptions::default())
    }

    fn wait_readable(fd: RawFd, within: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, within.as_millis() as i32) > 0 }
    }

    /// Spawns `sh -c script`.
    fn sh(script: &str, opts: SpawnOptions) -> Child {
        let argv: Vec<OsString> = ["sh", "-c", script].iter().map(OsString::from).collect();
        spawn(&argv, opts).unwrap()
    }

    /// Drives a child as the event loop would: poll on pidfd and pipes.
    fn run_to_end(c: &mut Child) -> ChildStatus {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut poll = mio::Poll::new().unwrap();
        for (fd, t) in [(c.pidfd_raw(), 0), (c.stdout_raw(), 1), (c.stderr_raw(), 2)] {
            poll.registry()
                .register(
                    &mut mio::unix::SourceFd(&fd),
                    mio::Token(t),
                    mio::Interest::READABLE,
                )
                .unwrap();
        }
        let mut events = mio::Events::with_capacity(8);
        loop {
            assert!(Instant::now() < deadline, "child did not finish");
            poll.poll(&mut events, Some(Duration::from_millis(500)))
                .unwrap();
            c.read_output().unwrap();
            if let Some(s) = c.try_wait().unwrap() {
                if c.read_output().unwrap() {
                    return s;
                }
            }
        }
    }

    #[test]
    fn status_and_both_outputs() {
        let mut c = spawn_simple(&["sh", "-c", "echo out; echo err >&2; exit 3"]).unwrap();
        assert!(c.pid() > 0);
        let s = run_to_end(&mut c);
        assert_eq!(s, ChildStatus::Exited(3));
        assert_eq!(c.stdout().as_bytes(), b"out\n");
        assert_eq!(c.stderr().as_bytes(), b"err\n");
        assert_eq!(c.try_wait().unwrap(), Some(s));
        assert_eq!(c.take_output(), (b"out\n".to_vec(), b"err\n".to_vec()));
    }

    #[test]
    fn sleeper_is_killed() {
        let mut c = spawn_simple(&["sleep", "30"]).unwrap();
        assert_eq!(c.try_wait().unwrap(), None);
        assert!(!wait_readable(c.pidfd_raw(), Duration::from_millis(50)));
        c.kill().unwrap();
        assert!(wait_readable(c.pidfd_raw(), Duration::from_secs(5)));
        assert_eq!(
            c.try_wait().unwrap(),
            Some(ChildStatus::Signaled(libc::SIGKILL))
        );
        c.kill().unwrap(); // already gone: quiet
    }

    #[test]
    fn output_is_bounded_to_the_tail() {
        let opts = SpawnOptions {
            output_cap: 1000,
            ..SpawnOptions::default()
        };
        let mut c = sh(
            "i=0; while [ $i -lt 500 ]; do echo line$i; i=$((i+1)); done",
            opts,
        );
        assert!(run_to_end(&mut c).success());
        let out = c.stdout();
        assert_eq!(out.as_bytes().len(), 1000);
        assert!(out.as_bytes().ends_with(b"line499\n"));
        assert!(out.dropped() > 0);
        assert!(out.to_text().starts_with('['));
    }

    #[test]
    fn env_cwd_and_missing_program() {
        let opts = SpawnOptions {
            env_clear: true,
            env: vec![
                ("CIAO_X".into(), "42".into()),
                ("PATH".into(), "/usr/bin:/bin".into()),
            ],
            cwd: Some("/".into()),
            ..SpawnOptions::default()
        };
        let mut c = sh("echo $CIAO_X; pwd; echo ${HOME:-nohome}", opts);
        assert!(run_to_end(&mut c).success());
        assert_eq!(c.stdout().as_bytes(), b"42\n/\nnohome\n");
        assert!(spawn_simple(&["/no/such/program"]).is_err());
        assert!(spawn(&[], SpawnOptions::default()).is_err());
    }

    /// The launcher blocks SIGTERM for its signalfd; children must not
    /// inherit that, or qemu would ignore `kill -TERM`.
    #[test]
    fn children_start_with_empty_signal_mask() {
        std::thread::spawn(|| {
            let _sfd = crate::sys::signals::SignalFd::shutdown_signals().unwrap();
            assert!(crate::sys::signals::is_blocked(libc::SIGTERM).unwrap());
            for pass in [false, true] {
                let mut opts = SpawnOptions::default();
                if pass {
                    // Forces the pre_exec path as well.
                    let f = File::open("/dev/null").unwrap();
                    opts.pass_fds.push((OwnedFd::from(f), 5));
                }
                let mut c = sh("grep SigBlk /proc/self/status; ls /proc/self/fd", opts);
                assert!(run_to_end(&mut c).success());
                let text = c.stdout().to_text();
                assert!(text.contains("SigBlk:\t0000000000000000"), "{text}");
                if pass {
                    assert!(text.lines().any(|l| l == "5"), "{text}");
                }
            }
        })
        .join()
        .unwrap();
    }

    /// Two descriptors passed crosswise, each as the other's number: each
    /// arrives whole (placing the first must not overwrite the second).
    #[test]
    fn passed_descriptors_may_swap_numbers() {
        let a = OwnedFd::from(File::open("/dev/null").unwrap());
        let b = OwnedFd::from(File::open("/proc/self/exe").unwrap());
        let (na, nb) = (a.as_raw_fd(), b.as_raw_fd());
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let opts = SpawnOptions {
            pass_fds: vec![(a, nb), (b, na)],
            ..SpawnOptions::default()
        };
        let mut c = sh(
            &format!("readlink /proc/self/fd/{nb} /proc/self/fd/{na}"),
            opts,
        );
        assert!(run_to_end(&mut c).success(), "{}", c.stderr().to_text());
        assert_eq!(
            c.stdout().to_text(),
            format!("/dev/null\n{}\n", exe.display())
        );
        let dup = SpawnOptions {
            pass_fds: vec![
                (OwnedFd::from(File::open("/dev/null").unwrap()), 7),
                (OwnedFd::from(File::open("/dev/null").unwrap()), 7),
            ],
            ..SpawnOptions::default()
        };
        assert!(spawn(&["true".into()], dup).is_err());
    }
}
