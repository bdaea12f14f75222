//! Node statistics for STATUS and STATS, exactly as the original
//! computes them: memory in 2^20-byte MB, disk in 10^6-byte MB, -1 for a
//! figure that cannot be read.
//!
//! The parsers take the files' text and are tested with fixtures;
//! [`sample`] does the reads (three small `/proc` files and one `statfs`,
//! cheap enough for the loop).

use std::path::Path;

/// One sample of the node's resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeStats {
    /// `MemTotal` / 1024.
    pub mem_total_mb: i64,
    /// (`MemFree` + `Active(file)` + `Inactive(file)`) / 1024.
    pub mem_available_mb: i64,
    /// statfs of the instances directory: `f_bsize × f_blocks / 10^6`.
    pub disk_total_mb: i64,
    /// `f_bsize × f_bavail / 10^6`.
    pub disk_available_mb: i64,
    /// First field of `/proc/loadavg`, truncated.
    pub load: i64,
    /// Consecutive `cpuN` lines after the first line of `/proc/stat`.
    pub cpus_online: i64,
}

/// `(mem_total_mb, mem_available_mb)` from `/proc/meminfo` text. Each is
/// -1 when a value it needs is missing or unparsable. Scanning stops once
/// the four values are found (later duplicates are ignored).
pub fn parse_meminfo(text: &str) -> (i64, i64) {
    let mut vals: [Option<i64>; 4] = [None; 4];
    const KEYS: [&str; 4] = ["MemTotal", "MemFree", "Active(file)", "Inactive(file)"];
    for line in text.lines() {
        if vals.iter().all(Option::is_some) {
            break;
        }
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let Some(idx) = KEYS.iter().position(|k| *k == key) else {
            continue;
        };
        if vals[idx].is_some() {
            continue;
        }
        vals[idx] = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|v| *v >= 0);
    }
    let total = vals[0].map_or(-1, |kb| kb / 1024);
    let avail = match (vals[1], vals[2], vals[3]) {
        (Some(a), Some(b), Some(c)) => a.saturating_add(b).saturating_add(c) / 1024,
        _ => -1,
    };
    (total, avail)
}

/// `load` from `/proc/loadavg` text: the first field as a float,
/// truncated; -1 when unparsable.
pub fn parse_loadavg(text: &str) -> i64 {
    text.split_whitespace()
        .next()
        .and_then(|f| f.parse::<f64>().ok())
        .filter(|f| f.is_finite() && *f >= 0.0)
        .map_or(-1, |f| f.trunc() as i64)
}

