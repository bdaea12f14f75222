//! The SSNTP server side on the caller's `mio` loop: listen, accept many
//! clients, TLS, the CONNECT handshake (30 s deadline), per-client sessions
//! keyed by UUID, frames both ways, and disconnect notices.
//!
//! Tokens: the listener uses `token_base`, connection slot `i` uses
//! `token_base + 1 + i`; the owner routes every token for which
//! [`Server::owns`] is true to [`Server::handle`].

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::TcpListener;
use mio::{Interest, Registry, Token};

use super::frame::{Frame, Op};
use super::session::{Session, SessionEvent};
use super::stream::{ReadState, TlsStream};
use super::uuid::Uuid;

/// Write deadline for frames (the original's, both sides).
const WRITE_DEADLINE: Duration = Duration::from_secs(30);
/// How many connection slots one server may hold.
const MAX_SLOTS: usize = 1 << 20;

/// How the server runs.
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub tls: Arc<rustls::ServerConfig>,
    pub uuid: Uuid,
    pub role: u32,
    /// Cluster configuration sent in CONNECTED (may be empty).
    pub config: Vec<u8>,
    pub max_message: usize,
    /// Deadline for TLS handshake + CONNECT (30 s in the original).
    pub connect_timeout: Duration,
}

/// What the server reports to its owner. `conn` numbers the connection
/// (never reused), so an owner keeping per-client state can tell an older
/// session of a UUID from the current one.
#[derive(Debug)]
pub enum ServerEvent {
    Connected { uuid: Uuid, role: u32, conn: u64 },
    Disconnected { uuid: Uuid, role: u32, conn: u64 },
    Frame { uuid: Uuid, frame: Frame },
}

/// Why a send failed.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// No connected client with this UUID.
    UnknownUuid(Uuid),
    /// The connection failed while writing.
    Failed(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::UnknownUuid(u) => write!(f, "Unknown UUID {u}"),
            SendError::Failed(e) => write!(f, "send failed: {e}"),
        }
    }
}

impl std::error::Error for SendError {}

struct Conn {
    stream: TlsStream,
    peer_addr: SocketAddr,
    session: Option<Session>,
    /// Until the handshake completes.
    handshake_deadline: Option<Instant>,
    /// UUID and claimed role once connected.
    peer: Option<(Uuid, u32)>,
    /// This connection's number (see [`ServerEvent`]).
    serial: u64,
}

/// An SSNTP server.
pub struct Server {
    settings: ServerSettings,
    listener: TcpListener,
    token_base: usize,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    by_uuid: HashMap<Uuid, usize>,
    next_serial: u64,
}

