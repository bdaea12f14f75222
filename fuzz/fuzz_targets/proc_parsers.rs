//! The /proc, mountinfo and UUID-file parsers on arbitrary text: must never
//! panic (they read kernel files, but a malformed one must not stop the
//! daemon).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    use ciao::launcher::nodestats::*;
    use ciao::sys::{fs, procfs, uuidstore};
    let text = String::from_utf8_lossy(data);
    let _ = parse_meminfo(&text);
    let _ = parse_loadavg(&text);
    let _ = parse_cpus_online(&text);
    let _ = procfs::parse_pss_kb(&text);
    let _ = procfs::parse_cpu_ticks(&text);
    let _ = procfs::parse_cmdline(data);
    let _ = fs::parse_mountinfo_points(data);
    let _ = uuidstore::parse_stored(data);
});
