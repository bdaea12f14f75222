//! Tenant networking end to end on this machine's kernel: the real
//! `ciao-launcher` (`-simulation -network=true`: only the virtualiser is
//! fake, the links are real) in a network namespace of the test's own with
//! a fake physical NIC (`phys0`, a bridge carrying 198.51.100.2/24), driven
//! over SSNTP by an in-process server inside that namespace
//! (`ciao_test_support::netnode`).
//!
//! Covered: discovery (STATS host name and networks; a node whose networks
//! match no address exits 1 with one line), a concentrator's macvtap made,
//! kept across STOP/RESTART and removed by DELETE, its device node (the
//! shared `/dev/tap<N>` only when it is the node's, else a private one),
//! a concentrator whose device cannot be found and a compute-node VM whose
//! tunnel cannot be made leaving nothing behind, recovery after kill -9
//! (a link deleted behind the launcher's back is made again, orphans are
//! removed, foreign links are untouched), a START failing in the real qemu
//! driver after its macvtap was made (B4), and `-hard-reset` deleting only
//! what is ours or orphan, with and without the saved cluster
//! configuration.
//!
//! Root only (network namespaces): elsewhere each test prints `SKIPPED:`
//! (and fails under CI=true). The GRE data plane needs a kernel with
//! `ip_gre` and runs in the kernel lab.

use std::io::Write as _;
use std::path::Path;
use std::sync::{RwLock, RwLockReadGuard};

use ciao::ssntp::frame::{ErrorCode, Event, Op};
use ciao_test_support::netnode::{
    self, cluster_config, NetNode, NodeOptions, StartSpec, PHYS, PHYS_IP, PHYS_NET,
};
use ciao_test_support::netns::{self, LinkInfo, Netns, WAIT};
use ciao_test_support::proc::{wait_for, Proc};
use ciao_test_support::skip_or_fail;

const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");

/// `/dev/tap<N>` is one node per name for the whole machine: tests that
/// make macvtaps hold this shared; the test that needs `/dev/tap<N>` to
/// belong to another namespace holds it alone.
static DEVNODES: RwLock<()> = RwLock::new(());

fn devnodes_shared() -> RwLockReadGuard<'static, ()> {
    DEVNODES.read().unwrap_or_else(|e| e.into_inner())
}
const SIM: &[&str] = &["-simulation", "--simulation-delay=100"];

/// A node in a fresh namespace, or `None` (skipped) when this machine
/// cannot run it.
fn node(test: &str, tag: &str, config: Vec<u8>, extra: &[&str]) -> Option<NetNode> {
    if let Some(why) = netns::missing() {
        skip_or_fail(test, &why);
        return None;
    }
    let mut opts = NodeOptions {
        config,
        ..NodeOptions::default()
    };
    opts.flags.extend(extra.iter().map(|s| s.to_string()));
    match NetNode::new(LAUNCHER, tag, opts) {
        Ok(n) => Some(n),
        Err(why) => {
            skip_or_fail(test, &format!("cannot make a network namespace: {why}"));
            None
        }
    }
}

/// A simulated node whose server sends phys0's network, launcher running.
fn sim_node(test: &str, tag: &str) -> Option<NetNode> {
    let mut n = node(test, tag, cluster_config(PHYS_NET, PHYS_NET), SIM)?;
    n.start_launcher();
    Some(n)
}

fn names(links: &[LinkInfo]) -> Vec<String> {
    let mut v: Vec<String> = links.iter().map(|l| l.name.clone()).collect();
    v.sort();
    v
}

/// The concentrator's macvtap, once it exists.
fn wait_macvtap(n: &NetNode, spec: &StartSpec) -> LinkInfo {
    let alias = spec.vnic_alias();
    n.links_until(WAIT, &format!("a link with alias {alias}"), |l| {
        l.iter().any(|x| x.alias.as_deref() == Some(alias.as_str()))
    })
    .into_iter()
    .find(|x| x.alias.as_deref() == Some(alias.as_str()))
    .unwrap()
}

