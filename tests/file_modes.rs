//! File modes of what the real launcher creates and reads: its log file is
//! 0640 even under umask 000, and a private key readable by other users is
//! named in a start-up warning (as ssh does).

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use ciao_test_support::certgen::{self, KeyKind};
use ciao_test_support::proc::{wait_for, Proc, TempDir};

const LAUNCHER: &str = env!("CARGO_BIN_EXE_ciao-launcher");

#[test]
fn log_is_0640_under_umask_000_and_an_open_key_is_warned_about() {
    let tmp = TempDir::new("file-modes");
    let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
    std::fs::set_permissions(
        &certs.client_pem_path,
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let data = tmp.path().join("data");
    // A loopback port nobody listens on: the launcher starts, logs and
    // retries; nothing else is needed here.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = format!(
        "umask 000; exec {LAUNCHER} -cacert={} -cert={} --data-root={} \
         --server=127.0.0.1:{port} -network=false -stderrthreshold=FATAL",
        certs.ca_pem_path.display(),
        certs.client_pem_path.display(),
        data.display()
    );
    let _l = Proc::start("/bin/sh", &["-c".into(), script], tmp.path(), "launcher");
    let log = data.join("logs/launcher/ciao-launcher.log");
    let key = certs.client_pem_path.display().to_string();
    let text = wait_for(
        Duration::from_secs(20),
        "the key warning in the log",
        || {
            let t = std::fs::read_to_string(&log).ok()?;
            t.contains("private key file").then_some(t)
        },
    );
    let line = text
        .lines()
        .find(|l| l.contains("private key file"))
        .unwrap();
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains(&key), "{line}");
    assert!(line.contains("0644"), "{line}");
    assert_eq!(
        text.matches("private key file").count(),
        1,
        "warned once: {text}"
    );
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "log file mode {mode:o}");
}

/// A key only its owner can read gives no warning.
#[test]
fn a_private_key_gives_no_warning() {
    let tmp = TempDir::new("file-modes-ok");
    let certs = certgen::make_ciao_certs(tmp.path(), KeyKind::Rsa);
    std::fs::set_permissions(
        &certs.client_pem_path,
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let args = vec![
        format!("-cacert={}", certs.ca_pem_path.display()),
        format!("-cert={}", certs.client_pem_path.display()),
        format!("--data-root={}", data.display()),
        format!("--server=127.0.0.1:{port}"),
        "-network=false".into(),
        "-stderrthreshold=FATAL".into(),
    ];
    let _l = Proc::start(LAUNCHER, &args, tmp.path(), "launcher");
    let log = data.join("logs/launcher/ciao-launcher.log");
    let text = wait_for(
        Duration::from_secs(20),
        "a connection attempt logged",
        || {
            let t = std::fs::read_to_string(&log).ok()?;
            t.contains(&format!("127.0.0.1:{port}")).then_some(t)
        },
    );
    assert!(!text.contains("private key file"), "{text}");
}
