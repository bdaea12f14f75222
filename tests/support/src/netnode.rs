//! A launcher node with real tenant networking, for end-to-end tests: a
//! network namespace of the test's own ([`Netns`]) with a fake physical
//! NIC (`phys0`, a bridge carrying an address: the launcher counts a
//! bridge with an IPv4 address as physical), an in-process SSNTP server
//! listening inside that namespace and sending the cluster configuration's
//! networks, and the real `ciao-launcher` run there with `ip netns exec`
//! (which also mounts a `/sys` matching the namespace, read by the macvtap
//! device-node code).
//!
//! The node keeps every frame the launcher sends, in arrival order
//! ([`NetNode::mark`]): a test can wait for "the next STATS matching ..."
//! ([`NetNode::stats`]) or count tenant events exactly since a mark
//! ([`NetNode::frames`]). Used by `tests/net_launcher.rs` on this machine
//! and by the kernel lab's GRE tests (`tests/lab_gre.rs`) in its guest.
//!
//! Nothing here touches a link of the host's namespace: every `ip` call
//! names the test's namespace (`ip -n NS`, `ip netns exec NS`), and the
//! namespace is deleted on drop, taking its links with it, also when the
//! test fails.
//!
//! Also here: START payloads with a networking section (concentrator and
//! compute-node VMs).

use std::cell::{Cell, RefCell};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ciao::payloads::{ErrorReport, Stat};
use ciao::ssntp::frame::{self, ErrorCode, Frame, Op};
use ciao::ssntp::server::ServerEvent;
use ciao::ssntp::tls;
use ciao::ssntp::uuid::Uuid;

use crate::certgen::{self, CertSet, KeyKind};
use crate::netns::{char_dev, summary, LinkInfo, Netns, WAIT};
use crate::proc::{rand_u64, Proc, TempDir};
use crate::qemu::kill_qemus;
use crate::ssntp_server::{Options, TestServer};

/// The fake physical NIC's name, address and network.
pub const PHYS: &str = "phys0";
pub const PHYS_IP: &str = "198.51.100.2";
pub const PHYS_NET: &str = "198.51.100.0/24";

/// Why a launcher running real qemu cannot run here (as the qemu tests
/// decide: `qemu-system-x86_64` and `qemu-img` installed).
pub fn qemu_missing() -> Option<String> {
    ["qemu-system-x86_64", "qemu-img"]
        .into_iter()
        .find(|p| crate::find_program(p).is_none())
        .map(|p| format!("{p} is not installed (run .ci/install-qemu)"))
}

