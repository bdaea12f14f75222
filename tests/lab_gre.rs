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

use std::process::Command as Process;
use std::time::{Duration, Instant};

use ciao::payloads::{ErrorReport, Stat, TenantEvent, TenantEventKind};
use ciao::ssntp::frame::{Command, ErrorCode, Event};
use ciao_test_support::cmd;
use ciao_test_support::lab;
use ciao_test_support::netnode::{self, blank_image, NetNode, NodeOptions, PHYS, PHYS_IP};
use ciao_test_support::netns::{summary, LinkInfo, Netns, TapPeer, WAIT};
use ciao_test_support::qemu::{alive, qemu_pid, tun_ifaces};

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

/// The tunnel key of the GRE proof (any 32-bit value; this one is not the
/// default of anything).
const KEY: &str = "331948";
/// The same key as `ip -d link show` prints it (a dotted quad).
const KEY_SHOWN: &str = "ikey 0.5.16.172 okey 0.5.16.172";

/// The outer test: boots the lab once for all the inner tests, with room
/// for the small VMs of `qemu_on_tap` (qemu inside the lab).
#[test]
fn kernel_lab() {
    let boot = lab::Boot {
        mem_mb: 1024,
        ..lab::Boot::default()
    };
    lab::run_suite("kernel_lab", CACHE, &boot);
}

/// `modprobe NAME`, true when it worked.
fn modprobe(name: &str) -> bool {
    Process::new("modprobe")
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
    let release = Process::new("uname").arg("-r").output().unwrap().stdout;
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
    ns.read_sys(&path).and_then(|v| v.parse().ok()).unwrap_or(0)
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
    let cn = Netns::new("cn").unwrap();
    let cnci = Netns::new("cnci").unwrap();
    let inst = Netns::new("inst").unwrap();

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
    let ping = if Process::new("ping").arg("-V").output().is_ok() {
        vec!["ping"]
    } else {
        vec!["busybox", "ping"]
    };
    let mut argv = ping.clone();
    argv.extend(["-c", "3", "-W", "5", "203.0.113.1"]);
    let out = inst.exec(&argv);
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
    let out = Process::new("timeout")
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

// ---------------------------------------------------------------------------
// The launcher's compute-node links, for real: each test below runs the
// real launcher in a namespace of its own ("the node", whose fake NIC
// `phys0` is a bridge carrying 198.51.100.2), against an in-process
// server listening inside it (`ciao_test_support::netnode`).

const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");
/// The node's compute address and the concentrator's.
const CN_IP: &str = PHYS_IP;
const CONC_IP: &str = "198.51.100.3";
/// The tenant subnet whose GRE key is [`KEY`].
const SUBNET: &str = "172.16.5.0/24";
const GATEWAY: [u8; 4] = [172, 16, 5, 1];
const TENANT: &str = "0c1a0000-0000-4000-8000-00000000000a";
const CONC_UUID: &str = "0c1a0000-0000-4000-8000-00000000000c";
/// The simulated virtualiser's start-up delay: short, it is not measured.
const SIM: [&str; 3] = ["-simulation", "-network=true", "--simulation-delay=10"];
/// The real qemu driver, software emulation.
const QEMU: [&str; 2] = ["-network=true", "-qemu-virtualisation=software"];

/// A node of these tests: a namespace `tag…` whose `phys0` carries
/// [`CN_IP`], the server sending its network; no launcher yet (the tests
/// give every launcher its flags, [`SIM`] or [`QEMU`]). Its files live
/// under /run, not /tmp: the lab's /tmp is an overlay, where a file's
/// device number is not its directory's, and the launcher refuses to
/// remove an instance directory that seems to cross file systems. /run is
/// a tmpfs (and keeps the QMP socket paths short).
fn lab_node(tag: &str) -> NetNode {
    let opts = NodeOptions {
        // A docker plugin of the node's own (parallel tests, one /run).
        flags: vec![format!(
            "--docker-plugin-name={}",
            netnode::unique_plugin_name()
        )],
        base: "/run".into(),
        ..NodeOptions::default()
    };
    NetNode::new(LAUNCHER, tag, opts).unwrap_or_else(|e| panic!("node {tag}: {e}"))
}

/// Loads what the launcher's links need (the kernel would load most on
/// demand; explicit is clearer when one is missing).
fn load_modules() {
    for m in ["ip_gre", "bridge", "tun", "veth", "macvtap"] {
        assert!(modprobe(m), "modprobe {m} failed");
    }
}

/// Instance `n`'s UUID.
fn vm_id(n: u32) -> String {
    format!("0c1a{n:04x}-0000-4000-8000-000000000001")
}

/// The MAC the tests give the guest with private address `ip`:
/// 02:00 and the address's four bytes (172.16.5.7 → 02:00:ac:10:05:07).
fn mac_of(ip: &str) -> String {
    let o: Vec<u8> = ip.split('.').map(|x| x.parse().unwrap()).collect();
    format!("02:00:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// An example payload of this repository.
fn example(name: &str) -> String {
    let p = format!("{}/examples/payloads/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// `text` with the value of its first `key:` line replaced.
fn set_field(text: &str, key: &str, value: &str) -> String {
    let mut done = false;
    let mut out: Vec<String> = Vec::new();
    for line in text.lines() {
        let body = line.trim_start();
        if !done && body.starts_with(&format!("{key}:")) {
            let indent = &line[..line.len() - body.len()];
            out.push(format!("{indent}{key}: {value}"));
            done = true;
        } else {
            out.push(line.to_string());
        }
    }
    assert!(done, "no {key} in the payload");
    out.join("\n") + "\n"
}

/// A START for a compute-node VM (the legacy example) with private
/// address `ip` on `subnet`, concentrator [`CONC_IP`], image `image`,
/// 1 vCPU and 64 MiB.
fn cn_start(id: &str, ip: &str, subnet: &str, image: &str) -> Vec<u8> {
    let mut t = example("start_legacy.yaml")
        .replace("       value: 2\n", "       value: 1\n")
        .replace("       value: 370\n", "       value: 64\n");
    for (k, v) in [
        ("instance_uuid", id),
        ("tenant_uuid", TENANT),
        ("image_uuid", image),
        ("vnic_mac", &mac_of(ip)),
        ("vnic_uuid", &id.replace("-000000000001", "-0000000000e0")),
        ("concentrator_ip", CONC_IP),
        ("concentrator_uuid", CONC_UUID),
        ("subnet", subnet),
        ("private_ip", ip),
    ] {
        t = set_field(&t, k, v);
    }
    t.into_bytes()
}

/// `<tenant>_<subnet>_<concentrator uuid>_<concentrator ip>`: what every
/// alias of a subnet's links carries.
fn tuple(subnet: &str) -> String {
    format!("{TENANT}_{subnet}_{CONC_UUID}_{CONC_IP}")
}

/// Links whose name starts with `prefix`.
fn named<'a>(links: &'a [LinkInfo], prefix: &str) -> Vec<&'a LinkInfo> {
    links
        .iter()
        .filter(|l| l.name.starts_with(prefix))
        .collect()
}

/// True when no link of ours (bridge, tunnel, tap, macvtap) is left.
fn none_of_ours(links: &[LinkInfo]) -> bool {
    ["sbr_", "sgt_", "svn_", "svc_"]
        .iter()
        .all(|p| named(links, p).is_empty())
}

/// The one link with `prefix`, checked: its kind, alias, up.
#[track_caller]
fn the_one<'a>(links: &'a [LinkInfo], prefix: &str, kind: &str, alias: &str) -> &'a LinkInfo {
    let v = named(links, prefix);
    assert_eq!(
        v.len(),
        1,
        "one {prefix} link expected: {:#?}",
        summary(links)
    );
    let l = v[0];
    assert_eq!(l.kind.as_deref(), Some(kind), "{l:?}");
    assert_eq!(l.alias.as_deref(), Some(alias), "{l:?}");
    assert!(l.up, "{} is down", l.name);
    l
}

/// The instance `id` of a STATS.
fn instance<'a>(s: &'a Stat, id: &str) -> Option<&'a ciao::payloads::InstanceStat> {
    s.instances.iter().find(|i| i.instance_uuid == id)
}

