//! End to end: name resolution never stalls the launcher's loop.
//!
//! The real `ciao-launcher -simulation` dials its server by name,
//! `ssntp.ciao-test.invalid`, which only the test's own DNS server knows.
//! The launcher runs in a private mount namespace where `/etc/resolv.conf`
//! names that server (a UDP socket of this test on a loopback address, port
//! 53) with `options timeout:30 attempts:5`, so glibc keeps waiting when it
//! does not answer, and `/etc/nsswitch.conf` says `hosts: files dns`, so no
//! other resolver (systemd-resolved, mDNS) is asked. Needs root (port 53,
//! mounts) and `unshare(1)`; outside `CI=true` it prints `SKIPPED` and
//! passes without them.
//!
//! The scenario: the link drops just after a STOP and re-resolving the
//! server's name hangs. The loop keeps going: the STOP completes, lookups
//! time out and are retried without starting a second one, and once the
//! name resolves again the first STATS the server gets shows the stop.
//! Finally SIGTERM, sent while a lookup hangs, ends the launcher within 1 s.

// Test set-up calls libc (geteuid) directly rather than widening `ciao::sys`.
#![allow(unsafe_code)]

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ciao::payloads::Stat;
use ciao::ssntp::frame::{Command, Op};
use ciao::ssntp::server::ServerEvent;
use ciao::ssntp::tls;
use ciao::ssntp::uuid::Uuid;
use ciao_test_support::certgen::{self, roles, CertSet, CertSpec, KeyKind};
use ciao_test_support::proc::{wait_for, Proc, TempDir};
use ciao_test_support::skip_or_fail;
use ciao_test_support::ssntp_server::{Options, TestServer};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");
const LONG: Duration = Duration::from_secs(30);
const NAME: &str = "ssntp.ciao-test.invalid";
const INSTANCE: &str = "d7d86208-b46c-4465-9018-fe14087d415f";
/// What the launcher logs when a lookup misses its deadline.
const LOOKUP_TIMED_OUT: &str = "looking up ssntp.ciao-test.invalid timed out";

fn example(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/payloads")
        .join(name);
    std::fs::read(p).unwrap()
}

/// One query as the DNS server saw it.
#[derive(Clone, Debug)]
struct Query {
    name: String,
    qtype: u16,
}

#[derive(Default)]
struct DnsState {
    hang: bool,
    /// Queries held while hanging, answered when answering resumes.
    held: Vec<(Vec<u8>, SocketAddr)>,
    seen: Vec<Query>,
}

