//! The client table of ciao-launcher-server: one entry
//! per connected launcher, keyed by its SSNTP UUID, holding its latest STATS,
//! its latest STATUS and a queue of events and errors for `/drain`.
//!
//! A launcher's undrained events outlive its session: they are held when it
//! disconnects and given back when the same UUID connects again (the
//! original dropped them, defect D4, reversed). STATS and STATUS are
//! snapshots the launcher resends on connecting, so they go with the session.
//!
//! Pure: the shell reports connections, disconnections and frames; nothing
//! here touches a socket. What is stored is the decoded, typed document, so
//! what `/stats` serves is the normalised re-serialisation, never the raw
//! bytes (unknown keys dropped, missing keys zero), as the original.

use std::collections::VecDeque;
use std::fmt;

use super::docs::{
    to_yaml, DecodeError, ErrorReport, InstanceDeleted, Node, Ready, Stat, TenantEvent,
    TenantEventKind, VolumeErrorReport,
};
use crate::ssntp::frame::{Command, ErrorCode, Event, Op};
use crate::ssntp::role;

/// Most queued entries kept per client. The original's queue is unbounded;
/// a launcher that is never drained (or a peer that floods events) would
/// grow the server without limit, so the oldest entries are dropped beyond
/// this. Far above anything a test produces.
pub(crate) const MAX_QUEUED: usize = 100_000;

/// Most disconnected launchers whose undrained events are held for their
/// return; beyond this the events of the one gone longest are dropped.
pub(crate) const MAX_HELD: usize = 1024;

/// One `/drain` entry (see `GET /drain` in ciao-launcher-server(8)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainEntry {
    /// EVENT InstanceDeleted.
    InstanceDeleted(InstanceDeleted),
    /// EVENT TenantAdded.
    TenantAdded(TenantEvent),
    /// EVENT TenantRemoved.
    TenantRemoved(TenantEvent),
    /// ERROR Start/Stop/Restart/DeleteFailure.
    Failure(ErrorReport),
    /// ERROR Attach/DetachVolumeFailure.
    VolumeFailure(VolumeErrorReport),
    /// Any other event or error, or a payload that does not decode: `- null`
    /// (defect D5, kept: the entry count is visible).
    Null,
}

/// A connected launcher.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientEntry {
    /// SSNTP UUID, canonical text.
    pub uuid: String,
    /// Last STATS document received.
    pub stats: Option<Stat>,
    /// Last STATUS payload received (a FULL without payload stores zeros:
    /// defect D3, kept because `/status` shows it).
    pub status: Option<Ready>,
    /// Events and errors not drained yet, oldest first.
    pub events: VecDeque<DrainEntry>,
    /// The SSNTP connection this entry belongs to (the `conn` of the
    /// library's Connected event).
    pub conn: u64,
}

/// A client whose role is neither agent nor netagent connected: it gets no
/// entry (defect D11, kept). Display is the original's stderr line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredRole(pub u32);

impl fmt::Display for IgnoredRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Ignoring connection from unexpected role: {}.",
            role::name(self.0)
        )
    }
}

impl std::error::Error for IgnoredRole {}

/// What [`ClientTable::on_frame`] did with a frame, for the shell's debug log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameOutcome {
    /// Stored (stats/status replaced, or an entry queued).
    Recorded,
    /// Queued as a `null` entry because its payload did not decode.
    QueuedNull(String),
    /// Dropped: no entry for this UUID, a COMMAND other than STATS, or an
    /// undecodable STATS/STATUS (the previous document stays).
    Ignored(String),
}

/// All connected launchers, in connection order (a stable order for
/// `/clients`; the original used Go map order, defect D13).
#[derive(Debug, Clone, Default)]
pub struct ClientTable {
    entries: Vec<ClientEntry>,
    /// Undrained events of disconnected launchers, oldest disconnection
    /// first, at most [`MAX_HELD`].
    held: VecDeque<(String, VecDeque<DrainEntry>)>,
}

/// What [`ClientTable::on_disconnect`] did, for the shell's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disconnect {
    /// The entry went; `held` undrained events wait for the launcher's
    /// return; `dropped` events of another launcher (`dropped_of`), gone
    /// longest, were dropped to make room.
    Removed {
        held: usize,
        dropped: usize,
        dropped_of: Option<String>,
    },
    /// No entry, or the entry belongs to a newer session of that UUID: the
    /// table is unchanged.
    NotCurrent,
}

