//! Fuzz entry point of the test server core (fuzz target `testserver`):
//! an arbitrary script of connections, frames and REST requests against one
//! [`ClientTable`], checking the invariants the REST API promises.

use super::rest::{handle, parse_query};
use super::table::ClientTable;
use crate::payloads::{Ready, Stat};
use crate::ssntp::frame::Op;

const UUIDS: [&str; 3] = [
    "aaaaaaaa-0000-0000-0000-000000000001",
    "bbbbbbbb-0000-0000-0000-000000000002",
    "cccccccc-0000-0000-0000-000000000003",
];
const METHODS: [&str; 4] = ["GET", "POST", "HEAD", "PUT"];
const PATHS: [&str; 13] = [
    "/clients",
    "/instances",
    "/stats",
    "/status",
    "/drain",
    "/start",
    "/stop",
    "/restart",
    "/delete",
    "/attach",
    "/detach",
    "/",
    "/clients/",
];

struct Script<'a>(&'a [u8]);

impl<'a> Script<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    /// A chunk prefixed by its length (`wide`: two bytes, little-endian).
    fn chunk(&mut self, wide: bool) -> Option<&'a [u8]> {
        let mut n = usize::from(self.byte()?);
        if wide {
            n |= usize::from(self.byte()?) << 8;
        }
        let n = n.min(self.0.len());
        let (c, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(c)
    }
}

/// Runs one script; panics if an invariant breaks.
#[doc(hidden)]
pub fn fuzz_script(data: &[u8]) {
    let mut t = ClientTable::new();
    let mut s = Script(data);
    while let Some(op) = s.byte() {
        let Some(who) = s.byte() else { return };
        let uuid = UUIDS[usize::from(who) % UUIDS.len()];
        match op % 4 {
            0 => {
                let Some(roles) = s.byte() else { return };
                let ok = t.on_connect(uuid, u32::from(roles), u64::from(who)).is_ok();
                assert_eq!(ok, u32::from(roles) & 0x14 != 0);
                if ok {
                    assert!(t.get(uuid).is_some());
                }
            }
            1 => {
                let conn = t.get(uuid).map_or(0, |e| e.conn);
                t.on_disconnect(uuid, conn);
                assert!(t.get(uuid).is_none());
            }
            2 => {
                let (Some(ty), Some(operand)) = (s.byte(), s.byte()) else {
                    return;
                };
                let Some(payload) = s.chunk(true) else { return };
                let before = t.get(uuid).map(|e| e.events.len());
                let op = Op::new(ty % 5, operand % 12);
                t.on_frame(uuid, op, payload);
                if let Some(n) = before {
                    let after = t.get(uuid).map(|e| e.events.len()).unwrap_or(0);
                    let queued = matches!(op, Op::Event(_) | Op::Error(_));
                    assert_eq!(after, n + usize::from(queued));
                }
            }
            _ => {
                let (Some(m), Some(p)) = (s.byte(), s.byte()) else {
                    return;
                };
                let Some(query) = s.chunk(false) else { return };
                let Some(body) = s.chunk(false) else { return };
                let query = String::from_utf8_lossy(query);
                // Sometimes address the client explicitly.
                let query = if who & 0x80 != 0 {
                    format!("client={uuid}&{query}")
                } else {
                    query.into_owned()
                };
                let (method, path) = (
                    METHODS[usize::from(m) % 4],
                    PATHS[usize::from(p) % PATHS.len()],
                );
                check_request(&mut t, method, path, &query, body);
            }
        }
    }
}

fn check_request(t: &mut ClientTable, method: &str, path: &str, query: &str, body: &[u8]) {
    let before: Vec<(String, Option<Stat>, Option<Ready>)> = t
        .uuids()
        .map(|u| {
            let e = t.get(u).expect("listed");
            (u.to_string(), e.stats.clone(), e.status.clone())
        })
        .collect();
    let o = handle(t, method, path, query, body);
    let r = &o.response;
    assert!(matches!(r.status, 200 | 400 | 404), "{}", r.status);
    assert_eq!(r.nosniff, r.status != 200);
    let text = std::str::from_utf8(&r.body).expect("UTF-8 body");
    if let Some(c) = &o.send {
        assert_eq!(
            (r.status, method, c.payload.as_slice()),
            (200, "POST", body)
        );
        assert!(t.get(&c.client).is_some());
    }
    if r.status != 200 {
        assert!(o.send.is_none() && text.ends_with('\n') && text.lines().count() == 1);
        return;
    }
    // Stored documents never change through a request (D1 fixed).
    for (u, stats, status) in &before {
        let e = t.get(u).expect("still there");
        assert_eq!((&e.stats, &e.status), (stats, status));
    }
    if method == "POST" {
        return;
    }
    // Every document we serve reads back as YAML; stats and status read
    // back as the stored documents.
    assert!(text.ends_with('\n'));
    let _: serde_yaml::Value = serde_yaml::from_str(text).expect("served YAML parses");
    let filtered = parse_query(query)
        .iter()
        .find(|(k, _)| k == "filter")
        .is_some_and(|(_, v)| !v.is_empty());
    match path {
        "/stats" if !filtered => {
            let stored = before
                .iter()
                .find_map(|(_, s, _)| s.as_ref().filter(|s| s.to_yaml() == text));
            let back = Stat::parse(&r.body).expect("served STATS parses");
            assert_eq!(Some(&back), stored, "STATS round trip");
        }
        "/status" => {
            let back = Ready::parse(&r.body).expect("served STATUS parses");
            assert!(
                before.iter().any(|(_, _, r)| r.as_ref() == Some(&back)),
                "STATUS round trip"
            );
        }
        "/drain" => {
            let again = handle(t, "GET", path, query, b"");
            assert_eq!(again.response.body, b"[]\n");
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssntp::frame::Command;

    #[test]
    fn script_smoke() {
        let stats = b"node_uuid: x\ninstances:\n- instance_uuid: i\n  state: active\n";
        let stats_op = Op::from(Command::Stats);
        let (ty, op) = (stats_op.ftype(), stats_op.operand());
        let mut d = vec![0, 0, 0x14, 2, 0, ty, op, stats.len() as u8, 0];
        d.extend_from_slice(stats);
        d.extend_from_slice(&[0, 0, 0]);
        d.extend_from_slice(&[3, 0, 0, 2, 0, 0]);
        fuzz_script(&d);
        fuzz_script(&[]);
        fuzz_script(&[3, 0x80, 1, 6, 3, b'a', b'=', b'b', 2, b'x', b'y']);
    }
}
