//! End to end: AttachVolume and DetachVolume (docs/storage.md).
//!
//! - With real qemu VMs (software emulation) and a real single-node ceph
//!   cluster per test, in a network namespace of its own
//!   (`tests/support/src/ceph.rs`): hot-plug into a running guest (the test
//!   guest reports disks that appear or go), hot-unplug (the image loses
//!   qemu's watcher), the record of a stopped VM used by the next RESTART,
//!   a guest that never releases a device (`detach_failure` within
//!   `--detach-timeout`, STOP still works), and kill -9 of the launcher
//!   with volumes attached and a half-finished attach left in qemu: the
//!   recorded state decides. Attach-to-visible and detach times are
//!   printed (median of 5).
//! - With the three real binaries (`ciao-launcher-server`, the launcher in
//!   simulation, `ciaolc attach`/`detach`): every failure reason over
//!   SSNTP.
//!
//! Without root, qemu or ceph the VM tests print `SKIPPED: ...` (they fail
//! under `CI=true`).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use ciao::payloads::VolumeErrorReport;
use ciao::ssntp::frame::{Command, ErrorCode, Op};
use ciao_test_support::ceph::{self, CEPH_ID};
use ciao_test_support::cmd;
use ciao_test_support::proc::wait_for;
use ciao_test_support::qemu::{start_payload, VmNode, BOOT, GUEST_IMAGE, LONG};
use ciao_test_support::server_session::{Binaries, Session};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");
const SERVER: &str = env!("CARGO_BIN_EXE_ciao-launcher-server");
const CIAOLC: &str = env!("CARGO_BIN_EXE_ciaolc");
/// Where the test guest is kept between runs.
const GUEST_CACHE: &str = env!("CARGO_TARGET_TMPDIR");

const A: &str = "a1a1a1a1-b46c-4465-9018-fe14087d415f";
const B: &str = "b2b2b2b2-b46c-4465-9018-fe14087d415f";

fn volume_cmd(kind: &str, id: &str, vol: &str) -> Vec<u8> {
    format!("{kind}:\n  instance_uuid: {id}\n  volume_uuid: {vol}\n").into_bytes()
}

fn attach(n: &VmNode, id: &str, vol: &str) {
    n.send(Command::AttachVolume, volume_cmd("attach_volume", id, vol));
}

fn detach(n: &VmNode, id: &str, vol: &str) {
    n.send(Command::DetachVolume, volume_cmd("detach_volume", id, vol));
}

/// The next Attach/DetachVolumeFailure: (operand, instance, volume, reason).
fn volume_error(n: &VmNode, within: Duration) -> (ErrorCode, String, String, String) {
    let (_, f) = n.server.expect_frame(within, "a volume failure", |f| {
        matches!(
            f.op,
            Op::Error(ErrorCode::AttachVolumeFailure | ErrorCode::DetachVolumeFailure)
        )
    });
    let Op::Error(code) = f.op else {
        unreachable!()
    };
    let r = VolumeErrorReport::parse(&f.payload).unwrap();
    (code, r.instance_uuid, r.volume_uuid, r.reason)
}

/// Waits until STATS report exactly `vols` for `id`.
fn wait_volumes(n: &VmNode, id: &str, vols: &[&str], within: Duration) {
    n.stats_until(within, &format!("{id} with volumes {vols:?}"), |m| {
        m.get(id).is_some_and(|i| i.volumes == vols)
    });
}

/// How many `needle` lines the console of `id` shows.
fn count(n: &VmNode, id: &str, needle: &str) -> usize {
    n.console(id).matches(needle).count()
}

