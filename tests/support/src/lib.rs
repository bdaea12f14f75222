//! Helpers shared by the integration tests (`tests/*.rs`) and by the
//! `ciao-cert` and `bench-sim` examples: certificates made like the original
//! `ciao-cert`, child processes, an in-process SSNTP server, a raw TLS peer,
//! and the nodes of the qemu, docker and tenant-networking end-to-end
//! tests.
//!
//! A library of its own (a dev-dependency of `ciao-launcher`), so that it is
//! compiled once rather than once per test binary.
//!
//! What Cargo tells only the test being compiled (`CARGO_BIN_EXE_*`,
//! `CARGO_TARGET_TMPDIR`) the tests pass in as arguments: `env!` here would
//! be expanded for this crate, where those are not set.

use std::io::Write as _;
use std::path::{Path, PathBuf};

pub mod ceph;
pub mod certgen;
pub mod docker;
pub mod docker_node;
pub mod lab;
pub mod netnode;
pub mod netns;
pub mod proc;
pub mod qemu;
pub mod rawtls;
pub mod server_session;
pub mod ssntp_server;
pub mod stub_plugin;
pub mod unix_http;

/// A missing prerequisite (root, qemu, dockerd, ...): under `CI=true` the
/// test fails (CI installs everything, so a skip there would hide a broken
/// setup); otherwise it prints `SKIPPED: <test>: <why>` and returns false,
/// and the caller returns early.
#[track_caller]
pub fn skip_or_fail(test: &str, why: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: prerequisite missing under CI=true: {why}");
    }
    // Straight to the stderr descriptor: the test harness captures
    // `eprintln!` of passing tests, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
    false
}

/// A file of this repository (`rel` from its top directory), e.g. the
/// example payloads.
pub(crate) fn repo_file(rel: &str) -> PathBuf {
    // This crate lives in tests/support of the repository.
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors().nth(2).unwrap_or(here).join(rel)
}

/// `name` on `PATH` or in the usual system directories.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain([
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
            "/usr/local/sbin",
            "/usr/local/bin",
        ])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// A STOP/RESTART/DELETE payload for instance `id` (`kind`: "stop",
/// "restart", "delete").
pub fn cmd(kind: &str, id: &str) -> Vec<u8> {
    format!("{kind}:\n  instance_uuid: {id}\n  workload_agent_uuid: 4cb19522-1e18-439a-883a-f9b2a3a95f5e\n").into_bytes()
}

/// The state the launcher recorded for instance `id` in its state log
/// (`<data root>/instances/state.log`), as YAML; `None` if it has none.
/// The launcher must not be writing the log meanwhile for a stable answer
/// (a torn tail is simply not counted).
pub fn recorded_state(data_root: &Path, id: &str) -> Option<String> {
    let log = data_root
        .join("instances")
        .join(ciao::launcher::statelog::LOG_FILE);
    let bytes = std::fs::read(log).ok()?;
    let replay = ciao::launcher::statelog::Replay::of(&bytes).ok()?;
    replay
        .live
        .get(id)
        .map(|s| String::from_utf8_lossy(s).into_owned())
}

/// Puts `yaml` into the state log under `data_root` as instance `id`'s
/// state (a hand-edited or corrupted state, for the tests of recovery).
/// The launcher must not be running.
pub fn record_state(data_root: &Path, id: &str, yaml: &[u8]) {
    use ciao::launcher::statelog::{Record, HEADER, LOG_FILE};
    let log = data_root.join("instances").join(LOG_FILE);
    let mut bytes = std::fs::read(&log).unwrap_or_default();
    if bytes.is_empty() {
        bytes.extend_from_slice(HEADER);
    }
    bytes.extend(Record::Put { id, state: yaml }.frame());
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    std::fs::write(&log, bytes).unwrap();
}
