//! Ceph volumes of containers, for real: `rbd map` needs the kernel's
//! `rbd` module, which this machine's kernel lacks, so the test runs in
//! the kernel lab (tests/lab/README.md), with a private dockerd and a
//! throw-away ceph cluster (tests/support/src/ceph.rs) inside it.
//!
//! One outer test, `ceph_container_lab`, boots the lab once; the inner
//! test below shares one cluster and one dockerd (under software
//! emulation each takes 10-40 s to start):
//!
//! * a container STARTed with an ext4 volume writes a file on it; the
//!   launcher mapped and mounted it at `<instance dir>/volumes/<uuid>`
//!   before the start; DELETE unmounts, unmaps and removes the
//!   directory, and the file is still in the image (`rbd export`, read
//!   with `debugfs`);
//! * kill -9 of the launcher with a container using a volume: the next
//!   launcher finds its mount and re-adopts it; then `-hard-reset`
//!   deletes the instance: the volume is unmounted and unmapped before
//!   the directory goes, and its files survive in the image.
//!
//! The launcher runs in the cluster's network namespace (started from a
//! thread that entered it: the mount namespace stays the lab's, and
//! dockerd must see the launcher's mounts). The
//! kernel's client speaks msgr2 only with `ms_mode=prefer-crc`, given to
//! `rbd map` through the cluster configuration's `rbd default map
//! options`.

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ciao::ssntp::frame::Command;
use ciao_test_support::ceph::{self, Cluster};
use ciao_test_support::docker::node::{container_payload, Node, LONG};
use ciao_test_support::docker::{Dockerd, EXAMPLE_IMAGE};
use ciao_test_support::lab;
use ciao_test_support::proc::Proc;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");
const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");

/// The outer test: one boot for the inner test.
#[test]
fn ceph_container_lab() {
    let boot = lab::Boot {
        mem_mb: 1024,
        timeout: Duration::from_secs(600),
    };
    lab::run_suite("ceph_container_lab", CACHE, &boot);
}

/// Runs a program; its stdout, or a panic with everything it said.
fn run(argv: &[&str]) -> String {
    let o = Process::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", argv[0]));
    assert!(
        o.status.success(),
        "{}: {}\n{}{}",
        argv.join(" "),
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// An image `name` holding an empty ext4 file system (made in a file,
/// then `rbd import`ed).
fn ext4_image(c: &Cluster, name: &str) {
    let f = c.dir.path().join(format!("{name}.ext4"));
    run(&["truncate", "-s", "64M", &f.display().to_string()]);
    run(&["mkfs.ext4", "-q", "-F", &f.display().to_string()]);
    c.import(&f, name).unwrap();
    let _ = std::fs::remove_file(&f);
}

/// The content of `/<file>` on the ext4 file system of image `name`
/// (`rbd export`, then `debugfs`).
fn file_in_image(c: &Cluster, name: &str, file: &str) -> String {
    let bytes = c.export(name).unwrap();
    let f = c.dir.path().join(format!("{name}.read"));
    std::fs::write(&f, bytes).unwrap();
    let out = run(&[
        "debugfs",
        "-R",
        &format!("cat /{file}"),
        &f.display().to_string(),
    ]);
    let _ = std::fs::remove_file(&f);
    out
}

/// Mounts at or below `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let t = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    t.lines()
        .filter(|l| {
            l.split(' ')
                .nth(4)
                .is_some_and(|p| Path::new(p).starts_with(dir))
        })
        .map(str::to_string)
        .collect()
}

/// Unmounts whatever is left below the node's directory before it is
/// removed (declared after the node, so it drops first), so that a
/// failing test never deletes through a mount.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        for l in mounts_under(&self.0).iter().rev() {
            if let Some(p) = l.split(' ').nth(4) {
                let _ = Process::new("umount").arg("-l").arg(p).status();
            }
        }
    }
}

/// The container example with one volume; the container writes `text`
/// to `/volumes/<vol>/marker`, then sleeps.
fn payload(id: &str, vol: &str, text: &str) -> Vec<u8> {
    let cmd =
        format!("echo {text} > /volumes/{vol}/marker && sync && while true; do sleep 60; done");
    let mut p = String::from_utf8(container_payload(id, EXAMPLE_IMAGE, &cmd)).unwrap();
    let end = p.find("\n...\n").unwrap() + 1;
    p.insert_str(end, &format!("  storage:\n  - id: {vol}\n"));
    p.into_bytes()
}

