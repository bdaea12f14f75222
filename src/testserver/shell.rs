//! The shell of `ciao-launcher-server`: one `mio` loop with the SSNTP
//! server, the REST listener and its HTTP connections, and the signalfd.
//!
//! Every socket is non-blocking, so a slow or stuck HTTP client never
//! stalls SSNTP traffic; idle HTTP connections are dropped after a
//! deadline, and the number of HTTP connections is capped.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant, SystemTime};

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::config::ServerConfig;
use super::rest::{self, RestResponse};
use super::table::{ClientTable, FrameOutcome};
use crate::http::{error_response, RequestParser, Response, CONTINUE};
use crate::ssntp::frame::{self, FrameTrace, GoTime, TraceNode};
use crate::ssntp::server::{Server, ServerEvent, ServerSettings};
use crate::ssntp::uuid::Uuid;
use crate::ssntp::{role, tls};
use crate::sys::signals::SignalFd;
use crate::sys::uuidstore;

const SIGNAL: Token = Token(0);
const REST: Token = Token(1);
/// HTTP connections use tokens `HTTP_BASE..SSNTP_BASE`.
const HTTP_BASE: usize = 16;
const SSNTP_BASE: usize = 1 << 24;
/// At most this many HTTP connections at once; more are refused.
const MAX_HTTP: usize = 256;
/// An HTTP connection that neither sends nor reads for this long is dropped.
const HTTP_IDLE: Duration = Duration::from_secs(60);
/// Size of one HTTP read.
const READ_CHUNK: usize = 64 << 10;

/// Why the server could not start or run.
#[derive(Debug)]
pub(crate) struct ShellError(pub String);

impl std::fmt::Display for ShellError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

struct HttpConn {
    sock: TcpStream,
    parser: RequestParser,
    out: Vec<u8>,
    close_after_write: bool,
    last_activity: Instant,
    interest: Interest,
}

/// The running server.
pub(crate) struct Shell {
    poll: Poll,
    signals: SignalFd,
    rest: TcpListener,
    ssntp: Server,
    table: ClientTable,
    http: HashMap<usize, HttpConn>,
    next_http: usize,
    trace: Option<(GoTime, u32)>,
    _uuid_lock: Option<crate::sys::lock::Flock>,
}

impl Shell {
    /// Binds both listeners; `config` is the CONNECTED payload.
    pub(crate) fn new(
        cfg: &ServerConfig,
        config: Vec<u8>,
        signals: SignalFd,
    ) -> Result<Shell, ShellError> {
        let ca = tls::load_ca(&cfg.ca_cert).map_err(|e| ShellError(e.to_string()))?;
        let id = tls::load_identity(&cfg.server_cert).map_err(|e| ShellError(e.to_string()))?;
        let own_role = id.info.roles;
        if own_role == 0 {
            return Err(ShellError(format!(
                "{} carries no ciao role (a server needs the scheduler role)",
                cfg.server_cert.display()
            )));
        }
        let tls_config = tls::server_config(&ca, &id).map_err(|e| ShellError(e.to_string()))?;
        let (uuid, lock) = uuidstore::node_uuid(&cfg.data_root, own_role);
        let poll = signals.new_poll(SIGNAL).map_err(ShellError)?;
        let ssntp_addr = super::config::resolve_listen("--ssntp-listen", &cfg.ssntp_listen)
            .map_err(|e| ShellError(e.to_string()))?;
        let ssntp = Server::bind(
            ServerSettings {
                listen: ssntp_addr,
                tls: tls_config,
                uuid,
                role: own_role,
                config,
                max_message: 16 << 20,
                connect_timeout: Duration::from_secs(30),
            },
            poll.registry(),
            SSNTP_BASE,
        )
        .map_err(|e| {
            ShellError(format!(
                "Unable to start server listen tcp {ssntp_addr}: {e}"
            ))
        })?;
        let rest_addr = super::config::resolve_listen("-server", &cfg.rest_listen)
            .map_err(|e| ShellError(e.to_string()))?;
        let mut rest = TcpListener::bind(rest_addr).map_err(|e| {
            ShellError(format!(
                "Unable to create listener: listen tcp {rest_addr}: {e}"
            ))
        })?;
        poll.registry()
            .register(&mut rest, REST, Interest::READABLE)
            .map_err(|e| ShellError(format!("cannot watch the REST listener: {e}")))?;
        info!(
            "ciao-launcher-server {uuid} ({}): SSNTP on {}, REST on {}",
            role::name(own_role),
            ssntp
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            rest.local_addr().map(|a| a.to_string()).unwrap_or_default()
        );
        Ok(Shell {
            poll,
            signals,
            rest,
            ssntp,
            table: ClientTable::new(),
            http: HashMap::new(),
            next_http: 0,
            trace: cfg.trace.then(|| (GoTime::now(), own_role)),
            _uuid_lock: lock,
        })
    }

