//! An SSNTP server built on our library, run on its own thread with its
//! own `mio` loop, for end-to-end tests: it records what clients send and
//! sends what the test asks.

use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ciao::payloads::{ErrorReport, Stat};
use ciao::ssntp::frame::{Command, ErrorCode, Frame, Op};
use ciao::ssntp::server::{Server, ServerEvent, ServerSettings};
use ciao::ssntp::uuid::Uuid;
use mio::{Events, Poll, Token, Waker};

const WAKER: Token = Token(0);
const BASE: usize = 1;

enum Cmd {
    Send(Uuid, Op, Vec<u8>),
    SendFrame(Uuid, Box<Frame>),
    Stop,
}

/// A running test server.
pub struct TestServer {
    pub addr: SocketAddr,
    pub uuid: Uuid,
    pub events: Receiver<ServerEvent>,
    cmds: Sender<Cmd>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

/// Options for [`TestServer::start`].
pub struct Options {
    pub listen: SocketAddr,
    pub config: Vec<u8>,
    pub connect_timeout: Duration,
    pub max_message: usize,
    pub role: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            listen: "127.0.0.1:0".parse().unwrap(),
            config: b"configure:\n  launcher:\n    disk_limit: false\n    mem_limit: false\n"
                .to_vec(),
            connect_timeout: Duration::from_secs(30),
            max_message: 16 << 20,
            role: ciao::ssntp::role::SCHEDULER,
        }
    }
}

impl TestServer {
    pub fn start(tls: Arc<rustls::ServerConfig>, opts: Options) -> TestServer {
        let poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).unwrap());
        let uuid = Uuid::random();
        let mut server = Server::bind(
            ServerSettings {
                listen: opts.listen,
                tls,
                uuid,
                role: opts.role,
                config: opts.config,
                max_message: opts.max_message,
                connect_timeout: opts.connect_timeout,
            },
            poll.registry(),
            BASE,
        )
        .expect("bind test server");
        let addr = server.local_addr().unwrap();
        let (ev_tx, ev_rx) = mpsc::channel();
        let (cmd_tx, cmd_rx) = mpsc::channel::<Cmd>();
        let thread = std::thread::spawn(move || {
            let mut poll = poll;
            let mut events = Events::with_capacity(64);
            let mut out = Vec::new();
            loop {
                let timeout = server
                    .deadline()
                    .map(|d| d.saturating_duration_since(Instant::now()));
                poll.poll(&mut events, timeout).unwrap();
                let now = Instant::now();
                for ev in events.iter() {
                    if ev.token() != WAKER && server.owns(ev.token()) {
                        server.handle(poll.registry(), ev.token(), now, &mut out);
                    }
                }
                server.tick(poll.registry(), now, &mut out);
                while let Ok(cmd) = cmd_rx.try_recv() {
                    match cmd {
                        Cmd::Send(u, op, p) => {
                            let f = server.frame(op, p);
                            if let Err(e) = server.send(poll.registry(), &u, &f) {
                                eprintln!("test server: send to {u} failed: {e}");
                            }
                        }
                        Cmd::SendFrame(u, f) => {
                            if let Err(e) = server.send(poll.registry(), &u, &f) {
                                eprintln!("test server: send to {u} failed: {e}");
                            }
                        }
                        Cmd::Stop => {
                            server.shutdown(poll.registry());
                            return;
                        }
                    }
                }
                for e in out.drain(..) {
                    if ev_tx.send(e).is_err() {
                        return;
                    }
                }
            }
        });
        TestServer {
            addr,
            uuid,
            events: ev_rx,
            cmds: cmd_tx,
            waker,
            thread: Some(thread),
        }
    }

    /// Sends a frame to a client.
    pub fn send(&self, to: Uuid, op: impl Into<Op>, payload: Vec<u8>) {
        let _ = self.cmds.send(Cmd::Send(to, op.into(), payload));
        let _ = self.waker.wake();
    }

    /// Sends a frame built by the test (e.g. a traced one).
    pub fn send_frame(&self, to: Uuid, f: Frame) {
        let _ = self.cmds.send(Cmd::SendFrame(to, Box::new(f)));
        let _ = self.waker.wake();
    }

    /// The next event within `within`, or a panic naming `what`.
    pub fn expect(&self, within: Duration, what: &str) -> ServerEvent {
        self.events
            .recv_timeout(within)
            .unwrap_or_else(|_| panic!("timed out after {within:?} waiting for {what}"))
    }

    /// The next frame from anyone matching `pred`, skipping others.
    pub fn expect_frame(
        &self,
        within: Duration,
        what: &str,
        pred: impl Fn(&Frame) -> bool,
    ) -> (Uuid, Frame) {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(ServerEvent::Frame { uuid, frame }) if pred(&frame) => return (uuid, frame),
                Ok(_) => {}
                Err(_) => panic!("timed out after {within:?} waiting for {what}"),
            }
        }
    }

    /// The next STATS satisfying `pred`, skipping other frames and
    /// earlier STATS, within `within` in all.
    pub fn expect_stats(&self, within: Duration, what: &str, pred: impl Fn(&Stat) -> bool) -> Stat {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let (_, f) = self.expect_frame(left, what, |f| f.op == Op::Command(Command::Stats));
            let stat = Stat::parse(&f.payload).unwrap();
            if pred(&stat) {
                return stat;
            }
        }
    }

    /// The next ERROR frame from anyone: its operand and its report.
    pub fn expect_error(&self, within: Duration, what: &str) -> (ErrorCode, ErrorReport) {
        let (_, f) = self.expect_frame(within, what, |f| matches!(f.op, Op::Error(_)));
        let report = ErrorReport::parse(&f.payload)
            .unwrap_or_else(|e| panic!("{what}: undecodable ERROR payload: {e}"));
        let Op::Error(code) = f.op else {
            unreachable!("{what}: not an ERROR frame")
        };
        (code, report)
    }

    /// Skips events until a client disconnects.
    pub fn expect_disconnect(&self, within: Duration) {
        while !matches!(
            self.expect(within, "the disconnect"),
            ServerEvent::Disconnected { .. }
        ) {}
    }

    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.cmds.send(Cmd::Stop);
        let _ = self.waker.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
