//! Replays every saved fuzz input (fuzz/corpus/T and fuzz/regressions/T)
//! through the same library entry point its `cargo fuzz` target calls, so the
//! ordinary test command covers the corpora without cargo-fuzz.

fn replay(target: &str, f: fn(&[u8])) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let (mut ran, mut failed) = (0, Vec::new());
    for kind in ["corpus", "regressions"] {
        let Ok(dir) = std::fs::read_dir(root.join(kind).join(target)) else {
            continue;
        };
        for p in dir.map(|e| e.unwrap().path()).filter(|p| p.is_file()) {
            let data = std::fs::read(&p).unwrap();
            ran += 1;
            if std::panic::catch_unwind(|| f(&data)).is_err() {
                failed.push(p)
            }
        }
    }
    assert!(ran > 0, "no saved inputs for {target}");
    assert!(
        failed.is_empty(),
        "{} of {ran} inputs panicked: {failed:?}",
        failed.len()
    );
}

// One #[test] per fuzz target below, each calling the target's library function.

#[test]
fn fuzz_corpus_cert_parse() {
    replay("cert_parse", |d| {
        let _ = ciao::ssntp::cert::parse_certificate(d);
        for (_, der) in ciao::ssntp::cert::pem_blocks(d) {
            let _ = ciao::ssntp::cert::parse_certificate(&der);
        }
    });
}

#[test]
fn fuzz_corpus_http_request() {
    replay("http_request", ciao::http::fuzz_request);
}

#[test]
fn fuzz_corpus_http_response() {
    replay("http_response", ciao::http::fuzz_response);
}

#[test]
fn fuzz_corpus_launcher_flags() {
    replay("launcher_flags", |d| {
        use std::os::unix::ffi::OsStrExt;
        let args: Vec<std::ffi::OsString> = d
            .split(|&b| b == 0)
            .map(|a| std::ffi::OsStr::from_bytes(a).to_os_string())
            .collect();
        let _ = ciao::launcher::config::LauncherConfig::parse(args);
    });
}

#[test]
fn fuzz_corpus_proc_parsers() {
    replay("proc_parsers", |d| {
        use ciao::launcher::nodestats::*;
        use ciao::sys::{fs, procfs, uuidstore};
        let text = String::from_utf8_lossy(d);
        let _ = parse_meminfo(&text);
        let _ = parse_loadavg(&text);
        let _ = parse_cpus_online(&text);
        let _ = procfs::parse_pss_kb(&text);
        let _ = procfs::parse_cpu_ticks(&text);
        let _ = procfs::parse_cmdline(d);
        let _ = fs::parse_mountinfo_points(d);
        let _ = uuidstore::parse_stored(d);
    });
}

#[test]
fn fuzz_corpus_gob_decode() {
    replay("gob_decode", ciao::ssntp::frame::fuzz_gob_decode);
}

#[test]
fn fuzz_corpus_start_payload() {
    replay("start_payload", ciao::payloads::fuzz::start_payload);
}

#[test]
fn fuzz_corpus_state_log() {
    replay("state_log", ciao::launcher::statelog::fuzz);
}

#[test]
fn fuzz_corpus_testserver() {
    replay("testserver", ciao::testserver::fuzz::fuzz_script);
}

#[test]
fn fuzz_corpus_netlink_reply() {
    replay("netlink_reply", |d| {
        let _ = ciao::net::rtnl::decode::parse(d);
    });
}

#[test]
fn fuzz_corpus_docker_plugin() {
    replay("docker_plugin", ciao::docker::plugin::fuzz::fuzz_requests);
}
