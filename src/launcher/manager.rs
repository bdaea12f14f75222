//! The instance manager (the original's overseer and instance actors in
//! one pure state machine): dispatch of SSNTP commands, one FIFO queue per
//! instance, capacity accounting, recovery, and the frames that report it.
//!
//! Commands to one instance run one at a time in arrival order; different
//! instances progress independently (a slow START never delays another
//! instance's STOP — launcher defect 1; "launcher defect N" is LN in
//! docs/compatibility.md). START admission happens at
//! dispatch, synchronously, as in the original; everything else is decided
//! when the command reaches the head of its instance's queue, so the
//! answer reflects the commands before it.
//!
//! I/O happens only through [`Effect`]s executed by the shell: frames,
//! timers, the drivers' children and sockets, and file operations. A
//! change is reported to the server only after the file that records it is
//! durable (the answer to a durable write).

mod boot;

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::path::PathBuf;
use std::time::Instant;

use log::{debug, error, info, warn};

use self::boot::{BootData, BootPack};
use super::capacity::{Capacity, Limits, Resources};
use super::state::{self, Found, StateFile, DIR_MODE};
use crate::driver::{
    Cx, Driver, DriverFactory, Effect, FileAction, FileError, FileOp, Input, InstanceKey, Jobs,
    Key, NetAction, NetOp, Outcome, Outgoing, Res, Usage, Vnic,
};
use crate::payloads::errors::Reason;
use crate::payloads::{
    self, DeleteFailureReason, InstanceConfig, InstanceStat, RestartFailureReason, StartCommand,
    StartFailureReason, StopFailureReason,
};
use crate::ssntp::frame::{self, Command, ErrorCode, Event, Frame};

/// The state reported in STATS, plus what the manager needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Created or recovered, not yet confirmed up.
    Pending,
    /// Running.
    Active,
    /// Not running; files kept.
    Exited,
    /// Its state file could not be read: reported exited, deletable only.
    Quarantined,
}

impl State {
    /// The state STATS reports (a quarantined instance is exited there).
    fn wire(self) -> payloads::InstanceState {
        match self {
            State::Pending => payloads::InstanceState::Pending,
            State::Active => payloads::InstanceState::Active,
            State::Exited | State::Quarantined => payloads::InstanceState::Exited,
        }
    }
}

/// A command waiting in an instance's queue.
enum Cmd {
    Start(Box<StartCommand>, Option<Frame>),
    Stop,
    Restart,
    Delete,
    /// AttachVolume of this volume.
    Attach(String),
    /// DetachVolume of this volume.
    Detach(String),
}

impl Cmd {
    fn name(&self) -> &'static str {
        match self {
            Cmd::Start(..) => "START",
            Cmd::Stop => "STOP",
            Cmd::Restart => "RESTART",
            Cmd::Delete => "DELETE",
            Cmd::Attach(_) => "AttachVolume",
            Cmd::Detach(_) => "DetachVolume",
        }
    }
}

/// The operation an instance is busy with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// A new instance's START.
    Start,
    Restart,
    Stop,
    /// DELETE: stopping first (`stopping`), then destroying.
    Delete {
        stopping: bool,
    },
    Recover,
    /// AttachVolume or DetachVolume ([`Instance::volume`] says which).
    Volume,
}

/// An AttachVolume or DetachVolume in progress (docs/storage.md).
#[derive(Debug, Clone, PartialEq, Eq)]
struct VolumeWork {
    uuid: String,
    attach: bool,
    stage: VolumeStage,
    /// The volume list before the change, while the file is being saved.
    before: Option<Vec<payloads::VolumeConfig>>,
}

/// Where an AttachVolume or DetachVolume is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VolumeStage {
    /// The driver hot-plugs (or hot-unplugs) the volume on the running
    /// instance.
    Plug,
    /// The state file is being rewritten with the new volume list; `hot`:
    /// the running instance was changed already, and is changed back if
    /// the file cannot be written (the original left it attached: B15 in
    /// docs/compatibility.md).
    Save { hot: bool },
    /// The save failed (`state_failure` sent): the driver undoes the
    /// hot-plug (or hot-unplug), so the instance matches its file again.
    Undo,
}

/// Why an AttachVolume or DetachVolume is refused; each maps to the
/// reason of the matching failure frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VolumeFault {
    InvalidPayload,
    InvalidData,
    NoInstance,
    InstanceFailure,
    NotSupported,
    /// `already_attached` (attach) or `not_attached` (detach).
    AlreadyDone,
    /// `attach_failure` or `detach_failure`.
    Failed,
    StateFailure,
}

/// What a new instance's START keeps until its state is durable: only
/// what the driver needs (the configuration is in the table already), so
/// a burst of STARTs holds little.
struct Boot {
    /// User data and meta data, packed with other STARTs' (`boot.rs`).
    data: BootData,
    /// Why the START is refused once its directory exists (checked on
    /// receipt; reported after `instance_exists`, as the original orders
    /// them).
    refused: Option<payloads::StartError>,
}

/// A file operation the manager waits for within an operation.
enum Pending {
    /// START: the directory is being made, then the state file written;
    /// then the driver starts with this boot data.
    Create(Box<Boot>),
    /// The state file is being rewritten; `then` is the state to take (and
    /// report) once it is durable.
    Save { then: State },
    /// DELETE: the directory is being removed.
    Remove,
    /// The instance's vnic is being made: then the driver starts (with
    /// this boot data for a new instance, `None` for a RESTART).
    Plug(Option<Box<Boot>>),
    /// The instance's links are being removed; `then` says what follows.
    Unplug(AfterUnplug),
    /// The state file is being rewritten for [`Instance::volume`].
    Volume,
}

/// What follows the removal of an instance's links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterUnplug {
    /// DELETE: its files go next.
    Delete,
    /// A START that failed before its launch: files go and the failure is
    /// reported (the original leaked the links here: B4 in
    /// docs/compatibility.md).
    FailStart(StartFailureReason),
}

struct Instance {
    key: InstanceKey,
    config: InstanceConfig,
    state: State,
    driver: Box<dyn Driver>,
    pending: Option<Pending>,
    queue: VecDeque<Cmd>,
    op: Option<Op>,
    stopped: bool,
    /// A traced START frame, queued for the next TraceReport once launched.
    trace: Option<Box<Frame>>,
    /// Why it is quarantined.
    quarantine: Option<String>,
    /// Its network attachment, once made (this run).
    vnic: Option<Box<Vnic>>,
    /// The AttachVolume or DetachVolume in progress (with `Op::Volume`).
    volume: Option<VolumeWork>,
}

/// What the manager asks of the shell besides effects.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wants {
    /// An instance changed state: a STATS within 100 ms.
    pub stats: bool,
    /// A START launched or a DELETE completed: a STATUS now.
    pub status: bool,
}

/// The instance table and everything that acts on it.
pub(crate) struct Manager {
    /// Boxed: an entry is about 500 bytes, and a B-tree node holds room
    /// for eleven whether it has them or not (1.26 MB for 1000 inline
    /// entries against 0.6 MB boxed, measured with heaptrack).
    instances: BTreeMap<String, Box<Instance>>,
    /// `<data root>/instances`.
    root: PathBuf,
    jobs: Jobs,
    capacity: Capacity,
    limits: Limits,
    factory: Box<dyn DriverFactory>,
    next_generation: u64,
    wants: Wants,
    effects: Vec<Effect>,
    /// Traced frames launched since the last TraceReport.
    traces: Vec<Frame>,
    /// `-network`: instances get links (docs/networking.md).
    network: bool,
    /// Where the boot data of STARTs waits for their state files.
    boots: BootPack,
}

impl Manager {
    pub(crate) fn new(root: PathBuf, limits: Limits, factory: Box<dyn DriverFactory>) -> Manager {
        Manager {
            instances: BTreeMap::new(),
            root,
            jobs: Jobs::default(),
            capacity: Capacity::default(),
            limits,
            factory,
            next_generation: 1,
            wants: Wants::default(),
            effects: Vec::new(),
            traces: Vec::new(),
            network: false,
            boots: BootPack::default(),
        }
    }

    /// Switches instance networking on (`-network=true`).
    pub(crate) fn set_network(&mut self, on: bool) {
        self.network = on;
    }

    /// True when instance `id` gets links: networking is on (a VM gets a
    /// tap or macvtap, a container a veth pair; docs/networking.md).
    fn networked(&self, id: &str) -> bool {
        self.network && self.instances.contains_key(id)
    }

    /// The configuration of every instance whose state file was read
    /// (quarantined ones have none): the records the links are checked
    /// against.
    pub(crate) fn records(&self) -> Vec<(String, InstanceConfig)> {
        self.instances
            .iter()
            .filter(|(_, i)| i.state != State::Quarantined)
            .map(|(id, i)| (id.clone(), i.config.clone()))
            .collect()
    }

    /// Effects produced since the last call.
    pub(crate) fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// What the shell should report, reset on read.
    pub(crate) fn take_wants(&mut self) -> Wants {
        std::mem::take(&mut self.wants)
    }

