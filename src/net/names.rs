//! Names and aliases of the links the launcher makes (docs/networking.md).
//!
//! A link's *name* (`sbr_3fa2c01`) is random and means nothing; its
//! *alias* is its durable identity, read back after a restart to find out
//! which links are ours. The alias forms are the original launcher's, so
//! links it left behind are recognised:
//!
//! | link | alias |
//! |---|---|
//! | tenant bridge | `br_T` |
//! | GRE tunnel | `gre_T` |
//! | tenant vnic (tap, veth host end) | `vnic_T##<private ip>` |
//! | concentrator macvtap | `cncivnic_<tenant>_<vnic uuid>` |
//!
//! where the subnet tuple `T` is `<tenant>_<subnet>_<concentrator uuid>_<concentrator ip>`.
//! Identifiers are hex groups joined by `-` and the subnet is an IPv4 CIDR,
//! so no field contains `_` or `#`: an alias splits unambiguously once the
//! field count is checked. [`Alias::parse`] accepts only what
//! [`Alias`]'s `Display` writes, field for field, so an alias that merely
//! looks like ours is never taken for ours.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use super::link::Mac;
use crate::payloads::ident::{is_hex_id, parse_cidr};

/// How many random names [`fresh_name`] tries before giving up (the
/// original retried forever).
pub const NAME_ATTEMPTS: usize = 64;

/// The longest alias the kernel stores (IFALIASZ without the NUL).
pub const MAX_ALIAS_LEN: usize = 255;

/// The prefix of a link name: what kind of link it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// `sbr`: a tenant bridge.
    Bridge,
    /// `sgt`: a GRE (gretap) tunnel.
    Tunnel,
    /// `svn`: a VM tap, or the host end of a container's veth pair.
    Vnic,
    /// `svp`: the container end of a veth pair (see [`peer_name`]).
    Peer,
    /// `svc`: a concentrator's macvtap.
    Macvtap,
}

impl Prefix {
    pub fn as_str(self) -> &'static str {
        match self {
            Prefix::Bridge => "sbr",
            Prefix::Tunnel => "sgt",
            Prefix::Vnic => "svn",
            Prefix::Peer => "svp",
            Prefix::Macvtap => "svc",
        }
    }
}