fn active(s: &Stat, id: &str) -> bool {
    instance(s, id).is_some_and(|i| i.state == "active")
}

fn mentions(p: &[u8], id: &str) -> bool {
    String::from_utf8_lossy(p).contains(id)
}

/// DELETE of `id`, answered by its InstanceDeleted; returns the mark
/// taken before it was sent.
fn delete(n: &NetNode, id: &str) -> usize {
    let m = n.mark();
    n.send(Command::Delete, cmd("delete", id));
    n.wait(m, WAIT, "InstanceDeleted", Event::InstanceDeleted, |p| {
        mentions(p, id)
    });
    m
}

/// Kills the launcher, deletes the links named with `prefixes` behind its
/// back, and starts a new one; returns the mark taken before the start.
fn kill_delete_restart(n: &mut NetNode, prefixes: &[&str]) -> usize {
    n.kill9();
    let links = n.links();
    for prefix in prefixes {
        n.ns.ip(&["link", "del", &named(&links, prefix)[0].name]);
    }
    let m = n.mark();
    n.start_launcher_with(&SIM);
    m
}

/// A TenantAdded/TenantRemoved payload, checked field by field against
/// [`SUBNET`]'s tuple from node `agent`.
#[track_caller]
fn check_tenant_event(payload: &[u8], kind: TenantEventKind, agent: &str) {
    let text = String::from_utf8_lossy(payload);
    let e = TenantEvent::parse(payload, kind).unwrap_or_else(|e| panic!("{e}: {text}"));
    let want = TenantEvent {
        agent_uuid: agent.to_string(),
        agent_ip: CN_IP.into(),
        tenant_uuid: TENANT.into(),
        tenant_subnet: SUBNET.into(),
        concentrator_uuid: CONC_UUID.into(),
        concentrator_ip: CONC_IP.into(),
        subnet_key: 331948,
    };
    assert_eq!(e, want, "{text}");
    assert!(text.contains("subnet_key: 331948"), "{text}");
}