impl ClientTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Session `conn` of a client finished the SSNTP handshake. Agents and
    /// netagents get an entry, with the events held for that UUID since it
    /// last disconnected. When the UUID already has an entry (the SSNTP
    /// library closes an older session before announcing a newer one, so
    /// only an owner that reports sessions differently gets here), the entry
    /// passes to `conn`: its events are kept, its STATS and STATUS start
    /// afresh, and the older session's close leaves it alone. Other roles
    /// get none; the error's Display is the line to print on stderr.
    pub fn on_connect(&mut self, uuid: &str, roles: u32, conn: u64) -> Result<(), IgnoredRole> {
        if roles & (role::AGENT | role::NETAGENT) == 0 {
            return Err(IgnoredRole(roles));
        }
        match self.index(uuid) {
            Some(i) => {
                let e = &mut self.entries[i];
                e.conn = conn;
                e.stats = None;
                e.status = None;
            }
            None => {
                let events = match self.held.iter().position(|(u, _)| u == uuid) {
                    Some(h) => self.held.remove(h).map(|(_, ev)| ev).unwrap_or_default(),
                    None => VecDeque::new(),
                };
                self.entries.push(ClientEntry {
                    uuid: uuid.to_string(),
                    events,
                    conn,
                    ..Default::default()
                });
            }
        }
        Ok(())
    }

    /// Session `conn` of a client ended. Its entry goes only if it still
    /// belongs to that session (a newer session of the same UUID keeps it);
    /// undrained events are held for the launcher's return.
    pub fn on_disconnect(&mut self, uuid: &str, conn: u64) -> Disconnect {
        let Some(i) = self.index(uuid).filter(|&i| self.entries[i].conn == conn) else {
            return Disconnect::NotCurrent;
        };
        let entry = self.entries.remove(i);
        let held = entry.events.len();
        let (mut dropped, mut dropped_of) = (0, None);
        if held > 0 {
            if self.held.len() >= MAX_HELD {
                if let Some((u, ev)) = self.held.pop_front() {
                    dropped = ev.len();
                    dropped_of = Some(u);
                }
            }
            self.held.push_back((entry.uuid, entry.events));
        }
        Disconnect::Removed {
            held,
            dropped,
            dropped_of,
        }
    }

    /// A frame arrived from client `uuid` (after the handshake).
    pub fn on_frame(&mut self, uuid: &str, op: impl Into<Op>, payload: &[u8]) -> FrameOutcome {
        let Some(i) = self.index(uuid) else {
            return FrameOutcome::Ignored(format!("frame from {uuid}, which has no entry"));
        };
        let entry = &mut self.entries[i];
        match op.into() {
            Op::Status(_) => match Ready::parse(payload) {
                Ok(r) => {
                    entry.status = Some(r);
                    FrameOutcome::Recorded
                }
                Err(e) => FrameOutcome::Ignored(format!(
                    "STATUS payload from {uuid} does not decode: {e}"
                )),
            },
            Op::Command(Command::Stats) => match Stat::parse(payload) {
                Ok(s) => {
                    entry.stats = Some(s);
                    FrameOutcome::Recorded
                }
                Err(e) => {
                    FrameOutcome::Ignored(format!("STATS payload from {uuid} does not decode: {e}"))
                }
            },
            Op::Command(c) => {
                FrameOutcome::Ignored(format!("COMMAND operand {} from {uuid}", u8::from(c)))
            }
            Op::Event(e) => entry.queue(decode_event(e, payload)),
            Op::Error(e) => entry.queue(decode_error(e, payload)),
            Op::Unknown { ftype, .. } => {
                FrameOutcome::Ignored(format!("frame type {ftype} from {uuid}"))
            }
        }
    }

    /// UUIDs of all entries, in connection order.
    pub fn uuids(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.uuid.as_str())
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no launcher is connected.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entry of `uuid`.
    pub fn get(&self, uuid: &str) -> Option<&ClientEntry> {
        self.index(uuid).map(|i| &self.entries[i])
    }

    /// Client selection, as the original's: with exactly one client an
    /// empty `client` picks it; otherwise `client` must equal a UUID exactly
    /// (case-sensitive).
    pub fn select(&self, client: &str) -> Option<usize> {
        if client.is_empty() {
            return (self.entries.len() == 1).then_some(0);
        }
        self.index(client)
    }

    /// The entry at a position returned by [`ClientTable::select`].
    pub fn entry_mut(&mut self, i: usize) -> &mut ClientEntry {
        &mut self.entries[i]
    }

    fn index(&self, uuid: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.uuid == uuid)
    }
}

