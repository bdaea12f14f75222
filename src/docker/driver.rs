//! One container's step machine (the operations of `docs/docker.md`).
//!
//! * START: negotiate the API version (once per daemon, shared by every
//!   container: see [`Job::DockerApi`]), check the image (pull it when
//!   missing, progress to the log), create the container (named after the
//!   instance, labelled with its UUID), record its id in `<dir>/docker-id`
//!   (a durable write through the shell), and only once that is on disk
//!   start it (`Launched`), then confirm it runs (`Running`) while the exit
//!   long poll (`POST /wait`) watches it. A START that fails after the
//!   create removes the container before reporting the failure.
//! * STOP: `POST /stop?t=<stop timeout>` (dockerd sends SIGTERM, and
//!   SIGKILL when the timeout passes); if that fails, `kill`. DELETE's
//!   urgent stop is a `kill` at once. RESTART starts the same container.
//! * DELETE: `DELETE /containers/<id>?force=1&v=1`, then `Destroyed`.
//! * Statistics: one-shot stats (memory, CPU) and inspect-with-size (disk)
//!   every sampling period while running; `usage` only reads the cache.
//! * Recovery: by the recorded id (read through the shell), else by the
//!   UUID label; the real state is reported.
//! * dockerd down: what cannot be answered fails with a clear reason;
//!   containers whose monitor was lost are reported exited and polled
//!   (with back-off) until the daemon answers again, then reported as
//!   they really are. After the next negotiation, containers of deleted
//!   instances left behind meanwhile are removed (the sweep).
//!
//! The driver does no I/O of its own except reading a running container's
//! cgroup files (see [`super::cgroup`] for why).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use log::{debug, error, info, trace, warn};

use super::api::{self, CreateSpec, Endpoint, Inspect, Listed, NetworkSpec, Req, Stats, Waited};
use super::call::{CallError, Calls, Event, Reply};
use super::cgroup::{self, CgroupFiles};
use super::volumes::{Done, Volumes};
use super::SharedRef;
use crate::driver::{
    Cx, Driver, FileAction, FileError, Input, Job, Outcome, Res, Timer, Turn, Usage, Vnic,
};
use crate::http::json::JsonLines;
use crate::http::parse_json;
use crate::payloads::cloudinit::{container_command, container_hostname};
use crate::payloads::{InstanceConfig, StartFailureReason};

/// The file in the instance directory that records the container id.
pub(crate) const ID_FILE: &str = "docker-id";

/// First and longest delay of the poll after an outage.
const POLL_FIRST: Duration = Duration::from_secs(1);
const POLL_MAX: Duration = Duration::from_secs(30);
/// Removal attempts while dockerd fails (1 + 2 + 4 s of back-off); a
/// container left behind is removed by the sweep after the next
/// negotiation.
const REMOVE_ATTEMPTS: u32 = 4;

/// Why an inspect or list was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    /// Right after a start: is it running? (run number)
    Confirm(u64),
    /// The exit long poll broke: still running? (run number)
    Recheck(u64),
    /// At recovery.
    Recover,
    /// Polling after an outage.
    Poll,
    /// Create said the name is taken: ours, left over?
    Stale,
}

/// What a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum What {
    Version,
    ImageCheck,
    Pull,
    /// Creating (or finding) the tenant network before the container's
    /// create, or before its start on a RESTART.
    Network,
    Create,
    RemoveStale,
    Start,
    Wait(u64),
    Inspect(Look),
    List(Look),
    Stats,
    Disk,
    Stop,
    Kill,
    Remove,
    /// Removing the container of a START that failed after its create;
    /// the failure (its detail) is reported once that is over.
    Rollback(String),
    /// Looking for containers of instances that no longer exist.
    Sweep,
    /// Removing one of those.
    Orphan(String),
}

/// The operation the manager asked for and is waiting on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Idle,
    Start { restart: bool },
    Stop,
    Kill,
    Destroy { attempt: u32 },
    Recover,
}

/// Statistics cache.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    memory_mb: Option<i64>,
    cpu_percent: Option<i64>,
    disk_mb: Option<i64>,
    /// CPU baseline: total ns and when it was read.
    base: Option<(u64, Instant)>,
}

/// The docker driver of one instance.
pub(crate) struct Docker {
    shared: SharedRef,
    calls: Calls<What>,
    /// Requests waiting for the version negotiation.
    queued: Vec<(Req, What)>,
    /// The container id (or, before it is known, nothing).
    id: Option<String>,
    op: Op,
    /// The container is up as far as the manager knows.
    alive: bool,
    /// Counts launches and adoptions, so that answers about an earlier
    /// run of the container are recognised.
    run: u64,
    spec: Option<CreateSpec>,
    /// The tenant network of the START or RESTART in progress.
    network: Option<NetworkSpec>,
    /// That network exists (created, or found by name).
    network_ready: bool,
    /// A create that found no network made it once more already.
    network_retried: bool,
    stale_removed: bool,
    pull: JsonLines,
    pull_error: Option<String>,
    sample: Sample,
    poll: Option<Duration>,
    /// When the graceful stop in flight was asked for.
    stop_since: Option<Instant>,
    /// The running container's cgroup files, once found (else samples
    /// come from dockerd's stats call).
    cgroup: Option<CgroupFiles>,
    /// The instance directory.
    dir: PathBuf,
    /// Recording the container id before it is started.
    recording: bool,
    /// The sweep's looks at instance directories in flight: check number
    /// → the container it decides about and its instance.
    leftovers: BTreeMap<u32, (String, String)>,
    next_leftover: u32,
    /// The container's ceph volumes on the host (docs/storage.md).
    volumes: Volumes,
    /// DELETE waits for the volumes' release before `Destroyed`.
    destroy_after_release: bool,
}

impl Docker {
    /// The driver of the container whose instance directory is `dir`.
    pub(crate) fn new(shared: SharedRef, dir: PathBuf) -> Docker {
        Docker {
            shared,
            volumes: Volumes::new(dir.clone()),
            destroy_after_release: false,
            dir,
            recording: false,
            leftovers: BTreeMap::new(),
            next_leftover: 0,
            calls: Calls::default(),
            queued: Vec::new(),
            id: None,
            op: Op::Idle,
            alive: false,
            run: 0,
            spec: None,
            network: None,
            network_ready: false,
            network_retried: false,
            stale_removed: false,
            pull: JsonLines::new(64 << 10),
            pull_error: None,
            sample: Sample::default(),
            poll: None,
            stop_since: None,
            cgroup: None,
        }
    }

