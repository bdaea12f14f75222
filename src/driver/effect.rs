//! What cores ask of the shell ([`Effect`]) and what the shell answers
//! ([`Input`]).
//!
//! The effect type is split by executor, so that each executor handles
//! exactly its kind and the compiler checks it: frames go to the SSNTP
//! client, [`TimerOp`]s to the timer heap, [`IoOp`]s to the executor of
//! children, pidfds and sockets (`launcher::io`), [`FileOp`]s to the file
//! executor (`launcher::files`). Every answer comes back as an [`Input`]
//! for the instance that owns the resource.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::keys::{InstanceKey, Job, Key, Res, Timer};
use crate::payloads::InstanceConfig;
use crate::ssntp::frame::Op;

/// Something a core asks the shell to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send an SSNTP frame to the server (the manager only).
    Send(Outgoing),
    Timer(TimerOp),
    Io(IoOp),
    File(FileOp),
    Net(NetOp),
}

/// An SSNTP frame to send: its operation and payload (the shell adds the
/// node UUID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub op: Op,
    pub payload: Vec<u8>,
}

/// Timer heap operations: one timer per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerOp {
    /// Deliver [`Input::Timer`] at `at`; an armed timer of the same key moves.
    Arm { key: Key<Timer>, at: Instant },
    /// Forget the timer of this key, if armed.
    Cancel { key: Key<Timer> },
}

/// The descriptor number at which a spawned child finds the first file of
/// [`IoOp::Spawn`]'s `open` (the next ones follow in order).
pub(crate) const FIRST_PASSED_FD: i32 = 3;

/// Children, watched processes and Unix sockets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoOp {
    /// Run a program (argument vector, never a shell); [`Input::Exited`]
    /// when it ends. It is killed when `deadline` passes. The files of
    /// `open` are opened read-write (close-on-exec) by the shell and given
    /// to the child as descriptors 3, 4, … in order (a macvtap's queues for
    /// qemu); the shell's copies are closed once the child runs. If one
    /// cannot be opened, nothing runs and the `Exited` error names it.
    Spawn {
        key: Key<Res>,
        argv: Vec<OsString>,
        deadline: Duration,
        open: Vec<PathBuf>,
    },
    /// Watch a process that is not our child (a daemonised qemu) through a
    /// pidfd; [`Input::Gone`] when it ends (at once if it is already gone).
    Watch { key: Key<Res>, pid: u32 },
    /// Send a signal through the pidfd of a watched process or a child.
    Signal { key: Key<Res>, signal: Signal },
    /// Stop watching a process (it keeps running).
    Unwatch { key: Key<Res> },
    /// Connect a Unix stream socket (QMP, docker); [`Input::Connected`] or
    /// [`Input::ConnectFailed`], then [`Input::Data`] and [`Input::Closed`].
    Connect {
        key: Key<Res>,
        path: PathBuf,
        deadline: Duration,
    },
    /// Write to a connected socket (queued until it is writable).
    Write { key: Key<Res>, bytes: Vec<u8> },
    /// Close a socket; no [`Input::Closed`] follows.
    Close { key: Key<Res> },
}

/// A file operation; [`Input::File`] answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOp {
    pub key: Key<Res>,
    pub action: FileAction,
}

/// What to do to a file. Paths are built by the cores from validated ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileAction {
    /// Create a directory with `mode`; an existing one is an error
    /// (`AlreadyExists`). Missing parents are made (0755).
    CreateDir { path: PathBuf, mode: u32 },
    /// Replace a file whole (temporary file and rename) with `mode`,
    /// making missing parents (0755). `durable`: the answer comes only once
    /// the file is on disk, so a core can report a change after it is
    /// durable (durability is batched per loop turn).
    Write {
        path: PathBuf,
        bytes: Vec<u8>,
        mode: u32,
        durable: bool,
    },
    /// Append a record (a frame of `launcher::statelog`) to the state log
    /// durably, about the instance whose directory is `dir`: answered once
    /// the log is on disk, like a durable write. The manager's only.
    Record { dir: PathBuf, frame: Vec<u8> },
    /// Succeed if nothing exists at `path` (`AlreadyExists` otherwise):
    /// [`FileAction::CreateDir`]'s check without making anything.
    CheckAbsent { path: PathBuf },
    /// Read a small file; the answer carries its bytes.
    Read { path: PathBuf },
    /// Remove a file; a missing one is fine.
    RemoveFile { path: PathBuf },
    /// Remove a directory tree without crossing into another file system
    /// (a mount inside is left alone and reported); a missing one is fine.
    RemoveTree { path: PathBuf },
}

