//! The SSNTP session, sans-IO: the CONNECT/CONNECTED handshake, role checks,
//! and frame exchange over plaintext bytes (rustls lives in the shell).
//!
//! Each session owns a fresh gob [`Decoder`] and [`Encoder`] (type
//! definitions are per connection, as in Go). The shell feeds
//! received plaintext with `receive`, takes bytes to send with
//! `take_output`, and acts on the returned events.

use std::fmt;

use super::frame::{
    Command, ConnectFrame, ConnectedFrame, Decoded, Decoder, Encoder, ErrorCode, Frame, Op, Status,
};
use super::role;
use super::uuid::Uuid;

/// SSNTP protocol minor version that every frame carries.
const MINOR: u8 = 1;

/// Why a session ended or a handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SessionError {
    /// The peer's bytes are not valid gob or not a valid SSNTP frame.
    Decode(String),
    /// The server answered CONNECT with ERROR ConnectionFailure: worth a retry.
    ConnectionFailure,
    /// The server answered CONNECT with another ERROR (ConnectionAborted is
    /// the role mismatch): the original gives up, we retry slowly.
    Rejected { code: ErrorCode },
    /// The peer claimed a role its certificate does not carry.
    RoleMismatch { claimed: u32, certified: u32 },
    /// The first message was not the expected handshake frame.
    UnexpectedHandshake { op: Op },
    /// A handshake frame without a 16-byte source UUID (Go panics on this).
    MissingSource,
    /// The server never answered (the shell's deadline expired).
    Timeout,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::Decode(e) => write!(f, "malformed SSNTP data from peer: {e}"),
            SessionError::ConnectionFailure => {
                write!(f, "server refused the connection (ERROR ConnectionFailure)")
            }
            SessionError::Rejected { code } => {
                write!(f, "server rejected the connection (ERROR {code})")
            }
            SessionError::RoleMismatch { claimed, certified } => write!(
                f,
                "peer claimed role {:#x} ({}) but its certificate carries {:#x} ({})",
                claimed,
                role::name(*claimed),
                certified,
                role::name(*certified)
            ),
            SessionError::UnexpectedHandshake { op } => write!(
                f,
                "unexpected {} {} frame during the handshake",
                op.type_name(),
                op.operand_name()
            ),
            SessionError::MissingSource => {
                write!(f, "handshake frame without a 16-byte source UUID")
            }
            SessionError::Timeout => write!(f, "handshake timed out"),
        }
    }
}

impl std::error::Error for SessionError {}

/// `true` when a certificate carrying `certified` role bits may claim
/// `claimed`. The original accepts a claimed role of 0; we do not, since a
/// peer without a role has no business on the bus (docs/compatibility.md).
pub(crate) fn role_allowed(claimed: u32, certified: u32) -> bool {
    claimed != 0 && certified & claimed == claimed
}

/// What a session tells its shell.
#[derive(Debug)]
pub(crate) enum SessionEvent {
    /// Handshake complete. Client side: the server's UUID, role and cluster
    /// configuration (empty when CONNECTED carried none). Server side: the
    /// client's UUID and claimed role, `config` empty.
    Connected {
        peer: Uuid,
        role: u32,
        config: Vec<u8>,
    },
    /// A frame after the handshake (Major's trace bit already interpreted).
    Frame(Frame),
    /// The session is over; flush the output, then close the connection.
    Closed(SessionError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Open,
    Done,
}

/// Which end of the connection this session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

/// One SSNTP connection's protocol state.
pub(crate) struct Session {
    side: Side,
    phase: Phase,
    own_uuid: Uuid,
    own_role: u32,
    /// Role bits of the peer's TLS certificate (from its EKU).
    peer_cert_roles: u32,
    /// Server side: the cluster configuration sent in CONNECTED.
    config: Vec<u8>,
    peer: Uuid,
    dec: Decoder,
    enc: Encoder,
    out: Vec<u8>,
}

impl Session {
    /// A client session; CONNECT is queued at once (and nothing else may be
    /// sent before CONNECTED arrives: the original server loses bytes
    /// pipelined after CONNECT, S6.3.1 in docs/compatibility.md).
    pub(crate) fn client(
        own_uuid: Uuid,
        own_role: u32,
        peer_cert_roles: u32,
        max_msg: usize,
    ) -> Self {
        let mut s = Session::new(Side::Client, own_uuid, own_role, peer_cert_roles, max_msg);
        let connect = ConnectFrame {
            major: 0,
            minor: MINOR,
            op: Op::Command(Command::Connect),
            role: own_role,
            source: own_uuid.0.to_vec(),
            destination: vec![0; 16],
        };
        s.enc.connect(&connect, &mut s.out);
        s
    }

