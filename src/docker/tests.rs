//! The driver's step machine against the scripted daemon of `fake.rs`.

use std::time::Duration;

use super::driver::ID_FILE;
use super::fake::Bench;
use crate::driver::{DockerNetwork, Driver, Outcome, Usage, Vnic};
use crate::payloads::StartFailureReason;

const UD: &[u8] =
    b"#cloud-config\nruncmd:\n  - [ /bin/bash, -c, \"while true; do sleep 60; done\" ]\n";
const MD: &[u8] = b"{\n  \"uuid\": \"67d86208\",\n  \"hostname\": \"ciao\"\n}\n";
const ID: &str = "67d86208-b46c-4465-9018-e14087d415f";

fn started(tag: &str) -> Bench {
    let mut b = Bench::new(tag, Duration::from_secs(5));
    b.start(UD, MD);
    assert_eq!(b.take(), vec![Outcome::Launched, Outcome::Running]);
    b
}

fn failed(b: &mut Bench) -> (StartFailureReason, String) {
    match b.take().as_slice() {
        [Outcome::StartFailed { reason, detail }] => (*reason, detail.clone()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn start_negotiates_creates_and_watches() {
    let b = started("start");
    let d = &b.daemon;
    // Version first, unprefixed; then everything under /v1.41.
    assert_eq!(d.log[0].1, "/version");
    assert!(
        d.log[1..].iter().all(|(_, p, _)| p.starts_with("/v1.41/")),
        "{:?}",
        d.log
    );
    let c = d.container(ID).expect("container named after the instance");
    assert!(c.running);
    assert_eq!(
        c.labels.get("ciao.instance-uuid").map(String::as_str),
        Some(ID)
    );
    assert_eq!(
        c.body,
        format!(
            r#"{{"Hostname":"ciao","Image":"ubuntu:latest","Cmd":["/bin/bash","-c","while true; do sleep 60; done"],"StopTimeout":5,"Labels":{{"ciao.instance-uuid":"67d86208-b46c-4465-9018-e14087d415f","ciao.instances-dir":"{}"}},"HostConfig":{{"Binds":[],"Memory":16777216,"CpuPeriod":100000,"CpuQuota":100000}}}}"#,
            b.base.display()
        )
    );
    let (recorded, mode) = b.file(&b.dir().join(ID_FILE)).expect("docker-id written");
    assert_eq!(String::from_utf8_lossy(recorded).trim(), c.id);
    assert_eq!(*mode, 0o600);
    assert_eq!(b.held(), 1, "the exit long poll is open");
    assert_eq!(d.count("GET", "/stats?stream=false&one-shot=true"), 1);
}

#[test]
fn statistics() {
    let mut b = started("stats");
    let u = b.usage();
    // One sample: memory and disk, CPU needs two.
    assert_eq!(
        u,
        Usage {
            memory_mb: 5,
            disk_mb: 1,
            cpu_percent: -1
        }
    );
    b.advance(Duration::from_secs(2));
    let u = b.usage();
    // 0.25 s of CPU in 2 s.
    assert_eq!(u.cpu_percent, 12);
    assert_eq!(b.daemon.count("GET", "/stats"), 2);
    // Exited: memory and CPU unknown, disk kept.
    b.daemon.containers[0].running = false;
    b.settle_waits();
    assert_eq!(b.take(), vec![Outcome::Exited]);
    let u = b.usage();
    assert_eq!((u.memory_mb, u.cpu_percent, u.disk_mb), (-1, -1, 1));
    // No more sampling once it is down.
    b.advance(Duration::from_secs(10));
    assert_eq!(b.daemon.count("GET", "/stats"), 2);
}

#[test]
fn api_versions() {
    // A daemon that only speaks newer versions than ours is refused clearly.
    let mut b = Bench::new("newapi", Duration::from_secs(5));
    b.daemon.api = "1.60";
    b.daemon.min_api = "1.50";
    b.start(UD, MD);
    let (r, d) = failed(&mut b);
    assert_eq!(r, StartFailureReason::ImageFailure);
    assert!(d.contains("accepts Engine API 1.50 to 1.60"), "{d}");
    // A Docker 28 daemon: we use our maximum.
    let mut b = Bench::new("v28", Duration::from_secs(5));
    b.daemon.api = "1.50";
    b.daemon.min_api = "1.24";
    b.start(UD, MD);
    assert_eq!(b.take(), vec![Outcome::Launched, Outcome::Running]);
    assert!(b.daemon.log[1].1.starts_with("/v1.45/"));
    // An old daemon (1.22): no one-shot stats.
    let mut b = Bench::new("v122", Duration::from_secs(5));
    b.daemon.api = "1.22";
    b.start(UD, MD);
    assert_eq!(b.take(), vec![Outcome::Launched, Outcome::Running]);
    assert_eq!(
        b.daemon.count("GET", "/v1.22/containers/0000"),
        3,
        "inspect, stats, size"
    );
    assert_eq!(b.daemon.count("GET", "one-shot"), 0);
}

#[test]
fn image_missing_is_pulled_or_fails() {
    let mut b = Bench::new("pull", Duration::from_secs(5));
    b.cfg().docker_image = "busybox:1.36".into();
    b.start(UD, MD);
    assert_eq!(b.take(), vec![Outcome::Launched, Outcome::Running]);
    assert_eq!(
        b.daemon
            .count("POST", "/images/create?fromImage=busybox&tag=1.36"),
        1
    );

    let mut b = Bench::new("nopull", Duration::from_secs(5));
    b.cfg().docker_image = "127.0.0.1:1/missing:latest".into();
    b.start(UD, MD);
    let (r, d) = failed(&mut b);
    assert_eq!(r, StartFailureReason::ImageFailure);
    assert!(
        d.contains("cannot be pulled") && d.contains("connection refused"),
        "{d}"
    );
    assert!(b.daemon.containers.is_empty());

    // An error inside the progress stream.
    let mut b = Bench::new("badstream", Duration::from_secs(5));
    b.cfg().docker_image = "badstream".into();
    b.start(UD, MD);
    let (r, d) = failed(&mut b);
    assert_eq!(r, StartFailureReason::ImageFailure);
    assert!(d.contains("manifest unknown"), "{d}");

    // Never put in a path.
    let mut b = Bench::new("badref", Duration::from_secs(5));
    b.cfg().docker_image = "ubuntu?x=1".into();
    b.start(UD, MD);
    assert_eq!(failed(&mut b).0, StartFailureReason::ImageFailure);
    assert!(b.daemon.log.is_empty());
}

#[test]
fn launch_failure_and_leftover_name() {
    let mut b = Bench::new("launchfail", Duration::from_secs(5));
    b.daemon.start_error = Some("OCI runtime create failed: exec: \"/bin/bash\": not found".into());
    b.start(UD, MD);
    let (r, d) = failed(&mut b);
    assert_eq!(r, StartFailureReason::LaunchFailure);
    assert!(d.contains("/bin/bash"), "{d}");

    // A container left with our name and label by an earlier attempt is
    // replaced; one that is not ours is not touched.
    let mut b = Bench::new("leftover", Duration::from_secs(5));
    b.start(UD, MD);
    b.take();
    let old = b.daemon.containers[0].id.clone();
    b.restart_launcher();
    b.start(UD, MD);
    assert_eq!(b.take(), vec![Outcome::Launched, Outcome::Running]);
    assert_eq!(b.daemon.containers.len(), 1);
    assert_ne!(b.daemon.containers[0].id, old);

    b.daemon.containers[0].labels.clear();
    b.restart_launcher();
    b.start(UD, MD);
    let (r, d) = failed(&mut b);
    assert_eq!(r, StartFailureReason::ImageFailure);
    assert!(d.contains("not made by this launcher"), "{d}");
}

#[test]
fn stop_graceful_then_restart_then_delete() {
    let mut b = started("cycle");
    b.call(|d, cx| d.stop(cx, false));
    assert_eq!(b.take(), vec![Outcome::Exited]);
    assert_eq!(b.daemon.count("POST", "/stop?t=5"), 1);
    assert_eq!(b.held(), 0, "the long poll was closed");
    // RESTART starts the same container.
    let id = b.daemon.containers[0].id.clone();
    b.call(|d, cx| d.start(cx, true, &[], &[]));
    assert_eq!(b.take(), vec![Outcome::Launched, Outcome::Running]);
    assert_eq!(
        b.daemon.count("POST", &format!("/containers/{id}/start")),
        2
    );
    assert_eq!(b.held(), 1);
    // DELETE: urgent stop (kill), then removal.
    b.call(|d, cx| d.stop(cx, true));
    assert_eq!(b.take(), vec![Outcome::Exited]);
    assert_eq!(b.daemon.count("POST", "/kill?signal=KILL"), 1);
    b.call(|d, cx| d.destroy(cx));
    assert_eq!(b.take(), vec![Outcome::Destroyed]);
    assert_eq!(b.daemon.count("DELETE", "?force=1&v=1"), 1);
    assert!(b.daemon.containers.is_empty());
    assert_eq!(b.open(), 0, "no connection left open");
}

#[test]
fn stop_that_hangs_is_escalated() {
    let mut b = started("hang");
    b.daemon.hang = Some("/stop".into());
    b.call(|d, cx| d.stop(cx, false));
    assert!(b.take().is_empty());
    // DELETE escalates: kill, Exited at once.
    b.call(|d, cx| d.stop(cx, true));
    assert_eq!(b.take(), vec![Outcome::Exited]);
    b.call(|d, cx| d.destroy(cx));
    assert_eq!(b.take(), vec![Outcome::Destroyed]);

    // Without escalation, the stop's deadline (timeout + 30 s) ends it with
    // a kill.
    let mut b = started("hang2");
    b.daemon.hang = Some("/stop".into());
    b.call(|d, cx| d.stop(cx, false));
    b.advance(Duration::from_secs(34));
    assert!(b.take().is_empty());
    b.advance(Duration::from_secs(2));
    assert_eq!(b.take(), vec![Outcome::Exited]);
    assert_eq!(b.daemon.count("POST", "/kill"), 1);
}

#[test]
fn exit_and_removal_behind_our_back() {
    let mut b = started("exit");
    b.daemon.containers[0].running = false;
    b.daemon.containers[0].exit_code = 3;
    b.settle_waits();
    assert_eq!(b.take(), vec![Outcome::Exited]);
    // STOP of an exited container: at once.
    b.call(|d, cx| d.stop(cx, false));
    assert_eq!(b.take(), vec![Outcome::Exited]);

    let mut b = started("rmf");
    b.daemon.containers.clear();
    b.settle_waits();
    assert_eq!(b.take(), vec![Outcome::Exited]);
    b.call(|d, cx| d.start(cx, true, &[], &[]));
    let (r, d) = failed(&mut b);
    assert_eq!(r, StartFailureReason::LaunchFailure);
    assert!(d.contains("no longer exists"), "{d}");
    b.call(|d, cx| d.destroy(cx));
    assert_eq!(b.take(), vec![Outcome::Destroyed]);
}

#[test]
fn recovery() {
    let mut b = started("recover");
    let id = b.daemon.containers[0].id.clone();
    // A new driver (launcher restarted): by the recorded id.
    b.restart_launcher();
    let n = b.daemon.log.len();
    b.call(|d, cx| d.recover(cx, false));
    assert_eq!(b.take(), vec![Outcome::Running]);
    // /version, the sweep's list, then the inspect by id.
    assert!(
        b.daemon.log[n + 2]
            .1
            .ends_with(&format!("/containers/{id}/json")),
        "{:?}",
        &b.daemon.log[n..]
    );
    assert_eq!(b.daemon.count("POST", "/wait"), 2, "a new exit long poll");

    // Without docker-id: by label.
    assert!(b.files.remove(&b.dir().join(ID_FILE)).is_some());
    b.restart_launcher();
    b.call(|d, cx| d.recover(cx, true));
    assert_eq!(b.take(), vec![Outcome::Running]);
    assert_eq!(b.daemon.count("GET", "ciao.instance-uuid%3D67d8"), 1);
    assert_eq!(
        b.file(&b.dir().join(ID_FILE)).map(|(f, _)| f.clone()),
        Some(format!("{id}\n").into_bytes()),
        "docker-id written again"
    );

    // Stopped container: exited.
    b.daemon.containers[0].running = false;
    b.restart_launcher();
    b.call(|d, cx| d.recover(cx, false));
    assert_eq!(b.take(), vec![Outcome::Exited]);
    // And a RESTART of it works.
    b.call(|d, cx| d.start(cx, true, &[], &[]));
    assert_eq!(b.take(), vec![Outcome::Launched, Outcome::Running]);

    // Gone: exited, deletable.
    b.daemon.containers.clear();
    b.restart_launcher();
    b.call(|d, cx| d.recover(cx, false));
    assert_eq!(b.take(), vec![Outcome::Exited]);
    b.call(|d, cx| d.destroy(cx));
    assert_eq!(b.take(), vec![Outcome::Destroyed]);
}

#[test]
fn a_container_of_another_launcher_is_not_adopted() {
    let mut b = started("other");
    b.daemon.containers[0]
        .labels
        .insert("ciao.instances-dir".into(), "/elsewhere/instances".into());
    assert!(b.files.remove(&b.dir().join(ID_FILE)).is_some());
    b.restart_launcher();
    b.call(|d, cx| d.recover(cx, false));
    assert_eq!(b.take(), vec![Outcome::Exited]);
}

#[test]
fn daemon_down_and_back() {
    // START while down: a clear image_failure.
    let mut b = Bench::new("down", Duration::from_secs(5));
    b.daemon.up = false;
    b.start(UD, MD);
    let (r, d) = failed(&mut b);
    assert_eq!(r, StartFailureReason::ImageFailure);
    assert!(
        d.contains("cannot reach dockerd") && d.contains("Connection refused"),
        "{d}"
    );

    // The daemon dies under a running container: exited, then polled.
    let mut b = started("dies");
    b.daemon_dies();
    assert_eq!(b.take(), vec![Outcome::Exited]);
    // RESTART while down fails clearly.
    b.call(|d, cx| d.start(cx, true, &[], &[]));
    let (r, d) = failed(&mut b);
    assert_eq!(r, StartFailureReason::LaunchFailure);
    assert!(d.contains("cannot reach dockerd"), "{d}");
    // Back (containers dead, as without live-restore): RESTART works.
    b.daemon.up = true;
    b.call(|d, cx| d.start(cx, true, &[], &[]));
    assert_eq!(b.take(), vec![Outcome::Launched, Outcome::Running]);

    // Live-restore style: the container survives the daemon; the poll
    // finds it running again.
    let mut b = started("live");
    b.daemon.up = false;
    b.daemon_dies();
    b.daemon.containers[0].running = true;
    assert_eq!(b.take(), vec![Outcome::Exited]);
    b.advance(Duration::from_secs(10));
    assert!(b.take().is_empty());
    b.daemon.up = true;
    b.advance(Duration::from_secs(40));
    assert_eq!(b.take(), vec![Outcome::Running]);

    // DELETE while down: retried, then given up (logged), never hung.
    let mut b = started("deldown");
    b.daemon_dies();
    b.take();
    b.call(|d, cx| d.destroy(cx));
    assert!(b.take().is_empty());
    b.advance(Duration::from_secs(20));
    assert_eq!(b.take(), vec![Outcome::Destroyed]);
    // ... and succeeds when the daemon comes back in time.
    let mut b = started("delback");
    b.daemon_dies();
    b.take();
    b.call(|d, cx| d.destroy(cx));
    b.daemon.up = true;
    b.advance(Duration::from_secs(2));
    assert_eq!(b.take(), vec![Outcome::Destroyed]);
    assert!(b.daemon.containers.is_empty());

    // Recovery while down: exited, then adopted when back.
    let mut b = started("recdown");
    b.restart_launcher();
    b.daemon.up = false;
    b.call(|d, cx| d.recover(cx, false));
    assert_eq!(b.take(), vec![Outcome::Exited]);
    b.daemon.up = true;
    b.advance(Duration::from_secs(2));
    assert_eq!(b.take(), vec![Outcome::Running]);
}

#[test]
fn bootable_volumes_are_refused() {
    let mut b = Bench::new("vol", Duration::from_secs(5));
    b.cfg().volumes.push(crate::payloads::VolumeConfig {
        uuid: "aaaa".into(),
        bootable: true,
    });
    b.start(UD, MD);
    let (r, d) = failed(&mut b);
    assert_eq!(r, StartFailureReason::ImageFailure);
    assert!(d.contains("bootable"), "{d}");
    assert!(b.host.log.is_empty());
}

fn with_volumes(tag: &str) -> Bench {
    let mut b = Bench::new(tag, Duration::from_secs(5));
    for v in ["aa01", "bb02"] {
        b.cfg().volumes.push(crate::payloads::VolumeConfig {
            uuid: v.into(),
            bootable: false,
        });
    }
    b
}

/// The mount points below the instance directory, in mount order.
fn mounted(b: &Bench) -> Vec<String> {
    let dir = b.dir().display().to_string();
    b.host
        .mounts
        .iter()
        .map(|(p, d)| format!("{} {d}", p.replace(&dir, "DIR")))
        .collect()
}

/// START maps and mounts each volume in order before the container
/// starts, binds them at /volumes/<uuid>; STOP unmounts and unmaps in
/// reverse; RESTART attaches again; DELETE releases after the removal.
#[test]
fn volumes_are_mounted_before_the_start_and_released_after() {
    let mut b = with_volumes("vols");
    b.start(UD, MD);
    assert_eq!(b.take(), vec![Outcome::Launched, Outcome::Running]);
    let dir = b.dir().display().to_string();
    let log =
        |b: &Bench| -> Vec<String> { b.host.log.iter().map(|l| l.replace(&dir, "DIR")).collect() };
    assert_eq!(
        log(&b),
        [
            "rbd showmapped --format json",
            "rbd map aa01",
            "mount /dev/rbd0 DIR/volumes/aa01",
            "rbd map bb02",
            "mount /dev/rbd1 DIR/volumes/bb02",
        ]
    );
    assert_eq!(
        mounted(&b),
        ["DIR/volumes/aa01 /dev/rbd0", "DIR/volumes/bb02 /dev/rbd1"]
    );
    let c = b.daemon.container(ID).unwrap();
    assert!(
        c.body.contains(&format!(
            r#""Binds":["{dir}/volumes/aa01:/volumes/aa01","{dir}/volumes/bb02:/volumes/bb02"]"#
        )),
        "{}",
        c.body
    );
    let record = b.file(&b.dir().join("rbd-mapped")).unwrap().0.clone();
    assert_eq!(
        String::from_utf8_lossy(&record),
        "aa01 /dev/rbd0\nbb02 /dev/rbd1\n"
    );
    // STOP: reverse order, then the record goes.
    b.host.log.clear();
    b.call(|d, cx| d.stop(cx, false));
    b.settle_waits();
    assert_eq!(b.take(), vec![Outcome::Exited]);
    assert_eq!(
        log(&b),
        [
            "umount DIR/volumes/bb02",
            "umount DIR/volumes/aa01",
            "rbd unmap /dev/rbd1",
            "rbd unmap /dev/rbd0",
        ]
    );
    assert!(b.host.mapped.is_empty() && b.host.mounts.is_empty());
    assert!(b.file(&b.dir().join("rbd-mapped")).is_none());
    // RESTART: attached again before the start.
    b.host.log.clear();
    b.call(|d, cx| d.start(cx, true, &[], &[]));
    assert_eq!(b.take(), vec![Outcome::Launched, Outcome::Running]);
    assert_eq!(log(&b).len(), 5);
    assert_eq!(mounted(&b).len(), 2);
    // DELETE of the running container: killed, released, removed.
    b.host.log.clear();
    b.call(|d, cx| d.stop(cx, true));
    b.settle_waits();
    assert_eq!(b.take(), vec![Outcome::Exited]);
    b.call(|d, cx| d.destroy(cx));
    assert_eq!(b.take(), vec![Outcome::Destroyed]);
    assert!(
        b.host.mapped.is_empty() && b.host.mounts.is_empty(),
        "{:?}",
        b.host
    );
    assert!(b.daemon.container(ID).is_none());
}

/// A mount that fails: what was done is undone in reverse (B14), a
/// mapping found in place is not unmapped (B15), and the container is
/// never started: launch_failure.
#[test]
fn a_failed_volume_unwinds_and_never_starts_the_container() {
    let mut b = with_volumes("volfail");
    b.host.mapped.push(("bb02".into(), "/dev/rbd9".into()));
    b.host.fail = Some("mount /dev/rbd9".into());
    b.start(UD, MD);
    let (r, d) = failed(&mut b);
    assert_eq!(r, StartFailureReason::LaunchFailure);
    assert!(d.contains("bb02"), "{d}");
    let dir = b.dir().display().to_string();
    let log: Vec<String> = b.host.log.iter().map(|l| l.replace(&dir, "DIR")).collect();
    assert_eq!(
        log,
        [
            "rbd showmapped --format json",
            "rbd map aa01",
            "mount /dev/rbd0 DIR/volumes/aa01",
            "mount /dev/rbd9 DIR/volumes/bb02",
            "umount DIR/volumes/aa01",
            "rbd unmap /dev/rbd0",
        ]
    );
    assert_eq!(
        b.host.mapped,
        [("bb02".to_string(), "/dev/rbd9".to_string())]
    );
    assert_eq!(b.daemon.count("POST", "/start"), 0);
    // The instance stays (launch_failure): a RESTART tries again.
    b.host.fail = None;
    b.host.log.clear();
    b.call(|d, cx| d.start(cx, true, &[], &[]));
    assert_eq!(b.take(), vec![Outcome::Launched, Outcome::Running]);
    assert_eq!(mounted(&b).len(), 2);
}

/// An unmount that fails at DELETE: the device stays mapped and the
/// mount stays, so the manager's removal refuses to touch the directory.
#[test]
fn a_busy_volume_is_left_mounted_and_mapped_at_delete() {
    let mut b = with_volumes("volbusy");
    b.start(UD, MD);
    assert_eq!(b.take(), vec![Outcome::Launched, Outcome::Running]);
    b.host.fail = Some("umount".into());
    b.call(|d, cx| d.stop(cx, true));
    b.settle_waits();
    b.call(|d, cx| d.destroy(cx));
    let out = b.take();
    assert_eq!(out.last(), Some(&Outcome::Destroyed), "{out:?}");
    assert_eq!(mounted(&b).len(), 2);
    assert_eq!(b.host.mapped.len(), 2);
    assert!(!b.host.log.iter().any(|l| l.contains("unmap")));
}

/// Recovery of a running container: its mounts are found and its
/// record read; when it is found stopped instead, they are released.
#[test]
fn recovery_finds_mounted_volumes_and_releases_them_when_stopped() {
    let mut b = with_volumes("volrec");
    b.start(UD, MD);
    assert_eq!(b.take(), vec![Outcome::Launched, Outcome::Running]);
    b.restart_launcher();
    b.call(|d, cx| d.recover(cx, false));
    assert_eq!(b.take(), vec![Outcome::Running]);
    assert_eq!(mounted(&b).len(), 2);
    // Launcher restarted again, the container exited meanwhile.
    b.restart_launcher();
    b.daemon.containers[0].running = false;
    b.host.log.clear();
    b.call(|d, cx| d.recover(cx, false));
    assert_eq!(b.take(), vec![Outcome::Exited]);
    assert!(
        b.host.mounts.is_empty() && b.host.mapped.is_empty(),
        "{:?}",
        b.host
    );
}

#[test]
fn left_over_containers_are_swept_after_negotiation() {
    let mut b = started("sweep");
    let base = b.base.to_string_lossy().into_owned();
    let mk = |id: &str, uuid: &str, dir: &str| super::fake::Container {
        id: id.into(),
        name: uuid.into(),
        running: false,
        labels: [
            ("ciao.instance-uuid".to_string(), uuid.to_string()),
            ("ciao.instances-dir".to_string(), dir.to_string()),
        ]
        .into(),
        body: String::new(),
        ignores_term: false,
        exit_code: 0,
        cpu_ns: 0,
    };
    // A DELETE gave up while dockerd was down: its directory is gone.
    b.daemon.containers.push(mk("0a1", "aaaa0001", &base));
    // Another launcher's container, and one whose instance still exists.
    b.daemon
        .containers
        .push(mk("0a2", "aaaa0002", "/elsewhere/instances"));
    b.dirs.insert(b.base.join("aaaa0003"));
    b.daemon.containers.push(mk("0a3", "aaaa0003", &base));
    // One whose directory cannot be looked at: kept (only "not found"
    // means gone).
    b.daemon.containers.push(mk("0a4", "aaaa0004", &base));
    b.file_error = Some("aaaa0004".into());
    // The daemon goes away and comes back: the next negotiation sweeps.
    b.daemon_dies();
    b.take();
    b.daemon.up = true;
    b.call(|d, cx| d.start(cx, true, &[], &[]));
    assert_eq!(b.take(), vec![Outcome::Launched, Outcome::Running]);
    let left: Vec<&str> = b.daemon.containers.iter().map(|c| c.id.as_str()).collect();
    assert!(!left.contains(&"0a1"), "{left:?}");
    assert!(
        left.contains(&"0a2") && left.contains(&"0a3") && left.contains(&"0a4"),
        "{left:?}"
    );
    assert_eq!(
        left.len(),
        4,
        "ours, the other launcher's, aaaa0003, aaaa0004"
    );
    assert_eq!(b.daemon.count("DELETE", "/containers/0a1?"), 1);
    assert_eq!(b.daemon.count("DELETE", ""), 1, "nothing else removed");
}

#[test]
fn the_exit_long_poll_has_a_deadline_and_is_renewed() {
    use super::api::WAIT_RENEW;
    let mut b = started("renew");
    assert_eq!(b.daemon.count("POST", "/wait"), 1);
    // Still running at the deadline: one inspect, one new poll, no outcome.
    b.advance(WAIT_RENEW + Duration::from_secs(1));
    assert_eq!(b.take(), vec![]);
    assert_eq!(b.daemon.count("POST", "/wait"), 2, "a new exit long poll");
    assert_eq!(b.held(), 1, "exactly one poll open");
    // A daemon that swallowed the exit (the poll never answers): the next
    // deadline finds the container stopped.
    b.daemon.containers[0].running = false;
    b.advance(WAIT_RENEW + Duration::from_secs(1));
    assert_eq!(b.take(), vec![Outcome::Exited]);
    assert_eq!(b.daemon.count("POST", "/wait"), 2);
}

#[test]
fn the_container_is_started_once_its_id_is_on_disk() {
    let mut b = Bench::new("durable", Duration::from_secs(5));
    b.stall_writes = true;
    b.start(UD, MD);
    // Created, its id being written: not started yet.
    assert!(b.take().is_empty());
    assert_eq!(b.daemon.containers.len(), 1);
    assert_eq!(b.daemon.count("POST", "/start"), 0);
    b.finish_writes();
    assert_eq!(b.take(), vec![Outcome::Launched, Outcome::Running]);
    assert!(b.daemon.containers[0].running);
}

#[test]
fn a_start_whose_id_cannot_be_recorded_is_rolled_back() {
    let mut b = Bench::new("noid", Duration::from_secs(5));
    b.file_error = Some(ID_FILE.into());
    b.start(UD, MD);
    let (r, d) = failed(&mut b);
    assert_eq!(r, StartFailureReason::ImageFailure);
    assert!(
        d.contains("cannot record the container id") && d.contains(ID_FILE),
        "{d}"
    );
    // Created, never started, removed again.
    assert_eq!(b.daemon.count("POST", "/containers/create"), 1);
    assert_eq!(b.daemon.count("POST", "/start"), 0);
    assert_eq!(b.daemon.count("DELETE", "?force=1&v=1"), 1);
    assert!(b.daemon.containers.is_empty());
    assert_eq!(b.open(), 0);

    // The failure is reported only once the removal is over (the manager
    // forgets the instance then, and would drop the removal's answers).
    let mut b = Bench::new("noid2", Duration::from_secs(5));
    b.file_error = Some(ID_FILE.into());
    b.daemon.hang = Some("?force=1".into());
    b.start(UD, MD);
    assert!(b.take().is_empty());
    assert_eq!(b.daemon.count("DELETE", "?force=1&v=1"), 1);
    b.advance(Duration::from_secs(31));
    assert_eq!(failed(&mut b).0, StartFailureReason::ImageFailure);
    assert_eq!(b.open(), 0);
}

#[test]
fn recovery_reads_the_id_file_through_the_shell() {
    let mut b = started("recread");
    let id = b.daemon.containers[0].id.clone();
    let idfile = b.dir().join(ID_FILE);
    // An unreadable docker-id: by label (recording the id then fails the
    // same way, which only costs a warning).
    b.file_error = Some(ID_FILE.into());
    b.restart_launcher();
    b.call(|d, cx| d.recover(cx, false));
    assert_eq!(b.take(), vec![Outcome::Running]);
    assert_eq!(b.daemon.count("GET", "ciao.instance-uuid%3D67d8"), 1);
    b.file_error = None;
    // A docker-id that is not an id: by label, and recorded again.
    b.files
        .insert(idfile.clone(), (b"../../etc\n".to_vec(), 0o600));
    b.restart_launcher();
    b.call(|d, cx| d.recover(cx, false));
    assert_eq!(b.take(), vec![Outcome::Running]);
    assert_eq!(b.daemon.count("GET", "ciao.instance-uuid%3D67d8"), 2);
    assert_eq!(
        b.file(&idfile).map(|(f, _)| f.clone()),
        Some(format!("{id}\n").into_bytes())
    );
    // A good one: by id, and not written again.
    b.stall_writes = true;
    b.restart_launcher();
    b.call(|d, cx| d.recover(cx, false));
    assert_eq!(b.take(), vec![Outcome::Running]);
    assert_eq!(b.daemon.count("GET", "ciao.instance-uuid%3D67d8"), 2);
    assert_eq!(b.staged(), 0, "nothing to record");
    b.finish_writes();
}

#[test]
fn call_deadlines_end_with_their_calls() {
    use crate::driver::Timer;
    let mut b = started("deadlines");
    // The exit long poll's deadline and the next sample; every other
    // call's deadline was cancelled when it ended.
    let calls = |b: &Bench| {
        b.timers(0)
            .into_iter()
            .filter(|t| matches!(t, Timer::CtrCall(_)))
            .count()
    };
    assert_eq!(calls(&b), 1, "{:?}", b.timers(0));
    assert!(b.timers(0).contains(&Timer::CtrSample));
    b.call(|d, cx| d.stop(cx, false));
    assert_eq!(b.take(), vec![Outcome::Exited]);
    assert_eq!(calls(&b), 0, "{:?}", b.timers(0));
    // The sample timer fires once more, does nothing and is not re-armed.
    b.advance(Duration::from_secs(3));
    assert_eq!(b.timers(0), vec![]);
}

const OTHER: &str = "5a1e0000-0000-4000-8000-00000000000b";

/// Two instances whose STARTs both wait for the first one's negotiation
/// (its connect is held back); returns the second's index.
fn two_starting(tag: &str) -> (Bench, usize) {
    let mut b = Bench::new(tag, Duration::from_secs(5));
    let other = b.add(OTHER);
    b.stall_connects = true;
    b.start(UD, MD);
    b.start_on(other, UD, MD);
    assert!(b.take().is_empty() && b.take_of(other).is_empty());
    (b, other)
}

#[test]
fn instances_share_one_negotiation() {
    let (mut b, other) = two_starting("share");
    // Only the first asks dockerd; the second waits for it.
    assert_eq!(b.asking(), [ID]);
    b.finish_connects();
    assert_eq!(b.take(), vec![Outcome::Launched, Outcome::Running]);
    assert_eq!(b.take_of(other), vec![Outcome::Launched, Outcome::Running]);
    assert_eq!(b.daemon.count("GET", "/version"), 1);
    assert_eq!(b.daemon.containers.len(), 2);
    assert!(b.daemon.containers.iter().all(|c| c.running));
}

#[test]
fn a_failed_negotiation_fails_every_waiter() {
    let (mut b, other) = two_starting("sharefail");
    assert_eq!(b.asking(), [ID]);
    b.daemon.up = false;
    b.finish_connects();
    assert_eq!(b.connects, 1, "one attempt for both");
    for who in [0, other] {
        match b.take_of(who).as_slice() {
            [Outcome::StartFailed { reason, detail }] => {
                assert_eq!(*reason, StartFailureReason::ImageFailure);
                assert!(
                    detail.contains("cannot reach dockerd")
                        && detail.contains("Connection refused"),
                    "{detail}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
    // The next command negotiates again, and works once dockerd is back.
    b.daemon.up = true;
    b.start_on(other, UD, MD);
    assert_eq!(b.take_of(other), vec![Outcome::Launched, Outcome::Running]);
}

#[test]
fn a_waiter_leads_when_the_leader_goes_away() {
    let (mut b, other) = two_starting("handover");
    assert_eq!(b.asking(), [ID]);
    // The leader's instance is deleted before dockerd answered.
    b.forget(0);
    assert_eq!(b.asking(), [OTHER], "the waiter asks now");
    b.finish_connects();
    assert_eq!(b.take_of(other), vec![Outcome::Launched, Outcome::Running]);
    assert_eq!(b.daemon.count("GET", "/version"), 1);
    assert_eq!(b.daemon.containers.len(), 1);

    // A leader that is destroyed (not yet forgotten) asks again itself,
    // and its waiter goes on when that is answered.
    let (mut b, other) = two_starting("handover2");
    b.call(|d, cx| d.destroy(cx));
    assert_eq!(b.asking(), [ID]);
    b.finish_connects();
    assert_eq!(b.take(), vec![Outcome::Destroyed]);
    assert_eq!(b.take_of(other), vec![Outcome::Launched, Outcome::Running]);
    assert_eq!(b.daemon.count("GET", "/version"), 1);
}

#[test]
fn recovered_instances_share_one_negotiation_and_one_sweep() {
    let mut b = started("recshare");
    let other = b.add(OTHER);
    b.start_on(other, UD, MD);
    assert_eq!(b.take_of(other), vec![Outcome::Launched, Outcome::Running]);
    b.restart_launcher();
    let n = b.daemon.log.len();
    b.stall_connects = true;
    b.call(|d, cx| d.recover(cx, false));
    b.call_on(other, |d, cx| d.recover(cx, false));
    assert_eq!(b.asking().len(), 1);
    b.finish_connects();
    assert_eq!(b.take(), vec![Outcome::Running]);
    assert_eq!(b.take_of(other), vec![Outcome::Running]);
    let log = &b.daemon.log[n..];
    let count = |needle: &str| log.iter().filter(|(_, p, _)| p.contains(needle)).count();
    assert_eq!(count("/version"), 1, "{log:?}");
    assert_eq!(count("ciao.instances-dir"), 1, "one sweep: {log:?}");
    assert_eq!(b.daemon.containers.len(), 2, "nothing swept");
    assert!(b.daemon.containers.iter().all(|c| c.running));
}

/// Instance 0 with the veth pair the launcher made for it.
fn networked(tag: &str) -> Bench {
    let mut b = Bench::new(tag, Duration::from_secs(5));
    b.cfg().network.private_ip = "172.16.5.7".into();
    b.insts[0].vnic = Some(Vnic::Veth {
        host: "svn_7".into(),
        peer: "svp_7".into(),
        mac: [2, 0, 0xac, 0x10, 5, 7],
        mtu: 1400,
        network: DockerNetwork {
            name: NET.into(),
            bridge_alias: "br_t_172.16.5.0/24_c_192.168.42.21".into(),
            subnet: "172.16.5.0/24".into(),
            gateway: "172.16.5.1".into(),
        },
    });
    b
}

const NET: &str = "ciao_t_172.16.5.0-24_c_192.168.42.21";

/// With networking: the tenant network is created first (driver and IPAM
/// driver the plugin), then the container on it with its MAC and IP; an
/// existing network (409) is fine; RESTART makes sure the network is
/// there before the start.
#[test]
fn a_networked_container_is_created_on_its_tenant_network() {
    let mut b = networked("net");
    b.start(UD, MD);
    assert_eq!(b.take(), vec![Outcome::Launched, Outcome::Running]);
    let d = &b.daemon;
    let paths: Vec<&str> = d.log.iter().map(|(_, p, _)| p.as_str()).collect();
    let net = paths
        .iter()
        .position(|p| p.ends_with("/networks/create"))
        .unwrap();
    let create = paths
        .iter()
        .position(|p| p.contains("/containers/create"))
        .unwrap();
    assert!(net < create, "{paths:?}");
    let (_, driver, body) = &d.networks[NET];
    assert_eq!(driver, "ciao");
    assert!(body.contains(r#""IPAM":{"Driver":"ciao","Options":null,"Config":[{"Subnet":"172.16.5.0/24","Gateway":"172.16.5.1"}]}"#), "{body}");
    assert!(body.contains(r#""Options":{"bridge":"br_t_172.16.5.0/24_c_192.168.42.21"}"#));
    let c = d.container(ID).unwrap();
    assert!(
        c.body.contains(r#""MacAddress":"02:00:ac:10:05:07""#),
        "{}",
        c.body
    );
    assert!(c.body.contains(&format!(r#""NetworkMode":"{NET}""#)));
    // API 1.41: the MAC is not in the endpoint settings.
    assert!(c.body.ends_with(&format!(
        r#""NetworkingConfig":{{"EndpointsConfig":{{"{NET}":{{"IPAMConfig":{{"IPv4Address":"172.16.5.7"}}}}}}}}}}"#
    )), "{}", c.body);

    // RESTART: the network is checked (409: exists), then the start.
    b.call(|d, cx| d.stop(cx, false));
    b.take();
    let n = b.daemon.log.len();
    b.call(|d, cx| d.start(cx, true, &[], &[]));
    assert_eq!(b.take(), vec![Outcome::Launched, Outcome::Running]);
    let after: Vec<&str> = b.daemon.log[n..]
        .iter()
        .map(|(_, p, _)| p.as_str())
        .collect();
    assert!(
        after[0].ends_with("/networks/create") && after[1].ends_with("/start"),
        "{after:?}"
    );

    // A second container on the same network: 409, then created.
    let mut b = networked("net2");
    b.daemon.api = "1.45";
    b.start(UD, MD);
    b.take();
    let who = b.add("67d86208-b46c-4465-9018-e14087d415f0");
    b.insts[who].vnic = b.insts[0].vnic.clone();
    b.start_on(who, UD, MD);
    assert_eq!(b.take_of(who), vec![Outcome::Launched, Outcome::Running]);
    assert_eq!(b.daemon.networks.len(), 1);
    assert_eq!(b.daemon.count("POST", "/networks/create"), 2);
    // API 1.44 and later: the MAC in the endpoint settings too.
    let c = b.daemon.container(ID).unwrap();
    assert!(
        c.body
            .contains(r#""IPv4Address":"172.16.5.7"},"MacAddress":"02:00:ac:10:05:07"}"#),
        "{}",
        c.body
    );
}

/// The network vanished between its create and the container's (the
/// bridge's last other instance was deleted meanwhile): created once
/// more. A network that cannot be created fails the START with
/// network_failure, and no container is made.
#[test]
fn network_failures_and_races() {
    let mut b = networked("race2");
    // dockerd says it exists (409), but it is gone by the container create.
    b.daemon.network_error = Some((409, format!("network with name {NET} already exists")));
    b.daemon.networks.clear();
    b.start(UD, MD);
    assert_eq!(b.take(), vec![Outcome::Launched, Outcome::Running]);
    assert_eq!(b.daemon.count("POST", "/networks/create"), 2);
    assert_eq!(b.daemon.count("POST", "/containers/create"), 2);
    assert!(b.daemon.networks.contains_key(NET));

    let mut b = networked("netfail");
    b.daemon.network_error = Some((500, "plugin \"ciao\" not found".into()));
    b.start(UD, MD);
    let (r, d) = failed(&mut b);
    assert_eq!(r, StartFailureReason::NetworkFailure);
    assert!(d.contains("plugin") && d.contains(NET), "{d}");
    assert_eq!(b.daemon.count("POST", "/containers/create"), 0);
}
