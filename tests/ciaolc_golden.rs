//! Golden tests for `ciaolc` and the REST core of `ciao-launcher-server`.
//!
//! Every expected text here was captured from the original programs (the
//! exact bytes of their output, written with `^I` for TAB, and transcripts
//! of terminal sessions, which show TABs expanded to 8-column stops as a
//! terminal does); none was produced by this code. The runs go through the
//! real pieces without sockets: `ciaolc::run` talks through a `Transport`
//! that calls `testserver::rest::handle` on a `ClientTable` fed with the
//! frames a launcher sends.
//!
//! The sessions are numbered after the transcripts they replay: 4.1 the
//! server alone, 4.2 a launcher connects, 4.3 a full session with the
//! original launcher in simulation, 4.4 the launcher restarted (recovery
//! and error paths), 4.5 STOP/RESTART/DELETE, 4.6 the server probed by
//! scripted SSNTP agents, 4.8 what the original ciaolc sends.
//!
//! Where we deliberately differ from the original (docs/compatibility.md),
//! the test says so and checks our behaviour instead.

use std::io;

use ciao::ciaolc::client::{ClientError, Request, Response, Transport};
use ciao::ciaolc::{self, format};
use ciao::payloads::{Ready, Stat};
use ciao::ssntp::frame::{self, ErrorCode, Event, Status};
use ciao::ssntp::role;
use ciao::testserver::rest::{self, Command};
use ciao::testserver::ClientTable;

// ----------------------------------------------------------------------------
// Helpers

/// `^I` = TAB, `$` = end of line (the exact-bytes notation of the captures).
fn caret(s: &str) -> String {
    s.lines()
        .map(|l| l.strip_suffix('$').unwrap_or(l).replace("^I", "\t") + "\n")
        .collect()
}

/// What a terminal shows: TABs expanded to 8-column stops.
fn expand(s: &str) -> String {
    let mut out = String::new();
    for line in s.split_inclusive('\n') {
        let mut col = 0;
        for c in line.chars() {
            if c == '\t' {
                let n = 8 - col % 8;
                out.push_str(&" ".repeat(n));
                col += n;
            } else {
                out.push(c);
                col += 1;
            }
        }
    }
    out
}

/// A server: the REST core over a client table, recording what ciaolc asked
/// and which COMMAND frames would go to launchers.
#[derive(Default)]
struct Server {
    table: ClientTable,
    requests: Vec<Request>,
    sent: Vec<Command>,
}

impl Server {
    fn connect(&mut self, uuid: &str) {
        self.table
            .on_connect(uuid, role::AGENT | role::NETAGENT, 1)
            .unwrap();
    }
    fn stats(&mut self, uuid: &str, doc: &str) {
        self.table
            .on_frame(uuid, frame::Command::Stats, doc.as_bytes());
    }
    fn status(&mut self, uuid: &str, operand: Status, doc: &str) {
        self.table.on_frame(uuid, operand, doc.as_bytes());
    }
    fn error(&mut self, uuid: &str, operand: ErrorCode, doc: &str) {
        self.table.on_frame(uuid, operand, doc.as_bytes());
    }
    fn event(&mut self, uuid: &str, operand: Event, doc: &str) {
        self.table.on_frame(uuid, operand, doc.as_bytes());
    }
}

impl Transport for Server {
    fn send(&mut self, _server: &str, req: &Request) -> Result<Response, ClientError> {
        self.requests.push(req.clone());
        let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
        let o = rest::handle(
            &mut self.table,
            req.method,
            path,
            query,
            req.body.as_deref().unwrap_or(b""),
        );
        if let Some(c) = o.send {
            self.sent.push(c);
        }
        Ok(Response {
            status: o.response.status,
            reason: o.response.reason().to_string(),
            body: o.response.body,
        })
    }
}

/// An HTTP stub answering every request with the same status and body.
struct Canned {
    status: u16,
    body: Vec<u8>,
    requests: Vec<Request>,
}

impl Canned {
    fn ok(body: &str) -> Self {
        Canned {
            status: 200,
            body: body.as_bytes().to_vec(),
            requests: Vec::new(),
        }
    }
}

impl Transport for Canned {
    fn send(&mut self, _server: &str, req: &Request) -> Result<Response, ClientError> {
        self.requests.push(req.clone());
        Ok(Response {
            status: self.status,
            reason: ciao::http::reason_phrase(self.status).into(),
            body: self.body.clone(),
        })
    }
}

/// No server listening.
struct Down(Vec<String>);

impl Transport for Down {
    fn send(&mut self, server: &str, _req: &Request) -> Result<Response, ClientError> {
        self.0.push(server.to_string());
        Err(ClientError::Connect {
            server: server.to_string(),
            error: io::ErrorKind::ConnectionRefused.into(),
        })
    }
}

/// Runs `ciaolc ARGS` (split at white space); returns exit, stdout, stderr.
fn ciaolc(t: &mut dyn Transport, cmdline: &str) -> (i32, String, String) {
    let args: Vec<String> = cmdline.split_whitespace().map(str::to_string).collect();
    run_args(t, &args)
}

fn run_args(t: &mut dyn Transport, args: &[String]) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = ciaolc::run(args, t, &mut out, &mut err);
    (
        code,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

/// Replays a transcript of successful commands: `$ ciaolc ARGS  (comment)`,
/// the output as a terminal shows it, `[exit 0]`. Other lines (`(7 s
/// later)`) are ignored.
fn transcript(t: &mut dyn Transport, text: &str) {
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(cmd) = line.strip_prefix("$ ciaolc") else {
            continue;
        };
        let cmd = cmd.split("  (").next().unwrap().trim();
        let mut expected = Vec::new();
        let code = loop {
            let l = lines
                .next()
                .unwrap_or_else(|| panic!("no [exit] after {cmd}"));
            if let Some(c) = l.strip_prefix("[exit ") {
                break c.trim_end_matches(']').parse::<i32>().unwrap();
            }
            expected.push(l);
        };
        let expected = if expected.is_empty() {
            String::new()
        } else {
            expected.join("\n") + "\n"
        };
        let (got_code, out, err) = ciaolc(t, cmd);
        assert_eq!(
            (got_code, expand(&out), err.as_str()),
            (code, expected, ""),
            "ciaolc {cmd}"
        );
    }
}

