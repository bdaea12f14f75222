//! STOP and DELETE: the ACPI power button, QMP `quit`, SIGKILL, each with
//! its deadline; and the end of the VM process, seen through its pidfd.

use log::{debug, error, info, warn};

use super::{Phase, Purpose, QemuDriver, Step};
use crate::driver::{Cx, Job, Outcome, Res, Signal, Timer};
use crate::payloads::StartFailureReason;
use crate::qemu::cmdline;

/// The children of a START that a stop kills.
const START_TOOLS: [Res; 4] = [
    Res::ImageInfo,
    Res::ImageCreate,
    Res::ConfigDrive,
    Res::Launch,
];

impl QemuDriver {
    /// Stops the VM: gracefully, or from `quit` on when `urgent` (which
    /// also escalates a graceful stop in progress). A START in progress is
    /// abandoned.
    pub(super) fn begin_stop(&mut self, cx: &mut Cx, urgent: bool) {
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
            Phase::Idle
            | Phase::Preparing { .. }
            | Phase::Accel
            | Phase::Clearing
            | Phase::Launching => {
                for res in START_TOOLS {
                    cx.signal(res, Signal::Kill);
                }
                self.launch_argv = None;
                self.phase = Phase::Idle;
                cx.outcome(Outcome::Exited);
            }
        }
    }

    /// DELETE: releases what the driver holds in the shell. The manager
    /// removes the instance directory afterwards, so a qemu still there
    /// is killed first and `Destroyed` waits for its end.
    pub(super) fn teardown(&mut self, cx: &mut Cx) {
        for res in START_TOOLS.into_iter().chain([Res::CpuProbe]) {
            cx.signal(res, Signal::Kill);
        }
        if std::mem::take(&mut self.probing) {
            // The probe killed here decides nothing: its waiters are told,
            // and the first of them probes again.
            cx.finish(Job::CpuModel);
        }
        self.close_qmp(cx);
        if let Some(pid) = self.pid {
            // Should not happen (DELETE stops first), but files are never
            // removed under a live qemu.
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

    /// The current stop step ran out of time: the next one.
    pub(super) fn stop_timer(&mut self, cx: &mut Cx) {
        match self.phase {
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
        }
    }

    fn step_powerdown(&mut self, cx: &mut Cx) {
        let now = cx.now;
        self.phase = Phase::Stopping {
            step: Step::Powerdown,
            since: now,
        };
        match self.qmp_command(cx, "system_powerdown") {
            Some(id) => {
                self.powerdown_id = Some(id);
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
                self.step_quit(cx);
            }
        }
    }

    pub(super) fn step_quit(&mut self, cx: &mut Cx) {
        let since = self.stopping_since(cx);
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
                cx.signal(Res::Process, Signal::Term);
            }
        }
        let t = self.shared.borrow().settings.kill_deadline;
        cx.arm(Timer::VmStop, t);
    }

    pub(super) fn step_kill(&mut self, cx: &mut Cx) {
        let since = self.stopping_since(cx);
        warn!("{}: qemu did not quit; killing it (SIGKILL)", cx.inst);
        self.phase = Phase::Stopping {
            step: Step::Kill,
            since,
        };
        self.kill(cx);
        let t = self.shared.borrow().settings.kill_deadline;
        cx.arm(Timer::VmStop, t);
    }

    /// When the stop in progress began (now if none is).
    fn stopping_since(&self, cx: &Cx) -> std::time::Instant {
        match self.phase {
            Phase::Stopping { since, .. } => since,
            _ => cx.now,
        }
    }

    pub(super) fn kill(&self, cx: &mut Cx) {
        cx.signal(Res::Process, Signal::Kill);
    }

    /// The pidfd reported the VM process gone.
    pub(super) fn process_gone(&mut self, cx: &mut Cx, error: &str) {
        if self.pid.is_some() {
            self.gone(cx, error);
        }
    }

    /// The VM process is gone (pidfd), or given up on.
    fn gone(&mut self, cx: &mut Cx, error: &str) {
        let id = cx.inst.id.clone();
        // Told after the exit, so the manager sees the VM stopped first.
        let volume = self.volume.take();
        self.repair = None;
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
        self.volume_after_exit(cx, volume);
    }
}
