//! The order of the system calls that make a state change durable, traced
//! with `strace -f` on the real `ciao-launcher -simulation`: each append
//! of records to the state log (`instances/state.log`) is followed by an
//! `fdatasync` of the log that is over before the launcher's next write to
//! the SSNTP socket, which carries the report of the change. A kill -9
//! test cannot show this (the page cache survives the kill); the trace
//! can. The same trace shows that the launcher never syncs anything but
//! its own files (no `sync`, no `syncfs`, no `fsync` outside its data
//! root), so a neighbour dirtying the same file system cannot slow its
//! state changes (`examples/bench-durable` measures that in `make bench`).

// Ending the traced launcher calls libc directly rather than widening `ciao::sys`.
#![allow(unsafe_code)]

use std::path::Path;
use std::time::Duration;

use ciao::payloads::Stat;
use ciao::ssntp::server::ServerEvent;
use ciao::ssntp::{frame::Command, tls};
use ciao_test_support::certgen::{self, KeyKind};
use ciao_test_support::proc::{wait_for, Proc, TempDir};
use ciao_test_support::ssntp_server::{Options, TestServer};
use ciao_test_support::{cmd, skip_or_fail};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");
const LONG: Duration = Duration::from_secs(60);
const ID: &str = "0d0c0b0a-0000-4000-8000-000000000001";
const LEGACY_ID: &str = "d7d86208-b46c-4465-9018-fe14087d415f";

/// One line of the trace: the thread, the call's name and the rest.
#[derive(Debug)]
struct Call<'a> {
    pid: &'a str,
    name: &'a str,
    /// Arguments (for an unfinished call, what strace printed of them).
    args: &'a str,
    unfinished: bool,
    /// `<... name resumed>`: the end of an unfinished call.
    resumed: bool,
}

fn parse(line: &str) -> Option<Call<'_>> {
    // "PID HH:MM:SS.uuuuuu rest" (strace pads short pids with spaces)
    let (pid, r) = line.trim_start().split_once(char::is_whitespace)?;
    let (_time, rest) = r.trim_start().split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    if let Some(r) = rest.strip_prefix("<... ") {
        let name = r.split(' ').next()?;
        return Some(Call {
            pid,
            name,
            args: "",
            unfinished: false,
            resumed: true,
        });
    }
    let (name, args) = rest.split_once('(')?;
    Some(Call {
        pid,
        name,
        args,
        unfinished: rest.ends_with("<unfinished ...>"),
        resumed: false,
    })
}

/// The index of the line where call `i` is over (itself, or its
/// `resumed` line).
fn end_of(calls: &[Call<'_>], i: usize) -> usize {
    if !calls[i].unfinished {
        return i;
    }
    (i + 1..calls.len())
        .find(|&j| {
            calls[j].resumed && calls[j].pid == calls[i].pid && calls[j].name == calls[i].name
        })
        .unwrap_or(usize::MAX)
}

/// Checks, for every append to the state log at `log`, that an
/// `fdatasync` of the log is over before the launcher's next write to the
/// SSNTP socket; returns how many appends there were.
fn check_order(trace: &str, log: &Path, port: u16) -> usize {
    let calls: Vec<Call<'_>> = trace.lines().filter_map(parse).collect();
    // "<path>": a descriptor of exactly that file (-yy).
    let log_fd = format!("<{}>", log.display());
    let socket = |c: &Call<'_>| {
        matches!(c.name, "write" | "writev" | "sendto" | "sendmsg")
            && c.args.contains("<TCP")
            && c.args.contains(&format!(":{port}]"))
    };
    let mut appends = 0;
    for (w, c) in calls.iter().enumerate() {
        if !(matches!(c.name, "write" | "writev") && c.args.contains(&log_fd)) {
            continue;
        }
        appends += 1;
        let written = end_of(&calls, w);
        let synced = (w + 1..calls.len())
            .find(|&i| calls[i].name == "fdatasync" && calls[i].args.contains(&log_fd))
            .map(|i| end_of(&calls, i))
            .unwrap_or_else(|| panic!("no fdatasync of the log after append {appends}"));
        let first_report = (written + 1..calls.len())
            .find(|&i| socket(&calls[i]))
            .unwrap_or_else(|| panic!("no write to the SSNTP socket after append {appends}"));
        assert!(
            synced < first_report,
            "append {appends}: the log is synced (line {synced}) before the next frame is \
             written (line {first_report})"
        );
    }
    appends
}

