//! The ciao docker plugin served by the real `ciao-launcher`
//! (`-simulation -network=true` in a network namespace of the test's own,
//! `--docker-plugin unix:<path>`), spoken to over its socket as dockerd
//! would: the protocol's calls, a /28 subnet answered with /28, a veth
//! made in the namespace found by its alias, error replies for what is
//! unknown or malformed, 100 concurrent connections (the reply time is
//! printed), the state kept across a restart, the socket private, taken
//! by one launcher only and removed at exit, and answers while the SSNTP
//! server is gone.
//!
//! Root only (network namespaces): elsewhere it prints `SKIPPED:` (and
//! fails under CI=true).

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use ciao::http::ResponseParser;
use ciao::ssntp::tls;
use ciao_test_support::netnode::{NetNode, NodeOptions};
use ciao_test_support::netns;
use ciao_test_support::skip_or_fail;
use ciao_test_support::ssntp_server::{Options, TestServer};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");
const TUPLE: &str = "67d86208-0000-4465-9018-fe14087d415f_172.16.5.0/28_67d86208-b46c-4465-0000-fe14087d415f_192.168.42.21";
const NET: &str = "6c1d7e1f0c2a4b5e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e";

/// One keep-alive connection to the plugin, as dockerd's client keeps.
struct Client {
    sock: UnixStream,
    parser: ResponseParser,
}

impl Client {
    fn connect(path: &Path) -> Client {
        let sock =
            UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {}: {e}", path.display()));
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Client {
            sock,
            parser: ResponseParser::new("POST"),
        }
    }

    /// Sends raw bytes and reads one response: status, content type, body.
    fn raw(&mut self, bytes: &[u8]) -> (u16, String, String) {
        self.sock.write_all(bytes).unwrap();
        let mut buf = [0u8; 16 << 10];
        loop {
            if let Some(r) = self.parser.response().unwrap() {
                let ct = r.header("content-type").unwrap_or_default().to_string();
                self.parser.reset("POST");
                return (r.status, ct, String::from_utf8(r.body).unwrap());
            }
            match self.sock.read(&mut buf) {
                Ok(0) => self.parser.eof(),
                Ok(n) => self.parser.feed(&buf[..n]),
                Err(e) => panic!("reading the plugin's reply: {e}"),
            }
        }
    }

    /// One plugin call with dockerd's headers (its `Host` is empty).
    fn call(&mut self, call: &str, body: &str) -> String {
        let req = format!(
            "POST /{call} HTTP/1.1\r\nHost: \r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {}\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\nAccept-Encoding: gzip\r\n\r\n{body}",
            body.len()
        );
        let (status, ct, body) = self.raw(req.as_bytes());
        assert_eq!(status, 200, "{call}: {body}");
        assert_eq!(ct, "application/vnd.docker.plugins.v1+json", "{call}");
        body
    }
}

fn node(test: &str) -> Option<(NetNode, PathBuf)> {
    if let Some(why) = netns::missing() {
        skip_or_fail(test, &why);
        return None;
    }
    let mut n = match NetNode::new(LAUNCHER, "dp", NodeOptions::default()) {
        Ok(n) => n,
        Err(why) => {
            skip_or_fail(test, &format!("cannot make a network namespace: {why}"));
            return None;
        }
    };
    let sock = n.tmp.path().join("plugin.sock");
    let flag = format!("--docker-plugin=unix:{}", sock.display());
    n.flags.extend(["-simulation".to_string(), flag]);
    n.start_launcher();
    Some((n, sock))
}

fn create_network(c: &mut Client) {
    let body = format!(
        r#"{{"NetworkID":"{NET}","Options":{{"com.docker.network.enable_ipv6":false,"com.docker.network.generic":{{"bridge":"br_{TUPLE}"}}}},"IPv4Data":[{{"AddressSpace":"","Gateway":"172.16.5.1/28","Pool":"172.16.5.0/28"}}],"IPv6Data":[]}}"#
    );
    assert_eq!(
        c.call("NetworkDriver.CreateNetwork", &body),
        r#"{"Err":""}"#
    );
}

fn endpoint(id: &str, ip: &str) -> String {
    format!(
        r#"{{"NetworkID":"{NET}","EndpointID":"{id}","Interface":{{"Address":"{ip}/28","AddressIPv6":"","MacAddress":"02:00:ac:10:05:07"}},"Options":{{"com.docker.network.endpoint.exposedports":[],"com.docker.network.portmap":[]}}}}"#
    )
}