/// `cn_two_instances_share_one_tunnel`: two VMs of one subnet share one
/// bridge and one tunnel, and the concentrator hears of the subnet once
/// when it arrives and once when it leaves.
#[test]
#[ignore = "inner: runs inside the kernel lab (kernel_lab)"]
fn cn_two_instances_share_one_tunnel() {
    if !lab::inside("cn_two_instances_share_one_tunnel") {
        return;
    }
    load_modules();
    let mut n = lab_node("share");
    n.start_launcher_with(&SIM);
    let m0 = n.mark();
    let (a, b) = (vm_id(1), vm_id(2));
    n.send(Command::Start, cn_start(&a, "172.16.5.7", SUBNET, "img"));
    n.send(Command::Start, cn_start(&b, "172.16.5.8", SUBNET, "img"));
    let stat = n.stats_until(m0, "both instances active", |s| {
        active(s, &a) && active(s, &b)
    });
    // SSH through the concentrator: port 33000 + 256 * c + d of a.b.c.d.
    for (id, port) in [(&a, 33000 + 5 * 256 + 7), (&b, 33000 + 5 * 256 + 8)] {
        let i = instance(&stat, id).unwrap();
        assert_eq!((i.ssh_ip.as_str(), i.ssh_port), (CONC_IP, port), "{i:?}");
    }

    let links = n.links();
    let t = tuple(SUBNET);
    let br = the_one(&links, "sbr_", "bridge", &format!("br_{t}"));
    let gt = the_one(&links, "sgt_", "gretap", &format!("gre_{t}"));
    assert_eq!(
        gt.master.as_ref(),
        Some(&br.name),
        "the tunnel is not in the bridge"
    );
    let taps = named(&links, "svn_");
    let mut aliases: Vec<&str> = taps.iter().filter_map(|l| l.alias.as_deref()).collect();
    aliases.sort();
    assert_eq!(
        aliases,
        [
            format!("vnic_{t}##172.16.5.7"),
            format!("vnic_{t}##172.16.5.8")
        ],
        "{:#?}",
        summary(&links)
    );
    for tap in &taps {
        assert_eq!(tap.kind.as_deref(), Some("tun"), "{tap:?}");
        assert_eq!(
            tap.master.as_ref(),
            Some(&br.name),
            "{} not in the bridge",
            tap.name
        );
        assert!(tap.up, "{} is down", tap.name);
    }
    let shown = n.ns.ip(&["-d", "link", "show", &gt.name]);
    for want in [
        "gretap",
        &format!("remote {CONC_IP}"),
        &format!("local {CN_IP}"),
        KEY_SHOWN,
    ] {
        assert!(shown.contains(want), "no {want:?} in\n{shown}");
    }
    let added = n.frames(m0, Event::TenantAdded);
    assert_eq!(added.len(), 1, "one TenantAdded for two instances");
    let agent = n.uuid.to_string();
    check_tenant_event(&added[0], TenantEventKind::Added, &agent);

    // STOP keeps the links for a RESTART, which finds them again.
    let before: Vec<(String, Option<String>)> = links
        .iter()
        .map(|l| (l.name.clone(), l.alias.clone()))
        .collect();
    let m = n.mark();
    n.send(Command::Stop, cmd("stop", &a));
    n.stats_until(m, "a exited", |s| {
        instance(s, &a).is_some_and(|i| i.state == "exited")
    });
    let same = |links: &[LinkInfo]| {
        let now: Vec<(String, Option<String>)> = links
            .iter()
            .map(|l| (l.name.clone(), l.alias.clone()))
            .collect();
        now == before
    };
    assert!(same(&n.links()), "STOP changed the links");
    let m = n.mark();
    n.send(Command::Restart, cmd("restart", &a));
    n.stats_until(m, "a active again", |s| active(s, &a));
    assert!(same(&n.links()), "RESTART changed the links");
    assert!(n.frames(m0, Event::TenantRemoved).is_empty());
    assert_eq!(n.frames(m0, Event::TenantAdded).len(), 1);

    // The first instance goes: only its tap.
    let m1 = delete(&n, &a);
    n.stats_until(m1, "a STATS without a", |s| instance(s, &a).is_none());
    let links = n.links();
    assert_eq!(named(&links, "svn_").len(), 1, "{:#?}", summary(&links));
    the_one(&links, "sbr_", "bridge", &format!("br_{t}"));
    the_one(&links, "sgt_", "gretap", &format!("gre_{t}"));
    assert!(n.frames(m1, Event::TenantRemoved).is_empty());

    // The last one goes: tap, tunnel and bridge, and one TenantRemoved.
    let m2 = delete(&n, &b);
    let (_, _, removed) = n.wait(m2, WAIT, "TenantRemoved", Event::TenantRemoved, |_| true);
    check_tenant_event(&removed, TenantEventKind::Removed, &agent);
    n.stats_until(m2, "a STATS without b", |s| instance(s, &b).is_none());
    let links = n.links();
    assert!(none_of_ours(&links), "{:#?}", summary(&links));
    assert_eq!(n.frames(m2, Event::TenantRemoved).len(), 1);
    assert_eq!(n.frames(m0, Event::TenantAdded).len(), 1);
}