// ----------------------------------------------------------------------------
// Documents served by the original server

const L: &str = "0203f0c8-8697-4e91-8530-5ced39822978";
const A: &str = "aaaaaaaa-0000-0000-0000-000000000001";
const B: &str = "bbbbbbbb-0000-0000-0000-000000000002";
const D7: &str = "d7d86208-b46c-4465-9018-fe14087d415f";

/// A STATUS document (what `curl /status` showed in session 4.2).
const STATUS_42: &str = "node_uuid: 0203f0c8-8697-4e91-8530-5ced39822978
mem_total_mb: 24105
mem_available_mb: 23740
disk_total_mb: 270553
disk_available_mb: 83969
load: 1
cpus_online: 2
";

/// Session 4.2, `curl /stats`.
const STATS_42: &str = "node_uuid: 0203f0c8-8697-4e91-8530-5ced39822978
status: READY
mem_total_mb: 24105
mem_available_mb: 23740
disk_total_mb: 270553
disk_available_mb: 83969
load: 1
cpus_online: 2
hostname: \"\"
networks: []
instances: []
";

/// The `/stats` document of session 4.3.
const STATS_43: &str = "node_uuid: 0203f0c8-8697-4e91-8530-5ced39822978
status: READY
mem_total_mb: 24105
mem_available_mb: 23777
disk_total_mb: 270553
disk_available_mb: 83948
load: 1
cpus_online: 2
hostname: \"\"
networks: []
instances:
- instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f
  state: active
  ssh_ip: 192.168.42.21
  ssh_port: 35050
  memory_usage_mb: 37
  disk_usage_mb: 0
  cpu_usage: 0
  volumes: []
- instance_uuid: 67d86208-b46c-4465-9018-e14087d415f
  state: active
  ssh_ip: 192.168.200.200
  ssh_port: 61518
  memory_usage_mb: 1
  disk_usage_mb: 0
  cpu_usage: 0
  volumes: []
";

/// Session 4.6, `curl /stats` after the probe's STATS (one network, four
/// instances).
const STATS_46: &str = "node_uuid: aaaaaaaa-0000-0000-0000-000000000001
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

/// A STATS built from the values `ciaolc` printed (for runs whose document
/// was captured only through ciaolc's output).
#[allow(clippy::too_many_arguments)]
fn stats_doc(
    mem_avail: i64,
    disk_avail: i64,
    instances: &[(&str, &str, &str, i64, i64)],
) -> String {
    let mut s = format!(
        "node_uuid: {L}\nstatus: READY\nmem_total_mb: 24105\nmem_available_mb: {mem_avail}\ndisk_total_mb: 270553\ndisk_available_mb: {disk_avail}\nload: 1\ncpus_online: 2\nhostname: \"\"\nnetworks: []\n"
    );
    if instances.is_empty() {
        s.push_str("instances: []\n");
    } else {
        s.push_str("instances:\n");
        for (uuid, state, ip, port, mem) in instances {
            s.push_str(&format!(
                "- instance_uuid: {uuid}\n  state: {state}\n  ssh_ip: {ip}\n  ssh_port: {port}\n  memory_usage_mb: {mem}\n  disk_usage_mb: 0\n  cpu_usage: 0\n  volumes: []\n"
            ));
        }
    }
    s
}

const C67: &str = "67d86208-b46c-4465-9018-e14087d415f";

// ----------------------------------------------------------------------------
// The formatters, exact bytes

#[test]
fn istats_table_bytes() {
    let s = Stat::parse(STATS_43.as_bytes()).unwrap();
    assert_eq!(
        format::istats(&s.instances),
        caret(
            "UUID^I^I^I^I^IStatus^ISSH^I^I^IMem^IDisk^ICPU^IVolumes$
d7d86208-b46c-4465-9018-fe14087d415f^Iactive^I192.168.42.21:35050^I37 MB^I0 MB^I0%^I[]$
67d86208-b46c-4465-9018-e14087d415f^Iactive^I192.168.200.200:61518^I1 MB^I0 MB^I0%^I[]$"
        )
    );
    let s = Stat::parse(STATS_46.as_bytes()).unwrap();
    assert_eq!(
        format::istats(&s.instances),
        caret(
            "UUID^I^I^I^I^IStatus^I^ISSH^I^IMem^IDisk^ICPU^IVolumes$
00000000-0000-0000-0000-00000000000a^Iexited^I^I10.1.1.1:33002^I-1 MB^I10 MB^I-1%^I[vol-1]$
00000000-0000-0000-0000-00000000000b^Iactive^I^I10.1.1.1:33003^I100 MB^I20 MB^I50%^I[vol-2 vol-3]$
00000000-0000-0000-0000-00000000000c^Ipending^I^I:0^I^I0 MB^I0 MB^I0%^I[]$
00000000-0000-0000-0000-00000000000d^Iexit_failed^I:0^I^I0 MB^I0 MB^I0%^I[]$"
        )
    );
    assert_eq!(format::istats(&[]), "");
}

#[test]
fn stats_block_bytes() {
    let s = Stat::parse(STATS_43.as_bytes()).unwrap();
    assert_eq!(
        format::stats(&s),
        caret(
            "NodeUUID:^I 0203f0c8-8697-4e91-8530-5ced39822978$
Status:^I^I READY$
MemTotal:^I 24105 MB$
MemAvailable:^I 23777 MB$
DiskTotal:^I 270553 MB$
DiskAvailable:^I 83948 MB$
Load:^I^I 1$
CpusOnline:^I 2$
NodeHostName:^I $
Instances:^I 2 (2 running 0 exited 0 pending)$"
        )
    );
    let s = Stat::parse(STATS_46.as_bytes()).unwrap();
    assert_eq!(
        format::stats(&s),
        caret(
            "NodeUUID:^I aaaaaaaa-0000-0000-0000-000000000001$
Status:^I^I FULL$
MemTotal:^I 1000 MB$
MemAvailable:^I 500 MB$
DiskTotal:^I 2000 MB$
DiskAvailable:^I 1500 MB$
Load:^I^I 2$
CpusOnline:^I 8$
NodeHostName:^I fakehost$
NodeIP:^I^I 192.168.1.10$
NodeMAC:^I 52:54:00:00:00:01$
NodeIP-1:^I 192.168.1.10$
NodeMAC-1:^I 52:54:00:00:00:01$
Instances:^I 4 (1 running 1 exited 1 pending 1 other)$"
        )
    );
}

