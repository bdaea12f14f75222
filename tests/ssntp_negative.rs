//! Bad peers, checked on the wire: each ends in the documented error (an
//! SSNTP ERROR frame or a TLS alert), and afterwards a good peer completes a
//! handshake with the same server (or the same launcher process).

use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ciao::ssntp::frame::{Command, Decoded, ErrorCode, Op, Status};
use ciao::ssntp::role;
use ciao::ssntp::server::ServerEvent;
use ciao::ssntp::tls;
use ciao::ssntp::uuid::Uuid;
use ciao_test_support::certgen::{self, roles, CertSet, CertSpec, KeyKind};
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

struct Fixture {
    tmp: TempDir,
    certs: CertSet,
    server: TestServer,
}

fn fixture(tag: &str) -> Fixture {
    let tmp = TempDir::new(tag);
    let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
    let server = TestServer::start(
        server_tls(&certs),
        Options {
            connect_timeout: Duration::from_secs(1),
            max_message: 64 << 10,
            ..Options::default()
        },
    );
    Fixture { tmp, certs, server }
}

/// A good client completes CONNECT/CONNECTED with the same server.
fn good_peer_still_served(fx: &Fixture) {
    let mut c = RawClient::connect(
        fx.server.addr,
        &fx.certs.ca_pem_path,
        &fx.certs.client_pem_path,
    )
    .expect("good client TLS");
    c.send_connect(Uuid::random(), role::AGENT | role::NETAGENT)
        .unwrap();
    match c.next(WAIT) {
        Outcome::Value(v) => {
            let v = v.into_connected();
            assert_eq!(v.op, Op::Status(Status::Connected));
        }
        other => panic!("good client got {other:?}"),
    }
}

fn expect_error(outcome: Outcome, operand: ErrorCode) -> Decoded {
    match outcome {
        Outcome::Value(v) => {
            let f = v.clone().into_frame();
            assert_eq!(f.op, Op::Error(operand), "reply {f:?}");
            assert_eq!(f.origin, [0; 16], "connect-time errors carry a zero origin");
            v
        }
        other => panic!("expected ERROR {operand}, got {other:?}"),
    }
}

/// The TLS handshake or the first read fails with an alert.
fn expect_tls_refusal(fx: &Fixture, cert: &Path, what: &str) {
    match RawClient::connect(fx.server.addr, &fx.certs.ca_pem_path, cert) {
        Err(e) => assert!(!e.is_empty(), "{what}"),
        Ok(mut c) => {
            let _ = c.send_connect(Uuid::random(), role::AGENT);
            match c.next(WAIT) {
                Outcome::Tls(e) => assert!(
                    e.contains("alert") || e.contains("Alert") || e.contains("certificate"),
                    "{what}: unexpected TLS error text {e}"
                ),
                other => panic!("{what}: expected a TLS alert, got {other:?}"),
            }
        }
    }
}

#[test]
fn client_certificate_from_another_ca() {
    let fx = fixture("otherca");
    let other = TempDir::new("otherca2");
    let foreign = certgen::make_ciao_certs(other.path(), KeyKind::Rsa);
    expect_tls_refusal(&fx, &foreign.client_pem_path, "foreign CA");
    good_peer_still_served(&fx);
}

#[test]
fn expired_client_certificate() {
    let fx = fixture("expired");
    let spec = CertSpec::new(roles::AGENT, KeyKind::Rsa)
        .hosts(&["expired"])
        .expired();
    let cert = certgen::write_leaf(fx.tmp.path(), &fx.certs.anchor, &spec);
    expect_tls_refusal(&fx, &cert, "expired");
    good_peer_still_served(&fx);
}

#[test]
fn client_certificate_without_any_role() {
    let fx = fixture("noroles");
    let spec = CertSpec::new(0, KeyKind::Rsa).hosts(&["noroles"]);
    let cert = certgen::write_leaf(fx.tmp.path(), &fx.certs.anchor, &spec);
    expect_tls_refusal(&fx, &cert, "no role");
    good_peer_still_served(&fx);
}

#[test]
fn client_certificate_without_the_agent_role_claiming_it() {
    let fx = fixture("noagent");
    let spec = CertSpec::new(roles::CONTROLLER, KeyKind::Rsa).hosts(&["controller"]);
    let cert = certgen::write_leaf(fx.tmp.path(), &fx.certs.anchor, &spec);
    let mut c =
        RawClient::connect(fx.server.addr, &fx.certs.ca_pem_path, &cert).expect("TLS is fine");
    c.send_connect(Uuid::random(), role::AGENT).unwrap();
    expect_error(c.next(WAIT), ErrorCode::ConnectionAborted);
    assert!(matches!(c.next(WAIT), Outcome::Closed | Outcome::Tls(_)));
    good_peer_still_served(&fx);
}

#[test]
fn claimed_role_zero_is_aborted() {
    // The original accepts role 0 (docs/compatibility.md): we do not.
    let fx = fixture("role0");
    let mut c = RawClient::connect(
        fx.server.addr,
        &fx.certs.ca_pem_path,
        &fx.certs.client_pem_path,
    )
    .unwrap();
    c.send_connect(Uuid::random(), 0).unwrap();
    expect_error(c.next(WAIT), ErrorCode::ConnectionAborted);
    good_peer_still_served(&fx);
}

