//! Ceph volumes of containers, inside the kernel lab (experiment).

use std::process::Command as Process;
use std::time::Duration;

use ciao_test_support::ceph::{self, Cluster};
use ciao_test_support::lab;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

#[test]
fn ceph_container_lab() {
    let boot = lab::Boot {
        mem_mb: 1024,
        timeout: Duration::from_secs(600),
    };
    lab::run_suite("ceph_container_lab", CACHE, &boot);
}

fn sh(argv: &[&str]) -> String {
    let o = Process::new(argv[0]).args(&argv[1..]).output().unwrap();
    let s = format!(
        "$ {}\n[{}] {}{}",
        argv.join(" "),
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("{s}");
    s
}

#[test]
#[ignore = "inner: runs inside the kernel lab (ceph_container_lab)"]
fn a_experiment() {
    if !lab::inside("a_experiment") {
        return;
    }
    sh(&["modprobe", "rbd"]);
    let c = Cluster::start("cx").unwrap();
    eprintln!("cluster in {:?}", c.started_in);
    c.create("img1", 32).unwrap();
    let conf = c.conf().display().to_string();
    let net = format!("--net=/run/netns/{}", c.ns.name);
    let t = std::time::Instant::now();
    sh(&[
        "timeout", "60", "nsenter", &net, "rbd", "-c", &conf, "--id", "ciao", "map", "img1",
    ]);
    eprintln!("map took {:?}", t.elapsed());
    sh(&[
        "timeout", "60", "nsenter", &net, "rbd", "-c", &conf, "--id", "ciao", "map", "-o",
        "noudev", "img1",
    ]);
    sh(&[
        "timeout",
        "60",
        "nsenter",
        &net,
        "rbd",
        "-c",
        &conf,
        "--id",
        "ciao",
        "map",
        "-o",
        "ms_mode=prefer-crc,noudev",
        "img1",
    ]);
    sh(&[
        "timeout",
        "60",
        "nsenter",
        &net,
        "rbd",
        "-c",
        &conf,
        "--id",
        "ciao",
        "map",
        "-o",
        "ms_mode=prefer-crc",
        "img1",
    ]);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(c.conf())
        .unwrap();
    use std::io::Write;
    writeln!(
        f,
        "[client]\nrbd default map options = ms_mode=prefer-crc,noudev"
    )
    .unwrap();
    drop(f);
    let t = std::time::Instant::now();
    sh(&[
        "timeout", "60", "nsenter", &net, "rbd", "-c", &conf, "--id", "ciao", "map", "img1",
    ]);
    eprintln!("map took {:?}", t.elapsed());
    sh(&[
        "timeout",
        "60",
        "nsenter",
        &net,
        "rbd",
        "-c",
        &conf,
        "--id",
        "ciao",
        "showmapped",
        "--format",
        "json",
    ]);
    sh(&["ls", "-l", "/dev/rbd0", "/dev/rbd"]);
    sh(&["mkfs.ext4", "-q", "/dev/rbd0"]);
    std::fs::create_dir_all("/run/mnt1").unwrap();
    sh(&["mount", "/dev/rbd0", "/run/mnt1"]);
    sh(&[
        "sh",
        "-c",
        "echo hello > /run/mnt1/f; grep rbd /proc/self/mountinfo",
    ]);
    sh(&["umount", "/run/mnt1"]);
    sh(&[
        "timeout",
        "60",
        "nsenter",
        &net,
        "rbd",
        "-c",
        &conf,
        "--id",
        "ciao",
        "unmap",
        "/dev/rbd0",
    ]);
    sh(&[
        "timeout",
        "60",
        "nsenter",
        &net,
        "rbd",
        "-c",
        &conf,
        "--id",
        "ciao",
        "showmapped",
        "--format",
        "json",
    ]);
    sh(&["sh", "-c", "command -v dockerd mount umount debugfs"]);
    let _ = ceph::CEPH_ID;
}
