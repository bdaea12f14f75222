//! End to end with the three real binaries: `ciao-launcher-server`, the
//! launcher in simulation, and `ciaolc` run as a user would (the README's
//! session); plus raw SSNTP agents built on our library to check what
//! reaches a client byte for byte and what `drain` shows.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ciao::ssntp::frame::{self, ErrorCode, Event, Frame, Op, Status};
use ciao::ssntp::role;
use ciao::ssntp::uuid::Uuid;
use ciao_test_support::certgen::{self, KeyKind};
use ciao_test_support::proc::{wait_for, TempDir};
use ciao_test_support::rawtls::{Outcome, RawClient};
use ciao_test_support::server_session::{free_port, Binaries, Session};

const SERVER: &str = env!("CARGO_BIN_EXE_ciao-launcher-server");
const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");
const CIAOLC: &str = env!("CARGO_BIN_EXE_ciaolc");
const LONG: Duration = Duration::from_secs(30);
const LEGACY: &str = "d7d86208-b46c-4465-9018-fe14087d415f";
const CONTAINER: &str = "67d86208-b46c-4465-9018-e14087d415f";

const BINS: Binaries = Binaries {
    server: SERVER,
    launcher: LAUNCHER,
    ciaolc: CIAOLC,
};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/payloads")
}

/// The server, its log verbose.
fn session(tag: &str) -> Session {
    Session::new(BINS, tag, &["-v=2", "-alsologtostderr"])
}

/// A raw agent connected to the server.
fn connect_agent(s: &Session, cert: &Path) -> (RawClient, Uuid) {
    let uuid = Uuid::random();
    (connect_agent_as(s, cert, uuid), uuid)
}

/// A raw agent connected to the server with the given UUID.
fn connect_agent_as(s: &Session, cert: &Path, uuid: Uuid) -> RawClient {
    let mut c = RawClient::connect(s.ssntp, &s.certs.ca_pem_path, cert).unwrap();
    c.send_connect(uuid, role::AGENT | role::NETAGENT).unwrap();
    match c.next(LONG) {
        Outcome::Value(v) => assert_eq!(v.into_connected().op, Op::Status(Status::Connected)),
        other => panic!("{other:?}"),
    }
    wait_for(LONG, "the agent to be listed", || {
        s.ok(&["clients"]).contains(&uuid.to_string()).then_some(())
    });
    c
}

fn next_frame(c: &mut RawClient) -> Frame {
    match c.next(LONG) {
        Outcome::Value(v) => v.into_frame(),
        other => panic!("expected a frame, got {other:?}"),
    }
}

fn send(c: &mut RawClient, f: &Frame) {
    let mut out = Vec::new();
    c.enc.frame(f, &mut out);
    c.write(&out).unwrap();
}

#[test]
fn the_readme_session() {
    let mut s = session("session");
    let id = s.start_launcher(&[]);
    assert_eq!(s.ok(&["clients"]), format!("{id}\n"));
    let legacy = examples().join("start_legacy.yaml");
    let container = examples().join("start_container.yaml");
    assert_eq!(s.ok(&["startf", legacy.to_str().unwrap()]), "");
    assert_eq!(s.ok(&["startf", container.to_str().unwrap()]), "");
    let header = "UUID\t\t\t\t\tStatus\tSSH\t\t\tMem\tDisk\tCPU\tVolumes\n";
    let both_active = format!(
        "{header}{CONTAINER}\tactive\t:0\t\t\t1 MB\t1000 MB\t0%\t[]\n\
         {LEGACY}\tactive\t192.168.42.21:35050\t37 MB\t0 MB\t0%\t[]\n"
    );
    wait_for(LONG, "both instances active", || {
        (s.ok(&["istats"]) == both_active).then_some(())
    });
    assert_eq!(s.ok(&["instances"]), format!("{CONTAINER}\n{LEGACY}\n"));
    assert_eq!(
        s.ok(&["instances", "-filter", "active"]),
        format!("{CONTAINER}\n{LEGACY}\n")
    );
    let stats = s.ok(&["stats"]);
    assert!(
        stats.starts_with(&format!(
            "NodeUUID:\t {id}\nStatus:\t\t READY\nMemTotal:\t "
        )),
        "{stats}"
    );
    // The host name is reported with -network=false too (B23 fixed).
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(
        stats.ends_with(&format!(
            "NodeHostName:\t {}\nInstances:\t 2 (2 running 0 exited 0 pending)\n",
            host.trim()
        )),
        "{stats}"
    );
    let status = s.ok(&["status"]);
    assert!(
        status.starts_with(&format!("NodeUUID:\t {id}\nMemTotal:\t ")),
        "{status}"
    );
    assert!(status.contains("\nCpusOnline:\t "), "{status}");

    assert_eq!(s.ok(&["stop", LEGACY]), "");
    let stopped = format!(
        "{header}{CONTAINER}\tactive\t:0\t\t\t1 MB\t1000 MB\t0%\t[]\n\
         {LEGACY}\texited\t192.168.42.21:35050\t-1 MB\t0 MB\t-1%\t[]\n"
    );
    wait_for(LONG, "the legacy VM exited", || {
        (s.ok(&["istats"]) == stopped).then_some(())
    });
    assert_eq!(
        s.ok(&["istats", "-filter", "exited"]),
        format!("{header}{LEGACY}\texited\t192.168.42.21:35050\t-1 MB\t0 MB\t-1%\t[]\n")
    );
    assert_eq!(s.ok(&["restart", LEGACY]), "");
    wait_for(LONG, "the legacy VM active again", || {
        (s.ok(&["istats"]) == both_active).then_some(())
    });
    assert_eq!(s.ok(&["delete", LEGACY]), "");
    assert_eq!(s.ok(&["delete", CONTAINER]), "");
    wait_for(LONG, "both deleted", || {
        s.ok(&["instances"]).is_empty().then_some(())
    });
    let drained = s.ok(&["drain"]);
    assert_eq!(
        drained,
        format!(
            "- instance_deleted:\n    instance_uuid: {LEGACY}\n- instance_deleted:\n    instance_uuid: {CONTAINER}\n\n"
        )
    );
    assert_eq!(s.ok(&["drain"]), "[]\n\n");
}

