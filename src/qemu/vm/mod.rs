//! One VM's step machine, a [`Driver`].
//!
//! START (in `start`): backing image check → config drive (its two files
//! written, then `xorriso`) and, at the same time, `qemu-img info` then
//! `qemu-img create` → (once per launcher run, for the whole node) the CPU
//! probe → removal of a stale pidfile → qemu `-daemonize` → adopt the PID
//! from `-pidfile` after checking `/proc/PID/cmdline` (pidfd watch) → QMP
//! greeting and capabilities (in `monitor`): active. Every step is a child
//! process, a socket, a file operation or a timer executed by the shell;
//! the machine only reads a few small local files inline, through
//! [`Host`](super::host::Host).
//!
//! STOP (in `stop`): `system_powerdown`, after `--stop-timeout` QMP `quit`,
//! after 10 s SIGKILL through the pidfd; the exit is seen through the
//! pidfd, and the step that ended the VM is logged. DELETE
//! (`stop(urgent)`) starts at `quit`. Recovery re-adopts a running qemu
//! through its pidfile.

mod attach;
mod monitor;
mod start;
mod stop;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::ffi::OsString;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Instant;

use log::debug;

use super::cmdline;
use super::cpu::{CpuMeter, CPU_MIN_WINDOW};
use super::qmp::Qmp;
use super::settings::Shared;
use crate::driver::{Cx, Driver, Input, Job, Outcome, Res, Signal, Timer, Usage, Vnic};
use crate::payloads::{InstanceConfig, StartFailureReason};
use start::Ended;

/// Where one VM is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not running, nothing in progress.
    Idle,
    /// START: config drive and overlay being made. `files`: how many of
    /// the config drive's two files are written (`xorriso` runs once both
    /// are); `iso`, `disk`: the ISO and the overlay are made.
    Preparing {
        files: u8,
        iso: bool,
        disk: bool,
    },
    /// Waiting for the CPU probe (ours or another instance's job).
    Accel,
    /// A stale pidfile is being removed before the launch.
    Clearing,
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

/// The step of a stop in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Powerdown,
    Quit,
    Kill,
}

/// Why the VM process is being adopted, which decides what a failure
/// before QMP answers means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Start,
    Restart,
    Recover,
}

/// One qemu VM.
pub struct QemuDriver {
    shared: Rc<RefCell<Shared>>,
    phase: Phase,
    purpose: Purpose,
    dir: PathBuf,
    pid: Option<u32>,
    qmp: Option<Qmp>,
    /// A QMP socket resource exists in the shell (connecting or connected).
    qmp_open: bool,
    qmp_attempts: u32,
    /// Ids of our stop commands, to react to their failure.
    powerdown_id: Option<u64>,
    quit_id: Option<u64>,
    /// Id of the `query-chardev` that finds the TCP console's port.
    console_query: Option<u64>,
    /// Our CPU probe runs (this instance leads the node's CPU-model job).
    probing: bool,
    /// The qemu command line and the files it gets as descriptors 3, 4, …,
    /// while the stale pidfile is being removed.
    launch_argv: Option<(Vec<OsString>, Vec<PathBuf>)>,
    /// The network attachment given with the last START/RESTART: the
    /// launch comes in a later call, whose `Cx` may not carry it.
    vnic: Option<Vnic>,
    cpu: CpuMeter,
    /// Who asked for the stop (urgent = DELETE).
    urgent: bool,
    /// The last sample: the manager asks twice per STATS (capacity, then
    /// the list); a second read within the CPU window reuses it.
    last_usage: Option<(Instant, Usage)>,
    /// The volume hot-plug or hot-unplug in progress.
    volume: Option<attach::VolumeOp>,
    /// After a re-adoption: the devices being brought in line with the
    /// recorded volumes.
    repair: Option<attach::Repair>,
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
            console_query: None,
            probing: false,
            launch_argv: None,
            vnic: None,
            cpu: CpuMeter::default(),
            urgent: false,
            last_usage: None,
            volume: None,
            repair: None,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        cmdline::in_dir(&self.dir, name)
    }

    /// START failed: the preparation's tools are stopped.
    fn fail(&mut self, cx: &mut Cx, reason: StartFailureReason, detail: String) {
        for res in [Res::ImageInfo, Res::ImageCreate, Res::ConfigDrive] {
            cx.signal(res, Signal::Kill);
        }
        self.phase = Phase::Idle;
        cx.outcome(Outcome::StartFailed { reason, detail });
    }
}

impl Driver for QemuDriver {
    fn start(&mut self, cx: &mut Cx, restart: bool, user_data: &[u8], meta_data: &[u8]) {
        self.begin(cx, restart, user_data, meta_data);
    }

    fn stop(&mut self, cx: &mut Cx, urgent: bool) {
        self.begin_stop(cx, urgent);
    }

    fn destroy(&mut self, cx: &mut Cx) {
        self.teardown(cx);
    }

    fn recover(&mut self, cx: &mut Cx, stopped: bool) {
        self.readopt(cx, stopped);
    }

    fn input(&mut self, cx: &mut Cx, input: Input) {
        match input {
            Input::Timer(Timer::VmStop) => self.stop_timer(cx),
            Input::Timer(Timer::VmQmp) => self.qmp_timer(cx),
            Input::Timer(Timer::VmReconnect) => self.reconnect_timer(cx),
            Input::Timer(Timer::VmVolume) => self.volume_timer(cx),
            Input::Job {
                job: Job::CpuModel,
                lead,
            } => self.cpu_model_job(cx, lead),
            Input::File { res, result } => self.file_done(cx, res, result),
            Input::Exited {
                res,
                status,
                timed_out,
                stdout,
                stderr,
                error,
            } => self.exited(
                cx,
                res,
                Ended {
                    status,
                    timed_out,
                    stdout,
                    stderr,
                    error,
                },
            ),
            Input::Gone {
                res: Res::Process,
                error,
            } => self.process_gone(cx, &error),
            Input::Connected { res: Res::Qmp } => self.qmp_connected(cx),
            Input::ConnectFailed {
                res: Res::Qmp,
                error,
            } => self.qmp_connect_failed(cx, &error),
            Input::Data {
                res: Res::Qmp,
                bytes,
            } => self.qmp_data(cx, &bytes),
            Input::Closed { res: Res::Qmp } => self.qmp_closed(cx),
            other => debug!("{}: unexpected input {other:?}", cx.inst),
        }
    }

    fn attach(&mut self, cx: &mut Cx, uuid: &str) {
        self.hot_attach(cx, uuid);
    }

    fn detach(&mut self, cx: &mut Cx, uuid: &str) {
        self.hot_detach(cx, uuid);
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
