//! Instance drivers: the part of an instance that talks to a virtualiser
//! (simulation, qemu, docker), as step machines.
//!
//! A driver never performs I/O itself and never blocks. It asks the shell
//! for work through [`Effect`]s pushed into its [`Cx`], and learns what
//! happened through [`Input`]s; it tells the instance manager how an
//! operation went through [`Outcome`]s. Every effect carries the
//! instance's generation, so a late answer for a deleted instance, or for
//! an instance re-created under the same UUID, is recognised and dropped.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::payloads::{InstanceConfig, StartFailureReason};
use crate::ssntp::frame::Op;

/// Identifies what a timer or job belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub instance: String,
    pub generation: u64,
    /// Driver-defined meaning.
    pub tag: u32,
}

/// What a driver (or the manager) asks the shell to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send an SSNTP frame to the server (dropped while disconnected).
    Send { op: Op, payload: Vec<u8> },
    /// Deliver `Input::Timer` for `key` at `at`.
    Timer { key: Key, at: Instant },
    /// Run a program (argument vector, never a shell); `Input::Exited`
    /// when it ends. It is killed when `deadline` passes.
    Spawn {
        key: Key,
        argv: Vec<OsString>,
        deadline: Duration,
    },
    /// Watch a process that is not our child (a daemonised qemu) through a
    /// pidfd; `Input::Gone` when it ends (at once if it is already gone).
    Watch { key: Key, pid: u32 },
    /// Send a signal through the pidfd of a watched process or a child.
    Signal { key: Key, signal: i32 },
    /// Stop watching a process (it keeps running).
    Unwatch { key: Key },
    /// Connect a Unix stream socket (QMP, docker); `Input::Connected` or
    /// `Input::ConnectFailed`, then `Input::Data` and `Input::Closed`.
    Connect {
        key: Key,
        path: PathBuf,
        deadline: Duration,
    },
    /// Write to a connected socket (queued until it is writable).
    Write { key: Key, bytes: Vec<u8> },
    /// Close a socket; no `Input::Closed` follows.
    Close { key: Key },
}

/// What the shell reports back to a driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A timer armed with `Effect::Timer` fired.
    Timer { tag: u32 },
    /// A spawned program ended. `status` is `None` when it could not be
    /// started at all (`error` says why); `timed_out` when the shell killed
    /// it at its deadline. Output is the tail of what it wrote.
    Exited {
        tag: u32,
        status: Option<crate::sys::pidfd::ChildStatus>,
        timed_out: bool,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        error: String,
    },
    /// A watched process is gone (or could not be watched: `error`).
    Gone { tag: u32, error: String },
    /// A socket connected.
    Connected { tag: u32 },
    /// A socket could not connect (or its deadline passed).
    ConnectFailed { tag: u32, error: String },
    /// Bytes arrived on a socket.
    Data { tag: u32, bytes: Vec<u8> },
    /// The peer closed the socket, or it failed.
    Closed { tag: u32 },
}

impl Input {
    /// The driver-defined tag this input answers.
    pub fn tag(&self) -> u32 {
        match self {
            Input::Timer { tag }
            | Input::Exited { tag, .. }
            | Input::Gone { tag, .. }
            | Input::Connected { tag }
            | Input::ConnectFailed { tag, .. }
            | Input::Data { tag, .. }
            | Input::Closed { tag } => *tag,
        }
    }
}

/// How an operation (or the instance) went, as the manager needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// START/RESTART: the VM or container was launched (not yet confirmed up).
    Launched,
    /// The instance is up (after a launch or at recovery).
    Running,
    /// START/RESTART failed; `reason` is the StartFailure reason.
    StartFailed {
        reason: StartFailureReason,
        detail: String,
    },
    /// The instance is not running (stopped, crashed, or found dead).
    Exited,
    /// DELETE: everything the driver owned is gone.
    Destroyed,
}

/// Resource use of one instance; -1 means unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub memory_mb: i64,
    pub disk_mb: i64,
    pub cpu_percent: i64,
}

impl Usage {
    pub const UNKNOWN: Usage = Usage {
        memory_mb: -1,
        disk_mb: -1,
        cpu_percent: -1,
    };
}

/// The context of one driver call.
pub struct Cx<'a> {
    pub now: Instant,
    pub key: Key,
    pub dir: &'a Path,
    pub config: &'a InstanceConfig,
    pub effects: &'a mut Vec<Effect>,
    pub outcomes: &'a mut Vec<Outcome>,
}

