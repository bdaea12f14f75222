//! The tenant topology as a pure state machine: which links the instances
//! need, which links are ours, and the link operations that get from the
//! kernel's state to the wanted one (docs/networking.md).
//!
//! On a compute node every tenant subnet tuple (see [`Tuple`]) has one
//! bridge and one GRE tunnel to its concentrator, shared by the instances
//! on it, each with its own vnic (a tap for a VM, a veth pair for a
//! container). On a network node a concentrator (CNCI) VM gets a macvtap
//! on the compute link.
//!
//! Nothing here does I/O or draws random numbers: [`Topology::plug`] and
//! [`Topology::unplug`] compute a [`Plan`] without changing anything; the
//! caller runs its `ops` (the executor removes what a failed list created)
//! and [`Topology::commit`]s only a plan that succeeded, so the bookkeeping
//! never disagrees with the kernel. [`Topology::rebuild`] reads a link dump
//! back after a restart, [`hard_reset`] lists what `-hard-reset` deletes.
//!
//! Identity is the alias ([`Alias`]). A link is *ours* when its alias
//! parses completely, its kind is the one we create for that alias, and it
//! matches a record; *orphan* when it parses (kind included) but matches
//! no record; anything else is *foreign* and never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use super::link::{Link, LinkOp, Mac, NewLink, IFF_UP};
use super::names::{fresh_name, peer_name, Alias, NameError, Prefix, Tuple, MAX_ALIAS_LEN};
use crate::payloads::ident::{is_hex_id, parse_ip, parse_mac, to_ipv4};
use crate::payloads::{InstanceConfig, StartFailureReason, TenantEvent, TenantEventKind};

/// The default MTU of both ends of a container's veth pair
/// (`--container-mtu`; the concentrator's DHCP tells VMs the same).
pub const CONTAINER_MTU: u32 = 1400;

/// The transmit queue length of a concentrator's macvtap.
pub const MACVTAP_TXQLEN: u32 = 500;

/// A compute-node instance's vnic: on the tuple's bridge, identified by
/// the tuple and the private IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VnicWant {
    pub tuple: Tuple,
    pub ip: Ipv4Addr,
    /// The guest's MAC: given to qemu for a VM (the tap keeps its own), set
    /// on the veth peer for a container.
    pub mac: Mac,
    /// A veth pair (`svn_x` on the bridge, `svp_x` for the container)
    /// instead of a tap.
    pub container: bool,
}

/// A concentrator VM's macvtap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CnciWant {
    pub tenant: String,
    pub vnic_uuid: String,
    /// The macvtap's MAC, which is also the guest's.
    pub mac: Mac,
}

/// What an instance needs from the node's network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    Vnic(VnicWant),
    Cnci(CnciWant),
}

impl VnicWant {
    /// `vnic_T##<ip>`.
    pub fn alias(&self) -> Alias {
        Alias::Vnic(self.tuple.clone(), self.ip)
    }
}

impl CnciWant {
    /// `cncivnic_<tenant>_<vnic uuid>`.
    pub fn alias(&self) -> Alias {
        Alias::Cnci {
            tenant: self.tenant.clone(),
            vnic_uuid: self.vnic_uuid.clone(),
        }
    }
}

impl Want {
    /// The alias of the instance's own link.
    pub fn alias(&self) -> Alias {
        match self {
            Want::Vnic(v) => v.alias(),
            Want::Cnci(c) => c.alias(),
        }
    }

    pub fn mac(&self) -> Mac {
        match self {
            Want::Vnic(v) => v.mac,
            Want::Cnci(c) => c.mac,
        }
    }
}

/// Why no plan: bad configuration data (`invalid_data`) or a network
/// failure (`network_failure`); [`TopologyError::reason`] says which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopologyError {
    /// A MAC, CIDR or IP that does not parse, a malformed id, an alias
    /// longer than the kernel keeps.
    InvalidData(String),
    /// A missing id, or a subnet that cannot have a tunnel (network
    /// address 0.0.0.0).
    NetworkFailure(String),
    /// No free link name.
    Name(NameError),
    /// Another instance has a link with this alias (for a vnic: the same
    /// tuple and private IP, which the original would have shared).
    AliasInUse { alias: String, instance: String },
    /// The instance already has a link for a different configuration.
    Changed { instance: String },
    /// A plan was committed against a state it was not computed from (two
    /// plans in flight for the same tuple or instance): nothing was
    /// recorded; dump the links and [`Topology::rebuild`].
    Stale(String),
}

impl TopologyError {
    /// The START failure to report: `invalid_data` for bad data, else
    /// `network_failure` (a RESTART reports `instance_corrupt` for a
    /// configuration that gives no [`Want`]: it was stored).
    pub fn reason(&self) -> StartFailureReason {
        match self {
            TopologyError::InvalidData(_) => StartFailureReason::InvalidData,
            _ => StartFailureReason::NetworkFailure,
        }
    }
}

impl fmt::Display for TopologyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopologyError::InvalidData(s) | TopologyError::NetworkFailure(s) => f.write_str(s),
            TopologyError::Name(e) => e.fmt(f),
            TopologyError::AliasInUse { alias, instance } => {
                write!(
                    f,
                    "link alias {alias} is already used by instance {instance}"
                )
            }
            TopologyError::Changed { instance } => write!(
                f,
                "instance {instance} already has a link for another network configuration"
            ),
            TopologyError::Stale(why) => write!(f, "stale network plan: {why}"),
        }
    }
}

impl std::error::Error for TopologyError {}

impl From<NameError> for TopologyError {
    fn from(e: NameError) -> Self {
        TopologyError::Name(e)
    }
}

fn invalid(what: &str, value: &str) -> TopologyError {
    TopologyError::InvalidData(format!("invalid {what} {value:?}"))
}

/// An id the alias carries: present (else `network_failure`, as the
/// original checks it when it creates links) and hex groups (else
/// `invalid_data`: an `_` would make the alias ambiguous).
fn id<'a>(what: &str, value: &'a str) -> Result<&'a str, TopologyError> {
    if value.is_empty() {
        Err(TopologyError::NetworkFailure(format!("{what} is empty")))
    } else if !is_hex_id(value) {
        Err(invalid(what, value))
    } else {
        Ok(value)
    }
}

fn ipv4(what: &str, value: &str) -> Result<Ipv4Addr, TopologyError> {
    parse_ip(value)
        .and_then(to_ipv4)
        .ok_or_else(|| invalid(what, value))
}

/// The network attachment an instance needs, from its configuration
/// (networking enabled). MAC, subnet and IPs are checked first
/// (`invalid_data`), then the ids (`network_failure` when missing).
pub fn want(config: &InstanceConfig) -> Result<Want, TopologyError> {
    let net = &config.network;
    let mac: Mac = parse_mac(&net.vnic_mac)
        .and_then(|m| m.try_into().ok())
        .ok_or_else(|| invalid("vnic_mac", &net.vnic_mac))?;
    let want = if config.network_node {
        let tenant = id("tenant_uuid", &config.tenant_uuid)?;
        let vnic_uuid = id("networking.vnic_uuid", &net.vnic_uuid)?;
        Want::Cnci(CnciWant {
            tenant: tenant.to_string(),
            vnic_uuid: vnic_uuid.to_string(),
            mac,
        })
    } else {
        let key = super::names::subnet_key(&net.subnet);
        if let Err(NameError::BadSubnet(_)) = key {
            return Err(invalid("subnet", &net.subnet));
        }
        let conc_ip = ipv4("concentrator_ip", &net.concentrator_ip)?;
        let ip = ipv4("private_ip", &net.private_ip)?;
        let tenant = id("tenant_uuid", &config.tenant_uuid)?;
        // Not in the alias (the private IP is), but the original requires it.
        if net.vnic_uuid.is_empty() {
            return Err(TopologyError::NetworkFailure(
                "networking.vnic_uuid is empty".to_string(),
            ));
        }
        let conc_uuid = id("networking.concentrator_uuid", &net.concentrator_uuid)?;
        let tuple = Tuple::new(tenant, &net.subnet, conc_uuid, conc_ip)
            .map_err(|e| TopologyError::NetworkFailure(e.to_string()))?;
        Want::Vnic(VnicWant {
            tuple,
            ip,
            mac,
            container: config.is_container(),
        })
    };
    let alias = want.alias().to_string();
    if alias.len() > MAX_ALIAS_LEN {
        return Err(TopologyError::InvalidData(format!(
            "the link alias would be {} bytes long, more than the kernel's {MAX_ALIAS_LEN}",
            alias.len()
        )));
    }
    Ok(want)
}

/// A TenantAdded or TenantRemoved to send once the plan succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantChange {
    pub kind: TenantEventKind,
    pub tuple: Tuple,
    /// The node's compute IP (the tunnel's local end).
    pub agent_ip: Ipv4Addr,
}

impl TenantChange {
    /// The event payload, from this launcher's SSNTP UUID.
    pub fn event(&self, agent_uuid: &str) -> TenantEvent {
        TenantEvent {
            agent_uuid: agent_uuid.to_string(),
            agent_ip: self.agent_ip.to_string(),
            tenant_uuid: self.tuple.tenant().to_string(),
            tenant_subnet: self.tuple.subnet().to_string(),
            concentrator_uuid: self.tuple.concentrator_uuid().to_string(),
            concentrator_ip: self.tuple.concentrator_ip().to_string(),
            subnet_key: i64::from(self.tuple.key()),
        }
    }
}

/// Link operations to run in order, and what to do once they succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub ops: Vec<LinkOp>,
    /// The instance's vnic (tap, veth host end or macvtap) that a plug
    /// makes or finds, or that an unplug deletes; empty when there is none,
    /// and for the repair of a tuple (it may concern several instances).
    pub vnic_name: String,
    /// The tenant event to send after the plan succeeded (and was committed).
    pub event: Option<TenantChange>,
    /// One line for the log: what the plan does and why.
    pub what: String,
    change: Change,
}

impl Plan {
    /// The tuple an unplug leaves without any instance on this node: its
    /// bridge and tunnel go with the plan, and so must its docker network.
    pub fn emptied(&self) -> Option<&Tuple> {
        match &self.change {
            Change::Unplug { subnet, .. } => subnet.as_ref(),
            _ => None,
        }
    }
}

/// What [`Topology::commit`] records.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    None,
    /// Links made for a tuple: new bridge and tunnel names, new vnics.
    Subnet {
        tuple: Tuple,
        bridge: Option<String>,
        tunnel: Option<String>,
        vnics: Vec<(String, VnicWant, String)>,
    },
    Cnci {
        instance: String,
        want: CnciWant,
        name: String,
    },
    /// An instance's links deleted; `subnet` when it was its tuple's last user.
    Unplug {
        instance: String,
        deleted: Vec<String>,
        subnet: Option<Tuple>,
    },
}

