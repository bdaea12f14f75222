//! End to end with a real dockerd: re-adoption after `kill -9` of the
//! launcher, containers removed behind its back, and dockerd going away
//! and coming back.

use std::time::Duration;

use ciao::ssntp::frame::{Command, ErrorCode};
use ciao_test_support::cmd;
use ciao_test_support::docker::node::{container_payload, Node};
use ciao_test_support::docker::Dockerd;
use ciao_test_support::proc::wait_for;

const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");

const A: &str = "eeee0001-0000-4000-8000-000000000001";
const B: &str = "eeee0002-0000-4000-8000-000000000002";
const C: &str = "eeee0003-0000-4000-8000-000000000003";
const SLEEPER: &str = "while true; do sleep 60; done";

fn container_id(n: &Node, id: &str) -> String {
    std::fs::read_to_string(n.instance_dir(id).join("docker-id"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn kill_9_readopts_and_removal_behind_the_back() {
    let Some(d) = Dockerd::require("kill_9_readopts_and_removal_behind_the_back") else {
        return;
    };
    let mut n = Node::new(
        LAUNCHER,
        "dk-recover",
        &d,
        &["--stats-interval=1", "--stop-timeout=2"],
    );
    for id in [A, B] {
        n.send(
            Command::Start,
            container_payload(id, "ubuntu:latest", SLEEPER),
        );
    }
    n.state(A, "active");
    n.state(B, "active");
    let (ida, idb) = (container_id(&n, A), container_id(&n, B));

    // kill -9, then a restart: both re-adopted, not re-created.
    n.kill9();
    n.start_launcher();
    n.stats_until("both re-adopted", |s| {
        [A, B].iter().all(|id| {
            s.instances
                .iter()
                .any(|i| i.instance_uuid == *id && i.state == "active")
        })
    });
    let mut ids = d.containers();
    ids.sort();
    let mut want = vec![ida.clone(), idb.clone()];
    want.sort();
    assert_eq!(ids, want, "the same two containers");
    assert!(n.log().contains("re-adopted"));
    // Statistics of adopted containers.
    n.stats_until("memory of adopted containers", |s| {
        s.instances
            .iter()
            .filter(|i| i.memory_usage_mb >= 0)
            .count()
            == 2
    });
    // Commands work on them: STOP.
    n.send(Command::Stop, cmd("stop", A));
    n.state(A, "exited");

    // docker rm -f behind the launcher's back: reported exited, deletable.
    d.remove(&idb);
    n.state(B, "exited");
    n.send(Command::Restart, cmd("restart", B));
    n.expect_error(
        ErrorCode::RestartFailure,
        B,
        "launch_failure",
        "RESTART of a removed container",
    );
    n.delete(B);

    // Removed while the launcher is down: exited at recovery, deletable.
    n.kill9();
    d.remove(&ida);
    n.start_launcher();
    n.state(A, "exited");
    assert!(n.log().contains("no longer exists"));
    n.delete(A);
    assert!(d.containers().is_empty());
}

#[test]
fn dockerd_stops_and_comes_back() {
    let Some(mut d) = Dockerd::require("dockerd_stops_and_comes_back") else {
        return;
    };
    let n = Node::new(
        LAUNCHER,
        "dk-daemon",
        &d,
        &["--stats-interval=1", "--stop-timeout=2"],
    );
    n.send(
        Command::Start,
        container_payload(A, "ubuntu:latest", SLEEPER),
    );
    n.state(A, "active");
    n.send(
        Command::Start,
        container_payload(C, "ubuntu:latest", SLEEPER),
    );
    n.state(C, "active");
    let idc = container_id(&n, C);

    // dockerd stops: its containers die with it (no live-restore).
    d.stop();
    n.state(A, "exited");
    n.state(C, "exited");
    // Commands fail with a clear error while it is down, and nothing hangs.
    n.send(
        Command::Start,
        container_payload(B, "ubuntu:latest", SLEEPER),
    );
    n.expect_error(
        ErrorCode::StartFailure,
        B,
        "image_failure",
        "START while dockerd is down",
    );
    n.send(Command::Restart, cmd("restart", A));
    n.expect_error(
        ErrorCode::RestartFailure,
        A,
        "launch_failure",
        "RESTART while dockerd is down",
    );
    let log = n.log();
    assert!(log.contains("dockerd is unreachable at"), "{log}");
    assert!(log.contains("cannot reach dockerd"), "{log}");
    // DELETE while down: retried for a few seconds, then the instance goes
    // and its container is left for the sweep after the daemon is back.
    n.delete(C);
    assert!(n.log().contains("giving up"));

    // Back: normal service.
    d.start().unwrap();
    n.send(Command::Restart, cmd("restart", A));
    n.state(A, "active");
    n.send(
        Command::Start,
        container_payload(B, "ubuntu:latest", SLEEPER),
    );
    n.state(B, "active");
    n.stats_until("statistics again", |s| {
        s.instances
            .iter()
            .filter(|i| i.state == "active" && i.memory_usage_mb >= 0)
            .count()
            == 2
    });
    wait_for(
        Duration::from_secs(30),
        "the left-over container swept",
        || (!d.containers().contains(&idc)).then_some(()),
    );
    assert!(n.log().contains("was left behind; removing it"));
    n.delete(A);
    n.delete(B);
    assert!(d.containers().is_empty());
    // And the instance directories are gone.
    std::thread::sleep(Duration::from_millis(100));
    assert!(!n.instance_dir(A).exists() && !n.instance_dir(B).exists());
}
