//! A sans-IO QMP client (QEMU Machine Protocol): bytes in, [`QmpEvent`]s
//! out, bytes to write collected for the shell.
//!
//! The session reads the greeting, negotiates capabilities
//! (`qmp_capabilities`), then sends commands with numeric ids, each with a
//! deadline, and reports replies, errors, deadline expiries and
//! asynchronous events (`SHUTDOWN`, `POWERDOWN`, `STOP`, `RESET`,
//! `DEVICE_DELETED`, ...). Unlike the original's library it never waits
//! for ever (launcher defect 8 in docs/compatibility.md), matches replies
//! by id instead of by queue position (so several commands may be in
//! flight; launcher defect 31 cannot happen), and a line it cannot parse is
//! reported and skipped, never fatal.
//!
//! JSON comes in through [`crate::http::json::parse_json`] (no JSON crate);
//! what goes out is fixed text plus numeric ids.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use serde_yaml::Value;

use crate::http::json::parse_json;

/// Longest line accepted from qemu before the session gives up (a greeting
/// or reply is a few hundred bytes; `query-*` answers a few kB).
pub(crate) const MAX_LINE: usize = 1 << 20;

/// The id of the capabilities negotiation.
const CAPS_ID: u64 = 0;

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Connected, waiting for the greeting.
    Greeting,
    /// `qmp_capabilities` sent, waiting for its return.
    Negotiating,
    /// Commands may be sent.
    Ready,
    /// The session failed or the peer went away; nothing more happens.
    Failed,
}

/// qemu's version from the greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Version {
    pub major: u64,
    pub minor: u64,
    pub micro: u64,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// Something the session learnt.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum QmpEvent {
    /// Capabilities negotiated: commands can be sent.
    Ready { version: Version },
    /// A command completed, with what it returned.
    Return {
        id: u64,
        command: String,
        data: Value,
    },
    /// A command failed (`class: desc`).
    Error {
        id: u64,
        command: String,
        error: String,
    },
    /// A command's deadline passed without a reply.
    Timeout { id: u64, command: String },
    /// An asynchronous event.
    Event { name: String, data: Value },
    /// The session cannot go on (bad greeting, failed negotiation, its
    /// deadline, an oversized line): the caller should close the socket.
    Failed { why: String },
    /// A line that is not a QMP message (logged and skipped).
    Ignored { line: String, why: String },
}

#[derive(Debug, Clone)]
struct Pending {
    id: u64,
    command: String,
    deadline: Instant,
}

/// One QMP session over one connection.
#[derive(Debug)]
pub(crate) struct Qmp {
    phase: Phase,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    next_id: u64,
    pending: VecDeque<Pending>,
    /// Commands asked for before the session was ready, sent once it is.
    queued: Vec<(u64, String, String, Duration)>,
    /// Deadline of the greeting + negotiation.
    handshake_deadline: Option<Instant>,
    handshake_timeout: Duration,
    version: Version,
}

impl Qmp {
    /// A session on a socket that just connected; the greeting and the
    /// negotiation must complete within `handshake` from `now`.
    pub(crate) fn new(now: Instant, handshake: Duration) -> Qmp {
        Qmp {
            phase: Phase::Greeting,
            inbuf: Vec::new(),
            out: Vec::new(),
            next_id: 1,
            pending: VecDeque::new(),
            queued: Vec::new(),
            handshake_deadline: Some(now + handshake),
            handshake_timeout: handshake,
            version: Version::default(),
        }
    }

    #[cfg(test)]
    pub(crate) fn phase(&self) -> Phase {
        self.phase
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }

    /// qemu's version (zero until the greeting arrived).
    #[cfg(test)]
    pub(crate) fn version(&self) -> Version {
        self.version
    }

