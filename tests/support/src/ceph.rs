//! A real, throw-away ceph cluster for the volume tests: one monitor and
//! one OSD (`memstore`: the data lives in the OSD's memory) on 127.0.0.1
//! inside a network namespace the test creates, cephx on, a `client.ciao`
//! key (`profile rbd`), and a pool `rbd`. About 1.2 s from nothing to a
//! usable pool here; each test makes its own ([`Cluster::start`]), and the
//! [`Cluster`] guard ends it when dropped, also when the test fails: it
//! SIGKILLs the two daemons it started (by their pids: they are its
//! children, run in the foreground), deletes the namespace and removes its
//! directory. Nothing is written under `/etc/ceph`: clients get the
//! cluster's configuration file ([`Cluster::conf`]), which names its
//! keyring.
//!
//! The monitor is reachable only from the cluster's namespace: the
//! launcher under test, and so its qemu, run there too
//! ([`crate::qemu::VmNode::new_in`]), and so do the `rbd` commands of the
//! helpers ([`Cluster::rbd`]: create, import, export, status).
//!
//! Prerequisites (`.ci/install-ceph`): root, `ceph-mon`, `ceph-osd`,
//! `ceph`, `rbd`, `ceph-authtool`, `monmaptool`, and qemu's rbd block
//! driver (`qemu-block-extra`). [`missing`] says which is absent.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::proc::{rand_u64, TempDir};
use crate::qemu::{self, VmNode};
use crate::skip_or_fail;

/// The cephx user the launcher is given (`-ceph_id`).
pub const CEPH_ID: &str = "ciao";
/// The monitor's port (msgr2), free in a namespace of our own.
const MON_PORT: u16 = 3300;
/// How long the cluster may take to come up before the test gives up.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// Why the ceph tests cannot run here.
pub fn missing() -> Option<String> {
    if let Some(why) = crate::netns::missing() {
        return Some(why);
    }
    for p in [
        "ceph-mon",
        "ceph-osd",
        "ceph",
        "rbd",
        "ceph-authtool",
        "monmaptool",
    ] {
        if crate::find_program(p).is_none() {
            return Some(format!("{p} is not installed (run .ci/install-ceph)"));
        }
    }
    if rbd_block_driver().is_none() {
        return Some(
            "qemu has no rbd block driver (install qemu-block-extra: run .ci/install-ceph)".into(),
        );
    }
    None
}

/// qemu's rbd block module, where Debian installs it.
fn rbd_block_driver() -> Option<PathBuf> {
    [
        "/usr/lib/x86_64-linux-gnu/qemu",
        "/usr/lib/qemu",
        "/usr/lib64/qemu",
    ]
    .iter()
    .map(|d| Path::new(d).join("block-rbd.so"))
    .find(|p| p.is_file())
}

