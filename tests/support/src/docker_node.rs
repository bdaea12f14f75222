//! A launcher node with tenant networking AND a private dockerd, for the
//! container networking tests: the node's namespace ([`NetNode`], with its
//! fake NIC `phys0`) is also the daemon's (dockerd finds a remote driver's
//! veth by name in its own namespace, so the launcher must make its links
//! there), the launcher talks to that daemon and serves its docker plugin
//! under a name unique to the test ([`stub_plugin::unique_name`]), whose
//! socket is removed when the node goes, also after a SIGKILL.
//!
//! Also here: the "concentrator" stand-in ([`Concentrator`]): a namespace
//! joined to the node's `phys0` by a veth, with a gretap back to the node
//! and a tenant bridge carrying the subnet's gateway, as a concentrator VM
//! would have (this needs a kernel with `ip_gre`: the kernel lab's); and
//! the START of the container example with networking
//! ([`container_start`]).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use crate::docker::{Dockerd, DockerdOptions, EXAMPLE_IMAGE};
use crate::netnode::{NetNode, NodeOptions, PHYS, PHYS_IP};
use crate::netns::{LinkInfo, Netns};
use crate::stub_plugin::{socket_of, unique_name, PluginFiles};

/// The concentrator's underlay address (the node's is [`PHYS_IP`]).
pub const CONC_IP: &str = "198.51.100.3";

/// How to make a [`DockerNode`].
pub struct DockerNodeOptions {
    /// Where the node's and the daemon's directories go (the kernel lab:
    /// `/run`, a tmpfs; its `/tmp` is an overlay).
    pub base: PathBuf,
    /// dockerd's packet filtering on (see [`DockerdOptions::iptables`]).
    pub iptables: bool,
    /// Flags for every launcher of the node after `-network=true`, the
    /// daemon's socket and the plugin's name.
    pub flags: Vec<String>,
}

impl Default for DockerNodeOptions {
    fn default() -> Self {
        DockerNodeOptions {
            base: std::env::temp_dir(),
            iptables: false,
            flags: Vec::new(),
        }
    }
}

/// A [`NetNode`] whose namespace also runs a private dockerd. Fields drop
/// in order: the node (its launcher first), the daemon (containers
/// removed), then the plugin's files.
pub struct DockerNode {
    pub node: NetNode,
    pub dockerd: Dockerd,
    /// The plugin's name (`--docker-plugin-name`).
    pub plugin: String,
    _files: PluginFiles,
}

impl DockerNode {
    /// The node `tag…` and its daemon, or `None` after
    /// [`crate::skip_or_fail`] (not root, no dockerd, no busybox, no ip).
    pub fn new(bin: &str, test: &str, tag: &str, opts: DockerNodeOptions) -> Option<DockerNode> {
        if let Some(why) = crate::netns::missing() {
            crate::skip_or_fail(test, &why);
            return None;
        }
        let plugin = unique_name();
        let files = PluginFiles(plugin.clone());
        let node = match NetNode::new(
            bin,
            tag,
            NodeOptions {
                flags: Vec::new(),
                base: opts.base.clone(),
                ..NodeOptions::default()
            },
        ) {
            Ok(n) => n,
            Err(why) => {
                crate::skip_or_fail(test, &format!("cannot make a network namespace: {why}"));
                return None;
            }
        };
        let dockerd = Dockerd::require_with(
            test,
            DockerdOptions {
                base: opts.base,
                netns: Some(PathBuf::from(format!("/run/netns/{}", node.ns.name))),
                iptables: opts.iptables,
            },
        )?;
        let mut dn = DockerNode {
            node,
            dockerd,
            plugin,
            _files: files,
        };
        let mut flags = vec![
            "-network=true".to_string(),
            format!("--docker-socket={}", dn.dockerd.socket.display()),
            format!("--docker-plugin-name={}", dn.plugin),
        ];
        flags.extend(opts.flags);
        dn.node.flags = flags;
        Some(dn)
    }

    /// The launcher's plugin socket.
    pub fn plugin_socket(&self) -> PathBuf {
        socket_of(&self.plugin)
    }

    /// The docker networks whose driver is this node's plugin.
    pub fn our_networks(&self) -> Vec<String> {
        self.dockerd
            .networks()
            .into_iter()
            .filter(|n| n.driver == self.plugin)
            .map(|n| n.name)
            .collect()
    }
}

