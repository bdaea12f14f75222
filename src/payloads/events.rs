//! EVENT payloads the launcher sends: InstanceDeleted, TenantAdded,
//! TenantRemoved and TraceReport.

use super::lenient::{self, lenient_struct, DecodeError};
use super::yaml_out::{to_yaml, Node};

/// InstanceDeleted (EVENT operand 2): `instance_deleted: {instance_uuid}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceDeleted {
    pub instance_uuid: String,
}
lenient_struct!(InstanceDeleted { "instance_uuid" => instance_uuid });

#[derive(Default)]
struct InstanceDeletedDoc {
    instance_deleted: InstanceDeleted,
}
lenient_struct!(InstanceDeletedDoc { "instance_deleted" => instance_deleted });

impl InstanceDeleted {
    pub fn new(instance_uuid: impl Into<String>) -> Self {
        InstanceDeleted {
            instance_uuid: instance_uuid.into(),
        }
    }

    pub fn parse(payload: &[u8]) -> Result<Self, DecodeError> {
        lenient::decode_bytes::<InstanceDeletedDoc>(payload).map(|d| d.instance_deleted)
    }

    /// The whole document, wrapper key included.
    pub fn to_node(&self) -> Node<'_> {
        Node::map([(
            "instance_deleted",
            Node::map([("instance_uuid", Node::str(&self.instance_uuid))]),
        )])
    }

    pub fn to_yaml(&self) -> String {
        to_yaml(&self.to_node())
    }
}

/// Which of the two tenant events a [`TenantEvent`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantEventKind {
    /// TenantAdded (EVENT operand 0).
    Added,
    /// TenantRemoved (EVENT operand 1).
    Removed,
}

impl TenantEventKind {
    /// The document's wrapper key.
    pub fn key(self) -> &'static str {
        match self {
            TenantEventKind::Added => "tenant_added",
            TenantEventKind::Removed => "tenant_removed",
        }
    }
}

/// TenantAdded / TenantRemoved: a tenant tunnel appeared on or left this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantEvent {
    pub agent_uuid: String,
    pub agent_ip: String,
    pub tenant_uuid: String,
    pub tenant_subnet: String,
    pub concentrator_uuid: String,
    pub concentrator_ip: String,
    /// GRE key: the subnet's network address read as a little-endian u32.
    pub subnet_key: i64,
}
lenient_struct!(TenantEvent {
    "agent_uuid" => agent_uuid,
    "agent_ip" => agent_ip,
    "tenant_uuid" => tenant_uuid,
    "tenant_subnet" => tenant_subnet,
    "concentrator_uuid" => concentrator_uuid,
    "concentrator_ip" => concentrator_ip,
    "subnet_key" => subnet_key,
});

#[derive(Default)]
struct TenantAddedDoc {
    tenant_added: TenantEvent,
}
lenient_struct!(TenantAddedDoc { "tenant_added" => tenant_added });

#[derive(Default)]
struct TenantRemovedDoc {
    tenant_removed: TenantEvent,
}
lenient_struct!(TenantRemovedDoc { "tenant_removed" => tenant_removed });

impl TenantEvent {
    /// Decodes a TenantAdded or TenantRemoved payload (the wrapper key must match `kind`,
    /// else the fields are zero, as in Go).
    pub fn parse(payload: &[u8], kind: TenantEventKind) -> Result<Self, DecodeError> {
        match kind {
            TenantEventKind::Added => {
                lenient::decode_bytes::<TenantAddedDoc>(payload).map(|d| d.tenant_added)
            }
            TenantEventKind::Removed => {
                lenient::decode_bytes::<TenantRemovedDoc>(payload).map(|d| d.tenant_removed)
            }
        }
    }

    /// The whole document under the wrapper key of `kind`.
    pub fn to_node(&self, kind: TenantEventKind) -> Node<'_> {
        Node::map([(
            kind.key(),
            Node::map([
                ("agent_uuid", Node::str(&self.agent_uuid)),
                ("agent_ip", Node::str(&self.agent_ip)),
                ("tenant_uuid", Node::str(&self.tenant_uuid)),
                ("tenant_subnet", Node::str(&self.tenant_subnet)),
                ("concentrator_uuid", Node::str(&self.concentrator_uuid)),
                ("concentrator_ip", Node::str(&self.concentrator_ip)),
                ("subnet_key", Node::Int(self.subnet_key)),
            ]),
        )])
    }

    pub fn to_yaml(&self, kind: TenantEventKind) -> String {
        to_yaml(&self.to_node(kind))
    }
}

/// One SSNTP node a traced frame went through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceNode {
    pub ssntp_node_uuid: String,
    /// Role names joined by `-` (`Server-Scheduler`).
    pub ssntp_role: String,
    /// RFC 3339 with nanoseconds, `""` if not set.
    pub tx_timestamp: String,
    pub rx_timestamp: String,
}
lenient_struct!(TraceNode {
    "ssntp_node_uuid" => ssntp_node_uuid,
    "ssntp_role" => ssntp_role,
    "tx_timestamp" => tx_timestamp,
    "rx_timestamp" => rx_timestamp,
});

/// One traced frame.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceFrame {
    pub label: String,
    /// Frame type name (`COMMAND`).
    pub frame_type: String,
    /// Operand name (`START`).
    pub operand: String,
    pub start_timestamp: String,
    pub end_timestamp: String,
    pub nodes: Vec<TraceNode>,
}
lenient_struct!(TraceFrame {
    "label" => label,
    "type" => frame_type,
    "operand" => operand,
    "start_timestamp" => start_timestamp,
    "end_timestamp" => end_timestamp,
    "nodes" => nodes,
});