/// A random UUID (version 4) in text form.
pub fn uuid() -> String {
    let (a, b) = (rand_u64(), rand_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

/// For a test of VMs with volumes: the qemu prerequisites, the test guest
/// and the serial lock ([`qemu::setup`]; `cache`: the test's
/// `CARGO_TARGET_TMPDIR`), then a cluster in a namespace `<tag>…`. `None`:
/// skipped.
pub fn vm_setup(
    test: &str,
    cache: &str,
    tag: &str,
) -> Option<(MutexGuard<'static, ()>, PathBuf, Cluster)> {
    let (g, guest) = qemu::setup(test, cache)?;
    if let Some(why) = missing() {
        skip_or_fail(test, &why);
        return None;
    }
    let c = Cluster::start(tag).unwrap_or_else(|e| panic!("{test}: ceph cluster: {e}"));
    eprintln!("{test}: ceph cluster up in {:?}", c.started_in);
    Some((g, guest, c))
}

/// A running single-node cluster; ended when dropped.
pub struct Cluster {
    mon: Option<Child>,
    osd: Option<Child>,
    /// The namespace the cluster (and whoever uses it) runs in.
    pub ns: Netns,
    /// The cluster's directory: configuration, keyring, daemon data, logs.
    pub dir: TempDir,
    /// How long the start took.
    pub started_in: Duration,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGKILL: the data is throw-away, and SIGTERM takes seconds.
        for c in [self.osd.take(), self.mon.take()].into_iter().flatten() {
            kill(c);
        }
        if std::thread::panicking() {
            for n in ["mon.a", "osd.0"] {
                let log = self.dir.path().join(format!("log/{n}.out"));
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: String = text
                    .lines()
                    .rev()
                    .take(20)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n");
                eprintln!("--- ceph {n} (last lines) ---\n{tail}");
            }
        }
        // Then `ns` (deleted) and `dir` (removed) drop, in that order.
    }
}

fn kill(mut c: Child) {
    let _ = c.kill();
    let _ = c.wait();
}

impl Cluster {
    /// Starts a cluster in a fresh namespace `<tag>…`.
    pub fn start(tag: &str) -> Result<Cluster, String> {
        let t0 = Instant::now();
        let ns = Netns::new(tag)?;
        let dir = TempDir(std::env::temp_dir().join(format!(
            "ceph-{tag}-{}-{:06x}",
            std::process::id(),
            rand_u64() & 0xff_ffff
        )));
        for d in ["mon.a", "osd.0", "run", "log"] {
            std::fs::create_dir_all(dir.path().join(d)).map_err(|e| format!("{d}: {e}"))?;
        }
        let mut c = Cluster {
            mon: None,
            osd: None,
            ns,
            dir,
            started_in: Duration::ZERO,
        };
        c.bootstrap()?;
        c.started_in = t0.elapsed();
        Ok(c)
    }

    /// A node running the launcher `bin` in the cluster's namespace, told
    /// where the cluster is (`--ceph-conf`, `-ceph_id`); `extra` flags
    /// after those.
    pub fn vm_node(&self, bin: &str, guest: &Path, extra: &[&str]) -> VmNode {
        let conf = format!("--ceph-conf={}", self.conf().display());
        let id = format!("-ceph_id={CEPH_ID}");
        let mut flags = vec![conf.as_str(), id.as_str()];
        flags.extend_from_slice(extra);
        VmNode::new_in(bin, guest, &flags, &self.ns)
    }

    /// The cluster's configuration file (it names the keyring).
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("ceph.conf")
    }

    fn path(&self, rel: &str) -> String {
        self.dir.path().join(rel).display().to_string()
    }

    /// Runs `argv` inside the namespace to completion.
    pub fn exec(&self, argv: &[&str]) -> Output {
        self.ns.exec(argv)
    }

    /// Runs `argv` inside the namespace: its stdout, or why it failed.
    fn run(&self, argv: &[&str]) -> Result<String, String> {
        let out = self.exec(argv);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{}: {}{}",
                argv.join(" "),
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// `ceph -c <conf> args` (as client.admin).
    fn ceph(&self, args: &[&str]) -> Result<String, String> {
        let conf = self.conf().display().to_string();
        let mut v = vec!["ceph", "-c", &conf, "--connect-timeout", "20"];
        v.extend_from_slice(args);
        self.run(&v)
    }

    /// `rbd -c <conf> --id ciao args`: as the launcher's user.
    pub fn rbd(&self, args: &[&str]) -> Result<String, String> {
        let conf = self.conf().display().to_string();
        let mut v = vec!["rbd", "-c", &conf, "--id", CEPH_ID];
        v.extend_from_slice(args);
        self.run(&v)
    }

    /// A daemon in the foreground, as our child, inside the namespace.
    fn spawn(&self, name: &str, args: &[&str]) -> Result<Child, String> {
        let log = std::fs::File::create(self.dir.path().join(format!("log/{name}.out")))
            .map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        Command::new("ip")
            .args(["netns", "exec", &self.ns.name])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))
    }

    fn bootstrap(&mut self) -> Result<(), String> {
        let d = self.dir.path().display().to_string();
        let fsid = uuid();
        let mut conf = String::new();
        let _ = write!(
            conf,
            "[global]
fsid = {fsid}
mon host = v2:127.0.0.1:{MON_PORT}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
ms bind ipv6 = false
ms bind port min = {lo}
ms bind port max = {hi}
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = {d}/keyring
run dir = {d}/run
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon pg warn min per osd = 0
paxos propose interval = 0.05
paxos min wait = 0.01
mon data avail warn = 1
mon warn on insecure global id reclaim allowed = false
[client]
admin socket =
log file =
[mon]
mon data = {d}/mon.$id
mon cluster log file = {d}/log/cluster.log
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log
[osd]
osd data = {d}/osd.$id
keyring = {d}/osd.$id/keyring
osd objectstore = memstore
memstore device bytes = 1073741824
osd max object name len = 256
osd max object namespace len = 64
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log
",
            lo = MON_PORT + 1,
            hi = MON_PORT + 99,
        );
        std::fs::write(self.conf(), conf).map_err(|e| e.to_string())?;
        let keyring = self.path("keyring");
        let conf = self.conf().display().to_string();
        for (i, (name, caps)) in [
            ("mon.", vec!["--cap", "mon", "allow *"]),
            (
                "client.admin",
                vec![
                    "--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mgr", "allow *",
                ],
            ),
            (
                "client.ciao",
                vec![
                    "--cap",
                    "mon",
                    "profile rbd",
                    "--cap",
                    "osd",
                    "profile rbd pool=rbd",
                ],
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let mut v = vec!["ceph-authtool", keyring.as_str()];
            if i == 0 {
                v.push("--create-keyring");
            }
            v.extend(["--gen-key", "-n", name]);
            v.extend(caps);
            self.run(&v)?;
        }
        let monmap = self.path("monmap");
        let addr = format!("[v2:127.0.0.1:{MON_PORT}]");
        self.run(&[
            "monmaptool",
            "--create",
            "--fsid",
            &fsid,
            "--addv",
            "a",
            &addr,
            &monmap,
        ])?;
        self.run(&[
            "ceph-mon",
            "-c",
            &conf,
            "-i",
            "a",
            "--mkfs",
            "--monmap",
            &monmap,
            "--keyring",
            &keyring,
        ])?;
        self.mon = Some(self.spawn("mon.a", &["ceph-mon", "-c", &conf, "-i", "a", "-f"])?);
        self.until("the monitor answers", || {
            self.ceph(&["mon", "stat"]).ok().map(|_| ())
        })?;
        let osd_uuid = uuid();
        let key = self.run(&["ceph-authtool", "--gen-print-key"])?;
        let key = key.trim().to_string();
        let new_json = self.path("osd.0/new.json");
        std::fs::write(&new_json, format!("{{\"cephx_secret\": \"{key}\"}}"))
            .map_err(|e| e.to_string())?;
        let id = self.ceph(&["osd", "new", &osd_uuid, "-i", &new_json])?;
        let id = id.trim().to_string();
        if id != "0" {
            return Err(format!("the OSD got id {id:?}, not 0"));
        }
        self.run(&[
            "ceph-osd",
            "-c",
            &conf,
            "-i",
            "0",
            "--mkfs",
            "--key",
            &key,
            "--osd-uuid",
            &osd_uuid,
        ])?;
        std::fs::write(
            self.dir.path().join("osd.0/keyring"),
            format!("[osd.0]\n\tkey = {key}\n"),
        )
        .map_err(|e| e.to_string())?;
        self.osd = Some(self.spawn("osd.0", &["ceph-osd", "-c", &conf, "-i", "0", "-f"])?);
        self.until("the OSD is up", || {
            let dump = self.ceph(&["osd", "dump"]).ok()?;
            dump.lines()
                .any(|l| l.starts_with("osd.0 up"))
                .then_some(())
        })?;
        self.ceph(&["osd", "pool", "create", "rbd", "8", "8"])?;
        self.run(&["rbd", "-c", &conf, "pool", "init", "rbd"])?;
        Ok(())
    }

    /// Polls `f` until it gives something, within the start deadline.
    fn until(&self, what: &str, mut f: impl FnMut() -> Option<()>) -> Result<(), String> {
        let end = Instant::now() + START_DEADLINE;
        loop {
            if f().is_some() {
                return Ok(());
            }
            if Instant::now() >= end {
                return Err(format!("ceph: timed out waiting until {what}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `rbd create --size <mb>M <name>`.
    pub fn create(&self, name: &str, size_mb: u32) -> Result<(), String> {
        self.rbd(&["create", "--size", &format!("{size_mb}M"), name])
            .map(|_| ())
    }

    /// An image `name` of `size_mb` MiB holding `data` at offset 0
    /// (written from a temporary file with `rbd import`).
    pub fn create_with(&self, name: &str, size_mb: u32, data: &[u8]) -> Result<(), String> {
        let f = self.dir.path().join(format!("{name}.in"));
        let mut bytes = data.to_vec();
        bytes.resize(size_mb as usize * 1_048_576, 0);
        std::fs::write(&f, &bytes).map_err(|e| e.to_string())?;
        let r = self.import(&f, name);
        let _ = std::fs::remove_file(&f);
        r
    }

    /// `rbd import <file> <name>`.
    pub fn import(&self, file: &Path, name: &str) -> Result<(), String> {
        self.rbd(&["import", &file.display().to_string(), name])
            .map(|_| ())
    }

    /// The image's content (`rbd export`).
    pub fn export(&self, name: &str) -> Result<Vec<u8>, String> {
        let f = self.dir.path().join(format!("{name}.out"));
        let _ = std::fs::remove_file(&f);
        self.rbd(&["export", name, &f.display().to_string()])?;
        let b = std::fs::read(&f).map_err(|e| e.to_string());
        let _ = std::fs::remove_file(&f);
        b
    }

    /// `rbd status <name>`: who has the image open.
    pub fn status(&self, name: &str) -> Result<String, String> {
        self.rbd(&["status", name])
    }

    /// How many clients watch the image (a VM that has it open is one).
    pub fn watchers(&self, name: &str) -> Result<usize, String> {
        Ok(self
            .status(name)?
            .lines()
            .filter(|l| l.trim_start().starts_with("watcher="))
            .count())
    }

    /// Stops the monitor at once (SIGKILL): clients can no longer open
    /// images.
    pub fn kill_monitor(&mut self) {
        if let Some(c) = self.mon.take() {
            kill(c);
        }
    }
}