    /// Sends a request, negotiating the API version first if needed.
    fn send(&mut self, cx: &mut Cx, req: Req, what: What) {
        let (api, socket) = {
            let s = self.shared.borrow();
            (s.api, s.socket.clone())
        };
        if api.is_none() && what != What::Version {
            self.queued.push((req, what));
            self.negotiate(cx);
            return;
        }
        self.calls.send(cx, &socket, api, &req, what);
    }

    /// Negotiates the API version, or waits for the instance that does
    /// (a node-wide job: one `GET /version` however many containers wait).
    fn negotiate(&mut self, cx: &mut Cx) {
        if self.calls.count(|w| *w == What::Version) > 0 {
            return;
        }
        if cx.join(Job::DockerApi) == Turn::Lead {
            let socket = self.shared.borrow().socket.clone();
            self.calls
                .send(cx, &socket, None, &Req::version(), What::Version);
        }
    }

    /// The negotiation another instance led is over: go on with what
    /// waited for it, or fail it as that negotiation failed.
    fn negotiated(&mut self, cx: &mut Cx) {
        let queued = std::mem::take(&mut self.queued);
        let (failure, api) = {
            let s = self.shared.borrow();
            (s.negotiation_failure.clone(), s.api)
        };
        for (req, what) in queued {
            match (&failure, api) {
                (_, Some(_)) | (None, None) => self.queued.push((req, what)),
                (Some(e), None) => self.on_done(cx, what, Err(e.clone())),
            }
        }
        let queued = std::mem::take(&mut self.queued);
        for (req, what) in queued {
            self.send(cx, req, what);
        }
    }

    /// The container as the API names it: its id, else its name.
    fn target(&self, cx: &Cx) -> String {
        self.id.clone().unwrap_or_else(|| cx.inst.id.to_string())
    }

    fn fail_start(&mut self, cx: &mut Cx, reason: StartFailureReason, detail: String) {
        self.op = Op::Idle;
        self.spec = None;
        cx.outcome(Outcome::StartFailed { reason, detail });
    }

    /// The container is up: start watching and sampling it.
    fn became_alive(&mut self, cx: &mut Cx) {
        self.alive = true;
        self.run += 1;
        self.cgroup = None;
        self.sample = Sample {
            disk_mb: self.sample.disk_mb,
            ..Sample::default()
        };
        let id = self.target(cx);
        self.send(cx, Req::wait(&id), What::Wait(self.run));
    }

    fn report_running(&mut self, cx: &mut Cx) {
        if matches!(self.op, Op::Start { .. } | Op::Recover) {
            self.op = Op::Idle;
        }
        cx.outcome(Outcome::Running);
        self.take_sample(cx);
    }

    /// The container is not running (any more): tell the manager once,
    /// and let go of its volumes.
    fn report_exited(&mut self, cx: &mut Cx) {
        self.report_unknown(cx);
        if !cx.config.volumes.is_empty() && !matches!(self.op, Op::Destroy { .. }) {
            let rbd = self.shared.borrow().rbd.clone();
            self.volumes.release(cx, &rbd);
        }
    }

    /// The container is not known to run (dockerd cannot say): reported
    /// exited, but its volumes stay mounted (it may still be using them).
    fn report_unknown(&mut self, cx: &mut Cx) {
        let was = self.alive;
        self.alive = false;
        self.calls.cancel(cx, |w| {
            matches!(
                w,
                What::Wait(_) | What::Stats | What::Inspect(Look::Confirm(_) | Look::Recheck(_))
            )
        });
        self.sample.memory_mb = None;
        self.sample.cpu_percent = None;
        self.sample.base = None;
        self.cgroup = None;
        // The manager waits for an answer during these operations.
        let waiting = matches!(
            self.op,
            Op::Start { .. } | Op::Stop | Op::Kill | Op::Recover
        );
        if waiting {
            self.op = Op::Idle;
        }
        if was || waiting {
            cx.outcome(Outcome::Exited);
        }
    }

    /// Not knowing is reported as exited; the poll corrects it when
    /// dockerd answers again.
    fn start_poll(&mut self, cx: &mut Cx) {
        if self.poll.is_none() {
            self.poll = Some(POLL_FIRST);
        }
        {
            cx.arm(Timer::CtrPoll, self.poll.unwrap_or(POLL_FIRST));
        }
    }

    fn stop_poll(&mut self) {
        self.poll = None;
    }

    fn take_sample(&mut self, cx: &mut Cx) {
        if !self.alive {
            return;
        }
        let id = self.target(cx);
        if let Some(files) = &self.cgroup {
            match files.read() {
                Some((mem, cpu)) => self.record(cx, Some(mem), Some(cpu)),
                None => {
                    debug!(
                        "instance {}: cgroup files unreadable; asking dockerd",
                        cx.inst
                    );
                    self.cgroup = None;
                }
            }
        }
        let one_shot = self
            .shared
            .borrow()
            .api
            .is_some_and(|a| a.has_one_shot_stats());
        if self.cgroup.is_none() && self.calls.count(|w| *w == What::Stats) == 0 {
            self.send(cx, Req::stats(&id, one_shot), What::Stats);
        }
        if self.calls.count(|w| *w == What::Disk) == 0 {
            self.send(cx, Req::inspect(&id, true), What::Disk);
        }
        let every = self.shared.borrow().sample_interval;
        cx.arm(Timer::CtrSample, every.max(Duration::from_secs(1)));
    }

    /// Records the container id in the instance directory (0600); the
    /// answer comes as [`Input::File`] for [`Res::ContainerId`].
    fn write_id(&self, cx: &mut Cx, id: &str) {
        cx.file(
            Res::ContainerId,
            FileAction::Write {
                path: self.dir.join(ID_FILE),
                bytes: format!("{id}\n").into_bytes(),
                mode: 0o600,
                durable: true,
            },
        );
    }

    /// The container id recorded in the file's bytes, if valid.
    fn parse_id(bytes: &[u8]) -> Option<String> {
        let text = std::str::from_utf8(bytes).ok()?;
        let id = text.trim();
        api::valid_id(id).then(|| id.to_string())
    }

