//! The drivers' I/O, executed on the loop: child processes (awaited through
//! pidfds, output read from non-blocking pipes), watched foreign processes
//! (pidfds), and Unix stream sockets (QMP, docker). Each resource belongs
//! to a driver [`Key`]; what happens to it comes back as an [`Input`] for
//! that key. Nothing here blocks, and every wait has a deadline.
//!
//! Tokens: resource slot `s` uses `TOKEN_BASE + 4*s + k`, `k` being 0 for
//! the pidfd or socket, 1 and 2 for a child's stdout and stderr.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use log::{debug, warn};
use mio::net::UnixStream;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use super::driver::{Effect, Input, Key};
use crate::sys::child::{self, Child, SpawnOptions};
use crate::sys::pidfd;

/// First token used for driver resources.
pub const TOKEN_BASE: usize = 1 << 16;

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
    key: Key,
    res: Resource,
}

/// The resources of every driver.
#[derive(Default)]
pub struct Io {
    slots: HashMap<usize, Slot>,
    by_key: HashMap<Key, usize>,
    next: usize,
}

impl Io {
    pub fn new() -> Io {
        Io::default()
    }

    /// True for tokens this executor owns.
    pub fn owns(token: Token) -> bool {
        token.0 >= TOKEN_BASE
    }

    /// The earliest child or connect deadline.
    pub fn deadline(&self) -> Option<Instant> {
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

    fn alloc(&mut self, key: Key, res: Resource) -> usize {
        // Slot numbers wrap within the token space; skip live ones.
        loop {
            self.next = (self.next + 1) % ((usize::MAX - TOKEN_BASE) / 4);
            if !self.slots.contains_key(&self.next) {
                break;
            }
        }
        let s = self.next;
        if let Some(old) = self.by_key.insert(key.clone(), s) {
            warn!("driver {key:?} reused a key still in use; the older resource is orphaned");
            let _ = old;
        }
        self.slots.insert(s, Slot { key, res });
        s
    }

    fn token(slot: usize, k: usize) -> Token {
        Token(TOKEN_BASE + 4 * slot + k)
    }

    /// Executes one effect (timers and frames are the daemon's business).
    /// An effect that fails at once produces its input immediately.
    pub fn apply(
        &mut self,
        registry: &Registry,
        e: Effect,
        now: Instant,
        out: &mut Vec<(Key, Input)>,
    ) {
        match e {
            Effect::Spawn {
                key,
                argv,
                deadline,
            } => {
                debug!("{}: running {:?}", key.instance, argv);
                match child::spawn(&argv, SpawnOptions::default()) {
                    Ok(c) => {
                        let slot = self.alloc(
                            key,
                            Resource::Child {
                                child: c,
                                deadline: now + deadline,
                                timed_out: false,
                            },
                        );
                        if let Some(Slot {
                            res: Resource::Child { child, .. },
                            key,
                        }) = self.slots.get(&slot)
                        {
                            let regs = [
                                (child.pidfd_raw(), 0),
                                (child.stdout_raw(), 1),
                                (child.stderr_raw(), 2),
                            ];
                            for (fd, k) in regs {
                                if let Err(e) = registry.register(
                                    &mut SourceFd(&fd),
                                    Io::token(slot, k),
                                    Interest::READABLE,
                                ) {
                                    warn!("{}: cannot watch a child: {e}", key.instance);
                                }
                            }
                        }
                    }
                    Err(e) => out.push((
                        key.clone(),
                        Input::Exited {
                            tag: key.tag,
                            status: None,
                            timed_out: false,
                            stdout: Vec::new(),
                            stderr: Vec::new(),
                            error: format!(
                                "cannot run {}: {e}",
                                argv.first()
                                    .map(|a| a.to_string_lossy().into_owned())
                                    .unwrap_or_default()
                            ),
                        },
                    )),
                }
            }
            Effect::Watch { key, pid } => match pidfd::pidfd_open(pid) {
                Ok(fd) => {
                    let raw = fd.as_raw_fd();
                    let slot = self.alloc(key.clone(), Resource::Watch { pidfd: fd });
                    if let Err(e) = registry.register(
                        &mut SourceFd(&raw),
                        Io::token(slot, 0),
                        Interest::READABLE,
                    ) {
                        self.remove(registry, slot);
                        out.push((
                            key.clone(),
                            Input::Gone {
                                tag: key.tag,
                                error: e.to_string(),
                            },
                        ));
                    }
                }
                Err(e) => out.push((
                    key.clone(),
                    Input::Gone {
                        tag: key.tag,
                        error: format!("process {pid}: {e}"),
                    },
                )),
            },
            Effect::Signal { key, signal } => {
                let res = self
                    .by_key
                    .get(&key)
                    .and_then(|s| self.slots.get(s))
                    .map(|s| match &s.res {
                        Resource::Child { child, .. } => child.signal(signal),
                        Resource::Watch { pidfd } => {
                            match pidfd::pidfd_send_signal(pidfd, signal) {
                                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
                                r => r,
                            }
                        }
                        Resource::Socket { .. } => {
                            Err(io::Error::new(io::ErrorKind::InvalidInput, "not a process"))
                        }
                    });
                match res {
                    Some(Ok(())) => debug!("{}: sent signal {signal}", key.instance),
                    Some(Err(e)) => warn!("{}: cannot send signal {signal}: {e}", key.instance),
                    None => debug!(
                        "{}: signal {signal} for a process no longer watched",
                        key.instance
                    ),
                }
            }
            Effect::Unwatch { key } | Effect::Close { key } => {
                if let Some(slot) = self.by_key.get(&key).copied() {
                    self.remove(registry, slot);
                }
            }
            Effect::Connect {
                key,
                path,
                deadline,
            } => match UnixStream::connect(&path) {
                Ok(mut stream) => {
                    let slot_key = key.clone();
                    let slot = self.next_free();
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if let Err(e) = registry.register(&mut stream, Io::token(slot, 0), interest) {
                        out.push((
                            key.clone(),
                            Input::ConnectFailed {
                                tag: key.tag,
                                error: e.to_string(),
                            },
                        ));
                        return;
                    }
                    let got = self.alloc_at(
                        slot,
                        slot_key,
                        Resource::Socket {
                            stream,
                            out: Vec::new(),
                            connected: false,
                            deadline: Some(now + deadline),
                            interest,
                        },
                    );
                    debug_assert_eq!(got, slot);
                }
                Err(e) => out.push((
                    key.clone(),
                    Input::ConnectFailed {
                        tag: key.tag,
                        error: format!("{}: {e}", path.display()),
                    },
                )),
            },
            Effect::Write { key, bytes } => {
                let Some(slot) = self.by_key.get(&key).copied() else {
                    debug!("{}: write to a closed socket dropped", key.instance);
                    return;
                };
                if let Some(Slot {
                    res: Resource::Socket { out: buf, .. },
                    ..
                }) = self.slots.get_mut(&slot)
                {
                    buf.extend_from_slice(&bytes);
                }
                self.drive_socket(registry, slot, now, out);
            }
            Effect::Send { .. } | Effect::Timer { .. } => {}
        }
    }

    fn next_free(&mut self) -> usize {
        loop {
            self.next = (self.next + 1) % ((usize::MAX - TOKEN_BASE) / 4);
            if !self.slots.contains_key(&self.next) {
                return self.next;
            }
        }
    }

    fn alloc_at(&mut self, slot: usize, key: Key, res: Resource) -> usize {
        self.by_key.insert(key.clone(), slot);
        self.slots.insert(slot, Slot { key, res });
        slot
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
    pub fn on_event(
        &mut self,
        registry: &Registry,
        token: Token,
        now: Instant,
        out: &mut Vec<(Key, Input)>,
    ) {
        let slot = (token.0 - TOKEN_BASE) / 4;
        match self.slots.get(&slot).map(|s| &s.res) {
            Some(Resource::Child { .. }) => self.drive_child(registry, slot, out),
            Some(Resource::Watch { .. }) => {
                if let Some(s) = self.slots.get(&slot) {
                    let key = s.key.clone();
                    self.remove(registry, slot);
                    out.push((
                        key.clone(),
                        Input::Gone {
                            tag: key.tag,
                            error: String::new(),
                        },
                    ));
                }
            }
            Some(Resource::Socket { .. }) => self.drive_socket(registry, slot, now, out),
            None => {}
        }
    }

    fn drive_child(&mut self, registry: &Registry, slot: usize, out: &mut Vec<(Key, Input)>) {
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
                warn!("{}: cannot wait for a child: {e}", key.instance);
                None
            }
        };
        let Some(status) = status else { return };
        // Exited: collect what is left in the pipes (a daemonised grandchild
        // may keep them open; we do not wait for it).
        let _ = child.read_output();
        let (stdout, stderr) = child.take_output();
        let input = Input::Exited {
            tag: key.tag,
            status: Some(status),
            timed_out: *timed_out,
            stdout,
            stderr,
            error: String::new(),
        };
        let key = key.clone();
        self.remove(registry, slot);
        out.push((key, input));
    }