#[test]
fn status_block_bytes() {
    let r = Ready::parse(STATUS_42.as_bytes()).unwrap();
    assert_eq!(
        format::status(&r),
        caret(
            "NodeUUID:^I 0203f0c8-8697-4e91-8530-5ced39822978$
MemTotal:^I 24105 MB$
MemAvailable:^I 23740 MB$
DiskTotal:^I 270553 MB$
DiskAvailable:^I 83969 MB$
Load:^I^I 1$
CpusOnline:^I 2$"
        )
    );
}

/// Session 4.8: canned STATS documents with the values used against the
/// original; the outputs are the original's exact bytes (including cells of exactly 8
/// characters that run into the next column).
#[test]
fn canned_stats_bytes() {
    let first = "node_uuid: 11111111-2222-3333-4444-555555555555
status: READY
mem_total_mb: 7856
mem_available_mb: 5220
disk_total_mb: 231782
disk_available_mb: 166163
load: 3
cpus_online: 4
hostname: myhost
networks:
- ip: 10.0.0.1
  mac: 02:00:00:00:00:01
instances:
- instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f
  state: active
  ssh_ip: 192.168.42.21
  ssh_port: 35050
  memory_usage_mb: 12345678
  disk_usage_mb: 339
  cpu_usage: 0
  volumes: [a, b]
- instance_uuid: short
  state: weird
  memory_usage_mb: -1
  disk_usage_mb: -1
  cpu_usage: -1
- instance_uuid: 67d86208-b46c-4465-9018-e14087d415f
  state: exited
  ssh_ip: 192.168.200.200
  ssh_port: 61519
  memory_usage_mb: 14
  disk_usage_mb: 189
  cpu_usage: 100
- instance_uuid: 67d86208-b46c-4465-9018-e14087d415ff
  state: pending
";
    let mut t = Canned::ok(first);
    assert_eq!(
        ciaolc(&mut t, "stats"),
        (
            0,
            caret(
                "NodeUUID:^I 11111111-2222-3333-4444-555555555555$
Status:^I^I READY$
MemTotal:^I 7856 MB$
MemAvailable:^I 5220 MB$
DiskTotal:^I 231782 MB$
DiskAvailable:^I 166163 MB$
Load:^I^I 3$
CpusOnline:^I 4$
NodeHostName:^I myhost$
NodeIP:^I^I 10.0.0.1$
NodeMAC:^I 02:00:00:00:00:01$
NodeIP-1:^I 10.0.0.1$
NodeMAC-1:^I 02:00:00:00:00:01$
Instances:^I 4 (1 running 1 exited 1 pending 1 other)$"
            ),
            String::new()
        )
    );
    assert_eq!(
        ciaolc(&mut t, "istats"),
        (
            0,
            caret(
                "UUID^I^I^I^I^IStatus^ISSH^I^I^IMem^I^IDisk^ICPU^IVolumes$
d7d86208-b46c-4465-9018-fe14087d415f^Iactive^I192.168.42.21:35050^I12345678 MB^I339 MB^I0%^I[a b]$
short^I^I^I^I^Iweird^I:0^I^I^I-1 MB^I^I-1 MB^I-1%^I[]$
67d86208-b46c-4465-9018-e14087d415f^Iexited^I192.168.200.200:61519^I14 MB^I^I189 MB^I100%^I[]$
67d86208-b46c-4465-9018-e14087d415ff^Ipending^I:0^I^I^I0 MB^I^I0 MB^I0%^I[]$"
            ),
            String::new()
        )
    );

    let second = "node_uuid: abc
status: FULL
networks:
- ip: 10.0.0.1
  mac: 02:00:00:00:00:01
- ip: 10.0.0.2
  mac: 02:00:00:00:00:02
instances:
- instance_uuid: 12345678
  state: active
  ssh_ip: 1.2.3.4
  ssh_port: 1
  memory_usage_mb: 12345
  disk_usage_mb: 1
  cpu_usage: 5
";
    let mut t = Canned::ok(second);
    assert_eq!(
        ciaolc(&mut t, "stats").1,
        caret(
            "NodeUUID:^I abc$
Status:^I^I FULL$
MemTotal:^I 0 MB$
MemAvailable:^I 0 MB$
DiskTotal:^I 0 MB$
DiskAvailable:^I 0 MB$
Load:^I^I 0$
CpusOnline:^I 0$
NodeHostName:^I $
NodeIP-1:^I 10.0.0.1$
NodeMAC-1:^I 02:00:00:00:00:01$
NodeIP-2:^I 10.0.0.2$
NodeMAC-2:^I 02:00:00:00:00:02$
Instances:^I 1 (1 running 0 exited 0 pending)$"
        )
    );
    assert_eq!(
        ciaolc(&mut t, "istats").1,
        caret(
            "UUID^IStatus^ISSH^I^IMem^IDisk^ICPU^IVolumes$
12345678active^I1.2.3.4:1^I12345 MB1 MB^I5%^I[]$"
        )
    );
}

// ----------------------------------------------------------------------------
// Sessions replayed through the REST core