    /// Bytes to write to the socket (taken).
    pub(crate) fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Queues `command` (with `arguments`, a JSON object text, or "" for
    /// none) and returns its id. Before the session is ready the command
    /// waits and is sent right after the negotiation; its deadline counts
    /// from then.
    pub(crate) fn command(
        &mut self,
        command: &str,
        arguments: &str,
        now: Instant,
        timeout: Duration,
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        match self.phase {
            Phase::Ready => self.send(id, command, arguments, now, timeout),
            Phase::Greeting | Phase::Negotiating => {
                self.queued
                    .push((id, command.to_string(), arguments.to_string(), timeout))
            }
            Phase::Failed => {}
        }
        id
    }

    fn send(&mut self, id: u64, command: &str, arguments: &str, now: Instant, timeout: Duration) {
        self.out
            .extend_from_slice(command_line(command, arguments, id).as_bytes());
        self.pending.push_back(Pending {
            id,
            command: command.to_string(),
            deadline: now + timeout,
        });
    }

    /// True while a command with this id awaits its reply.
    #[cfg(test)]
    pub(crate) fn is_pending(&self, id: u64) -> bool {
        self.pending.iter().any(|p| p.id == id) || self.queued.iter().any(|q| q.0 == id)
    }

    /// The earliest deadline (handshake or a command), for a timer.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let cmd = self.pending.iter().map(|p| p.deadline).min();
        match (self.handshake_deadline, cmd) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Reports what has passed its deadline at `now`.
    pub(crate) fn expire(&mut self, now: Instant, events: &mut Vec<QmpEvent>) {
        if self.phase == Phase::Failed {
            return;
        }
        if self.handshake_deadline.is_some_and(|d| now >= d) {
            let why = match self.phase {
                Phase::Greeting => "no QMP greeting",
                _ => "no answer to qmp_capabilities",
            };
            self.fail(format!("{why} within {:?}", self.handshake_timeout), events);
            return;
        }
        let (late, keep): (Vec<Pending>, Vec<Pending>) =
            self.pending.drain(..).partition(|p| now >= p.deadline);
        self.pending = keep.into();
        for p in late {
            events.push(QmpEvent::Timeout {
                id: p.id,
                command: p.command,
            });
        }
    }

    fn fail(&mut self, why: String, events: &mut Vec<QmpEvent>) {
        self.phase = Phase::Failed;
        self.handshake_deadline = None;
        self.pending.clear();
        self.queued.clear();
        events.push(QmpEvent::Failed { why });
    }

    /// Feeds bytes read from the socket.
    pub(crate) fn feed(&mut self, bytes: &[u8], now: Instant, events: &mut Vec<QmpEvent>) {
        if self.phase == Phase::Failed {
            return;
        }
        self.inbuf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(nl) = self.inbuf[start..].iter().position(|&b| b == b'\n') {
            let line = self.inbuf[start..start + nl].to_vec();
            start += nl + 1;
            self.line(&line, now, events);
            if self.phase == Phase::Failed {
                self.inbuf.clear();
                return;
            }
        }
        self.inbuf.drain(..start);
        if self.inbuf.len() > MAX_LINE {
            self.fail(format!("a QMP line longer than {MAX_LINE} bytes"), events);
            self.inbuf.clear();
        }
    }

    fn line(&mut self, raw: &[u8], now: Instant, events: &mut Vec<QmpEvent>) {
        let text = String::from_utf8_lossy(raw);
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        let v: Value = match parse_json(text.as_bytes()) {
            Ok(v @ Value::Mapping(_)) => v,
            Ok(_) => {
                return self.bad_line(text, "not a JSON object".into(), events);
            }
            Err(e) => return self.bad_line(text, e.to_string(), events),
        };
        match self.phase {
            Phase::Greeting => match v.get("QMP") {
                Some(g) => {
                    let q = g.get("version").and_then(|v| v.get("qemu"));
                    let num = |k: &str| {
                        q.and_then(|q| q.get(k))
                            .and_then(Value::as_u64)
                            .unwrap_or(0)
                    };
                    self.version = Version {
                        major: num("major"),
                        minor: num("minor"),
                        micro: num("micro"),
                    };
                    self.phase = Phase::Negotiating;
                    self.out.extend_from_slice(
                        command_line("qmp_capabilities", "", CAPS_ID).as_bytes(),
                    );
                }
                None => self.fail(
                    format!("expected the QMP greeting, got {}", clip(text)),
                    events,
                ),
            },
            Phase::Negotiating => {
                if v.get("event").is_some() {
                    self.event(&v, events);
                } else if v.get("return").is_some() {
                    self.phase = Phase::Ready;
                    self.handshake_deadline = None;
                    events.push(QmpEvent::Ready {
                        version: self.version,
                    });
                    for (id, c, a, t) in std::mem::take(&mut self.queued) {
                        self.send(id, &c, &a, now, t);
                    }
                } else if let Some(e) = v.get("error") {
                    let e = error_text(e);
                    self.fail(format!("qmp_capabilities refused: {e}"), events);
                } else {
                    self.bad_line(text, "unexpected before capabilities".into(), events);
                }
            }
            Phase::Ready => {
                if v.get("event").is_some() {
                    self.event(&v, events);
                } else if v.get("return").is_some() || v.get("error").is_some() {
                    let id = v.get("id").and_then(Value::as_u64);
                    let pos = match id {
                        Some(id) => self.pending.iter().position(|p| p.id == id),
                        // A reply without id: the oldest command (qemu
                        // answers in order).
                        None => (!self.pending.is_empty()).then_some(0),
                    };
                    let Some(pos) = pos else {
                        return self.bad_line(text, "a reply to no pending command".into(), events);
                    };
                    let Some(p) = self.pending.remove(pos) else {
                        return;
                    };
                    match v.get("error") {
                        Some(e) => events.push(QmpEvent::Error {
                            id: p.id,
                            command: p.command,
                            error: error_text(e),
                        }),
                        None => events.push(QmpEvent::Return {
                            id: p.id,
                            command: p.command,
                            data: v.get("return").cloned().unwrap_or(Value::Null),
                        }),
                    }
                } else {
                    self.bad_line(text, "neither event nor reply".into(), events);
                }
            }
            Phase::Failed => {}
        }
    }

    fn event(&mut self, v: &Value, events: &mut Vec<QmpEvent>) {
        let name = v
            .get("event")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let data = v.get("data").cloned().unwrap_or(Value::Null);
        events.push(QmpEvent::Event { name, data });
    }

    fn bad_line(&mut self, text: &str, why: String, events: &mut Vec<QmpEvent>) {
        if self.phase == Phase::Greeting {
            self.fail(format!("bad QMP greeting ({why}): {}", clip(text)), events);
        } else {
            events.push(QmpEvent::Ignored {
                line: clip(text),
                why,
            });
        }
    }

    /// The connection ended: pending commands are cancelled.
    pub(crate) fn closed(&mut self, events: &mut Vec<QmpEvent>) {
        if self.phase == Phase::Failed {
            return;
        }
        for p in self.pending.drain(..) {
            events.push(QmpEvent::Error {
                id: p.id,
                command: p.command,
                error: "connection closed (command cancelled)".into(),
            });
        }
        self.phase = Phase::Failed;
        self.queued.clear();
        self.handshake_deadline = None;
    }
}

/// `{"execute":"<command>","arguments":<arguments>,"id":<id>}` + newline.
/// `command` is one of our fixed command names; `arguments` a JSON object
/// text made by the caller, or empty.
pub(crate) fn command_line(command: &str, arguments: &str, id: u64) -> String {
    let mut s = String::with_capacity(64 + arguments.len());
    s.push_str("{\"execute\":");
    crate::http::json::write_string(&mut s, command);
    if !arguments.is_empty() {
        s.push_str(",\"arguments\":");
        s.push_str(arguments);
    }
    s.push_str(",\"id\":");
    s.push_str(&id.to_string());
    s.push_str("}\n");
    s
}

fn error_text(e: &Value) -> String {
    let class = e.get("class").and_then(Value::as_str).unwrap_or("Error");
    let desc = e.get("desc").and_then(Value::as_str).unwrap_or("");
    format!("{class}: {desc}")
}

fn clip(s: &str) -> String {
    if s.len() <= 200 {
        return s.to_string();
    }
    let mut end = 200;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREETING: &str = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, \"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}, \"capabilities\": [\"oob\"]}}\r\n";
    const SECS: Duration = Duration::from_secs(10);

    fn ready(now: Instant) -> Qmp {
        let mut q = Qmp::new(now, SECS);
        let mut ev = Vec::new();
        q.feed(GREETING.as_bytes(), now, &mut ev);
        assert!(ev.is_empty());
        assert_eq!(
            String::from_utf8(q.take_output()).unwrap(),
            "{\"execute\":\"qmp_capabilities\",\"id\":0}\n"
        );
        q.feed(b"{\"return\": {}, \"id\": 0}\n", now, &mut ev);
        assert_eq!(
            ev,
            vec![QmpEvent::Ready {
                version: Version {
                    major: 7,
                    minor: 2,
                    micro: 22
                }
            }]
        );
        q
    }

    #[test]
    fn handshake_in_pieces() {
        let now = Instant::now();
        let mut q = Qmp::new(now, SECS);
        let mut ev = Vec::new();
        for b in GREETING.as_bytes().chunks(7) {
            q.feed(b, now, &mut ev);
        }
        assert_eq!(q.phase(), Phase::Negotiating);
        assert_eq!(q.version().to_string(), "7.2.22");
        // An event may arrive before the return.
        q.feed(b"{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"RESUME\"}\n{\"return\": {}}\n", now, &mut ev);
        assert!(matches!(&ev[0], QmpEvent::Event { name, .. } if name == "RESUME"));
        assert!(matches!(ev[1], QmpEvent::Ready { .. }));
        assert!(q.deadline().is_none());
    }

    #[test]
    fn commands_before_ready_wait() {
        let now = Instant::now();
        let mut q = Qmp::new(now, SECS);
        let id = q.command("system_powerdown", "", now, SECS);
        assert!(q.take_output().is_empty());
        let mut ev = Vec::new();
        q.feed(GREETING.as_bytes(), now, &mut ev);
        q.take_output();
        q.feed(b"{\"return\": {}, \"id\": 0}\n", now, &mut ev);
        let out = String::from_utf8(q.take_output()).unwrap();
        assert_eq!(
            out,
            format!("{{\"execute\":\"system_powerdown\",\"id\":{id}}}\n")
        );
        assert!(q.is_pending(id));
    }

    #[test]
    fn replies_by_id_and_events() {
        let now = Instant::now();
        let mut q = ready(now);
        let a = q.command("system_powerdown", "", now, SECS);
        let b = q.command("device_del", "{\"id\":\"device_x\"}", now, SECS);
        let out = String::from_utf8(q.take_output()).unwrap();
        assert!(out.contains("\"arguments\":{\"id\":\"device_x\"}"));
        let mut ev = Vec::new();
        let text = format!(
            "{{\"return\": {{}}, \"id\": {b}}}\n{{\"timestamp\": {{\"seconds\": 1795633391, \"microseconds\": 824187}}, \"event\": \"POWERDOWN\"}}\n{{\"error\": {{\"class\": \"GenericError\", \"desc\": \"nope\"}}, \"id\": {a}}}\n"
        );
        q.feed(text.as_bytes(), now, &mut ev);
        assert_eq!(
            ev[0],
            QmpEvent::Return {
                id: b,
                command: "device_del".into(),
                data: Value::Mapping(Default::default()),
            }
        );
        assert!(matches!(&ev[1], QmpEvent::Event { name, .. } if name == "POWERDOWN"));
        assert_eq!(
            ev[2],
            QmpEvent::Error {
                id: a,
                command: "system_powerdown".into(),
                error: "GenericError: nope".into()
            }
        );
        assert!(!q.is_pending(a) && !q.is_pending(b));
    }

    #[test]
    fn shutdown_event_data() {
        let now = Instant::now();
        let mut q = ready(now);
        let id = q.command("quit", "", now, SECS);
        let mut ev = Vec::new();
        let text = format!("{{\"timestamp\": {{\"seconds\": 1, \"microseconds\": 2}}, \"event\": \"SHUTDOWN\", \"data\": {{\"guest\": false, \"reason\": \"host-qmp-quit\"}}}}\n{{\"return\": {{}}, \"id\": {id}}}\n");
        q.feed(text.as_bytes(), now, &mut ev);
        match &ev[0] {
            QmpEvent::Event { name, data } => {
                assert_eq!(name, "SHUTDOWN");
                assert_eq!(
                    data.get("reason").and_then(Value::as_str),
                    Some("host-qmp-quit")
                );
            }
            e => panic!("{e:?}"),
        }
        assert!(matches!(ev[1], QmpEvent::Return { .. }));
    }

    #[test]
    fn deadlines() {
        let now = Instant::now();
        let mut q = Qmp::new(now, SECS);
        let mut ev = Vec::new();
        assert_eq!(q.deadline(), Some(now + SECS));
        q.expire(now + SECS - Duration::from_millis(1), &mut ev);
        assert!(ev.is_empty());
        q.expire(now + SECS, &mut ev);
        assert!(matches!(&ev[0], QmpEvent::Failed { why } if why.contains("greeting")));
        assert_eq!(q.phase(), Phase::Failed);

        let mut q = ready(now);
        let later = now + Duration::from_secs(5);
        let id = q.command("quit", "", later, SECS);
        assert_eq!(q.deadline(), Some(later + SECS));
        let mut ev = Vec::new();
        q.expire(later + SECS, &mut ev);
        assert_eq!(
            ev,
            vec![QmpEvent::Timeout {
                id,
                command: "quit".into()
            }]
        );
        assert!(q.deadline().is_none());
        // A late reply is ignored, not fatal.
        ev.clear();
        q.feed(
            format!("{{\"return\": {{}}, \"id\": {id}}}\n").as_bytes(),
            now,
            &mut ev,
        );
        assert!(matches!(ev[0], QmpEvent::Ignored { .. }));
        assert!(q.is_ready());
    }

    #[test]
    fn bad_input() {
        let now = Instant::now();
        let mut q = Qmp::new(now, SECS);
        let mut ev = Vec::new();
        q.feed(b"hello\n", now, &mut ev);
        assert!(matches!(ev[0], QmpEvent::Failed { .. }));
        // Nothing more after a failure.
        ev.clear();
        q.feed(GREETING.as_bytes(), now, &mut ev);
        assert!(ev.is_empty());

        let mut q = Qmp::new(now, SECS);
        q.feed(b"{\"not\": \"qmp\"}\n", now, &mut ev);
        assert!(matches!(&ev[0], QmpEvent::Failed { why } if why.contains("greeting")));

        let mut q = ready(now);
        let mut ev = Vec::new();
        q.feed(b"garbage {\n[1,2]\n{\"something\": 1}\n\n", now, &mut ev);
        assert_eq!(ev.len(), 3);
        assert!(ev.iter().all(|e| matches!(e, QmpEvent::Ignored { .. })));
        assert!(q.is_ready());
        // An endless line.
        let mut ev = Vec::new();
        q.feed(&vec![b'x'; MAX_LINE + 1], now, &mut ev);
        assert!(matches!(ev[0], QmpEvent::Failed { .. }));

        // Negotiation refused.
        let mut q = Qmp::new(now, SECS);
        let mut ev = Vec::new();
        q.feed(GREETING.as_bytes(), now, &mut ev);
        q.feed(
            b"{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"x\"}}\n",
            now,
            &mut ev,
        );
        assert!(matches!(&ev[0], QmpEvent::Failed { why } if why.contains("CommandNotFound")));
    }

    #[test]
    fn close_cancels() {
        let now = Instant::now();
        let mut q = ready(now);
        let id = q.command("system_powerdown", "", now, SECS);
        let mut ev = Vec::new();
        q.closed(&mut ev);
        assert!(
            matches!(&ev[0], QmpEvent::Error { id: i, error, .. } if *i == id && error.contains("cancelled"))
        );
        assert_eq!(q.phase(), Phase::Failed);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let now = Instant::now();
        let mut seed = 0x9e3779b97f4a7c15u64;
        for _ in 0..300 {
            let mut q = Qmp::new(now, SECS);
            let mut ev = Vec::new();
            q.feed(GREETING.as_bytes(), now, &mut ev);
            let mut buf = Vec::new();
            for _ in 0..64 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let alphabet = b"{}[]\":,\n a1\\QMPreturnidevent";
                buf.push(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            q.feed(&buf, now, &mut ev);
            q.feed(b"{\"return\": {}}\n", now, &mut ev);
        }
    }
}