/// Checks everything about a concentrator's macvtap.
fn check_macvtap(n: &NetNode, spec: &StartSpec, l: &LinkInfo) {
    assert!(l.name.starts_with("svc_"), "{l:?}");
    assert_eq!(l.kind.as_deref(), Some("macvtap"), "{l:?}");
    assert_eq!(l.detail("mode"), Some("bridge"), "{l:?}");
    assert_eq!(l.parent.as_deref(), Some(PHYS), "{l:?}");
    assert_eq!(l.qlen, 500, "{l:?}");
    assert_eq!(l.mac.as_deref(), Some(spec.mac.as_str()), "{l:?}");
    assert!(l.up, "{l:?}");
    if let Err(e) = n.macvtap_node(&spec.id, &l.name) {
        panic!("device node of {}: {e}", l.name);
    }
}

#[test]
fn a_macvtap_whose_dev_name_is_taken_by_another_namespace_gets_a_private_node() {
    const TEST: &str = "a_macvtap_whose_dev_name_is_taken_by_another_namespace_gets_a_private_node";
    let _devnodes = DEVNODES.write().unwrap_or_else(|e| e.into_inner());
    let Some(n) = sim_node(TEST, "ciao-np") else {
        return;
    };
    // Another namespace laid out as the node's (lo, a bridge), whose
    // macvtap gets the index the node's will get, so /dev/tap<N> is its.
    let other = Netns::new("ciao-npo").unwrap();
    other.ip(&["link", "add", "br0", "type", "bridge"]);
    other.ip(&[
        "link", "add", "link", "br0", "name", "mv0", "type", "macvtap", "mode", "bridge",
    ]);
    let (tap, theirs) = other.macvtap_dev("mv0").unwrap();
    let spec = StartSpec::cnci("67d86208-b46c-4465-0000-fe14087d4106");
    n.start(&spec);
    n.wait_state(&spec.id, Some("active"));
    let l = wait_macvtap(&n, &spec);
    let (our_tap, ours) = n.ns.macvtap_dev(&l.name).unwrap();
    assert_eq!(our_tap, tap, "the same index in both namespaces");
    assert_ne!(ours, theirs);
    let shared = netns::char_dev(&Path::new("/dev").join(&tap));
    assert_ne!(shared, Some(ours), "/dev/{tap} is not the node's");
    check_macvtap(&n, &spec, &l);
    let private = n.instance_dir(&spec.id).join("macvtap");
    assert_eq!(n.macvtap_node(&spec.id, &l.name), Ok(private.clone()));
    let mode = std::fs::metadata(&private).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
}

/// The macvtap is made but its device cannot be found (sysfs shows
/// another namespace's links): the START fails and the macvtap goes.
#[test]
fn a_concentrator_whose_device_cannot_be_found_leaves_no_link() {
    const TEST: &str = "a_concentrator_whose_device_cannot_be_found_leaves_no_link";
    let _devnodes = devnodes_shared();
    let Some(mut n) = node(TEST, "ciao-ns", cluster_config(PHYS_NET, PHYS_NET), SIM) else {
        return;
    };
    n.host_sysfs = true;
    n.start_launcher();
    let monitor = n.ns.monitor(n.tmp.path());
    let spec = StartSpec::cnci("67d86208-b46c-4465-0000-fe14087d4107");
    n.start(&spec);
    let (code, report) = n.error("StartFailure");
    assert_eq!(code, ErrorCode::StartFailure, "{report:?}");
    assert_eq!(report.reason, "network_failure");
    assert!(!n.instance_dir(&spec.id).exists());
    made_and_deleted(&monitor);
    assert_eq!(names(&n.ns.links()), ["lo", PHYS]);
    // The node keeps serving, and a later START of it is not refused as
    // a duplicate.
    n.start(&spec);
    let (_, again) = n.error("the second StartFailure");
    assert_eq!(again.reason, "network_failure");
    assert_eq!(names(&n.ns.links()), ["lo", PHYS]);
}