/// Why a name, subnet or tuple cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// The subnet is not an IPv4 CIDR.
    BadSubnet(String),
    /// The subnet's network address is 0.0.0.0: its GRE key would be 0,
    /// which the original refuses too.
    ZeroNetwork(String),
    /// An identifier that is not hex groups joined by `-`.
    BadId { what: &'static str, value: String },
    /// Every attempt hit a name in use.
    NoFreeName(Prefix),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::BadSubnet(s) => write!(f, "subnet {s:?} is not an IPv4 CIDR"),
            NameError::ZeroNetwork(s) => write!(
                f,
                "subnet {s:?} has network address 0.0.0.0, which gives GRE key 0"
            ),
            NameError::BadId { what, value } => write!(f, "{what} {value:?} is not an id"),
            NameError::NoFreeName(p) => write!(
                f,
                "no free link name {}_<hex> after {NAME_ATTEMPTS} random tries",
                p.as_str()
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// `<prefix>_<value in lower-case hex, no padding>`: at most 12 bytes,
/// within the kernel's 15.
pub fn link_name(prefix: Prefix, value: u32) -> String {
    format!("{}_{value:x}", prefix.as_str())
}

/// A name with `prefix` for which `taken` is false, from the caller's
/// random values; [`NameError::NoFreeName`] after [`NAME_ATTEMPTS`] tries.
pub fn fresh_name(
    prefix: Prefix,
    rand: &mut dyn FnMut() -> u32,
    taken: &dyn Fn(&str) -> bool,
) -> Result<String, NameError> {
    (0..NAME_ATTEMPTS)
        .map(|_| link_name(prefix, rand()))
        .find(|n| !taken(n))
        .ok_or(NameError::NoFreeName(prefix))
}

/// The container end of the veth pair whose host end is `host`
/// (`svn_x` → `svp_x`); `None` for a name that is not a vnic name.
pub fn peer_name(host: &str) -> Option<String> {
    host.strip_prefix("svn_").map(|hex| format!("svp_{hex}"))
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &Mac) -> String {
    let hex: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    hex.join(":")
}

/// The masked network address of an IPv4 CIDR, and its prefix length.
fn ipv4_network(subnet: &str) -> Result<(Ipv4Addr, u8), NameError> {
    let bad = || NameError::BadSubnet(subnet.to_string());
    let (IpAddr::V4(addr), prefix) = parse_cidr(subnet).ok_or_else(bad)? else {
        return Err(bad());
    };
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    let network = Ipv4Addr::from(u32::from(addr) & mask);
    if network.is_unspecified() {
        return Err(NameError::ZeroNetwork(subnet.to_string()));
    }
    Ok((network, prefix))
}

/// The GRE key of a tenant subnet: the network address's four bytes read
/// as a little-endian u32 (`172.16.5.0/24` → 331948), which is what the
/// concentrator computes too.
pub fn subnet_key(subnet: &str) -> Result<u32, NameError> {
    ipv4_network(subnet).map(|(net, _)| u32::from_le_bytes(net.octets()))
}

/// The subnet's gateway, its network address + 1 (the concentrator's
/// address on the tenant bridge).
pub fn gateway(subnet: &str) -> Result<Ipv4Addr, NameError> {
    let (net, _) = ipv4_network(subnet)?;
    u32::from(net)
        .checked_add(1)
        .map(Ipv4Addr::from)
        .ok_or_else(|| NameError::BadSubnet(subnet.to_string()))
}

/// The identity of a tenant bridge on this node: tenant, subnet (the
/// string as received, not normalised, as the original keys it),
/// concentrator id and address. Only [`Tuple::new`] makes one, so every
/// field is valid.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tuple {
    tenant: String,
    subnet: String,
    concentrator_uuid: String,
    concentrator_ip: Ipv4Addr,
    key: u32,
}

impl Tuple {
    pub fn new(
        tenant: &str,
        subnet: &str,
        concentrator_uuid: &str,
        concentrator_ip: Ipv4Addr,
    ) -> Result<Tuple, NameError> {
        for (what, value) in [
            ("tenant_uuid", tenant),
            ("concentrator_uuid", concentrator_uuid),
        ] {
            if !is_hex_id(value) {
                return Err(NameError::BadId {
                    what,
                    value: value.to_string(),
                });
            }
        }
        Ok(Tuple {
            key: subnet_key(subnet)?,
            tenant: tenant.to_string(),
            subnet: subnet.to_string(),
            concentrator_uuid: concentrator_uuid.to_string(),
            concentrator_ip,
        })
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The subnet as received (`172.16.5.0/24`).
    pub fn subnet(&self) -> &str {
        &self.subnet
    }

    pub fn concentrator_uuid(&self) -> &str {
        &self.concentrator_uuid
    }

    pub fn concentrator_ip(&self) -> Ipv4Addr {
        self.concentrator_ip
    }

    /// The GRE key ([`subnet_key`]), never 0.
    pub fn key(&self) -> u32 {
        self.key
    }

    /// The subnet's gateway ([`gateway`]).
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        gateway(&self.subnet).ok()
    }

    /// The exact inverse of `Display`: four `_`-separated fields, each valid.
    fn parse(s: &str) -> Option<Tuple> {
        let fields: Vec<&str> = s.split('_').collect();
        let [tenant, subnet, conc_uuid, conc_ip] = fields[..] else {
            return None;
        };
        let tuple = Tuple::new(tenant, subnet, conc_uuid, canonical_ipv4(conc_ip)?).ok()?;
        Some(tuple)
    }
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}_{}_{}_{}",
            self.tenant, self.subnet, self.concentrator_uuid, self.concentrator_ip
        )
    }
}

impl Tuple {
    /// The subnet's network address and prefix (`172.16.5.0/24`, also
    /// for a subnet received as `172.16.5.7/24`): what docker's IPAM is
    /// given.
    pub fn network_cidr(&self) -> String {
        match ipv4_network(&self.subnet) {
            Ok((net, prefix)) => format!("{net}/{prefix}"),
            // Unreachable: `Tuple::new` checked the subnet.
            Err(_) => self.subnet.clone(),
        }
    }
}

/// The name of the docker network of a tuple's bridge:
/// `ciao_<tenant>_<subnet>_<concentrator uuid>_<concentrator ip>` with the
/// subnet as received and its `/` written `-` (`172.16.5.0-24`). It
/// depends on the tuple only, so a bridge made again after a reboot
/// (under a new random link name) has the same network, which the
/// containers created before still name (the original named the network
/// after the bridge's link name). Every field is hex, digits, dots or
/// `-`, which docker accepts in a name; one tuple, one name.
pub fn docker_network_name(tuple: &Tuple) -> String {
    format!(
        "ciao_{}_{}_{}_{}",
        tuple.tenant(),
        tuple.subnet().replace('/', "-"),
        tuple.concentrator_uuid(),
        tuple.concentrator_ip()
    )
}

