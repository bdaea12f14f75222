//! The SSNTP client's connection manager, on the caller's `mio` loop:
//! dial every server address in turn, TLS, CONNECT/CONNECTED, frames, and
//! reconnection with the original's randomised back-off. It never gives up.
//!
//! Back-off (the original's, S6.2.4 in docs/compatibility.md): after a
//! round in which every address failed, sleep a uniform 1..=cap seconds
//! with cap cycling 5, 10, 20, 40. Failures the original treats as final
//! (role mismatch, ConnectionAborted) are logged as errors and retried at
//! the longest interval (S6.2.3).
//!
//! Name resolution never blocks the loop. IP literals and `localhost` are
//! used as they are. Other names are looked up by [`Resolver`] on its helper
//! thread (see [`crate::sys::resolve`] for why that thread exists and what
//! it may do), and the attempt waits in `State::Resolving` for the answer,
//! at most [`ClientSettings::connect_timeout`]; a lookup that misses that
//! deadline fails the attempt like a refused connection, so the next
//! address is tried and the usual back-off follows. Only one lookup runs at
//! a time and a stuck one is never abandoned for a second: a later attempt
//! waits (again bounded by its own deadline) for the outstanding lookup and
//! uses its answer if it is for the same name, or submits its own name once
//! the resolver is free. An answer that arrives while no attempt waits for
//! it is dropped; the next attempt asks again, so no stale address is ever
//! used.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use mio::net::TcpStream;

use crate::sys::tcp::DeadPeer;
use mio::{Registry, Token};
use rustls::pki_types::ServerName;

use super::frame::Frame;
use super::session::{Session, SessionError, SessionEvent};
use super::stream::{ReadState, TlsStream};
use super::uuid::Uuid;
use crate::sys::resolve::{Lookup, Resolver};

/// Back-off caps in seconds, cycled per round.
const BACKOFF_CAPS: [u64; 4] = [5, 10, 20, 40];
/// Write deadline for frames (the original's, both sides).
const WRITE_DEADLINE: Duration = Duration::from_secs(30);

/// How the client connects.
pub(crate) struct ClientSettings {
    /// `(host, port)` pairs in the order to try.
    pub addresses: Vec<(String, u16)>,
    pub tls: Arc<rustls::ClientConfig>,
    pub uuid: Uuid,
    pub role: u32,
    pub max_message: usize,
    /// Deadline for TCP connect + TLS handshake + CONNECTED; a name lookup
    /// before that has a deadline of the same length of its own.
    pub connect_timeout: Duration,
    /// Keep-alive and user timeout of the connection, so that a server
    /// that vanished without closing it is noticed in bounded time and the
    /// client reconnects (`None`: the kernel's defaults).
    pub dead_peer: Option<DeadPeer>,
    /// The token that wakes the loop when a name lookup has finished; its
    /// events go to [`Client::poll`] like those of the socket's token.
    pub resolver_token: Token,
}

/// What the client reports to its owner.
#[derive(Debug)]
pub(crate) enum ClientEvent {
    /// Handshake complete; `config` is the cluster configuration (may be empty).
    Connected { server: Uuid, config: Vec<u8> },
    /// An established connection was lost; reconnection is under way.
    Disconnected(String),
    /// A frame from the server.
    Frame(Frame),
}

enum State {
    /// Waiting before the next round of dialling.
    Idle { until: Instant },
    /// Waiting for the name of `addresses[index]` to be looked up.
    Resolving { index: usize, deadline: Instant },
    /// An attempt on `addresses[index]` in progress.
    Dialing {
        index: usize,
        stream: Box<TlsStream>,
        tcp_up: bool,
        session: Option<Session>,
        deadline: Instant,
    },
    /// Handshake done.
    Up {
        stream: Box<TlsStream>,
        session: Session,
    },
}

/// A reconnecting SSNTP client.
pub(crate) struct Client {
    settings: ClientSettings,
    token: Token,
    resolver: Resolver,
    state: State,
    round: usize,
    /// Set when the last failure was one the original gives up on.
    slow_retry: bool,
    rng: u64,
    /// Set (to when) a read of the established connection stopped at its
    /// budget: the client is due again at once.
    read_more: Option<Instant>,
}