#[test]
fn commands_reach_the_client_byte_for_byte() {
    let s = session("bytes");
    let (mut agent, uuid) = connect_agent(&s, &s.certs.client_pem_path);
    let u = uuid.to_string();
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("start_")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 6);
    for f in &files {
        assert_eq!(s.ok(&["startf", "-client", &u, f.to_str().unwrap()]), "");
        let got = next_frame(&mut agent);
        assert_eq!(got.op, Op::Command(frame::Command::Start), "{f:?}");
        assert_eq!(
            got.payload,
            std::fs::read(f).unwrap(),
            "{f:?} must arrive byte for byte"
        );
    }
    for (cmd, operand, key) in [
        ("stop", frame::Command::Stop, "stop:"),
        ("restart", frame::Command::Restart, "restart:"),
        ("delete", frame::Command::Delete, "delete:"),
    ] {
        assert_eq!(s.ok(&[cmd, "-client", &u, LEGACY]), "");
        let got = next_frame(&mut agent);
        assert_eq!(got.op, Op::Command(operand), "{cmd}");
        let text = String::from_utf8(got.payload).unwrap();
        assert!(text.starts_with(key), "{cmd}: {text}");
        assert!(
            text.contains(&format!("instance_uuid: {LEGACY}")),
            "{cmd}: {text}"
        );
    }
    for (cmd, operand) in [
        ("attach", frame::Command::AttachVolume),
        ("detach", frame::Command::DetachVolume),
    ] {
        assert_eq!(s.ok(&[cmd, "-client", &u, LEGACY, "0000aaaa-bbbb"]), "");
        let got = next_frame(&mut agent);
        assert_eq!(got.op, Op::Command(operand), "{cmd}");
        let text = String::from_utf8(got.payload).unwrap();
        assert!(text.contains("volume_uuid: 0000aaaa-bbbb"), "{cmd}: {text}");
    }
}

