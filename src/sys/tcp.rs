//! TCP socket options `std` and mio do not set: keep-alive timing and
//! `TCP_USER_TIMEOUT`, so that a peer that vanished without closing the
//! connection (host powered off, link cut) is noticed in bounded time
//! instead of after the kernel's default of about 15 minutes.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

use super::cvt;

/// How a connection notices a silent peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct DeadPeer {
    /// Idle time before the first keep-alive probe; later probes follow
    /// every third of it (at least 1 s), three of them.
    pub keepalive: Duration,
    /// How long sent data (or keep-alive probes) may stay unacknowledged
    /// before the kernel drops the connection (`TCP_USER_TIMEOUT`). It also
    /// bounds the keep-alive: once probes go unanswered for this long, the
    /// connection is dropped.
    pub user_timeout: Duration,
}

/// Number of unanswered keep-alive probes before the connection is dropped
/// (when the user timeout does not decide first).
const PROBES: i32 = 3;

fn secs(d: Duration) -> libc::c_int {
    libc::c_int::try_from(d.as_secs().max(1)).unwrap_or(libc::c_int::MAX)
}

pub(super) fn set(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live c_int for the duration of the call and the
    // length passed is its size; an invalid fd is reported as EBADF.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            std::ptr::addr_of!(value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Turns keep-alive on with the timing of `p` and sets the user timeout.
pub(crate) fn set_dead_peer(sock: &impl AsRawFd, p: DeadPeer) -> io::Result<()> {
    let fd = sock.as_raw_fd();
    let idle = secs(p.keepalive);
    set(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    set(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, idle)?;
    set(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_KEEPINTVL,
        (idle / 3).max(1),
    )?;
    set(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, PROBES)?;
    let ms = u32::try_from(p.user_timeout.as_millis()).unwrap_or(u32::MAX);
    set(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_USER_TIMEOUT,
        libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX),
    )
}

/// Reads an integer socket option (for the tests).
#[cfg(test)]
fn get(fd: libc::c_int, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live and `len` holds the size of `value`.
    cvt(unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            std::ptr::addr_of_mut!(value).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_set_on_the_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        set_dead_peer(
            &s,
            DeadPeer {
                keepalive: Duration::from_secs(30),
                user_timeout: Duration::from_secs(90),
            },
        )
        .unwrap();
        let fd = s.as_raw_fd();
        assert_eq!(get(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE).unwrap(), 1);
        assert_eq!(get(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE).unwrap(), 30);
        assert_eq!(get(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL).unwrap(), 10);
        assert_eq!(get(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT).unwrap(), 3);
        assert_eq!(
            get(fd, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT).unwrap(),
            90_000
        );
    }
}
