//! The qemu driver: one VM's step machine (`spec/launcher.md` §4, design
//! decisions 8, 9, 11, 15).
//!
//! START: backing image check → config drive (`xorriso`) and, at the same
//! time, `qemu-img info` then `qemu-img create` → (once per launcher run)
//! the CPU probe → qemu `-daemonize` → adopt the PID from `-pidfile` after
//! checking `/proc/PID/cmdline` (pidfd watch) → QMP greeting and
//! capabilities: active. Every step is a child process, a socket or a
//! timer executed by the shell; the machine only reads and writes a few
//! small local files through [`Host`].
//!
//! STOP: `system_powerdown`, after `--stop-timeout` QMP `quit`, after 10 s
//! SIGKILL through the pidfd; the exit is seen through the pidfd, and the
//! step that ended the VM is logged. DELETE (`stop(urgent)`) starts at
//! `quit`. Recovery re-adopts a running qemu through its pidfile.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};

use super::cmdline::{self, Accel, Launch};
use super::host::Host;
use super::qmp::{Qmp, QmpEvent};
use crate::driver::{Cx, Driver, Input, Job, Outcome, Res, Timer, Turn, Usage};
use crate::payloads::{default_meta_data, InstanceConfig, StartFailureReason};

/// `-qemu-virtualisation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Virtualisation {
    /// `-enable-kvm`; fails where KVM is unusable.
    Kvm,
    /// KVM when `/dev/kvm` opens, else software.
    Auto,
    /// TCG emulation.
    Software,
}

/// The children of a START that a stop or a failure kills.
const START_TOOLS: [Res; 4] = [
    Res::ImageInfo,
    Res::ImageCreate,
    Res::ConfigDrive,
    Res::Launch,
];

/// How often QMP is retried before the driver gives up on it.
const QMP_ATTEMPTS: u32 = 20;
const QMP_RETRY: Duration = Duration::from_millis(250);
/// How long the CPU probe qemu must survive for the model to count as working.
const PROBE_RUN: Duration = Duration::from_secs(2);
/// `sizeof(sockaddr_un.sun_path)`: a socket path must be shorter.
const MAX_SOCKET_PATH: usize = 108;
/// Shortest CPU sampling window; closer samples reuse the last figure.
const CPU_MIN_WINDOW: Duration = Duration::from_secs(1);

/// Settings of every qemu instance (from the launcher's flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `<data root>/images`.
    pub images_dir: PathBuf,
    pub virtualisation: Virtualisation,
    /// EFI firmware (probed or `--ovmf`).
    pub ovmf: Option<PathBuf>,
    /// Graceful stop: how long the guest gets after the ACPI power button.
    pub stop_timeout: Duration,
    /// Ceph client id for volume drives ("" when none).
    pub ceph_id: String,
    /// Deadline of `qemu-img`, `xorriso` and the qemu launch (60 s).
    pub tool_deadline: Duration,
    /// Deadline of a QMP connect, handshake or reply (10 s).
    pub qmp_deadline: Duration,
    /// How long `quit` and SIGKILL each get before the next step (10 s).
    pub kill_deadline: Duration,
}

impl Settings {
    pub fn new(
        images_dir: PathBuf,
        virtualisation: Virtualisation,
        ovmf: Option<PathBuf>,
        stop_timeout: Duration,
    ) -> Settings {
        Settings {
            images_dir,
            virtualisation,
            ovmf,
            stop_timeout,
            ceph_id: String::new(),
            tool_deadline: Duration::from_secs(60),
            qmp_deadline: Duration::from_secs(10),
            kill_deadline: Duration::from_secs(10),
        }
    }
}

/// The CPU model VMs use, once known. Finding it out is a node-wide job
/// ([`Job::CpuModel`]): one instance probes, the others wait for it.
#[derive(Debug, Clone)]
enum AccelState {
    Unknown,
    Known(Accel),
}

/// State shared by every qemu instance of a launcher: settings, the host
/// operations and the CPU model chosen by the probe.
pub struct Shared {
    pub settings: Settings,
    pub host: Box<dyn Host>,
    accel: AccelState,
}

impl Shared {
    pub fn new(settings: Settings, host: Box<dyn Host>) -> Rc<RefCell<Shared>> {
        let accel = match settings.virtualisation {
            Virtualisation::Software => AccelState::Known(Accel::Software),
            Virtualisation::Auto if !host.kvm_usable() => {
                info!("qemu: /dev/kvm is not usable; VMs run under software emulation (-qemu-virtualisation auto)");
                AccelState::Known(Accel::Software)
            }
            _ => AccelState::Unknown,
        };
        if let AccelState::Known(a) = &accel {
            info!("qemu: VMs run with {}", a.describe());
            if *a == Accel::Software {
                warn!("qemu: software emulation is slow; use it for tests only");
            }
        }
        Rc::new(RefCell::new(Shared {
            settings,
            host,
            accel,
        }))
    }
}

/// Where one VM is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not running, nothing in progress.
    Idle,
    /// START: config drive and overlay being made (`true` = done).
    Preparing {
        iso: bool,
        disk: bool,
    },
    /// Waiting for the CPU probe (ours or another instance's job).
    Accel,
    /// The foreground qemu runs (`-daemonize` returns once QMP listens).
    Launching,
    /// The VM process is adopted; QMP not yet up.
    Booting,
    Running,
    Stopping {
        step: Step,
        since: Instant,
    },
    /// DELETE of a VM that is still there: SIGKILL sent.
    Killing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Powerdown,
    Quit,
    Kill,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Start,
    Restart,
    Recover,
}

/// CPU use over a sampling window, normalised per vCPU (launcher.md §6.2).
#[derive(Debug, Default, Clone)]
pub struct CpuMeter {
    base: Option<(u64, Instant)>,
    last: i64,
}

impl CpuMeter {
    /// Forget the baseline (the VM was (re)connected): the next sample is -1.
    pub fn reset(&mut self) {
        self.base = None;
        self.last = -1;
    }

    /// A sample of `ticks` (utime + stime) at `now`.
    pub fn sample(&mut self, ticks: u64, now: Instant, ticks_per_sec: u64, cpus: i64) -> i64 {
        let Some((t0, n0)) = self.base else {
            self.base = Some((ticks, now));
            self.last = -1;
            return -1;
        };
        let dt = now.saturating_duration_since(n0);
        if dt < CPU_MIN_WINDOW {
            return self.last;
        }
        let used_ns =
            u128::from(ticks.saturating_sub(t0)) * 1_000_000_000 / u128::from(ticks_per_sec.max(1));
        let mut pct = (100 * used_ns / dt.as_nanos().max(1)) as i64;
        if cpus > 1 {
            pct /= cpus;
        }
        self.base = Some((ticks, now));
        self.last = pct;
        pct
    }
}

/// One qemu VM.
pub struct QemuDriver {
    shared: Rc<RefCell<Shared>>,
    phase: Phase,
    purpose: Purpose,
    dir: PathBuf,
    pid: Option<u32>,
    /// Backing image format, once `qemu-img info` told it.
    qmp: Option<Qmp>,
    /// A QMP socket resource exists in the shell (connecting or connected).
    qmp_open: bool,
    qmp_attempts: u32,
    /// Ids of our stop commands, to react to their failure.
    powerdown_id: Option<u64>,
    quit_id: Option<u64>,
    cpu: CpuMeter,
    /// Who asked for the stop (urgent = DELETE).
    urgent: bool,
    /// The last sample: the manager asks twice per STATS (capacity, then
    /// the list); a second read within the CPU window reuses it.
    last_usage: Option<(Instant, Usage)>,
}

