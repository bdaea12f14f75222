//! The shell of the ciao docker plugin (`crate::docker::plugin`): its
//! listening socket and HTTP connections on the launcher's `mio` loop,
//! the rtnetlink dump that finds links by alias, and the state file.
//!
//! dockerd calls the plugin while the launcher's own container create or
//! start is waiting for dockerd's answer, so the plugin must be served by
//! the same loop and never wait for anything itself: each call is answered
//! in the turn its last byte arrives (one netlink dump at most, bounded by
//! the rtnetlink timeout). It listens from start-up, before the first
//! connection to the server and whatever happens to it.
//!
//! Sockets (docs/networking.md): by default a Unix socket
//! `/run/docker/plugins/<name>.sock`, mode 0600 (only root may call the
//! plugin; the original's TCP port was open to every local user); with
//! `--docker-plugin tcp` the original's 127.0.0.1:9999 and a spec file
//! `/etc/docker/plugins/<name>.json`. A socket that another live process
//! answers on makes start-up fail; a stale one (nobody answers) is
//! replaced. Both are removed at exit.
//!
//! Connections: many at once (dockerd's Go client keeps several and reuses
//! them: HTTP/1.1 keep-alive), each with a deadline for a started request
//! to arrive whole, a body limit, and an idle limit.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use super::config::{DockerPlugin, LauncherConfig};
use crate::docker::plugin::serve::{limits, serve, Call};
use crate::docker::plugin::{LinkLookup, Plugin, State, CONTENT_TYPE};
use crate::http::{RequestParser, Response};
use crate::net::link::Link;
use crate::net::rtnl::Rtnl;
use crate::sys;

/// The listening socket's token.
pub(crate) const LISTENER: Token = Token(4);
/// Connections use `CONN_BASE..CONN_BASE + MAX_CONNS` (below the I/O
/// executor's tokens).
const CONN_BASE: usize = 4096;
/// At most this many connections at once; more are answered 503 and
/// closed.
const MAX_CONNS: usize = 512;
/// A request whose first byte arrived must be complete within this.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// A connection without any traffic for this long is closed (dockerd's
/// client keeps idle connections without a limit of its own).
const IDLE: Duration = Duration::from_secs(300);
/// Size of one read.
const READ_CHUNK: usize = 16 << 10;
/// Replies not yet written past which no more requests are read from
/// that connection until its peer reads.
const MAX_PENDING_OUT: usize = 256 << 10;
/// The state file is the node's: not world-readable.
const STATE_MODE: u32 = 0o600;

/// Why the plugin could not start.
#[derive(Debug)]
pub(crate) struct PluginServerError(pub String);

impl fmt::Display for PluginServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Unix(s) => s,
            Stream::Tcp(s) => s,
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
        }
    }
}

struct Conn {
    sock: Stream,
    parser: RequestParser,
    out: Vec<u8>,
    close_after_write: bool,
    last_activity: Instant,
    /// When the request being received must be complete.
    request_deadline: Option<Instant>,
}

impl Conn {
    fn deadline(&self) -> Instant {
        let idle = self.last_activity + IDLE;
        self.request_deadline.map_or(idle, |d| d.min(idle))
    }
}

/// Links by alias from an rtnetlink dump of every link (the plugin runs
/// before, and without, the topology of the tenant links).
struct NetlinkLinks(Rtnl);

impl LinkLookup for NetlinkLinks {
    fn by_alias(&mut self, alias: &str) -> Result<Option<Link>, String> {
        let links = self.0.links().map_err(|e| e.to_string())?;
        Ok(links
            .into_iter()
            .find(|l| l.alias.as_deref() == Some(alias)))
    }
}

/// A file this server made, removed at exit if it is still the same file.
struct Owned {
    path: PathBuf,
    dev_ino: (u64, u64),
}

impl Owned {
    fn new(path: &Path) -> io::Result<Owned> {
        let m = std::fs::symlink_metadata(path)?;
        Ok(Owned {
            path: path.to_path_buf(),
            dev_ino: (m.dev(), m.ino()),
        })
    }

    fn remove(&self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == self.dev_ino => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    warn!("cannot remove {}: {e}", self.path.display());
                }
            }
            _ => {}
        }
    }
}

/// The running plugin server.
pub(crate) struct PluginServer {
    listener: Listener,
    conns: HashMap<usize, Conn>,
    next_slot: usize,
    plugin: Plugin,
    links: NetlinkLinks,
    state_path: PathBuf,
    /// The state file was missing or unreadable at start-up: the state
    /// should be rebuilt from dockerd.
    needs_rebuild: bool,
    /// The socket file or the spec file, removed at exit.
    files: Vec<Owned>,
    /// Connections refused since the last log line.
    refused: u64,
}