impl Change {
    /// The names of the links the change makes (veth peers included).
    fn created(&self) -> Vec<String> {
        match self {
            Change::Subnet {
                bridge,
                tunnel,
                vnics,
                ..
            } => {
                let mut names: Vec<String> = bridge.iter().chain(tunnel).cloned().collect();
                for (_, want, name) in vnics {
                    names.push(name.clone());
                    if want.container {
                        names.extend(peer_name(name));
                    }
                }
                names
            }
            Change::Cnci { name, .. } => vec![name.clone()],
            Change::None | Change::Unplug { .. } => Vec::new(),
        }
    }
}

/// A link that exists, as far as a plan needs to know.
#[derive(Debug, Clone)]
struct Present {
    name: String,
    /// Enslaved to the tuple's bridge (for a tunnel or vnic).
    enslaved: bool,
    up: bool,
}

impl Present {
    /// A link recorded by a commit: enslaved and up when it was made.
    fn recorded(name: &str) -> Present {
        Present {
            name: name.to_string(),
            enslaved: true,
            up: true,
        }
    }
}

/// A compute-node instance: its wanted vnic and the vnic link, if it exists.
#[derive(Debug, Clone)]
struct Member {
    want: VnicWant,
    vnic: Option<String>,
}

/// The bridge and tunnel of a tuple, those that exist.
#[derive(Debug, Clone, Default)]
struct Subnet {
    bridge: Option<String>,
    tunnel: Option<String>,
}

/// A concentrator's macvtap.
#[derive(Debug, Clone)]
struct Cnci {
    want: CnciWant,
    name: String,
}

/// The links that are ours, by tuple and instance, and the link names in use.
#[derive(Debug, Clone)]
pub struct Topology {
    compute_ip: Ipv4Addr,
    parent: String,
    /// The MTU of containers' veth pairs.
    container_mtu: u32,
    subnets: BTreeMap<Tuple, Subnet>,
    members: BTreeMap<String, Member>,
    cncis: BTreeMap<String, Cnci>,
    names: BTreeSet<String>,
}

/// The result of reading the links back ([`Topology::rebuild`]).
#[derive(Debug, Clone)]
pub struct Rebuild {
    /// Our links, by tuple and instance.
    pub topology: Topology,
    /// Deletions of orphan links, vnics before tunnels before bridges: run
    /// them first (errors are worth a log line, not more).
    pub orphans: Vec<LinkOp>,
    /// One plan per tuple or concentrator with a link missing, down or
    /// astray; run after the orphans, each on its own, and commit those
    /// that succeed. Send their events as for a plug.
    pub repairs: Vec<Plan>,
    /// Records no plan could be made for (a conflict, or no free name).
    pub problems: Vec<String>,
    /// One line for the log: what was found and what will be done.
    pub summary: String,
}

/// The kind of link we create for an alias: anything else with that alias
/// is not ours.
fn kind_fits(alias: &Alias, kind: Option<&str>) -> bool {
    match alias {
        Alias::Bridge(_) => kind == Some("bridge"),
        Alias::Tunnel(_) => kind == Some("gretap"),
        Alias::Vnic(..) => matches!(kind, Some("tun" | "veth")),
        Alias::Cnci { .. } => kind == Some("macvtap"),
    }
}

/// The alias a link has when it is ours or an orphan.
fn our_alias(link: &Link) -> Option<Alias> {
    let alias = Alias::parse(link.alias.as_deref()?)?;
    kind_fits(&alias, link.kind.as_deref()).then_some(alias)
}

/// 0 for vnics and macvtaps, 1 for tunnels, 2 for bridges: the order of
/// deletion (a bridge's ports go first).
fn delete_rank(alias: &Alias) -> u8 {
    match alias {
        Alias::Vnic(..) | Alias::Cnci { .. } => 0,
        Alias::Tunnel(_) => 1,
        Alias::Bridge(_) => 2,
    }
}

fn deletions<'a>(links: impl Iterator<Item = (&'a Link, &'a Alias)>) -> Vec<LinkOp> {
    let mut links: Vec<_> = links.collect();
    links.sort_by_key(|(_, a)| delete_rank(a));
    links
        .into_iter()
        .map(|(l, _)| LinkOp::Delete {
            name: l.name.clone(),
        })
        .collect()
}

/// The deletions `-hard-reset` makes: every link that is ours or orphan
/// (its alias parses completely and its kind is ours), vnics before
/// tunnels before bridges; never a foreign link, aliased or not. Records
/// are not needed: ours and orphans together are exactly the links whose
/// alias and kind are ours.
pub fn hard_reset(links: &[Link]) -> Vec<LinkOp> {
    let ours: Vec<(&Link, Alias)> = links
        .iter()
        .filter_map(|l| our_alias(l).map(|a| (l, a)))
        .collect();
    deletions(ours.iter().map(|(l, a)| (*l, a)))
}

/// Create a link and set its alias: every link we make carries one.
fn create(ops: &mut Vec<LinkOp>, name: &str, kind: NewLink, alias: &Alias) {
    ops.push(LinkOp::Create {
        name: name.to_string(),
        kind,
    });
    ops.push(LinkOp::SetAlias {
        name: name.to_string(),
        alias: alias.to_string(),
    });
}

/// The operations making a tap, or a veth pair for a container (both
/// ends with MTU `mtu`, the peer with the container's MAC).
fn vnic_ops(ops: &mut Vec<LinkOp>, name: &str, want: &VnicWant, bridge: &str, mtu: u32) {
    let alias = want.alias();
    if let (true, Some(peer)) = (want.container, peer_name(name)) {
        let veth = NewLink::Veth { peer: peer.clone() };
        create(ops, name, veth, &alias);
        ops.push(LinkOp::SetMac {
            name: peer.clone(),
            mac: want.mac,
        });
        for n in [name, &peer] {
            ops.push(LinkOp::SetMtu {
                name: n.to_string(),
                mtu,
            });
        }
    } else {
        create(ops, name, NewLink::Tap, &alias);
    }
    ops.push(LinkOp::SetMaster {
        name: name.to_string(),
        master: bridge.to_string(),
    });
    ops.push(LinkOp::Up {
        name: name.to_string(),
    });
}

/// What exists of one tuple's links, and the vnics to make.
struct SubnetState<'a> {
    tuple: &'a Tuple,
    bridge: Option<Present>,
    tunnel: Option<Present>,
    /// Vnics that exist.
    vnics: Vec<Present>,
    /// (instance, want) of vnics to make.
    new: Vec<(&'a str, &'a VnicWant)>,
}

impl Topology {
    /// An empty topology for a node whose compute address (the tunnels'
    /// local end) is `compute_ip` on link `parent` (the macvtaps' parent).
    pub fn new(compute_ip: Ipv4Addr, parent: &str) -> Topology {
        Topology {
            compute_ip,
            parent: parent.to_string(),
            container_mtu: CONTAINER_MTU,
            subnets: BTreeMap::new(),
            members: BTreeMap::new(),
            cncis: BTreeMap::new(),
            names: BTreeSet::new(),
        }
    }

    /// The MTU of the veth pairs made from now on (both ends).
    pub fn with_container_mtu(mut self, mtu: u32) -> Topology {
        self.container_mtu = mtu;
        self
    }

    /// True while an instance on this node wants the tuple's bridge: its
    /// docker network must stay.
    pub fn tuple_in_use(&self, tuple: &Tuple) -> bool {
        self.members.values().any(|m| m.want.tuple == *tuple)
    }

    /// Replaces the set of link names in use (new names avoid them) with
    /// those of a fresh dump, e.g. after a create failed because another
    /// program took the name.
    pub fn set_names_in_use(&mut self, links: &[Link]) {
        self.names = links.iter().map(|l| l.name.clone()).collect();
    }

    /// The instance's vnic or macvtap, if it exists.
    pub fn vnic_of(&self, instance: &str) -> Option<&str> {
        self.members
            .get(instance)
            .and_then(|m| m.vnic.as_deref())
            .or_else(|| self.cncis.get(instance).map(|c| c.name.as_str()))
    }

    /// True when a link recorded for `instance` (its vnic or macvtap, its
    /// tuple's bridge and tunnel) is not in the dump `links` under its name
    /// with its alias: the kernel lost it behind the launcher's back (a
    /// container's namespace dies with its veth's end inside and takes
    /// the whole pair). The bookkeeping must then be read again
    /// ([`Topology::rebuild`]) before [`Topology::plug`] can make it anew.
    pub fn lost_links(&self, instance: &str, links: &[Link]) -> bool {
        let present = |name: &str, alias: Alias| {
            links
                .iter()
                .any(|l| l.name == name && our_alias(l).as_ref() == Some(&alias))
        };
        if let Some(m) = self.members.get(instance) {
            let tuple = &m.want.tuple;
            let s = self.subnets.get(tuple);
            let vnic = m.vnic.as_deref().map(|v| (v, m.want.alias()));
            let bridge = s
                .and_then(|s| s.bridge.as_deref())
                .map(|b| (b, Alias::Bridge(tuple.clone())));
            let tunnel = s
                .and_then(|s| s.tunnel.as_deref())
                .map(|t| (t, Alias::Tunnel(tuple.clone())));
            return [vnic, bridge, tunnel]
                .into_iter()
                .flatten()
                .any(|(name, alias)| !present(name, alias));
        }
        self.cncis
            .get(instance)
            .is_some_and(|c| !present(&c.name, c.want.alias()))
    }

    /// A fresh name avoiding the names in use and those already reserved.
    fn fresh(
        &self,
        prefix: Prefix,
        reserved: &mut Vec<String>,
        rand: &mut dyn FnMut() -> u32,
        with_peer: bool,
    ) -> Result<String, NameError> {
        let used = |n: &str| self.names.contains(n) || reserved.iter().any(|r| r == n);
        let taken = |n: &str| used(n) || (with_peer && peer_name(n).is_some_and(|p| used(&p)));
        let name = fresh_name(prefix, rand, &taken)?;
        reserved.push(name.clone());
        if let (true, Some(peer)) = (with_peer, peer_name(&name)) {
            reserved.push(peer);
        }
        Ok(name)
    }

