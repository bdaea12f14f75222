//! A node of the kernel lab's networking tests: a network namespace with a
//! fake physical NIC (a bridge `phys0` carrying the node's address), an
//! in-process SSNTP server listening inside it, and the real launcher run
//! inside it with `ip netns exec` (so its `/sys` is the namespace's). The
//! test sees every frame the launcher sends, tenant events included, in
//! arrival order; and a test process can play a guest on a tap
//! ([`TapPeer`]).
//!
//! Everything happens in namespaces the test makes; the server's address
//! is the namespace's loopback.

use std::cell::RefCell;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ciao::net::link::Link;
use ciao::net::rtnl::Rtnl;
use ciao::payloads::Stat;
use ciao::ssntp::frame::{self, Frame, Op};
use ciao::ssntp::server::ServerEvent;
use ciao::ssntp::tls;
use ciao::ssntp::uuid::Uuid;

use crate::certgen::{self, CertSet, KeyKind};
use crate::netns::Netns;
use crate::proc::{rand_u64, Proc, TempDir};
use crate::qemu::kill_qemus;
use crate::ssntp_server::{Options, TestServer};

/// The fake physical NIC of every lab node.
pub const PHYS: &str = "phys0";
/// The network of the nodes' addresses: the cluster configuration's
/// compute and management networks.
pub const NODE_NET: &str = "198.51.100.0/24";
/// How long a launcher gets to connect, and a frame to come: only catches
/// hangs (a debug build under software emulation is slow).
pub const WAIT: Duration = Duration::from_secs(60);

/// Runs `f` on a thread that entered the network namespace `ns`: sockets
/// and taps it makes stay in that namespace.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns(2) with a namespace file we hold open; it changes
        // the network namespace of this short-lived thread only.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap_or_else(|_| panic!("the thread in namespace {ns} panicked"))
}

/// A frame the launcher sent, numbered in arrival order.
pub struct Seen {
    pub n: usize,
    pub at: Instant,
    pub frame: Frame,
}

/// A lab node. Dropping it ends the launcher, every qemu under its data
/// root, and the namespace with its links.
pub struct LabNode {
    pub ns: Netns,
    pub server: TestServer,
    /// The launcher's SSNTP UUID (known once it connected).
    pub uuid: Uuid,
    pub data: PathBuf,
    pub tmp: TempDir,
    bin: String,
    certs: CertSet,
    launcher: Option<Proc>,
    starts: u32,
    seen: RefCell<Vec<Seen>>,
}

impl Drop for LabNode {
    fn drop(&mut self) {
        drop(self.launcher.take());
        kill_qemus(&self.data);
        if std::thread::panicking() {
            eprintln!("--- launcher log ---\n{}", self.log());
        }
    }
}