impl QemuDriver {
    /// The driver of the VM whose instance directory is `dir`.
    pub fn new(shared: Rc<RefCell<Shared>>, dir: PathBuf) -> QemuDriver {
        QemuDriver {
            shared,
            phase: Phase::Idle,
            purpose: Purpose::Start,
            dir,
            pid: None,
            qmp: None,
            qmp_open: false,
            qmp_attempts: 0,
            powerdown_id: None,
            quit_id: None,
            cpu: CpuMeter::default(),
            urgent: false,
            last_usage: None,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        cmdline::in_dir(&self.dir, name)
    }

    fn fail(&mut self, cx: &mut Cx, reason: StartFailureReason, detail: String) {
        for res in [Res::ImageInfo, Res::ImageCreate, Res::ConfigDrive] {
            cx.signal(res, libc::SIGKILL);
        }
        self.phase = Phase::Idle;
        cx.outcome(Outcome::StartFailed { reason, detail });
    }

    // ----------------------------------------------------------------- START

    fn begin_create(&mut self, cx: &mut Cx, user_data: &[u8], meta_data: &[u8]) {
        let cfg = cx.config;
        if cfg.image_uuid.is_empty() {
            return self.fail(
                cx,
                StartFailureReason::ImageFailure,
                "booting from a volume needs ceph volume support, which this launcher does not have".into(),
            );
        }
        let backing = self
            .shared
            .borrow()
            .settings
            .images_dir
            .join(&cfg.image_uuid);
        let r = self.shared.borrow().host.stat(&backing);
        if let Err(e) = r {
            return self.fail(
                cx,
                StartFailureReason::ImageFailure,
                format!("backing image {}: {e}", backing.display()),
            );
        }
        let staging = self.path(cmdline::STAGING);
        let default_md;
        let md = if meta_data.is_empty() {
            default_md = default_meta_data(&cfg.instance_uuid);
            default_md.as_bytes()
        } else {
            meta_data
        };
        let r = self
            .shared
            .borrow()
            .host
            .write_config_drive(&staging, user_data, md);
        if let Err(e) = r {
            return self.fail(
                cx,
                StartFailureReason::ImageFailure,
                format!(
                    "cannot write the config drive files under {}: {e}",
                    staging.display()
                ),
            );
        }
        let tool = self.shared.borrow().settings.tool_deadline;
        self.phase = Phase::Preparing {
            iso: false,
            disk: false,
        };
        cx.spawn(Res::ConfigDrive, cmdline::iso_argv(&self.dir), tool);
        cx.spawn(Res::ImageInfo, cmdline::image_info_argv(&backing), tool);
    }

    fn tool_done(&mut self, cx: &mut Cx, res: Res, result: Result<Vec<u8>, String>) {
        let Phase::Preparing { mut iso, mut disk } = self.phase else {
            debug!("{}: late result of a tool ({res:?})", cx.inst);
            return;
        };
        match res {
            Res::ConfigDrive => {
                let staging = self.path(cmdline::STAGING);
                let r = self.shared.borrow().host.remove_dir(&staging);
                if let Err(e) = r {
                    warn!("{}: cannot remove {}: {e}", cx.inst, staging.display());
                }
                if let Err(e) = result {
                    return self.fail(
                        cx,
                        StartFailureReason::ImageFailure,
                        format!("config drive: {e}"),
                    );
                }
                iso = true;
            }
            Res::ImageInfo => {
                let out = match result {
                    Ok(o) => o,
                    Err(e) => {
                        return self.fail(
                            cx,
                            StartFailureReason::ImageFailure,
                            format!("backing image: {e}"),
                        )
                    }
                };
                let fmt = match cmdline::parse_image_format(&out) {
                    Ok(f) => f,
                    Err(e) => {
                        return self.fail(
                            cx,
                            StartFailureReason::ImageFailure,
                            format!("backing image: qemu-img info: {e}"),
                        )
                    }
                };
                let backing = self
                    .shared
                    .borrow()
                    .settings
                    .images_dir
                    .join(&cx.config.image_uuid);
                debug!("{}: backing image {} is {fmt}", cx.inst, backing.display());
                let tool = self.shared.borrow().settings.tool_deadline;
                cx.spawn(
                    Res::ImageCreate,
                    cmdline::image_create_argv(&backing, &fmt, &self.dir),
                    tool,
                );
            }
            Res::ImageCreate => {
                if let Err(e) = result {
                    return self.fail(
                        cx,
                        StartFailureReason::ImageFailure,
                        format!("root disk: {e}"),
                    );
                }
                disk = true;
            }
            _ => {}
        }
        self.phase = Phase::Preparing { iso, disk };
        if iso && disk {
            self.choose_accel(cx);
        }
    }

    /// Uses the host's CPU choice; when nobody knows it yet, probes it
    /// (leading the node-wide job) or waits for the instance that does.
    fn choose_accel(&mut self, cx: &mut Cx) {
        self.phase = Phase::Accel;
        let state = self.shared.borrow().accel.clone();
        match state {
            AccelState::Known(a) => self.launch(cx, &a),
            AccelState::Unknown => match cx.join(Job::CpuModel) {
                Turn::Lead => {
                    info!("qemu: probing whether -cpu host works with KVM here");
                    cx.spawn(Res::CpuProbe, cmdline::cpu_probe_argv("host"), PROBE_RUN);
                }
                Turn::Wait => debug!("{}: waiting for the CPU probe", cx.inst),
            },
        }
    }

    fn probe_done(&mut self, cx: &mut Cx, status_ok: bool, timed_out: bool, detail: String) {
        let accel = if timed_out {
            info!("qemu: -cpu host works with KVM here; VMs use it");
            Accel::Kvm {
                cpu: Some("host".into()),
            }
        } else {
            let why = if status_ok {
                "it exited at once".to_string()
            } else {
                detail
            };
            warn!(
                "qemu: -enable-kvm -cpu host fails here ({}); VMs use qemu's default CPU model",
                why.trim()
            );
            Accel::Kvm { cpu: None }
        };
        self.shared.borrow_mut().accel = AccelState::Known(accel.clone());
        cx.finish(Job::CpuModel);
        if self.phase == Phase::Accel {
            self.launch(cx, &accel);
        }
    }

    fn launch(&mut self, cx: &mut Cx, accel: &Accel) {
        let ovmf = self.shared.borrow().settings.ovmf.clone();
        if !cx.config.is_legacy() && ovmf.is_none() {
            return self.fail(
                cx,
                StartFailureReason::LaunchFailure,
                "the VM boots with EFI but no OVMF firmware was found (install ovmf or pass --ovmf)".into(),
            );
        }
        let sock = self.path(cmdline::QMP_SOCKET);
        if sock.as_os_str().len() >= MAX_SOCKET_PATH {
            return self.fail(
                cx,
                StartFailureReason::LaunchFailure,
                format!(
                    "the QMP socket path {} is longer than {} bytes, the Unix socket limit; use a shorter --data-root",
                    sock.display(),
                    MAX_SOCKET_PATH - 1
                ),
            );
        }
        // A pidfile left by a qemu that was killed would name a stale PID.
        let _ = self
            .shared
            .borrow()
            .host
            .remove_file(&self.path(cmdline::PIDFILE));
        let ceph = self.shared.borrow().settings.ceph_id.clone();
        let argv = cmdline::qemu_argv(
            cx.config,
            &Launch {
                dir: &self.dir,
                accel,
                ovmf: ovmf.as_deref(),
                ceph_id: &ceph,
            },
        );
        info!("{}: launching qemu ({})", cx.inst, accel.describe());
        self.phase = Phase::Launching;
        let tool = self.shared.borrow().settings.tool_deadline;
        cx.spawn(Res::Launch, argv, tool);
    }

    fn launched(&mut self, cx: &mut Cx, result: Result<(), String>) {
        if self.phase != Phase::Launching {
            return;
        }
        if let Err(e) = result {
            return self.fail(cx, StartFailureReason::LaunchFailure, e);
        }
        cx.outcome(Outcome::Launched);
        let pidfile = self.path(cmdline::PIDFILE);
        let pid = self.shared.borrow().host.read_pid(&pidfile);
        let Some(pid) = pid else {
            return self.fail(
                cx,
                StartFailureReason::LaunchFailure,
                format!("qemu started but left no PID in {}", pidfile.display()),
            );
        };
        if !self.is_ours(pid) {
            return self.fail(
                cx,
                StartFailureReason::LaunchFailure,
                format!(
                    "qemu started but PID {pid} from {} is not this VM's qemu",
                    pidfile.display()
                ),
            );
        }
        self.adopt(cx, pid);
    }

    fn is_ours(&self, pid: u32) -> bool {
        let args = self.shared.borrow().host.cmdline(pid);
        args.is_some_and(|a| cmdline::cmdline_matches(&a, &self.dir))
    }

    /// Watches the VM process and connects to its QMP socket.
    fn adopt(&mut self, cx: &mut Cx, pid: u32) {
        debug!("{}: qemu is PID {pid}", cx.inst);
        self.pid = Some(pid);
        self.phase = Phase::Booting;
        self.cpu.reset();
        cx.watch(Res::Process, pid);
        self.qmp_attempts = 0;
        self.connect(cx);
    }

    // ------------------------------------------------------------------- QMP

    fn connect(&mut self, cx: &mut Cx) {
        self.close_qmp(cx);
        let deadline = self.shared.borrow().settings.qmp_deadline;
        self.qmp_open = true;
        cx.connect(Res::Qmp, self.path(cmdline::QMP_SOCKET), deadline);
    }

    fn close_qmp(&mut self, cx: &mut Cx) {
        self.qmp = None;
        if std::mem::take(&mut self.qmp_open) {
            cx.close(Res::Qmp);
        }
        cx.cancel(Timer::VmQmp);
    }

    /// QMP failed (or could not connect): retry while the process lives.
    fn qmp_lost(&mut self, cx: &mut Cx, why: &str) {
        self.close_qmp(cx);
        if self.pid.is_none() || matches!(self.phase, Phase::Idle | Phase::Killing) {
            return;
        }
        self.qmp_attempts += 1;
        if self.qmp_attempts <= QMP_ATTEMPTS {
            debug!("{}: QMP: {why}; retrying", cx.inst);
            cx.arm(Timer::VmReconnect, QMP_RETRY * self.qmp_attempts.min(8));
            return;
        }
        warn!("{}: QMP unavailable ({why}); giving up on it", cx.inst);
        match self.phase {
            Phase::Booting if self.purpose != Purpose::Recover => {
                let pid = self.pid.unwrap_or(0);
                self.kill(cx);
                self.fail(
                    cx,
                    StartFailureReason::LaunchFailure,
                    format!(
                        "qemu (PID {pid}) runs but its QMP socket does not answer ({why}); killed"
                    ),
                );
            }
            Phase::Booting => {
                warn!(
                    "{}: recovered qemu runs without QMP; STOP will use signals",
                    cx.inst
                );
                self.running(cx);
            }
            Phase::Stopping { step, .. } if step != Step::Kill => self.step_quit(cx),
            _ => {}
        }
    }

    fn kill(&self, cx: &mut Cx) {
        cx.signal(Res::Process, libc::SIGKILL);
    }

    fn flush_qmp(&mut self, cx: &mut Cx) {
        let Some(q) = self.qmp.as_mut() else { return };
        let bytes = q.take_output();
        let deadline = q.deadline();
        if !bytes.is_empty() {
            cx.write(Res::Qmp, bytes);
        }
        if let Some(d) = deadline {
            let after = d.saturating_duration_since(cx.now);
            cx.arm(Timer::VmQmp, after);
        } else {
            cx.cancel(Timer::VmQmp);
        }
    }

    fn qmp_events(&mut self, cx: &mut Cx, events: Vec<QmpEvent>) {
        let id = cx.inst.id.clone();
        for ev in events {
            match ev {
                QmpEvent::Ready { version } => {
                    debug!("{id}: QMP ready (qemu {version})");
                    self.qmp_attempts = 0;
                    if self.phase == Phase::Booting {
                        self.running(cx);
                    } else if self.phase == Phase::Running {
                        info!("{id}: QMP reconnected");
                    }
                }
                QmpEvent::Return { id: rid, command } => debug!("{id}: QMP {command} ({rid}) done"),
                QmpEvent::Error {
                    id: rid,
                    command,
                    error,
                } => {
                    warn!("{id}: QMP {command} failed: {error}");
                    self.command_failed(cx, rid);
                }
                QmpEvent::Timeout { id: rid, command } => {
                    warn!("{id}: QMP {command} got no answer in time");
                    self.command_failed(cx, rid);
                }
                QmpEvent::Event { name, data } => {
                    let detail = match &data {
                        serde_yaml::Value::Null => String::new(),
                        d => serde_yaml::to_string(d)
                            .map(|s| format!(" {}", s.trim().replace('\n', ", ")))
                            .unwrap_or_default(),
                    };
                    match name.as_str() {
                        "SHUTDOWN" | "POWERDOWN" | "RESET" | "STOP" | "GUEST_PANICKED" => {
                            info!("{id}: qemu event {name}{detail}")
                        }
                        _ => debug!("{id}: qemu event {name}{detail}"),
                    }
                }
                QmpEvent::Ignored { line, why } => debug!("{id}: QMP line ignored ({why}): {line}"),
                QmpEvent::Failed { why } => {
                    self.qmp_lost(cx, &why);
                    return;
                }
            }
        }
        self.flush_qmp(cx);
    }

    fn command_failed(&mut self, cx: &mut Cx, rid: u64) {
        if self.powerdown_id == Some(rid) {
            self.powerdown_id = None;
            if matches!(
                self.phase,
                Phase::Stopping {
                    step: Step::Powerdown,
                    ..
                }
            ) {
                self.step_quit(cx);
            }
        } else if self.quit_id == Some(rid) {
            self.quit_id = None;
            if matches!(
                self.phase,
                Phase::Stopping {
                    step: Step::Quit,
                    ..
                }
            ) {
                self.step_kill(cx);
            }
        }
    }

    fn running(&mut self, cx: &mut Cx) {
        self.phase = Phase::Running;
        self.cpu.reset();
        self.last_usage = None;
        cx.outcome(Outcome::Running);
    }

    // ------------------------------------------------------------------ STOP

    fn qmp_command(&mut self, cx: &mut Cx, name: &str) -> Option<u64> {
        let deadline = self.shared.borrow().settings.qmp_deadline;
        let q = self.qmp.as_mut().filter(|q| q.is_ready())?;
        let id = q.command(name, "", cx.now, deadline);
        self.flush_qmp(cx);
        Some(id)
    }

    fn step_powerdown(&mut self, cx: &mut Cx) {
        let now = cx.now;
        match self.qmp_command(cx, "system_powerdown") {
            Some(id) => {
                self.powerdown_id = Some(id);
                self.phase = Phase::Stopping {
                    step: Step::Powerdown,
                    since: now,
                };
                let t = self.shared.borrow().settings.stop_timeout;
                info!(
                    "{}: ACPI power-down sent; the guest has {}s",
                    cx.inst,
                    t.as_secs()
                );
                cx.arm(Timer::VmStop, t);
            }
            None => {
                warn!(
                    "{}: QMP is not available: cannot press the ACPI power button",
                    cx.inst
                );
                self.phase = Phase::Stopping {
                    step: Step::Powerdown,
                    since: now,
                };
                self.step_quit(cx);
            }
        }
    }

    fn step_quit(&mut self, cx: &mut Cx) {
        let since = match self.phase {
            Phase::Stopping { since, .. } => since,
            _ => cx.now,
        };
        self.phase = Phase::Stopping {
            step: Step::Quit,
            since,
        };
        match self.qmp_command(cx, "quit") {
            Some(id) => {
                self.quit_id = Some(id);
                info!("{}: QMP quit sent", cx.inst);
            }
            None => {
                info!(
                    "{}: QMP is not available: sending SIGTERM (qemu quits on it)",
                    cx.inst
                );
                cx.signal(Res::Process, libc::SIGTERM);
            }
        }
        let t = self.shared.borrow().settings.kill_deadline;
        cx.arm(Timer::VmStop, t);
    }

    fn step_kill(&mut self, cx: &mut Cx) {
        let since = match self.phase {
            Phase::Stopping { since, .. } => since,
            _ => cx.now,
        };
        warn!("{}: qemu did not quit; killing it (SIGKILL)", cx.inst);
        self.phase = Phase::Stopping {
            step: Step::Kill,
            since,
        };
        self.kill(cx);
        let t = self.shared.borrow().settings.kill_deadline;
        cx.arm(Timer::VmStop, t);
    }

    /// The VM process is gone (pidfd), or given up on.
    fn gone(&mut self, cx: &mut Cx, error: &str) {
        let id = cx.inst.id.clone();
        let pid = self.pid.take();
        self.last_usage = None;
        self.close_qmp(cx);
        cx.cancel(Timer::VmReconnect);
        cx.cancel(Timer::VmStop);
        self.powerdown_id = None;
        self.quit_id = None;
        if !error.is_empty() {
            debug!("{id}: watching qemu: {error}");
        }
        let phase = self.phase;
        self.phase = Phase::Idle;
        match phase {
            Phase::Stopping { step, since } => {
                let secs = cx.now.saturating_duration_since(since).as_secs_f64();
                let how = match step {
                    Step::Powerdown => "the guest powered off after the ACPI power button",
                    Step::Quit if self.urgent => "ended by QMP quit (urgent stop)",
                    Step::Quit => "ended by QMP quit (the guest ignored the ACPI power button)",
                    Step::Kill => "ended by SIGKILL",
                };
                info!("{id}: qemu stopped: {how} ({secs:.1}s)");
                cx.outcome(Outcome::Exited);
            }
            Phase::Booting if self.purpose != Purpose::Recover => {
                cx.outcome(Outcome::StartFailed {
                    reason: StartFailureReason::LaunchFailure,
                    detail: format!(
                        "qemu (PID {}) exited before QMP answered; see {}",
                        pid.unwrap_or(0),
                        self.path(cmdline::CONSOLE_LOG).display()
                    ),
                });
            }
            Phase::Booting => {
                info!("{id}: recovered qemu exited");
                cx.outcome(Outcome::Exited);
            }
            Phase::Running => {
                warn!("{id}: qemu (PID {}) exited", pid.unwrap_or(0));
                cx.outcome(Outcome::Exited);
            }
            Phase::Killing => cx.outcome(Outcome::Destroyed),
            _ => {}
        }
    }
}

fn tool_result(
    argv0: &str,
    status: Option<crate::sys::pidfd::ChildStatus>,
    timed_out: bool,
    stderr: &[u8],
    error: &str,
) -> Result<(), String> {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    match status {
        _ if timed_out => Err(format!("{argv0} did not finish in time (killed); {text}")),
        None => Err(if error.is_empty() {
            format!("{argv0} could not run")
        } else {
            error.to_string()
        }),
        Some(s) if s.success() => Ok(()),
        Some(s) if text.is_empty() => Err(format!("{argv0}: {s}")),
        Some(s) => Err(format!("{argv0}: {s}: {text}")),
    }
}

impl Driver for QemuDriver {
    fn start(&mut self, cx: &mut Cx, restart: bool, user_data: &[u8], meta_data: &[u8]) {
        self.urgent = false;
        if self.phase != Phase::Idle {
            // The manager starts only instances that are not running.
            warn!("{}: START while qemu is {:?}", cx.inst, self.phase);
        }
        if !restart {
            self.purpose = Purpose::Start;
            return self.begin_create(cx, user_data, meta_data);
        }
        self.purpose = Purpose::Restart;
        let mut need = vec![cmdline::SEED_ISO];
        if !cx.config.image_uuid.is_empty() {
            need.push(cmdline::OVERLAY);
        }
        for f in need {
            let p = self.path(f);
            let r = self.shared.borrow().host.stat(&p);
            if let Err(e) = r {
                return self.fail(
                    cx,
                    StartFailureReason::LaunchFailure,
                    format!("{}: {e}", p.display()),
                );
            }
        }
        self.choose_accel(cx);
    }