/// `repair_after_kill_9`: the launcher is killed, links are deleted behind
/// its back, and the next launcher puts them back, with the same aliases;
/// when the whole tunnel side was gone (as after a reboot) the
/// concentrator hears TenantAdded again.
#[test]
#[ignore = "inner: runs inside the kernel lab (kernel_lab)"]
fn repair_after_kill_9() {
    if !lab::inside("repair_after_kill_9") {
        return;
    }
    load_modules();
    let mut n = lab_node("repair");
    n.start_launcher_with(&SIM);
    let m0 = n.mark();
    let a = vm_id(3);
    n.send(Command::Start, cn_start(&a, "172.16.5.7", SUBNET, "img"));
    n.stats_until(m0, "a active", |s| active(s, &a));
    n.wait(m0, WAIT, "TenantAdded", Event::TenantAdded, |_| true);
    let t = tuple(SUBNET);
    let (br_alias, gt_alias) = (format!("br_{t}"), format!("gre_{t}"));
    let tap_alias = format!("vnic_{t}##172.16.5.7");
    // Everything in place: the bridge, the tunnel and the tap in it, up.
    let complete = |links: &[LinkInfo]| {
        let one = |prefix: &str, alias: &str| {
            let v = named(links, prefix);
            (v.len() == 1 && v[0].alias.as_deref() == Some(alias) && v[0].up).then(|| v[0].clone())
        };
        match (
            one("sbr_", &br_alias),
            one("sgt_", &gt_alias),
            one("svn_", &tap_alias),
        ) {
            (Some(br), Some(gt), Some(tap)) => {
                gt.master.as_ref() == Some(&br.name) && tap.master.as_ref() == Some(&br.name)
            }
            _ => false,
        }
    };
    let links = n.links();
    assert!(complete(&links), "{:#?}", summary(&links));
    let tap = named(&links, "svn_")[0].name.clone();

    // Round 1: the tunnel alone is deleted.
    let m1 = kill_delete_restart(&mut n, &["sgt_"]);
    n.links_until(WAIT, "the tunnel repaired", complete);
    n.stats_until(m1, "a listed after the restart", |s| {
        instance(s, &a).is_some()
    });
    assert!(n.last_log().contains("links repaired"), "{}", n.last_log());
    // The concentrator's side of the tunnel did not change: no event.
    assert!(n.frames(m1, Event::TenantAdded).is_empty());

    // Round 2: bridge and tunnel are gone (the tap stays, out of any
    // bridge): the node's side of the subnet is new to the concentrator.
    let m2 = kill_delete_restart(&mut n, &["sgt_", "sbr_"]);
    let (_, _, added) = n.wait(m2, WAIT, "TenantAdded again", Event::TenantAdded, |_| true);
    check_tenant_event(&added, TenantEventKind::Added, &n.uuid.to_string());
    let links = n.links_until(WAIT, "bridge and tunnel repaired", complete);
    assert_eq!(named(&links, "svn_")[0].name, tap, "the tap was kept");
    n.stats_until(m2, "a listed after the second restart", |s| {
        instance(s, &a).is_some()
    });
    assert_eq!(n.frames(m2, Event::TenantAdded).len(), 1);

    // Round 3: every link is gone, the tap too (as after a reboot).
    let m3 = kill_delete_restart(&mut n, &["svn_", "sgt_", "sbr_"]);
    n.wait(
        m3,
        WAIT,
        "TenantAdded after the 'reboot'",
        Event::TenantAdded,
        |_| true,
    );
    n.links_until(WAIT, "all links made again", complete);
    n.stats_until(m3, "a listed after the third restart", |s| {
        instance(s, &a).is_some()
    });
    assert_eq!(n.frames(m3, Event::TenantAdded).len(), 1);
    eprintln!(
        "repair_after_kill_9: {}",
        n.last_log()
            .lines()
            .find(|l| l.contains("network topology:"))
            .unwrap_or("(no topology line)")
    );
}

/// `failed_plug_leaves_no_link` (B5 in docs/compatibility.md): the kernel
/// refuses the tunnel (a foreign gretap with the same ends and key exists
/// already: "File exists"), so the START fails with `network_failure`,
/// the kernel's reason is logged, the bridge made just before is gone, no
/// event is sent, and the bookkeeping agrees: once the foreign tunnel is
/// gone the same START succeeds.
#[test]
#[ignore = "inner: runs inside the kernel lab (kernel_lab)"]
fn failed_plug_leaves_no_link() {
    if !lab::inside("failed_plug_leaves_no_link") {
        return;
    }
    load_modules();
    let mut n = lab_node("plug");
    n.ns.ip(&[
        "link", "add", "squatter", "type", "gretap", "local", CN_IP, "remote", CONC_IP, "key", KEY,
    ]);
    n.start_launcher_with(&SIM);
    let m0 = n.mark();
    let a = vm_id(8);
    n.send(Command::Start, cn_start(&a, "172.16.5.7", SUBNET, "img"));
    let (_, _, p) = n.wait(m0, WAIT, "StartFailure", ErrorCode::StartFailure, |p| {
        mentions(p, &a)
    });
    let report = ErrorReport::parse(&p).unwrap();
    assert_eq!(report.reason, "network_failure", "{report:?}");
    let links = n.links();
    assert!(none_of_ours(&links), "{:#?}", summary(&links));
    assert!(
        links.iter().any(|l| l.name == "squatter"),
        "a foreign link was touched"
    );
    let log = n.last_log();
    let line = log
        .lines()
        .find(|l| l.contains("network_failure"))
        .unwrap_or_else(|| panic!("no network_failure in the log:\n{log}"));
    assert!(
        line.contains("File exists"),
        "the kernel's reason is not logged: {line}"
    );
    assert!(n.frames(m0, Event::TenantAdded).is_empty());
    assert!(!n.data.join("instances").join(&a).exists());

    n.ns.ip(&["link", "del", "squatter"]);
    let m1 = n.mark();
    n.send(Command::Start, cn_start(&a, "172.16.5.7", SUBNET, "img"));
    n.stats_until(m1, "a active at the second try", |s| active(s, &a));
    let links = n.links();
    let t = tuple(SUBNET);
    the_one(&links, "sbr_", "bridge", &format!("br_{t}"));
    the_one(&links, "sgt_", "gretap", &format!("gre_{t}"));
    the_one(&links, "svn_", "tun", &format!("vnic_{t}##172.16.5.7"));
    n.wait(m1, WAIT, "TenantAdded", Event::TenantAdded, |_| true);
    eprintln!("failed_plug_leaves_no_link: {line}");
}

