//! rtnetlink in the crate: the launcher reads and changes the kernel's
//! links through a NETLINK_ROUTE socket, with no `ip` child per operation.
//!
//! * [`encode`]: the request bytes (pure; each compared with iproute2's in
//!   its tests).
//! * [`decode`]: the reply parser (pure; fuzzed, never panics).
//! * [`Rtnl`] (this file): the client that sends a request and waits, for
//!   a bounded time, for its answer.
//!
//! ```no_run
//! use ciao::net::link::{LinkOp, NewLink};
//! use ciao::net::rtnl::Rtnl;
//! let mut rtnl = Rtnl::open()?;
//! rtnl.run(&[
//!     LinkOp::Create { name: "sbr_x".into(), kind: NewLink::Bridge },
//!     LinkOp::SetAlias { name: "sbr_x".into(), alias: "br_…".into() },
//!     LinkOp::Up { name: "sbr_x".into() },
//! ])?;
//! let links = rtnl.links()?;
//! # Ok::<(), ciao::net::rtnl::RtnlError>(())
//! ```
//!
//! Every request asks for an acknowledgement and is answered by it (or by
//! the kernel's error, which becomes an [`RtnlError`] naming the operation
//! and carrying the errno); a dump ends at NLMSG_DONE. Replies carrying
//! another sequence number (the late answer of a request that timed out)
//! are skipped. The client is synchronous with a short deadline (2 s by
//! default): every operation is a fast local one for the kernel.
//!
//! Namespaces: the socket belongs to the network namespace of the thread
//! that opened it, and a tap is made in the namespace of the thread that
//! creates it; use an `Rtnl` on the thread that opened it.

pub(crate) mod consts;
pub mod decode;
pub mod encode;

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use crate::net::link::{Addr, Link, LinkOp, NewLink};
use crate::sys::netlink::NetlinkSocket;
use decode::{DecodeError, Message, NLM_F_DUMP_INTR};
use encode::{EncodeError, Request};

/// How long a request waits for its answer by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// How often a dump the kernel flags as interrupted (the table changed
/// while it was read) is repeated before it is returned as it is.
const DUMP_RETRIES: usize = 3;

/// A failed operation: what was attempted (`op`, e.g. "create gretap
/// sgt_1f") and why.
#[derive(Debug)]
pub enum RtnlError {
    /// The kernel refused: `err` carries its errno
    /// (`io::Error::from_raw_os_error`), `reason` its explanation if any.
    Kernel {
        op: String,
        err: io::Error,
        reason: Option<String>,
    },
    /// The socket or the tap device failed, or no answer came in time
    /// (`TimedOut`).
    Io { op: String, err: io::Error },
    /// The request could not be built (bad name, alias too long).
    Encode { op: String, err: EncodeError },
    /// The answer could not be parsed.
    Decode { op: String, err: DecodeError },
}

impl RtnlError {
    /// The operation that failed.
    pub fn op(&self) -> &str {
        match self {
            RtnlError::Kernel { op, .. }
            | RtnlError::Io { op, .. }
            | RtnlError::Encode { op, .. }
            | RtnlError::Decode { op, .. } => op,
        }
    }

    /// The same failure reported for operation `op`.
    fn with_op(self, op: String) -> RtnlError {
        match self {
            RtnlError::Kernel { err, reason, .. } => RtnlError::Kernel { op, err, reason },
            RtnlError::Io { err, .. } => RtnlError::Io { op, err },
            RtnlError::Encode { err, .. } => RtnlError::Encode { op, err },
            RtnlError::Decode { err, .. } => RtnlError::Decode { op, err },
        }
    }

    /// The errno, when the kernel (or a system call) gave one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            RtnlError::Kernel { err, .. } | RtnlError::Io { err, .. } => err.raw_os_error(),
            _ => None,
        }
    }
}

impl fmt::Display for RtnlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RtnlError::Kernel { op, err, reason } => {
                write!(f, "{op}: {err}")?;
                if let Some(r) = reason {
                    write!(f, " ({r})")?;
                }
                Ok(())
            }
            RtnlError::Io { op, err } => write!(f, "{op}: {err}"),
            RtnlError::Encode { op, err } => write!(f, "{op}: {err}"),
            RtnlError::Decode { op, err } => write!(f, "{op}: {err}"),
        }
    }
}

impl std::error::Error for RtnlError {}

