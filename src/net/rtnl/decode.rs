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
        addr: local
            .or(address)
            .ok_or("IPv4 address without IFA_LOCAL or IFA_ADDRESS")?,
        prefix: body[1],
    }))
}

/// Dump parsing on replies captured from the kernel (iproute2's dumps in
/// a namespace with a bridge carrying an address, an aliased bridge, a
/// veth pair enslaved to it, a macvtap and an aliased, enslaved tap:
/// tests/fixtures/netlink/capture.sh), and malformed input.
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;
    use crate::net::link::IFF_UP;
    use crate::net::rtnl::fixtures::fixture;

    fn all(datagrams: &[Vec<u8>]) -> Vec<Received> {
        datagrams.iter().flat_map(|d| parse(d).unwrap()).collect()
    }

    #[test]
    fn a_captured_link_dump_gives_every_field() {
        let (_, d) = fixture!("dump_links.reply.hex");
        let got = all(&d);
        let seq = got[0].seq;
        assert!(got.iter().all(|r| r.seq == seq));
        assert_eq!(got.last().unwrap().msg, Message::Done { errno: 0 });
        let links: Vec<Link> = got
            .into_iter()
            .filter_map(|r| match r.msg {
                Message::Link(l) => Some(l),
                _ => None,
            })
            .collect();
        let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            ["lo", "sbr_p", "sbr_x", "sve_y", "sve_x", "svc_x", "svn_x"]
        );
        let by = |n: &str| links.iter().find(|l| l.name == n).unwrap();
        let lo = by("lo");
        assert_eq!((lo.index, lo.kind.as_deref(), lo.mtu), (1, None, 65536));
        assert_ne!(lo.flags & crate::net::link::IFF_LOOPBACK, 0);
        let p = by("sbr_p");
        assert_eq!((p.index, p.kind.as_deref()), (2, Some("bridge")));
        assert_ne!(p.flags & IFF_UP, 0);
        let br = by("sbr_x");
        assert_eq!(br.alias.as_deref(), Some("br_tenant"));
        assert_eq!(br.flags & IFF_UP, 0);
        let x = by("sve_x");
        assert_eq!(
            x,
            &Link {
                index: 5,
                name: "sve_x".into(),
                alias: None,
                kind: Some("veth".into()),
                flags: 0x1003, // UP | BROADCAST | MULTICAST
                master: Some(3),
                mac: Some([2, 0, 0, 0, 0, 1]),
                mtu: 1400,
                parent: Some(4),
            }
        );
        assert_eq!(by("sve_y").parent, Some(5));
        let m = by("svc_x");
        assert_eq!((m.kind.as_deref(), m.parent), (Some("macvtap"), Some(2)));
        let t = by("svn_x");
        assert_eq!(t.kind.as_deref(), Some("tun"));
        assert_eq!(t.alias.as_deref(), Some("vnic_x##10.0.0.2"));
        assert_eq!(t.master, Some(3));
        assert_eq!(t.parent, None);
    }

    #[test]
    fn a_captured_address_dump_gives_ipv4_addresses() {
        let (_, d) = fixture!("dump_addrs.reply.hex");
        let msgs: Vec<Message> = all(&d).into_iter().map(|r| r.msg).collect();
        assert_eq!(
            msgs,
            [
                Message::Addr(Addr {
                    index: 1,
                    addr: Ipv4Addr::LOCALHOST,
                    prefix: 8
                }),
                Message::Addr(Addr {
                    index: 2,
                    addr: Ipv4Addr::new(198, 51, 100, 2),
                    prefix: 24
                }),
                Message::Done { errno: 0 },
            ]
        );
    }

    #[test]
    fn a_refused_kind_is_an_error_with_errno_and_the_kernels_reason() {
        // `ip link add ... type gretap` on a kernel without ip_gre.
        let (_, d) = fixture!("newlink_gretap.reply.hex");
        let got = all(&d);
        assert_eq!(
            got[0].msg,
            Message::Error {
                errno: libc::EOPNOTSUPP,
                reason: Some("Unknown device type".into())
            }
        );
    }

    fn msg(ty: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&ty.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        m.resize(align4(m.len()), 0);
        m
    }

    #[test]
    fn acks_done_and_other_messages() {
        // A capped acknowledgement: error 0 and the request's header.
        let mut ack = 0i32.to_ne_bytes().to_vec();
        ack.extend_from_slice(&[0; 16]);
        let mut d = msg(NLMSG_ERROR, NLM_F_CAPPED, 7, &ack);
        d.extend(msg(NLMSG_DONE, 2, 8, &(-libc::EBUSY).to_ne_bytes()));
        d.extend(msg(NLMSG_NOOP, 0, 9, &[]));
        // An IPv6 address (family 10) is not ours to report.
        d.extend(msg(RTM_NEWADDR, 2, 10, &[10, 64, 0, 0, 1, 0, 0, 0]));
        let got = parse(&d).unwrap();
        assert_eq!(
            got.iter()
                .map(|r| (r.seq, r.msg.clone()))
                .collect::<Vec<_>>(),
            [
                (
                    7,
                    Message::Error {
                        errno: 0,
                        reason: None
                    }
                ),
                (8, Message::Done { errno: libc::EBUSY }),
                (9, Message::Other { ty: NLMSG_NOOP }),
                (10, Message::Other { ty: RTM_NEWADDR }),
            ]
        );
        assert_eq!(
            parse(&msg(NLMSG_OVERRUN, 0, 1, &[])),
            Err(DecodeError::Overrun)
        );
        assert_eq!(parse(&[]), Ok(vec![]));
    }

    #[test]
    fn malformed_lengths_are_errors() {
        let ok = msg(RTM_NEWLINK, 0, 1, &[0; 16]);
        assert!(parse(&ok).is_ok());
        assert_eq!(parse(&ok[..10]), Err(DecodeError::ShortHeader { at: 0 }));
        let mut long = ok.clone();
        long[0] = 200;
        assert_eq!(
            parse(&long),
            Err(DecodeError::BadLength { at: 0, len: 200 })
        );
        let mut short = ok.clone();
        short[0] = 8;
        assert_eq!(parse(&short), Err(DecodeError::BadLength { at: 0, len: 8 }));
        // A link body shorter than struct ifinfomsg.
        assert!(matches!(
            parse(&msg(RTM_NEWLINK, 0, 1, &[0; 8])),
            Err(DecodeError::BadBody { .. })
        ));
        // An attribute running past its message.
        let mut body = vec![0; 16];
        body.extend_from_slice(&[40, 0, 3, 0, b'a', 0, 0, 0]);
        assert!(matches!(
            parse(&msg(RTM_NEWLINK, 0, 1, &body)),
            Err(DecodeError::BadBody { .. })
        ));
        // IFLA_MTU of 2 bytes.
        let mut body = vec![0; 16];
        body.extend_from_slice(&[6, 0, 4, 0, 1, 2, 0, 0]);
        assert!(matches!(
            parse(&msg(RTM_NEWLINK, 0, 1, &body)),
            Err(DecodeError::BadBody { .. })
        ));
        // An error message without the echoed header.
        assert!(matches!(
            parse(&msg(NLMSG_ERROR, 0, 1, &[0; 4])),
            Err(DecodeError::BadBody { .. })
        ));
    }

    #[test]
    fn no_truncation_or_corruption_of_a_real_dump_panics() {
        let (_, d) = fixture!("dump_links.reply.hex");
        let big = &d[0];
        for n in 0..big.len() {
            let _ = parse(&big[..n]);
        }
        // Deterministic byte corruption (xorshift), many rounds.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            let mut v = big.clone();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % v.len();
                v[i] = (x >> 32) as u8;
            }
            let _ = parse(&v);
        }
    }
}