    fn drive_socket(
        &mut self,
        registry: &Registry,
        slot: usize,
        _now: Instant,
        out: &mut Vec<(Key, Input)>,
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
            match stream.take_error() {
                Ok(Some(e)) | Err(e) => {
                    self.remove(registry, slot);
                    out.push((
                        key.clone(),
                        Input::ConnectFailed {
                            tag: key.tag,
                            error: e.to_string(),
                        },
                    ));
                    return;
                }
                Ok(None) => {}
            }
            match stream.peer_addr() {
                Ok(_) => {
                    *connected = true;
                    *deadline = None;
                    out.push((key.clone(), Input::Connected { tag: key.tag }));
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => {
                    self.remove(registry, slot);
                    out.push((
                        key.clone(),
                        Input::ConnectFailed {
                            tag: key.tag,
                            error: e.to_string(),
                        },
                    ));
                    return;
                }
            }
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
            out.push((
                key.clone(),
                Input::Data {
                    tag: key.tag,
                    bytes: data,
                },
            ));
        }
        if closed {
            self.remove(registry, slot);
            out.push((key.clone(), Input::Closed { tag: key.tag }));
            return;
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
    pub fn tick(&mut self, registry: &Registry, now: Instant, out: &mut Vec<(Key, Input)>) {
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
                        s.key.instance,
                        child.pid()
                    );
                    *timed_out = true;
                    let _ = child.kill();
                }
                Resource::Socket { .. } => {
                    let key = s.key.clone();
                    self.remove(registry, slot);
                    out.push((
                        key.clone(),
                        Input::ConnectFailed {
                            tag: key.tag,
                            error: "connect timed out".into(),
                        },
                    ));
                }
                Resource::Watch { .. } => {}
            }
        }
    }

    /// Drops every resource of an instance generation (deleted instance).
    pub fn forget(&mut self, registry: &Registry, instance: &str, generation: u64) {
        let slots: Vec<usize> = self
            .slots
            .iter()
            .filter(|(_, s)| s.key.instance == instance && s.key.generation == generation)
            .map(|(k, _)| *k)
            .collect();
        for s in slots {
            self.remove(registry, s);
        }
    }
}