#[test]
fn session_4_2_and_4_3() {
    let mut s = Server::default();
    s.connect(L);
    s.status(L, Status::Ready, STATUS_42);
    s.stats(L, STATS_42);
    transcript(
        &mut s,
        "$ ciaolc clients
0203f0c8-8697-4e91-8530-5ced39822978
[exit 0]
$ ciaolc istats
[exit 0]
$ ciaolc instances
[exit 0]
$ ciaolc status
NodeUUID:        0203f0c8-8697-4e91-8530-5ced39822978
MemTotal:        24105 MB
MemAvailable:    23740 MB
DiskTotal:       270553 MB
DiskAvailable:   83969 MB
Load:            1
CpusOnline:      2
[exit 0]
$ ciaolc drain
[]

[exit 0]",
    );
    // Deliberate difference (C5 fixed): `stats` prints the block with no
    // instances; the original printed nothing.
    let (code, out, _) = ciaolc(&mut s, "stats");
    assert_eq!(code, 0);
    assert!(
        out.ends_with(
            "CpusOnline:\t 2\nNodeHostName:\t \nInstances:\t 0 (0 running 0 exited 0 pending)\n"
        ),
        "{out}"
    );

    transcript(
        &mut s,
        "$ ciaolc startf /dev/null
[exit 0]",
    );
    assert_eq!(
        s.sent.pop(),
        Some(Command {
            client: L.into(),
            operand: frame::Command::Start,
            payload: Vec::new()
        })
    );
    s.stats(L, STATS_43);
    transcript(
        &mut s,
        "$ ciaolc instances
d7d86208-b46c-4465-9018-fe14087d415f
67d86208-b46c-4465-9018-e14087d415f
[exit 0]
$ ciaolc istats
UUID                                    Status  SSH                     Mem     Disk    CPU     Volumes
d7d86208-b46c-4465-9018-fe14087d415f    active  192.168.42.21:35050     37 MB   0 MB    0%      []
67d86208-b46c-4465-9018-e14087d415f     active  192.168.200.200:61518   1 MB    0 MB    0%      []
[exit 0]
$ ciaolc stats
NodeUUID:        0203f0c8-8697-4e91-8530-5ced39822978
Status:          READY
MemTotal:        24105 MB
MemAvailable:    23777 MB
DiskTotal:       270553 MB
DiskAvailable:   83948 MB
Load:            1
CpusOnline:      2
NodeHostName:    
Instances:       2 (2 running 0 exited 0 pending)
[exit 0]
$ ciaolc instances --filter active
d7d86208-b46c-4465-9018-fe14087d415f
67d86208-b46c-4465-9018-e14087d415f
[exit 0]
$ ciaolc instances --filter pending
[exit 0]
$ ciaolc drain
[]

[exit 0]
$ ciaolc stop d7d86208-b46c-4465-9018-fe14087d415f
[exit 0]",
    );
    let stop = s.sent.pop().unwrap();
    assert_eq!(
        (stop.client.as_str(), stop.operand),
        (L, frame::Command::Stop)
    );
    assert_eq!(
        stop.payload,
        format!("stop:\n  instance_uuid: {D7}\n  workload_agent_uuid: \"\"\n").into_bytes()
    );
}

#[test]
fn session_4_4_recovery_and_errors() {
    let mut s = Server::default();
    s.connect(L);
    let pending = [
        (C67, "pending", "192.168.200.200", 61518, 1),
        (D7, "pending", "192.168.42.21", 35050, 37),
    ];
    s.stats(L, &stats_doc(23819, 83941, &pending));
    transcript(
        &mut s,
        "$ ciaolc clients
0203f0c8-8697-4e91-8530-5ced39822978
[exit 0]
$ ciaolc istats                      (1 s after the restart: recovered instances are pending)
UUID                                    Status  SSH                     Mem     Disk    CPU     Volumes
67d86208-b46c-4465-9018-e14087d415f     pending 192.168.200.200:61518   1 MB    0 MB    0%      []
d7d86208-b46c-4465-9018-fe14087d415f    pending 192.168.42.21:35050     37 MB   0 MB    0%      []
[exit 0]
$ ciaolc stats
NodeUUID:        0203f0c8-8697-4e91-8530-5ced39822978
Status:          READY
MemTotal:        24105 MB
MemAvailable:    23819 MB
DiskTotal:       270553 MB
DiskAvailable:   83941 MB
Load:            1
CpusOnline:      2
NodeHostName:    
Instances:       2 (0 running 0 exited 2 pending)
[exit 0]",
    );
    let active = [
        (C67, "active", "192.168.200.200", 61518, 1),
        (D7, "active", "192.168.42.21", 35050, 37),
    ];
    s.stats(L, &stats_doc(23758, 83925, &active));
    transcript(
        &mut s,
        "$ ciaolc istats
UUID                                    Status  SSH                     Mem     Disk    CPU     Volumes
67d86208-b46c-4465-9018-e14087d415f     active  192.168.200.200:61518   1 MB    0 MB    0%      []
d7d86208-b46c-4465-9018-fe14087d415f    active  192.168.42.21:35050     37 MB   0 MB    0%      []
[exit 0]
$ ciaolc drain
[]

[exit 0]
$ ciaolc restart d7d86208-b46c-4465-9018-fe14087d415f
[exit 0]
$ ciaolc stop 00000000-0000-0000-0000-000000000000
[exit 0]
$ ciaolc restart 00000000-0000-0000-0000-000000000000
[exit 0]
$ ciaolc delete 00000000-0000-0000-0000-000000000000
[exit 0]",
    );
    let ops: Vec<frame::Command> = s.sent.iter().map(|c| c.operand).collect();
    assert_eq!(
        ops,
        vec![
            frame::Command::Restart,
            frame::Command::Stop,
            frame::Command::Restart,
            frame::Command::Delete
        ]
    );
    // The launcher's answers, in order.
    let zero = "00000000-0000-0000-0000-000000000000";
    s.error(
        L,
        ErrorCode::RestartFailure,
        &format!("instance_uuid: {D7}\nreason: already_running\n"),
    );
    s.error(
        L,
        ErrorCode::StopFailure,
        &format!("instance_uuid: {zero}\nreason: no_instance\n"),
    );
    s.error(
        L,
        ErrorCode::RestartFailure,
        &format!("instance_uuid: {zero}\nreason: no_instance\n"),
    );
    s.error(
        L,
        ErrorCode::DeleteFailure,
        &format!("instance_uuid: {zero}\nreason: no_instance\n"),
    );
    s.error(
        L,
        ErrorCode::StartFailure,
        &format!("instance_uuid: {D7}\nreason: already_running\n"),
    );
    transcript(
        &mut s,
        "$ ciaolc drain
- instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f
  reason: already_running
- instance_uuid: 00000000-0000-0000-0000-000000000000
  reason: no_instance
- instance_uuid: 00000000-0000-0000-0000-000000000000
  reason: no_instance
- instance_uuid: 00000000-0000-0000-0000-000000000000
  reason: no_instance
- instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f
  reason: already_running

[exit 0]
$ ciaolc drain
[]

[exit 0]",
    );
    // The curl checks of session 4.4.
    let get = |s: &mut Server, target: &str| {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        String::from_utf8(
            rest::handle(&mut s.table, "GET", path, query, b"")
                .response
                .body,
        )
        .unwrap()
    };
    assert_eq!(
        get(&mut s, "/stats?filter=exited"),
        "node_uuid: 0203f0c8-8697-4e91-8530-5ced39822978
status: READY
mem_total_mb: 24105
mem_available_mb: 23758
disk_total_mb: 270553
disk_available_mb: 83925
load: 1
cpus_online: 2
hostname: \"\"
networks: []
instances: []
"
    );
    assert_eq!(get(&mut s, "/instances?filter=running"), "[]\n");
    assert_eq!(
        get(
            &mut s,
            "/instances?filter=active&client=0203f0c8-8697-4e91-8530-5ced39822978"
        ),
        "- 67d86208-b46c-4465-9018-e14087d415f
- d7d86208-b46c-4465-9018-fe14087d415f
"
    );
    assert_eq!(get(&mut s, "/instances?client=nosuch"), "Invalid client\n");
    transcript(
        &mut s,
        "$ ciaolc istats -filter exited
[exit 0]
$ ciaolc istats -filter active
UUID                                    Status  SSH                     Mem     Disk    CPU     Volumes
67d86208-b46c-4465-9018-e14087d415f     active  192.168.200.200:61518   1 MB    0 MB    0%      []
d7d86208-b46c-4465-9018-fe14087d415f    active  192.168.42.21:35050     37 MB   0 MB    0%      []
[exit 0]",
    );
    // The launcher goes away: the client disappears.
    s.table.on_disconnect(L, 1);
    transcript(&mut s, "$ ciaolc clients\n[exit 0]");
}

