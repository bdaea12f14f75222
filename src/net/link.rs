//! Links and addresses as the kernel reports them, and the operations the
//! launcher performs on links: the vocabulary between the pure planners
//! (names, discovery, topology) and the rtnetlink executor.

use std::net::Ipv4Addr;

/// A MAC address.
pub type Mac = [u8; 6];

/// `IFF_UP` (the administrative state).
pub const IFF_UP: u32 = 0x1;
/// `IFF_LOOPBACK`.
pub const IFF_LOOPBACK: u32 = 0x8;

/// One link of an RTM_GETLINK dump.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    /// `ifi_index`.
    pub index: u32,
    /// IFLA_IFNAME.
    pub name: String,
    /// IFLA_IFALIAS; `None` when absent or empty.
    pub alias: Option<String>,
    /// IFLA_LINKINFO / IFLA_INFO_KIND (`bridge`, `gretap`, `tun`, `veth`,
    /// `macvtap`, …); `None` for a plain device.
    pub kind: Option<String>,
    /// `ifi_flags` (IFF_*).
    pub flags: u32,
    /// IFLA_MASTER: the bridge it is enslaved to.
    pub master: Option<u32>,
    /// IFLA_ADDRESS when it is 6 bytes long.
    pub mac: Option<Mac>,
    /// IFLA_MTU.
    pub mtu: u32,
    /// IFLA_LINK: the parent (a macvtap's lower link).
    pub parent: Option<u32>,
}

/// One IPv4 address of an RTM_GETADDR dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr {
    /// `ifa_index`: the link carrying it.
    pub index: u32,
    /// IFA_LOCAL (IFA_ADDRESS when there is no IFA_LOCAL).
    pub addr: Ipv4Addr,
    /// `ifa_prefixlen`.
    pub prefix: u8,
}

/// The kind of link to create (RTM_NEWLINK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewLink {
    Bridge,
    /// A GRE tunnel carrying Ethernet frames, keyed both ways with `key`.
    Gretap {
        local: Ipv4Addr,
        remote: Ipv4Addr,
        key: u32,
    },
    /// A veth pair whose other end is named `peer`.
    Veth { peer: String },
    /// A macvtap (mode bridge) on the link named `parent`.
    Macvtap { parent: String, txqlen: u32 },
    /// A persistent tap (not netlink: `/dev/net/tun`, TUNSETIFF,
    /// TUNSETPERSIST).
    Tap,
}

/// One operation on a link, by name (the executor resolves the index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkOp {
    Create { name: String, kind: NewLink },
    SetAlias { name: String, alias: String },
    SetMaster { name: String, master: String },
    SetMac { name: String, mac: Mac },
    SetMtu { name: String, mtu: u32 },
    Up { name: String },
    Delete { name: String },
}

impl LinkOp {
    /// The link the operation acts on.
    pub fn name(&self) -> &str {
        match self {
            LinkOp::Create { name, .. }
            | LinkOp::SetAlias { name, .. }
            | LinkOp::SetMaster { name, .. }
            | LinkOp::SetMac { name, .. }
            | LinkOp::SetMtu { name, .. }
            | LinkOp::Up { name }
            | LinkOp::Delete { name } => name,
        }
    }
}
