//! File modes of what the real launcher creates and reads: its log file is
//! 0640 even under umask 000, and a private key readable by other users is
//! named in a start-up warning (as ssh does).

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use ciao_test_support::certgen::{self, KeyKind};
use ciao_test_support::proc::{wait_for, Proc, TempDir};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");

/// A launcher whose key file has `key_mode`, started under umask 000 and
/// pointed at a loopback port nobody listens on (it starts, logs and
/// retries; nothing else is needed here).
struct Started {
    _launcher: Proc,
    log: PathBuf,
    key: PathBuf,
    port: u16,
    _tmp: TempDir,
}

fn start(tag: &str, key_mode: u32) -> Started {
    let tmp = TempDir::new(tag);
    let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
    let key = certs.client_pem_path.clone();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(key_mode)).unwrap();
    let data = tmp.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = format!(
        "umask 000; exec {LAUNCHER} -cacert={} -cert={} --data-root={} \
         --server=127.0.0.1:{port} -network=false -v=1 -stderrthreshold=FATAL",
        certs.ca_pem_path.display(),
        key.display(),
        data.display()
    );
    let launcher = Proc::start("/bin/sh", &["-c".into(), script], tmp.path(), "launcher");
    Started {
        _launcher: launcher,
        log: data.join("logs/launcher/ciao-launcher.log"),
        key,
        port,
        _tmp: tmp,
    }
}

/// The log once it contains `what`.
fn log_with(s: &Started, what: &str) -> String {
    wait_for(Duration::from_secs(20), what, || {
        let t = std::fs::read_to_string(&s.log).ok()?;
        t.contains(what).then_some(t)
    })
}

#[test]
fn log_is_0640_under_umask_000_and_an_open_key_is_warned_about() {
    let s = start("file-modes", 0o644);
    let text = log_with(&s, "private key file");
    let line = text
        .lines()
        .find(|l| l.contains("private key file"))
        .unwrap();
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains(&s.key.display().to_string()), "{line}");
    assert!(line.contains("0644"), "{line}");
    assert_eq!(
        text.matches("private key file").count(),
        1,
        "warned once: {text}"
    );
    let mode = std::fs::metadata(&s.log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "log file mode {mode:o}");
}

/// A key only its owner can read gives no warning.
#[test]
fn a_private_key_gives_no_warning() {
    let s = start("file-modes-ok", 0o600);
    let text = log_with(&s, &format!("127.0.0.1:{}", s.port));
    assert!(!text.contains("private key file"), "{text}");
}