    /// A server session awaiting CONNECT; `config` goes into CONNECTED.
    pub(crate) fn server(
        own_uuid: Uuid,
        own_role: u32,
        peer_cert_roles: u32,
        config: Vec<u8>,
        max_msg: usize,
    ) -> Self {
        let mut s = Session::new(Side::Server, own_uuid, own_role, peer_cert_roles, max_msg);
        s.config = config;
        s
    }

    fn new(side: Side, own_uuid: Uuid, own_role: u32, peer_cert_roles: u32, max: usize) -> Self {
        Session {
            side,
            phase: Phase::Handshake,
            own_uuid,
            own_role,
            peer_cert_roles,
            config: Vec::new(),
            peer: Uuid::NIL,
            dec: Decoder::new(max),
            enc: Encoder::new(),
            out: Vec::new(),
        }
    }

    /// True once CONNECT/CONNECTED have been exchanged and until the end.
    pub(crate) fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// True after the session ended (the shell should close once flushed).
    #[cfg(test)]
    pub(crate) fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Bytes to hand to TLS.
    pub(crate) fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// True when output is waiting.
    #[cfg(test)]
    pub(crate) fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// Queues a frame; ignored unless the session is open. Returns whether
    /// it was queued.
    pub(crate) fn send(&mut self, f: &Frame) -> bool {
        if self.phase != Phase::Open {
            return false;
        }
        self.enc.frame(f, &mut self.out);
        true
    }

    /// Builds and queues a frame from this node (Origin = own UUID).
    pub(crate) fn send_new(&mut self, op: impl Into<Op>, payload: Vec<u8>) -> bool {
        let f = Frame::new(op, self.own_uuid.0, payload);
        self.send(&f)
    }

    /// The handshake deadline expired (server: no CONNECT within 30 s;
    /// client: no CONNECTED in time).
    pub(crate) fn timeout(&mut self) -> Option<SessionEvent> {
        if self.phase != Phase::Handshake {
            return None;
        }
        if self.side == Side::Server {
            self.error_reply(ErrorCode::ConnectionFailure);
        }
        self.phase = Phase::Done;
        Some(SessionEvent::Closed(SessionError::Timeout))
    }