#[test]
fn session_4_5_stop_restart_delete() {
    let mut s = Server::default();
    s.connect(L);
    let both = |d7: &'static str| {
        [
            (D7, d7, "192.168.42.21", 35050, 37),
            (C67, "active", "192.168.200.200", 61518, 1),
        ]
    };
    s.stats(L, &stats_doc(23742, 83805, &both("exited")));
    transcript(
        &mut s,
        "$ ciaolc istats
UUID                                    Status  SSH                     Mem     Disk    CPU     Volumes
d7d86208-b46c-4465-9018-fe14087d415f    exited  192.168.42.21:35050     37 MB   0 MB    0%      []
67d86208-b46c-4465-9018-e14087d415f     active  192.168.200.200:61518   1 MB    0 MB    0%      []
[exit 0]
$ ciaolc instances --filter exited
d7d86208-b46c-4465-9018-fe14087d415f
[exit 0]
$ ciaolc stats
NodeUUID:        0203f0c8-8697-4e91-8530-5ced39822978
Status:          READY
MemTotal:        24105 MB
MemAvailable:    23742 MB
DiskTotal:       270553 MB
DiskAvailable:   83805 MB
Load:            1
CpusOnline:      2
NodeHostName:    
Instances:       2 (1 running 1 exited 0 pending)
[exit 0]",
    );
    // Defect D1 is fixed: after `istats -filter active` the full list is
    // still there (the original showed the active one twice here).
    transcript(
        &mut s,
        "$ ciaolc istats -filter active
UUID                                    Status  SSH                     Mem     Disk    CPU     Volumes
67d86208-b46c-4465-9018-e14087d415f     active  192.168.200.200:61518   1 MB    0 MB    0%      []
[exit 0]
$ ciaolc istats
UUID                                    Status  SSH                     Mem     Disk    CPU     Volumes
d7d86208-b46c-4465-9018-fe14087d415f    exited  192.168.42.21:35050     37 MB   0 MB    0%      []
67d86208-b46c-4465-9018-e14087d415f     active  192.168.200.200:61518   1 MB    0 MB    0%      []
[exit 0]",
    );
    s.error(
        L,
        ErrorCode::StopFailure,
        &format!("instance_uuid: {D7}\nreason: already_stopped\n"),
    );
    s.stats(L, &stats_doc(23742, 83805, &both("active")));
    s.error(
        L,
        ErrorCode::RestartFailure,
        &format!("instance_uuid: {D7}\nreason: already_running\n"),
    );
    transcript(
        &mut s,
        "$ ciaolc istats
UUID                                    Status  SSH                     Mem     Disk    CPU     Volumes
d7d86208-b46c-4465-9018-fe14087d415f    active  192.168.42.21:35050     37 MB   0 MB    0%      []
67d86208-b46c-4465-9018-e14087d415f     active  192.168.200.200:61518   1 MB    0 MB    0%      []
[exit 0]
$ ciaolc drain
- instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f
  reason: already_stopped
- instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f
  reason: already_running

[exit 0]
$ ciaolc delete d7d86208-b46c-4465-9018-fe14087d415f
[exit 0]",
    );
    s.event(
        L,
        Event::InstanceDeleted,
        &format!("instance_deleted:\n  instance_uuid: {D7}\n"),
    );
    transcript(
        &mut s,
        "$ ciaolc drain                        (1 s later)
- instance_deleted:
    instance_uuid: d7d86208-b46c-4465-9018-fe14087d415f

[exit 0]",
    );
    s.stats(
        L,
        &stats_doc(
            23659,
            83660,
            &[(C67, "active", "192.168.200.200", 61518, 1)],
        ),
    );
    transcript(
        &mut s,
        "$ ciaolc instances
67d86208-b46c-4465-9018-e14087d415f
[exit 0]
$ ciaolc istats
UUID                                    Status  SSH                     Mem     Disk    CPU     Volumes
67d86208-b46c-4465-9018-e14087d415f     active  192.168.200.200:61518   1 MB    0 MB    0%      []
[exit 0]
$ ciaolc stats
NodeUUID:        0203f0c8-8697-4e91-8530-5ced39822978
Status:          READY
MemTotal:        24105 MB
MemAvailable:    23659 MB
DiskTotal:       270553 MB
DiskAvailable:   83660 MB
Load:            1
CpusOnline:      2
NodeHostName:    
Instances:       1 (1 running 0 exited 0 pending)
[exit 0]",
    );
    s.event(
        L,
        Event::InstanceDeleted,
        &format!("instance_deleted:\n  instance_uuid: {C67}\n"),
    );
    s.stats(L, &stats_doc(23659, 83660, &[]));
    transcript(
        &mut s,
        "$ ciaolc drain
- instance_deleted:
    instance_uuid: 67d86208-b46c-4465-9018-e14087d415f

[exit 0]
$ ciaolc instances
[exit 0]
$ ciaolc istats
[exit 0]",
    );

    // The remaining examples: two rejected starts, two VMs, two deletes.
    s.error(
        L,
        ErrorCode::StartFailure,
        "instance_uuid: \"\"\nreason: invalid_payload\n",
    );
    s.error(
        L,
        ErrorCode::StartFailure,
        "instance_uuid: \"\"\nreason: invalid_payload\n",
    );
    let efi = "67d86208-b46c-4465-9018-fe14087d415";
    let nn = "67d86208-b46c-4465-0000-fe14087d415f";
    s.stats(
        L,
        &stats_doc(
            23659,
            83660,
            &[
                (efi, "active", "192.168.42.21", 35051, 25),
                (nn, "active", "\"\"", 0, 25),
            ],
        ),
    );
    transcript(
        &mut s,
        "$ ciaolc drain
- instance_uuid: \"\"
  reason: invalid_payload
- instance_uuid: \"\"
  reason: invalid_payload

[exit 0]
$ ciaolc istats
UUID                                    Status  SSH                     Mem     Disk    CPU     Volumes
67d86208-b46c-4465-9018-fe14087d415     active  192.168.42.21:35051     25 MB   0 MB    0%      []
67d86208-b46c-4465-0000-fe14087d415f    active  :0                      25 MB   0 MB    0%      []
[exit 0]",
    );
    s.event(
        L,
        Event::InstanceDeleted,
        &format!("instance_deleted:\n  instance_uuid: {efi}\n"),
    );
    s.event(
        L,
        Event::InstanceDeleted,
        &format!("instance_deleted:\n  instance_uuid: {nn}\n"),
    );
    transcript(
        &mut s,
        "$ ciaolc drain
- instance_deleted:
    instance_uuid: 67d86208-b46c-4465-9018-fe14087d415
- instance_deleted:
    instance_uuid: 67d86208-b46c-4465-0000-fe14087d415f

[exit 0]",
    );
    // A TraceReport event (server -trace) shows as `- null`.
    s.event(L, Event::TraceReport, "frames: []\n");
    transcript(&mut s, "$ ciaolc drain\n- null\n\n[exit 0]");
}

