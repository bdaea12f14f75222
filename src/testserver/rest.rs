//! The REST API of ciao-launcher-server (ciao-launcher-server(8)), as a pure
//! function from a request to a response plus, for POSTs, the SSNTP COMMAND
//! frame to send. The shell parses HTTP, calls [`handle`], sends the frame
//! and writes the response; it does not know any endpoint.
//!
//! Order of checks, as the original: path (404), method (400 `GET expected`
//! / `POST expected`), client (400 `Invalid client`), then the endpoint.

use super::docs::string_list;
use super::table::{emit_drain, ClientTable};
use crate::http::percent_decode;
use crate::ssntp::frame;

/// `Content-Type` of every response with a body.
pub(crate) const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// An HTTP response, independent of the HTTP writer's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestResponse {
    /// Status code: 200, 400, 404 or 500.
    pub status: u16,
    /// `Content-Type`, absent on successful POSTs.
    pub content_type: Option<&'static str>,
    /// The body (`Content-Length` is its length). For a HEAD request the
    /// shell must send the headers with this length but not the body.
    pub body: Vec<u8>,
    /// Whether to send `X-Content-Type-Options: nosniff` (error answers).
    pub nosniff: bool,
}

impl RestResponse {
    /// 200 with a YAML document.
    pub fn document(body: String) -> Self {
        RestResponse {
            status: 200,
            content_type: Some(TEXT_PLAIN),
            body: body.into_bytes(),
            nosniff: false,
        }
    }

    /// 200 with no body and no `Content-Type` (a POST that was forwarded).
    pub fn empty() -> Self {
        RestResponse {
            status: 200,
            content_type: None,
            body: Vec::new(),
            nosniff: false,
        }
    }

    /// An error answer: `text` plus a newline, as Go's `http.Error`.
    pub fn error(status: u16, text: &str) -> Self {
        let mut body = text.as_bytes().to_vec();
        body.push(b'\n');
        RestResponse {
            status,
            content_type: Some(TEXT_PLAIN),
            body,
            nosniff: true,
        }
    }

    /// What the shell answers when sending the COMMAND frame of
    /// [`RestOutcome::send`] failed (e.g. the session closed meanwhile).
    pub fn send_failed(err: &dyn std::fmt::Display) -> Self {
        Self::error(500, &err.to_string())
    }

    /// The reason phrase of the status code.
    pub fn reason(&self) -> &'static str {
        crate::http::reason_phrase(self.status)
    }
}

/// A COMMAND frame the shell must send to a launcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Destination: the client's SSNTP UUID.
    pub client: String,
    /// COMMAND operand (START, STOP, DELETE, RESTART, AttachVolume,
    /// DetachVolume).
    pub operand: frame::Command,
    /// The POST body, byte for byte (never validated, as the original).
    pub payload: Vec<u8>,
}

/// What to do for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestOutcome {
    /// The answer (for a POST: the answer if sending the frame succeeds;
    /// otherwise replace it with [`RestResponse::send_failed`]).
    pub response: RestResponse,
    /// The frame to send first, for a POST that passed every check.
    pub send: Option<Command>,
}

impl From<RestResponse> for RestOutcome {
    fn from(response: RestResponse) -> Self {
        RestOutcome {
            response,
            send: None,
        }
    }
}

/// The GET endpoints.
const GETS: [&str; 5] = ["/clients", "/instances", "/stats", "/status", "/drain"];

/// The POST endpoints and the COMMAND operand each sends.
const POSTS: [(&str, frame::Command); 6] = [
    ("/start", frame::Command::Start),
    ("/stop", frame::Command::Stop),
    ("/restart", frame::Command::Restart),
    ("/delete", frame::Command::Delete),
    ("/attach", frame::Command::AttachVolume),
    ("/detach", frame::Command::DetachVolume),
];

