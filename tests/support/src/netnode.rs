//! A launcher node with real tenant networking, for end-to-end tests: a
//! network namespace of the test's own with a fake physical NIC (`phys0`,
//! a bridge carrying an address: the launcher counts a bridge with an IPv4
//! address as physical), an in-process SSNTP server listening inside that
//! namespace and sending the cluster configuration's networks, and the real
//! `ciao-launcher` run there with `ip netns exec` (which also mounts a
//! `/sys` matching the namespace, read by the macvtap device-node code).
//!
//! Nothing here touches a link of the host's namespace: every `ip` call
//! names the test's namespace (`ip -n NS`, `ip netns exec NS`), and the
//! namespace is deleted on drop, taking its links with it, also when the
//! test fails.
//!
//! Also here: START payloads with a networking section (concentrator and
//! compute-node VMs), the links of the namespace as `ip -o -d link show`
//! prints them, and the device numbers of a macvtap. The kernel lab's GRE
//! tests reuse all of it inside the lab's guest.

use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ciao::payloads::{ErrorReport, Stat};
use ciao::ssntp::frame::{self, ErrorCode, Op};
use ciao::ssntp::server::ServerEvent;
use ciao::ssntp::tls;
use ciao::ssntp::uuid::Uuid;

use crate::certgen::{self, CertSet, KeyKind};
use crate::proc::{wait_for, Proc, TempDir};
use crate::ssntp_server::{Options, TestServer};

/// The fake physical NIC's name, address and network.
pub const PHYS: &str = "phys0";
pub const PHYS_IP: &str = "198.51.100.2";
pub const PHYS_NET: &str = "198.51.100.0/24";
/// Deadlines that only catch hangs.
pub const WAIT: Duration = Duration::from_secs(20);

/// Why these tests cannot run here (not root, no `ip`, no namespaces).
pub fn missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (network namespaces need root)".into());
    }
    let ok = Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Some("no ip command (iproute2)".into());
    }
    None
}

/// Why a launcher running real qemu cannot run here (as the qemu tests
/// decide: `qemu-system-x86_64` and `qemu-img` installed).
pub fn qemu_missing() -> Option<String> {
    ["qemu-system-x86_64", "qemu-img"]
        .into_iter()
        .find(|p| crate::find_program(p).is_none())
        .map(|p| format!("{p} is not installed (run .ci/install-qemu)"))
}

