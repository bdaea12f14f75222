//! Persistent taps through `/dev/net/tun` (taps are not made by rtnetlink):
//! `TUNSETIFF` creates the tap in the network namespace of the calling
//! thread, `TUNSETPERSIST` keeps it after our descriptor is closed, so qemu
//! can attach to it later by name.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;

use super::cvt;

const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;
/// An Ethernet (layer 2) device.
const IFF_TAP: libc::c_short = 0x0002;
/// No packet-information header in front of each frame.
const IFF_NO_PI: libc::c_short = 0x1000;
/// Fail with EBUSY if the name exists already, instead of attaching to it.
const IFF_TUN_EXCL: libc::c_short = -0x8000; // 0x8000 as a c_short

/// The flags `ip tuntap add mode tap` (iproute2 6.1) creates a tap with:
/// the same as ours, so a tap looks the same whichever made it. qemu
/// re-sets the per-queue flags (vnet header) when it attaches.
pub(crate) const CREATE_FLAGS: libc::c_short = IFF_TAP | IFF_NO_PI | IFF_TUN_EXCL;

/// `struct ifreq` as TUNSETIFF reads it: the name and the flags (the rest
/// of the kernel's 40-byte union is padding here).
#[repr(C)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// A link name as the kernel accepts it in a fixed `IFNAMSIZ` buffer:
/// 1–15 bytes, no NUL, no `/`, no whitespace, not `.` or `..`.
pub(crate) fn check_ifname(name: &str) -> io::Result<()> {
    let ok = !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == 0 || b == b'/' || b == b':' || b.is_ascii_whitespace());
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid link name {name:?}"),
        ))
    }
}

fn tunsetiff(name: &str, flags: libc::c_short) -> io::Result<File> {
    check_ifname(name)?;
    // std opens with O_CLOEXEC.
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    let mut req = IfReqFlags {
        name: [0; libc::IFNAMSIZ],
        flags,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes one struct ifreq (40 bytes); `req`
    // is a live, writable value of that size.
    cvt(unsafe { libc::ioctl(f.as_raw_fd(), TUNSETIFF as _, std::ptr::addr_of_mut!(req)) })?;
    Ok(f)
}

/// Creates the persistent tap `name` (EBUSY if a link of that name exists).
pub(crate) fn create_persistent_tap(name: &str) -> io::Result<()> {
    let f = tunsetiff(name, CREATE_FLAGS)?;
    // SAFETY: TUNSETPERSIST takes its argument by value; no memory is passed.
    cvt(unsafe { libc::ioctl(f.as_raw_fd(), TUNSETPERSIST as _, 1 as libc::c_ulong) })?;
    Ok(())
}

/// Attaches to the existing tap `name` (as qemu does) and returns the queue's
/// descriptor: frames written to it leave through the tap, frames sent to
/// the tap are read from it. For tests that play the guest.
pub fn attach_tap(name: &str) -> io::Result<File> {
    tunsetiff(name, IFF_TAP | IFF_NO_PI)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_are_checked_before_they_reach_a_fixed_buffer() {
        for ok in ["svn_x", "a", "abcdefghijklmno"] {
            assert!(check_ifname(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "abcdefghijklmnop",
            "a/b",
            "a b",
            "a\0b",
            ".",
            "..",
            "a:b",
        ] {
            assert!(check_ifname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_flags_are_iproute2s() {
        assert_eq!(CREATE_FLAGS as u16, 0x0002 | 0x1000 | 0x8000);
        assert_eq!(std::mem::size_of::<IfReqFlags>(), 40);
    }
}
