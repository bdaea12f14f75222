//! A throwaway docker network + IPAM plugin played by the test itself, on
//! `/run/docker/plugins/<name>.sock` (where dockerd discovers plugins):
//! enough of the protocol for dockerd to put a container on a veth the
//! test made, and a record of every call. It proves the harness's
//! plumbing (the daemon's namespace, plugin discovery, the image) without
//! the launcher, and it is what the tests compare the launcher's plugin
//! with.
//!
//! Replies follow the remote-driver protocol: network-driver calls report
//! errors in `"Err"`, IPAM calls in `"Error"`. Join hands dockerd the veth
//! the test registered for the endpoint's IP ([`StubPlugin::veth`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ciao::http::parse_json;
use serde::Deserialize;

use crate::unix_http::{Request, Server};

/// Where dockerd looks for plugin sockets.
pub const PLUGIN_DIR: &str = "/run/docker/plugins";

/// A unique plugin name for this process (`ciaot<pid>y<n>`): tests that
/// run in parallel never share a socket.
pub fn unique_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "ciaot{}y{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The socket of plugin `name`.
pub fn socket_of(name: &str) -> PathBuf {
    PathBuf::from(PLUGIN_DIR).join(format!("{name}.sock"))
}

/// Removes plugin `name`'s socket (and spec file) when dropped: a launcher
/// killed with SIGKILL leaves its socket behind.
pub struct PluginFiles(pub String);

impl Drop for PluginFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(socket_of(&self.0));
        let _ = std::fs::remove_file(format!("/etc/docker/plugins/{}.json", self.0));
    }
}

#[derive(Default)]
struct State {
    /// Every call's path, in order.
    calls: Vec<String>,
    /// Endpoint IP (no prefix) → veth to hand dockerd.
    veths: BTreeMap<String, String>,
    /// Endpoint id → its IP.
    endpoints: BTreeMap<String, String>,
    /// Network id → (bridge option, gateway without prefix).
    networks: BTreeMap<String, (String, String)>,
    /// Pool id → pool.
    pools: BTreeMap<String, String>,
}

