//! The plugin's state rebuilt from what dockerd knows, for when the state
//! file is missing or unreadable: `GET /networks` lists the networks (the
//! list carries no containers), `GET /networks/<id>` of each network whose
//! driver is ours gives its `bridge` option, subnet, gateway and the
//! containers attached (EndpointID, IPv4Address). Pure: the node-level
//! Engine API client fetches the bodies and installs the result with
//! [`super::Plugin::install_rebuilt`].

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use super::endpoints::{cidr4, ip4, masked};
use super::{vnic_alias, Endpoint, Network, State, MAX_ENTRIES};
use crate::http::parse_json;

/// Why a body cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebuildError {
    /// Not the JSON dockerd sends.
    Json(String),
    /// A network of ours that cannot be described (the text says why);
    /// the others are still rebuilt.
    Network { id: String, why: String },
}

impl fmt::Display for RebuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RebuildError::Json(e) => write!(f, "dockerd's network list: {e}"),
            RebuildError::Network { id, why } => write!(f, "docker network {id}: {why}"),
        }
    }
}

impl std::error::Error for RebuildError {}

/// One entry of `GET /networks`, and the body of `GET /networks/<id>`.
#[derive(Debug, Deserialize)]
struct DockerNetwork {
    #[serde(rename = "Id", default)]
    id: String,
    #[serde(rename = "Driver", default)]
    driver: String,
    #[serde(rename = "IPAM", default)]
    ipam: Option<Ipam>,
    #[serde(rename = "Containers", default)]
    containers: Option<BTreeMap<String, Attached>>,
    #[serde(rename = "Options", default)]
    options: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
struct Ipam {
    #[serde(rename = "Config", default)]
    config: Option<Vec<IpamConfig>>,
}

#[derive(Debug, Deserialize)]
struct IpamConfig {
    #[serde(rename = "Subnet", default)]
    subnet: Option<String>,
    #[serde(rename = "Gateway", default)]
    gateway: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Attached {
    #[serde(rename = "EndpointID", default)]
    endpoint_id: String,
    #[serde(rename = "IPv4Address", default)]
    ipv4_address: String,
}

/// The state the `GET /networks/<id>` bodies describe. Networks of other
/// drivers are skipped silently; one of ours that cannot be described (no
/// `bridge` option, no subnet or gateway) is skipped and reported, and so
/// is an attached container whose address is not IPv4.
pub fn rebuild(driver: &str, bodies: &[Vec<u8>]) -> (State, Vec<RebuildError>) {
    let mut state = State::default();
    let mut problems = Vec::new();
    for body in bodies {
        let n: DockerNetwork = match parse_json(body) {
            Ok(n) => n,
            Err(e) => {
                problems.push(RebuildError::Json(e.to_string()));
                continue;
            }
        };
        if n.driver != driver {
            continue;
        }
        match describe(&n) {
            Ok((net, endpoints)) => {
                if state.networks.len() >= MAX_ENTRIES {
                    break;
                }
                for (id, ep) in endpoints {
                    match ep {
                        Ok(ep) if state.endpoints.len() < MAX_ENTRIES => {
                            state.endpoints.insert(id, ep);
                        }
                        Ok(_) => {}
                        Err(why) => problems.push(RebuildError::Network {
                            id: n.id.clone(),
                            why: format!("endpoint {id}: {why}"),
                        }),
                    }
                }
                state.networks.insert(n.id, net);
            }
            Err(why) => problems.push(RebuildError::Network { id: n.id, why }),
        }
    }
    (state, problems)
}

type Endpoints = Vec<(String, Result<Endpoint, String>)>;

/// One network of ours and its endpoints.
fn describe(n: &DockerNetwork) -> Result<(Network, Endpoints), String> {
    if n.id.is_empty() {
        return Err("no Id".into());
    }
    let bridge = n
        .options
        .as_ref()
        .and_then(|o| o.get("bridge"))
        .filter(|b| b.starts_with("br_"))
        .ok_or("no bridge option naming a ciao bridge alias")?;
    let config = n
        .ipam
        .as_ref()
        .and_then(|i| i.config.as_ref())
        .and_then(|c| c.first())
        .ok_or("no IPAM configuration")?;
    let subnet = config.subnet.as_deref().unwrap_or_default();
    let (net, prefix) = cidr4(subnet).ok_or(format!("subnet {subnet:?} is not IPv4 CIDR"))?;
    let gw = config.gateway.as_deref().unwrap_or_default();
    let gateway = ip4(gw)
        .or_else(|| cidr4(gw).map(|(ip, _)| ip))
        .ok_or(format!("gateway {gw:?} is not an IPv4 address"))?;
    let network = Network {
        bridge: bridge.clone(),
        gateway: format!("{gateway}/{prefix}"),
        subnet: format!("{}/{prefix}", masked(net, prefix)),
    };
    let endpoints = n
        .containers
        .iter()
        .flatten()
        .filter(|(_, c)| !c.endpoint_id.is_empty())
        .map(|(_, c)| {
            let ep = cidr4(&c.ipv4_address)
                .map(|(ip, _)| Endpoint {
                    network: n.id.clone(),
                    vnic: vnic_alias(bridge, ip),
                    address: c.ipv4_address.clone(),
                })
                .ok_or(format!("address {:?} is not IPv4 CIDR", c.ipv4_address));
            (c.endpoint_id.clone(), ep)
        })
        .collect();
    Ok((network, endpoints))
}
