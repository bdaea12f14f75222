//! What the plugin remembers between calls and across restarts: docker's
//! networks and endpoints that are ours, and the file they are kept in.
//!
//! The file (`DATA-ROOT/networking/docker-plugin.yaml`, mode 0600) is our
//! own YAML: one map per kind, each read back into its own map (the
//! original reloaded each map from the other's bucket and then refused to
//! start). It is a cache of what dockerd knows: when it is missing or
//! unreadable the state is rebuilt from dockerd's networks (see
//! [`super::rebuild`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The state file's name in the networking directory.
pub const STATE_FILE: &str = "docker-plugin.yaml";

/// The only format version written and read.
const VERSION: u32 = 1;

/// Most networks, and most endpoints, kept: one per tenant bridge and one
/// per container are far fewer; a caller past the cap gets an error reply
/// rather than unbounded memory.
pub const MAX_ENTRIES: usize = 65_536;

/// One docker network of ours (NetworkDriver.CreateNetwork).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// The tenant bridge's alias (`br_<tuple>`), from the network's
    /// `bridge` option.
    pub bridge: String,
    /// The gateway with the subnet's prefix, as docker gives it
    /// (`172.16.5.1/28`).
    pub gateway: String,
    /// The subnet (`172.16.5.0/28`).
    pub subnet: String,
}

/// One endpoint (a container's interface on one of our networks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The NetworkID it belongs to.
    pub network: String,
    /// The alias of the veth host end (`vnic_<tuple>##<ip>`): the link is
    /// found by it at every Join, whatever its name is by then.
    pub vnic: String,
    /// The address with its prefix (`172.16.5.7/28`).
    pub address: String,
}

/// Everything the plugin knows, keyed by docker's ids.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub networks: BTreeMap<String, Network>,
    pub endpoints: BTreeMap<String, Endpoint>,
}

/// The file as written.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    #[serde(default)]
    networks: BTreeMap<String, Network>,
    #[serde(default)]
    endpoints: BTreeMap<String, Endpoint>,
}

/// Why a state file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateError {
    /// Not YAML of the expected shape.
    Syntax(String),
    /// Written by another format version.
    Version(u32),
    /// More entries than [`MAX_ENTRIES`].
    TooLarge,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Syntax(e) => write!(f, "not a docker plugin state file: {e}"),
            StateError::Version(v) => {
                write!(f, "format version {v}, this launcher reads {VERSION}")
            }
            StateError::TooLarge => write!(f, "more than {MAX_ENTRIES} entries"),
        }
    }
}

impl std::error::Error for StateError {}

impl State {
    /// The file's text.
    pub fn to_yaml(&self) -> String {
        let file = File {
            version: VERSION,
            networks: self.networks.clone(),
            endpoints: self.endpoints.clone(),
        };
        // A map of strings and plain structs always serialises.
        let body = serde_yaml::to_string(&file).unwrap_or_default();
        format!(
            "# ciao-launcher docker network plugin state; a cache of dockerd's networks,\n\
             # rebuilt from dockerd when this file is missing or unreadable.\n{body}"
        )
    }

    /// Reads a file written by [`State::to_yaml`]: networks into the
    /// network map, endpoints into the endpoint map.
    pub fn from_yaml(bytes: &[u8]) -> Result<State, StateError> {
        crate::payloads::depth::check_depth(bytes)
            .map_err(|e| StateError::Syntax(e.to_string()))?;
        let file: File =
            serde_yaml::from_slice(bytes).map_err(|e| StateError::Syntax(e.to_string()))?;
        if file.version != VERSION {
            return Err(StateError::Version(file.version));
        }
        if file.networks.len() > MAX_ENTRIES || file.endpoints.len() > MAX_ENTRIES {
            return Err(StateError::TooLarge);
        }
        Ok(State {
            networks: file.networks,
            endpoints: file.endpoints,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        let mut s = State::default();
        s.networks.insert(
            "n1".into(),
            Network {
                bridge: "br_t".into(),
                gateway: "172.16.5.1/28".into(),
                subnet: "172.16.5.0/28".into(),
            },
        );
        s.endpoints.insert(
            "e1".into(),
            Endpoint {
                network: "n1".into(),
                vnic: "vnic_t##172.16.5.7".into(),
                address: "172.16.5.7/28".into(),
            },
        );
        s
    }

    // B8: with both maps non-empty, each comes back into its own map.
    #[test]
    fn both_maps_reload_into_their_own_map() {
        let s = sample();
        let text = s.to_yaml();
        assert!(text.starts_with("# ciao-launcher docker network plugin state"));
        assert_eq!(State::from_yaml(text.as_bytes()).unwrap(), s);
        let empty = State::default();
        assert_eq!(State::from_yaml(empty.to_yaml().as_bytes()).unwrap(), empty);
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(matches!(
            State::from_yaml(b"version: 2\n"),
            Err(StateError::Version(2))
        ));
        assert!(matches!(
            State::from_yaml(b"version: 1\nextra: 1\n"),
            Err(StateError::Syntax(_))
        ));
        assert!(State::from_yaml(b"").is_err());
        assert!(State::from_yaml(b"\x00\xff").is_err());
        assert!(State::from_yaml(b"version: 1\nnetworks: {n: {bridge: 1}}\n").is_err());
        // Only the version is required.
        assert_eq!(State::from_yaml(b"version: 1\n").unwrap(), State::default());
    }
}