#[test]
fn drain_shows_events_and_errors_in_the_spec_yaml() {
    let s = session("drain");
    let (mut agent, uuid) = connect_agent(&s, &s.certs.client_pem_path);
    let me = uuid.0;
    let frames = [
        Frame::new(
            ErrorCode::StartFailure,
            me,
            format!("instance_uuid: {LEGACY}\nreason: full_cn\n").into_bytes(),
        ),
        Frame::new(
            ErrorCode::DetachVolumeFailure,
            me,
            format!("instance_uuid: {LEGACY}\nvolume_uuid: abc\nreason: not_attached\n")
                .into_bytes(),
        ),
        Frame::new(
            Event::InstanceDeleted,
            me,
            format!("instance_deleted:\n  instance_uuid: {LEGACY}\n").into_bytes(),
        ),
        Frame::new(Event::TraceReport, me, b"frames: []\n".to_vec()),
    ];
    for f in &frames {
        send(&mut agent, f);
    }
    let want = format!(
        "- instance_uuid: {LEGACY}\n  reason: full_cn\n\
         - instance_uuid: {LEGACY}\n  volume_uuid: abc\n  reason: not_attached\n\
         - instance_deleted:\n    instance_uuid: {LEGACY}\n\
         - null\n\n"
    );
    let got = wait_for(LONG, "four drain entries", || {
        // Draining empties the queue: accumulate until all four arrived.
        let o = s.ok(&["drain"]);
        (o != "[]\n\n").then_some(o)
    });
    let got = if got == want {
        got
    } else {
        // The entries may have arrived over two drains.
        let mut all = got.trim_end_matches('\n').to_string() + "\n";
        wait_for(LONG, "the rest of the entries", || {
            let o = s.ok(&["drain"]);
            if o != "[]\n\n" {
                all.push_str(o.trim_end_matches('\n'));
                all.push('\n');
            }
            (all.clone() + "\n" == want).then(|| all.clone() + "\n")
        })
    };
    assert_eq!(got, want);
    assert_eq!(s.ok(&["drain"]), "[]\n\n", "a second drain is empty");
}

