//! The ciao docker network and IPAM plugin, sans-IO: dockerd's plugin
//! calls in, JSON replies out. The launcher's loop serves it
//! (`launcher/plugin_server.rs`); the docker networks it answers for are
//! created by the container driver with this plugin as both network driver
//! and IPAM driver, and an option `bridge` naming the tenant bridge's
//! alias.
//!
//! What it does (docs/networking.md, containers):
//!
//! * **Networks** (`NetworkDriver.CreateNetwork`): NetworkID → the
//!   bridge alias, the gateway and the subnet.
//! * **Pools and addresses** (`IpamDriver.*`): the pool of a subnet is
//!   named after it (`ciao/<subnet>`), so an address request is answered
//!   with the subnet's real prefix (`172.16.5.7/28`; the original said
//!   `/24` whatever the subnet) also when the plugin's state was lost: a
//!   PoolID is all dockerd remembers of a pool, and `GET /networks` does
//!   not show it. No address is ever chosen here: the launcher names each
//!   container's address.
//! * **Endpoints** (`CreateEndpoint`): EndpointID → the alias of the veth
//!   host end the launcher made for the container
//!   (`vnic_<tuple>##<ip>`). The link is looked up by alias there (it must
//!   be a veth) and again at every `Join`, which hands docker the peer's
//!   current name, so a pair made again under a new name (after a reboot)
//!   still works.
//! * **Errors** are replies, never a dropped connection: an unknown
//!   network, endpoint or pool, a body that does not decode
//!   (`Error: <why>`), a call past the entry cap.
//!
//! Links are found through [`LinkLookup`], which the shell implements with
//! an rtnetlink dump: the plugin answers from start-up on, before (and
//! without) the topology of the tenant links.

mod endpoints;
pub mod rebuild;
pub(crate) mod serve;
pub mod state;

use std::fmt;

use log::{info, warn};

use crate::net::link::Link;
use crate::net::names::peer_name;
use endpoints::{
    cidr4, decode, ip4, masked, AddressRequest, Body, CreateEndpoint, CreateNetwork, Discovery,
    EndpointRef, Family, NetworkRef, PoolRef, RequestPool,
};
pub use state::{Endpoint, Network, State, StateError, MAX_ENTRIES, STATE_FILE};

/// The default driver name (`--docker-plugin-name`).
pub const DEFAULT_NAME: &str = "ciao";

/// The media type of every reply.
pub const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1+json";

/// Finds links by alias (the shell: an rtnetlink dump).
pub trait LinkLookup {
    /// The link whose alias is `alias`, `None` when there is none; `Err`
    /// says why the links could not be read.
    fn by_alias(&mut self, alias: &str) -> Result<Option<Link>, String>;
}

/// A fixed list of links (tests, fuzzing).
impl LinkLookup for Vec<Link> {
    fn by_alias(&mut self, alias: &str) -> Result<Option<Link>, String> {
        Ok(self
            .iter()
            .find(|l| l.alias.as_deref() == Some(alias))
            .cloned())
    }
}

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// 200 for every call of the protocol (errors are in the body); 404
    /// for a path that is not one.
    pub status: u16,
    /// The JSON body.
    pub body: String,
    /// The state changed: it should be saved.
    pub changed: bool,
}

impl Reply {
    fn ok(body: String) -> Reply {
        Reply {
            status: 200,
            body,
            changed: false,
        }
    }

    fn changed(body: String) -> Reply {
        Reply {
            status: 200,
            body,
            changed: true,
        }
    }
}

/// Why a call failed (the text goes into the reply's error field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginError {
    /// The body did not decode (`Error: <why>`).
    Decode(String),
    /// A field is missing or malformed.
    Bad(String),
    UnknownNetwork(String),
    UnknownEndpoint(String),
    UnknownPool(String),
    /// The container's veth is missing or not a veth.
    Link(String),
    /// [`MAX_ENTRIES`] reached.
    Full(&'static str),
}

