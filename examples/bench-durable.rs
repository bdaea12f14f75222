//! `make bench`, durability part: how much a busy neighbour on the same
//! file system slows the launcher's state changes.
//!
//! The real `ciao-launcher -simulation` runs one instance; the bench
//! alternates STOP and RESTART and times each from the command frame to
//! the STATS that reports the new state (which includes making the state
//! file durable, plus the 100 ms the launcher waits to coalesce STATS).
//! It does that on a quiet file system, then while a neighbour thread
//! keeps dirtying a 1 GiB file in the same directory tree (1 MiB writes,
//! over and over, never synced), and reports the medians and their ratio
//! (never asserted). A launcher that flushes the whole file system for
//! each state change waits for the neighbour's data; one that syncs only
//! its own files should not.
//!
//! Usage: bench-durable [PATH-TO-ciao-launcher] [ROUNDS]

// Stopping the launcher calls libc directly rather than widening `ciao::sys`.
#![allow(unsafe_code)]

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ciao::payloads::Stat;
use ciao::ssntp::frame;
use ciao::ssntp::server::ServerEvent;
use ciao::ssntp::tls;
use ciao::ssntp::uuid::Uuid;
use ciao_test_support::certgen;
use ciao_test_support::cmd;
use ciao_test_support::ssntp_server::{Options, TestServer};

const ID: &str = "0d0c0b0a-0000-4000-8000-0000000000be";
const LEGACY_ID: &str = "d7d86208-b46c-4465-9018-fe14087d415f";
const BIG: u64 = 1 << 30;
const CHUNK: usize = 1 << 20;
const WAIT: Duration = Duration::from_secs(120);

/// Times `rounds` STOP/RESTART pairs; every latency in milliseconds.
fn cycle(server: &TestServer, uuid: Uuid, rounds: usize) -> Vec<f64> {
    let mut times = Vec::with_capacity(2 * rounds);
    for _ in 0..rounds {
        for (op, kind, want) in [
            (frame::Command::Stop, "stop", "exited"),
            (frame::Command::Restart, "restart", "active"),
        ] {
            let t = Instant::now();
            server.send(uuid, op, cmd(kind, ID));
            server.expect_stats(WAIT, want, |s: &Stat| {
                s.instances
                    .iter()
                    .any(|i| i.instance_uuid == ID && i.state == want)
            });
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn p90(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() * 9 / 10).copied().unwrap_or(0.0)
}

/// Dirties `path` (1 GiB, 1 MiB at a time, never synced) until `stop`.
fn neighbour(path: &Path, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .expect("the neighbour's file");
        let chunk = vec![0x5au8; CHUNK];
        let mut written = 0u64;
        while !stop.load(Ordering::Relaxed) {
            if written % BIG == 0 && f.seek(SeekFrom::Start(0)).is_err() {
                break;
            }
            if f.write_all(&chunk).is_err() {
                break;
            }
            written += CHUNK as u64;
        }
        written
    })
}

fn main() {
    let launcher = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/release/ciao-launcher".to_string());
    let rounds: usize = std::env::args()
        .nth(2)
        .and_then(|r| r.parse().ok())
        .unwrap_or(10);
    let tmp = std::env::temp_dir().join(format!("ciao-bench-durable-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let certs = certgen::make_ciao_certs(&tmp, certgen::KeyKind::Rsa);
    let ca = tls::load_ca(&certs.ca_pem_path).unwrap();
    let id = tls::load_identity(&certs.server_pem_path).unwrap();
    let server = TestServer::start(tls::server_config(&ca, &id).unwrap(), Options::default());
    let data = tmp.join("data");
    let mut args = certs.launcher_args(&data, server.addr);
    args.extend([
        "-simulation".into(),
        "--simulation-delay=0".into(),
        "-network=false".into(),
        format!("-log_dir={}", tmp.join("logs").display()),
    ]);
    let mut child = Command::new(&launcher)
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .expect("start ciao-launcher");
    let pid = child.id();
    let uuid = loop {
        match server.expect(WAIT, "the launcher to connect") {
            ServerEvent::Connected { uuid, .. } => break uuid,
            _ => continue,
        }
    };
    let start = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/payloads/start_legacy.yaml"),
    )
    .unwrap()
    .replace(LEGACY_ID, ID);
    server.send(uuid, frame::Command::Start, start.into_bytes());
    server.expect_stats(WAIT, "active", |s: &Stat| {
        s.instances
            .iter()
            .any(|i| i.instance_uuid == ID && i.state == "active")
    });

    let mut quiet = cycle(&server, uuid, rounds);
    let stop = Arc::new(AtomicBool::new(false));
    let big = data.join("neighbour.img");
    let writer = neighbour(&big, stop.clone());
    // Let it build up dirty pages first.
    std::thread::sleep(Duration::from_secs(3));
    let mut busy = cycle(&server, uuid, rounds);
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap_or(0);

    // SAFETY: kill(2) on the launcher we spawned.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let _ = child.wait();
    server.stop();
    let _ = std::fs::remove_dir_all(&tmp);

    let (qm, bm) = (median(&mut quiet), median(&mut busy));
    println!(
        "state change -> STATS (incl. 100 ms coalescing), {} changes each, neighbour wrote {} MiB",
        quiet.len(),
        written >> 20
    );
    println!(
        "{:<44} {qm:>10.1} ms   p90 {:>8.1} ms",
        "quiet file system, median",
        p90(&mut quiet)
    );
    println!(
        "{:<44} {bm:>10.1} ms   p90 {:>8.1} ms",
        "busy neighbour (1 GiB dirty), median",
        p90(&mut busy)
    );
    println!(
        "{:<44} {:>10.2}",
        "ratio busy / quiet (medians)",
        bm / qm.max(0.001)
    );
}