#[test]
fn client_selects_among_two_launchers_and_errors_are_clear() {
    let s = session("select");
    let (mut a, ua) = connect_agent(&s, &s.certs.client_pem_path);
    let (mut b, ub) = connect_agent(&s, &s.certs.client_pem_path);
    for (c, u) in [(&mut a, ua), (&mut b, ub)] {
        let stat = format!(
            "node_uuid: {u}\nstatus: READY\nmem_total_mb: 100\nmem_available_mb: 50\ndisk_total_mb: 10\n\
             disk_available_mb: 5\nload: 0\ncpus_online: 2\nhostname: \"\"\nnetworks: []\ninstances: []\n"
        );
        send(
            c,
            &Frame::new(frame::Command::Stats, u.0, stat.into_bytes()),
        );
    }
    // Two clients: without -client the server cannot choose.
    let o = s.ciaolc(&["stats"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("-client"),
        "{o:?}"
    );
    for u in [ua, ub] {
        let out = wait_for(LONG, "stats of one client", || {
            let o = s.ciaolc(&["stats", "-client", &u.to_string()]);
            o.status
                .success()
                .then(|| String::from_utf8(o.stdout).unwrap())
        });
        assert!(out.starts_with(&format!("NodeUUID:\t {u}\n")), "{out}");
    }
    // Unknown client.
    let o = s.ciaolc(&["status", "-client", "00000000-0000-4000-8000-000000000000"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("No launcher with UUID"),
        "{o:?}"
    );
    // Missing and unreadable START files.
    let o = s.ciaolc(&[
        "startf",
        "-client",
        &ua.to_string(),
        "/nonexistent/start.yaml",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("/nonexistent/start.yaml"),
        "{o:?}"
    );
    let o = s.ciaolc(&["startf", "-client", &ua.to_string()]);
    assert!(!o.status.success());
    // HTTP garbage gets a 4xx and the server keeps serving.
    let mut t = TcpStream::connect(s.rest).unwrap();
    t.set_read_timeout(Some(LONG)).unwrap();
    t.write_all(b"THIS IS NOT HTTP\r\n\r\n").unwrap();
    let mut reply = String::new();
    let _ = t.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 4"), "{reply}");
    let mut t = TcpStream::connect(s.rest).unwrap();
    t.set_read_timeout(Some(LONG)).unwrap();
    t.write_all(b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    let _ = t.read_to_string(&mut reply);
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
    assert!(reply.ends_with("404 page not found\n"), "{reply}");
    let mut t = TcpStream::connect(s.rest).unwrap();
    t.set_read_timeout(Some(LONG)).unwrap();
    t.write_all(
        b"POST /clients HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut reply = String::new();
    let _ = t.read_to_string(&mut reply);
    assert!(
        reply.starts_with("HTTP/1.1 400") && reply.ends_with("GET expected\n"),
        "{reply}"
    );
    // A stuck HTTP client does not stall the server.
    let _stuck = {
        let mut t = TcpStream::connect(s.rest).unwrap();
        t.write_all(b"GET /clients HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        t
    };
    assert!(s.ok(&["clients"]).contains(&ua.to_string()));
}

#[test]
fn ciaolc_says_when_the_server_is_down() {
    let port = free_port();
    let o = Command::new(CIAOLC)
        .args(["-server", &format!("127.0.0.1:{port}"), "clients"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "cannot reach ciao-launcher-server at 127.0.0.1:{port}"
        )),
        "{err}"
    );
}

#[test]
fn server_without_certificates_says_how_to_make_them() {
    let o = Command::new(SERVER).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("ciao-cert"), "{err}");
}

#[test]
fn server_exits_when_its_rest_port_is_taken() {
    let tmp = TempDir::new("busy");
    let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let o = Command::new(SERVER)
        .args([
            format!("-ca-server-cert={}", certs.ca_pem_path.display()),
            format!("-server-cert={}", certs.server_pem_path.display()),
            format!("--ssntp-listen=127.0.0.1:{}", free_port()),
            format!("-server={}", busy.local_addr().unwrap()),
            format!("--data-root={}", tmp.path().join("server").display()),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Unable to create listener"),
        "{o:?}"
    );
}

/// Issue 14, item 7: the original accepted a 16 MiB body, whose frame is over
/// the 16 MiB a launcher accepts by default: the launcher dropped the
/// connection. Such a body is refused (413); the largest accepted one reaches
/// the launcher, which answers it on the same connection.
#[test]
fn a_body_the_launcher_would_refuse_is_refused_and_the_largest_accepted_reaches_it() {
    let mut s = session("bigbody");
    let id = s.start_launcher(&[]);
    let refused = s.post("/start", &vec![b'x'; 16 << 20]);
    assert!(refused.starts_with("HTTP/1.1 413"), "{refused}");
    let largest = (16 << 20) - (4 << 10);
    let ok = s.post("/start", &vec![b'x'; largest]);
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let drained = wait_for(LONG, "the launcher's answer to the START", || {
        let d = s.ok(&["drain"]);
        (d != "[]\n\n").then_some(d)
    });
    // The launcher could not make a START of it, and said so.
    assert!(
        drained.starts_with("- instance_uuid: \"\"\n  reason: "),
        "{drained}"
    );
    assert_eq!(s.ok(&["clients"]), format!("{id}\n"));
    let log = s.server_log();
    assert!(!log.contains("disconnected"), "{log}");
}

/// Issue 14, item 7 (D4 reversed): events a launcher sent and nobody drained
/// wait for it when it disconnects, and are there when it reconnects.
#[test]
fn undrained_events_survive_a_reconnect() {
    let s = session("held");
    let (mut agent, uuid) = connect_agent(&s, &s.certs.client_pem_path);
    let u = uuid.to_string();
    send(
        &mut agent,
        &Frame::new(
            Event::InstanceDeleted,
            uuid.0,
            format!("instance_deleted:\n  instance_uuid: {LEGACY}\n").into_bytes(),
        ),
    );
    // Frames are handled in order: once the STATS is there, so is the event.
    send(
        &mut agent,
        &Frame::new(
            frame::Command::Stats,
            uuid.0,
            format!("node_uuid: {u}\n").into_bytes(),
        ),
    );
    wait_for(LONG, "the STATS", || {
        s.ciaolc(&["stats", "-client", &u])
            .status
            .success()
            .then_some(())
    });
    drop(agent);
    wait_for(LONG, "the agent to be gone", || {
        s.ok(&["clients"]).is_empty().then_some(())
    });
    let _again = connect_agent_as(&s, &s.certs.client_pem_path, uuid);
    assert_eq!(
        s.ok(&["drain", "-client", &u]),
        format!("- instance_deleted:\n    instance_uuid: {LEGACY}\n\n")
    );
    // Snapshots go with the session.
    assert!(!s.ciaolc(&["stats", "-client", &u]).status.success());
}

/// Issue 14, item 3: a second session with the UUID of a connected launcher
/// (a launcher reconnecting while its old connection lingers) replaces the
/// first, which the server closes; the older one's close does not make the
/// server forget the launcher.
#[test]
fn a_second_session_of_a_uuid_replaces_the_first() {
    let s = session("twice");
    let (mut old, uuid) = connect_agent(&s, &s.certs.client_pem_path);
    let u = uuid.to_string();
    let mut new = connect_agent_as(&s, &s.certs.client_pem_path, uuid);
    // The server closed the older session.
    match old.next(Duration::from_secs(10)) {
        Outcome::Closed => {}
        Outcome::Tls(e) => assert_ne!(e, "timeout", "the older session was not closed"),
        Outcome::Value(v) => panic!("the old session got {v:?}"),
    }
    drop(old);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.ok(&["clients"]), format!("{u}\n"));
    assert_eq!(s.ok(&["stop", LEGACY]), "");
    let got = next_frame(&mut new);
    assert_eq!(got.op, Op::Command(frame::Command::Stop));
    let log = s.server_log();
    assert!(
        log.contains(&format!("{u} connected again from"))
            && log.contains("closing its older session"),
        "{log}"
    );
}
