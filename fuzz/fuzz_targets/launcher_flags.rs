//! The launcher's Go-style flag parser on arbitrary argument vectors
//! (NUL-separated, any bytes): must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

fuzz_target!(|data: &[u8]| {
    let args: Vec<OsString> = data
        .split(|&b| b == 0)
        .map(|a| std::ffi::OsStr::from_bytes(a).to_os_string())
        .collect();
    let _ = ciao::launcher::config::LauncherConfig::parse(args);
});