    /// The operations bringing one tuple's links to what is wanted:
    /// missing bridge, tunnel and vnics made (bridge first, then tunnel,
    /// then vnics, as the original does), ports enslaved and links up.
    fn subnet_plan(
        &self,
        s: SubnetState<'_>,
        rand: &mut dyn FnMut() -> u32,
    ) -> Result<Plan, NameError> {
        let mut ops = Vec::new();
        let mut reserved = Vec::new();
        let mut what = Vec::new();
        let (bridge, new_bridge) = match &s.bridge {
            Some(b) => (b.name.clone(), None),
            None => {
                let name = self.fresh(Prefix::Bridge, &mut reserved, rand, false)?;
                let alias = Alias::Bridge(s.tuple.clone());
                create(&mut ops, &name, NewLink::Bridge, &alias);
                what.push(format!("bridge {name}"));
                (name.clone(), Some(name))
            }
        };
        let (tunnel, new_tunnel) = match &s.tunnel {
            Some(t) => (t.name.clone(), None),
            None => {
                let name = self.fresh(Prefix::Tunnel, &mut reserved, rand, false)?;
                let gretap = NewLink::Gretap {
                    local: self.compute_ip,
                    remote: s.tuple.concentrator_ip(),
                    key: s.tuple.key(),
                };
                create(&mut ops, &name, gretap, &Alias::Tunnel(s.tuple.clone()));
                what.push(format!("tunnel {name}"));
                (name.clone(), Some(name))
            }
        };
        let port = |ops: &mut Vec<LinkOp>, p: &Option<Present>, name: &str| {
            let (enslaved, up) = p.as_ref().map_or((false, false), |p| (p.enslaved, p.up));
            if new_bridge.is_some() || !enslaved {
                ops.push(LinkOp::SetMaster {
                    name: name.to_string(),
                    master: bridge.clone(),
                });
            }
            if !up {
                ops.push(LinkOp::Up {
                    name: name.to_string(),
                });
            }
        };
        port(&mut ops, &s.tunnel, &tunnel);
        if !s.bridge.as_ref().is_some_and(|b| b.up) {
            ops.push(LinkOp::Up {
                name: bridge.clone(),
            });
        }
        for v in &s.vnics {
            port(&mut ops, &Some(v.clone()), &v.name);
        }
        let mut vnics = Vec::new();
        for (instance, want) in &s.new {
            let name = self.fresh(Prefix::Vnic, &mut reserved, rand, want.container)?;
            vnic_ops(&mut ops, &name, want, &bridge, self.container_mtu);
            what.push(format!("vnic {name} of instance {instance}"));
            vnics.push((instance.to_string(), (*want).clone(), name));
        }
        let event = (new_bridge.is_some() && new_tunnel.is_some()).then(|| TenantChange {
            kind: TenantEventKind::Added,
            tuple: s.tuple.clone(),
            agent_ip: self.compute_ip,
        });
        let what = if what.is_empty() {
            format!("tenant network br_{}: links fixed in place", s.tuple)
        } else {
            format!("tenant network br_{}: create {}", s.tuple, what.join(", "))
        };
        Ok(Plan {
            ops,
            vnic_name: vnics.first().map(|v| v.2.clone()).unwrap_or_default(),
            event,
            what,
            change: Change::Subnet {
                tuple: s.tuple.clone(),
                bridge: new_bridge,
                tunnel: new_tunnel,
                vnics,
            },
        })
    }

    fn cnci_plan(
        &self,
        instance: &str,
        want: &CnciWant,
        rand: &mut dyn FnMut() -> u32,
    ) -> Result<Plan, NameError> {
        let name = self.fresh(Prefix::Macvtap, &mut Vec::new(), rand, false)?;
        let mut ops = Vec::new();
        let macvtap = NewLink::Macvtap {
            parent: self.parent.clone(),
            txqlen: MACVTAP_TXQLEN,
        };
        create(&mut ops, &name, macvtap, &want.alias());
        ops.push(LinkOp::SetMac {
            name: name.clone(),
            mac: want.mac,
        });
        ops.push(LinkOp::Up { name: name.clone() });
        Ok(Plan {
            ops,
            what: format!(
                "concentrator {instance}: create macvtap {name} on {}",
                self.parent
            ),
            vnic_name: name.clone(),
            event: None,
            change: Change::Cnci {
                instance: instance.to_string(),
                want: want.clone(),
                name,
            },
        })
    }

    /// The instance (not `except`) whose link has this alias.
    fn alias_user(&self, alias: &Alias, except: &str) -> Option<&str> {
        let vnic = self
            .members
            .iter()
            .find(|(i, m)| i.as_str() != except && m.want.alias() == *alias)
            .map(|(i, _)| i);
        let cnci = self
            .cncis
            .iter()
            .find(|(i, c)| i.as_str() != except && c.want.alias() == *alias)
            .map(|(i, _)| i);
        vnic.or(cnci).map(String::as_str)
    }

    /// The plan giving `instance` what it wants: nothing to do when its
    /// links exist (RESTART, or an instance found again after a restart);
    /// else the missing links, with a TenantAdded when the tuple's bridge
    /// and tunnel are both new. Changes nothing: commit the plan once it
    /// ran. One plan in flight at a time (plan, run, commit or drop, then
    /// the next), as the original serialises them.
    pub fn plug(
        &self,
        instance: &str,
        want: &Want,
        rand: &mut dyn FnMut() -> u32,
    ) -> Result<Plan, TopologyError> {
        let changed = || TopologyError::Changed {
            instance: instance.to_string(),
        };
        let alias = want.alias();
        if let Some(other) = self.alias_user(&alias, instance) {
            return Err(TopologyError::AliasInUse {
                alias: alias.to_string(),
                instance: other.to_string(),
            });
        }
        match want {
            Want::Vnic(w) => {
                if self.cncis.contains_key(instance) {
                    return Err(changed());
                }
                let own = self.members.get(instance);
                if own.is_some_and(|m| m.want != *w) {
                    return Err(changed());
                }
                let own_vnic = own.and_then(|m| m.vnic.clone());
                let subnet = self.subnets.get(&w.tuple).cloned().unwrap_or_default();
                if let (Some(_), Some(_), Some(vnic)) = (&subnet.bridge, &subnet.tunnel, &own_vnic)
                {
                    return Ok(Plan {
                        ops: Vec::new(),
                        vnic_name: vnic.clone(),
                        event: None,
                        what: format!("instance {instance}: vnic {vnic} exists"),
                        change: Change::None,
                    });
                }
                let vnics = self
                    .members
                    .values()
                    .filter(|m| m.want.tuple == w.tuple)
                    .filter_map(|m| m.vnic.as_deref().map(Present::recorded))
                    .collect();
                let new = if own_vnic.is_none() {
                    vec![(instance, w)]
                } else {
                    Vec::new()
                };
                let mut plan = self.subnet_plan(
                    SubnetState {
                        tuple: &w.tuple,
                        bridge: subnet.bridge.as_deref().map(Present::recorded),
                        tunnel: subnet.tunnel.as_deref().map(Present::recorded),
                        vnics,
                        new,
                    },
                    rand,
                )?;
                if let Some(vnic) = own_vnic {
                    plan.vnic_name = vnic;
                }
                Ok(plan)
            }
            Want::Cnci(w) => {
                if self.members.contains_key(instance) {
                    return Err(changed());
                }
                match self.cncis.get(instance) {
                    Some(c) if c.want != *w => Err(changed()),
                    Some(c) => Ok(Plan {
                        ops: Vec::new(),
                        vnic_name: c.name.clone(),
                        event: None,
                        what: format!("concentrator {instance}: macvtap {} exists", c.name),
                        change: Change::None,
                    }),
                    None => Ok(self.cnci_plan(instance, w, rand)?),
                }
            }
        }
    }

    /// The plan removing `instance`'s links: its vnic, and when it is the
    /// last instance on its tuple the tunnel then the bridge, with a
    /// TenantRemoved; a concentrator's macvtap. Nothing for an instance
    /// without links. If the deletions fail half-way, dump the links and
    /// [`Topology::rebuild`] rather than commit.
    pub fn unplug(&self, instance: &str) -> Plan {
        let mut ops = Vec::new();
        let mut deleted = Vec::new();
        let mut delete = |name: &str| {
            ops.push(LinkOp::Delete {
                name: name.to_string(),
            });
            deleted.push(name.to_string());
        };
        let mut event = None;
        let mut subnet = None;
        if let Some(m) = self.members.get(instance) {
            if let Some(vnic) = &m.vnic {
                delete(vnic);
            }
            let tuple = &m.want.tuple;
            let others = self
                .members
                .iter()
                .any(|(i, o)| i != instance && o.want.tuple == *tuple);
            if !others {
                if let Some(s) = self.subnets.get(tuple) {
                    s.tunnel.iter().chain(&s.bridge).for_each(|n| delete(n));
                }
                subnet = Some(tuple.clone());
                event = Some(TenantChange {
                    kind: TenantEventKind::Removed,
                    tuple: tuple.clone(),
                    agent_ip: self.compute_ip,
                });
            }
        } else if let Some(c) = self.cncis.get(instance) {
            delete(&c.name);
        }
        let vnic_name = deleted.first().cloned().unwrap_or_default();
        let found = self.members.contains_key(instance) || self.cncis.contains_key(instance);
        Plan {
            what: if found {
                format!("instance {instance}: delete {}", deleted.join(", "))
            } else {
                format!("instance {instance}: no link")
            },
            ops,
            vnic_name,
            event,
            change: if found {
                Change::Unplug {
                    instance: instance.to_string(),
                    deleted,
                    subnet,
                }
            } else {
                Change::None
            },
        }
    }

    /// Checks that `change` still applies to this state.
    fn check(&self, change: &Change) -> Result<(), TopologyError> {
        let stale = |why: String| Err(TopologyError::Stale(why));
        match change {
            Change::None => Ok(()),
            Change::Subnet {
                tuple,
                bridge,
                tunnel,
                vnics,
            } => {
                let s = self.subnets.get(tuple);
                if bridge.is_some() && s.is_some_and(|s| s.bridge.is_some()) {
                    return stale(format!("bridge of br_{tuple} already recorded"));
                }
                if tunnel.is_some() && s.is_some_and(|s| s.tunnel.is_some()) {
                    return stale(format!("tunnel of br_{tuple} already recorded"));
                }
                if let Some((i, _, _)) = vnics.iter().find(|(i, _, _)| self.vnic_of(i).is_some()) {
                    return stale(format!("instance {i} already has a vnic"));
                }
                Ok(())
            }
            Change::Cnci { instance, .. } if self.cncis.contains_key(instance) => {
                stale(format!("instance {instance} already has a macvtap"))
            }
            Change::Cnci { .. } => Ok(()),
            Change::Unplug { instance, .. }
                if !self.members.contains_key(instance) && !self.cncis.contains_key(instance) =>
            {
                stale(format!("instance {instance} has no link recorded"))
            }
            Change::Unplug { .. } => Ok(()),
        }
    }

    /// Records a plan whose operations all succeeded. A plan that failed
    /// is dropped instead (the executor removed what it had made).
    pub fn commit(&mut self, plan: &Plan) -> Result<(), TopologyError> {
        self.check(&plan.change)?;
        match &plan.change {
            Change::None => {}
            Change::Subnet {
                tuple,
                bridge,
                tunnel,
                vnics,
            } => {
                self.names.extend(plan.change.created());
                let s = self.subnets.entry(tuple.clone()).or_default();
                if bridge.is_some() {
                    s.bridge = bridge.clone();
                }
                if tunnel.is_some() {
                    s.tunnel = tunnel.clone();
                }
                for (instance, want, name) in vnics {
                    self.members.insert(
                        instance.clone(),
                        Member {
                            want: want.clone(),
                            vnic: Some(name.clone()),
                        },
                    );
                }
            }
            Change::Cnci {
                instance,
                want,
                name,
            } => {
                self.names.insert(name.clone());
                self.cncis.insert(
                    instance.clone(),
                    Cnci {
                        want: want.clone(),
                        name: name.clone(),
                    },
                );
            }
            Change::Unplug {
                instance,
                deleted,
                subnet,
            } => {
                for name in deleted {
                    self.names.remove(name);
                }
                // A veth pair goes as a whole.
                if let Some(Member {
                    want,
                    vnic: Some(vnic),
                }) = self.members.get(instance)
                {
                    if let (true, Some(peer)) = (want.container, peer_name(vnic)) {
                        self.names.remove(&peer);
                    }
                }
                self.members.remove(instance);
                self.cncis.remove(instance);
                if let Some(tuple) = subnet {
                    self.subnets.remove(tuple);
                }
            }
        }
        Ok(())
    }

