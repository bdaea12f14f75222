//! A server that vanishes without closing the connection is noticed in
//! bounded time (TCP keep-alive and TCP_USER_TIMEOUT on the launcher's
//! SSNTP socket), and the launcher reconnects to the server that takes its
//! place.
//!
//! The launcher and each server run in network namespaces this test
//! creates, joined by a veth pair with addresses of a private range that
//! exist only inside those namespaces; all are removed on exit, also on
//! failure. Root only: elsewhere the test prints SKIPPED (fails under CI).

// setns(2) for the server thread and geteuid(2).
#![allow(unsafe_code)]

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use ciao::ssntp::server::ServerEvent;
use ciao::ssntp::tls;
use ciao_test_support::certgen::{self, roles, CertSpec, KeyKind};
use ciao_test_support::proc::{Proc, TempDir};
use ciao_test_support::skip_or_fail;
use ciao_test_support::ssntp_server::{Options, TestServer};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");
const LAUNCHER_IP: &str = "10.250.14.1";
const SERVER_IP: &str = "10.250.14.2";
const PORT: u16 = 8888;
/// The options under test, a few seconds each.
const KEEPALIVE_S: u64 = 2;
const USER_TIMEOUT_S: u64 = 4;

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Namespaces made by this test, deleted (with the links inside them) when
/// dropped.
struct Netns(Vec<String>);

impl Netns {
    fn add(&mut self, name: String) -> String {
        ip(&["netns", "add", &name]);
        self.0.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        name
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

/// A veth pair from the launcher's namespace to a server's, with the
/// launcher's and the server's addresses.
fn join(launcher_ns: &str, server_ns: &str, tag: &str) -> String {
    let (l, s) = (format!("ckl{tag}"), format!("cks{tag}"));
    ip(&[
        "-n",
        launcher_ns,
        "link",
        "add",
        &l,
        "type",
        "veth",
        "peer",
        "name",
        &s,
        "netns",
        server_ns,
    ]);
    ip(&[
        "-n",
        launcher_ns,
        "addr",
        "add",
        &format!("{LAUNCHER_IP}/24"),
        "dev",
        &l,
    ]);
    ip(&[
        "-n",
        server_ns,
        "addr",
        "add",
        &format!("{SERVER_IP}/24"),
        "dev",
        &s,
    ]);
    ip(&["-n", launcher_ns, "link", "set", &l, "up"]);
    ip(&["-n", server_ns, "link", "set", &s, "up"]);
    s
}

/// A test server listening inside the namespace `ns` (the listening socket
/// is made by a thread that entered it; the socket stays there).
fn server_in(ns: &str, tls: std::sync::Arc<rustls::ServerConfig>) -> TestServer {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).unwrap();
        // SAFETY: setns(2) with a namespace file we hold open; it changes
        // the network namespace of this short-lived thread only.
        let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
        let listen: SocketAddr = format!("{SERVER_IP}:{PORT}").parse().unwrap();
        TestServer::start(
            tls,
            Options {
                listen,
                ..Options::default()
            },
        )
    })
    .join()
    .unwrap()
}

fn wait_connected(s: &TestServer, within: Duration, what: &str) {
    loop {
        if let ServerEvent::Connected { .. } = s.expect(within, what) {
            return;
        }
    }
}

#[test]
fn a_vanished_server_is_noticed_and_its_successor_gets_the_launcher() {
    const TEST: &str = "a_vanished_server_is_noticed_and_its_successor_gets_the_launcher";
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip_or_fail(TEST, "not root (network namespaces need root)");
        return;
    }
    if Command::new("ip").arg("-V").output().is_err() {
        skip_or_fail(TEST, "no ip command (iproute2)");
        return;
    }
    let tag = std::process::id() % 100_000;
    let mut ns = Netns(Vec::new());
    let node = ns.add(format!("ciao-ka{tag}-node"));
    let old = ns.add(format!("ciao-ka{tag}-old"));
    let new = ns.add(format!("ciao-ka{tag}-new"));

    let tmp = TempDir::new("keepalive");
    let a = certgen::anchor(&CertSpec::new(roles::SCHEDULER, KeyKind::Rsa).ips(&[SERVER_IP]));
    let (ca_path, server_path) =
        certgen::write_anchor(tmp.path(), "localhost", roles::SCHEDULER, &a);
    let client_path = certgen::write_leaf(
        tmp.path(),
        &a,
        &CertSpec::new(roles::AGENT | roles::NETAGENT, KeyKind::Rsa),
    );
    let ca = tls::load_ca(&ca_path).unwrap();
    let id = tls::load_identity(&server_path).unwrap();
    let server_tls = tls::server_config(&ca, &id).unwrap();

    let old_link = join(&node, &old, "1");
    let first = server_in(&old, server_tls.clone());
    let data = tmp.path().join("data");
    let mut args: Vec<String> = ["netns", "exec", &node, LAUNCHER]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend([
        format!("-cacert={}", ca_path.display()),
        format!("-cert={}", client_path.display()),
        format!("--data-root={}", data.display()),
        format!("--server={SERVER_IP}:{PORT}"),
        format!("--keepalive={KEEPALIVE_S}"),
        format!("--tcp-user-timeout={USER_TIMEOUT_S}"),
        // Nothing to send for an hour: only the keep-alive can notice.
        "--stats-interval=3600".into(),
        "-network=false".into(),
        "-logtostderr".into(),
        "-v=1".into(),
    ]);
    let launcher = Proc::start("ip", &args, tmp.path(), "launcher");
    wait_connected(
        &first,
        Duration::from_secs(30),
        "the launcher on the first server",
    );
    // Let the first reports be acknowledged: the connection is idle.
    std::thread::sleep(Duration::from_secs(1));

    // The first server's side vanishes without a FIN: its veth (and with
    // it the pair) is deleted; the server process itself stays up, silent.
    let cut = Instant::now();
    ip(&["-n", &old, "link", "del", &old_link]);
    let lost = "lost the SSNTP server";
    let detect_bound = Duration::from_secs(KEEPALIVE_S + USER_TIMEOUT_S + 4);
    while !launcher.output().contains(lost) {
        assert!(
            cut.elapsed() < detect_bound,
            "the launcher did not notice the vanished server within {detect_bound:?}\n{}",
            launcher.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let detected = cut.elapsed();

    // A new server at the same address.
    join(&node, &new, "2");
    let second = server_in(&new, server_tls);
    // Reconnection attempts back off 1..=5 s, then 1..=10 s, ...
    wait_connected(
        &second,
        Duration::from_secs(40),
        "the launcher on the new server",
    );
    eprintln!(
        "vanished server noticed after {:.1} s, launcher on the new server after {:.1} s",
        detected.as_secs_f64(),
        cut.elapsed().as_secs_f64()
    );
    drop(launcher);
    drop(second);
    drop(first);
}