    fn stop(&mut self, cx: &mut Cx, urgent: bool) {
        self.urgent |= urgent;
        match self.phase {
            Phase::Booting | Phase::Running => {
                if urgent {
                    self.step_quit(cx)
                } else {
                    self.step_powerdown(cx)
                }
            }
            Phase::Stopping {
                step: Step::Powerdown,
                ..
            } if urgent => {
                info!(
                    "{}: stop escalated: not waiting for the guest any longer",
                    cx.inst
                );
                self.step_quit(cx);
            }
            Phase::Stopping { .. } | Phase::Killing => {}
            Phase::Idle | Phase::Preparing { .. } | Phase::Accel | Phase::Launching => {
                for res in START_TOOLS {
                    cx.signal(res, libc::SIGKILL);
                }
                self.phase = Phase::Idle;
                cx.outcome(Outcome::Exited);
            }
        }
    }

    fn destroy(&mut self, cx: &mut Cx) {
        for res in START_TOOLS.into_iter().chain([Res::CpuProbe]) {
            cx.signal(res, libc::SIGKILL);
        }
        self.close_qmp(cx);
        if let Some(pid) = self.pid {
            // Should not happen (DELETE stops first), but never remove files
            // under a live qemu (launcher defect 10).
            warn!(
                "{}: qemu (PID {pid}) still there at DELETE; killing it first",
                cx.inst
            );
            self.phase = Phase::Killing;
            self.kill(cx);
            let t = self.shared.borrow().settings.kill_deadline;
            cx.arm(Timer::VmStop, t);
            return;
        }
        cx.unwatch(Res::Process);
        self.phase = Phase::Idle;
        cx.outcome(Outcome::Destroyed);
    }

