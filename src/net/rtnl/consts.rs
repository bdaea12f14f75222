//! The netlink and rtnetlink numbers this crate uses (linux/netlink.h,
//! linux/rtnetlink.h, linux/if_link.h, linux/if_tunnel.h, linux/veth.h,
//! linux/if_addr.h). The nested-attribute numbers are not in `libc`.

// Message types.
pub(crate) const NLMSG_NOOP: u16 = 1;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLMSG_OVERRUN: u16 = 4;
pub(crate) const RTM_NEWLINK: u16 = 16;
pub(crate) const RTM_DELLINK: u16 = 17;
pub(crate) const RTM_GETLINK: u16 = 18;
pub(crate) const RTM_SETLINK: u16 = 19;
pub(crate) const RTM_NEWADDR: u16 = 20;
pub(crate) const RTM_GETADDR: u16 = 22;

// Header flags.
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
/// On an NLMSG_ERROR: only the request's header is echoed.
pub(crate) const NLM_F_CAPPED: u16 = 0x100;
/// On an NLMSG_ERROR: extended-ack attributes follow the echoed request.
pub(crate) const NLM_F_ACK_TLVS: u16 = 0x200;
/// NLMSGERR_ATTR_MSG: the kernel's reason as a string.
pub(crate) const NLMSGERR_ATTR_MSG: u16 = 1;

// Sizes.
pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const IFINFOMSG_LEN: usize = 16;
pub(crate) const IFADDRMSG_LEN: usize = 8;
/// Attribute type bits that are flags (NLA_F_NESTED, NLA_F_NET_BYTEORDER).
pub(crate) const NLA_TYPE_MASK: u16 = 0x3fff;

pub(crate) const AF_INET: u8 = 2;
pub(crate) const AF_PACKET: u8 = 17;

// Link attributes (IFLA_*).
pub(crate) const IFLA_ADDRESS: u16 = 1;
pub(crate) const IFLA_IFNAME: u16 = 3;
pub(crate) const IFLA_MTU: u16 = 4;
pub(crate) const IFLA_LINK: u16 = 5;
pub(crate) const IFLA_MASTER: u16 = 10;
pub(crate) const IFLA_TXQLEN: u16 = 13;
pub(crate) const IFLA_LINKINFO: u16 = 18;
pub(crate) const IFLA_IFALIAS: u16 = 20;
pub(crate) const IFLA_EXT_MASK: u16 = 29;
pub(crate) const IFLA_INFO_KIND: u16 = 1;
pub(crate) const IFLA_INFO_DATA: u16 = 2;
/// IFLA_EXT_MASK value: leave the statistics out of link replies.
pub(crate) const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;

pub(crate) const VETH_INFO_PEER: u16 = 1;
pub(crate) const IFLA_MACVLAN_MODE: u16 = 1;
pub(crate) const MACVLAN_MODE_BRIDGE: u32 = 4;

pub(crate) const IFLA_GRE_IFLAGS: u16 = 2;
pub(crate) const IFLA_GRE_OFLAGS: u16 = 3;
pub(crate) const IFLA_GRE_IKEY: u16 = 4;
pub(crate) const IFLA_GRE_OKEY: u16 = 5;
pub(crate) const IFLA_GRE_LOCAL: u16 = 6;
pub(crate) const IFLA_GRE_REMOTE: u16 = 7;
pub(crate) const IFLA_GRE_TTL: u16 = 8;
pub(crate) const IFLA_GRE_TOS: u16 = 9;
pub(crate) const IFLA_GRE_PMTUDISC: u16 = 10;
pub(crate) const IFLA_GRE_ENCAP_TYPE: u16 = 14;
pub(crate) const IFLA_GRE_ENCAP_FLAGS: u16 = 15;
pub(crate) const IFLA_GRE_ENCAP_SPORT: u16 = 16;
pub(crate) const IFLA_GRE_ENCAP_DPORT: u16 = 17;
pub(crate) const IFLA_GRE_FWMARK: u16 = 20;
/// GRE_KEY in IFLA_GRE_[IO]FLAGS (big-endian on the wire).
pub(crate) const GRE_KEY: u16 = 0x2000;

// Address attributes (IFA_*).
pub(crate) const IFA_ADDRESS: u16 = 1;
pub(crate) const IFA_LOCAL: u16 = 2;

/// Rounds up to the 4-byte alignment of messages and attributes
/// (NLMSG_ALIGN, RTA_ALIGN).
pub(crate) const fn align4(n: usize) -> usize {
    (n + 3) & !3
}
