//! qemu virtual machines (`docs/qemu.md`): the driver that builds an
//! instance's disk and config drive, launches a daemonised qemu, adopts it
//! through its pidfile and a pidfd, controls it over QMP, stops it
//! gracefully and re-adopts it after a launcher restart.
//!
//! - [`qmp`]: the sans-IO QMP session (greeting, capabilities, commands
//!   with ids and deadlines, events).
//! - [`cmdline`]: the argument vectors of qemu, `qemu-img`, `xorriso` and
//!   the CPU probe (pure); [`network_args`] is public for the tests that
//!   run a real qemu on a tap.
//! - [`volumes`]: the ceph volumes' drives and devices (names, slots,
//!   the `rbd:` filename with its timeouts).
//! - [`settings`]: what every VM of the launcher shares (flags, host, the
//!   probed CPU model).
//! - [`vm`]: one VM's step machine, a [`crate::driver::Driver`].
//! - [`cpu`]: the CPU figure of the statistics.
//! - [`host`]: the few inline reads of files and `/proc`, behind a trait.
//! - [`volumes`]: the names a ceph volume has inside qemu.

mod cmdline;
mod cpu;
mod host;
mod qmp;
mod settings;
mod vm;
mod volumes;

pub use cmdline::network_args;
pub use host::RealHost;
pub use settings::{Console, Settings, Shared, Virtualisation};
pub use vm::QemuDriver;
pub(crate) use volumes::hotplug_conf;
