//! The host reads the qemu driver performs inline: `stat` of the backing
//! image and of a RESTART's files, the PID in the pidfile, `/proc/PID`
//! (cmdline, PSS, CPU ticks), the overlay's size and whether `/dev/kvm`
//! and `/dev/vhost-net` open. They are fast local reads whose answers the step machine needs
//! at once, to decide its next step or to fill a STATS, so they stay
//! synchronous calls instead of file effects. Everything the driver
//! writes or removes (the config-drive files, the staging tree, a stale
//! pidfile) goes through file effects (`Cx::file`) instead. Behind a trait
//! so that the step machine is tested without a file system or qemu.

use std::io;
use std::path::Path;

use crate::sys::procfs;

/// The driver's inline reads of the host.
pub trait Host {
    /// `stat(path)` succeeds.
    fn stat(&self, path: &Path) -> io::Result<()>;
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
    /// `/dev/vhost-net` opens read-write (a VM's NIC gets `vhost=on`).
    fn vhost_net_usable(&self) -> bool;
}

/// The real thing.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealHost;

impl Host for RealHost {
    fn stat(&self, path: &Path) -> io::Result<()> {
        std::fs::metadata(path).map(|_| ())
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
        opens_read_write("/dev/kvm")
    }

    fn vhost_net_usable(&self) -> bool {
        // Opening it also loads the module where only its device node
        // exists, as qemu's own open would.
        opens_read_write("/dev/vhost-net")
    }
}

fn opens_read_write(path: &str) -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .is_ok()
}