/// Waits until `ip monitor` has shown a macvtap on phys0 made and
/// deleted.
fn made_and_deleted(monitor: &Proc) {
    let svc = |deleted: bool| {
        let out = monitor.output();
        out.lines().any(|l| {
            l.starts_with("Deleted") == deleted && l.contains(": svc_") && l.contains("@phys0")
        })
    };
    wait_for(WAIT, "a macvtap made and deleted", || {
        (svc(false) && svc(true)).then_some(())
    });
}

/// Decoys for recovery and hard reset: two orphans (a macvtap on phys0
/// with a well-formed concentrator alias and a bridge with a well-formed
/// tenant-bridge alias, which no instance owns), a bridge with a foreign
/// alias and a bridge without alias. Returns the names of the orphans and
/// of the two foreign links.
fn add_decoys(n: &NetNode) -> ([&'static str; 2], &'static str, &'static str) {
    let ns = &n.ns;
    let other = StartSpec::cn("0000cccc-0000-4000-8000-00000000000c");
    ns.ip(&["link", "add", "orph1", "type", "bridge"]);
    ns.ip(&[
        "link",
        "set",
        "orph1",
        "alias",
        &other.bridge_alias().unwrap(),
    ]);
    ns.ip(&[
        "link", "add", "link", PHYS, "name", "orph0", "type", "macvtap", "mode", "bridge",
    ]);
    ns.ip(&[
        "link",
        "set",
        "orph0",
        "alias",
        "cncivnic_0000aaaa-0000-4000-8000-00000000000a_0000bbbb-0000-4000-8000-00000000000b",
    ]);
    ns.ip(&["link", "add", "fbr0", "type", "bridge"]);
    ns.ip(&["link", "set", "fbr0", "alias", "my-bridge"]);
    ns.ip(&["link", "add", "fbr1", "type", "bridge"]);
    (["orph0", "orph1"], "fbr0", "fbr1")
}

#[test]
fn discovery_reports_the_host_name_and_the_physical_address() {
    const TEST: &str = "discovery_reports_the_host_name_and_the_physical_address";
    let Some(n) = sim_node(TEST, "ciao-nd") else {
        return;
    };
    let s = n.stats("the first STATS", |_| true);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(s.hostname, host.trim());
    assert_eq!(s.networks.len(), 1, "{:?}", s.networks);
    assert_eq!(s.networks[0].ip, PHYS_IP);
    assert_eq!(s.networks[0].mac, n.phys_mac);
    // The configuration is kept for -hard-reset.
    assert!(n.data.join("networking/cluster.yaml").is_file());
}

#[test]
fn a_node_whose_networks_match_no_address_exits_1_with_one_line() {
    const TEST: &str = "a_node_whose_networks_match_no_address_exits_1_with_one_line";
    let Some(mut n) = node(
        TEST,
        "ciao-nf",
        cluster_config("203.0.113.0/24", "203.0.113.0/24"),
        SIM,
    ) else {
        return;
    };
    // The log goes to its file; stderr shows only what ends the process
    // (by default records of level ERROR would be echoed there too).
    let logs = n.tmp.path().join("logs");
    let log_dir = format!("-log_dir={}", logs.display());
    let args = n.launcher_args(&[&log_dir, "-stderrthreshold=FATAL"]);
    let (code, out) = n.run_launcher(args);
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr, got:\n{out}");
    assert!(
        lines[0].starts_with("ciao-launcher: network discovery failed"),
        "{out}"
    );
    assert!(lines[0].contains("203.0.113.0/24"), "{out}");
    assert!(lines[0].contains("198.51.100.2/24 on phys0"), "{out}");
    let file = std::fs::read_to_string(logs.join("ciao-launcher.log")).unwrap_or_default();
    assert!(file.contains("network discovery failed"), "{file}");
}

#[test]
fn a_concentrator_gets_a_macvtap_kept_by_stop_and_removed_by_delete() {
    const TEST: &str = "a_concentrator_gets_a_macvtap_kept_by_stop_and_removed_by_delete";
    let _devnodes = devnodes_shared();
    let Some(n) = sim_node(TEST, "ciao-nc") else {
        return;
    };
    let spec = StartSpec::cnci("67d86208-b46c-4465-0000-fe14087d4101");
    n.start(&spec);
    n.wait_state(&spec.id, Some("active"));
    let l = wait_macvtap(&n, &spec);
    check_macvtap(&n, &spec, &l);

    n.command("stop", &spec.id);
    n.wait_state(&spec.id, Some("exited"));
    let kept = n.ns.link(&l.name).expect("STOP keeps the macvtap");
    assert_eq!(kept.index, l.index);

    n.command("restart", &spec.id);
    n.wait_state(&spec.id, Some("active"));
    let again = n.ns.link_by_alias(&spec.vnic_alias()).unwrap();
    assert_eq!((again.index, &again.name), (l.index, &l.name), "reused");
    check_macvtap(&n, &spec, &again);

    n.command("delete", &spec.id);
    let ev = n.frame("InstanceDeleted", Op::Event(Event::InstanceDeleted));
    assert!(String::from_utf8_lossy(&ev.payload).contains(&spec.id));
    n.links_until(WAIT, "the macvtap gone", |ls| {
        !ls.iter().any(|x| x.name == l.name)
    });
    assert_eq!(names(&n.ns.links()), ["lo", PHYS]);
    assert!(!n.instance_dir(&spec.id).exists());
}

#[test]
fn a_vm_whose_tunnel_cannot_be_made_leaves_no_link() {
    const TEST: &str = "a_vm_whose_tunnel_cannot_be_made_leaves_no_link";
    let Some(n) = sim_node(TEST, "ciao-ng") else {
        return;
    };
    // A kernel with ip_gre makes the tunnel: compute-node VMs are then
    // the kernel lab's to test (the lab boots such a kernel); this test
    // is about a kernel that refuses the tunnel, like this machine's. Not
    // a missing prerequisite: a note, not a failure under CI=true.
    let probe = n.ns.try_ip(&[
        "link",
        "add",
        "gprobe",
        "type",
        "gretap",
        "local",
        PHYS_IP,
        "remote",
        "192.0.2.1",
        "key",
        "7",
    ]);
    if probe.is_ok() {
        let _ = n.ns.try_ip(&["link", "del", "gprobe"]);
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {TEST}: this kernel has gretap (tests/lab_gre.rs covers CN VMs)"
        );
        return;
    }
    let before = names(&n.ns.links());
    let spec = StartSpec::cn("d7d86208-b46c-4465-9018-fe14087d4102");
    n.start(&spec);
    let (code, report) = n.error("StartFailure");
    assert_eq!(code, ErrorCode::StartFailure);
    assert_eq!(report.instance_uuid, spec.id);
    assert_eq!(report.reason, "network_failure");
    let links = n.ns.links();
    assert_eq!(names(&links), before, "{links:#?}");
    assert!(
        !links.iter().any(|l| ["sbr_", "sgt_", "svn_"]
            .iter()
            .any(|p| l.name.starts_with(p))),
        "{links:#?}"
    );
    assert!(!n.instance_dir(&spec.id).exists());
    assert!(n.log().contains("gretap"), "the kernel's reason is logged");
    // The node keeps serving.
    n.wait_state(&spec.id, None);
}