impl fmt::Display for PluginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginError::Decode(e) | PluginError::Bad(e) | PluginError::Link(e) => f.write_str(e),
            PluginError::UnknownNetwork(id) => {
                write!(f, "network {} is not known to the ciao plugin", shown(id))
            }
            PluginError::UnknownEndpoint(id) => {
                write!(f, "endpoint {} is not known to the ciao plugin", shown(id))
            }
            PluginError::UnknownPool(id) => {
                write!(f, "pool {} is not a ciao pool", shown(id))
            }
            PluginError::Full(what) => {
                write!(f, "the ciao plugin keeps at most {MAX_ENTRIES} {what}")
            }
        }
    }
}

impl std::error::Error for PluginError {}

/// A value from a request as error messages show it: quoted, and cut
/// after 64 characters (replies and log lines stay short).
fn shown(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{:?}...", &s[..i]),
        None => format!("{s:?}"),
    }
}

/// The PoolID prefix: `ciao/<subnet>`.
const POOL_PREFIX: &str = "ciao/";

/// The PoolID of a subnet (masked).
fn pool_id(net: std::net::Ipv4Addr, prefix: u8) -> String {
    format!("{POOL_PREFIX}{net}/{prefix}")
}

/// The subnet a PoolID names.
fn parse_pool(id: &str) -> Result<(std::net::Ipv4Addr, u8), PluginError> {
    id.strip_prefix(POOL_PREFIX)
        .and_then(cidr4)
        .filter(|&(ip, p)| masked(ip, p) == ip)
        .ok_or_else(|| PluginError::UnknownPool(id.to_string()))
}

/// The vnic alias of the container with address `ip` on the bridge whose
/// alias is `bridge` (`br_T` → `vnic_T##ip`).
fn vnic_alias(bridge: &str, ip: std::net::Ipv4Addr) -> String {
    let tuple = bridge.strip_prefix("br_").unwrap_or(bridge);
    format!("vnic_{tuple}##{ip}")
}

/// The plugin: its driver name and what it knows.
#[derive(Debug, Clone)]
pub struct Plugin {
    name: String,
    state: State,
}

impl Plugin {
    /// A plugin named `name` (the docker driver name) knowing `state`.
    pub fn new(name: &str, state: State) -> Plugin {
        Plugin {
            name: name.to_string(),
            state,
        }
    }

    /// The driver name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it knows (to save it).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Adds what a rebuild from dockerd found and the plugin does not
    /// know yet (calls answered since start-up are newer and win).
    /// Returns how many entries were added.
    pub fn install_rebuilt(&mut self, rebuilt: State) -> usize {
        let mut added = 0;
        for (id, n) in rebuilt.networks {
            if self.state.networks.len() < MAX_ENTRIES && !self.state.networks.contains_key(&id) {
                self.state.networks.insert(id, n);
                added += 1;
            }
        }
        for (id, e) in rebuilt.endpoints {
            if self.state.endpoints.len() < MAX_ENTRIES
                && !self.state.endpoints.contains_key(&id)
                && self.state.networks.contains_key(&e.network)
            {
                self.state.endpoints.insert(id, e);
                added += 1;
            }
        }
        added
    }