/// Handles one request. `path` is the request path without the query,
/// `query` the raw query string (without `?`, percent-encoded).
pub fn handle(
    table: &mut ClientTable,
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
) -> RestOutcome {
    let post = POSTS.iter().find(|(p, _)| *p == path).map(|(_, o)| *o);
    if post.is_none() && !GETS.contains(&path) {
        return RestResponse::error(404, "404 page not found").into();
    }
    // HEAD is rejected like any other method (defect D12, kept).
    if post.is_some() && method != "POST" {
        return RestResponse::error(400, "POST expected").into();
    }
    if post.is_none() && method != "GET" {
        return RestResponse::error(400, "GET expected").into();
    }
    if path == "/clients" {
        let uuids: Vec<String> = table.uuids().map(str::to_string).collect();
        return RestResponse::document(string_list(&uuids)).into();
    }
    let params = parse_query(query);
    let client = first(&params, "client");
    let Some(i) = table.select(client) else {
        return RestResponse::error(400, "Invalid client").into();
    };
    let entry = table.entry_mut(i);
    if let Some(operand) = post {
        return RestOutcome {
            response: RestResponse::empty(),
            send: Some(Command {
                client: entry.uuid.clone(),
                operand,
                payload: body.to_vec(),
            }),
        };
    }
    let filter = first(&params, "filter");
    let keep = |state: &str| filter.is_empty() || state == filter;
    let response = match path {
        "/instances" => {
            let uuids: Vec<String> = entry
                .stats
                .iter()
                .flat_map(|s| s.instances.iter())
                .filter(|i| keep(&i.state))
                .map(|i| i.instance_uuid.clone())
                .collect();
            RestResponse::document(string_list(&uuids))
        }
        "/stats" => match &entry.stats {
            None => RestResponse::error(404, "Stats not available"),
            Some(s) => {
                // Filter a copy: the original filtered the stored list in
                // place and damaged it until the next STATS (defect D1).
                let mut s = s.clone();
                s.instances.retain(|i| keep(&i.state));
                RestResponse::document(s.to_yaml())
            }
        },
        // "Statuss" (sic) is the original's text (defect D2, kept).
        "/status" => match &entry.status {
            None => RestResponse::error(404, "Statuss not available"),
            Some(r) => RestResponse::document(r.to_yaml()),
        },
        _ => {
            // /drain: read and empty the queue in one step.
            let drained: Vec<_> = entry.events.drain(..).collect();
            RestResponse::document(emit_drain(&drained))
        }
    };
    response.into()
}

