//! The character device of a macvtap, for qemu to open its queues on.
//!
//! The kernel names a macvtap's device `tap<ifindex>`, and devtmpfs keeps one
//! `/dev/tap<N>` per name for the whole machine. Interface indexes repeat
//! across network namespaces, so `/dev/tap<N>` may belong to another
//! namespace's macvtap, or be missing until udev has caught up. We therefore
//! trust `/dev/tap<N>` only when it is a character device whose device
//! number is the one sysfs gives for our macvtap
//! (`/sys/class/net/<name>/macvtap/tap<N>/dev`); otherwise we make a private
//! node (mode 0600) with that number at a path the caller chooses (the
//! instance's directory). No waiting for udev, no other namespace's device.
//!
//! sysfs shows the links of the network namespace it was mounted in, not
//! the caller's: a launcher in a private network namespace needs a sysfs
//! mounted there ([`Roots`] says where to read).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::sys::devnode;

/// A device number: (major, minor).
pub type DevNum = (u32, u32);

/// Where sysfs's network class and the device directory are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// `/sys/class/net`.
    pub sysfs_net: PathBuf,
    /// `/dev`.
    pub dev: PathBuf,
}

impl Default for Roots {
    fn default() -> Roots {
        Roots {
            sysfs_net: "/sys/class/net".into(),
            dev: "/dev".into(),
        }
    }
}

/// Why no device could be found or made.
#[derive(Debug)]
pub enum TapDevError {
    /// A sysfs file could not be read (no such macvtap, or not a macvtap).
    Sysfs { path: PathBuf, err: io::Error },
    /// A sysfs file did not hold what it should.
    Parse { path: PathBuf, text: String },
    /// The private node could not be made.
    Node { path: PathBuf, err: io::Error },
}

impl fmt::Display for TapDevError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TapDevError::Sysfs { path, err } => write!(f, "cannot read {}: {err}", path.display()),
            TapDevError::Parse { path, text } => {
                write!(f, "unexpected content {text:?} in {}", path.display())
            }
            TapDevError::Node { path, err } => {
                write!(f, "cannot make device node {}: {err}", path.display())
            }
        }
    }
}

impl std::error::Error for TapDevError {}

/// sysfs's `ifindex` file.
pub fn parse_ifindex(text: &str) -> Option<u32> {
    text.trim().parse().ok().filter(|&i| i != 0)
}

/// sysfs's `dev` file: `MAJOR:MINOR`.
pub fn parse_devnum(text: &str) -> Option<DevNum> {
    let (maj, min) = text.trim().split_once(':')?;
    Some((maj.parse().ok()?, min.parse().ok()?))
}

/// Which node qemu should open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// `/dev/tap<N>`: a character device with our device number.
    Shared,
    /// The private node exists already with our device number.
    ReusePrivate,
    /// Make the private node (replacing whatever is at its path).
    MakePrivate,
}

/// The choice, from the device number sysfs gives (`want`) and what the
/// shared and private paths hold (`Some(number)` for a character device,
/// `None` for anything else or nothing).
pub fn decide(want: DevNum, shared: Option<DevNum>, private: Option<DevNum>) -> Decision {
    if shared == Some(want) {
        Decision::Shared
    } else if private == Some(want) {
        Decision::ReusePrivate
    } else {
        Decision::MakePrivate
    }
}

fn read(path: PathBuf) -> Result<(PathBuf, String), TapDevError> {
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok((path, t)),
        Err(err) => Err(TapDevError::Sysfs { path, err }),
    }
}