    /// The id file was written (or not).
    fn id_recorded(&mut self, cx: &mut Cx, result: Result<(), String>) {
        if !std::mem::take(&mut self.recording) {
            if let Err(e) = result {
                warn!("instance {}: cannot record the container id: {e}", cx.inst);
            }
            return;
        }
        if !matches!(self.op, Op::Start { .. }) {
            return;
        }
        let Some(id) = self.id.clone() else { return };
        match result {
            Ok(()) => self.launch(cx, &id),
            Err(e) => {
                self.id = None;
                self.roll_back(cx, &id, format!("cannot record the container id: {e}"));
            }
        }
    }

    /// Starts the container, once its volumes are mapped and mounted.
    fn launch(&mut self, cx: &mut Cx, id: &str) {
        if cx.config.volumes.is_empty() {
            self.send(cx, Req::start(id), What::Start);
            return;
        }
        let uuids = cx.config.volumes.iter().map(|v| v.uuid.clone()).collect();
        let rbd = self.shared.borrow().rbd.clone();
        self.volumes.attach(cx, &rbd, uuids);
    }

    /// A volume job is over.
    fn on_volumes(&mut self, cx: &mut Cx, done: Done) {
        let inst = cx.inst.id.clone();
        match done {
            Done::Attached => {
                if matches!(self.op, Op::Start { .. }) {
                    let id = self.target(cx);
                    self.send(cx, Req::start(&id), What::Start);
                } else {
                    // The START was overtaken (DELETE): undo.
                    let rbd = self.shared.borrow().rbd.clone();
                    self.volumes.release(cx, &rbd);
                }
            }
            Done::AttachFailed(e) => {
                if matches!(self.op, Op::Start { .. }) {
                    self.fail_start(
                        cx,
                        StartFailureReason::LaunchFailure,
                        format!("cannot attach its volumes: {e}"),
                    );
                }
            }
            Done::Released(result) => {
                if let Err(e) = result {
                    error!("instance {inst}: volumes not fully released: {e}");
                }
                if self.destroy_after_release && !self.volumes.busy() {
                    self.destroy_after_release = false;
                    cx.outcome(Outcome::Destroyed);
                }
            }
            Done::Recovered => {}
        }
    }

    /// The container is removed: its volumes are released (everything
    /// mounted below the instance directory), then `Destroyed`.
    fn destroyed(&mut self, cx: &mut Cx) {
        if cx.config.volumes.is_empty() {
            cx.outcome(Outcome::Destroyed);
            return;
        }
        self.destroy_after_release = true;
        let rbd = self.shared.borrow().rbd.clone();
        self.volumes.release(cx, &rbd);
    }

    /// A START failed after its container was created: the container is
    /// removed (`target`: its id, else its name), and only then is the
    /// failure reported. The manager forgets an instance whose START failed
    /// this way, and answers for a forgotten instance are dropped, so a
    /// removal still in flight then would never be sent.
    fn roll_back(&mut self, cx: &mut Cx, target: &str, detail: String) {
        self.send(cx, Req::remove(target), What::Rollback(detail));
    }

    /// Looks the container up: by id when one is known, else by label.
    fn look_up(&mut self, cx: &mut Cx, why: Look) {
        match self.id.clone() {
            Some(id) => self.send(cx, Req::inspect(&id, false), What::Inspect(why)),
            None => {
                let uuid = cx.inst.id.clone();
                self.send(
                    cx,
                    Req::list_by_label(api::LABEL_INSTANCE, &uuid),
                    What::List(why),
                )
            }
        }
    }

    /// Recovery or poll found the container (or not).
    fn found(&mut self, cx: &mut Cx, why: Look, found: Option<(String, bool)>) {
        let inst = cx.inst.id.clone();
        match found {
            Some((id, running)) => {
                if self.id.as_deref() != Some(id.as_str()) {
                    self.write_id(cx, &id);
                }
                self.id = Some(id.clone());
                self.stop_poll();
                if running {
                    info!(
                        "instance {inst}: container {} is running; re-adopted",
                        short(&id)
                    );
                    self.became_alive(cx);
                    self.report_running(cx);
                } else {
                    info!("instance {inst}: container {} is not running", short(&id));
                    if why == Look::Recover {
                        self.report_exited(cx);
                    }
                }
            }
            None => {
                warn!(
                    "instance {inst}: its container no longer exists (removed outside the launcher?); \
                     reported exited, it can be deleted"
                );
                self.id = None;
                self.stop_poll();
                if why == Look::Recover {
                    self.report_exited(cx);
                }
            }
        }
    }

    /// A look-up could not be answered.
    fn look_failed(&mut self, cx: &mut Cx, why: Look, e: &str) {
        let inst = cx.inst.id.clone();
        match why {
            Look::Recover => {
                error!("instance {inst}: cannot find out whether its container runs ({e}); reported exited until dockerd answers");
                self.report_unknown(cx);
                self.start_poll(cx);
            }
            Look::Poll => {
                debug!("instance {inst}: dockerd still does not answer ({e})");
                let next = self.poll.map_or(POLL_FIRST, |d| (d * 2).min(POLL_MAX));
                self.poll = Some(next);
                self.start_poll(cx);
            }
            _ => {}
        }
    }

    fn on_done(&mut self, cx: &mut Cx, what: What, result: Result<Reply, CallError>) {
        let inst = cx.inst.id.clone();
        if let Err(e) = &result {
            if e.is_unreachable() {
                self.shared.borrow_mut().unreachable(&e.to_string());
            }
        }
        match what {
            What::Version => self.on_version(cx, result),
            What::ImageCheck => self.on_image_check(cx, result),
            What::Pull => self.on_pull_done(cx, result),
            What::Network => self.on_network(cx, result),
            What::Create => self.on_create(cx, result),
            What::RemoveStale => match result {
                Ok(r) if r.ok() || r.status == 404 => {
                    self.stale_removed = true;
                    self.create(cx);
                }
                other => {
                    let e = describe(&other);
                    self.fail_start(cx, StartFailureReason::ImageFailure, format!("a container named {inst} is left from an earlier attempt and cannot be removed: {e}"));
                }
            },
            What::Start => self.on_start(cx, result),
            What::Wait(run) => self.on_wait(cx, run, result),
            What::Inspect(why) => self.on_inspect(cx, why, result),
            What::List(why) => self.on_list(cx, why, result),
            What::Stats => self.on_stats(cx, result),
            What::Disk => {
                let inspect = match result {
                    Ok(r) if r.ok() => parse_json::<Inspect>(&r.body).ok(),
                    _ => None,
                };
                self.sample.disk_mb = inspect
                    .as_ref()
                    .and_then(|i| i.size_root_fs)
                    .map(|b| b.max(0) >> 20);
                if let Some(pid) = inspect.as_ref().and_then(Inspect::pid) {
                    self.find_cgroup(cx, pid);
                }
            }
            What::Stop => self.on_stop(cx, result),
            What::Kill => self.on_kill(cx, result),
            What::Remove => self.on_remove(cx, result),
            What::Sweep => self.on_sweep(cx, result),
            What::Orphan(id) => match result {
                Ok(r) if r.ok() || r.status == 404 => {
                    info!("left-over container {} removed", short(&id))
                }
                other => warn!(
                    "cannot remove left-over container {}: {}",
                    short(&id),
                    describe(&other)
                ),
            },
            What::Rollback(detail) => {
                if let Err(e) = result.as_ref().map_err(|e| e.to_string()).and_then(|r| {
                    if r.ok() || r.status == 404 {
                        Ok(())
                    } else {
                        Err(api::error_message(r.status, &r.body))
                    }
                }) {
                    error!("instance {inst}: cannot remove the container of a failed START: {e}");
                }
                if matches!(self.op, Op::Start { .. }) {
                    self.fail_start(cx, StartFailureReason::ImageFailure, detail);
                }
            }
        }
    }

