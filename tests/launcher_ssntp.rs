//! End to end: the real `ciao-launcher` binary against an SSNTP server built
//! on our library, over loopback, with certificates made at test time in
//! the layout `ciao-cert` produces.

// Test set-up calls libc (statvfs) directly rather than widening `ciao::sys`.
#![allow(unsafe_code)]

use std::path::Path;
use std::time::Duration;

use ciao::ssntp::frame::{Command, Op, Status};
use ciao::ssntp::server::ServerEvent;
use ciao::ssntp::tls;
use ciao_test_support::certgen::{self, CertSet, KeyKind};
use ciao_test_support::proc::{Proc, TempDir};
use ciao_test_support::ssntp_server::{Options, TestServer};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");
const LONG: Duration = Duration::from_secs(30);

fn server_tls(certs: &CertSet) -> std::sync::Arc<rustls::ServerConfig> {
    let ca = tls::load_ca(&certs.ca_pem_path).unwrap();
    let id = tls::load_identity(&certs.server_pem_path).unwrap();
    tls::server_config(&ca, &id).unwrap()
}

fn launcher_args(certs: &CertSet, data: &Path, server: &str, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        format!("-cacert={}", certs.ca_pem_path.display()),
        "-cert".into(),
        certs.client_pem_path.display().to_string(),
        "--data-root".into(),
        data.display().to_string(),
        "--server".into(),
        server.into(),
        "-logtostderr".into(),
        "-v=1".into(),
        "-network=false".into(),
    ];
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

/// A YAML payload as a flat key -> value map (enough for READY/STATS heads).
fn fields(payload: &[u8]) -> std::collections::HashMap<String, String> {
    String::from_utf8_lossy(payload)
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('-'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// Node figures computed here from /proc and statvfs, not through the crate.
struct Node {
    mem_total: i64,
    mem_available: i64,
    disk_total: i64,
    disk_available: i64,
    cpus: i64,
}

fn node_figures(dir: &Path) -> Node {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb = |key: &str| -> i64 {
        meminfo
            .lines()
            .find(|l| l.starts_with(&format!("{key}:")))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap()
    };
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpus = stat
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("cpu"))
        .count() as i64;
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs is plain data; all zeroes is a valid value.
    let mut sv: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `sv` a writable statvfs.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut sv) }, 0);
    Node {
        mem_total: kb("MemTotal") / 1024,
        mem_available: (kb("MemFree") + kb("Active(file)") + kb("Inactive(file)")) / 1024,
        disk_total: (sv.f_bsize as i64 * sv.f_blocks as i64) / 1_000_000,
        disk_available: (sv.f_bsize as i64 * sv.f_bavail as i64) / 1_000_000,
        cpus,
    }
}

fn near(got: &str, want: i64, slack: i64, what: &str) {
    let g: i64 = got
        .parse()
        .unwrap_or_else(|_| panic!("{what}: {got:?} is not a number"));
    assert!(
        (g - want).abs() <= slack,
        "{what}: launcher says {g}, test computed {want}"
    );
}

fn connected(server: &TestServer) -> ciao::ssntp::uuid::Uuid {
    match server.expect(LONG, "the launcher to connect") {
        ServerEvent::Connected { uuid, role, .. } => {
            assert_eq!(role, 0x14, "claimed role agent+netagent");
            uuid
        }
        other => panic!("expected a connection, got {other:?}"),
    }
}

/// A test SSNTP server with default options and a launcher started
/// against it. Fields drop in order: the launcher first, the temporary
/// directory last.
struct Setup {
    launcher: Proc,
    server: TestServer,
    data: std::path::PathBuf,
    _tmp: TempDir,
}

fn setup(tag: &str, kind: KeyKind, extra: &[&str]) -> Setup {
    let tmp = TempDir::new(tag);
    let certs = certgen::make_ciao_certs(tmp.path(), kind);
    let server = TestServer::start(server_tls(&certs), Options::default());
    let data = tmp.path().join("data");
    let args = launcher_args(&certs, &data, &server.addr.to_string(), extra);
    let launcher = Proc::start(LAUNCHER, &args, tmp.path(), "launcher");
    Setup {
        launcher,
        server,
        data,
        _tmp: tmp,
    }
}