/// The character device node of the macvtap `name`: `/dev/tap<N>` when it
/// is ours, else `private` (made, or re-made, as needed).
pub fn macvtap_device(roots: &Roots, name: &str, private: &Path) -> Result<PathBuf, TapDevError> {
    let link = roots.sysfs_net.join(name);
    let (path, text) = read(link.join("ifindex"))?;
    let index = parse_ifindex(&text).ok_or(TapDevError::Parse { path, text })?;
    let (path, text) = read(link.join("macvtap").join(format!("tap{index}")).join("dev"))?;
    let want = parse_devnum(&text).ok_or(TapDevError::Parse { path, text })?;
    let shared = roots.dev.join(format!("tap{index}"));
    let char_dev = |p: &Path| devnode::char_device(p).ok().flatten();
    match decide(want, char_dev(&shared), char_dev(private)) {
        Decision::Shared => Ok(shared),
        Decision::ReusePrivate => Ok(private.to_path_buf()),
        Decision::MakePrivate => {
            let node_err = |err| TapDevError::Node {
                path: private.to_path_buf(),
                err,
            };
            match std::fs::remove_file(private) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(node_err(e)),
                _ => {}
            }
            devnode::make_char_device(private, want).map_err(node_err)?;
            Ok(private.to_path_buf())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysfs_files_are_parsed_strictly() {
        assert_eq!(parse_ifindex("7\n"), Some(7));
        assert_eq!(parse_ifindex("0\n"), None);
        assert_eq!(parse_ifindex("x"), None);
        assert_eq!(parse_devnum("242:3\n"), Some((242, 3)));
        for bad in ["", "242", "242:", ":3", "a:b", "1:2:3"] {
            assert_eq!(parse_devnum(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_shared_node_is_used_only_when_it_is_our_device() {
        let want = (242, 3);
        assert_eq!(decide(want, Some(want), None), Decision::Shared);
        // Another namespace's macvtap with the same index: another minor.
        assert_eq!(decide(want, Some((242, 9)), None), Decision::MakePrivate);
        // Not there yet (udev), or not a character device.
        assert_eq!(decide(want, None, None), Decision::MakePrivate);
        assert_eq!(decide(want, None, Some(want)), Decision::ReusePrivate);
        // A stale private node from an earlier macvtap is replaced.
        assert_eq!(decide(want, None, Some((242, 1))), Decision::MakePrivate);
    }

    /// A fake sysfs in a temporary directory: `name` with index `index`
    /// whose queue device is `dev`.
    fn fake(tmp: &Path, name: &str, index: u32, dev: &str) -> Roots {
        let link = tmp.join("sys").join(name);
        let q = link.join("macvtap").join(format!("tap{index}"));
        std::fs::create_dir_all(&q).unwrap();
        std::fs::write(link.join("ifindex"), format!("{index}\n")).unwrap();
        std::fs::write(q.join("dev"), format!("{dev}\n")).unwrap();
        std::fs::create_dir_all(tmp.join("dev")).unwrap();
        Roots {
            sysfs_net: tmp.join("sys"),
            dev: tmp.join("dev"),
        }
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ciao-tapdev-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn missing_sysfs_entries_are_errors_naming_the_file() {
        let tmp = tmpdir("missing");
        let roots = fake(&tmp, "svc_a", 5, "garbage");
        let e = macvtap_device(&roots, "svc_b", &tmp.join("node")).unwrap_err();
        assert!(e.to_string().contains("svc_b/ifindex"), "{e}");
        let e = macvtap_device(&roots, "svc_a", &tmp.join("node")).unwrap_err();
        assert!(matches!(e, TapDevError::Parse { .. }), "{e}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn a_private_node_is_made_when_the_shared_one_is_not_ours() {
        if !crate::sys::devnode::can_mknod() {
            eprintln!("SKIPPED: a_private_node_is_made_when_the_shared_one_is_not_ours: not root");
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let tmp = tmpdir("mknod");
        // /dev/null's numbers (1:3) stand for the macvtap's queue device.
        let roots = fake(&tmp, "svc_x", 6, "1:3");
        let private = tmp.join("macvtap");
        // No /dev/tap6: a private node.
        assert_eq!(macvtap_device(&roots, "svc_x", &private).unwrap(), private);
        assert_eq!(devnode::char_device(&private).unwrap(), Some((1, 3)));
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // Asked again: the node is reused.
        assert_eq!(macvtap_device(&roots, "svc_x", &private).unwrap(), private);
        // /dev/tap6 of another device (1:5, /dev/zero): still private.
        devnode::make_char_device(&roots.dev.join("tap6"), (1, 5)).unwrap();
        assert_eq!(macvtap_device(&roots, "svc_x", &private).unwrap(), private);
        // A stale private node (another number) is replaced.
        std::fs::remove_file(&private).unwrap();
        devnode::make_char_device(&private, (1, 5)).unwrap();
        assert_eq!(macvtap_device(&roots, "svc_x", &private).unwrap(), private);
        assert_eq!(devnode::char_device(&private).unwrap(), Some((1, 3)));
        // /dev/tap6 being ours: it is used.
        std::fs::remove_file(roots.dev.join("tap6")).unwrap();
        devnode::make_char_device(&roots.dev.join("tap6"), (1, 3)).unwrap();
        assert_eq!(
            macvtap_device(&roots, "svc_x", &private).unwrap(),
            roots.dev.join("tap6")
        );
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