/// Waits until `path` exists (the container wrote it).
fn wait_for(path: &Path) {
    let end = Instant::now() + LONG;
    while !path.exists() {
        assert!(Instant::now() < end, "{} never appeared", path.display());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn mapped(c: &Cluster) -> String {
    c.rbd(&["showmapped", "--format", "json"]).unwrap()
}

#[test]
#[ignore = "inner: runs inside the kernel lab (ceph_container_lab)"]
fn container_volume_delete_then_kill_9_and_hard_reset() {
    const TEST: &str = "container_volume_delete_then_kill_9_and_hard_reset";
    if !lab::inside(TEST) {
        return;
    }
    // The lab's /tmp is an overlay, where dockerd's overlay2 cannot
    // stack: everything goes to /run (a tmpfs).
    std::env::set_var("TMPDIR", "/run");
    if let Some(why) = ceph::missing() {
        ciao_test_support::skip_or_fail(TEST, &why);
        return;
    }
    run(&["modprobe", "rbd"]);
    let t = Instant::now();
    let c = Cluster::start("cctr").unwrap();
    let mut conf = std::fs::read_to_string(c.conf()).unwrap();
    conf.push_str("[client]\nrbd default map options = ms_mode=prefer-crc\n");
    std::fs::write(c.conf(), conf).unwrap();
    eprintln!(
        "{TEST}: ceph up in {:.1?} (temporary files in {})",
        t.elapsed(),
        std::env::temp_dir().display()
    );
    // The test server and the launcher in the cluster's network
    // namespace (a thread that entered it; its children inherit it), in
    // the lab's one mount namespace: dockerd must see the launcher's
    // mounts.
    let c = Arc::new(c);
    let c2 = c.clone();
    c.ns.on_thread(move || in_the_cluster_namespace(&c2));
}

fn in_the_cluster_namespace(c: &Cluster) {
    const TEST: &str = "container_volume_delete_then_kill_9_and_hard_reset";
    let t = Instant::now();
    let Some(d) = Dockerd::require(TEST) else {
        return;
    };
    eprintln!("{TEST}: dockerd up in {:.1?}", t.elapsed());
    let conf = c.conf().display().to_string();
    let mut n = Node::new(
        LAUNCHER,
        "cctr",
        &d,
        &["-ceph_id", ceph::CEPH_ID, "--ceph-conf", &conf],
    );
    let _unmount = Unmount(n.tmp.path().to_path_buf());

    // START with an ext4 volume; the container writes on it.
    let (id, vol) = (ceph::uuid(), ceph::uuid());
    ext4_image(c, &vol);
    let t = Instant::now();
    n.send(
        Command::Start,
        payload(&id, &vol, "written-by-the-container"),
    );
    let st = n.state(&id, "active");
    eprintln!(
        "{TEST}: START to active with one volume: {:.1?}",
        t.elapsed()
    );
    assert_eq!(
        st.volumes,
        std::slice::from_ref(&vol),
        "STATS report the volume"
    );
    let point = n.instance_dir(&id).join("volumes").join(&vol);
    wait_for(&point.join("marker"));
    assert_eq!(
        mounts_under(&point).len(),
        1,
        "mounted at {}",
        point.display()
    );
    assert!(mapped(c).contains(&vol), "{}", mapped(c));
    let record = std::fs::read_to_string(n.instance_dir(&id).join("rbd-mapped")).unwrap();
    assert!(record.starts_with(&format!("{vol} /dev/rbd")), "{record}");

    // DELETE: unmounted, unmapped, directory gone, data in the image.
    let t = Instant::now();
    n.delete(&id);
    eprintln!("{TEST}: DELETE with one volume: {:.1?}", t.elapsed());
    assert!(mounts_under(n.tmp.path()).is_empty());
    assert!(!mapped(c).contains(&vol), "{}", mapped(c));
    assert_eq!(
        file_in_image(c, &vol, "marker").trim(),
        "written-by-the-container"
    );

    // kill -9 with a volume in use: the next launcher finds the mount.
    let (id2, vol2) = (ceph::uuid(), ceph::uuid());
    ext4_image(c, &vol2);
    n.send(
        Command::Start,
        payload(&id2, &vol2, "survives-the-hard-reset"),
    );
    n.state(&id2, "active");
    let point2 = n.instance_dir(&id2).join("volumes").join(&vol2);
    wait_for(&point2.join("marker"));
    n.kill9();
    n.start_launcher();
    n.state(&id2, "active");
    let log = n.log();
    assert!(
        log.contains(&format!("volume {vol2} is mounted from /dev/rbd")),
        "{log}"
    );
    assert!(log.contains("(mapped by the launcher)"), "{log}");
    n.kill9();

    // -hard-reset: unmounted and unmapped before the directory goes.
    let mut args = n.args.clone();
    args.push("-hard-reset".into());
    let mut reset = Proc::start(LAUNCHER, &args, n.tmp.path(), "hard-reset");
    let status = reset.wait_exit(Duration::from_secs(120));
    let reset_log =
        std::fs::read_to_string(n.tmp.path().join("hard-reset.log")).unwrap_or_default();
    assert!(
        status.is_some_and(|s| s.success()),
        "hard reset: {status:?}\n{reset_log}"
    );
    assert!(!n.instance_dir(&id2).exists(), "{reset_log}");
    assert!(mounts_under(n.tmp.path()).is_empty(), "{reset_log}");
    assert!(!mapped(c).contains(&vol2), "{}", mapped(c));
    assert_eq!(
        file_in_image(c, &vol2, "marker").trim(),
        "survives-the-hard-reset"
    );
}
