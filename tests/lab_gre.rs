//! Tests that need Debian's stock kernel (`ip_gre` and friends), run inside
//! the kernel lab (`tests/lab/README.md`).
//!
//! One ordinary test, `kernel_lab`, boots the lab once and runs this same
//! binary inside with `--ignored --test-threads=1`: the `#[ignore]`d tests
//! below are the inner tests, and each starts with `lab::inside`. To add
//! one: write an `#[ignore = "inner: ..."]` test that begins with
//! `if !lab::inside("name") { return; }`; the next `cargo test --test
//! lab_gre` runs it in the same boot.
//!
//! Without root or qemu the outer test prints `SKIPPED` (it fails under
//! `CI=true`). Every link is made in namespaces the inner tests create, in
//! the guest: nothing touches the host's network.

use std::process::Command;
use std::time::{Duration, Instant};

use ciao_test_support::lab;
use ciao_test_support::netns::Netns;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

/// The tunnel key of the GRE proof (any 32-bit value; this one is not the
/// default of anything).
const KEY: &str = "331948";
/// The same key as `ip -d link show` prints it (a dotted quad).
const KEY_SHOWN: &str = "ikey 0.5.16.172 okey 0.5.16.172";

/// The outer test: boots the lab once for all the inner tests.
#[test]
fn kernel_lab() {
    lab::run_suite("kernel_lab", CACHE, &lab::Boot::default());
}

/// `modprobe NAME`, true when it worked.
fn modprobe(name: &str) -> bool {
    Command::new("modprobe")
        .arg(name)
        .status()
        .is_ok_and(|s| s.success())
}

/// The modules the networking and storage tests will need load on the
/// lab's kernel (the host's kernel has no `ip_gre`, `rbd` or `nbd`).
#[test]
#[ignore = "inner: runs inside the kernel lab (kernel_lab)"]
fn modules_load() {
    if !lab::inside("modules_load") {
        return;
    }
    let mods = [
        "ip_gre", "gre", "bridge", "veth", "tun", "macvtap", "rbd", "nbd",
    ];
    let failed: Vec<&str> = mods.iter().copied().filter(|m| !modprobe(m)).collect();
    let release = Command::new("uname").arg("-r").output().unwrap().stdout;
    eprintln!(
        "modules_load: kernel {}: loaded {:?}, failed {failed:?}",
        String::from_utf8_lossy(&release).trim(),
        mods.iter()
            .filter(|m| !failed.contains(m))
            .collect::<Vec<_>>()
    );
    assert!(failed.is_empty(), "modprobe failed for {failed:?}");
    assert!(
        std::path::Path::new("/dev/net/tun").exists(),
        "no /dev/net/tun"
    );
    assert!(
        std::path::Path::new("/sys/bus/rbd").exists(),
        "no /sys/bus/rbd"
    );
}

