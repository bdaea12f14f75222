//! The plugin core against the calls a real dockerd made (fixtures under
//! tests/fixtures/docker-plugin/, see its README) and against bad ones.

use super::rebuild::{rebuild, RebuildError};
use super::serve::{limits, serve};
use super::*;
use crate::http::{parse_json, RequestParser};

/// The driver name the fixtures were captured with.
const CAPTURED: &str = "ciaocap2760";
const NET: &str = "21277af3c3b35a75f67953d0f3fcd26c34a4171f1484b1fdbb1e4c0ff37fefdf";
const EP1: &str = "a1570b0e9464d1dcf8e049658aa784e9a623c31484a46d11c56fd9294d88eaa3";

fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/docker-plugin")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[derive(serde::Deserialize)]
struct Call {
    path: String,
    body: String,
}

fn calls() -> Vec<Call> {
    String::from_utf8(fixture("dockerd-20.10-calls.jsonl"))
        .unwrap()
        .lines()
        .map(|l| parse_json(l.as_bytes()).unwrap())
        .collect()
}

/// The captured network's bridge option is `br_x`; its container's veth
/// host end is `svn_1a`.
fn veth(name: &str, alias: &str) -> Link {
    Link {
        index: 9,
        name: name.into(),
        alias: Some(alias.into()),
        kind: Some("veth".into()),
        ..Link::default()
    }
}

fn links() -> Vec<Link> {
    vec![veth("svn_1a", "vnic_x##172.16.5.7")]
}

fn plugin() -> Plugin {
    Plugin::new(CAPTURED, State::default())
}

fn call(p: &mut Plugin, path: &str, body: &str) -> Reply {
    p.handle(path, body.as_bytes(), &mut links())
}

fn err_of(r: &Reply) -> String {
    #[derive(serde::Deserialize)]
    struct E {
        #[serde(rename = "Err", alias = "Error")]
        e: String,
    }
    parse_json::<E>(r.body.as_bytes()).unwrap().e
}