#[test]
fn garbage_instead_of_gob() {
    let fx = fixture("garbage");
    let mut c = RawClient::connect(
        fx.server.addr,
        &fx.certs.ca_pem_path,
        &fx.certs.client_pem_path,
    )
    .unwrap();
    c.write(b"\x10this is not gob at all, just text\n").unwrap();
    expect_error(c.next(WAIT), ErrorCode::ConnectionFailure);
    assert!(matches!(c.next(WAIT), Outcome::Closed | Outcome::Tls(_)));
    good_peer_still_served(&fx);
}

#[test]
fn message_over_the_size_cap() {
    let fx = fixture("oversize");
    let mut c = RawClient::connect(
        fx.server.addr,
        &fx.certs.ca_pem_path,
        &fx.certs.client_pem_path,
    )
    .unwrap();
    // A length prefix of 1 MiB (cap is 64 KiB here): refused from the header.
    c.write(&[0xfd, 0x10, 0x00, 0x00]).unwrap();
    expect_error(c.next(WAIT), ErrorCode::ConnectionFailure);
    good_peer_still_served(&fx);
}

#[test]
fn oversized_frame_after_the_handshake_closes_the_session() {
    let fx = fixture("oversize2");
    let mut c = RawClient::connect(
        fx.server.addr,
        &fx.certs.ca_pem_path,
        &fx.certs.client_pem_path,
    )
    .unwrap();
    let uuid = Uuid::random();
    c.send_connect(uuid, role::AGENT).unwrap();
    assert!(matches!(c.next(WAIT), Outcome::Value(_)));
    match fx.server.expect(WAIT, "connect") {
        ServerEvent::Connected { .. } => {}
        other => panic!("{other:?}"),
    }
    let big = ciao::ssntp::frame::Frame::new(Command::Stats, uuid.0, vec![b'x'; 200 << 10]);
    let mut out = Vec::new();
    c.enc.frame(&big, &mut out);
    let _ = c.write(&out);
    assert!(matches!(c.next(WAIT), Outcome::Closed | Outcome::Tls(_)));
    match fx.server.expect(WAIT, "disconnect") {
        ServerEvent::Disconnected { uuid: u, .. } => assert_eq!(u, uuid),
        other => panic!("{other:?}"),
    }
    good_peer_still_served(&fx);
}

#[test]
fn connect_that_never_comes() {
    let fx = fixture("silent");
    let mut c = RawClient::connect(
        fx.server.addr,
        &fx.certs.ca_pem_path,
        &fx.certs.client_pem_path,
    )
    .unwrap();
    // Say nothing: after the 1 s deadline the server answers ConnectionFailure.
    expect_error(c.next(WAIT), ErrorCode::ConnectionFailure);
    assert!(matches!(c.next(WAIT), Outcome::Closed | Outcome::Tls(_)));
    good_peer_still_served(&fx);
}

#[test]
fn launcher_refuses_a_server_without_the_scheduler_role() {
    let tmp = TempDir::new("badserver");
    let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
    // A server certificate from the same CA but with the controller role.
    let spec = CertSpec::new(roles::CONTROLLER, KeyKind::Rsa)
        .hosts(&["localhost"])
        .ips(&["127.0.0.1"]);
    let bad_cert = certgen::write_leaf(tmp.path(), &certs.anchor, &spec);
    let ca = tls::load_ca(&certs.ca_pem_path).unwrap();
    let bad_id = tls::load_identity(&bad_cert).unwrap();
    let bad_tls = tls::server_config(&ca, &bad_id).unwrap();

    // A plain rustls server with the bad certificate: the launcher's TLS
    // client must abort the handshake with an alert.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let data = tmp.path().join("data");
    let _l = Proc::start(
        LAUNCHER,
        &[
            format!("-cacert={}", certs.ca_pem_path.display()),
            format!("-cert={}", certs.client_pem_path.display()),
            format!("--data-root={}", data.display()),
            format!("--server={addr}"),
            "-network=false".into(),
            "-logtostderr".into(),
        ],
        tmp.path(),
        "launcher",
    );
    let (sock, _) = listener.accept().unwrap();
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let conn = rustls::ServerConnection::new(bad_tls).unwrap();
    let mut s = rustls::StreamOwned::new(conn, sock);
    let mut err = None;
    while err.is_none() {
        match s.conn.complete_io(&mut s.sock) {
            Ok((0, 0)) => break,
            Ok(_) if !s.conn.is_handshaking() => {
                let mut b = [0u8; 16];
                if let Err(e) = std::io::Read::read(&mut s, &mut b) {
                    err = Some(e.to_string());
                } else {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => err = Some(e.to_string()),
        }
    }
    let err = err.expect("the launcher accepted a server certificate without the scheduler role");
    assert!(
        err.contains("alert"),
        "expected a TLS alert from the launcher, got: {err}"
    );
    drop(s);
    drop(listener);

    // The same launcher process then connects to a good server on that port.
    let good = TestServer::start(
        server_tls(&certs),
        Options {
            listen: addr,
            ..Options::default()
        },
    );
    match good.expect(
        Duration::from_secs(60),
        "the launcher to connect to the good server",
    ) {
        ServerEvent::Connected { .. } => {}
        other => panic!("{other:?}"),
    }
}