impl Cx<'_> {
    /// Arms a timer for this instance.
    pub fn timer(&mut self, tag: u32, after: Duration) {
        let key = Key {
            tag,
            ..self.key.clone()
        };
        self.effects.push(Effect::Timer {
            key,
            at: self.now + after,
        });
    }

    /// The key of this instance with another tag.
    pub fn key(&self, tag: u32) -> Key {
        Key {
            tag,
            ..self.key.clone()
        }
    }

    /// Asks the shell for something.
    pub fn effect(&mut self, e: Effect) {
        self.effects.push(e);
    }

    /// Reports an outcome to the manager.
    pub fn outcome(&mut self, o: Outcome) {
        self.outcomes.push(o);
    }
}

/// One instance's virtualiser side.
pub trait Driver {
    /// Creates and launches the instance (`restart`: launch again with the
    /// stored configuration and existing disk). Reports `Launched` then
    /// `Running`, or `StartFailed`.
    fn start(&mut self, cx: &mut Cx, restart: bool, user_data: &[u8], meta_data: &[u8]);
    /// Stops a running instance: gracefully, or at once when `urgent`
    /// (also used to escalate a graceful stop). Reports `Exited`.
    fn stop(&mut self, cx: &mut Cx, urgent: bool);
    /// Removes what the driver owns (the instance is not running). Reports
    /// `Destroyed`.
    fn destroy(&mut self, cx: &mut Cx);
    /// Finds out, after a launcher restart, whether the instance runs.
    /// `stopped`: an operator had stopped it. Reports `Running` or `Exited`.
    fn recover(&mut self, cx: &mut Cx, stopped: bool);
    /// An answer from the shell.
    fn input(&mut self, cx: &mut Cx, input: Input);
    /// Current resource use (cheap; called for every STATS).
    fn usage(&mut self, config: &InstanceConfig, now: Instant) -> Usage;
}

/// Timer tag of the simulated boot.
const SIM_BOOT: u32 = 1;

/// The fake virtualiser of `-simulation` (`spec/launcher.md` §9): only the
/// VM/container layer is fake; directories, state files, stats, capacity
/// and frames are real. A launch succeeds at once and the instance is up
/// after a random delay; STOP makes it exit (the original panicked).
pub struct Simulated {
    delay_min: Duration,
    delay_max: Duration,
    rng: u64,
    running: bool,
}

impl Simulated {
    pub fn new(delay_min: Duration, delay_max: Duration, seed: u64) -> Simulated {
        Simulated {
            delay_min,
            delay_max,
            rng: seed | 1,
            running: false,
        }
    }

    fn delay(&mut self) -> Duration {
        let span = self.delay_max.saturating_sub(self.delay_min).as_millis() as u64;
        if span == 0 {
            return self.delay_min;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.delay_min + Duration::from_millis(self.rng % (span + 1))
    }
}

impl Driver for Simulated {
    fn start(&mut self, cx: &mut Cx, _restart: bool, _user_data: &[u8], _meta_data: &[u8]) {
        cx.outcome(Outcome::Launched);
        let d = self.delay();
        if d.is_zero() {
            self.running = true;
            cx.outcome(Outcome::Running);
        } else {
            cx.timer(SIM_BOOT, d);
        }
    }

    fn stop(&mut self, cx: &mut Cx, _urgent: bool) {
        self.running = false;
        cx.outcome(Outcome::Exited);
    }

    fn destroy(&mut self, cx: &mut Cx) {
        cx.outcome(Outcome::Destroyed);
    }

    fn recover(&mut self, cx: &mut Cx, stopped: bool) {
        self.running = !stopped;
        cx.outcome(if stopped {
            Outcome::Exited
        } else {
            Outcome::Running
        });
    }

    fn input(&mut self, cx: &mut Cx, input: Input) {
        if input == (Input::Timer { tag: SIM_BOOT }) {
            self.running = true;
            cx.outcome(Outcome::Running);
        }
    }

    /// As the original: disk = Disk/10, memory = Mem/10, CPU = Cpus/10.
    fn usage(&mut self, config: &InstanceConfig, _now: Instant) -> Usage {
        if !self.running {
            return Usage {
                disk_mb: config.disk_mb / 10,
                ..Usage::UNKNOWN
            };
        }
        Usage {
            memory_mb: config.mem_mb / 10,
            disk_mb: config.disk_mb / 10,
            cpu_percent: config.cpus / 10,
        }
    }
}
