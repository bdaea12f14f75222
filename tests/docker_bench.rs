//! `make bench` figures for docker containers (run by bench/docker.sh with
//! `--ignored`; never part of the pass/fail suite):
//!
//! * START-to-active of the launcher against `docker create` + `docker
//!   start` (the CLI) of the same image, in the same run, as a ratio;
//! * one statistics tick with 20 running containers: what it costs the
//!   launcher and the daemon, against `docker stats --no-stream`;
//! * one sample of one container: the cgroup files the launcher reads,
//!   against dockerd's one-shot stats and the original's `stream=false`.

use std::process::Command;
use std::time::{Duration, Instant};

use ciao::ssntp::frame::{self, Op};
use ciao_test_support::docker::node::{container_payload, Node};
use ciao_test_support::docker::Dockerd;

const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");

const ROUNDS: usize = 7;
const SLEEPER: &str = "while true; do sleep 60; done";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn docker_cli(d: &Dockerd, args: &[&str]) -> String {
    let out = Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", d.socket.display()))
        .args(args)
        .output()
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// utime + stime of a process and its reaped children, in ms.
fn cpu_ms(pid: u32) -> f64 {
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(rest) = s.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14-17 of stat are at 11..15 after the state field.
    let ticks = f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0);
    ticks as f64 * 10.0
}

fn pids_of(name: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == name {
            out.push(pid);
        }
    }
    out
}

