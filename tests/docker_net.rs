//! Container tenant networking end to end, with a real dockerd.
//!
//! Every dockerd here is the tests' private one (`ciao_test_support::
//! docker`), run inside the network namespace of the node under test
//! (`ciao_test_support::docker_node`): dockerd looks a remote driver's veth
//! up by name in its own namespace, so the launcher and the daemon share
//! one, and nothing reaches the host's links.
//!
//! On this machine's kernel (no `ip_gre`, so no tenant bridge of the
//! launcher can get its tunnel):
//!
//! * `throwaway_plugin_puts_a_container_on_a_hand_made_veth`: the
//!   harness's plumbing without the launcher: a plugin played by the test
//!   (`stub_plugin`) on `/run/docker/plugins/<unique>.sock`, a veth and a
//!   bridge made by hand, a docker network with that driver; the
//!   container's eth0 gets the MAC, the address with the subnet's prefix,
//!   MTU 1400 and the default route, and pings a namespace on the bridge.
//! * `with_dockerd_filtering_on_bridged_traffic_needs_a_forward_rule`: the
//!   same with dockerd's packet filtering on, as a production daemon runs:
//!   FORWARD policy DROP with br_netfilter active drops the bridged
//!   traffic until `-i sbr_+ -o sbr_+ -j ACCEPT` is inserted.
//!
//! Inside the kernel lab (Debian's kernel, which has `ip_gre`), one boot
//! for all of them (`docker_lab`, see tests/lab/README.md), the launcher's
//! container networking for real, with a dockerd inside the lab and a
//! hand-built concentrator namespace at the far end of the gretap.
//!
//! Root, dockerd, busybox-static and ip are needed; elsewhere each test
//! prints `SKIPPED:` (and fails under CI=true).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ciao_test_support::docker::{Dockerd, DockerdOptions, EXAMPLE_IMAGE};
use ciao_test_support::docker_node::{
    container_eth0, out_text, ping_argv, subnet_key, Concentrator, CONC_IP,
};
use ciao_test_support::lab;
use ciao_test_support::netnode::{PHYS, PHYS_IP};
use ciao_test_support::netns::{self, Netns};
use ciao_test_support::skip_or_fail;
use ciao_test_support::stub_plugin::{unique_name, PluginFiles, StubPlugin};

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

/// The outer test of the lab suite: boots the kernel lab once and runs the
/// `#[ignore]`d inner tests below inside it.
#[test]
fn docker_lab() {
    let boot = lab::Boot {
        mem_mb: 1024,
        ..lab::Boot::default()
    };
    lab::run_suite("docker_lab", CACHE, &boot);
}

/// A namespace and a private dockerd inside it, or `None` (skipped).
fn ns_and_dockerd(test: &str, tag: &str, iptables: bool) -> Option<(Netns, Dockerd)> {
    if let Some(why) = netns::missing() {
        skip_or_fail(test, &why);
        return None;
    }
    let ns = match Netns::new(tag) {
        Ok(ns) => ns,
        Err(why) => {
            skip_or_fail(test, &format!("cannot make a network namespace: {why}"));
            return None;
        }
    };
    let d = Dockerd::require_with(
        test,
        DockerdOptions {
            netns: Some(PathBuf::from(format!("/run/netns/{}", ns.name))),
            iptables,
            ..DockerdOptions::default()
        },
    )?;
    Some((ns, d))
}

/// What the plumbing tests set up: a bridge `sbr_t0` in `ns` with a
/// "gateway" namespace on a veth (203.0.113.1/26), and a veth pair
/// `svn_t0`/`svp_t0` (MTU 1400) for the container, host end in the bridge.
const SUBNET: &str = "203.0.113.0/26";
const GW: &str = "203.0.113.1";
const CONTAINER_IP: &str = "203.0.113.10";
const CONTAINER_MAC: &str = "02:00:cb:00:71:0a";

fn hand_made_links(ns: &Netns) -> Netns {
    let gw = Netns::new("dkgw").unwrap();
    container_veth_in_bridge(ns);
    ns.ip(&[
        "link", "add", "gw0", "type", "veth", "peer", "name", "eth0", "netns", &gw.name,
    ]);
    ns.ip(&["link", "set", "gw0", "master", "sbr_t0"]);
    ns.ip(&["link", "set", "gw0", "up"]);
    gw.ip(&["addr", "add", &format!("{GW}/26"), "dev", "eth0"]);
    gw.ip(&["link", "set", "eth0", "up"]);
    gw
}