    fn on_version(&mut self, cx: &mut Cx, result: Result<Reply, CallError>) {
        let negotiated = match &result {
            Ok(r) if r.ok() => api::negotiate(&r.body),
            other => Err(format!("GET /version: {}", describe(other))),
        };
        let queued = std::mem::take(&mut self.queued);
        cx.finish(Job::DockerApi);
        match negotiated {
            Ok((a, server)) => {
                let sweep = {
                    let mut s = self.shared.borrow_mut();
                    s.negotiation_failure = None;
                    s.negotiated(a, &server);
                    s.take_sweep().then(|| s.instances_dir.clone())
                };
                if let Some(dir) = sweep {
                    self.send(
                        cx,
                        Req::list_by_label(api::LABEL_INSTANCES_DIR, &dir),
                        What::Sweep,
                    );
                }
                for (req, what) in queued {
                    self.send(cx, req, what);
                }
            }
            Err(msg) => {
                let err = match result {
                    Err(e) => e,
                    Ok(_) => CallError::Broken(msg.clone()),
                };
                self.shared.borrow_mut().negotiation_failure = Some(err.clone());
                if !err.is_unreachable() {
                    error!(
                        "dockerd at {}: {msg}",
                        self.shared.borrow().socket.display()
                    );
                }
                for (_, what) in queued {
                    self.on_done(cx, what, Err(err.clone()));
                }
            }
        }
    }

    fn on_image_check(&mut self, cx: &mut Cx, result: Result<Reply, CallError>) {
        let inst = cx.inst.id.clone();
        let image = cx.config.docker_image.clone();
        match result {
            Ok(r) if r.ok() => self.create(cx),
            Ok(r) if r.status == 404 => {
                info!("instance {inst}: image {image} is not present; pulling it");
                self.pull = JsonLines::new(64 << 10);
                self.pull_error = None;
                self.send(cx, Req::pull(&image), What::Pull);
            }
            other => {
                let e = describe(&other);
                self.fail_start(
                    cx,
                    StartFailureReason::ImageFailure,
                    format!("cannot check image {image}: {e}"),
                );
            }
        }
    }

    fn pull_lines(&mut self, cx: &Cx) {
        let inst = &cx.inst.id;
        loop {
            let line = match self.pull.next_line() {
                Ok(Some(l)) => l,
                Ok(None) => return,
                Err(e) => {
                    warn!("instance {inst}: pull progress: {e}");
                    continue;
                }
            };
            match parse_json::<api::PullLine>(&line) {
                Ok(p) => {
                    if let Some(f) = p.failure() {
                        warn!("instance {inst}: pull of {}: {f}", cx.config.docker_image);
                        self.pull_error.get_or_insert(f);
                    } else if let Some(s) = &p.status {
                        let id =
                            p.id.as_deref()
                                .map(|i| format!("{i}: "))
                                .unwrap_or_default();
                        if p.progress.is_some() {
                            trace!(
                                "instance {inst}: pull: {id}{s} {}",
                                p.progress.as_deref().unwrap_or("")
                            );
                        } else {
                            info!(
                                "instance {inst}: pull of {}: {id}{s}",
                                cx.config.docker_image
                            );
                        }
                    }
                }
                Err(e) => {
                    // A malformed progress stream fails the pull.
                    let t = String::from_utf8_lossy(&line)
                        .chars()
                        .take(200)
                        .collect::<String>();
                    self.pull_error
                        .get_or_insert(format!("malformed progress line {t:?}: {e}"));
                }
            }
        }
    }

    fn on_pull_done(&mut self, cx: &mut Cx, result: Result<Reply, CallError>) {
        let image = cx.config.docker_image.clone();
        if let Some(last) = self.pull.finish() {
            self.pull.push(&last);
            self.pull.push(b"\n");
            self.pull_lines(cx);
        }
        let err = match (&result, self.pull_error.take()) {
            (Ok(r), None) if r.ok() => None,
            (Ok(r), Some(e)) if r.ok() => Some(e),
            (other, _) => Some(describe(other)),
        };
        match err {
            None => {
                info!("instance {}: image {image} pulled", cx.inst);
                self.create(cx);
            }
            Some(e) => self.fail_start(
                cx,
                StartFailureReason::ImageFailure,
                format!("image {image} is not present and cannot be pulled: {e}"),
            ),
        }
    }

    /// The tenant network and the container's endpoint in it, from the
    /// veth pair the launcher made (none without networking).
    fn tenant_network(&self, cx: &Cx) -> Option<(NetworkSpec, Endpoint)> {
        let Some(Vnic::Veth { mac, network, .. }) = cx.vnic else {
            return None;
        };
        let shared = self.shared.borrow();
        let spec = NetworkSpec {
            name: network.name.clone(),
            driver: shared.plugin.clone(),
            bridge_alias: network.bridge_alias.clone(),
            subnet: network.subnet.clone(),
            gateway: network.gateway.clone(),
            instances_dir: shared.instances_dir.clone(),
        };
        let endpoint = Endpoint {
            network: network.name.clone(),
            mac: crate::net::names::format_mac(mac),
            ip: cx.config.network.private_ip.trim().to_string(),
            endpoint_mac: false,
        };
        Some((spec, endpoint))
    }