    /// Serves until a shutdown signal.
    pub(crate) fn run(mut self) -> Result<(), ShellError> {
        let mut events = Events::with_capacity(256);
        let mut ssntp_events = Vec::new();
        loop {
            let now = Instant::now();
            let timeout = [self.ssntp.deadline(), self.http_deadline()]
                .into_iter()
                .flatten()
                .min()
                .map(|d| d.saturating_duration_since(now));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(ShellError(format!("poll failed: {e}")));
                }
            }
            let now = Instant::now();
            for ev in events.iter() {
                match ev.token() {
                    SIGNAL => {
                        if self.signal_pending() {
                            info!("shutting down");
                            self.ssntp.shutdown(self.poll.registry());
                            return Ok(());
                        }
                    }
                    REST => self.accept_http(now),
                    t if t.0 >= SSNTP_BASE => {
                        self.ssntp
                            .handle(self.poll.registry(), t, now, &mut ssntp_events)
                    }
                    t => self.drive_http(t.0 - HTTP_BASE, now),
                }
                // Apply SSNTP events before the next HTTP request is served.
                for e in ssntp_events.drain(..) {
                    self.on_ssntp(e);
                }
            }
            self.ssntp
                .tick(self.poll.registry(), now, &mut ssntp_events);
            for e in ssntp_events.drain(..) {
                self.on_ssntp(e);
            }
            self.expire_http(now);
        }
    }

    fn signal_pending(&self) -> bool {
        let mut got = false;
        while let Ok(Some(_)) = self.signals.read() {
            got = true;
        }
        got
    }

    fn on_ssntp(&mut self, e: ServerEvent) {
        match e {
            ServerEvent::Connected { uuid, role } => {
                if let Err(ignored) = self.table.on_connect(&uuid.to_string(), role) {
                    eprintln!("{ignored}");
                }
            }
            ServerEvent::Disconnected { uuid, .. } => {
                self.table.on_disconnect(&uuid.to_string());
            }
            ServerEvent::Frame { uuid, frame } => {
                match self
                    .table
                    .on_frame(&uuid.to_string(), frame.op, &frame.payload)
                {
                    FrameOutcome::Recorded => {}
                    FrameOutcome::QueuedNull(why) | FrameOutcome::Ignored(why) => {
                        debug!("{uuid}: {why}")
                    }
                }
            }
        }
    }

    fn accept_http(&mut self, now: Instant) {
        loop {
            match self.rest.accept() {
                Ok((mut sock, addr)) => {
                    if self.http.len() >= MAX_HTTP {
                        warn!("REST: too many connections; refusing {addr}");
                        let _ = sock.write(&error_response_text(503, "too many connections"));
                        continue;
                    }
                    let slot = self.next_http;
                    self.next_http = (self.next_http + 1) % (SSNTP_BASE - HTTP_BASE);
                    let token = Token(HTTP_BASE + slot);
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut sock, token, Interest::READABLE)
                    {
                        warn!("REST: cannot register {addr}: {e}");
                        continue;
                    }
                    self.http.insert(
                        slot,
                        HttpConn {
                            sock,
                            parser: RequestParser::new(),
                            out: Vec::new(),
                            close_after_write: false,
                            last_activity: now,
                            interest: Interest::READABLE,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    warn!("REST: accept failed: {e}");
                    return;
                }
            }
        }
    }

    fn drive_http(&mut self, slot: usize, now: Instant) {
        let Some(mut c) = self.http.remove(&slot) else {
            return;
        };
        let mut eof = false;
        if !c.close_after_write {
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                match c.sock.read(&mut buf) {
                    Ok(0) => {
                        eof = true;
                        c.parser.eof();
                        break;
                    }
                    Ok(n) => {
                        c.last_activity = now;
                        c.parser.feed(&buf[..n]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        eof = true;
                        break;
                    }
                }
                // Serve as we go, so a pipelining client cannot make us buffer without bound.
                self.serve_requests(&mut c);
                if c.close_after_write {
                    break;
                }
            }
            self.serve_requests(&mut c);
        }
        match flush(&mut c) {
            Ok(()) => {}
            Err(_) => {
                let _ = self.poll.registry().deregister(&mut c.sock);
                return;
            }
        }
        if !c.out.is_empty() {
            c.last_activity = now;
        }
        let done = c.out.is_empty() && (c.close_after_write || eof);
        if done {
            let _ = self.poll.registry().deregister(&mut c.sock);
            return;
        }
        let want = if c.out.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        if want != c.interest {
            c.interest = want;
            let _ = self
                .poll
                .registry()
                .reregister(&mut c.sock, Token(HTTP_BASE + slot), want);
        }
        self.http.insert(slot, c);
    }

    fn serve_requests(&mut self, c: &mut HttpConn) {
        if c.parser.take_continue() {
            c.out.extend_from_slice(CONTINUE);
        }
        while !c.close_after_write {
            match c.parser.next() {
                Ok(Some(req)) => {
                    let keep = req.keep_alive();
                    let outcome = rest::handle(
                        &mut self.table,
                        &req.method,
                        &req.path,
                        &req.query,
                        &req.body,
                    );
                    let mut resp = outcome.response;
                    if let Some(cmd) = outcome.send {
                        if let Err(e) = self.send_command(&cmd.client, cmd.operand, cmd.payload) {
                            resp = RestResponse::send_failed(&e);
                        }
                    }
                    debug!("REST {} {} -> {}", req.method, req.target, resp.status);
                    c.out
                        .extend_from_slice(&render(&resp, keep, req.method == "HEAD"));
                    if !keep {
                        c.close_after_write = true;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    debug!("REST: bad request: {e}");
                    c.out.extend_from_slice(&error_response(&e));
                    c.close_after_write = true;
                }
            }
        }
    }

    fn send_command(
        &mut self,
        client: &str,
        operand: frame::Command,
        payload: Vec<u8>,
    ) -> Result<(), String> {
        let uuid = Uuid::parse(client).map_err(|e| e.to_string())?;
        let mut f = self.ssntp.frame(operand, payload);
        if let Some((start, role)) = self.trace {
            f.major |= frame::TRACE_BIT;
            f.trace = Some(FrameTrace {
                label: Vec::new(),
                start: Some(start),
                end: None,
                path: vec![TraceNode {
                    uuid: self.ssntp.uuid().0,
                    role,
                    tx: Some(GoTime::now()),
                    rx: None,
                }],
            });
        }
        self.ssntp
            .send(self.poll.registry(), &uuid, &f)
            .map_err(|e| e.to_string())
    }

    fn http_deadline(&self) -> Option<Instant> {
        self.http
            .values()
            .map(|c| c.last_activity + HTTP_IDLE)
            .min()
    }

    fn expire_http(&mut self, now: Instant) {
        let stale: Vec<usize> = self
            .http
            .iter()
            .filter(|(_, c)| now >= c.last_activity + HTTP_IDLE)
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            if let Some(mut c) = self.http.remove(&k) {
                debug!("REST: dropping an idle connection");
                let _ = self.poll.registry().deregister(&mut c.sock);
            }
        }
    }
}