/// A counter of `dev` in `ns` (`/sys/class/net/<dev>/statistics/<what>`).
fn counter(ns: &Netns, dev: &str, what: &str) -> u64 {
    let path = format!("/sys/class/net/{dev}/statistics/{what}");
    let out = ns.exec(&["cat", &path]).expect("ip netns exec cat");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// The GRE data plane on the lab's kernel, built by hand with `ip`: a
/// compute node ("cn") and a concentrator ("cnci") joined by a veth
/// (198.51.100.2 and .3), a gretap with key 331948 between them, bridged on
/// both sides; the concentrator's bridge carries the tenant gateway
/// (203.0.113.1), and an instance namespace behind the compute node's
/// bridge (203.0.113.2, on a veth standing in for its tap) pings it
/// through the tunnel. Addresses are documentation ranges, all inside the
/// namespaces this test makes.
#[test]
#[ignore = "inner: runs inside the kernel lab (kernel_lab)"]
fn gretap_ping_through_tunnel() {
    if !lab::inside("gretap_ping_through_tunnel") {
        return;
    }
    assert!(modprobe("ip_gre"), "modprobe ip_gre failed");
    let cn = Netns::new("cn");
    let cnci = Netns::new("cnci");
    let inst = Netns::new("inst");

    // The underlay: the two nodes' "physical" addresses.
    cn.ip(&[
        "link", "add", "phy", "type", "veth", "peer", "name", "phy", "netns", &cnci.name,
    ]);
    cn.ip(&["addr", "add", "198.51.100.2/24", "dev", "phy"]);
    cnci.ip(&["addr", "add", "198.51.100.3/24", "dev", "phy"]);
    cn.ip(&["link", "set", "phy", "up"]);
    cnci.ip(&["link", "set", "phy", "up"]);

    // A bridge with a gretap on each side.
    for (ns, local, remote) in [
        (&cn, "198.51.100.2", "198.51.100.3"),
        (&cnci, "198.51.100.3", "198.51.100.2"),
    ] {
        ns.ip(&[
            "link", "add", "gt", "type", "gretap", "local", local, "remote", remote, "key", KEY,
        ]);
        ns.ip(&["link", "add", "tbr", "type", "bridge"]);
        ns.ip(&["link", "set", "gt", "master", "tbr"]);
        ns.ip(&["link", "set", "gt", "up"]);
        ns.ip(&["link", "set", "tbr", "up"]);
    }
    let shown = cn.ip(&["-d", "link", "show", "gt"]);
    assert!(
        shown.contains("gretap") && shown.contains(KEY_SHOWN),
        "{shown}"
    );
    // The gateway on the concentrator's bridge; the instance behind the
    // compute node's bridge.
    cnci.ip(&["addr", "add", "203.0.113.1/24", "dev", "tbr"]);
    cn.ip(&[
        "link", "add", "vm", "type", "veth", "peer", "name", "eth0", "netns", &inst.name,
    ]);
    cn.ip(&["link", "set", "vm", "master", "tbr"]);
    cn.ip(&["link", "set", "vm", "up"]);
    inst.ip(&["addr", "add", "203.0.113.2/24", "dev", "eth0"]);
    inst.ip(&["link", "set", "eth0", "up"]);

    let before = counter(&cnci, "gt", "rx_packets");
    let t = Instant::now();
    // No ping(8) on these machines: busybox's.
    let ping = if Command::new("ping").arg("-V").output().is_ok() {
        vec!["ping"]
    } else {
        vec!["busybox", "ping"]
    };
    let mut argv = ping.clone();
    argv.extend(["-c", "3", "-W", "5", "203.0.113.1"]);
    let out = inst.exec(&argv).expect("run ping");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("gretap_ping_through_tunnel: {:.1?}\n{text}", t.elapsed());
    assert!(out.status.success(), "no reply through the tunnel:\n{text}");
    let after = counter(&cnci, "gt", "rx_packets");
    assert!(
        after >= before + 3,
        "the replies did not come through the gretap (rx {before} -> {after})"
    );
}

/// qemu itself starts inside the lab (software emulation inside software
/// emulation): the later tests run a real VM on an instance's tap there.
/// Reports how long a start-and-quit takes.
#[test]
#[ignore = "inner: runs inside the kernel lab (kernel_lab)"]
fn nested_qemu_starts() {
    if !lab::inside("nested_qemu_starts") {
        return;
    }
    let t = Instant::now();
    let out = Command::new("timeout")
        .args(["120", "qemu-system-x86_64"])
        .args(["-machine", "none", "-nodefaults", "-display", "none"])
        .args(["-monitor", "none", "-serial", "none", "-S"])
        .args(["-qmp", "stdio"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            let mut stdin = c.stdin.take().expect("piped stdin");
            stdin.write_all(b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"quit\"}\n")?;
            drop(stdin);
            c.wait_with_output()
        })
        .expect("run qemu-system-x86_64");
    let took = t.elapsed();
    eprintln!(
        "nested_qemu_starts: qemu -machine none started and quit in {took:.1?} ({})",
        out.status
    );
    assert!(
        out.status.success() && took < Duration::from_secs(120),
        "qemu inside the lab: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
