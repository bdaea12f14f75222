//! A private dockerd for the container tests: its own data root, exec root,
//! socket and config file under a temporary directory, so a system dockerd
//! is never touched; stopped (containers removed first) when dropped.
//!
//! Prerequisites: root, `dockerd` (Debian's docker.io, installed by
//! `.ci/install-docker`) and a static busybox (`busybox-static`) for the
//! test image. With `CI=true` a missing one fails the test; otherwise the
//! test prints `SKIPPED: <why>` and returns ([`skip_or_fail`]).
//!
//! Tests that use a daemon run one at a time (a process-wide lock), to keep
//! the load low on small machines.
//!
//! The daemon runs in a network namespace of its own: a dockerd in the
//! host's namespace tidies the host's networks on start-up and shutdown
//! (it deleted the host's `docker0` bridge, after which the system dockerd
//! could not start containers). Its Unix socket is a file, reachable from
//! any network namespace, so the launcher under test talks to it as before.
//! The mount namespace stays shared: the daemon's mounts live under its
//! temporary root, and the clean-up below checks them.
//!
//! [`DockerdOptions`] can instead put the daemon into a namespace the test
//! made (the tenant-networking tests: dockerd finds a remote driver's veth
//! by name in its own namespace, so the launcher under test and the daemon
//! must share one), give it another base directory (the kernel lab's /tmp
//! is an overlay, where overlay2 cannot work: /run is a tmpfs), and leave
//! its packet filtering on (as a production dockerd: FORWARD policy DROP).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ciao::http::parse_json;

use crate::unix_http::call;
use crate::{find_program, skip_or_fail};

static SERIAL: Mutex<()> = Mutex::new(());

/// The image name the container example uses (examples/payloads/start_container.yaml).
pub const EXAMPLE_IMAGE: &str = "ubuntu:latest";

/// Where a static busybox may be.
const BUSYBOX: [&str; 2] = ["/bin/busybox", "/usr/bin/busybox"];

/// A static busybox, or why there is none.
fn static_busybox() -> Result<PathBuf, String> {
    for p in BUSYBOX {
        let Ok(bytes) = std::fs::read(p) else {
            continue;
        };
        let head = &bytes[..bytes.len().min(8192)];
        if head.windows(7).any(|w| w == b"ld-linu") {
            return Err(format!("{p} is dynamically linked; install busybox-static"));
        }
        return Ok(PathBuf::from(p));
    }
    Err("no busybox (install busybox-static)".into())
}

/// `--debug` when `CIAO_DOCKERD_DEBUG=1` (for a measuring run by hand:
/// dockerd's debug log shows each step of a container's start, with its
/// time). Never set in CI: the log grows large.
fn debug_flag() -> &'static [&'static str] {
    if std::env::var("CIAO_DOCKERD_DEBUG").as_deref() == Ok("1") {
        &["--debug"]
    } else {
        &[]
    }
}

/// How to run a private dockerd.
#[derive(Debug, Clone)]
pub struct DockerdOptions {
    /// Where its directory (`ciao-dk-…`: data root, exec root, socket,
    /// log) is made.
    pub base: PathBuf,
    /// The network namespace it runs in (a file such as
    /// `/run/netns/<name>`); `None`: a fresh one of its own.
    pub netns: Option<PathBuf>,
    /// Leave dockerd's packet filtering on (`--iptables=true`, as a
    /// production daemon: it sets the FORWARD policy to DROP).
    pub iptables: bool,
}

impl Default for DockerdOptions {
    /// The system's temporary directory, a namespace of its own, no
    /// packet filtering.
    fn default() -> Self {
        DockerdOptions {
            base: std::env::temp_dir(),
            netns: None,
            iptables: false,
        }
    }
}

/// A running private dockerd.
pub struct Dockerd {
    pub root: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    dockerd: PathBuf,
    child: Option<Child>,
    opts: DockerdOptions,
    _serial: MutexGuard<'static, ()>,
}