    fn recover(&mut self, cx: &mut Cx, stopped: bool) {
        self.purpose = Purpose::Recover;
        let pidfile = self.path(cmdline::PIDFILE);
        let pid = self.shared.borrow().host.read_pid(&pidfile);
        match pid {
            Some(pid) if self.is_ours(pid) => {
                if stopped {
                    info!(
                        "{}: stopped by an operator, but its qemu (PID {pid}) runs: adopting it",
                        cx.inst
                    );
                }
                self.adopt(cx, pid);
            }
            Some(pid) => {
                info!(
                    "{}: PID {pid} in {} is not this VM's qemu any more: not running",
                    cx.inst,
                    pidfile.display()
                );
                cx.outcome(Outcome::Exited);
            }
            None => cx.outcome(Outcome::Exited),
        }
    }

    fn input(&mut self, cx: &mut Cx, input: Input) {
        match input {
            Input::Timer(Timer::VmStop) => match self.phase {
                Phase::Stopping {
                    step: Step::Powerdown,
                    ..
                } => {
                    let t = self.shared.borrow().settings.stop_timeout;
                    info!(
                        "{}: the guest did not power off within {}s of the ACPI power button",
                        cx.inst,
                        t.as_secs()
                    );
                    self.step_quit(cx);
                }
                Phase::Stopping {
                    step: Step::Quit, ..
                } => self.step_kill(cx),
                Phase::Stopping {
                    step: Step::Kill, ..
                }
                | Phase::Killing => {
                    error!(
                        "{}: qemu (PID {}) survived SIGKILL; forgetting it",
                        cx.inst,
                        self.pid.unwrap_or(0)
                    );
                    cx.unwatch(Res::Process);
                    self.gone(cx, "");
                }
                _ => {}
            },
            Input::Timer(Timer::VmQmp) => {
                let mut ev = Vec::new();
                if let Some(q) = self.qmp.as_mut() {
                    q.expire(cx.now, &mut ev);
                }
                self.qmp_events(cx, ev);
            }
            Input::Timer(Timer::VmReconnect)
                if self.pid.is_some() && !matches!(self.phase, Phase::Idle | Phase::Killing) =>
            {
                self.connect(cx)
            }
            Input::Job {
                job: Job::CpuModel, ..
            } if self.phase == Phase::Accel => self.choose_accel(cx),
            Input::Exited {
                res,
                status,
                timed_out,
                stdout,
                stderr,
                error,
            } => match res {
                Res::ConfigDrive => {
                    let r = tool_result("xorriso", status, timed_out, &stderr, &error)
                        .map(|_| Vec::new());
                    self.tool_done(cx, res, r);
                }
                Res::ImageInfo => {
                    let r = tool_result("qemu-img info", status, timed_out, &stderr, &error)
                        .map(|_| stdout);
                    self.tool_done(cx, res, r);
                }
                Res::ImageCreate => {
                    let r = tool_result("qemu-img create", status, timed_out, &stderr, &error)
                        .map(|_| Vec::new());
                    self.tool_done(cx, res, r);
                }
                Res::Launch => {
                    let r = tool_result(cmdline::QEMU, status, timed_out, &stderr, &error);
                    self.launched(cx, r);
                }
                Res::CpuProbe => {
                    let ok = status.is_some_and(|s| s.success());
                    let detail = tool_result(cmdline::QEMU, status, false, &stderr, &error)
                        .err()
                        .unwrap_or_default();
                    if status.is_none() && !timed_out {
                        // qemu could not even run: decide nothing, let the
                        // launch report it.
                        self.shared.borrow_mut().accel = AccelState::Unknown;
                        cx.finish(Job::CpuModel);
                        if self.phase == Phase::Accel {
                            self.launch(cx, &Accel::Kvm { cpu: None });
                        }
                        return;
                    }
                    self.probe_done(cx, ok, timed_out, detail);
                }
                _ => {}
            },
            Input::Gone {
                res: Res::Process,
                error,
            } => {
                if self.pid.is_some() {
                    self.gone(cx, &error);
                }
            }
            Input::Connected { res: Res::Qmp } => {
                let deadline = self.shared.borrow().settings.qmp_deadline;
                self.qmp = Some(Qmp::new(cx.now, deadline));
                self.flush_qmp(cx);
            }
            Input::ConnectFailed {
                res: Res::Qmp,
                error,
            } => {
                self.qmp = None;
                self.qmp_open = false;
                self.qmp_lost(cx, &error);
            }
            Input::Data {
                res: Res::Qmp,
                bytes,
            } => {
                let mut ev = Vec::new();
                if let Some(q) = self.qmp.as_mut() {
                    q.feed(&bytes, cx.now, &mut ev);
                }
                self.qmp_events(cx, ev);
            }
            Input::Closed { res: Res::Qmp } => {
                let mut ev = Vec::new();
                if let Some(mut q) = self.qmp.take() {
                    q.closed(&mut ev);
                }
                self.qmp_open = false;
                cx.cancel(Timer::VmQmp);
                // qemu closes QMP when it quits: a command cancelled by that
                // is no failure to escalate; the pidfd tells the rest.
                for e in ev {
                    debug!("{}: QMP closed: {e:?}", cx.inst);
                }
                self.powerdown_id = None;
                self.quit_id = None;
                if self.pid.is_some() {
                    self.qmp_lost(cx, "connection closed");
                }
            }
            other => debug!("{}: unexpected input {other:?}", cx.inst),
        }
    }

