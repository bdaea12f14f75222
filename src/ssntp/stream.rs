//! A rustls connection over a non-blocking `mio` TCP stream: the I/O edge
//! under an SSNTP [`Session`](super::session::Session).
//!
//! It never blocks: reads take what the socket has, writes go out as far as
//! the socket accepts, and the rest waits for the next writable event. The
//! owner registers the socket with the interest [`TlsStream::interest`]
//! returns and enforces the write deadline with [`TlsStream::stalled_since`].

use std::io::{self, Read, Write};
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

/// Upper bound on plaintext waiting to be sent; a peer that lets more pile
/// up is not reading and is dropped.
const MAX_PENDING: usize = 64 << 20;

/// What a read produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadState {
    /// The connection is still open; everything available was read.
    Open,
    /// The connection is still open and more may be available at once
    /// (the read stopped at its budget).
    More,
    /// The peer closed the connection (TCP EOF or TLS close_notify).
    Eof,
}

/// Why the stream failed.
#[derive(Debug)]
pub(crate) enum StreamError {
    /// Socket error.
    Io(io::Error),
    /// TLS error (handshake failure, bad certificate, corrupt record).
    Tls(rustls::Error),
    /// The peer does not read what we send.
    Backlog,
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Io(e) => write!(f, "socket error: {e}"),
            StreamError::Tls(e) => write!(f, "TLS error: {e}"),
            StreamError::Backlog => {
                write!(f, "peer is not reading (over {MAX_PENDING} bytes queued)")
            }
        }
    }
}

impl std::error::Error for StreamError {}

impl From<io::Error> for StreamError {
    fn from(e: io::Error) -> Self {
        StreamError::Io(e)
    }
}

/// TLS over a non-blocking TCP socket.
pub(crate) struct TlsStream {
    pub sock: TcpStream,
    pub tls: rustls::Connection,
    /// Plaintext not yet accepted by rustls.
    pending: Vec<u8>,
    /// When output started to wait without progress (for the write deadline).
    stalled: Option<Instant>,
    registered: Option<Interest>,
}

/// The largest send queue kept allocated once it has drained.
const KEEP_PENDING: usize = 16 * 1024;

impl TlsStream {
    /// Wraps a connected (or connecting) socket.
    pub(crate) fn new(sock: TcpStream, tls: impl Into<rustls::Connection>) -> Self {
        let _ = sock.set_nodelay(true);
        TlsStream {
            sock,
            tls: tls.into(),
            pending: Vec::new(),
            stalled: None,
            registered: None,
        }
    }

    /// Reads everything available, appending plaintext to `plain`.
    /// A TLS error is returned after the alert was queued for sending, so a
    /// final [`flush`](Self::flush) tells the peer why.
    pub(crate) fn read(&mut self, plain: &mut Vec<u8>) -> Result<ReadState, StreamError> {
        self.read_some(plain, usize::MAX)
    }

    /// Reads until the socket has nothing more or `plain` holds at least
    /// `budget` bytes; then [`ReadState::More`] says that the socket (or
    /// TLS records already buffered) may hold more, and the caller must
    /// come back without waiting for readiness (the socket is
    /// edge-triggered). A burst of frames is then taken in slices: the
    /// buffers stay small and other work runs between the slices.
    pub(crate) fn read_some(
        &mut self,
        plain: &mut Vec<u8>,
        budget: usize,
    ) -> Result<ReadState, StreamError> {
        loop {
            let state = self.tls.process_new_packets().map_err(StreamError::Tls)?;
            let n = state.plaintext_bytes_to_read();
            if n > 0 {
                let start = plain.len();
                plain.resize(start + n, 0);
                let got = self.tls.reader().read(&mut plain[start..]).unwrap_or(0);
                plain.truncate(start + got);
            }
            if state.peer_has_closed() {
                return Ok(ReadState::Eof);
            }
            if plain.len() >= budget {
                return Ok(ReadState::More);
            }
            match self.tls.read_tls(&mut self.sock) {
                Ok(0) => return Ok(ReadState::Eof),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadState::Open),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Queues plaintext and pushes what it can.
    pub(crate) fn write(&mut self, data: &[u8]) -> Result<(), StreamError> {
        if self.pending.len() + data.len() > MAX_PENDING {
            return Err(StreamError::Backlog);
        }
        self.pending.extend_from_slice(data);
        self.flush()
    }

    /// Pushes queued plaintext into TLS and TLS records into the socket.
    pub(crate) fn flush(&mut self) -> Result<(), StreamError> {
        let before = self.backlog();
        if !self.pending.is_empty() && !self.tls.is_handshaking() {
            let n = self.tls.writer().write(&self.pending).unwrap_or(0);
            self.pending.drain(..n);
        }
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.sock) {
                Ok(0) => break,
                Ok(_) => {
                    if !self.pending.is_empty() && !self.tls.is_handshaking() {
                        let n = self.tls.writer().write(&self.pending).unwrap_or(0);
                        self.pending.drain(..n);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if self.pending.is_empty() && self.pending.capacity() > KEEP_PENDING {
            // A burst's answers grew it (to 300 kB for a thousand STARTs);
            // kept, it would stay resident for the life of the connection.
            self.pending = Vec::new();
        }
        let after = self.backlog();
        if after == 0 {
            self.stalled = None;
        } else if after < before || self.stalled.is_none() {
            self.stalled = Some(Instant::now());
        }
        Ok(())
    }

    fn backlog(&self) -> usize {
        self.pending.len() + usize::from(self.tls.wants_write())
    }

    /// True while output waits for the socket.
    pub(crate) fn wants_write(&self) -> bool {
        !self.pending.is_empty() || self.tls.wants_write()
    }

    /// Since when output has been waiting without progress.
    pub(crate) fn stalled_since(&self) -> Option<Instant> {
        self.stalled
    }

    /// The interest this stream needs now.
    pub(crate) fn interest(&self) -> Interest {
        if self.wants_write() {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        }
    }

    /// Registers or re-registers the socket when the interest changed.
    pub(crate) fn update_registration(
        &mut self,
        registry: &Registry,
        token: Token,
    ) -> io::Result<()> {
        let want = self.interest();
        match self.registered {
            Some(have) if have == want => Ok(()),
            Some(_) => {
                self.registered = Some(want);
                registry.reregister(&mut self.sock, token, want)
            }
            None => {
                self.registered = Some(want);
                registry.register(&mut self.sock, token, want)
            }
        }
    }

    /// Sends close_notify (best effort) and deregisters.
    pub(crate) fn close(&mut self, registry: &Registry) {
        self.tls.send_close_notify();
        let _ = self.flush();
        if self.registered.take().is_some() {
            let _ = registry.deregister(&mut self.sock);
        }
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }

    /// Role bits of the peer's leaf certificate (0 when none or unreadable).
    pub(crate) fn peer_roles(&self) -> u32 {
        self.tls
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| super::cert::parse_certificate(c.as_ref()).ok())
            .map(|i| i.roles)
            .unwrap_or(0)
    }
}
