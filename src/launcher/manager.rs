//! The instance manager (the original's overseer and instance actors in
//! one pure state machine): dispatch of SSNTP commands, one FIFO queue per
//! instance, capacity accounting, recovery, and the frames that report it.
//!
//! Commands to one instance run one at a time in arrival order; different
//! instances progress independently (a slow START never delays another
//! instance's STOP — launcher defect 1). START admission happens at
//! dispatch, synchronously, as in the original; everything else is decided
//! when the command reaches the head of its instance's queue, so the
//! answer reflects the commands before it.
//!
//! I/O happens only through [`Effect`]s (frames, timers) executed by the
//! shell, and through the [`Store`] (fast local file operations).

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::time::Instant;

use log::{debug, error, info, warn};

use super::capacity::{Capacity, Limits, Resources};
use super::driver::{Cx, Driver, Effect, Input, Key, Outcome, Usage};
use super::store::{Found, StateFile, Store};
use crate::payloads::errors::Reason;
use crate::payloads::{
    self, DeleteFailureReason, InstanceConfig, InstanceStat, RestartFailureReason, StartCommand,
    StartFailureReason, StopFailureReason,
};
use crate::ssntp::frame::{self, Frame};

/// Makes the driver for a new or recovered instance.
pub trait DriverFactory {
    fn make(&mut self, config: &InstanceConfig) -> Box<dyn Driver>;
}

/// The state reported in STATS, plus what the manager needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
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
    fn wire(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Active => "active",
            State::Exited | State::Quarantined => "exited",
        }
    }
}

/// A command waiting in an instance's queue.
enum Cmd {
    Start(Box<StartCommand>, Option<Frame>),
    Stop,
    Restart,
    Delete,
}

impl Cmd {
    fn name(&self) -> &'static str {
        match self {
            Cmd::Start(..) => "START",
            Cmd::Stop => "STOP",
            Cmd::Restart => "RESTART",
            Cmd::Delete => "DELETE",
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
}

struct Instance {
    config: InstanceConfig,
    state: State,
    generation: u64,
    driver: Box<dyn Driver>,
    queue: VecDeque<Cmd>,
    op: Option<Op>,
    stopped: bool,
    /// A traced START frame, queued for the next TraceReport once launched.
    trace: Option<Frame>,
    /// Why it is quarantined.
    quarantine: Option<String>,
}

/// What the manager asks of the shell besides effects.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Wants {
    /// An instance changed state: a STATS within 100 ms.
    pub stats: bool,
    /// A START launched or a DELETE completed: a STATUS now.
    pub status: bool,
}

/// The instance table and everything that acts on it.
pub struct Manager {
    instances: BTreeMap<String, Instance>,
    store: Store,
    capacity: Capacity,
    limits: Limits,
    factory: Box<dyn DriverFactory>,
    next_generation: u64,
    wants: Wants,
    effects: Vec<Effect>,
    /// Traced frames launched since the last TraceReport.
    traces: Vec<Frame>,
}

impl Manager {
    pub fn new(store: Store, limits: Limits, factory: Box<dyn DriverFactory>) -> Manager {
        Manager {
            instances: BTreeMap::new(),
            store,
            capacity: Capacity::default(),
            limits,
            factory,
            next_generation: 1,
            wants: Wants::default(),
            effects: Vec::new(),
            traces: Vec::new(),
        }
    }

    /// Effects produced since the last call.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// What the shell should report, reset on read.
    pub fn take_wants(&mut self) -> Wants {
        std::mem::take(&mut self.wants)
    }

    /// Makes staged state files durable (once per loop turn).
    pub fn commit(&mut self) {
        self.store.commit();
    }

    /// Number of instances in the table (any state).
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    pub fn is_empty(&self) -> bool {
        self.instances.is_empty()
    }

    /// The limits (switched by the cluster configuration).
    pub fn set_limits(&mut self, mem_limit: bool, disk_limit: bool) {
        self.limits.mem_limit = mem_limit;
        self.limits.disk_limit = disk_limit;
    }