    /// Creates the tenant network (dockerd asks the launcher's plugin,
    /// which this loop serves meanwhile); an existing one is fine.
    fn ensure_network(&mut self, cx: &mut Cx) {
        if let Some(n) = &self.network {
            let req = Req::network_create(n.body());
            self.send(cx, req, What::Network);
        }
    }

    fn on_network(&mut self, cx: &mut Cx, result: Result<Reply, CallError>) {
        let inst = cx.inst.id.clone();
        let name = self
            .network
            .as_ref()
            .map(|n| n.name.clone())
            .unwrap_or_default();
        let restart = matches!(self.op, Op::Start { restart: true });
        match result {
            Ok(r) if r.ok() || r.status == 409 => {
                if r.ok() {
                    info!("instance {inst}: docker network {name} created");
                }
                self.network_ready = true;
            }
            other if restart => {
                // It normally exists since the START: let the start say.
                warn!(
                    "instance {inst}: cannot make sure docker network {name} exists: {}",
                    describe(&other)
                );
            }
            other => {
                let e = describe(&other);
                return self.fail_start(
                    cx,
                    StartFailureReason::NetworkFailure,
                    format!("cannot create docker network {name}: {e}"),
                );
            }
        }
        if restart {
            match self.id.clone() {
                Some(id) => self.launch(cx, &id),
                None => self.fail_start(cx, StartFailureReason::LaunchFailure, GONE.into()),
            }
        } else {
            self.create(cx);
        }
    }

    fn create(&mut self, cx: &mut Cx) {
        let Some(mut spec) = self.spec.clone() else {
            return;
        };
        if spec.endpoint.is_some() && !self.network_ready {
            return self.ensure_network(cx);
        }
        let shared = self.shared.borrow();
        if shared.api.is_some_and(|a| a.has_stop_timeout()) {
            spec.stop_timeout = Some(shared.stop_timeout.as_secs());
        }
        if let Some(e) = spec.endpoint.as_mut() {
            e.endpoint_mac = shared.api.is_some_and(|a| a.has_endpoint_mac());
        }
        drop(shared);
        let name = cx.inst.id.clone();
        self.send(cx, Req::create(&name, spec.body()), What::Create);
    }

    fn on_create(&mut self, cx: &mut Cx, result: Result<Reply, CallError>) {
        let inst = cx.inst.id.clone();
        match result {
            Ok(r) if r.ok() => {
                let id = match parse_json::<api::Created>(&r.body) {
                    Ok(c) if api::valid_id(&c.id) => c.id,
                    _ => {
                        // Created, but we cannot tell its id: remove by name.
                        return self.roll_back(
                            cx,
                            &inst,
                            "dockerd created the container but its reply has no valid id".into(),
                        );
                    }
                };
                info!("instance {inst}: container {} created", short(&id));
                self.id = Some(id.clone());
                // Started once its id is on disk, so it is never lost.
                self.recording = true;
                self.write_id(cx, &id);
            }
            Ok(r)
                if r.status == 404
                    && !self.network_retried
                    && self.spec.as_ref().is_some_and(|s| s.endpoint.is_some())
                    && api::error_message(r.status, &r.body).contains("network") =>
            {
                // The network went between its create and ours (the
                // last instance of its bridge was deleted meanwhile):
                // once more, network first.
                warn!("instance {inst}: its docker network is gone; creating it again");
                self.network_retried = true;
                self.network_ready = false;
                self.create(cx);
            }
            Ok(r) if r.status == 409 && !self.stale_removed => {
                // The name is taken: a container left by an earlier START of
                // this UUID (the original failed here for ever). Ours?
                self.send(cx, Req::inspect(&inst, false), What::Inspect(Look::Stale));
            }
            other => {
                let e = describe(&other);
                self.fail_start(
                    cx,
                    StartFailureReason::ImageFailure,
                    format!("cannot create the container: {e}"),
                );
            }
        }
    }

    fn on_start(&mut self, cx: &mut Cx, result: Result<Reply, CallError>) {
        match result {
            Ok(r) if r.ok() || r.status == 304 => {
                cx.outcome(Outcome::Launched);
                self.spec = None;
                self.became_alive(cx);
                let id = self.target(cx);
                self.send(
                    cx,
                    Req::inspect(&id, false),
                    What::Inspect(Look::Confirm(self.run)),
                );
            }
            Ok(r) if r.status == 404 => {
                self.id = None;
                self.release_volumes(cx);
                self.fail_start(
                    cx,
                    StartFailureReason::LaunchFailure,
                    "the container no longer exists (removed outside the launcher); delete the instance".into(),
                );
            }
            other => {
                let e = describe(&other);
                self.release_volumes(cx);
                self.fail_start(
                    cx,
                    StartFailureReason::LaunchFailure,
                    format!("cannot start the container: {e}"),
                );
            }
        }
    }

    /// Unmounts and unmaps the volumes (in the background: a later
    /// START, RESTART or DELETE waits for it).
    fn release_volumes(&mut self, cx: &mut Cx) {
        if !cx.config.volumes.is_empty() {
            let rbd = self.shared.borrow().rbd.clone();
            self.volumes.release(cx, &rbd);
        }
    }

    fn on_wait(&mut self, cx: &mut Cx, run: u64, result: Result<Reply, CallError>) {
        if run != self.run || !self.alive {
            return;
        }
        let inst = cx.inst.id.clone();
        match result {
            Ok(r) if r.ok() => {
                match parse_json::<Waited>(&r.body) {
                    Ok(w) => {
                        let why = w.error.and_then(|e| e.message).filter(|m| !m.is_empty());
                        info!(
                            "instance {inst}: container exited with status {}{}",
                            w.status_code,
                            why.map(|m| format!(" ({m})")).unwrap_or_default()
                        );
                    }
                    Err(e) => info!("instance {inst}: container exited ({e})"),
                }
                self.report_exited(cx);
            }
            Ok(r) if r.status == 404 => {
                info!("instance {inst}: container is gone");
                self.report_exited(cx);
            }
            Err(CallError::Timeout(_)) => {
                // The poll's deadline (api::WAIT_RENEW): still running?
                debug!("instance {inst}: renewing the container's exit monitor");
                let id = self.target(cx);
                self.send(
                    cx,
                    Req::inspect(&id, false),
                    What::Inspect(Look::Recheck(run)),
                );
            }
            other => {
                // The monitor broke (dockerd restarting?): look again.
                warn!(
                    "instance {inst}: lost the container's exit monitor: {}",
                    describe(&other)
                );
                let id = self.target(cx);
                self.send(
                    cx,
                    Req::inspect(&id, false),
                    What::Inspect(Look::Recheck(run)),
                );
            }
        }
    }