    fn usage(&mut self, config: &InstanceConfig, now: Instant) -> Usage {
        if let Some((at, u)) = self.last_usage {
            if now.saturating_duration_since(at) < CPU_MIN_WINDOW && now >= at {
                return u;
            }
        }
        let shared = self.shared.borrow();
        let host = &shared.host;
        let disk_mb = if config.image_uuid.is_empty() {
            0
        } else {
            host.file_size(&self.path(cmdline::OVERLAY))
                .map_or(-1, |s| (s / 1_048_576) as i64)
        };
        let live = matches!(
            self.phase,
            Phase::Booting | Phase::Running | Phase::Stopping { .. }
        );
        let (memory_mb, cpu_percent) = match self.pid {
            Some(pid) if live => {
                let mem = host.pss_kb(pid).map_or(-1, |kb| (kb / 1024) as i64);
                let cpu = match host.cpu_ticks(pid) {
                    Some(t) => self.cpu.sample(t, now, host.ticks_per_sec(), config.cpus),
                    None => -1,
                };
                (mem, cpu)
            }
            _ => (-1, -1),
        };
        let u = Usage {
            memory_mb,
            disk_mb,
            cpu_percent,
        };
        drop(shared);
        self.last_usage = Some((now, u));
        u
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::driver::Key;
    use crate::payloads::FwType;
    use crate::sys::pidfd::ChildStatus;
    use std::collections::{HashMap, HashSet};
    use std::io;
    use std::path::Path;

    /// A file system and process table in memory.
    #[derive(Default)]
    struct Fake {
        files: RefCell<HashSet<PathBuf>>,
        written: RefCell<HashMap<PathBuf, Vec<u8>>>,
        pids: RefCell<HashMap<u32, Vec<String>>>,
        pidfiles: RefCell<HashMap<PathBuf, u32>>,
        ticks: RefCell<u64>,
    }

    struct FakeHost(Rc<Fake>);

    impl Host for FakeHost {
        fn stat(&self, path: &Path) -> io::Result<()> {
            if self.0.files.borrow().contains(path) {
                Ok(())
            } else {
                Err(io::Error::from(io::ErrorKind::NotFound))
            }
        }
        fn write_config_drive(&self, staging: &Path, ud: &[u8], md: &[u8]) -> io::Result<()> {
            let d = staging.join("openstack/latest");
            self.0
                .written
                .borrow_mut()
                .insert(d.join("user_data"), ud.to_vec());
            self.0
                .written
                .borrow_mut()
                .insert(d.join("meta_data.json"), md.to_vec());
            Ok(())
        }
        fn remove_dir(&self, path: &Path) -> io::Result<()> {
            self.0
                .written
                .borrow_mut()
                .retain(|p, _| !p.starts_with(path));
            Ok(())
        }
        fn remove_file(&self, path: &Path) -> io::Result<()> {
            self.0.pidfiles.borrow_mut().remove(path);
            Ok(())
        }
        fn read_pid(&self, path: &Path) -> Option<u32> {
            self.0.pidfiles.borrow().get(path).copied()
        }
        fn cmdline(&self, pid: u32) -> Option<Vec<String>> {
            self.0.pids.borrow().get(&pid).cloned()
        }
        fn pss_kb(&self, pid: u32) -> Option<u64> {
            self.0.pids.borrow().contains_key(&pid).then_some(70 * 1024)
        }
        fn cpu_ticks(&self, _pid: u32) -> Option<u64> {
            Some(*self.0.ticks.borrow())
        }
        fn ticks_per_sec(&self) -> u64 {
            100
        }
        fn file_size(&self, _path: &Path) -> Option<u64> {
            Some(3 * 1_048_576 + 5)
        }
        fn kvm_usable(&self) -> bool {
            false
        }
    }

    const ID: &str = "d7d86208-b46c-4465-9018-fe14087d415f";

    struct T {
        fake: Rc<Fake>,
        shared: Rc<RefCell<Shared>>,
        d: QemuDriver,
        cfg: InstanceConfig,
        dir: PathBuf,
        now: Instant,
        effects: Vec<Effect>,
        outcomes: Vec<Outcome>,
    }

    impl T {
        fn new(virt: Virtualisation) -> T {
            let fake = Rc::new(Fake::default());
            fake.files
                .borrow_mut()
                .insert(PathBuf::from("/data/images/img"));
            let mut s = Settings::new(
                PathBuf::from("/data/images"),
                virt,
                Some("/ovmf.fd".into()),
                Duration::from_secs(30),
            );
            s.ceph_id = String::new();
            let shared = Shared::new(s, Box::new(FakeHost(fake.clone())));
            let d = QemuDriver::new(shared.clone());
            T {
                fake,
                shared,
                d,
                cfg: InstanceConfig {
                    instance_uuid: ID.into(),
                    image_uuid: "img".into(),
                    fw_type: FwType::Legacy,
                    cpus: 2,
                    mem_mb: 128,
                    ..InstanceConfig::default()
                },
                dir: PathBuf::from(format!("/data/instances/{ID}")),
                now: Instant::now(),
                effects: Vec::new(),
                outcomes: Vec::new(),
            }
        }

        fn call(
            &mut self,
            f: impl FnOnce(&mut QemuDriver, &mut Cx),
        ) -> (Vec<Effect>, Vec<Outcome>) {
            let mut cx = Cx {
                now: self.now,
                key: Key {
                    instance: ID.into(),
                    generation: 7,
                    tag: 0,
                },
                dir: &self.dir,
                config: &self.cfg,
                effects: &mut self.effects,
                outcomes: &mut self.outcomes,
            };
            f(&mut self.d, &mut cx);
            (
                std::mem::take(&mut self.effects),
                std::mem::take(&mut self.outcomes),
            )
        }

        fn input(&mut self, i: Input) -> (Vec<Effect>, Vec<Outcome>) {
            self.call(|d, cx| d.input(cx, i))
        }

        fn exit(
            &mut self,
            tag: u32,
            code: i32,
            stdout: &[u8],
            stderr: &[u8],
        ) -> (Vec<Effect>, Vec<Outcome>) {
            self.input(Input::Exited {
                tag,
                status: Some(ChildStatus::Exited(code)),
                timed_out: false,
                stdout: stdout.to_vec(),
                stderr: stderr.to_vec(),
                error: String::new(),
            })
        }

        /// Fires the latest timer of `kind` among `effects`.
        fn fire(&mut self, effects: &[Effect], kind: u32) -> (Vec<Effect>, Vec<Outcome>) {
            let (tag, at) = timer(effects, kind).expect("timer armed");
            self.now = at;
            self.input(Input::Timer { tag })
        }

        /// Everything up to an adopted qemu with QMP ready.
        fn run_to_active(&mut self) {
            let (e, o) = self.call(|d, cx| d.start(cx, false, b"#cloud-config\n", b""));
            assert!(o.is_empty());
            assert_eq!(
                spawned(&e),
                vec![
                    (J_ISO, "xorriso".to_string()),
                    (J_INFO, "qemu-img".to_string())
                ]
            );
            let md = self
                .fake
                .written
                .borrow()
                .get(
                    &self
                        .dir
                        .join("clr-cloud-init/openstack/latest/meta_data.json"),
                )
                .cloned()
                .unwrap();
            assert_eq!(
                md,
                default_meta_data(ID).into_bytes(),
                "default meta-data when the payload has none"
            );
            let (e, _) = self.exit(J_INFO, 0, br#"{"format": "raw", "virtual-size": 1}"#, b"");
            let argv = spawn_argv(&e, J_CREATE).unwrap();
            assert!(
                argv.join(" ").contains("-F raw -b /data/images/img"),
                "{argv:?}"
            );
            let (e, _) = self.exit(J_ISO, 0, b"", b"");
            assert!(e.is_empty());
            assert!(
                self.fake.written.borrow().is_empty(),
                "staging removed after the ISO"
            );
            let (e, _) = self.exit(J_CREATE, 0, b"", b"");
            let argv = spawn_argv(&e, J_LAUNCH).expect("qemu launched");
            assert_eq!(argv[0], "qemu-system-x86_64");
            assert!(!argv.iter().any(|a| a == "-enable-kvm"));
            // qemu daemonised: its pidfile and /proc entry.
            self.fake
                .pidfiles
                .borrow_mut()
                .insert(self.dir.join("qemu.pid"), 4242);
            self.fake.pids.borrow_mut().insert(4242, argv.clone());
            let (e, o) = self.exit(J_LAUNCH, 0, b"", b"");
            assert_eq!(o, vec![Outcome::Launched]);
            assert!(e
                .iter()
                .any(|x| matches!(x, Effect::Watch { key, pid: 4242 } if key.tag == WATCH)));
            assert!(e.iter().any(|x| matches!(x, Effect::Connect { key, path, .. } if key.tag == QMP && path.ends_with("socket"))));
            self.qmp_up();
        }

        fn qmp_up(&mut self) {
            let (e, _) = self.input(Input::Connected { tag: QMP });
            assert!(writes(&e).is_empty());
            let (e, o) = self.input(Input::Data {
                tag: QMP,
                bytes: b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}}, \"capabilities\": [\"oob\"]}}\r\n".to_vec(),
            });
            assert!(o.is_empty());
            assert_eq!(
                writes(&e),
                vec!["{\"execute\":\"qmp_capabilities\",\"id\":0}\n".to_string()]
            );
            let (_, o) = self.input(Input::Data {
                tag: QMP,
                bytes: b"{\"return\": {}, \"id\": 0}\n".to_vec(),
            });
            assert_eq!(o, vec![Outcome::Running]);
        }

        fn gone(&mut self) -> (Vec<Effect>, Vec<Outcome>) {
            self.fake.pids.borrow_mut().remove(&4242);
            self.input(Input::Gone {
                tag: WATCH,
                error: String::new(),
            })
        }
    }