/// `failed_start_leaves_no_link` (B4 in docs/compatibility.md): a START
/// that fails after its links were made (the real qemu driver, an image
/// that does not exist) removes its tap, and the subnet's bridge and
/// tunnel since it was their only user.
#[test]
#[ignore = "inner: runs inside the kernel lab (kernel_lab)"]
fn failed_start_leaves_no_link() {
    if !lab::inside("failed_start_leaves_no_link") {
        return;
    }
    load_modules();
    let mut n = lab_node("fail");
    n.start_launcher_with(&QEMU);
    let m0 = n.mark();
    let a = vm_id(4);
    n.send(
        Command::Start,
        cn_start(&a, "172.16.5.7", SUBNET, "no-such-image"),
    );
    let (_, _, p) = n.wait(m0, WAIT, "StartFailure", ErrorCode::StartFailure, |p| {
        mentions(p, &a)
    });
    let report = ErrorReport::parse(&p).unwrap();
    assert_eq!(report.reason, "image_failure", "{report:?}");
    // Links first, then the failure: nothing is left when it arrives.
    let links = n.links();
    assert!(none_of_ours(&links), "{:#?}", summary(&links));
    // The links did exist (the concentrator heard of them), and their
    // removal is announced too.
    n.wait(m0, WAIT, "TenantRemoved", Event::TenantRemoved, |_| true);
    assert_eq!(n.frames(m0, Event::TenantAdded).len(), 1);
    assert_eq!(n.frames(m0, Event::TenantRemoved).len(), 1);
    assert!(!n.data.join("instances").join(&a).exists());
}

// Frames of the data-plane test: Ethernet, ARP, IPv4 and ICMP, built and
// checked by hand.

const ETH_ARP: u16 = 0x0806;
const ETH_IP: u16 = 0x0800;

/// The Internet checksum (RFC 1071) of `data`.
fn inet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + body.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// An ARP packet (Ethernet/IPv4): `op` 1 request, 2 reply.
fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha);
    a.extend_from_slice(&spa);
    a.extend_from_slice(&tha);
    a.extend_from_slice(&tpa);
    a
}

/// The fields of an ARP packet the test looks at.
struct ArpSeen {
    op: u16,
    sha: [u8; 6],
    spa: [u8; 4],
    tpa: [u8; 4],
}

/// The ARP packet in `frame`, if it is one.
fn parse_arp(frame: &[u8]) -> Option<ArpSeen> {
    if frame.len() < 42 || frame[12..14] != ETH_ARP.to_be_bytes() {
        return None;
    }
    let a = &frame[14..];
    Some(ArpSeen {
        op: u16::from_be_bytes([a[6], a[7]]),
        sha: a[8..14].try_into().ok()?,
        spa: a[14..18].try_into().ok()?,
        tpa: a[24..28].try_into().ok()?,
    })
}

/// An ICMP echo request in an IPv4 packet, both checksums set.
fn icmp_echo(src: [u8; 4], dst: [u8; 4], id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0];
    icmp.extend_from_slice(&id.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(data);
    let c = inet_checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = (20 + icmp.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 1, 0, 0]); // id, DF, TTL, ICMP
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let c = inet_checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend_from_slice(&icmp);
    ip
}

