//! The blocking HTTP/1.1 client of `ciaolc`.
//!
//! `ciaolc` makes one request per run to a server on (usually) loopback, so a
//! blocking `std::net::TcpStream` with deadlines is all it needs; the bytes
//! are written and parsed by the sans-IO `crate::http` module. Every wait is
//! bounded (connect, then the whole exchange), so a wedged server turns into
//! an error message instead of a hang.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::http::{write_request, HttpError, ResponseParser};

/// Default deadline for connect, and for the whole exchange after it.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One request as ciaolc builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Path plus optional `?query`, e.g. `/instances?client=abc&filter=active`.
    pub target: String,
    /// Body of a POST (sent with `Content-Type: text/yaml`).
    pub body: Option<Vec<u8>>,
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Reason phrase from the status line (may be empty).
    pub reason: String,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// Why a request failed before a complete response arrived.
#[derive(Debug)]
pub enum ClientError {
    /// The server address does not resolve.
    Resolve { server: String, error: String },
    /// No address accepted the connection.
    Connect { server: String, error: io::Error },
    /// The deadline passed while sending or receiving.
    Timeout { server: String, after: Duration },
    /// The connection failed after it was established.
    Io { server: String, error: io::Error },
    /// The answer is not HTTP/1.x as we understand it.
    Malformed { server: String, what: String },
}

/// An `io::Error` in the words Go and most tools use ("connection refused"),
/// without Rust's " (os error N)" suffix.
pub(crate) fn io_text(e: &io::Error) -> String {
    let s = e.to_string();
    let s = match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => s,
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HINT: &str =
            "is ciao-launcher-server running? Use -server HOST:PORT if it listens elsewhere";
        match self {
            ClientError::Resolve { server, error } => {
                write!(f, "cannot resolve the server address {server}: {error} (expected HOST:PORT, e.g. 127.0.0.1:9000)")
            }
            ClientError::Connect { server, error } => {
                write!(
                    f,
                    "cannot reach ciao-launcher-server at {server}: {} ({HINT})",
                    io_text(error)
                )
            }
            ClientError::Timeout { server, after } => write!(
                f,
                "ciao-launcher-server at {server} did not answer within {} s ({HINT})",
                after.as_secs()
            ),
            ClientError::Io { server, error } => {
                write!(
                    f,
                    "connection to ciao-launcher-server at {server} failed: {}",
                    io_text(error)
                )
            }
            ClientError::Malformed { server, what } => {
                write!(f, "the answer from {server} is not a valid HTTP response ({what}); is it a ciao-launcher-server?")
            }
        }
    }
}

impl std::error::Error for ClientError {}

/// Sends requests somewhere; the real one is [`TcpTransport`], tests use fakes.
pub trait Transport {
    /// Performs one request against `server` (`HOST:PORT`).
    fn send(&mut self, server: &str, req: &Request) -> Result<Response, ClientError>;
}

/// The real transport: one TCP connection per request, `Connection: close`.
#[derive(Debug, Clone)]
pub(crate) struct TcpTransport {
    /// Deadline for connecting, and separately for the exchange.
    pub timeout: Duration,
}