    fn spawned(e: &[Effect]) -> Vec<(u32, String)> {
        e.iter()
            .filter_map(|x| match x {
                Effect::Spawn { key, argv, .. } => {
                    Some((key.tag, argv[0].to_string_lossy().into_owned()))
                }
                _ => None,
            })
            .collect()
    }

    fn spawn_argv(e: &[Effect], tag: u32) -> Option<Vec<String>> {
        e.iter().find_map(|x| match x {
            Effect::Spawn { key, argv, .. } if key.tag == tag => Some(
                argv.iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect(),
            ),
            _ => None,
        })
    }

    fn writes(e: &[Effect]) -> Vec<String> {
        e.iter()
            .filter_map(|x| match x {
                Effect::Write { bytes, .. } => Some(String::from_utf8_lossy(bytes).into_owned()),
                _ => None,
            })
            .collect()
    }

    fn timer(e: &[Effect], kind: u32) -> Option<(u32, Instant)> {
        e.iter().rev().find_map(|x| match x {
            Effect::Timer { key, at } if key.tag & 0xff == kind => Some((key.tag, *at)),
            _ => None,
        })
    }

    fn signals(e: &[Effect]) -> Vec<(u32, i32)> {
        e.iter()
            .filter_map(|x| match x {
                Effect::Signal { key, signal } => Some((key.tag, *signal)),
                _ => None,
            })
            .collect()
    }

