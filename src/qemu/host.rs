//! The few fast, local operations the qemu driver performs inline (design:
//! "fast local operations may run inline"): stat, writing the two small
//! config-drive files, removing the staging directory, reading the pidfile
//! and `/proc`. Behind a trait so that the driver's step machine is tested
//! without a file system or qemu.

use std::io;
use std::path::Path;

use crate::sys::{fs as sysfs, procfs};

/// Inline operations of the driver.
pub trait Host {
    /// `stat(path)` succeeds.
    fn stat(&self, path: &Path) -> io::Result<()>;
    /// Writes `<staging>/openstack/latest/{meta_data.json,user_data}`
    /// (0644, directories 0755).
    fn write_config_drive(
        &self,
        staging: &Path,
        user_data: &[u8],
        meta_data: &[u8],
    ) -> io::Result<()>;
    /// Removes a directory tree (errors are logged by the caller).
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Removes a file; a missing file is fine.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// The PID in a pidfile.
    fn read_pid(&self, path: &Path) -> Option<u32>;
    /// `/proc/PID/cmdline`, split.
    fn cmdline(&self, pid: u32) -> Option<Vec<String>>;
    /// PSS of `pid` in kB.
    fn pss_kb(&self, pid: u32) -> Option<u64>;
    /// utime + stime of `pid` in clock ticks.
    fn cpu_ticks(&self, pid: u32) -> Option<u64>;
    /// Clock ticks per second.
    fn ticks_per_sec(&self) -> u64;
    /// Apparent size of a file.
    fn file_size(&self, path: &Path) -> Option<u64>;
    /// `/dev/kvm` opens read-write (for `-qemu-virtualisation auto`).
    fn kvm_usable(&self) -> bool;
}

/// The real thing.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealHost;

impl Host for RealHost {
    fn stat(&self, path: &Path) -> io::Result<()> {
        std::fs::metadata(path).map(|_| ())
    }

    fn write_config_drive(
        &self,
        staging: &Path,
        user_data: &[u8],
        meta_data: &[u8],
    ) -> io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = staging.join("openstack/latest");
        sysfs::mkdir_p(&dir, 0o755)?;
        for (name, data) in [("meta_data.json", meta_data), ("user_data", user_data)] {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(dir.join(name))?;
            f.write_all(data)?;
        }
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        match sysfs::remove_dir_all_same_fs(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            r => r,
        }
    }

    fn read_pid(&self, path: &Path) -> Option<u32> {
        let text = std::fs::read_to_string(path).ok()?;
        text.trim().parse().ok().filter(|&p| p > 1)
    }

    fn cmdline(&self, pid: u32) -> Option<Vec<String>> {
        procfs::cmdline(pid)
    }

    fn pss_kb(&self, pid: u32) -> Option<u64> {
        procfs::pss_kb(pid)
    }

    fn cpu_ticks(&self, pid: u32) -> Option<u64> {
        procfs::cpu_ticks(pid)
    }

    fn ticks_per_sec(&self) -> u64 {
        procfs::clock_ticks_per_sec()
    }

    fn file_size(&self, path: &Path) -> Option<u64> {
        std::fs::metadata(path).ok().map(|m| m.len())
    }

    fn kvm_usable(&self) -> bool {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok()
    }
}