/// `cpus_online` from `/proc/stat` text: the number of consecutive lines
/// matching `^cpu[0-9]+` right after the first line; -1 when zero.
pub fn parse_cpus_online(text: &str) -> i64 {
    let n = text
        .lines()
        .skip(1)
        .take_while(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    if n == 0 {
        -1
    } else {
        i64::try_from(n).unwrap_or(i64::MAX)
    }
}

/// `(disk_total_mb, disk_available_mb)` from statfs figures, in decimal
/// MB, multiplying by `f_bsize` as the original did.
pub fn disk_mb(bsize: u64, blocks: u64, bavail: u64) -> (i64, i64) {
    let mb = |n: u64| {
        let v = u128::from(bsize) * u128::from(n) / 1_000_000;
        i64::try_from(v).unwrap_or(i64::MAX)
    };
    (mb(blocks), mb(bavail))
}

/// Reads the node's figures now; `instances_dir` is the directory whose
/// file system is reported as the node's disk.
pub fn sample(instances_dir: &Path) -> NodeStats {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let (mem_total_mb, mem_available_mb) = read("/proc/meminfo")
        .as_deref()
        .map_or((-1, -1), parse_meminfo);
    let (disk_total_mb, disk_available_mb) = crate::sys::fs::statfs(instances_dir)
        .map_or((-1, -1), |s| disk_mb(s.bsize, s.blocks, s.bavail));
    NodeStats {
        mem_total_mb,
        mem_available_mb,
        disk_total_mb,
        disk_available_mb,
        load: read("/proc/loadavg").as_deref().map_or(-1, parse_loadavg),
        cpus_online: read("/proc/stat").as_deref().map_or(-1, parse_cpus_online),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "MemTotal:       24590592 kB
MemFree:        20000000 kB
MemAvailable:   23000000 kB
Buffers:          100000 kB
Cached:          2000000 kB
SwapCached:            0 kB
Active:          1500000 kB
Inactive:        1200000 kB
Active(anon):     500000 kB
Inactive(anon):    10000 kB
Active(file):    1000000 kB
Inactive(file):  1190000 kB
";

    #[test]
    fn meminfo() {
        assert_eq!(
            parse_meminfo(MEMINFO),
            (24014, (20_000_000 + 1_000_000 + 1_190_000) / 1024)
        );
        assert_eq!(parse_meminfo(MEMINFO), (24014, 21669));
        // One of the three missing: available unknown, total still known.
        let no_inactive: String = MEMINFO
            .lines()
            .filter(|l| !l.starts_with("Inactive(file)"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(parse_meminfo(&no_inactive), (24014, -1));
        assert_eq!(parse_meminfo(""), (-1, -1));
        assert_eq!(parse_meminfo("MemTotal: x kB\n"), (-1, -1));
        assert_eq!(parse_meminfo("MemTotal: 1023 kB\n"), (0, -1));
        // "Active:" is not "Active(file):".
        assert_eq!(
            parse_meminfo("MemFree: 1024 kB\nActive: 5000 kB\nInactive: 5000 kB\n"),
            (-1, -1)
        );
    }

    #[test]
    fn loadavg() {
        assert_eq!(parse_loadavg("0.52 0.58 0.59 1/389 12345\n"), 0);
        assert_eq!(parse_loadavg("3.99 1.00 1.00 2/400 1\n"), 3);
        assert_eq!(parse_loadavg("17 1 1"), 17);
        assert_eq!(parse_loadavg(""), -1);
        assert_eq!(parse_loadavg("x 1 1"), -1);
        assert_eq!(parse_loadavg("NaN"), -1);
    }

    #[test]
    fn cpus() {
        let stat = "cpu  100 0 50 1000 0 0 0 0 0 0
cpu0 50 0 25 500 0 0 0 0 0 0
cpu1 50 0 25 500 0 0 0 0 0 0
intr 12345 0 0
ctxt 999
";
        assert_eq!(parse_cpus_online(stat), 2);
        assert_eq!(parse_cpus_online("cpu  1 2 3\nintr 5\n"), -1);
        assert_eq!(parse_cpus_online(""), -1);
        // Only consecutive lines right after the first count.
        assert_eq!(parse_cpus_online("cpu 1\ncpu0 1\nintr 1\ncpu1 1\n"), 1);
        assert_eq!(parse_cpus_online("cpu 1\ncpux 1\ncpu0 1\n"), -1);
    }

    #[test]
    fn disk() {
        assert_eq!(disk_mb(4096, 1_000_000, 500_000), (4096, 2048));
        assert_eq!(disk_mb(4096, 0, 0), (0, 0));
        assert_eq!(disk_mb(u64::MAX, u64::MAX, 1).0, i64::MAX);
    }

    #[test]
    fn sample_this_machine() {
        let s = sample(Path::new("/"));
        assert!(s.mem_total_mb > 0);
        assert!(s.mem_available_mb > 0 && s.mem_available_mb <= s.mem_total_mb);
        assert!(s.disk_total_mb > 0 && s.disk_available_mb <= s.disk_total_mb);
        assert!(s.load >= 0);
        assert!(s.cpus_online >= 1);
        let s = sample(Path::new("/no/such/dir"));
        assert_eq!((s.disk_total_mb, s.disk_available_mb), (-1, -1));
    }
}