    /// Answers one call: `path` is the request path (`/NetworkDriver.Join`),
    /// `body` the request body.
    pub fn handle(&mut self, path: &str, body: &[u8], links: &mut dyn LinkLookup) -> Reply {
        let call = path.strip_prefix('/').unwrap_or(path);
        let family = if call.starts_with("IpamDriver.") {
            Family::Ipam
        } else {
            Family::Network
        };
        let result = match call {
            "Plugin.Activate" => Ok(Reply::ok(
                r#"{"Implements":["NetworkDriver","IpamDriver"]}"#.to_string(),
            )),
            "NetworkDriver.GetCapabilities" => Ok(Reply::ok(
                Body::ok(family).string("Scope", "local").finish(),
            )),
            "NetworkDriver.CreateNetwork" => self.create_network(body),
            "NetworkDriver.DeleteNetwork" => self.delete_network(body),
            "NetworkDriver.CreateEndpoint" => self.create_endpoint(body, links),
            "NetworkDriver.DeleteEndpoint" => self.delete_endpoint(body),
            "NetworkDriver.Join" => self.join(body, links),
            "NetworkDriver.Leave"
            | "NetworkDriver.ProgramExternalConnectivity"
            | "NetworkDriver.RevokeExternalConnectivity" => decode::<EndpointRef>(body)
                .map(|_| Reply::ok(Body::ok(family).finish()))
                .map_err(PluginError::Decode),
            "NetworkDriver.EndpointOperInfo" => decode::<EndpointRef>(body)
                .map(|_| Reply::ok(Body::ok(family).literal("Value", "null").finish()))
                .map_err(PluginError::Decode),
            "NetworkDriver.DiscoverNew" | "NetworkDriver.DiscoverDelete" => {
                decode::<Discovery>(body)
                    .map(|_| Reply::ok(Body::ok(family).finish()))
                    .map_err(PluginError::Decode)
            }
            "IpamDriver.GetCapabilities" => Ok(Reply::ok(
                Body::ok(family)
                    .literal("RequiresMACAddress", "true")
                    .finish(),
            )),
            "IpamDriver.GetDefaultAddressSpaces" => Ok(Reply::ok(
                Body::ok(family)
                    .string("LocalDefaultAddressSpace", "")
                    .string("GlobalDefaultAddressSpace", "")
                    .finish(),
            )),
            "IpamDriver.RequestPool" => request_pool(body),
            "IpamDriver.ReleasePool" => decode::<PoolRef>(body)
                .map_err(PluginError::Decode)
                .and_then(|r| parse_pool(&r.pool_id))
                .map(|_| Reply::ok(Body::ok(family).finish())),
            "IpamDriver.RequestAddress" => request_address(body),
            "IpamDriver.ReleaseAddress" => decode::<AddressRequest>(body)
                .map_err(PluginError::Decode)
                .and_then(|r| parse_pool(&r.pool_id))
                .map(|_| Reply::ok(Body::ok(family).finish())),
            _ => {
                return Reply {
                    status: 404,
                    body: Body::error(family, &format!("{} is not a plugin call", shown(path))),
                    changed: false,
                }
            }
        };
        match result {
            Ok(r) => r,
            Err(e) => {
                warn!("docker plugin {}: {call}: {e}", self.name);
                Reply::ok(Body::error(family, &e.to_string()))
            }
        }
    }

    fn create_network(&mut self, body: &[u8]) -> Result<Reply, PluginError> {
        let req: CreateNetwork = decode(body).map_err(PluginError::Decode)?;
        if req.network_id.is_empty() {
            return Err(PluginError::Bad("NetworkID is missing".into()));
        }
        let bridge = req.bridge().map_err(PluginError::Bad)?;
        let alias_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/');
        if !bridge.starts_with("br_")
            || bridge.len() > crate::net::names::MAX_ALIAS_LEN
            || !bridge.chars().all(alias_chars)
        {
            return Err(PluginError::Bad(format!(
                "network option bridge {} is not a ciao bridge alias (br_...)",
                shown(bridge)
            )));
        }
        let data = req
            .ipv4_data
            .as_ref()
            .and_then(|d| d.first())
            .ok_or_else(|| PluginError::Bad("the network has no IPv4 data".into()))?;
        let pool = data.pool.as_deref().unwrap_or_default();
        let (net, prefix) = cidr4(pool).ok_or_else(|| {
            PluginError::Bad(format!("IPv4 pool {} is not a subnet", shown(pool)))
        })?;
        let gw = data.gateway.as_deref().unwrap_or_default();
        let gateway = match (cidr4(gw), ip4(gw)) {
            (Some((ip, _)), _) | (None, Some(ip)) => ip,
            _ => {
                return Err(PluginError::Bad(format!(
                    "IPv4 gateway {} is not an address",
                    shown(gw)
                )))
            }
        };
        if !self.state.networks.contains_key(&req.network_id)
            && self.state.networks.len() >= MAX_ENTRIES
        {
            return Err(PluginError::Full("networks"));
        }
        info!(
            "docker plugin {}: network {} on bridge {bridge}",
            self.name, req.network_id
        );
        self.state.networks.insert(
            req.network_id.clone(),
            Network {
                bridge: bridge.to_string(),
                gateway: format!("{gateway}/{prefix}"),
                subnet: format!("{}/{prefix}", masked(net, prefix)),
            },
        );
        Ok(Reply::changed(Body::ok(Family::Network).finish()))
    }

