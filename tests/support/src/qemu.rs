//! Helpers of the qemu end-to-end tests: prerequisites, the test guest,
//! a launcher node that runs real VMs (software emulation), and cleanup of
//! every qemu it started, by PID, even when a test fails.
//!
//! Prerequisites: root, `qemu-system-x86_64`, `qemu-img`, `xorriso`, and,
//! to build the guest the first time, `apt-get`/`dpkg` (Debian packages;
//! `.ci/install-qemu` installs the rest). With `CI=true` a missing one
//! fails the test; otherwise the test prints `SKIPPED: <why>` and returns
//! ([`skip_or_fail`]).
//!
//! The guest is built by `tests/guest/make-test-guest.sh` once and cached
//! under Cargo's target directory. VM tests run one at a time (a
//! process-wide lock): the machines are small.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ciao::payloads::{ErrorReport, Stat};
use ciao::ssntp::frame::{self, ErrorCode, Op};
use ciao::ssntp::server::ServerEvent;
use ciao::ssntp::tls;
use ciao::ssntp::uuid::Uuid;

use crate::certgen::{self, CertSet, KeyKind};
use crate::proc::{rand_u64, Proc, TempDir};
use crate::ssntp_server::{Options, TestServer};
use crate::{find_program, repo_file, skip_or_fail};

static SERIAL: Mutex<()> = Mutex::new(());

/// The backing image name of the test guest under `<data root>/images`.
pub const GUEST_IMAGE: &str = "ciao-test-guest";
/// Long enough for a software-emulated boot on a busy 2-core machine.
pub const BOOT: Duration = Duration::from_secs(150);
pub const LONG: Duration = Duration::from_secs(60);

fn missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root".into());
    }
    for p in ["qemu-system-x86_64", "qemu-img", "xorriso"] {
        if find_program(p).is_none() {
            return Some(format!("{p} is not installed (run .ci/install-qemu)"));
        }
    }
    None
}

/// The serial lock and the test guest, or `None` (skipped) when the
/// prerequisites are missing outside CI. `cache` is where the guest is
/// kept between runs: the test's `CARGO_TARGET_TMPDIR`.
pub fn setup(test: &str, cache: &str) -> Option<(MutexGuard<'static, ()>, PathBuf)> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(why) = missing() {
        skip_or_fail(test, &why);
        return None;
    }
    match guest(Path::new(cache)) {
        Ok(p) => Some((guard, p)),
        Err(why) => {
            skip_or_fail(test, &why);
            None
        }
    }
}

/// Whether OVMF is installed (EFI tests).
pub fn ovmf() -> Option<PathBuf> {
    [
        "/usr/share/qemu/OVMF.fd",
        "/usr/share/ovmf/OVMF.fd",
        "/usr/share/OVMF/OVMF_CODE.fd",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// The test guest cached under `cache`, built when missing or older than
/// its build script.
pub fn guest(cache: &Path) -> Result<PathBuf, String> {
    let dir = cache.join("ciao-test-guest");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let img = dir.join("guest.img");
    let script = repo_file("tests/guest/make-test-guest.sh");
    // One builder at a time across processes (bench and tests).
    let lock = std::fs::File::create(dir.join("lock")).map_err(|e| e.to_string())?;
    // SAFETY: flock on a descriptor we own; released when `lock` drops.
    unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    let fresh = match (std::fs::metadata(&img), std::fs::metadata(&script)) {
        (Ok(i), Ok(s)) => i.modified().ok() >= s.modified().ok(),
        _ => false,
    };
    if fresh {
        return Ok(img);
    }
    if find_program("apt-get").is_none() || find_program("dpkg").is_none() {
        return Err("building the test guest needs apt-get and dpkg (Debian)".into());
    }
    eprintln!(
        "building the test guest (Debian kernel + busybox) into {}",
        img.display()
    );
    let out = Command::new("bash")
        .arg(&script)
        .arg(&img)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}{}",
            script.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(img)
}

/// PIDs of every process whose command line mentions `root`.
pub fn pids_under(root: &Path) -> Vec<i32> {
    let needle = root.to_string_lossy().into_owned();
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return v;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid as u32 == std::process::id() {
            continue;
        }
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if cmd.is_empty() {
            continue; // zombie or kernel thread
        }
        let text = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if text.contains(&needle) && text.contains("qemu-system") {
            v.push(pid);
        }
    }
    v
}

