//! A blocking TLS peer for protocol tests: it speaks whatever bytes the
//! test wants, and decodes what comes back with our gob decoder.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ciao::ssntp::frame::{Command, ConnectFrame, Decoded, Decoder, Encoder, Op};
use ciao::ssntp::tls;
use ciao::ssntp::uuid::Uuid;
use rustls::pki_types::ServerName;

pub struct RawClient {
    pub tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    dec: Decoder,
    pub enc: Encoder,
}

/// How a raw exchange ended.
#[derive(Debug)]
pub enum Outcome {
    /// A decoded value.
    Value(Decoded),
    /// EOF or reset after the values.
    Closed,
    /// A TLS error (e.g. an alert from the peer).
    Tls(String),
}

impl RawClient {
    /// TLS-connects with the given CA and identity files. Errors (e.g. a TLS
    /// alert) come back as text.
    pub fn connect(
        addr: SocketAddr,
        ca: &std::path::Path,
        cert: &std::path::Path,
    ) -> Result<RawClient, String> {
        let ca = tls::load_ca(ca).map_err(|e| e.to_string())?;
        let id = tls::load_identity(cert).map_err(|e| e.to_string())?;
        let cfg: Arc<rustls::ClientConfig> =
            tls::client_config(&ca, &id).map_err(|e| e.to_string())?;
        let sock = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let conn = rustls::ClientConnection::new(cfg, ServerName::try_from("127.0.0.1").unwrap())
            .map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, sock);
        // Drive the handshake to completion (TLS 1.3: a rejected client
        // certificate shows up on the first read after this).
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| e.to_string())?;
        }
        Ok(RawClient {
            tls,
            dec: Decoder::new(64 << 20),
            enc: Encoder::new(),
        })
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.tls.write_all(bytes).map_err(|e| e.to_string())?;
        self.tls.flush().map_err(|e| e.to_string())
    }

    /// Sends a CONNECT claiming `role`.
    pub fn send_connect(&mut self, uuid: Uuid, role: u32) -> Result<(), String> {
        let mut out = Vec::new();
        self.enc.connect(
            &ConnectFrame {
                major: 0,
                minor: 1,
                op: Op::Command(Command::Connect),
                role,
                source: uuid.0.to_vec(),
                destination: vec![0; 16],
            },
            &mut out,
        );
        self.write(&out)
    }

    /// The next value, or how the stream ended, within `within`.
    pub fn next(&mut self, within: Duration) -> Outcome {
        let end = Instant::now() + within;
        loop {
            match self.dec.next() {
                Ok(Some(v)) => return Outcome::Value(v),
                Ok(None) => {}
                Err(e) => return Outcome::Tls(format!("undecodable reply: {e}")),
            }
            if Instant::now() >= end {
                return Outcome::Tls("timeout".into());
            }
            let mut buf = [0u8; 4096];
            match self.tls.read(&mut buf) {
                Ok(0) => return Outcome::Closed,
                Ok(n) => self.dec.feed(&buf[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::UnexpectedEof
                        || e.kind() == std::io::ErrorKind::ConnectionReset =>
                {
                    return Outcome::Closed
                }
                Err(e) => return Outcome::Tls(e.to_string()),
            }
        }
    }
}