    /// The reason and detail of the first outcome, which must be a failed
    /// START.
    fn start_failure(o: &[Outcome]) -> (StartFailureReason, &str) {
        match o.first() {
            Some(Outcome::StartFailed { reason, detail }) => (*reason, detail),
            other => panic!("expected a failed START, got {other:?}"),
        }
    }

    #[test]
    fn start_then_graceful_stop_by_acpi() {
        let mut t = T::new(Virtualisation::Software);
        t.run_to_active();
        // Usage: PSS, overlay size, CPU -1 first then per vCPU.
        let u = t.d.usage(&t.cfg, t.now);
        assert_eq!((u.memory_mb, u.disk_mb, u.cpu_percent), (70, 3, -1));
        *t.fake.ticks.borrow_mut() = 100; // 1 s of CPU over 2 s, 2 vCPUs
        let u = t.d.usage(&t.cfg, t.now + Duration::from_secs(2));
        assert_eq!(u.cpu_percent, 25);

        let (e, o) = t.call(|d, cx| d.stop(cx, false));
        assert!(o.is_empty());
        assert!(writes(&e)[0].contains("system_powerdown"));
        let (_, at) = timer(&e, T_STOP).unwrap();
        assert_eq!(at, t.now + Duration::from_secs(30));
        let (_, o) = t.gone();
        assert_eq!(o, vec![Outcome::Exited]);
        assert!(t.d.usage(&t.cfg, t.now).memory_mb == -1);
        // The old stop timer is ignored.
        let (e, o) = t.fire(&e, T_STOP);
        assert!(e.is_empty() && o.is_empty());

        // RESTART: same files, no tools.
        t.fake.files.borrow_mut().insert(t.dir.join("seed.iso"));
        t.fake.files.borrow_mut().insert(t.dir.join("image.qcow2"));
        let (e, o) = t.call(|d, cx| d.start(cx, true, b"", b""));
        assert!(o.is_empty());
        assert_eq!(
            spawned(&e),
            vec![(J_LAUNCH, "qemu-system-x86_64".to_string())]
        );
    }

    #[test]
    fn stop_escalates_quit_then_kill() {
        let mut t = T::new(Virtualisation::Software);
        t.run_to_active();
        let (e, _) = t.call(|d, cx| d.stop(cx, false));
        let _ = t.input(Input::Data {
            tag: QMP,
            bytes: b"{\"return\": {}, \"id\": 1}\n".to_vec(),
        });
        let (e, o) = t.fire(&e, T_STOP);
        assert!(o.is_empty());
        assert!(writes(&e)[0].contains("\"quit\""));
        // quit's reply times out (10 s) before the stop step timer: kill.
        let (e2, _) = t.fire(&e, T_QMP);
        assert_eq!(signals(&e2), vec![(WATCH, libc::SIGKILL)]);
        let (_, o) = t.gone();
        assert_eq!(o, vec![Outcome::Exited]);
    }

    #[test]
    fn urgent_stop_escalates_a_graceful_one() {
        let mut t = T::new(Virtualisation::Software);
        t.run_to_active();
        let _ = t.call(|d, cx| d.stop(cx, false));
        let (e, _) = t.call(|d, cx| d.stop(cx, true));
        assert!(writes(&e)[0].contains("\"quit\""));
        // qemu answers quit then goes away: Exited, then Destroyed.
        let (_, o) = t.input(Input::Data { tag: QMP, bytes: b"{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": false}}\n{\"return\": {}, \"id\": 2}\n".to_vec() });
        assert!(o.is_empty());
        let (_, o) = t.input(Input::Closed { tag: QMP });
        assert!(o.is_empty());
        let (_, o) = t.gone();
        assert_eq!(o, vec![Outcome::Exited]);
        let (e, o) = t.call(|d, cx| d.destroy(cx));
        assert_eq!(o, vec![Outcome::Destroyed]);
        assert!(e.iter().any(|x| matches!(x, Effect::Unwatch { .. })));
    }

    #[test]
    fn stop_without_qmp_uses_signals() {
        let mut t = T::new(Virtualisation::Software);
        t.run_to_active();
        let (_, o) = t.input(Input::Closed { tag: QMP });
        assert!(o.is_empty());
        let (e, _) = t.call(|d, cx| d.stop(cx, false));
        assert_eq!(signals(&e), vec![(WATCH, libc::SIGTERM)]);
        let (e, _) = t.fire(&e, T_STOP);
        assert_eq!(signals(&e), vec![(WATCH, libc::SIGKILL)]);
        let (_, o) = t.fire(&e, T_STOP);
        assert_eq!(
            o,
            vec![Outcome::Exited],
            "given up after SIGKILL's deadline"
        );
    }

    #[test]
    fn unexpected_exit_and_qmp_reconnect() {
        let mut t = T::new(Virtualisation::Software);
        t.run_to_active();
        let (e, o) = t.input(Input::Closed { tag: QMP });
        assert!(o.is_empty());
        let (e, _) = t.fire(&e, T_RECONNECT);
        assert!(e.iter().any(|x| matches!(x, Effect::Connect { .. })));
        let (_, o) = t.gone();
        assert_eq!(o, vec![Outcome::Exited]);
    }

    #[test]
    fn missing_backing_image() {
        let mut t = T::new(Virtualisation::Software);
        t.cfg.image_uuid = "nope".into();
        let (e, o) = t.call(|d, cx| d.start(cx, false, b"", b""));
        assert!(spawned(&e).is_empty());
        let (reason, detail) = start_failure(&o);
        assert_eq!(reason, StartFailureReason::ImageFailure);
        assert!(detail.contains("/data/images/nope"), "{detail}");
    }