fn flush(c: &mut HttpConn) -> io::Result<()> {
    while !c.out.is_empty() {
        match c.sock.write(&c.out) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// An HTTP response for a REST outcome, with the headers Go's server sends.
fn render(r: &RestResponse, keep_alive: bool, head: bool) -> Vec<u8> {
    let mut resp = Response::new(r.status).with_body(r.body.clone());
    if let Some(ct) = r.content_type {
        resp = resp.with_header("Content-Type", ct);
    }
    if r.nosniff {
        resp = resp.with_header("X-Content-Type-Options", "nosniff");
    }
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    resp = resp.with_header("Date", &crate::http::http_date(now));
    resp.to_bytes(keep_alive, head)
}

fn error_response_text(status: u16, text: &str) -> Vec<u8> {
    render(&RestResponse::error(status, text), false, false)
}

/// Entry point of the `ciao-launcher-server` binary; returns the exit status.
pub fn main(args: Vec<String>) -> i32 {
    let cfg = match super::config::parse_args(&args) {
        super::config::ParseOutcome::Run(c) => c,
        super::config::ParseOutcome::Exit {
            code,
            stdout,
            stderr,
        } => {
            print!("{stdout}");
            eprint!("{stderr}");
            return code;
        }
    };
    let signals = match SignalFd::shutdown_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ciao-launcher-server: cannot set up signal handling: {e}");
            return 1;
        }
    };
    if let Err(e) = setup_logging(&cfg) {
        eprintln!("ciao-launcher-server: {e}");
        return 1;
    }
    for f in &cfg.ignored_flags {
        warn!("flag {f} is accepted for compatibility and has no effect");
    }
    let config = match super::cluster::cluster_configuration(&cfg) {
        Ok((c, warnings)) => {
            for w in warnings {
                warn!("{w}");
            }
            c
        }
        Err(e) => {
            eprintln!("ciao-launcher-server: {e}");
            return 1;
        }
    };
    let shell = match Shell::new(&cfg, config, signals) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    match shell.run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ciao-launcher-server: {e}");
            1
        }
    }
}

/// stderr by default (warnings only, as the original prints little);
/// `-v N` raises the level; `-log_dir` adds a file unless `-logtostderr`.
fn setup_logging(cfg: &ServerConfig) -> Result<(), String> {
    use simplelog::LevelFilter;
    let level = match cfg.verbosity {
        0 => LevelFilter::Warn,
        1 => LevelFilter::Info,
        2 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    };
    let file = match (&cfg.log_dir, cfg.logtostderr) {
        (Some(dir), false) => Some(dir.join("ciao-launcher-server.log")),
        _ => None,
    };
    let stderr = if cfg.alsologtostderr {
        level
    } else {
        LevelFilter::Error
    };
    crate::logging::install(crate::logging::Sinks {
        level,
        file,
        stderr,
        quiet: &["rustls"],
    })
}
