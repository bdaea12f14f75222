//! End to end: ceph RBD volumes of real qemu VMs (software emulation),
//! against a real single-node ceph cluster that each test starts in a
//! network namespace of its own (`tests/support/src/ceph.rs`, about 1.2 s)
//! and that its guard ends, also when the test fails. The launcher and its
//! qemu run in that namespace, where the monitor listens.
//!
//! The test guest (`tests/guest/make-test-guest.sh`) lists its block
//! devices on its serial console, reads the first line of every volume a
//! test prepared (`CIAO-VOLUME ...`) and writes a marker 1 MiB into it;
//! booted from a volume, it counts its boots in files on that volume.
//!
//! Without root, qemu or ceph these tests print `SKIPPED: ...` (they fail
//! under `CI=true`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ciao::ssntp::frame::{Command, ErrorCode};
use ciao_test_support::ceph;
use ciao_test_support::cmd;
use ciao_test_support::proc::wait_for;
use ciao_test_support::qemu::{start_payload, BOOT, GUEST_IMAGE, LONG};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");
/// Where the test guest is kept between runs.
const GUEST_CACHE: &str = env!("CARGO_TARGET_TMPDIR");

const A: &str = "a1a1a1a1-b46c-4465-9018-fe14087d415f";
const B: &str = "b2b2b2b2-b46c-4465-9018-fe14087d415f";

/// `start_payload` with a `storage` list (`(id, boot)`), without the
/// backing image when `image` is false.
fn payload_with_volumes(id: &str, host: &str, vols: &[(&str, bool)], image: bool) -> Vec<u8> {
    let mut text = String::from_utf8(start_payload(id, host, false, 128, "")).unwrap();
    let mut storage = String::from("  storage:\n");
    for (v, boot) in vols {
        storage += &format!("  - id: {v}\n");
        if *boot {
            storage += "    boot: true\n";
        }
    }
    let end = text.find("\n...\n").unwrap() + 1;
    text.insert_str(end, &storage);
    if !image {
        text = text.replace(&format!("  image_uuid: {GUEST_IMAGE}\n"), "");
    }
    text.into_bytes()
}