/// The first value of `key` in decoded query pairs, "" if absent.
fn first<'a>(params: &'a [(String, String)], key: &str) -> &'a str {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Go's `url.ParseQuery` (Go ≥ 1.17): pairs split at `&`, `+` is a space,
/// `%XX` escapes; a pair with a bad escape or a `;` in its key is skipped.
pub(crate) fn parse_query(query: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pair in query.split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k.contains(';') {
            continue;
        }
        if let (Some(k), Some(v)) = (percent_decode(k, true), percent_decode(v, true)) {
            out.push((k, v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssntp::frame::{ErrorCode, Event, Status};
    use crate::ssntp::role;

    const A: &str = "aaaaaaaa-0000-0000-0000-000000000001";
    const B: &str = "bbbbbbbb-0000-0000-0000-000000000002";
    const L: &str = "0203f0c8-8697-4e91-8530-5ced39822978";

    fn get(t: &mut ClientTable, path: &str, query: &str) -> RestResponse {
        let o = handle(t, "GET", path, query, b"ignored");
        assert_eq!(o.send, None);
        o.response
    }

    fn text(r: &RestResponse) -> &str {
        std::str::from_utf8(&r.body).unwrap()
    }

    fn assert_error(r: &RestResponse, status: u16, msg: &str) {
        assert_eq!((r.status, text(r)), (status, format!("{msg}\n").as_str()));
        assert_eq!(r.content_type, Some(TEXT_PLAIN));
        assert!(r.nosniff);
    }

    fn one(uuid: &str) -> ClientTable {
        let mut t = ClientTable::new();
        t.on_connect(uuid, role::AGENT | role::NETAGENT, 1).unwrap();
        t
    }

    // A STATS with one network and four instances, as a scripted agent sent
    // it to the original server.
    const PROBE_STATS: &[u8] = b"node_uuid: aaaaaaaa-0000-0000-0000-000000000001
status: FULL
mem_total_mb: 1000
mem_available_mb: 500
disk_total_mb: 2000
disk_available_mb: 1500
load: 2
cpus_online: 8
hostname: fakehost
surprise: key
networks:
- ip: 192.168.1.10
  mac: 52:54:00:00:00:01
instances:
- instance_uuid: 00000000-0000-0000-0000-00000000000a
  state: exited
  ssh_ip: 10.1.1.1
  ssh_port: 33002
  memory_usage_mb: -1
  disk_usage_mb: 10
  cpu_usage: -1
  volumes: [vol-1]
- instance_uuid: 00000000-0000-0000-0000-00000000000b
  state: active
  ssh_ip: 10.1.1.1
  ssh_port: 33003
  memory_usage_mb: 100
  disk_usage_mb: 20
  cpu_usage: 50
  volumes: [vol-2, vol-3]
- instance_uuid: 00000000-0000-0000-0000-00000000000c
  state: pending
  memory_usage_mb: 0
- instance_uuid: 00000000-0000-0000-0000-00000000000d
  state: exit_failed
";

    // `curl http://127.0.0.1:9000/stats` of the original after that STATS,
    // verbatim.
    const PROBE_STATS_SERVED: &str = "node_uuid: aaaaaaaa-0000-0000-0000-000000000001
status: FULL
mem_total_mb: 1000
mem_available_mb: 500
disk_total_mb: 2000
disk_available_mb: 1500
load: 2
cpus_online: 8
hostname: fakehost
networks:
- ip: 192.168.1.10
  mac: \"52:54:00:00:00:01\"
instances:
- instance_uuid: 00000000-0000-0000-0000-00000000000a
  state: exited
  ssh_ip: 10.1.1.1
  ssh_port: 33002
  memory_usage_mb: -1
  disk_usage_mb: 10
  cpu_usage: -1
  volumes:
  - vol-1
- instance_uuid: 00000000-0000-0000-0000-00000000000b
  state: active
  ssh_ip: 10.1.1.1
  ssh_port: 33003
  memory_usage_mb: 100
  disk_usage_mb: 20
  cpu_usage: 50
  volumes:
  - vol-2
  - vol-3
- instance_uuid: 00000000-0000-0000-0000-00000000000c
  state: pending
  ssh_ip: \"\"
  ssh_port: 0
  memory_usage_mb: 0
  disk_usage_mb: 0
  cpu_usage: 0
  volumes: []
- instance_uuid: 00000000-0000-0000-0000-00000000000d
  state: exit_failed
  ssh_ip: \"\"
  ssh_port: 0
  memory_usage_mb: 0
  disk_usage_mb: 0
  cpu_usage: 0
  volumes: []
";

    #[test]
    fn no_launcher_connected() {
        // The original's answers with no launcher connected.
        let mut t = ClientTable::new();
        let r = get(&mut t, "/clients", "");
        assert_eq!(
            (r.status, text(&r), r.content_type, r.nosniff),
            (200, "[]\n", Some(TEXT_PLAIN), false)
        );
        for p in ["/instances", "/stats", "/status", "/drain"] {
            assert_error(&get(&mut t, p, ""), 400, "Invalid client");
        }
        assert_error(
            &get(&mut t, "/instances", "filter=active"),
            400,
            "Invalid client",
        );
        for p in ["/nosuch", "/clients/", "/", "", "/Clients", "//clients"] {
            assert_error(&get(&mut t, p, ""), 404, "404 page not found");
            assert_error(
                &handle(&mut t, "POST", p, "", b"x").response,
                404,
                "404 page not found",
            );
        }
        let o = handle(&mut t, "POST", "/start", "", b"start:\n");
        assert_error(&o.response, 400, "Invalid client");
        assert_eq!(o.send, None);
    }

    #[test]
    fn method_is_checked_before_the_client() {
        let mut t = ClientTable::new();
        assert_error(
            &handle(&mut t, "GET", "/start", "", b"").response,
            400,
            "POST expected",
        );
        assert_error(
            &handle(&mut t, "PUT", "/stop", "", b"x").response,
            400,
            "POST expected",
        );
        assert_error(
            &handle(&mut t, "POST", "/clients", "", b"x").response,
            400,
            "GET expected",
        );
        let head = handle(&mut t, "HEAD", "/clients", "", b"").response;
        assert_error(&head, 400, "GET expected");
        assert_eq!(head.body.len(), 13);
        for p in GETS {
            assert_error(
                &handle(&mut t, "DELETE", p, "", b"").response,
                400,
                "GET expected",
            );
        }
        for (p, _) in POSTS {
            assert_error(
                &handle(&mut t, "get", p, "", b"").response,
                400,
                "POST expected",
            );
        }
    }

    #[test]
    fn launcher_connected_before_any_report() {
        // The original's answers before the agent sent anything, and the
        // list sizes it served.
        let mut t = one(A);
        let r = get(&mut t, "/clients", "");
        assert_eq!(text(&r), format!("- {A}\n"));
        assert_eq!(r.body.len(), 39);
        assert_error(&get(&mut t, "/stats", ""), 404, "Stats not available");
        assert_eq!(get(&mut t, "/stats", "").body.len(), 20);
        assert_error(&get(&mut t, "/status", ""), 404, "Statuss not available");
        assert_eq!(get(&mut t, "/status", "").body.len(), 22);
        assert_eq!(text(&get(&mut t, "/instances", "")), "[]\n");
        assert_eq!(text(&get(&mut t, "/drain", "")), "[]\n");
    }

    #[test]
    fn stats_and_status_documents() {
        // The documents a fresh launcher reports, with the lengths the
        // original served.
        let mut t = one(L);
        let stats = format!(
            "node_uuid: {L}\nstatus: READY\nmem_total_mb: 24105\nmem_available_mb: 23740\ndisk_total_mb: 270553\ndisk_available_mb: 83969\nload: 1\ncpus_online: 2\nhostname: \"\"\nnetworks: []\ninstances: []\n"
        );
        let status = format!(
            "node_uuid: {L}\nmem_total_mb: 24105\nmem_available_mb: 23740\ndisk_total_mb: 270553\ndisk_available_mb: 83969\nload: 1\ncpus_online: 2\n"
        );
        t.on_frame(L, Status::Ready, status.as_bytes());
        t.on_frame(L, frame::Command::Stats, stats.as_bytes());
        let r = get(&mut t, "/stats", "");
        assert_eq!((r.status, text(&r)), (200, stats.as_str()));
        assert_eq!(r.body.len(), 216);
        let r = get(&mut t, "/status", "");
        assert_eq!((r.status, text(&r)), (200, status.as_str()));
        assert_eq!(r.body.len(), 162);
        // After a FULL without payload (the original stores zeros).
        t.on_frame(L, Status::Full, b"");
        assert_eq!(
            text(&get(&mut t, "/status", "")),
            "node_uuid: \"\"\nmem_total_mb: 0\nmem_available_mb: 0\ndisk_total_mb: 0\ndisk_available_mb: 0\nload: 0\ncpus_online: 0\n"
        );
        // A STATS of only `node_uuid: x` is stored with defaults (as the
        // original).
        t.on_frame(L, frame::Command::Stats, b"node_uuid: x");
        assert_eq!(
            text(&get(&mut t, "/stats", "")),
            "node_uuid: x\nstatus: \"\"\nmem_total_mb: 0\nmem_available_mb: 0\ndisk_total_mb: 0\ndisk_available_mb: 0\nload: 0\ncpus_online: 0\nhostname: \"\"\nnetworks: []\ninstances: []\n"
        );
    }

    #[test]
    fn probe_stats_are_normalised() {
        let mut t = one(A);
        t.on_frame(A, frame::Command::Stats, PROBE_STATS);
        assert_eq!(text(&get(&mut t, "/stats", "")), PROBE_STATS_SERVED);
        // An undecodable STATS leaves it in place.
        t.on_frame(A, frame::Command::Stats, b"][");
        assert_eq!(text(&get(&mut t, "/stats", "")), PROBE_STATS_SERVED);
    }

    #[test]
    fn filters_are_exact_and_do_not_damage_the_stored_stats() {
        let mut t = one(A);
        t.on_frame(A, frame::Command::Stats, PROBE_STATS);
        let ids = |t: &mut ClientTable, q: &str| text(&get(t, "/instances", q)).to_string();
        assert_eq!(
            ids(&mut t, ""),
            "- 00000000-0000-0000-0000-00000000000a\n- 00000000-0000-0000-0000-00000000000b\n- 00000000-0000-0000-0000-00000000000c\n- 00000000-0000-0000-0000-00000000000d\n"
        );
        assert_eq!(
            ids(&mut t, "filter=pending"),
            "- 00000000-0000-0000-0000-00000000000c\n"
        );
        assert_eq!(
            ids(&mut t, "filter=exit_failed"),
            "- 00000000-0000-0000-0000-00000000000d\n"
        );
        assert_eq!(ids(&mut t, "filter=running"), "[]\n");
        assert_eq!(ids(&mut t, "filter=none"), "[]\n");
        assert_eq!(ids(&mut t, "filter=Active"), "[]\n");
        assert_eq!(ids(&mut t, "filter="), ids(&mut t, ""));
        assert_eq!(
            ids(&mut t, "filter=active&filter=exited"),
            "- 00000000-0000-0000-0000-00000000000b\n"
        );
        // /stats?filter keeps the node part and the matching instances.
        let filtered = text(&get(&mut t, "/stats", "filter=pending")).to_string();
        assert!(
            filtered.starts_with("node_uuid: aaaaaaaa-0000-0000-0000-000000000001\nstatus: FULL\n")
        );
        assert!(filtered.ends_with(
            "instances:\n- instance_uuid: 00000000-0000-0000-0000-00000000000c\n  state: pending\n  ssh_ip: \"\"\n  ssh_port: 0\n  memory_usage_mb: 0\n  disk_usage_mb: 0\n  cpu_usage: 0\n  volumes: []\n"
        ));
        assert!(text(&get(&mut t, "/stats", "filter=nothing")).ends_with("instances: []\n"));
        // D1 fixed: the stored document is intact afterwards.
        assert_eq!(text(&get(&mut t, "/stats", "")), PROBE_STATS_SERVED);
    }

    #[test]
    fn drain_empties_the_queue() {
        let mut t = one(A);
        t.on_frame(
            A,
            ErrorCode::StopFailure,
            b"instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f\nreason: already_stopped\n",
        );
        t.on_frame(
            A,
            ErrorCode::RestartFailure,
            b"instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f\nreason: already_running\n",
        );
        // A drain body captured from the original.
        assert_eq!(
            text(&get(&mut t, "/drain", "")),
            "- instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f\n  reason: already_stopped\n- instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f\n  reason: already_running\n"
        );
        assert_eq!(text(&get(&mut t, "/drain", "")), "[]\n");
    }

    #[test]
    fn several_clients_need_an_explicit_client() {
        let mut t = one(B);
        t.on_connect(A, role::AGENT, 1).unwrap();
        t.on_frame(
            A,
            Event::InstanceDeleted,
            b"instance_deleted:\n  instance_uuid: i1\n",
        );
        for p in ["/instances", "/stats", "/status", "/drain"] {
            assert_error(&get(&mut t, p, ""), 400, "Invalid client");
            assert_error(
                &get(&mut t, p, "client=cccccccc-0000-0000-0000-000000000003"),
                400,
                "Invalid client",
            );
        }
        assert_error(
            &get(&mut t, "/status", &format!("client={B}")),
            404,
            "Statuss not available",
        );
        assert_eq!(text(&get(&mut t, "/drain", &format!("client={B}"))), "[]\n");
        assert_eq!(
            text(&get(&mut t, "/drain", &format!("client={A}&filter=zzz"))),
            "- instance_deleted:\n    instance_uuid: i1\n"
        );
        // Percent-encoded and repeated parameters: the first value counts.
        let enc = A.replace('-', "%2D");
        assert_eq!(
            text(&get(
                &mut t,
                "/instances",
                &format!("client={enc}&client={B}")
            )),
            "[]\n"
        );
        // A pair with a bad escape is skipped, as Go's ParseQuery does.
        let r = get(&mut t, "/instances", &format!("client={B}%zz&client={A}"));
        assert_eq!((r.status, text(&r)), (200, "[]\n"));
        assert_error(
            &get(&mut t, "/instances", &format!("client={B}%zz")),
            400,
            "Invalid client",
        );
        assert_eq!(
            text(&get(&mut t, "/clients", "")),
            format!("- {B}\n- {A}\n")
        );
    }

    #[test]
    fn posts_forward_the_body_verbatim() {
        let mut t = one(B);
        t.on_connect(A, role::AGENT, 1).unwrap();
        for (path, operand) in POSTS {
            for body in [&b"this is: [not yaml"[..], b"", b"x"] {
                let o = handle(
                    &mut t,
                    "POST",
                    path,
                    &format!("client={A}&filter=zzz"),
                    body,
                );
                assert_eq!(o.response, RestResponse::empty());
                assert_eq!(
                    o.send,
                    Some(Command {
                        client: A.to_string(),
                        operand,
                        payload: body.to_vec()
                    })
                );
            }
            let o = handle(&mut t, "POST", path, "", b"x");
            assert_error(&o.response, 400, "Invalid client");
            assert_eq!(o.send, None);
        }
        let stop = handle(&mut t, "POST", "/stop", &format!("client={B}"), b"stop:\n")
            .send
            .unwrap();
        assert_eq!(
            (stop.client.as_str(), stop.operand),
            (B, frame::Command::Stop)
        );
        let r = RestResponse::send_failed(&format!("Unknown UUID {A}"));
        assert_error(&r, 500, &format!("Unknown UUID {A}"));
        assert_eq!(r.reason(), "Internal Server Error");
    }

    #[test]
    fn query_parsing() {
        assert_eq!(
            parse_query("a=1&b=x+y%21&&c&d=%zz&e;f=1&g=%41"),
            vec![
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "x y!".to_string()),
                ("c".to_string(), String::new()),
                ("g".to_string(), "A".to_string()),
            ]
        );
        assert_eq!(parse_query("x=%+1"), vec![]);
    }
}