#[test]
#[ignore = "benchmark: run by bench/docker.sh"]
fn bench_docker() {
    let Some(d) = Dockerd::require("bench_docker") else {
        return;
    };
    // Few periodic reports while START is timed (a STATUS of the periodic
    // tick must not be taken for the one after the launch).
    let mut n = Node::new(
        LAUNCHER,
        "dk-bench",
        &d,
        &["--stats-interval=600", "--stop-timeout=1"],
    );

    // Warm up both paths once (image layers, page cache).
    let w = "ffff0000-0000-4000-8000-000000000000";
    n.send(
        frame::Command::Start,
        container_payload(w, "ubuntu:latest", SLEEPER),
    );
    n.state(w, "active");
    n.delete(w);
    let c = docker_cli(&d, &["create", "ubuntu:latest", "/bin/sh", "-c", SLEEPER]);
    docker_cli(&d, &["start", &c]);
    docker_cli(&d, &["rm", "-f", &c]);

    let mut launcher_active = Vec::new();
    let mut launcher_launched = Vec::new();
    let mut cli = Vec::new();
    for r in 0..ROUNDS {
        let id = format!("ffff{r:04x}-0000-4000-8000-000000000001");
        while n.server.events.try_recv().is_ok() {}
        let t = Instant::now();
        n.send(
            frame::Command::Start,
            container_payload(&id, "ubuntu:latest", SLEEPER),
        );
        n.server
            .expect_frame(Duration::from_secs(60), "STATUS after launch", |f| {
                matches!(f.op, Op::Status(_))
            });
        launcher_launched.push(t.elapsed());
        n.state(&id, "active");
        launcher_active.push(t.elapsed());
        n.delete(&id);

        let t = Instant::now();
        let c = docker_cli(
            &d,
            &[
                "create",
                "--name",
                &format!("cli{r}"),
                "ubuntu:latest",
                "/bin/bash",
                "-c",
                SLEEPER,
            ],
        );
        docker_cli(&d, &["start", &c]);
        cli.push(t.elapsed());
        docker_cli(&d, &["rm", "-f", &c]);
    }
    let (la, ll, cl) = (
        median(launcher_active),
        median(launcher_launched),
        median(cli),
    );
    println!(
        "docker START-to-active (STATS, includes the <=100 ms STATS coalescing): {:.0} ms; docker create + docker start (CLI): {:.0} ms; ratio {:.2}",
        ms(la),
        ms(cl),
        la.as_secs_f64() / cl.as_secs_f64()
    );
    println!(
        "docker START-to-launched (STATUS): {:.0} ms; ratio to the CLI {:.2}",
        ms(ll),
        ll.as_secs_f64() / cl.as_secs_f64()
    );

    // 20 running containers, sampled every 2 s.
    n.kill9();
    for a in n.args.iter_mut() {
        if a.starts_with("--stats-interval") {
            *a = "--stats-interval=2".into();
        }
    }
    n.start_launcher();
    let ids: Vec<String> = (0..20)
        .map(|i| format!("aaaa{i:04x}-0000-4000-8000-000000000002"))
        .collect();
    for id in &ids {
        n.send(
            frame::Command::Start,
            container_payload(id, "ubuntu:latest", SLEEPER),
        );
    }
    n.stats_until("20 active with statistics", |s| {
        s.instances
            .iter()
            .filter(|i| i.state == "active" && i.cpu_usage >= 0)
            .count()
            == 20
    });
    let launcher = n.launcher.as_ref().unwrap().pid() as u32;
    let daemons: Vec<u32> = ["dockerd", "containerd"]
        .iter()
        .flat_map(|p| pids_of(p))
        .collect();
    let daemon_cpu = |pids: &[u32]| pids.iter().map(|p| cpu_ms(*p)).sum::<f64>();
    let (l0, d0, t0) = (cpu_ms(launcher), daemon_cpu(&daemons), Instant::now());
    let ticks = 5;
    for _ in 0..ticks {
        n.stats_until("a STATS", |_| true);
    }
    let secs = t0.elapsed().as_secs_f64();
    let per_tick = secs / 2.0;
    let (l1, d1) = (cpu_ms(launcher), daemon_cpu(&daemons));
    println!(
        "docker stats tick, 20 containers: launcher CPU {:.1} ms per tick, dockerd+containerd CPU {:.0} ms per tick (over {:.1} s; /proc granularity 10 ms)",
        (l1 - l0) / per_tick,
        (d1 - d0) / per_tick,
        secs
    );
    let t = Instant::now();
    docker_cli(&d, &["stats", "--no-stream", "--format", "{{.Name}}"]);
    let cli_stats = t.elapsed();
    println!(
        "docker stats --no-stream (CLI) for the same 20 containers: {:.0} ms wall",
        ms(cli_stats)
    );

    // One container: the cgroup files the launcher reads, against dockerd's
    // one-shot stats and the original's stream=false.
    let cid = std::fs::read_to_string(n.instance_dir(&ids[0]).join("docker-id")).unwrap();
    let cid = cid.trim();
    let time = |path: &str| {
        let t = Instant::now();
        let r = d.api("GET", path, b"").unwrap();
        assert_eq!(r.status, 200);
        t.elapsed()
    };
    let one = median(
        (0..3)
            .map(|_| {
                time(&format!(
                    "/containers/{cid}/stats?stream=false&one-shot=true"
                ))
            })
            .collect(),
    );
    let slow = time(&format!("/containers/{cid}/stats?stream=false"));
    let inspect = d.inspect(cid).unwrap();
    let pid: u32 = inspect
        .split("\"Pid\":")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(0);
    let files = ciao::docker::cgroup::locate(pid);
    let t = Instant::now();
    let reads = 1000;
    for _ in 0..reads {
        let _ = files.as_ref().and_then(|f| f.read());
    }
    let cg = t.elapsed() / reads;
    match files {
        Some(_) => println!(
            "docker one container sample: cgroup files {:.3} ms, one-shot stats {:.0} ms, stream=false (the original's) {:.0} ms; ratio cgroup/one-shot {:.1e}",
            ms(cg),
            ms(one),
            ms(slow),
            cg.as_secs_f64() / one.as_secs_f64()
        ),
        None => println!(
            "docker one container sample: no readable cgroup files here; one-shot stats {:.0} ms, stream=false {:.0} ms",
            ms(one),
            ms(slow)
        ),
    }
    for id in &ids {
        n.delete(id);
    }
}
