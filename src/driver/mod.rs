//! The driver interface: the part of an instance that talks to a
//! virtualiser (simulation, qemu, docker), as a step machine.
//!
//! This module sits below both the instance manager (`launcher`) and the
//! drivers (`qemu`, `docker`): they depend on it, never on each other. A
//! driver never performs I/O and never blocks. It asks the shell for work
//! through [`Effect`]s pushed into its [`Cx`], learns what happened through
//! [`Input`]s, and tells the manager how an operation went through
//! [`Outcome`]s. See `docs/architecture.md` for who executes what.

mod effect;
mod jobs;
mod keys;
mod sim;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use effect::Input;
pub(crate) use effect::{
    Effect, FileAction, FileError, FileOp, IoOp, NetAction, NetOp, Outgoing, Routed, Signal,
    TimerOp, FIRST_PASSED_FD,
};
pub use jobs::Jobs;
pub(crate) use jobs::Turn;
pub use keys::InstanceKey;
pub(crate) use keys::{Job, Key, Res, Timer};
pub(crate) use sim::Simulated;

use crate::payloads::{InstanceConfig, StartFailureReason};

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
    /// A volume hot-plug or hot-unplug asked through [`Driver::attach`] or
    /// [`Driver::detach`] is over: done, or why not (the instance is as it
    /// was before, as far as the driver could tell).
    Volume(Result<(), String>),
}

impl Outcome {
    /// What recovery found: the instance was left stopped, or it is still up.
    pub fn recovered(stopped: bool) -> Outcome {
        if stopped {
            Outcome::Exited
        } else {
            Outcome::Running
        }
    }
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

/// What a driver attaches an instance to: the host side of its network
/// interface, made by the launcher before the driver starts it
/// (docs/networking.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vnic {
    /// A persistent tap that qemu opens by name; `mac` is the guest's
    /// virtio-net address (the tap keeps its own).
    Tap {
        name: String,
        mac: crate::net::link::Mac,
    },
    /// A concentrator's macvtap: qemu gets `queues` descriptors of the
    /// character device `device` (checked or made private, never a
    /// guessed `/dev/tapN`); `mac` is the macvtap's and the guest's.
    Macvtap {
        name: String,
        mac: crate::net::link::Mac,
        device: PathBuf,
        queues: u8,
    },
    /// A container's veth pair: `host` (`svn_x`) is on the tenant bridge,
    /// `peer` (`svp_x`, MAC `mac`, MTU `mtu` like `host`) waits in the
    /// host's namespace for dockerd to move it into the container through
    /// the launcher's network plugin, which finds it by the host end's
    /// alias. `network` is the docker network of the tenant bridge.
    Veth {
        host: String,
        peer: String,
        mac: crate::net::link::Mac,
        mtu: u32,
        network: DockerNetwork,
    },
}

/// The docker network of one tenant bridge (docs/networking.md): its name
/// is derived from the bridge's subnet tuple, so it is the same after a
/// reboot (the original used the bridge's random link name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerNetwork {
    /// `crate::net::names::docker_network_name` of the tuple.
    pub name: String,
    /// The bridge's alias `br_T`: the plugin's `bridge` option.
    pub bridge_alias: String,
    /// The subnet's network address and prefix, e.g. `172.16.5.0/24`.
    pub subnet: String,
    /// The subnet's gateway (network address + 1), e.g. `172.16.5.1`.
    pub gateway: String,
}

/// The context of one driver call: the instance, the time, and where its
/// effects, outcomes and job requests go.
pub struct Cx<'a> {
    pub now: Instant,
    pub inst: &'a InstanceKey,
    pub config: &'a InstanceConfig,
    /// The instance's network attachment, once the launcher made it (none
    /// with `-network=false`: user-mode networking for a VM).
    pub vnic: Option<&'a Vnic>,
    effects: &'a mut Vec<Effect>,
    outcomes: &'a mut Vec<Outcome>,
    jobs: &'a mut Jobs,
}