/// The bridge `sbr_t0` (up) and the container's veth pair
/// `svn_t0`/`svp_t0` (MTU 1400), host end in the bridge.
fn container_veth_in_bridge(ns: &Netns) {
    ns.ip(&["link", "add", "sbr_t0", "type", "bridge"]);
    ns.ip(&["link", "set", "sbr_t0", "up"]);
    ns.ip(&[
        "link", "add", "svn_t0", "type", "veth", "peer", "name", "svp_t0",
    ]);
    for l in ["svn_t0", "svp_t0"] {
        ns.ip(&["link", "set", l, "mtu", "1400"]);
    }
    ns.ip(&["link", "set", "svn_t0", "master", "sbr_t0"]);
    ns.ip(&["link", "set", "svn_t0", "up"]);
}

/// A docker network `tnet` of driver `plugin` on `sbr_t0`, and a started
/// container `tc` on it; returns how long create + start took.
fn network_and_container(d: &Dockerd, plugin: &str) -> Duration {
    let net = format!(
        r#"{{"Name":"tnet","CheckDuplicate":true,"Driver":"{plugin}","EnableIPv6":false,"IPAM":{{"Driver":"{plugin}","Options":null,"Config":[{{"Subnet":"{SUBNET}","Gateway":"{GW}"}}]}},"Internal":false,"Options":{{"bridge":"sbr_t0"}},"Labels":null}}"#
    );
    let r = d.api("POST", "/networks/create", net.as_bytes()).unwrap();
    assert_eq!(r.status, 201, "network create: {}", r.text());
    let c = format!(
        r#"{{"Image":"{EXAMPLE_IMAGE}","Cmd":["/bin/sh","-c","sleep 600"],"MacAddress":"{CONTAINER_MAC}","HostConfig":{{"NetworkMode":"tnet"}},"NetworkingConfig":{{"EndpointsConfig":{{"tnet":{{"IPAMConfig":{{"IPv4Address":"{CONTAINER_IP}"}}}}}}}}}}"#
    );
    let t = Instant::now();
    let r = d
        .api("POST", "/containers/create?name=tc", c.as_bytes())
        .unwrap();
    assert_eq!(r.status, 201, "container create: {}", r.text());
    let r = d.api("POST", "/containers/tc/start", b"").unwrap();
    assert_eq!(r.status, 204, "container start: {}", r.text());
    t.elapsed()
}

fn ping_ok(o: &std::process::Output) -> bool {
    o.status.success()
}

#[test]
fn throwaway_plugin_puts_a_container_on_a_hand_made_veth() {
    const TEST: &str = "throwaway_plugin_puts_a_container_on_a_hand_made_veth";
    // Made before the daemon, so it outlives it: dockerd's clean-up calls
    // the plugin.
    let name = unique_name();
    let _files = PluginFiles(name.clone());
    let stub = StubPlugin::start(&name).unwrap();
    let Some((ns, d)) = ns_and_dockerd(TEST, "dkp", false) else {
        return;
    };
    let gw = hand_made_links(&ns);
    stub.veth(CONTAINER_IP, "svp_t0");
    let took = network_and_container(&d, &name);
    let eth0 = container_eth0(&d, "tc");
    assert_eq!(eth0.mac, CONTAINER_MAC, "{eth0:?}");
    assert_eq!(eth0.mtu, 1400, "{eth0:?}");
    assert_eq!(eth0.addr, format!("{CONTAINER_IP}/26"), "{eth0:?}");
    assert_eq!(eth0.gateway.as_deref(), Some(GW), "{eth0:?}");
    assert_eq!(stub.bridges(), ["sbr_t0"]);
    assert!(ns.link("svp_t0").is_none(), "moved into the container");
    let argv = ping_argv(CONTAINER_IP, 2);
    let o = gw.exec(&argv.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ping_ok(&o), "gateway -> container: {}", out_text(&o));
    let argv = ping_argv(GW, 2);
    let o = d.in_container("tc", &argv.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ping_ok(&o), "container -> gateway: {}", out_text(&o));
    d.remove("tc");
    let r = d.api("DELETE", "/networks/tnet", b"").unwrap();
    assert_eq!(r.status, 204, "network delete: {}", r.text());
    let calls = stub.calls();
    for c in [
        "Plugin.Activate",
        "NetworkDriver.CreateNetwork",
        "NetworkDriver.CreateEndpoint",
        "NetworkDriver.Join",
        "NetworkDriver.Leave",
        "NetworkDriver.DeleteEndpoint",
        "NetworkDriver.DeleteNetwork",
        "IpamDriver.RequestPool",
        "IpamDriver.RequestAddress",
        "IpamDriver.ReleaseAddress",
        "IpamDriver.ReleasePool",
    ] {
        assert!(calls.iter().any(|x| x == c), "{c} not called: {calls:?}");
    }
    // The sandbox's teardown gives the veth back under its own name.
    assert!(
        ns.link("svp_t0").is_some(),
        "{:?}",
        netns::summary(&ns.links())
    );
    eprintln!("{TEST}: container create+start {took:.1?}; plugin calls: {calls:?}");
}

