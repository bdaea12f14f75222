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
//! * `plugin_answers_while_ssntp_is_down`: the launcher's plugin answers
//!   before any connection and through SSNTP reconnects.
//! * `launcher_lets_bridged_traffic_through_when_dockerd_filters`: the
//!   launcher's FORWARD rule at start-up, removed by `-hard-reset`.
//!
//! Inside the kernel lab (Debian's kernel, which has `ip_gre`), one boot
//! for all of them (`docker_lab`, see tests/lab/README.md), the launcher's
//! container networking for real, with a dockerd inside the lab and a
//! hand-built concentrator namespace at the far end of the gretap:
//! `lab_containers_on_a_tenant_network` (one node and one dockerd through
//! the containers' whole life: START, kill -9, dockerd restarted, RESTART,
//! a VM in the same bridge, DELETE),
//! `lab_start_completes_while_dockerd_waits_for_the_plugin` (a dockerd
//! stand-in that calls the plugin before it answers), and the opt-in
//! `lab_figures_start_to_running`.
//!
//! Root, dockerd, busybox-static and ip are needed; elsewhere each test
//! prints `SKIPPED:` (and fails under CI=true).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ciao::http::parse_json;
use serde::Deserialize;

use ciao::payloads::Stat;
use ciao::ssntp::frame::{Command, Event};
use ciao::ssntp::server::ServerEvent;
use ciao::ssntp::tls;
use ciao_test_support::docker::{Dockerd, DockerdOptions, EXAMPLE_IMAGE};
use ciao_test_support::docker_node::{
    container_eth0, gateway_of, out_text, ping_argv, Concentrator, ContainerSpec, DockerNode,
    DockerNodeOptions,
};
use ciao_test_support::lab;
use ciao_test_support::netnode::{blank_image, CnNet, NetNode, NodeOptions, StartSpec};
use ciao_test_support::netns::{self, summary, LinkInfo, Netns, WAIT};
use ciao_test_support::skip_or_fail;
use ciao_test_support::ssntp_server::{Options, TestServer};
use ciao_test_support::stub_plugin::{socket_of, unique_name, PluginFiles, StubPlugin};
use ciao_test_support::unix_http;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