/// Every call dockerd made, in order, gets the original's reply shape;
/// the address comes back with the subnet's real prefix (B10).
#[test]
fn captured_calls_replay() {
    let mut p = plugin();
    let mut replies = Vec::new();
    // The first RequestPool's PoolID replaces the capture's fake one.
    let mut pool = String::new();
    for c in calls() {
        let body = c.body.replace("pool-1", &pool);
        let r = call(&mut p, &c.path, &body);
        assert_eq!(r.status, 200, "{}", c.path);
        if c.path == "/IpamDriver.RequestPool" {
            #[derive(serde::Deserialize)]
            struct P {
                #[serde(rename = "PoolID")]
                id: String,
            }
            pool = parse_json::<P>(r.body.as_bytes()).unwrap().id;
        }
        replies.push((c.path, r.body));
    }
    let expect = [
        (
            "/Plugin.Activate",
            r#"{"Implements":["NetworkDriver","IpamDriver"]}"#,
        ),
        (
            "/NetworkDriver.GetCapabilities",
            r#"{"Err":"","Scope":"local"}"#,
        ),
        (
            "/IpamDriver.GetCapabilities",
            r#"{"Error":"","RequiresMACAddress":true}"#,
        ),
        (
            "/IpamDriver.GetDefaultAddressSpaces",
            r#"{"Error":"","LocalDefaultAddressSpace":"","GlobalDefaultAddressSpace":""}"#,
        ),
        (
            "/IpamDriver.RequestPool",
            r#"{"Error":"","PoolID":"ciao/172.16.5.0/28","Pool":"172.16.5.0/28","Data":null}"#,
        ),
        (
            "/IpamDriver.RequestAddress",
            r#"{"Error":"","Address":"172.16.5.1/28","Data":null}"#,
        ),
        ("/NetworkDriver.CreateNetwork", r#"{"Err":""}"#),
        (
            "/IpamDriver.RequestAddress",
            r#"{"Error":"","Address":"172.16.5.7/28","Data":null}"#,
        ),
        (
            "/NetworkDriver.CreateEndpoint",
            r#"{"Err":"","Interface":null}"#,
        ),
        (
            "/NetworkDriver.Join",
            r#"{"Err":"","InterfaceName":{"SrcName":"svp_1a","DstName":"","DstPrefix":"eth"},"Gateway":"172.16.5.1","GatewayIPv6":"","StaticRoutes":null,"DisableGatewayService":false}"#,
        ),
        (
            "/NetworkDriver.ProgramExternalConnectivity",
            r#"{"Err":""}"#,
        ),
        (
            "/NetworkDriver.EndpointOperInfo",
            r#"{"Err":"","Value":null}"#,
        ),
        (
            "/NetworkDriver.EndpointOperInfo",
            r#"{"Err":"","Value":null}"#,
        ),
        ("/NetworkDriver.RevokeExternalConnectivity", r#"{"Err":""}"#),
        ("/NetworkDriver.Leave", r#"{"Err":""}"#),
        ("/NetworkDriver.DeleteEndpoint", r#"{"Err":""}"#),
        ("/IpamDriver.ReleaseAddress", r#"{"Error":""}"#),
    ];
    for (i, (path, body)) in expect.iter().enumerate() {
        assert_eq!(
            (replies[i].0.as_str(), replies[i].1.as_str()),
            (*path, *body),
            "call {i}"
        );
    }
    // The restart (calls 17..26) gets the same answers, then everything goes.
    for (path, body) in &replies[17..] {
        let e = parse_json::<serde_yaml::Value>(body.as_bytes()).unwrap();
        let field = if path.starts_with("/Ipam") {
            "Error"
        } else {
            "Err"
        };
        assert_eq!(
            e.get(field).and_then(|v| v.as_str()),
            Some(""),
            "{path}: {body}"
        );
    }
    assert_eq!(replies.len(), 30);
    assert!(p.state().networks.is_empty() && p.state().endpoints.is_empty());
}

fn created() -> Plugin {
    let mut p = plugin();
    let c = calls();
    for i in [6, 8] {
        let r = call(&mut p, &c[i].path, &c[i].body);
        assert_eq!(err_of(&r), "", "{}", c[i].path);
        assert!(r.changed);
    }
    p
}

#[test]
fn state_after_create() {
    let p = created();
    assert_eq!(
        p.state().networks[NET],
        Network {
            bridge: "br_x".into(),
            gateway: "172.16.5.1/28".into(),
            subnet: "172.16.5.0/28".into()
        }
    );
    assert_eq!(
        p.state().endpoints[EP1],
        Endpoint {
            network: NET.into(),
            vnic: "vnic_x##172.16.5.7".into(),
            address: "172.16.5.7/28".into()
        }
    );
}

/// B8: saved and reloaded, the plugin answers Join for what it knew.
#[test]
fn reloaded_state_answers_join() {
    let text = created().state().to_yaml();
    let mut p = Plugin::new(CAPTURED, State::from_yaml(text.as_bytes()).unwrap());
    let join = &calls()[9];
    let r = call(&mut p, &join.path, &join.body);
    assert!(r.body.contains(r#""SrcName":"svp_1a""#), "{}", r.body);
    assert!(!r.changed);
}

/// The veth is looked up again at Join: a pair made again under another
/// name is found by its alias.
#[test]
fn join_follows_the_alias() {
    let mut p = created();
    let join = &calls()[9];
    let mut moved = vec![veth("svn_77", "vnic_x##172.16.5.7")];
    let r = p.handle(&join.path, join.body.as_bytes(), &mut moved);
    assert!(r.body.contains(r#""SrcName":"svp_77""#), "{}", r.body);
    let mut gone: Vec<Link> = Vec::new();
    let r = p.handle(&join.path, join.body.as_bytes(), &mut gone);
    assert!(
        err_of(&r).contains("no link with alias vnic_x##172.16.5.7"),
        "{}",
        r.body
    );
    let mut not_ours = vec![veth("eth9", "vnic_x##172.16.5.7")];
    let r = p.handle(&join.path, join.body.as_bytes(), &mut not_ours);
    assert!(err_of(&r).contains("not a ciao veth"), "{}", r.body);
}

/// B9: unknown ids are error replies (status 200, message in the body).
#[test]
fn unknown_ids_are_error_replies() {
    let mut p = created();
    let cases = [
        (
            "/NetworkDriver.DeleteNetwork",
            r#"{"NetworkID":"nope"}"#,
            "network \"nope\" is not known",
        ),
        (
            "/NetworkDriver.CreateEndpoint",
            r#"{"NetworkID":"nope","EndpointID":"e","Interface":{"Address":"172.16.5.7/28"}}"#,
            "network \"nope\" is not known",
        ),
        (
            "/NetworkDriver.Join",
            r#"{"NetworkID":"nope","EndpointID":"e"}"#,
            "network \"nope\"",
        ),
        (
            "/NetworkDriver.Join",
            &format!(r#"{{"NetworkID":"{NET}","EndpointID":"nope"}}"#),
            "endpoint \"nope\" is not known",
        ),
        (
            "/NetworkDriver.DeleteEndpoint",
            r#"{"NetworkID":"n","EndpointID":"nope"}"#,
            "endpoint \"nope\"",
        ),
        (
            "/IpamDriver.RequestAddress",
            r#"{"PoolID":"0c8d-uuid","Address":"172.16.5.7"}"#,
            "pool \"0c8d-uuid\" is not a ciao pool",
        ),
        (
            "/IpamDriver.ReleasePool",
            r#"{"PoolID":"ciao/172.16.5.7/28"}"#,
            "not a ciao pool",
        ),
        (
            "/IpamDriver.ReleaseAddress",
            r#"{"PoolID":"","Address":"1.2.3.4"}"#,
            "not a ciao pool",
        ),
    ];
    for (path, body, want) in cases {
        let r = call(&mut p, path, body);
        assert_eq!(r.status, 200);
        assert!(!r.changed);
        assert!(err_of(&r).contains(want), "{path} {body}: {}", r.body);
    }
    // Nothing was lost on the way.
    assert_eq!(p.state(), created().state());
}

#[test]
fn bad_bodies_are_error_replies() {
    let mut p = created();
    for path in [
        "/NetworkDriver.CreateNetwork",
        "/NetworkDriver.DeleteNetwork",
        "/NetworkDriver.CreateEndpoint",
        "/NetworkDriver.DeleteEndpoint",
        "/NetworkDriver.Join",
        "/NetworkDriver.Leave",
        "/NetworkDriver.EndpointOperInfo",
        "/NetworkDriver.DiscoverNew",
        "/NetworkDriver.DiscoverDelete",
        "/NetworkDriver.ProgramExternalConnectivity",
        "/NetworkDriver.RevokeExternalConnectivity",
        "/IpamDriver.RequestPool",
        "/IpamDriver.ReleasePool",
        "/IpamDriver.RequestAddress",
        "/IpamDriver.ReleaseAddress",
    ] {
        for body in ["", "{", "[1]", "\"x\"", "{\"NetworkID\": {\"a\": 1}, \"EndpointID\": [1], \"PoolID\": {}, \"Pool\": [], \"DiscoveryType\": \"x\"}", "\u{0}"] {
            let r = call(&mut p, path, body);
            assert_eq!(r.status, 200, "{path} {body:?}");
            assert!(err_of(&r).starts_with("Error: "), "{path} {body:?}: {}", r.body);
        }
    }
    // Decodable but wrong.
    let cases = [
        (
            "/NetworkDriver.CreateNetwork",
            r#"{"NetworkID":"n2","IPv4Data":[{"Pool":"10.0.0.0/8","Gateway":"10.0.0.1/8"}]}"#,
            "com.docker.network.generic is missing",
        ),
        (
            "/NetworkDriver.CreateNetwork",
            r#"{"NetworkID":"n2","Options":{"com.docker.network.generic":{"bridge":7}},"IPv4Data":[]}"#,
            "bridge is not a string",
        ),
        (
            "/NetworkDriver.CreateNetwork",
            r#"{"NetworkID":"n2","Options":{"com.docker.network.generic":{"bridge":"eth0"}}}"#,
            "not a ciao bridge alias",
        ),
        // B9: no IPv4 data.
        (
            "/NetworkDriver.CreateNetwork",
            r#"{"NetworkID":"n2","Options":{"com.docker.network.generic":{"bridge":"br_y"}},"IPv4Data":[]}"#,
            "no IPv4 data",
        ),
        (
            "/NetworkDriver.CreateNetwork",
            r#"{"NetworkID":"n2","Options":{"com.docker.network.generic":{"bridge":"br_y"}}}"#,
            "no IPv4 data",
        ),
        (
            "/NetworkDriver.CreateNetwork",
            r#"{"NetworkID":"n2","Options":{"com.docker.network.generic":{"bridge":"br_y"}},"IPv4Data":[{"Pool":"10.0.0.0/8","Gateway":"x"}]}"#,
            "gateway \"x\"",
        ),
        (
            "/NetworkDriver.CreateNetwork",
            r#"{"Options":{"com.docker.network.generic":{"bridge":"br_y"}},"IPv4Data":[{"Pool":"10.0.0.0/8","Gateway":"10.0.0.1"}]}"#,
            "NetworkID is missing",
        ),
        (
            "/NetworkDriver.CreateEndpoint",
            &format!(r#"{{"NetworkID":"{NET}","EndpointID":"e2","Interface":{{"Address":""}}}}"#),
            "IP Address parameter not provided",
        ),
        (
            "/NetworkDriver.CreateEndpoint",
            &format!(r#"{{"NetworkID":"{NET}","EndpointID":"e2"}}"#),
            "IP Address parameter not provided",
        ),
        (
            "/NetworkDriver.CreateEndpoint",
            &format!(
                r#"{{"NetworkID":"{NET}","EndpointID":"e2","Interface":{{"Address":"172.16.5.9/28"}}}}"#
            ),
            "no link with alias vnic_x##172.16.5.9",
        ),
        (
            "/IpamDriver.RequestPool",
            r#"{"Pool":""}"#,
            "needs a subnet",
        ),
        (
            "/IpamDriver.RequestPool",
            r#"{"Pool":"fd00::/64","V6":true}"#,
            "no IPv6 pools",
        ),
        (
            "/IpamDriver.RequestPool",
            r#"{"Pool":"10.0.0.0/8","SubPool":"10.1.0.0/16"}"#,
            "no sub-pools",
        ),
        (
            "/IpamDriver.RequestAddress",
            r#"{"PoolID":"ciao/172.16.5.0/28"}"#,
            "Request does not have IP address",
        ),
        (
            "/IpamDriver.RequestAddress",
            r#"{"PoolID":"ciao/172.16.5.0/28","Address":"172.16.5.17"}"#,
            "not in pool 172.16.5.0/28",
        ),
    ];
    for (path, body, want) in cases {
        let r = call(&mut p, path, body);
        assert_eq!(r.status, 200);
        assert!(err_of(&r).contains(want), "{path} {body}: {}", r.body);
    }
    assert_eq!(p.state(), created().state());
}

#[test]
fn endpoint_must_be_a_veth() {
    let mut p = created();
    let body = format!(
        r#"{{"NetworkID":"{NET}","EndpointID":"e2","Interface":{{"Address":"172.16.5.7/28"}}}}"#
    );
    let mut tap = vec![Link {
        name: "svn_2".into(),
        alias: Some("vnic_x##172.16.5.7".into()),
        kind: Some("tun".into()),
        ..Link::default()
    }];
    let r = p.handle("/NetworkDriver.CreateEndpoint", body.as_bytes(), &mut tap);
    assert!(err_of(&r).contains("is a tun, not a veth"), "{}", r.body);
    struct Broken;
    impl LinkLookup for Broken {
        fn by_alias(&mut self, _: &str) -> Result<Option<Link>, String> {
            Err("netlink down".into())
        }
    }
    let r = p.handle(
        "/NetworkDriver.CreateEndpoint",
        body.as_bytes(),
        &mut Broken,
    );
    assert!(
        err_of(&r).contains("cannot read the links: netlink down"),
        "{}",
        r.body
    );
}

#[test]
fn delete_network_forgets_its_endpoints() {
    let mut p = created();
    let r = call(
        &mut p,
        "/NetworkDriver.DeleteNetwork",
        &format!(r#"{{"NetworkID":"{NET}"}}"#),
    );
    assert_eq!(err_of(&r), "");
    assert!(r.changed);
    assert_eq!(p.state(), &State::default());
}

#[test]
fn unknown_paths_are_404() {
    let mut p = plugin();
    for path in [
        "/",
        "/NetworkDriver.Nope",
        "/IpamDriver.Nope",
        "/Plugin.Activate/x",
    ] {
        let r = call(&mut p, path, "{}");
        assert_eq!(r.status, 404, "{path}");
        assert!(parse_json::<serde_yaml::Value>(r.body.as_bytes()).is_ok());
    }
}

/// The addresses get the pool's own prefix whatever it is (B10).
#[test]
fn address_prefix_is_the_pools() {
    let mut p = plugin();
    for (pool, addr, want) in [
        ("10.0.0.0/8", "10.9.8.7", "10.9.8.7/8"),
        ("192.168.8.0/21", "192.168.15.254", "192.168.15.254/21"),
        ("172.16.5.0/24", "172.16.5.7", "172.16.5.7/24"),
        ("172.16.5.4/30", "172.16.5.5", "172.16.5.5/30"),
    ] {
        let r = call(
            &mut p,
            "/IpamDriver.RequestPool",
            &format!(r#"{{"Pool":"{pool}"}}"#),
        );
        #[derive(serde::Deserialize)]
        struct P {
            #[serde(rename = "PoolID")]
            id: String,
        }
        let id = parse_json::<P>(r.body.as_bytes()).unwrap().id;
        let r = call(
            &mut p,
            "/IpamDriver.RequestAddress",
            &format!(r#"{{"PoolID":"{id}","Address":"{addr}"}}"#),
        );
        assert!(
            r.body.contains(&format!(r#""Address":"{want}""#)),
            "{}",
            r.body
        );
    }
    // A pool given unmasked is named after its network.
    let r = call(
        &mut p,
        "/IpamDriver.RequestPool",
        r#"{"Pool":"172.16.5.9/28"}"#,
    );
    assert!(
        r.body
            .contains(r#""PoolID":"ciao/172.16.5.0/28","Pool":"172.16.5.9/28""#),
        "{}",
        r.body
    );
}

#[test]
fn rebuild_from_dockerd() {
    let (state, problems) = rebuild(CAPTURED, &[fixture("dockerd-20.10-network-capnet.json")]);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        state.networks[NET],
        Network {
            bridge: "br_x".into(),
            gateway: "172.16.5.1/28".into(),
            subnet: "172.16.5.0/28".into()
        }
    );
    assert_eq!(state.endpoints[EP1].vnic, "vnic_x##172.16.5.7");
    assert_eq!(state.endpoints[EP1].address, "172.16.5.7/28");
    // The rebuilt plugin answers the running container's Join.
    let mut p = plugin();
    assert_eq!(p.install_rebuilt(state.clone()), 2);
    let join = &calls()[9];
    let r = call(&mut p, &join.path, &join.body);
    assert!(r.body.contains(r#""SrcName":"svp_1a""#), "{}", r.body);
    // Entries already known win.
    assert_eq!(p.install_rebuilt(state), 0);
}

#[test]
fn rebuild_skips_what_it_cannot_describe() {
    let other = br#"{"Id":"o","Driver":"bridge","Options":{}}"#.to_vec();
    let no_bridge = br#"{"Id":"a","Driver":"ciao","IPAM":{"Config":[{"Subnet":"10.0.0.0/8","Gateway":"10.0.0.1"}]},"Options":{}}"#.to_vec();
    let no_ipam = br#"{"Id":"b","Driver":"ciao","Options":{"bridge":"br_b"}}"#.to_vec();
    let bad_ep = br#"{"Id":"c","Driver":"ciao","IPAM":{"Config":[{"Subnet":"10.0.0.0/8","Gateway":"10.0.0.1"}]},"Options":{"bridge":"br_c"},"Containers":{"k":{"EndpointID":"e","IPv4Address":""}}}"#.to_vec();
    let (state, problems) = rebuild(
        "ciao",
        &[other, no_bridge, no_ipam, bad_ep, b"nope".to_vec()],
    );
    assert_eq!(state.networks.keys().collect::<Vec<_>>(), ["c"]);
    assert!(state.endpoints.is_empty());
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 4, "{text:?}");
    assert!(
        text[0].contains("docker network a: no bridge option"),
        "{text:?}"
    );
    assert!(text[1].contains("docker network b: no IPAM"), "{text:?}");
    assert!(text[2].contains("endpoint e: address"), "{text:?}");
    assert!(matches!(problems[3], RebuildError::Json(_)));
}

/// dockerd's requests as sent on the wire (headers as captured, empty
/// Host included), pipelined on one connection, answered in order with the
/// plugin media type.
#[test]
fn wire_requests_are_served() {
    let mut p = plugin();
    let mut parser = RequestParser::with_limits(limits());
    let mut wire = Vec::new();
    for c in calls().iter().take(4) {
        wire.extend_from_slice(
            format!(
                "POST {} HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {}\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\nAccept-Encoding: gzip\r\n\r\n{}",
                c.path,
                c.body.len(),
                c.body
            )
            .as_bytes(),
        );
    }
    parser.feed(&wire);
    let s = serve(&mut parser, &mut p, &mut links());
    assert_eq!(s.answered, 4);
    assert!(!s.close && !s.changed);
    let text = String::from_utf8(s.out).unwrap();
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 4, "{text}");
    assert_eq!(
        text.matches("Content-Type: application/vnd.docker.plugins.v1+json\r\n")
            .count(),
        4
    );
    // Another method, then a request that does not parse: 405, then 400 and close.
    parser.feed(b"GET /Plugin.Activate HTTP/1.1\r\nHost: x\r\n\r\nPOST / HTTP/9\r\n\r\n");
    let s = serve(&mut parser, &mut p, &mut links());
    let text = String::from_utf8(s.out).unwrap();
    assert!(text.starts_with("HTTP/1.1 405 "), "{text}");
    assert!(text.contains("Allow: POST\r\n"));
    assert!(s.close);
    // A body past the limit is refused before it is read.
    let mut parser = RequestParser::with_limits(limits());
    parser.feed(b"POST /NetworkDriver.Join HTTP/1.1\r\nHost: \r\nContent-Length: 999999\r\n\r\n");
    let s = serve(&mut parser, &mut p, &mut links());
    assert!(String::from_utf8_lossy(&s.out).starts_with("HTTP/1.1 413 "));
    assert!(s.close);
}

#[test]
fn fuzz_entry_runs_the_captured_calls() {
    let mut data = vec![128u8];
    for c in calls() {
        data.extend_from_slice(
            format!(
                "POST {} HTTP/1.1\r\nHost: \r\nContent-Length: {}\r\n\r\n{}",
                c.path,
                c.body.len(),
                c.body
            )
            .as_bytes(),
        );
    }
    super::fuzz::fuzz_requests(&data);
}

/// Values echoed in error messages are cut short, and a bridge alias has
/// only the characters of an alias (found by fuzzing: a path of brackets
/// echoed whole made a reply our own JSON reader refused).
#[test]
fn echoed_values_are_short() {
    let mut p = created();
    let long = format!("/{}", "[".repeat(500));
    let r = call(&mut p, &long, "");
    assert_eq!(r.status, 404);
    assert!(r.body.len() < 120, "{}", r.body);
    assert!(parse_json::<serde_yaml::Value>(r.body.as_bytes()).is_ok());
    let r = call(
        &mut p,
        "/NetworkDriver.CreateNetwork",
        r#"{"NetworkID":"n2","Options":{"com.docker.network.generic":{"bridge":"br_[x]"}},"IPv4Data":[{"Pool":"10.0.0.0/8","Gateway":"10.0.0.1"}]}"#,
    );
    assert!(err_of(&r).contains("not a ciao bridge alias"), "{}", r.body);
}
