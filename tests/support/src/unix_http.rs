//! HTTP/1.1 over Unix sockets, the test side: one request as a client
//! ([`call`], used for the Engine API of the tests' dockerd and for the
//! launcher's docker plugin socket), and a small threaded server
//! ([`Server`]) for the stand-ins a test plays itself: a throwaway docker
//! network plugin, a dockerd that answers only after calling the plugin.
//!
//! Deliberately simple: one request per connection on the server side
//! (`Connection: close`), `Content-Length` or chunked bodies, deadlines on
//! every read and write. The crate's own HTTP code is what is under test;
//! this is written independently of it except for the response parser the
//! client reuses (it is fuzzed and unit-tested on its own).

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ciao::http::{write_request, ResponseParser};

/// A reply to [`call`].
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request to the HTTP server on the Unix socket `socket`, answered
/// within `within` (connect, write and read included).
pub fn call(
    socket: &Path,
    method: &str,
    path: &str,
    body: &[u8],
    within: Duration,
) -> Result<Reply, String> {
    let end = Instant::now() + within;
    let mut s = UnixStream::connect(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    let ct = if body.is_empty() {
        vec![]
    } else {
        vec![("Content-Type", "application/json")]
    };
    s.set_write_timeout(Some(within)).ok();
    s.write_all(&write_request(method, path, "localhost", &ct, body))
        .map_err(|e| format!("write {path}: {e}"))?;
    let mut p = ResponseParser::new(method);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        if let Some(r) = p.response().map_err(|e| format!("{path}: {e}"))? {
            return Ok(Reply {
                status: r.status,
                body: r.body,
            });
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("{method} {path}: no reply within {within:?}"));
        }
        s.set_read_timeout(Some(left)).ok();
        match s.read(&mut buf) {
            Ok(0) => p.eof(),
            Ok(n) => p.feed(&buf[..n]),
            Err(e) => return Err(format!("{method} {path}: {e}")),
        }
    }
}

/// A request the [`Server`] received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target as sent (path and query).
    pub target: String,
    pub body: Vec<u8>,
}

impl Request {
    /// The target without its query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// What a handler answers: status, JSON body.
pub type Answer = (u16, String);

/// A threaded HTTP server on a Unix socket: one thread accepting, one per
/// connection calling the handler. Stopped, and its socket file removed,
/// when dropped.
pub struct Server {
    pub path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on `path` (an old file there is removed first) and answers
    /// every request with `handler`.
    pub fn serve(
        path: &Path,
        handler: impl Fn(&Request) -> Answer + Send + Sync + 'static,
    ) -> Result<Server, String> {
        let _ = std::fs::remove_file(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let l = UnixListener::bind(path).map_err(|e| format!("{}: {e}", path.display()))?;
        l.set_nonblocking(true).map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let handler = Arc::new(handler);
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((s, _)) => {
                        let h = handler.clone();
                        std::thread::spawn(move || serve_one(s, &*h));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(Server {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads one request from `s`, answers it, closes.
fn serve_one(mut s: UnixStream, handler: &dyn Fn(&Request) -> Answer) {
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    s.set_write_timeout(Some(Duration::from_secs(30))).ok();
    let Some(req) = read_request(&mut s) else {
        return;
    };
    let (status, body) = handler(&req);
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        ciao::http::reason_phrase(status),
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body.as_bytes());
}

/// One request: head, then a `Content-Length` or chunked body.
fn read_request(s: &mut UnixStream) -> Option<Request> {
    let mut data = Vec::new();
    let mut buf = [0u8; 16 << 10];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).ok().filter(|&n| n > 0)?;
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&data[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let mut length = None;
    let mut chunked = false;
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = v.trim().parse::<usize>().ok(),
            "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    let mut rest = data[head_end..].to_vec();
    let body = if chunked {
        loop {
            if let Some(b) = dechunk(&rest) {
                break b;
            }
            let n = s.read(&mut buf).ok().filter(|&n| n > 0)?;
            rest.extend_from_slice(&buf[..n]);
        }
    } else {
        let want = length.unwrap_or(0);
        while rest.len() < want {
            let n = s.read(&mut buf).ok().filter(|&n| n > 0)?;
            rest.extend_from_slice(&buf[..n]);
        }
        rest.truncate(want);
        rest
    };
    Some(Request {
        method,
        target,
        body,
    })
}

/// The body of a complete chunked encoding, `None` while incomplete.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&data[..eol]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        data = &data[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        if data.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}
