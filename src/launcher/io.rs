//! The executor of [`IoOp`]s, on the loop: child processes (awaited through
//! pidfds, output read from non-blocking pipes), watched foreign processes
//! (pidfds), and Unix stream sockets (QMP, docker). Each resource belongs
//! to an instance's [`Key<Res>`]; what happens to it comes back as an
//! [`Input`] for that instance. Nothing here blocks, and every wait has a
//! deadline.
//!
//! Tokens: resource slot `s` uses `TOKEN_BASE + 4*s + k`, `k` being 0 for
//! the pidfd or socket, 1 and 2 for a child's stdout and stderr.

use std::collections::{HashMap, VecDeque};
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::Instant;

use log::{debug, warn};
use mio::net::UnixStream;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::driver::{Input, IoOp, Key, Res, Routed, Signal, FIRST_PASSED_FD};
use crate::sys::child::{self, Child, SpawnOptions};
use crate::sys::pidfd;

/// First token used for driver resources.
pub(crate) const TOKEN_BASE: usize = 1 << 16;

/// Opens the files a child is given (read-write, close-on-exec: only the
/// child's copies survive its exec) as descriptors 3, 4, … in order. On
/// a failure the ones already opened are closed and the error names the
/// file.
fn passed_files(paths: &[PathBuf]) -> Result<Vec<(OwnedFd, RawFd)>, String> {
    paths
        .iter()
        .zip(FIRST_PASSED_FD..)
        .map(|(p, target)| {
            // std opens with O_CLOEXEC.
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(p)
                .map_err(|e| format!("cannot open {} for the child: {e}", p.display()))?;
            Ok((OwnedFd::from(f), target))
        })
        .collect()
}

enum Resource {
    Child {
        child: Child,
        deadline: Instant,
        timed_out: bool,
    },
    Watch {
        pidfd: OwnedFd,
    },
    Socket {
        stream: UnixStream,
        out: Vec<u8>,
        connected: bool,
        deadline: Option<Instant>,
        interest: Interest,
    },
}

struct Slot {
    key: Key<Res>,
    res: Resource,
}

/// The resources of every driver.
#[derive(Default)]
pub(crate) struct Io {
    slots: HashMap<usize, Slot>,
    by_key: HashMap<Key<Res>, usize>,
    next: usize,
}

impl Io {
    pub(crate) fn new() -> Io {
        Io::default()
    }

    /// True for tokens this executor owns.
    pub(crate) fn owns(token: Token) -> bool {
        token.0 >= TOKEN_BASE
    }

