//! Entry point of the `docker_plugin` fuzz target (also replayed by
//! tests/fuzz_corpus.rs): HTTP request bytes, as a plugin connection
//! receives them, parsed and answered by a plugin that knows one network
//! and has one veth to find. Checks that nothing panics, that every
//! answer is a complete HTTP response whose body is JSON, and that the
//! state always survives a save and reload.

use super::serve::{limits, serve};
use super::{Plugin, State};
use crate::http::{parse_json, RequestParser, ResponseParser};
use crate::net::link::Link;

const SEED_STATE: &str = "version: 1\nnetworks:\n  n1:\n    bridge: br_t\n    gateway: 172.16.5.1/28\n    subnet: 172.16.5.0/28\nendpoints:\n  e1:\n    network: n1\n    vnic: vnic_t##172.16.5.7\n    address: 172.16.5.7/28\n";

/// `data[0]`: split point; rest: the bytes of one connection.
pub fn fuzz_requests(data: &[u8]) {
    let [cut, input @ ..] = data else {
        return;
    };
    let state = State::from_yaml(SEED_STATE.as_bytes()).unwrap_or_default();
    let mut plugin = Plugin::new("ciao", state);
    let mut links = vec![Link {
        index: 7,
        name: "svn_1".into(),
        alias: Some("vnic_t##172.16.5.7".into()),
        kind: Some("veth".into()),
        ..Link::default()
    }];
    let cut = usize::from(*cut) * input.len() / 255;
    let mut parser = RequestParser::with_limits(limits());
    let mut out = Vec::new();
    let mut answered = 0;
    for part in [&input[..cut], &input[cut..]] {
        parser.feed(part);
        let s = serve(&mut parser, &mut plugin, &mut links);
        out.extend_from_slice(&s.out);
        answered += s.answered;
        if s.close {
            break;
        }
    }
    // Every answer parses back as a response with a JSON body (or the
    // parser's plain-text refusal).
    let mut rp = ResponseParser::new("POST");
    rp.feed(&out);
    rp.eof();
    let mut total = 0;
    while let Ok(Some(r)) = rp.response() {
        total += 1;
        if r.header("content-type") == Some(super::CONTENT_TYPE) {
            assert!(
                parse_json::<serde_yaml::Value>(&r.body).is_ok(),
                "reply body is not JSON: {:?}",
                String::from_utf8_lossy(&r.body)
            );
        }
        rp.reset("POST");
    }
    assert!(
        total >= answered,
        "{total} responses for {answered} requests"
    );
    let text = plugin.state().to_yaml();
    assert_eq!(
        State::from_yaml(text.as_bytes()).as_ref(),
        Ok(plugin.state()),
        "state does not reload"
    );
}
