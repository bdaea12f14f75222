//! A running container's memory and CPU straight from its cgroup files,
//! without dockerd's stats call. That call, even one-shot, waits for the
//! next tick of dockerd's one-second collector and costs the daemon CPU for
//! every container; the same two numbers are two small files under
//! `/sys/fs/cgroup`.
//!
//! * cgroup v1: `memory.usage_in_bytes` and `cpuacct.usage` (ns) — what
//!   dockerd reports as `memory_stats.usage` and `cpu_usage.total_usage`;
//! * cgroup v2: `memory.current` and `usage_usec` of `cpu.stat` (× 1000),
//!   again what dockerd reports.
//!
//! The container's cgroup comes from `/proc/<pid>/cgroup` of its main
//! process; the files are then read by path, so a reused PID cannot
//! mislead a later sample (the directory goes when the container stops,
//! and a failed read falls back to the API).
//!
//! These reads are the one place where the docker driver does I/O itself
//! instead of asking the shell through a file effect, on purpose: the files
//! are kernel pseudo-files (procfs, cgroupfs) whose contents are made up
//! on the spot, so reading them never waits for a disk or another process,
//! and they are read on every statistics sample of every container. A
//! round trip through the file executor per sample would add an input, a
//! state and a turn of the loop to each sample for nothing.

use std::path::{Path, PathBuf};

/// Where one container's figures are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupFiles {
    /// Bytes in use (page cache included).
    pub memory: PathBuf,
    /// CPU time: a number of ns (v1), or `cpu.stat` (v2).
    pub cpu: PathBuf,
    pub v2: bool,
}

impl CgroupFiles {
    /// Memory in bytes and CPU time in ns, `None` if either cannot be read.
    pub fn read(&self) -> Option<(u64, u64)> {
        let mem = read_number(&self.memory)?;
        let text = std::fs::read_to_string(&self.cpu).ok()?;
        let cpu = if self.v2 {
            usage_usec(&text)?.checked_mul(1000)?
        } else {
            text.trim().parse().ok()?
        };
        Some((mem, cpu))
    }
}

fn read_number(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// `usage_usec` of a v2 `cpu.stat`.
pub(crate) fn usage_usec(cpu_stat: &str) -> Option<u64> {
    cpu_stat
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse().ok())
}

/// One line of `/proc/<pid>/cgroup`: hierarchy, controllers, path.
fn lines(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines().filter_map(|l| {
        let mut it = l.splitn(3, ':');
        let _id = it.next()?;
        let controllers = it.next()?;
        let path = it.next()?;
        // Only absolute paths without parent steps become file names.
        (path.starts_with('/') && !path.split('/').any(|c| c == ".."))
            .then_some((controllers, path))
    })
}

/// The candidate files for a `/proc/<pid>/cgroup` text, with the cgroup
/// file systems mounted under `root` (normally `/sys/fs/cgroup`).
pub(crate) fn candidates(proc_cgroup: &str, root: &Path) -> Vec<CgroupFiles> {
    let mut out = Vec::new();
    let mut memory = None;
    let mut cpuacct = None;
    let mut unified = None;
    for (controllers, path) in lines(proc_cgroup) {
        let rel = path.trim_start_matches('/');
        if controllers.is_empty() {
            unified = Some(rel.to_string());
            continue;
        }
        let list: Vec<&str> = controllers.split(',').collect();
        if list.contains(&"memory") {
            memory = Some(
                root.join(controllers)
                    .join(rel)
                    .join("memory.usage_in_bytes"),
            );
        }
        if list.contains(&"cpuacct") {
            cpuacct = Some(root.join(controllers).join(rel).join("cpuacct.usage"));
        }
    }
    if let (Some(m), Some(c)) = (memory, cpuacct) {
        out.push(CgroupFiles {
            memory: m,
            cpu: c,
            v2: false,
        });
    }
    if let Some(rel) = unified {
        for base in [root.to_path_buf(), root.join("unified")] {
            let dir = base.join(&rel);
            out.push(CgroupFiles {
                memory: dir.join("memory.current"),
                cpu: dir.join("cpu.stat"),
                v2: true,
            });
        }
    }
    out
}

