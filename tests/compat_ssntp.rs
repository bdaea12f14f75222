//! SSNTP-level differences from the original (docs/compatibility.md),
//! on the wire: the launcher's client puts deadlines on every handshake
//! step and never gives up, and our server keeps a session that replaced
//! an older one with the same UUID.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ciao::ssntp::frame::{self, Command, Decoded, Decoder, Encoder, ErrorCode, Frame, Op, Status};
use ciao::ssntp::role;
use ciao::ssntp::server::ServerEvent;
use ciao::ssntp::tls;
use ciao::ssntp::uuid::Uuid;
use ciao_test_support::certgen::{self, CertSet, KeyKind};
use ciao_test_support::proc::{Proc, TempDir};
use ciao_test_support::rawtls::{Outcome, RawClient};
use ciao_test_support::ssntp_server::{Options, TestServer};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");
const WAIT: Duration = Duration::from_secs(20);

fn server_tls(certs: &CertSet) -> Arc<rustls::ServerConfig> {
    let ca = tls::load_ca(&certs.ca_pem_path).unwrap();
    let id = tls::load_identity(&certs.server_pem_path).unwrap();
    tls::server_config(&ca, &id).unwrap()
}

fn launcher(certs: &CertSet, tmp: &TempDir, addr: SocketAddr, extra: &[&str]) -> Proc {
    let mut args = certs.launcher_args(&tmp.path().join("data"), addr);
    args.extend(["-simulation".to_string(), "-logtostderr".to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    Proc::start(LAUNCHER, &args, tmp.path(), "launcher")
}

/// Accepts one connection within `within`.
fn accept(l: &TcpListener, within: Duration, what: &str) -> TcpStream {
    l.set_nonblocking(true).unwrap();
    let end = Instant::now() + within;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(WAIT)).unwrap();
                return s;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < end, "timed out waiting for {what}");
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

type Tls = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

/// Completes the TLS handshake as the server and reads the CONNECT.
fn tls_and_connect(sock: TcpStream, cfg: Arc<rustls::ServerConfig>) -> (Tls, Decoded) {
    let conn = rustls::ServerConnection::new(cfg).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock).unwrap();
    }
    let mut dec = Decoder::new(1 << 20);
    loop {
        if let Some(v) = dec.next().unwrap() {
            return (s, v);
        }
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).expect("CONNECT");
        assert!(n > 0, "EOF before CONNECT");
        dec.feed(&buf[..n]);
    }
}

/// Answers CONNECT with an ERROR frame as a Go server does (fresh encoder,
/// zero origin), then closes.
fn refuse(mut s: Tls, operand: ErrorCode) {
    let mut out = Vec::new();
    Encoder::new().frame(&Frame::new(operand, [0; 16], Vec::new()), &mut out);
    s.write_all(&out).unwrap();
    s.flush().unwrap();
    s.conn.send_close_notify();
    let _ = s.flush();
}

fn expect_connected(server: &TestServer, within: Duration) -> Uuid {
    loop {
        if let ServerEvent::Connected { uuid, .. } =
            server.expect(within, "the launcher to connect")
        {
            return uuid;
        }
    }
}

/// S6.2.1 in docs/compatibility.md: the original had no
/// deadline on the TCP connect, the TLS handshake or the wait for
/// CONNECTED. Ours gives up each attempt after `--connect-timeout` and
/// dials again, so a server that accepts and then says nothing cannot hang
/// the launcher.
#[test]
fn every_handshake_step_has_a_deadline() {
    let tmp = TempDir::new("deadline");
    let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let l = launcher(&certs, &tmp, addr, &["--connect-timeout=1"]);

    // 1. TCP accepted, no TLS ever: the attempt ends after 1 s.
    let silent_tcp = accept(&listener, WAIT, "the first connection");
    let t = Instant::now();
    // 2. TLS and CONNECT, but no CONNECTED: again 1 s.
    let second = accept(&listener, WAIT, "a new attempt after the TLS deadline");
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    let (silent_tls, connect) = tls_and_connect(second, server_tls(&certs));
    let c = connect.into_connect();
    assert_eq!(c.op, Op::Command(Command::Connect));
    let t = Instant::now();
    drop(listener);
    // 3. A good server on the same port is found on the next round.
    let server = TestServer::start(
        server_tls(&certs),
        Options {
            listen: addr,
            ..Options::default()
        },
    );
    expect_connected(&server, Duration::from_secs(40));
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert!(l.output().contains("handshake timed out"), "{}", l.output());
    drop((silent_tcp, silent_tls));
}

