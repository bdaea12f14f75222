//! Figures for `make bench` (bench/qemu.sh runs these ignored tests):
//! START-to-active of the launcher against the same steps done by a plain
//! shell script, and the cost of one stats tick with 10 running VMs.
//! Reported, never asserted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ciao::driver::{Cx, Driver, InstanceKey, Jobs};
use ciao::launcher::nodestats;
use ciao::payloads::{InstanceConfig, InstanceStat, Stat};
use ciao::qemu::{QemuDriver, RealHost, Settings, Shared, Virtualisation};
use ciao::ssntp::frame;
use ciao_test_support::cmd;
use ciao_test_support::qemu::{self, start_payload, VmNode, BOOT, LONG};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");
/// Where the test guest is kept between runs.
const GUEST_CACHE: &str = env!("CARGO_TARGET_TMPDIR");

fn id(i: usize) -> String {
    format!("{i:08x}-b46c-4465-9018-fe14087d415f")
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

#[test]
#[ignore]
fn bench_start_to_active() {
    let Some((_g, guest)) = qemu::setup("bench_start_to_active", GUEST_CACHE) else {
        return;
    };
    let runs = 5;
    let n = VmNode::new(LAUNCHER, "qemu-bench", &guest, &[], None);
    let mut ours = Vec::new();
    let mut shell = Vec::new();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guest/baseline-start.sh");
    for r in 0..runs {
        let vm = id(r + 1);
        let t = Instant::now();
        n.send(
            frame::Command::Start,
            start_payload(&vm, "bench", false, 96, ""),
        );
        n.wait_state(&vm, "active", BOOT);
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
        n.send(frame::Command::Delete, cmd("delete", &vm));
        n.stats_until(LONG, "deleted", |m| !m.contains_key(&vm));

        let dir = n.tmp.path().join(format!("sh{r}"));
        let out = Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .arg(&guest)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ms: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        shell.push(ms);
    }
    let (o, s) = (median(&mut ours), median(&mut shell));
    println!("qemu START-to-active (median of {runs}): launcher {o:.0} ms, shell script {s:.0} ms, ratio {:.2}", o / s);
    println!("BENCH qemu_start_to_active_ms {o:.0}");
    println!("BENCH qemu_start_to_active_shell_ms {s:.0}");
    println!("BENCH qemu_start_to_active_ratio {:.2}", o / s);
}

#[test]
#[ignore]
fn bench_stats_tick_10_vms() {
    let Some((_g, guest)) = qemu::setup("bench_stats_tick_10_vms", GUEST_CACHE) else {
        return;
    };
    let n = VmNode::new(LAUNCHER, "qemu-bench10", &guest, &[], None);
    let ids: Vec<String> = (1..=10).map(id).collect();
    for vm in &ids {
        n.send(
            frame::Command::Start,
            start_payload(vm, "bench", false, 64, ""),
        );
    }
    n.stats_until(BOOT, "10 active", |m| {
        ids.iter()
            .all(|i| m.get(i).is_some_and(|s| s.state == "active"))
    });
    // Let the guests settle (boot done, idle).
    std::thread::sleep(Duration::from_secs(20));

    // The same drivers the launcher uses, adopting the 10 running qemus.
    let shared = Shared::new(
        Settings::new(
            n.data.join("images"),
            Virtualisation::Software,
            None,
            Duration::from_secs(30),
        ),
        Box::new(RealHost),
    );
    let instances = n.data.join("instances");
    let mut drivers = Vec::new();
    let start = Instant::now();
    for vm in &ids {
        let config = InstanceConfig {
            instance_uuid: vm.clone(),
            image_uuid: qemu::GUEST_IMAGE.into(),
            cpus: 1,
            mem_mb: 64,
            ..InstanceConfig::default()
        };
        let dir: PathBuf = instances.join(vm);
        let mut d = QemuDriver::new(shared.clone(), dir);
        let (mut effects, mut outcomes, mut jobs) = (Vec::new(), Vec::new(), Jobs::default());
        let key = InstanceKey {
            id: vm.as_str().into(),
            generation: 1,
        };
        let mut cx = Cx::new(start, &key, &config, &mut effects, &mut outcomes, &mut jobs);
        d.recover(&mut cx, false);
        assert!(outcomes.is_empty(), "{vm} adopted");
        drivers.push((d, config));
    }
    let ticks = 200;
    let t = Instant::now();
    let mut bytes = 0;
    for k in 0..ticks {
        let now = start + Duration::from_secs(30 * (k + 1));
        let node = nodestats::sample(&instances);
        let list: Vec<InstanceStat> = drivers
            .iter_mut()
            .map(|(d, c)| {
                let u = d.usage(c, now);
                InstanceStat {
                    instance_uuid: c.instance_uuid.clone(),
                    state: "active".into(),
                    memory_usage_mb: u.memory_mb,
                    disk_usage_mb: u.disk_mb,
                    cpu_usage: u.cpu_percent,
                    ..InstanceStat::default()
                }
            })
            .collect();
        let stat = Stat {
            mem_total_mb: node.mem_total_mb,
            instances: list,
            ..Stat::default()
        };
        bytes = stat.to_yaml().len();
    }
    let per = t.elapsed().as_secs_f64() * 1e6 / ticks as f64;
    println!("one stats tick with 10 running VMs: {per:.0} µs (node stats + 10 × smaps_rollup/stat/overlay size + STATS YAML of {bytes} bytes)");
    println!("BENCH qemu_stats_tick_10vms_us {per:.0}");
    for vm in &ids {
        n.send(frame::Command::Delete, cmd("delete", vm));
    }
    n.stats_until(LONG, "all deleted", |m| {
        ids.iter().all(|i| !m.contains_key(i))
    });
}