/// An ICMP echo reply from `from` to `to` with `id`/`seq`: its payload,
/// once both checksums are verified.
fn parse_echo_reply(
    frame: &[u8],
    from: [u8; 4],
    to: [u8; 4],
    id: u16,
    seq: u16,
) -> Option<Vec<u8>> {
    if frame.len() < 14 + 20 + 8 || frame[12..14] != ETH_IP.to_be_bytes() {
        return None;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ip[0] >> 4 != 4 || ip[9] != 1 || ip[12..16] != from || ip[16..20] != to {
        return None;
    }
    assert_eq!(inet_checksum(&ip[..ihl]), 0, "bad IPv4 header checksum");
    let icmp = &ip[ihl..total];
    if icmp[0] != 0
        || icmp[1] != 0
        || icmp[4..6] != id.to_be_bytes()
        || icmp[6..8] != seq.to_be_bytes()
    {
        return None;
    }
    assert_eq!(inet_checksum(icmp), 0, "bad ICMP checksum");
    Some(icmp[8..].to_vec())
}

fn octets(ip: &str) -> [u8; 4] {
    ip.parse::<std::net::Ipv4Addr>().unwrap().octets()
}

fn mac_bytes(mac: &str) -> [u8; 6] {
    let v: Vec<u8> = mac
        .split(':')
        .map(|x| u8::from_str_radix(x, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

/// `gre_data_plane`: the launcher builds the compute node's side of a
/// tenant subnet for an instance, the test builds the concentrator's by
/// hand in another namespace (a bridge with the subnet's gateway, a
/// gretap back), and a test process playing the guest on the instance's
/// tap gets the gateway's ARP reply and ICMP echo reply through the
/// tunnel.
#[test]
#[ignore = "inner: runs inside the kernel lab (kernel_lab)"]
fn gre_data_plane() {
    if !lab::inside("gre_data_plane") {
        return;
    }
    load_modules();
    let mut cn = lab_node("dpcn");
    let nn = Netns::new("dpnn").unwrap();
    // The underlay: a veth from the node's phys0 to the concentrator's.
    nn.ip(&["link", "add", PHYS, "type", "bridge"]);
    nn.ip(&["addr", "add", &format!("{CONC_IP}/24"), "dev", PHYS]);
    cn.ns.ip(&[
        "link", "add", "uplink", "type", "veth", "peer", "name", "uplink", "netns", &nn.name,
    ]);
    for ns in [&cn.ns, &nn] {
        ns.ip(&["link", "set", "uplink", "master", PHYS]);
        ns.ip(&["link", "set", "uplink", "up"]);
        ns.ip(&["link", "set", PHYS, "up"]);
    }
    // The concentrator's side, by hand.
    nn.ip(&[
        "link", "add", "gt", "type", "gretap", "local", CONC_IP, "remote", CN_IP, "key", KEY,
    ]);
    nn.ip(&["link", "add", "tenant", "type", "bridge"]);
    nn.ip(&["link", "set", "gt", "master", "tenant"]);
    nn.ip(&["addr", "add", "172.16.5.1/24", "dev", "tenant"]);
    nn.ip(&["link", "set", "gt", "up"]);
    nn.ip(&["link", "set", "tenant", "up"]);

    cn.start_launcher_with(&SIM);
    let m0 = cn.mark();
    let a = vm_id(5);
    let (ip, mac) = ("172.16.5.7", mac_of("172.16.5.7"));
    assert_eq!(mac, "02:00:ac:10:05:07");
    cn.send(Command::Start, cn_start(&a, ip, SUBNET, "img"));
    cn.stats_until(m0, "a active", |s| active(s, &a));
    let links = cn.links();
    let tap = named(&links, "svn_")[0].name.clone();
    let gt = named(&links, "sgt_")[0].name.clone();

    // The guest: on the instance's tap, with the payload's MAC and IP.
    let t = Instant::now();
    let mut guest = TapPeer::attach(&cn.ns, &tap);
    let (me, my_ip) = (mac_bytes(&mac), octets(ip));
    let rx_before = counter(&cn.ns, &gt, "rx_packets");
    let deadline = Instant::now() + Duration::from_secs(10);
    let request = ethernet([0xff; 6], me, ETH_ARP, &arp(1, me, my_ip, [0; 6], GATEWAY));
    // Asked again every half second: the first may go before the bridge
    // port forwards.
    let mut asked = Instant::now() - Duration::from_secs(1);
    let gw_mac = loop {
        assert!(
            Instant::now() < deadline,
            "no ARP reply from the gateway through the tunnel"
        );
        if asked.elapsed() >= Duration::from_millis(500) {
            guest.send(&request);
            asked = Instant::now();
        }
        let Some(f) = guest.recv(Instant::now() + Duration::from_millis(100)) else {
            continue;
        };
        match parse_arp(&f) {
            Some(a) if a.op == 2 && a.spa == GATEWAY && a.tpa == my_ip => break a.sha,
            _ => {}
        }
    };
    let arp_took = t.elapsed();
    // A small echo, then one of the tenant MTU the concentrator announces
    // to its guests (1400 bytes of IPv4): it fits the tunnel.
    let mut echo_took = Vec::new();
    for (seq, len) in [(1u16, 23usize), (2, 1400 - 20 - 8)] {
        let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
        let id = 0x0c1a;
        let t = Instant::now();
        guest.send(&ethernet(
            gw_mac,
            me,
            ETH_IP,
            &icmp_echo(my_ip, GATEWAY, id, seq, &data),
        ));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let f = guest.recv(deadline).unwrap_or_else(|| {
                panic!("no reply to the {len}-byte ICMP echo from the gateway through the tunnel")
            });
            // The gateway may ask who we are before it answers.
            if let Some(a) = parse_arp(&f) {
                if a.op == 1 && a.tpa == my_ip {
                    guest.send(&ethernet(
                        a.sha,
                        me,
                        ETH_ARP,
                        &arp(2, me, my_ip, a.sha, a.spa),
                    ));
                }
                continue;
            }
            if let Some(echoed) = parse_echo_reply(&f, GATEWAY, my_ip, id, seq) {
                assert_eq!(echoed, data);
                assert_eq!(&f[..6], &me, "the reply is for our MAC");
                break;
            }
        }
        echo_took.push(t.elapsed());
    }
    let rx_after = counter(&cn.ns, &gt, "rx_packets");
    eprintln!(
        "gre_data_plane: ARP reply after {arp_took:.1?}, echo replies (23 and 1372 bytes) after {echo_took:.1?}; {gt} rx {rx_before} -> {rx_after}"
    );
    assert!(
        rx_after >= rx_before + 3,
        "the replies did not come through the launcher's gretap"
    );
    drop(guest);
    delete(&cn, &a);
    cn.links_until(WAIT, "the links gone", none_of_ours);
}

/// How many descriptors of `pid` are the character device `rdev`.
fn fds_of_device(pid: i32, rdev: u64) -> usize {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.rdev() == rdev))
                .count()
        })
        .unwrap_or(0)
}