/// One network as `GET /networks` lists it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct NetworkSummary {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Driver")]
    pub driver: String,
}

/// A reply of the Engine API.
pub type ApiReply = crate::unix_http::Reply;

impl Dockerd {
    /// Starts a private daemon with the test image imported, or returns
    /// `None` after [`skip_or_fail`].
    pub fn require(test: &str) -> Option<Dockerd> {
        Dockerd::require_with(test, DockerdOptions::default())
    }

    /// [`Dockerd::require`] with options.
    pub fn require_with(test: &str, opts: DockerdOptions) -> Option<Dockerd> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            skip_or_fail(test, "not root (dockerd needs root)");
            return None;
        }
        let Some(dockerd) = find_program("dockerd") else {
            skip_or_fail(
                test,
                "dockerd not installed (apt-get install docker.io, or .ci/install-docker)",
            );
            return None;
        };
        if let Err(why) = static_busybox() {
            skip_or_fail(test, &why);
            return None;
        }
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let root = opts
            .base
            .join(format!("ciao-dk-{}-{}", std::process::id(), unique()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("daemon.json"), "{}\n").unwrap();
        let mut d = Dockerd {
            socket: root.join("d.sock"),
            log: root.join("dockerd.log"),
            root,
            dockerd,
            child: None,
            opts,
            _serial: serial,
        };
        if let Err(e) = d.start() {
            panic!(
                "{test}: cannot start a private dockerd: {e}\n--- dockerd log ---\n{}",
                d.log_text()
            );
        }
        d.import_busybox(EXAMPLE_IMAGE);
        Some(d)
    }

    /// Starts (or starts again) the daemon and waits until it answers.
    pub fn start(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| e.to_string())?;
        if self.opts.iptables {
            self.forwarding_off_once();
        }
        let r = &self.root;
        let mut command = Command::new(&self.dockerd);
        // Opened here, used in the child: pre_exec may not allocate.
        let netns = match &self.opts.netns {
            Some(p) => Some(File::open(p).map_err(|e| format!("{}: {e}", p.display()))?),
            None => None,
        };
        let fd = netns.as_ref().map(|f| f.as_raw_fd());
        // SAFETY: runs in the forked child before exec; setns(2) and
        // unshare(2) are single system calls (async-signal-safe) and touch
        // no memory of the parent; `fd` stays open in the parent until the
        // spawn returned. Either namespace is the test's own, so nothing
        // the daemon does to networks reaches the host.
        unsafe {
            command.pre_exec(move || {
                let r = match fd {
                    Some(fd) => libc::setns(fd, libc::CLONE_NEWNET),
                    None => libc::unshare(libc::CLONE_NEWNET),
                };
                if r == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let filtering: &[&str] = if self.opts.iptables {
            &[]
        } else {
            &["--iptables=false", "--ip-masq=false"]
        };
        let child = command
            .arg(format!("--config-file={}", r.join("daemon.json").display()))
            .arg(format!("--data-root={}", r.join("data").display()))
            .arg(format!("--exec-root={}", r.join("x").display()))
            .arg(format!("--pidfile={}", r.join("d.pid").display()))
            .arg(format!("--host=unix://{}", self.socket.display()))
            .args([
                "--bridge=none",
                "--userland-proxy=false",
                "--shutdown-timeout=1",
            ])
            .args(filtering)
            .args(debug_flag())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("{}: {e}", self.dockerd.display()))?;
        drop(netns);
        self.child = Some(child);
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.api("GET", "/_ping", b"") {
                if r.status == 200 {
                    return Ok(());
                }
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    self.child = None;
                    return Err(format!("dockerd exited: {st}"));
                }
            }
            if Instant::now() > end {
                return Err("dockerd did not answer within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A production host forwards nothing until dockerd turns forwarding
    /// on, and only then does dockerd set the FORWARD policy to DROP; a
    /// namespace made here may have inherited forwarding on (this
    /// machine's kernel copies it), so it is switched off before the
    /// daemon's first start.
    fn forwarding_off_once(&self) {
        let Some(ns) = &self.opts.netns else {
            return;
        };
        if self.root.join("forwarding-reset").exists() {
            return;
        }
        let _ = std::fs::write(self.root.join("forwarding-reset"), "");
        let st = Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .args(["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"])
            .status();
        assert!(
            st.is_ok_and(|s| s.success()),
            "cannot switch forwarding off in {}",
            ns.display()
        );
    }

    /// Removes every container (`rm -f`).
    pub fn remove_all(&self) {
        for id in self.containers() {
            let _ = self.api("DELETE", &format!("/containers/{id}?force=1&v=1"), b"");
        }
    }

    /// Stops the daemon (containers die with it, as without live-restore).
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The daemon's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One Engine API request (unversioned path: the daemon's own version).
    pub fn api(&self, method: &str, path: &str, body: &[u8]) -> Result<ApiReply, String> {
        call(&self.socket, method, path, body, Duration::from_secs(60))
    }

    /// The network namespace the daemon runs in (while it runs).
    pub fn netns_file(&self) -> Option<PathBuf> {
        match &self.opts.netns {
            Some(p) => Some(p.clone()),
            None => self
                .pid()
                .map(|p| PathBuf::from(format!("/proc/{p}/ns/net"))),
        }
    }

    /// The docker networks (`GET /networks`).
    pub fn networks(&self) -> Vec<NetworkSummary> {
        match self.api("GET", "/networks", b"") {
            Ok(r) if r.status == 200 => parse_json(&r.body).unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// The process id of a running container's first process.
    pub fn container_pid(&self, name: &str) -> Option<i32> {
        #[derive(serde::Deserialize)]
        struct I {
            #[serde(rename = "State")]
            state: S,
        }
        #[derive(serde::Deserialize)]
        struct S {
            #[serde(rename = "Pid")]
            pid: i32,
        }
        let text = self.inspect(name)?;
        let i: I = parse_json(text.as_bytes()).ok()?;
        (i.state.pid > 0).then_some(i.state.pid)
    }

    /// `argv` (a program of this machine, e.g. `ip` or `busybox ping`) run
    /// in the network namespace of the running container `name`
    /// (`nsenter --net`), whatever its status.
    pub fn in_container(&self, name: &str, argv: &[&str]) -> Output {
        let pid = self
            .container_pid(name)
            .unwrap_or_else(|| panic!("container {name} is not running"));
        Command::new("nsenter")
            .arg(format!("--net=/proc/{pid}/ns/net"))
            .args(argv)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run nsenter: {e}"))
    }

    /// `docker restart` (`POST /containers/<name>/restart`): the reply.
    pub fn restart(&self, name: &str) -> ApiReply {
        self.api("POST", &format!("/containers/{name}/restart?t=1"), b"")
            .unwrap_or_else(|e| panic!("restart {name}: {e}"))
    }

    /// `docker inspect` of a container, as JSON text.
    pub fn inspect(&self, name: &str) -> Option<String> {
        let r = self
            .api("GET", &format!("/containers/{name}/json"), b"")
            .ok()?;
        (r.status == 200).then(|| r.text())
    }

    /// Ids of every container (all states).
    pub fn containers(&self) -> Vec<String> {
        #[derive(serde::Deserialize)]
        struct L {
            #[serde(rename = "Id")]
            id: String,
        }
        match self.api("GET", "/containers/json?all=1", b"") {
            Ok(r) if r.status == 200 => parse_json::<Vec<L>>(&r.body)
                .map(|v| v.into_iter().map(|l| l.id).collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// `docker rm -f`, behind the launcher's back.
    pub fn remove(&self, name: &str) {
        let r = self
            .api("DELETE", &format!("/containers/{name}?force=1&v=1"), b"")
            .unwrap();
        assert!(r.status == 204 || r.status == 404, "rm -f {name}: {r:?}");
    }

    /// Imports a busybox root file system as `name`, with a `/bin/bash`
    /// that runs busybox's shell (the example payload runs /bin/bash).
    pub fn import_busybox(&self, name: &str) {
        let rootfs = self.root.join("rootfs");
        let bin = rootfs.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let bb = static_busybox().unwrap();
        std::fs::copy(&bb, bin.join("busybox")).unwrap();
        let list = Command::new(&bb).arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            let link = bin.join(applet.trim());
            if !applet.trim().is_empty() && !link.exists() {
                std::os::unix::fs::symlink("busybox", link).unwrap();
            }
        }
        std::fs::write(bin.join("bash"), "#!/bin/sh\nexec /bin/sh \"$@\"\n").unwrap();
        std::fs::set_permissions(
            bin.join("bash"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        for d in ["tmp", "proc", "sys", "dev", "etc"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        let tar = self.root.join("rootfs.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success(), "tar failed");
        let (repo, tag) = name.rsplit_once(':').unwrap_or((name, "latest"));
        let body = std::fs::read(&tar).unwrap();
        let r = self
            .api(
                "POST",
                &format!("/images/create?fromSrc=-&repo={repo}&tag={tag}"),
                &body,
            )
            .unwrap();
        assert_eq!(r.status, 200, "import: {}", r.text());
        assert!(!r.text().contains("error"), "import: {}", r.text());
        let _ = std::fs::remove_dir_all(&rootfs);
        let _ = std::fs::remove_file(&tar);
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.remove_all();
        }
        self.stop();
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "--- last lines of {} ---\n{}",
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        // Never descend into something still mounted under the root.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let root = self.root.to_string_lossy().into_owned();
        let busy = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .any(|m| m.starts_with(&root));
        if busy {
            eprintln!("warning: {root} still has mounts; left in place");
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A real `ciao-launcher` (no simulation) using a private dockerd, driven
/// by the in-process SSNTP test server.
pub mod node {
    use std::path::PathBuf;
    use std::time::Duration;

    use ciao::payloads::{InstanceDeleted, InstanceStat, Stat};
    use ciao::ssntp::frame::{Command, ErrorCode, Event, Op};
    use ciao::ssntp::server::ServerEvent;
    use ciao::ssntp::tls;
    use ciao::ssntp::uuid::Uuid;

    use super::Dockerd;
    use crate::certgen::{self, CertSet, KeyKind};
    use crate::cmd;
    use crate::proc::{Proc, TempDir};
    use crate::repo_file;
    use crate::ssntp_server::{Options, TestServer};

    pub const LONG: Duration = Duration::from_secs(60);
    /// The instance of examples/payloads/start_container.yaml.
    pub const EXAMPLE_ID: &str = "67d86208-b46c-4465-9018-e14087d415f";

    pub fn example(name: &str) -> String {
        let p = repo_file("examples/payloads").join(name);
        std::fs::read_to_string(p).unwrap()
    }

    /// The container example with another id, image and command.
    pub fn container_payload(id: &str, image: &str, cmd: &str) -> Vec<u8> {
        example("start_container.yaml")
            .replace(EXAMPLE_ID, id)
            .replace(
                "docker_image: ubuntu:latest",
                &format!("docker_image: {image}"),
            )
            .replace("while true; do sleep 60; done", cmd)
            .into_bytes()
    }

    /// Fields drop in order: the launcher first, the temporary directory last.
    pub struct Node {
        pub launcher: Option<Proc>,
        pub server: TestServer,
        pub certs: CertSet,
        pub tmp: TempDir,
        pub uuid: Uuid,
        pub data: PathBuf,
        pub args: Vec<String>,
        pub launches: usize,
        /// The `ciao-launcher` binary (the test's `CARGO_BIN_EXE_ciao-launcher`).
        bin: String,
    }

    impl Node {
        /// A node running the launcher `bin` against the daemon `d`, with
        /// `extra` flags after the defaults.
        pub fn new(bin: &str, tag: &str, d: &Dockerd, extra: &[&str]) -> Node {
            let tmp = TempDir::new(tag);
            let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
            let ca = tls::load_ca(&certs.ca_pem_path).unwrap();
            let id = tls::load_identity(&certs.server_pem_path).unwrap();
            let server =
                TestServer::start(tls::server_config(&ca, &id).unwrap(), Options::default());
            let data = tmp.path().join("data");
            let mut args = certs.launcher_args(&data, server.addr);
            args.extend([
                format!("--docker-socket={}", d.socket.display()),
                "-network=false".to_string(),
                "-logtostderr".to_string(),
                "-v=1".to_string(),
            ]);
            args.extend(extra.iter().map(|s| s.to_string()));
            let mut n = Node {
                bin: bin.to_string(),
                tmp,
                certs,
                server,
                launcher: None,
                uuid: Uuid::NIL,
                data,
                args,
                launches: 0,
            };
            n.start_launcher();
            n
        }

        pub fn start_launcher(&mut self) {
            self.launches += 1;
            let name = format!("launcher{}", self.launches);
            self.launcher = Some(Proc::start(&self.bin, &self.args, self.tmp.path(), &name));
            self.uuid = loop {
                match self.server.expect(LONG, "the launcher to connect") {
                    ServerEvent::Connected { uuid, .. } => break uuid,
                    _ => continue,
                }
            };
        }

        /// Everything the launcher(s) logged so far.
        pub fn log(&self) -> String {
            (1..=self.launches)
                .map(|i| {
                    std::fs::read_to_string(self.tmp.path().join(format!("launcher{i}.log")))
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join("\n")
        }

        pub fn send(&self, operand: Command, payload: Vec<u8>) {
            self.server.send(self.uuid, operand, payload);
        }

        /// Waits for a STATS satisfying `pred`.
        pub fn stats_until(&self, what: &str, pred: impl Fn(&Stat) -> bool) -> Stat {
            self.server.expect_stats(LONG, what, pred)
        }

        /// Waits for a STATS where `id` is in `state`; returns its entry.
        pub fn state(&self, id: &str, state: &str) -> InstanceStat {
            let s = self.stats_until(&format!("{id} {state}"), |s| {
                s.instances
                    .iter()
                    .any(|i| i.instance_uuid == id && i.state == state)
            });
            s.instances
                .into_iter()
                .find(|i| i.instance_uuid == id)
                .unwrap()
        }

        /// The next ERROR frame; checks operand, id and reason.
        pub fn expect_error(&self, operand: ErrorCode, id: &str, reason: &str, what: &str) {
            let (got, e) = self.server.expect_error(LONG, what);
            assert_eq!(got, operand, "{what}: got {got}");
            assert_eq!(
                (e.instance_uuid.as_str(), e.reason.as_str()),
                (id, reason),
                "{what}"
            );
        }

        /// DELETE, then InstanceDeleted and the directory gone.
        pub fn delete(&self, id: &str) {
            self.send(Command::Delete, cmd("delete", id));
            let (_, ev) = self.server.expect_frame(LONG, "InstanceDeleted", |f| {
                f.op == Op::Event(Event::InstanceDeleted)
            });
            assert_eq!(
                InstanceDeleted::parse(&ev.payload).unwrap().instance_uuid,
                id
            );
            assert!(
                !self.instance_dir(id).exists(),
                "instance directory removed"
            );
        }

        pub fn instance_dir(&self, id: &str) -> PathBuf {
            self.data.join("instances").join(id)
        }

        pub fn kill9(&mut self) {
            if let Some(mut l) = self.launcher.take() {
                l.signal(libc::SIGKILL);
                l.wait_exit(LONG).expect("killed launcher exits");
            }
            self.server.expect_disconnect(LONG);
        }
    }
}