fn join(id: &str) -> String {
    format!(r#"{{"NetworkID":"{NET}","EndpointID":"{id}","SandboxKey":"/x","Options":{{}}}}"#)
}

const JOINED: &str = r#"{"Err":"","InterfaceName":{"SrcName":"svp_dp1","DstName":"","DstPrefix":"eth"},"Gateway":"172.16.5.1","GatewayIPv6":"","StaticRoutes":null,"DisableGatewayService":false}"#;

#[test]
fn plugin_served_by_the_launcher() {
    let test = "plugin_served_by_the_launcher";
    let Some((mut n, sock)) = node(test) else {
        return;
    };
    // Root-only socket.
    let m = std::fs::metadata(&sock).unwrap();
    assert!(m.file_type().is_socket());
    assert_eq!(m.permissions().mode() & 0o777, 0o600);

    let mut c = Client::connect(&sock);
    assert_eq!(
        c.call("Plugin.Activate", ""),
        r#"{"Implements":["NetworkDriver","IpamDriver"]}"#
    );
    assert_eq!(
        c.call("NetworkDriver.GetCapabilities", ""),
        r#"{"Err":"","Scope":"local"}"#
    );
    assert_eq!(
        c.call("IpamDriver.GetCapabilities", ""),
        r#"{"Error":"","RequiresMACAddress":true}"#
    );
    // A /28 pool: addresses come back with /28 (B10).
    let pool = c.call(
        "IpamDriver.RequestPool",
        r#"{"AddressSpace":"","Pool":"172.16.5.0/28","SubPool":"","Options":{},"V6":false}"#,
    );
    assert_eq!(
        pool,
        r#"{"Error":"","PoolID":"ciao/172.16.5.0/28","Pool":"172.16.5.0/28","Data":null}"#
    );
    assert_eq!(
        c.call(
            "IpamDriver.RequestAddress",
            r#"{"PoolID":"ciao/172.16.5.0/28","Address":"172.16.5.7","Options":{}}"#
        ),
        r#"{"Error":"","Address":"172.16.5.7/28","Data":null}"#
    );
    create_network(&mut c);

    // No veth with that alias: an error reply on a live connection (B9).
    let r = c.call(
        "NetworkDriver.CreateEndpoint",
        &endpoint("e0", "172.16.5.9"),
    );
    assert!(
        r.contains(&format!("no link with alias vnic_{TUPLE}##172.16.5.9")),
        "{r}"
    );
    // A bad body: an error reply.
    let r = c.call("NetworkDriver.CreateEndpoint", "{not json");
    assert!(r.starts_with(r#"{"Err":"Error: "#), "{r}");
    let r = c.call("IpamDriver.RequestAddress", "");
    assert!(r.starts_with(r#"{"Error":"Error: "#), "{r}");
    // Unknown ids.
    let r = c.call("NetworkDriver.Join", &join("nope"));
    assert!(r.contains(r#"endpoint \"nope\" is not known"#), "{r}");

    // The container's veth, made as the launcher makes it: found by alias.
    let alias = format!("vnic_{TUPLE}##172.16.5.7");
    n.ns.ip(&[
        "link", "add", "svn_dp1", "type", "veth", "peer", "name", "svp_dp1",
    ]);
    n.ns.ip(&["link", "set", "dev", "svn_dp1", "alias", &alias]);
    assert_eq!(
        c.call(
            "NetworkDriver.CreateEndpoint",
            &endpoint("e1", "172.16.5.7")
        ),
        r#"{"Err":"","Interface":null}"#
    );
    assert_eq!(c.call("NetworkDriver.Join", &join("e1")), JOINED);

    // The state is saved (0600) and reloaded by the next launcher (B8).
    let state = n.data.join("networking/docker-plugin.yaml");
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(text.contains(NET) && text.contains("e1:"), "{text}");
    assert_eq!(
        std::fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // One launcher per data root: a second one refuses to start (the
    // state log's lock)...
    let args = n.launcher_args(&["-logtostderr"]);
    let (code, out) = n.run_launcher(args);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("state.log.lock is held by another process"),
        "{out}"
    );
    // ...and one per plugin socket, whatever its data root.
    let other = format!("--data-root={}", n.data.with_extension("second").display());
    let args = n.launcher_args(&["-logtostderr", &other]);
    let (code, out) = n.run_launcher(args);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("in use by another process"), "{out}");
    assert!(UnixStream::connect(&sock).is_ok());

    drop(c);
    n.stop_launcher();
    assert!(!sock.exists(), "the socket outlived the launcher");
    n.start_launcher();
    // The restarted launcher removes the veth as an orphan (no instance
    // has it); made again, it is found by its alias.
    n.links_until(netns::WAIT, "the orphan veth removed", |l| {
        !l.iter().any(|l| l.name == "svn_dp1")
    });
    n.ns.ip(&[
        "link", "add", "svn_dp1", "type", "veth", "peer", "name", "svp_dp1",
    ]);
    n.ns.ip(&["link", "set", "dev", "svn_dp1", "alias", &alias]);
    let mut c = Client::connect(&sock);
    assert_eq!(c.call("NetworkDriver.Join", &join("e1")), JOINED);

    // 100 connections at once, each with two calls (one needs a netlink
    // dump): every one answered; the reply time is printed.
    let barrier = Arc::new(Barrier::new(100));
    let threads: Vec<_> = (0..100)
        .map(|i| {
            let (sock, barrier) = (sock.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(&sock);
                barrier.wait();
                let t0 = Instant::now();
                let body = format!(
                    r#"{{"PoolID":"ciao/172.16.5.0/28","Address":"172.16.5.{}"}}"#,
                    i % 14 + 1
                );
                let r = c.call("IpamDriver.RequestAddress", &body);
                assert!(r.contains("/28"), "{r}");
                let t1 = Instant::now();
                assert_eq!(c.call("NetworkDriver.Join", &join("e1")), JOINED);
                (t1 - t0, t1.elapsed())
            })
        })
        .collect();
    let t0 = Instant::now();
    let mut ipam = Vec::new();
    let mut joins = Vec::new();
    for t in threads {
        let (a, j) = t.join().expect("a client failed");
        ipam.push(a);
        joins.push(j);
    }
    let wall = t0.elapsed();
    ipam.sort();
    joins.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let _ = writeln!(
        std::io::stderr(),
        "figures: plugin reply time under 100 concurrent connections: RequestAddress median {:.2} ms, p99 {:.2} ms, max {:.2} ms; Join (netlink dump) median {:.2} ms, p99 {:.2} ms, max {:.2} ms; all 200 calls in {:.1} ms",
        ms(ipam[50]),
        ms(ipam[98]),
        ms(ipam[99]),
        ms(joins[50]),
        ms(joins[98]),
        ms(joins[99]),
        ms(wall)
    );

    // The SSNTP server goes away: the plugin still answers.
    let ca = tls::load_ca(&n.certs.ca_pem_path).unwrap();
    let id = tls::load_identity(&n.certs.server_pem_path).unwrap();
    let server_tls = tls::server_config(&ca, &id).unwrap();
    let other =
        n.ns.on_thread(move || TestServer::start(server_tls, Options::default()));
    let old = std::mem::replace(&mut n.server, other);
    old.stop();
    std::thread::sleep(Duration::from_millis(300));
    let mut c2 = Client::connect(&sock);
    assert_eq!(c2.call("NetworkDriver.Join", &join("e1")), JOINED);
    assert_eq!(c.call("NetworkDriver.Join", &join("e1")), JOINED);
    let log = n.last_log();
    assert!(log.contains("lost the SSNTP server"), "{log}");
    assert_eq!(
        c.call(
            "NetworkDriver.DeleteEndpoint",
            &format!(r#"{{"NetworkID":"{NET}","EndpointID":"e1"}}"#)
        ),
        r#"{"Err":""}"#
    );
    assert_eq!(
        c.call(
            "NetworkDriver.DeleteNetwork",
            &format!(r#"{{"NetworkID":"{NET}"}}"#)
        ),
        r#"{"Err":""}"#
    );
    // Not a POST; not a plugin call.
    let (status, _, _) = c.raw(b"GET /Plugin.Activate HTTP/1.1\r\nHost: \r\n\r\n");
    assert_eq!(status, 405);
    let (status, _, _) = c.raw(b"POST /Nope HTTP/1.1\r\nHost: \r\nContent-Length: 0\r\n\r\n");
    assert_eq!(status, 404);
}