impl ClientEntry {
    /// Queues a decoded EVENT or ERROR for `/drain` (a null entry when it
    /// did not decode), dropping the oldest beyond [`MAX_QUEUED`].
    fn queue(&mut self, decoded: Result<DrainEntry, String>) -> FrameOutcome {
        let (item, outcome) = match decoded {
            Ok(item) => (item, FrameOutcome::Recorded),
            Err(why) => (DrainEntry::Null, FrameOutcome::QueuedNull(why)),
        };
        if self.events.len() >= MAX_QUEUED {
            self.events.pop_front();
        }
        self.events.push_back(item);
        outcome
    }
}

fn decode_event(operand: Event, payload: &[u8]) -> Result<DrainEntry, String> {
    let why = |e: DecodeError| format!("EVENT operand {}: {e}", u8::from(operand));
    match operand {
        Event::InstanceDeleted => InstanceDeleted::parse(payload)
            .map(DrainEntry::InstanceDeleted)
            .map_err(why),
        Event::TenantAdded => TenantEvent::parse(payload, TenantEventKind::Added)
            .map(DrainEntry::TenantAdded)
            .map_err(why),
        Event::TenantRemoved => TenantEvent::parse(payload, TenantEventKind::Removed)
            .map(DrainEntry::TenantRemoved)
            .map_err(why),
        _ => Ok(DrainEntry::Null),
    }
}

fn decode_error(operand: ErrorCode, payload: &[u8]) -> Result<DrainEntry, String> {
    let why = |e: DecodeError| format!("ERROR operand {}: {e}", u8::from(operand));
    match operand {
        ErrorCode::StartFailure
        | ErrorCode::StopFailure
        | ErrorCode::RestartFailure
        | ErrorCode::DeleteFailure => ErrorReport::parse(payload)
            .map(DrainEntry::Failure)
            .map_err(why),
        ErrorCode::AttachVolumeFailure | ErrorCode::DetachVolumeFailure => {
            VolumeErrorReport::parse(payload)
                .map(DrainEntry::VolumeFailure)
                .map_err(why)
        }
        _ => Ok(DrainEntry::Null),
    }
}

impl DrainEntry {
    /// The entry as a YAML node (a list element of `/drain`).
    pub fn to_node(&self) -> Node<'_> {
        match self {
            DrainEntry::InstanceDeleted(d) => d.to_node(),
            DrainEntry::TenantAdded(t) => t.to_node(TenantEventKind::Added),
            DrainEntry::TenantRemoved(t) => t.to_node(TenantEventKind::Removed),
            DrainEntry::Failure(f) => f.to_node(),
            DrainEntry::VolumeFailure(f) => f.to_node(),
            DrainEntry::Null => Node::Null,
        }
    }
}