/// Plaintext taken from the connection per [`Client::poll`]: a burst of
/// frames (a thousand STARTs is 1.5 MB) is handled in slices of about
/// this size, so its buffers stay small and the loop's other work (child
/// exits, STATS, the syncer) runs between the slices. Without the
/// at-once return ([`Client::deadline`]) the rest of a burst would wait
/// for the next readiness edge: `tests/launcher_instances.rs`'s burst
/// test stalls then.
const READ_BUDGET: usize = 64 * 1024;

impl Client {
    /// A client that will use `token` for its socket. Call [`Client::poll`]
    /// to start dialling.
    pub(crate) fn new(settings: ClientSettings, token: Token) -> Client {
        let seed = Uuid::random().0;
        let rng = u64::from_le_bytes(seed[..8].try_into().unwrap_or([7; 8])) | 1;
        Client {
            resolver: Resolver::new(settings.resolver_token),
            settings,
            token,
            state: State::Idle {
                until: Instant::now(),
            },
            round: 0,
            slow_retry: false,
            read_more: None,
            rng,
        }
    }

    /// True while a server connection is established.
    pub(crate) fn is_connected(&self) -> bool {
        matches!(self.state, State::Up { .. })
    }

    /// The next instant at which [`Client::poll`] must run.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Idle { until } => Some(*until),
            State::Resolving { deadline, .. } | State::Dialing { deadline, .. } => Some(*deadline),
            State::Up { stream, .. } => [
                self.read_more,
                stream.stalled_since().map(|t| t + WRITE_DEADLINE),
            ]
            .into_iter()
            .flatten()
            .min(),
        }
    }

    /// Sends a frame; returns false (frame dropped) when not connected.
    pub(crate) fn send(&mut self, registry: &Registry, frame: &Frame) -> bool {
        let State::Up { stream, session } = &mut self.state else {
            return false;
        };
        if !session.send(frame) {
            return false;
        }
        let out = session.take_output();
        let res = stream.write(&out);
        if let Err(e) = res.and_then(|_| Ok(stream.update_registration(registry, self.token)?)) {
            warn!("SSNTP send failed: {e}");
        }
        true
    }

    /// Drives the client: socket readiness, name lookups, deadlines,
    /// reconnection. Call it on every event for the client's token or
    /// [`ClientSettings::resolver_token`], and when [`Client::deadline`] has
    /// passed.
    pub(crate) fn poll(&mut self, registry: &Registry, now: Instant, out: &mut Vec<ClientEvent>) {
        let lookup = self.resolver.take();
        let state = std::mem::replace(&mut self.state, State::Idle { until: now });
        if let (Some(l), false) = (&lookup, matches!(state, State::Resolving { .. })) {
            debug!("SSNTP: late answer for {}:{} dropped", l.host, l.port);
        }
        self.state = match state {
            State::Idle { until } if until > now => State::Idle { until },
            State::Idle { .. } => self.dial(registry, now, 0),
            State::Resolving { index, deadline } => {
                self.drive_resolving(registry, now, index, deadline, lookup)
            }
            State::Dialing {
                index,
                stream,
                tcp_up,
                session,
                deadline,
            } => self.drive_dialing(registry, now, index, stream, tcp_up, session, deadline, out),
            State::Up { stream, session } => self.drive_up(registry, now, stream, session, out),
        };
    }

    /// Starts an attempt on address `index` (a lookup or a connect), or
    /// backs off after the last one.
    fn dial(&mut self, registry: &Registry, now: Instant, index: usize) -> State {
        let Some((host, port)) = self.settings.addresses.get(index).cloned() else {
            return State::Idle {
                until: now + self.backoff(),
            };
        };
        match literal_address(&host, port) {
            Some(addr) => self.connect(registry, now, index, addr),
            None => {
                let deadline = now + self.settings.connect_timeout;
                self.drive_resolving(registry, now, index, deadline, None)
            }
        }
    }

    /// An attempt waiting for its name: uses the answer, starts the lookup
    /// when the resolver is free, or gives up at the deadline.
    fn drive_resolving(
        &mut self,
        registry: &Registry,
        now: Instant,
        index: usize,
        deadline: Instant,
        lookup: Option<Lookup>,
    ) -> State {
        let (host, port) = self.settings.addresses[index].clone();
        let busy = self.resolver.busy().is_some();
        let why = match resolving_step((&host, port), lookup, busy, now, deadline) {
            Step::Connect(addr) => return self.connect(registry, now, index, addr),
            Step::Wait => return State::Resolving { index, deadline },
            Step::Submit => match self.resolver.submit(registry, &host, port) {
                Ok(()) => {
                    debug!("SSNTP: looking up {host}");
                    return State::Resolving { index, deadline };
                }
                Err(e) => e.to_string(),
            },
            Step::Fail(why) => why,
        };
        warn!("SSNTP: cannot connect to {host}:{port}: {why}");
        self.dial(registry, now, index + 1)
    }

    /// Opens the TCP connection of the attempt on `index` to `addr`.
    fn connect(
        &mut self,
        registry: &Registry,
        now: Instant,
        index: usize,
        addr: SocketAddr,
    ) -> State {
        let (host, port) = self.settings.addresses[index].clone();
        match self.start_attempt(registry, &host, addr) {
            Ok(stream) => {
                debug!("SSNTP: dialling {host}:{port} ({addr})");
                State::Dialing {
                    index,
                    stream: Box::new(stream),
                    tcp_up: false,
                    session: None,
                    deadline: now + self.settings.connect_timeout,
                }
            }
            Err(e) => {
                warn!("SSNTP: cannot connect to {host}:{port}: {e}");
                self.dial(registry, now, index + 1)
            }
        }
    }

    fn start_attempt(
        &self,
        registry: &Registry,
        host: &str,
        addr: SocketAddr,
    ) -> io::Result<TlsStream> {
        let name = ServerName::try_from(host.trim_matches(|c| c == '[' || c == ']').to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = rustls::ClientConnection::new(self.settings.tls.clone(), name)
            .map_err(io::Error::other)?;
        let sock = TcpStream::connect(addr)?;
        if let Some(p) = self.settings.dead_peer {
            crate::sys::tcp::set_dead_peer(&sock, p)?;
        }
        let mut stream = TlsStream::new(sock, tls);
        stream.update_registration(registry, self.token)?;
        Ok(stream)
    }

    fn backoff(&mut self) -> Duration {
        let cap = if self.slow_retry {
            BACKOFF_CAPS[BACKOFF_CAPS.len() - 1]
        } else {
            BACKOFF_CAPS[self.round % BACKOFF_CAPS.len()]
        };
        self.round += 1;
        // xorshift64: uniform enough for jitter.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let secs = if self.slow_retry {
            cap
        } else {
            1 + self.rng % cap
        };
        info!("SSNTP: no server reachable, retrying in {secs} s");
        Duration::from_secs(secs)
    }

    #[allow(clippy::too_many_arguments)]
    fn drive_dialing(
        &mut self,
        registry: &Registry,
        now: Instant,
        index: usize,
        mut stream: Box<TlsStream>,
        mut tcp_up: bool,
        mut session: Option<Session>,
        deadline: Instant,
        out: &mut Vec<ClientEvent>,
    ) -> State {
        let (host, port) = self.settings.addresses[index].clone();
        let fail = |me: &mut Client, stream: &mut TlsStream, why: String, slow: bool| {
            if slow {
                error!("SSNTP: connection to {host}:{port} refused for good by the original's rules, retrying slowly: {why}");
            } else {
                warn!("SSNTP: connection to {host}:{port} failed: {why}");
            }
            me.slow_retry = slow;
            stream.close(registry);
            me.dial(registry, now, index + 1)
        };
        if !tcp_up {
            if let Ok(Some(e)) | Err(e) = stream.sock.take_error() {
                return fail(self, &mut stream, format!("connect: {e}"), false);
            }
            match stream.sock.peer_addr() {
                Ok(_) => tcp_up = true,
                Err(e) if e.kind() == io::ErrorKind::NotConnected && now < deadline => {
                    return State::Dialing {
                        index,
                        stream,
                        tcp_up,
                        session,
                        deadline,
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    return fail(self, &mut stream, "TCP connect timed out".into(), false)
                }
                Err(e) => return fail(self, &mut stream, format!("connect: {e}"), false),
            }
        }
        let mut plain = Vec::new();
        let read = stream.read(&mut plain);
        let read = match read {
            Ok(r) => r,
            Err(e) => return fail(self, &mut stream, e.to_string(), false),
        };
        if session.is_none() && !stream.tls.is_handshaking() {
            let peer_roles = stream.peer_roles();
            session = Some(Session::client(
                self.settings.uuid,
                self.settings.role,
                peer_roles,
                self.settings.max_message,
            ));
        }
        let mut events = Vec::new();
        if let Some(s) = session.as_mut() {
            s.receive(&plain, &mut events);
            let bytes = s.take_output();
            if let Err(e) = stream.write(&bytes) {
                return fail(self, &mut stream, e.to_string(), false);
            }
        } else if let Err(e) = stream.flush() {
            return fail(self, &mut stream, e.to_string(), false);
        }
        // CONNECTED and the first frames may arrive in one read: keep them all.
        let mut up = false;
        for ev in events {
            match ev {
                SessionEvent::Connected { peer, config, .. } => {
                    info!("SSNTP: connected to {host}:{port}, server {peer}");
                    self.round = 0;
                    self.slow_retry = false;
                    out.push(ClientEvent::Connected {
                        server: peer,
                        config,
                    });
                    up = true;
                }
                SessionEvent::Frame(f) if up => out.push(ClientEvent::Frame(f)),
                SessionEvent::Frame(_) => {}
                SessionEvent::Closed(e) if up => {
                    warn!("SSNTP: disconnected: {e}");
                    stream.close(registry);
                    out.push(ClientEvent::Disconnected(e.to_string()));
                    return State::Idle { until: now };
                }
                SessionEvent::Closed(e) => {
                    let slow = matches!(
                        e,
                        SessionError::Rejected { .. } | SessionError::RoleMismatch { .. }
                    );
                    return fail(self, &mut stream, e.to_string(), slow);
                }
            }
        }
        if up {
            let Some(session) = session.take() else {
                return State::Idle { until: now };
            };
            if read == ReadState::Eof {
                stream.close(registry);
                out.push(ClientEvent::Disconnected(
                    "server closed the connection".into(),
                ));
                return State::Idle { until: now };
            }
            let _ = stream.update_registration(registry, self.token);
            self.read_more = None;
            return State::Up { stream, session };
        }
        if read == ReadState::Eof {
            return fail(
                self,
                &mut stream,
                "server closed the connection".into(),
                false,
            );
        }
        if now >= deadline {
            return fail(self, &mut stream, "handshake timed out".into(), false);
        }
        if let Err(e) = stream.update_registration(registry, self.token) {
            return fail(self, &mut stream, e.to_string(), false);
        }
        State::Dialing {
            index,
            stream,
            tcp_up,
            session,
            deadline,
        }
    }

    fn drive_up(
        &mut self,
        registry: &Registry,
        now: Instant,
        mut stream: Box<TlsStream>,
        mut session: Session,
        out: &mut Vec<ClientEvent>,
    ) -> State {
        let mut plain = Vec::new();
        let read = stream.read_some(&mut plain, READ_BUDGET);
        self.read_more = matches!(read, Ok(ReadState::More)).then_some(now);
        let mut why = match read {
            Ok(ReadState::Open | ReadState::More) => None,
            Ok(ReadState::Eof) => Some("server closed the connection".to_string()),
            Err(e) => Some(e.to_string()),
        };
        let mut events = Vec::new();
        session.receive(&plain, &mut events);
        for ev in events {
            match ev {
                SessionEvent::Frame(f) => out.push(ClientEvent::Frame(f)),
                SessionEvent::Closed(e) => why = Some(e.to_string()),
                SessionEvent::Connected { .. } => {}
            }
        }
        let bytes = session.take_output();
        if let Err(e) = stream.write(&bytes) {
            why.get_or_insert(e.to_string());
        }
        if let Some(t) = stream.stalled_since() {
            if now >= t + WRITE_DEADLINE {
                why.get_or_insert("write deadline expired".to_string());
            }
        }
        if let Some(why) = why {
            warn!("SSNTP: disconnected: {why}");
            stream.close(registry);
            out.push(ClientEvent::Disconnected(why));
            // Reconnect at once, as the original does; back-off follows failures.
            return State::Idle { until: now };
        }
        if let Err(e) = stream.update_registration(registry, self.token) {
            warn!("SSNTP: cannot update poll registration: {e}");
        }
        State::Up { stream, session }
    }

    /// Closes the connection (shutdown); sends nothing else.
    pub(crate) fn close(&mut self, registry: &Registry) {
        match std::mem::replace(
            &mut self.state,
            State::Idle {
                until: Instant::now() + Duration::from_secs(3600),
            },
        ) {
            State::Dialing { mut stream, .. } | State::Up { mut stream, .. } => {
                stream.close(registry)
            }
            State::Idle { .. } | State::Resolving { .. } => {}
        }
    }
}

