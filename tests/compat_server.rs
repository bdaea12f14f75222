//! Deliberate differences of `ciao-launcher-server` from the original
//! (docs/compatibility.md, test tools): start-up failure of the REST
//! listener, and the limits of its HTTP server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use ciao_test_support::certgen::{self, CertSet, KeyKind};
use ciao_test_support::proc::{wait_for, Proc, TempDir};
use ciao_test_support::server_session::{free_port, free_ports, status_line};

const SERVER: &str = env!("CARGO_BIN_EXE_ciao-launcher-server");
const LONG: Duration = Duration::from_secs(30);

fn args(certs: &CertSet, tmp: &TempDir, rest: SocketAddr) -> Vec<String> {
    vec![
        format!("-ca-server-cert={}", certs.ca_pem_path.display()),
        format!("-server-cert={}", certs.server_pem_path.display()),
        // Never the REST port (a look-up after it may return it again).
        format!("--ssntp-listen=127.0.0.1:{}", other_port(rest.port())),
        format!("-server={rest}"),
        format!("--data-root={}", tmp.path().join("server").display()),
    ]
}

/// A free port that is not `taken`.
fn other_port(taken: u16) -> u16 {
    free_ports::<2>()
        .into_iter()
        .find(|&p| p != taken)
        .unwrap_or_else(free_port)
}

/// A running server with `extra` options, its REST address once it answers.
/// Field order of the tuple's users: the process goes before the directory.
fn serving(tag: &str, extra: &[&str]) -> (Proc, SocketAddr, TempDir) {
    let tmp = TempDir::new(tag);
    let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
    let rest: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut a = args(&certs, &tmp, rest);
    a.extend(extra.iter().map(|s| s.to_string()));
    let p = Proc::start(SERVER, &a, tmp.path(), "server");
    wait_for(LONG, "the REST API", || TcpStream::connect(rest).ok());
    (p, rest, tmp)
}

/// D9 in docs/compatibility.md: when the REST listener cannot be opened the
/// original hung (ignoring SIGTERM). Ours prints the original's message and
/// exits 1.
#[test]
fn rest_listener_failure_exits_with_the_originals_message() {
    let tmp = TempDir::new("restbusy");
    let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let rest = busy.local_addr().unwrap();
    let mut p = Proc::start(SERVER, &args(&certs, &tmp, rest), tmp.path(), "server");
    let status = p.wait_exit(LONG).expect("the server kept running");
    assert_eq!(status.code(), Some(1));
    let out = p.output();
    assert!(
        out.contains(&format!("Unable to create listener: listen tcp {rest}")),
        "{out}"
    );
}

/// Sends raw bytes, returns the status line of the answer.
fn status_of(rest: SocketAddr, request: &[u8]) -> String {
    status_line(rest, request, LONG)
}

/// The REST API's HTTP server has limits the original (Go net/http with
/// its defaults: 1 MiB of header, no body limit, no connection limit) did
/// not: request line 8 KiB (414), header section 32 KiB or 100 fields
/// (431), body 16 MiB (413), 256 connections at once (503).
#[test]
fn rest_http_limits_answer_with_their_status_codes() {
    let (_p, rest, _tmp) = serving("restlimits", &[]);

    let ok = status_of(
        rest,
        b"GET /clients HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");

    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    assert!(status_of(rest, long_uri.as_bytes()).starts_with("HTTP/1.1 414"));

    let big_header = format!(
        "GET /clients HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
        "v".repeat(40_000)
    );
    assert!(status_of(rest, big_header.as_bytes()).starts_with("HTTP/1.1 431"));

    let many: String = (0..120).map(|i| format!("X-{i}: 1\r\n")).collect();
    let many = format!("GET /clients HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    assert!(status_of(rest, many.as_bytes()).starts_with("HTTP/1.1 431"));

    let big_body = b"POST /stop HTTP/1.1\r\nHost: x\r\nContent-Length: 17000000\r\n\r\n";
    assert!(status_of(rest, big_body).starts_with("HTTP/1.1 413"));

    // 256 idle connections are held; the next one is refused with 503.
    let held: Vec<TcpStream> = (0..256)
        .map(|_| TcpStream::connect(rest).unwrap())
        .collect();
    // Let the server accept all of them before the extra one.
    std::thread::sleep(Duration::from_millis(500));
    // Nothing is sent: the refusal is written as soon as it is accepted.
    let refused = status_of(rest, b"");
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    drop(held);
    wait_for(LONG, "the server to serve again", || {
        status_of(
            rest,
            b"GET /clients HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .starts_with("HTTP/1.1 200")
        .then_some(())
    });
}

/// Issue 14, item 7: a body whose frame would be over the 16 MiB a launcher
/// accepts is refused as soon as its head announces it (the original, and
/// ours before, waited for the body and forwarded it).
#[test]
fn a_body_whose_frame_exceeds_the_launchers_limit_is_refused() {
    let (_p, rest, _tmp) = serving("restframe", &[]);
    for len in [16 << 20, (16 << 20) - (4 << 10) + 1] {
        let mut s = TcpStream::connect(rest).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(
            format!("POST /start HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let mut out = [0u8; 12];
        let got = s.read_exact(&mut out).map(|_| out);
        assert_eq!(
            got.as_ref()
                .map(|o| String::from_utf8_lossy(o).into_owned())
                .ok(),
            Some("HTTP/1.1 413".to_string()),
            "Content-Length {len}"
        );
    }
}

/// Issue 14, item 8: clients trickling header lines are cut off when their
/// request head is not complete in time (here `--http-header-timeout=2`;
/// before, each line restarted a 60 s idle timer and 256 such clients held
/// every slot for ever), and the refusals meanwhile make one log line, not
/// one each.
#[test]
fn slow_request_heads_are_cut_off_and_refusals_counted() {
    let (p, rest, _tmp) = serving(
        "slowloris",
        &["--http-header-timeout=2", "-alsologtostderr"],
    );
    // The probe above was accepted too; let it go before filling the slots.
    std::thread::sleep(Duration::from_millis(200));
    let start = std::time::Instant::now();
    let mut slow: Vec<Option<TcpStream>> = (0..256)
        .map(|_| {
            let mut s = TcpStream::connect(rest).unwrap();
            s.write_all(b"GET /clients HTTP/1.1\r\n").unwrap();
            s.set_nonblocking(true).unwrap();
            Some(s)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..20 {
        let refused = status_of(rest, b"");
        assert!(
            refused.starts_with("HTTP/1.1 503"),
            "refusal {i} after {:?}: {refused:?}\n{}",
            start.elapsed(),
            p.output()
        );
    }
    // Trickle a header line on each every 100 ms until the server closes it.
    let mut buf = [0u8; 512];
    while slow.iter().any(Option::is_some) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} slow clients still connected after {:?}",
            slow.iter().flatten().count(),
            start.elapsed()
        );
        for slot in slow.iter_mut() {
            let Some(s) = slot else { continue };
            let _ = s.write_all(b"X-Slow: 1\r\n");
            match s.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                _ => *slot = None,
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        start.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        start.elapsed()
    );
    let ok = status_of(
        rest,
        b"GET /clients HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let log = p.output();
    assert_eq!(
        log.matches("too many connections").count(),
        1,
        "one line for 20 refusals within 10 s:\n{log}"
    );
}
