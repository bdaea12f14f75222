//! qemu virtual machines (`spec/launcher.md` §4; design decisions 8, 9, 11,
//! 15): the driver that builds an instance's disk and config drive, launches
//! a daemonised qemu, adopts it through its pidfile and a pidfd, controls it
//! over QMP, stops it gracefully and re-adopts it after a launcher restart.
//!
//! - [`qmp`]: the sans-IO QMP session (greeting, capabilities, commands
//!   with ids and deadlines, events).
//! - [`cmdline`]: the argument vectors of qemu, `qemu-img`, `xorriso` and
//!   the CPU probe (pure).
//! - [`vm`]: one VM's step machine, a [`crate::launcher::driver::Driver`].
//! - [`host`]: the few inline file and `/proc` operations, behind a trait.

pub mod cmdline;
pub mod host;
pub mod qmp;
pub mod vm;

pub use host::{Host, RealHost};
pub use vm::{CpuMeter, QemuDriver, Settings, Shared, Virtualisation};