#[test]
fn after_kill_9_the_topology_is_repaired_orphans_go_foreign_links_stay() {
    const TEST: &str = "after_kill_9_the_topology_is_repaired_orphans_go_foreign_links_stay";
    let _devnodes = devnodes_shared();
    let Some(mut n) = sim_node(TEST, "ciao-nk") else {
        return;
    };
    let spec = StartSpec::cnci("67d86208-b46c-4465-0000-fe14087d4103");
    n.start(&spec);
    n.wait_state(&spec.id, Some("active"));
    let l = wait_macvtap(&n, &spec);

    n.kill9();
    n.ns.ip(&["link", "del", &l.name]);
    let (orphans, foreign, bare) = add_decoys(&n);
    let foreign_before = n.ns.link(foreign).unwrap();
    let bare_before = n.ns.link(bare).unwrap();

    n.start_launcher();
    let back = wait_macvtap(&n, &spec);
    check_macvtap(&n, &spec, &back);
    n.links_until(WAIT, "the orphans removed", |ls| {
        !ls.iter().any(|x| orphans.contains(&x.name.as_str()))
    });
    assert_eq!(n.ns.link(foreign), Some(foreign_before), "foreign, aliased");
    assert_eq!(n.ns.link(bare), Some(bare_before), "foreign, no alias");
    n.wait_state(&spec.id, Some("active"));
    let log = n.log();
    for o in orphans {
        assert!(log.contains(o), "the removal of {o} is logged");
    }
}