    fn on_inspect(&mut self, cx: &mut Cx, why: Look, result: Result<Reply, CallError>) {
        let inst = cx.inst.id.clone();
        let parsed = match &result {
            Ok(r) if r.ok() => parse_json::<Inspect>(&r.body)
                .map(Some)
                .map_err(|e| e.to_string()),
            Ok(r) if r.status == 404 => Ok(None),
            other => Err(describe(other)),
        };
        match why {
            Look::Confirm(run) => {
                if run != self.run || !self.alive {
                    return;
                }
                match parsed {
                    Ok(Some(i)) if i.is_running() => {
                        if let Some(pid) = i.pid() {
                            self.find_cgroup(cx, pid);
                        }
                        self.report_running(cx)
                    }
                    Ok(_) => {
                        info!("instance {inst}: container stopped right after its start");
                        self.report_exited(cx);
                    }
                    Err(e) => {
                        // Started (204) but not confirmed: the exit monitor
                        // decides from here.
                        warn!("instance {inst}: cannot confirm the container runs ({e}); assuming it does");
                        self.report_running(cx);
                    }
                }
            }
            Look::Recheck(run) => {
                if run != self.run || !self.alive {
                    return;
                }
                match parsed {
                    Ok(Some(i)) if i.is_running() => {
                        let id = self.target(cx);
                        self.send(cx, Req::wait(&id), What::Wait(run));
                    }
                    Ok(_) => self.report_exited(cx),
                    Err(e) => {
                        error!("instance {inst}: cannot reach its container ({e}); reported exited until dockerd answers");
                        self.report_unknown(cx);
                        self.start_poll(cx);
                    }
                }
            }
            Look::Recover | Look::Poll => match parsed {
                Ok(Some(i)) => {
                    let ours = i.label(api::LABEL_INSTANCE).is_none_or(|l| *l == *inst);
                    if ours {
                        let running = i.is_running();
                        let pid = i.pid();
                        self.found(cx, why, Some((i.id, running)));
                        if let Some(pid) = pid {
                            self.find_cgroup(cx, pid);
                        }
                    } else {
                        warn!("instance {inst}: container {} belongs to another instance; looking up by label", short(&i.id));
                        self.id = None;
                        self.look_up(cx, why);
                    }
                }
                Ok(None) => {
                    // The recorded id is gone; maybe it was re-created.
                    self.id = None;
                    self.look_up(cx, why);
                }
                Err(e) => self.look_failed(cx, why, &e),
            },
            Look::Stale => match parsed {
                Ok(Some(i))
                    if i.label(api::LABEL_INSTANCE) == Some(&*inst)
                        && self.same_launcher(i.label(api::LABEL_INSTANCES_DIR)) =>
                {
                    warn!(
                        "instance {inst}: removing container {} left by an earlier START",
                        short(&i.id)
                    );
                    self.send(cx, Req::remove(&i.id), What::RemoveStale);
                }
                Ok(Some(_)) => self.fail_start(
                    cx,
                    StartFailureReason::ImageFailure,
                    format!(
                        "a container named {inst} already exists and was not made by this launcher"
                    ),
                ),
                Ok(None) => {
                    // Gone meanwhile: try once more.
                    self.stale_removed = true;
                    self.create(cx);
                }
                Err(e) => self.fail_start(
                    cx,
                    StartFailureReason::ImageFailure,
                    format!("cannot create the container: the name is taken, and: {e}"),
                ),
            },
        }
    }

    fn same_launcher(&self, dir: Option<&str>) -> bool {
        dir.is_none_or(|d| d == self.shared.borrow().instances_dir)
    }

    fn on_list(&mut self, cx: &mut Cx, why: Look, result: Result<Reply, CallError>) {
        let parsed = match &result {
            Ok(r) if r.ok() => parse_json::<Vec<Listed>>(&r.body).map_err(|e| e.to_string()),
            other => Err(describe(other)),
        };
        match parsed {
            Ok(list) => {
                let mut mine: Vec<&Listed> = list
                    .iter()
                    .filter(|l| api::valid_id(&l.id))
                    .filter(|l| {
                        self.same_launcher(
                            l.labels
                                .as_ref()
                                .and_then(|m| m.get(api::LABEL_INSTANCES_DIR))
                                .map(String::as_str),
                        )
                    })
                    .collect();
                // Prefer a running one should there be several.
                mine.sort_by_key(|l| !l.is_running());
                let found = mine.first().map(|l| (l.id.clone(), l.is_running()));
                self.found(cx, why, found);
            }
            Err(e) => self.look_failed(cx, why, &e),
        }
    }

    fn on_stats(&mut self, cx: &mut Cx, result: Result<Reply, CallError>) {
        if !self.alive {
            return;
        }
        let stats = match &result {
            Ok(r) if r.ok() => parse_json::<Stats>(&r.body).map_err(|e| e.to_string()),
            other => Err(describe(other)),
        };
        match stats {
            Ok(s) => {
                let mem = s.memory_stats.as_ref().and_then(|m| m.usage);
                self.record(cx, mem, s.cpu_ns());
            }
            Err(e) => {
                debug!("instance {}: stats sample failed: {e}", cx.inst);
                self.sample.memory_mb = None;
                self.sample.cpu_percent = None;
            }
        }
    }

    fn on_stop(&mut self, cx: &mut Cx, result: Result<Reply, CallError>) {
        let inst = cx.inst.id.clone();
        let timeout = self.shared.borrow().stop_timeout;
        match result {
            Ok(r) if r.ok() || r.status == 304 || r.status == 404 => {
                let took = self
                    .stop_since
                    .take()
                    .map_or(Duration::ZERO, |t| cx.now.saturating_duration_since(t));
                if r.status == 404 {
                    info!("instance {inst}: container is gone");
                } else if r.status == 304 {
                    info!("instance {inst}: container was not running");
                } else if took + Duration::from_millis(200) >= timeout {
                    info!(
                        "instance {inst}: container ignored SIGTERM for {} s; killed (SIGKILL) by the stop timeout",
                        timeout.as_secs()
                    );
                } else {
                    info!(
                        "instance {inst}: container stopped by SIGTERM after {} ms",
                        took.as_millis()
                    );
                }
                self.report_exited(cx);
            }
            other => {
                warn!(
                    "instance {inst}: graceful stop failed ({}); killing the container",
                    describe(&other)
                );
                if self.calls.count(|w| *w == What::Kill) == 0 {
                    let id = self.target(cx);
                    self.send(cx, Req::kill(&id), What::Kill);
                }
            }
        }
    }