impl PluginServer {
    /// Listens as `--docker-plugin` says (`None` for `none`), registered
    /// on `registry`, with the state read from the state file.
    pub(crate) fn start(
        cfg: &LauncherConfig,
        registry: &Registry,
    ) -> Result<Option<PluginServer>, PluginServerError> {
        let name = cfg.docker_plugin_name.as_str();
        let err = |e: String| PluginServerError(format!("docker plugin {name}: {e}"));
        let (mut listener, files, where_) = match &cfg.docker_plugin {
            DockerPlugin::Off => return Ok(None),
            DockerPlugin::Unix(_) => {
                let Some(path) = cfg.docker_plugin_socket() else {
                    return Ok(None);
                };
                let l = bind_unix(&path).map_err(err)?;
                let owned = Owned::new(&path).map_err(|e| err(e.to_string()))?;
                (Listener::Unix(l), vec![owned], path.display().to_string())
            }
            DockerPlugin::Tcp(addr) => {
                let l = TcpListener::bind(*addr).map_err(|e| {
                    err(format!(
                        "cannot listen on {addr}: {e} (is another launcher serving it?)"
                    ))
                })?;
                let mut files = Vec::new();
                if let Some(spec) = cfg.docker_plugin_spec() {
                    let addr = l.local_addr().unwrap_or(*addr);
                    write_spec(&spec, name, addr).map_err(err)?;
                    files.push(Owned::new(&spec).map_err(|e| err(e.to_string()))?);
                }
                (Listener::Tcp(l), files, addr.to_string())
            }
        };
        let reg = match &mut listener {
            Listener::Unix(l) => registry.register(l, LISTENER, Interest::READABLE),
            Listener::Tcp(l) => registry.register(l, LISTENER, Interest::READABLE),
        };
        let links = reg
            .map_err(|e| err(format!("cannot watch the socket: {e}")))
            .and_then(|()| Rtnl::open().map_err(|e| err(e.to_string())));
        let links = match links {
            Ok(l) => l,
            Err(e) => {
                files.iter().for_each(Owned::remove);
                return Err(e);
            }
        };
        let state_path = cfg.docker_plugin_state();
        let (state, needs_rebuild) = load_state(&state_path);
        info!(
            "docker plugin {name} listening on {where_} ({} network(s), {} endpoint(s) known)",
            state.networks.len(),
            state.endpoints.len()
        );
        Ok(Some(PluginServer {
            listener,
            conns: HashMap::new(),
            next_slot: 0,
            plugin: Plugin::new(name, state),
            links: NetlinkLinks(links),
            state_path,
            needs_rebuild,
            files,
            refused: 0,
        }))
    }

    /// True for the tokens of this server.
    pub(crate) fn owns(token: Token) -> bool {
        token == LISTENER || (CONN_BASE..CONN_BASE + MAX_CONNS).contains(&token.0)
    }

    /// The driver name.
    pub(crate) fn name(&self) -> &str {
        self.plugin.name()
    }

    /// Whether the state file was missing or unreadable at start-up, so
    /// the state should be rebuilt from dockerd (`GET /networks`), once.
    pub(crate) fn take_needs_rebuild(&mut self) -> bool {
        std::mem::take(&mut self.needs_rebuild)
    }

    /// Installs what a rebuild from dockerd found (see
    /// [`crate::docker::plugin::rebuild`]) and saves the state.
    pub(crate) fn install_rebuilt(&mut self, rebuilt: State) {
        let added = self.plugin.install_rebuilt(rebuilt);
        info!(
            "docker plugin {}: {added} network(s) and endpoint(s) rebuilt from dockerd",
            self.plugin.name()
        );
        if added > 0 {
            self.save();
        }
    }

