//! The shell's side of tenant networking (docs/networking.md): the
//! rtnetlink socket, the node's discovered addresses, the topology of the
//! links that are ours, and the tenant events that must reach the server.
//!
//! The decisions are pure (`crate::net`): which links an instance needs,
//! which links are ours, what to repair. This module runs them against the
//! kernel. Netlink requests are answered by the kernel at once (each one
//! waits for its acknowledgement within a bounded time), so a [`NetOp`] is
//! answered in the turn that asked for it.
//!
//! Tenant events (TenantAdded, TenantRemoved) are facts the concentrator
//! needs: each is kept in `<networking dir>/tenant-events.yaml` from the
//! moment the links change until it is handed to a live connection, so
//! neither an outage nor a restart of the launcher loses one (the original
//! dropped them: B6). The file is written without a flush to the disk: it
//! must survive the process, not the machine, since the links it speaks of
//! do not survive a reboot either (a reboot empties both, and the links
//! are made again, with a new TenantAdded, at the next RESTART).

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use log::{error, info, warn};
use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::driver::{DockerNetwork, Input, NetAction, NetOp, Routed, Vnic};
use crate::net::discovery::{self, Discovery};
use crate::net::link::Link;
use crate::net::names::{self, Alias, Tuple};
use crate::net::rtnl::Rtnl;
use crate::net::tapdev;
use crate::net::topology::{self, Plan, Topology, Want};
use crate::payloads::{ClusterConfig, InstanceConfig, NetworkStat, TenantEventKind};
use crate::sys;

/// The file keeping undelivered tenant events.
const EVENTS_FILE: &str = "tenant-events.yaml";
/// The cluster configuration of the last CONNECTED (for `-hard-reset`,
/// which does not connect).
const CLUSTER_FILE: &str = "cluster.yaml";
/// Queues a concentrator's virtio-net gets (the original's fixed count).
const CNCI_QUEUES: u8 = 4;
/// Files here hold the node's state: not world-readable.
const FILE_MODE: u32 = 0o600;

/// Why networking could not be set up.
#[derive(Debug)]
pub(crate) enum NetworkError {
    /// The rtnetlink socket or a dump failed.
    Kernel(String),
    /// The node's addresses do not fit the cluster configuration.
    Discovery(discovery::DiscoveryError),
}

impl fmt::Display for NetworkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkError::Kernel(e) => write!(f, "networking: {e}"),
            NetworkError::Discovery(e) => write!(f, "network discovery failed: {e}"),
        }
    }
}

/// One tenant event as kept on disk until it is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Kept {
    /// `added` or `removed`.
    kind: String,
    /// The YAML payload, as it will be sent.
    payload: String,
}

/// Tenant networking of this node.
pub(crate) struct Network {
    rtnl: Rtnl,
    /// `<data root>/networking`.
    dir: PathBuf,
    node: Option<Discovery>,
    /// The links that are ours; made at the first discovery.
    topology: Option<Topology>,
    /// What each instance with links needs (the records the topology is
    /// rebuilt from after a failure).
    wants: BTreeMap<String, Want>,
    /// Tenant events not yet handed to a connection, oldest first.
    events: Vec<Kept>,
    agent_uuid: String,
    /// `--container-mtu`.
    container_mtu: u32,
    /// Tuples whose last instance went since the last
    /// [`Network::take_emptied`]: their docker networks go too.
    emptied: Vec<Tuple>,
}

/// A random value for link names.
fn rand_u32() -> u32 {
    let mut b = [0u8; 4];
    if sys::random::fill(&mut b).is_err() {
        // Names are checked against the links in use: any value works.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        return t ^ std::process::id();
    }
    u32::from_le_bytes(b)
}