impl FileAction {
    /// The file or directory acted on.
    pub fn path(&self) -> &Path {
        match self {
            FileAction::CreateDir { path, .. }
            | FileAction::Write { path, .. }
            | FileAction::Record { dir: path, .. }
            | FileAction::CheckAbsent { path }
            | FileAction::Read { path }
            | FileAction::RemoveFile { path }
            | FileAction::RemoveTree { path } => path,
        }
    }
}

/// A change to an instance's links; [`Input::Net`] answers it (in the
/// same turn: the kernel answers netlink requests at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetOp {
    pub key: Key<Res>,
    pub action: NetAction,
}

/// What to do to an instance's network (docs/networking.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetAction {
    /// Make the instance's vnic (and its tenant's bridge and tunnel if it
    /// is the first on this node), or find the one it has; the answer
    /// carries the [`Vnic`](super::Vnic) to attach. A failure leaves no link.
    Plug {
        config: Box<InstanceConfig>,
        /// The instance directory (a concentrator's private device node).
        dir: PathBuf,
    },
    /// Remove the instance's vnic (and its tenant's bridge and tunnel if
    /// it was the last on this node), by the instance's key: the links
    /// are recorded with it; nothing to remove is success.
    Unplug,
}

/// The signals a core may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: please end (qemu quits cleanly on it).
    Term,
    /// SIGKILL.
    Kill,
}

/// Why a file operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub kind: io::ErrorKind,
    /// The path and the system's reason, for the log.
    pub detail: String,
}

impl FileError {
    pub fn new(path: &std::path::Path, e: &io::Error) -> FileError {
        FileError {
            kind: e.kind(),
            detail: format!("{}: {e}", path.display()),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

/// What the shell reports back to the instance that owns a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A timer armed with [`TimerOp::Arm`] fired.
    Timer(Timer),
    /// A spawned program ended. `status` is `None` when it could not be
    /// started at all (`error` says why); `timed_out` when the shell killed
    /// it at its deadline. Output is the tail of what it wrote.
    Exited {
        res: Res,
        status: Option<crate::sys::pidfd::ChildStatus>,
        timed_out: bool,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        error: String,
    },
    /// A watched process is gone (or could not be watched: `error`).
    Gone { res: Res, error: String },
    /// A socket connected.
    Connected { res: Res },
    /// A socket could not connect (or its deadline passed).
    ConnectFailed { res: Res, error: String },
    /// Bytes arrived on a socket.
    Data { res: Res, bytes: Vec<u8> },
    /// The peer closed the socket, or it failed.
    Closed { res: Res },
    /// A file operation finished (the bytes of a read; empty otherwise).
    File {
        res: Res,
        result: Result<Vec<u8>, FileError>,
    },
    /// A [`NetOp`] finished: the vnic to attach after a plug (`None`
    /// after an unplug), or why it failed (the kernel's reason).
    Net {
        res: Res,
        result: Result<Option<super::Vnic>, String>,
    },
    /// A node-wide job: it is over (`lead: false`; its result is in the
    /// driver's shared state), or its leader went away and this instance
    /// must run it now (`lead: true`).
    Job { job: Job, lead: bool },
}

/// An input for one instance incarnation, as the shell produces them.
pub(crate) type Routed = (InstanceKey, Input);