/// `qemu-img create -f qcow2 PATH SIZE`: a blank disk (the guest need not
/// boot).
pub fn blank_image(path: &Path, size: &str) {
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

/// A concentrator's or a compute-node VM's START, with its networking
/// section. [`StartSpec::cnci`] follows `examples/payloads/start_nn.yaml`,
/// [`StartSpec::cn`] `start_legacy.yaml`; fields can be changed before
/// [`StartSpec::payload`].
#[derive(Debug, Clone)]
pub struct StartSpec {
    pub id: String,
    pub tenant: String,
    pub image: String,
    pub mac: String,
    pub vnic_uuid: String,
    pub mem_mb: u32,
    /// `None`: a concentrator (requests `network_node`); `Some`: a VM of
    /// a tenant subnet routed by that concentrator.
    pub cn: Option<CnNet>,
}

/// The tenant-subnet part of a compute-node VM's networking section.
#[derive(Debug, Clone)]
pub struct CnNet {
    pub concentrator_ip: String,
    pub concentrator_uuid: String,
    pub subnet: String,
    pub private_ip: String,
}

impl StartSpec {
    /// A concentrator VM `id`.
    pub fn cnci(id: &str) -> StartSpec {
        StartSpec {
            id: id.into(),
            tenant: "67d86208-0000-0000-9018-fe14087d415f".into(),
            image: "b286cd45-7d0c-4525-a140-4db6c95e41fa".into(),
            mac: "02:00:e6:f5:af:f9".into(),
            vnic_uuid: "67d86208-b46c-0000-0000-fe14087d415f".into(),
            mem_mb: 128,
            cn: None,
        }
    }

    /// A compute-node VM `id` on subnet 192.168.8.0/21.
    pub fn cn(id: &str) -> StartSpec {
        StartSpec {
            id: id.into(),
            tenant: "67d86208-0000-4465-9018-fe14087d415f".into(),
            image: "b286cd45-7d0c-4525-a140-4db6c95e41fa".into(),
            mac: "02:00:e6:f5:af:fa".into(),
            vnic_uuid: "67d86208-b46c-0000-9018-fe14087d415f".into(),
            mem_mb: 128,
            cn: Some(CnNet {
                concentrator_ip: "192.168.42.21".into(),
                concentrator_uuid: "67d86208-b46c-4465-0000-fe14087d415f".into(),
                subnet: "192.168.8.0/21".into(),
                private_ip: "192.168.8.2".into(),
            }),
        }
    }

    /// The START payload (YAML, with user-data and meta-data documents).
    pub fn payload(&self) -> Vec<u8> {
        let mut net = format!(
            "  networking:\n    vnic_mac: {}\n    vnic_uuid: {}\n",
            self.mac, self.vnic_uuid
        );
        let mut resources = format!(
            "     - type: vcpus\n       value: 1\n     - type: mem_mb\n       value: {}\n",
            self.mem_mb
        );
        match &self.cn {
            None => resources += "     - type: network_node\n       value: 1\n",
            Some(c) => {
                net += &format!(
                    "    concentrator_ip: {}\n    concentrator_uuid: {}\n    subnet: {}\n    private_ip: {}\n",
                    c.concentrator_ip, c.concentrator_uuid, c.subnet, c.private_ip
                )
            }
        }
        format!(
            "---\n#cloud-config\nruncmd:\n  - [ touch, \"/etc/bootdone\" ]\nstart:\n  requested_resources:\n{resources}  instance_uuid: {}\n  tenant_uuid: {}\n  image_uuid: {}\n  fw_type: legacy\n{net}...\n---\n{{\n  \"uuid\": \"ciao\",\n  \"hostname\": \"ciao\"\n}}\n...\n",
            self.id, self.tenant, self.image
        )
        .into_bytes()
    }

    /// The subnet tuple `<tenant>_<subnet>_<concentrator uuid>_<ip>` of a
    /// compute-node VM.
    fn tuple(&self) -> Option<String> {
        self.cn.as_ref().map(|c| {
            format!(
                "{}_{}_{}_{}",
                self.tenant, c.subnet, c.concentrator_uuid, c.concentrator_ip
            )
        })
    }

    /// The alias of the instance's own link: `cncivnic_<tenant>_<vnic
    /// uuid>` for a concentrator, `vnic_<tuple>##<private ip>` for a VM.
    pub fn vnic_alias(&self) -> String {
        match (&self.cn, self.tuple()) {
            (Some(c), Some(t)) => format!("vnic_{t}##{}", c.private_ip),
            _ => format!("cncivnic_{}_{}", self.tenant, self.vnic_uuid),
        }
    }

    /// A compute-node VM's tenant bridge alias (`br_<tuple>`).
    pub fn bridge_alias(&self) -> Option<String> {
        self.tuple().map(|t| format!("br_{t}"))
    }

    /// A compute-node VM's GRE tunnel alias (`gre_<tuple>`).
    pub fn tunnel_alias(&self) -> Option<String> {
        self.tuple().map(|t| format!("gre_{t}"))
    }
}

/// The `configure` payload with the launcher's networks.
pub fn cluster_config(compute_net: &str, mgmt_net: &str) -> Vec<u8> {
    format!(
        "configure:\n  launcher:\n    compute_net:\n    - {compute_net}\n    mgmt_net:\n    - {mgmt_net}\n    disk_limit: false\n    mem_limit: false\n"
    )
    .into_bytes()
}

/// A docker plugin name no other test of any process uses at the same
/// time: `ciaot<pid>x<n>`.
pub fn unique_plugin_name() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("ciaot{}x{n}", std::process::id())
}

