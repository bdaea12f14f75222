//! Network namespaces made by a test, and `ip(8)` run inside them: every
//! link a test creates lives in one of these, never in the namespace the
//! test started in. Also here: the namespace's links as `ip -o -d link
//! show` prints them (read with iproute2, not with the crate under test),
//! the device numbers of a macvtap, and a test process playing a guest on
//! a tap ([`TapPeer`]).

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::proc::{wait_for, Proc};

/// Deadlines that only catch hangs (a debug build under the kernel lab's
/// software emulation is slow).
pub const WAIT: Duration = Duration::from_secs(60);

/// Why namespace tests cannot run here (not root, no `ip`).
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

/// A named network namespace (`ip netns add`, loopback up), deleted with
/// every link inside it when dropped, also when the test fails.
pub struct Netns {
    pub name: String,
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Netns {
    /// A fresh namespace named `<tag><pid>-<n>` with `lo` up. Err: why it
    /// could not be made.
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

    /// `argv` run to completion inside the namespace (`ip netns exec`,
    /// which also mounts a `/sys` matching the namespace), whatever its
    /// status.
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
    /// the calling thread only); sockets and taps made there stay in it.
    pub fn on_thread<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        let t = std::thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns(2) with a namespace file we hold open; it
            // changes the network namespace of this thread only.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
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
    /// After `@`: the lower link (macvtap), the peer (veth), `NONE`
    /// (gretap).
    pub parent: Option<String>,
    pub up: bool,
    pub mtu: u32,
    pub qlen: u32,
    /// The bridge it is a port of.
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

/// `name (kind, alias)` of each link, for messages.
pub fn summary(links: &[LinkInfo]) -> Vec<String> {
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

/// A test process playing the guest on an existing persistent tap: what
/// it writes leaves through the tap into the node's bridge, what reaches
/// the tap is read here.
pub struct TapPeer {
    file: File,
}

impl TapPeer {
    /// Attaches to the tap `name` of namespace `ns` (as qemu would).
    pub fn attach(ns: &Netns, name: &str) -> TapPeer {
        let n = name.to_string();
        let file = ns
            .on_thread(move || ciao::sys::tun::attach_tap(&n))
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