/// The guest's `disk` lines: device name → the data it read ("" if none).
fn disks(console: &str) -> Vec<(String, String)> {
    console
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("CIAO-TEST-GUEST disk "))
        .map(|rest| {
            let dev = rest.split_whitespace().next().unwrap_or("").to_string();
            let data = rest
                .split_once(" data=")
                .map(|(_, d)| d.to_string())
                .unwrap_or_default();
            (dev, data)
        })
        .collect()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn two_volumes_in_order() {
    let Some((_g, guest, c)) = ceph::vm_setup("two_volumes_in_order", GUEST_CACHE, "cv") else {
        return;
    };
    let (v1, v2) = (ceph::uuid(), ceph::uuid());
    c.create_with(&v1, 16, b"CIAO-VOLUME first\n").unwrap();
    c.create_with(&v2, 16, b"CIAO-VOLUME second\n").unwrap();
    let n = c.vm_node(LAUNCHER, &guest, &["--stop-timeout=60"]);

    let t0 = Instant::now();
    n.send(
        Command::Start,
        payload_with_volumes(A, "vols", &[(&v1, false), (&v2, false)], true),
    );
    let st = n.wait_state(A, "active", BOOT);
    eprintln!("START with two volumes to active: {:?}", t0.elapsed());
    assert_eq!(
        st.volumes,
        vec![v1.clone(), v2.clone()],
        "STATS list the volumes"
    );
    let console = n.wait_console(A, "CIAO-TEST-GUEST disks:", BOOT);
    let d = disks(&console);
    let pos = |want: &str| {
        d.iter()
            .position(|(_, data)| data == want)
            .unwrap_or_else(|| panic!("no disk shows {want:?}: {d:?}\n{console}"))
    };
    let (p1, p2) = (pos("CIAO-VOLUME first"), pos("CIAO-VOLUME second"));
    assert!(p1 < p2, "volumes in list order: {d:?}");
    assert_eq!(d.len(), 4, "root disk, config drive, two volumes: {d:?}");
    n.wait_console(A, "CIAO-TEST-GUEST hostname=vols boots=1", BOOT);
    // qemu holds both images open.
    for v in [&v1, &v2] {
        assert_eq!(c.watchers(v).unwrap(), 1, "{}", c.status(v).unwrap());
    }
    // The state log records them.
    let state = ciao_test_support::recorded_state(&n.data, A).unwrap();
    assert!(state.contains(&v1) && state.contains(&v2), "{state}");

    // STOP: qemu closes the images; the guest's writes are in them.
    n.send(Command::Stop, cmd("stop", A));
    n.wait_state(A, "exited", LONG);
    for (v, dev) in [(&v1, &d[p1].0), (&v2, &d[p2].0)] {
        let img = c.export(v).unwrap();
        let want = format!("CIAO-GUEST-WROTE hostname=vols boots=1 disk={dev}\n");
        assert_eq!(
            &img[1_048_576..1_048_576 + want.len()],
            want.as_bytes(),
            "the guest's marker in {v}"
        );
        assert_eq!(c.watchers(v).unwrap(), 0, "{}", c.status(v).unwrap());
    }
    // RESTART attaches them again.
    n.send(Command::Restart, cmd("restart", A));
    n.wait_state(A, "active", BOOT);
    n.wait_console(A, "CIAO-TEST-GUEST hostname=vols boots=2", BOOT);
    assert_eq!(c.watchers(&v2).unwrap(), 1);
    n.send(Command::Delete, cmd("delete", A));
    wait_for(LONG, "the volumes closed", || {
        (c.watchers(&v1).ok()? == 0 && c.watchers(&v2).ok()? == 0).then_some(())
    });
    // DELETE leaves the volumes' data alone.
    assert!(find(&c.export(&v1).unwrap(), b"CIAO-VOLUME first").is_some());
}

#[test]
fn boot_from_volume() {
    let Some((_g, guest, c)) = ceph::vm_setup("boot_from_volume", GUEST_CACHE, "cv") else {
        return;
    };
    let boot = ceph::uuid();
    c.import(&guest, &boot).unwrap();
    let n = c.vm_node(LAUNCHER, &guest, &["--stop-timeout=60"]);
    n.send(
        Command::Start,
        payload_with_volumes(B, "bfv", &[(&boot, true)], false),
    );
    n.wait_state(B, "active", BOOT);
    n.wait_console(B, "CIAO-TEST-GUEST hostname=bfv boots=1", BOOT);
    let dir = n.instance_dir(B);
    assert!(!dir.join("image.qcow2").exists(), "no overlay");
    // STOP by the power button: the guest syncs and powers off.
    n.send(Command::Stop, cmd("stop", B));
    n.wait_state(B, "exited", LONG);
    let img = c.export(&boot).unwrap();
    assert!(
        find(
            &img,
            b"hostname=bfv\nuserdata=#cloud-config\nboots=1\nshutdown=clean\n"
        )
        .is_some(),
        "the guest's files on the boot volume"
    );
    // RESTART boots the same volume again: the count goes on.
    n.send(Command::Restart, cmd("restart", B));
    n.wait_state(B, "active", BOOT);
    n.wait_console(B, "CIAO-TEST-GUEST hostname=bfv boots=2", BOOT);
    n.send(Command::Delete, cmd("delete", B));
    wait_for(LONG, "the boot volume closed", || {
        (c.watchers(&boot).ok()? == 0).then_some(())
    });
}