impl Default for TcpTransport {
    fn default() -> Self {
        TcpTransport {
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// The bytes of a request as sent on the wire.
pub(crate) fn encode_request(server: &str, req: &Request) -> Vec<u8> {
    let agent = concat!("ciaolc/", env!("CARGO_PKG_VERSION"));
    let mut headers = vec![("User-Agent", agent), ("Connection", "close")];
    if req.body.is_some() {
        headers.push(("Content-Type", "text/yaml"));
    }
    write_request(
        req.method,
        &req.target,
        server,
        &headers,
        req.body.as_deref().unwrap_or(b""),
    )
}

fn resolve(server: &str) -> Result<Vec<SocketAddr>, ClientError> {
    let err = |e: io::Error| ClientError::Resolve {
        server: server.to_string(),
        error: io_text(&e),
    };
    let addrs: Vec<SocketAddr> = match server.to_socket_addrs() {
        Ok(a) => a.collect(),
        // Like Go's HTTP client, a bare host name means port 80.
        Err(_) if !server.contains(':') => (server, 80).to_socket_addrs().map_err(err)?.collect(),
        Err(e) => return Err(err(e)),
    };
    if addrs.is_empty() {
        return Err(ClientError::Resolve {
            server: server.to_string(),
            error: "no addresses".into(),
        });
    }
    Ok(addrs)
}

impl Transport for TcpTransport {
    fn send(&mut self, server: &str, req: &Request) -> Result<Response, ClientError> {
        let mut last = None;
        let mut stream = None;
        for addr in resolve(server)? {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(mut stream) = stream else {
            let error = last.unwrap_or_else(|| io::Error::other("no address to connect to"));
            if error.kind() == io::ErrorKind::TimedOut {
                return Err(ClientError::Timeout {
                    server: server.to_string(),
                    after: self.timeout,
                });
            }
            return Err(ClientError::Connect {
                server: server.to_string(),
                error,
            });
        };
        let deadline = Instant::now() + self.timeout;
        let io_err = |error: io::Error| {
            if matches!(
                error.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) {
                ClientError::Timeout {
                    server: server.to_string(),
                    after: self.timeout,
                }
            } else {
                ClientError::Io {
                    server: server.to_string(),
                    error,
                }
            }
        };
        stream
            .set_write_timeout(Some(self.timeout))
            .map_err(io_err)?;
        stream
            .write_all(&encode_request(server, req))
            .map_err(io_err)?;
        let mut parser = ResponseParser::new(req.method);
        let mut buf = [0u8; 16 * 1024];
        let malformed = |e: HttpError| ClientError::Malformed {
            server: server.to_string(),
            what: e.to_string(),
        };
        loop {
            if let Some(r) = parser.response().map_err(malformed)? {
                return Ok(Response {
                    status: r.status,
                    reason: r.reason,
                    body: r.body,
                });
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout {
                    server: server.to_string(),
                    after: self.timeout,
                });
            }
            stream.set_read_timeout(Some(left)).map_err(io_err)?;
            match stream.read(&mut buf) {
                Ok(0) => parser.eof(),
                Ok(n) => parser.feed(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-shot HTTP server on loopback answering `answer`; returns its
    /// address and a handle yielding the request it read.
    fn serve(answer: &'static [u8]) -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let h = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = c.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            c.write_all(answer).unwrap();
            req
        });
        (addr, h)
    }

    #[test]
    fn exchange_over_loopback() {
        let (addr, h) = serve(b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nInval\r\na\r\nid client\n\r\n0\r\n\r\n");
        let req = Request {
            method: "GET",
            target: "/stats?client=a".into(),
            body: None,
        };
        let r = TcpTransport::default().send(&addr, &req).unwrap();
        assert_eq!(
            (r.status, r.reason.as_str(), &r.body[..]),
            (400, "Bad Request", &b"Invalid client\n"[..])
        );
        let sent = String::from_utf8(h.join().unwrap()).unwrap();
        assert!(
            sent.starts_with(&format!("GET /stats?client=a HTTP/1.1\r\nHost: {addr}\r\n")),
            "{sent}"
        );
        // Read until close works too.
        let (addr, _h) = serve(b"HTTP/1.0 200 OK\r\n\r\n[]\n");
        let r = TcpTransport::default().send(&addr, &req).unwrap();
        assert_eq!(r.body, b"[]\n");
    }

    #[test]
    fn garbage_and_timeouts_are_errors() {
        let (addr, _h) = serve(b"SSH-2.0-OpenSSH\r\n\r\n");
        let req = Request {
            method: "GET",
            target: "/clients".into(),
            body: None,
        };
        let e = TcpTransport::default().send(&addr, &req).unwrap_err();
        assert!(matches!(e, ClientError::Malformed { .. }), "{e}");
        // A server that accepts and never answers.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let mut t = TcpTransport {
            timeout: Duration::from_millis(200),
        };
        let e = t.send(&addr, &req).unwrap_err();
        assert!(e.to_string().contains("did not answer within"), "{e}");
        drop(l);
    }

    #[test]
    fn request_bytes() {
        let req = Request {
            method: "POST",
            target: "/stop?client=Z".into(),
            body: Some(b"x".to_vec()),
        };
        let s = String::from_utf8(encode_request("127.0.0.1:9000", &req)).unwrap();
        let agent = concat!("ciaolc/", env!("CARGO_PKG_VERSION"));
        assert_eq!(
            s,
            format!("POST /stop?client=Z HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUser-Agent: {agent}\r\nConnection: close\r\nContent-Type: text/yaml\r\nContent-Length: 1\r\n\r\nx")
        );
        // An empty POST body still has a length (Go sends one too).
        let req = Request {
            method: "POST",
            target: "/restart".into(),
            body: Some(Vec::new()),
        };
        assert!(String::from_utf8(encode_request("h:1", &req))
            .unwrap()
            .ends_with("Content-Length: 0\r\n\r\n"));
        let req = Request {
            method: "GET",
            target: "/clients".into(),
            body: None,
        };
        assert_eq!(
            String::from_utf8(encode_request("h:1", &req)).unwrap(),
            format!("GET /clients HTTP/1.1\r\nHost: h:1\r\nUser-Agent: {agent}\r\nConnection: close\r\n\r\n")
        );
    }

    #[test]
    fn refused_connection_reads_well() {
        // Bind then drop a listener to get a port that refuses.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let server = format!("127.0.0.1:{port}");
        let req = Request {
            method: "GET",
            target: "/clients".into(),
            body: None,
        };
        let e = TcpTransport::default().send(&server, &req).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("cannot reach ciao-launcher-server at {server}: connection refused (is ciao-launcher-server running? Use -server HOST:PORT if it listens elsewhere)")
        );
    }
}