/// TraceReport (EVENT operand 6): the traced frames since the last report. Timestamps are
/// taken as already formatted RFC 3339 strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceReport {
    pub frames: Vec<TraceFrame>,
}
lenient_struct!(TraceReport { "frames" => frames });

impl TraceReport {
    pub fn parse(payload: &[u8]) -> Result<Self, DecodeError> {
        lenient::decode_bytes(payload)
    }

    pub fn to_node(&self) -> Node<'_> {
        fn frame(f: &TraceFrame) -> Node<'_> {
            Node::map([
                ("label", Node::str(&f.label)),
                ("type", Node::str(&f.frame_type)),
                ("operand", Node::str(&f.operand)),
                ("start_timestamp", Node::str(&f.start_timestamp)),
                ("end_timestamp", Node::str(&f.end_timestamp)),
                (
                    "nodes",
                    Node::Seq(
                        f.nodes
                            .iter()
                            .map(|n| {
                                Node::map([
                                    ("ssntp_node_uuid", Node::str(&n.ssntp_node_uuid)),
                                    ("ssntp_role", Node::str(&n.ssntp_role)),
                                    ("tx_timestamp", Node::str(&n.tx_timestamp)),
                                    ("rx_timestamp", Node::str(&n.rx_timestamp)),
                                ])
                            })
                            .collect(),
                    ),
                ),
            ])
        }
        Node::map([("frames", Node::Seq(self.frames.iter().map(frame).collect()))])
    }

    pub fn to_yaml(&self) -> String {
        to_yaml(&self.to_node())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT_BODY: &str = "  agent_uuid: 4cb19522-1e18-439a-883a-f9b2a3a95f5e
  agent_ip: 192.168.1.110
  tenant_uuid: 67d86208-d46c-4465-9018-fe14087d415f
  tenant_subnet: 192.168.8.0/24
  concentrator_uuid: 67d86208-b46c-4465-0000-fe14087d415f
  concentrator_ip: 192.168.42.21
  subnet_key: 567488
";

    const TRACE: &str = "frames:
- label: \"\"
  type: COMMAND
  operand: START
  start_timestamp: 2017-01-10T14:03:07.123456789Z
  end_timestamp: 2017-01-10T14:03:09.123456789Z
  nodes:
  - ssntp_node_uuid: 3d1b5a4e-7f2d-4c4b-9f0a-1c2d3e4f5a6b
    ssntp_role: Controller
    tx_timestamp: 2017-01-10T14:03:07.124456789Z
    rx_timestamp: \"\"
  - ssntp_node_uuid: 9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d
    ssntp_role: Server-Scheduler
    tx_timestamp: 2017-01-10T14:03:07.126456789Z
    rx_timestamp: 2017-01-10T14:03:07.125456789Z
";

    #[test]
    fn instance_deleted_byte_for_byte() {
        let e = InstanceDeleted::new("d7d86208-b46c-4465-9018-fe14087d415f");
        let y = "instance_deleted:\n  instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f\n";
        assert_eq!(e.to_yaml(), y);
        assert_eq!(InstanceDeleted::parse(y.as_bytes()).unwrap(), e);
        // Inside a drain list the wrapper is indented by 4.
        assert_eq!(
            to_yaml(&Node::Seq(vec![e.to_node(), Node::Null])),
            "- instance_deleted:\n    instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f\n- null\n"
        );
    }

    #[test]
    fn tenant_events_byte_for_byte() {
        let e = TenantEvent {
            agent_uuid: "4cb19522-1e18-439a-883a-f9b2a3a95f5e".into(),
            agent_ip: "192.168.1.110".into(),
            tenant_uuid: "67d86208-d46c-4465-9018-fe14087d415f".into(),
            tenant_subnet: "192.168.8.0/24".into(),
            concentrator_uuid: "67d86208-b46c-4465-0000-fe14087d415f".into(),
            concentrator_ip: "192.168.42.21".into(),
            subnet_key: 567488,
        };
        let added = format!("tenant_added:\n{TENANT_BODY}");
        let removed = format!("tenant_removed:\n{TENANT_BODY}");
        assert_eq!(e.to_yaml(TenantEventKind::Added), added);
        assert_eq!(e.to_yaml(TenantEventKind::Removed), removed);
        assert_eq!(
            TenantEvent::parse(added.as_bytes(), TenantEventKind::Added).unwrap(),
            e
        );
        assert_eq!(
            TenantEvent::parse(added.as_bytes(), TenantEventKind::Removed).unwrap(),
            TenantEvent::default()
        );
    }

    #[test]
    fn trace_report_byte_for_byte() {
        let t = TraceReport {
            frames: vec![TraceFrame {
                label: String::new(),
                frame_type: "COMMAND".into(),
                operand: "START".into(),
                start_timestamp: "2017-01-10T14:03:07.123456789Z".into(),
                end_timestamp: "2017-01-10T14:03:09.123456789Z".into(),
                nodes: vec![
                    TraceNode {
                        ssntp_node_uuid: "3d1b5a4e-7f2d-4c4b-9f0a-1c2d3e4f5a6b".into(),
                        ssntp_role: "Controller".into(),
                        tx_timestamp: "2017-01-10T14:03:07.124456789Z".into(),
                        rx_timestamp: String::new(),
                    },
                    TraceNode {
                        ssntp_node_uuid: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d".into(),
                        ssntp_role: "Server-Scheduler".into(),
                        tx_timestamp: "2017-01-10T14:03:07.126456789Z".into(),
                        rx_timestamp: "2017-01-10T14:03:07.125456789Z".into(),
                    },
                ],
            }],
        };
        assert_eq!(t.to_yaml(), TRACE);
        assert_eq!(TraceReport::parse(TRACE.as_bytes()).unwrap(), t);
        assert_eq!(TraceReport::default().to_yaml(), "frames: []\n");
    }
}