    fn on_kill(&mut self, cx: &mut Cx, result: Result<Reply, CallError>) {
        let inst = cx.inst.id.clone();
        match result {
            Ok(r) if r.ok() => {
                info!("instance {inst}: container killed (SIGKILL)");
                self.report_exited(cx);
            }
            Ok(r) if r.status == 404 || r.status == 409 => {
                info!("instance {inst}: container was not running");
                self.report_exited(cx);
            }
            other => {
                error!(
                    "instance {inst}: cannot kill the container ({}); reported exited, and checked again when dockerd answers",
                    describe(&other)
                );
                self.report_unknown(cx);
                self.start_poll(cx);
            }
        }
    }

    fn on_remove(&mut self, cx: &mut Cx, result: Result<Reply, CallError>) {
        let inst = cx.inst.id.clone();
        let Op::Destroy { attempt } = self.op else {
            return;
        };
        match result {
            Ok(r) if r.ok() || r.status == 404 => {
                if r.status == 404 {
                    info!("instance {inst}: container was already removed");
                } else {
                    info!("instance {inst}: container removed");
                }
                self.op = Op::Idle;
                self.id = None;
                self.destroyed(cx);
            }
            other => {
                let e = describe(&other);
                if attempt + 1 < REMOVE_ATTEMPTS {
                    let delay = Duration::from_secs(1 << attempt);
                    warn!(
                        "instance {inst}: cannot remove the container ({e}); retrying in {} s",
                        delay.as_secs()
                    );
                    self.op = Op::Destroy {
                        attempt: attempt + 1,
                    };
                    cx.arm(Timer::CtrRetry, delay);
                } else {
                    let target = self.target(cx);
                    error!(
                        "instance {inst}: cannot remove container {target} ({e}); giving up, \
                         remove it by hand (docker rm -f {target})"
                    );
                    self.op = Op::Idle;
                    self.destroyed(cx);
                }
            }
        }
    }
}

impl Docker {
    /// Stores one sample: memory in bytes, CPU time in ns.
    fn record(&mut self, cx: &Cx, mem_bytes: Option<u64>, cpu_ns: Option<u64>) {
        self.sample.memory_mb = mem_bytes.and_then(|b| i64::try_from(b >> 20).ok());
        self.sample.cpu_percent = None;
        if let Some(ns) = cpu_ns {
            if let Some((prev, at)) = self.sample.base {
                let p = api::cpu_percent(
                    prev,
                    ns,
                    cx.now.saturating_duration_since(at),
                    cx.config.cpus,
                );
                self.sample.cpu_percent = (p >= 0).then_some(p);
            }
            self.sample.base = Some((ns, cx.now));
        }
    }

    /// Samples the container through its cgroup files from now on, if they
    /// can be found (the process must still be this container's).
    fn find_cgroup(&mut self, cx: &Cx, pid: u32) {
        if !self.alive || self.cgroup.is_some() {
            return;
        }
        let Some(files) = cgroup::locate(pid) else {
            debug!(
                "instance {}: no readable cgroup files for pid {pid}; sampling through dockerd",
                cx.inst
            );
            return;
        };
        let id = self.id.clone().unwrap_or_default();
        let mine = files.memory.to_string_lossy().contains(id.as_str()) && !id.is_empty();
        if !mine {
            debug!("instance {}: cgroup of pid {pid} does not name the container; sampling through dockerd", cx.inst);
            return;
        }
        debug!(
            "instance {}: sampling through {}",
            cx.inst,
            files.memory.display()
        );
        self.cgroup = Some(files);
    }

    /// Looks for containers of this launcher whose instance directory is
    /// gone (their DELETE could not reach dockerd), to remove them.
    ///
    /// Whether a directory is still there is asked of the shell like any
    /// other file operation (the driver does no I/O itself): a read of
    /// `<instances dir>/<uuid>` answers `NotFound` exactly when the
    /// directory is gone (an existing directory answers "is a directory"),
    /// and any other answer keeps the container. The directory decides, as
    /// it did before: a DELETE removes it last, and the launcher recovers
    /// its instances from it. Asking the manager for its table of instances
    /// instead would make the driver interface carry that table to every
    /// driver, for a check made only after an outage.
    fn on_sweep(&mut self, cx: &mut Cx, result: Result<Reply, CallError>) {
        let list = match &result {
            Ok(r) if r.ok() => parse_json::<Vec<Listed>>(&r.body).map_err(|e| e.to_string()),
            other => Err(describe(other)),
        };
        let list = match list {
            Ok(l) => l,
            Err(e) => {
                debug!("looking for left-over containers failed: {e}");
                return;
            }
        };
        let dir = self.shared.borrow().instances_dir.clone();
        for l in list {
            let Some(uuid) = l.labels.as_ref().and_then(|m| m.get(api::LABEL_INSTANCE)) else {
                continue;
            };
            if !api::valid_id(uuid) || !api::valid_id(&l.id) || dir.is_empty() {
                continue;
            }
            let n = self.next_leftover;
            self.next_leftover = n.wrapping_add(1);
            self.leftovers.insert(n, (l.id.clone(), uuid.clone()));
            let path = PathBuf::from(&dir).join(uuid);
            cx.file(Res::Leftover(n), FileAction::Read { path });
        }
    }

    /// The sweep's look at an instance directory: remove the container
    /// when the directory is gone; keep it on any other answer.
    fn on_leftover(&mut self, cx: &mut Cx, n: u32, result: Result<Vec<u8>, FileError>) {
        let Some((id, uuid)) = self.leftovers.remove(&n) else {
            return;
        };
        if result.is_err_and(|e| e.kind == std::io::ErrorKind::NotFound) {
            warn!(
                "container {} of deleted instance {uuid} was left behind; removing it",
                short(&id)
            );
            self.send(cx, Req::remove(&id), What::Orphan(id.clone()));
        }
    }
}

/// Why a RESTART cannot start the container.
const GONE: &str =
    "the container no longer exists (removed outside the launcher); delete the instance";