/// A tiny DNS server on a loopback address, port 53: answers A queries for
/// [`NAME`] with 127.0.0.1 (other types: no data; other names: NXDOMAIN),
/// or holds every query while told to hang.
struct Dns {
    ip: Ipv4Addr,
    state: Arc<Mutex<DnsState>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Dns {
    fn start() -> Result<Dns, String> {
        let seed = std::process::id();
        let mut last = String::new();
        for i in 0..20u32 {
            let n = seed.wrapping_add(i * 7919);
            let ip = Ipv4Addr::new(127, 53, (n % 250) as u8 + 1, (n / 250 % 250) as u8 + 1);
            let sock = match UdpSocket::bind((ip, 53)) {
                Ok(s) => s,
                Err(e) => {
                    last = format!("cannot bind {ip}:53: {e}");
                    continue;
                }
            };
            sock.set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            let state = Arc::new(Mutex::new(DnsState::default()));
            let stop = Arc::new(AtomicBool::new(false));
            let (st, sp) = (state.clone(), stop.clone());
            let thread = std::thread::spawn(move || serve(sock, st, sp));
            return Ok(Dns {
                ip,
                state,
                stop,
                thread: Some(thread),
            });
        }
        Err(last)
    }

    fn hang(&self) {
        self.state.lock().unwrap().hang = true;
    }

    /// Answers what was held and everything that follows.
    fn answer(&self) {
        self.state.lock().unwrap().hang = false;
    }

    fn seen(&self) -> Vec<Query> {
        self.state.lock().unwrap().seen.clone()
    }

    fn held(&self) -> Vec<SocketAddr> {
        self.state
            .lock()
            .unwrap()
            .held
            .iter()
            .map(|(_, from)| *from)
            .collect()
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(sock: UdpSocket, state: Arc<Mutex<DnsState>>, stop: Arc<AtomicBool>) {
    let mut buf = [0u8; 1500];
    while !stop.load(Ordering::Relaxed) {
        let got = sock.recv_from(&mut buf);
        let mut st = state.lock().unwrap();
        if !st.hang {
            for (q, from) in std::mem::take(&mut st.held) {
                reply(&sock, &q, from);
            }
        }
        let Ok((len, from)) = got else { continue };
        let q = buf[..len].to_vec();
        let Some((name, qtype, _)) = question(&q) else {
            continue;
        };
        st.seen.push(Query { name, qtype });
        if st.hang {
            st.held.push((q, from));
        } else {
            reply(&sock, &q, from);
        }
    }
}

/// The question of a standard query: name, type and where it ends.
fn question(q: &[u8]) -> Option<(String, u16, usize)> {
    if q.len() < 12 || q[2] & 0x80 != 0 || q[4..6] != [0, 1] {
        return None;
    }
    let mut labels = Vec::new();
    let mut at = 12;
    loop {
        let n = *q.get(at)? as usize;
        at += 1;
        if n == 0 {
            break;
        }
        if n > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(q.get(at..at + n)?).to_lowercase());
        at += n;
    }
    let qtype = u16::from_be_bytes([*q.get(at)?, *q.get(at + 1)?]);
    q.get(at + 3)?;
    Some((labels.join("."), qtype, at + 4))
}

fn reply(sock: &UdpSocket, q: &[u8], to: SocketAddr) {
    let Some((name, qtype, end)) = question(q) else {
        return;
    };
    let ours = name == NAME;
    let answer = ours && qtype == 1;
    let rcode = if ours { 0 } else { 3 };
    let mut r = Vec::with_capacity(end + 16);
    r.extend_from_slice(&q[..2]); // id
    r.push(0x80 | (q[2] & 0x01)); // response, RD copied
    r.push(0x80 | rcode); // RA
    r.extend_from_slice(&[0, 1, 0, answer as u8, 0, 0, 0, 0]);
    r.extend_from_slice(&q[12..end]);
    if answer {
        // Name by pointer to the question, A, IN, TTL 1 s, 127.0.0.1.
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4, 127, 0, 0, 1]);
    }
    let _ = sock.send_to(&r, to);
}

/// Root, and `unshare --mount` working: what the private resolver
/// configuration needs.
fn prerequisites() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("not root (a DNS server on port 53 and bind mounts need root)".into());
    }
    let probe = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "true"])
        .status();
    match probe {
        Ok(s) if s.success() => {}
        Ok(s) => return Err(format!("unshare --mount failed ({s})")),
        Err(e) => return Err(format!("cannot run unshare: {e}")),
    }
    for f in ["/etc/resolv.conf", "/etc/nsswitch.conf"] {
        if !Path::new(f).exists() {
            return Err(format!("no {f} to bind-mount over"));
        }
    }
    if Path::new("/var/run/nscd/socket").exists() {
        return Err("nscd is running: it would answer instead of the test's DNS server".into());
    }
    Ok(())
}

/// ciao-cert's layout, with the scheduler's certificate naming [`NAME`].
fn make_certs(dir: &Path) -> CertSet {
    let a = certgen::anchor(&CertSpec::new(roles::SCHEDULER, KeyKind::Rsa).hosts(&[NAME]));
    let (ca_pem_path, server_pem_path) = certgen::write_anchor(dir, NAME, roles::SCHEDULER, &a);
    let client_pem_path = certgen::write_leaf(
        dir,
        &a,
        &CertSpec::new(roles::AGENT | roles::NETAGENT, KeyKind::Rsa),
    );
    CertSet {
        ca_pem_path,
        server_pem_path,
        client_pem_path,
        anchor: a,
    }
}

fn server_tls(certs: &CertSet) -> Arc<rustls::ServerConfig> {
    let ca = tls::load_ca(&certs.ca_pem_path).unwrap();
    let id = tls::load_identity(&certs.server_pem_path).unwrap();
    tls::server_config(&ca, &id).unwrap()
}

fn connected(server: &TestServer, within: Duration) -> Uuid {
    loop {
        if let ServerEvent::Connected { uuid, .. } =
            server.expect(within, "the launcher to connect")
        {
            return uuid;
        }
    }
}

/// The state of [`INSTANCE`] in a STATS payload.
fn instance_state(payload: &[u8]) -> Option<String> {
    Stat::parse(payload)
        .unwrap()
        .instances
        .into_iter()
        .find(|i| i.instance_uuid == INSTANCE)
        .map(|i| i.state)
}

fn next_stats(server: &TestServer, what: &str) -> Option<String> {
    let (_, f) = server.expect_frame(LONG, what, |f| f.op == Op::Command(Command::Stats));
    instance_state(&f.payload)
}