    /// Reads the topology back from a link dump and the instances'
    /// records (instance id and [`want`] of every instance the launcher
    /// keeps): which links are ours, which are orphans to delete, and the
    /// repairs that recreate what is missing (a missing bridge or tunnel
    /// is repaired, not fatal).
    pub fn rebuild(
        compute_ip: Ipv4Addr,
        parent: &str,
        links: &[Link],
        records: &[(String, Want)],
        rand: &mut dyn FnMut() -> u32,
    ) -> Rebuild {
        Topology::rebuild_from(Topology::new(compute_ip, parent), links, records, rand)
    }

    /// [`Topology::rebuild`] onto an empty topology with its own settings
    /// (the container MTU).
    pub fn rebuild_from(
        empty: Topology,
        links: &[Link],
        records: &[(String, Want)],
        rand: &mut dyn FnMut() -> u32,
    ) -> Rebuild {
        Rebuilder::new(empty, records).run(links, rand)
    }
}

/// The state of one [`Topology::rebuild`].
struct Rebuilder<'a> {
    topology: Topology,
    /// Alias text of every recorded instance's own link → instance and want.
    by_alias: BTreeMap<String, (&'a str, &'a Want)>,
    /// Tuples with a recorded instance: their bridge and tunnel are not orphans.
    used: BTreeSet<&'a Tuple>,
    problems: Vec<String>,
}

/// Our links found in a dump, per tuple and per instance.
#[derive(Default)]
struct Found<'l> {
    bridges: BTreeMap<Tuple, &'l Link>,
    tunnels: BTreeMap<Tuple, &'l Link>,
    vnics: BTreeMap<String, &'l Link>,
    cncis: BTreeMap<String, &'l Link>,
    orphans: Vec<(&'l Link, Alias)>,
    foreign: usize,
}

impl<'a> Rebuilder<'a> {
    fn new(topology: Topology, records: &'a [(String, Want)]) -> Rebuilder<'a> {
        let mut r = Rebuilder {
            topology,
            by_alias: BTreeMap::new(),
            used: BTreeSet::new(),
            problems: Vec::new(),
        };
        let mut seen = BTreeSet::new();
        for (instance, want) in records {
            let alias = want.alias().to_string();
            if !seen.insert(instance.as_str()) {
                r.problems.push(format!(
                    "instance {instance} recorded twice: second ignored"
                ));
            } else if let Some((other, _)) = r.by_alias.get(&alias) {
                r.problems.push(format!(
                    "instance {instance}: link alias {alias} is already used by instance {other}"
                ));
            } else {
                r.by_alias.insert(alias, (instance.as_str(), want));
                if let Want::Vnic(w) = want {
                    r.used.insert(&w.tuple);
                }
            }
        }
        r
    }

    /// Sorts every link into ours (by tuple or instance), orphan or foreign.
    fn classify<'l>(&self, links: &'l [Link]) -> Found<'l> {
        let mut f = Found::default();
        for link in links {
            let Some(alias) = our_alias(link) else {
                f.foreign += 1;
                continue;
            };
            let ours = match &alias {
                Alias::Bridge(t) if self.used.contains(t) && !f.bridges.contains_key(t) => {
                    f.bridges.insert(t.clone(), link);
                    true
                }
                Alias::Tunnel(t) if self.used.contains(t) && !f.tunnels.contains_key(t) => {
                    f.tunnels.insert(t.clone(), link);
                    true
                }
                Alias::Vnic(..) | Alias::Cnci { .. } => {
                    match self.by_alias.get(&alias.to_string()) {
                        Some((i, Want::Vnic(w)))
                            if !f.vnics.contains_key(*i)
                                && (link.kind.as_deref() == Some("veth")) == w.container =>
                        {
                            f.vnics.insert(i.to_string(), link);
                            true
                        }
                        Some((i, Want::Cnci(_))) if !f.cncis.contains_key(*i) => {
                            f.cncis.insert(i.to_string(), link);
                            true
                        }
                        _ => false,
                    }
                }
                _ => false,
            };
            if !ours {
                f.orphans.push((link, alias));
            }
        }
        f
    }

    fn run(mut self, links: &[Link], rand: &mut dyn FnMut() -> u32) -> Rebuild {
        self.topology.set_names_in_use(links);
        let found = self.classify(links);
        let up = |l: &Link| l.flags & IFF_UP != 0;
        let present = |l: &Link, bridge: Option<&Link>| Present {
            name: l.name.clone(),
            enslaved: bridge.is_some_and(|b| l.master == Some(b.index)),
            up: up(l),
        };

        // Record what exists.
        let t = &mut self.topology;
        for tuple in &self.used {
            let s = Subnet {
                bridge: found.bridges.get(*tuple).map(|l| l.name.clone()),
                tunnel: found.tunnels.get(*tuple).map(|l| l.name.clone()),
            };
            if s.bridge.is_some() || s.tunnel.is_some() {
                t.subnets.insert((*tuple).clone(), s);
            }
        }
        for (instance, want) in self.by_alias.values() {
            match want {
                Want::Vnic(w) => {
                    let vnic = found.vnics.get(*instance).map(|l| l.name.clone());
                    t.members.insert(
                        instance.to_string(),
                        Member {
                            want: w.clone(),
                            vnic,
                        },
                    );
                }
                Want::Cnci(w) => {
                    if let Some(l) = found.cncis.get(*instance) {
                        t.cncis.insert(
                            instance.to_string(),
                            Cnci {
                                want: w.clone(),
                                name: l.name.clone(),
                            },
                        );
                    }
                }
            }
        }

        // Repairs: per tuple, then per concentrator.
        let mut repairs = Vec::new();
        let mut problems = std::mem::take(&mut self.problems);
        for tuple in &self.used {
            let bridge = found.bridges.get(*tuple).copied();
            let mut vnics = Vec::new();
            let mut new = Vec::new();
            for (instance, want) in self.by_alias.values() {
                let Want::Vnic(w) = want else { continue };
                if w.tuple != **tuple {
                    continue;
                }
                match found.vnics.get(*instance) {
                    Some(l) => vnics.push(present(l, bridge)),
                    None => new.push((*instance, w)),
                }
            }
            let state = SubnetState {
                tuple,
                bridge: bridge.map(|b| Present {
                    name: b.name.clone(),
                    enslaved: true,
                    up: up(b),
                }),
                tunnel: found.tunnels.get(*tuple).map(|l| present(l, bridge)),
                vnics,
                new,
            };
            match self.topology.subnet_plan(state, rand) {
                Ok(mut plan) if !plan.ops.is_empty() => {
                    plan.vnic_name.clear();
                    // The repairs are independent plans: none may pick a
                    // name another one picked.
                    self.topology.names.extend(plan.change.created());
                    repairs.push(plan);
                }
                Ok(_) => {}
                Err(e) => problems.push(format!("tenant network br_{tuple}: {e}")),
            }
        }
        for (instance, want) in self.by_alias.values() {
            let Want::Cnci(w) = want else { continue };
            match found.cncis.get(*instance) {
                Some(l) => {
                    let mut ops = Vec::new();
                    if l.mac != Some(w.mac) {
                        ops.push(LinkOp::SetMac {
                            name: l.name.clone(),
                            mac: w.mac,
                        });
                    }
                    if !up(l) {
                        ops.push(LinkOp::Up {
                            name: l.name.clone(),
                        });
                    }
                    if !ops.is_empty() {
                        repairs.push(Plan {
                            ops,
                            vnic_name: l.name.clone(),
                            event: None,
                            what: format!(
                                "concentrator {instance}: macvtap {} fixed in place",
                                l.name
                            ),
                            change: Change::None,
                        });
                    }
                }
                None => match self.topology.cnci_plan(instance, w, rand) {
                    Ok(plan) => {
                        self.topology.names.extend(plan.change.created());
                        repairs.push(plan);
                    }
                    Err(e) => problems.push(format!("concentrator {instance}: {e}")),
                },
            }
        }

        let orphans = deletions(found.orphans.iter().map(|(l, a)| (*l, a)));
        let summary = summary(&found, &repairs, &problems);
        Rebuild {
            topology: self.topology,
            orphans,
            repairs,
            problems,
            summary,
        }
    }
}