/// What an operation is called in errors and logs.
pub fn describe(op: &LinkOp) -> String {
    match op {
        LinkOp::Create { name, kind } => format!("create {} {name}", kind_name(kind)),
        LinkOp::SetAlias { name, alias } => format!("set alias of {name} to {alias:?}"),
        LinkOp::SetMaster { name, master } => format!("enslave {name} to {master}"),
        LinkOp::SetMac { name, mac } => format!("set MAC of {name} to {}", mac_string(mac)),
        LinkOp::SetMtu { name, mtu } => format!("set MTU of {name} to {mtu}"),
        LinkOp::Up { name } => format!("set {name} up"),
        LinkOp::Delete { name } => format!("delete {name}"),
    }
}

/// The kind as `ip link` calls it.
pub fn kind_name(kind: &NewLink) -> &'static str {
    match kind {
        NewLink::Bridge => "bridge",
        NewLink::Gretap { .. } => "gretap",
        NewLink::Veth { .. } => "veth",
        NewLink::Macvtap { .. } => "macvtap",
        NewLink::Tap => "tap",
    }
}

fn mac_string(m: &crate::net::link::Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An rtnetlink client (see the module documentation).
#[derive(Debug)]
pub struct Rtnl {
    sock: NetlinkSocket,
    seq: u32,
    timeout: Duration,
}

impl Rtnl {
    /// Opens the socket, in the calling thread's network namespace.
    pub fn open() -> Result<Rtnl, RtnlError> {
        let sock = NetlinkSocket::open_route().map_err(|err| RtnlError::Io {
            op: "open rtnetlink socket".into(),
            err,
        })?;
        Ok(Rtnl {
            sock,
            seq: 0,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// How long each request waits for its answer.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Every link.
    pub fn links(&mut self) -> Result<Vec<Link>, RtnlError> {
        self.dump("dump links", &Request::DumpLinks, |m| match m {
            Message::Link(l) => Some(l),
            _ => None,
        })
    }

    /// Every IPv4 address.
    pub fn addrs(&mut self) -> Result<Vec<Addr>, RtnlError> {
        self.dump("dump addresses", &Request::DumpAddrs, |m| match m {
            Message::Addr(a) => Some(a),
            _ => None,
        })
    }

    /// The link named `name`, `None` when there is none.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>, RtnlError> {
        let op = format!("look up link {name}");
        match self.transact(&op, &Request::GetLink { name }) {
            Ok(msgs) => Ok(msgs.into_iter().find_map(|m| match m {
                Message::Link(l) => Some(l),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The index of the link named `name` (ENODEV when there is none).
    fn index(&mut self, op: &str, name: &str) -> Result<u32, RtnlError> {
        match self.link(name) {
            Ok(Some(l)) => Ok(l.index),
            Ok(None) => Err(RtnlError::Kernel {
                op: op.to_string(),
                err: io::Error::from_raw_os_error(libc::ENODEV),
                reason: Some(format!("no link named {name}")),
            }),
            Err(e) => {
                let op = format!("{op} ({})", e.op());
                Err(e.with_op(op))
            }
        }
    }

    /// Performs one operation, resolving names to indexes first.
    pub fn apply(&mut self, op: &LinkOp) -> Result<(), RtnlError> {
        let what = describe(op);
        let req_owned;
        let req = match op {
            LinkOp::Create { name, kind } => {
                let parent = match kind {
                    NewLink::Tap => {
                        return crate::sys::tun::create_persistent_tap(name)
                            .map_err(|err| RtnlError::Io { op: what, err });
                    }
                    NewLink::Macvtap { parent, .. } => Some(self.index(&what, parent)?),
                    _ => None,
                };
                req_owned = Request::NewLink { name, kind, parent };
                &req_owned
            }
            LinkOp::SetAlias { name, alias } => {
                req_owned = Request::SetAlias {
                    index: self.index(&what, name)?,
                    alias,
                };
                &req_owned
            }
            LinkOp::SetMaster { name, master } => {
                req_owned = Request::SetMaster {
                    index: self.index(&what, name)?,
                    master: self.index(&what, master)?,
                };
                &req_owned
            }
            LinkOp::SetMac { name, mac } => {
                req_owned = Request::SetMac {
                    index: self.index(&what, name)?,
                    mac: *mac,
                };
                &req_owned
            }
            LinkOp::SetMtu { name, mtu } => {
                req_owned = Request::SetMtu {
                    index: self.index(&what, name)?,
                    mtu: *mtu,
                };
                &req_owned
            }
            LinkOp::Up { name } => {
                req_owned = Request::Up {
                    index: self.index(&what, name)?,
                };
                &req_owned
            }
            LinkOp::Delete { name } => {
                req_owned = Request::DelLink {
                    index: self.index(&what, name)?,
                };
                &req_owned
            }
        };
        self.transact(&what, req).map(drop)
    }

    /// Performs `ops` in order. On a failure, the links this list created
    /// so far are deleted again, newest first, and the failure is returned:
    /// a failed plan leaves no link behind. (A failed deletion during that
    /// roll-back is logged; the first error is the one returned.)
    pub fn run(&mut self, ops: &[LinkOp]) -> Result<(), RtnlError> {
        let mut created: Vec<&str> = Vec::new();
        for op in ops {
            match self.apply(op) {
                Ok(()) => match op {
                    LinkOp::Create { name, .. } => created.push(name),
                    LinkOp::Delete { name } => created.retain(|c| c != name),
                    _ => {}
                },
                Err(e) => {
                    for name in created.iter().rev() {
                        let undo = LinkOp::Delete {
                            name: name.to_string(),
                        };
                        if let Err(u) = self.apply(&undo) {
                            log::warn!("after \"{e}\", rolling back failed: {u}");
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    /// A dump's messages of one kind (`pick`), the dump repeated (a few
    /// times) when the kernel says it was interrupted by a change.
    fn dump<T>(
        &mut self,
        op: &str,
        req: &Request<'_>,
        pick: fn(Message) -> Option<T>,
    ) -> Result<Vec<T>, RtnlError> {
        let mut tries = 0;
        loop {
            let (msgs, interrupted) = self.exchange(op, req)?;
            tries += 1;
            if !interrupted || tries > DUMP_RETRIES {
                return Ok(msgs.into_iter().filter_map(pick).collect());
            }
        }
    }

    fn transact(&mut self, op: &str, req: &Request<'_>) -> Result<Vec<Message>, RtnlError> {
        self.exchange(op, req).map(|(m, _)| m)
    }

    /// Sends `req` and collects its answer up to the acknowledgement (or
    /// NLMSG_DONE for a dump). Returns the messages and whether the kernel
    /// flagged the dump as interrupted.
    fn exchange(&mut self, op: &str, req: &Request<'_>) -> Result<(Vec<Message>, bool), RtnlError> {
        let seq = self.next_seq();
        let bytes = req.encode(seq).map_err(|err| RtnlError::Encode {
            op: op.to_string(),
            err,
        })?;
        let io_err = |err| RtnlError::Io {
            op: op.to_string(),
            err,
        };
        self.sock.send(&bytes).map_err(io_err)?;
        let deadline = Instant::now() + self.timeout;
        let (mut msgs, mut interrupted) = (Vec::new(), false);
        loop {
            let dgram = self.sock.recv(deadline).map_err(io_err)?;
            let received = decode::parse(&dgram).map_err(|err| RtnlError::Decode {
                op: op.to_string(),
                err,
            })?;
            for r in received {
                if r.seq != seq {
                    continue;
                }
                interrupted |= r.flags & NLM_F_DUMP_INTR != 0;
                match r.msg {
                    Message::Error { errno: 0, .. } => return Ok((msgs, interrupted)),
                    Message::Done { errno: 0 } if req.is_dump() => return Ok((msgs, interrupted)),
                    Message::Error { errno, reason } => {
                        return Err(RtnlError::Kernel {
                            op: op.to_string(),
                            err: io::Error::from_raw_os_error(errno),
                            reason,
                        })
                    }
                    Message::Done { errno } => {
                        return Err(RtnlError::Kernel {
                            op: op.to_string(),
                            err: io::Error::from_raw_os_error(errno),
                            reason: None,
                        })
                    }
                    other => msgs.push(other),
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! iproute2's bytes captured by tests/fixtures/netlink/capture.sh.

    /// The hex lines of a fixture file: (the command in its first comment
    /// line, one byte vector per non-comment line).
    pub(crate) fn load(text: &str) -> (String, Vec<Vec<u8>>) {
        let mut cmd = String::new();
        let mut out = Vec::new();
        for line in text.lines() {
            if let Some(c) = line.strip_prefix("# ") {
                if cmd.is_empty() {
                    cmd = c.to_string();
                }
                continue;
            }
            let bytes: Vec<u8> = line
                .split_whitespace()
                .map(|h| u8::from_str_radix(h, 16).unwrap())
                .collect();
            if !bytes.is_empty() {
                out.push(bytes);
            }
        }
        (cmd, out)
    }

    macro_rules! fixture {
        ($name:literal) => {
            $crate::net::rtnl::fixtures::load(include_str!(concat!(
                "../../../tests/fixtures/netlink/",
                $name
            )))
        };
    }
    pub(crate) use fixture;
}
