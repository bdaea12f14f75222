//! The SSNTP client's connection manager, on the caller's `mio` loop:
//! dial every server address in turn, TLS, CONNECT/CONNECTED, frames, and
//! reconnection with the original's randomised back-off. It never gives up.
//!
//! Back-off (`spec/ssntp.md` §6.2): after a round in which every address
//! failed, sleep a uniform 1..=cap seconds with cap cycling 5, 10, 20, 40.
//! Failures the original treats as final (role mismatch, ConnectionAborted)
//! are logged as errors and retried at the longest interval.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use mio::net::TcpStream;
use mio::{Registry, Token};
use rustls::pki_types::ServerName;

use super::frame::Frame;
use super::session::{Session, SessionError, SessionEvent};
use super::stream::{ReadState, TlsStream};
use super::uuid::Uuid;

/// Back-off caps in seconds, cycled per round.
const BACKOFF_CAPS: [u64; 4] = [5, 10, 20, 40];
/// Write deadline for frames (`spec/ssntp.md` §6.4).
const WRITE_DEADLINE: Duration = Duration::from_secs(30);

/// How the client connects.
pub struct ClientSettings {
    /// `(host, port)` pairs in the order to try.
    pub addresses: Vec<(String, u16)>,
    pub tls: Arc<rustls::ClientConfig>,
    pub uuid: Uuid,
    pub role: u32,
    pub max_message: usize,
    /// Deadline for TCP connect + TLS handshake + CONNECTED.
    pub connect_timeout: Duration,
}

/// What the client reports to its owner.
#[derive(Debug)]
pub enum ClientEvent {
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
pub struct Client {
    settings: ClientSettings,
    token: Token,
    state: State,
    round: usize,
    /// Set when the last failure was one the original gives up on.
    slow_retry: bool,
    rng: u64,
}

impl Client {
    /// A client that will use `token` for its socket. Call [`Client::poll`]
    /// to start dialling.
    pub fn new(settings: ClientSettings, token: Token) -> Client {
        let seed = Uuid::random().0;
        let rng = u64::from_le_bytes(seed[..8].try_into().unwrap_or([7; 8])) | 1;
        Client {
            settings,
            token,
            state: State::Idle {
                until: Instant::now(),
            },
            round: 0,
            slow_retry: false,
            rng,
        }
    }

    /// True while a server connection is established.
    pub fn is_connected(&self) -> bool {
        matches!(self.state, State::Up { .. })
    }

    /// The next instant at which [`Client::poll`] must run.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.state {
            State::Idle { until } => Some(*until),
            State::Dialing { deadline, .. } => Some(*deadline),
            State::Up { stream, .. } => stream.stalled_since().map(|t| t + WRITE_DEADLINE),
        }
    }

    /// Sends a frame; returns false (frame dropped) when not connected.
    pub fn send(&mut self, registry: &Registry, frame: &Frame) -> bool {
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

    /// Drives the client: socket readiness, deadlines, reconnection. Call it
    /// on every event for the client's token and when [`Client::deadline`]
    /// has passed.
    pub fn poll(&mut self, registry: &Registry, now: Instant, out: &mut Vec<ClientEvent>) {
        let state = std::mem::replace(&mut self.state, State::Idle { until: now });
        self.state = match state {
            State::Idle { until } if until > now => State::Idle { until },
            State::Idle { .. } => self.dial(registry, now, 0),
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

    /// Starts an attempt on address `index`, or backs off after the last one.
    fn dial(&mut self, registry: &Registry, now: Instant, mut index: usize) -> State {
        while index < self.settings.addresses.len() {
            let (host, port) = self.settings.addresses[index].clone();
            match self.start_attempt(registry, &host, port) {
                Ok(stream) => {
                    debug!("SSNTP: dialling {host}:{port}");
                    return State::Dialing {
                        index,
                        stream: Box::new(stream),
                        tcp_up: false,
                        session: None,
                        deadline: now + self.settings.connect_timeout,
                    };
                }
                Err(e) => warn!("SSNTP: cannot connect to {host}:{port}: {e}"),
            }
            index += 1;
        }
        State::Idle {
            until: now + self.backoff(),
        }
    }

    fn start_attempt(&self, registry: &Registry, host: &str, port: u16) -> io::Result<TlsStream> {
        let addr = resolve(host, port)?;
        let name = ServerName::try_from(host.trim_matches(|c| c == '[' || c == ']').to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = rustls::ClientConnection::new(self.settings.tls.clone(), name)
            .map_err(io::Error::other)?;
        let sock = TcpStream::connect(addr)?;
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
        let mut why = match stream.read(&mut plain) {
            Ok(ReadState::Open) => None,
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
    pub fn close(&mut self, registry: &Registry) {
        match std::mem::replace(
            &mut self.state,
            State::Idle {
                until: Instant::now() + Duration::from_secs(3600),
            },
        ) {
            State::Dialing { mut stream, .. } | State::Up { mut stream, .. } => {
                stream.close(registry)
            }
            State::Idle { .. } => {}
        }
    }
}

/// Resolves a host without blocking for the common cases (IP literals and
/// `localhost`); other names go through the system resolver.
fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    let bare = host.trim_matches(|c| c == '[' || c == ']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    if bare.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    (bare, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address")))
}

/// Parses `HOST[:PORT]` (IPv6 in brackets) with a default port.
pub fn parse_host_port(s: &str, default_port: u16) -> Option<(String, u16)> {
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
            },
            Token(0),
        )
    }

    /// ssntp.md §6.2: the back-off caps cycle 5, 10, 20, 40 s (a uniform
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
        assert_eq!(resolve("127.0.0.1", 5).unwrap().to_string(), "127.0.0.1:5");
        assert_eq!(resolve("[::1]", 5).unwrap().to_string(), "[::1]:5");
        assert_eq!(resolve("localhost", 5).unwrap().to_string(), "127.0.0.1:5");
    }
}