#[test]
fn dead_monitor_fails_the_start_in_time() {
    let Some((_g, guest, mut c)) =
        ceph::vm_setup("dead_monitor_fails_the_start_in_time", GUEST_CACHE, "cv")
    else {
        return;
    };
    let v = ceph::uuid();
    c.create(&v, 16).unwrap();
    let n = c.vm_node(LAUNCHER, &guest, &["--stop-timeout=60", "--ceph-timeout=3"]);

    // Refused on receipt, before any ceph is involved.
    let mut bad = String::from_utf8(payload_with_volumes(B, "x", &[("", false)], true)).unwrap();
    bad = bad.replace("  - id: \n", "  - boot: true\n");
    n.send(Command::Start, bad.into_bytes());
    let (op, e) = n.error(LONG, "invalid_data (volume without id)");
    assert_eq!(
        (op, e.instance_uuid.as_str(), e.reason.as_str()),
        (ErrorCode::StartFailure, "", "invalid_data")
    );
    n.send(
        Command::Start,
        payload_with_volumes(B, "x", &[(&v, false)], false),
    );
    let (op, e) = n.error(LONG, "invalid_data (no image, no boot volume)");
    assert_eq!(
        (op, e.instance_uuid.as_str(), e.reason.as_str()),
        (ErrorCode::StartFailure, B, "invalid_data")
    );

    n.send(Command::Start, start_payload(A, "alive", false, 96, ""));
    n.wait_state(A, "active", BOOT);
    c.kill_monitor();
    let t = Instant::now();
    n.send(
        Command::Start,
        payload_with_volumes(B, "x", &[(&v, false)], true),
    );
    let (op, e) = n.error(LONG, "launch_failure");
    let took = t.elapsed();
    eprintln!("START with the monitor down: launch_failure after {took:?}");
    assert_eq!(
        (op, e.instance_uuid.as_str(), e.reason.as_str()),
        (ErrorCode::StartFailure, B, "launch_failure")
    );
    assert!(
        took < Duration::from_secs(20),
        "not within the ceph timeout (3 s) plus the preparation: {took:?}"
    );
    let log = n.log();
    assert!(
        log.lines()
            .any(|l| l.contains("launch_failure") && l.contains("Connection timed out")),
        "qemu's reason in the log:\n{log}"
    );
    // The other VM carried on and still obeys.
    let m: HashMap<_, _> = n
        .stats_until(LONG, "both listed", |m| m.contains_key(B))
        .instances
        .into_iter()
        .map(|i| (i.instance_uuid.clone(), i))
        .collect();
    assert_eq!(m[A].state, "active");
    assert_eq!(m[B].state, "exited");
    assert_eq!(m[B].volumes, vec![v.clone()]);
    n.wait_console(A, "CIAO-TEST-GUEST hostname=alive boots=1", BOOT);
    for id in [A, B] {
        n.send(Command::Delete, cmd("delete", id));
    }
    n.stats_until(LONG, "both deleted", |m| m.is_empty());
}

/// START-to-active with two volumes and without (median of 5 each): the
/// figures the issue asks for, printed; not a pass/fail threshold beyond
/// catching a hang.
#[test]
fn start_to_active_with_and_without_volumes() {
    let Some((_g, guest, c)) = ceph::vm_setup(
        "start_to_active_with_and_without_volumes",
        GUEST_CACHE,
        "cv",
    ) else {
        return;
    };
    let (v1, v2) = (ceph::uuid(), ceph::uuid());
    c.create(&v1, 16).unwrap();
    c.create(&v2, 16).unwrap();
    let n = c.vm_node(LAUNCHER, &guest, &["--stop-timeout=60"]);
    let median = |vols: &[(&str, bool)]| {
        let mut times = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            n.send(Command::Start, payload_with_volumes(A, "t", vols, true));
            n.wait_state(A, "active", BOOT);
            times.push(t.elapsed());
            n.send(Command::Delete, cmd("delete", A));
            n.stats_until(LONG, "deleted", |m| !m.contains_key(A));
        }
        times.sort();
        times[2]
    };
    let without = median(&[]);
    let with = median(&[(&v1, false), (&v2, false)]);
    eprintln!(
        "START to active, median of 5: without volumes {without:?}, with two volumes {with:?}"
    );
}