/// The qemu of instance `id`, once it holds what `ready` wants.
fn qemu_of(n: &NetNode, id: &str, what: &str, ready: impl Fn(i32) -> bool) -> i32 {
    let end = Instant::now() + WAIT;
    loop {
        if let Some(pid) = qemu_pid(&n.data, id).filter(|&p| alive(p) && ready(p)) {
            return pid;
        }
        assert!(
            Instant::now() < end,
            "no qemu of {id} with {what} within {WAIT:?}\n--- launcher log ---\n{}",
            n.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `qemu_on_tap`: the real qemu driver (software emulation, a blank disk:
/// the guest never boots) gives a compute-node VM a virtio-net NIC on the
/// instance's tap with the payload's MAC, and a concentrator VM its
/// macvtap's character device once per queue (4); DELETE removes the
/// links.
#[test]
#[ignore = "inner: runs inside the kernel lab (kernel_lab)"]
fn qemu_on_tap() {
    if !lab::inside("qemu_on_tap") {
        return;
    }
    load_modules();
    let mut n = lab_node("qemu");
    blank_image(&n.data.join("images").join("blank"), "64M");
    n.start_launcher_with(&QEMU);

    // A compute-node VM on its tap.
    let m0 = n.mark();
    let a = vm_id(6);
    let t = Instant::now();
    n.send(Command::Start, cn_start(&a, "172.16.5.7", SUBNET, "blank"));
    let links = n.links_until(WAIT, "a's tap", |l| named(l, "svn_").len() == 1);
    let tap = named(&links, "svn_")[0].name.clone();
    let pid = qemu_of(&n, &a, "the tap", |p| tun_ifaces(p) == [tap.clone()]);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    for want in [
        format!("ifname={tap},"),
        "virtio-net-pci".to_string(),
        format!("mac={}", mac_of("172.16.5.7")),
    ] {
        assert!(cmdline.contains(&want), "no {want:?} in {cmdline}");
    }
    n.stats_until(m0, "a active", |s| active(s, &a));
    eprintln!(
        "qemu_on_tap: the VM's qemu {pid} on tap {tap}, active after {:.1?}",
        t.elapsed()
    );
    delete(&n, &a);
    assert!(!alive(pid), "a's qemu outlived its DELETE");
    let links = n.links();
    assert!(none_of_ours(&links), "{:#?}", summary(&links));

    // A concentrator on its macvtap.
    let c = vm_id(7);
    let mut p = example("start_nn.yaml").replace("       value: 256\n", "       value: 64\n");
    for (k, v) in [("instance_uuid", c.as_str()), ("image_uuid", "blank")] {
        p = set_field(&p, k, v);
    }
    let m2 = n.mark();
    n.send(Command::Start, p.into_bytes());
    let links = n.links_until(WAIT, "the macvtap", |l| named(l, "svc_").len() == 1);
    let mv = named(&links, "svc_")[0].clone();
    let phys = links.iter().find(|l| l.name == PHYS).unwrap();
    assert_eq!(mv.kind.as_deref(), Some("macvtap"), "{mv:?}");
    assert_eq!(
        mv.parent.as_ref(),
        Some(&phys.name),
        "the macvtap is not on {PHYS}"
    );
    assert_eq!(mv.mac.as_deref(), Some("02:00:e6:f5:af:f9"), "{mv:?}");
    assert_eq!(
        mv.alias.as_deref(),
        Some("cncivnic_67d86208-0000-0000-9018-fe14087d415f_67d86208-b46c-0000-0000-fe14087d415f")
    );
    let dev = cn_sys(
        &n,
        &format!("class/net/{}/macvtap/tap{}/dev", mv.name, mv.index),
    );
    let (major, minor) = dev.trim().split_once(':').expect("MAJOR:MINOR");
    let rdev = libc::makedev(major.parse().unwrap(), minor.parse().unwrap());
    let pid = qemu_of(&n, &c, "4 macvtap queues", |p| fds_of_device(p, rdev) == 4);
    n.stats_until(m2, "the concentrator active", |s| active(s, &c));
    eprintln!(
        "qemu_on_tap: the concentrator's qemu {pid} holds {} descriptors of {} ({})",
        fds_of_device(pid, rdev),
        mv.name,
        dev.trim()
    );
    delete(&n, &c);
    assert!(!alive(pid), "c's qemu outlived its DELETE");
    let links = n.links();
    assert!(none_of_ours(&links), "{:#?}", summary(&links));
}

/// A file of `/sys` as the node's namespace sees it.
fn cn_sys(n: &NetNode, rel: &str) -> String {
    let out = n.ns.exec(&["cat", &format!("/sys/{rel}")]);
    assert!(
        out.status.success(),
        "/sys/{rel}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The time of day, in seconds, of a launcher log line
/// (`2026-01-02T03:04:05.123456789Z [INFO] ...`).
fn log_time(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?;
    let (_, time) = stamp.split_once('T')?;
    let time = time.trim_end_matches('Z');
    let mut f = time.splitn(3, ':');
    let h: f64 = f.next()?.parse().ok()?;
    let m: f64 = f.next()?.parse().ok()?;
    let s: f64 = f.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Seconds from the last line containing `from` before the first line
/// containing `to`, to that line.
fn log_gap(log: &str, from: &str, to: &str) -> Option<f64> {
    let lines: Vec<&str> = log.lines().collect();
    let end = lines.iter().position(|l| l.contains(to))?;
    let start = lines[..end].iter().rposition(|l| l.contains(from))?;
    Some(log_time(lines[end])? - log_time(lines[start])?)
}

/// Waits until the current launcher logged `needle`.
fn wait_log(n: &NetNode, needle: &str) {
    let end = Instant::now() + WAIT;
    while !n.last_log().contains(needle) {
        assert!(
            Instant::now() < end,
            "the launcher never logged {needle:?}\n{}",
            n.last_log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn median_ms(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2] * 1000.0
}

fn ms(v: &[f64]) -> String {
    let v: Vec<String> = v.iter().map(|x| format!("{:.1}", x * 1000.0)).collect();
    v.join(" ")
}

/// `figures_start_to_tap_and_rebuild`: numbers for the documentation,
/// reported, not asserted (the lab runs under software emulation, so
/// they are upper bounds of a real node's):
///
/// * START to a usable tap, launcher side: from the log line of the
///   START's arrival to "starting instance <id>" (logged once the links
///   exist), 10 times for the first instance of a subnet (bridge, tunnel,
///   tap) and 10 times for a further instance (a tap);
/// * one topology rebuild with 100 instances' links (100 taps, 10
///   bridges, 10 tunnels): a restart after kill -9, from the log line of
///   the connection to the topology's line; and the restart as seen by
///   the server with and without `-network`.
#[test]
#[ignore = "inner: runs inside the kernel lab (kernel_lab)"]
fn figures_start_to_tap_and_rebuild() {
    if !lab::inside("figures_start_to_tap_and_rebuild") {
        return;
    }
    load_modules();
    let mut n = lab_node("fig");
    n.start_launcher_with(&SIM);
    let (mut first, mut further, mut to_event) = (Vec::new(), Vec::new(), Vec::new());
    let mut ids = Vec::new();
    let mut start = |n: &NetNode, subnet: u32, host: u32| -> String {
        let id = vm_id(0x100 + ids.len() as u32);
        let ip = format!("172.16.{subnet}.{host}");
        n.send(
            Command::Start,
            cn_start(&id, &ip, &format!("172.16.{subnet}.0/24"), "img"),
        );
        ids.push(id.clone());
        id
    };
    for s in 10..20 {
        let m = n.mark();
        let t = Instant::now();
        let id = start(&n, s, 2);
        let subnet = format!("172.16.{s}.0/24");
        let (_, at, _) = n.wait(m, WAIT, "TenantAdded", Event::TenantAdded, |p| {
            mentions(p, &subnet)
        });
        to_event.push((at - t).as_secs_f64());
        let started = format!("starting instance {id}");
        wait_log(&n, &started);
        first.push(log_gap(&n.last_log(), "received COMMAND START", &started).unwrap());
    }
    for h in 3..13 {
        let id = start(&n, 10, h);
        let started = format!("starting instance {id}");
        wait_log(&n, &started);
        further.push(log_gap(&n.last_log(), "received COMMAND START", &started).unwrap());
    }
    eprintln!(
        "figures: START -> tap, launcher side (ms): first of a subnet: median {:.1} [{}]; further instance: median {:.1} [{}]; START sent -> TenantAdded received by the server: median {:.1}",
        median_ms(&mut first.clone()),
        ms(&first),
        median_ms(&mut further.clone()),
        ms(&further),
        median_ms(&mut to_event)
    );

    // 100 instances over 10 subnets: 10 on each.
    for s in 11..20 {
        for h in 3..(if s == 19 { 11 } else { 12 }) {
            start(&n, s, h);
        }
    }
    assert_eq!(ids.len(), 100);
    let m = n.mark();
    n.stats_until(m, "100 instances active", |s| {
        s.instances.len() == 100 && s.instances.iter().all(|i| i.state == "active")
    });
    let links = n.links();
    let counts = ["sbr_", "sgt_", "svn_"].map(|p| named(&links, p).len());
    assert_eq!(counts, [10, 10, 100], "{:#?}", summary(&links));

    let restart = |n: &mut NetNode, flags: &[&str]| -> (f64, f64) {
        n.kill9();
        let m = n.mark();
        let t = Instant::now();
        n.start_launcher_with(flags);
        let connected = t.elapsed().as_secs_f64();
        n.stats_until(m, "the 100 instances after the restart", |s| {
            s.instances.len() == 100
        });
        (connected, t.elapsed().as_secs_f64())
    };
    let (net_conn, net_stats) = restart(&mut n, &SIM);
    let log = n.last_log();
    let rebuild = log_gap(&log, "connected to SSNTP server", "network topology:").unwrap();
    let summary = log
        .lines()
        .find(|l| l.contains("network topology:"))
        .unwrap_or("")
        .to_string();
    assert!(
        summary.contains("ours 10 bridge(s), 10 tunnel(s), 100 vnic(s)")
            && !summary.contains("repair"),
        "{summary}"
    );
    let (plain_conn, plain_stats) = restart(&mut n, &["-simulation", "-network=false"]);
    eprintln!(
        "figures: topology rebuild with 100 taps, 10 bridges, 10 tunnels: {:.1} ms (connected -> \"network topology:\"); restart -> connected / first STATS with the 100: -network=true {:.0} / {:.0} ms, -network=false {:.0} / {:.0} ms\n  {summary}",
        rebuild * 1000.0,
        net_conn * 1000.0,
        net_stats * 1000.0,
        plain_conn * 1000.0,
        plain_stats * 1000.0
    );
}