/// An IPv4 address in canonical dotted-quad form only (what `Display` writes).
fn canonical_ipv4(s: &str) -> Option<Ipv4Addr> {
    s.parse::<Ipv4Addr>().ok().filter(|ip| ip.to_string() == s)
}

/// The alias of a link the launcher makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alias {
    /// `br_T`: the tenant bridge of a tuple.
    Bridge(Tuple),
    /// `gre_T`: the tuple's GRE tunnel.
    Tunnel(Tuple),
    /// `vnic_T##<ip>`: an instance's tap or veth host end, identified by
    /// its tuple and private IP (not by the vnic uuid, as in the original).
    Vnic(Tuple, Ipv4Addr),
    /// `cncivnic_<tenant>_<vnic uuid>`: a concentrator's macvtap.
    Cnci { tenant: String, vnic_uuid: String },
}

impl Alias {
    /// The alias `s` spells, only when every field is valid and nothing is
    /// left over: `Alias::parse(s)` is `Some(a)` exactly when `a.to_string() == s`.
    pub fn parse(s: &str) -> Option<Alias> {
        if let Some(rest) = s.strip_prefix("br_") {
            Tuple::parse(rest).map(Alias::Bridge)
        } else if let Some(rest) = s.strip_prefix("gre_") {
            Tuple::parse(rest).map(Alias::Tunnel)
        } else if let Some(rest) = s.strip_prefix("vnic_") {
            let (tuple, ip) = rest.split_once("##")?;
            Some(Alias::Vnic(Tuple::parse(tuple)?, canonical_ipv4(ip)?))
        } else if let Some(rest) = s.strip_prefix("cncivnic_") {
            let (tenant, vnic_uuid) = rest.split_once('_')?;
            (is_hex_id(tenant) && is_hex_id(vnic_uuid)).then(|| Alias::Cnci {
                tenant: tenant.to_string(),
                vnic_uuid: vnic_uuid.to_string(),
            })
        } else {
            None
        }
    }
}