/// The outer test of the lab suite: boots the kernel lab once and runs the
/// `#[ignore]`d inner tests below inside it.
#[test]
fn docker_lab() {
    // Under software emulation a dockerd takes 5-45 s to start or stop.
    let boot = lab::Boot {
        mem_mb: 1024,
        timeout: Duration::from_secs(600),
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
    for m in ["ip_gre", "bridge", "veth", "tun"] {
        assert!(modprobe(m), "modprobe {m} failed");
    }
}

/// The daemon's directory in the lab: /run (a tmpfs; /tmp is an overlay,
/// where overlay2 cannot stack).
const LAB_BASE: &str = "/run";

// ---------------------------------------------------------------------
// The launcher's container networking, inside the lab.

const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");

/// A launcher node with a dockerd in its namespace, under /run; no
/// launcher yet.
fn lab_docker_node(test: &str, tag: &str, iptables: bool, flags: &[&str]) -> DockerNode {
    load_modules();
    DockerNode::new(
        LAUNCHER,
        test,
        tag,
        DockerNodeOptions {
            base: LAB_BASE.into(),
            iptables,
            flags: flags.iter().map(|s| s.to_string()).collect(),
        },
    )
    .unwrap_or_else(|| panic!("{test}: no docker node"))
}

fn active(s: &Stat, id: &str) -> bool {
    state_of(s, id).as_deref() == Some("active")
}

fn state_of(s: &Stat, id: &str) -> Option<String> {
    s.instances
        .iter()
        .find(|i| i.instance_uuid == id)
        .map(|i| i.state.clone())
}

/// START of `payload` for `id`, until STATS report it active: how long
/// that took.
fn start_until_active(n: &NetNode, id: &str, payload: Vec<u8>) -> Duration {
    let m = n.mark();
    let t = Instant::now();
    n.send(Command::Start, payload);
    n.stats_until(m, &format!("{id} active"), |s| active(s, id));
    t.elapsed()
}

/// The container's eth0: the payload's MAC, its address with the
/// subnet's real prefix, MTU 1400, the default route via the gateway.
fn check_eth0(d: &Dockerd, spec: &ContainerSpec) {
    let e = container_eth0(d, &spec.id);
    let (gw, len) = gateway_of(&spec.subnet);
    assert_eq!(e.mac, spec.mac, "{e:?}");
    assert_eq!(e.addr, format!("{}/{len}", spec.private_ip), "{e:?}");
    assert_eq!(e.mtu, 1400, "{e:?}");
    assert_eq!(e.gateway.as_deref(), Some(gw.as_str()), "{e:?}");
}

/// The concentrator pings the container, the container its gateway.
fn ping_both_ways(d: &Dockerd, conc: &Concentrator, spec: &ContainerSpec) {
    let o = conc.ping(&spec.private_ip, 2);
    assert!(ping_ok(&o), "concentrator -> container: {}", out_text(&o));
    let argv = ping_argv(&conc.gateway, 2);
    let o = d.in_container(
        &spec.id,
        &argv.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(ping_ok(&o), "container -> gateway: {}", out_text(&o));
}

/// Links of ours in the node's namespace (bridge, tunnel, veth, tap).
fn ours(links: &[LinkInfo]) -> Vec<String> {
    links
        .iter()
        .filter(|l| {
            ["sbr_", "sgt_", "svn_", "svp_"]
                .iter()
                .any(|p| l.name.starts_with(p))
        })
        .map(|l| l.name.clone())
        .collect()
}

/// DELETE of `id`, answered by InstanceDeleted.
fn delete(n: &NetNode, id: &str) {
    let m = n.mark();
    n.command("delete", id);
    n.wait(m, WAIT, "InstanceDeleted", Event::InstanceDeleted, |p| {
        String::from_utf8_lossy(p).contains(id)
    });
}

/// Nothing of the subnet is left: no link of ours, no docker network of
/// our driver, nothing of it in the plugin's state file.
fn nothing_left(dn: &DockerNode, specs: &[&ContainerSpec]) {
    dn.node
        .links_until(WAIT, "no link of ours", |l| ours(l).is_empty());
    let end = Instant::now() + WAIT;
    while !dn.our_networks().is_empty() {
        assert!(
            Instant::now() < end,
            "docker networks left: {:?}\n{}",
            dn.our_networks(),
            dn.node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // dockerd forgets the network around the plugin's DeleteNetwork call,
    // so the state file may follow a moment later.
    let state = dn.node.data.join("networking/docker-plugin.yaml");
    loop {
        let text = std::fs::read_to_string(&state).unwrap_or_default();
        let left = specs
            .iter()
            .find(|s| text.contains(&s.private_ip) || text.contains(&s.bridge_alias()));
        let Some(s) = left else {
            return;
        };
        assert!(
            Instant::now() < end,
            "{} still mentions {}:\n{text}\n{}",
            state.display(),
            s.id,
            dn.node.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The container's host-end veth: the vnic alias, a veth, the container
/// MTU, up, in a bridge of ours.
fn check_veth(dn: &DockerNode, spec: &ContainerSpec) {
    let links = dn.node.links();
    let veth = links
        .iter()
        .find(|l| l.alias.as_deref() == Some(spec.vnic_alias().as_str()))
        .unwrap_or_else(|| panic!("no veth with the vnic alias: {:?}", summary(&links)));
    assert_eq!(veth.kind.as_deref(), Some("veth"), "{veth:?}");
    assert_eq!(veth.mtu, 1400, "{veth:?}");
    assert!(
        veth.up
            && veth
                .master
                .as_deref()
                .is_some_and(|m| m.starts_with("sbr_")),
        "{veth:?}"
    );
}

/// One line per phase of the lab test, with the time it took.
struct Phases(Instant);

impl Phases {
    fn done(&mut self, test: &str, what: &str) {
        eprintln!("{test}: {what} in {:.1?}", self.0.elapsed());
        self.0 = Instant::now();
    }
}

/// `lab_containers_on_a_tenant_network`: one node and one dockerd for the
/// whole life of two containers and a VM on one tenant subnet (a dockerd
/// start costs 5-10 s under the lab's emulation, so the phases share it).
/// dockerd runs as in production, with its packet filtering on (FORWARD
/// policy DROP, br_netfilter loaded); the launcher's containers get
/// `--stop-timeout=1` (the test image's shell ignores SIGTERM).
///
/// 1. START of the container example: eth0 as the payload says, the
///    docker network named after the subnet, the veth in the bridge, the
///    launcher's FORWARD rule, pings through the launcher's gretap to a
///    hand-built concentrator both ways.
/// 2. kill -9 of the launcher; the next one's plugin answers for the
///    existing network and endpoint at once: `docker restart` (dockerd
///    calls the plugin again) succeeds, same MAC and IP, pings.
/// 3. A second container; dockerd restarted (without live-restore its
///    containers die, and their veth pairs with their namespaces): both
///    are reported exited, and a RESTART brings each back with the same
///    MAC and IP (the pair made again), pings.
/// 4. A VM (the real qemu driver, software emulation, a blank disk: the
///    guest never boots, qemu holds the tap) on the same subnet: one
///    bridge with the tunnel, the tap and both veths; one TenantAdded in
///    all.
/// 5. DELETE of everything leaves no link, no docker network, no plugin
///    state, and one TenantRemoved.
#[test]
#[ignore = "inner: runs inside the kernel lab (docker_lab)"]
fn lab_containers_on_a_tenant_network() {
    const TEST: &str = "lab_containers_on_a_tenant_network";
    if !lab::inside(TEST) {
        return;
    }
    let mut ph = Phases(Instant::now());
    // What a production dockerd's bridge driver loads.
    assert!(modprobe("br_netfilter"), "modprobe br_netfilter failed");
    let mut dn = lab_docker_node(
        TEST,
        "dka",
        true,
        &["--stop-timeout=1", "-qemu-virtualisation=software"],
    );
    let a = ContainerSpec::example();
    let b = a.another("67d86208-b46c-4465-9018-e14087d41600", "192.168.111.104");
    let conc = Concentrator::build(&dn.node.ns, &a.subnet);
    dn.node.start_launcher();
    let m0 = dn.node.mark();
    ph.done(TEST, "node, dockerd and launcher up");

    // 1. START, eth0, links, filtering, pings.
    let took = start_until_active(&dn.node, &a.id, a.payload());
    check_eth0(&dn.dockerd, &a);
    assert_eq!(dn.our_networks(), [a.docker_network()]);
    check_veth(&dn, &a);
    let forward = out_text(&dn.node.ns.exec(&["iptables", "-S", "FORWARD"]));
    assert!(forward.contains("-P FORWARD DROP"), "{forward}");
    assert!(
        forward.contains("-A FORWARD -i sbr_+ -o sbr_+ -j ACCEPT"),
        "{forward}"
    );
    ping_both_ways(&dn.dockerd, &conc, &a);
    ph.done(
        TEST,
        &format!("1. START (to active {took:.1?}), eth0, pings"),
    );

    // 2. kill -9, a new launcher, docker restart.
    dn.node.kill9();
    dn.node.start_launcher();
    let m = dn.node.mark();
    dn.node
        .stats_until(m, "the container active again", |s| active(s, &a.id));
    let r = dn.dockerd.restart(&a.id);
    assert_eq!(r.status, 204, "docker restart: {}", r.text());
    check_eth0(&dn.dockerd, &a);
    ping_both_ways(&dn.dockerd, &conc, &a);
    ph.done(TEST, "2. kill -9, docker restart, pings");

    // 3. dockerd restarted under two containers, then RESTART.
    start_until_active(&dn.node, &b.id, b.payload());
    dn.dockerd.stop();
    let m = dn.node.mark();
    dn.node.stats_until(m, "both exited", |s| {
        [&a, &b]
            .iter()
            .all(|c| state_of(s, &c.id).as_deref() == Some("exited"))
    });
    dn.dockerd.start().expect("dockerd starts again");
    ph.done(TEST, "3. second START, dockerd restarted, both exited");
    for c in [&a, &b] {
        let m = dn.node.mark();
        dn.node.command("restart", &c.id);
        dn.node
            .stats_until(m, &format!("{} active again", c.id), |s| active(s, &c.id));
        check_eth0(&dn.dockerd, c);
        check_veth(&dn, c);
        ping_both_ways(&dn.dockerd, &conc, c);
    }
    ph.done(TEST, "3. RESTART of both, pings");

    // 4. A VM on the same subnet shares the bridge.
    blank_image(&dn.node.data.join("images").join("blank"), "64M");
    let mut vm = StartSpec::cn("0d0c0000-0000-4000-8000-000000000001");
    vm.tenant = a.tenant.clone();
    vm.image = "blank".into();
    vm.mem_mb = 64;
    vm.cn = Some(CnNet {
        concentrator_ip: a.concentrator_ip.clone(),
        concentrator_uuid: a.concentrator_uuid.clone(),
        subnet: a.subnet.clone(),
        private_ip: "192.168.111.103".into(),
    });
    assert_eq!(
        vm.bridge_alias().as_deref(),
        Some(a.bridge_alias().as_str())
    );
    start_until_active(&dn.node, &vm.id, vm.payload());
    let links = dn.node.links();
    let bridges: Vec<&LinkInfo> = links
        .iter()
        .filter(|l| l.name.starts_with("sbr_"))
        .collect();
    assert_eq!(bridges.len(), 1, "{:?}", summary(&links));
    let br = bridges[0].name.clone();
    let mut kinds: Vec<&str> = links
        .iter()
        .filter(|l| l.master.as_deref() == Some(br.as_str()))
        .filter_map(|l| l.kind.as_deref())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["gretap", "tun", "veth", "veth"],
        "{:?}",
        summary(&links)
    );
    assert_eq!(dn.node.frames(m0, Event::TenantAdded).len(), 1);
    ph.done(TEST, "4. a VM in the same bridge");

    // 5. DELETE: the containers first (the VM still holds the bridge and
    // the docker network), then the VM.
    for c in [&a, &b] {
        delete(&dn.node, &c.id);
    }
    assert!(dn.node.links().iter().any(|l| l.name == br));
    assert_eq!(dn.our_networks(), [a.docker_network()]);
    delete(&dn.node, &vm.id);
    nothing_left(&dn, &[&a, &b]);
    assert_eq!(dn.node.frames(m0, Event::TenantRemoved).len(), 1);
    ph.done(TEST, "5. DELETE of all, nothing left");
}

// ---------------------------------------------------------------------
// No deadlock: a dockerd stand-in that calls the plugin before it answers.

/// What the stand-in remembers.
#[derive(Default)]
struct StandInState {
    /// The launcher's plugin socket.
    plugin: PathBuf,
    /// Network name → (id, pool id, subnet prefix length).
    networks: BTreeMap<String, (String, String, String)>,
    /// Container id → (network name, IP, MAC).
    containers: BTreeMap<String, (String, String, String)>,
    /// Every plugin call and its reply, in order.
    log: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NetCreate {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Options")]
    options: BTreeMap<String, String>,
    #[serde(rename = "IPAM")]
    ipam: Ipam,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Ipam {
    #[serde(rename = "Config")]
    config: Vec<IpamConfig>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IpamConfig {
    #[serde(rename = "Subnet")]
    subnet: String,
    #[serde(rename = "Gateway")]
    gateway: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ContainerCreate {
    #[serde(rename = "MacAddress")]
    mac: String,
    #[serde(rename = "HostConfig")]
    host: HostCfg,
    #[serde(rename = "NetworkingConfig")]
    networking: NetCfg,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct HostCfg {
    #[serde(rename = "NetworkMode")]
    network_mode: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NetCfg {
    #[serde(rename = "EndpointsConfig")]
    endpoints: BTreeMap<String, EndpointCfg>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct EndpointCfg {
    #[serde(rename = "IPAMConfig")]
    ipam: IpamAddr,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IpamAddr {
    #[serde(rename = "IPv4Address")]
    ip: String,
}

/// A plugin reply's fields the stand-in looks at.
#[derive(Deserialize, Default)]
#[serde(default)]
struct PluginReply {
    #[serde(rename = "Err")]
    err: String,
    #[serde(rename = "Error")]
    error: String,
    #[serde(rename = "PoolID")]
    pool_id: String,
    #[serde(rename = "Address")]
    address: String,
}

/// Calls the launcher's plugin (as dockerd would, within 10 s); Err: a
/// transport failure or an error in the reply.
fn plugin_call(st: &mut StandInState, path: &str, body: String) -> Result<PluginReply, String> {
    let r = unix_http::call(
        &st.plugin,
        "POST",
        path,
        body.as_bytes(),
        Duration::from_secs(10),
    )?;
    st.log.push(format!("{path} {} {}", r.status, r.text()));
    let p: PluginReply =
        parse_json(&r.body).map_err(|e| format!("{path}: {}: {}", e.0, r.text()))?;
    if r.status != 200 || !p.err.is_empty() || !p.error.is_empty() {
        return Err(format!("{path}: {} {}", r.status, r.text()));
    }
    Ok(p)
}

fn json_error(e: &str) -> (u16, String) {
    (500, format!("{{\"message\":{e:?}}}"))
}

/// The stand-in's answer to one Engine API request.
fn stand_in(state: &Mutex<StandInState>, r: &unix_http::Request) -> (u16, String) {
    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
    let full = r.path().to_string();
    // Strip a version prefix (/v1.41).
    let path = match full.strip_prefix("/v") {
        Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => rest
            .find('/')
            .map(|i| rest[i..].to_string())
            .unwrap_or_default(),
        _ => full.clone(),
    };
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (r.method.as_str(), parts.as_slice()) {
        ("GET", ["_ping"]) => (200, "OK".into()),
        ("GET", ["version"]) => (
            200,
            r#"{"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.12"}"#.into(),
        ),
        ("GET", ["images", .., "json"]) => (200, r#"{"Id":"sha256:00"}"#.into()),
        ("POST", ["networks", "create"]) => {
            let Ok(n) = parse_json::<NetCreate>(&r.body) else {
                return json_error("bad network body");
            };
            if st.networks.contains_key(&n.name) {
                return (409, r#"{"message":"network exists"}"#.into());
            }
            let Some(cfg) = n.ipam.config.first() else {
                return json_error("no IPAM config");
            };
            let len = cfg.subnet.split('/').nth(1).unwrap_or("").to_string();
            let id = format!("n{:062}", st.networks.len());
            let bridge = n.options.get("bridge").cloned().unwrap_or_default();
            let steps = (|| {
                let pool = plugin_call(
                    &mut st,
                    "/IpamDriver.RequestPool",
                    format!(
                        r#"{{"AddressSpace":"","Pool":{:?},"SubPool":"","Options":{{}},"V6":false}}"#,
                        cfg.subnet
                    ),
                )?;
                plugin_call(
                    &mut st,
                    "/IpamDriver.RequestAddress",
                    format!(
                        r#"{{"PoolID":{:?},"Address":{:?},"Options":{{"RequestAddressType":"com.docker.network.gateway"}}}}"#,
                        pool.pool_id, cfg.gateway
                    ),
                )?;
                plugin_call(
                    &mut st,
                    "/NetworkDriver.CreateNetwork",
                    format!(
                        r#"{{"NetworkID":{id:?},"Options":{{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{{"bridge":{bridge:?}}}}},"IPv4Data":[{{"AddressSpace":"","Pool":{:?},"Gateway":"{}/{len}"}}],"IPv6Data":[]}}"#,
                        cfg.subnet, cfg.gateway
                    ),
                )?;
                Ok::<String, String>(pool.pool_id)
            })();
            match steps {
                Ok(pool) => {
                    st.networks.insert(n.name, (id.clone(), pool, len));
                    (201, format!(r#"{{"Id":{id:?},"Warning":""}}"#))
                }
                Err(e) => json_error(&e),
            }
        }
        ("POST", ["containers", "create"]) => {
            let Ok(c) = parse_json::<ContainerCreate>(&r.body) else {
                return json_error("bad container body");
            };
            let net = c.host.network_mode.clone();
            let ip = c
                .networking
                .endpoints
                .get(&net)
                .map(|e| e.ipam.ip.clone())
                .unwrap_or_default();
            if !st.networks.contains_key(&net) {
                return (404, r#"{"message":"network not found"}"#.into());
            }
            let id = format!("c{:063}", st.containers.len());
            st.containers.insert(id.clone(), (net, ip, c.mac));
            (201, format!(r#"{{"Id":{id:?},"Warnings":[]}}"#))
        }
        ("POST", ["containers", id, "start"]) => {
            let Some((net, ip, mac)) = st.containers.get(*id).cloned() else {
                return (404, r#"{"message":"no such container"}"#.into());
            };
            let Some((nid, pool, len)) = st.networks.get(&net).cloned() else {
                return json_error("network gone");
            };
            let ep = format!("e{id}");
            // As dockerd does at start: the address, the endpoint, the
            // join; only then the answer.
            let steps = (|| {
                let a = plugin_call(
                    &mut st,
                    "/IpamDriver.RequestAddress",
                    format!(r#"{{"PoolID":{pool:?},"Address":{ip:?},"Options":{{}}}}"#),
                )?;
                if a.address != format!("{ip}/{len}") {
                    return Err(format!("RequestAddress gave {:?}", a.address));
                }
                plugin_call(
                    &mut st,
                    "/NetworkDriver.CreateEndpoint",
                    format!(
                        r#"{{"NetworkID":{nid:?},"EndpointID":{ep:?},"Interface":{{"Address":"{ip}/{len}","AddressIPv6":"","MacAddress":{mac:?}}},"Options":{{}}}}"#
                    ),
                )?;
                plugin_call(
                    &mut st,
                    "/NetworkDriver.Join",
                    format!(
                        r#"{{"NetworkID":{nid:?},"EndpointID":{ep:?},"SandboxKey":"/var/run/docker/netns/x","Options":{{}}}}"#
                    ),
                )?;
                Ok::<(), String>(())
            })();
            match steps {
                Ok(()) => (204, String::new()),
                Err(e) => json_error(&e),
            }
        }
        ("GET", ["containers", id, "json"]) => match st.containers.get(*id) {
            Some(_) => (
                200,
                format!(
                    r#"{{"Id":{id:?},"State":{{"Status":"running","Running":true,"Pid":{}}},"Config":{{"Labels":{{}}}}}}"#,
                    std::process::id()
                ),
            ),
            None => (404, r#"{"message":"no such container"}"#.into()),
        },
        ("POST", ["containers", _, "wait"]) => {
            // A long poll: answered only when the test is over.
            drop(st);
            std::thread::sleep(Duration::from_secs(600));
            (200, r#"{"StatusCode":0}"#.into())
        }
        ("GET", ["containers", _, "stats"]) => (200, "{}".into()),
        ("GET", ["containers", "json"]) => (200, "[]".into()),
        _ => (
            404,
            format!(
                r#"{{"message":"not in the stand-in: {} {full}"}}"#,
                r.method
            ),
        ),
    }
}

/// `lab_start_completes_while_dockerd_waits_for_the_plugin`: dockerd is
/// played by the test, which calls the launcher's plugin (network create:
/// pool, gateway, network; container start: address, endpoint, join) and
/// only then answers: the START completes, every plugin call is answered
/// without error, and Join names the container's veth peer.
#[test]
#[ignore = "inner: runs inside the kernel lab (docker_lab)"]
fn lab_start_completes_while_dockerd_waits_for_the_plugin() {
    const TEST: &str = "lab_start_completes_while_dockerd_waits_for_the_plugin";
    if !lab::inside(TEST) {
        return;
    }
    load_modules();
    let spec = ContainerSpec::example();
    let plugin = unique_name();
    let _files = PluginFiles(plugin.clone());
    let mut n = NetNode::new(
        LAUNCHER,
        "dks",
        NodeOptions {
            flags: Vec::new(),
            base: LAB_BASE.into(),
            ..NodeOptions::default()
        },
    )
    .unwrap();
    let state = Arc::new(Mutex::new(StandInState {
        plugin: socket_of(&plugin),
        ..StandInState::default()
    }));
    let sock = n.tmp.path().join("standin.sock");
    let st = state.clone();
    let _standin = unix_http::Server::serve(&sock, move |r| stand_in(&st, r)).unwrap();
    n.flags = vec![
        "-network=true".into(),
        format!("--docker-socket={}", sock.display()),
        format!("--docker-plugin-name={plugin}"),
    ];
    n.start_launcher();
    let took = start_until_active(&n, &spec.id, spec.payload());
    let log = state.lock().unwrap().log.join("\n");
    eprintln!("{TEST}: START to active {took:.1?}; plugin calls:\n{log}");
    assert!(log.contains("/NetworkDriver.Join 200"), "{log}");
    let peer = log
        .lines()
        .find(|l| l.starts_with("/NetworkDriver.Join"))
        .and_then(|l| l.split("\"SrcName\":\"").nth(1))
        .and_then(|s| s.split('"').next())
        .unwrap_or("");
    assert!(peer.starts_with("svp_"), "{log}");
    assert!(n.ns.link(peer).is_some(), "{peer} exists");
}

/// A test server for the node `n` in its namespace, listening on `listen`.
fn serve(n: &NetNode, listen: std::net::SocketAddr) -> TestServer {
    let ca = tls::load_ca(&n.certs.ca_pem_path).unwrap();
    let id = tls::load_identity(&n.certs.server_pem_path).unwrap();
    let t = tls::server_config(&ca, &id).unwrap();
    n.ns.on_thread(move || {
        TestServer::start(
            t,
            Options {
                listen,
                ..Options::default()
            },
        )
    })
}

/// `plugin_answers_while_ssntp_is_down`: the plugin listens from start-up,
/// before any connection: a launcher whose server is not there answers
/// Activate, the capabilities, and an error (not a dropped connection)
/// for an unknown network. Then the server comes (the launcher connects),
/// goes (it reconnects) and comes back, twice, while a client calls the
/// plugin without a pause: every call, also those made mid-reconnect, is
/// answered within 5 s. On this machine's kernel (no tenant links needed).
#[test]
fn plugin_answers_while_ssntp_is_down() {
    const TEST: &str = "plugin_answers_while_ssntp_is_down";
    if let Some(why) = netns::missing() {
        skip_or_fail(TEST, &why);
        return;
    }
    let plugin = unique_name();
    let _files = PluginFiles(plugin.clone());
    let opts = NodeOptions {
        flags: vec!["-network=true".into()],
        ..NodeOptions::default()
    };
    let mut n = match NetNode::new(LAUNCHER, "dkd", opts) {
        Ok(n) => n,
        Err(why) => {
            skip_or_fail(TEST, &why);
            return;
        }
    };
    // The server's address stays the launcher's; the server itself goes
    // (a stand-in elsewhere takes the field) until the test brings it
    // back on that address.
    let addr = n.server.addr;
    let elsewhere = serve(&n, "127.0.0.1:0".parse().unwrap());
    std::mem::replace(&mut n.server, elsewhere).stop();
    let name = format!("--docker-plugin-name={plugin}");
    let mut args = n.launcher_args(&["-simulation", &name, "-logtostderr", "-v=1"]);
    for a in args.iter_mut() {
        if a.starts_with("--server=") {
            *a = format!("--server={addr}");
        }
    }
    let mut l = n.spawn(args);
    let sock = socket_of(&plugin);
    let end = Instant::now() + Duration::from_secs(20);
    while !sock.exists() {
        assert!(
            Instant::now() < end,
            "no plugin socket {} without a server:\n{}",
            sock.display(),
            l.output()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let call = |path: &str, body: &str| {
        unix_http::call(&sock, "POST", path, body.as_bytes(), Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{path}: {e}\n{}", l.output()))
    };
    let t = Instant::now();
    let r = call("/Plugin.Activate", "{}");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("NetworkDriver") && r.text().contains("IpamDriver"));
    let r = call("/NetworkDriver.GetCapabilities", "{}");
    assert!(r.text().contains("\"Scope\":\"local\""), "{}", r.text());
    let r = call(
        "/NetworkDriver.Join",
        r#"{"NetworkID":"nope","EndpointID":"nope","SandboxKey":"x","Options":{}}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let p: PluginReply = parse_json(&r.body).unwrap();
    assert!(
        !p.err.is_empty(),
        "an error for an unknown network: {}",
        r.text()
    );
    eprintln!("{TEST}: three calls answered in {:.1?}", t.elapsed());

    // A client calling without a pause while the server comes and goes.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let caller = {
        let (sock, stop) = (sock.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut calls, mut slowest) = (0u32, Duration::ZERO);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let r = unix_http::call(
                    &sock,
                    "POST",
                    "/IpamDriver.GetCapabilities",
                    b"{}",
                    Duration::from_secs(5),
                )
                .map_err(|e| format!("call {calls}: {e}"))?;
                if r.status != 200 || !r.text().contains("RequiresMACAddress") {
                    return Err(format!("call {calls}: {} {}", r.status, r.text()));
                }
                calls += 1;
                slowest = slowest.max(t.elapsed());
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok::<_, String>((calls, slowest))
        })
    };
    let connected = |s: &TestServer| loop {
        match s.expect(WAIT, "the launcher to connect") {
            ServerEvent::Connected { .. } => break,
            _ => continue,
        }
    };
    for round in 0..2 {
        let back = serve(&n, addr);
        connected(&back);
        // Gone while connected: the launcher reconnects at once and
        // again and again while nothing listens.
        back.stop();
        std::thread::sleep(Duration::from_millis(300 * (round + 1)));
    }
    let back = serve(&n, addr);
    connected(&back);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (calls, slowest) = caller
        .join()
        .expect("the caller")
        .unwrap_or_else(|e| panic!("{e}\n{}", l.output()));
    let log = l.output();
    assert!(
        log.matches("lost the SSNTP server").count() >= 2,
        "two disconnects: {log}"
    );
    assert!(calls > 0);
    eprintln!(
        "{TEST}: {calls} calls through two server restarts, slowest {slowest:.1?}, all answered"
    );
    l.signal(libc::SIGTERM);
    assert!(l.wait_exit(Duration::from_secs(10)).is_some());
    assert!(!sock.exists(), "the socket is removed at exit");
}

// ---------------------------------------------------------------------
// Figures (opt-in: CIAO_FIGURES=1; under the lab's software emulation,
// so upper bounds of a real node's).

/// The payload without its networking section.
fn without_networking(payload: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(payload);
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.trim_end() == "  networking:" {
            skipping = true;
            continue;
        }
        if skipping && line.starts_with("    ") {
            continue;
        }
        skipping = false;
        out.push_str(line);
        out.push('\n');
    }
    out.into_bytes()
}

/// Sends START and polls dockerd until the container runs: START to a
/// running container.
fn start_to_running(dn: &DockerNode, id: &str, payload: Vec<u8>) -> Duration {
    let t = Instant::now();
    dn.node.send(Command::Start, payload);
    loop {
        if dn.dockerd.container_pid(id).is_some() {
            return t.elapsed();
        }
        assert!(t.elapsed() < WAIT, "{id} not running\n{}", dn.node.log());
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// `lab_figures_start_to_running`: START to a running container, with and
/// without networking, median of 10 each (`CIAO_FIGURES_N` others), same
/// run and same dockerd. With `CIAO_DOCKERD_DEBUG=1` it prints dockerd's
/// debug log and the launcher's at the end, to read where a start's time
/// goes (run it alone in the lab: see tests/lab/README.md). A
/// launcher with networking refuses a START without its networking
/// section, so the containers without networking are started first by a
/// launcher with `-network=false`, then the networked ones by one with
/// `-network=true` on the same node.
#[test]
#[ignore = "inner: runs inside the kernel lab (docker_lab)"]
fn lab_figures_start_to_running() {
    const TEST: &str = "lab_figures_start_to_running";
    if !lab::inside(TEST) {
        return;
    }
    if std::env::var("CIAO_FIGURES").as_deref() != Ok("1") {
        eprintln!("{TEST}: not measured (set CIAO_FIGURES=1)");
        return;
    }
    let n: u32 = match std::env::var("CIAO_FIGURES_N") {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or_else(|| panic!("CIAO_FIGURES_N={v:?}: not a count")),
        Err(_) => 10,
    };
    let mut dn = lab_docker_node(TEST, "dkm", false, &["--stop-timeout=1"]);
    let base = ContainerSpec::example();
    let id = |n: u32| format!("67d86208-b46c-4465-9018-e14087d4{n:04x}");
    let networked = dn.node.flags.clone();
    dn.node.flags = networked
        .iter()
        .map(|f| match f.as_str() {
            "-network=true" => "-network=false".to_string(),
            _ => f.clone(),
        })
        .collect();
    dn.node.start_launcher();
    let mut plain = Vec::new();
    for i in 0..n {
        let b = base.another(&id(0x200 + i), "192.168.111.120");
        let p = without_networking(&b.payload());
        plain.push(start_to_running(&dn, &b.id, p).as_secs_f64() * 1e3);
    }
    dn.node.stop_launcher();
    dn.node.flags = networked;
    dn.node.start_launcher();
    let mut net = Vec::new();
    for i in 0..n {
        let a = base.another(&id(0x100 + i), &format!("192.168.111.{}", 70 + i));
        net.push(start_to_running(&dn, &a.id, a.payload()).as_secs_f64() * 1e3);
    }
    eprintln!(
        "FIGURES {TEST}: START to running, median of {n}: networked {:.0} ms, without networking {:.0} ms (all: {net:.0?} / {plain:.0?})",
        median(&mut net.clone()),
        median(&mut plain.clone())
    );
    if std::env::var("CIAO_DOCKERD_DEBUG").as_deref() == Ok("1") {
        eprintln!(
            "--- launcher log ---\n{}\n--- dockerd log ---\n{}\n--- end of logs ---",
            dn.node.log(),
            dn.dockerd.log_text()
        );
    }
}

/// `launcher_lets_bridged_traffic_through_when_dockerd_filters`: with
/// dockerd's filtering on (FORWARD policy DROP, br_netfilter active on
/// this kernel), the launcher inserts at start-up a FORWARD rule for its
/// bridges (`sbr_+`), so two namespaces on a bridge named like ours ping
/// each other; `-hard-reset` removes the rule. On this machine's kernel
/// (the launcher is simulated: no tenant START needed).
#[test]
fn launcher_lets_bridged_traffic_through_when_dockerd_filters() {
    const TEST: &str = "launcher_lets_bridged_traffic_through_when_dockerd_filters";
    let Some(mut dn) = DockerNode::new(
        LAUNCHER,
        TEST,
        "dkw",
        DockerNodeOptions {
            iptables: true,
            flags: vec!["-simulation".into()],
            ..DockerNodeOptions::default()
        },
    ) else {
        return;
    };
    let rule = "-A FORWARD -i sbr_+ -o sbr_+ -j ACCEPT";
    let name = dn.node.ns.name.clone();
    let forward = || {
        let o = std::process::Command::new("ip")
            .args(["netns", "exec", &name, "iptables", "-S", "FORWARD"])
            .output()
            .expect("ip netns exec iptables");
        out_text(&o)
    };
    let ns = &dn.node.ns;
    assert!(forward().contains("-P FORWARD DROP"), "{}", forward());
    // Two namespaces on a bridge named like the launcher's.
    let (a, b) = (Netns::new("dkwa").unwrap(), Netns::new("dkwb").unwrap());
    ns.ip(&["link", "add", "sbr_w0", "type", "bridge"]);
    ns.ip(&["link", "set", "sbr_w0", "up"]);
    for (port, peer, addr) in [("pa", &a, "203.0.113.33/27"), ("pb", &b, "203.0.113.34/27")] {
        ns.ip(&[
            "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", &peer.name,
        ]);
        ns.ip(&["link", "set", port, "master", "sbr_w0"]);
        ns.ip(&["link", "set", port, "up"]);
        peer.ip(&["addr", "add", addr, "dev", "eth0"]);
        peer.ip(&["link", "set", "eth0", "up"]);
    }
    let argv = ping_argv("203.0.113.34", 1);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    if ns
        .read_sys("/proc/sys/net/bridge/bridge-nf-call-iptables")
        .as_deref()
        == Some("1")
    {
        assert!(!ping_ok(&a.exec(&argv)), "dropped before the launcher runs");
    }
    dn.node.start_launcher();
    // The rule goes in once the launcher is connected (a child process of
    // its loop), not before start_launcher returns.
    ciao_test_support::proc::wait_for(WAIT, "the launcher's FORWARD rule", || {
        forward().contains(rule).then_some(())
    });
    let o = a.exec(&argv);
    assert!(
        ping_ok(&o),
        "bridged ping with the launcher's rule: {}",
        out_text(&o)
    );
    dn.node.stop_launcher();
    let args = dn
        .node
        .launcher_args(&["-hard-reset", "-logtostderr", "-v=1"]);
    let (code, out) = dn.node.run_launcher(args);
    assert_eq!(code, 0, "{out}");
    assert!(
        !forward().contains(rule),
        "-hard-reset removes it: {}",
        forward()
    );
}