#[test]
fn session_4_6_probe_agents() {
    let mut s = Server::default();
    s.connect(A);
    transcript(
        &mut s,
        "$ ciaolc clients
aaaaaaaa-0000-0000-0000-000000000001
[exit 0]
$ ciaolc instances
[exit 0]",
    );
    s.status(A, Status::Ready, "node_uuid: aaaaaaaa-0000-0000-0000-000000000001\nmem_total_mb: 1000\nmem_available_mb: 500\ndisk_total_mb: 2000\ndisk_available_mb: 1500\nload: 2\ncpus_online: 8\n");
    transcript(
        &mut s,
        "$ ciaolc status                     (after READY)
NodeUUID:        aaaaaaaa-0000-0000-0000-000000000001
MemTotal:        1000 MB
MemAvailable:    500 MB
DiskTotal:       2000 MB
DiskAvailable:   1500 MB
Load:            2
CpusOnline:      8
[exit 0]",
    );
    s.status(A, Status::Full, "");
    transcript(
        &mut s,
        "$ ciaolc status                     (after FULL)
NodeUUID:        
MemTotal:        0 MB
MemAvailable:    0 MB
DiskTotal:       0 MB
DiskAvailable:   0 MB
Load:            0
CpusOnline:      0
[exit 0]",
    );
    s.stats(A, STATS_46);
    transcript(
        &mut s,
        "$ ciaolc stats
NodeUUID:        aaaaaaaa-0000-0000-0000-000000000001
Status:          FULL
MemTotal:        1000 MB
MemAvailable:    500 MB
DiskTotal:       2000 MB
DiskAvailable:   1500 MB
Load:            2
CpusOnline:      8
NodeHostName:    fakehost
NodeIP:          192.168.1.10
NodeMAC:         52:54:00:00:00:01
NodeIP-1:        192.168.1.10
NodeMAC-1:       52:54:00:00:00:01
Instances:       4 (1 running 1 exited 1 pending 1 other)
[exit 0]
$ ciaolc istats
UUID                                    Status          SSH             Mem     Disk    CPU     Volumes
00000000-0000-0000-0000-00000000000a    exited          10.1.1.1:33002  -1 MB   10 MB   -1%     [vol-1]
00000000-0000-0000-0000-00000000000b    active          10.1.1.1:33003  100 MB  20 MB   50%     [vol-2 vol-3]
00000000-0000-0000-0000-00000000000c    pending         :0              0 MB    0 MB    0%      []
00000000-0000-0000-0000-00000000000d    exit_failed     :0              0 MB    0 MB    0%      []
[exit 0]
$ ciaolc instances
00000000-0000-0000-0000-00000000000a
00000000-0000-0000-0000-00000000000b
00000000-0000-0000-0000-00000000000c
00000000-0000-0000-0000-00000000000d
[exit 0]
$ ciaolc instances -filter pending
00000000-0000-0000-0000-00000000000c
[exit 0]",
    );
    // Our server serves the same normalised document back.
    let served = rest::handle(&mut s.table, "GET", "/stats", "", b"")
        .response
        .body;
    assert_eq!(String::from_utf8(served).unwrap(), STATS_46);

    // Several clients and a foreign role (clients listed in connection
    // order here; the original's order was Go map order).
    let mut s = Server::default();
    s.connect(B);
    s.connect(A);
    assert_eq!(
        s.table
            .on_connect("cccccccc-0000-0000-0000-000000000003", role::CONTROLLER, 3)
            .unwrap_err()
            .to_string(),
        "Ignoring connection from unexpected role: Controller."
    );
    transcript(
        &mut s,
        "$ ciaolc clients
bbbbbbbb-0000-0000-0000-000000000002
aaaaaaaa-0000-0000-0000-000000000001
[exit 0]
$ ciaolc drain -client aaaaaaaa-0000-0000-0000-000000000001
[]

[exit 0]
$ ciaolc stop -client bbbbbbbb-0000-0000-0000-000000000002 inst-1
[exit 0]",
    );
    // What agent B received: one frame, 56 bytes.
    let stop = s.sent.pop().unwrap();
    assert_eq!(
        (stop.client.as_str(), stop.operand, stop.payload.len()),
        (B, frame::Command::Stop, 56)
    );
    assert_eq!(
        stop.payload,
        b"stop:\n  instance_uuid: inst-1\n  workload_agent_uuid: \"\"\n"
    );

    // The original lost undrained events on disconnect (D4); ours holds
    // them until the launcher connects again (docs/compatibility.md).
    s.event(
        A,
        Event::InstanceDeleted,
        "instance_deleted:\n  instance_uuid: i1\n",
    );
    s.table.on_disconnect(A, 1);
    transcript(&mut s, "$ ciaolc clients                     (A gone)\nbbbbbbbb-0000-0000-0000-000000000002\n[exit 0]");
    s.table
        .on_connect(A, role::AGENT | role::NETAGENT, 2)
        .unwrap();
    transcript(
        &mut s,
        "$ ciaolc drain -client aaaaaaaa-0000-0000-0000-000000000001
- instance_deleted:
    instance_uuid: i1

[exit 0]",
    );
}