    fn delete_network(&mut self, body: &[u8]) -> Result<Reply, PluginError> {
        let req: NetworkRef = decode(body).map_err(PluginError::Decode)?;
        if self.state.networks.remove(&req.network_id).is_none() {
            return Err(PluginError::UnknownNetwork(req.network_id));
        }
        self.state
            .endpoints
            .retain(|_, e| e.network != req.network_id);
        info!(
            "docker plugin {}: network {} deleted",
            self.name, req.network_id
        );
        Ok(Reply::changed(Body::ok(Family::Network).finish()))
    }

    fn create_endpoint(
        &mut self,
        body: &[u8],
        links: &mut dyn LinkLookup,
    ) -> Result<Reply, PluginError> {
        let req: CreateEndpoint = decode(body).map_err(PluginError::Decode)?;
        let address = req
            .interface
            .as_ref()
            .and_then(|i| i.address.as_deref())
            .unwrap_or_default();
        if address.is_empty() {
            return Err(PluginError::Bad(
                "IP Address parameter not provided in CreateEndpoint request".into(),
            ));
        }
        if req.endpoint_id.is_empty() {
            return Err(PluginError::Bad("EndpointID is missing".into()));
        }
        let network = self
            .state
            .networks
            .get(&req.network_id)
            .ok_or_else(|| PluginError::UnknownNetwork(req.network_id.clone()))?;
        let (ip, _) = cidr4(address).ok_or_else(|| {
            PluginError::Bad(format!("address {} is not IPv4 CIDR", shown(address)))
        })?;
        let vnic = vnic_alias(&network.bridge, ip);
        veth(links, &vnic)?;
        if !self.state.endpoints.contains_key(&req.endpoint_id)
            && self.state.endpoints.len() >= MAX_ENTRIES
        {
            return Err(PluginError::Full("endpoints"));
        }
        self.state.endpoints.insert(
            req.endpoint_id,
            Endpoint {
                network: req.network_id,
                vnic,
                address: address.to_string(),
            },
        );
        Ok(Reply::changed(
            Body::ok(Family::Network)
                .literal("Interface", "null")
                .finish(),
        ))
    }

    fn delete_endpoint(&mut self, body: &[u8]) -> Result<Reply, PluginError> {
        let req: EndpointRef = decode(body).map_err(PluginError::Decode)?;
        if self.state.endpoints.remove(&req.endpoint_id).is_none() {
            return Err(PluginError::UnknownEndpoint(req.endpoint_id));
        }
        Ok(Reply::changed(Body::ok(Family::Network).finish()))
    }

