//! READY status and STATS command payloads, sent by the launcher and
//! decoded by the test server.

use super::lenient::{self, lenient_struct, DecodeError};
use super::yaml_out::{to_yaml, Node};

/// The READY status payload (a FULL status has an empty payload). `-1` means unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ready {
    pub node_uuid: String,
    pub mem_total_mb: i64,
    pub mem_available_mb: i64,
    pub disk_total_mb: i64,
    pub disk_available_mb: i64,
    pub load: i64,
    pub cpus_online: i64,
}
lenient_struct!(Ready {
    "node_uuid" => node_uuid,
    "mem_total_mb" => mem_total_mb,
    "mem_available_mb" => mem_available_mb,
    "disk_total_mb" => disk_total_mb,
    "disk_available_mb" => disk_available_mb,
    "load" => load,
    "cpus_online" => cpus_online,
});

impl Ready {
    /// Decodes a STATUS payload; an empty one (FULL) gives all zeros, as in Go.
    pub fn parse(payload: &[u8]) -> Result<Self, DecodeError> {
        lenient::decode_bytes(payload)
    }

    pub fn to_node(&self) -> Node<'_> {
        Node::map([
            ("node_uuid", Node::str(&self.node_uuid)),
            ("mem_total_mb", Node::Int(self.mem_total_mb)),
            ("mem_available_mb", Node::Int(self.mem_available_mb)),
            ("disk_total_mb", Node::Int(self.disk_total_mb)),
            ("disk_available_mb", Node::Int(self.disk_available_mb)),
            ("load", Node::Int(self.load)),
            ("cpus_online", Node::Int(self.cpus_online)),
        ])
    }

    pub fn to_yaml(&self) -> String {
        to_yaml(&self.to_node())
    }
}

/// The node status word in STATS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeStatus {
    Ready,
    Full,
}

impl NodeStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Ready => "READY",
            NodeStatus::Full => "FULL",
        }
    }
}

/// Instance states reported in STATS (`exit_failed` and `exit_paused` exist in the original's
/// payload package but are never sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InstanceState {
    Pending,
    Active,
    Exited,
}

impl InstanceState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Active => "active",
            InstanceState::Exited => "exited",
        }
    }
}

/// One compute-network address of the node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkStat {
    pub ip: String,
    pub mac: String,
}
lenient_struct!(NetworkStat { "ip" => ip, "mac" => mac });

/// One instance in STATS. Usage figures are `-1` when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceStat {
    pub instance_uuid: String,
    /// `pending`, `active` or `exited` (see [`InstanceState`]); any text when decoded.
    pub state: String,
    pub ssh_ip: String,
    pub ssh_port: i64,
    pub memory_usage_mb: i64,
    pub disk_usage_mb: i64,
    pub cpu_usage: i64,
    pub volumes: Vec<String>,
}
lenient_struct!(InstanceStat {
    "instance_uuid" => instance_uuid,
    "state" => state,
    "ssh_ip" => ssh_ip,
    "ssh_port" => ssh_port,
    "memory_usage_mb" => memory_usage_mb,
    "disk_usage_mb" => disk_usage_mb,
    "cpu_usage" => cpu_usage,
    "volumes" => volumes,
});

impl InstanceStat {
    pub fn to_node(&self) -> Node<'_> {
        Node::map([
            ("instance_uuid", Node::str(&self.instance_uuid)),
            ("state", Node::str(&self.state)),
            ("ssh_ip", Node::str(&self.ssh_ip)),
            ("ssh_port", Node::Int(self.ssh_port)),
            ("memory_usage_mb", Node::Int(self.memory_usage_mb)),
            ("disk_usage_mb", Node::Int(self.disk_usage_mb)),
            ("cpu_usage", Node::Int(self.cpu_usage)),
            ("volumes", Node::str_seq(&self.volumes)),
        ])
    }
}

/// The STATS payload: node figures, compute-network addresses and every instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stat {
    pub node_uuid: String,
    /// `READY` or `FULL` (see [`NodeStatus`]); any text when decoded.
    pub status: String,
    pub mem_total_mb: i64,
    pub mem_available_mb: i64,
    pub disk_total_mb: i64,
    pub disk_available_mb: i64,
    pub load: i64,
    pub cpus_online: i64,
    /// `""` when networking is disabled.
    pub hostname: String,
    pub networks: Vec<NetworkStat>,
    pub instances: Vec<InstanceStat>,
}
lenient_struct!(Stat {
    "node_uuid" => node_uuid,
    "status" => status,
    "mem_total_mb" => mem_total_mb,
    "mem_available_mb" => mem_available_mb,
    "disk_total_mb" => disk_total_mb,
    "disk_available_mb" => disk_available_mb,
    "load" => load,
    "cpus_online" => cpus_online,
    "hostname" => hostname,
    "networks" => networks,
    "instances" => instances,
});

impl Stat {
    pub fn parse(payload: &[u8]) -> Result<Self, DecodeError> {
        lenient::decode_bytes(payload)
    }