fn check_ready_and_stats(kind: KeyKind) {
    let Setup { server, data, .. } = &setup("ready", kind, &[]);
    let uuid = connected(server);
    // STATUS READY first, then STATS.
    let (from, ready) = server.expect_frame(LONG, "STATUS", |f| matches!(f.op, Op::Status(_)));
    assert_eq!(from, uuid);
    assert_eq!(
        ready.op,
        Op::Status(Status::Ready),
        "limits are off, so READY"
    );
    let (_, stats) = server.expect_frame(LONG, "STATS", |f| matches!(f.op, Op::Command(_)));
    assert_eq!(stats.op, Op::Command(Command::Stats));

    let node = node_figures(&data.join("instances"));
    for payload in [&ready.payload, &stats.payload] {
        let f = fields(payload);
        assert_eq!(f["node_uuid"], uuid.to_string());
        near(&f["mem_total_mb"], node.mem_total, 0, "mem_total_mb");
        near(
            &f["mem_available_mb"],
            node.mem_available,
            node.mem_total / 20,
            "mem_available_mb",
        );
        near(&f["disk_total_mb"], node.disk_total, 0, "disk_total_mb");
        near(
            &f["disk_available_mb"],
            node.disk_available,
            2000,
            "disk_available_mb",
        );
        near(&f["cpus_online"], node.cpus, 0, "cpus_online");
        assert!(f["load"].parse::<i64>().unwrap() >= 0);
    }
    let f = fields(&stats.payload);
    assert_eq!(f["status"], "READY");
    // B23 fixed: the host name is reported with -network=false too.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(f["hostname"].trim_matches('"'), host.trim());
    assert_eq!(f["networks"], "[]");
    assert_eq!(f["instances"], "[]");
    // The node UUID is persisted under the data root (0600, 36 bytes).
    let stored = std::fs::read_to_string(data.join("local/uuid-storage/role/client/0x14")).unwrap();
    assert_eq!(stored, uuid.to_string());
}

#[test]
fn ready_and_stats_with_rsa_certificates() {
    check_ready_and_stats(KeyKind::Rsa);
}

#[test]
fn ready_and_stats_with_p521_certificates() {
    check_ready_and_stats(KeyKind::P521);
}

#[test]
fn periodic_reports_follow_the_stats_interval() {
    let Setup { server, .. } = &setup("periodic", KeyKind::Rsa, &["--stats-interval", "1"]);
    connected(server);
    for i in 0..3 {
        server.expect_frame(LONG, &format!("STATUS #{i}"), |f| {
            matches!(f.op, Op::Status(_))
        });
        server.expect_frame(LONG, &format!("STATS #{i}"), |f| {
            f.op == Op::Command(Command::Stats)
        });
    }
}

#[test]
fn disk_limit_from_the_cluster_configuration_decides_full() {
    let tmp = TempDir::new("full");
    let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
    let config = b"configure:\n  launcher:\n    disk_limit: true\n    mem_limit: false\n".to_vec();
    let server = TestServer::start(
        server_tls(&certs),
        Options {
            config,
            ..Options::default()
        },
    );
    let data = tmp.path().join("data");
    let _l = Proc::start(
        LAUNCHER,
        &launcher_args(&certs, &data, &server.addr.to_string(), &[]),
        tmp.path(),
        "launcher",
    );
    connected(&server);
    let (_, status) = server.expect_frame(LONG, "STATUS", |f| matches!(f.op, Op::Status(_)));
    let node = node_figures(&data.join("instances"));
    // As the original: FULL when disk limiting is on and < 80000 MB remain
    // (`capacity::DISK_HWM`).
    let want_full = node.disk_available < 80_000;
    assert_eq!(
        status.op == Op::Status(Status::Full),
        want_full,
        "disk available {} MB",
        node.disk_available
    );
    if want_full {
        assert!(status.payload.is_empty(), "FULL carries no payload");
    }
    let (_, stats) = server.expect_frame(LONG, "STATS", |f| matches!(f.op, Op::Command(_)));
    assert_eq!(
        fields(&stats.payload)["status"],
        if want_full { "FULL" } else { "READY" }
    );
}