#[test]
fn a_hanging_name_lookup_does_not_stall_the_loop() {
    const TEST: &str = "a_hanging_name_lookup_does_not_stall_the_loop";
    if let Err(why) = prerequisites() {
        skip_or_fail(TEST, &why);
        return;
    }
    let dns = match Dns::start() {
        Ok(d) => d,
        Err(why) => {
            skip_or_fail(TEST, &why);
            return;
        }
    };
    let tmp = TempDir::new("resolver");
    let resolv = tmp.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        format!("nameserver {}\noptions timeout:30 attempts:5\n", dns.ip),
    )
    .unwrap();
    let nsswitch = tmp.path().join("nsswitch.conf");
    std::fs::write(&nsswitch, "hosts: files dns\n").unwrap();

    let certs = make_certs(tmp.path());
    let server = TestServer::start(server_tls(&certs), Options::default());
    let addr = server.addr;
    let data = tmp.path().join("data");
    let mut args: Vec<String> = [
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        r#"mount --bind "$1" /etc/resolv.conf && mount --bind "$2" /etc/nsswitch.conf && shift 2 && exec "$@""#,
        "sh",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(resolv.display().to_string());
    args.push(nsswitch.display().to_string());
    args.push(LAUNCHER.into());
    args.extend(certs.launcher_args(&data, format!("{NAME}:{}", addr.port())));
    args.extend(
        [
            "-simulation",
            "-network=false",
            "-logtostderr",
            "-v=1",
            "--simulation-delay=10",
            "--connect-timeout=1",
        ]
        .map(String::from),
    );
    let mut launcher = Proc::start("unshare", &args, tmp.path(), "launcher");

    // The name resolves through the test's DNS server, and only through it.
    let uuid = connected(&server, LONG);
    assert!(
        dns.seen().iter().any(|q| q.name == NAME && q.qtype == 1),
        "the launcher found {NAME} without asking the test's DNS server: {:?}",
        dns.seen()
    );
    server.send(uuid, Command::Start, example("start_legacy.yaml"));
    while next_stats(&server, "STATS with the instance active").as_deref() != Some("active") {}

    // STOP, then the link drops while the name no longer resolves.
    dns.hang();
    server.send(uuid, Command::Stop, example("stop_legacy.yaml"));
    server.stop();
    let first = wait_for(LONG, "a lookup of the server's name", || {
        dns.held().first().copied()
    });
    // The loop keeps running: the STOP completes, and lookups miss their
    // deadline and are retried (twice) while the first one still hangs.
    wait_for(LONG, "the stop to be recorded", || {
        let s = ciao_test_support::recorded_state(&data, INSTANCE)?;
        s.lines().any(|l| l.trim() == "stopped: true").then_some(())
    });
    wait_for(LONG, "two lookups timing out while DNS hangs", || {
        (launcher.output().matches(LOOKUP_TIMED_OUT).count() >= 2).then_some(())
    });
    assert!(
        matches!(launcher.child.try_wait(), Ok(None)),
        "the launcher died"
    );
    // One lookup at a time: every query held so far comes from the first
    // lookup's socket.
    let held = dns.held();
    assert!(
        held.iter().all(|from| *from == first),
        "a second lookup started while the first one hung: {held:?}"
    );

    // The server comes back on the same port and the name resolves again:
    // the first STATS shows the instance stopped.
    let server = TestServer::start(
        server_tls(&certs),
        Options {
            listen: addr,
            ..Options::default()
        },
    );
    dns.answer();
    let uuid = connected(&server, Duration::from_secs(60));
    assert_eq!(
        next_stats(&server, "the first STATS after reconnecting").as_deref(),
        Some("exited"),
        "the first STATS after the name resolved again"
    );

    // SIGTERM while a lookup hangs: the launcher exits within 1 s.
    dns.hang();
    let before = dns.held().len();
    server.stop();
    wait_for(LONG, "a new lookup of the server's name", || {
        (dns.held().len() > before).then_some(())
    });
    std::thread::sleep(Duration::from_millis(200));
    let sent = Instant::now();
    launcher.signal(libc::SIGTERM);
    let status = launcher.wait_exit(Duration::from_secs(1));
    let took = sent.elapsed();
    assert!(
        status.is_some(),
        "SIGTERM not handled within 1 s while a name lookup hangs"
    );
    assert!(status.unwrap().success(), "exit status {status:?}");
    eprintln!("launcher {uuid} exited {took:?} after SIGTERM");
}
