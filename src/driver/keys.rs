//! The names of everything an instance owns in the shell: its timers, its
//! resources (children, watched processes, sockets, file operations) and
//! the node-wide jobs it may wait for.
//!
//! Timers and resources are different types, so a timer can never be
//! mistaken for a socket (they used to share one `u32` space). A driver
//! only ever receives inputs for its own instance, so the variants of one
//! driver never reach another. Every key carries the instance's
//! generation: an answer for a deleted instance, or for an instance
//! re-created under the same UUID, is recognised and dropped.

use std::fmt;
use std::rc::Rc;

/// One incarnation of an instance: its UUID and a generation number that
/// is new each time the UUID enters the instance table. The UUID is shared
/// (`Rc`): every effect and answer carries a key, and cloning one must not
/// allocate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceKey {
    pub id: Rc<str>,
    pub generation: u64,
}

impl InstanceKey {
    /// The key of the node itself: the launcher's own node-level work
    /// (removal of docker networks, the bridge forwarding rule) uses the
    /// same executors as the instances, under this key. No instance has
    /// it: ids are never empty and generations start at 1.
    pub fn node() -> InstanceKey {
        InstanceKey {
            id: Rc::from(""),
            generation: 0,
        }
    }

    /// True for [`InstanceKey::node`].
    pub fn is_node(&self) -> bool {
        self.generation == 0 && self.id.is_empty()
    }
}

impl fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_node() {
            return f.write_str("node");
        }
        f.write_str(&self.id)
    }
}

/// A timer or resource of one instance incarnation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key<T> {
    pub inst: InstanceKey,
    pub what: T,
}

/// An instance's timers. Each exists at most once per instance: arming it
/// again moves it, cancelling removes it, so a superseded timer never
/// fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// Simulation: the simulated boot is over.
    SimBoot,
    /// qemu: the current stop step (powerdown, quit, kill) ran out of time.
    VmStop,
    /// qemu: the QMP command in flight ran out of time.
    VmQmp,
    /// qemu: try to connect to QMP again.
    VmReconnect,
    /// qemu: the guest did not release a hot-unplugged volume in time.
    VmVolume,
    /// docker: take a statistics sample.
    CtrSample,
    /// docker: look for the container again after dockerd was unreachable.
    CtrPoll,
    /// docker: retry a removal.
    CtrRetry,
    /// docker: the deadline of Engine API call `n`.
    CtrCall(u32),
}

/// An instance's resources in the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Res {
    /// The instance directory (manager).
    Dir,
    /// The state file `instance.yaml` (manager).
    State,
    /// The instance's links (manager).
    Vnic,
    /// qemu: `qemu-img info` of the backing image.
    ImageInfo,
    /// qemu: `qemu-img create` of the overlay.
    ImageCreate,
    /// qemu: `xorriso` making the config drive.
    ConfigDrive,
    /// qemu: a file of the config drive's staging tree (`n`: which).
    ConfigFile(u8),
    /// qemu: the staging tree of the config drive.
    Staging,
    /// qemu: the pidfile.
    Pidfile,
    /// qemu: the foreground qemu that daemonises.
    Launch,
    /// qemu: the short-lived qemu of the CPU probe.
    CpuProbe,
    /// qemu: the VM process (watched through a pidfd).
    Process,
    /// qemu: the QMP socket.
    Qmp,
    /// docker: the file recording the container id.
    ContainerId,
    /// docker: Engine API call `n` (a Unix socket).
    Call(u32),
    /// docker: the sweep's look at the instance directory of left-over
    /// container `n` (is it still there?).
    Leftover(u32),
    /// node: step `n` of the bridge forwarding rule (an `iptables` child).
    Iptables(u8),
    /// docker: the `rbd` or `mount`/`umount` of a volume step.
    Volume,
    /// docker: a volume's mount point.
    VolumeDir,
    /// docker: the record of the devices the launcher mapped.
    VolumeRecord,
    /// docker: the mount table (`/proc/self/mountinfo`).
    Mounts,
}

/// A job done once for the whole node, however many instances need it.
/// One instance leads it; the others wait and are told when it is over
/// (or that they must lead it, when the leader went away).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Job {
    /// qemu: does `-cpu host` work with KVM here?
    CpuModel,
    /// docker: negotiate the Engine API version.
    DockerApi,
}