    /// Feeds received plaintext; returns what happened, in order.
    pub(crate) fn receive(&mut self, bytes: &[u8], events: &mut Vec<SessionEvent>) {
        if self.phase == Phase::Done {
            return;
        }
        self.dec.feed(bytes);
        while self.phase != Phase::Done {
            match self.dec.next() {
                Ok(Some(v)) => {
                    if let Some(ev) = self.on_value(v) {
                        events.push(ev);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    if self.phase == Phase::Handshake && self.side == Side::Server {
                        self.error_reply(ErrorCode::ConnectionFailure);
                    }
                    self.phase = Phase::Done;
                    events.push(SessionEvent::Closed(SessionError::Decode(e.to_string())));
                }
            }
        }
    }

    fn on_value(&mut self, v: Decoded) -> Option<SessionEvent> {
        match (self.phase, self.side) {
            (Phase::Handshake, Side::Server) => self.on_connect(v),
            (Phase::Handshake, Side::Client) => self.on_connected(v),
            (Phase::Open, _) => self.on_frame(v),
            (Phase::Done, _) => None,
        }
    }

    /// Server: CONNECT checks in the original's order: role first
    /// (ConnectionAborted), then type/operand and source (ConnectionFailure).
    fn on_connect(&mut self, v: Decoded) -> Option<SessionEvent> {
        let c = v.into_connect();
        let fail = |s: &mut Session, code: ErrorCode, e: SessionError| {
            s.error_reply(code);
            s.phase = Phase::Done;
            Some(SessionEvent::Closed(e))
        };
        let mismatch = SessionError::RoleMismatch {
            claimed: c.role,
            certified: self.peer_cert_roles,
        };
        // The original's check first (a role the certificate lacks)...
        if self.peer_cert_roles & c.role != c.role {
            return fail(self, ErrorCode::ConnectionAborted, mismatch);
        }
        if c.op != Op::Command(Command::Connect) {
            let e = SessionError::UnexpectedHandshake { op: c.op };
            return fail(self, ErrorCode::ConnectionFailure, e);
        }
        let Some(peer) = Uuid::from_slice(&c.source) else {
            return fail(
                self,
                ErrorCode::ConnectionFailure,
                SessionError::MissingSource,
            );
        };
        // ...ours last: a CONNECT claiming no role at all is refused too.
        if !role_allowed(c.role, self.peer_cert_roles) {
            return fail(self, ErrorCode::ConnectionAborted, mismatch);
        }
        self.peer = peer;
        let reply = ConnectedFrame {
            major: 0,
            minor: MINOR,
            op: Op::Status(Status::Connected),
            role: self.own_role,
            source: self.own_uuid.0.to_vec(),
            destination: peer.0.to_vec(),
            payload: self.config.clone(),
        };
        self.enc.connected(&reply, &mut self.out);
        self.phase = Phase::Open;
        Some(SessionEvent::Connected {
            peer,
            role: c.role,
            config: Vec::new(),
        })
    }

    /// Client: the reply to CONNECT, decoded by field names, so an ERROR
    /// frame is understood as well as CONNECTED.
    fn on_connected(&mut self, v: Decoded) -> Option<SessionEvent> {
        let c = v.into_connected();
        let done = |s: &mut Session, e: SessionError| {
            s.phase = Phase::Done;
            Some(SessionEvent::Closed(e))
        };
        match c.op {
            Op::Status(Status::Connected) => {}
            Op::Error(ErrorCode::ConnectionFailure) => {
                return done(self, SessionError::ConnectionFailure)
            }
            Op::Error(code) => return done(self, SessionError::Rejected { code }),
            op => return done(self, SessionError::UnexpectedHandshake { op }),
        }
        let Some(peer) = Uuid::from_slice(&c.source) else {
            return done(self, SessionError::MissingSource);
        };
        if !role_allowed(c.role, self.peer_cert_roles) {
            // The original's reply to a server role mismatch.
            self.phase = Phase::Open;
            self.send_new(ErrorCode::ConnectionFailure, Vec::new());
            return done(
                self,
                SessionError::RoleMismatch {
                    claimed: c.role,
                    certified: self.peer_cert_roles,
                },
            );
        }
        self.peer = peer;
        self.phase = Phase::Open;
        Some(SessionEvent::Connected {
            peer,
            role: c.role,
            config: c.payload,
        })
    }

    fn on_frame(&mut self, v: Decoded) -> Option<SessionEvent> {
        let f = v.into_frame();
        if let Op::Unknown { .. } = f.op {
            // Unknown type: answer InvalidFrameType, keep the connection.
            self.send_new(ErrorCode::InvalidFrameType, Vec::new());
            return None;
        }
        Some(SessionEvent::Frame(f))
    }

    /// Server's connect-time error reply: a Frame with zero Origin, from a
    /// fresh encoder (so preceded by the Frame-family definitions).
    fn error_reply(&mut self, code: ErrorCode) {
        let f = Frame::new(code, [0; 16], Vec::new());
        Encoder::new().frame(&f, &mut self.out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssntp::frame::{Event, TRACE_BIT};

    const MAX: usize = 1 << 20;

    fn pair(client_roles_cert: u32, server_roles_cert: u32) -> (Session, Session) {
        let c = Session::client(
            Uuid([1; 16]),
            role::AGENT | role::NETAGENT,
            server_roles_cert,
            MAX,
        );
        let s = Session::server(
            Uuid([2; 16]),
            role::SCHEDULER,
            client_roles_cert,
            b"cfg".to_vec(),
            MAX,
        );
        (c, s)
    }

    fn pump(from: &mut Session, to: &mut Session) -> Vec<SessionEvent> {
        let mut ev = Vec::new();
        let bytes = from.take_output();
        to.receive(&bytes, &mut ev);
        ev
    }

    /// The server's refusal reaches the client as ERROR ConnectionFailure, which ends its
    /// session.
    fn client_gets_connection_failure(s: &mut Session, c: &mut Session) -> bool {
        matches!(
            &pump(s, c)[..],
            [SessionEvent::Closed(SessionError::ConnectionFailure)]
        )
    }

    /// What the server makes of a hand-written ConnectFrame from an agent.
    fn agent_connect(s: &mut Session, op: impl Into<Op>, source: Vec<u8>) -> Vec<SessionEvent> {
        let mut bytes = Vec::new();
        Encoder::new().connect(
            &ConnectFrame {
                major: 0,
                minor: MINOR,
                op: op.into(),
                role: role::AGENT,
                source,
                destination: vec![0; 16],
            },
            &mut bytes,
        );
        let mut ev = Vec::new();
        s.receive(&bytes, &mut ev);
        ev
    }

    #[test]
    fn handshake_and_frames() {
        let (mut c, mut s) = pair(role::AGENT | role::NETAGENT, role::SCHEDULER);
        let ev = pump(&mut c, &mut s);
        assert!(
            matches!(&ev[..], [SessionEvent::Connected { peer, role: 0x14, .. }] if *peer == Uuid([1; 16]))
        );
        let ev = pump(&mut s, &mut c);
        assert!(
            matches!(&ev[..], [SessionEvent::Connected { peer, role: 8, config }] if *peer == Uuid([2; 16]) && config == b"cfg")
        );
        assert!(c.send_new(Status::Ready, b"node_uuid: x\n".to_vec()));
        let ev = pump(&mut c, &mut s);
        match &ev[..] {
            [SessionEvent::Frame(f)] => {
                assert_eq!(f.op, Op::Status(Status::Ready));
                assert_eq!(f.origin, [1; 16]);
                assert_eq!(f.payload, b"node_uuid: x\n");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn client_sends_nothing_before_connected() {
        let (mut c, _) = pair(role::AGENT, role::SCHEDULER);
        let _ = c.take_output();
        assert!(!c.send_new(Status::Ready, Vec::new()));
        assert!(!c.has_output());
    }

    #[test]
    fn server_rejects_role_not_in_certificate() {
        let (mut c, mut s) = pair(role::AGENT, role::SCHEDULER);
        let ev = pump(&mut c, &mut s);
        assert!(matches!(
            &ev[..],
            [SessionEvent::Closed(SessionError::RoleMismatch { .. })]
        ));
        let ev = pump(&mut s, &mut c);
        assert!(matches!(
            &ev[..],
            [SessionEvent::Closed(SessionError::Rejected {
                code: ErrorCode::ConnectionAborted
            })]
        ));
    }

    #[test]
    fn client_rejects_server_role_not_in_certificate() {
        let (mut c, mut s) = pair(role::AGENT | role::NETAGENT, role::CONTROLLER);
        pump(&mut c, &mut s);
        let ev = pump(&mut s, &mut c);
        assert!(matches!(
            &ev[..],
            [SessionEvent::Closed(SessionError::RoleMismatch { .. })]
        ));
        // The client tells the server why (ERROR ConnectionFailure).
        let ev = pump(&mut c, &mut s);
        assert!(
            matches!(&ev[..], [SessionEvent::Frame(f)] if f.op == Op::Error(ErrorCode::ConnectionFailure))
        );
    }

    #[test]
    fn garbage_before_connect_gets_connection_failure() {
        let (mut c, mut s) = pair(role::AGENT, role::SCHEDULER);
        let mut ev = Vec::new();
        s.receive(b"\x05garbage-not-gob", &mut ev);
        assert!(matches!(
            &ev[..],
            [SessionEvent::Closed(SessionError::Decode(_))]
        ));
        assert!(client_gets_connection_failure(&mut s, &mut c));
    }

    #[test]
    fn timeout_gets_connection_failure() {
        let (mut c, mut s) = pair(role::AGENT, role::SCHEDULER);
        assert!(matches!(
            s.timeout(),
            Some(SessionEvent::Closed(SessionError::Timeout))
        ));
        assert!(client_gets_connection_failure(&mut s, &mut c));
    }

    #[test]
    fn unknown_type_answered_with_invalid_frame_type() {
        let (mut c, mut s) = pair(role::AGENT | role::NETAGENT, role::SCHEDULER);
        pump(&mut c, &mut s);
        pump(&mut s, &mut c);
        assert!(s.send_new(Op::new(7, 0), Vec::new()));
        let ev = pump(&mut s, &mut c);
        assert!(ev.is_empty());
        let ev = pump(&mut c, &mut s);
        assert!(
            matches!(&ev[..], [SessionEvent::Frame(f)] if f.op == Op::Error(ErrorCode::InvalidFrameType))
        );
    }

    /// S10.3 in docs/compatibility.md (a `Source` shorter than 16 bytes
    /// panics Go): the server answers ConnectionFailure and closes.
    #[test]
    fn connect_without_a_16_byte_source_gets_connection_failure() {
        let (mut c, mut s) = pair(role::AGENT | role::NETAGENT, role::SCHEDULER);
        let _ = c.take_output();
        let ev = agent_connect(&mut s, Command::Connect, vec![1; 15]);
        assert!(matches!(
            &ev[..],
            [SessionEvent::Closed(SessionError::MissingSource)]
        ));
        assert!(s.is_done());
        assert!(client_gets_connection_failure(&mut s, &mut c));
    }

    /// S10.3 on the client: a CONNECTED without a full source UUID is a
    /// failed handshake (retried), not a crash.
    #[test]
    fn connected_without_a_16_byte_source_fails_the_handshake() {
        let (mut c, _) = pair(role::AGENT | role::NETAGENT, role::SCHEDULER);
        let _ = c.take_output();
        let mut bytes = Vec::new();
        Encoder::new().connected(
            &ConnectedFrame {
                major: 0,
                minor: MINOR,
                op: Op::Status(Status::Connected),
                role: role::SCHEDULER,
                source: Vec::new(),
                destination: vec![1; 16],
                payload: b"cfg".to_vec(),
            },
            &mut bytes,
        );
        let mut ev = Vec::new();
        c.receive(&bytes, &mut ev);
        assert!(matches!(
            &ev[..],
            [SessionEvent::Closed(SessionError::MissingSource)]
        ));
        assert!(!c.is_open());
    }

    /// S10.5–S10.7: unknown operands, a wrong PayloadLength and unexpected
    /// Major/Minor values are not checked; the gob length of the payload is
    /// what counts, and the trace bit is only a bit.
    #[test]
    fn operand_payload_length_and_version_are_not_checked() {
        let (mut c, mut s) = pair(role::AGENT | role::NETAGENT, role::SCHEDULER);
        pump(&mut c, &mut s);
        pump(&mut s, &mut c);
        let mut f = Frame::new(Command::Unknown(77), [2; 16], b"abc".to_vec());
        f.payload_length = 9999;
        f.major = 0x05;
        f.minor = 42;
        assert!(s.send(&f));
        let f2 = Frame {
            major: TRACE_BIT | 3,
            ..Frame::new(Event::Unknown(200), [2; 16], Vec::new())
        };
        assert!(s.send(&f2));
        let ev = pump(&mut s, &mut c);
        match &ev[..] {
            [SessionEvent::Frame(a), SessionEvent::Frame(b)] => {
                assert_eq!(
                    (a.op, a.major, a.minor),
                    (Op::Command(Command::Unknown(77)), 5, 42)
                );
                assert_eq!(a.payload, b"abc");
                assert_eq!(a.payload_length, 9999);
                assert_eq!(b.op, Op::Event(Event::Unknown(200)));
                assert!(!b.is_traced(), "trace bit without a trace");
            }
            other => panic!("{other:?}"),
        }
        assert!(c.is_open());
    }

    /// S10.2, malformed gob after the handshake: the session ends
    /// (the shell closes the socket, the client reconnects); no reply.
    #[test]
    fn garbage_after_the_handshake_ends_the_session_without_a_reply() {
        let (mut c, mut s) = pair(role::AGENT | role::NETAGENT, role::SCHEDULER);
        pump(&mut c, &mut s);
        pump(&mut s, &mut c);
        let mut ev = Vec::new();
        s.receive(b"\x03\xff\xff\xff", &mut ev);
        assert!(matches!(
            &ev[..],
            [SessionEvent::Closed(SessionError::Decode(_))]
        ));
        assert!(s.is_done() && !s.has_output());
        let mut ev = Vec::new();
        c.receive(b"\x05garbage", &mut ev);
        assert!(matches!(
            &ev[..],
            [SessionEvent::Closed(SessionError::Decode(_))]
        ));
        assert!(c.is_done() && !c.has_output());
    }

    /// S6.3.1 / S14.13, pipelining after CONNECT loses data in Go:
    /// frames that arrive in the same read as CONNECT are kept.
    #[test]
    fn frames_pipelined_after_connect_are_kept() {
        let (mut c, mut s) = pair(role::AGENT | role::NETAGENT, role::SCHEDULER);
        let mut bytes = c.take_output();
        // The client's own encoder, as a pipelining client would use.
        c.enc.frame(
            &Frame::new(Status::Ready, [1; 16], b"x: 1\n".to_vec()),
            &mut bytes,
        );
        let mut ev = Vec::new();
        s.receive(&bytes, &mut ev);
        assert!(
            matches!(&ev[..], [SessionEvent::Connected { .. }, SessionEvent::Frame(f)] if f.op == Op::Status(Status::Ready))
        );
    }

    /// S14.8, "the server ignores clients until CONNECT" (the original's
    /// README): a first message that is not COMMAND/CONNECT is refused
    /// with ConnectionFailure when it claims a certified role (Go's order:
    /// role first, then type). A first message without a Role field (a
    /// plain Frame) gets ConnectionFailure too, as in Go (S2.2.1).
    #[test]
    fn first_message_not_connect() {
        let (mut c, mut s) = pair(role::AGENT | role::NETAGENT, role::SCHEDULER);
        let _ = c.take_output();
        let ev = agent_connect(&mut s, Status::Ready, vec![1; 16]);
        assert!(matches!(
            &ev[..],
            [SessionEvent::Closed(
                SessionError::UnexpectedHandshake { .. }
            )]
        ));
        assert!(client_gets_connection_failure(&mut s, &mut c));

        let (mut c, mut s) = pair(role::AGENT | role::NETAGENT, role::SCHEDULER);
        let _ = c.take_output();
        let mut bytes = Vec::new();
        Encoder::new().frame(&Frame::new(Status::Ready, [1; 16], Vec::new()), &mut bytes);
        let mut ev = Vec::new();
        s.receive(&bytes, &mut ev);
        // A Frame-shaped first message has no Role (0): as in Go, the type
        // check answers it with ConnectionFailure.
        assert!(matches!(
            &ev[..],
            [SessionEvent::Closed(
                SessionError::UnexpectedHandshake { .. }
            )]
        ));
        assert!(client_gets_connection_failure(&mut s, &mut c));
    }

    #[test]
    fn claimed_role_zero_is_refused() {
        assert!(!role_allowed(0, role::AGENT));
        assert!(role_allowed(role::AGENT, role::AGENT | role::NETAGENT));
        assert!(!role_allowed(role::AGENT | role::NETAGENT, role::AGENT));
    }
}
