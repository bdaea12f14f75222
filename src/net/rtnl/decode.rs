//! Parsing what the kernel sends on an rtnetlink socket: one datagram
//! holds one or more messages, each a header and a body of attributes.
//!
//! The input comes from the kernel but is treated as untrusted (it is
//! fuzzed): every length is checked against the bytes present, messages and
//! attributes are stepped by their 4-byte alignment, and a malformed
//! datagram is an error, never a panic or a read out of bounds.

use std::fmt;
use std::net::Ipv4Addr;

use super::consts::*;
use crate::net::link::{Addr, Link, Mac};

/// One message of a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// NLMSG_ERROR: `errno` 0 is the acknowledgement of a request, anything
    /// else its failure (positive errno). `reason` is the kernel's own
    /// explanation when it gives one (extended acknowledgement).
    Error { errno: i32, reason: Option<String> },
    /// NLMSG_DONE: the end of a dump (`errno` non-zero: the dump failed).
    Done { errno: i32 },
    /// RTM_NEWLINK.
    Link(Link),
    /// RTM_NEWADDR of an IPv4 address.
    Addr(Addr),
    /// Anything else (NLMSG_NOOP, other address families, other types):
    /// nothing we asked for.
    Other { ty: u16 },
}

/// A message with the header fields that route it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The sequence number of the request it answers.
    pub seq: u32,
    /// `nlmsg_flags` (NLM_F_MULTI, NLM_F_DUMP_INTR, …).
    pub flags: u16,
    pub msg: Message,
}

/// NLM_F_DUMP_INTR: the link table changed during the dump; the dump may be
/// inconsistent and should be repeated.
pub const NLM_F_DUMP_INTR: u16 = 0x10;

/// A malformed datagram: where (byte offset) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes left than a message header.
    ShortHeader { at: usize },
    /// `nlmsg_len` smaller than the header or beyond the datagram.
    BadLength { at: usize, len: u32 },
    /// A message body too short for its fixed part or with a malformed
    /// attribute.
    BadBody { at: usize, what: &'static str },
    /// NLMSG_OVERRUN: the kernel dropped messages.
    Overrun,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::ShortHeader { at } => write!(f, "truncated netlink header at byte {at}"),
            DecodeError::BadLength { at, len } => {
                write!(f, "netlink message at byte {at} has bad length {len}")
            }
            DecodeError::BadBody { at, what } => {
                write!(f, "malformed netlink message at byte {at}: {what}")
            }
            DecodeError::Overrun => write!(f, "netlink overrun: the kernel dropped messages"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

/// Parses one received datagram into its messages.
pub fn parse(buf: &[u8]) -> Result<Vec<Received>, DecodeError> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let rest = &buf[at..];
        if rest.len() < NLMSG_HDRLEN {
            return Err(DecodeError::ShortHeader { at });
        }
        let hdr = |i| u32_at(rest, i).ok_or(DecodeError::ShortHeader { at });
        let len = hdr(0)?;
        if (len as usize) < NLMSG_HDRLEN || len as usize > rest.len() {
            return Err(DecodeError::BadLength { at, len });
        }
        let ty = u16_at(rest, 4).ok_or(DecodeError::ShortHeader { at })?;
        let flags = u16_at(rest, 6).ok_or(DecodeError::ShortHeader { at })?;
        let seq = hdr(8)?;
        let body = &rest[NLMSG_HDRLEN..len as usize];
        let bad = |what| DecodeError::BadBody { at, what };
        let msg = match ty {
            NLMSG_ERROR => error(body, flags).map_err(bad)?,
            NLMSG_DONE => Message::Done {
                errno: u32_at(body, 0).map_or(0, |e| (e as i32).saturating_neg()),
            },
            NLMSG_OVERRUN => return Err(DecodeError::Overrun),
            RTM_NEWLINK => Message::Link(link(body).map_err(bad)?),
            RTM_NEWADDR => match addr(body).map_err(bad)? {
                Some(a) => Message::Addr(a),
                None => Message::Other { ty },
            },
            NLMSG_NOOP => Message::Other { ty },
            _ => Message::Other { ty },
        };
        out.push(Received { seq, flags, msg });
        at += align4(len as usize).min(rest.len());
    }
    Ok(out)
}

