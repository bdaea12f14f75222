//! What every qemu instance of a launcher shares: the settings taken from
//! the launcher's flags, the host operations, and the CPU model once the
//! probe has chosen it.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use log::{info, warn};

use super::cmdline::Accel;
use super::host::Host;

/// `-qemu-virtualisation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Virtualisation {
    /// `-enable-kvm`; fails where KVM is unusable.
    Kvm,
    /// KVM when `/dev/kvm` opens, else software.
    Auto,
    /// TCG emulation.
    Software,
}

/// Where a VM's serial console goes (`-with-ui`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Console {
    /// `<instance dir>/console.log` only.
    File,
    /// A TCP server on 127.0.0.1 (a port the kernel picks, logged once
    /// the VM runs), still logged to `console.log`.
    Tcp,
}

/// Settings of every qemu instance (from the launcher's flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `<data root>/images`.
    pub images_dir: PathBuf,
    pub virtualisation: Virtualisation,
    /// EFI firmware (probed or `--ovmf`).
    pub ovmf: Option<PathBuf>,
    /// Graceful stop: how long the guest gets after the ACPI power button.
    pub stop_timeout: Duration,
    /// Ceph client id for volume drives ("" when none): `-ceph_id`, else
    /// the cluster configuration's.
    pub ceph_id: String,
    /// The ceph configuration librbd reads (`None`: its default).
    pub ceph_conf: Option<PathBuf>,
    /// How long librbd may wait for the ceph monitors (10 s).
    pub ceph_timeout: Duration,
    /// Where serial consoles go.
    pub console: Console,
    /// The configuration a hot attach's `blockdev-add` names: the
    /// operator's plus librbd's timeouts (`None`: [`Self::ceph_conf`] as
    /// it is). See [`crate::qemu::volumes::hotplug_conf`].
    pub hotplug_conf: Option<PathBuf>,
    /// How long a guest gets to release a hot-unplugged volume (the
    /// `DEVICE_DELETED` event) before the detach fails (30 s).
    pub detach_timeout: Duration,
    /// Deadline of `qemu-img`, `xorriso` and the qemu launch (60 s).
    pub tool_deadline: Duration,
    /// Deadline of a QMP connect, handshake or reply (10 s).
    pub qmp_deadline: Duration,
    /// How long `quit` and SIGKILL each get before the next step (10 s).
    pub kill_deadline: Duration,
}

impl Settings {
    pub fn new(
        images_dir: PathBuf,
        virtualisation: Virtualisation,
        ovmf: Option<PathBuf>,
        stop_timeout: Duration,
    ) -> Settings {
        Settings {
            images_dir,
            virtualisation,
            ovmf,
            stop_timeout,
            ceph_id: String::new(),
            ceph_conf: None,
            ceph_timeout: Duration::from_secs(10),
            console: Console::File,
            hotplug_conf: None,
            detach_timeout: Duration::from_secs(30),
            tool_deadline: Duration::from_secs(60),
            qmp_deadline: Duration::from_secs(10),
            kill_deadline: Duration::from_secs(10),
        }
    }
}

/// The CPU model VMs use, once known. Finding it out is a node-wide job
/// ([`crate::driver::Job::CpuModel`]): one instance probes, the others wait
/// for it.
#[derive(Debug, Clone)]
pub(super) enum AccelState {
    Unknown,
    Known(Accel),
}

/// State shared by every qemu instance of a launcher: settings, the host
/// operations and the CPU model chosen by the probe.
pub struct Shared {
    pub settings: Settings,
    pub host: Box<dyn Host>,
    pub(super) accel: AccelState,
}

impl Shared {
    pub fn new(settings: Settings, host: Box<dyn Host>) -> Rc<RefCell<Shared>> {
        let accel = match settings.virtualisation {
            Virtualisation::Software => AccelState::Known(Accel::Software),
            Virtualisation::Auto if !host.kvm_usable() => {
                info!("qemu: /dev/kvm is not usable; VMs run under software emulation (-qemu-virtualisation auto)");
                AccelState::Known(Accel::Software)
            }
            _ => AccelState::Unknown,
        };
        if let AccelState::Known(a) = &accel {
            info!("qemu: VMs run with {}", a.describe());
            if *a == Accel::Software {
                warn!("qemu: software emulation is slow; use it for tests only");
            }
        }
        Rc::new(RefCell::new(Shared {
            settings,
            host,
            accel,
        }))
    }
}