#[test]
fn with_dockerd_filtering_on_bridged_traffic_needs_a_forward_rule() {
    const TEST: &str = "with_dockerd_filtering_on_bridged_traffic_needs_a_forward_rule";
    // Made before the daemon, so it outlives it: dockerd's clean-up calls
    // the plugin.
    let name = unique_name();
    let _files = PluginFiles(name.clone());
    let stub = StubPlugin::start(&name).unwrap();
    let Some((ns, d)) = ns_and_dockerd(TEST, "dki", true) else {
        return;
    };
    let gw = hand_made_links(&ns);
    stub.veth(CONTAINER_IP, "svp_t0");
    network_and_container(&d, &name);
    let forward = out_text(&ns.exec(&["iptables", "-S", "FORWARD"]));
    let nf = ns
        .read_sys("/proc/sys/net/bridge/bridge-nf-call-iptables")
        .unwrap_or_default();
    eprintln!("{TEST}: bridge-nf-call-iptables={nf}; FORWARD chain:\n{forward}");
    assert!(forward.contains("-P FORWARD DROP"), "{forward}");
    let argv = ping_argv(CONTAINER_IP, 1);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    if nf == "1" {
        let o = gw.exec(&argv);
        assert!(
            !ping_ok(&o),
            "bridged traffic passed FORWARD DROP: {}",
            out_text(&o)
        );
    }
    let o = ns.exec(&[
        "iptables", "-I", "FORWARD", "-i", "sbr_+", "-o", "sbr_+", "-j", "ACCEPT",
    ]);
    assert!(o.status.success(), "{}", out_text(&o));
    let o = gw.exec(&argv);
    assert!(ping_ok(&o), "gateway -> container: {}", out_text(&o));
}

// ---------------------------------------------------------------------
// Inside the kernel lab.

/// `modprobe NAME`, true when it worked.
fn modprobe(name: &str) -> bool {
    std::process::Command::new("modprobe")
        .arg(name)
        .status()
        .is_ok_and(|s| s.success())
}

fn load_modules() {
    for m in ["ip_gre", "bridge", "veth", "br_netfilter"] {
        assert!(modprobe(m), "modprobe {m} failed");
    }
}

/// The daemon's directory in the lab: /run (a tmpfs; /tmp is an overlay,
/// where overlay2 cannot stack).
const LAB_BASE: &str = "/run";

/// The harness in the lab, without the launcher: dockerd inside the lab
/// in a namespace with a fake NIC, a hand-made tenant bridge with a
/// gretap to a hand-built concentrator, a container put on a veth in that
/// bridge by a throwaway plugin; the container and the concentrator's
/// gateway ping each other through the tunnel.
#[test]
#[ignore = "inner: runs inside the kernel lab (docker_lab)"]
fn lab_harness_container_through_a_hand_made_gretap() {
    const TEST: &str = "lab_harness_container_through_a_hand_made_gretap";
    if !lab::inside(TEST) {
        return;
    }
    load_modules();
    let name = unique_name();
    let _files = PluginFiles(name.clone());
    let stub = StubPlugin::start(&name).unwrap();
    let ns = Netns::new("dkl").unwrap();
    ns.add_phys(PHYS, &format!("{PHYS_IP}/24"));
    let t = Instant::now();
    let d = Dockerd::require_with(
        TEST,
        DockerdOptions {
            base: LAB_BASE.into(),
            netns: Some(PathBuf::from(format!("/run/netns/{}", ns.name))),
            iptables: false,
        },
    )
    .expect("dockerd in the lab");
    let dockerd_up = t.elapsed();
    let conc = Concentrator::build(&ns, SUBNET);
    assert_eq!(conc.gateway, GW);
    container_veth_in_bridge(&ns);
    let key = subnet_key(SUBNET).to_string();
    ns.ip(&[
        "link", "add", "sgt_t0", "type", "gretap", "local", PHYS_IP, "remote", CONC_IP, "key", &key,
    ]);
    ns.ip(&["link", "set", "sgt_t0", "master", "sbr_t0"]);
    ns.ip(&["link", "set", "sgt_t0", "up"]);
    stub.veth(CONTAINER_IP, "svp_t0");
    let took = network_and_container(&d, &name);
    let eth0 = container_eth0(&d, "tc");
    assert_eq!(eth0.addr, format!("{CONTAINER_IP}/26"), "{eth0:?}");
    let o = conc.ping(CONTAINER_IP, 2);
    assert!(ping_ok(&o), "concentrator -> container: {}", out_text(&o));
    let argv = ping_argv(GW, 2);
    let o = d.in_container("tc", &argv.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ping_ok(&o), "container -> gateway: {}", out_text(&o));
    d.remove("tc");
    eprintln!("{TEST}: dockerd up in {dockerd_up:.1?}, container create+start {took:.1?}");
}