/// Waits for the `k`-th `needle` on the console of `id`; the time it took.
fn wait_count(n: &VmNode, id: &str, needle: &str, k: usize, within: Duration) -> Duration {
    let t0 = Instant::now();
    wait_for(within, needle, || (count(n, id, needle) >= k).then_some(()));
    t0.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A minimal QMP client for the test itself (while the launcher is dead,
/// qemu's single QMP connection is free).
struct Qmp {
    r: BufReader<UnixStream>,
    w: UnixStream,
}

impl Qmp {
    fn connect(path: &Path) -> Qmp {
        let s = wait_for(LONG, "the QMP socket", || UnixStream::connect(path).ok());
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut q = Qmp {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        let greeting = q.line();
        assert!(greeting.contains("\"QMP\""), "{greeting}");
        q.call("qmp_capabilities", "{}");
        q
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        l
    }

    /// The reply line of `command` (events before it are skipped).
    fn call(&mut self, command: &str, args: &str) -> String {
        writeln!(
            self.w,
            "{{\"execute\":\"{command}\",\"arguments\":{args},\"id\":\"t\"}}"
        )
        .unwrap();
        loop {
            let l = self.line();
            assert!(!l.is_empty(), "QMP closed");
            if l.contains("\"id\": \"t\"") || l.contains("\"id\":\"t\"") {
                return l;
            }
        }
    }
}

#[test]
fn hot_attach_and_detach_on_a_running_vm() {
    let Some((_g, guest, c)) =
        ceph::vm_setup("hot_attach_and_detach_on_a_running_vm", GUEST_CACHE, "ca")
    else {
        return;
    };
    let v1 = ceph::uuid();
    let v2 = ceph::uuid();
    let v3 = ceph::uuid();
    c.create_with(&v1, 16, b"CIAO-VOLUME hot\n").unwrap();
    c.create_with(&v2, 16, b"CIAO-VOLUME two\n").unwrap();
    c.create_with(&v3, 16, b"CIAO-VOLUME later\n").unwrap();
    let mut n = c.vm_node(
        LAUNCHER,
        &guest,
        &["--stop-timeout=60", "--detach-timeout=20"],
    );
    n.send(Command::Start, start_payload(A, "hot", false, 128, ""));
    n.wait_state(A, "active", BOOT);
    n.wait_console(A, "CIAO-TEST-GUEST hostname=hot boots=1", BOOT);

    // Five cycles: attach until the guest sees the disk, detach until it
    // is gone and qemu let go of the image.
    let (mut attach_t, mut detach_t) = (Vec::new(), Vec::new());
    for k in 1..=5 {
        let t0 = Instant::now();
        attach(&n, A, &v1);
        wait_count(&n, A, "CIAO-TEST-GUEST hotplug added", k, LONG);
        attach_t.push(t0.elapsed());
        wait_volumes(&n, A, &[&v1], LONG);
        assert_eq!(c.watchers(&v1).unwrap(), 1, "{}", c.status(&v1).unwrap());

        let t0 = Instant::now();
        detach(&n, A, &v1);
        wait_count(&n, A, "CIAO-TEST-GUEST hotplug removed", k, LONG);
        wait_volumes(&n, A, &[], LONG);
        wait_for(LONG, "no watcher", || {
            (c.watchers(&v1).unwrap() == 0).then_some(())
        });
        detach_t.push(t0.elapsed());
    }
    eprintln!(
        "attach to visible in the guest: median {:?} of {attach_t:?}",
        median(attach_t.clone())
    );
    eprintln!(
        "detach to gone (guest, STATS, no rbd watcher): median {:?} of {detach_t:?}",
        median(detach_t.clone())
    );

    // An image that does not exist: attach_failure, nothing recorded.
    let missing = ceph::uuid();
    let t0 = Instant::now();
    attach(&n, A, &missing);
    assert_eq!(
        volume_error(&n, LONG),
        (
            ErrorCode::AttachVolumeFailure,
            A.to_string(),
            missing.clone(),
            "attach_failure".to_string()
        )
    );
    eprintln!("attach of a missing image refused in {:?}", t0.elapsed());
    // Twice the same: already_attached; detach of another: not_attached.
    attach(&n, A, &v1);
    wait_volumes(&n, A, &[&v1], LONG);
    attach(&n, A, &v1);
    assert_eq!(volume_error(&n, LONG).3, "already_attached");
    detach(&n, A, &v2);
    assert_eq!(
        volume_error(&n, LONG),
        (
            ErrorCode::DetachVolumeFailure,
            A.to_string(),
            v2.clone(),
            "not_attached".to_string()
        ),
        "ids in their own fields"
    );

    // A second volume, then kill -9 of the launcher. Meanwhile, in qemu:
    // a half-finished detach of v1 (device gone, node left) and a
    // half-finished attach of v3 (hot-plugged, never recorded).
    attach(&n, A, &v2);
    wait_volumes(&n, A, &[&v1, &v2], LONG);
    // The guest must have seen both disks arrive (5 cycles + v1 + v2)
    // before one of them goes: an add and a removal within one look of
    // its disk watcher would show neither.
    wait_count(&n, A, "CIAO-TEST-GUEST hotplug added", 7, LONG);
    let added = count(&n, A, "CIAO-TEST-GUEST hotplug added");
    n.kill9();
    let mut q = Qmp::connect(&n.instance_dir(A).join("socket"));
    let blocks = q.call("query-block", "{}");
    for v in [&v1, &v2] {
        assert!(
            blocks.contains(&format!("device_{v}")),
            "qemu has {v}: {blocks}"
        );
    }
    let r = q.call("device_del", &format!("{{\"id\":\"device_{v1}\"}}"));
    assert!(r.contains("\"return\""), "{r}");
    wait_count(&n, A, "CIAO-TEST-GUEST hotplug removed", 6, LONG);
    let node3 = format!("v{}", &v3.replace('-', "")[..20]);
    let r = q.call(
        "blockdev-add",
        &format!(
            "{{\"driver\":\"rbd\",\"node-name\":\"{node3}\",\"pool\":\"rbd\",\"image\":\"{v3}\",\"user\":\"{CEPH_ID}\",\"conf\":\"{}\"}}",
            c.conf().display()
        ),
    );
    assert!(r.contains("\"return\""), "{r}");
    let r = q.call(
        "device_add",
        &format!("{{\"driver\":\"virtio-blk-pci\",\"drive\":\"{node3}\",\"id\":\"device_{v3}\"}}"),
    );
    assert!(r.contains("\"return\""), "{r}");
    wait_count(&n, A, "CIAO-TEST-GUEST hotplug added", added + 1, LONG);
    assert_eq!(c.watchers(&v3).unwrap(), 1);
    drop(q);
    let t0 = Instant::now();
    n.start_launcher();
    n.wait_state(A, "active", LONG);
    wait_volumes(&n, A, &[&v1, &v2], LONG);
    wait_for(LONG, "qemu in line with the record", || {
        let w = |v: &str| c.watchers(v).unwrap();
        (w(&v1) == 1 && w(&v2) == 1 && w(&v3) == 0).then_some(())
    });
    eprintln!(
        "re-adopted and brought in line with its record (v1 attached again, v3 detached) in {:?}",
        t0.elapsed()
    );
    // The guest saw v1 come back and v3 go.
    wait_count(&n, A, "CIAO-TEST-GUEST hotplug added", added + 2, LONG);
    wait_count(&n, A, "CIAO-TEST-GUEST hotplug removed", 7, LONG);
    let log = n.log();
    assert!(log.contains("not recorded: detaching it"), "{log}");
    assert!(log.contains("is not in qemu: attaching it"), "{log}");

    // Stopped: only the record changes; the next RESTART has the new set
    // (the boot-time drives come from the instance's volume list).
    n.send(Command::Stop, cmd("stop", A));
    n.wait_state(A, "exited", LONG);
    detach(&n, A, &v1);
    attach(&n, A, &v3);
    wait_volumes(&n, A, &[&v2, &v3], LONG);
    assert_eq!(c.watchers(&v3).unwrap(), 0, "not opened while stopped");
    n.send(Command::Restart, cmd("restart", A));
    n.wait_state(A, "active", BOOT);
    n.wait_console(A, "CIAO-TEST-GUEST hostname=hot boots=2", BOOT);
    let console = n.console(A);
    assert!(
        console.contains("data=CIAO-VOLUME later"),
        "the guest sees the volume attached while stopped:\n{console}"
    );
    assert_eq!(c.watchers(&v3).unwrap(), 1);
    assert_eq!(c.watchers(&v1).unwrap(), 0);

    n.send(Command::Delete, cmd("delete", A));
    n.server.expect_frame(LONG, "InstanceDeleted", |f| {
        f.op == Op::Event(ciao::ssntp::frame::Event::InstanceDeleted)
    });
    wait_for(LONG, "images closed", || {
        (c.watchers(&v2).unwrap() + c.watchers(&v3).unwrap() == 0).then_some(())
    });
}

#[test]
fn a_guest_that_ignores_hot_unplug() {
    let Some((_g, guest, mut c)) =
        ceph::vm_setup("a_guest_that_ignores_hot_unplug", GUEST_CACHE, "ca")
    else {
        return;
    };
    let v1 = ceph::uuid();
    c.create(&v1, 16).unwrap();
    let n = c.vm_node(
        LAUNCHER,
        &guest,
        &["--stop-timeout=3", "--detach-timeout=5", "--ceph-timeout=3"],
    );
    // A disk with no OS: the firmware finds nothing to boot, and nothing
    // answers the ACPI eject (or the power button).
    std::fs::write(n.data.join("images/blank"), vec![0u8; 1 << 20]).unwrap();
    let payload = String::from_utf8(start_payload(B, "blank", false, 96, ""))
        .unwrap()
        .replace(GUEST_IMAGE, "blank");
    n.send(Command::Start, payload.into_bytes());
    n.wait_state(B, "active", BOOT);
    attach(&n, B, &v1);
    wait_volumes(&n, B, &[&v1], LONG);

    let t0 = Instant::now();
    detach(&n, B, &v1);
    assert_eq!(
        volume_error(&n, LONG),
        (
            ErrorCode::DetachVolumeFailure,
            B.to_string(),
            v1.clone(),
            "detach_failure".to_string()
        )
    );
    let took = t0.elapsed();
    eprintln!("detach from a guest that never releases: detach_failure after {took:?}");
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(15),
        "{took:?}"
    );
    assert!(n.log().contains("did not release the device within 5s"));
    wait_volumes(&n, B, &[&v1], LONG);
    assert_eq!(c.watchers(&v1).unwrap(), 1, "still attached");

    // The VM still answers STOP (power button ignored, then quit).
    let t0 = Instant::now();
    n.send(Command::Stop, cmd("stop", B));
    n.wait_state(B, "exited", LONG);
    eprintln!("STOP after the failed detach: {:?}", t0.elapsed());
    assert_eq!(c.watchers(&v1).unwrap(), 0);
    // Stopped: the detach is only a record change now.
    detach(&n, B, &v1);
    wait_volumes(&n, B, &[], LONG);

    // A dead cluster: a hot attach fails within --ceph-timeout (the
    // launcher's hot-plug configuration bounds librbd's wait, which
    // would otherwise hold qemu's monitor for 300 s), and the VM still
    // answers STOP at once.
    n.send(Command::Restart, cmd("restart", B));
    n.wait_state(B, "active", BOOT);
    c.kill_monitor();
    let t0 = Instant::now();
    attach(&n, B, &v1);
    assert_eq!(
        volume_error(&n, LONG),
        (
            ErrorCode::AttachVolumeFailure,
            B.to_string(),
            v1.clone(),
            "attach_failure".to_string()
        )
    );
    let took = t0.elapsed();
    eprintln!("hot attach with the monitor dead: attach_failure after {took:?}");
    // librbd gives up after 3 s; the launcher's own deadline would be 13 s.
    assert!(took < Duration::from_secs(10), "{took:?}");
    let t0 = Instant::now();
    n.send(Command::Stop, cmd("stop", B));
    n.wait_state(B, "exited", LONG);
    eprintln!("STOP after the failed attach: {:?}", t0.elapsed());
    wait_volumes(&n, B, &[], LONG);
}

// ----- every failure reason over SSNTP, with the test server and ciaolc -----

const LEGACY: &str = "d7d86208-b46c-4465-9018-fe14087d415f";
const CONTAINER: &str = "67d86208-b46c-4465-9018-e14087d415f";
/// A recovered instance whose state file cannot be read.
const BROKEN: &str = "e1e1e1e1-b46c-4465-9018-fe14087d415f";
/// A recovered stopped VM that boots from volume `BOOT_VOL`.
const BOOTS: &str = "f1f1f1f1-b46c-4465-9018-fe14087d415f";
const BOOT_VOL: &str = "0b0b0b0b-b46c-4465-9018-fe14087d415f";
const V1: &str = "11111111-b46c-4465-9018-fe14087d415f";
const V2: &str = "22222222-b46c-4465-9018-fe14087d415f";

const BINS: Binaries = Binaries {
    server: SERVER,
    launcher: LAUNCHER,
    ciaolc: CIAOLC,
};

/// The `istats` row of `id`, once `pred` holds for it.
fn istats_until(s: &Session, id: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
    wait_for(LONG, what, || {
        s.ok(&["istats"])
            .lines()
            .find(|l| l.starts_with(id))
            .filter(|l| pred(l))
            .map(str::to_string)
    })
}

/// Drains until every `(instance, volume, reason)` arrived; what arrived.
fn drain_until(s: &Session, want: &[(&str, &str, &str)]) -> String {
    let mut all = String::new();
    wait_for(LONG, "every volume failure", || {
        let o = s.ok(&["drain"]);
        if o != "[]\n\n" {
            all.push_str(&o);
        }
        want.iter()
            .all(|(i, v, r)| {
                all.contains(&format!(
                    "- instance_uuid: {i}\n  volume_uuid: {v}\n  reason: {r}\n"
                ))
            })
            .then_some(())
    });
    all
}

#[test]
fn every_failure_reason_over_ssntp_with_ciaolc() {
    let mut s = Session::new(BINS, "ceph-attach", &[]);
    // Two instances the launcher finds at start-up: one whose state cannot
    // be read, one stopped VM that boots from a volume.
    let inst = s.data().join("instances");
    std::fs::create_dir_all(inst.join(BROKEN)).unwrap();
    std::fs::write(inst.join(BROKEN).join("instance.yaml"), "{{{ not yaml").unwrap();
    std::fs::create_dir_all(inst.join(BOOTS)).unwrap();
    let state = format!(
        "version: 1\nstopped: true\nconfig:\n  instance_uuid: {BOOTS}\n  vm_type: qemu\n  fw_type: legacy\n  cpus: 1\n  mem_mb: 64\n  volumes:\n  - uuid: {BOOT_VOL}\n    bootable: true\n"
    );
    std::fs::write(inst.join(BOOTS).join("instance.yaml"), &state).unwrap();
    s.start_launcher(&["--stats-interval=1"]);

    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/payloads");
    s.ok(&[
        "startf",
        examples.join("start_legacy.yaml").to_str().unwrap(),
    ]);
    s.ok(&[
        "startf",
        examples.join("start_container.yaml").to_str().unwrap(),
    ]);
    for id in [LEGACY, CONTAINER] {
        istats_until(&s, id, "active", |l| l.contains("\tactive"));
    }
    let boots = istats_until(&s, BOOTS, "the boot-volume VM recovered", |l| {
        l.contains("exited")
    });
    assert!(boots.contains(BOOT_VOL), "{boots}");

    // Success (simulation records the change) and its STATS.
    assert_eq!(s.ok(&["attach", LEGACY, V1]), "");
    istats_until(&s, LEGACY, "V1 attached", |l| l.contains(V1));

    s.ok(&["attach", LEGACY, V1]); // already_attached
    s.ok(&["detach", LEGACY, V2]); // not_attached
    s.ok(&["attach", CONTAINER, V1]); // not_supported
    s.ok(&["detach", CONTAINER, V1]); // not_supported
    s.ok(&["attach", B, V1]); // no_instance
    s.ok(&["detach", B, V1]); // no_instance
    s.ok(&["attach", BROKEN, V1]); // instance_failure
    s.ok(&["detach", BROKEN, V1]); // instance_failure
    s.ok(&["detach", BOOTS, BOOT_VOL]); // detach_failure: the boot volume
    s.ok(&["attach", "zz-not-hex", V1]); // invalid_data
    assert!(s.post("/attach", b"attach_volume: [x").contains("200"));
    assert!(s.post("/detach", b"detach_volume: {x").contains("200"));
    s.ok(&["detach", LEGACY, "../etc"]); // invalid_data
    let got = drain_until(
        &s,
        &[
            (LEGACY, V1, "already_attached"),
            (LEGACY, V2, "not_attached"),
            (CONTAINER, V1, "not_supported"),
            (B, V1, "no_instance"),
            (BROKEN, V1, "instance_failure"),
            (BOOTS, BOOT_VOL, "detach_failure"),
            ("\"\"", "\"\"", "invalid_data"),
            ("\"\"", "\"\"", "invalid_payload"),
        ],
    );
    // Each of those twice where both directions were tried.
    for (r, times) in [
        ("not_supported", 2),
        ("no_instance", 2),
        ("instance_failure", 2),
        ("invalid_data", 2),
        ("invalid_payload", 2),
    ] {
        assert_eq!(
            got.matches(&format!("reason: {r}\n")).count(),
            times,
            "{r}: {got}"
        );
    }

    // The two found at start-up were moved into the state log.
    assert!(!inst.join(BOOTS).join("instance.yaml").exists());
    // state_failure: the state log cannot be appended to (a directory took
    // its place), so the change is neither recorded nor reported.
    let state_log = inst.join("state.log");
    std::fs::remove_file(&state_log).unwrap();
    std::fs::create_dir_all(state_log.join("blocker")).unwrap();
    s.ok(&["attach", LEGACY, V2]);
    s.ok(&["detach", LEGACY, V1]);
    drain_until(
        &s,
        &[(LEGACY, V2, "state_failure"), (LEGACY, V1, "state_failure")],
    );
    let row = istats_until(&s, LEGACY, "volumes unchanged", |_| true);
    assert!(row.contains(V1) && !row.contains(V2), "{row}");
    drop(s.launcher.take());
}