    fn join(&mut self, body: &[u8], links: &mut dyn LinkLookup) -> Result<Reply, PluginError> {
        let req: EndpointRef = decode(body).map_err(PluginError::Decode)?;
        let network = self
            .state
            .networks
            .get(&req.network_id)
            .ok_or_else(|| PluginError::UnknownNetwork(req.network_id.clone()))?;
        let ep = self
            .state
            .endpoints
            .get(&req.endpoint_id)
            .filter(|e| e.network == req.network_id)
            .ok_or_else(|| PluginError::UnknownEndpoint(req.endpoint_id.clone()))?;
        let host = veth(links, &ep.vnic)?;
        let peer = peer_name(&host.name).ok_or_else(|| {
            PluginError::Link(format!(
                "link {} with alias {} is not a ciao veth",
                host.name, ep.vnic
            ))
        })?;
        let gateway = network
            .gateway
            .split_once('/')
            .map_or(network.gateway.as_str(), |(ip, _)| ip);
        let iface = format!(
            "{{\"SrcName\":{},\"DstName\":\"\",\"DstPrefix\":\"eth\"}}",
            quote(&peer)
        );
        Ok(Reply::ok(
            Body::ok(Family::Network)
                .literal("InterfaceName", &iface)
                .string("Gateway", gateway)
                .string("GatewayIPv6", "")
                .literal("StaticRoutes", "null")
                .literal("DisableGatewayService", "false")
                .finish(),
        ))
    }
}

/// `s` as a JSON string.
fn quote(s: &str) -> String {
    let mut out = String::new();
    crate::http::json::write_string(&mut out, s);
    out
}

/// The veth whose alias is `alias`.
fn veth(links: &mut dyn LinkLookup, alias: &str) -> Result<Link, PluginError> {
    match links.by_alias(alias) {
        Err(e) => Err(PluginError::Link(format!("cannot read the links: {e}"))),
        Ok(None) => Err(PluginError::Link(format!(
            "no link with alias {alias} (the launcher makes a container's veth pair before it creates the container)"
        ))),
        Ok(Some(l)) if l.kind.as_deref() != Some("veth") => Err(PluginError::Link(format!(
            "link {} with alias {alias} is a {}, not a veth",
            l.name,
            l.kind.as_deref().unwrap_or("plain device")
        ))),
        Ok(Some(l)) => Ok(l),
    }
}

fn request_pool(body: &[u8]) -> Result<Reply, PluginError> {
    let req: RequestPool = decode(body).map_err(PluginError::Decode)?;
    if req.v6 == Some(true) {
        return Err(PluginError::Bad(
            "the ciao IPAM driver has no IPv6 pools".into(),
        ));
    }
    let pool = req.pool.as_deref().unwrap_or_default();
    if pool.is_empty() {
        return Err(PluginError::Bad(
            "a ciao network needs a subnet (docker network create --subnet)".into(),
        ));
    }
    let (net, prefix) = cidr4(pool)
        .ok_or_else(|| PluginError::Bad(format!("pool {} is not a subnet", shown(pool))))?;
    if req
        .sub_pool
        .as_deref()
        .is_some_and(|s| !s.is_empty() && s != pool)
    {
        return Err(PluginError::Bad(
            "the ciao IPAM driver has no sub-pools".into(),
        ));
    }
    Ok(Reply::ok(
        Body::ok(Family::Ipam)
            .string("PoolID", &pool_id(masked(net, prefix), prefix))
            .string("Pool", pool)
            .literal("Data", "null")
            .finish(),
    ))
}

fn request_address(body: &[u8]) -> Result<Reply, PluginError> {
    let req: AddressRequest = decode(body).map_err(PluginError::Decode)?;
    let (net, prefix) = parse_pool(&req.pool_id)?;
    let address = req.address.as_deref().unwrap_or_default();
    if address.is_empty() {
        return Err(PluginError::Bad(
            "Request does not have IP address; the ciao IPAM driver assigns no addresses".into(),
        ));
    }
    let ip = ip4(address)
        .ok_or_else(|| PluginError::Bad(format!("address {} is not IPv4", shown(address))))?;
    if masked(ip, prefix) != net {
        return Err(PluginError::Bad(format!(
            "address {ip} is not in pool {net}/{prefix}"
        )));
    }
    Ok(Reply::ok(
        Body::ok(Family::Ipam)
            .string("Address", &format!("{ip}/{prefix}"))
            .literal("Data", "null")
            .finish(),
    ))
}

#[doc(hidden)]
pub mod fuzz;

#[cfg(test)]
mod tests;