    /// The earliest connection deadline.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.conns.values().map(Conn::deadline).min()
    }

    /// A readiness event for one of this server's tokens.
    pub(crate) fn on_event(&mut self, registry: &Registry, token: Token, now: Instant) {
        if token == LISTENER {
            self.accept(registry, now);
        } else {
            self.drive(registry, token.0 - CONN_BASE, now);
        }
    }

    /// Closes connections past their deadline.
    pub(crate) fn tick(&mut self, registry: &Registry, now: Instant) {
        let late: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| now >= c.deadline())
            .map(|(k, _)| *k)
            .collect();
        for slot in late {
            if let Some(mut c) = self.conns.remove(&slot) {
                if c.request_deadline.is_some_and(|d| now >= d) {
                    debug!("docker plugin: closing a connection slow to send its request");
                } else {
                    debug!("docker plugin: closing an idle connection");
                }
                let _ = registry.deregister(c.sock.source());
            }
        }
    }

    fn accept(&mut self, registry: &Registry, now: Instant) {
        loop {
            let accepted = match &self.listener {
                Listener::Unix(l) => l.accept().map(|(s, _)| Stream::Unix(s)),
                Listener::Tcp(l) => l.accept().map(|(s, _)| Stream::Tcp(s)),
            };
            let mut sock = match accepted {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("docker plugin: accept failed: {e}");
                    break;
                }
            };
            let Some(slot) = self.free_slot() else {
                let body = r#"{"Err":"too many connections to the ciao plugin"}"#;
                let _ = sock.write(
                    &Response::new(503)
                        .with_header("Content-Type", CONTENT_TYPE)
                        .with_body(body)
                        .to_bytes(false, false),
                );
                self.refused += 1;
                continue;
            };
            let token = Token(CONN_BASE + slot);
            if let Err(e) = registry.register(
                sock.source(),
                token,
                Interest::READABLE | Interest::WRITABLE,
            ) {
                warn!("docker plugin: cannot watch a connection: {e}");
                continue;
            }
            self.conns.insert(
                slot,
                Conn {
                    sock,
                    parser: RequestParser::with_limits(limits()),
                    out: Vec::new(),
                    close_after_write: false,
                    last_activity: now,
                    request_deadline: Some(now + REQUEST_DEADLINE),
                },
            );
        }
        if self.refused > 0 {
            warn!(
                "docker plugin: too many connections ({MAX_CONNS}); refused {}",
                std::mem::take(&mut self.refused)
            );
        }
    }

    fn free_slot(&mut self) -> Option<usize> {
        if self.conns.len() >= MAX_CONNS {
            return None;
        }
        loop {
            let slot = self.next_slot;
            self.next_slot = (self.next_slot + 1) % MAX_CONNS;
            if !self.conns.contains_key(&slot) {
                return Some(slot);
            }
        }
    }

    /// Reads, answers and writes until the socket would block (edge
    /// triggered), a reply backlog builds up, or the connection ends.
    fn drive(&mut self, registry: &Registry, slot: usize, now: Instant) {
        let Some(mut c) = self.conns.remove(&slot) else {
            return;
        };
        let mut buf = [0u8; READ_CHUNK];
        let open = loop {
            if sys::nonblock::flush(&mut c.sock, &mut c.out).is_err() {
                break false;
            }
            if !c.out.is_empty() {
                c.last_activity = now;
                if c.close_after_write || c.out.len() >= MAX_PENDING_OUT {
                    break true; // wait for WRITABLE
                }
            } else if c.close_after_write {
                break false;
            }
            match c.sock.read(&mut buf) {
                Ok(0) => {
                    c.parser.eof();
                    c.close_after_write = true;
                }
                Ok(n) => {
                    c.last_activity = now;
                    c.parser.feed(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break false,
            }
            let started = Instant::now();
            let served = serve(&mut c.parser, &mut self.plugin, &mut self.links);
            log_calls(slot, &served.calls, started.elapsed());
            // Saved before the reply can be written: once dockerd (or a
            // test) has the answer, the state file has the change.
            if served.changed {
                self.save();
            }
            c.out.extend_from_slice(&served.out);
            c.close_after_write |= served.close;
        };
        if !open {
            let _ = registry.deregister(c.sock.source());
            return;
        }
        c.request_deadline = if c.parser.is_idle() {
            None
        } else {
            Some(c.request_deadline.unwrap_or(now + REQUEST_DEADLINE))
        };
        self.conns.insert(slot, c);
    }

    /// Writes the state file: temporary file and rename, no flush to the
    /// disk, so the loop never waits for one. A state lost with the
    /// machine is rebuilt from dockerd at the next start.
    fn save(&self) {
        let text = self.plugin.state().to_yaml();
        let saved = self
            .state_path
            .parent()
            .map_or(Ok(()), |d| sys::fs::mkdir_p(d, 0o755))
            .and_then(|()| sys::fs::write_atomic(&self.state_path, text.as_bytes(), STATE_MODE));
        if let Err(e) = saved {
            error!(
                "docker plugin: cannot save {}: {e}",
                self.state_path.display()
            );
        }
    }
}

impl Drop for PluginServer {
    /// The socket (or spec file) goes with the process.
    fn drop(&mut self) {
        for f in &self.files {
            f.remove();
        }
    }
}

/// One DEBUG line per answered call: its path, the reply's status or
/// error, and the time from the request's last byte read to the reply
/// queued (for calls that arrived together, the time until the last of
/// them was answered). Lets an operator see which calls dockerd made,
/// when, and that none of the time went here.
fn log_calls(slot: usize, calls: &[Call], took: Duration) {
    if !log::log_enabled!(log::Level::Debug) {
        return;
    }
    for c in calls {
        let outcome = match &c.err {
            Some(e) => format!("{} Err {e:?}", c.status),
            None => c.status.to_string(),
        };
        debug!(
            "docker plugin: conn {slot}: {} -> {outcome} in {} us",
            c.path,
            took.as_micros()
        );
    }
}

/// The state file's contents; missing or unreadable: empty, to be rebuilt.
fn load_state(path: &Path) -> (State, bool) {
    match std::fs::read(path) {
        Ok(bytes) => match State::from_yaml(&bytes) {
            Ok(s) => (s, false),
            Err(e) => {
                warn!(
                    "{}: {e}; the docker plugin's state is rebuilt from dockerd",
                    path.display()
                );
                (State::default(), true)
            }
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => (State::default(), true),
        Err(e) => {
            warn!(
                "cannot read {}: {e}; the docker plugin's state is rebuilt from dockerd",
                path.display()
            );
            (State::default(), true)
        }
    }
}

/// Binds the Unix socket at `path` with mode 0600 from the start: bound
/// in a private directory next to it, then renamed into place, so nobody
/// else can connect in between. An existing socket is replaced only when
/// nobody answers on it.
fn bind_unix(path: &Path) -> Result<UnixListener, String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| format!("{}: no directory", path.display()))?;
    sys::fs::mkdir_p(dir, 0o755).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_socket() => {
            return Err(format!("{} exists and is not a socket", path.display()))
        }
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(format!(
                    "{} is in use by another process (another launcher with the same \
                     --docker-plugin-name?)",
                    path.display()
                ))
            }
            Err(_) => {
                info!("replacing the stale socket {}", path.display());
                std::fs::remove_file(path)
                    .map_err(|e| format!("cannot remove the stale {}: {e}", path.display()))?;
            }
        },
        Err(_) => {}
    }
    let private = dir.join(format!(".ciao-plugin-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(|e| format!("cannot create {}: {e}", private.display()))?;
    let tmp = private.join("s");
    let bound = std::os::unix::net::UnixListener::bind(&tmp)
        .and_then(|l| {
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
            std::fs::rename(&tmp, path)?;
            l.set_nonblocking(true)?;
            Ok(l)
        })
        .map_err(|e| format!("cannot listen on {}: {e}", path.display()));
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_dir(&private);
    bound.map(UnixListener::from_std)
}

/// The spec file dockerd finds a TCP plugin by.
fn write_spec(path: &Path, name: &str, addr: std::net::SocketAddr) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        sys::fs::mkdir_p(dir, 0o755)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut text = String::from("{\"Name\":");
    crate::http::json::write_string(&mut text, name);
    text.push_str(",\"Addr\":");
    crate::http::json::write_string(&mut text, &format!("http://{addr}"));
    text.push_str("}\n");
    sys::fs::write_atomic(path, text.as_bytes(), 0o644)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ciao-ps-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn unix_socket_is_private_and_live_ones_are_not_taken() {
        let d = tmpdir("bind");
        let path = d.join("sub/p.sock");
        let l = bind_unix(&path).unwrap();
        let m = std::fs::metadata(&path).unwrap();
        assert!(m.file_type().is_socket());
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        // Live: refused.
        let e = bind_unix(&path).err().unwrap();
        assert!(e.contains("in use by another process"), "{e}");
        // Stale: replaced.
        drop(l);
        let _l = bind_unix(&path).unwrap();
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
        // Not a socket: refused.
        let f = d.join("file");
        std::fs::write(&f, b"x").unwrap();
        assert!(bind_unix(&f).err().unwrap().contains("not a socket"));
        assert_eq!(std::fs::read(&f).unwrap(), b"x");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn spec_file() {
        let d = tmpdir("spec");
        let p = d.join("plugins/ciao.json");
        write_spec(&p, "ciao", "127.0.0.1:9999".parse().unwrap()).unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "{\"Name\":\"ciao\",\"Addr\":\"http://127.0.0.1:9999\"}\n"
        );
        let owned = Owned::new(&p).unwrap();
        owned.remove();
        assert!(!p.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn state_file_missing_or_bad_asks_for_a_rebuild() {
        let d = tmpdir("state");
        let p = d.join("docker-plugin.yaml");
        assert_eq!(load_state(&p), (State::default(), true));
        std::fs::write(&p, b"version: 7\n").unwrap();
        assert_eq!(load_state(&p), (State::default(), true));
        std::fs::write(&p, State::default().to_yaml()).unwrap();
        assert_eq!(load_state(&p), (State::default(), false));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