    /// Number of instances in the table (any state).
    pub(crate) fn len(&self) -> usize {
        self.instances.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// The limits (switched by the cluster configuration).
    pub(crate) fn set_limits(&mut self, mem_limit: bool, disk_limit: bool) {
        self.limits.mem_limit = mem_limit;
        self.limits.disk_limit = disk_limit;
    }

    /// The cluster configuration's ceph client id, for the VMs launched
    /// from now on (unless `-ceph_id` overrides it).
    pub(crate) fn set_ceph_id(&mut self, id: &str) {
        self.factory.cluster_ceph_id(id);
    }

    /// READY (true) or FULL (false), refreshing the capacity figures from a
    /// node sample first.
    pub(crate) fn ready(
        &mut self,
        mem_available_mb: i64,
        disk_available_mb: i64,
        now: Instant,
    ) -> bool {
        let (mut mem, mut disk) = (0, 0);
        for inst in self.instances.values_mut() {
            let u = inst.driver.usage(&inst.config, now);
            if u.memory_mb >= 0 {
                mem += u.memory_mb.min(inst.config.mem_mb);
            }
            if u.disk_mb >= 0 {
                disk += u.disk_mb;
            }
        }
        self.capacity
            .refresh(mem_available_mb, disk_available_mb, mem, disk);
        self.capacity.ready(&self.limits, self.instances.len())
    }

    /// The STATS instance list.
    pub(crate) fn stats(&mut self, now: Instant) -> Vec<InstanceStat> {
        self.instances
            .iter_mut()
            .map(|(id, inst)| {
                let u = match inst.state {
                    State::Quarantined => Usage::UNKNOWN,
                    _ => inst.driver.usage(&inst.config, now),
                };
                // A container has no SSH port (B17 in
                // docs/compatibility.md): its concentrator forwards none.
                let (ssh_ip, ssh_port) = if inst.config.is_container() {
                    (String::new(), 0)
                } else {
                    (
                        inst.config.ssh_ip().to_string(),
                        i64::from(inst.config.ssh_port),
                    )
                };
                InstanceStat {
                    instance_uuid: id.clone(),
                    state: inst.state.wire().as_str().to_string(),
                    ssh_ip,
                    ssh_port,
                    memory_usage_mb: u.memory_mb,
                    disk_usage_mb: u.disk_mb,
                    cpu_usage: u.cpu_percent,
                    volumes: inst.config.volumes.iter().map(|v| v.uuid.clone()).collect(),
                }
            })
            .collect()
    }

    /// Traced START frames launched since the last call.
    pub(crate) fn take_traces(&mut self) -> Vec<Frame> {
        std::mem::take(&mut self.traces)
    }

    /// Re-adopts every instance directory found at start-up (before the
    /// first connection), in name order.
    pub(crate) fn recover(&mut self, found: Vec<Found>, now: Instant) {
        for f in found {
            match f {
                Found::Instance(id, state) => {
                    self.capacity.add(resources(&state.config));
                    info!("recovering instance {id}");
                    let stopped = state.stopped;
                    if self.insert(&id, state.config, State::Pending).is_none() {
                        continue;
                    }
                    if let Some(inst) = self.instances.get_mut(&id) {
                        inst.op = Some(Op::Recover);
                        inst.stopped = stopped;
                    }
                    self.drive(&id, now, |d, cx| d.recover(cx, stopped));
                }
                Found::Quarantined(id, why) => {
                    error!("instance {id} quarantined: {why}; it is reported exited and can only be deleted");
                    let config = InstanceConfig {
                        instance_uuid: id.clone(),
                        ..InstanceConfig::default()
                    };
                    if let Some(inst) = self.insert(&id, config, State::Quarantined) {
                        inst.stopped = true;
                        inst.quarantine = Some(why);
                    }
                }
            }
        }
        self.wants.stats = true;
        self.settle(now);
    }

    /// A new table entry with a new generation and its driver (`None` for
    /// an id that cannot be a directory name).
    fn insert(&mut self, id: &str, config: InstanceConfig, st: State) -> Option<&mut Instance> {
        let dir = state::instance_dir(&self.root, id)?;
        let generation = self.generation();
        let driver = self.factory.make(&config, dir);
        let inst = Box::new(Instance {
            key: InstanceKey {
                id: id.into(),
                generation,
            },
            config,
            state: st,
            driver,
            pending: None,
            queue: VecDeque::new(),
            op: None,
            stopped: false,
            trace: None,
            quarantine: None,
            vnic: None,
            volume: None,
        });
        self.instances.insert(id.to_string(), inst);
        self.instances.get_mut(id).map(|b| &mut **b)
    }

    fn generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    /// Handles a COMMAND frame from the server.
    pub(crate) fn on_command(&mut self, f: Frame, now: Instant) {
        self.dispatch(f, now);
        self.settle(now);
    }

    fn dispatch(&mut self, f: Frame, now: Instant) {
        match f.op {
            frame::Op::Command(Command::Start) => self.on_start(f, now),
            frame::Op::Command(Command::Stop) => match payloads::parse_stop(&f.payload) {
                Ok(c) => self.enqueue(c.instance_uuid, Cmd::Stop, now),
                Err(e) => {
                    warn!("STOP refused: {}", e.detail);
                    self.fail_stop("", e.fault.into());
                }
            },
            frame::Op::Command(Command::Restart) => match payloads::parse_restart(&f.payload) {
                Ok(c) => self.enqueue(c.instance_uuid, Cmd::Restart, now),
                Err(e) => {
                    warn!("RESTART refused: {}", e.detail);
                    self.fail_restart("", e.fault.into());
                }
            },
            frame::Op::Command(Command::Delete) => match payloads::parse_delete(&f.payload) {
                Ok(c) => self.enqueue(c.instance_uuid, Cmd::Delete, now),
                Err(e) => {
                    warn!("DELETE refused: {}", e.detail);
                    self.fail_delete("", e.fault.into());
                }
            },
            frame::Op::Command(Command::AttachVolume) => self.on_volume(f, true, now),
            frame::Op::Command(Command::DetachVolume) => self.on_volume(f, false, now),
            other => info!(
                "ignoring command {} (not handled by a launcher)",
                other.operand_name()
            ),
        }
    }

    /// AttachVolume or DetachVolume: refused on receipt (empty ids, as
    /// the original), or queued with the instance's other commands.
    fn on_volume(&mut self, f: Frame, attach: bool, now: Instant) {
        let parsed = if attach {
            payloads::parse_attach_volume(&f.payload)
        } else {
            payloads::parse_detach_volume(&f.payload)
        };
        match parsed {
            Ok(c) => {
                let cmd = if attach {
                    Cmd::Attach(c.volume_uuid)
                } else {
                    Cmd::Detach(c.volume_uuid)
                };
                self.enqueue(c.instance_uuid, cmd, now);
            }
            Err(e) => {
                warn!("{} refused: {}", volume_verb(attach), e.detail);
                let fault = match e.fault {
                    crate::payloads::errors::ReceiptFault::InvalidPayload => {
                        VolumeFault::InvalidPayload
                    }
                    crate::payloads::errors::ReceiptFault::InvalidData => VolumeFault::InvalidData,
                };
                self.fail_volume(attach, "", "", fault);
            }
        }
    }

    fn on_start(&mut self, f: Frame, now: Instant) {
        let cmd = match payloads::parse_start(&f.payload) {
            Ok(c) => c,
            Err(e) => {
                warn!("START refused ({}): {}", e.reason.as_str(), e.detail);
                self.fail_start(&e.instance_uuid, e.reason);
                return;
            }
        };
        let id = cmd.instance.instance_uuid.clone();
        let trace = f.is_traced().then(|| f.clone());
        if self.instances.contains_key(&id) {
            self.enqueue(id, Cmd::Start(Box::new(cmd), trace), now);
            return;
        }
        // Admission, synchronously at dispatch (as the original).
        if let Err(why) =
            self.capacity
                .admit(&self.limits, self.instances.len(), resources(&cmd.instance))
        {
            warn!("START of {id} refused (full_cn): {why}");
            self.fail_start(&id, StartFailureReason::FullCn);
            return;
        }
        if self
            .insert(&id, cmd.instance.clone(), State::Pending)
            .is_none()
        {
            // parse_start validated the id; this cannot happen.
            self.fail_start(&id, StartFailureReason::InvalidData);
            return;
        }
        self.wants.stats = true;
        self.begin_start(&id, Box::new(cmd), trace);
    }

    /// Queues a command for an existing instance (or answers no_instance).
    fn enqueue(&mut self, id: String, cmd: Cmd, now: Instant) {
        let Some(inst) = self.instances.get_mut(&id) else {
            debug!("{} for unknown instance {id}", cmd.name());
            match cmd {
                Cmd::Stop => self.fail_stop(&id, StopFailureReason::NoInstance),
                Cmd::Restart => self.fail_restart(&id, RestartFailureReason::NoInstance),
                Cmd::Delete => self.fail_delete(&id, DeleteFailureReason::NoInstance),
                Cmd::Attach(v) => self.fail_volume(true, &id, &v, VolumeFault::NoInstance),
                Cmd::Detach(v) => self.fail_volume(false, &id, &v, VolumeFault::NoInstance),
                Cmd::Start(..) => unreachable!("START creates unknown instances"),
            }
            return;
        };
        // A DELETE behind a graceful STOP escalates it (docs/architecture.md,
        // "stops are graceful, deletes are not").
        if matches!(cmd, Cmd::Delete) && inst.op == Some(Op::Stop) && inst.pending.is_none() {
            info!("DELETE of {id} escalates its graceful stop");
            self.drive(&id, now, |d, cx| d.stop(cx, true));
        }
        let Some(inst) = self.instances.get_mut(&id) else {
            return;
        };
        inst.queue.push_back(cmd);
        self.run_queue(&id, now);
    }

    /// Starts the next queued command if the instance is idle.
    fn run_queue(&mut self, id: &str, now: Instant) {
        loop {
            let Some(inst) = self.instances.get_mut(id) else {
                return;
            };
            if inst.op.is_some() {
                return;
            }
            let Some(cmd) = inst.queue.pop_front() else {
                return;
            };
            let state = inst.state;
            match cmd {
                Cmd::Start(c, trace) => match state {
                    State::Active | State::Pending => {
                        self.fail_start(id, StartFailureReason::AlreadyRunning)
                    }
                    State::Exited | State::Quarantined => {
                        let _ = (c, trace);
                        self.fail_start(id, StartFailureReason::InstanceExists)
                    }
                },
                Cmd::Stop => match state {
                    State::Active => {
                        inst.op = Some(Op::Stop);
                        info!("stopping instance {id}");
                        self.drive(id, now, |d, cx| d.stop(cx, false));
                    }
                    _ => self.fail_stop(id, StopFailureReason::AlreadyStopped),
                },
                Cmd::Restart => match state {
                    State::Exited => {
                        inst.op = Some(Op::Restart);
                        info!("restarting instance {id}");
                        if self.networked(id) {
                            self.plug(id, None);
                        } else {
                            self.drive(id, now, |d, cx| d.start(cx, true, &[], &[]));
                        }
                    }
                    State::Quarantined => {
                        self.fail_restart(id, RestartFailureReason::InstanceCorrupt)
                    }
                    State::Active | State::Pending => {
                        self.fail_restart(id, RestartFailureReason::AlreadyRunning)
                    }
                },
                Cmd::Attach(v) => self.begin_volume(id, v, true, now),
                Cmd::Detach(v) => self.begin_volume(id, v, false, now),
                Cmd::Delete => {
                    let running = state == State::Active;
                    inst.op = Some(Op::Delete { stopping: running });
                    info!("deleting instance {id}");
                    if running {
                        self.drive(id, now, |d, cx| d.stop(cx, true));
                    } else if state == State::Quarantined {
                        self.finish_delete(id);
                    } else {
                        self.drive(id, now, |d, cx| d.destroy(cx));
                    }
                }
            }
        }
    }

    /// An AttachVolume or DetachVolume reached the head of the queue. On a
    /// running instance the driver hot-plugs first and the state file is
    /// rewritten after; on a stopped one only the file changes (the next
    /// RESTART boots with the new list). Success is reported by the next
    /// STATS, after the file is durable.
    fn begin_volume(&mut self, id: &str, uuid: String, attach: bool, now: Instant) {
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        let recorded = inst.config.volumes.iter().find(|v| v.uuid == uuid);
        let refused = if inst.state == State::Quarantined {
            Some((VolumeFault::InstanceFailure, "its state cannot be read"))
        } else if inst.config.is_container() {
            Some((
                VolumeFault::NotSupported,
                "containers get volumes only when they are created",
            ))
        } else if attach && recorded.is_some() {
            Some((VolumeFault::AlreadyDone, "the volume is attached already"))
        } else if !attach && recorded.is_none() {
            Some((VolumeFault::AlreadyDone, "the volume is not attached"))
        } else if !attach
            && recorded.is_some_and(|v| v.bootable)
            && inst.config.image_uuid.is_empty()
        {
            Some((VolumeFault::Failed, "the instance boots from this volume"))
        } else if inst.state == State::Pending {
            // Not reachable: a pending instance is busy with its START or
            // its recovery, so its queue waits.
            Some((VolumeFault::Failed, "the instance is starting"))
        } else {
            None
        };
        if let Some((fault, why)) = refused {
            warn!("{} of {uuid} on {id} refused: {why}", volume_verb(attach));
            self.fail_volume(attach, id, &uuid, fault);
            return;
        }
        inst.op = Some(Op::Volume);
        info!("{} of volume {uuid} on instance {id}", volume_verb(attach));
        if inst.state == State::Active {
            inst.volume = Some(VolumeWork {
                uuid: uuid.clone(),
                attach,
                stage: VolumeStage::Plug,
                before: None,
            });
            if attach {
                self.drive(id, now, |d, cx| d.attach(cx, &uuid));
            } else {
                self.drive(id, now, |d, cx| d.detach(cx, &uuid));
            }
        } else {
            inst.volume = Some(VolumeWork {
                uuid,
                attach,
                stage: VolumeStage::Save { hot: false },
                before: None,
            });
            self.save_volumes(id);
        }
    }

    /// Records the volume change of [`Instance::volume`] in the table and
    /// rewrites the state file.
    fn save_volumes(&mut self, id: &str) {
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        let Some(work) = inst.volume.as_mut() else {
            return;
        };
        work.before = Some(inst.config.volumes.clone());
        change_volumes(&mut inst.config, &work.uuid, work.attach);
        inst.pending = Some(Pending::Volume);
        let record = StateFile::new(inst.config.clone(), inst.stopped).record(id);
        self.record(id, record);
    }

    /// The state of a volume change is durable (or not).
    fn saved_volumes(&mut self, id: &str, result: Result<(), FileError>, now: Instant) {
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        let Some(work) = inst.volume.as_mut() else {
            return;
        };
        let verb = volume_verb(work.attach);
        let uuid = work.uuid.clone();
        match result {
            Ok(()) => {
                info!("{verb} of volume {uuid} on instance {id} done");
                inst.volume = None;
                self.wants.stats = true;
                self.done(id, now);
            }
            Err(e) => {
                error!("{verb} of volume {uuid} on instance {id} failed (state_failure): cannot save its state: {e}");
                // The table follows the file again.
                if let Some(before) = work.before.take() {
                    inst.config.volumes = before;
                }
                let attach = work.attach;
                let hot = work.stage == (VolumeStage::Save { hot: true });
                self.fail_volume(attach, id, &uuid, VolumeFault::StateFailure);
                if !hot {
                    self.end_volume(id, now);
                    return;
                }
                if let Some(w) = self.instances.get_mut(id).and_then(|i| i.volume.as_mut()) {
                    w.stage = VolumeStage::Undo;
                }
                info!("instance {id}: undoing the {verb} of volume {uuid}");
                if attach {
                    self.drive(id, now, |d, cx| d.detach(cx, &uuid));
                } else {
                    self.drive(id, now, |d, cx| d.attach(cx, &uuid));
                }
            }
        }
    }

    /// The driver finished a hot-plug, a hot-unplug or the undo of one.
    fn volume_outcome(&mut self, id: &str, result: Result<(), String>, now: Instant) {
        let Some(work) = self.instances.get_mut(id).and_then(|i| i.volume.clone()) else {
            debug!("instance {id}: a volume outcome with no volume work");
            return;
        };
        let verb = volume_verb(work.attach);
        match (work.stage, result) {
            (VolumeStage::Plug, Ok(())) => {
                if let Some(w) = self.instances.get_mut(id).and_then(|i| i.volume.as_mut()) {
                    w.stage = VolumeStage::Save { hot: true };
                }
                self.save_volumes(id);
            }
            (VolumeStage::Plug, Err(e)) => {
                let reason = if work.attach {
                    "attach_failure"
                } else {
                    "detach_failure"
                };
                error!(
                    "{verb} of volume {} on instance {id} failed ({reason}): {e}",
                    work.uuid
                );
                self.fail_volume(work.attach, id, &work.uuid, VolumeFault::Failed);
                self.end_volume(id, now);
            }
            (VolumeStage::Undo, r) => {
                match r {
                    Ok(()) => info!("instance {id}: the {verb} of volume {} is undone", work.uuid),
                    Err(e) => error!(
                        "instance {id}: cannot undo the {verb} of volume {}: {e}; the running instance differs from its state file until it stops (a launcher restart brings it in line)",
                        work.uuid
                    ),
                }
                self.end_volume(id, now);
            }
            (VolumeStage::Save { .. }, _) => {
                debug!("instance {id}: a volume outcome while its state is being saved")
            }
        }
    }

    /// The volume operation is over: the next queued command.
    fn end_volume(&mut self, id: &str, now: Instant) {
        if let Some(inst) = self.instances.get_mut(id) {
            inst.volume = None;
        }
        self.done(id, now);
    }

    /// Sends an AttachVolumeFailure or DetachVolumeFailure, with the ids
    /// in their own fields (the original swapped them for most detach
    /// errors: B11 in docs/compatibility.md).
    fn fail_volume(&mut self, attach: bool, id: &str, vol: &str, fault: VolumeFault) {
        use payloads::{AttachVolumeFailureReason as A, DetachVolumeFailureReason as D};
        let (op, payload) = if attach {
            let r = match fault {
                VolumeFault::InvalidPayload => A::InvalidPayload,
                VolumeFault::InvalidData => A::InvalidData,
                VolumeFault::NoInstance => A::NoInstance,
                VolumeFault::InstanceFailure => A::InstanceFailure,
                VolumeFault::NotSupported => A::NotSupported,
                VolumeFault::AlreadyDone => A::AlreadyAttached,
                VolumeFault::Failed => A::AttachFailure,
                VolumeFault::StateFailure => A::StateFailure,
            };
            (
                ErrorCode::AttachVolumeFailure,
                payloads::AttachVolumeFailure::new(id, vol, r).to_yaml(),
            )
        } else {
            let r = match fault {
                VolumeFault::InvalidPayload => D::InvalidPayload,
                VolumeFault::InvalidData => D::InvalidData,
                VolumeFault::NoInstance => D::NoInstance,
                VolumeFault::InstanceFailure => D::InstanceFailure,
                VolumeFault::NotSupported => D::NotSupported,
                VolumeFault::AlreadyDone => D::NotAttached,
                VolumeFault::Failed => D::DetachFailure,
                VolumeFault::StateFailure => D::StateFailure,
            };
            (
                ErrorCode::DetachVolumeFailure,
                payloads::DetachVolumeFailure::new(id, vol, r).to_yaml(),
            )
        };
        self.send(op, payload);
    }

    /// START of a new instance: the directory first (an existing one
    /// refuses the START), then the state file, then the driver.
    fn begin_start(&mut self, id: &str, cmd: Box<StartCommand>, trace: Option<Frame>) {
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        inst.op = Some(Op::Start);
        inst.trace = trace.map(Box::new);
        let refused = if self.network {
            cmd.check_image()
                .and_then(|()| cmd.check_networking())
                .and_then(|()| cmd.check_network_ids())
                .err()
        } else {
            cmd.check_image().err()
        };
        let StartCommand {
            user_data,
            meta_data,
            ..
        } = *cmd;
        inst.pending = Some(Pending::Create(Box::new(Boot {
            data: self.boots.pack(&user_data, &meta_data),
            refused,
        })));
        let path = self.root.join(id);
        let action = if inst.driver.keeps_files() || self.networked(id) {
            FileAction::CreateDir {
                path,
                mode: DIR_MODE,
            }
        } else {
            // Nothing will be kept in a directory: none is made (a new
            // inode costs more than the rest of a START), but one left
            // there refuses the START all the same.
            FileAction::CheckAbsent { path }
        };
        self.file(id, Res::Dir, action);
    }

    /// The instance directory of a START was made (or not).
    fn created(&mut self, id: &str, mut boot: Box<Boot>, result: Result<(), FileError>) {
        if let Err(e) = result {
            if e.kind == io::ErrorKind::AlreadyExists {
                warn!("START of {id} refused (instance_exists): its directory already exists: {e}");
                self.fail_start(id, StartFailureReason::InstanceExists);
            } else {
                // Nothing exists: the same reason as a state file that
                // cannot be written (O30 in docs/compatibility.md).
                error!("START of {id} failed (image_failure): cannot create its directory: {e}");
                self.fail_start(id, StartFailureReason::ImageFailure);
            }
            self.forget(id);
            return;
        }
        if let Some(e) = boot.refused.take() {
            warn!(
                "START of {id} refused ({}): {}",
                e.reason.as_str(),
                e.detail
            );
            // Files first: the refusal is sent once nothing is left.
            self.remove_dir(id);
            self.fail_start(id, e.reason);
            self.forget(id);
            return;
        }
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        let record = StateFile::new(inst.config.clone(), false).record(id);
        inst.pending = Some(Pending::Create(boot));
        self.record(id, record);
    }

    /// The state of a START is durable (or not): the driver starts.
    fn saved_new(&mut self, id: &str, boot: Boot, result: Result<(), FileError>, now: Instant) {
        if let Err(e) = result {
            error!("START of {id} failed (image_failure): cannot write its state: {e}");
            self.discard(id);
            self.fail_start(id, StartFailureReason::ImageFailure);
            self.forget(id);
            return;
        }
        if self.networked(id) {
            // Recorded first, then linked: every link made belongs to an
            // instance whose state file exists (docs/networking.md).
            self.plug(id, Some(Box::new(boot)));
            return;
        }
        info!("starting instance {id}");
        self.drive(id, now, |d, cx| {
            boot.data.with(|user, meta| d.start(cx, false, user, meta))
        });
    }

    /// Asks for the instance's vnic; the driver starts once it exists.
    fn plug(&mut self, id: &str, boot: Option<Box<Boot>>) {
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        inst.pending = Some(Pending::Plug(boot));
        let action = NetAction::Plug {
            config: Box::new(inst.config.clone()),
            dir: self.root.join(id),
        };
        self.net(id, action);
    }

    /// Asks for the removal of the instance's links; `then` follows.
    fn unplug(&mut self, id: &str, then: AfterUnplug) {
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        inst.pending = Some(Pending::Unplug(then));
        inst.vnic = None;
        self.net(id, NetAction::Unplug);
    }

    fn net(&mut self, id: &str, action: NetAction) {
        if let Some(inst) = self.instances.get(id) {
            self.effects.push(Effect::Net(NetOp {
                key: Key {
                    inst: inst.key.clone(),
                    what: Res::Vnic,
                },
                action,
            }));
        }
    }

    /// The answer to a plug or an unplug.
    fn on_net(&mut self, id: &str, result: Result<Option<Vnic>, String>, now: Instant) {
        let Some(pending) = self.instances.get_mut(id).and_then(|i| i.pending.take()) else {
            debug!("instance {id}: unexpected network answer");
            return;
        };
        match pending {
            Pending::Plug(boot) => self.plugged(id, boot, result, now),
            Pending::Unplug(then) => {
                if let Err(e) = &result {
                    // Its links are left behind; the next start-up removes
                    // them as orphans once the instance is gone.
                    error!("instance {id}: cannot remove its links: {e}");
                }
                match then {
                    AfterUnplug::Delete => {
                        if let Some(inst) = self.instances.get_mut(id) {
                            inst.pending = Some(Pending::Remove);
                        }
                        self.remove_dir(id);
                    }
                    AfterUnplug::FailStart(reason) => self.start_failed_early(id, reason),
                }
            }
            other => {
                debug!("instance {id}: unexpected network answer");
                if let Some(inst) = self.instances.get_mut(id) {
                    inst.pending = Some(other);
                }
            }
        }
    }

    /// The vnic of a START or RESTART exists (or could not be made).
    fn plugged(
        &mut self,
        id: &str,
        boot: Option<Box<Boot>>,
        result: Result<Option<Vnic>, String>,
        now: Instant,
    ) {
        match result {
            Ok(vnic) => {
                if let Some(inst) = self.instances.get_mut(id) {
                    inst.vnic = vnic.map(Box::new);
                }
                match boot {
                    Some(boot) => {
                        info!("starting instance {id}");
                        self.drive(id, now, |d, cx| {
                            boot.data.with(|user, meta| d.start(cx, false, user, meta))
                        });
                    }
                    None => self.drive(id, now, |d, cx| d.start(cx, true, &[], &[])),
                }
            }
            Err(e) if boot.is_some() => {
                // Nothing was left in the kernel (the executor undoes a
                // partial plug); the files go and the START fails.
                error!("START of {id} failed (network_failure): {e}");
                self.start_failed_early(id, StartFailureReason::NetworkFailure);
            }
            Err(e) => {
                error!("RESTART of {id} failed (network_failure): {e}");
                if let Some(inst) = self.instances.get_mut(id) {
                    inst.state = State::Exited;
                }
                self.fail_restart(id, RestartFailureReason::NetworkFailure);
                self.done(id, now);
            }
        }
    }

    /// A new instance failed before its launch: it goes away again, without
    /// InstanceDeleted, as in the original (L4 in docs/compatibility.md);
    /// commands queued behind it are refused.
    fn start_failed_early(&mut self, id: &str, reason: StartFailureReason) {
        let queued: Vec<Cmd> = self
            .instances
            .get_mut(id)
            .map(|i| i.queue.drain(..).collect())
            .unwrap_or_default();
        self.discard(id);
        self.fail_start(id, reason);
        self.forget(id);
        for c in queued {
            self.refuse_orphan(id, c, true);
        }
    }

    fn file(&mut self, id: &str, res: Res, action: FileAction) {
        if let Some(inst) = self.instances.get(id) {
            self.effects.push(Effect::File(FileOp {
                key: Key {
                    inst: inst.key.clone(),
                    what: res,
                },
                action,
            }));
        }
    }

    /// Appends `frame` to the state log; the answer comes once it is
    /// durable.
    fn record(&mut self, id: &str, frame: Vec<u8>) {
        let dir = self.root.join(id);
        self.file(id, Res::State, FileAction::Record { dir, frame });
    }

    /// Removes what a START that failed after its state was recorded left:
    /// its directory and its state (nobody waits for the answers).
    fn discard(&mut self, id: &str) {
        self.remove_dir(id);
        self.record(id, state::removal(id));
    }

    /// Removes the instance directory; the answer ends a DELETE (an
    /// instance forgotten meanwhile ignores it).
    fn remove_dir(&mut self, id: &str) {
        if self.instances.contains_key(id) {
            let path = self.root.join(id);
            self.file(id, Res::Dir, FileAction::RemoveTree { path });
        }
    }

    /// Removes a table entry and releases its resources (no event).
    fn forget(&mut self, id: &str) {
        if let Some(inst) = self.instances.remove(id) {
            self.jobs.leave(&inst.key);
            self.capacity.release(resources(&inst.config));
            self.wants.stats = true;
        }
    }

    /// Feeds an answer from the shell to the instance it belongs to.
    pub(crate) fn on_input(&mut self, key: &InstanceKey, input: Input, now: Instant) {
        self.route(key, input, now);
        self.settle(now);
    }

    fn route(&mut self, key: &InstanceKey, input: Input, now: Instant) {
        match self.instances.get(&*key.id) {
            Some(inst) if inst.key.generation == key.generation => {}
            _ => {
                debug!(
                    "dropping a late answer for {} (generation {})",
                    key.id, key.generation
                );
                return;
            }
        }
        let id = key.id.clone();
        match input {
            Input::File {
                res: res @ (Res::Dir | Res::State),
                result,
            } => self.on_file(&id, res, result.map(|_| ()), now),
            Input::Net {
                res: Res::Vnic,
                result,
            } => self.on_net(&id, result, now),
            other => self.drive(&id, now, |d, cx| d.input(cx, other)),
        }
    }

    /// Delivers what node-wide jobs have to tell their waiters.
    fn settle(&mut self, now: Instant) {
        loop {
            let notices = self.jobs.take_notices();
            if notices.is_empty() {
                return;
            }
            for (key, input) in notices {
                self.route(&key, input, now);
            }
        }
    }

    /// One of the manager's own file operations finished.
    fn on_file(&mut self, id: &str, res: Res, result: Result<(), FileError>, now: Instant) {
        let Some(pending) = self.instances.get_mut(id).and_then(|i| i.pending.take()) else {
            debug!("instance {id}: unexpected answer for {res:?}");
            return;
        };
        match (pending, res) {
            (Pending::Create(boot), Res::Dir) => self.created(id, boot, result),
            (Pending::Create(boot), Res::State) => self.saved_new(id, *boot, result, now),
            (Pending::Save { then }, Res::State) => {
                let failed_stop = match &result {
                    Err(e) if then == State::Exited => {
                        error!("STOP of {id} failed (invalid_data): it stopped, but this cannot be recorded: {e}");
                        true
                    }
                    Err(e) => {
                        error!("instance {id}: cannot save its state: {e}");
                        false
                    }
                    Ok(()) => false,
                };
                if let Some(inst) = self.instances.get_mut(id) {
                    inst.state = then;
                    if failed_stop {
                        // The table follows the saved state: no operator
                        // stop is recorded (O30 in docs/compatibility.md).
                        inst.stopped = false;
                    }
                }
                if failed_stop {
                    self.fail_stop(id, StopFailureReason::InvalidData);
                }
                self.wants.stats = true;
                self.done(id, now);
            }
            (Pending::Volume, Res::State) => self.saved_volumes(id, result, now),
            (Pending::Remove, Res::Dir) => match result {
                Ok(()) => {
                    // Then its state: a crash before that brings back an
                    // instance that was never reported deleted.
                    if let Some(inst) = self.instances.get_mut(id) {
                        inst.pending = Some(Pending::Remove);
                    }
                    self.record(id, state::removal(id));
                }
                Err(e) => {
                    // Never reported deleted while its files remain: they
                    // would bring it back at the next start (O30 in
                    // docs/compatibility.md). It stays, as it is (exited or
                    // quarantined); a later DELETE tries again.
                    error!("DELETE of {id} failed (invalid_data): cannot remove its files: {e}");
                    self.fail_delete(id, DeleteFailureReason::InvalidData);
                    self.wants.stats = true;
                    self.done(id, now);
                }
            },
            (Pending::Remove, Res::State) => match result {
                Ok(()) => self.deleted(id),
                Err(e) => {
                    error!("DELETE of {id} failed (invalid_data): its files are gone, but its removal cannot be recorded: {e}");
                    self.fail_delete(id, DeleteFailureReason::InvalidData);
                    self.wants.stats = true;
                    self.done(id, now);
                }
            },
            (p, r) => {
                debug!("instance {id}: unexpected answer for {r:?}");
                if let Some(inst) = self.instances.get_mut(id) {
                    inst.pending = Some(p);
                }
            }
        }
    }

    /// Calls the driver of `id` and applies what it reports.
    fn drive(&mut self, id: &str, now: Instant, call: impl FnOnce(&mut dyn Driver, &mut Cx)) {
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        let mut outcomes = Vec::new();
        {
            let mut cx = Cx::new(
                now,
                &inst.key,
                &inst.config,
                &mut self.effects,
                &mut outcomes,
                &mut self.jobs,
            );
            cx.vnic = inst.vnic.as_deref();
            call(inst.driver.as_mut(), &mut cx);
        }
        for o in outcomes {
            self.apply(id, o, now);
        }
    }

    fn apply(&mut self, id: &str, outcome: Outcome, now: Instant) {
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        let op = inst.op;
        debug!("instance {id}: {outcome:?} during {op:?}");
        match outcome {
            Outcome::Launched => {
                if op == Some(Op::Start) {
                    // The original's STATUS right after a successful launch.
                    self.wants.status = true;
                    if let Some(mut t) = inst.trace.take() {
                        if let Some(tr) = t.trace.as_mut() {
                            tr.end = Some(frame::GoTime::now());
                        }
                        self.traces.push(*t);
                    }
                }
            }
            Outcome::Running => {
                if op == Some(Op::Restart) && inst.stopped {
                    // Active once it is recorded that no operator stop holds.
                    info!("instance {id} is active");
                    inst.stopped = false;
                    self.save(id, State::Active);
                    return;
                }
                inst.state = State::Active;
                self.wants.stats = true;
                if matches!(op, Some(Op::Start | Op::Restart | Op::Recover)) {
                    info!("instance {id} is active");
                    self.done(id, now);
                }
            }
            Outcome::StartFailed { reason, detail } => {
                error!(
                    "instance {id}: {} failed ({}): {detail}",
                    if op == Some(Op::Restart) {
                        "RESTART"
                    } else {
                        "START"
                    },
                    reason.as_str()
                );
                match op {
                    Some(Op::Restart) => {
                        inst.state = State::Exited;
                        let r = if reason == StartFailureReason::NetworkFailure {
                            RestartFailureReason::NetworkFailure
                        } else {
                            RestartFailureReason::LaunchFailure
                        };
                        self.fail_restart(id, r);
                        self.done(id, now);
                    }
                    _ if reason == StartFailureReason::LaunchFailure => {
                        // Kept, reported exited, can be restarted or deleted.
                        inst.state = State::Exited;
                        self.wants.stats = true;
                        self.fail_start(id, reason);
                        self.done(id, now);
                    }
                    _ if self.networked(id) => {
                        // Failed before the launch, after its vnic was
                        // made: links first, then files.
                        self.unplug(id, AfterUnplug::FailStart(reason));
                    }
                    _ => self.start_failed_early(id, reason),
                }
            }
            Outcome::Exited => {
                let was = inst.state;
                if op == Some(Op::Stop) {
                    // Exited once it is recorded that an operator stopped it.
                    info!("instance {id} stopped");
                    inst.stopped = true;
                    self.save(id, State::Exited);
                    return;
                }
                inst.state = State::Exited;
                self.wants.stats = true;
                match op {
                    Some(Op::Delete { stopping: true }) => {
                        inst.op = Some(Op::Delete { stopping: false });
                        self.drive(id, now, |d, cx| d.destroy(cx));
                    }
                    Some(Op::Recover) => {
                        info!("recovered instance {id} is not running");
                        self.done(id, now);
                    }
                    Some(Op::Start | Op::Restart) => {
                        // Launched, then gone before it was confirmed up.
                        warn!("instance {id} exited while booting");
                        self.done(id, now);
                    }
                    _ => {
                        if was == State::Active {
                            warn!("instance {id} exited");
                        }
                    }
                }
            }
            Outcome::Destroyed => self.finish_delete(id),
            Outcome::Volume(result) => self.volume_outcome(id, result, now),
        }
    }

    /// A command queued behind a START that failed (`failed_start`) or a
    /// DELETE: its instance is gone.
    fn refuse_orphan(&mut self, id: &str, c: Cmd, failed_start: bool) {
        // A volume command for an instance whose START failed gets the
        // original's reason for that case.
        let gone = if failed_start {
            VolumeFault::InstanceFailure
        } else {
            VolumeFault::NoInstance
        };
        match c {
            Cmd::Stop => self.fail_stop(id, StopFailureReason::NoInstance),
            Cmd::Restart => self.fail_restart(id, RestartFailureReason::NoInstance),
            Cmd::Delete => self.fail_delete(id, DeleteFailureReason::NoInstance),
            Cmd::Start(..) => self.fail_start(id, StartFailureReason::InstanceExists),
            Cmd::Attach(v) => self.fail_volume(true, id, &v, gone),
            Cmd::Detach(v) => self.fail_volume(false, id, &v, gone),
        }
    }

    /// DELETE: the driver has let go; its links go, then its files, then
    /// the instance.
    fn finish_delete(&mut self, id: &str) {
        if self.networked(id)
            && self
                .instances
                .get(id)
                .is_some_and(|i| i.state != State::Quarantined)
        {
            self.unplug(id, AfterUnplug::Delete);
            return;
        }
        if let Some(inst) = self.instances.get_mut(id) {
            inst.pending = Some(Pending::Remove);
        }
        self.remove_dir(id);
    }

    /// DELETE done: the entry goes and the server is told.
    fn deleted(&mut self, id: &str) {
        let queued: Vec<Cmd> = self
            .instances
            .get_mut(id)
            .map(|i| i.queue.drain(..).collect())
            .unwrap_or_default();
        if let Some(q) = self.instances.get(id).and_then(|i| i.quarantine.as_ref()) {
            info!("quarantined instance {id} removed ({q})");
        }
        self.forget(id);
        info!("instance {id} deleted");
        self.send(
            Event::InstanceDeleted,
            payloads::InstanceDeleted::new(id).to_yaml(),
        );
        self.wants.status = true;
        for c in queued {
            self.refuse_orphan(id, c, false);
        }
    }

    /// Rewrites the state file; the instance takes state `then` (and it is
    /// reported) once the file is durable.
    fn save(&mut self, id: &str, then: State) {
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        inst.pending = Some(Pending::Save { then });
        let record = StateFile::new(inst.config.clone(), inst.stopped).record(id);
        self.record(id, record);
    }

    /// The current operation finished: run the next queued command.
    fn done(&mut self, id: &str, now: Instant) {
        if let Some(inst) = self.instances.get_mut(id) {
            inst.op = None;
        }
        self.run_queue(id, now);
    }

    fn send(&mut self, op: impl Into<frame::Op>, payload: String) {
        self.effects.push(Effect::Send(Outgoing {
            op: op.into(),
            payload: payload.into_bytes(),
        }));
    }

    fn fail_start(&mut self, id: &str, r: StartFailureReason) {
        self.send(
            ErrorCode::StartFailure,
            payloads::StartFailure::new(id, r).to_yaml(),
        );
    }

    fn fail_stop(&mut self, id: &str, r: StopFailureReason) {
        self.send(
            ErrorCode::StopFailure,
            payloads::StopFailure::new(id, r).to_yaml(),
        );
    }

    fn fail_restart(&mut self, id: &str, r: RestartFailureReason) {
        self.send(
            ErrorCode::RestartFailure,
            payloads::RestartFailure::new(id, r).to_yaml(),
        );
    }

    fn fail_delete(&mut self, id: &str, r: DeleteFailureReason) {
        self.send(
            ErrorCode::DeleteFailure,
            payloads::DeleteFailure::new(id, r).to_yaml(),
        );
    }

    /// Ids of every instance and its reported state (tests, hard reset).
    #[cfg(test)]
    pub(crate) fn list(&self) -> Vec<(String, &'static str)> {
        self.instances
            .iter()
            .map(|(k, v)| (k.clone(), v.state.wire().as_str()))
            .collect()
    }

    /// Deletes every instance at once (`-hard-reset`): urgent stops, then
    /// destruction. Returns how many were queued.
    pub(crate) fn delete_all(&mut self, now: Instant) -> usize {
        let ids: Vec<String> = self.instances.keys().cloned().collect();
        for id in &ids {
            self.enqueue(id.clone(), Cmd::Delete, now);
        }
        self.settle(now);
        ids.len()
    }
}

/// Adds (`attach`) or removes volume `uuid` in an instance's record.
fn change_volumes(config: &mut InstanceConfig, uuid: &str, attach: bool) {
    if attach {
        if !config.volumes.iter().any(|v| v.uuid == uuid) {
            config.volumes.push(payloads::VolumeConfig {
                uuid: uuid.to_string(),
                bootable: false,
            });
        }
    } else {
        config.volumes.retain(|v| v.uuid != uuid);
    }
}

/// For log lines.
fn volume_verb(attach: bool) -> &'static str {
    if attach {
        "AttachVolume"
    } else {
        "DetachVolume"
    }
}