/// The attributes of `b` as (type without flag bits, payload).
fn attrs(mut b: &[u8]) -> Result<Vec<(u16, &[u8])>, &'static str> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (Some(len), Some(ty)) = (u16_at(b, 0), u16_at(b, 2)) else {
            return Err("truncated attribute header");
        };
        let len = len as usize;
        if len < 4 || len > b.len() {
            return Err("attribute length out of bounds");
        }
        out.push((ty & NLA_TYPE_MASK, &b[4..len]));
        b = &b[align4(len).min(b.len())..];
    }
    Ok(out)
}

/// A string attribute: up to its first NUL; bytes that are not UTF-8 are
/// replaced (a foreign link's odd name must not make the whole dump fail).
fn string(v: &[u8]) -> String {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

fn u32_attr(v: &[u8], what: &'static str) -> Result<u32, &'static str> {
    match v.try_into() {
        Ok(a) => Ok(u32::from_ne_bytes(a)),
        Err(_) => Err(what),
    }
}

fn error(body: &[u8], flags: u16) -> Result<Message, &'static str> {
    // struct nlmsgerr: int error, then the request's header (and, unless
    // capped, its body), then extended-ack attributes if flagged.
    let raw = u32_at(body, 0).ok_or("short NLMSG_ERROR")? as i32;
    if body.len() < 4 + NLMSG_HDRLEN {
        return Err("short NLMSG_ERROR");
    }
    let mut reason = None;
    if flags & NLM_F_ACK_TLVS != 0 {
        let echoed = if flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            align4(u32_at(body, 4).unwrap_or(0) as usize)
        };
        // The reason is an extra: a malformed one is ignored, not an error.
        if let Some(Ok(tlvs)) = body.get(4 + echoed..).map(attrs) {
            reason = tlvs
                .iter()
                .find(|(t, _)| *t == NLMSGERR_ATTR_MSG)
                .map(|(_, v)| string(v))
                .filter(|s| !s.is_empty());
        }
    }
    Ok(Message::Error {
        errno: raw.saturating_neg(),
        reason,
    })
}

fn link(body: &[u8]) -> Result<Link, &'static str> {
    if body.len() < IFINFOMSG_LEN {
        return Err("short ifinfomsg");
    }
    let mut l = Link {
        index: u32_at(body, 4).ok_or("short ifinfomsg")?,
        flags: u32_at(body, 8).ok_or("short ifinfomsg")?,
        ..Link::default()
    };
    for (ty, v) in attrs(&body[IFINFOMSG_LEN..])? {
        match ty {
            IFLA_IFNAME => l.name = string(v),
            IFLA_IFALIAS => l.alias = Some(string(v)).filter(|a| !a.is_empty()),
            IFLA_ADDRESS => l.mac = Mac::try_from(v).ok(),
            IFLA_MTU => l.mtu = u32_attr(v, "IFLA_MTU is not 4 bytes")?,
            IFLA_MASTER => {
                l.master = Some(u32_attr(v, "IFLA_MASTER is not 4 bytes")?).filter(|&i| i != 0)
            }
            IFLA_LINK => {
                l.parent = Some(u32_attr(v, "IFLA_LINK is not 4 bytes")?).filter(|&i| i != 0)
            }
            IFLA_LINKINFO => {
                for (ty, v) in attrs(v)? {
                    if ty == IFLA_INFO_KIND {
                        l.kind = Some(string(v)).filter(|k| !k.is_empty());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(l)
}

/// `None` for an address that is not IPv4.
fn addr(body: &[u8]) -> Result<Option<Addr>, &'static str> {
    if body.len() < IFADDRMSG_LEN {
        return Err("short ifaddrmsg");
    }
    if body[0] != AF_INET {
        return Ok(None);
    }
    let (mut local, mut address) = (None, None);
    for (ty, v) in attrs(&body[IFADDRMSG_LEN..])? {
        let ip = || -> Result<Ipv4Addr, &'static str> {
            <[u8; 4]>::try_from(v)
                .map(Ipv4Addr::from)
                .map_err(|_| "IPv4 address attribute is not 4 bytes")
        };
        match ty {
            IFA_LOCAL => local = Some(ip()?),
            IFA_ADDRESS => address = Some(ip()?),
            _ => {}
        }
    }
    Ok(Some(Addr {
        index: u32_at(body, 4).ok_or("short ifaddrmsg")?,
        addr: local.or(address).ok_or("IPv4 address without IFA_LOCAL or IFA_ADDRESS")?,
        prefix: body[1],
    }))
}