/// How to make a [`NetNode`].
pub struct NodeOptions {
    /// The `configure` payload the server sends (see [`cluster_config`]).
    pub config: Vec<u8>,
    /// Flags every launcher of the node gets after the certificates, data
    /// root and server (more can be given per start).
    pub flags: Vec<String>,
    /// Where the node's directory (certificates, data root, logs) is
    /// made. The kernel lab passes `/run`: its `/tmp` is an overlay, where
    /// a file's device number is not its directory's.
    pub base: PathBuf,
}

impl Default for NodeOptions {
    /// phys0's network as compute and management network, `-network=true`
    /// with a docker plugin name of the node's own (its socket is
    /// `/run/docker/plugins/<name>.sock`, shared by every namespace), the
    /// system's temporary directory.
    fn default() -> Self {
        NodeOptions {
            config: cluster_config(PHYS_NET, PHYS_NET),
            flags: vec![
                "-network=true".into(),
                format!("--docker-plugin-name={}", unique_plugin_name()),
            ],
            base: std::env::temp_dir(),
        }
    }
}

/// A frame the launcher sent, numbered in arrival order.
pub struct Seen {
    pub n: usize,
    pub at: Instant,
    pub frame: Frame,
}

/// A launcher with tenant networking in a namespace of its own. Fields
/// drop in order: the launcher first (then, in [`Drop`], every qemu under
/// the data root), the server, the namespace (with its links) and the
/// node's directory.
pub struct NetNode {
    pub launcher: Option<Proc>,
    pub server: TestServer,
    pub ns: Netns,
    pub tmp: TempDir,
    pub certs: CertSet,
    /// The node's UUID once the launcher connected.
    pub uuid: Uuid,
    pub data: PathBuf,
    /// `phys0`'s MAC.
    pub phys_mac: String,
    /// The `ciao-launcher` binary.
    bin: String,
    /// [`NodeOptions::flags`].
    pub flags: Vec<String>,
    /// Enter the namespace with `nsenter --net` instead of `ip netns
    /// exec`: `/sys` then shows the host's links, not the namespace's
    /// (how a launcher fares when sysfs does not match its namespace).
    pub host_sysfs: bool,
    starts: u32,
    /// Every frame received, in arrival order.
    seen: RefCell<Vec<Seen>>,
    /// Where the "next frame" methods ([`NetNode::stats`],
    /// [`NetNode::error`], [`NetNode::frame`]) look from: just after what
    /// the last of them returned.
    next: Cell<usize>,
}