    /// The earliest child or connect deadline.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.slots
            .values()
            .filter_map(|s| match &s.res {
                Resource::Child {
                    deadline,
                    timed_out: false,
                    ..
                } => Some(*deadline),
                Resource::Socket {
                    deadline,
                    connected: false,
                    ..
                } => *deadline,
                _ => None,
            })
            .min()
    }

    fn alloc(&mut self, key: Key<Res>, res: Resource) -> usize {
        // Slot numbers wrap within the token space; skip live ones.
        loop {
            self.next = (self.next + 1) % ((usize::MAX - TOKEN_BASE) / 4);
            if !self.slots.contains_key(&self.next) {
                break;
            }
        }
        let s = self.next;
        self.alloc_at(s, key, res)
    }

    fn token(slot: usize, k: usize) -> Token {
        Token(TOKEN_BASE + 4 * slot + k)
    }

    /// Executes one operation. One that fails at once produces its input
    /// immediately.
    pub(crate) fn apply(
        &mut self,
        registry: &Registry,
        op: IoOp,
        now: Instant,
        out: &mut VecDeque<Routed>,
    ) {
        match op {
            IoOp::Spawn {
                key,
                argv,
                deadline,
                open,
            } => self.spawn(registry, key, &argv, &open, now + deadline, out),
            IoOp::Watch { key, pid } => self.watch(registry, key, pid, out),
            IoOp::Signal { key, signal } => self.signal(&key, signal),
            IoOp::Unwatch { key } | IoOp::Close { key } => {
                if let Some(slot) = self.by_key.get(&key).copied() {
                    self.remove(registry, slot);
                }
            }
            IoOp::Connect {
                key,
                path,
                deadline,
            } => self.connect(registry, key, &path, now + deadline, out),
            IoOp::Write { key, bytes } => self.write(registry, &key, &bytes, now, out),
        }
    }

    fn spawn(
        &mut self,
        registry: &Registry,
        key: Key<Res>,
        argv: &[std::ffi::OsString],
        open: &[PathBuf],
        deadline: Instant,
        out: &mut VecDeque<Routed>,
    ) {
        debug!("{}: running {:?}", key.inst, argv);
        let started = passed_files(open).and_then(|pass_fds| {
            let opts = SpawnOptions {
                pass_fds,
                ..SpawnOptions::default()
            };
            child::spawn(argv, opts).map_err(|e| {
                let program = argv
                    .first()
                    .map(|a| a.to_string_lossy().into_owned())
                    .unwrap_or_default();
                format!("cannot run {program}: {e}")
            })
        });
        let c = match started {
            Ok(c) => c,
            Err(error) => {
                out.push_back((
                    key.inst,
                    Input::Exited {
                        res: key.what,
                        status: None,
                        timed_out: false,
                        stdout: Vec::new(),
                        stderr: Vec::new(),
                        error,
                    },
                ));
                return;
            }
        };
        let fds = [(c.pidfd_raw(), 0), (c.stdout_raw(), 1), (c.stderr_raw(), 2)];
        let slot = self.alloc(
            key.clone(),
            Resource::Child {
                child: c,
                deadline,
                timed_out: false,
            },
        );
        for (fd, k) in fds {
            if let Err(e) =
                registry.register(&mut SourceFd(&fd), Io::token(slot, k), Interest::READABLE)
            {
                warn!("{}: cannot watch a child: {e}", key.inst);
            }
        }
    }

    fn watch(&mut self, registry: &Registry, key: Key<Res>, pid: u32, out: &mut VecDeque<Routed>) {
        let error = match pidfd::pidfd_open(pid) {
            Ok(fd) => {
                let raw = fd.as_raw_fd();
                let slot = self.alloc(key.clone(), Resource::Watch { pidfd: fd });
                match registry.register(&mut SourceFd(&raw), Io::token(slot, 0), Interest::READABLE)
                {
                    Ok(()) => return,
                    Err(e) => {
                        self.remove(registry, slot);
                        e.to_string()
                    }
                }
            }
            Err(e) => format!("process {pid}: {e}"),
        };
        out.push_back((
            key.inst,
            Input::Gone {
                res: key.what,
                error,
            },
        ));
    }

    fn signal(&mut self, key: &Key<Res>, signal: Signal) {
        let signal = match signal {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        };
        let res = self
            .by_key
            .get(key)
            .and_then(|s| self.slots.get(s))
            .map(|s| match &s.res {
                Resource::Child { child, .. } => child.signal(signal),
                Resource::Watch { pidfd } => match pidfd::pidfd_send_signal(pidfd, signal) {
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
                    r => r,
                },
                Resource::Socket { .. } => {
                    Err(io::Error::new(io::ErrorKind::InvalidInput, "not a process"))
                }
            });
        match res {
            Some(Ok(())) => debug!("{}: sent signal {signal}", key.inst),
            Some(Err(e)) => warn!("{}: cannot send signal {signal}: {e}", key.inst),
            None => debug!(
                "{}: signal {signal} for a process no longer watched",
                key.inst
            ),
        }
    }

    fn connect(
        &mut self,
        registry: &Registry,
        key: Key<Res>,
        path: &std::path::Path,
        deadline: Instant,
        out: &mut VecDeque<Routed>,
    ) {
        let error = match UnixStream::connect(path) {
            Ok(mut stream) => {
                let slot = self.next_free();
                let interest = Interest::READABLE | Interest::WRITABLE;
                match registry.register(&mut stream, Io::token(slot, 0), interest) {
                    Ok(()) => {
                        self.alloc_at(
                            slot,
                            key,
                            Resource::Socket {
                                stream,
                                out: Vec::new(),
                                connected: false,
                                deadline: Some(deadline),
                                interest,
                            },
                        );
                        return;
                    }
                    Err(e) => e.to_string(),
                }
            }
            Err(e) => format!("{}: {e}", path.display()),
        };
        out.push_back((
            key.inst,
            Input::ConnectFailed {
                res: key.what,
                error,
            },
        ));
    }

    fn write(
        &mut self,
        registry: &Registry,
        key: &Key<Res>,
        bytes: &[u8],
        now: Instant,
        out: &mut VecDeque<Routed>,
    ) {
        let Some(slot) = self.by_key.get(key).copied() else {
            debug!("{}: write to a closed socket dropped", key.inst);
            return;
        };
        if let Some(Slot {
            res: Resource::Socket { out: buf, .. },
            ..
        }) = self.slots.get_mut(&slot)
        {
            buf.extend_from_slice(bytes);
        }
        self.drive_socket(registry, slot, now, out);
    }

    fn next_free(&mut self) -> usize {
        loop {
            self.next = (self.next + 1) % ((usize::MAX - TOKEN_BASE) / 4);
            if !self.slots.contains_key(&self.next) {
                return self.next;
            }
        }
    }

    fn alloc_at(&mut self, slot: usize, key: Key<Res>, res: Resource) -> usize {
        if let Some(old) = self.by_key.insert(key.clone(), slot) {
            // A driver that opens a resource it already has: the older one
            // is closed, never leaked.
            warn!(
                "{}: {:?} opened again; closing the older one",
                key.inst, key.what
            );
            if let Some(o) = self.slots.remove(&old) {
                drop(o);
            }
        }
        self.slots.insert(slot, Slot { key, res });
        slot
    }

    /// Removes `slot` and hands its instance the last word about it, which `last` makes for
    /// the resource.
    fn remove_with(
        &mut self,
        registry: &Registry,
        slot: usize,
        out: &mut VecDeque<Routed>,
        last: impl FnOnce(Res) -> Input,
    ) {
        let Some(key) = self.slots.get(&slot).map(|s| s.key.clone()) else {
            return;
        };
        self.remove(registry, slot);
        out.push_back((key.inst, last(key.what)));
    }

    fn remove(&mut self, registry: &Registry, slot: usize) {
        let Some(s) = self.slots.remove(&slot) else {
            return;
        };
        if self.by_key.get(&s.key) == Some(&slot) {
            self.by_key.remove(&s.key);
        }
        match s.res {
            Resource::Child { child, .. } => {
                for fd in [child.pidfd_raw(), child.stdout_raw(), child.stderr_raw()] {
                    let _ = registry.deregister(&mut SourceFd(&fd));
                }
                // A live child is killed by Child's Drop (deadline passed or
                // its instance went away).
                drop(child);
            }
            Resource::Watch { pidfd } => {
                let _ = registry.deregister(&mut SourceFd(&pidfd.as_raw_fd()));
            }
            Resource::Socket { mut stream, .. } => {
                let _ = registry.deregister(&mut stream);
            }
        }
    }

    /// Handles readiness of one of our tokens.
    pub(crate) fn on_event(
        &mut self,
        registry: &Registry,
        token: Token,
        now: Instant,
        out: &mut VecDeque<Routed>,
    ) {
        let slot = (token.0 - TOKEN_BASE) / 4;
        match self.slots.get(&slot).map(|s| &s.res) {
            Some(Resource::Child { .. }) => self.drive_child(registry, slot, out),
            Some(Resource::Watch { .. }) => {
                self.remove_with(registry, slot, out, |res| Input::Gone {
                    res,
                    error: String::new(),
                })
            }
            Some(Resource::Socket { .. }) => self.drive_socket(registry, slot, now, out),
            None => {}
        }
    }

    fn drive_child(&mut self, registry: &Registry, slot: usize, out: &mut VecDeque<Routed>) {
        let Some(Slot {
            key,
            res: Resource::Child {
                child, timed_out, ..
            },
        }) = self.slots.get_mut(&slot)
        else {
            return;
        };
        let _ = child.read_output();
        let status = match child.try_wait() {
            Ok(s) => s,
            Err(e) => {
                warn!("{}: cannot wait for a child: {e}", key.inst);
                None
            }
        };
        let Some(status) = status else { return };
        // Exited: collect what is left in the pipes (a daemonised grandchild
        // may keep them open; we do not wait for it).
        let _ = child.read_output();
        let (stdout, stderr) = child.take_output();
        let input = Input::Exited {
            res: key.what,
            status: Some(status),
            timed_out: *timed_out,
            stdout,
            stderr,
            error: String::new(),
        };
        let key = key.clone();
        self.remove(registry, slot);
        out.push_back((key.inst, input));
    }

    fn drive_socket(
        &mut self,
        registry: &Registry,
        slot: usize,
        _now: Instant,
        out: &mut VecDeque<Routed>,
    ) {
        let Some(Slot {
            key,
            res:
                Resource::Socket {
                    stream,
                    out: buf,
                    connected,
                    deadline,
                    interest,
                },
        }) = self.slots.get_mut(&slot)
        else {
            return;
        };
        let key = key.clone();
        if !*connected {
            // A pending socket error, else a peer address, says how the connect went.
            let failed = match stream.take_error() {
                Ok(Some(e)) | Err(e) => Some(e),
                Ok(None) => match stream.peer_addr() {
                    Ok(_) => None,
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                    Err(e) => Some(e),
                },
            };
            if let Some(e) = failed {
                let error = e.to_string();
                return self.remove_with(registry, slot, out, |res| Input::ConnectFailed {
                    res,
                    error,
                });
            }
            *connected = true;
            *deadline = None;
            out.push_back((key.inst.clone(), Input::Connected { res: key.what }));
        }
        let mut closed = false;
        let mut chunk = [0u8; 16 << 10];
        let mut data = Vec::new();
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => data.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        while !buf.is_empty() && !closed {
            match stream.write(buf) {
                Ok(0) => closed = true,
                Ok(n) => {
                    buf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => closed = true,
            }
        }
        if !data.is_empty() {
            out.push_back((
                key.inst.clone(),
                Input::Data {
                    res: key.what,
                    bytes: data,
                },
            ));
        }
        if closed {
            return self.remove_with(registry, slot, out, |res| Input::Closed { res });
        }
        let want = if buf.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        if want != *interest {
            *interest = want;
            let _ = registry.reregister(stream, Io::token(slot, 0), want);
        }
    }

    /// Kills children past their deadline and fails late connects.
    pub(crate) fn tick(&mut self, registry: &Registry, now: Instant, out: &mut VecDeque<Routed>) {
        let due: Vec<usize> = self
            .slots
            .iter()
            .filter(|(_, s)| match &s.res {
                Resource::Child {
                    deadline,
                    timed_out: false,
                    ..
                } => now >= *deadline,
                Resource::Socket {
                    deadline: Some(d),
                    connected: false,
                    ..
                } => now >= *d,
                _ => false,
            })
            .map(|(k, _)| *k)
            .collect();
        for slot in due {
            let Some(s) = self.slots.get_mut(&slot) else {
                continue;
            };
            match &mut s.res {
                Resource::Child {
                    child, timed_out, ..
                } => {
                    warn!(
                        "{}: a child (pid {}) missed its deadline; killing it",
                        s.key.inst,
                        child.pid()
                    );
                    *timed_out = true;
                    let _ = child.kill();
                }
                Resource::Socket { .. } => {
                    self.remove_with(registry, slot, out, |res| Input::ConnectFailed {
                        res,
                        error: "connect timed out".into(),
                    })
                }
                Resource::Watch { .. } => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::InstanceKey;
    use std::time::Duration;

    /// Runs one spawn through the executor, as the loop would, until its
    /// `Exited` arrives.
    fn spawn_and_wait(script: &str, open: &[&str]) -> Input {
        let mut poll = mio::Poll::new().unwrap();
        let mut io = Io::new();
        let mut out = VecDeque::new();
        let key = Key {
            inst: InstanceKey {
                id: "io1".into(),
                generation: 1,
            },
            what: Res::Launch,
        };
        let op = IoOp::Spawn {
            key,
            argv: ["sh", "-c", script].map(Into::into).to_vec(),
            deadline: Duration::from_secs(10),
            open: open.iter().map(PathBuf::from).collect(),
        };
        io.apply(poll.registry(), op, Instant::now(), &mut out);
        let mut events = mio::Events::with_capacity(8);
        let give_up = Instant::now() + Duration::from_secs(15);
        while out.is_empty() {
            assert!(Instant::now() < give_up, "the child never ended");
            poll.poll(&mut events, Some(Duration::from_millis(200)))
                .unwrap();
            for e in events.iter() {
                io.on_event(poll.registry(), e.token(), Instant::now(), &mut out);
            }
            io.tick(poll.registry(), Instant::now(), &mut out);
        }
        out.pop_front().unwrap().1
    }

    /// The child finds the files at 3, 4, … in order, read-write; the
    /// executor's copies are not inherited elsewhere (close-on-exec).
    #[test]
    fn spawn_passes_files_as_descriptors_from_3() {
        let script = "readlink /proc/self/fd/3 /proc/self/fd/4 /proc/self/fd/5; \
                      echo x >&3 && echo written; [ -e /proc/self/fd/6 ] || echo no-6";
        let Input::Exited {
            status,
            stdout,
            stderr,
            error,
            ..
        } = spawn_and_wait(script, &["/dev/null", "/dev/zero", "/dev/null"])
        else {
            panic!("not an exit");
        };
        let text = String::from_utf8_lossy(&stdout);
        assert!(
            status.is_some_and(|s| s.success()),
            "{error} {}",
            String::from_utf8_lossy(&stderr)
        );
        assert_eq!(text, "/dev/null\n/dev/zero\n/dev/null\nwritten\nno-6\n");
    }

    /// A file that cannot be opened: nothing runs, and the error names it.
    #[test]
    fn spawn_with_a_missing_file_fails_naming_it() {
        let Input::Exited {
            status,
            stdout,
            error,
            ..
        } = spawn_and_wait("echo ran", &["/dev/null", "/nonexistent/ciao-tap"])
        else {
            panic!("not an exit");
        };
        assert_eq!(status, None);
        assert!(stdout.is_empty(), "the child must not run");
        assert!(
            error.contains("/nonexistent/ciao-tap") && error.contains("No such file"),
            "{error}"
        );
    }
}