/// S6.2.2, S6.2.3 and S14.9 in docs/compatibility.md: the Go client abandons every dial after a refused
/// handshake (a bug for ConnectionFailure, by design for
/// ConnectionAborted), leaving the launcher idle for ever. Ours retries
/// after ConnectionFailure with the normal back-off, and after
/// ConnectionAborted every 40 s, logging an error that names the cause.
#[test]
fn refused_handshakes_are_retried_never_abandoned() {
    let tmp = TempDir::new("refused");
    let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut l = launcher(&certs, &tmp, addr, &[]);

    let (s, _) = tls_and_connect(accept(&listener, WAIT, "CONNECT"), server_tls(&certs));
    refuse(s, ErrorCode::ConnectionFailure);
    // Back-off of the first round: at most 5 s.
    let (s, _) = tls_and_connect(
        accept(&listener, WAIT, "a retry after ConnectionFailure"),
        server_tls(&certs),
    );
    refuse(s, ErrorCode::ConnectionAborted);
    let t = Instant::now();
    drop(listener);
    let server = TestServer::start(
        server_tls(&certs),
        Options {
            listen: addr,
            ..Options::default()
        },
    );
    expect_connected(&server, Duration::from_secs(80));
    assert!(
        t.elapsed() >= Duration::from_secs(39),
        "after ConnectionAborted the retry waits 40 s, not {:?}",
        t.elapsed()
    );
    assert!(l.child.try_wait().unwrap().is_none(), "the launcher exited");
    let log = l.output();
    assert!(log.contains("ConnectionAborted"), "{log}");
    assert!(log.contains("retrying slowly"), "{log}");
}

/// S6.2.5 and S10.2 in docs/compatibility.md (malformed gob after the
/// handshake): the Go client reconnects without closing the broken connection (a leak).
/// Ours closes it first, then dials again at once with the same UUID.
#[test]
fn a_malformed_frame_closes_the_connection_before_reconnecting() {
    let tmp = TempDir::new("malformed");
    let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let l = launcher(&certs, &tmp, addr, &[]);

    let (mut s, connect) = tls_and_connect(accept(&listener, WAIT, "CONNECT"), server_tls(&certs));
    let client = connect.into_connect();
    let mut out = Vec::new();
    Encoder::new().connected(
        &frame::ConnectedFrame {
            major: 0,
            minor: 1,
            op: Op::Status(Status::Connected),
            role: role::SCHEDULER,
            source: Uuid::random().0.to_vec(),
            destination: client.source.clone(),
            payload: b"configure:\n  launcher:\n    disk_limit: false\n".to_vec(),
        },
        &mut out,
    );
    s.write_all(&out).unwrap();
    s.flush().unwrap();
    // Not gob: a message that claims a type definition for a reserved id.
    s.write_all(b"\x05garbage").unwrap();
    s.flush().unwrap();
    // The launcher closes the broken connection...
    let mut buf = [0u8; 4096];
    let end = Instant::now() + WAIT;
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => assert!(Instant::now() < end, "the old connection stays open"),
        }
    }
    // ...and dials again with the same UUID.
    let (_s2, again) = tls_and_connect(
        accept(&listener, WAIT, "the reconnection"),
        server_tls(&certs),
    );
    assert_eq!(again.into_connect().source, client.source);
    assert!(
        l.output().contains("malformed SSNTP data"),
        "{}",
        l.output()
    );
}

/// S6.3.2 in docs/compatibility.md: the Go server removes a session by UUID when a
/// connection ends, even if a newer connection with the same UUID replaced
/// it, which makes the live client unreachable. Ours closes the older
/// session when a newer one with its UUID connects (Disconnected of the old
/// one first, then Connected), and a connection only removes its own
/// session.
#[test]
fn a_replaced_session_survives_the_old_connection_closing() {
    let tmp = TempDir::new("replaced");
    let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
    let server = TestServer::start(server_tls(&certs), Options::default());
    let uuid = Uuid::random();
    let dial = || {
        let mut c =
            RawClient::connect(server.addr, &certs.ca_pem_path, &certs.client_pem_path).unwrap();
        c.send_connect(uuid, role::AGENT).unwrap();
        assert!(matches!(c.next(WAIT), Outcome::Value(_)));
        c
    };
    let mut old = dial();
    assert_eq!(expect_connected(&server, WAIT), uuid);
    let mut new = dial();
    let old_conn = match server.expect(WAIT, "the older session's end") {
        ServerEvent::Disconnected { uuid: u, conn, .. } => {
            assert_eq!(u, uuid);
            conn
        }
        other => panic!("{other:?}"),
    };
    match server.expect(WAIT, "the newer session") {
        ServerEvent::Connected { uuid: u, conn, .. } => {
            assert_eq!(u, uuid);
            assert_ne!(conn, old_conn);
        }
        other => panic!("{other:?}"),
    }
    match old.next(WAIT) {
        Outcome::Closed => {}
        Outcome::Tls(e) => assert_ne!(e, "timeout", "the older session was not closed"),
        Outcome::Value(v) => panic!("the older session got {v:?}"),
    }
    drop(old);
    server.send(uuid, Command::Start, b"start: {}\n".to_vec());
    match new.next(WAIT) {
        Outcome::Value(v) => {
            let f = v.into_frame();
            assert_eq!(f.op, Op::Command(Command::Start));
            assert_eq!(f.payload, b"start: {}\n");
        }
        other => panic!("the newer session lost its frame: {other:?}"),
    }
}
