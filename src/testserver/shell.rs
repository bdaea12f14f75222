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
use super::table::{ClientTable, Disconnect, FrameOutcome};
use crate::http::{error_response, RequestLimits, RequestParser, Response, CONTINUE};
use crate::ssntp::frame::{self, FrameTrace, GoTime, TraceNode};
use crate::ssntp::server::{Server, ServerEvent, ServerSettings};
use crate::ssntp::uuid::Uuid;
use crate::ssntp::{role, tls};
use crate::sys::signals::SignalFd;
use crate::sys::{nonblock, uuidstore};

const SIGNAL: Token = Token(0);
const REST: Token = Token(1);
/// HTTP connections use tokens `HTTP_BASE..SSNTP_BASE`.
const HTTP_BASE: usize = 16;
const SSNTP_BASE: usize = 1 << 24;
/// At most this many HTTP connections at once; more are refused.
const MAX_HTTP: usize = 256;
/// An HTTP connection that neither sends nor reads for this long is dropped.
const HTTP_IDLE: Duration = Duration::from_secs(60);
/// Refused HTTP connections are logged at most once per this interval,
/// with how many there were.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Largest SSNTP message, both ways: the launcher's default
/// `--max-message-size` (16 MiB). A frame the launcher would refuse makes
/// it drop the connection.
const MAX_FRAME: usize = 16 << 20;
/// Room the frame around a forwarded POST body takes (gob type definitions,
/// header fields, origin, an optional trace): far more than it needs, so a
/// body that passes [`MAX_BODY`] always makes a frame within [`MAX_FRAME`].
const FRAME_RESERVE: usize = 4 << 10;
/// Largest REST request body; a larger one is refused with 413.
const MAX_BODY: usize = MAX_FRAME - FRAME_RESERVE;
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
    /// When the request head being received must be complete: from accept
    /// for the first request, from its first byte for later ones; `None`
    /// while idle between requests or receiving a body.
    head_deadline: Option<Instant>,
    /// Whether a request was served (later ones start at their first byte).
    served: bool,
    interest: Interest,
}

/// Counts refused HTTP connections and says when to log them: the first
/// refusal at once, later ones as one line per interval with their count.
#[derive(Debug, Default)]
struct Refusals {
    /// Refusals not logged yet.
    pending: u64,
    /// When the last line was logged.
    logged_at: Option<Instant>,
}

impl Refusals {
    /// One more refusal; returns the count to log now, if it is time.
    fn refused(&mut self, now: Instant) -> Option<u64> {
        self.pending += 1;
        self.due(now)
    }

    /// The count to log if refusals are pending and the interval passed.
    fn due(&mut self, now: Instant) -> Option<u64> {
        let time = self
            .logged_at
            .is_none_or(|t| now >= t + REFUSAL_LOG_INTERVAL);
        (self.pending > 0 && time).then(|| {
            self.logged_at = Some(now);
            std::mem::take(&mut self.pending)
        })
    }

