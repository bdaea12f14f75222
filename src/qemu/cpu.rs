//! The CPU figure of a VM's statistics.

use std::time::{Duration, Instant};

/// Shortest CPU sampling window; closer samples reuse the last figure.
pub(super) const CPU_MIN_WINDOW: Duration = Duration::from_secs(1);

/// CPU use over a sampling window, in percent of one CPU, divided by the
/// vCPUs when there are several (so a VM that keeps all its vCPUs busy
/// reports 100).
#[derive(Debug, Default, Clone)]
pub(crate) struct CpuMeter {
    base: Option<(u64, Instant)>,
    last: i64,
}

impl CpuMeter {
    /// Forget the baseline (the VM was (re)connected): the next sample is -1.
    pub(crate) fn reset(&mut self) {
        self.base = None;
        self.last = -1;
    }

    /// A sample of `ticks` (utime + stime) at `now`.
    pub(crate) fn sample(
        &mut self,
        ticks: u64,
        now: Instant,
        ticks_per_sec: u64,
        cpus: i64,
    ) -> i64 {
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

#[cfg(test)]
mod tests {
    use super::*;

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