impl Network {
    /// Opens the rtnetlink socket and reads the events kept by an earlier
    /// run. Nothing is discovered or changed yet.
    pub(crate) fn open(
        dir: PathBuf,
        agent_uuid: String,
        container_mtu: u32,
    ) -> Result<Network, NetworkError> {
        let rtnl = Rtnl::open().map_err(|e| NetworkError::Kernel(e.to_string()))?;
        let events = match std::fs::read(dir.join(EVENTS_FILE)) {
            Ok(bytes) => match serde_yaml::from_slice::<Vec<Kept>>(&bytes) {
                Ok(v) => v,
                Err(e) => {
                    error!(
                        "{}: unreadable, its tenant events are lost: {e}",
                        dir.join(EVENTS_FILE).display()
                    );
                    Vec::new()
                }
            },
            Err(_) => Vec::new(),
        };
        if !events.is_empty() {
            info!("{} tenant event(s) kept from an earlier run", events.len());
        }
        Ok(Network {
            rtnl,
            dir,
            node: None,
            topology: None,
            wants: BTreeMap::new(),
            events,
            agent_uuid,
            container_mtu,
            emptied: Vec::new(),
        })
    }

    /// At CONNECTED: remembers the configuration (for `-hard-reset`) and
    /// discovers the node's addresses. The first time it also rebuilds
    /// the topology from the kernel's links and the instances' records:
    /// orphans go, missing bridges, tunnels and vnics come back. A later
    /// discovery that fails keeps the earlier result.
    pub(crate) fn configure(
        &mut self,
        raw: &[u8],
        cluster: &ClusterConfig,
        records: &[(String, InstanceConfig)],
    ) -> Result<(), NetworkError> {
        if let Err(e) = sys::fs::mkdir_p(&self.dir, 0o755)
            .and_then(|()| sys::fs::write_atomic(&self.dir.join(CLUSTER_FILE), raw, FILE_MODE))
        {
            warn!("cannot keep the cluster configuration for -hard-reset: {e}");
        }
        let first = self.node.is_none();
        let node = match self.discover(cluster) {
            Ok(n) => n,
            Err(e) if !first => {
                error!("{e}; keeping the previous discovery");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        info!(
            "network: compute address {} on {}, management {}",
            node.compute_ip,
            node.compute_link,
            node.mgmt
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.node = Some(node);
        if first {
            self.rebuild(records)?;
        }
        Ok(())
    }

    fn discover(&mut self, cluster: &ClusterConfig) -> Result<Discovery, NetworkError> {
        let links = self.links()?;
        let addrs = self
            .rtnl
            .addrs()
            .map_err(|e| NetworkError::Kernel(e.to_string()))?;
        discovery::discover(&links, &addrs, &cluster.compute_net, &cluster.mgmt_net)
            .map_err(NetworkError::Discovery)
    }

    fn links(&mut self) -> Result<Vec<Link>, NetworkError> {
        self.rtnl
            .links()
            .map_err(|e| NetworkError::Kernel(e.to_string()))
    }

    /// The topology from the kernel's links: ours are adopted, orphans
    /// removed, what recorded instances miss is made again.
    fn rebuild(&mut self, records: &[(String, InstanceConfig)]) -> Result<(), NetworkError> {
        self.wants = wants(records).into_iter().collect();
        let links = self.links()?;
        let rebuilt = self.rebuilt()?;
        info!("network topology: {}", rebuilt.summary);
        // An orphan bridge's tuple has no instance: its docker network
        // goes with it.
        for op in &rebuilt.orphans {
            let alias = links
                .iter()
                .find(|l| l.name == op.name())
                .and_then(|l| Alias::parse(l.alias.as_deref()?));
            if let Some(Alias::Bridge(t)) = alias {
                self.emptied.push(t);
            }
        }
        for p in &rebuilt.problems {
            warn!("network topology: {p}");
        }
        self.topology = Some(rebuilt.topology);
        // Orphans first: a repair may make an alias an orphan still has.
        for op in &rebuilt.orphans {
            match self.rtnl.apply(op) {
                Ok(()) => info!("removed orphan link {} ({op:?})", op.name()),
                Err(e) => warn!("cannot remove orphan link {}: {e}", op.name()),
            }
        }
        for plan in &rebuilt.repairs {
            if let Err(e) = self.execute(plan) {
                error!("cannot repair links ({}): {e}", plan.what);
            } else {
                info!("links repaired: {}", plan.what);
            }
        }
        Ok(())
    }

    /// The topology rebuilt from the kernel's links and [`Self::wants`].
    fn rebuilt(&mut self) -> Result<topology::Rebuild, NetworkError> {
        let links = self.links()?;
        let records: Vec<(String, Want)> = self
            .wants
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let (ip, link) = match &self.node {
            Some(n) => (n.compute_ip, n.compute_link.clone()),
            None => (Ipv4Addr::UNSPECIFIED, String::new()),
        };
        Ok(Topology::rebuild_from(
            Topology::new(ip, &link).with_container_mtu(self.container_mtu),
            &links,
            &records,
            &mut rand_u32,
        ))
    }

    /// Runs a plan against the kernel and records it; on failure nothing
    /// the plan made is left (the executor undoes its creations) and the
    /// bookkeeping is read again from the kernel (B5 in
    /// docs/compatibility.md).
    fn execute(&mut self, plan: &Plan) -> Result<(), String> {
        if let Err(e) = self.rtnl.run(&plan.ops) {
            self.resync();
            return Err(e.to_string());
        }
        let committed = match self.topology.as_mut() {
            Some(t) => t.commit(plan).map_err(|e| e.to_string()),
            None => Err("no topology".to_string()),
        };
        if let Err(e) = committed {
            warn!("network bookkeeping out of step ({e}); reading the links again");
            self.resync();
        }
        if let Some(change) = &plan.event {
            let ev = change.event(&self.agent_uuid);
            self.keep(change.kind, &ev.to_yaml(change.kind));
        }
        Ok(())
    }

    /// The bookkeeping follows the kernel's links again.
    fn resync(&mut self) {
        match self.rebuilt() {
            Ok(r) => self.topology = Some(r.topology),
            Err(e) => warn!("cannot re-read the links after a failure: {e}"),
        }
    }

    /// Executes a change to an instance's links; the answer is at once.
    pub(crate) fn apply(&mut self, op: NetOp) -> Routed {
        let id = op.key.inst.id.to_string();
        let result = match op.action {
            NetAction::Plug { config, dir } => self.plug(&id, &config, &dir),
            NetAction::Unplug => self.unplug(&id).map(|()| None),
        };
        (
            op.key.inst,
            Input::Net {
                res: op.key.what,
                result,
            },
        )
    }

    fn plug(
        &mut self,
        id: &str,
        config: &InstanceConfig,
        dir: &Path,
    ) -> Result<Option<Vnic>, String> {
        let want = topology::want(config).map_err(|e| e.to_string())?;
        let Some(t) = self.topology.as_ref() else {
            return Err("the node's network is not discovered yet".into());
        };
        let mut plan = t
            .plug(id, &want, &mut rand_u32)
            .map_err(|e| e.to_string())?;
        if plan.ops.is_empty() {
            // A RESTART of an instance whose links were made: the kernel
            // may have lost them since (a dead container's namespace takes
            // its veth pair along). Then the bookkeeping follows the
            // kernel again and the plan makes what is missing, as the
            // repair at start-up does (bridge and tunnel too, and a
            // TenantAdded when both were gone).
            let links = self.links().map_err(|e| e.to_string())?;
            let lost = self
                .topology
                .as_ref()
                .is_some_and(|t| t.lost_links(id, &links));
            if lost {
                warn!("instance {id}: its links are gone from the kernel; making them again");
                self.resync();
                if let Some(t) = self.topology.as_ref() {
                    plan = t
                        .plug(id, &want, &mut rand_u32)
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        self.wants.insert(id.to_string(), want.clone());
        if let Err(e) = self.execute(&plan) {
            self.wants.remove(id);
            return Err(e);
        }
        let vnic = match &want {
            Want::Cnci(c) => {
                let private = dir.join("macvtap");
                let found =
                    tapdev::macvtap_device(&tapdev::Roots::default(), &plan.vnic_name, &private);
                let device = match found {
                    Ok(d) => d,
                    Err(e) => {
                        // The macvtap exists but qemu could not open it:
                        // it goes again, since a failed START leaves no
                        // link (B4) and its instance will be gone.
                        let why = format!("macvtap {}: {e}", plan.vnic_name);
                        if let Err(u) = self.unplug(id) {
                            error!("cannot remove {} again: {u}", plan.vnic_name);
                        }
                        return Err(why);
                    }
                };
                Vnic::Macvtap {
                    name: plan.vnic_name.clone(),
                    mac: c.mac,
                    device,
                    queues: CNCI_QUEUES,
                }
            }
            Want::Vnic(v) if v.container => {
                let Some(peer) = names::peer_name(&plan.vnic_name) else {
                    return Err(format!("veth {} has no peer name", plan.vnic_name));
                };
                Vnic::Veth {
                    host: plan.vnic_name.clone(),
                    peer,
                    mac: v.mac,
                    mtu: self.container_mtu,
                    network: docker_network(&v.tuple),
                }
            }
            Want::Vnic(v) => Vnic::Tap {
                name: plan.vnic_name.clone(),
                mac: v.mac,
            },
        };
        Ok(Some(vnic))
    }

    fn unplug(&mut self, id: &str) -> Result<(), String> {
        let Some(t) = self.topology.as_ref() else {
            return Err("the node's network is not discovered yet".into());
        };
        let plan = t.unplug(id);
        self.wants.remove(id);
        if !plan.ops.is_empty() {
            self.execute(&plan)?;
        }
        // Also when its bridge was gone already (a reboot): the docker
        // network outlives the links.
        if let Some(tuple) = plan.emptied() {
            self.emptied.push(tuple.clone());
        }
        Ok(())
    }

    /// The tuples left without any instance since the last call (their
    /// docker networks are to be removed), with their network names.
    pub(crate) fn take_emptied(&mut self) -> Vec<(String, Tuple)> {
        std::mem::take(&mut self.emptied)
            .into_iter()
            .map(|t| (names::docker_network_name(&t), t))
            .collect()
    }

    /// True when an instance wants the tuple's bridge again (a docker
    /// network about to be removed must then stay).
    pub(crate) fn tuple_in_use(&self, tuple: &Tuple) -> bool {
        self.topology
            .as_ref()
            .is_some_and(|t| t.tuple_in_use(tuple))
    }

    /// STATS `networks`: one entry per compute address.
    pub(crate) fn networks(&self) -> Vec<NetworkStat> {
        self.node
            .as_ref()
            .map(|n| {
                n.networks
                    .iter()
                    .map(|(ip, mac)| NetworkStat {
                        ip: ip.to_string(),
                        mac: mac.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn keep(&mut self, kind: TenantEventKind, payload: &str) {
        let payload = payload.to_string();
        self.events.push(Kept {
            kind: match kind {
                TenantEventKind::Added => "added",
                TenantEventKind::Removed => "removed",
            }
            .into(),
            payload,
        });
        self.save_events();
    }

    fn save_events(&self) {
        let path = self.dir.join(EVENTS_FILE);
        let result = if self.events.is_empty() {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            let text = serde_yaml::to_string(&self.events).unwrap_or_default();
            sys::fs::mkdir_p(&self.dir, 0o755)
                .and_then(|()| sys::fs::write_atomic(&path, text.as_bytes(), FILE_MODE))
        };
        if let Err(e) = result {
            error!("cannot keep tenant events in {}: {e}", path.display());
        }
    }

    /// Hands kept tenant events to `send`, oldest first, until it refuses
    /// one (the link is down); the ones it took are forgotten.
    pub(crate) fn deliver(&mut self, mut send: impl FnMut(TenantEventKind, &[u8]) -> bool) {
        let before = self.events.len();
        let mut sent = 0;
        for k in &self.events {
            let kind = if k.kind == "removed" {
                TenantEventKind::Removed
            } else {
                TenantEventKind::Added
            };
            if !send(kind, k.payload.as_bytes()) {
                break;
            }
            sent += 1;
        }
        if sent > 0 {
            self.events.drain(..sent);
            self.save_events();
        }
        if sent < before {
            info!(
                "{} tenant event(s) kept until the server is back",
                before - sent
            );
        }
    }

    /// True when tenant events wait for delivery.
    pub(crate) fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// `-hard-reset`, after every instance was deleted: removes the links
    /// that are ours or orphans, never a foreign one. Without a cluster
    /// configuration saved by an earlier run nothing more is removed than
    /// what the records named (already gone with their instances).
    pub(crate) fn hard_reset_sweep(&mut self) -> Result<usize, NetworkError> {
        if !self.dir.join(CLUSTER_FILE).exists() {
            info!("hard reset: no saved cluster configuration; links removed by record only");
            return Ok(0);
        }
        let links = self.links()?;
        let ops = topology::hard_reset(&links);
        let mut removed = 0;
        for op in &ops {
            match self.rtnl.apply(op) {
                Ok(()) => {
                    removed += 1;
                    info!("hard reset: removed link {}", op.name());
                }
                Err(e) => warn!("hard reset: cannot remove link {}: {e}", op.name()),
            }
        }
        Ok(removed)
    }

    /// `-hard-reset` before the instances are deleted: the saved cluster
    /// configuration (if any) for discovery, and the topology from the
    /// kernel's links and the records, without repairs or removals.
    pub(crate) fn adopt(
        &mut self,
        records: &[(String, InstanceConfig)],
    ) -> Result<(), NetworkError> {
        if let Ok(raw) = std::fs::read(self.dir.join(CLUSTER_FILE)) {
            match ClusterConfig::parse(&raw) {
                Ok(cluster) => match self.discover(&cluster) {
                    Ok(n) => self.node = Some(n),
                    Err(e) => warn!("hard reset: {e}"),
                },
                Err(e) => warn!("hard reset: the saved cluster configuration is invalid: {e}"),
            }
        }
        self.wants = wants(records).into_iter().collect();
        self.topology = Some(self.rebuilt()?.topology);
        Ok(())
    }
}

/// What each recorded instance needs (instances whose record says nothing
/// usable have no links to keep).
fn wants(records: &[(String, InstanceConfig)]) -> Vec<(String, Want)> {
    records
        .iter()
        .filter_map(|(id, c)| topology::want(c).ok().map(|w| (id.clone(), w)))
        .collect()
}

/// The docker network of a tuple's bridge, as the container driver
/// creates it.
fn docker_network(tuple: &Tuple) -> DockerNetwork {
    DockerNetwork {
        name: names::docker_network_name(tuple),
        bridge_alias: Alias::Bridge(tuple.clone()).to_string(),
        subnet: tuple.network_cidr(),
        gateway: tuple.gateway().map(|g| g.to_string()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ciao-net-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    /// B6: a tenant event waits in its file while the link refuses it,
    /// survives a restart of the launcher (a new `Network` on the same
    /// directory), and leaves the file once it is handed over.
    #[test]
    fn tenant_events_are_kept_until_delivered_across_restarts() {
        let dir = tmp("events");
        let payload = "tenant_added:\n  agent_uuid: a\n  subnet_key: 331948\n";
        {
            let mut n = Network::open(dir.clone(), "a".into(), 1400).unwrap();
            n.keep(TenantEventKind::Added, payload);
            n.keep(
                TenantEventKind::Removed,
                "tenant_removed:\n  agent_uuid: a\n",
            );
            let meta = std::fs::metadata(dir.join(EVENTS_FILE)).unwrap();
            assert_eq!(meta.permissions().mode() & 0o777, FILE_MODE);
            // The link is down: nothing is taken, nothing forgotten.
            n.deliver(|_, _| false);
            assert!(n.has_events());
        }
        let mut n = Network::open(dir.clone(), "a".into(), 1400).unwrap();
        assert!(n.has_events());
        // The first goes out, then the link drops again.
        let mut sent = Vec::new();
        n.deliver(|k, p| {
            if sent.is_empty() {
                sent.push((k, p.to_vec()));
                true
            } else {
                false
            }
        });
        assert_eq!(
            sent,
            [(TenantEventKind::Added, payload.as_bytes().to_vec())]
        );
        drop(n);
        let mut n = Network::open(dir.clone(), "a".into(), 1400).unwrap();
        let mut rest = Vec::new();
        n.deliver(|k, _| {
            rest.push(k);
            true
        });
        assert_eq!(rest, [TenantEventKind::Removed]);
        assert!(!n.has_events());
        assert!(!dir.join(EVENTS_FILE).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An unreadable events file is reported and set aside, never fatal.
    #[test]
    fn a_corrupt_events_file_is_not_fatal() {
        let dir = tmp("corrupt");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(EVENTS_FILE), b"- kind: [unclosed\n\x00\xff").unwrap();
        let n = Network::open(dir.clone(), "a".into(), 1400).unwrap();
        assert!(!n.has_events());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
