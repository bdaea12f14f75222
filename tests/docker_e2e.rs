//! End to end with a real dockerd: the launcher (no simulation) runs real
//! containers over the Engine API. Each test runs its own private dockerd
//! (tests/support/src/docker.rs); they run one at a time.

use std::time::{Duration, Instant};

use ciao::http::parse_json;
use ciao::ssntp::frame::{Command, ErrorCode};
use ciao_test_support::cmd;
use ciao_test_support::docker::node::{container_payload, example, Node, EXAMPLE_ID};
use ciao_test_support::docker::Dockerd;
use serde::Deserialize;

const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");

#[derive(Deserialize)]
struct Inspected {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Config")]
    config: Config,
    #[serde(rename = "HostConfig")]
    host: HostConfig,
    #[serde(rename = "State")]
    state: State,
}

#[derive(Deserialize)]
struct Config {
    #[serde(rename = "Hostname")]
    hostname: String,
    #[serde(rename = "Labels")]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(rename = "Cmd")]
    cmd: Vec<String>,
}

#[derive(Deserialize)]
struct HostConfig {
    #[serde(rename = "Memory")]
    memory: i64,
    #[serde(rename = "CpuQuota")]
    cpu_quota: i64,
    #[serde(rename = "CpuPeriod")]
    cpu_period: i64,
}

#[derive(Deserialize)]
struct State {
    #[serde(rename = "Running")]
    running: bool,
    #[serde(rename = "ExitCode")]
    exit_code: i64,
}

fn inspect(d: &Dockerd, name: &str) -> Option<Inspected> {
    d.inspect(name).map(|t| parse_json(t.as_bytes()).unwrap())
}

/// A command that exits at once on SIGTERM (PID 1 needs a handler).
const TERM_AWARE: &str = "trap 'exit 0' TERM; while true; do sleep 1 & wait $!; done";

#[test]
fn container_start_stats_stop_restart_delete() {
    let Some(d) = Dockerd::require("container_start_stats_stop_restart_delete") else {
        return;
    };
    let n = Node::new(
        LAUNCHER,
        "dk-cycle",
        &d,
        &["--stop-timeout=3", "--stats-interval=1"],
    );
    let id = EXAMPLE_ID;

    // START of the example as it is.
    let t0 = Instant::now();
    n.send(Command::Start, example("start_container.yaml").into_bytes());
    n.state(id, "active");
    eprintln!("START to active: {:?}", t0.elapsed());
    let c = inspect(&d, id).expect("the container exists");
    assert_eq!(c.name, format!("/{id}"));
    assert!(c.state.running);
    assert_eq!(
        c.config
            .labels
            .get("ciao.instance-uuid")
            .map(String::as_str),
        Some(id)
    );
    assert_eq!(c.config.hostname, "ciao", "host name from the meta-data");
    assert_eq!(
        c.config.cmd,
        ["/bin/bash", "-c", "while true; do sleep 60; done"]
    );
    assert_eq!(c.host.memory, 16 << 20, "mem_mb 16");
    assert_eq!(
        (c.host.cpu_period, c.host.cpu_quota),
        (100_000, 100_000),
        "1 vcpu"
    );
    let recorded = std::fs::read_to_string(n.instance_dir(id).join("docker-id")).unwrap();
    assert_eq!(recorded.trim(), c.id);

    // Memory and CPU in STATS (CPU needs two samples).
    let s = n.stats_until("memory and CPU of the container", |s| {
        s.instances.iter().any(|i| {
            i.instance_uuid == id
                && i.memory_usage_mb >= 0
                && i.cpu_usage >= 0
                && i.disk_usage_mb >= 0
        })
    });
    let i = s.instances.iter().find(|i| i.instance_uuid == id).unwrap();
    eprintln!(
        "stats: memory {} MB, cpu {} %, disk {} MB",
        i.memory_usage_mb, i.cpu_usage, i.disk_usage_mb
    );
    assert!(i.memory_usage_mb <= 16);
    let via = if n.log().contains("sampling through /sys/fs/cgroup") {
        "cgroup files"
    } else {
        "dockerd's stats call"
    };
    eprintln!("statistics sampled through {via}");

    // STOP: the example's shell is PID 1 and ignores SIGTERM, so it is
    // killed when the 3 s timeout passes.
    let t = Instant::now();
    n.send(Command::Stop, cmd("stop", id));
    n.state(id, "exited");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(10),
        "{took:?}"
    );
    let c = inspect(&d, id).unwrap();
    assert!(!c.state.running);
    assert_eq!(c.state.exit_code, 137, "killed");
    assert!(
        n.log().contains("ignored SIGTERM for 3 s"),
        "the log says how it ended"
    );

    // RESTART: the same container runs again.
    n.send(Command::Restart, cmd("restart", id));
    n.state(id, "active");
    let again = inspect(&d, id).unwrap();
    assert!(again.state.running);
    assert_eq!(again.id, c.id);

    // DELETE of the running container: removed, InstanceDeleted.
    n.delete(id);
    assert!(inspect(&d, id).is_none(), "container removed");
    assert!(d.containers().is_empty());

    // A container that honours SIGTERM stops without waiting for the timeout.
    let b = "bbbb0001-0000-4000-8000-000000000001";
    n.send(
        Command::Start,
        container_payload(b, "ubuntu:latest", TERM_AWARE),
    );
    n.state(b, "active");
    let t = Instant::now();
    n.send(Command::Stop, cmd("stop", b));
    n.state(b, "exited");
    assert!(
        t.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(inspect(&d, b).unwrap().state.exit_code, 0);
    assert!(n.log().contains("stopped by SIGTERM"));
    n.delete(b);

    // A missing image that cannot be pulled (a registry on a loopback port
    // where nothing listens): image_failure, the reason in the log, nothing left.
    let m = "cccc0001-0000-4000-8000-000000000001";
    n.send(
        Command::Start,
        container_payload(m, "127.0.0.1:1/missing:latest", "true"),
    );
    n.expect_error(
        ErrorCode::StartFailure,
        m,
        "image_failure",
        "START of a missing image",
    );
    let log = n.log();
    assert!(
        log.contains("127.0.0.1:1/missing:latest is not present and cannot be pulled"),
        "{log}"
    );
    assert!(!n.instance_dir(m).exists());
    assert!(d.containers().is_empty());

    // A command that does not exist: launch_failure, kept as exited, deletable.
    let f = "cccc0002-0000-4000-8000-000000000002";
    let payload = String::from_utf8(container_payload(f, "ubuntu:latest", "x"))
        .unwrap()
        .replace("[ /bin/bash, -c, \"x\" ]", "[ /no/such/program ]");
    n.send(Command::Start, payload.into_bytes());
    n.expect_error(
        ErrorCode::StartFailure,
        f,
        "launch_failure",
        "START of a missing program",
    );
    n.state(f, "exited");
    n.delete(f);
    assert!(d.containers().is_empty());
}