/// SIGKILLs every qemu started under `root` and waits until they are gone.
pub fn kill_qemus(root: &Path) {
    for _ in 0..50 {
        let pids = pids_under(root);
        if pids.is_empty() {
            return;
        }
        for p in pids {
            // SAFETY: kill(2) on a qemu PID found under our own data root.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The PID of the qemu of `id`, from its pidfile.
pub fn qemu_pid(data: &Path, id: &str) -> Option<i32> {
    std::fs::read_to_string(data.join("instances").join(id).join("qemu.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The interface names of the tun descriptors `pid` holds (the kernel
/// shows them as `iff:` in the descriptor's fdinfo).
pub fn tun_ifaces(pid: i32) -> Vec<String> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return v;
    };
    for e in rd.flatten() {
        let target = std::fs::read_link(e.path()).unwrap_or_default();
        if target != Path::new("/dev/net/tun") {
            continue;
        }
        let info = format!("/proc/{pid}/fdinfo/{}", e.file_name().to_string_lossy());
        let text = std::fs::read_to_string(info).unwrap_or_default();
        v.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix("iff:"))
                .map(|n| n.trim().to_string()),
        );
    }
    v
}

/// True while `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// A START payload from the legacy example: our id, image, size, hostname;
/// `efi` drops `fw_type: legacy`; `extra_user_data` is appended to the
/// user-data.
pub fn start_payload(
    id: &str,
    hostname: &str,
    efi: bool,
    mem_mb: u32,
    extra_user_data: &str,
) -> Vec<u8> {
    let p = repo_file("examples/payloads/start_legacy.yaml");
    let text = std::fs::read_to_string(p).unwrap();
    let mut text = text
        .replace("d7d86208-b46c-4465-9018-fe14087d415f", id)
        .replace("b286cd45-7d0c-4525-a140-4db6c95e41fa", GUEST_IMAGE)
        .replace("       value: 2\n", "       value: 1\n")
        .replace("       value: 370\n", &format!("       value: {mem_mb}\n"))
        .replace(
            "\"hostname\": \"ciao\"",
            &format!("\"hostname\": \"{hostname}\""),
        );
    if efi {
        text = text.replace("  fw_type: legacy\n", "");
    }
    if !extra_user_data.is_empty() {
        // The user-data document ends before the second "...".
        let first = text.find("\n...\n").unwrap() + 5;
        let second = first + text[first..].find("\n...\n").unwrap();
        text.insert_str(second + 1, extra_user_data);
    }
    text.into_bytes()
}

/// A launcher running real qemu VMs against an in-process SSNTP server.
/// Drops the launcher first, then every qemu under its data root (by
/// PID), then the temporary directory.
pub struct VmNode {
    /// The `ciao-launcher` binary (the test's `CARGO_BIN_EXE_ciao-launcher`).
    bin: String,
    pub launcher: Option<Proc>,
    pub server: TestServer,
    pub certs: CertSet,
    pub uuid: Uuid,
    pub data: PathBuf,
    pub args: Vec<String>,
    pub path_prefix: Option<PathBuf>,
    pub tmp: TempDir,
    starts: u32,
    /// The network namespace the launcher and its server run in (`None`:
    /// the test's own).
    netns: Option<String>,
}

impl Drop for VmNode {
    fn drop(&mut self) {
        drop(self.launcher.take());
        kill_qemus(&self.data);
    }
}

impl VmNode {
    /// A node running the launcher `bin` with the guest as backing image
    /// `GUEST_IMAGE`; `extra` flags after the defaults
    /// (`-qemu-virtualisation software`, ...).
    pub fn new(
        bin: &str,
        tag: &str,
        guest: &Path,
        extra: &[&str],
        path_prefix: Option<PathBuf>,
    ) -> VmNode {
        let _ = tag;
        Self::build(bin, guest, extra, path_prefix, None)
    }

    /// A node whose launcher (and so every qemu it starts) and server run
    /// inside the network namespace `ns` (where the test's ceph monitor
    /// listens, `crate::ceph`).
    pub fn new_in(bin: &str, guest: &Path, extra: &[&str], ns: &crate::netns::Netns) -> VmNode {
        Self::build(bin, guest, extra, None, Some(ns))
    }

    fn build(
        bin: &str,
        guest: &Path,
        extra: &[&str],
        path_prefix: Option<PathBuf>,
        ns: Option<&crate::netns::Netns>,
    ) -> VmNode {
        // A short path: the QMP socket path must stay under 108 bytes.
        let tmp = loop {
            let p = std::env::temp_dir().join(format!(
                "cq{}-{}",
                std::process::id(),
                rand_u64() % 100000
            ));
            if std::fs::create_dir(&p).is_ok() {
                break TempDir(p);
            }
        };
        let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
        let ca = tls::load_ca(&certs.ca_pem_path).unwrap();
        let id = tls::load_identity(&certs.server_pem_path).unwrap();
        let server_tls = tls::server_config(&ca, &id).unwrap();
        let server = match ns {
            Some(ns) => ns.on_thread(move || TestServer::start(server_tls, Options::default())),
            None => TestServer::start(server_tls, Options::default()),
        };
        let data = tmp.path().join("data");
        std::fs::create_dir_all(data.join("images")).unwrap();
        std::os::unix::fs::symlink(guest, data.join("images").join(GUEST_IMAGE)).unwrap();
        let mut n = VmNode {
            bin: bin.to_string(),
            launcher: None,
            server,
            certs,
            uuid: Uuid::NIL,
            data,
            args: extra.iter().map(|s| s.to_string()).collect(),
            path_prefix,
            tmp,
            starts: 0,
            netns: ns.map(|n| n.name.clone()),
        };
        n.start_launcher();
        n
    }

    pub fn start_launcher(&mut self) {
        let mut args = self.certs.launcher_args(&self.data, self.server.addr);
        args.extend([
            "-network=false".to_string(),
            "-qemu-virtualisation=software".to_string(),
            "--stats-interval=2".to_string(),
            "-logtostderr".to_string(),
            "-v=1".to_string(),
        ]);
        args.extend(self.args.iter().cloned());
        self.starts += 1;
        let log = self
            .tmp
            .path()
            .join(format!("launcher-{}.log", self.starts));
        let f = std::fs::File::create(&log).unwrap();
        let mut c = match &self.netns {
            // `ip netns exec` execs the launcher: the child is the launcher.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, &self.bin]);
                c
            }
            None => Command::new(&self.bin),
        };
        c.args(&args)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f);
        if let Some(p) = &self.path_prefix {
            let path = std::env::var("PATH").unwrap_or_default();
            c.env("PATH", format!("{}:{path}", p.display()));
        }
        let child = c
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the launcher: {e}"));
        self.launcher = Some(Proc {
            child,
            name: "launcher".into(),
            log,
        });
        self.uuid = loop {
            match self.server.expect(LONG, "the launcher to connect") {
                ServerEvent::Connected { uuid, .. } => break uuid,
                _ => continue,
            }
        };
    }

    /// Everything the launchers logged so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        for i in 1..=self.starts {
            s += &std::fs::read_to_string(self.tmp.path().join(format!("launcher-{i}.log")))
                .unwrap_or_default();
        }
        s
    }

    pub fn send(&self, operand: frame::Command, payload: Vec<u8>) {
        self.server.send(self.uuid, operand, payload);
    }

    /// Waits for a STATS that satisfies `pred` (instance id → stat).
    pub fn stats_until(
        &self,
        within: Duration,
        what: &str,
        pred: impl Fn(&HashMap<String, ciao::payloads::InstanceStat>) -> bool,
    ) -> Stat {
        let end = Instant::now() + within;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "timed out waiting for {what}\n--- launcher log ---\n{}",
                    self.log()
                );
            }
            let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.server
                    .expect_frame(left, what, |f| f.op == Op::Command(frame::Command::Stats))
            }));
            let (_, f) = match got {
                Ok(x) => x,
                Err(_) => panic!(
                    "timed out waiting for {what}\n--- launcher log ---\n{}",
                    self.log()
                ),
            };
            let stat = Stat::parse(&f.payload).unwrap();
            let map = stat
                .instances
                .iter()
                .map(|i| (i.instance_uuid.clone(), i.clone()))
                .collect();
            if pred(&map) {
                return stat;
            }
        }
    }

    /// Waits until `id` is in `state`.
    pub fn wait_state(
        &self,
        id: &str,
        state: &str,
        within: Duration,
    ) -> ciao::payloads::InstanceStat {
        let s = self.stats_until(within, &format!("{id} {state}"), |m| {
            m.get(id).is_some_and(|i| i.state == state)
        });
        s.instances
            .into_iter()
            .find(|i| i.instance_uuid == id)
            .unwrap()
    }

    /// The next ERROR frame (any operand).
    pub fn error(&self, within: Duration, what: &str) -> (ErrorCode, ErrorReport) {
        self.server.expect_error(within, what)
    }

    pub fn instance_dir(&self, id: &str) -> PathBuf {
        self.data.join("instances").join(id)
    }

    pub fn console(&self, id: &str) -> String {
        String::from_utf8_lossy(
            &std::fs::read(self.instance_dir(id).join("console.log")).unwrap_or_default(),
        )
        .into_owned()
    }

    /// Waits until the console of `id` contains `needle`.
    pub fn wait_console(&self, id: &str, needle: &str, within: Duration) -> String {
        let end = Instant::now() + within;
        loop {
            let c = self.console(id);
            if c.contains(needle) {
                return c;
            }
            if Instant::now() >= end {
                panic!(
                    "console of {id} never showed {needle:?}:\n{c}\n--- launcher log ---\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGKILLs the launcher (VMs keep running) and waits for the disconnect.
    pub fn kill9(&mut self) {
        if let Some(mut l) = self.launcher.take() {
            l.signal(libc::SIGKILL);
            l.wait_exit(LONG).expect("killed launcher exits");
        }
        self.server.expect_disconnect(LONG);
    }
}