/// The running stub; its socket goes when it is dropped.
pub struct StubPlugin {
    pub name: String,
    state: Arc<Mutex<State>>,
    _server: Server,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Body {
    #[serde(rename = "NetworkID")]
    network: String,
    #[serde(rename = "EndpointID")]
    endpoint: String,
    #[serde(rename = "Pool")]
    pool: String,
    #[serde(rename = "PoolID")]
    pool_id: String,
    #[serde(rename = "Address")]
    address: String,
    #[serde(rename = "Interface")]
    interface: Option<Iface>,
    #[serde(rename = "IPv4Data")]
    v4: Vec<V4>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Iface {
    #[serde(rename = "Address")]
    address: String,
}

/// CreateNetwork's options, read on their own: other calls' options hold
/// values of other types.
#[derive(Deserialize, Default)]
#[serde(default)]
struct WithOpts {
    #[serde(rename = "Options")]
    options: Option<Opts>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Opts {
    #[serde(rename = "com.docker.network.generic")]
    generic: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct V4 {
    #[serde(rename = "Gateway")]
    gateway: String,
}

impl StubPlugin {
    /// Serves plugin `name` until dropped.
    pub fn start(name: &str) -> Result<StubPlugin, String> {
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        let server = Server::serve(&socket_of(name), move |r| answer(&st, r))?;
        Ok(StubPlugin {
            name: name.to_string(),
            state,
            _server: server,
        })
    }

    /// Join of the endpoint with address `ip` hands dockerd `veth`.
    pub fn veth(&self, ip: &str, veth: &str) {
        self.lock().veths.insert(ip.to_string(), veth.to_string());
    }

    /// The paths called so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// The bridge option of each network dockerd created.
    pub fn bridges(&self) -> Vec<String> {
        self.lock().networks.values().map(|n| n.0.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A JSON string literal.
fn q(s: &str) -> String {
    format!("{s:?}")
}

fn answer(state: &Mutex<State>, r: &Request) -> (u16, String) {
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    let path = r.path().trim_start_matches('/').to_string();
    st.calls.push(path.clone());
    let body: Body = if r.body.is_empty() {
        Body::default()
    } else {
        match parse_json(&r.body) {
            Ok(b) => b,
            Err(e) => return (200, format!("{{\"Err\":{0},\"Error\":{0}}}", q(&e.0))),
        }
    };
    let ok = "{\"Err\":\"\"}".to_string();
    let reply = match path.as_str() {
        "Plugin.Activate" => "{\"Implements\":[\"NetworkDriver\",\"IpamDriver\"]}".into(),
        "NetworkDriver.GetCapabilities" => "{\"Err\":\"\",\"Scope\":\"local\"}".into(),
        "NetworkDriver.CreateNetwork" => {
            let bridge = parse_json::<WithOpts>(&r.body)
                .ok()
                .and_then(|w| w.options)
                .and_then(|o| o.generic.get("bridge").cloned())
                .unwrap_or_default();
            let gw = body
                .v4
                .first()
                .map(|v| v.gateway.clone())
                .unwrap_or_default();
            let gw = gw.split('/').next().unwrap_or("").to_string();
            st.networks.insert(body.network, (bridge, gw));
            ok
        }
        "NetworkDriver.DeleteNetwork" => {
            st.networks.remove(&body.network);
            ok
        }
        "NetworkDriver.CreateEndpoint" => {
            let ip = body.interface.map(|i| i.address).unwrap_or_default();
            let ip = ip.split('/').next().unwrap_or("").to_string();
            st.endpoints.insert(body.endpoint, ip);
            "{\"Err\":\"\",\"Interface\":null}".into()
        }
        "NetworkDriver.DeleteEndpoint" => {
            st.endpoints.remove(&body.endpoint);
            ok
        }
        "NetworkDriver.Join" => {
            let ip = st.endpoints.get(&body.endpoint).cloned();
            let veth = ip.as_ref().and_then(|ip| st.veths.get(ip).cloned());
            let gw = st.networks.get(&body.network).map(|n| n.1.clone());
            match (veth, gw) {
                (Some(v), Some(gw)) => format!(
                    "{{\"Err\":\"\",\"InterfaceName\":{{\"SrcName\":{},\"DstName\":\"\",\"DstPrefix\":\"eth\"}},\"Gateway\":{},\"GatewayIPv6\":\"\",\"StaticRoutes\":null,\"DisableGatewayService\":false}}",
                    q(&v),
                    q(&gw)
                ),
                _ => "{\"Err\":\"unknown endpoint or network\"}".into(),
            }
        }
        "NetworkDriver.EndpointOperInfo" => "{\"Err\":\"\",\"Value\":null}".into(),
        "NetworkDriver.Leave"
        | "NetworkDriver.DiscoverNew"
        | "NetworkDriver.DiscoverDelete"
        | "NetworkDriver.ProgramExternalConnectivity"
        | "NetworkDriver.RevokeExternalConnectivity" => ok,
        "IpamDriver.GetCapabilities" => "{\"Error\":\"\",\"RequiresMACAddress\":true}".into(),
        "IpamDriver.GetDefaultAddressSpaces" => {
            "{\"Error\":\"\",\"LocalDefaultAddressSpace\":\"\",\"GlobalDefaultAddressSpace\":\"\"}"
                .into()
        }
        "IpamDriver.RequestPool" => {
            let id = format!("pool{}", st.pools.len());
            st.pools.insert(id.clone(), body.pool.clone());
            format!(
                "{{\"Error\":\"\",\"PoolID\":{},\"Pool\":{},\"Data\":null}}",
                q(&id),
                q(&body.pool)
            )
        }
        "IpamDriver.RequestAddress" => {
            let prefix = st
                .pools
                .get(&body.pool_id)
                .and_then(|p| p.split_once('/'))
                .map(|(_, l)| l.to_string());
            match (body.address.is_empty(), prefix) {
                (false, Some(l)) => format!(
                    "{{\"Error\":\"\",\"Address\":{},\"Data\":null}}",
                    q(&format!("{}/{l}", body.address))
                ),
                _ => "{\"Error\":\"no address or unknown pool\"}".into(),
            }
        }
        "IpamDriver.ReleasePool" => {
            st.pools.remove(&body.pool_id);
            "{\"Error\":\"\"}".into()
        }
        "IpamDriver.ReleaseAddress" => "{\"Error\":\"\"}".into(),
        _ => return (404, "{\"Err\":\"404 page not found\"}".into()),
    };
    (200, reply)
}
