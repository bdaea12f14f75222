//! End to end: real qemu VMs (software emulation) run by the real
//! `ciao-launcher`, driven over SSNTP by a server built on our library.
//! The guest is the tiny Debian kernel + busybox image that
//! `tests/guest/make-test-guest.sh` builds: it prints
//! `CIAO-TEST-GUEST hostname=<meta-data hostname> boots=<n> userdata=<first
//! user-data line>` on its serial console, counts its boots on its own
//! disk, and powers off on the ACPI power button.
//!
//! Without root or qemu these tests print `SKIPPED: ...` (they fail under
//! `CI=true`). They run one at a time and clean up every qemu they start.

// Test set-up calls libc (kill) directly rather than widening `ciao::sys`.
#![allow(unsafe_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ciao::payloads::InstanceDeleted;
use ciao::ssntp::frame::{Command, ErrorCode, Event, Op};
use ciao_test_support::proc::{wait_for, TempDir};
use ciao_test_support::qemu::{self, start_payload, VmNode, BOOT, LONG};
use ciao_test_support::{cmd, skip_or_fail};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");
/// Where the test guest is kept between runs.
const GUEST_CACHE: &str = env!("CARGO_TARGET_TMPDIR");

const A: &str = "a1a1a1a1-b46c-4465-9018-fe14087d415f";
const B: &str = "b2b2b2b2-b46c-4465-9018-fe14087d415f";

fn marker(host: &str, boots: u32) -> String {
    format!("CIAO-TEST-GUEST hostname={host} boots={boots} userdata=#cloud-config")
}

/// Nothing of the instance is left: no process, no directory.
fn assert_gone(n: &VmNode, id: &str) {
    let dir = n.instance_dir(id);
    wait_for(LONG, "no qemu left", || {
        qemu::pids_under(&dir).is_empty().then_some(())
    });
    assert!(!dir.exists(), "{} still exists", dir.display());
}

fn expect_deleted(n: &VmNode, id: &str) {
    let (_, f) = n.server.expect_frame(LONG, "InstanceDeleted", |f| {
        f.op == Op::Event(Event::InstanceDeleted)
    });
    assert_eq!(
        InstanceDeleted::parse(&f.payload).unwrap().instance_uuid,
        id
    );
}