fn summary(found: &Found<'_>, repairs: &[Plan], problems: &[String]) -> String {
    let mut s = format!(
        "network links: ours {} bridge(s), {} tunnel(s), {} vnic(s), {} macvtap(s); {} foreign",
        found.bridges.len(),
        found.tunnels.len(),
        found.vnics.len(),
        found.cncis.len(),
        found.foreign,
    );
    let orphans: Vec<String> = found
        .orphans
        .iter()
        .map(|(l, a)| format!("{} ({a})", l.name))
        .collect();
    if !orphans.is_empty() {
        s += &format!("; orphans to delete: {}", orphans.join(", "));
    }
    for r in repairs {
        s += &format!("; repair: {}", r.what);
        if r.event.is_some() {
            s += " (TenantAdded)";
        }
    }
    for p in problems {
        s += &format!("; problem: {p}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payloads::errors::Reason;
    use crate::payloads::VmType;

    const TENANT: &str = "11111111-2222-4333-8444-555555555555";
    const CONC: &str = "0a0b0c0d-0000-4000-8000-000000000030";
    const T: &str = "11111111-2222-4333-8444-555555555555_172.16.5.0/24_0a0b0c0d-0000-4000-8000-000000000030_192.168.42.21";
    const CN_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 42, 10);
    const MAC7: Mac = [2, 0, 0xac, 0x10, 5, 7];

    /// The configuration of a VM on the worked example's subnet with
    /// private address 172.16.5.`last`.
    fn config(instance: &str, last: u8) -> InstanceConfig {
        let mut c = InstanceConfig {
            instance_uuid: instance.into(),
            tenant_uuid: TENANT.into(),
            ..InstanceConfig::default()
        };
        c.network.vnic_mac = format!("02:00:ac:10:05:{last:02x}");
        c.network.vnic_uuid = "0a0b0c0d-0000-4000-8000-000000000020".into();
        c.network.private_ip = format!("172.16.5.{last}");
        c.network.concentrator_ip = "192.168.42.21".into();
        c.network.concentrator_uuid = CONC.into();
        c.network.subnet = "172.16.5.0/24".into();
        c
    }

    fn vm(instance: &str, last: u8) -> Want {
        want(&config(instance, last)).unwrap()
    }

    fn container(instance: &str, last: u8) -> Want {
        let mut c = config(instance, last);
        c.vm_type = VmType::Docker;
        want(&c).unwrap()
    }

    fn cnci(instance: &str, vnic_uuid: &str) -> Want {
        let mut c = config(instance, 9);
        c.network_node = true;
        c.network.vnic_uuid = vnic_uuid.into();
        c.network.vnic_mac = "02:00:8c:ba:f9:45".into();
        want(&c).unwrap()
    }

    /// Random values from a list, then 1, 2, 3, ...
    fn rand_from(values: &[u32]) -> impl FnMut() -> u32 + use<'_> {
        let mut values = values.iter().copied();
        let mut n = 0;
        move || {
            values.next().unwrap_or_else(|| {
                n += 1;
                n
            })
        }
    }

    fn topology() -> Topology {
        Topology::new(CN_IP, "eth0")
    }

    fn name(n: &str) -> String {
        n.to_string()
    }

    /// A kernel that keeps links, applies operations like the executor
    /// (the first failure undoes the links the list made, in reverse
    /// order) and dumps them.
    #[derive(Default)]
    struct Kernel {
        links: Vec<Link>,
        next: u32,
        /// Fail the operation with this position in the next list.
        fail_at: Option<usize>,
    }

    impl Kernel {
        fn with_eth0() -> Kernel {
            let mut k = Kernel::default();
            k.add("eth0", None, None);
            k
        }

        fn add(&mut self, name: &str, kind: Option<&str>, alias: Option<&str>) -> u32 {
            self.next += 1;
            self.links.push(Link {
                index: self.next,
                name: name.into(),
                alias: alias.map(str::to_string),
                kind: kind.map(str::to_string),
                mtu: 1500,
                ..Link::default()
            });
            self.next
        }

        fn get(&mut self, name: &str) -> Result<&mut Link, String> {
            self.links
                .iter_mut()
                .find(|l| l.name == name)
                .ok_or(format!("{name}: no such device"))
        }

        fn index(&self, name: &str) -> Option<u32> {
            self.links.iter().find(|l| l.name == name).map(|l| l.index)
        }

        fn delete(&mut self, name: &str) -> Result<(), String> {
            let index = self.index(name).ok_or(format!("{name}: no such device"))?;
            let peer = peer_name(name);
            self.links
                .retain(|l| l.index != index && Some(&l.name) != peer.as_ref());
            for l in &mut self.links {
                if l.master == Some(index) {
                    l.master = None;
                }
            }
            Ok(())
        }

        fn op(&mut self, op: &LinkOp, made: &mut Vec<String>) -> Result<(), String> {
            match op {
                LinkOp::Create { name, kind } => {
                    if self.index(name).is_some() {
                        return Err(format!("{name}: file exists"));
                    }
                    let k = match kind {
                        NewLink::Bridge => "bridge",
                        NewLink::Gretap { .. } => "gretap",
                        NewLink::Veth { peer } => {
                            self.add(peer, Some("veth"), None);
                            "veth"
                        }
                        NewLink::Macvtap { .. } => "macvtap",
                        NewLink::Tap => "tun",
                    };
                    self.add(name, Some(k), None);
                    made.push(name.clone());
                }
                LinkOp::SetAlias { name, alias } => self.get(name)?.alias = Some(alias.clone()),
                LinkOp::SetMaster { name, master } => {
                    let m = self
                        .index(master)
                        .ok_or(format!("{master}: no such device"))?;
                    self.get(name)?.master = Some(m);
                }
                LinkOp::SetMac { name, mac } => self.get(name)?.mac = Some(*mac),
                LinkOp::SetMtu { name, mtu } => self.get(name)?.mtu = *mtu,
                LinkOp::Up { name } => self.get(name)?.flags |= IFF_UP,
                LinkOp::Delete { name } => self.delete(name)?,
            }
            Ok(())
        }

        fn run(&mut self, ops: &[LinkOp]) -> Result<(), String> {
            let fail_at = self.fail_at.take();
            let mut made = Vec::new();
            for (i, op) in ops.iter().enumerate() {
                let r = if fail_at == Some(i) {
                    Err("injected failure".to_string())
                } else {
                    self.op(op, &mut made)
                };
                if let Err(e) = r {
                    for name in made.iter().rev() {
                        let _ = self.delete(name);
                    }
                    return Err(e);
                }
            }
            Ok(())
        }

        /// Runs a plan and commits it when it succeeded.
        fn apply(&mut self, t: &mut Topology, plan: &Plan) -> Result<(), String> {
            self.run(&plan.ops)?;
            t.commit(plan).map_err(|e| e.to_string())
        }

        fn named(&self, prefix: &str) -> Vec<&Link> {
            self.links
                .iter()
                .filter(|l| l.name.starts_with(prefix))
                .collect()
        }
    }

    /// The worked example: first VM of a tenant subnet on a compute node.
    #[test]
    fn worked_example() {
        let want = vm("i1", 7);
        assert_eq!(want.mac(), MAC7);
        let mut rand = rand_from(&[0x7d3e21a9, 0xc04f5, 0x9a0b1c2]);
        let plan = topology().plug("i1", &want, &mut rand).unwrap();
        let (br, gre, tap) = (name("sbr_7d3e21a9"), name("sgt_c04f5"), name("svn_9a0b1c2"));
        assert_eq!(
            plan.ops,
            vec![
                LinkOp::Create {
                    name: br.clone(),
                    kind: NewLink::Bridge
                },
                LinkOp::SetAlias {
                    name: br.clone(),
                    alias: format!("br_{T}")
                },
                LinkOp::Create {
                    name: gre.clone(),
                    kind: NewLink::Gretap {
                        local: CN_IP,
                        remote: Ipv4Addr::new(192, 168, 42, 21),
                        key: 331_948,
                    },
                },
                LinkOp::SetAlias {
                    name: gre.clone(),
                    alias: format!("gre_{T}")
                },
                LinkOp::SetMaster {
                    name: gre.clone(),
                    master: br.clone()
                },
                LinkOp::Up { name: gre.clone() },
                LinkOp::Up { name: br.clone() },
                LinkOp::Create {
                    name: tap.clone(),
                    kind: NewLink::Tap
                },
                LinkOp::SetAlias {
                    name: tap.clone(),
                    alias: format!("vnic_{T}##172.16.5.7")
                },
                LinkOp::SetMaster {
                    name: tap.clone(),
                    master: br.clone()
                },
                LinkOp::Up { name: tap.clone() },
            ]
        );
        assert_eq!(plan.vnic_name, tap);
        let change = plan.event.clone().unwrap();
        assert_eq!(change.kind, TenantEventKind::Added);
        assert_eq!(
            change.event("launcher-uuid").to_yaml(TenantEventKind::Added),
            "tenant_added:\n  agent_uuid: launcher-uuid\n  agent_ip: 192.168.42.10\n  tenant_uuid: 11111111-2222-4333-8444-555555555555\n  tenant_subnet: 172.16.5.0/24\n  concentrator_uuid: 0a0b0c0d-0000-4000-8000-000000000030\n  concentrator_ip: 192.168.42.21\n  subnet_key: 331948\n"
        );
    }

    #[test]
    fn two_instances_on_a_subnet_then_deletes() {
        let mut k = Kernel::with_eth0();
        let mut t = topology();
        let mut rand = rand_from(&[]);
        let mut events = Vec::new();

        let a = t.plug("a", &vm("a", 7), &mut rand).unwrap();
        k.apply(&mut t, &a).unwrap();
        events.extend(a.event.clone());
        let b = t.plug("b", &vm("b", 8), &mut rand).unwrap();
        // Case B: the tap joins the existing bridge.
        assert_eq!(b.ops.len(), 4);
        assert!(matches!(
            &b.ops[0],
            LinkOp::Create {
                kind: NewLink::Tap,
                ..
            }
        ));
        assert_eq!(
            b.ops[2],
            LinkOp::SetMaster {
                name: b.vnic_name.clone(),
                master: name("sbr_1")
            }
        );
        assert_eq!(b.event, None);
        k.apply(&mut t, &b).unwrap();
        assert_eq!(
            (
                k.named("sbr").len(),
                k.named("sgt").len(),
                k.named("svn").len()
            ),
            (1, 1, 2)
        );
        let bridge = k.index("sbr_1");
        assert!(k
            .named("s")
            .iter()
            .filter(|l| !l.name.starts_with("sbr"))
            .all(|l| l.master == bridge));
        assert!(k.named("s").iter().all(|l| l.flags & IFF_UP != 0));

        // RESTART of a stopped instance: case A.
        let again = t.plug("a", &vm("a", 7), &mut rand).unwrap();
        assert!(again.ops.is_empty());
        assert_eq!(
            (again.vnic_name.as_str(), again.event.as_ref()),
            (a.vnic_name.as_str(), None)
        );
        assert_eq!(t.vnic_of("a"), Some(a.vnic_name.as_str()));

        let del_a = t.unplug("a");
        assert_eq!(
            del_a.ops,
            vec![LinkOp::Delete {
                name: a.vnic_name.clone()
            }]
        );
        assert_eq!(del_a.event, None);
        k.apply(&mut t, &del_a).unwrap();
        let del_b = t.unplug("b");
        assert_eq!(
            del_b.ops,
            vec![
                LinkOp::Delete {
                    name: b.vnic_name.clone()
                },
                LinkOp::Delete {
                    name: name("sgt_2")
                },
                LinkOp::Delete {
                    name: name("sbr_1")
                },
            ]
        );
        k.apply(&mut t, &del_b).unwrap();
        events.extend(del_b.event.clone());
        assert_eq!(k.links.len(), 1, "only eth0 is left: {:?}", k.links);
        assert_eq!(
            events.iter().map(|e| e.kind).collect::<Vec<_>>(),
            [TenantEventKind::Added, TenantEventKind::Removed]
        );
        assert_eq!(events[1].event("u").subnet_key, 331_948);
        // Nothing left to delete.
        let none = t.unplug("b");
        assert!(none.ops.is_empty() && none.event.is_none() && none.vnic_name.is_empty());
        assert!(t.commit(&none).is_ok());
    }

    /// A failed plan is not committed; the executor removed what it made, so
    /// the next plug starts from scratch again (the original kept a bridge
    /// in its maps that did not exist).
    #[test]
    fn a_failed_plan_leaves_nothing_recorded() {
        let mut k = Kernel::with_eth0();
        let mut t = topology();
        let mut rand = rand_from(&[]);
        for fail_at in [2, 7, 10] {
            let plan = t.plug("a", &vm("a", 7), &mut rand).unwrap();
            assert!(plan.event.is_some(), "still case C");
            k.fail_at = Some(fail_at);
            assert!(k.apply(&mut t, &plan).is_err());
            assert_eq!(k.links.len(), 1, "{:?}", k.links);
            assert_eq!(t.vnic_of("a"), None);
        }
        let plan = t.plug("a", &vm("a", 7), &mut rand).unwrap();
        k.apply(&mut t, &plan).unwrap();
        // A START failing after its tap exists: unplug removes everything.
        let undo = t.unplug("a");
        k.apply(&mut t, &undo).unwrap();
        assert_eq!(k.links.len(), 1);
        assert_eq!(undo.event.map(|e| e.kind), Some(TenantEventKind::Removed));
    }

    #[test]
    fn containers_get_a_veth_pair() {
        let mut rand = rand_from(&[1, 2, 3]);
        let plan = topology().plug("c", &container("c", 7), &mut rand).unwrap();
        let vnic: Vec<LinkOp> = plan.ops[7..].to_vec();
        let (host, peer) = (name("svn_3"), name("svp_3"));
        assert_eq!(
            vnic,
            vec![
                LinkOp::Create {
                    name: host.clone(),
                    kind: NewLink::Veth { peer: peer.clone() }
                },
                LinkOp::SetAlias {
                    name: host.clone(),
                    alias: format!("vnic_{T}##172.16.5.7")
                },
                LinkOp::SetMac {
                    name: peer.clone(),
                    mac: MAC7
                },
                LinkOp::SetMtu {
                    name: host.clone(),
                    mtu: 1400
                },
                LinkOp::SetMtu {
                    name: peer.clone(),
                    mtu: 1400
                },
                LinkOp::SetMaster {
                    name: host.clone(),
                    master: name("sbr_1")
                },
                LinkOp::Up { name: host.clone() },
            ]
        );
        assert!(plan.event.is_some());

        // The peer's name must be free too.
        let mut k = Kernel::with_eth0();
        k.add("svp_5", Some("dummy"), None);
        let mut t = topology();
        t.set_names_in_use(&k.links);
        let mut rand = rand_from(&[1, 2, 5, 6]);
        let plan = t.plug("c", &container("c", 7), &mut rand).unwrap();
        assert_eq!(plan.vnic_name, "svn_6");
        k.apply(&mut t, &plan).unwrap();
        assert_eq!(k.named("svp_6")[0].mac, Some(MAC7));
        let del = t.unplug("c");
        k.apply(&mut t, &del).unwrap();
        assert_eq!(k.links.len(), 2, "eth0 and the foreign svp_5");
        assert!(!t.names.contains("svp_6") && t.names.contains("svp_5"));
    }

    /// A VM and a container on one subnet share one bridge and tunnel
    /// (one TenantAdded); the veth pair gets the configured MTU; the
    /// tuple is emptied (bridge, tunnel and docker network go) only with
    /// the last instance of either kind; a rebuild finds the veth again
    /// by its alias.
    #[test]
    fn a_vm_and_a_container_share_one_bridge() {
        let mut k = Kernel::with_eth0();
        let mut t = topology().with_container_mtu(1300);
        let mut rand = rand_from(&[]);
        let vm_plan = t.plug("v", &vm("v", 7), &mut rand).unwrap();
        assert!(vm_plan.event.is_some());
        k.apply(&mut t, &vm_plan).unwrap();
        let c_plan = t.plug("c", &container("c", 8), &mut rand).unwrap();
        assert!(c_plan.event.is_none(), "the bridge exists: no TenantAdded");
        assert!(!c_plan.ops.iter().any(|op| matches!(
            op,
            LinkOp::Create {
                kind: NewLink::Bridge | NewLink::Gretap { .. },
                ..
            }
        )));
        k.apply(&mut t, &c_plan).unwrap();
        assert_eq!(k.named("sbr").len(), 1);
        assert_eq!(k.named("sgt").len(), 1);
        let host = &c_plan.vnic_name;
        let peer = peer_name(host).unwrap();
        let bridge = k.named("sbr")[0].index;
        let h = k.named(host)[0].clone();
        assert_eq!(
            (h.kind.as_deref(), h.master, h.mtu),
            (Some("veth"), Some(bridge), 1300)
        );
        assert!(h.flags & IFF_UP != 0);
        assert_eq!(h.alias, Some(format!("vnic_{T}##172.16.5.8")));
        let p = k.named(&peer)[0].clone();
        assert_eq!(
            (p.mac, p.mtu, p.master),
            (Some([2, 0, 0xac, 0x10, 5, 8]), 1300, None)
        );
        assert!(
            p.flags & IFF_UP == 0,
            "docker brings the peer up in the container"
        );
        let tuple = match vm("v", 7) {
            Want::Vnic(w) => w.tuple,
            Want::Cnci(_) => unreachable!(),
        };

        // A rebuild (launcher restarted) adopts both, repairs nothing.
        let wants = [("v", vm("v", 7)), ("c", container("c", 8))];
        let r = Topology::rebuild_from(
            Topology::new(CN_IP, "eth0").with_container_mtu(1300),
            &k.links,
            &records(&wants),
            &mut rand,
        );
        assert!(
            r.repairs.is_empty() && r.orphans.is_empty(),
            "{}",
            r.summary
        );
        assert_eq!(r.topology.vnic_of("c"), Some(host.as_str()));

        // The container goes first: the tuple stays in use.
        let del = t.unplug("c");
        assert_eq!(del.ops, vec![LinkOp::Delete { name: host.clone() }]);
        assert_eq!(del.emptied(), None);
        k.apply(&mut t, &del).unwrap();
        assert!(k.named("svp").is_empty(), "the peer goes with its pair");
        assert!(t.tuple_in_use(&tuple));
        // The VM last: bridge, tunnel and the docker network go.
        let del = t.unplug("v");
        assert_eq!(del.emptied(), Some(&tuple));
        k.apply(&mut t, &del).unwrap();
        assert!(!t.tuple_in_use(&tuple));
        assert_eq!(k.links.len(), 1, "only eth0 is left");
        // And the other way round: the container is the last one.
        let mut t = topology();
        for (i, w) in [("c", container("c", 8)), ("v", vm("v", 7))] {
            let plan = t.plug(i, &w, &mut rand).unwrap();
            k.apply(&mut t, &plan).unwrap();
        }
        let del = t.unplug("v");
        k.apply(&mut t, &del).unwrap();
        let del = t.unplug("c");
        assert_eq!(del.emptied(), Some(&tuple));
        k.apply(&mut t, &del).unwrap();
        assert_eq!(k.links.len(), 1);
    }

    /// The RESTART of a container whose veth pair died with its namespace
    /// (dockerd stopped or restarted): the plan says "exists", the dump
    /// says it is lost; read again, the plug makes the pair anew with the
    /// same alias, MAC and MTU, in the bridge, up. When the bridge and the
    /// tunnel are gone too, they come back with a TenantAdded.
    #[test]
    fn a_lost_veth_pair_is_made_again_at_restart() {
        let mut k = Kernel::with_eth0();
        let mut t = topology().with_container_mtu(1300);
        let mut rand = rand_from(&[]);
        let wants = [("v", vm("v", 7)), ("c", container("c", 8))];
        for (i, w) in &wants {
            let plan = t.plug(i, w, &mut rand).unwrap();
            k.apply(&mut t, &plan).unwrap();
        }
        let old = t.vnic_of("c").unwrap().to_string();
        assert!(!t.lost_links("c", &k.links) && !t.lost_links("v", &k.links));
        assert!(!t.lost_links("unknown", &k.links));
        // The pair goes as a whole; the VM's tap stays.
        k.delete(&old).unwrap();
        assert!(t.lost_links("c", &k.links));
        assert!(!t.lost_links("v", &k.links));
        // The bookkeeping alone still believes it exists.
        assert!(t.plug("c", &wants[1].1, &mut rand).unwrap().ops.is_empty());
        // A link with the recorded name but not ours is not the pair.
        k.add(&old, Some("dummy"), None);
        assert!(t.lost_links("c", &k.links));
        k.delete(&old).unwrap();

        let reread = |k: &Kernel, rand: &mut dyn FnMut() -> u32| {
            Topology::rebuild_from(
                Topology::new(CN_IP, "eth0").with_container_mtu(1300),
                &k.links,
                &records(&wants),
                rand,
            )
            .topology
        };
        let mut t = reread(&k, &mut rand);
        let plan = t.plug("c", &wants[1].1, &mut rand).unwrap();
        assert_eq!(plan.event, None, "bridge and tunnel are there");
        assert!(!plan.ops.iter().any(|op| matches!(
            op,
            LinkOp::Create {
                kind: NewLink::Bridge | NewLink::Gretap { .. },
                ..
            }
        )));
        k.apply(&mut t, &plan).unwrap();
        let host = k.named(&plan.vnic_name)[0].clone();
        let bridge = k.named("sbr")[0].index;
        assert_eq!(host.alias, Some(format!("vnic_{T}##172.16.5.8")));
        assert_eq!(
            (host.kind.as_deref(), host.master, host.mtu),
            (Some("veth"), Some(bridge), 1300)
        );
        assert!(host.flags & IFF_UP != 0);
        let peer = k.named(&peer_name(&plan.vnic_name).unwrap())[0].clone();
        assert_eq!((peer.mac, peer.mtu), (Some([2, 0, 0xac, 0x10, 5, 8]), 1300));
        assert!(!t.lost_links("c", &k.links));
        assert_whole(&k, &t, &wants);

        // Everything of the subnet gone (a reboot of the links behind
        // the launcher's back): bridge and tunnel come back, the VM's tap
        // is put in the new bridge, and a TenantAdded goes out.
        for prefix in ["svn", "sgt", "sbr"] {
            let names: Vec<String> = k.named(prefix).iter().map(|l| l.name.clone()).collect();
            for n in names {
                let _ = k.delete(&n);
            }
        }
        assert!(t.lost_links("c", &k.links) && t.lost_links("v", &k.links));
        let mut t = reread(&k, &mut rand);
        let plan = t.plug("c", &wants[1].1, &mut rand).unwrap();
        assert_eq!(
            plan.event.as_ref().map(|e| e.kind),
            Some(TenantEventKind::Added)
        );
        k.apply(&mut t, &plan).unwrap();
        assert_eq!(k.named("sbr").len(), 1);
        assert_eq!(k.named("sgt").len(), 1);
        assert!(!t.lost_links("c", &k.links));
        // The VM's RESTART then makes its tap, without another event.
        assert!(t.lost_links("v", &k.links) || t.vnic_of("v").is_none());
        let plan = t.plug("v", &wants[0].1, &mut rand).unwrap();
        assert_eq!(plan.event, None);
        k.apply(&mut t, &plan).unwrap();
        assert_whole(&k, &t, &wants);
    }

    #[test]
    fn concentrators_get_a_macvtap() {
        let mut k = Kernel::with_eth0();
        let mut t = topology();
        let mut rand = rand_from(&[0xabc]);
        let want = cnci("n1", "0a0b0c0d-0000-4000-8000-000000000021");
        let mac = [2, 0, 0x8c, 0xba, 0xf9, 0x45];
        let plan = t.plug("n1", &want, &mut rand).unwrap();
        let svc = name("svc_abc");
        assert_eq!(
            plan.ops,
            vec![
                LinkOp::Create {
                    name: svc.clone(),
                    kind: NewLink::Macvtap {
                        parent: name("eth0"),
                        txqlen: 500
                    },
                },
                LinkOp::SetAlias {
                    name: svc.clone(),
                    alias: format!("cncivnic_{TENANT}_0a0b0c0d-0000-4000-8000-000000000021"),
                },
                LinkOp::SetMac {
                    name: svc.clone(),
                    mac
                },
                LinkOp::Up { name: svc.clone() },
            ]
        );
        assert_eq!(
            (plan.vnic_name.as_str(), plan.event.as_ref()),
            ("svc_abc", None)
        );
        k.apply(&mut t, &plan).unwrap();
        let again = t.plug("n1", &want, &mut rand).unwrap();
        assert!(again.ops.is_empty());
        assert_eq!(again.vnic_name, "svc_abc");
        // The same alias for another instance is refused.
        assert!(matches!(
            t.plug("n2", &want, &mut rand),
            Err(TopologyError::AliasInUse { instance, .. }) if instance == "n1"
        ));
        let del = t.unplug("n1");
        assert_eq!(
            (del.ops.clone(), del.event.clone()),
            (vec![LinkOp::Delete { name: svc }], None)
        );
        k.apply(&mut t, &del).unwrap();
        assert_eq!(k.links.len(), 1);
        assert_eq!(t.vnic_of("n1"), None);
    }

    #[test]
    fn conflicts_and_changes_are_refused() {
        let mut k = Kernel::with_eth0();
        let mut t = topology();
        let mut rand = rand_from(&[]);
        let plan = t.plug("a", &vm("a", 7), &mut rand).unwrap();
        k.apply(&mut t, &plan).unwrap();
        // Same tuple and private IP: the original would have shared the tap.
        let e = t.plug("b", &vm("b", 7), &mut rand).unwrap_err();
        assert_eq!(
            e,
            TopologyError::AliasInUse {
                alias: format!("vnic_{T}##172.16.5.7"),
                instance: name("a")
            }
        );
        assert!(e.to_string().contains("instance a"));
        assert_eq!(e.reason().as_str(), "network_failure");
        assert_eq!(
            t.plug("a", &vm("a", 8), &mut rand).unwrap_err(),
            TopologyError::Changed {
                instance: name("a")
            }
        );
        assert!(matches!(
            t.plug("a", &cnci("a", "ab"), &mut rand),
            Err(TopologyError::Changed { .. })
        ));
    }

    /// Two plans computed from one state for the same tuple: the second
    /// one cannot be committed.
    #[test]
    fn a_stale_plan_is_not_recorded() {
        let mut t = topology();
        let mut rand = rand_from(&[]);
        let a = t.plug("a", &vm("a", 7), &mut rand).unwrap();
        let b = t.plug("b", &vm("b", 8), &mut rand).unwrap();
        t.commit(&a).unwrap();
        let e = t.commit(&b).unwrap_err();
        assert!(e.to_string().contains("already recorded"), "{e}");
        assert_eq!(t.vnic_of("b"), None);
        assert!(t.commit(&a).is_err(), "committed twice");
        let del = t.unplug("a");
        t.commit(&del).unwrap();
        assert!(t.commit(&del).is_err());
    }

    #[test]
    fn names_avoid_links_in_use_and_give_up() {
        let mut k = Kernel::with_eth0();
        k.add("sbr_1", Some("bridge"), None);
        k.add("svn_3", Some("dummy"), None);
        let mut t = topology();
        t.set_names_in_use(&k.links);
        let mut rand = rand_from(&[1, 2, 2, 3, 4]);
        let plan = t.plug("a", &vm("a", 7), &mut rand).unwrap();
        // sbr_1 and svn_3 are taken; sgt_2 does not collide with sbr_2.
        assert_eq!(plan.ops[0].name(), "sbr_2");
        assert_eq!(plan.ops[2].name(), "sgt_2");
        assert_eq!(plan.vnic_name, "svn_4");
        let mut same = || 1u32;
        assert_eq!(
            t.plug("a", &vm("a", 7), &mut same).unwrap_err(),
            TopologyError::Name(NameError::NoFreeName(Prefix::Bridge))
        );
        // Another program took the name between the dump and the create.
        let mut rand = rand_from(&[7, 8, 9]);
        let plan = t.plug("a", &vm("a", 7), &mut rand).unwrap();
        k.add("svn_9", Some("tun"), None);
        assert!(k.apply(&mut t, &plan).unwrap_err().contains("exists"));
        assert_eq!(k.links.len(), 4, "the bridge and tunnel were undone");
        t.set_names_in_use(&k.links);
        let mut rand = rand_from(&[7, 8, 9, 10]);
        let plan = t.plug("a", &vm("a", 7), &mut rand).unwrap();
        assert_eq!(plan.vnic_name, "svn_a");
        k.apply(&mut t, &plan).unwrap();
    }

    #[test]
    fn want_errors() {
        let reason = |c: &InstanceConfig| want(c).unwrap_err().reason().as_str();
        let ok = config("a", 7);
        assert!(want(&ok).is_ok());
        let mut c = ok.clone();
        c.network.private_ip = "::ffff:172.16.5.7".into();
        assert_eq!(
            want(&c),
            want(&ok),
            "an IPv4-mapped address is that IPv4 address"
        );

        for (field, value) in [
            ("mac", "zz"),
            ("mac", "02:00:ac:10:05:07:00:01"),
            ("subnet", "172.16.5.0"),
            ("subnet", "fd00::/64"),
            ("conc", "192.168.42"),
            ("conc", "fd00::1"),
            ("ip", ""),
            ("tenant", "a_b"),
            ("conc_uuid", "x"),
        ] {
            let mut c = ok.clone();
            match field {
                "mac" => c.network.vnic_mac = value.into(),
                "subnet" => c.network.subnet = value.into(),
                "conc" => c.network.concentrator_ip = value.into(),
                "ip" => c.network.private_ip = value.into(),
                "tenant" => c.tenant_uuid = value.into(),
                _ => c.network.concentrator_uuid = value.into(),
            }
            assert_eq!(reason(&c), "invalid_data", "{field} {value:?}");
        }
        // Bad data is reported before missing ids.
        let mut c = ok.clone();
        c.tenant_uuid.clear();
        assert_eq!(reason(&c), "network_failure");
        c.network.vnic_mac = "zz".into();
        assert_eq!(reason(&c), "invalid_data");
        for field in ["vnic_uuid", "conc_uuid"] {
            let mut c = ok.clone();
            match field {
                "vnic_uuid" => c.network.vnic_uuid.clear(),
                _ => c.network.concentrator_uuid.clear(),
            }
            let e = want(&c).unwrap_err();
            assert_eq!(e.reason().as_str(), "network_failure");
            assert!(e.to_string().ends_with("is empty"), "{e}");
        }
        // A vm's vnic_uuid is not in its alias: only its presence counts.
        let mut c = ok.clone();
        c.network.vnic_uuid = "not an id".into();
        assert!(want(&c).is_ok());
        // Network address 0.0.0.0: no tunnel key.
        let mut c = ok.clone();
        c.network.subnet = "0.0.0.0/8".into();
        assert_eq!(reason(&c), "network_failure");
        // An alias the kernel would cut short.
        let mut c = ok.clone();
        c.tenant_uuid = "a".repeat(240);
        assert!(want(&c).unwrap_err().to_string().contains("bytes long"));

        // A concentrator needs the MAC and its ids only.
        let mut c = InstanceConfig {
            network_node: true,
            tenant_uuid: "ab".into(),
            ..InstanceConfig::default()
        };
        c.network.vnic_mac = "02:00:8c:ba:f9:45".into();
        c.network.vnic_uuid = "cd".into();
        assert!(matches!(want(&c), Ok(Want::Cnci(_))));
        c.network.vnic_uuid = "c_d".into();
        assert_eq!(reason(&c), "invalid_data");
        c.network.vnic_uuid.clear();
        assert_eq!(reason(&c), "network_failure");
    }

    /// Plugs `wants` into a fresh topology and kernel.
    fn node(wants: &[(&str, Want)]) -> (Kernel, Topology) {
        let mut k = Kernel::with_eth0();
        let mut t = topology();
        let mut rand = rand_from(&[]);
        for (i, w) in wants {
            let plan = t.plug(i, w, &mut rand).unwrap();
            k.apply(&mut t, &plan).unwrap();
        }
        (k, t)
    }

    fn records(wants: &[(&str, Want)]) -> Vec<(String, Want)> {
        wants
            .iter()
            .map(|(i, w)| (i.to_string(), w.clone()))
            .collect()
    }

    fn rebuild(k: &Kernel, recs: &[(String, Want)]) -> Rebuild {
        Topology::rebuild(
            CN_IP,
            "eth0",
            &k.links,
            recs,
            &mut rand_from(&[100, 101, 102, 103]),
        )
    }

    fn two_vms_and_a_cnci() -> Vec<(&'static str, Want)> {
        vec![
            ("a", vm("a", 7)),
            ("b", vm("b", 8)),
            ("n", cnci("n", "0a0b0c0d-0000-4000-8000-000000000021")),
        ]
    }

    #[test]
    fn rebuild_finds_everything_again() {
        let wants = two_vms_and_a_cnci();
        let (k, t) = node(&wants);
        let r = rebuild(&k, &records(&wants));
        assert!(r.orphans.is_empty() && r.repairs.is_empty() && r.problems.is_empty());
        assert_eq!(
            r.summary,
            "network links: ours 1 bridge(s), 1 tunnel(s), 2 vnic(s), 1 macvtap(s); 1 foreign"
        );
        let mut rand = rand_from(&[]);
        for (i, w) in &wants {
            let plan = r.topology.plug(i, w, &mut rand).unwrap();
            assert!(plan.ops.is_empty(), "{i}");
            assert_eq!(Some(plan.vnic_name.as_str()), t.vnic_of(i));
        }
        assert_eq!(
            r.topology.names,
            t.names.iter().cloned().chain(["eth0".into()]).collect()
        );
    }

    /// A node with two VMs and a concentrator, damaged, then rebuilt.
    fn rebuild_after(
        damage: impl FnOnce(&mut Kernel),
    ) -> (Kernel, Rebuild, Vec<(&'static str, Want)>) {
        let wants = two_vms_and_a_cnci();
        let (mut k, _) = node(&wants);
        damage(&mut k);
        let r = rebuild(&k, &records(&wants));
        (k, r, wants)
    }

    /// Runs the orphan deletions and the repairs, commits the repairs.
    fn repair(k: &mut Kernel, r: &mut Rebuild) {
        k.run(&r.orphans).unwrap();
        for plan in &r.repairs {
            k.apply(&mut r.topology, plan).unwrap();
        }
    }

    /// Everything is in place: plugging gives nothing to do.
    fn assert_whole(k: &Kernel, t: &Topology, wants: &[(&str, Want)]) {
        let mut rand = rand_from(&[]);
        for (i, w) in wants {
            assert!(t.plug(i, w, &mut rand).unwrap().ops.is_empty(), "{i}");
        }
        let again = Topology::rebuild(CN_IP, "eth0", &k.links, &records(wants), &mut rand);
        assert!(
            again.repairs.is_empty() && again.orphans.is_empty(),
            "{}",
            again.summary
        );
        let ours: Vec<(&Link, Alias)> = k
            .links
            .iter()
            .filter_map(|l| our_alias(l).map(|a| (l, a)))
            .collect();
        let bridge = ours
            .iter()
            .find(|(_, a)| matches!(a, Alias::Bridge(_)))
            .unwrap()
            .0
            .index;
        for (l, _) in ours
            .iter()
            .filter(|(_, a)| matches!(a, Alias::Tunnel(_) | Alias::Vnic(..)))
        {
            assert_eq!(l.master, Some(bridge), "{}", l.name);
            assert!(l.flags & IFF_UP != 0, "{}", l.name);
        }
    }

    #[test]
    fn rebuild_repairs_a_missing_tunnel() {
        let (mut k, mut r, wants) = rebuild_after(|k| k.delete("sgt_2").unwrap());
        assert_eq!(r.repairs.len(), 1);
        let plan = &r.repairs[0];
        assert_eq!(
            plan.ops,
            vec![
                LinkOp::Create {
                    name: name("sgt_64"),
                    kind: NewLink::Gretap {
                        local: CN_IP,
                        remote: Ipv4Addr::new(192, 168, 42, 21),
                        key: 331_948
                    },
                },
                LinkOp::SetAlias {
                    name: name("sgt_64"),
                    alias: format!("gre_{T}")
                },
                LinkOp::SetMaster {
                    name: name("sgt_64"),
                    master: name("sbr_1")
                },
                LinkOp::Up {
                    name: name("sgt_64")
                },
            ]
        );
        assert_eq!(plan.event, None, "the concentrator still has its end");
        assert!(
            r.summary.contains("repair: tenant network br_"),
            "{}",
            r.summary
        );
        assert!(r.summary.contains("create tunnel sgt_64"), "{}", r.summary);
        repair(&mut k, &mut r);
        assert_whole(&k, &r.topology, &wants);
    }

    #[test]
    fn rebuild_repairs_a_missing_bridge() {
        let (mut k, mut r, wants) = rebuild_after(|k| k.delete("sbr_1").unwrap());
        assert_eq!(r.repairs.len(), 1);
        let ops = &r.repairs[0].ops;
        assert_eq!(
            ops[0],
            LinkOp::Create {
                name: name("sbr_64"),
                kind: NewLink::Bridge
            }
        );
        let masters: Vec<&str> = ops
            .iter()
            .filter(|o| matches!(o, LinkOp::SetMaster { .. }))
            .map(LinkOp::name)
            .collect();
        assert_eq!(masters, ["sgt_2", "svn_3", "svn_4"]);
        assert_eq!(r.repairs[0].event, None);
        repair(&mut k, &mut r);
        assert_whole(&k, &r.topology, &wants);
    }

    /// After a reboot nothing is left: everything is made again, with a
    /// TenantAdded as the original sends at RESTART.
    #[test]
    fn rebuild_after_a_reboot() {
        let wants = two_vms_and_a_cnci();
        let mut k = Kernel::with_eth0();
        let mut r = rebuild(&k, &records(&wants));
        assert_eq!(r.repairs.len(), 2, "{}", r.summary);
        let subnet = &r.repairs[0];
        assert_eq!(
            subnet.event.as_ref().map(|e| e.kind),
            Some(TenantEventKind::Added)
        );
        assert_eq!(
            subnet
                .ops
                .iter()
                .filter(|o| matches!(o, LinkOp::Create { .. }))
                .count(),
            4
        );
        assert!(matches!(
            &r.repairs[1].ops[0],
            LinkOp::Create {
                kind: NewLink::Macvtap { .. },
                ..
            }
        ));
        assert!(r.summary.contains("(TenantAdded)"), "{}", r.summary);
        repair(&mut k, &mut r);
        assert_whole(&k, &r.topology, &wants);
        // All names are distinct although the repairs were planned together.
        let mut names: Vec<&str> = k.links.iter().map(|l| l.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), k.links.len());
    }

    #[test]
    fn rebuild_repairs_a_missing_vnic_and_links_astray() {
        let (mut k, mut r, wants) = rebuild_after(|k| {
            k.delete("svn_4").unwrap();
            // The other tap lost its master and is down; the macvtap is
            // down with another MAC.
            let tap = k.get("svn_3").unwrap();
            tap.master = None;
            tap.flags = 0;
            let svc = k.get("svc_5").unwrap();
            svc.flags = 0;
            svc.mac = Some([2, 0, 0, 0, 0, 1]);
        });
        assert_eq!(r.repairs.len(), 2, "{}", r.summary);
        let ops = &r.repairs[0].ops;
        assert_eq!(
            ops[0],
            LinkOp::SetMaster {
                name: name("svn_3"),
                master: name("sbr_1")
            }
        );
        assert_eq!(
            ops[1],
            LinkOp::Up {
                name: name("svn_3")
            }
        );
        assert_eq!(
            ops[2],
            LinkOp::Create {
                name: name("svn_64"),
                kind: NewLink::Tap
            }
        );
        assert_eq!(r.repairs[0].event, None);
        assert_eq!(
            r.repairs[1].ops,
            vec![
                LinkOp::SetMac {
                    name: name("svc_5"),
                    mac: [2, 0, 0x8c, 0xba, 0xf9, 0x45]
                },
                LinkOp::Up {
                    name: name("svc_5")
                },
            ]
        );
        repair(&mut k, &mut r);
        assert_whole(&k, &r.topology, &wants);
        assert_eq!(r.topology.vnic_of("b"), Some("svn_64"));
    }

    #[test]
    fn orphans_and_foreign_decoys() {
        let wants = two_vms_and_a_cnci();
        let (mut k, _) = node(&wants);
        // Instance b and the concentrator are gone from the records; a
        // second subnet has links but no record at all.
        let other = [("x", {
            let mut c = config("x", 7);
            c.network.subnet = "172.16.6.0/24".into();
            want(&c).unwrap()
        })];
        let (k2, _) = node(&other);
        for l in &k2.links[1..] {
            k.add(
                &format!("{}x", l.name),
                l.kind.as_deref(),
                l.alias.as_deref(),
            );
        }
        // Decoys: a foreign alias, no alias, an alias that almost parses,
        // our exact alias on a link of another kind.
        k.add("br-lan", Some("bridge"), Some("my lan bridge"));
        k.add("sbr_dead", Some("bridge"), None);
        k.add("sbr_almost", Some("bridge"), Some(&format!("br_{T}_x")));
        k.add("dummy0", Some("dummy"), Some(&format!("br_{T}")));
        k.add(
            "svn_fake",
            Some("dummy"),
            Some(&format!("vnic_{T}##172.16.5.8")),
        );
        let recs = records(&wants[..1]);
        let mut r = rebuild(&k, &recs);
        assert_eq!(
            r.orphans,
            ["svn_4", "svc_5", "svn_3x", "sgt_2x", "sbr_1x"]
                .map(|n| LinkOp::Delete { name: n.into() })
                .to_vec()
        );
        assert!(r.repairs.is_empty(), "{}", r.summary);
        assert!(r.summary.contains("; 6 foreign"), "{}", r.summary);
        assert!(
            r.summary.contains("orphans to delete: svn_4 (vnic_"),
            "{}",
            r.summary
        );
        let before = k.links.len();
        repair(&mut k, &mut r);
        assert_eq!(k.links.len(), before - 5);
        for decoy in [
            "br-lan",
            "sbr_dead",
            "sbr_almost",
            "dummy0",
            "svn_fake",
            "eth0",
        ] {
            assert!(k.index(decoy).is_some(), "{decoy}");
        }
        assert_whole(&k, &r.topology, &wants[..1]);

        // Hard reset: ours and orphans, vnics first, never a decoy.
        let mut k = node(&wants).0;
        k.add("br-lan", Some("bridge"), Some("my lan bridge"));
        k.add("sbr_dead", Some("bridge"), None);
        k.add("dummy0", Some("dummy"), Some(&format!("br_{T}")));
        let ops = hard_reset(&k.links);
        assert_eq!(
            ops,
            ["svn_3", "svn_4", "svc_5", "sgt_2", "sbr_1"]
                .map(|n| LinkOp::Delete { name: n.into() })
                .to_vec()
        );
        k.run(&ops).unwrap();
        assert_eq!(
            k.links.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["eth0", "br-lan", "sbr_dead", "dummy0"]
        );
    }

    /// A bridge whose tuple has a recorded user is ours even when no vnic is
    /// left; a vnic of the wrong kind for its record is an orphan, replaced.
    #[test]
    fn recorded_tuples_keep_their_bridge() {
        let wants = [("a", vm("a", 7))];
        let (mut k, _) = node(&wants);
        k.delete("svn_3").unwrap();
        k.add(
            "svn_77",
            Some("veth"),
            Some(&format!("vnic_{T}##172.16.5.7")),
        );
        let mut r = rebuild(&k, &records(&wants));
        assert_eq!(
            r.orphans,
            vec![LinkOp::Delete {
                name: name("svn_77")
            }]
        );
        assert_eq!(r.repairs.len(), 1);
        assert_eq!(
            r.repairs[0].ops[0],
            LinkOp::Create {
                name: name("svn_64"),
                kind: NewLink::Tap
            }
        );
        // The repair is not run (it failed): DELETE still removes the
        // bridge and tunnel and says so.
        k.run(&r.orphans).unwrap();
        let del = r.topology.unplug("a");
        assert_eq!(
            del.ops,
            vec![
                LinkOp::Delete {
                    name: name("sgt_2")
                },
                LinkOp::Delete {
                    name: name("sbr_1")
                }
            ]
        );
        assert_eq!(del.event.map(|e| e.kind), Some(TenantEventKind::Removed));
        let del = r.topology.unplug("a");
        k.apply(&mut r.topology, &del).unwrap();
        assert_eq!(k.links.len(), 1);
    }

    #[test]
    fn conflicting_records_are_reported() {
        let (k, _) = node(&[]);
        let recs = records(&[("a", vm("a", 7)), ("a", vm("a", 8)), ("b", vm("b", 7))]);
        let r = rebuild(&k, &recs);
        assert_eq!(r.problems.len(), 2, "{:?}", r.problems);
        assert!(r.problems[0].contains("recorded twice"));
        assert!(r.problems[1].contains("already used by instance a"));
        assert!(
            r.summary.contains("problem: instance a recorded twice"),
            "{}",
            r.summary
        );
        // Only a's vnic is made.
        let made: Vec<&str> = r.repairs[0]
            .ops
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    LinkOp::Create {
                        kind: NewLink::Tap,
                        ..
                    }
                )
            })
            .map(LinkOp::name)
            .collect();
        assert_eq!(made.len(), 1);
    }
}