    /// READY (true) or FULL (false), refreshing the capacity figures from a
    /// node sample first.
    pub fn ready(&mut self, mem_available_mb: i64, disk_available_mb: i64, now: Instant) -> bool {
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
    pub fn stats(&mut self, now: Instant) -> Vec<InstanceStat> {
        self.instances
            .iter_mut()
            .map(|(id, inst)| {
                let u = match inst.state {
                    State::Quarantined => Usage::UNKNOWN,
                    _ => inst.driver.usage(&inst.config, now),
                };
                InstanceStat {
                    instance_uuid: id.clone(),
                    state: inst.state.wire().to_string(),
                    ssh_ip: inst.config.ssh_ip().to_string(),
                    ssh_port: i64::from(inst.config.ssh_port),
                    memory_usage_mb: u.memory_mb,
                    disk_usage_mb: u.disk_mb,
                    cpu_usage: u.cpu_percent,
                    volumes: inst.config.volumes.iter().map(|v| v.uuid.clone()).collect(),
                }
            })
            .collect()
    }

    /// Traced START frames launched since the last call.
    pub fn take_traces(&mut self) -> Vec<Frame> {
        std::mem::take(&mut self.traces)
    }

    /// Re-adopts every instance directory (before the first connection).
    pub fn recover(&mut self, now: Instant) {
        for found in self.store.scan() {
            match found {
                Found::Instance(id, state) => {
                    let resources = resources(&state.config);
                    self.capacity.add(resources);
                    let driver = self.factory.make(&state.config);
                    let generation = self.generation();
                    info!("recovering instance {id}");
                    self.instances.insert(
                        id.clone(),
                        Instance {
                            config: state.config,
                            state: State::Pending,
                            generation,
                            driver,
                            queue: VecDeque::new(),
                            op: Some(Op::Recover),
                            stopped: state.stopped,
                            trace: None,
                            quarantine: None,
                        },
                    );
                    let stopped = state.stopped;
                    self.drive(&id, now, |d, cx| d.recover(cx, stopped));
                }
                Found::Quarantined(id, why) => {
                    error!("instance {id} quarantined: {why}; it is reported exited and can only be deleted");
                    let config = InstanceConfig {
                        instance_uuid: id.clone(),
                        ..InstanceConfig::default()
                    };
                    let driver = self.factory.make(&config);
                    let generation = self.generation();
                    self.instances.insert(
                        id,
                        Instance {
                            config,
                            state: State::Quarantined,
                            generation,
                            driver,
                            queue: VecDeque::new(),
                            op: None,
                            stopped: true,
                            trace: None,
                            quarantine: Some(why),
                        },
                    );
                }
            }
        }
        self.wants.stats = true;
    }

    fn generation(&mut self) -> u64 {
        self.next_generation += 1;
        self.next_generation
    }

    /// Handles a COMMAND frame from the server.
    pub fn on_command(&mut self, f: Frame, now: Instant) {
        match f.operand {
            frame::START => self.on_start(f, now),
            frame::STOP => match payloads::parse_stop(&f.payload) {
                Ok(c) => self.enqueue(c.instance_uuid, Cmd::Stop, now),
                Err(e) => {
                    warn!("STOP refused: {}", e.detail);
                    self.fail_stop("", e.fault.into());
                }
            },
            frame::RESTART => match payloads::parse_restart(&f.payload) {
                Ok(c) => self.enqueue(c.instance_uuid, Cmd::Restart, now),
                Err(e) => {
                    warn!("RESTART refused: {}", e.detail);
                    self.fail_restart("", e.fault.into());
                }
            },
            frame::DELETE => match payloads::parse_delete(&f.payload) {
                Ok(c) => self.enqueue(c.instance_uuid, Cmd::Delete, now),
                Err(e) => {
                    warn!("DELETE refused: {}", e.detail);
                    self.fail_delete("", e.fault.into());
                }
            },
            frame::ATTACH_VOLUME => self.on_volume(f, true),
            frame::DETACH_VOLUME => self.on_volume(f, false),
            other => info!(
                "ignoring command {} (not handled by a launcher)",
                frame::operand_name(frame::COMMAND, other)
            ),
        }
    }

    /// Volumes need ceph support, which this launcher does not have yet:
    /// every request gets its documented failure, never silence.
    fn on_volume(&mut self, f: Frame, attach: bool) {
        use payloads::{AttachVolumeFailureReason as A, DetachVolumeFailureReason as D};
        let parsed = if attach {
            payloads::parse_attach_volume(&f.payload)
        } else {
            payloads::parse_detach_volume(&f.payload)
        };
        let (inst, vol, known) = match &parsed {
            Ok(c) => (
                c.instance_uuid.clone(),
                c.volume_uuid.clone(),
                self.instances.contains_key(&c.instance_uuid),
            ),
            Err(_) => (String::new(), String::new(), false),
        };
        let payload = match (&parsed, attach) {
            (Err(e), true) => {
                payloads::AttachVolumeFailure::new("", "", A::from(e.fault)).to_yaml()
            }
            (Err(e), false) => {
                payloads::DetachVolumeFailure::new("", "", D::from(e.fault)).to_yaml()
            }
            (Ok(_), true) if !known => {
                payloads::AttachVolumeFailure::new(&inst, &vol, A::NoInstance).to_yaml()
            }
            (Ok(_), false) if !known => {
                payloads::DetachVolumeFailure::new(&inst, &vol, D::NoInstance).to_yaml()
            }
            (Ok(_), true) => {
                payloads::AttachVolumeFailure::new(&inst, &vol, A::NotSupported).to_yaml()
            }
            (Ok(_), false) => {
                payloads::DetachVolumeFailure::new(&inst, &vol, D::NotSupported).to_yaml()
            }
        };
        warn!(
            "{} of volume {vol:?} to instance {inst:?} refused: volume support is not available",
            if attach { "attach" } else { "detach" }
        );
        let operand = if attach {
            frame::ATTACH_VOLUME_FAILURE
        } else {
            frame::DETACH_VOLUME_FAILURE
        };
        self.send(frame::ERROR, operand, payload);
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
        // Admission, synchronously at dispatch (launcher.md §2.2).
        if let Err(why) =
            self.capacity
                .admit(&self.limits, self.instances.len(), resources(&cmd.instance))
        {
            warn!("START of {id} refused (full_cn): {why}");
            self.fail_start(&id, StartFailureReason::FullCn);
            return;
        }
        let driver = self.factory.make(&cmd.instance);
        let generation = self.generation();
        self.instances.insert(
            id.clone(),
            Instance {
                config: cmd.instance.clone(),
                state: State::Pending,
                generation,
                driver,
                queue: VecDeque::new(),
                op: None,
                stopped: false,
                trace: None,
                quarantine: None,
            },
        );
        self.wants.stats = true;
        self.begin_start(&id, Box::new(cmd), trace, now);
    }

    /// Queues a command for an existing instance (or answers no_instance).
    fn enqueue(&mut self, id: String, cmd: Cmd, now: Instant) {
        let Some(inst) = self.instances.get_mut(&id) else {
            debug!("{} for unknown instance {id}", cmd.name());
            match cmd {
                Cmd::Stop => self.fail_stop(&id, StopFailureReason::NoInstance),
                Cmd::Restart => self.fail_restart(&id, RestartFailureReason::NoInstance),
                Cmd::Delete => self.fail_delete(&id, DeleteFailureReason::NoInstance),
                Cmd::Start(..) => unreachable!("START creates unknown instances"),
            }
            return;
        };
        // A DELETE behind a graceful STOP escalates it (design decision 8).
        if matches!(cmd, Cmd::Delete) && inst.op == Some(Op::Stop) {
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
                        self.drive(id, now, |d, cx| d.start(cx, true, &[], &[]));
                    }
                    State::Quarantined => {
                        self.fail_restart(id, RestartFailureReason::InstanceCorrupt)
                    }
                    State::Active | State::Pending => {
                        self.fail_restart(id, RestartFailureReason::AlreadyRunning)
                    }
                },
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

    /// START of a new instance: directory, state file, then the driver.
    fn begin_start(
        &mut self,
        id: &str,
        cmd: Box<StartCommand>,
        trace: Option<Frame>,
        now: Instant,
    ) {
        if let Err(e) = self.store.create(id) {
            warn!("START of {id} refused (instance_exists): {e}");
            self.fail_start(id, StartFailureReason::InstanceExists);
            self.forget(id);
            return;
        }
        if let Err(e) = cmd.check_image() {
            warn!(
                "START of {id} refused ({}): {}",
                e.reason.as_str(),
                e.detail
            );
            self.fail_start(id, e.reason);
            let _ = self.store.remove(id);
            self.forget(id);
            return;
        }
        if let Err(e) = self.store.save(id, &StateFile::new(cmd.instance.clone())) {
            error!("START of {id} failed (image_failure): cannot write its state: {e}");
            self.fail_start(id, StartFailureReason::ImageFailure);
            let _ = self.store.remove(id);
            self.forget(id);
            return;
        }
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        inst.op = Some(Op::Start);
        inst.trace = trace;
        info!("starting instance {id}");
        self.drive(id, now, |d, cx| {
            d.start(cx, false, &cmd.user_data, &cmd.meta_data)
        });
    }

    /// Removes a table entry and releases its resources (no event).
    fn forget(&mut self, id: &str) {
        if let Some(inst) = self.instances.remove(id) {
            self.capacity.release(resources(&inst.config));
            self.wants.stats = true;
        }
    }

    /// Feeds an answer from the shell to the instance it belongs to.
    pub fn on_input(&mut self, key: &Key, input: Input, now: Instant) {
        match self.instances.get(&key.instance) {
            Some(inst) if inst.generation == key.generation => {}
            _ => {
                debug!(
                    "dropping a late answer for {} (generation {})",
                    key.instance, key.generation
                );
                return;
            }
        }
        let id = key.instance.clone();
        self.drive(&id, now, |d, cx| d.input(cx, input));
    }

    /// Calls the driver of `id` and applies what it reports.
    fn drive(&mut self, id: &str, now: Instant, call: impl FnOnce(&mut dyn Driver, &mut Cx)) {
        let dir = match self.store.dir(id) {
            Ok(d) => d,
            Err(_) => PathBuf::new(),
        };
        let Some(inst) = self.instances.get_mut(id) else {
            return;
        };
        let mut outcomes = Vec::new();
        {
            let mut cx = Cx {
                now,
                key: Key {
                    instance: id.to_string(),
                    generation: inst.generation,
                    tag: 0,
                },
                dir: &dir,
                config: &inst.config,
                effects: &mut self.effects,
                outcomes: &mut outcomes,
            };
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
                        self.traces.push(t);
                    }
                }
            }
            Outcome::Running => {
                inst.state = State::Active;
                self.wants.stats = true;
                if matches!(op, Some(Op::Start | Op::Restart | Op::Recover)) {
                    info!("instance {id} is active");
                    if op == Some(Op::Restart) && inst.stopped {
                        inst.stopped = false;
                        self.persist(id);
                    }
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
                    _ => {
                        // Failed before the launch: the instance goes away
                        // again, without InstanceDeleted (payloads.md §3.7).
                        let queued: Vec<Cmd> = inst.queue.drain(..).collect();
                        self.fail_start(id, reason);
                        let _ = self.store.remove(id);
                        self.forget(id);
                        for c in queued {
                            self.refuse_orphan(id, c);
                        }
                    }
                }
            }
            Outcome::Exited => {
                let was = inst.state;
                inst.state = State::Exited;
                self.wants.stats = true;
                match op {
                    Some(Op::Stop) => {
                        info!("instance {id} stopped");
                        inst.stopped = true;
                        self.persist(id);
                        self.done(id, now);
                    }
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
        }
    }