// ----------------------------------------------------------------------------
// Where we deliberately differ: every failure is reported and non-zero

#[test]
fn error_answers_fail_with_a_message() {
    // Session 4.1: no launcher connected. The original exited 0 for drain and the
    // POST commands and printed YAML decoding errors for the rest (C2).
    let mut s = Server::default();
    transcript(&mut s, "$ ciaolc clients\n[exit 0]");
    for cmd in [
        "instances",
        "stats",
        "istats",
        "status",
        "drain",
        "stop x",
        "delete x",
        "restart x",
        "attach x v",
        "detach x v",
        "startf /dev/null",
    ] {
        let (code, out, err) = ciaolc(&mut s, cmd);
        assert_eq!((code, out.as_str()), (1, ""), "{cmd}");
        assert!(
            err.starts_with("Error: ") && err.ends_with('\n') && err.lines().count() == 1,
            "{cmd}: {err}"
        );
        assert!(err.contains("failed with 400 Bad Request: Invalid client. No launcher is connected, or several are: choose one with -client UUID"), "{err}");
    }
    assert!(s.sent.is_empty());

    s.connect(A);
    let (code, _, err) = ciaolc(&mut s, "stats");
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Error: GET /stats on 127.0.0.1:9000 failed with 404 Not Found: Stats not available. The launcher has not sent its statistics yet; try again in a few seconds.\n"
    );
    let (code, _, err) = ciaolc(&mut s, "status");
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "404 Not Found: Statuss not available. The launcher has not sent its status yet"
        ),
        "{err}"
    );
    let (code, _, err) = ciaolc(&mut s, "drain -client cccccccc-0000-0000-0000-000000000003");
    assert_eq!(code, 1);
    assert!(err.contains("Invalid client. No launcher with UUID cccccccc-0000-0000-0000-000000000003 is connected"), "{err}");

    let mut t = Canned {
        status: 500,
        body: b"Unknown UUID x\n".to_vec(),
        requests: Vec::new(),
    };
    let (code, _, err) = ciaolc(&mut t, "stop abc");
    assert_eq!(code, 1);
    assert!(
        err.contains("failed with 500 Internal Server Error: Unknown UUID x."),
        "{err}"
    );
}

#[test]
fn unreachable_server() {
    // The original printed `Error: Get "...": dial tcp ...` for GETs and
    // panicked for POSTs (C3); we say what is wrong for every command.
    let mut t = Down(Vec::new());
    for cmd in ["clients", "istats", "drain", "stop abc", "startf /dev/null"] {
        let (code, out, err) = ciaolc(&mut t, cmd);
        assert_eq!((code, out.as_str()), (1, ""), "{cmd}");
        assert_eq!(
            err,
            "Error: cannot reach ciao-launcher-server at 127.0.0.1:9000: connection refused (is ciao-launcher-server running? Use -server HOST:PORT if it listens elsewhere)\n"
        );
    }
}

// ----------------------------------------------------------------------------
// Session 4.8: what ciaolc sends, canned answers, argument errors

#[test]
fn requests_sent() {
    let mut t = Canned::ok("");
    let cases: &[(&str, &str, &str, Option<&[u8]>)] = &[
        ("clients", "GET", "/clients", None),
        ("instances", "GET", "/instances", None),
        (
            "instances --filter active --client abc",
            "GET",
            "/instances?client=abc&filter=active",
            None,
        ),
        ("istats -filter=exited", "GET", "/stats?filter=exited", None),
        ("istats -filter none", "GET", "/stats", None),
        ("stats -client X", "GET", "/stats?client=X", None),
        ("status", "GET", "/status", None),
        ("drain --client Y", "GET", "/drain?client=Y", None),
        (
            "stop 1234",
            "POST",
            "/stop",
            Some(b"stop:\n  instance_uuid: \"1234\"\n  workload_agent_uuid: \"\"\n"),
        ),
        ("delete -client Z 1234", "POST", "/delete?client=Z", None),
        (
            "attach -client C inst vol",
            "POST",
            "/attach?client=C",
            None,
        ),
        ("detach inst vol", "POST", "/detach", None),
        // Flags after the positional argument are ignored (C8).
        ("restart 1234 --client Z", "POST", "/restart", None),
        (
            "instances -client a&b=c",
            "GET",
            "/instances?client=a%26b%3Dc",
            None,
        ),
    ];
    for (cmd, method, target, body) in cases {
        t.requests.clear();
        assert_eq!(ciaolc(&mut t, cmd).0, 0, "{cmd}");
        let r = &t.requests[0];
        assert_eq!((r.method, r.target.as_str()), (*method, *target), "{cmd}");
        if let Some(b) = body {
            assert_eq!(r.body.as_deref(), Some(*b), "{cmd}");
        }
    }
    // Body sizes captured from the original.
    let sizes = [
        ("delete -client Z 1234", 58),
        ("attach -client C inst vol", 82),
        ("detach inst vol", 82),
        ("restart 1234", 371),
    ];
    for (cmd, len) in sizes {
        t.requests.clear();
        ciaolc(&mut t, cmd);
        assert_eq!(
            t.requests[0].body.as_ref().map(Vec::len),
            Some(len),
            "{cmd}"
        );
    }
    // startf sends the file byte for byte.
    let path = std::env::temp_dir().join(format!("ciaolc-golden-{}.yaml", std::process::id()));
    let content = b"---\nstart:\n  instance_uuid: x\n...\n#cloud-config\n\xff";
    std::fs::write(&path, content).unwrap();
    t.requests.clear();
    let (code, _, _) = run_args(
        &mut t,
        &[
            "startf".into(),
            "-client".into(),
            "K".into(),
            path.display().to_string(),
        ],
    );
    std::fs::remove_file(&path).unwrap();
    assert_eq!(code, 0);
    assert_eq!(
        (t.requests[0].method, t.requests[0].target.as_str()),
        ("POST", "/start?client=K")
    );
    assert_eq!(t.requests[0].body.as_deref(), Some(&content[..]));
}

