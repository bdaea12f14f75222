//! How a VM reaches its ceph volumes (pure): qemu's own librbd driver,
//! never a kernel mapping (`docs/storage.md`).
//!
//! Each volume is one raw `rbd:` drive plus one `virtio-blk-pci` device on
//! a PCI slot of its own, in the order of the instance's volume list. The
//! names are chosen so that a later hot attach or detach can use them
//! unchanged:
//!
//! - the drive id ([`node_name`]) is at most 31 characters, the limit of a
//!   block node name (`blockdev-add` refuses the original's 42-character
//!   `drive_<uuid>`);
//! - the device id ([`device_id`]) is `device_<uuid>`, what
//!   `DEVICE_DELETED` names;
//! - volumes live in a slot range of their own ([`FIRST_SLOT`] to
//!   [`LAST_SLOT`]) on the root bus, above every slot qemu picks for the
//!   devices placed automatically (root disk, config drive, NICs), so that
//!   a hot-plugged volume can take any free slot of that range and every
//!   volume can be hot-unplugged.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;
use std::time::Duration;

use super::cmdline::opt_escape;
use crate::payloads::VolumeConfig;

/// The RBD pool of every volume (the image name is the volume id).
pub(crate) const POOL: &str = "rbd";
/// The first PCI slot of volumes on `pci.0`.
pub(crate) const FIRST_SLOT: u8 = 0x08;
/// The last PCI slot of volumes (slot 31 is the root bus's last).
pub(crate) const LAST_SLOT: u8 = 0x1f;
/// How many volumes a VM can have.
pub(crate) const MAX_VOLUMES: usize = (LAST_SLOT - FIRST_SLOT + 1) as usize;
/// Longest block node name qemu accepts.
const MAX_NODE_NAME: usize = 31;

/// How qemu's librbd reaches the cluster.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ceph<'a> {
    /// cephx client id (`""`: librbd's default, `admin`).
    pub id: &'a str,
    /// The ceph configuration (`None`: librbd's default file).
    pub conf: Option<&'a Path>,
    /// How long librbd waits for the monitors (connect and each monitor
    /// command): an unreachable cluster fails qemu's start within it,
    /// where librbd's default would wait 300 s.
    pub timeout: Duration,
}

/// The ceph configuration a hot attach's `blockdev-add` reads: the
/// operator's (`operator`, as read from its file) with a `[client]`
/// section appended that bounds librbd's waits for the monitors.
///
/// `blockdev-add` of qemu's rbd driver takes no librados options (the
/// `rbd:` file name of a boot-time drive does), so the timeouts must come
/// from a configuration file, or an unreachable cluster would hold qemu's
/// monitor for librbd's default 300 s. A section that appears twice is
/// merged by ceph's parser, the later value winning, so the appended
/// section overrides only the two timeouts.
pub(crate) fn hotplug_conf(operator: &str, timeout: Duration) -> String {
    let secs = timeout.as_secs().max(1);
    let mut s = String::with_capacity(operator.len() + 160);
    s.push_str(operator);
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
    s.push_str("\n# Added by ciao-launcher for hot-plugged volumes (--ceph-timeout).\n");
    s.push_str("[client]\n");
    s.push_str(&format!(
        "client_mount_timeout = {secs}\nrados_mon_op_timeout = {secs}\n"
    ));
    s
}

/// 64-bit FNV-1a: short, stable, good enough to tell volume ids apart.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The drive's id and block node name: `v`, the first 14 hex digits of
/// the id, and a hash of the whole id (31 characters at most, letters and
/// digits only; two ids that differ anywhere get different names).
pub(crate) fn node_name(uuid: &str) -> String {
    let head: String = uuid
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(14)
        .collect::<String>()
        .to_ascii_lowercase();
    let n = format!("v{head}{:016x}", fnv1a(uuid));
    debug_assert!(n.len() <= MAX_NODE_NAME);
    n
}

/// The device's id: `device_<uuid>` (as the original named it).
pub(crate) fn device_id(uuid: &str) -> String {
    format!("device_{uuid}")
}

/// The PCI slot of the `i`-th volume of the list at boot.
pub(crate) fn slot(i: usize) -> Option<u8> {
    (i < MAX_VOLUMES).then(|| FIRST_SLOT + i as u8)
}