impl NetNode {
    /// A namespace `tag…` with `phys0` carrying [`PHYS_IP`]/24, and a
    /// server there; no launcher yet. Err: why the namespace or the
    /// server's TLS could not be made.
    pub fn new(bin: &str, tag: &str, opts: NodeOptions) -> Result<NetNode, String> {
        let ns = Netns::new(tag)?;
        let phys_mac = ns.add_phys(PHYS, &format!("{PHYS_IP}/24"));
        let tmp = TempDir(
            opts.base
                .join(format!("cn-{tag}-{:08x}", rand_u64() as u32)),
        );
        std::fs::create_dir_all(tmp.path())
            .map_err(|e| format!("{}: {e}", tmp.path().display()))?;
        // P-521: quick to make, also under software emulation.
        let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::P521);
        let ca = tls::load_ca(&certs.ca_pem_path).map_err(|e| e.to_string())?;
        let id = tls::load_identity(&certs.server_pem_path).map_err(|e| e.to_string())?;
        let server_tls = tls::server_config(&ca, &id).map_err(|e| e.to_string())?;
        let config = opts.config;
        let server = ns.on_thread(move || {
            TestServer::start(
                server_tls,
                Options {
                    config,
                    ..Options::default()
                },
            )
        });
        let data = tmp.path().join("data");
        std::fs::create_dir_all(data.join("images")).map_err(|e| format!("data root: {e}"))?;
        Ok(NetNode {
            launcher: None,
            server,
            ns,
            tmp,
            certs,
            uuid: Uuid::NIL,
            data,
            phys_mac,
            bin: bin.to_string(),
            flags: opts.flags,
            host_sysfs: false,
            starts: 0,
            seen: RefCell::new(Vec::new()),
            next: Cell::new(0),
        })
    }

    /// The launcher's flags: certificates, data root, server, the node's
    /// flags, then `more`.
    pub fn launcher_args(&self, more: &[&str]) -> Vec<String> {
        let mut args = self.certs.launcher_args(&self.data, self.server.addr);
        args.extend(self.flags.iter().cloned());
        args.extend(more.iter().map(|s| s.to_string()));
        args
    }

    /// `ip netns exec <ns> <launcher> args` (ip execs the launcher: the
    /// child's pid is the launcher's; so does nsenter, see
    /// [`NetNode::host_sysfs`]).
    pub fn spawn(&mut self, args: Vec<String>) -> Proc {
        let (prog, mut argv) = if self.host_sysfs {
            let net = format!("--net=/run/netns/{}", self.ns.name);
            ("nsenter", vec![net, self.bin.clone()])
        } else {
            let ns = self.ns.name.clone();
            (
                "ip",
                vec!["netns".into(), "exec".into(), ns, self.bin.clone()],
            )
        };
        argv.extend(args);
        self.starts += 1;
        Proc::start(
            prog,
            &argv,
            self.tmp.path(),
            &format!("launcher-{}", self.starts),
        )
    }

    /// Starts the launcher (logging to stderr) and waits for it to
    /// connect.
    pub fn start_launcher(&mut self) {
        self.start_launcher_with(&[]);
    }

    /// Starts the launcher with `flags` after the node's and waits for it
    /// to connect.
    pub fn start_launcher_with(&mut self, flags: &[&str]) {
        let mut more = vec!["-logtostderr", "-v=1", "--stats-interval=1"];
        more.extend_from_slice(flags);
        let args = self.launcher_args(&more);
        self.launcher = Some(self.spawn(args));
        match self.until_event(|ev| match ev {
            ServerEvent::Connected { uuid, .. } => Some(*uuid),
            _ => None,
        }) {
            Some(uuid) => self.uuid = uuid,
            None => panic!(
                "the launcher did not connect within {WAIT:?}\n{}",
                self.log()
            ),
        }
    }

    /// SIGKILL (its instances and links stay), then the disconnect.
    pub fn kill9(&mut self) {
        self.end_launcher(libc::SIGKILL);
    }

    /// SIGTERM (a clean stop), then the disconnect.
    pub fn stop_launcher(&mut self) {
        self.end_launcher(libc::SIGTERM);
    }

    fn end_launcher(&mut self, sig: i32) {
        let Some(mut l) = self.launcher.take() else {
            return;
        };
        l.signal(sig);
        let st = l.wait_exit(WAIT);
        assert!(st.is_some(), "the launcher did not exit on signal {sig}");
        let gone =
            self.until_event(|ev| matches!(ev, ServerEvent::Disconnected { .. }).then_some(()));
        assert!(gone.is_some(), "no disconnect within {WAIT:?}");
    }

    /// Server events until `want` picks one, within [`WAIT`]; the frames
    /// among them are recorded. The "next frame" methods then look only
    /// at what comes after that event (a launcher's connection or
    /// disconnection): a STATS of an earlier launcher is not "the next".
    /// `None` on timeout.
    fn until_event<T>(&self, want: impl Fn(&ServerEvent) -> Option<T>) -> Option<T> {
        let end = Instant::now() + WAIT;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let ev = self.server.events.recv_timeout(left).ok()?;
            if let Some(v) = want(&ev) {
                self.next.set(self.seen.borrow().len());
                return Some(v);
            }
            if let ServerEvent::Frame { frame, .. } = ev {
                self.record(frame);
            }
        }
    }

    /// Runs the launcher with `args` to completion (within [`WAIT`]): its
    /// exit code and output.
    pub fn run_launcher(&mut self, args: Vec<String>) -> (i32, String) {
        let mut p = self.spawn(args);
        let st = p
            .wait_exit(WAIT)
            .unwrap_or_else(|| panic!("the launcher did not exit:\n{}", p.output()));
        (st.code().unwrap_or(-1), p.output())
    }

    /// Everything the launchers of this node logged, oldest first.
    pub fn log(&self) -> String {
        (1..=self.starts).map(|i| self.log_of(i)).collect()
    }

    /// The log of the current (last started) launcher.
    pub fn last_log(&self) -> String {
        self.log_of(self.starts)
    }

    fn log_of(&self, start: u32) -> String {
        std::fs::read_to_string(self.tmp.path().join(format!("launcher-{start}.log")))
            .unwrap_or_default()
    }

    pub fn send(&self, operand: frame::Command, payload: Vec<u8>) {
        self.server.send(self.uuid, operand, payload);
    }

    /// Sends `spec`'s START.
    pub fn start(&self, spec: &StartSpec) {
        self.send(frame::Command::Start, spec.payload());
    }

    /// STOP, RESTART or DELETE (`kind`) of `id`.
    pub fn command(&self, kind: &str, id: &str) {
        let op = match kind {
            "stop" => frame::Command::Stop,
            "restart" => frame::Command::Restart,
            "delete" => frame::Command::Delete,
            other => panic!("unknown command {other}"),
        };
        self.send(op, crate::cmd(kind, id));
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

    /// Records the frames that arrived, waiting up to `within` for one.
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

    /// The number of frames seen so far: a mark for [`NetNode::wait`],
    /// [`NetNode::frames`] and [`NetNode::stats_until`].
    pub fn mark(&self) -> usize {
        self.pump(Duration::ZERO);
        self.seen.borrow().len()
    }

    /// The first frame numbered `after` or later satisfying `pred`,
    /// within `within`: its number, arrival time and the frame.
    pub fn find(
        &self,
        after: usize,
        within: Duration,
        what: &str,
        pred: impl Fn(&Frame) -> bool,
    ) -> (usize, Instant, Frame) {
        let end = Instant::now() + within;
        loop {
            if let Some(s) = self
                .seen
                .borrow()
                .iter()
                .skip(after)
                .find(|s| pred(&s.frame))
            {
                return (s.n, s.at, s.frame.clone());
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
        let (n, at, f) = self.find(after, within, what, |f| f.op == op && pred(&f.payload));
        (n, at, f.payload)
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

    /// The first STATS from `after` on that satisfies `pred`, and its
    /// number; an undecodable STATS fails the test.
    fn stats_from(&self, after: usize, what: &str, pred: impl Fn(&Stat) -> bool) -> (usize, Stat) {
        let stats = Op::Command(frame::Command::Stats);
        let (n, _, f) = self.find(after, WAIT, what, |f| {
            f.op == stats
                && pred(
                    &Stat::parse(&f.payload)
                        .unwrap_or_else(|e| panic!("{what}: undecodable STATS: {e}")),
                )
        });
        let stat = Stat::parse(&f.payload).unwrap_or_else(|e| panic!("{what}: {e}"));
        (n, stat)
    }

    /// The first STATS from mark `after` on that satisfies `pred`.
    pub fn stats_until(&self, after: usize, what: &str, pred: impl Fn(&Stat) -> bool) -> Stat {
        self.stats_from(after, what, pred).1
    }

    /// The next frame (after what the last "next" method returned)
    /// satisfying `pred`.
    fn next_frame(&self, what: &str, pred: impl Fn(&Frame) -> bool) -> Frame {
        let (n, _, f) = self.find(self.next.get(), WAIT, what, pred);
        self.next.set(n + 1);
        f
    }

    /// The next STATS satisfying `pred`.
    pub fn stats(&self, what: &str, pred: impl Fn(&Stat) -> bool) -> Stat {
        let (n, stat) = self.stats_from(self.next.get(), what, pred);
        self.next.set(n + 1);
        stat
    }

    /// Waits until `id` is reported in `state` (`None`: not listed).
    pub fn wait_state(&self, id: &str, state: Option<&str>) -> Stat {
        self.stats(&format!("{id} in state {state:?}"), |s| {
            s.instances
                .iter()
                .find(|i| i.instance_uuid == id)
                .map(|i| i.state.as_str())
                == state
        })
    }

    /// The next ERROR frame: its operand and its report.
    pub fn error(&self, what: &str) -> (ErrorCode, ErrorReport) {
        let f = self.next_frame(what, |f| matches!(f.op, Op::Error(_)));
        let report = ErrorReport::parse(&f.payload)
            .unwrap_or_else(|e| panic!("{what}: undecodable ERROR payload: {e}"));
        let Op::Error(code) = f.op else {
            unreachable!("{what}: not an ERROR frame")
        };
        (code, report)
    }

    /// The next frame whose op is `op`.
    pub fn frame(&self, what: &str, op: Op) -> Frame {
        self.next_frame(what, |f| f.op == op)
    }

    /// The namespace's links.
    pub fn links(&self) -> Vec<LinkInfo> {
        self.ns.links()
    }

    /// Polls the links until `pred` holds, within `within`; returns them.
    pub fn links_until(
        &self,
        within: Duration,
        what: &str,
        pred: impl Fn(&[LinkInfo]) -> bool,
    ) -> Vec<LinkInfo> {
        let end = Instant::now() + within;
        loop {
            let links = self.links();
            if pred(&links) {
                return links;
            }
            if Instant::now() >= end {
                panic!(
                    "timed out after {within:?} waiting for {what}; links: {:#?}\n--- launcher log ---\n{}",
                    summary(&links),
                    self.log()
                );
            }
            self.pump(Duration::from_millis(50));
        }
    }

    pub fn instance_dir(&self, id: &str) -> PathBuf {
        self.data.join("instances").join(id)
    }

    /// The character device qemu would open for the macvtap `name` of
    /// instance `id`: `/dev/tap<N>` when its device number is the one
    /// the namespace's sysfs gives, else the instance's private node;
    /// Err says what is wrong.
    pub fn macvtap_node(&self, id: &str, name: &str) -> Result<PathBuf, String> {
        let (tap, want) = self
            .ns
            .macvtap_dev(name)
            .ok_or_else(|| format!("no sysfs entry for macvtap {name}"))?;
        let private = self.instance_dir(id).join("macvtap");
        if private.exists() {
            return match char_dev(&private) {
                Some(d) if d == want => Ok(private),
                got => Err(format!(
                    "{} is {got:?}, sysfs says {want:?}",
                    private.display()
                )),
            };
        }
        let shared = Path::new("/dev").join(&tap);
        match char_dev(&shared) {
            Some(d) if d == want => Ok(shared),
            got => Err(format!(
                "no private node and {} is {got:?}, sysfs says {want:?}",
                shared.display()
            )),
        }
    }
}

impl Drop for NetNode {
    fn drop(&mut self) {
        drop(self.launcher.take());
        kill_qemus(&self.data);
        if std::thread::panicking() {
            let _ = writeln!(
                std::io::stderr(),
                "--- launcher logs ---\n{}\n--- links of {} ---\n{}",
                self.log(),
                self.ns.name,
                self.ns.try_ip(&["-d", "link", "show"]).unwrap_or_default()
            );
        }
    }
}