#[test]
fn a_start_failing_in_qemu_after_its_macvtap_leaves_no_link() {
    const TEST: &str = "a_start_failing_in_qemu_after_its_macvtap_leaves_no_link";
    if netns::missing().is_none() {
        if let Some(why) = netnode::qemu_missing() {
            skip_or_fail(TEST, &why);
            return;
        }
    }
    let _devnodes = devnodes_shared();
    let Some(mut n) = node(
        TEST,
        "ciao-nq",
        cluster_config(PHYS_NET, PHYS_NET),
        &["-qemu-virtualisation=software"],
    ) else {
        return;
    };
    n.start_launcher();
    let monitor = n.ns.monitor(n.tmp.path());
    let mut spec = StartSpec::cnci("67d86208-b46c-4465-0000-fe14087d4104");
    spec.image = "0000dead-0000-4000-8000-000000000404".into();
    n.start(&spec);
    let (code, report) = n.error("StartFailure");
    assert_eq!(code, ErrorCode::StartFailure, "{report:?}");
    assert_eq!(report.reason, "image_failure");
    assert_eq!(names(&n.ns.links()), ["lo", PHYS]);
    assert!(!n.instance_dir(&spec.id).exists());
    // The macvtap existed (the driver starts only once its vnic is
    // made) and is gone again.
    made_and_deleted(&monitor);
}

/// A node with one concentrator, its launcher stopped (SIGTERM), and the
/// three decoys. Returns the node, the instance and its macvtap's name.
fn before_hard_reset(test: &str, tag: &str) -> Option<(NetNode, StartSpec, String)> {
    let mut n = sim_node(test, tag)?;
    let spec = StartSpec::cnci("67d86208-b46c-4465-0000-fe14087d4105");
    n.start(&spec);
    n.wait_state(&spec.id, Some("active"));
    let l = wait_macvtap(&n, &spec);
    n.stop_launcher();
    assert!(n.ns.link(&l.name).is_some(), "a clean stop keeps the links");
    add_decoys(&n);
    Some((n, spec, l.name))
}

fn hard_reset(n: &mut NetNode) {
    let args = n.launcher_args(&["-hard-reset", "-logtostderr", "-v=1"]);
    let (code, out) = n.run_launcher(args);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn hard_reset_deletes_ours_and_orphans_never_foreign_links() {
    const TEST: &str = "hard_reset_deletes_ours_and_orphans_never_foreign_links";
    let _devnodes = devnodes_shared();
    let Some((mut n, spec, vnic)) = before_hard_reset(TEST, "ciao-nh") else {
        return;
    };
    hard_reset(&mut n);
    assert!(!n.instance_dir(&spec.id).exists());
    assert_eq!(
        names(&n.ns.links()),
        ["fbr0", "fbr1", "lo", PHYS],
        "{vnic} and the orphans gone"
    );
    assert_eq!(
        n.ns.link("fbr0").unwrap().alias.as_deref(),
        Some("my-bridge")
    );
}

#[test]
fn hard_reset_without_a_saved_configuration_deletes_by_record_only() {
    const TEST: &str = "hard_reset_without_a_saved_configuration_deletes_by_record_only";
    let _devnodes = devnodes_shared();
    let Some((mut n, spec, vnic)) = before_hard_reset(TEST, "ciao-nr") else {
        return;
    };
    std::fs::remove_file(n.data.join("networking/cluster.yaml")).unwrap();
    hard_reset(&mut n);
    assert!(!n.instance_dir(&spec.id).exists());
    assert_eq!(
        names(&n.ns.links()),
        ["fbr0", "fbr1", "lo", "orph0", "orph1", PHYS],
        "{vnic} gone (its record), the orphans kept"
    );
}