#[test]
fn reconnects_after_the_server_comes_back() {
    let tmp = TempDir::new("reconnect");
    let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
    let tls = server_tls(&certs);
    let server = TestServer::start(tls.clone(), Options::default());
    let addr = server.addr;
    let data = tmp.path().join("data");
    let mut l = Proc::start(
        LAUNCHER,
        &launcher_args(&certs, &data, &addr.to_string(), &[]),
        tmp.path(),
        "launcher",
    );
    let first = connected(&server);
    server.expect_frame(LONG, "STATS", |f| matches!(f.op, Op::Command(_)));
    server.stop();
    // Down for a while: the launcher must keep trying, never exit.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        l.child.try_wait().unwrap().is_none(),
        "the launcher exited while the server was down"
    );
    let server = TestServer::start(
        tls,
        Options {
            listen: addr,
            ..Options::default()
        },
    );
    // Back-off bound: the caps cycle 5, 10, 20, 40 s; 60 s covers any two rounds.
    let again = match server.expect(Duration::from_secs(60), "the launcher to reconnect") {
        ServerEvent::Connected { uuid, .. } => uuid,
        other => panic!("{other:?}"),
    };
    assert_eq!(first, again, "same node UUID after reconnecting");
    server.expect_frame(LONG, "STATUS after reconnect", |f| {
        matches!(f.op, Op::Status(_))
    });
    server.expect_frame(LONG, "STATS after reconnect", |f| {
        matches!(f.op, Op::Command(_))
    });
}

#[test]
fn sigterm_ends_the_launcher_cleanly() {
    let Setup {
        launcher: l,
        server,
        ..
    } = &mut setup("sigterm", KeyKind::Rsa, &[]);
    connected(server);
    l.signal(libc::SIGTERM);
    let status = l
        .wait_exit(Duration::from_secs(5))
        .expect("launcher did not exit after SIGTERM");
    assert_eq!(status.code(), Some(0));
    loop {
        match server.expect(LONG, "the disconnect") {
            ServerEvent::Disconnected { .. } => break,
            ServerEvent::Frame { .. } => {}
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_second_launcher_on_the_same_data_root_is_refused() {
    let tmp = TempDir::new("lock");
    let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
    let server = TestServer::start(server_tls(&certs), Options::default());
    let data = tmp.path().join("data");
    let args = launcher_args(&certs, &data, &server.addr.to_string(), &[]);
    let _first = Proc::start(LAUNCHER, &args, tmp.path(), "first");
    connected(&server);
    let mut second = Proc::start(LAUNCHER, &args, tmp.path(), "second");
    let status = second
        .wait_exit(Duration::from_secs(10))
        .expect("second launcher kept running");
    assert_eq!(status.code(), Some(1));
    assert!(
        second.output().contains("another ciao-launcher"),
        "{}",
        second.output()
    );
}

#[test]
fn a_certificate_without_agent_role_is_refused_at_start() {
    let tmp = TempDir::new("norole");
    let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
    let data = tmp.path().join("data");
    let args: Vec<String> = vec![
        format!("-cacert={}", certs.ca_pem_path.display()),
        format!("-cert={}", certs.server_pem_path.display()),
        format!("--data-root={}", data.display()),
        "-logtostderr".into(),
    ];
    let mut l = Proc::start(LAUNCHER, &args, tmp.path(), "launcher");
    let status = l
        .wait_exit(Duration::from_secs(10))
        .expect("launcher kept running");
    assert_eq!(status.code(), Some(1));
    assert!(
        l.output().contains("agent or netagent role"),
        "{}",
        l.output()
    );
}

/// A launcher that connects right after it starts sends one STATS, not
/// two: the state-change STATS that recovery asks for is part of the full
/// report sent on connect (it used to follow it some 60 ms later).
#[test]
fn a_quick_connect_sends_one_stats() {
    let Setup { server, .. } = &setup("onestats", KeyKind::Rsa, &[]);
    connected(server);
    server.expect_frame(LONG, "STATUS", |f| matches!(f.op, Op::Status(_)));
    server.expect_frame(LONG, "STATS", |f| f.op == Op::Command(Command::Stats));
    // Nothing else is due before the 30 s tick.
    let end = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    let mut more = Vec::new();
    while let Ok(ev) = server
        .events
        .recv_timeout(end.saturating_duration_since(std::time::Instant::now()))
    {
        if let ServerEvent::Frame { frame, .. } = ev {
            more.push(frame.op);
        }
    }
    assert!(more.is_empty(), "frames after the first report: {more:?}");
}