/// The first 12 characters of an id, as docker prints them.
fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn describe(r: &Result<Reply, CallError>) -> String {
    match r {
        Ok(r) => api::error_message(r.status, &r.body),
        Err(e) => e.to_string(),
    }
}

impl Driver for Docker {
    fn start(&mut self, cx: &mut Cx, restart: bool, user_data: &[u8], meta_data: &[u8]) {
        self.stop_poll();
        self.op = Op::Start { restart };
        let inst = cx.inst.id.clone();
        let tenant = self.tenant_network(cx);
        self.network = tenant.as_ref().map(|(n, _)| n.clone());
        self.network_ready = false;
        self.network_retried = false;
        if restart {
            match self.id.clone() {
                // The container names its network: make sure it is there.
                Some(_) if self.network.is_some() => self.ensure_network(cx),
                Some(id) => self.launch(cx, &id),
                None => self.fail_start(cx, StartFailureReason::LaunchFailure, GONE.into()),
            }
            return;
        }
        let c = cx.config;
        if c.volumes.iter().any(|v| v.bootable) {
            return self.fail_start(
                cx,
                StartFailureReason::ImageFailure,
                "cannot attach bootable volumes to containers".into(),
            );
        }
        if !api::valid_reference(&c.docker_image) {
            return self.fail_start(
                cx,
                StartFailureReason::ImageFailure,
                format!(
                    "docker_image {:?} is not a valid image reference",
                    c.docker_image
                ),
            );
        }
        self.spec = Some(CreateSpec {
            instance_uuid: inst.to_string(),
            instances_dir: self.shared.borrow().instances_dir.clone(),
            image: c.docker_image.clone(),
            hostname: container_hostname(meta_data, &inst),
            cmd: container_command(user_data),
            mem_mb: c.mem_mb,
            cpus: c.cpus,
            stop_timeout: None,
            endpoint: tenant.map(|(_, e)| e),
            binds: c
                .volumes
                .iter()
                .map(|v| Volumes::bind(&self.dir, &v.uuid))
                .collect(),
        });
        self.stale_removed = false;
        let image = c.docker_image.clone();
        self.send(cx, Req::image_inspect(&image), What::ImageCheck);
    }

    fn stop(&mut self, cx: &mut Cx, urgent: bool) {
        self.stop_poll();
        if !self.alive {
            self.op = Op::Idle;
            cx.outcome(Outcome::Exited);
            return;
        }
        let id = self.target(cx);
        if urgent {
            if !matches!(self.op, Op::Stop) {
                self.op = Op::Kill;
            }
            if self.calls.count(|w| *w == What::Kill) == 0 {
                self.send(cx, Req::kill(&id), What::Kill);
            }
        } else {
            self.op = Op::Stop;
            self.stop_since = Some(cx.now);
            let t = self.shared.borrow().stop_timeout;
            self.send(cx, Req::stop(&id, t), What::Stop);
        }
    }

    fn destroy(&mut self, cx: &mut Cx) {
        self.stop_poll();
        self.alive = false;
        self.queued.clear();
        self.calls.cancel(cx, |_| true);
        self.op = Op::Destroy { attempt: 0 };
        self.destroy_after_release = false;
        let id = self.target(cx);
        self.send(cx, Req::remove(&id), What::Remove);
    }

    fn recover(&mut self, cx: &mut Cx, _stopped: bool) {
        // The real state is reported whether or not an operator had
        // stopped it (a container started by hand is running).
        self.op = Op::Recover;
        if !cx.config.volumes.is_empty() {
            let uuids = cx.config.volumes.iter().map(|v| v.uuid.clone()).collect();
            let rbd = self.shared.borrow().rbd.clone();
            self.volumes.recover(cx, &rbd, uuids);
        }
        cx.file(
            Res::ContainerId,
            FileAction::Read {
                path: self.dir.join(ID_FILE),
            },
        );
    }

    fn input(&mut self, cx: &mut Cx, input: Input) {
        if Volumes::owns(&input) {
            let rbd = self.shared.borrow().rbd.clone();
            if let Some(done) = self.volumes.input(cx, &rbd, input) {
                self.on_volumes(cx, done);
            }
            return;
        }
        if self.calls.owns(&input) {
            let mut events = Vec::new();
            self.calls.input(cx, input, &mut events);
            for ev in events {
                match ev {
                    Event::Head { .. } => {}
                    Event::Data {
                        what: What::Pull,
                        bytes,
                    } => {
                        self.pull.push(&bytes);
                        self.pull_lines(cx);
                    }
                    Event::Data { .. } => {}
                    Event::Done { what, result } => self.on_done(cx, what, result),
                }
            }
            return;
        }
        match input {
            Input::File {
                res: Res::ContainerId,
                result,
            } => {
                if self.op == Op::Recover && self.id.is_none() && !self.recording {
                    // Recovery: by the recorded id, else by the label.
                    self.id = result.ok().and_then(|b| Self::parse_id(&b));
                    self.look_up(cx, Look::Recover);
                } else {
                    self.id_recorded(cx, result.map(|_| ()).map_err(|e| e.to_string()));
                }
            }
            Input::File {
                res: Res::Leftover(n),
                result,
            } => self.on_leftover(cx, n, result),
            Input::Job {
                job: Job::DockerApi,
                lead,
            } => {
                if lead {
                    self.negotiate(cx);
                } else {
                    self.negotiated(cx);
                }
            }
            Input::Timer(Timer::CtrSample) => self.take_sample(cx),
            Input::Timer(Timer::CtrPoll) => {
                if self.poll.is_some() && self.op == Op::Idle && !self.alive {
                    self.look_up(cx, Look::Poll);
                }
            }
            Input::Timer(Timer::CtrRetry) => {
                if matches!(self.op, Op::Destroy { .. }) {
                    let id = self.target(cx);
                    self.send(cx, Req::remove(&id), What::Remove);
                }
            }
            other => debug!("instance {}: unexpected input {other:?}", cx.inst),
        }
    }

    fn usage(&mut self, _config: &InstanceConfig, _now: Instant) -> Usage {
        let s = &self.sample;
        if !self.alive {
            return Usage {
                disk_mb: s.disk_mb.unwrap_or(-1),
                ..Usage::UNKNOWN
            };
        }
        Usage {
            memory_mb: s.memory_mb.unwrap_or(-1),
            disk_mb: s.disk_mb.unwrap_or(-1),
            cpu_percent: s.cpu_percent.unwrap_or(-1),
        }
    }
}