impl Server {
    /// Binds and registers the listener.
    pub fn bind(
        settings: ServerSettings,
        registry: &Registry,
        token_base: usize,
    ) -> io::Result<Server> {
        let mut listener = TcpListener::bind(settings.listen)?;
        registry.register(&mut listener, Token(token_base), Interest::READABLE)?;
        Ok(Server {
            settings,
            listener,
            token_base,
            conns: Vec::new(),
            free: Vec::new(),
            by_uuid: HashMap::new(),
            next_serial: 0,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The server's own UUID.
    pub fn uuid(&self) -> Uuid {
        self.settings.uuid
    }

    /// True for the listener's and the connections' tokens.
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.token_base && token.0 <= self.token_base + MAX_SLOTS
    }

    /// Connected clients: UUID and claimed role.
    pub fn clients(&self) -> impl Iterator<Item = (Uuid, u32)> + '_ {
        self.by_uuid
            .values()
            .filter_map(|&i| self.conns[i].as_ref()?.peer)
    }

    /// The next instant at which [`Server::tick`] must run.
    pub fn deadline(&self) -> Option<Instant> {
        self.conns
            .iter()
            .flatten()
            .filter_map(|c| {
                let w = c.stream.stalled_since().map(|t| t + WRITE_DEADLINE);
                match (c.handshake_deadline, w) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            })
            .min()
    }

    /// Handles readiness of one of the server's tokens.
    pub fn handle(
        &mut self,
        registry: &Registry,
        token: Token,
        now: Instant,
        out: &mut Vec<ServerEvent>,
    ) {
        if token.0 == self.token_base {
            self.accept(registry, now);
        } else {
            self.drive(registry, token.0 - self.token_base - 1, now, out);
        }
    }

    /// Expires handshake and write deadlines.
    pub fn tick(&mut self, registry: &Registry, now: Instant, out: &mut Vec<ServerEvent>) {
        for i in 0..self.conns.len() {
            let Some(c) = self.conns[i].as_mut() else {
                continue;
            };
            let write_late = c
                .stream
                .stalled_since()
                .is_some_and(|t| now >= t + WRITE_DEADLINE);
            if c.handshake_deadline.is_some_and(|d| now >= d) {
                warn!("SSNTP: {} sent no CONNECT in time", c.peer_addr);
                if let Some(s) = c.session.as_mut() {
                    let _ = s.timeout();
                    let bytes = s.take_output();
                    let _ = c.stream.write(&bytes);
                }
                self.drop_conn(registry, i, out);
            } else if write_late {
                warn!("SSNTP: {} does not read; dropping it", c.peer_addr);
                self.drop_conn(registry, i, out);
            }
        }
    }

    /// Sends a frame to a connected client.
    pub fn send(
        &mut self,
        registry: &Registry,
        uuid: &Uuid,
        frame: &Frame,
    ) -> Result<(), SendError> {
        let &i = self
            .by_uuid
            .get(uuid)
            .ok_or(SendError::UnknownUuid(*uuid))?;
        let Some(c) = self.conns[i].as_mut() else {
            return Err(SendError::UnknownUuid(*uuid));
        };
        let Some(s) = c.session.as_mut().filter(|s| s.is_open()) else {
            return Err(SendError::UnknownUuid(*uuid));
        };
        s.send(frame);
        let bytes = s.take_output();
        let res = c
            .stream
            .write(&bytes)
            .map_err(|e| SendError::Failed(e.to_string()));
        let _ = c
            .stream
            .update_registration(registry, Token(self.token_base + 1 + i));
        res
    }

    /// A frame from this server (Origin = server UUID).
    pub fn frame(&self, op: impl Into<Op>, payload: Vec<u8>) -> Frame {
        Frame::new(op, self.settings.uuid.0, payload)
    }

    /// Closes every connection and the listener.
    pub fn shutdown(&mut self, registry: &Registry) {
        for c in self.conns.iter_mut().flatten() {
            c.stream.close(registry);
        }
        self.conns.clear();
        self.by_uuid.clear();
        let _ = registry.deregister(&mut self.listener);
    }

    fn accept(&mut self, registry: &Registry, now: Instant) {
        loop {
            let (sock, addr) = match self.listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("SSNTP: accept failed: {e}");
                    return;
                }
            };
            let tls = match rustls::ServerConnection::new(self.settings.tls.clone()) {
                Ok(t) => t,
                Err(e) => {
                    warn!("SSNTP: TLS setup for {addr} failed: {e}");
                    continue;
                }
            };
            let Some(slot) = self.free.pop().or_else(|| {
                (self.conns.len() < MAX_SLOTS).then(|| {
                    self.conns.push(None);
                    self.conns.len() - 1
                })
            }) else {
                warn!("SSNTP: too many connections; refusing {addr}");
                continue;
            };
            let mut stream = TlsStream::new(sock, tls);
            if let Err(e) = stream.update_registration(registry, Token(self.token_base + 1 + slot))
            {
                warn!("SSNTP: cannot register {addr}: {e}");
                self.free.push(slot);
                continue;
            }
            debug!("SSNTP: accepted {addr}");
            self.next_serial += 1;
            self.conns[slot] = Some(Conn {
                serial: self.next_serial,
                stream,
                peer_addr: addr,
                session: None,
                handshake_deadline: Some(now + self.settings.connect_timeout),
                peer: None,
            });
        }
    }

    fn drive(&mut self, registry: &Registry, i: usize, _now: Instant, out: &mut Vec<ServerEvent>) {
        let Some(c) = self.conns.get_mut(i).and_then(|c| c.as_mut()) else {
            return;
        };
        let mut plain = Vec::new();
        let mut closing = match c.stream.read(&mut plain) {
            Ok(ReadState::Open | ReadState::More) => None,
            Ok(ReadState::Eof) => Some("peer closed the connection".to_string()),
            Err(e) => Some(e.to_string()),
        };
        if c.session.is_none() && !c.stream.tls.is_handshaking() {
            let roles = c.stream.peer_roles();
            c.session = Some(Session::server(
                self.settings.uuid,
                self.settings.role,
                roles,
                self.settings.config.clone(),
                self.settings.max_message,
            ));
        }
        let mut events = Vec::new();
        if let Some(s) = c.session.as_mut() {
            s.receive(&plain, &mut events);
        }
        let mut connected = None;
        for ev in events {
            match ev {
                SessionEvent::Connected { peer, role, .. } => connected = Some((peer, role)),
                SessionEvent::Frame(frame) => {
                    if let Some((uuid, _)) = c.peer {
                        out.push(ServerEvent::Frame { uuid, frame });
                    }
                }
                SessionEvent::Closed(e) => closing = Some(e.to_string()),
            }
        }
        if let Some(s) = c.session.as_mut() {
            let bytes = s.take_output();
            if let Err(e) = c.stream.write(&bytes) {
                closing.get_or_insert(e.to_string());
            }
        } else if let Err(e) = c.stream.flush() {
            closing.get_or_insert(e.to_string());
        }
        if let Some((uuid, role)) = connected {
            let (addr, conn) = (c.peer_addr, c.serial);
            info!("SSNTP: {uuid} connected from {addr} with role {role:#x}");
            c.peer = Some((uuid, role));
            c.handshake_deadline = None;
            // One session per UUID: a launcher that reconnects (after a
            // restart or a network cut) replaces its older session, which
            // may linger until TCP notices; the older one is closed.
            if let Some(&old) = self.by_uuid.get(&uuid).filter(|&&j| j != i) {
                let old_addr = self.conns[old].as_ref().map(|o| o.peer_addr);
                warn!(
                    "SSNTP: {uuid} connected again from {addr}; closing its older session{}",
                    old_addr.map(|a| format!(" from {a}")).unwrap_or_default()
                );
                self.drop_conn(registry, old, out);
            }
            self.by_uuid.insert(uuid, i);
            out.push(ServerEvent::Connected { uuid, role, conn });
        }
        let c = self.conns[i].as_mut().expect("slot checked above");
        if let Some(why) = closing {
            debug!("SSNTP: closing {}: {why}", c.peer_addr);
            self.drop_conn(registry, i, out);
            return;
        }
        if let Err(e) = c
            .stream
            .update_registration(registry, Token(self.token_base + 1 + i))
        {
            warn!("SSNTP: cannot update registration: {e}");
        }
    }

    fn drop_conn(&mut self, registry: &Registry, i: usize, out: &mut Vec<ServerEvent>) {
        let Some(mut c) = self.conns[i].take() else {
            return;
        };
        c.stream.close(registry);
        self.free.push(i);
        if let Some((uuid, role)) = c.peer {
            // Only remove our own entry: a newer session may have replaced it.
            if self.by_uuid.get(&uuid) == Some(&i) {
                self.by_uuid.remove(&uuid);
            }
            info!("SSNTP: {uuid} disconnected");
            out.push(ServerEvent::Disconnected {
                uuid,
                role,
                conn: c.serial,
            });
        }
    }
}