    #[test]
    fn tool_failures() {
        let mut t = T::new(Virtualisation::Software);
        let _ = t.call(|d, cx| d.start(cx, false, b"", b""));
        let (e, o) = t.exit(J_ISO, 1, b"", b"xorriso : FAILURE : no space");
        let (reason, detail) = start_failure(&o);
        assert_eq!(reason, StartFailureReason::ImageFailure);
        assert!(detail.contains("no space"), "{detail}");
        assert!(
            signals(&e).contains(&(J_INFO, libc::SIGKILL)),
            "the other tool is stopped"
        );

        let mut t = T::new(Virtualisation::Software);
        let _ = t.call(|d, cx| d.start(cx, false, b"", b""));
        let (_, o) = t.exit(J_INFO, 0, b"not json", b"");
        assert_eq!(start_failure(&o).0, StartFailureReason::ImageFailure);
    }

    #[test]
    fn launch_failure_carries_qemu_message() {
        let mut t = T::new(Virtualisation::Software);
        let _ = t.call(|d, cx| d.start(cx, false, b"", b""));
        let _ = t.exit(J_INFO, 0, br#"{"format": "qcow2"}"#, b"");
        let _ = t.exit(J_ISO, 0, b"", b"");
        let _ = t.exit(J_CREATE, 0, b"", b"");
        let (_, o) = t.exit(
            J_LAUNCH,
            1,
            b"",
            b"qemu-system-x86_64: Invalid SMP CPUs 1000\n",
        );
        let (reason, detail) = start_failure(&o);
        assert_eq!(reason, StartFailureReason::LaunchFailure);
        assert!(detail.contains("Invalid SMP CPUs 1000"), "{detail}");
    }

    #[test]
    fn efi_without_firmware() {
        let mut t = T::new(Virtualisation::Software);
        t.shared.borrow_mut().settings.ovmf = None;
        t.cfg.fw_type = FwType::Efi;
        let _ = t.call(|d, cx| d.start(cx, false, b"", b""));
        let _ = t.exit(J_INFO, 0, br#"{"format": "raw"}"#, b"");
        let _ = t.exit(J_ISO, 0, b"", b"");
        let (_, o) = t.exit(J_CREATE, 0, b"", b"");
        let (reason, detail) = start_failure(&o);
        assert_eq!(reason, StartFailureReason::LaunchFailure);
        assert!(detail.contains("OVMF"), "{detail}");
    }

    #[test]
    fn kvm_probe_once_then_shared() {
        let mut t = T::new(Virtualisation::Kvm);
        let _ = t.call(|d, cx| d.start(cx, false, b"", b""));
        let _ = t.exit(J_INFO, 0, br#"{"format": "raw"}"#, b"");
        let _ = t.exit(J_ISO, 0, b"", b"");
        let (e, _) = t.exit(J_CREATE, 0, b"", b"");
        let probe = spawn_argv(&e, J_PROBE).expect("probe");
        assert!(probe.join(" ").contains("-enable-kvm -cpu host"));
        // A second instance waits for the probe.
        let mut other = QemuDriver::new(t.shared.clone());
        other.dir = t.dir.clone();
        let (e2, _) = t.call(|_, cx| other.choose_accel(cx));
        assert!(spawned(&e2).is_empty() && timer(&e2, T_ACCEL).is_some());
        // The probe aborts: default CPU model.
        let (e, _) = t.input(Input::Exited {
            tag: J_PROBE,
            status: Some(ChildStatus::Signaled(6)),
            timed_out: false,
            stdout: vec![],
            stderr: b"kvm_buf_set_msrs: Assertion failed (failed to set MSR 0x10a)".to_vec(),
            error: String::new(),
        });
        let argv = spawn_argv(&e, J_LAUNCH).unwrap().join(" ");
        assert!(argv.contains("-enable-kvm -daemonize"), "{argv}");
        let (tag, _) = timer(&e2, T_ACCEL).unwrap();
        let (e3, _) = t.call(|_, cx| other.input(cx, Input::Timer { tag }));
        assert!(spawn_argv(&e3, J_LAUNCH)
            .unwrap()
            .join(" ")
            .contains("-enable-kvm -daemonize"));
    }

    #[test]
    fn recovery() {
        let mut t = T::new(Virtualisation::Software);
        let argv: Vec<String> = cmdline::qemu_argv(
            &t.cfg,
            &Launch {
                dir: &t.dir,
                accel: &Accel::Software,
                ovmf: None,
                ceph_id: "",
            },
        )
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
        // A running qemu of ours.
        t.fake
            .pidfiles
            .borrow_mut()
            .insert(t.dir.join("qemu.pid"), 4242);
        t.fake.pids.borrow_mut().insert(4242, argv);
        let (e, o) = t.call(|d, cx| d.recover(cx, false));
        assert!(o.is_empty());
        assert!(e
            .iter()
            .any(|x| matches!(x, Effect::Watch { pid: 4242, .. })));
        t.qmp_up();

        // PID reused by another program.
        let mut t = T::new(Virtualisation::Software);
        t.fake
            .pidfiles
            .borrow_mut()
            .insert(t.dir.join("qemu.pid"), 4242);
        t.fake
            .pids
            .borrow_mut()
            .insert(4242, vec!["/bin/sleep".into(), "99".into()]);
        let (e, o) = t.call(|d, cx| d.recover(cx, false));
        assert_eq!(o, vec![Outcome::Exited]);
        assert!(e.is_empty());

        // No pidfile.
        let mut t = T::new(Virtualisation::Software);
        let (_, o) = t.call(|d, cx| d.recover(cx, true));
        assert_eq!(o, vec![Outcome::Exited]);
    }

    #[test]
    fn qmp_never_answers_at_start() {
        let mut t = T::new(Virtualisation::Software);
        let _ = t.call(|d, cx| d.start(cx, false, b"", b""));
        let _ = t.exit(J_INFO, 0, br#"{"format": "raw"}"#, b"");
        let _ = t.exit(J_ISO, 0, b"", b"");
        let (e, _) = t.exit(J_CREATE, 0, b"", b"");
        let argv = spawn_argv(&e, J_LAUNCH).unwrap();
        t.fake
            .pidfiles
            .borrow_mut()
            .insert(t.dir.join("qemu.pid"), 4242);
        t.fake.pids.borrow_mut().insert(4242, argv);
        let _ = t.exit(J_LAUNCH, 0, b"", b"");
        let mut last = Vec::new();
        for _ in 0..=QMP_ATTEMPTS {
            let (e, o) = t.input(Input::ConnectFailed {
                tag: QMP,
                error: "refused".into(),
            });
            if !o.is_empty() {
                assert_eq!(start_failure(&o).0, StartFailureReason::LaunchFailure);
                assert!(signals(&e).contains(&(WATCH, libc::SIGKILL)));
                return;
            }
            last = e;
        }
        panic!("never gave up: {last:?}");
    }

    #[test]
    fn cpu_meter() {
        let mut m = CpuMeter::default();
        let t0 = Instant::now();
        assert_eq!(m.sample(0, t0, 100, 1), -1);
        assert_eq!(
            m.sample(50, t0 + Duration::from_millis(500), 100, 1),
            -1,
            "window too short"
        );
        assert_eq!(m.sample(100, t0 + Duration::from_secs(2), 100, 1), 50);
        assert_eq!(m.sample(100, t0 + Duration::from_secs(3), 100, 4), 0);
        assert_eq!(m.sample(500, t0 + Duration::from_secs(4), 100, 4), 100);
        m.reset();
        assert_eq!(m.sample(900, t0 + Duration::from_secs(9), 100, 4), -1);
    }
}