/// The address of a host that needs no lookup: an IP literal (IPv6 with or
/// without brackets) or `localhost`; `None` for names the resolver must
/// look up.
fn literal_address(host: &str, port: u16) -> Option<SocketAddr> {
    let bare = host.trim_matches(|c| c == '[' || c == ']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, port));
    }
    if bare.eq_ignore_ascii_case("localhost") {
        return Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    None
}

/// What an attempt waiting for the name `want` does next.
#[derive(Debug, PartialEq)]
enum Step {
    /// The answer is there: connect to this address.
    Connect(SocketAddr),
    /// The lookup failed or missed the deadline: the attempt fails.
    Fail(String),
    /// The resolver is free and nobody asked for `want` yet: ask.
    Submit,
    /// A lookup is outstanding (ours, or an earlier one the resolver must
    /// finish first): wait for it.
    Wait,
}

/// The decision of [`Client::drive_resolving`], kept apart from the resolver
/// so that it can be tested. `lookup` is the lookup that has just finished,
/// if any; `busy` says whether another is still outstanding. An answer for
/// another name (left over from an earlier attempt) is dropped. An answer
/// for `want` is used even at the deadline: it is there, and it is fresh.
fn resolving_step(
    want: (&str, u16),
    lookup: Option<Lookup>,
    busy: bool,
    now: Instant,
    deadline: Instant,
) -> Step {
    if let Some(l) = lookup.filter(|l| (l.host.as_str(), l.port) == want) {
        return match l.result {
            Ok(addrs) => match addrs.first() {
                Some(a) => Step::Connect(*a),
                None => Step::Fail(format!("{} has no address", want.0)),
            },
            Err(e) => Step::Fail(e.to_string()),
        };
    }
    if now >= deadline {
        Step::Fail(format!("looking up {} timed out", want.0))
    } else if busy {
        Step::Wait
    } else {
        Step::Submit
    }
}

/// Parses `HOST[:PORT]` (IPv6 in brackets) with a default port.
#[cfg(test)]
pub(crate) fn parse_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, tail) = rest.split_once(']')?;
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if tail.is_empty() => default_port,
            None => return None,
        };
        return Some((h.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h.to_string(), p.parse().ok()?)),
        Some(_) => Some((s.to_string(), default_port)), // bare IPv6
        None if !s.is_empty() => Some((s.to_string(), default_port)),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline_client() -> Client {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        Client::new(
            ClientSettings {
                addresses: Vec::new(),
                tls: Arc::new(tls),
                uuid: Uuid::NIL,
                role: 0x14,
                max_message: 1 << 20,
                connect_timeout: Duration::from_secs(30),
                dead_peer: None,
                resolver_token: Token(1),
            },
            Token(0),
        )
    }

    /// As the original, the back-off caps cycle 5, 10, 20, 40 s (a uniform
    /// 1..=cap); after a refusal the original treats as final
    /// (ConnectionAborted, role mismatch) the client keeps retrying every
    /// 40 s instead of giving up.
    #[test]
    fn backoff_cycles_and_refusals_retry_at_the_longest_interval() {
        let mut c = offline_client();
        for round in 0..12 {
            let cap = BACKOFF_CAPS[round % 4];
            let d = c.backoff();
            assert!(
                d >= Duration::from_secs(1) && d <= Duration::from_secs(cap),
                "round {round}: {d:?} outside 1..={cap} s"
            );
        }
        c.slow_retry = true;
        for _ in 0..5 {
            assert_eq!(c.backoff(), Duration::from_secs(40));
        }
        assert!(!c.is_connected());
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(parse_host_port("a:1", 8888), Some(("a".into(), 1)));
        assert_eq!(parse_host_port("a", 8888), Some(("a".into(), 8888)));
        assert_eq!(parse_host_port("[::1]:9", 8888), Some(("::1".into(), 9)));
        assert_eq!(parse_host_port("[::1]", 8888), Some(("::1".into(), 8888)));
        assert_eq!(parse_host_port("::1", 8888), Some(("::1".into(), 8888)));
        assert_eq!(parse_host_port("a:x", 8888), None);
        assert_eq!(parse_host_port("", 8888), None);
    }

    #[test]
    fn resolve_literals_without_dns() {
        let lit = |h| literal_address(h, 5).map(|a| a.to_string());
        assert_eq!(lit("127.0.0.1").as_deref(), Some("127.0.0.1:5"));
        assert_eq!(lit("[::1]").as_deref(), Some("[::1]:5"));
        assert_eq!(lit("::1").as_deref(), Some("[::1]:5"));
        assert_eq!(lit("localhost").as_deref(), Some("127.0.0.1:5"));
        assert_eq!(lit("LocalHost").as_deref(), Some("127.0.0.1:5"));
        assert_eq!(lit("ssntp.example"), None);
    }

    fn answer(host: &str, port: u16, result: io::Result<Vec<SocketAddr>>) -> Option<Lookup> {
        Some(Lookup {
            host: host.into(),
            port,
            result,
        })
    }

    /// The waiting attempt asks once the resolver is free, waits while any
    /// lookup is outstanding (its own or a stuck earlier one), and fails at
    /// its deadline like a refused connection.
    #[test]
    fn a_waiting_attempt_asks_waits_and_times_out() {
        let now = Instant::now();
        let later = now + Duration::from_secs(30);
        let want = ("ssntp.example", 8888);
        assert_eq!(resolving_step(want, None, false, now, later), Step::Submit);
        assert_eq!(resolving_step(want, None, true, now, later), Step::Wait);
        for busy in [false, true] {
            assert_eq!(
                resolving_step(want, None, busy, later, later),
                Step::Fail("looking up ssntp.example timed out".into())
            );
        }
    }

    /// Its own answer is used (the first address, as before), even when it
    /// arrives together with the deadline; a failed lookup fails the
    /// attempt; another name's late answer is dropped.
    #[test]
    fn a_waiting_attempt_uses_only_its_own_answer() {
        let now = Instant::now();
        let later = now + Duration::from_secs(30);
        let want = ("ssntp.example", 8888);
        let a: SocketAddr = "192.0.2.1:8888".parse().unwrap();
        let b: SocketAddr = "192.0.2.2:8888".parse().unwrap();
        for at in [now, later] {
            let got = answer(want.0, want.1, Ok(vec![a, b]));
            assert_eq!(
                resolving_step(want, got, false, at, later),
                Step::Connect(a)
            );
        }
        let empty = answer(want.0, want.1, Ok(vec![]));
        assert_eq!(
            resolving_step(want, empty, false, now, later),
            Step::Fail("ssntp.example has no address".into())
        );
        let failed = answer(want.0, want.1, Err(io::Error::other("no such host")));
        assert_eq!(
            resolving_step(want, failed, false, now, later),
            Step::Fail("no such host".into())
        );
        let other_name = answer("old.example", want.1, Ok(vec![a]));
        assert_eq!(
            resolving_step(want, other_name, false, now, later),
            Step::Submit
        );
        let other_port = answer(want.0, 1, Ok(vec![a]));
        assert_eq!(
            resolving_step(want, other_port, false, now, later),
            Step::Submit
        );
        let stale = answer("old.example", want.1, Ok(vec![a]));
        assert_eq!(
            resolving_step(want, stale, false, later, later),
            Step::Fail("looking up ssntp.example timed out".into())
        );
    }
}
