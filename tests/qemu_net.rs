//! A real qemu on a tap: the network arguments the qemu driver puts on a
//! VM's command line (`ciao::qemu::network_args`, the very function the
//! driver calls) make qemu attach a virtio-net NIC with the payload's MAC
//! to the persistent tap the launcher made.
//!
//! Everything happens in a private network namespace (`unshare -n`): a
//! shell there creates the tap, runs qemu in the foreground (`-S`: the
//! guest never runs), and deletes the tap once qemu has quit. The test
//! talks to qemu over QMP (a Unix socket: not tied to the namespace) and
//! looks at qemu's descriptors. No link of the host's namespace is
//! touched, and the namespace dies with its last process.
//!
//! Without root, qemu, `ip` or `unshare -n` this prints `SKIPPED: ...`
//! (it fails under `CI=true`). The macvtap attachment needs a kernel with
//! macvtap; its arguments and descriptor passing are unit-tested
//! (`qemu::cmdline`, `qemu::vm`, `launcher::io`).

// Test set-up calls libc (geteuid) directly rather than widening `ciao::sys`.
#![allow(unsafe_code)]

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ciao::driver::Vnic;
use ciao::qemu::network_args;
use ciao_test_support::proc::{wait_for, Proc, TempDir};
use ciao_test_support::qemu::{kill_qemus, pids_under, tun_ifaces};
use ciao_test_support::skip_or_fail;

const TAP: &str = "svn_t";
const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xAA, 0x0b, 0x01];
const MAC_TEXT: &str = "52:54:00:aa:0b:01";
const WAIT: Duration = Duration::from_secs(30);

/// The shell run in the private namespace: the tap, qemu (`"$@"`) in the
/// foreground, then the tap's deletion, checked.
const SCRIPT: &str = r#"set -e
ip tuntap add dev svn_t mode tap
ip link set dev svn_t up
"$@" || { echo "qemu failed: $?" >&2; exit 3; }
ip tuntap del dev svn_t mode tap
if ip link show dev svn_t >/dev/null 2>&1; then echo "svn_t is still there" >&2; exit 4; fi
echo "tap deleted"
"#;

/// Why this test cannot run here, if it cannot.
fn missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root".into());
    }
    let probes: [&[&str]; 3] = [
        &["qemu-system-x86_64", "--version"],
        &["ip", "-V"],
        &["unshare", "-n", "true"],
    ];
    for argv in probes {
        let ok = Command::new(argv[0])
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Some(format!("`{}` does not work here", argv.join(" ")));
        }
    }
    None
}

/// Kills every qemu started under the test's directory, even on failure.
struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        kill_qemus(self.0);
    }
}

/// A QMP session over a blocking socket.
struct Qmp {
    out: UnixStream,
    lines: BufReader<UnixStream>,
}

impl Qmp {
    fn connect(path: &Path, sh: &mut Proc) -> Qmp {
        let s = wait_for(WAIT, "qemu's QMP socket", || {
            if let Ok(Some(status)) = sh.child.try_wait() {
                panic!("the namespace's shell ended ({status}): {}", sh.output());
            }
            UnixStream::connect(path).ok()
        });
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut q = Qmp {
            out: s.try_clone().unwrap(),
            lines: BufReader::new(s),
        };
        let greeting = q.line();
        assert!(greeting.contains("\"QMP\""), "{greeting}");
        q.execute(r#"{"execute":"qmp_capabilities"}"#);
        q
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.lines.read_line(&mut l).expect("a QMP line");
        assert!(!l.is_empty(), "qemu closed QMP");
        l
    }

    /// Sends a command; its answer (events before it are skipped).
    fn execute(&mut self, cmd: &str) -> String {
        self.out.write_all(cmd.as_bytes()).unwrap();
        self.out.write_all(b"\n").unwrap();
        loop {
            let l = self.line();
            if l.contains("\"return\"") || l.contains("\"error\"") {
                assert!(!l.contains("\"error\""), "{cmd}: {l}");
                return l;
            }
        }
    }
}

/// The qemu (not the shell that runs it) under `root`.
fn qemu_pid(root: &Path) -> i32 {
    wait_for(WAIT, "the qemu process", || {
        pids_under(root).into_iter().find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.starts_with("qemu-system"))
        })
    })
}

#[test]
fn qemu_attaches_to_the_tap_with_the_payloads_mac() {
    const TEST: &str = "qemu_attaches_to_the_tap_with_the_payloads_mac";
    if let Some(why) = missing() {
        skip_or_fail(TEST, &why);
        return;
    }
    let tmp = TempDir::new("qemu-net");
    let _cleanup = Cleanup(tmp.path());
    let sock = tmp.path().join("qmp");
    // The driver's rule: vhost only where /dev/vhost-net opens.
    let vhost = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/vhost-net")
        .is_ok();
    eprintln!("vhost-net usable: {vhost}");
    let vnic = Vnic::Tap {
        name: TAP.into(),
        mac: MAC,
    };
    let mut args: Vec<OsString> = ["-n", "sh", "-c", SCRIPT, "sh", "qemu-system-x86_64"]
        .map(OsString::from)
        .to_vec();
    args.extend(
        [
            "-machine",
            "pc",
            "-nodefaults",
            "-display",
            "none",
            "-m",
            "64",
            "-S",
            "-qmp",
        ]
        .map(OsString::from),
    );
    args.push(format!("unix:{},server=on,wait=off", sock.display()).into());
    let net = network_args(Some(&vnic), vhost);
    assert_eq!(net[0], "-netdev");
    args.extend(net);
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut sh = Proc::start("unshare", &args, tmp.path(), "netns");

    let mut q = Qmp::connect(&sock, &mut sh);
    let info = q.execute(
        r#"{"execute":"human-monitor-command","arguments":{"command-line":"info network"}}"#,
    );
    assert!(
        info.contains(&format!("type=nic,model=virtio-net-pci,macaddr={MAC_TEXT}")),
        "{info}"
    );
    assert!(
        info.contains(&format!(
            "{TAP}: index=0,type=tap,ifname={TAP},script=no,downscript=no"
        )),
        "{info}"
    );
    let rx = q.execute(r#"{"execute":"query-rx-filter"}"#);
    assert!(
        rx.contains(&format!("\"main-mac\": \"{MAC_TEXT}\"")),
        "{rx}"
    );
    // qemu opened the tap by name: its tun descriptor is attached to it.
    let pid = qemu_pid(tmp.path());
    assert_eq!(tun_ifaces(pid), vec![TAP.to_string()]);

    q.execute(r#"{"execute":"quit"}"#);
    let status = sh.wait_exit(WAIT).expect("the namespace's shell ends");
    assert!(status.success(), "{status}: {}", sh.output());
    assert!(sh.output().contains("tap deleted"), "{}", sh.output());
}