/// What an instance holds, for capacity accounting.
fn resources(c: &InstanceConfig) -> Resources {
    Resources {
        cpus: c.cpus,
        mem_mb: c.mem_mb,
        disk_mb: c.disk_mb,
    }
}
/// Pins the instance-management fixes listed in docs/compatibility.md
/// (L1–L5, L7, L17–L19, P13.14 and P13.16 there).
/// A scripted driver makes every step wait for a timer the test fires, so
/// commands can be interleaved with unfinished operations at will.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{Timer, TimerOp};
    use crate::payloads::{ErrorReport, InstanceDeleted, VolumeErrorReport};
    use std::cell::RefCell;
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;
    use std::rc::Rc;

    // The scripted driver's three steps, each completed by a timer.
    const BOOT: Timer = Timer::SimBoot;
    const STOP: Timer = Timer::VmStop;
    const DESTROY: Timer = Timer::CtrRetry;
    /// Completes a hot-plug or hot-unplug (a volume named `bad…` fails).
    const VOLUME: Timer = Timer::VmVolume;

    type Log = Rc<RefCell<Vec<String>>>;

    /// Each step completes when the test fires its timer. The image name
    /// chooses a failure: `fail-image` fails before the launch,
    /// `fail-launch` at the launch.
    struct Scripted {
        log: Log,
        running: bool,
        /// The volume being hot-plugged or hot-unplugged.
        volume: Option<String>,
    }

    impl Driver for Scripted {
        fn start(&mut self, cx: &mut Cx, restart: bool, _u: &[u8], _m: &[u8]) {
            let id = cx.inst.id.clone();
            self.log
                .borrow_mut()
                .push(format!("start {id} restart={restart}"));
            if let Some(Vnic::Tap { name, .. }) = cx.vnic {
                self.log.borrow_mut().push(format!("attach {id} {name}"));
            }
            if cx.config.image() != "fail-image" {
                cx.outcome(Outcome::Launched);
            }
            cx.arm(BOOT, Duration::from_secs(1));
        }
        fn stop(&mut self, cx: &mut Cx, urgent: bool) {
            let id = cx.inst.id.clone();
            self.log
                .borrow_mut()
                .push(format!("stop {id} urgent={urgent}"));
            cx.arm(STOP, Duration::from_secs(1));
        }
        fn destroy(&mut self, cx: &mut Cx) {
            let id = cx.inst.id.clone();
            self.log.borrow_mut().push(format!("destroy {id}"));
            cx.arm(DESTROY, Duration::from_secs(1));
        }
        fn recover(&mut self, cx: &mut Cx, stopped: bool) {
            self.running = !stopped;
            cx.outcome(Outcome::recovered(stopped));
        }
        fn input(&mut self, cx: &mut Cx, input: Input) {
            match input {
                Input::Timer(BOOT) => match cx.config.image() {
                    "fail-image" => cx.outcome(Outcome::StartFailed {
                        reason: StartFailureReason::ImageFailure,
                        detail: "scripted".into(),
                    }),
                    "fail-launch" => cx.outcome(Outcome::StartFailed {
                        reason: StartFailureReason::LaunchFailure,
                        detail: "scripted".into(),
                    }),
                    _ => {
                        self.running = true;
                        cx.outcome(Outcome::Running)
                    }
                },
                Input::Timer(STOP) => {
                    self.running = false;
                    cx.outcome(Outcome::Exited)
                }
                Input::Timer(DESTROY) => cx.outcome(Outcome::Destroyed),
                Input::Timer(VOLUME) => {
                    let v = self.volume.take().unwrap_or_default();
                    cx.outcome(Outcome::Volume(if v.starts_with("bad") {
                        Err("scripted".into())
                    } else {
                        Ok(())
                    }))
                }
                other => panic!("unexpected input {other:?}"),
            }
        }
        fn attach(&mut self, cx: &mut Cx, uuid: &str) {
            assert!(self.running, "hot-plug on a running instance only");
            let id = cx.inst.id.clone();
            self.log.borrow_mut().push(format!("hot-plug {id} {uuid}"));
            self.volume = Some(uuid.into());
            cx.arm(VOLUME, Duration::from_secs(1));
        }
        fn detach(&mut self, cx: &mut Cx, uuid: &str) {
            assert!(self.running, "hot-unplug on a running instance only");
            let id = cx.inst.id.clone();
            self.log
                .borrow_mut()
                .push(format!("hot-unplug {id} {uuid}"));
            self.volume = Some(uuid.into());
            cx.arm(VOLUME, Duration::from_secs(1));
        }
        fn usage(&mut self, _c: &InstanceConfig, _now: Instant) -> Usage {
            Usage::UNKNOWN
        }
    }

    struct Factory(Log);

    impl DriverFactory for Factory {
        fn make(&mut self, _config: &InstanceConfig, _dir: PathBuf) -> Box<dyn Driver> {
            Box::new(Scripted {
                log: self.0.clone(),
                running: false,
                volume: None,
            })
        }
    }

    use std::time::Duration;

    /// The instances directory in memory: directories and files.
    #[derive(Default)]
    struct Disk {
        dirs: BTreeSet<PathBuf>,
        files: BTreeMap<PathBuf, Vec<u8>>,
        /// The state log's frames, in order.
        log: Vec<u8>,
        /// Every change fails with EROFS (a data root remounted read-only).
        read_only: bool,
    }

    impl Disk {
        fn apply(&mut self, action: FileAction) -> Result<Vec<u8>, FileError> {
            let err = |p: &Path, kind| Err(FileError::new(p, &io::Error::from(kind)));
            if self.read_only
                && !matches!(
                    action,
                    FileAction::Read { .. } | FileAction::CheckAbsent { .. }
                )
            {
                return Err(FileError::new(
                    action.path(),
                    &io::Error::from_raw_os_error(libc::EROFS),
                ));
            }
            match action {
                FileAction::CreateDir { path, .. } => {
                    if !self.dirs.insert(path.clone()) {
                        return err(&path, io::ErrorKind::AlreadyExists);
                    }
                }
                FileAction::Write { path, bytes, .. } => {
                    if !path.parent().is_some_and(|d| self.dirs.contains(d)) {
                        return err(&path, io::ErrorKind::NotFound);
                    }
                    self.files.insert(path, bytes);
                }
                FileAction::Record { frame, .. } => self.log.extend(frame),
                FileAction::CheckAbsent { path } => {
                    if self.dirs.contains(&path) || self.files.contains_key(&path) {
                        return err(&path, io::ErrorKind::AlreadyExists);
                    }
                }
                FileAction::Read { path } => {
                    return match self.files.get(&path) {
                        Some(b) => Ok(b.clone()),
                        None => err(&path, io::ErrorKind::NotFound),
                    }
                }
                FileAction::RemoveFile { path } => {
                    self.files.remove(&path);
                }
                FileAction::RemoveTree { path } => {
                    self.dirs.retain(|d| !d.starts_with(&path));
                    self.files.retain(|f, _| !f.starts_with(&path));
                }
            }
            Ok(Vec::new())
        }

        /// The state the log holds for instance `id`.
        fn recorded(&self, id: &str) -> Option<Vec<u8>> {
            let mut log = crate::launcher::statelog::HEADER.to_vec();
            log.extend(&self.log);
            crate::launcher::statelog::Replay::of(&log)
                .unwrap()
                .live
                .remove(id)
        }
    }

    /// The links in memory: which instances have a vnic; a plug fails
    /// while `fail` is set.
    #[derive(Default)]
    struct Net {
        plugged: BTreeSet<String>,
        fail: bool,
    }

    struct Fx {
        m: Manager,
        root: PathBuf,
        disk: Disk,
        net: Net,
        log: Log,
        timers: Vec<Key<Timer>>,
        /// (type, operand, payload) of every frame sent, in order.
        frames: Vec<(frame::Op, Vec<u8>)>,
        now: Instant,
    }

    fn fx(_tag: &str, limits: Limits) -> Fx {
        let root = PathBuf::from("/instances");
        let log: Log = Rc::default();
        let m = Manager::new(root.clone(), limits, Box::new(Factory(log.clone())));
        Fx {
            m,
            root,
            disk: Disk::default(),
            net: Net::default(),
            log,
            timers: Vec::new(),
            frames: Vec::new(),
            now: Instant::now(),
        }
    }

    fn no_limits() -> Limits {
        Limits {
            mem_limit: false,
            disk_limit: false,
            max_instances: 1000,
        }
    }

    fn start_yaml(id: &str, image: &str, docker: bool) -> String {
        let kind = if docker {
            format!("  vm_type: docker\n  docker_image: {image}\n")
        } else {
            format!("  vm_type: qemu\n  image_uuid: {image}\n")
        };
        format!(
            "start:\n  instance_uuid: {id}\n{kind}  fw_type: legacy\n  requested_resources:\n    - type: vcpus\n      value: 1\n    - type: mem_mb\n      value: 100\n"
        )
    }

    impl Fx {
        /// Executes the manager's effects until there are none.
        fn pump(&mut self) {
            loop {
                let effects = self.m.take_effects();
                if effects.is_empty() {
                    return;
                }
                for e in effects {
                    match e {
                        Effect::Send(o) => self.frames.push((o.op, o.payload)),
                        Effect::Timer(TimerOp::Arm { key, .. }) => {
                            self.timers.retain(|k| *k != key);
                            self.timers.push(key)
                        }
                        Effect::Timer(TimerOp::Cancel { key }) => self.timers.retain(|k| *k != key),
                        Effect::File(FileOp { key, action }) => {
                            let result = self.disk.apply(action);
                            self.m.on_input(
                                &key.inst,
                                Input::File {
                                    res: key.what,
                                    result,
                                },
                                self.now,
                            );
                        }
                        Effect::Net(NetOp { key, action }) => {
                            let id = key.inst.id.to_string();
                            let result = match action {
                                NetAction::Plug { config, .. } => {
                                    // Recorded before it is linked.
                                    assert!(self.disk.recorded(&id).is_some());
                                    self.log.borrow_mut().push(format!("plug {id}"));
                                    if self.net.fail {
                                        Err("scripted".to_string())
                                    } else {
                                        self.net.plugged.insert(id.clone());
                                        let mac = [2, 0, 0, 0, 0, 1];
                                        assert_eq!(config.instance_uuid, id);
                                        Ok(Some(Vnic::Tap {
                                            name: format!("svn_{id}"),
                                            mac,
                                        }))
                                    }
                                }
                                NetAction::Unplug => {
                                    // Unlinked before its files go.
                                    assert!(self.exists(&id));
                                    self.log.borrow_mut().push(format!("unplug {id}"));
                                    self.net.plugged.remove(&id);
                                    Ok(None)
                                }
                            };
                            self.m.on_input(
                                &key.inst,
                                Input::Net {
                                    res: key.what,
                                    result,
                                },
                                self.now,
                            );
                        }
                        Effect::Io(op) => panic!("unexpected effect {op:?}"),
                    }
                }
            }
        }

        /// Its directory or its state.
        fn exists(&self, id: &str) -> bool {
            self.disk.dirs.contains(&self.root.join(id)) || self.disk.recorded(id).is_some()
        }

        fn cmd(&mut self, operand: Command, payload: String) {
            let f = Frame::new(operand, [0; 16], payload.into_bytes());
            self.m.on_command(f, self.now);
            self.pump();
        }

        fn start(&mut self, id: &str, image: &str) {
            self.cmd(Command::Start, start_yaml(id, image, false));
        }

        fn simple(&mut self, operand: Command, id: &str) {
            let kind = match operand {
                Command::Stop => "stop",
                Command::Restart => "restart",
                _ => "delete",
            };
            self.cmd(operand, format!("{kind}:\n  instance_uuid: {id}\n"));
        }

        /// Completes the pending step `timer` of instance `id`.
        fn fire(&mut self, id: &str, timer: Timer) -> Key<Timer> {
            let i = self
                .timers
                .iter()
                .position(|k| &*k.inst.id == id && k.what == timer)
                .unwrap_or_else(|| panic!("no timer {timer:?} for {id}: {:?}", self.timers));
            let key = self.timers.remove(i);
            self.m.on_input(&key.inst, Input::Timer(timer), self.now);
            self.pump();
            key
        }

        fn state(&self, id: &str) -> Option<&'static str> {
            self.m
                .list()
                .into_iter()
                .find(|(k, _)| k == id)
                .map(|(_, s)| s)
        }

        /// ERROR frames sent since the last call: (operand, instance, reason).
        fn errors(&mut self) -> Vec<(ErrorCode, String, String)> {
            let mut out = Vec::new();
            self.frames.retain(|(op, p)| {
                let frame::Op::Error(code) = *op else {
                    return true;
                };
                let r = ErrorReport::parse(p).unwrap();
                out.push((code, r.instance_uuid, r.reason));
                false
            });
            out
        }

        /// InstanceDeleted events sent since the last call.
        fn deleted(&mut self) -> Vec<String> {
            let mut out = Vec::new();
            self.frames.retain(|(op, p)| {
                if *op != frame::Op::Event(Event::InstanceDeleted) {
                    return true;
                }
                out.push(InstanceDeleted::parse(p).unwrap().instance_uuid);
                false
            });
            out
        }

        fn took_log(&self) -> Vec<String> {
            std::mem::take(&mut *self.log.borrow_mut())
        }
    }

    fn err(op: ErrorCode, id: &str, reason: &str) -> (ErrorCode, String, String) {
        (op, id.to_string(), reason.to_string())
    }

    /// Launcher defect 1: a STOP for one instance is not held up by
    /// another instance's unfinished START.
    #[test]
    fn defect_1_a_slow_start_does_not_delay_another_instances_stop() {
        let mut f = fx("d1", no_limits());
        f.start("aa01", "img");
        f.fire("aa01", BOOT);
        f.start("bb02", "img"); // stays booting
        f.simple(Command::Stop, "aa01");
        f.fire("aa01", STOP);
        assert_eq!(f.state("aa01"), Some("exited"));
        assert_eq!(f.state("bb02"), Some("pending"));
        assert!(f.errors().is_empty());
    }

    /// Launcher defect 2: commands for one instance run in arrival order,
    /// each after the previous one finished.
    #[test]
    fn defect_2_commands_to_one_instance_run_in_arrival_order() {
        let mut f = fx("d2", no_limits());
        f.start("aa01", "img");
        f.simple(Command::Stop, "aa01");
        f.simple(Command::Restart, "aa01");
        f.simple(Command::Stop, "aa01");
        // Nothing but the START has reached the driver yet.
        assert_eq!(f.took_log(), ["start aa01 restart=false"]);
        f.fire("aa01", BOOT);
        f.fire("aa01", STOP);
        f.fire("aa01", BOOT);
        f.fire("aa01", STOP);
        assert_eq!(
            f.took_log(),
            [
                "stop aa01 urgent=false",
                "start aa01 restart=true",
                "stop aa01 urgent=false"
            ]
        );
        assert_eq!(f.state("aa01"), Some("exited"));
        assert!(f.errors().is_empty());
    }

    /// Launcher defect 3: the entry goes only when the DELETE completes; a
    /// START arriving meanwhile is refused (`instance_exists`) without a
    /// ghost entry; a START over a leftover directory leaves no entry.
    #[test]
    fn defect_3_start_during_delete_and_over_a_leftover_directory() {
        let mut f = fx("d3", no_limits());
        f.start("aa01", "img");
        f.fire("aa01", BOOT);
        f.simple(Command::Delete, "aa01");
        assert_eq!(
            f.state("aa01"),
            Some("active"),
            "still there while deleting"
        );
        f.start("aa01", "img");
        f.fire("aa01", STOP);
        assert!(f.errors().is_empty(), "the START waits for the DELETE");
        f.fire("aa01", DESTROY);
        assert_eq!(f.deleted(), ["aa01"]);
        assert_eq!(
            f.errors(),
            [err(ErrorCode::StartFailure, "aa01", "instance_exists")]
        );
        assert_eq!(f.state("aa01"), None, "no ghost entry");
        assert!(f.timers.is_empty());
        // Once deleted, the id can be started afresh.
        f.start("aa01", "img");
        f.fire("aa01", BOOT);
        assert_eq!(f.state("aa01"), Some("active"));

        f.disk.dirs.insert(f.root.join("cc03"));
        f.start("cc03", "img");
        assert_eq!(
            f.errors(),
            [err(ErrorCode::StartFailure, "cc03", "instance_exists")]
        );
        assert_eq!(f.state("cc03"), None, "the original kept a pending ghost");
    }

    /// Launcher defects 4 and 5: an instance whose START fails before the
    /// launch removes itself once (no InstanceDeleted, as the original);
    /// a DELETE and a START queued behind it get the answers for an
    /// instance that does not exist any more, and nothing is orphaned.
    #[test]
    fn defects_4_5_commands_queued_behind_a_failing_start() {
        let mut f = fx("d45", no_limits());
        f.start("aa01", "fail-image");
        f.simple(Command::Delete, "aa01");
        f.start("aa01", "img");
        f.simple(Command::Stop, "aa01");
        assert!(f.errors().is_empty());
        f.fire("aa01", BOOT);
        assert_eq!(
            f.errors(),
            [
                err(ErrorCode::StartFailure, "aa01", "image_failure"),
                err(ErrorCode::DeleteFailure, "aa01", "no_instance"),
                err(ErrorCode::StartFailure, "aa01", "instance_exists"),
                err(ErrorCode::StopFailure, "aa01", "no_instance"),
            ]
        );
        assert!(f.deleted().is_empty());
        assert_eq!(f.state("aa01"), None);
        assert!(!f.exists("aa01"));
        // The START queued behind never ran: one start only.
        assert_eq!(f.took_log(), ["start aa01 restart=false"]);
    }

    /// Launcher defect 7 (and the generation every key carries:
    /// docs/architecture.md): an answer that arrives for an instance
    /// deleted and re-created meanwhile is recognised and dropped; it never
    /// reaches the new instance.
    #[test]
    fn defect_7_late_answers_for_a_previous_generation_are_dropped() {
        let mut f = fx("d7", no_limits());
        f.start("aa01", "img");
        let old = f.fire("aa01", BOOT);
        f.simple(Command::Delete, "aa01");
        f.fire("aa01", STOP);
        f.fire("aa01", DESTROY);
        f.start("aa01", "img");
        assert_eq!(f.state("aa01"), Some("pending"));
        f.m.on_input(&old.inst, Input::Timer(BOOT), f.now);
        f.pump();
        assert_eq!(f.state("aa01"), Some("pending"), "old answer dropped");
        f.fire("aa01", BOOT);
        assert_eq!(f.state("aa01"), Some("active"));
    }

    /// L17, B11, B12 and P13.14 in docs/compatibility.md: volume errors
    /// name the instance and the volume in the right fields, `no_instance`
    /// is sent for an unknown instance, and volume commands are never met
    /// with silence (no volume support: `not_supported`). Failures on
    /// receipt carry empty ids.
    #[test]
    fn defect_17_volume_errors_have_the_right_ids_and_no_instance() {
        let mut f = fx("d17", no_limits());
        f.cmd(Command::Start, start_yaml("aa01", "img", true));
        f.fire("aa01", BOOT);
        let mut volume = |op: Command, payload: String| -> (ErrorCode, VolumeErrorReport) {
            f.frames.clear();
            f.cmd(op, payload);
            assert_eq!(f.frames.len(), 1, "one answer");
            let (o, p) = f.frames.remove(0);
            let frame::Op::Error(code) = o else {
                panic!("not an ERROR: {o:?}")
            };
            (code, VolumeErrorReport::parse(&p).unwrap())
        };
        let body = |w: &str, inst: &str| {
            format!("{w}:\n  instance_uuid: {inst}\n  volume_uuid: cccc0001\n")
        };
        for (op, fail, wrapper) in [
            (
                Command::AttachVolume,
                ErrorCode::AttachVolumeFailure,
                "attach_volume",
            ),
            (
                Command::DetachVolume,
                ErrorCode::DetachVolumeFailure,
                "detach_volume",
            ),
        ] {
            let (o, r) = volume(op, body(wrapper, "aa01"));
            assert_eq!(o, fail);
            assert_eq!(
                (
                    r.instance_uuid.as_str(),
                    r.volume_uuid.as_str(),
                    r.reason.as_str()
                ),
                ("aa01", "cccc0001", "not_supported")
            );
            let (o, r) = volume(op, body(wrapper, "bb02"));
            assert_eq!(o, fail);
            assert_eq!(
                (
                    r.instance_uuid.as_str(),
                    r.volume_uuid.as_str(),
                    r.reason.as_str()
                ),
                ("bb02", "cccc0001", "no_instance")
            );
            let (o, r) = volume(op, format!("{wrapper}: [x"));
            assert_eq!(o, fail);
            assert_eq!(
                (
                    r.instance_uuid.as_str(),
                    r.volume_uuid.as_str(),
                    r.reason.as_str()
                ),
                ("", "", "invalid_payload")
            );
        }
        assert_eq!(f.state("aa01"), Some("active"), "the instance is untouched");
    }

    /// Launcher defect 18: a container's 10000 MB disk allowance is
    /// accounted at admission (the original only counted it after a
    /// restart); a VM's is 0, as in the original.
    #[test]
    fn defect_18_container_disk_is_accounted_at_admission() {
        let limits = Limits {
            mem_limit: false,
            disk_limit: true,
            max_instances: 1000,
        };
        let mut f = fx("d18", limits);
        // 55000 MB free: one container fits (45000 >= 40000), two do not.
        assert!(!f.m.ready(0, 55_000, f.now), "below the 80000 MB mark");
        f.cmd(Command::Start, start_yaml("aa01", "busybox", true));
        assert!(f.errors().is_empty());
        f.cmd(Command::Start, start_yaml("bb02", "busybox", true));
        assert_eq!(
            f.errors(),
            [err(ErrorCode::StartFailure, "bb02", "full_cn")]
        );
        f.start("cc03", "img");
        assert!(f.errors().is_empty(), "a VM has no disk allowance");
        assert_eq!(f.m.list().len(), 2);
    }

    /// Launcher defect 19 at the manager: STARTs between two node samples
    /// see each other's memory.
    #[test]
    fn defect_19_admissions_between_samples_see_each_other() {
        let limits = Limits {
            mem_limit: true,
            disk_limit: false,
            max_instances: 1000,
        };
        let mut f = fx("d19", limits);
        // 800 MB free: 100 MB each, down to the 512 MB mark: two fit.
        f.m.ready(800, 0, f.now);
        for id in ["aa01", "aa02", "aa03"] {
            f.start(id, "img");
        }
        assert_eq!(
            f.errors(),
            [err(ErrorCode::StartFailure, "aa03", "full_cn")]
        );
    }

    /// START for an instance the launcher knows: `already_running` while it
    /// runs, `instance_exists` once it has exited (the new payload is
    /// ignored either way, as in the original). A START that arrives while
    /// the first one is still booting waits for it, then gets
    /// `already_running`.
    #[test]
    fn start_of_a_known_instance() {
        let mut f = fx("known", no_limits());
        f.start("aa01", "img");
        f.start("aa01", "img");
        assert!(
            f.errors().is_empty(),
            "answered when the first START is done"
        );
        f.fire("aa01", BOOT);
        assert_eq!(
            f.errors(),
            [err(ErrorCode::StartFailure, "aa01", "already_running")]
        );
        f.start("aa01", "img");
        assert_eq!(
            f.errors(),
            [err(ErrorCode::StartFailure, "aa01", "already_running")]
        );
        f.simple(Command::Stop, "aa01");
        f.fire("aa01", STOP);
        f.start("aa01", "img");
        assert_eq!(
            f.errors(),
            [err(ErrorCode::StartFailure, "aa01", "instance_exists")]
        );
        assert_eq!(f.took_log().len(), 2, "one start, one stop");
    }

    /// A START that fails at the launch keeps the instance, reported
    /// exited; RESTART boots it (as the original).
    #[test]
    fn launch_failure_keeps_the_instance() {
        let mut f = fx("lf", no_limits());
        f.start("aa01", "fail-launch");
        f.fire("aa01", BOOT);
        assert_eq!(
            f.errors(),
            [err(ErrorCode::StartFailure, "aa01", "launch_failure")]
        );
        assert_eq!(f.state("aa01"), Some("exited"));
        assert!(f.disk.recorded("aa01").is_some());
    }

    /// Stops are graceful, deletes are not (docs/architecture.md): a DELETE
    /// queued behind a graceful STOP escalates it at once; the instance's
    /// files go only after it has exited.
    #[test]
    fn delete_escalates_a_graceful_stop() {
        let mut f = fx("esc", no_limits());
        f.start("aa01", "img");
        f.fire("aa01", BOOT);
        f.took_log();
        f.simple(Command::Stop, "aa01");
        f.simple(Command::Delete, "aa01");
        assert_eq!(
            f.took_log(),
            ["stop aa01 urgent=false", "stop aa01 urgent=true"]
        );
        assert!(f.exists("aa01"), "files kept while it runs");
        f.fire("aa01", STOP);
        f.fire("aa01", DESTROY);
        assert_eq!(f.deleted(), ["aa01"]);
        assert!(!f.exists("aa01"));
    }

    /// A DELETE whose files cannot be removed is a DeleteFailure
    /// (`invalid_data`), never InstanceDeleted: the instance stays, exited,
    /// and a later DELETE (once writable) removes it (O30 in
    /// docs/compatibility.md).
    #[test]
    fn delete_that_cannot_remove_the_files_fails_and_keeps_the_instance() {
        let mut f = fx("rodel", no_limits());
        f.start("aa01", "img");
        f.fire("aa01", BOOT);
        f.disk.read_only = true;
        f.simple(Command::Delete, "aa01");
        f.fire("aa01", STOP);
        f.fire("aa01", DESTROY);
        assert!(f.deleted().is_empty(), "reported deleted, files remain");
        assert_eq!(
            f.errors(),
            [err(ErrorCode::DeleteFailure, "aa01", "invalid_data")]
        );
        assert_eq!(f.state("aa01"), Some("exited"));
        assert!(f.exists("aa01"));
        f.disk.read_only = false;
        f.simple(Command::Delete, "aa01");
        f.fire("aa01", DESTROY);
        assert_eq!(f.deleted(), ["aa01"]);
        assert_eq!(f.state("aa01"), None);
        assert!(f.errors().is_empty());
    }

    /// A STOP whose state cannot be saved is a StopFailure
    /// (`invalid_data`): the VM did stop and is reported exited, but the
    /// saved state still says it runs, and the table agrees with it (a
    /// RESTART does not need to clear a stop that was never recorded).
    #[test]
    fn stop_that_cannot_be_saved_fails() {
        let mut f = fx("rostop", no_limits());
        f.start("aa01", "img");
        f.fire("aa01", BOOT);
        f.disk.read_only = true;
        f.simple(Command::Stop, "aa01");
        f.fire("aa01", STOP);
        assert_eq!(
            f.errors(),
            [err(ErrorCode::StopFailure, "aa01", "invalid_data")]
        );
        assert_eq!(f.state("aa01"), Some("exited"));
        let saved = f.disk.recorded("aa01").unwrap();
        assert!(!String::from_utf8_lossy(&saved).contains("stopped: true"));
        // RESTART while read-only: nothing to save, it runs again.
        f.simple(Command::Restart, "aa01");
        f.fire("aa01", BOOT);
        assert_eq!(f.state("aa01"), Some("active"));
        assert!(f.errors().is_empty());
    }

    /// A START whose directory cannot be made for a reason other than
    /// its existence is `image_failure`, not `instance_exists`.
    #[test]
    fn start_on_a_read_only_disk_is_not_instance_exists() {
        let mut f = fx("rostart", no_limits());
        f.disk.read_only = true;
        f.start("aa01", "img");
        assert_eq!(
            f.errors(),
            [err(ErrorCode::StartFailure, "aa01", "image_failure")]
        );
        assert_eq!(f.state("aa01"), None);
    }

    /// Commands a launcher does not handle (EVACUATE, CONFIGURE, unknown
    /// operands) are logged and ignored: no answer, no effect
    /// (S10.5 in docs/compatibility.md).
    #[test]
    fn unhandled_and_unknown_command_operands_are_ignored() {
        let mut f = fx("unk", no_limits());
        for op in [Command::Evacuate, Command::Configure, Command::Unknown(42)] {
            f.cmd(op, "anything: 1\n".into());
        }
        assert!(f.frames.is_empty() && f.timers.is_empty());
        assert!(f.m.is_empty());
    }

    /// P13.16 in docs/compatibility.md: STATS list the instances in one
    /// stable order (by id), whatever the order they were started in.
    #[test]
    fn stats_list_instances_in_a_stable_order() {
        let mut f = fx("order", no_limits());
        for id in ["cc03", "aa01", "bb02"] {
            f.start(id, "img");
        }
        let ids: Vec<String> =
            f.m.stats(f.now)
                .into_iter()
                .map(|s| s.instance_uuid)
                .collect();
        assert_eq!(ids, ["aa01", "bb02", "cc03"]);
    }

    /// The reporting cadence (docs/architecture.md) at the manager: a launch
    /// asks for a STATUS (the original's), every state change for a STATS, a
    /// completed DELETE for a STATUS.
    #[test]
    fn state_changes_ask_for_reports() {
        let mut f = fx("wants", no_limits());
        f.start("aa01", "img");
        assert_eq!(
            f.m.take_wants(),
            Wants {
                stats: true,
                status: true
            }
        );
        f.fire("aa01", BOOT);
        assert_eq!(
            f.m.take_wants(),
            Wants {
                stats: true,
                status: false
            }
        );
        f.simple(Command::Delete, "aa01");
        f.fire("aa01", STOP);
        f.fire("aa01", DESTROY);
        assert_eq!(
            f.m.take_wants(),
            Wants {
                stats: true,
                status: true
            }
        );
    }

    fn start_net_yaml(id: &str, image: &str) -> String {
        start_yaml(id, image, false)
            + "  tenant_uuid: 11111111-2222-4333-8444-555555555555\n  networking:\n    vnic_mac: 02:00:ac:10:05:07\n    vnic_uuid: 0a0b0c0d-0000-4000-8000-000000000020\n    concentrator_uuid: 0a0b0c0d-0000-4000-8000-000000000030\n    concentrator_ip: 192.168.42.21\n    subnet: 172.16.5.0/24\n    private_ip: 172.16.5.7\n"
    }

    /// A networked container's START.
    fn start_net_container_yaml(id: &str) -> String {
        start_net_yaml(id, "img").replace(
            "  vm_type: qemu\n  image_uuid: img\n",
            "  vm_type: docker\n  docker_image: busybox\n",
        )
    }

    fn net_fx(tag: &str) -> Fx {
        let mut f = fx(tag, no_limits());
        f.m.set_network(true);
        f
    }

    /// The links are made before the driver starts, which gets them.
    fn assert_plugged_then_started(f: &mut Fx, id: &str, restart: bool) {
        assert_eq!(
            f.took_log(),
            [
                format!("plug {id}"),
                format!("start {id} restart={restart}"),
                format!("attach {id} svn_{id}")
            ]
        );
    }

    /// DELETE of a running networked instance: the driver stops and
    /// destroys it, then its links go.
    fn delete_destroys_then_unplugs(f: &mut Fx, id: &str) {
        f.simple(Command::Delete, id);
        f.fire(id, STOP);
        f.fire(id, DESTROY);
        assert_eq!(
            f.took_log(),
            [
                format!("stop {id} urgent=true"),
                format!("destroy {id}"),
                format!("unplug {id}")
            ]
        );
    }

    /// With networking: the vnic is made once the state file is durable
    /// and before the driver starts, which gets it; DELETE removes the
    /// links before the files; STOP keeps them for RESTART.
    #[test]
    fn network_links_follow_the_instance() {
        let mut f = net_fx("net");
        f.cmd(Command::Start, start_net_yaml("ab01", "img"));
        assert_plugged_then_started(&mut f, "ab01", false);
        f.fire("ab01", BOOT);
        assert_eq!(f.state("ab01"), Some("active"));
        f.simple(Command::Stop, "ab01");
        f.fire("ab01", STOP);
        assert_eq!(f.took_log(), ["stop ab01 urgent=false"]);
        assert!(f.net.plugged.contains("ab01"), "STOP keeps the links");
        f.simple(Command::Restart, "ab01");
        assert_plugged_then_started(&mut f, "ab01", true);
        f.fire("ab01", BOOT);
        delete_destroys_then_unplugs(&mut f, "ab01");
        assert!(!f.exists("ab01"));
        assert!(f.net.plugged.is_empty());
        assert_eq!(f.deleted(), ["ab01"]);
        assert!(f.errors().is_empty());
    }

    /// A networked container: its veth pair is made before the driver
    /// starts; STOP and RESTART keep it (RESTART finds it again);
    /// DELETE removes the container, then the links, then the files.
    /// STATS report no SSH address or port for it (B17).
    #[test]
    fn a_container_gets_links_like_a_vm() {
        let mut f = net_fx("ctr");
        f.cmd(Command::Start, start_net_container_yaml("ac01"));
        assert_plugged_then_started(&mut f, "ac01", false);
        f.fire("ac01", BOOT);
        assert_eq!(f.state("ac01"), Some("active"));
        let st = f.m.stats(f.now);
        assert_eq!((st[0].ssh_ip.as_str(), st[0].ssh_port), ("", 0));
        f.simple(Command::Stop, "ac01");
        f.fire("ac01", STOP);
        assert!(f.net.plugged.contains("ac01"), "STOP keeps the veth pair");
        f.took_log();
        f.simple(Command::Restart, "ac01");
        assert_plugged_then_started(&mut f, "ac01", true);
        f.fire("ac01", BOOT);
        delete_destroys_then_unplugs(&mut f, "ac01");
        assert!(!f.exists("ac01") && f.net.plugged.is_empty());
        assert_eq!(f.deleted(), ["ac01"]);
        assert!(f.errors().is_empty());
    }

    /// A networked container that died under the launcher (dockerd
    /// stopped or restarted: its namespace took the veth pair along) is
    /// exited with its links recorded; its RESTART asks for the links
    /// again before the driver starts (the network side makes a lost pair
    /// anew: `Topology::lost_links`).
    #[test]
    fn a_container_that_died_is_plugged_again_at_restart() {
        let mut f = net_fx("died");
        f.cmd(Command::Start, start_net_container_yaml("ac02"));
        let key = f.fire("ac02", BOOT);
        f.took_log();
        // No STOP: the container exits on its own.
        f.m.on_input(&key.inst, Input::Timer(STOP), f.now);
        f.pump();
        assert_eq!(f.state("ac02"), Some("exited"));
        assert!(f.took_log().is_empty());
        f.simple(Command::Restart, "ac02");
        assert_eq!(
            f.took_log(),
            [
                "plug ac02",
                "start ac02 restart=true",
                "attach ac02 svn_ac02"
            ]
        );
        f.fire("ac02", BOOT);
        assert_eq!(f.state("ac02"), Some("active"));
        assert!(f.errors().is_empty());
    }

    /// B4 fixed: a START that fails after its vnic was made removes the
    /// links, then the files, then reports the failure; commands queued
    /// behind it are refused.
    #[test]
    fn a_start_failing_after_its_vnic_leaves_no_link() {
        let mut f = net_fx("b4");
        f.cmd(Command::Start, start_net_yaml("ab02", "fail-image"));
        f.simple(Command::Stop, "ab02");
        f.fire("ab02", BOOT);
        assert_eq!(
            f.took_log(),
            [
                "plug ab02",
                "start ab02 restart=false",
                "attach ab02 svn_ab02",
                "unplug ab02"
            ]
        );
        assert!(f.net.plugged.is_empty());
        assert!(!f.exists("ab02"));
        assert_eq!(f.state("ab02"), None);
        assert_eq!(
            f.errors(),
            [
                err(ErrorCode::StartFailure, "ab02", "image_failure"),
                err(ErrorCode::StopFailure, "ab02", "no_instance"),
            ]
        );
    }

    /// A vnic that cannot be made fails the START with network_failure and
    /// leaves nothing; a RESTART that cannot plug fails with
    /// network_failure and the instance stays exited.
    #[test]
    fn network_failures_are_reported() {
        let mut f = net_fx("nf");
        f.net.fail = true;
        f.cmd(Command::Start, start_net_yaml("ab03", "img"));
        assert_eq!(f.took_log(), ["plug ab03"]);
        assert!(!f.exists("ab03"));
        assert_eq!(f.state("ab03"), None);
        assert_eq!(
            f.errors(),
            [err(ErrorCode::StartFailure, "ab03", "network_failure")]
        );

        f.net.fail = false;
        f.cmd(Command::Start, start_net_yaml("ab04", "img"));
        f.fire("ab04", BOOT);
        f.simple(Command::Stop, "ab04");
        f.fire("ab04", STOP);
        f.took_log();
        f.net.fail = true;
        f.simple(Command::Restart, "ab04");
        assert_eq!(f.took_log(), ["plug ab04"]);
        assert_eq!(f.state("ab04"), Some("exited"));
        assert_eq!(
            f.errors(),
            [err(ErrorCode::RestartFailure, "ab04", "network_failure")]
        );
        // Still deletable, links and all.
        f.simple(Command::Delete, "ab04");
        f.fire("ab04", DESTROY);
        assert_eq!(f.took_log(), ["destroy ab04", "unplug ab04"]);
        assert_eq!(f.deleted(), ["ab04"]);
    }

    /// With networking, a START whose networking section does not parse
    /// is invalid_data and one without its ids network_failure, before any
    /// link is touched.
    #[test]
    fn networking_sections_are_checked_before_any_link() {
        let mut f = net_fx("chk");
        let bad_mac = start_net_yaml("ab05", "img").replace("02:00:ac:10:05:07", "zz");
        f.cmd(Command::Start, bad_mac);
        let no_conc = start_net_yaml("ab06", "img").replace(
            "concentrator_uuid: 0a0b0c0d-0000-4000-8000-000000000030",
            "concentrator_uuid: \"\"",
        );
        f.cmd(Command::Start, no_conc);
        assert!(f.took_log().is_empty());
        assert_eq!(
            f.errors(),
            [
                err(ErrorCode::StartFailure, "ab05", "invalid_data"),
                err(ErrorCode::StartFailure, "ab06", "network_failure"),
            ]
        );
        assert!(!f.exists("ab05") && !f.exists("ab06"));
        // Containers are checked the same way.
        let ctr = start_yaml("ab07", "busybox", true) + "  networking:\n    vnic_mac: zz\n";
        f.cmd(Command::Start, ctr);
        assert!(f.took_log().is_empty());
        assert_eq!(
            f.errors(),
            [err(ErrorCode::StartFailure, "ab07", "invalid_data")]
        );
        // Without networking the same payloads start.
        let mut g = fx("chk2", no_limits());
        g.cmd(
            Command::Start,
            start_net_yaml("ab05", "img").replace("02:00:ac:10:05:07", "zz"),
        );
        assert_eq!(g.took_log(), ["start ab05 restart=false"]);
    }

    mod volumes;
}