impl Drop for DockerNode {
    /// Containers go first, while a plugin answers dockerd's calls (Leave,
    /// DeleteEndpoint, ...): without one, dockerd retries each for 15 s.
    /// A launcher that is gone is stood in for by a throwaway plugin.
    fn drop(&mut self) {
        if !self.dockerd.is_running() || self.dockerd.containers().is_empty() {
            return;
        }
        let alive = self
            .node
            .launcher
            .as_mut()
            .is_some_and(|l| matches!(l.child.try_wait(), Ok(None)));
        let _stub = if alive {
            None
        } else {
            crate::stub_plugin::StubPlugin::start(&self.plugin).ok()
        };
        self.dockerd.remove_all();
    }
}

/// A CIDR subnet's network address (as a u32) and prefix length.
fn network_of(subnet: &str) -> (u32, u32) {
    let (addr, len) = subnet.split_once('/').expect("a CIDR subnet");
    let len: u32 = len.parse().expect("a prefix length");
    let o: Vec<u8> = addr.split('.').map(|x| x.parse().unwrap()).collect();
    let a = u32::from_be_bytes([o[0], o[1], o[2], o[3]]);
    (
        if len == 0 {
            0
        } else {
            a & (u32::MAX << (32 - len))
        },
        len,
    )
}

/// The GRE key of a tenant subnet as a concentrator computes it: the
/// network address's four bytes read as a little-endian u32.
pub fn subnet_key(subnet: &str) -> u32 {
    u32::from_le_bytes(network_of(subnet).0.to_be_bytes())
}

/// The subnet's gateway (network address + 1) and its prefix length.
pub fn gateway_of(subnet: &str) -> (String, u32) {
    let (net, len) = network_of(subnet);
    let g = (net + 1).to_be_bytes();
    (format!("{}.{}.{}.{}", g[0], g[1], g[2], g[3]), len)
}

/// A concentrator stand-in for one tenant subnet: namespace `ns` joined
/// to the node's `phys0` by a veth (underlay [`CONC_IP`]), a gretap
/// `gt` back to the node with the subnet's key, in a bridge `tenant`
/// carrying the subnet's gateway.
pub struct Concentrator {
    pub ns: Netns,
    pub gateway: String,
}

impl Concentrator {
    /// Builds it next to `node` for `subnet`. Needs `ip_gre`.
    pub fn build(node: &Netns, subnet: &str) -> Concentrator {
        let nn = Netns::new("conc").expect("a namespace for the concentrator");
        nn.ip(&["link", "add", PHYS, "type", "bridge"]);
        nn.ip(&["addr", "add", &format!("{CONC_IP}/24"), "dev", PHYS]);
        node.ip(&[
            "link", "add", "uplink", "type", "veth", "peer", "name", "uplink", "netns", &nn.name,
        ]);
        for ns in [node, &nn] {
            ns.ip(&["link", "set", "uplink", "master", PHYS]);
            ns.ip(&["link", "set", "uplink", "up"]);
            ns.ip(&["link", "set", PHYS, "up"]);
        }
        let key = subnet_key(subnet).to_string();
        nn.ip(&[
            "link", "add", "gt", "type", "gretap", "local", CONC_IP, "remote", PHYS_IP, "key", &key,
        ]);
        nn.ip(&["link", "add", "tenant", "type", "bridge"]);
        nn.ip(&["link", "set", "gt", "master", "tenant"]);
        let (gw, len) = gateway_of(subnet);
        nn.ip(&["addr", "add", &format!("{gw}/{len}"), "dev", "tenant"]);
        nn.ip(&["link", "set", "gt", "up"]);
        nn.ip(&["link", "set", "tenant", "up"]);
        Concentrator {
            ns: nn,
            gateway: gw,
        }
    }

    /// `busybox ping -c N -W 5 ip` from the concentrator's namespace.
    pub fn ping(&self, ip: &str, count: u32) -> Output {
        self.ns.exec(
            &ping_argv(ip, count)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
    }
}

/// `ping` with busybox's (these machines have no ping(8)).
pub fn ping_argv(ip: &str, count: u32) -> Vec<String> {
    let ping = Command::new("ping")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut v: Vec<String> = if ping {
        vec!["ping".into()]
    } else {
        vec!["busybox".into(), "ping".into()]
    };
    v.extend([
        "-c".into(),
        count.to_string(),
        "-W".into(),
        "5".into(),
        ip.into(),
    ]);
    v
}

/// Stdout and stderr of `o`, for messages.
pub fn out_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// What a container START of the tests carries.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub id: String,
    pub mac: String,
    pub subnet: String,
    pub private_ip: String,
    pub tenant: String,
    pub concentrator_uuid: String,
    pub concentrator_ip: String,
}

