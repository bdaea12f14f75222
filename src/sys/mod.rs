//! Operating-system helpers: the only place in the crate with `unsafe`.
//!
//! Everything here is a thin, documented wrapper around one Linux facility
//! that the event loop needs and `std` does not offer (pidfds, signalfd,
//! `flock`, `statfs`, `rlimit`, TCP keep-alive options, the
//! service manager's notification socket), plus the small `/proc` readers and
//! file helpers built on them. Each `unsafe` block carries a `// SAFETY:`
//! comment. Nothing here blocks for long: these are the "fast local
//! operations" allowed inline on the loop (docs/architecture.md, "Where I/O
//! is allowed"). The calls that can block for long and have no
//! non-blocking form run on helper threads: `getaddrinfo` in [`resolve`],
//! which states the rule for such threads, and the syncs and renames of
//! durable files in [`syncer`].

#![allow(unsafe_code)]

pub(crate) mod child;
pub(crate) mod devnode;
pub mod fs;
pub(crate) mod lock;
pub(crate) mod mem;
pub(crate) mod netlink;
pub(crate) mod nonblock;
pub(crate) mod notify;
pub(crate) mod pidfd;
pub mod procfs;
pub(crate) mod random;
pub(crate) mod resolve;
pub(crate) mod signals;
pub(crate) mod syncer;
pub(crate) mod tcp;
pub mod tun;
pub mod uuidstore;

use std::io;

/// Turns a libc return value of -1 into the current `errno` as an
/// `io::Error`; any other value is passed through.
pub(crate) fn cvt<T: Copy + PartialEq + From<i8>>(ret: T) -> io::Result<T> {
    if ret == T::from(-1) {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