#[test]
fn the_state_log_is_synced_before_the_report() {
    let test = "the_state_log_is_synced_before_the_report";
    if which("strace").is_none() {
        skip_or_fail(test, "strace is not installed");
        return;
    }
    // Tracing may be forbidden (a container without CAP_SYS_PTRACE).
    let probe = std::process::Command::new("strace")
        .args(["-f", "-o", "/dev/null", "true"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        skip_or_fail(test, &format!("strace cannot trace here: {probe:?}"));
        return;
    }
    let tmp = TempDir::new("durability");
    let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
    let ca = tls::load_ca(&certs.ca_pem_path).unwrap();
    let id = tls::load_identity(&certs.server_pem_path).unwrap();
    let server = TestServer::start(tls::server_config(&ca, &id).unwrap(), Options::default());
    let data = tmp.path().join("data");
    let trace = tmp.path().join("strace.out");
    let mut args: Vec<String> = [
        "-f",
        "-tt",
        "-yy",
        "-e",
        "trace=fdatasync,fsync,sync,syncfs,rename,renameat,renameat2,write,writev,sendto,sendmsg",
        "-o",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(trace.display().to_string());
    args.push(LAUNCHER.to_string());
    args.extend(certs.launcher_args(&data, server.addr));
    args.extend(
        ["-simulation", "--simulation-delay=0", "-network=false"]
            .iter()
            .map(|s| s.to_string()),
    );
    let mut strace = Proc::start("strace", &args, tmp.path(), "strace");
    let uuid = loop {
        match server.expect(LONG, "the launcher to connect") {
            ServerEvent::Connected { uuid, .. } => break uuid,
            _ => continue,
        }
    };
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/payloads/start_legacy.yaml");
    let start = std::fs::read_to_string(example)
        .unwrap()
        .replace(LEGACY_ID, ID);
    let state = |want: &'static str| {
        move |s: &Stat| {
            s.instances
                .iter()
                .any(|i| i.instance_uuid == ID && i.state == want)
        }
    };
    server.send(uuid, Command::Start, start.into_bytes());
    server.expect_stats(LONG, "the instance active", state("active"));
    // A quiet link: the next frame after the STOP's append is its report.
    std::thread::sleep(Duration::from_millis(300));
    server.send(uuid, Command::Stop, cmd("stop", ID));
    server.expect_stats(LONG, "the instance exited", state("exited"));

    // End the launcher (not strace, which would leave it running).
    let children = format!("/proc/{0}/task/{0}/children", strace.pid());
    let launcher: i32 = std::fs::read_to_string(children)
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("the launcher under strace");
    // SAFETY: kill(2) on the launcher this test started (strace's child).
    unsafe {
        libc::kill(launcher, libc::SIGTERM);
    }
    wait_for(LONG, "strace to end", || {
        strace.child.try_wait().ok().flatten()
    });

    let text = std::fs::read_to_string(&trace).unwrap();
    let log = data.join("instances").join("state.log");
    let n = check_order(&text, &log, server.addr.port());
    let foreign = foreign_syncs(&text, &data);
    assert!(
        foreign.is_empty(),
        "the launcher syncs what is not its own, so a busy neighbour would slow it: {foreign:?}"
    );
    let relevant: Vec<&str> = text
        .lines()
        .filter(|l| {
            ["sync", "rename", "TCP", "resumed"]
                .iter()
                .any(|k| l.contains(k))
        })
        .collect();
    assert!(
        n >= 2,
        "the START's and the STOP's appends were traced ({n})\n{}",
        relevant.join("\n")
    );
}

/// Every `sync`/`syncfs` of the trace, and every `fsync`/`fdatasync` of a
/// descriptor outside `data` (the data root): each would make the
/// launcher wait for other processes' dirty pages (a VM's disk image on
/// the same file system), which `examples/bench-durable` measures.
fn foreign_syncs<'a>(trace: &'a str, data: &Path) -> Vec<&'a str> {
    let (root, inside) = (
        format!("<{}>", data.display()),
        format!("<{}/", data.display()),
    );
    trace
        .lines()
        .filter(|l| {
            parse(l).is_some_and(|c| match c.name {
                _ if c.resumed => false,
                "sync" | "syncfs" => true,
                "fsync" | "fdatasync" => !c.args.contains(&root) && !c.args.contains(&inside),
                _ => false,
            })
        })
        .collect()
}

/// strace pads pids shorter than five digits: "6451  00:21:42.7 …".
#[test]
fn trace_lines_with_padded_pids_parse() {
    let c = parse(
        "6451  00:21:42.744338 rename(\"/a/.instance.yaml.tmp-1\", \"/a/instance.yaml\") = 0",
    )
    .unwrap();
    assert_eq!((c.pid, c.name), ("6451", "rename"));
    let c = parse("123456 00:21:42.744338 fsync(11</a>) = 0").unwrap();
    assert_eq!((c.pid, c.name), ("123456", "fsync"));
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The checker itself, on a hand-written trace: the right order passes,
/// a report written before the log's fdatasync is over is caught.
#[test]
fn the_checker_catches_a_report_before_the_sync() {
    let good = r#"10 00:00:00.000001 write(9</d/instances/state.log>, "x", 1) = 1
11 00:00:00.000002 fdatasync(9</d/instances/state.log> <unfinished ...>
10 00:00:00.000003 write(4<anon_inode:[eventfd]>, "\1", 8) = 8
10 00:00:00.000004 write(7</d/instances/.state.log.tmp>, "x", 1) = 1
11 00:00:00.000005 <... fdatasync resumed>) = 0
10 00:00:00.000006 sendto(3<TCP:[127.0.0.1:5->127.0.0.1:8888]>, "\27", 1, MSG_NOSIGNAL, NULL, 0) = 1
"#;
    let log = Path::new("/d/instances/state.log");
    assert_eq!(check_order(good, log, 8888), 1);
    let bad = good.replace(
        "10 00:00:00.000003 write(4<anon_inode:[eventfd]>",
        "10 00:00:00.000003 sendto(3<TCP:[127.0.0.1:5->127.0.0.1:8888]>",
    );
    let caught = std::panic::catch_unwind(|| check_order(&bad, log, 8888));
    assert!(caught.is_err(), "a frame before the sync must fail");
    let data = Path::new("/d");
    assert!(foreign_syncs(good, data).is_empty());
    let syncs = "12 00:00:00.000001 syncfs(5</d/instances>) = 0\n\
                 12 00:00:00.000002 fsync(6</var/lib/vm.img>) = 0\n\
                 12 00:00:00.000003 fsync(7</d/instances>) = 0\n";
    assert_eq!(
        foreign_syncs(syncs, data).len(),
        2,
        "syncfs and a foreign fsync"
    );
}