    /// When pending refusals must be logged.
    fn deadline(&self) -> Option<Instant> {
        (self.pending > 0)
            .then_some(self.logged_at)
            .flatten()
            .map(|t| t + REFUSAL_LOG_INTERVAL)
    }
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
    head_timeout: Duration,
    refusals: Refusals,
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
                max_message: MAX_FRAME,
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
            head_timeout: cfg.http_header_timeout,
            refusals: Refusals::default(),
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
            let timeout = [
                self.ssntp.deadline(),
                self.http_deadline(),
                self.refusals.deadline(),
            ]
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
            ServerEvent::Connected { uuid, role, conn } => {
                if let Err(ignored) = self.table.on_connect(&uuid.to_string(), role, conn) {
                    eprintln!("{ignored}");
                }
            }
            ServerEvent::Disconnected { uuid, conn, .. } => {
                match self.table.on_disconnect(&uuid.to_string(), conn) {
                    Disconnect::Removed {
                        held,
                        dropped,
                        dropped_of,
                    } => {
                        if held > 0 {
                            info!("{uuid}: {held} undrained event(s) held for its return");
                        }
                        if let Some(other) = dropped_of {
                            warn!("{dropped} undrained event(s) of {other}, gone longest, dropped");
                        }
                    }
                    Disconnect::NotCurrent => {
                        debug!("{uuid}: an older session closed; the newer one keeps the entry")
                    }
                }
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
                        if let Some(n) = self.refusals.refused(now) {
                            log_refusals(n, Some(addr));
                        }
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
                            parser: RequestParser::with_limits(RequestLimits {
                                max_body: MAX_BODY,
                                ..RequestLimits::default()
                            }),
                            out: Vec::new(),
                            close_after_write: false,
                            last_activity: now,
                            head_deadline: Some(now + self.head_timeout),
                            served: false,
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
        match nonblock::flush(&mut c.sock, &mut c.out) {
            Ok(()) => {}
            Err(_) => {
                let _ = self.poll.registry().deregister(&mut c.sock);
                return;
            }
        }
        if !c.out.is_empty() {
            c.last_activity = now;
        }
        if !c.parser.receiving_head() || (c.served && c.parser.is_idle()) {
            c.head_deadline = None;
        } else if c.head_deadline.is_none() {
            c.head_deadline = Some(now + self.head_timeout);
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
                    c.served = true;
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
        self.http.values().map(HttpConn::deadline).min()
    }

    /// Drops connections idle too long or slow to send a request head (a
    /// client trickling header lines would otherwise hold its slot for
    /// ever, the idle timer restarting with every line), and logs pending
    /// refusals.
    fn expire_http(&mut self, now: Instant) {
        let stale: Vec<usize> = self
            .http
            .iter()
            .filter(|(_, c)| now >= c.deadline())
            .map(|(k, _)| *k)
            .collect();
        for k in stale {
            if let Some(mut c) = self.http.remove(&k) {
                if c.head_deadline.is_some_and(|d| now >= d) {
                    debug!("REST: dropping a connection slow to send its request head");
                } else {
                    debug!("REST: dropping an idle connection");
                }
                let _ = self.poll.registry().deregister(&mut c.sock);
            }
        }
        if let Some(n) = self.refusals.due(now) {
            log_refusals(n, None);
        }
    }
}

impl HttpConn {
    /// When the connection is dropped unless something happens.
    fn deadline(&self) -> Instant {
        let idle = self.last_activity + HTTP_IDLE;
        self.head_deadline.map_or(idle, |h| h.min(idle))
    }
}

/// The WARN line for refused HTTP connections (rate-limited by [`Refusals`]).
fn log_refusals(n: u64, latest: Option<std::net::SocketAddr>) {
    match latest {
        Some(addr) if n == 1 => {
            warn!("REST: too many connections ({MAX_HTTP}); refusing {addr}")
        }
        _ => warn!(
            "REST: too many connections ({MAX_HTTP}); refused {n} more in the last {} s",
            REFUSAL_LOG_INTERVAL.as_secs()
        ),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssntp::frame::{Command, Encoder, Frame};

    // Issue 14, item 7: the frame around the largest accepted body, with a
    // trace and the type definitions of a fresh stream, fits the launcher's
    // default message limit.
    #[test]
    fn a_body_at_the_limit_makes_a_frame_within_the_limit() {
        let mut f = Frame::new(Command::Start, [0xff; 16], vec![b'x'; MAX_BODY]);
        f.major |= frame::TRACE_BIT;
        f.trace = Some(FrameTrace {
            label: Vec::new(),
            start: Some(GoTime::now()),
            end: None,
            path: vec![TraceNode {
                uuid: [0xff; 16],
                role: u32::MAX,
                tx: Some(GoTime::now()),
                rx: None,
            }],
        });
        let mut out = Vec::new();
        Encoder::new().frame(&f, &mut out);
        assert!(out.len() <= MAX_FRAME, "{} > {MAX_FRAME}", out.len());
        assert!(out.len() > MAX_FRAME - FRAME_RESERVE);
    }

    // Issue 14, item 8: one line at the first refusal, then one per
    // interval with the count.
    #[test]
    fn refusals_are_logged_once_per_interval() {
        let t0 = Instant::now();
        let mut r = Refusals::default();
        assert_eq!(r.deadline(), None);
        assert_eq!(r.refused(t0), Some(1));
        assert_eq!(r.deadline(), None);
        for i in 1..=300 {
            assert_eq!(r.refused(t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(r.deadline(), Some(t0 + REFUSAL_LOG_INTERVAL));
        assert_eq!(r.due(t0 + Duration::from_secs(5)), None);
        assert_eq!(r.due(t0 + REFUSAL_LOG_INTERVAL), Some(300));
        assert_eq!(r.deadline(), None);
        assert_eq!(r.due(t0 + REFUSAL_LOG_INTERVAL * 3), None);
        assert_eq!(r.refused(t0 + REFUSAL_LOG_INTERVAL * 3), Some(1));
    }
}
