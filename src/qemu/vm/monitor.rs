//! The QMP link of an adopted VM: connecting (and reconnecting while the
//! process lives), the handshake, commands with their deadlines, events.

use std::time::Duration;

use log::{debug, info, warn};

use super::{Phase, Purpose, QemuDriver, Step};
use crate::driver::{Cx, Outcome, Res, Timer};
use crate::payloads::StartFailureReason;
use crate::qemu::cmdline;
use crate::qemu::qmp::{Qmp, QmpEvent};
use crate::qemu::settings::Console;

/// How often QMP is retried before the driver gives up on it.
pub(super) const QMP_ATTEMPTS: u32 = 20;
/// The first retry's delay; later ones wait longer (up to 8 times).
const QMP_RETRY: Duration = Duration::from_millis(250);

impl QemuDriver {
    pub(super) fn connect(&mut self, cx: &mut Cx) {
        self.close_qmp(cx);
        let deadline = self.shared.borrow().settings.qmp_deadline;
        self.qmp_open = true;
        cx.connect(Res::Qmp, self.path(cmdline::QMP_SOCKET), deadline);
    }

    pub(super) fn close_qmp(&mut self, cx: &mut Cx) {
        self.volume_lost(cx, "the QMP connection closed");
        self.qmp = None;
        if std::mem::take(&mut self.qmp_open) {
            cx.close(Res::Qmp);
        }
        cx.cancel(Timer::VmQmp);
    }

    pub(super) fn qmp_connected(&mut self, cx: &mut Cx) {
        let deadline = self.shared.borrow().settings.qmp_deadline;
        self.qmp = Some(Qmp::new(cx.now, deadline));
        self.flush_qmp(cx);
    }

    pub(super) fn qmp_connect_failed(&mut self, cx: &mut Cx, error: &str) {
        self.qmp = None;
        self.qmp_open = false;
        self.qmp_lost(cx, error);
    }

    pub(super) fn qmp_data(&mut self, cx: &mut Cx, bytes: &[u8]) {
        let mut ev = Vec::new();
        if let Some(q) = self.qmp.as_mut() {
            q.feed(bytes, cx.now, &mut ev);
        }
        self.qmp_events(cx, ev);
    }

    pub(super) fn qmp_closed(&mut self, cx: &mut Cx) {
        let mut ev = Vec::new();
        if let Some(mut q) = self.qmp.take() {
            q.closed(&mut ev);
        }
        self.qmp_open = false;
        cx.cancel(Timer::VmQmp);
        // qemu closes QMP when it quits: a command cancelled by that is no
        // failure to escalate; the pidfd tells the rest.
        for e in ev {
            debug!("{}: QMP closed: {e:?}", cx.inst);
        }
        self.powerdown_id = None;
        self.quit_id = None;
        if self.pid.is_some() {
            self.qmp_lost(cx, "connection closed");
        }
    }

    /// The deadline of the handshake or of a command passed.
    pub(super) fn qmp_timer(&mut self, cx: &mut Cx) {
        let mut ev = Vec::new();
        if let Some(q) = self.qmp.as_mut() {
            q.expire(cx.now, &mut ev);
        }
        self.qmp_events(cx, ev);
    }

    pub(super) fn reconnect_timer(&mut self, cx: &mut Cx) {
        if self.pid.is_some() && !matches!(self.phase, Phase::Idle | Phase::Killing) {
            self.connect(cx);
        }
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

    /// Sends what the session has to say and keeps its deadline armed.
    pub(super) fn flush_qmp(&mut self, cx: &mut Cx) {
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
                    if self.shared.borrow().settings.console == Console::Tcp {
                        self.console_query = self.qmp_command(cx, "query-chardev");
                    }
                    if self.phase == Phase::Booting && self.purpose == Purpose::Recover {
                        // The record decides which volumes it has.
                        self.begin_repair(cx);
                    } else if self.phase == Phase::Booting {
                        self.running(cx);
                    } else if self.phase == Phase::Running {
                        info!("{id}: QMP reconnected");
                    }
                }
                QmpEvent::Return {
                    id: rid,
                    command,
                    data,
                } => {
                    debug!("{id}: QMP {command} ({rid}) done");
                    if self.console_query == Some(rid) {
                        self.console_query = None;
                        log_console(&id, &data);
                    }
                    self.volume_reply(cx, rid, &Ok(data));
                }
                QmpEvent::Error {
                    id: rid,
                    command,
                    error,
                } => {
                    warn!("{id}: QMP {command} failed: {error}");
                    if !self.volume_reply(cx, rid, &Err(error)) {
                        self.command_failed(cx, rid);
                    }
                }
                QmpEvent::Timeout { id: rid, command } => {
                    warn!("{id}: QMP {command} got no answer in time");
                    let e = Err(format!("{command}: no answer in time"));
                    if !self.volume_reply(cx, rid, &e) {
                        self.command_failed(cx, rid);
                    }
                }
                QmpEvent::Event { name, data } => {
                    log_event(&id, &name, &data);
                    if name == "DEVICE_DELETED" {
                        self.device_deleted(cx, &data);
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

    /// A stop command failed or went unanswered: the next stop step.
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

    pub(super) fn running(&mut self, cx: &mut Cx) {
        self.phase = Phase::Running;
        self.cpu.reset();
        self.last_usage = None;
        cx.outcome(Outcome::Running);
    }

    /// Sends a command when QMP is ready; its id.
    pub(super) fn qmp_command(&mut self, cx: &mut Cx, name: &str) -> Option<u64> {
        let deadline = self.shared.borrow().settings.qmp_deadline;
        let q = self.qmp.as_mut().filter(|q| q.is_ready())?;
        let id = q.command(name, "", cx.now, deadline);
        self.flush_qmp(cx);
        Some(id)
    }
}

/// Logs where the serial console listens (`-with-ui nc`), with the
/// client to use, as the original's debug build did.
fn log_console(id: &str, chardevs: &serde_yaml::Value) {
    match cmdline::console_port(chardevs) {
        Some(port) => {
            info!("{id}: serial console on 127.0.0.1:{port}: connect with `nc 127.0.0.1 {port}`")
        }
        None => warn!("{id}: query-chardev did not show the serial console's TCP port"),
    }
}

/// Logs a qemu event: the ones about the guest's life at info level.
fn log_event(id: &str, name: &str, data: &serde_yaml::Value) {
    let detail = match data {
        serde_yaml::Value::Null => String::new(),
        d => serde_yaml::to_string(d)
            .map(|s| format!(" {}", s.trim().replace('\n', ", ")))
            .unwrap_or_default(),
    };
    match name {
        "SHUTDOWN" | "POWERDOWN" | "RESET" | "STOP" | "GUEST_PANICKED" => {
            info!("{id}: qemu event {name}{detail}")
        }
        _ => debug!("{id}: qemu event {name}{detail}"),
    }
}
