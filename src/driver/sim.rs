//! The fake virtualiser of `-simulation`.

use std::time::{Duration, Instant};

use super::{Cx, Driver, Input, Outcome, Timer, Usage};
use crate::payloads::InstanceConfig;

/// The fake virtualiser of `-simulation` (`docs/architecture.md`,
/// simulation): only the VM/container layer is fake; the state log,
/// stats, capacity and frames are real (it keeps no files, so it gets no
/// directory). A launch succeeds at once and the instance is up after a
/// random delay; STOP makes it exit (the original panicked).
pub(crate) struct Simulated {
    delay_min: Duration,
    delay_max: Duration,
    rng: u64,
    running: bool,
}

impl Simulated {
    pub(crate) fn new(delay_min: Duration, delay_max: Duration, seed: u64) -> Simulated {
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
            cx.arm(Timer::SimBoot, d);
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
        cx.outcome(Outcome::recovered(stopped));
    }

    fn input(&mut self, cx: &mut Cx, input: Input) {
        if input == Input::Timer(Timer::SimBoot) {
            self.running = true;
            cx.outcome(Outcome::Running);
        }
    }

    /// Nothing to plug: the manager records the change, as for a stopped
    /// VM, so the demo and tests without qemu can use volumes.
    fn attach(&mut self, cx: &mut Cx, _uuid: &str) {
        cx.outcome(Outcome::Volume(Ok(())));
    }

    fn detach(&mut self, cx: &mut Cx, _uuid: &str) {
        cx.outcome(Outcome::Volume(Ok(())));
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

    /// A simulated instance has no files: no directory is made for it.
    fn keeps_files(&self) -> bool {
        false
    }
}