#[test]
fn canned_answers() {
    transcript(
        &mut Canned::ok("- a\n- b\n"),
        "$ ciaolc clients\na\nb\n[exit 0]",
    );
    transcript(
        &mut Canned::ok("- x\n- \"y\"\n"),
        "$ ciaolc instances\nx\ny\n[exit 0]",
    );
    // Empty 200 answers: nothing, except status (zero block) and drain (an
    // empty line); and, unlike the original (C5), stats prints a zero block.
    let mut t = Canned::ok("");
    for cmd in ["clients", "instances", "istats", "stop a", "attach a b"] {
        assert_eq!(
            ciaolc(&mut t, cmd),
            (0, String::new(), String::new()),
            "{cmd}"
        );
    }
    assert_eq!(
        ciaolc(&mut t, "drain"),
        (0, "\n".to_string(), String::new())
    );
    transcript(
        &mut t,
        "$ ciaolc status
NodeUUID:        
MemTotal:        0 MB
MemAvailable:    0 MB
DiskTotal:       0 MB
DiskAvailable:   0 MB
Load:            0
CpusOnline:      0
[exit 0]",
    );
    let (code, out, _) = ciaolc(&mut t, "stats");
    assert_eq!(code, 0);
    assert!(
        out.ends_with("Instances:\t 0 (0 running 0 exited 0 pending)\n"),
        "{out}"
    );
    // A 200 that is not the expected document is an error.
    let (code, _, err) = ciaolc(&mut Canned::ok("Invalid client\n"), "stats");
    assert_eq!(code, 1);
    assert!(
        err.starts_with(
            "Error: the answer of 127.0.0.1:9000 to GET /stats is not a STATS document: "
        ),
        "{err}"
    );
}

const USAGE: &str = "ciaolc is a command line tool for testing ciao-launcher

Usage:
\tciaolc command

Where commands are:
\tstartf
\tdelete
\tstop
\trestart
\tdrain
\tstats
\tistats
\tstatus
\tattach
\tdetach

Flags:
  -server string
    \tIP port of server (default \"127.0.0.1:9000\")
";

const ISTATS_USAGE: &str = "Usage of istats:
  -client string
    \tUUID of client
  -filter value
    \tCan be exited, pending or running (default none)
";

#[test]
fn argument_errors() {
    let mut t = Canned::ok("");
    let e = |s: &str| s.to_string();
    assert_eq!(
        ciaolc(&mut t, "bogus"),
        (1, e(""), e("Unknown command bogus\n"))
    );
    assert_eq!(
        ciaolc(&mut t, "stats -server 127.0.0.1:9000"),
        (2, e(""), e("flag provided but not defined: -server\nUsage of stats:\n  -client string\n    \tUUID of client\n"))
    );
    assert_eq!(
        ciaolc(&mut t, "stop"),
        (1, e(""), e("Error: Missing instance-uuid\n"))
    );
    assert_eq!(
        ciaolc(&mut t, "stop -client X"),
        (1, e(""), e("Error: Missing instance-uuid\n"))
    );
    assert_eq!(
        ciaolc(&mut t, "attach inst"),
        (1, e(""), e("Error: Missing volume-uuid\n"))
    );
    assert_eq!(
        ciaolc(&mut t, "detach"),
        (1, e(""), e("Error: Missing instance-uuid\n"))
    );
    assert_eq!(
        ciaolc(&mut t, "startf"),
        (1, e(""), e("Error: Missing instance-uuid\n"))
    );
    assert_eq!(
        ciaolc(&mut t, "startf /nonexistent"),
        (
            1,
            e(""),
            e("Error: open /nonexistent: no such file or directory\n")
        )
    );
    assert_eq!(
        ciaolc(&mut t, "istats --filter running"),
        (2, e(""), format!("invalid value \"running\" for flag -filter: exited, pending, active expected\n{ISTATS_USAGE}"))
    );
    assert_eq!(
        ciaolc(&mut t, "instances -filter"),
        (
            2,
            e(""),
            format!(
                "flag needs an argument: -filter\n{}",
                ISTATS_USAGE.replace("istats", "instances")
            )
        )
    );
    assert_eq!(
        ciaolc(&mut t, "startf -h"),
        (
            0,
            e(""),
            e("Usage of start:\n  -client string\n    \tUUID of client\n")
        )
    );
    assert_eq!(ciaolc(&mut t, "clients -x"), (0, e(""), e("")));
    assert_eq!(
        ciaolc(&mut t, "-x"),
        (
            2,
            e(""),
            format!("flag provided but not defined: -x\n{USAGE}")
        )
    );
    assert_eq!(ciaolc(&mut t, ""), (1, e(""), e(USAGE)));
    assert_eq!(ciaolc(&mut t, "-h"), (0, e(""), e(USAGE)));
    assert_eq!(ciaolc(&mut t, "--help"), (0, e(""), e(USAGE)));
    // Only `clients -x` reached the server.
    assert_eq!(t.requests.len(), 1);
}

#[test]
fn server_flag_works() {
    // C1 fixed: the original answered `Unknown command -server`.
    let mut t = Down(Vec::new());
    for cmd in [
        "-server 127.0.0.1:9100 clients",
        "-server=127.0.0.1:9100 clients",
        "--server 127.0.0.1:9100 stop x",
    ] {
        let (code, _, err) = ciaolc(&mut t, cmd);
        assert_eq!(code, 1);
        assert!(err.contains("at 127.0.0.1:9100:"), "{err}");
    }
    assert_eq!(t.0, vec!["127.0.0.1:9100"; 3]);
    // Only global flags: usage, exit 1.
    assert_eq!(ciaolc(&mut t, "-server x").0, 1);
    let (code, _, err) = ciaolc(&mut t, "-server x bogus");
    assert_eq!((code, err.as_str()), (1, "Unknown command bogus\n"));
}
