//! Per-process figures from `/proc` for instance statistics (PSS from
//! `smaps_rollup`, one cheap read per process; CPU ticks from `stat`) and
//! the open-file limit the original raised at start-up.
//!
//! Each reader is a pure parser over the file's text (tested beside it)
//! plus a one-line read. The reads are a single small file each, cheap
//! enough to run inline on the loop.

use std::fs;

/// The `Pss:` figure in kB: the sum of the values of the lines that start
/// exactly with `Pss:` (so `Pss_Dirty:`, `Pss_Anon:` and friends do not
/// count). `smaps_rollup` has one such line; summing also handles a full
/// `smaps`. `None` when no such line parses.
pub fn parse_pss_kb(text: &str) -> Option<u64> {
    let mut total: Option<u64> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Pss:") {
            let v: u64 = rest.split_whitespace().next()?.parse().ok()?;
            total = Some(total.unwrap_or(0).saturating_add(v));
        }
    }
    total
}

/// Proportional set size of `pid` in kB, from `/proc/PID/smaps_rollup`.
/// `None` when the process is gone or the file is unreadable.
pub(crate) fn pss_kb(pid: u32) -> Option<u64> {
    parse_pss_kb(&fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?)
}

/// `utime + stime` (clock ticks) from the text of `/proc/PID/stat`,
/// counting fields after the **last** `)` so that a command name holding
/// spaces or parentheses cannot shift them (the original counted words).
/// After the `)`, field 3 (state) comes first, so utime (14) and stime
/// (15) are the 12th and 13th words.
pub fn parse_cpu_ticks(text: &str) -> Option<u64> {
    let after = &text[text.rfind(')')? + 1..];
    let mut words = after.split_whitespace().skip(11);
    let utime: u64 = words.next()?.parse().ok()?;
    let stime: u64 = words.next()?.parse().ok()?;
    Some(utime.saturating_add(stime))
}

/// CPU time of `pid` in clock ticks (see [`clock_ticks_per_sec`]).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    parse_cpu_ticks(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// `sysconf(_SC_CLK_TCK)`, 100 if that fails (the value on every Linux
/// architecture the launcher supports).
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf takes an integer and reads no memory of ours.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(v).ok().filter(|&v| v > 0).unwrap_or(100)
}

/// Splits a `/proc/PID/cmdline` text into its arguments (NUL-separated,
/// lossily decoded).
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    let trimmed = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The argument vector of `pid` (empty for a zombie or kernel thread);
/// `None` when the process does not exist. Used against PID reuse before
/// trusting an old pidfile.
pub fn cmdline(pid: u32) -> Option<Vec<String>> {
    Some(parse_cmdline(
        &fs::read(format!("/proc/{pid}/cmdline")).ok()?,
    ))
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the soft
/// limit in force afterwards, as the original did at start-up (the caller
/// derives its "file descriptor" capacity as `soft / 5`). If raising fails the old
/// soft limit is kept and a warning is logged; if the limit cannot even be
/// read, `2^31 - 1` is returned, as the original did.
pub(crate) fn raise_nofile_limit() -> u64 {
    const UNKNOWN: u64 = i32::MAX as u64;
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        log::warn!(
            "cannot read the open-file limit: {}",
            std::io::Error::last_os_error()
        );
        return UNKNOWN;
    }
    if rl.rlim_cur < rl.rlim_max {
        let want = libc::rlimit {
            rlim_cur: rl.rlim_max,
            rlim_max: rl.rlim_max,
        };
        // SAFETY: `want` is a valid rlimit that lives across the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &want) } == 0 {
            rl.rlim_cur = rl.rlim_max;
        } else {
            log::warn!(
                "cannot raise the open-file limit from {} to {}: {}",
                rl.rlim_cur,
                rl.rlim_max,
                std::io::Error::last_os_error()
            );
        }
    }
    rl.rlim_cur
}

/// The node's host name as STATS report it (the UTS name of the launcher's
/// namespace, what `gethostname` returns); empty if it cannot be read.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROLLUP: &str =
        "55d0c0a0e000-7ffd8a7f5000 ---p 00000000 00:00 0                          [rollup]\n\
Rss:              884736 kB\n\
Pss:              880123 kB\n\
Pss_Dirty:        870000 kB\n\
Pss_Anon:         860000 kB\n\
Pss_File:          20000 kB\n\
Shared_Clean:       4000 kB\n";

    #[test]
    fn pss_counts_only_exact_pss_lines() {
        assert_eq!(parse_pss_kb(ROLLUP), Some(880123));
        assert_eq!(
            parse_pss_kb("Pss: 1 kB\nPss:  2 kB\nPss_Dirty: 9 kB\n"),
            Some(3)
        );
        assert_eq!(parse_pss_kb("Rss: 4 kB\n"), None);
        assert_eq!(parse_pss_kb("Pss: x kB\n"), None);
        assert_eq!(parse_pss_kb(""), None);
    }

    #[test]
    fn cpu_ticks_after_last_paren() {
        let stat =
            "1234 (qemu (x) y) S 1 1234 1234 0 -1 4194624 5000 0 0 0 700 300 0 0 20 0 3 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(1000));
        assert_eq!(parse_cpu_ticks("1 (a) S 1 2"), None);
        assert_eq!(parse_cpu_ticks("no paren"), None);
        assert_eq!(parse_cpu_ticks(""), None);
    }

    #[test]
    fn own_process() {
        let me = std::process::id();
        assert!(pss_kb(me).unwrap() > 0);
        assert!(cpu_ticks(me).is_some());
        let argv = cmdline(me).unwrap();
        assert!(!argv.is_empty());
        assert!(clock_ticks_per_sec() >= 100);
        assert!(pss_kb(u32::MAX).is_none());
        assert!(cmdline(u32::MAX).is_none());
    }

    #[test]
    fn cmdline_split() {
        assert_eq!(
            parse_cmdline(b"qemu\0-qmp\0unix:/d/socket,server\0"),
            ["qemu", "-qmp", "unix:/d/socket,server"]
        );
        assert!(parse_cmdline(b"").is_empty());
        assert_eq!(parse_cmdline(b"a"), ["a"]);
    }

    #[test]
    fn nofile_limit_is_raised() {
        let soft = raise_nofile_limit();
        assert!(soft >= 1024);
        assert_eq!(raise_nofile_limit(), soft);
    }
}
