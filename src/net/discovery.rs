//! Physical interface discovery: which of the node's addresses are on the
//! compute network (GRE tunnels, concentrator macvtaps, STATS) and which
//! on the management network, from a link and address dump and the
//! cluster configuration's `compute_net` / `mgmt_net` (docs/networking.md).
//!
//! The rules are the original launcher's: a link is *physical* when it is
//! a plain device, a bond, a vlan, a macvlan or a bridge not made by
//! docker or libvirt, and not the loopback; every IPv4 address of a
//! physical link is classified once per CIDR of a list that contains it
//! (an empty list takes every address); an empty list is only allowed
//! when a single physical link carries IPv4 addresses.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use super::link::{Addr, Link, IFF_LOOPBACK};
use super::names::format_mac;
use crate::payloads::ident::parse_cidr;

/// One IPv4 address of a physical link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
    /// The link carrying it.
    pub link: String,
    pub index: u32,
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} on {}", self.addr, self.prefix, self.link)
    }
}

/// The result of a successful discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The first compute address: the GRE tunnels' local end, reported as
    /// `agent_ip` in tenant events.
    pub compute_ip: Ipv4Addr,
    /// The link carrying it: the parent of concentrator macvtaps.
    pub compute_link: String,
    pub compute_index: u32,
    /// STATS `networks`: one `(ip, mac)` per compute address, in order;
    /// the MAC is `aa:bb:…` (empty for a link without one).
    pub networks: Vec<(Ipv4Addr, String)>,
    /// The management addresses, in order (duplicates when CIDRs overlap).
    pub mgmt: Vec<NodeAddr>,
}

/// Why discovery failed, in the order the checks are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryError {
    /// An entry of `compute_net` or `mgmt_net` is not a CIDR.
    BadCidr { list: &'static str, value: String },
    /// No physical IPv4 address is in `mgmt_net`.
    NoManagement {
        mgmt_net: Vec<String>,
        found: Vec<NodeAddr>,
    },
    /// No physical IPv4 address is in `compute_net`.
    NoCompute {
        compute_net: Vec<String>,
        found: Vec<NodeAddr>,
    },
    /// A list is empty and more than one physical link carries IPv4
    /// addresses, so which one to use is a guess.
    Ambiguous { links: Vec<String> },
}

fn list(found: &[NodeAddr]) -> String {
    if found.is_empty() {
        return "none".to_string();
    }
    let found: Vec<String> = found.iter().map(NodeAddr::to_string).collect();
    found.join(", ")
}

impl fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscoveryError::BadCidr { list, value } => write!(
                f,
                "cluster configuration: launcher.{list} entry {value:?} is not a CIDR"
            ),
            DiscoveryError::NoManagement { mgmt_net, found } => write!(
                f,
                "unable to associate with management network: no address of a physical link is in mgmt_net {mgmt_net:?} (physical IPv4 addresses: {})",
                list(found)
            ),
            DiscoveryError::NoCompute { compute_net, found } => write!(
                f,
                "unable to associate with compute network: no address of a physical link is in compute_net {compute_net:?} (physical IPv4 addresses: {})",
                list(found)
            ),
            DiscoveryError::Ambiguous { links } => write!(
                f,
                "unable to autoconfigure network: compute_net or mgmt_net is empty and {} physical links carry IPv4 addresses ({}); list the networks in the cluster configuration",
                links.len(),
                links.join(", ")
            ),
        }
    }
}

impl std::error::Error for DiscoveryError {}

/// A link the node's own traffic may use: plain devices, bonds, vlans,
/// macvlans and bridges other than docker's and libvirt's; never the
/// loopback, nor the virtual links the launcher and others make.
pub fn is_physical(link: &Link) -> bool {
    if link.flags & IFF_LOOPBACK != 0 {
        return false;
    }
    match link.kind.as_deref() {
        None | Some("bond" | "vlan" | "macvlan") => true,
        Some("bridge") => !link.name.starts_with("docker") && !link.name.starts_with("virbr"),
        Some(_) => false,
    }
}

/// An address/prefix pair of a CIDR list; IPv6 CIDRs parse but contain
/// no IPv4 address.
struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn contains(&self, ip: Ipv4Addr) -> bool {
        let IpAddr::V4(net) = self.addr else {
            return false;
        };
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        u32::from(net) & mask == u32::from(ip) & mask
    }
}

fn parse_list(list: &'static str, values: &[String]) -> Result<Vec<Cidr>, DiscoveryError> {
    values
        .iter()
        .map(|value| {
            parse_cidr(value)
                .map(|(addr, prefix)| Cidr { addr, prefix })
                .ok_or_else(|| DiscoveryError::BadCidr {
                    list,
                    value: value.clone(),
                })
        })
        .collect()
}