impl<'a> Cx<'a> {
    pub fn new(
        now: Instant,
        inst: &'a InstanceKey,
        config: &'a InstanceConfig,
        effects: &'a mut Vec<Effect>,
        outcomes: &'a mut Vec<Outcome>,
        jobs: &'a mut Jobs,
    ) -> Cx<'a> {
        Cx {
            now,
            inst,
            config,
            vnic: None,
            effects,
            outcomes,
            jobs,
        }
    }

    fn key<T>(&self, what: T) -> Key<T> {
        Key {
            inst: self.inst.clone(),
            what,
        }
    }

    /// Arms (or moves) one of this instance's timers.
    pub fn arm(&mut self, timer: Timer, after: Duration) {
        let key = self.key(timer);
        let at = self.now + after;
        self.effects.push(Effect::Timer(TimerOp::Arm { key, at }));
    }

    /// Cancels one of this instance's timers (nothing if not armed).
    pub fn cancel(&mut self, timer: Timer) {
        let key = self.key(timer);
        self.effects.push(Effect::Timer(TimerOp::Cancel { key }));
    }

    /// Runs a program ([`Input::Exited`] when it ends).
    pub fn spawn(&mut self, res: Res, argv: Vec<OsString>, deadline: Duration) {
        self.spawn_with_files(res, argv, deadline, Vec::new());
    }

    /// Runs a program that gets the files `open` (opened read-write) as
    /// descriptors 3, 4, … ([`IoOp::Spawn`]).
    pub fn spawn_with_files(
        &mut self,
        res: Res,
        argv: Vec<OsString>,
        deadline: Duration,
        open: Vec<PathBuf>,
    ) {
        let key = self.key(res);
        self.effects.push(Effect::Io(IoOp::Spawn {
            key,
            argv,
            deadline,
            open,
        }));
    }

    /// Watches a foreign process ([`Input::Gone`] when it ends).
    pub fn watch(&mut self, res: Res, pid: u32) {
        let key = self.key(res);
        self.effects.push(Effect::Io(IoOp::Watch { key, pid }));
    }

    /// Stops watching a process (it keeps running).
    pub fn unwatch(&mut self, res: Res) {
        let key = self.key(res);
        self.effects.push(Effect::Io(IoOp::Unwatch { key }));
    }

    /// Signals a child or a watched process.
    pub fn signal(&mut self, res: Res, signal: Signal) {
        let key = self.key(res);
        self.effects.push(Effect::Io(IoOp::Signal { key, signal }));
    }

    /// Connects a Unix stream socket.
    pub fn connect(&mut self, res: Res, path: PathBuf, deadline: Duration) {
        let key = self.key(res);
        self.effects.push(Effect::Io(IoOp::Connect {
            key,
            path,
            deadline,
        }));
    }

    /// Writes to a socket.
    pub fn write(&mut self, res: Res, bytes: Vec<u8>) {
        let key = self.key(res);
        self.effects.push(Effect::Io(IoOp::Write { key, bytes }));
    }

    /// Closes a socket.
    pub fn close(&mut self, res: Res) {
        let key = self.key(res);
        self.effects.push(Effect::Io(IoOp::Close { key }));
    }

    /// A file operation ([`Input::File`] answers it).
    pub fn file(&mut self, res: Res, action: FileAction) {
        let key = self.key(res);
        self.effects.push(Effect::File(FileOp { key, action }));
    }

    /// Reports an outcome to the manager.
    pub fn outcome(&mut self, o: Outcome) {
        self.outcomes.push(o);
    }

    /// Asks for a node-wide job: lead it, or wait for [`Input::Job`].
    pub fn join(&mut self, job: Job) -> Turn {
        self.jobs.join(job, self.inst)
    }

    /// The job this instance led is over: the waiters are told.
    pub fn finish(&mut self, job: Job) {
        self.jobs.finish(job, self.inst);
    }
}

/// One instance's virtualiser side. A driver is made for one instance
/// directory (see `DriverFactory`) and keeps it.
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
    /// Hot-plugs volume `uuid` into the running instance. Reports
    /// `Volume`. Drivers that cannot refuse (the manager never asks them:
    /// containers take volumes only at creation).
    fn attach(&mut self, cx: &mut Cx, uuid: &str) {
        let _ = uuid;
        cx.outcome(Outcome::Volume(Err(
            "volumes cannot be attached to this instance while it runs".into(),
        )));
    }
    /// Hot-unplugs volume `uuid` from the running instance. Reports
    /// `Volume`.
    fn detach(&mut self, cx: &mut Cx, uuid: &str) {
        let _ = uuid;
        cx.outcome(Outcome::Volume(Err(
            "volumes cannot be detached from this instance while it runs".into(),
        )));
    }
    /// Current resource use (cheap; called for every STATS).
    fn usage(&mut self, config: &InstanceConfig, now: Instant) -> Usage;
    /// Whether the instance keeps files in its directory (made before its
    /// start, removed at its deletion). Without files and without a vnic
    /// no directory is made: the state log alone remembers the instance.
    fn keeps_files(&self) -> bool {
        true
    }
}

/// Makes the driver of a new or recovered instance, for its directory.
pub(crate) trait DriverFactory {
    fn make(&mut self, config: &InstanceConfig, dir: PathBuf) -> Box<dyn Driver>;
    /// The cluster configuration's ceph client id (`storage.ceph_id`),
    /// at every connection: VMs launched from now on use it unless the
    /// launcher's own flag names one.
    fn cluster_ceph_id(&mut self, _id: &str) {}
}
