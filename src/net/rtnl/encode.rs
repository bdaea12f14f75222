//! Request bytes for the rtnetlink operations the launcher performs. Pure:
//! the caller picks the sequence number and sends the bytes.
//!
//! Each request is the one iproute2 6.1 sends for the same operation,
//! attribute for attribute, except where the tests of this module say why
//! not (the fixtures under `tests/fixtures/netlink/` are iproute2's bytes).

use std::fmt;
use std::net::Ipv4Addr;

use super::consts::*;
use crate::net::link::{Mac, IFF_UP};

/// One request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// Every link (RTM_GETLINK dump, statistics left out).
    DumpLinks,
    /// Every IPv4 address (RTM_GETADDR dump).
    DumpAddrs,
    /// The link named `name` (RTM_GETLINK; ENODEV when there is none).
    GetLink { name: &'a str },
    /// A new link `name` (RTM_NEWLINK, create-exclusive).
    NewLink { name: &'a str, kind: Create<'a> },
    SetAlias { index: u32, alias: &'a str },
    SetMaster { index: u32, master: u32 },
    SetMac { index: u32, mac: Mac },
    SetMtu { index: u32, mtu: u32 },
    /// Administratively up (`ifi_flags` = `ifi_change` = IFF_UP).
    Up { index: u32 },
    DelLink { index: u32 },
}

/// The kinds of link made by rtnetlink (a tap is not: see `sys::tun`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Create<'a> {
    Bridge,
    /// GRE carrying Ethernet, keyed both ways with `key`; the defaults of
    /// `ip link add type gretap` otherwise (TTL inherit, TOS inherit, path
    /// MTU discovery on).
    Gretap {
        local: Ipv4Addr,
        remote: Ipv4Addr,
        key: u32,
    },
    Veth { peer: &'a str },
    /// A macvtap in bridge mode on the link with index `parent`.
    Macvtap { parent: u32, txqlen: u32 },
}

/// Why a request could not be built (nothing was sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// Not a name the kernel accepts (1–15 bytes, no NUL, `/`, `:` or
    /// whitespace).
    BadName(String),
    /// An alias of more than 255 bytes or with a NUL in it.
    BadAlias(String),
    /// Index 0 names no link.
    NoIndex,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::BadName(n) => write!(f, "invalid link name {n:?}"),
            EncodeError::BadAlias(a) => write!(f, "invalid link alias {a:?}"),
            EncodeError::NoIndex => write!(f, "link index 0"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// The longest alias the kernel keeps (IFALIASZ - 1).
pub const MAX_ALIAS: usize = 255;

impl Request<'_> {
    /// A dump: answered by any number of messages and NLMSG_DONE.
    pub fn is_dump(&self) -> bool {
        matches!(self, Request::DumpLinks | Request::DumpAddrs)
    }

    /// The request's bytes with sequence number `seq` (port 0: the kernel
    /// fills in ours).
    pub fn encode(&self, seq: u32) -> Result<Vec<u8>, EncodeError> {
        let set = |i: u32| -> Result<Msg, EncodeError> {
            Ok(Msg::link(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK, seq, 0, nonzero(i)?))
        };
        let m = match self {
            Request::DumpLinks => {
                let mut m = Msg::link(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, AF_PACKET, 0);
                m.u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
                m
            }
            Request::DumpAddrs => {
                let mut m = Msg::header(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq);
                // struct ifaddrmsg: family, prefixlen, flags, scope, index.
                m.buf.extend_from_slice(&[AF_INET, 0, 0, 0, 0, 0, 0, 0]);
                m
            }
            Request::GetLink { name } => {
                let mut m = Msg::link(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, seq, 0, 0);
                m.u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
                m.name(IFLA_IFNAME, name)?;
                m
            }
            Request::NewLink { name, kind } => new_link(seq, name, kind)?,
            Request::SetAlias { index, alias } => {
                if alias.len() > MAX_ALIAS || alias.contains('\0') {
                    return Err(EncodeError::BadAlias(alias.to_string()));
                }
                let mut m = set(*index)?;
                m.attr(IFLA_IFALIAS, alias.as_bytes());
                m
            }
            Request::SetMaster { index, master } => {
                let mut m = set(*index)?;
                m.u32(IFLA_MASTER, nonzero(*master)?);
                m
            }
            Request::SetMac { index, mac } => {
                let mut m = set(*index)?;
                m.attr(IFLA_ADDRESS, mac);
                m
            }
            Request::SetMtu { index, mtu } => {
                let mut m = set(*index)?;
                m.u32(IFLA_MTU, *mtu);
                m
            }
            Request::Up { index } => {
                let mut m = set(*index)?;
                m.buf[24..28].copy_from_slice(&IFF_UP.to_ne_bytes()); // ifi_flags
                m.buf[28..32].copy_from_slice(&IFF_UP.to_ne_bytes()); // ifi_change
                m
            }
            Request::DelLink { index } => {
                Msg::link(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, seq, 0, nonzero(*index)?)
            }
        };
        Ok(m.finish())
    }
}

fn nonzero(i: u32) -> Result<u32, EncodeError> {
    if i == 0 {
        Err(EncodeError::NoIndex)
    } else {
        Ok(i)
    }
}

fn new_link(seq: u32, name: &str, kind: &Create<'_>) -> Result<Msg, EncodeError> {
    let flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE;
    let mut m = Msg::link(RTM_NEWLINK, flags, seq, 0, 0);
    // The attribute order is iproute2's (it puts txqueuelen and the parent
    // before the name).
    if let Create::Macvtap { parent, txqlen } = kind {
        m.u32(IFLA_TXQLEN, *txqlen);
        m.u32(IFLA_LINK, nonzero(*parent)?);
    }
    m.name(IFLA_IFNAME, name)?;
    let info = m.nest(IFLA_LINKINFO);
    let kind_name: &str = match kind {
        Create::Bridge => "bridge",
        Create::Gretap { .. } => "gretap",
        Create::Veth { .. } => "veth",
        Create::Macvtap { .. } => "macvtap",
    };
    m.attr(IFLA_INFO_KIND, kind_name.as_bytes());
    match kind {
        Create::Bridge => {}
        Create::Gretap { local, remote, key } => {
            let data = m.nest(IFLA_INFO_DATA);
            m.attr(IFLA_GRE_IKEY, &key.to_be_bytes());
            m.attr(IFLA_GRE_OKEY, &key.to_be_bytes());
            m.attr(IFLA_GRE_IFLAGS, &GRE_KEY.to_be_bytes());
            m.attr(IFLA_GRE_OFLAGS, &GRE_KEY.to_be_bytes());
            m.attr(IFLA_GRE_LOCAL, &local.octets());
            m.attr(IFLA_GRE_REMOTE, &remote.octets());
            m.attr(IFLA_GRE_PMTUDISC, &[1]);
            m.attr(IFLA_GRE_TOS, &[0]);
            m.attr(IFLA_GRE_TTL, &[0]);
            m.u32(IFLA_GRE_FWMARK, 0);
            m.attr(IFLA_GRE_ENCAP_TYPE, &0u16.to_ne_bytes());
            m.attr(IFLA_GRE_ENCAP_FLAGS, &0u16.to_ne_bytes());
            m.attr(IFLA_GRE_ENCAP_SPORT, &0u16.to_be_bytes());
            m.attr(IFLA_GRE_ENCAP_DPORT, &0u16.to_be_bytes());
            m.end(data);
        }
        Create::Veth { peer } => {
            let data = m.nest(IFLA_INFO_DATA);
            let p = m.nest(VETH_INFO_PEER);
            m.buf.extend_from_slice(&[0; IFINFOMSG_LEN]);
            m.name(IFLA_IFNAME, peer)?;
            m.end(p);
            m.end(data);
        }
        Create::Macvtap { .. } => {
            let data = m.nest(IFLA_INFO_DATA);
            m.u32(IFLA_MACVLAN_MODE, MACVLAN_MODE_BRIDGE);
            m.end(data);
        }
    }
    m.end(info);
    Ok(m)
}

/// A message being built; lengths are patched in by `end` and `finish`.
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn header(ty: u16, flags: u16, seq: u32) -> Msg {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, patched
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid
        Msg { buf }
    }

    /// A header and a `struct ifinfomsg` (family, type 0, index, flags 0,
    /// change 0).
    fn link(ty: u16, flags: u16, seq: u32, family: u8, index: u32) -> Msg {
        let mut m = Msg::header(ty, flags, seq);
        m.buf.extend_from_slice(&[family, 0, 0, 0]);
        m.buf.extend_from_slice(&index.to_ne_bytes());
        m.buf.extend_from_slice(&[0; 8]);
        m
    }

    fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_ne_bytes());
    }

    /// A link name: NUL-terminated, as iproute2 sends it.
    fn name(&mut self, ty: u16, name: &str) -> Result<(), EncodeError> {
        crate::sys::tun::check_ifname(name).map_err(|_| EncodeError::BadName(name.to_string()))?;
        let mut v = name.as_bytes().to_vec();
        v.push(0);
        self.attr(ty, &v);
        Ok(())
    }

    fn pad(&mut self) {
        self.buf.resize(align4(self.buf.len()), 0);
    }

    fn nest(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        at
    }

    fn end(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}
