//! Capacity accounting: READY or FULL, and START admission
//! (the original's rules), as a pure calculation.
//!
//! Differences from the original (docs/compatibility.md, launcher defect 19):
//! every admission is subtracted from the available figures at once, so a
//! burst of STARTs between two node samples cannot overcommit the node.

/// High and low water marks of the original, in MB.
pub(crate) const MEM_HWM: i64 = 1000;
pub(crate) const MEM_LWM: i64 = 512;
pub(crate) const DISK_HWM: i64 = 80_000;
pub(crate) const DISK_LWM: i64 = 40_000;

/// Resources one instance holds (from its START payload).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Resources {
    pub cpus: i64,
    pub mem_mb: i64,
    pub disk_mb: i64,
}

/// Limits switched on by the cluster configuration, and the file-descriptor
/// limit (`maxInstances = RLIMIT_NOFILE soft / 5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub mem_limit: bool,
    pub disk_limit: bool,
    pub max_instances: usize,
}

/// The accounting state.
#[derive(Debug, Clone, Default)]
pub(crate) struct Capacity {
    allocated: Resources,
    /// Memory and disk available for new instances, as of the last refresh
    /// minus what was admitted since.
    mem_available: i64,
    disk_available: i64,
}

/// Why a START was not admitted (always reported as `full_cn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    TooManyInstances,
    Disk,
    Memory,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::TooManyInstances => "the instance limit (open-file limit / 5) is reached",
            Refusal::Disk => "not enough disk space would remain",
            Refusal::Memory => "not enough memory would remain",
        })
    }
}

impl Capacity {
    /// Recomputes the available figures from a node sample.
    /// `mem_consumed`/`disk_consumed`: what the instances with known usage
    /// really use (memory capped at each instance's allocation).
    pub(crate) fn refresh(
        &mut self,
        node_mem_available: i64,
        node_disk_available: i64,
        mem_consumed: i64,
        disk_consumed: i64,
    ) {
        // Saturating: no figure can wrap into its opposite (issue 14).
        self.mem_available = node_mem_available
            .saturating_add(mem_consumed)
            .saturating_sub(self.allocated.mem_mb);
        self.disk_available = node_disk_available
            .saturating_add(disk_consumed)
            .saturating_sub(self.allocated.disk_mb);
    }

    /// READY (true) or FULL (false) for `instances` instances in the table.
    pub(crate) fn ready(&self, limits: &Limits, instances: usize) -> bool {
        !(instances >= limits.max_instances
            || (limits.disk_limit && self.disk_available < DISK_HWM)
            || (limits.mem_limit && self.mem_available < MEM_HWM))
    }

    /// Admits a new instance or says why not; on success its resources are
    /// allocated and subtracted from the available figures.
    pub(crate) fn admit(
        &mut self,
        limits: &Limits,
        instances: usize,
        r: Resources,
    ) -> Result<(), Refusal> {
        if instances >= limits.max_instances {
            return Err(Refusal::TooManyInstances);
        }
        // Checked: a negative request (refused earlier as invalid_data) or
        // one the arithmetic cannot hold is never admitted.
        let left = |available: i64, wanted: i64, low: i64| {
            wanted >= 0 && available.checked_sub(wanted).is_some_and(|l| l >= low)
        };
        if limits.disk_limit && !left(self.disk_available, r.disk_mb, DISK_LWM) {
            return Err(Refusal::Disk);
        }
        if limits.mem_limit && !left(self.mem_available, r.mem_mb, MEM_LWM) {
            return Err(Refusal::Memory);
        }
        self.add(r);
        self.mem_available = self.mem_available.saturating_sub(r.mem_mb);
        self.disk_available = self.disk_available.saturating_sub(r.disk_mb);
        Ok(())
    }

    /// Accounts an instance without admission (recovered at start-up).
    pub(crate) fn add(&mut self, r: Resources) {
        self.allocated.cpus = self.allocated.cpus.saturating_add(r.cpus);
        self.allocated.mem_mb = self.allocated.mem_mb.saturating_add(r.mem_mb);
        self.allocated.disk_mb = self.allocated.disk_mb.saturating_add(r.disk_mb);
    }