impl ContainerSpec {
    /// The container example (`examples/payloads/start_container.yaml`)
    /// with the concentrator at [`CONC_IP`] and the subnet
    /// 192.168.111.64/26 (its private IP .102 is in it; a /26 tells the
    /// real prefix from the original's hard-coded /24).
    pub fn example() -> ContainerSpec {
        ContainerSpec {
            id: crate::docker::node::EXAMPLE_ID.into(),
            mac: "ca:fe:00:02:02:03".into(),
            subnet: "192.168.111.64/26".into(),
            private_ip: "192.168.111.102".into(),
            tenant: "67d86208-000-4465-9018-fe14087d415f".into(),
            concentrator_uuid: "67d86208-b46c-4465-0000-fe14087d415f".into(),
            concentrator_ip: CONC_IP.into(),
        }
    }

    /// The same subnet, another instance `id` with address `ip` (MAC
    /// `ca:fe` + the address's bytes).
    pub fn another(&self, id: &str, ip: &str) -> ContainerSpec {
        let o: Vec<u8> = ip.split('.').map(|x| x.parse().unwrap()).collect();
        ContainerSpec {
            id: id.into(),
            mac: format!("ca:fe:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3]),
            private_ip: ip.into(),
            ..self.clone()
        }
    }

    /// The START payload: the example with these fields.
    pub fn payload(&self) -> Vec<u8> {
        let ex = crate::docker::node::example("start_container.yaml");
        let mut out = String::new();
        for line in ex.lines() {
            let t = line.trim_start();
            let indent = &line[..line.len() - t.len()];
            let key = t.split(':').next().unwrap_or("");
            let v = match key {
                "instance_uuid" => Some(self.id.as_str()),
                "tenant_uuid" => Some(self.tenant.as_str()),
                "vnic_mac" => Some(self.mac.as_str()),
                "concentrator_ip" => Some(self.concentrator_ip.as_str()),
                "concentrator_uuid" => Some(self.concentrator_uuid.as_str()),
                "subnet" => Some(self.subnet.as_str()),
                "private_ip" => Some(self.private_ip.as_str()),
                "docker_image" => Some(EXAMPLE_IMAGE),
                _ => None,
            };
            match v {
                Some(v) => out.push_str(&format!("{indent}{key}: {v}\n")),
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out.into_bytes()
    }

    /// `<tenant>_<subnet>_<concentrator uuid>_<concentrator ip>`.
    pub fn tuple(&self) -> String {
        format!(
            "{}_{}_{}_{}",
            self.tenant, self.subnet, self.concentrator_uuid, self.concentrator_ip
        )
    }

    /// The host end's alias: `vnic_<tuple>##<ip>`.
    pub fn vnic_alias(&self) -> String {
        format!("vnic_{}##{}", self.tuple(), self.private_ip)
    }

    /// The tenant bridge's alias: `br_<tuple>`.
    pub fn bridge_alias(&self) -> String {
        format!("br_{}", self.tuple())
    }

    /// The docker network's name: `ciao_` + the tuple with `/` as `-`.
    pub fn docker_network(&self) -> String {
        format!("ciao_{}", self.tuple().replace('/', "-"))
    }
}

/// `eth0` of a container as `ip` shows it from inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eth0 {
    pub mac: String,
    pub mtu: u32,
    /// `a.b.c.d/len`.
    pub addr: String,
    /// The default route's gateway.
    pub gateway: Option<String>,
}

/// Reads `eth0` and the default route in the container `name`'s
/// namespace.
pub fn container_eth0(d: &Dockerd, name: &str) -> Eth0 {
    let link = out_text(&d.in_container(name, &["ip", "-o", "link", "show", "eth0"]));
    let link = link.lines().find_map(LinkInfo::parse);
    let addr = out_text(&d.in_container(name, &["ip", "-o", "-4", "addr", "show", "eth0"]));
    let addr = addr
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .unwrap_or("")
        .to_string();
    let route = out_text(&d.in_container(name, &["ip", "-4", "route", "show", "default"]));
    let rw: Vec<&str> = route.split_whitespace().collect();
    let gateway = rw
        .iter()
        .position(|w| *w == "via")
        .and_then(|i| rw.get(i + 1))
        .map(|s| s.to_string());
    Eth0 {
        mac: link
            .as_ref()
            .and_then(|l| l.mac.clone())
            .unwrap_or_default(),
        mtu: link.as_ref().map_or(0, |l| l.mtu),
        addr,
        gateway,
    }
}