    /// A command queued behind a START that failed: its instance is gone.
    fn refuse_orphan(&mut self, id: &str, c: Cmd) {
        match c {
            Cmd::Stop => self.fail_stop(id, StopFailureReason::NoInstance),
            Cmd::Restart => self.fail_restart(id, RestartFailureReason::NoInstance),
            Cmd::Delete => self.fail_delete(id, DeleteFailureReason::NoInstance),
            Cmd::Start(..) => self.fail_start(id, StartFailureReason::InstanceExists),
        }
    }

    fn finish_delete(&mut self, id: &str) {
        if let Err(e) = self.store.remove(id) {
            error!("instance {id}: cannot remove its files: {e}");
        }
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
            frame::EVENT,
            frame::INSTANCE_DELETED,
            payloads::InstanceDeleted::new(id).to_yaml(),
        );
        self.wants.status = true;
        for c in queued {
            self.refuse_orphan(id, c);
        }
    }

    fn persist(&mut self, id: &str) {
        let Some(inst) = self.instances.get(id) else {
            return;
        };
        let state = StateFile {
            stopped: inst.stopped,
            ..StateFile::new(inst.config.clone())
        };
        if let Err(e) = self.store.save(id, &state) {
            error!("instance {id}: cannot save its state: {e}");
        }
    }

    /// The current operation finished: run the next queued command.
    fn done(&mut self, id: &str, now: Instant) {
        if let Some(inst) = self.instances.get_mut(id) {
            inst.op = None;
        }
        self.run_queue(id, now);
    }

    fn send(&mut self, ftype: u8, operand: u8, payload: String) {
        self.effects.push(Effect::Send {
            ftype,
            operand,
            payload: payload.into_bytes(),
        });
    }

    fn fail_start(&mut self, id: &str, r: StartFailureReason) {
        self.send(
            frame::ERROR,
            frame::START_FAILURE,
            payloads::StartFailure::new(id, r).to_yaml(),
        );
    }

    fn fail_stop(&mut self, id: &str, r: StopFailureReason) {
        self.send(
            frame::ERROR,
            frame::STOP_FAILURE,
            payloads::StopFailure::new(id, r).to_yaml(),
        );
    }

    fn fail_restart(&mut self, id: &str, r: RestartFailureReason) {
        self.send(
            frame::ERROR,
            frame::RESTART_FAILURE,
            payloads::RestartFailure::new(id, r).to_yaml(),
        );
    }

    fn fail_delete(&mut self, id: &str, r: DeleteFailureReason) {
        self.send(
            frame::ERROR,
            frame::DELETE_FAILURE,
            payloads::DeleteFailure::new(id, r).to_yaml(),
        );
    }

    /// Ids of every instance and its reported state (tests, hard reset).
    pub fn list(&self) -> Vec<(String, &'static str)> {
        self.instances
            .iter()
            .map(|(k, v)| (k.clone(), v.state.wire()))
            .collect()
    }

    /// Deletes every instance at once (`-hard-reset`): urgent stops, then
    /// destruction. Returns how many were queued.
    pub fn delete_all(&mut self, now: Instant) -> usize {
        let ids: Vec<String> = self.instances.keys().cloned().collect();
        for id in &ids {
            self.enqueue(id.clone(), Cmd::Delete, now);
        }
        ids.len()
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