/// Runs `ip` with `args`; its stdout, or Err with its stderr.
pub fn ip_try(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs `ip` with `args`, panicking on failure.
#[track_caller]
pub fn ip(args: &[&str]) -> String {
    ip_try(args).unwrap_or_else(|e| panic!("{e}"))
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct Netns {
    pub name: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Netns {
    /// A fresh namespace named `<tag><pid><n>` with `lo` up.
    pub fn new(tag: &str) -> Result<Netns, String> {
        let name = format!(
            "{tag}{}-{}",
            std::process::id() % 100_000,
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        ip_try(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.try_ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip -n <ns> args`.
    pub fn try_ip(&self, args: &[&str]) -> Result<String, String> {
        let mut v = vec!["-n", self.name.as_str()];
        v.extend_from_slice(args);
        ip_try(&v)
    }

    /// `ip -n <ns> args`, panicking on failure.
    #[track_caller]
    pub fn ip(&self, args: &[&str]) -> String {
        self.try_ip(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `argv` run to completion inside the namespace (`ip netns exec`).
    pub fn exec(&self, argv: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run ip netns exec: {e}"))
    }

    /// A file as the namespace's own sysfs shows it (`/sys/class/net/...`
    /// in the host's mount shows the host's links).
    pub fn read_sys(&self, path: &str) -> Option<String> {
        let out = self.exec(&["cat", path]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Runs `f` on a thread that entered the namespace (setns changes
    /// the calling thread only); sockets made there stay in it.
    pub fn on_thread<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        let t = std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns(2) with a namespace file we hold open; it
            // changes the network namespace of this thread only.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        });
        match t.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    }

    /// A bridge standing in for a physical NIC: `addr` (CIDR) on it, up.
    /// Returns its MAC.
    pub fn add_phys(&self, name: &str, addr: &str) -> String {
        self.ip(&["link", "add", name, "type", "bridge"]);
        self.ip(&["addr", "add", addr, "dev", name]);
        self.ip(&["link", "set", name, "up"]);
        self.link(name)
            .and_then(|l| l.mac)
            .unwrap_or_else(|| panic!("{name} has no MAC"))
    }

    /// The namespace's links (`ip -o -d link show`).
    pub fn links(&self) -> Vec<LinkInfo> {
        self.ip(&["-o", "-d", "link", "show"])
            .lines()
            .filter_map(LinkInfo::parse)
            .collect()
    }

    /// The link `name`, if it exists.
    pub fn link(&self, name: &str) -> Option<LinkInfo> {
        self.links().into_iter().find(|l| l.name == name)
    }

    /// The link whose alias is `alias`, if any.
    pub fn link_by_alias(&self, alias: &str) -> Option<LinkInfo> {
        self.links()
            .into_iter()
            .find(|l| l.alias.as_deref() == Some(alias))
    }

    /// Waits until `pred` holds for the links; returns them.
    pub fn wait_links(&self, what: &str, pred: impl Fn(&[LinkInfo]) -> bool) -> Vec<LinkInfo> {
        wait_for(WAIT, what, || {
            let l = self.links();
            pred(&l).then_some(l)
        })
    }

    /// `ip monitor link` in the namespace, its output in
    /// `<dir>/monitor-<ns>.log`, returned once it reports events (a probe
    /// link is made and deleted until it shows): what the test does next
    /// is seen, even links that exist only for a moment.
    pub fn monitor(&self, dir: &Path) -> Proc {
        let args: Vec<String> = ["-n", &self.name, "monitor", "link"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let m = Proc::start("ip", &args, dir, &format!("monitor-{}", self.name));
        wait_for(WAIT, "ip monitor to report", || {
            self.ip(&["link", "add", "mprobe0", "type", "bridge"]);
            self.ip(&["link", "del", "mprobe0"]);
            std::thread::sleep(Duration::from_millis(50));
            m.output().contains("Deleted").then_some(())
        });
        m
    }

    /// The device number sysfs gives for the macvtap `name`'s character
    /// device, with its `tap<N>` name.
    pub fn macvtap_dev(&self, name: &str) -> Option<(String, (u32, u32))> {
        let index = self.read_sys(&format!("/sys/class/net/{name}/ifindex"))?;
        let tap = format!("tap{index}");
        let dev = self.read_sys(&format!("/sys/class/net/{name}/macvtap/{tap}/dev"))?;
        let (maj, min) = dev.split_once(':')?;
        Some((tap, (maj.parse().ok()?, min.parse().ok()?)))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = ip_try(&["netns", "del", &self.name]) {
            let _ = writeln!(std::io::stderr(), "cleanup: {e}");
        }
    }
}

/// A character device's (major, minor), `None` for anything else.
pub fn char_dev(path: &Path) -> Option<(u32, u32)> {
    let m = std::fs::metadata(path).ok()?;
    if !m.file_type().is_char_device() {
        return None;
    }
    let d = m.rdev();
    // glibc's gnu_dev_major / gnu_dev_minor.
    let major = ((d >> 8) & 0xfff) | ((d >> 32) & !0xfff);
    let minor = (d & 0xff) | ((d >> 12) & !0xff);
    Some((major as u32, minor as u32))
}

/// One link as `ip -o -d link show` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    /// After `@`: the lower link (macvtap) or the peer (veth).
    pub parent: Option<String>,
    pub up: bool,
    pub mtu: u32,
    pub qlen: u32,
    pub master: Option<String>,
    pub mac: Option<String>,
    /// The link kind (`bridge`, `macvtap`, `tun`, `veth`, `gretap`).
    pub kind: Option<String>,
    /// The kind's details (`macvtap mode bridge ...`).
    pub details: String,
    pub alias: Option<String>,
}

impl LinkInfo {
    /// One line of `ip -o -d link show`: segments separated by `\`.
    pub fn parse(line: &str) -> Option<LinkInfo> {
        let mut segs = line.split('\\').map(str::trim);
        let head = segs.next()?;
        let (index, rest) = head.split_once(": ")?;
        let (ifname, rest) = rest.split_once(": ")?;
        let (name, parent) = match ifname.split_once('@') {
            Some((n, p)) => (n.to_string(), Some(p.to_string())),
            None => (ifname.to_string(), None),
        };
        let flags = rest.split_once('<')?.1.split_once('>')?.0;
        let words: Vec<&str> = rest.split_whitespace().collect();
        let after = |k: &str| {
            words
                .iter()
                .position(|w| *w == k)
                .and_then(|i| words.get(i + 1))
                .map(|s| s.to_string())
        };
        let mut l = LinkInfo {
            index: index.trim().parse().ok()?,
            name,
            parent,
            up: flags.split(',').any(|f| f == "UP"),
            mtu: after("mtu").and_then(|v| v.parse().ok()).unwrap_or(0),
            qlen: after("qlen").and_then(|v| v.parse().ok()).unwrap_or(0),
            master: after("master"),
            mac: None,
            kind: None,
            details: String::new(),
            alias: None,
        };
        for (i, seg) in segs.enumerate() {
            if let Some(a) = seg.strip_prefix("alias ") {
                l.alias = Some(a.to_string());
            } else if i == 0 {
                if let Some(m) = seg.strip_prefix("link/ether ") {
                    l.mac = m.split_whitespace().next().map(str::to_string);
                }
            } else if l.kind.is_none() && !seg.starts_with("addrgenmode") {
                l.kind = seg.split_whitespace().next().map(str::to_string);
                l.details = seg.to_string();
            }
        }
        Some(l)
    }

    /// The word after `key` in the kind's details (`mode` → `bridge`).
    pub fn detail(&self, key: &str) -> Option<&str> {
        let mut w = self.details.split_whitespace();
        w.by_ref().find(|x| *x == key)?;
        w.next()
    }
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

/// A launcher with tenant networking in a namespace of its own. Fields
/// drop in order: the launcher first, then the server, the namespace
/// (with its links) and the temporary directory.
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
    /// Flags after the defaults (`-simulation`, ...).
    pub extra: Vec<String>,
    /// Enter the namespace with `nsenter --net` instead of `ip netns
    /// exec`: `/sys` then shows the host's links, not the namespace's
    /// (how a launcher fares when sysfs does not match its namespace).
    pub host_sysfs: bool,
    starts: u32,
}

impl NetNode {
    /// A namespace `tag…` with `phys0`, and a server there sending
    /// `config` (see [`cluster_config`]); no launcher yet. Err: why the
    /// namespace could not be made.
    pub fn new(bin: &str, tag: &str, config: Vec<u8>, extra: &[&str]) -> Result<NetNode, String> {
        let ns = Netns::new(tag)?;
        let phys_mac = ns.add_phys(PHYS, &format!("{PHYS_IP}/24"));
        let tmp = TempDir::new(tag);
        let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
        let ca = tls::load_ca(&certs.ca_pem_path).map_err(|e| e.to_string())?;
        let id = tls::load_identity(&certs.server_pem_path).map_err(|e| e.to_string())?;
        let server_tls = tls::server_config(&ca, &id).map_err(|e| e.to_string())?;
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
            extra: extra.iter().map(|s| s.to_string()).collect(),
            host_sysfs: false,
            starts: 0,
        })
    }

    /// The launcher's flags: certificates, data root, server, networking
    /// on, the test's extra flags, then `more`.
    pub fn launcher_args(&self, more: &[&str]) -> Vec<String> {
        let mut args = self.certs.launcher_args(&self.data, self.server.addr);
        args.push("-network=true".into());
        args.extend(self.extra.iter().cloned());
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
        let args = self.launcher_args(&["-logtostderr", "-v=1", "--stats-interval=1"]);
        let p = self.spawn(args);
        self.launcher = Some(p);
        self.uuid = wait_for(WAIT, "the launcher to connect", || {
            match self.server.events.recv_timeout(Duration::from_millis(100)) {
                Ok(ServerEvent::Connected { uuid, .. }) => Some(uuid),
                _ => None,
            }
        });
    }

    /// SIGKILL, then the disconnect.
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
        self.server.expect_disconnect(WAIT);
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

    /// Everything the launchers logged so far.
    pub fn log(&self) -> String {
        (1..=self.starts)
            .map(|i| {
                std::fs::read_to_string(self.tmp.path().join(format!("launcher-{i}.log")))
                    .unwrap_or_default()
            })
            .collect()
    }

    pub fn send(&self, operand: frame::Command, payload: Vec<u8>) {
        self.server.send(self.uuid, operand, payload);
    }

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

    /// The next STATS satisfying `pred`.
    pub fn stats(&self, what: &str, pred: impl Fn(&Stat) -> bool) -> Stat {
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.server.expect_stats(WAIT, what, pred)
        }));
        got.unwrap_or_else(|_| panic!("no STATS with {what}\n--- launcher ---\n{}", self.log()))
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

    /// The next ERROR frame.
    pub fn error(&self, what: &str) -> (ErrorCode, ErrorReport) {
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.server.expect_error(WAIT, what)
        }));
        got.unwrap_or_else(|_| panic!("no {what}\n--- launcher ---\n{}", self.log()))
    }

    /// The next frame whose op is `op`.
    pub fn frame(&self, what: &str, op: Op) -> frame::Frame {
        self.server.expect_frame(WAIT, what, |f| f.op == op).1
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