/// Escapes a value of an `rbd:` filename: `\` and `:` get a backslash
/// (qemu's rbd driver splits at unescaped `:`).
fn rbd_escape(out: &mut Vec<u8>, v: &[u8]) {
    for &b in v {
        if b == b'\\' || b == b':' {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// `rbd:rbd/<uuid>[:id=<id>][:conf=<path>]:client_mount_timeout=N:rados_mon_op_timeout=N`.
///
/// The timeouts bound how long librbd waits for the monitors: with none
/// of them a dead cluster keeps qemu's start (and so the instance) busy
/// for 300 s. The OSD operation timeout is left alone on purpose: it would
/// also apply to the running guest's I/O, turning a slow OSD into I/O
/// errors inside the guest; an OSD that hangs at start is bounded by the
/// launch deadline instead.
pub(crate) fn rbd_filename(uuid: &str, ceph: &Ceph) -> OsString {
    let mut f = Vec::new();
    f.extend_from_slice(b"rbd:");
    rbd_escape(&mut f, format!("{POOL}/{uuid}").as_bytes());
    if !ceph.id.is_empty() {
        f.extend_from_slice(b":id=");
        rbd_escape(&mut f, ceph.id.as_bytes());
    }
    if let Some(c) = ceph.conf {
        f.extend_from_slice(b":conf=");
        rbd_escape(&mut f, c.as_os_str().as_bytes());
    }
    let secs = ceph.timeout.as_secs().max(1);
    f.extend_from_slice(
        format!(":client_mount_timeout={secs}:rados_mon_op_timeout={secs}").as_bytes(),
    );
    OsString::from_vec(f)
}

/// `-drive` and `-device` of one volume on `slot`; `boot`: the VM boots
/// from it (first in the firmware's boot order).
pub(crate) fn volume_args(v: &VolumeConfig, slot: u8, ceph: &Ceph, boot: bool) -> Vec<OsString> {
    let node = node_name(&v.uuid);
    let mut drive = OsString::from("file=");
    drive.push(opt_escape(&rbd_filename(&v.uuid, ceph)));
    drive.push(format!(",if=none,id={node},format=raw"));
    let mut device = format!(
        "virtio-blk-pci,scsi=off,bus=pci.0,addr=0x{slot:x},id={},drive={node}",
        device_id(&v.uuid)
    );
    if boot {
        device.push_str(",bootindex=0");
    }
    vec!["-drive".into(), drive, "-device".into(), device.into()]
}

/// Every volume's arguments, in list order; `boot_from_volume`: the VM
/// has no root disk and boots from its first bootable volume. Err when
/// there are more volumes than slots.
pub(crate) fn all_volume_args(
    volumes: &[VolumeConfig],
    ceph: &Ceph,
    boot_from_volume: bool,
) -> Result<Vec<OsString>, String> {
    let boot = boot_from_volume
        .then(|| volumes.iter().position(|v| v.bootable))
        .flatten();
    let mut a = Vec::new();
    for (i, v) in volumes.iter().enumerate() {
        let Some(s) = slot(i) else {
            return Err(format!(
                "{} volumes: a VM can have at most {MAX_VOLUMES}",
                volumes.len()
            ));
        };
        a.extend(volume_args(v, s, ceph, boot == Some(i)));
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[OsString]) -> Vec<String> {
        v.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    const U: &str = "69e84267-ed01-4738-b15f-b47de06b62e7";

    #[test]
    fn names_fit_qemu() {
        let n = node_name(U);
        assert_eq!(n.len(), 31, "{n}");
        assert!(n.starts_with("v69e84267ed0147"), "{n}");
        assert!(n.chars().all(|c| c.is_ascii_alphanumeric()));
        // Same hex digits, other grouping: another name.
        assert_ne!(node_name("ab-cd"), node_name("abc-d"));
        assert_eq!(node_name("ab"), format!("vab{:016x}", fnv1a("ab")));
        assert_eq!(device_id(U), format!("device_{U}"));
    }

    #[test]
    fn slots() {
        assert_eq!(slot(0), Some(8));
        assert_eq!(slot(23), Some(0x1f));
        assert_eq!(slot(24), None);
    }

    #[test]
    fn filename() {
        let c = Ceph {
            id: "ciao",
            conf: Some(Path::new("/t/c:1\\x/ceph.conf")),
            timeout: Duration::from_secs(7),
        };
        assert_eq!(
            rbd_filename(U, &c).to_string_lossy(),
            format!("rbd:rbd/{U}:id=ciao:conf=/t/c\\:1\\\\x/ceph.conf:client_mount_timeout=7:rados_mon_op_timeout=7")
        );
        let d = Ceph {
            id: "",
            conf: None,
            timeout: Duration::ZERO,
        };
        assert_eq!(
            rbd_filename("ab", &d).to_string_lossy(),
            "rbd:rbd/ab:client_mount_timeout=1:rados_mon_op_timeout=1"
        );
    }

    #[test]
    fn args_in_order_with_boot_index() {
        let c = Ceph {
            id: "ciao",
            conf: Some(Path::new("/a,b/ceph.conf")),
            timeout: Duration::from_secs(10),
        };
        let vols = [
            VolumeConfig {
                uuid: "aa".into(),
                bootable: false,
            },
            VolumeConfig {
                uuid: "bb".into(),
                bootable: true,
            },
        ];
        let a = s(&all_volume_args(&vols, &c, true).unwrap());
        let (na, nb) = (node_name("aa"), node_name("bb"));
        assert_eq!(
            a,
            vec![
                "-drive".to_string(),
                format!("file=rbd:rbd/aa:id=ciao:conf=/a,,b/ceph.conf:client_mount_timeout=10:rados_mon_op_timeout=10,if=none,id={na},format=raw"),
                "-device".into(),
                format!("virtio-blk-pci,scsi=off,bus=pci.0,addr=0x8,id=device_aa,drive={na}"),
                "-drive".into(),
                format!("file=rbd:rbd/bb:id=ciao:conf=/a,,b/ceph.conf:client_mount_timeout=10:rados_mon_op_timeout=10,if=none,id={nb},format=raw"),
                "-device".into(),
                format!("virtio-blk-pci,scsi=off,bus=pci.0,addr=0x9,id=device_bb,drive={nb},bootindex=0"),
            ]
        );
        // With a root disk the boot flag changes nothing.
        let a = s(&all_volume_args(&vols, &c, false).unwrap());
        assert!(!a.join(" ").contains("bootindex"));
        let many = vec![VolumeConfig::default(); MAX_VOLUMES + 1];
        assert!(all_volume_args(&many, &c, false).is_err());
    }

    #[test]
    fn hotplug_conf_appends_the_timeouts() {
        let c = hotplug_conf("[global]\nmon host = 127.0.0.1:1", Duration::from_secs(7));
        assert!(c.starts_with("[global]\nmon host = 127.0.0.1:1\n\n"));
        assert!(c.ends_with("[client]\nclient_mount_timeout = 7\nrados_mon_op_timeout = 7\n"));
        assert!(hotplug_conf("", Duration::ZERO).contains("client_mount_timeout = 1\n"));
    }
}