impl LabNode {
    /// A namespace with `phys0` (a bridge, up, with `ip`/24) and a server
    /// listening on its loopback; the launcher `bin` is not started yet
    /// ([`LabNode::start`]).
    pub fn new(bin: &str, tag: &str, ip: &str) -> LabNode {
        let ns = Netns::new(tag);
        ns.ip(&["link", "add", PHYS, "type", "bridge"]);
        ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", PHYS]);
        ns.ip(&["link", "set", PHYS, "up"]);
        // Not under /tmp: the lab's /tmp is an overlay, where a file's
        // device number is not its directory's, and the launcher refuses
        // to remove an instance directory that seems to cross file
        // systems. /run is a tmpfs (and keeps the QMP socket paths short).
        let tmp = TempDir(PathBuf::from(format!(
            "/run/cl-{tag}-{:08x}",
            rand_u64() as u32
        )));
        std::fs::create_dir_all(tmp.path()).expect("the node's directory");
        // P-521: quick to make under software emulation.
        let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::P521);
        let ca = tls::load_ca(&certs.ca_pem_path).expect("test CA");
        let id = tls::load_identity(&certs.server_pem_path).expect("test server identity");
        let server_tls = tls::server_config(&ca, &id).expect("test server TLS");
        let config = format!(
            "configure:\n  launcher:\n    compute_net:\n    - {NODE_NET}\n    mgmt_net:\n    - {NODE_NET}\n    disk_limit: false\n    mem_limit: false\n"
        );
        let server = in_ns(&ns.name, move || {
            TestServer::start(
                server_tls,
                Options {
                    config: config.into_bytes(),
                    ..Options::default()
                },
            )
        });
        let data = tmp.path().join("data");
        std::fs::create_dir_all(data.join("images")).expect("data root");
        LabNode {
            ns,
            server,
            uuid: Uuid::NIL,
            data,
            tmp,
            bin: bin.to_string(),
            certs,
            launcher: None,
            starts: 0,
            seen: RefCell::new(Vec::new()),
        }
    }

    /// Starts the launcher inside the namespace with `flags` after the
    /// usual ones (`-network=true` must be among them to get links) and
    /// waits until it connected.
    pub fn start(&mut self, flags: &[&str]) {
        let mut args = vec!["netns".to_string(), "exec".into(), self.ns.name.clone()];
        args.push(self.bin.clone());
        args.extend(self.certs.launcher_args(&self.data, self.server.addr));
        args.extend(
            ["--stats-interval=1", "-logtostderr", "-v=1"]
                .iter()
                .chain(flags)
                .map(|s| s.to_string()),
        );
        self.starts += 1;
        let name = format!("launcher-{}", self.starts);
        self.launcher = Some(Proc::start("ip", &args, self.tmp.path(), &name));
        let end = Instant::now() + WAIT;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.server.events.recv_timeout(left) {
                Ok(ServerEvent::Connected { uuid, .. }) => {
                    self.uuid = uuid;
                    return;
                }
                Ok(ServerEvent::Frame { frame, .. }) => self.record(frame),
                Ok(_) => {}
                Err(_) => panic!(
                    "the launcher did not connect within {WAIT:?}\n{}",
                    self.log()
                ),
            }
        }
    }

    /// SIGKILL to the launcher (its instances and links stay) and the
    /// disconnect seen by the server.
    pub fn kill9(&mut self) {
        if let Some(mut l) = self.launcher.take() {
            l.signal(libc::SIGKILL);
            l.wait_exit(WAIT).expect("the killed launcher exits");
        }
        let end = Instant::now() + WAIT;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.server.events.recv_timeout(left) {
                Ok(ServerEvent::Disconnected { .. }) => return,
                Ok(ServerEvent::Frame { frame, .. }) => self.record(frame),
                Ok(_) => {}
                Err(_) => panic!("no disconnect within {WAIT:?}"),
            }
        }
    }

    /// Everything the launchers of this node logged, oldest first.
    pub fn log(&self) -> String {
        (1..=self.starts)
            .map(|i| {
                std::fs::read_to_string(self.tmp.path().join(format!("launcher-{i}.log")))
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The log of the current (last started) launcher.
    pub fn last_log(&self) -> String {
        std::fs::read_to_string(
            self.tmp
                .path()
                .join(format!("launcher-{}.log", self.starts)),
        )
        .unwrap_or_default()
    }

    pub fn send(&self, operand: frame::Command, payload: Vec<u8>) {
        self.server.send(self.uuid, operand, payload);
    }

    fn record(&self, frame: Frame) {
        let mut seen = self.seen.borrow_mut();
        let n = seen.len();
        seen.push(Seen {
            n,
            at: Instant::now(),
            frame,
        });
    }

    /// Takes the frames that arrived, waiting up to `within` for one.
    fn pump(&self, within: Duration) {
        if let Ok(ev) = self.server.events.recv_timeout(within) {
            if let ServerEvent::Frame { frame, .. } = ev {
                self.record(frame);
            }
            while let Ok(ev) = self.server.events.try_recv() {
                if let ServerEvent::Frame { frame, .. } = ev {
                    self.record(frame);
                }
            }
        }
    }

    /// The number of frames seen so far: a mark for [`LabNode::wait`]
    /// and [`LabNode::count`].
    pub fn mark(&self) -> usize {
        self.pump(Duration::ZERO);
        self.seen.borrow().len()
    }

    /// The first frame numbered `after` or later with operand `op` whose
    /// payload satisfies `pred`, within `within`.
    pub fn wait(
        &self,
        after: usize,
        within: Duration,
        what: &str,
        op: impl Into<Op>,
        pred: impl Fn(&[u8]) -> bool,
    ) -> (usize, Instant, Vec<u8>) {
        let op = op.into();
        let end = Instant::now() + within;
        loop {
            if let Some(s) = self
                .seen
                .borrow()
                .iter()
                .skip(after)
                .find(|s| s.frame.op == op && pred(&s.frame.payload))
            {
                return (s.n, s.at, s.frame.payload.clone());
            }
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out after {within:?} waiting for {what}\n--- launcher log ---\n{}",
                self.log()
            );
            self.pump(left.min(Duration::from_millis(200)));
        }
    }

    /// Payloads of the frames with operand `op` seen from `after` on.
    pub fn frames(&self, after: usize, op: impl Into<Op>) -> Vec<Vec<u8>> {
        let op = op.into();
        self.pump(Duration::ZERO);
        self.seen
            .borrow()
            .iter()
            .skip(after)
            .filter(|s| s.frame.op == op)
            .map(|s| s.frame.payload.clone())
            .collect()
    }

    /// The first STATS from `after` on that satisfies `pred`.
    pub fn stats_until(&self, after: usize, what: &str, pred: impl Fn(&Stat) -> bool) -> Stat {
        let (_, _, p) = self.wait(after, WAIT, what, frame::Command::Stats, |p| {
            Stat::parse(p).is_ok_and(|s| pred(&s))
        });
        Stat::parse(&p).expect("a STATS payload")
    }

    /// The namespace's links, from an rtnetlink dump made inside it.
    pub fn links(&self) -> Vec<Link> {
        links_of(&self.ns.name)
    }

    /// Polls the links until `pred` holds, within `within`.
    pub fn links_until(
        &self,
        within: Duration,
        what: &str,
        pred: impl Fn(&[Link]) -> bool,
    ) -> Vec<Link> {
        let end = Instant::now() + within;
        loop {
            let links = self.links();
            if pred(&links) {
                return links;
            }
            if Instant::now() >= end {
                panic!(
                    "timed out after {within:?} waiting for {what}; links: {:#?}\n--- launcher log ---\n{}",
                    names(&links),
                    self.log()
                );
            }
            self.pump(Duration::from_millis(50));
        }
    }
}

/// The links of namespace `ns`.
pub fn links_of(ns: &str) -> Vec<Link> {
    in_ns(ns, || {
        Rtnl::open()
            .and_then(|mut r| r.links())
            .unwrap_or_else(|e| panic!("link dump: {e}"))
    })
}

/// `name (kind, alias)` of each link, for messages.
pub fn names(links: &[Link]) -> Vec<String> {
    links
        .iter()
        .map(|l| {
            format!(
                "{} ({}, {})",
                l.name,
                l.kind.as_deref().unwrap_or("-"),
                l.alias.as_deref().unwrap_or("-")
            )
        })
        .collect()
}

/// `qemu-img create -f qcow2 PATH SIZE`: a blank disk (the guest need not
/// boot).
pub fn blank_image(path: &std::path::Path, size: &str) {
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(path)
        .arg(size)
        .stdin(Stdio::null())
        .output()
        .expect("run qemu-img");
    assert!(
        out.status.success(),
        "qemu-img create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test process playing the guest on an existing persistent tap: what
/// it writes leaves through the tap into the node's bridge, what reaches
/// the tap is read here.
pub struct TapPeer {
    file: File,
}

impl TapPeer {
    /// Attaches to the tap `name` of namespace `ns` (as qemu would).
    pub fn attach(ns: &str, name: &str) -> TapPeer {
        let n = name.to_string();
        let file = in_ns(ns, move || ciao::sys::tun::attach_tap(&n))
            .unwrap_or_else(|e| panic!("attach to tap {name}: {e}"));
        TapPeer { file }
    }

    /// Sends one Ethernet frame.
    pub fn send(&mut self, frame: &[u8]) {
        self.file.write_all(frame).expect("write to the tap");
    }

    /// The next frame, or `None` when none came before `deadline`.
    pub fn recv(&mut self, deadline: Instant) -> Option<Vec<u8>> {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: poll(2) on one pollfd we own, for at most `ms`.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r <= 0 {
            return None;
        }
        let mut buf = vec![0u8; 65536];
        let n = self.file.read(&mut buf).ok()?;
        buf.truncate(n);
        Some(buf)
    }
}