#[test]
fn legacy_vm_lifecycle() {
    let Some((_g, guest)) = qemu::setup("legacy_vm_lifecycle", GUEST_CACHE) else {
        return;
    };
    let n = VmNode::new(LAUNCHER, "qemu-cycle", &guest, &["--stop-timeout=60"], None);
    let t0 = Instant::now();
    n.send(Command::Start, start_payload(A, "guest-a", false, 128, ""));
    let st = n.wait_state(A, "active", BOOT);
    eprintln!("START to active: {:?}", t0.elapsed());
    assert_eq!(
        (st.ssh_ip.as_str(), st.ssh_port),
        ("192.168.42.21", 33000 + 8 * 256 + 2)
    );
    n.wait_console(A, &marker("guest-a", 1), BOOT);
    eprintln!("START to guest marker: {:?}", t0.elapsed());
    // Memory and CPU of the qemu process.
    let st = n.stats_until(BOOT, "memory and CPU figures", |m| {
        m.get(A)
            .is_some_and(|i| i.memory_usage_mb > 0 && i.cpu_usage >= 0 && i.disk_usage_mb >= 0)
    });
    let i = st.instances.iter().find(|i| i.instance_uuid == A).unwrap();
    eprintln!(
        "STATS: memory {} MB, CPU {}%, disk {} MB",
        i.memory_usage_mb, i.cpu_usage, i.disk_usage_mb
    );
    assert!(
        i.memory_usage_mb < 1024,
        "PSS of a 128 MB guest: {}",
        i.memory_usage_mb
    );
    let pid = qemu::qemu_pid(&n.data, A).expect("pidfile");
    // The files of an instance directory (docs/qemu.md).
    let dir = n.instance_dir(A);
    for f in [
        "image.qcow2",
        "seed.iso",
        "socket",
        "qemu.pid",
        "console.log",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    assert!(
        ciao_test_support::recorded_state(&n.data, A).is_some(),
        "its state is in the state log"
    );
    assert!(
        !dir.join("clr-cloud-init").exists(),
        "the config drive staging area is removed"
    );

    // STOP: the guest powers off on the ACPI button (no quit, no kill).
    let t = Instant::now();
    n.send(Command::Stop, cmd("stop", A));
    n.wait_state(A, "exited", LONG);
    eprintln!("STOP took {:?}", t.elapsed());
    assert!(!qemu::alive(pid));
    n.wait_console(
        A,
        "CIAO-TEST-GUEST power button: shutting down",
        Duration::from_secs(5),
    );
    let log = n.log();
    assert!(
        log.contains("the guest powered off after the ACPI power button"),
        "{log}"
    );

    // RESTART: same disk (the guest counts its boots there).
    n.send(Command::Restart, cmd("restart", A));
    n.wait_state(A, "active", BOOT);
    n.wait_console(A, &marker("guest-a", 2), BOOT);

    // DELETE of the running VM: quit, files removed after, event.
    let pid = qemu::qemu_pid(&n.data, A).expect("pidfile");
    n.send(Command::Delete, cmd("delete", A));
    expect_deleted(&n, A);
    assert!(!qemu::alive(pid), "qemu {pid} outlived DELETE");
    assert_gone(&n, A);
    n.stats_until(LONG, "instance gone from STATS", |m| !m.contains_key(A));
}

#[test]
fn efi_vm_boots() {
    let Some((_g, guest)) = qemu::setup("efi_vm_boots", GUEST_CACHE) else {
        return;
    };
    if qemu::ovmf().is_none()
        && !skip_or_fail(
            "efi_vm_boots",
            "OVMF is not installed (apt-get install ovmf)",
        )
    {
        return;
    }
    let n = VmNode::new(LAUNCHER, "qemu-efi", &guest, &[], None);
    let t0 = Instant::now();
    // OVMF needs more than 128 MB.
    n.send(Command::Start, start_payload(A, "guest-efi", true, 192, ""));
    n.wait_state(A, "active", BOOT);
    n.wait_console(A, &marker("guest-efi", 1), BOOT);
    eprintln!("EFI START to guest marker: {:?}", t0.elapsed());
    let args = std::fs::read(format!(
        "/proc/{}/cmdline",
        qemu::qemu_pid(&n.data, A).unwrap()
    ))
    .unwrap();
    assert!(
        String::from_utf8_lossy(&args).contains("-bios"),
        "EFI VMs get the OVMF firmware"
    );
    n.send(Command::Delete, cmd("delete", A));
    expect_deleted(&n, A);
    assert_gone(&n, A);
}

#[test]
fn recovery_after_kill9() {
    let Some((_g, guest)) = qemu::setup("recovery_after_kill9", GUEST_CACHE) else {
        return;
    };
    let mut n = VmNode::new(
        LAUNCHER,
        "qemu-recover",
        &guest,
        &["--stats-interval=5"],
        None,
    );
    n.send(Command::Start, start_payload(A, "guest-a", false, 96, ""));
    n.send(Command::Start, start_payload(B, "guest-b", false, 96, ""));
    n.stats_until(BOOT, "both active", |m| {
        m.get(A).is_some_and(|i| i.state == "active")
            && m.get(B).is_some_and(|i| i.state == "active")
    });
    n.wait_console(A, &marker("guest-a", 1), BOOT);
    n.wait_console(B, &marker("guest-b", 1), BOOT);
    let (pa, pb) = (
        qemu::qemu_pid(&n.data, A).unwrap(),
        qemu::qemu_pid(&n.data, B).unwrap(),
    );

    // The launcher dies; the VMs do not.
    n.kill9();
    assert!(
        qemu::alive(pa) && qemu::alive(pb),
        "VMs survive the launcher"
    );
    n.start_launcher();
    n.stats_until(LONG, "both re-adopted as active", |m| {
        m.get(A).is_some_and(|i| i.state == "active")
            && m.get(B).is_some_and(|i| i.state == "active")
    });
    assert_eq!(
        qemu::qemu_pid(&n.data, A),
        Some(pa),
        "the same qemu, not a new one"
    );

    // STOP and DELETE work on re-adopted VMs.
    n.send(Command::Stop, cmd("stop", A));
    n.wait_state(A, "exited", LONG);
    assert!(!qemu::alive(pa));
    assert!(n
        .log()
        .contains("the guest powered off after the ACPI power button"));
    n.send(Command::Delete, cmd("delete", A));
    expect_deleted(&n, A);
    assert_gone(&n, A);

    // A qemu killed behind the launcher's back: exited within one interval.
    // SAFETY: kill(2) on the qemu PID of our own test VM.
    unsafe { libc::kill(pb, libc::SIGKILL) };
    let t = Instant::now();
    n.wait_state(B, "exited", LONG);
    let took = t.elapsed();
    eprintln!("kill -9 of qemu reported exited after {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "not within one stats interval (5 s): {took:?}"
    );
    // RESTART works on the same disk, despite the stale pidfile and socket.
    n.send(Command::Restart, cmd("restart", B));
    n.wait_state(B, "active", BOOT);
    n.wait_console(B, &marker("guest-b", 2), BOOT);
    n.send(Command::Delete, cmd("delete", B));
    expect_deleted(&n, B);
    assert_gone(&n, B);
}

#[test]
fn failures_keep_the_launcher_serving() {
    let Some((_g, guest)) = qemu::setup("failures_keep_the_launcher_serving", GUEST_CACHE) else {
        return;
    };
    let n = VmNode::new(LAUNCHER, "qemu-fail", &guest, &["--stop-timeout=3"], None);

    // A backing image that does not exist: image_failure, nothing left.
    let p = String::from_utf8(start_payload(A, "x", false, 96, ""))
        .unwrap()
        .replace("image_uuid: ciao-test-guest", "image_uuid: no-such-image");
    n.send(Command::Start, p.into_bytes());
    let (op, e) = n.error(LONG, "image_failure");
    assert_eq!(
        (op, e.instance_uuid.as_str(), e.reason.as_str()),
        (ErrorCode::StartFailure, A, "image_failure")
    );
    wait_for(LONG, "no instance directory", || {
        (!n.instance_dir(A).exists()).then_some(())
    });

    // qemu refuses its arguments: launch_failure, qemu's own message logged.
    let p = String::from_utf8(start_payload(A, "x", false, 96, ""))
        .unwrap()
        .replace(
            "     - type: vcpus\n       value: 1\n",
            "     - type: vcpus\n       value: 1000\n",
        );
    n.send(Command::Start, p.into_bytes());
    let (op, e) = n.error(LONG, "launch_failure");
    assert_eq!(
        (op, e.instance_uuid.as_str(), e.reason.as_str()),
        (ErrorCode::StartFailure, A, "launch_failure")
    );
    let log = n.log();
    let line = log
        .lines()
        .find(|l| l.contains("launch_failure") && l.contains(A))
        .unwrap_or_else(|| panic!("no launch_failure line for {A}:\n{log}"));
    assert!(
        line.contains("CPUs"),
        "qemu's own message is in the log line: {line}"
    );
    n.send(Command::Delete, cmd("delete", A));
    expect_deleted(&n, A);
    assert_gone(&n, A);

    // A guest that ignores the ACPI button: STOP ends it with quit.
    n.send(
        Command::Start,
        start_payload(B, "stubborn", false, 96, "# ciao-test-ignore-acpi\n"),
    );
    n.wait_state(B, "active", BOOT);
    n.wait_console(B, "ignoring the ACPI power button", BOOT);
    let t = Instant::now();
    n.send(Command::Stop, cmd("stop", B));
    n.wait_state(B, "exited", LONG);
    assert!(
        t.elapsed() >= Duration::from_secs(3),
        "waited for the stop timeout"
    );
    let log = n.log();
    assert!(
        log.contains("ended by QMP quit (the guest ignored the ACPI power button)"),
        "{log}"
    );
    n.send(Command::Delete, cmd("delete", B));
    expect_deleted(&n, B);
    assert_gone(&n, B);
}

#[test]
fn slow_image_does_not_block_others() {
    let Some((_g, guest)) = qemu::setup("slow_image_does_not_block_others", GUEST_CACHE) else {
        return;
    };
    // A qemu-img that takes 12 s for the image named "slow-guest".
    let wrap = TempDir::new("qemu-wrap");
    let real = [
        "/usr/bin/qemu-img",
        "/bin/qemu-img",
        "/usr/local/bin/qemu-img",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
    .expect("qemu-img");
    let script = wrap.path().join("qemu-img");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$*\" in *slow-guest*) sleep 12;; esac\nexec {} \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&script).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let n = VmNode::new(
        LAUNCHER,
        "qemu-slow",
        &guest,
        &["--stats-interval=1"],
        Some(wrap.path().to_path_buf()),
    );
    std::os::unix::fs::symlink(&guest, n.data.join("images/slow-guest")).unwrap();

    n.send(Command::Start, start_payload(A, "guest-a", false, 96, ""));
    n.wait_state(A, "active", BOOT);
    n.wait_console(A, &marker("guest-a", 1), BOOT);

    let p = String::from_utf8(start_payload(B, "guest-b", false, 96, ""))
        .unwrap()
        .replace("image_uuid: ciao-test-guest", "image_uuid: slow-guest");
    let t = Instant::now();
    n.send(Command::Start, p.into_bytes());
    n.send(Command::Stop, cmd("stop", A));
    // STATS keep coming and A stops while B's image is still being made.
    let mut stats = 0;
    let st = n.stats_until(LONG, "A exited", |m| {
        m.get(A).is_some_and(|i| i.state == "exited")
    });
    stats += 1;
    let b = st
        .instances
        .iter()
        .find(|i| i.instance_uuid == B)
        .expect("B listed");
    assert_eq!(
        b.state, "pending",
        "B still being prepared when A has stopped"
    );
    let stopped = t.elapsed();
    while t.elapsed() < Duration::from_secs(6) {
        n.stats_until(LONG, "any STATS", |_| true);
        stats += 1;
    }
    eprintln!(
        "A stopped after {stopped:?} while B was preparing; {stats} STATS in {:?}",
        t.elapsed()
    );
    assert!(
        stopped < Duration::from_secs(10),
        "STOP of A waited for B: {stopped:?}"
    );
    assert!(stats >= 4, "STATS flowed while B was preparing: {stats}");
    n.wait_state(B, "active", BOOT);
    assert!(
        t.elapsed() >= Duration::from_secs(12),
        "the wrapper did delay B"
    );
    n.wait_console(B, &marker("guest-b", 1), BOOT);
    for id in [A, B] {
        n.send(Command::Delete, cmd("delete", id));
        expect_deleted(&n, id);
        assert_gone(&n, id);
    }
}

/// `-with-ui nc`: the serial console on a loopback TCP port, logged with
/// the netcat command to use; a TCP client reads what the guest prints
/// (and `console.log` still gets it too).
#[test]
fn nc_console_on_loopback() {
    let Some((_g, guest)) = qemu::setup("nc_console_on_loopback", GUEST_CACHE) else {
        return;
    };
    let n = VmNode::new(LAUNCHER, "qemu-nc", &guest, &["-with-ui=nc"], None);
    n.send(Command::Start, start_payload(A, "guest-nc", false, 96, ""));
    n.wait_state(A, "active", BOOT);
    let port: u16 = wait_for(LONG, "the console's port in the log", || {
        let log = n.log();
        let line = log
            .lines()
            .find(|l| l.contains("serial console on 127.0.0.1:"))?;
        let rest = line.split("127.0.0.1:").nth(1)?;
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    });
    assert!(n.log().contains(&format!("nc 127.0.0.1 {port}")));
    // Connected while the guest boots (software emulation takes seconds):
    // what it prints from now on comes through the socket.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the console");
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let want = marker("guest-nc", 1);
    let mut got = Vec::new();
    let end = Instant::now() + BOOT;
    while !String::from_utf8_lossy(&got).contains(&want) {
        assert!(
            Instant::now() < end,
            "no marker through the TCP console:\n{}",
            String::from_utf8_lossy(&got)
        );
        let mut buf = [0u8; 4096];
        match std::io::Read::read(&mut s, &mut buf) {
            Ok(0) => panic!("console closed"),
            Ok(k) => got.extend_from_slice(&buf[..k]),
            Err(_) => {}
        }
    }
    assert!(n.console(A).contains(&want), "console.log keeps a copy");
    n.send(Command::Delete, cmd("delete", A));
    expect_deleted(&n, A);
    assert_gone(&n, A);
}