#[test]
fn container_exits_by_itself() {
    let Some(d) = Dockerd::require("container_exits_by_itself") else {
        return;
    };
    let n = Node::new(LAUNCHER, "dk-exit", &d, &["--stats-interval=30"]);
    let id = "dddd0001-0000-4000-8000-000000000001";
    n.send(
        Command::Start,
        container_payload(id, "ubuntu:latest", "sleep 2; exit 3"),
    );
    n.state(id, "active");
    n.state(id, "exited");
    assert!(n.log().contains("container exited with status 3"));
    // STOP of an exited instance is refused; RESTART runs it again.
    n.send(Command::Stop, cmd("stop", id));
    n.expect_error(ErrorCode::StopFailure, id, "already_stopped", "STOP exited");
    n.send(Command::Restart, cmd("restart", id));
    n.state(id, "active");
    n.delete(id);
    assert!(d.containers().is_empty());
}

/// The private dockerd runs in a network namespace of its own, so it cannot
/// touch the host's networks: a dockerd sharing the host's namespace
/// deleted the host's `docker0` bridge. A fresh CI machine has no docker0
/// to lose, so the namespace itself is compared; where the host has a
/// docker0, it must still be there after the daemon has run and stopped.
#[test]
fn private_dockerd_has_its_own_network_namespace() {
    let docker0 = std::path::Path::new("/sys/class/net/docker0");
    let had_docker0 = docker0.exists();
    let Some(mut d) = Dockerd::require("private_dockerd_has_its_own_network_namespace") else {
        return;
    };
    let pid = d.pid().expect("the daemon runs");
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_ne!(
        theirs, ours,
        "the private dockerd shares the test's network namespace"
    );
    // The socket, a file, is reachable from here all the same.
    assert_eq!(d.api("GET", "/_ping", b"").unwrap().status, 200);
    d.stop();
    drop(d);
    if had_docker0 {
        assert!(docker0.exists(), "the host's docker0 bridge was removed");
    }
}