    /// Releases a deleted instance's resources (never below zero).
    pub(crate) fn release(&mut self, r: Resources) {
        self.allocated.cpus = self.allocated.cpus.saturating_sub(r.cpus).max(0);
        self.allocated.mem_mb = self.allocated.mem_mb.saturating_sub(r.mem_mb).max(0);
        self.allocated.disk_mb = self.allocated.disk_mb.saturating_sub(r.disk_mb).max(0);
        self.mem_available = self.mem_available.saturating_add(r.mem_mb);
        self.disk_available = self.disk_available.saturating_add(r.disk_mb);
    }

    /// The sums of all allocations.
    #[cfg(test)]
    pub(crate) fn allocated(&self) -> Resources {
        self.allocated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(mem: bool, disk: bool, max: usize) -> Limits {
        Limits {
            mem_limit: mem,
            disk_limit: disk,
            max_instances: max,
        }
    }

    /// A negative request is never admitted, and one that would overflow
    /// the arithmetic is refused instead of wrapping (issue 14).
    #[test]
    fn negative_and_huge_requests_are_refused() {
        let mut c = Capacity::default();
        c.refresh(24_000, 0, 0, 0);
        let l = limits(true, false, 100);
        let mem = |mem_mb| Resources {
            cpus: 1,
            mem_mb,
            disk_mb: 0,
        };
        assert_eq!(c.admit(&l, 0, mem(-100_000_000)), Err(Refusal::Memory));
        assert_eq!(c.admit(&l, 0, mem(50_000_000)), Err(Refusal::Memory));
        assert_eq!(c.admit(&l, 0, mem(i64::MIN)), Err(Refusal::Memory));
        c.refresh(i64::MIN, 0, 0, 0);
        assert_eq!(c.admit(&l, 0, mem(i64::MAX)), Err(Refusal::Memory));
        assert!(!c.ready(&l, 0));
        c.add(mem(i64::MAX));
        c.add(mem(i64::MAX));
        assert_eq!(c.allocated().mem_mb, i64::MAX);
    }

    #[test]
    fn limits_off_is_ready_until_instance_cap() {
        let c = Capacity::default();
        assert!(c.ready(&limits(false, false, 2), 1));
        assert!(!c.ready(&limits(false, false, 2), 2));
    }

    #[test]
    fn thresholds_follow_the_original() {
        let mut c = Capacity::default();
        c.refresh(999, 100_000, 0, 0);
        assert!(!c.ready(&limits(true, false, 100), 0));
        assert!(c.ready(&limits(false, true, 100), 0));
        c.refresh(2000, 79_999, 0, 0);
        assert!(c.ready(&limits(true, false, 100), 0));
        assert!(!c.ready(&limits(false, true, 100), 0));
    }

    #[test]
    fn admission_subtracts_at_once() {
        let mut c = Capacity::default();
        c.refresh(2000, 0, 0, 0);
        let l = limits(true, false, 100);
        let r = Resources {
            cpus: 1,
            mem_mb: 700,
            disk_mb: 0,
        };
        assert_eq!(c.admit(&l, 0, r), Ok(()));
        // 2000 - 700 = 1300; another 700 would leave 600 >= 512: admitted.
        assert_eq!(c.admit(&l, 1, r), Ok(()));
        // 600 - 700 < 512: refused (the original would admit it, defect 19).
        assert_eq!(c.admit(&l, 2, r), Err(Refusal::Memory));
        c.release(r);
        assert_eq!(c.allocated().mem_mb, 700);
        assert_eq!(c.admit(&l, 1, r), Ok(()));
    }

    #[test]
    fn consumed_memory_counts_back() {
        let mut c = Capacity::default();
        c.add(Resources {
            cpus: 1,
            mem_mb: 1000,
            disk_mb: 0,
        });
        // The instance really uses 400 MB, already missing from node figures.
        c.refresh(1200, 0, 400, 0);
        assert!(c.ready(&limits(true, false, 10), 1) == (1200 + 400 - 1000 >= MEM_HWM));
    }

    #[test]
    fn disk_admission_and_instance_cap() {
        let mut c = Capacity::default();
        c.refresh(0, 50_000, 0, 0);
        let l = limits(false, true, 1);
        assert_eq!(
            c.admit(&l, 1, Resources::default()),
            Err(Refusal::TooManyInstances)
        );
        let big = Resources {
            cpus: 1,
            mem_mb: 0,
            disk_mb: 20_000,
        };
        assert_eq!(c.admit(&l, 0, big), Err(Refusal::Disk));
    }
}
