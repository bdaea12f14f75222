//! The real `ciao-launcher` under a pretend service manager: the systemd
//! notification protocol against a datagram socket this test listens on,
//! and the log format when stderr is the journal.

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ciao::ssntp::server::ServerEvent;
use ciao::ssntp::tls;
use ciao_test_support::certgen::{self, CertSet, KeyKind};
use ciao_test_support::proc::{Proc, TempDir};
use ciao_test_support::ssntp_server::{Options, TestServer};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");
const LONG: Duration = Duration::from_secs(30);

fn server(certs: &CertSet) -> TestServer {
    let ca = tls::load_ca(&certs.ca_pem_path).unwrap();
    let id = tls::load_identity(&certs.server_pem_path).unwrap();
    TestServer::start(tls::server_config(&ca, &id).unwrap(), Options::default())
}

/// A simulated launcher and its server; dropped launcher first.
struct Node {
    launcher: Proc,
    server: TestServer,
    /// Removed last, after the launcher has gone.
    _tmp: TempDir,
}

/// Starts the simulated launcher in `tmp` with `env` added; its stdout
/// and stderr go to `<tmp>/launcher.log` (which may exist already).
fn start(tmp: TempDir, env: &[(&str, String)]) -> Node {
    let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
    let server = server(&certs);
    let mut args = certs.launcher_args(&tmp.path().join("data"), server.addr);
    args.extend(["-simulation", "-network=false", "-logtostderr", "-v=1"].map(String::from));
    let log = tmp.path().join("launcher.log");
    let f = std::fs::File::create(&log).unwrap();
    let child = Command::new(LAUNCHER)
        .args(&args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    let launcher = Proc {
        child,
        name: "launcher".into(),
        log,
    };
    Node {
        launcher,
        server,
        _tmp: tmp,
    }
}

/// A temporary directory and the socket a service manager would listen
/// on in it (bound before the launcher starts), with its name.
fn notify_socket(tag: &str) -> (TempDir, UnixDatagram, String) {
    let tmp = TempDir::new(tag);
    let path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    (tmp, sock, path.display().to_string())
}

fn connected(server: &TestServer) {
    loop {
        if let ServerEvent::Connected { .. } = server.expect(LONG, "the launcher to connect") {
            return;
        }
    }
}

/// The next notification, or a panic naming `what` after `within`.
fn next(sock: &UnixDatagram, within: Duration, what: &str) -> String {
    sock.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    match sock.recv(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => panic!("no notification ({what}) within {within:?}: {e}"),
    }
}

/// Notifications until one satisfies `pred`; returns it.
fn until(sock: &UnixDatagram, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + LONG;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let m = next(sock, left.max(Duration::from_millis(1)), what);
        if pred(&m) {
            return m;
        }
    }
}

#[test]
fn notify_ready_status_watchdog_and_stopping() {
    let (tmp, sock, name) = notify_socket("sd-notify");
    let mut n = start(
        tmp,
        &[("NOTIFY_SOCKET", name), ("WATCHDOG_USEC", "1000000".into())],
    );
    let ready = next(&sock, LONG, "READY=1");
    let lines: Vec<&str> = ready.lines().collect();
    assert_eq!(lines.first(), Some(&"READY=1"), "{ready:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("STATUS=") && l.contains("0 instance(s)")),
        "{ready:?}"
    );
    connected(&n.server);
    let status = until(&sock, "STATUS= connected", |m| {
        m.starts_with("STATUS=connected to ")
    });
    assert!(status.contains("; 0 instance(s)"), "{status:?}");

    // WATCHDOG=1 every half period (0.5 s); STATUS is not repeated while
    // nothing changes.
    let t0 = Instant::now();
    for _ in 0..3 {
        let m = next(&sock, Duration::from_secs(2), "WATCHDOG=1");
        assert_eq!(m, "WATCHDOG=1", "only watchdog pings while idle");
    }
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "3 pings took {took:?}"
    );

    n.launcher.signal(libc::SIGTERM);
    let stop = until(&sock, "STOPPING=1", |m| {
        m.lines().any(|l| l == "STOPPING=1")
    });
    assert!(stop.contains("STATUS="), "{stop:?}");
    let status = n
        .launcher
        .wait_exit(Duration::from_secs(5))
        .expect("exit after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", n.launcher.output());
}

#[test]
fn watchdog_for_another_pid_is_not_ours() {
    let (tmp, sock, name) = notify_socket("sd-wdpid");
    let n = start(
        tmp,
        &[
            ("NOTIFY_SOCKET", name),
            ("WATCHDOG_USEC", "200000".into()),
            ("WATCHDOG_PID", "1".into()),
        ],
    );
    assert!(next(&sock, LONG, "READY=1").starts_with("READY=1\n"));
    connected(&n.server);
    let end = Instant::now() + Duration::from_secs(1);
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut buf = [0u8; 512];
        if let Ok(len) = sock.recv(&mut buf) {
            assert_ne!(
                &buf[..len],
                b"WATCHDOG=1",
                "the watchdog is another process's"
            );
        }
    }
}

/// What the launcher wrote on stderr from start to SIGTERM, with `env`
/// made from its log file (which exists before it starts, so that its
/// device and inode can be named in JOURNAL_STREAM as systemd names the
/// journal's).
fn stderr_lines(tag: &str, env: impl Fn(&Path) -> Vec<(&'static str, String)>) -> String {
    let tmp = TempDir::new(tag);
    let log = tmp.path().join("launcher.log");
    std::fs::File::create(&log).unwrap();
    let env = env(&log);
    let mut n = start(tmp, &env);
    connected(&n.server);
    n.launcher.signal(libc::SIGTERM);
    n.launcher
        .wait_exit(Duration::from_secs(5))
        .expect("exit after SIGTERM");
    n.launcher.output()
}

#[test]
fn under_the_journal_stderr_has_no_timestamps() {
    let out = stderr_lines("sd-journal", |log| {
        let m = std::fs::metadata(log).unwrap();
        vec![("JOURNAL_STREAM", format!("{}:{}", m.dev(), m.ino()))]
    });
    let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    assert!(
        lines.iter().any(|l| l.contains("ciao-launcher starting")),
        "{out}"
    );
    for l in &lines {
        assert!(l.starts_with('['), "a timestamp or no level: {l:?}\n{out}");
    }
}

#[test]
fn a_journal_stream_that_is_not_our_stderr_changes_nothing() {
    let out = stderr_lines("sd-notjournal", |_| vec![("JOURNAL_STREAM", "1:1".into())]);
    let line = out
        .lines()
        .find(|l| l.contains("ciao-launcher starting"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.starts_with(|c: char| c.is_ascii_digit()),
        "timestamped: {line:?}"
    );
}