impl fmt::Display for Alias {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Alias::Bridge(t) => write!(f, "br_{t}"),
            Alias::Tunnel(t) => write!(f, "gre_{t}"),
            Alias::Vnic(t, ip) => write!(f, "vnic_{t}##{ip}"),
            Alias::Cnci { tenant, vnic_uuid } => write!(f, "cncivnic_{tenant}_{vnic_uuid}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = "11111111-2222-4333-8444-555555555555";
    const CONC: &str = "0a0b0c0d-0000-4000-8000-000000000030";
    const T: &str = "11111111-2222-4333-8444-555555555555_172.16.5.0/24_0a0b0c0d-0000-4000-8000-000000000030_192.168.42.21";

    fn tuple() -> Tuple {
        Tuple::new(
            TENANT,
            "172.16.5.0/24",
            CONC,
            Ipv4Addr::new(192, 168, 42, 21),
        )
        .unwrap()
    }

    /// The worked example (first VM of subnet 172.16.5.0/24 on a compute
    /// node): key, gateway and the aliases.
    #[test]
    fn worked_example() {
        let t = tuple();
        assert_eq!(t.key(), 331_948);
        assert_eq!(t.key(), 0x0005_10AC);
        assert_eq!(t.gateway(), Some(Ipv4Addr::new(172, 16, 5, 1)));
        assert_eq!(t.to_string(), T);
        assert_eq!(Alias::Bridge(t.clone()).to_string(), format!("br_{T}"));
        assert_eq!(Alias::Tunnel(t.clone()).to_string(), format!("gre_{T}"));
        let vnic = Alias::Vnic(t, Ipv4Addr::new(172, 16, 5, 7));
        assert_eq!(vnic.to_string(), format!("vnic_{T}##172.16.5.7"));
        assert_eq!(Alias::parse(&format!("vnic_{T}##172.16.5.7")), Some(vnic));
        let cnci = Alias::Cnci {
            tenant: TENANT.into(),
            vnic_uuid: "0a0b0c0d-0000-4000-8000-000000000020".into(),
        };
        assert_eq!(
            cnci.to_string(),
            "cncivnic_11111111-2222-4333-8444-555555555555_0a0b0c0d-0000-4000-8000-000000000020"
        );
        assert_eq!(Alias::parse(&cnci.to_string()), Some(cnci));
    }

    /// The docker network of a tuple: deterministic, docker's characters
    /// only, the masked subnet for IPAM.
    #[test]
    fn docker_networks() {
        let t = tuple();
        assert_eq!(
            docker_network_name(&t),
            "ciao_11111111-2222-4333-8444-555555555555_172.16.5.0-24_0a0b0c0d-0000-4000-8000-000000000030_192.168.42.21"
        );
        assert_eq!(docker_network_name(&t), docker_network_name(&tuple()));
        assert!(docker_network_name(&t)
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)));
        assert_eq!(t.network_cidr(), "172.16.5.0/24");
        let odd = Tuple::new(TENANT, "172.16.5.7/24", CONC, t.concentrator_ip()).unwrap();
        assert_eq!(odd.network_cidr(), "172.16.5.0/24");
        assert_ne!(docker_network_name(&odd), docker_network_name(&t));
    }

    #[test]
    fn names() {
        assert_eq!(link_name(Prefix::Bridge, 0x7d3e21a9), "sbr_7d3e21a9");
        assert_eq!(link_name(Prefix::Tunnel, 0xc04f5), "sgt_c04f5");
        assert_eq!(link_name(Prefix::Vnic, 0), "svn_0");
        assert_eq!(link_name(Prefix::Macvtap, u32::MAX), "svc_ffffffff");
        assert_eq!(link_name(Prefix::Peer, 1), "svp_1");
        assert!(link_name(Prefix::Macvtap, u32::MAX).len() <= 15);
        assert_eq!(peer_name("svn_9a0b1c2").as_deref(), Some("svp_9a0b1c2"));
        assert_eq!(peer_name("sbr_9a0b1c2"), None);
        assert_eq!(format_mac(&[2, 0, 0xac, 0x10, 5, 7]), "02:00:ac:10:05:07");
    }

    #[test]
    fn fresh_names_skip_names_in_use_and_give_up() {
        let mut values = [1u32, 2, 3].into_iter().cycle();
        let mut rand = || values.next().unwrap();
        let taken = |n: &str| n == "sbr_1" || n == "sbr_2";
        assert_eq!(
            fresh_name(Prefix::Bridge, &mut rand, &taken).unwrap(),
            "sbr_3"
        );
        let same = || 7u32;
        let mut calls = 0;
        let taken = |n: &str| n == "svn_7";
        let mut counting = || {
            calls += 1;
            same()
        };
        assert_eq!(
            fresh_name(Prefix::Vnic, &mut counting, &taken),
            Err(NameError::NoFreeName(Prefix::Vnic))
        );
        assert_eq!(calls, NAME_ATTEMPTS);
    }

    #[test]
    fn subnets() {
        assert_eq!(subnet_key("10.0.0.0/8"), Ok(10));
        // Host bits are masked off.
        assert_eq!(subnet_key("172.16.5.77/24"), Ok(331_948));
        assert_eq!(gateway("172.16.5.77/24"), Ok(Ipv4Addr::new(172, 16, 5, 1)));
        assert_eq!(subnet_key("192.168.8.0/21"), subnet_key("192.168.15.3/21"));
        for zero in ["0.0.0.0/0", "0.0.0.0/8", "10.0.0.0/0", "0.255.0.0/8"] {
            assert_eq!(
                subnet_key(zero),
                Err(NameError::ZeroNetwork(zero.into())),
                "{zero}"
            );
        }
        for bad in [
            "",
            "172.16.5.0",
            "172.16.5.0/33",
            "fd00::/64",
            "x/24",
            " 10.0.0.0/8",
        ] {
            assert_eq!(
                subnet_key(bad),
                Err(NameError::BadSubnet(bad.into())),
                "{bad}"
            );
        }
        assert!(gateway("255.255.255.255/32").is_err());
        assert!(Tuple::new("", "10.0.0.0/8", CONC, Ipv4Addr::LOCALHOST).is_err());
        assert!(Tuple::new(TENANT, "10.0.0.0/8", "a_b", Ipv4Addr::LOCALHOST).is_err());
    }

    #[test]
    fn every_parse_round_trips() {
        let t = tuple();
        for a in [
            Alias::Bridge(t.clone()),
            Alias::Tunnel(t.clone()),
            Alias::Vnic(t, Ipv4Addr::new(172, 16, 5, 7)),
            Alias::Cnci {
                tenant: "AB-cd".into(),
                vnic_uuid: "0".into(),
            },
        ] {
            let s = a.to_string();
            assert_eq!(Alias::parse(&s), Some(a), "{s}");
        }
    }

    /// Every one-character change of a valid alias either does not parse
    /// or is another alias that writes back to exactly that string.
    #[test]
    fn mutations_never_parse_loosely() {
        let t = tuple();
        let valid = [
            Alias::Bridge(t.clone()).to_string(),
            Alias::Vnic(t, Ipv4Addr::new(172, 16, 5, 7)).to_string(),
            format!("cncivnic_{TENANT}_{CONC}"),
        ];
        let mut parsed = 0;
        for s in &valid {
            let chars: Vec<char> = s.chars().collect();
            for i in 0..=chars.len() {
                let mut variants = Vec::new();
                if i < chars.len() {
                    let mut v = chars.clone();
                    v.remove(i);
                    variants.push(v);
                }
                for c in [
                    '_', '#', '/', '-', '.', ':', 'g', 'A', '0', '9', ' ', '\0', 'é',
                ] {
                    let mut v = chars.clone();
                    v.insert(i, c);
                    variants.push(v.clone());
                    if i < chars.len() {
                        v.remove(i + 1);
                        v[i] = c;
                        variants.push(v);
                    }
                }
                for v in variants {
                    let m: String = v.into_iter().collect();
                    if let Some(a) = Alias::parse(&m) {
                        assert_eq!(a.to_string(), m);
                        parsed += 1;
                    }
                }
            }
        }
        // Some mutations are valid aliases (another hex digit, a longer
        // prefix length digit...): the point is that none parses loosely.
        assert!(parsed > 0);
    }

    /// Strings that look like ours but are not, field by field.
    #[test]
    fn hostile_aliases_do_not_parse() {
        let conc_ip = "192.168.42.21";
        let hostile = [
            String::new(),
            "br_".into(),
            "br".into(),
            T.into(),
            format!("BR_{T}"),
            format!(" br_{T}"),
            format!("br_{T} "),
            format!("br_{T}\n"),
            format!("br_{T}\0"),
            format!("br_{T}_"),
            format!("br_{T}_x"),
            format!("br__{T}"),
            format!("br_{TENANT}_172.16.5.0/24_{CONC}"),
            format!("br_{TENANT}_172.16.5.0_{CONC}_{conc_ip}"),
            format!("br_{TENANT}_172.16.5.0/33_{CONC}_{conc_ip}"),
            format!("br_{TENANT}_0.0.0.0/8_{CONC}_{conc_ip}"),
            format!("br_{TENANT}_fd00::/64_{CONC}_{conc_ip}"),
            format!("br_{TENANT}_172.16.5.0/24_{CONC}_192.168.042.21"),
            format!("br_{TENANT}_172.16.5.0/24_{CONC}_192.168.42"),
            format!("br_{TENANT}_172.16.5.0/24_{CONC}_::1"),
            format!("br_{TENANT}-_172.16.5.0/24_{CONC}_{conc_ip}"),
            format!("br_{TENANT}_172.16.5.0/24_x{CONC}_{conc_ip}"),
            format!("br_{TENANT}_172.16.5.0/24__{conc_ip}"),
            format!("br_../{TENANT}_172.16.5.0/24_{CONC}_{conc_ip}"),
            format!("gre_{T}##172.16.5.7"),
            format!("vnic_{T}"),
            format!("vnic_{T}##"),
            format!("vnic_{T}#172.16.5.7"),
            format!("vnic_{T}###172.16.5.7"),
            format!("vnic_{T}##172.16.5.7##172.16.5.7"),
            format!("vnic_{T}##172.16.5.07"),
            format!("vnic_{T}##172.16.5.7 "),
            format!("vnic_{T}_x##172.16.5.7"),
            "cncivnic_".into(),
            "cncivnic_ab".into(),
            "cncivnic_ab_".into(),
            "cncivnic__cd".into(),
            "cncivnic_ab_cd_ef".into(),
            "cncivnic_ab_c/d".into(),
            "cncivnic_ab_cd\n".into(),
            "vnic_cncivnic_ab_cd".into(),
            "docker0".into(),
            "br_é_172.16.5.0/24_a_1.2.3.4".into(),
        ];
        for s in hostile {
            assert_eq!(Alias::parse(&s), None, "{s:?}");
        }
    }
}