/// The `/drain` body: a yaml.v2 list of the entries, `[]` when empty.
pub(crate) fn emit_drain<'a>(entries: impl IntoIterator<Item = &'a DrainEntry>) -> String {
    to_yaml(&Node::Seq(
        entries.into_iter().map(DrainEntry::to_node).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssntp::frame::Status;

    const A: &str = "aaaaaaaa-0000-0000-0000-000000000001";
    const B: &str = "bbbbbbbb-0000-0000-0000-000000000002";

    fn table_with(uuids: &[&str]) -> ClientTable {
        let mut t = ClientTable::new();
        for u in uuids {
            t.on_connect(u, role::AGENT | role::NETAGENT, 1).unwrap();
        }
        t
    }

    #[test]
    fn roles_decide_who_gets_an_entry() {
        let mut t = ClientTable::new();
        assert!(t.on_connect(A, role::AGENT, 1).is_ok());
        assert!(t.on_connect(B, role::NETAGENT, 2).is_ok());
        let e = t.on_connect("c", role::CONTROLLER, 3).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Ignoring connection from unexpected role: Controller."
        );
        assert_eq!(
            IgnoredRole(role::SERVER | role::SCHEDULER).to_string(),
            "Ignoring connection from unexpected role: Server-Scheduler."
        );
        assert_eq!(t.uuids().collect::<Vec<_>>(), vec![A, B]);
        assert!(matches!(
            t.on_frame("c", Event::InstanceDeleted, b""),
            FrameOutcome::Ignored(_)
        ));
    }

    /// Launcher A (session 1) with one undrained event and a STATS.
    fn a_with_an_event_and_stats() -> ClientTable {
        let mut t = table_with(&[A]);
        t.on_frame(
            A,
            Event::InstanceDeleted,
            b"instance_deleted:\n  instance_uuid: i1\n",
        );
        t.on_frame(A, Command::Stats, b"node_uuid: x\n");
        t
    }

    // Issue 14, item 7: reverses D4 (a disconnect dropped undrained events).
    #[test]
    fn events_wait_for_the_launcher_across_a_reconnect() {
        let mut t = a_with_an_event_and_stats();
        assert_eq!(
            t.on_disconnect(A, 1),
            Disconnect::Removed {
                held: 1,
                dropped: 0,
                dropped_of: None
            }
        );
        assert!(t.get(A).is_none() && t.is_empty());
        assert_eq!(t.on_disconnect(A, 1), Disconnect::NotCurrent);
        t.on_connect(A, role::AGENT, 2).unwrap();
        let e = t.get(A).unwrap();
        assert_eq!(e.events.len(), 1, "held events come back");
        assert_eq!(e.stats, None, "snapshots start afresh");
        // Given back once: drained, then a disconnect holds nothing.
        t.entry_mut(0).events.clear();
        t.on_disconnect(A, 2);
        t.on_connect(A, role::AGENT, 3).unwrap();
        assert!(t.get(A).unwrap().events.is_empty());
    }

    #[test]
    fn held_events_are_bounded_by_launcher_count() {
        let mut t = ClientTable::new();
        let uuid = |n: usize| format!("{n:08x}-0000-0000-0000-000000000000");
        for n in 0..=MAX_HELD {
            t.on_connect(&uuid(n), role::AGENT, n as u64).unwrap();
            t.on_frame(&uuid(n), Event::NodeConnected, b"");
            let d = t.on_disconnect(&uuid(n), n as u64);
            if n == MAX_HELD {
                assert_eq!(
                    d,
                    Disconnect::Removed {
                        held: 1,
                        dropped: 1,
                        dropped_of: Some(uuid(0))
                    }
                );
            }
        }
        t.on_connect(&uuid(0), role::AGENT, 9999).unwrap();
        assert!(t.get(&uuid(0)).unwrap().events.is_empty());
        t.on_connect(&uuid(1), role::AGENT, 9999).unwrap();
        assert_eq!(t.get(&uuid(1)).unwrap().events.len(), 1);
    }

    // Issue 14, item 3: two sessions of one UUID.
    #[test]
    fn only_the_current_session_removes_an_entry() {
        let mut t = a_with_an_event_and_stats();
        // A newer session of A takes the entry over (events kept)...
        t.on_connect(A, role::AGENT, 7).unwrap();
        assert_eq!(t.get(A).unwrap().conn, 7);
        assert_eq!(t.get(A).unwrap().events.len(), 1);
        assert_eq!(t.get(A).unwrap().stats, None);
        // ...and the older one closing leaves it alone.
        assert_eq!(t.on_disconnect(A, 1), Disconnect::NotCurrent);
        assert_eq!(t.uuids().collect::<Vec<_>>(), vec![A]);
        assert_eq!(t.select(""), Some(0));
        assert!(matches!(t.on_disconnect(A, 7), Disconnect::Removed { .. }));
        assert!(t.is_empty());
    }

    #[test]
    fn status_is_replaced_by_any_status_frame() {
        let mut t = table_with(&[A]);
        let ready = b"node_uuid: n\nmem_total_mb: 1000\nunknown: 1\n";
        assert_eq!(t.on_frame(A, Status::Ready, ready), FrameOutcome::Recorded);
        assert_eq!(
            t.get(A).unwrap().status.as_ref().unwrap().mem_total_mb,
            1000
        );
        // FULL carries no payload: zeros (D3).
        assert_eq!(t.on_frame(A, Status::Full, b""), FrameOutcome::Recorded);
        assert_eq!(t.get(A).unwrap().status, Some(Ready::default()));
        // Undecodable: ignored, previous kept.
        t.on_frame(A, Status::Ready, ready);
        assert!(matches!(
            t.on_frame(A, Status::Ready, b"mem_total_mb: [1]"),
            FrameOutcome::Ignored(_)
        ));
        assert_eq!(
            t.get(A).unwrap().status.as_ref().unwrap().mem_total_mb,
            1000
        );
    }

    #[test]
    fn stats_replaced_whole_and_bad_stats_ignored() {
        let mut t = table_with(&[A]);
        t.on_frame(
            A,
            Command::Stats,
            b"node_uuid: x\ninstances:\n- instance_uuid: i\n  state: active\n",
        );
        assert_eq!(t.get(A).unwrap().stats.as_ref().unwrap().instances.len(), 1);
        assert!(matches!(
            t.on_frame(A, Command::Stats, b"not: [yaml"),
            FrameOutcome::Ignored(_)
        ));
        assert_eq!(t.get(A).unwrap().stats.as_ref().unwrap().instances.len(), 1);
        t.on_frame(A, Command::Stats, b"node_uuid: y\n");
        assert!(t
            .get(A)
            .unwrap()
            .stats
            .as_ref()
            .unwrap()
            .instances
            .is_empty());
        // Other commands are ignored.
        assert!(matches!(
            t.on_frame(A, Command::Start, b"x"),
            FrameOutcome::Ignored(_)
        ));
    }

    // The sequence a scripted agent sent to the original server.
    #[test]
    fn events_and_errors_queue_as_in_the_probe() {
        let mut t = table_with(&[A]);
        let frames: [(Op, &[u8]); 10] = [
            (Op::Event(Event::TenantAdded), b"tenant_added:\n  agent_uuid: a1\n  agent_ip: 10.0.0.1\n  tenant_uuid: t1\n  tenant_subnet: 172.16.0.0/24\n  concentrator_uuid: c1\n  concentrator_ip: 10.0.0.2\n  subnet_key: 42\n"),
            (Op::Event(Event::TenantRemoved), b"tenant_removed:\n  agent_uuid: a1\n  tenant_uuid: t1\n"),
            (Op::Event(Event::InstanceDeleted), b"instance_deleted:\n  instance_uuid: i1\n"),
            (Op::Event(Event::ConcentratorInstanceAdded), b"cnci: x\n"),
            (Op::Error(ErrorCode::StartFailure), b"instance_uuid: i3\nreason: full_cn\n"),
            (Op::Error(ErrorCode::AttachVolumeFailure), b"instance_uuid: i4\nvolume_uuid: v4\nreason: attach_failure\n"),
            (Op::Error(ErrorCode::InvalidFrameType), b""),
            (Op::Event(Event::InstanceDeleted), b"this is: [not yaml"),
            (Op::Error(ErrorCode::StopFailure), b""),
            (Op::Error(ErrorCode::DetachVolumeFailure), b"instance_uuid: i5\nvolume_uuid: v5\nreason: not_attached\nextra: key\n"),
        ];
        for (op, payload) in frames {
            t.on_frame(A, op, payload);
        }
        let body = emit_drain(&t.get(A).unwrap().events);
        // Exact body of the original's /drain answer (Content-Length: 608).
        let expected = "- tenant_added:
    agent_uuid: a1
    agent_ip: 10.0.0.1
    tenant_uuid: t1
    tenant_subnet: 172.16.0.0/24
    concentrator_uuid: c1
    concentrator_ip: 10.0.0.2
    subnet_key: 42
- tenant_removed:
    agent_uuid: a1
    agent_ip: \"\"
    tenant_uuid: t1
    tenant_subnet: \"\"
    concentrator_uuid: \"\"
    concentrator_ip: \"\"
    subnet_key: 0
- instance_deleted:
    instance_uuid: i1
- null
- instance_uuid: i3
  reason: full_cn
- instance_uuid: i4
  volume_uuid: v4
  reason: attach_failure
- null
- null
- instance_uuid: \"\"
  reason: \"\"
- instance_uuid: i5
  volume_uuid: v5
  reason: not_attached
";
        assert_eq!(body, expected);
        assert_eq!(body.len(), 608);
    }

    #[test]
    fn queue_is_bounded() {
        let mut t = table_with(&[A]);
        for _ in 0..MAX_QUEUED + 5 {
            t.on_frame(A, Event::NodeConnected, b"");
        }
        assert_eq!(t.get(A).unwrap().events.len(), MAX_QUEUED);
    }

    #[test]
    fn selection_rules() {
        let mut t = ClientTable::new();
        assert_eq!(t.select(""), None);
        assert_eq!(t.select(A), None);
        t.on_connect(A, role::AGENT, 1).unwrap();
        assert_eq!(t.select(""), Some(0));
        assert_eq!(t.select(A), Some(0));
        assert_eq!(t.select("nosuch"), None);
        assert_eq!(t.select(&A.to_uppercase()), None);
        t.on_connect(B, role::AGENT, 2).unwrap();
        assert_eq!(t.select(""), None);
        assert_eq!(t.select(B), Some(1));
    }
}