/// Each address once per CIDR containing it, or once when there is no CIDR.
fn classify(found: &[NodeAddr], cidrs: &[Cidr]) -> Vec<NodeAddr> {
    if cidrs.is_empty() {
        return found.to_vec();
    }
    found
        .iter()
        .flat_map(|a| {
            cidrs
                .iter()
                .filter(|c| c.contains(a.addr))
                .map(move |_| a.clone())
        })
        .collect()
}

/// Classifies the node's addresses (`links` and `addrs` in dump order)
/// against the cluster configuration's lists.
pub fn discover(
    links: &[Link],
    addrs: &[Addr],
    compute_net: &[String],
    mgmt_net: &[String],
) -> Result<Discovery, DiscoveryError> {
    let compute_cidrs = parse_list("compute_net", compute_net)?;
    let mgmt_cidrs = parse_list("mgmt_net", mgmt_net)?;

    let mut found = Vec::new();
    let mut carriers = Vec::new();
    for link in links.iter().filter(|l| is_physical(l)) {
        let before = found.len();
        found.extend(
            addrs
                .iter()
                .filter(|a| a.index == link.index)
                .map(|a| NodeAddr {
                    addr: a.addr,
                    prefix: a.prefix,
                    link: link.name.clone(),
                    index: link.index,
                }),
        );
        if found.len() > before {
            carriers.push(link);
        }
    }

    let mgmt = classify(&found, &mgmt_cidrs);
    let compute = classify(&found, &compute_cidrs);
    if mgmt.is_empty() {
        return Err(DiscoveryError::NoManagement {
            mgmt_net: mgmt_net.to_vec(),
            found,
        });
    }
    let Some(first) = compute.first() else {
        return Err(DiscoveryError::NoCompute {
            compute_net: compute_net.to_vec(),
            found,
        });
    };
    if (mgmt_net.is_empty() || compute_net.is_empty()) && carriers.len() > 1 {
        return Err(DiscoveryError::Ambiguous {
            links: carriers.iter().map(|l| l.name.clone()).collect(),
        });
    }
    let mac_of = |index: u32| {
        carriers
            .iter()
            .find(|l| l.index == index)
            .and_then(|l| l.mac.as_ref())
            .map(format_mac)
            .unwrap_or_default()
    };
    Ok(Discovery {
        compute_ip: first.addr,
        compute_link: first.link.clone(),
        compute_index: first.index,
        networks: compute.iter().map(|a| (a.addr, mac_of(a.index))).collect(),
        mgmt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::link::IFF_UP;

    fn link(index: u32, name: &str, kind: Option<&str>) -> Link {
        Link {
            index,
            name: name.into(),
            kind: kind.map(str::to_string),
            flags: IFF_UP,
            mac: Some([2, 0, 0, 0, 0, index as u8]),
            mtu: 1500,
            ..Link::default()
        }
    }

    fn addr(index: u32, a: [u8; 4], prefix: u8) -> Addr {
        Addr {
            index,
            addr: Ipv4Addr::from(a),
            prefix,
        }
    }

    fn nets(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn lo() -> Link {
        Link {
            flags: IFF_UP | IFF_LOOPBACK,
            ..link(1, "lo", None)
        }
    }

    #[test]
    fn physical_kinds() {
        for (name, kind, physical) in [
            ("eth0", None, true),
            ("bond0", Some("bond"), true),
            ("eth0.7", Some("vlan"), true),
            ("mv0", Some("macvlan"), true),
            ("br0", Some("bridge"), true),
            ("sbr_1", Some("bridge"), true),
            ("docker0", Some("bridge"), false),
            ("virbr0", Some("bridge"), false),
            ("veth1", Some("veth"), false),
            ("svn_1", Some("tun"), false),
            ("dummy0", Some("dummy"), false),
            ("sgt_1", Some("gretap"), false),
            ("svc_1", Some("macvtap"), false),
            ("vx", Some("vxlan"), false),
            ("ipvl", Some("ipvlan"), false),
            ("team0", Some("team"), false),
        ] {
            assert_eq!(is_physical(&link(2, name, kind)), physical, "{name}");
        }
        assert!(!is_physical(&lo()));
    }

    #[test]
    fn one_nic_and_empty_lists() {
        let links = [
            lo(),
            link(2, "eth0", None),
            link(3, "docker0", Some("bridge")),
        ];
        let addrs = [
            addr(1, [127, 0, 0, 1], 8),
            addr(2, [192, 168, 42, 10], 24),
            addr(2, [10, 0, 0, 5], 8),
            addr(3, [172, 17, 0, 1], 16),
        ];
        let d = discover(&links, &addrs, &[], &[]).unwrap();
        assert_eq!(d.compute_ip, Ipv4Addr::new(192, 168, 42, 10));
        assert_eq!((d.compute_link.as_str(), d.compute_index), ("eth0", 2));
        assert_eq!(
            d.networks,
            vec![
                (
                    Ipv4Addr::new(192, 168, 42, 10),
                    "02:00:00:00:00:02".to_string()
                ),
                (Ipv4Addr::new(10, 0, 0, 5), "02:00:00:00:00:02".to_string()),
            ]
        );
        assert_eq!(d.mgmt.len(), 2);
        assert_eq!(d.mgmt[1].to_string(), "10.0.0.5/8 on eth0");
    }

    #[test]
    fn lists_pick_addresses_and_overlaps_duplicate() {
        let links = [
            lo(),
            link(2, "eth0", None),
            link(3, "eth1", None),
            link(4, "nope", None), // no IPv4 address: skipped
        ];
        let addrs = [
            addr(2, [10, 1, 0, 2], 16),
            addr(3, [192, 168, 42, 10], 24),
            addr(3, [192, 168, 43, 10], 24),
        ];
        let d = discover(
            &links,
            &addrs,
            &nets(&["192.168.0.0/16"]),
            &nets(&["10.1.0.0/16", "10.0.0.0/8"]),
        )
        .unwrap();
        assert_eq!(d.compute_ip, Ipv4Addr::new(192, 168, 42, 10));
        assert_eq!(d.compute_link, "eth1");
        assert_eq!(
            d.networks
                .iter()
                .map(|(ip, _)| ip.to_string())
                .collect::<Vec<_>>(),
            ["192.168.42.10", "192.168.43.10"]
        );
        // 10.1.0.2 is in both mgmt CIDRs: listed twice, as the original does.
        assert_eq!(d.mgmt.len(), 2);
        assert!(d.mgmt.iter().all(|a| a.link == "eth0"));
        // An IPv6 CIDR is accepted and contains nothing.
        let d = discover(
            &links,
            &addrs,
            &nets(&["fd00::/8", "192.168.43.0/24"]),
            &nets(&["10.1.0.0/16"]),
        )
        .unwrap();
        assert_eq!(d.compute_ip, Ipv4Addr::new(192, 168, 43, 10));
    }

    #[test]
    fn errors_in_order() {
        let links = [lo(), link(2, "eth0", None), link(3, "eth1", None)];
        let addrs = [addr(2, [10, 1, 0, 2], 16), addr(3, [192, 168, 42, 10], 24)];
        let e = discover(&links, &addrs, &nets(&["10.0.0.0/8"]), &nets(&["bad"])).unwrap_err();
        assert_eq!(
            e,
            DiscoveryError::BadCidr {
                list: "mgmt_net",
                value: "bad".into()
            }
        );
        let e = discover(&links, &addrs, &nets(&["10.0.0.0"]), &nets(&["bad"])).unwrap_err();
        assert!(matches!(
            e,
            DiscoveryError::BadCidr {
                list: "compute_net",
                ..
            }
        ));
        assert!(e.to_string().contains("\"10.0.0.0\""), "{e}");

        // Neither list matches: management is reported first.
        let e = discover(&links, &addrs, &nets(&["1.0.0.0/8"]), &nets(&["2.0.0.0/8"])).unwrap_err();
        assert!(matches!(e, DiscoveryError::NoManagement { .. }));
        let msg = e.to_string();
        assert!(!msg.contains('\n'));
        assert!(
            msg.contains("10.1.0.2/16 on eth0, 192.168.42.10/24 on eth1"),
            "{msg}"
        );
        let e = discover(
            &links,
            &addrs,
            &nets(&["1.0.0.0/8"]),
            &nets(&["10.0.0.0/8"]),
        )
        .unwrap_err();
        assert!(matches!(e, DiscoveryError::NoCompute { .. }));
        assert!(e
            .to_string()
            .starts_with("unable to associate with compute network"));

        // An empty list with two carriers is a guess.
        let e = discover(&links, &addrs, &[], &nets(&["10.0.0.0/8"])).unwrap_err();
        assert_eq!(
            e,
            DiscoveryError::Ambiguous {
                links: vec!["eth0".into(), "eth1".into()]
            }
        );
        assert!(e.to_string().contains("2 physical links"));
        assert!(discover(&links, &addrs, &nets(&["192.168.0.0/16"]), &[]).is_err());
        // Both lists given: fine.
        assert!(discover(
            &links,
            &addrs,
            &nets(&["192.168.0.0/16"]),
            &nets(&["10.0.0.0/8"])
        )
        .is_ok());

        // No physical address at all: management first.
        let e = discover(&[lo()], &[addr(1, [127, 0, 0, 1], 8)], &[], &[]).unwrap_err();
        assert!(
            e.to_string().contains("physical IPv4 addresses: none"),
            "{e}"
        );
    }

    #[test]
    fn a_link_without_mac_reports_an_empty_one() {
        let mut eth = link(2, "eth0", None);
        eth.mac = None;
        let d = discover(&[eth], &[addr(2, [10, 0, 0, 1], 8)], &[], &[]).unwrap();
        assert_eq!(
            d.networks,
            vec![(Ipv4Addr::new(10, 0, 0, 1), String::new())]
        );
    }
}