/// The files of the container whose main process is `pid`, if they can
/// be read now.
pub fn locate(pid: u32) -> Option<CgroupFiles> {
    locate_in(
        &std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?,
        Path::new("/sys/fs/cgroup"),
    )
}

fn locate_in(proc_cgroup: &str, root: &Path) -> Option<CgroupFiles> {
    candidates(proc_cgroup, root)
        .into_iter()
        .find(|f| f.read().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = "9:name=systemd:/docker/5f4c\n8:pids:/docker/5f4c\n4:memory:/docker/5f4c\n3:cpuset:/docker/5f4c\n2:cpuacct:/docker/5f4c\n1:cpu:/docker/5f4c\n0::/docker/5f4c\n";
    const V1_COMBINED: &str = "5:cpu,cpuacct:/system.slice/docker-ab.scope\n4:memory:/system.slice/docker-ab.scope\n0::/system.slice/docker-ab.scope\n";
    const V2: &str = "0::/system.slice/docker-ab.scope\n";

    #[test]
    fn paths() {
        let r = Path::new("/sys/fs/cgroup");
        let c = candidates(V1, r);
        assert_eq!(
            c[0],
            CgroupFiles {
                memory: "/sys/fs/cgroup/memory/docker/5f4c/memory.usage_in_bytes".into(),
                cpu: "/sys/fs/cgroup/cpuacct/docker/5f4c/cpuacct.usage".into(),
                v2: false
            }
        );
        let c = candidates(V1_COMBINED, r);
        assert_eq!(
            c[0].cpu,
            Path::new("/sys/fs/cgroup/cpu,cpuacct/system.slice/docker-ab.scope/cpuacct.usage")
        );
        let c = candidates(V2, r);
        assert_eq!(
            c[0],
            CgroupFiles {
                memory: "/sys/fs/cgroup/system.slice/docker-ab.scope/memory.current".into(),
                cpu: "/sys/fs/cgroup/system.slice/docker-ab.scope/cpu.stat".into(),
                v2: true
            }
        );
        assert!(candidates("1:memory:/../../etc\n", r).is_empty());
        assert!(candidates("garbage", r).is_empty());
        assert_eq!(usage_usec("usage_usec 1234\nuser_usec 1000\n"), Some(1234));
        assert_eq!(usage_usec("user_usec 1000\n"), None);
    }

    #[test]
    fn reading() {
        let root = std::env::temp_dir().join(format!("ciao-cgroup-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        // v2 only.
        let d = root.join("system.slice/docker-ab.scope");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("memory.current"), "770048\n").unwrap();
        std::fs::write(d.join("cpu.stat"), "usage_usec 35391\nuser_usec 10000\n").unwrap();
        let f = locate_in(V2, &root).unwrap();
        assert_eq!(f.read(), Some((770048, 35_391_000)));
        // v1: memory and cpuacct hierarchies.
        let m = root.join("memory/docker/5f4c");
        let c = root.join("cpuacct/docker/5f4c");
        std::fs::create_dir_all(&m).unwrap();
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(m.join("memory.usage_in_bytes"), "512000\n").unwrap();
        std::fs::write(c.join("cpuacct.usage"), "35391966\n").unwrap();
        let f = locate_in(V1, &root).unwrap();
        assert!(!f.v2);
        assert_eq!(f.read(), Some((512000, 35391966)));
        // Gone (container stopped): nothing.
        std::fs::remove_dir_all(&m).unwrap();
        assert_eq!(f.read(), None);
        assert_eq!(
            locate_in("4:memory:/docker/none\n2:cpuacct:/docker/none\n", &root),
            None
        );
        let _ = std::fs::remove_dir_all(&root);
    }
}
