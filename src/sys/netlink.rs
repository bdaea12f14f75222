//! A NETLINK_ROUTE socket: the launcher's way to the kernel's link table
//! (no `ip` child per operation). This file only moves datagrams; the
//! messages are built and parsed by the pure code in `net::rtnl`.
//!
//! The socket is non-blocking; a reply is awaited with `poll(2)` up to a
//! deadline, so a kernel that never answers costs a bounded wait and an
//! error, never a hung loop. It lives in the network namespace of the thread
//! that opened it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Instant;

use super::cvt;

/// `NETLINK_CAP_ACK`: acknowledgements carry only the request's header,
/// not the whole request again.
const NETLINK_CAP_ACK: libc::c_int = 10;
/// `NETLINK_EXT_ACK`: errors carry the kernel's one-line reason
/// ("Unknown device type"), which makes our error messages clearer.
const NETLINK_EXT_ACK: libc::c_int = 11;

/// An rtnetlink socket bound to a kernel-assigned port.
#[derive(Debug)]
pub(crate) struct NetlinkSocket {
    fd: OwnedFd,
}

fn sockaddr_kernel() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value
    // (nl_pid 0 = the kernel, or "assign a port" for bind).
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    sa
}

impl NetlinkSocket {
    /// Opens and binds a NETLINK_ROUTE socket (close-on-exec, non-blocking,
    /// port chosen by the kernel). Extended acknowledgements are asked for
    /// but not required (old kernels lack them).
    pub(crate) fn open_route() -> io::Result<NetlinkSocket> {
        // SAFETY: socket(2) with constant arguments; the result is checked.
        let raw = cvt(unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                libc::NETLINK_ROUTE,
            )
        })?;
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sa = sockaddr_kernel();
        // SAFETY: `sa` is a live sockaddr_nl and the length is its size.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::addr_of!(sa).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })?;
        let sock = NetlinkSocket { fd };
        for opt in [NETLINK_CAP_ACK, NETLINK_EXT_ACK] {
            let _ = super::tcp::set(sock.fd.as_raw_fd(), libc::SOL_NETLINK, opt, 1);
        }
        Ok(sock)
    }

    /// Sends one request (one or more netlink messages) to the kernel. A
    /// netlink send to the kernel does not block for long: the kernel
    /// processes the request in the call, or refuses it (ENOBUFS).
    pub(crate) fn send(&self, msg: &[u8]) -> io::Result<()> {
        let sa = sockaddr_kernel();
        loop {
            // SAFETY: `msg` and `sa` are live for the call and the lengths
            // passed are theirs.
            let n = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    msg.as_ptr().cast(),
                    msg.len(),
                    0,
                    std::ptr::addr_of!(sa).cast(),
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if n >= 0 {
                return if n as usize == msg.len() {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "short netlink send",
                    ))
                };
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Receives one datagram, waiting until `deadline` at most
    /// (`TimedOut` then). The datagram's size is peeked first, so a large
    /// dump part is never truncated.
    pub(crate) fn recv(&self, deadline: Instant) -> io::Result<Vec<u8>> {
        loop {
            match self.recv_now()? {
                Some(d) => return Ok(d),
                None => self.wait_readable(deadline)?,
            }
        }
    }

    /// One datagram if one is queued (`None`: nothing yet).
    fn recv_now(&self) -> io::Result<Option<Vec<u8>>> {
        let fd = self.fd.as_raw_fd();
        // SAFETY: a zero-length peek: no buffer is written; MSG_TRUNC makes
        // the call return the datagram's real length.
        let len = unsafe {
            libc::recv(
                fd,
                std::ptr::null_mut(),
                0,
                libc::MSG_PEEK | libc::MSG_TRUNC | libc::MSG_DONTWAIT,
            )
        };
        if len < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let mut buf = vec![0u8; (len as usize).max(1)];
        // SAFETY: `buf` is live and writable for its whole length.
        let n = unsafe {
            libc::recv(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let n = n as usize;
        if n > buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "netlink datagram truncated",
            ));
        }
        buf.truncate(n);
        Ok(Some(buf))
    }

    fn wait_readable(&self, deadline: Instant) -> io::Result<()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no reply from the kernel (rtnetlink)",
            ));
        }
        let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd, count 1.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(())
    }
}

impl AsFd for NetlinkSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for NetlinkSocket {
    fn as_raw_fd(&self) -> libc::c_int {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_request_for_nothing_is_answered_by_an_error_within_the_deadline() {
        // An RTM_GETLINK for index 0x7fffffff (no such link) with ACK: read
        // only, works unprivileged, and does not look at any link.
        let mut req = vec![0u8; 32];
        req[0..4].copy_from_slice(&32u32.to_ne_bytes());
        req[4..6].copy_from_slice(&18u16.to_ne_bytes()); // RTM_GETLINK
        req[6..8].copy_from_slice(&5u16.to_ne_bytes()); // REQUEST|ACK
        req[8..12].copy_from_slice(&7u32.to_ne_bytes());
        req[20..24].copy_from_slice(&0x7fff_ffffu32.to_ne_bytes());
        let s = NetlinkSocket::open_route().unwrap();
        s.send(&req).unwrap();
        let reply = s.recv(Instant::now() + Duration::from_secs(2)).unwrap();
        assert!(reply.len() >= 20);
        assert_eq!(u16::from_ne_bytes([reply[4], reply[5]]), 2, "NLMSG_ERROR");
        let errno = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
        assert_eq!(errno, -libc::ENODEV);
        // Nothing else is queued: the next receive times out, boundedly.
        let t = Instant::now();
        let e = s.recv(t + Duration::from_millis(50)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(1));
    }
}