    pub fn to_node(&self) -> Node<'_> {
        Node::map([
            ("node_uuid", Node::str(&self.node_uuid)),
            ("status", Node::str(&self.status)),
            ("mem_total_mb", Node::Int(self.mem_total_mb)),
            ("mem_available_mb", Node::Int(self.mem_available_mb)),
            ("disk_total_mb", Node::Int(self.disk_total_mb)),
            ("disk_available_mb", Node::Int(self.disk_available_mb)),
            ("load", Node::Int(self.load)),
            ("cpus_online", Node::Int(self.cpus_online)),
            ("hostname", Node::str(&self.hostname)),
            (
                "networks",
                Node::Seq(
                    self.networks
                        .iter()
                        .map(|n| Node::map([("ip", Node::str(&n.ip)), ("mac", Node::str(&n.mac))]))
                        .collect(),
                ),
            ),
            (
                "instances",
                Node::Seq(self.instances.iter().map(InstanceStat::to_node).collect()),
            ),
        ])
    }

    pub fn to_yaml(&self) -> String {
        to_yaml(&self.to_node())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const READY: &str = "node_uuid: 4cb19522-1e18-439a-883a-f9b2a3a95f5e
mem_total_mb: 7856
mem_available_mb: 5220
disk_total_mb: 231782
disk_available_mb: 166163
load: 0
cpus_online: 4
";

    const READY_UNKNOWN: &str = "node_uuid: 4cb19522-1e18-439a-883a-f9b2a3a95f5e
mem_total_mb: -1
mem_available_mb: -1
disk_total_mb: -1
disk_available_mb: -1
load: -1
cpus_online: -1
";

    const STATS: &str = "node_uuid: 4cb19522-1e18-439a-883a-f9b2a3a95f5e
status: READY
mem_total_mb: 7856
mem_available_mb: 5220
disk_total_mb: 231782
disk_available_mb: 166163
load: 0
cpus_online: 4
hostname: cn-01
networks:
- ip: 192.168.1.110
  mac: 02:00:15:03:6f:49
- ip: 10.168.1.1
  mac: 02:00:8c:ba:f9:45
instances:
- instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f
  state: active
  ssh_ip: 192.168.42.21
  ssh_port: 35050
  memory_usage_mb: 492
  disk_usage_mb: 339
  cpu_usage: 3
  volumes:
  - 69e84267-ed01-4738-b15f-b47de06b62e7
- instance_uuid: 3390740c-dce9-48d6-b83a-a717417072ce
  state: exited
  ssh_ip: 192.168.42.21
  ssh_port: 35051
  memory_usage_mb: -1
  disk_usage_mb: 189
  cpu_usage: -1
  volumes: []
- instance_uuid: c6beb8b5-0bfc-43fd-9638-7dd788179fd8
  state: pending
  ssh_ip: \"\"
  ssh_port: 0
  memory_usage_mb: -1
  disk_usage_mb: -1
  cpu_usage: -1
  volumes: []
";

    const STATS_FULL: &str = "node_uuid: 4cb19522-1e18-439a-883a-f9b2a3a95f5e
status: FULL
mem_total_mb: 7856
mem_available_mb: 412
disk_total_mb: 231782
disk_available_mb: 166163
load: 3
cpus_online: 4
hostname: \"\"
networks: []
instances: []
";

    #[test]
    fn ready_examples_byte_for_byte() {
        let r = Ready {
            node_uuid: "4cb19522-1e18-439a-883a-f9b2a3a95f5e".into(),
            mem_total_mb: 7856,
            mem_available_mb: 5220,
            disk_total_mb: 231782,
            disk_available_mb: 166163,
            load: 0,
            cpus_online: 4,
        };
        assert_eq!(r.to_yaml(), READY);
        assert_eq!(Ready::parse(READY.as_bytes()).unwrap(), r);
        let u = Ready {
            node_uuid: r.node_uuid.clone(),
            mem_total_mb: -1,
            mem_available_mb: -1,
            disk_total_mb: -1,
            disk_available_mb: -1,
            load: -1,
            cpus_online: -1,
        };
        assert_eq!(u.to_yaml(), READY_UNKNOWN);
        // FULL carries no payload: decodes to zeros.
        assert_eq!(Ready::parse(b"").unwrap(), Ready::default());
    }

    #[test]
    fn stats_examples_byte_for_byte() {
        let full = Stat {
            node_uuid: "4cb19522-1e18-439a-883a-f9b2a3a95f5e".into(),
            status: NodeStatus::Full.as_str().into(),
            mem_total_mb: 7856,
            mem_available_mb: 412,
            disk_total_mb: 231782,
            disk_available_mb: 166163,
            load: 3,
            cpus_online: 4,
            ..Stat::default()
        };
        assert_eq!(full.to_yaml(), STATS_FULL);
        // Round trip of the big example: decode, re-encode, same bytes.
        let s = Stat::parse(STATS.as_bytes()).unwrap();
        assert_eq!(s.instances.len(), 3);
        assert_eq!(
            s.instances[0].volumes,
            ["69e84267-ed01-4738-b15f-b47de06b62e7"]
        );
        assert_eq!(s.instances[2].state, InstanceState::Pending.as_str());
        assert_eq!(s.to_yaml(), STATS);
    }

    #[test]
    fn stats_normalised_like_the_test_server() {
        // Unknown key dropped, missing volumes become [] (as the original server stores it).
        let s = Stat::parse(
            b"node_uuid: x\nbogus: 1\ninstances:\n- instance_uuid: a\n  state: active\n",
        )
        .unwrap();
        let y = s.to_yaml();
        assert!(y.contains("- instance_uuid: a\n  state: active\n  ssh_ip: \"\"\n"));
        assert!(y.ends_with("  volumes: []\n"));
        assert!(Stat::parse(b"networks: {ip: x}\n").is_err());
    }
}
