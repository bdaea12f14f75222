//! The kernel lab from the Rust side: Debian's stock kernel booted under
//! qemu (software emulation) with this machine's root filesystem shared
//! read-only, for the tests that need kernel features the host's kernel
//! lacks (`ip_gre`, `rbd`, `nbd`, ...). The lab itself is
//! `tests/lab/setup.sh` (fetch and prepare, cached) and `tests/lab/run.sh`
//! (boot, run one command as root, return its status); see
//! `tests/lab/README.md`.
//!
//! The convention for a suite: its lab-only tests are `#[ignore]`d and
//! start with [`inside`]; one ordinary test calls [`run_suite`], which boots
//! the lab once and runs the same test binary inside with `--ignored
//! --test-threads=1` and `CIAO_IN_LAB=1`. One boot per suite, however many
//! inner tests it has.

use std::fmt;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{find_program, repo_file, skip_or_fail};

/// Set (to `1`) in the environment of a command run inside the lab.
pub const IN_LAB: &str = "CIAO_IN_LAB";

/// How to boot the lab.
#[derive(Clone, Copy, Debug)]
pub struct Boot {
    /// The VM is killed after this long. The default (300 s) is long
    /// enough for a boot and a suite on a busy 2-core machine: it only
    /// catches hangs (a boot takes 4-10 s of guest time).
    pub timeout: Duration,
    /// Guest memory. The default (512 MiB) is plenty for the lab itself
    /// (~35 MiB); a suite that starts qemu inside needs room for that
    /// VM's memory too.
    pub mem_mb: u32,
}

impl Default for Boot {
    fn default() -> Boot {
        Boot {
            timeout: Duration::from_secs(300),
            mem_mb: 512,
        }
    }
}

/// Why the lab could not run a command.
#[derive(Debug)]
pub enum LabError {
    /// A prerequisite is missing (root, qemu, the kernel could not be
    /// fetched): the caller skips, or fails under `CI=true`.
    Unavailable(String),
    /// `run.sh` could not be started or waited for.
    Io(std::io::Error),
}

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabError::Unavailable(why) => write!(f, "kernel lab unavailable: {why}"),
            LabError::Io(e) => write!(f, "kernel lab: {e}"),
        }
    }
}

impl std::error::Error for LabError {}

/// What one command did inside the lab.
#[derive(Debug)]
pub struct LabOutput {
    /// The command's exit status; `None` when the guest gave none (crash,
    /// or the timeout killed the VM).
    pub status: Option<i32>,
    /// The guest console: the command's stdout and stderr, and the lab's
    /// `LAB-START`/`LAB-EXIT` lines.
    pub console: String,
    /// `run.sh`'s own messages (setup, the wall time, a timeout).
    pub runner: String,
    /// Wall time of the whole run, boot included.
    pub wall: Duration,
    /// Where the console was written.
    pub log: PathBuf,
}

impl LabOutput {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// Guest uptime, in seconds, when the command started: the boot time.
    pub fn boot_secs(&self) -> Option<f64> {
        self.console
            .lines()
            .find_map(|l| l.strip_prefix("LAB-START uptime="))
            .and_then(|v| v.trim().parse().ok())
    }
}

/// True in a command the lab runs (see [`IN_LAB`]).
pub fn in_lab() -> bool {
    std::env::var(IN_LAB).is_ok_and(|v| v == "1")
}

/// The start of every lab-only (inner) test: true inside the lab. Outside,
/// such a test has nothing to check (it runs only when asked for with
/// `--ignored`): it says so on stderr and the caller returns.
pub fn inside(test: &str) -> bool {
    if in_lab() {
        return true;
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {test}: runs inside the kernel lab only (its suite's outer test boots it)"
    );
    false
}

/// Root and qemu: what booting the lab needs beyond what setup fetches.
fn missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root".into());
    }
    if find_program("qemu-system-x86_64").is_none() {
        return Some("qemu-system-x86_64 is not installed (run .ci/install-qemu)".into());
    }
    None
}

/// The lab prepared under `cache` (the test's `CARGO_TARGET_TMPDIR`), once
/// per process: `tests/lab/setup.sh`, instant when already done.
pub fn prepare(cache: &Path) -> Result<PathBuf, LabError> {
    static READY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = READY.get_or_init(|| {
        if let Some(why) = missing() {
            return Err(why);
        }
        let dir = cache.join("kernel-lab");
        let t = Instant::now();
        let out = Command::new("bash")
            .arg(repo_file("tests/lab/setup.sh"))
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run tests/lab/setup.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "tests/lab/setup.sh failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let said = String::from_utf8_lossy(&out.stdout);
        if !said.trim().is_empty() {
            let _ = writeln!(std::io::stderr(), "{} ({:.1?})", said.trim(), t.elapsed());
        }
        Ok(dir)
    });
    r.clone().map_err(LabError::Unavailable)
}

/// Boots the lab and runs `argv` inside as root, in this process's working
/// directory, with [`IN_LAB`] set. `tag` names the console log
/// (`<cache>/kernel-lab/logs/<tag>.console.log`).
pub fn run(cache: &Path, tag: &str, argv: &[&str], boot: &Boot) -> Result<LabOutput, LabError> {
    let timeout = boot.timeout;
    let dir = prepare(cache)?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(LabError::Io)?;
    let log = logs.join(format!("{tag}.console.log"));
    let runner_log = logs.join(format!("{tag}.run.log"));
    let out = File::create(&runner_log).map_err(LabError::Io)?;
    let t = Instant::now();
    let mut child = Command::new("bash")
        .arg(repo_file("tests/lab/run.sh"))
        .arg("--")
        .args(argv)
        .env("LAB_DIR", &dir)
        .env("LAB_TIMEOUT", timeout.as_secs().max(1).to_string())
        .env("LAB_MEM", format!("{}M", boot.mem_mb))
        .env("LAB_LOG", &log)
        .env("LAB_QUIET", "1")
        .env(IN_LAB, "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(LabError::Io)?)
        .stderr(out)
        // Its own process group: if run.sh outlives its own timeout, the
        // group (run.sh, timeout, qemu) is killed together.
        .process_group(0)
        .spawn()
        .map_err(LabError::Io)?;
    let deadline = t + timeout + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().map_err(LabError::Io)? {
            break s;
        }
        if Instant::now() > deadline {
            // SAFETY: kill(2) of the process group of our own child, which
            // we made its leader above.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            break child.wait().map_err(LabError::Io)?;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let wall = t.elapsed();
    let console = std::fs::read_to_string(&log).unwrap_or_default();
    let runner = std::fs::read_to_string(&runner_log).unwrap_or_default();
    // run.sh's 125: the guest gave no status.
    let status = status.code().filter(|&c| c != 125);
    Ok(LabOutput {
        status,
        console,
        runner,
        wall,
        log,
    })
}

/// The outer test of a suite: boots the lab once and runs this very test
/// binary inside with `--ignored --test-threads=1` (the inner tests, which
/// start with [`inside`]), then asserts that they all passed and that at
/// least one ran. `cache` is the suite's `CARGO_TARGET_TMPDIR`. Without
/// root or qemu it skips ([`skip_or_fail`]) and returns `None`.
pub fn run_suite(test: &str, cache: &str, boot: &Boot) -> Option<LabOutput> {
    if in_lab() {
        // Not reached through --ignored; guards against a recursive boot.
        return None;
    }
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => panic!("{test}: where is this test binary? {e}"),
    };
    let exe = exe.to_string_lossy().into_owned();
    let argv = [exe.as_str(), "--ignored", "--test-threads=1", "--nocapture"];
    let out = match run(Path::new(cache), test, &argv, boot) {
        Ok(o) => o,
        Err(LabError::Unavailable(why)) => {
            skip_or_fail(test, &why);
            return None;
        }
        Err(e) => panic!("{test}: {e}"),
    };
    let summary = out
        .console
        .lines()
        .rfind(|l| l.starts_with("test result:"))
        .unwrap_or("")
        .to_string();
    assert!(
        out.success() && !summary.is_empty() && !summary.contains(" 0 passed"),
        "{test}: the suite inside the kernel lab failed (status {:?}, {summary:?}).\n\
         --- run.sh ---\n{}\n--- guest console ({}) ---\n{}",
        out.status,
        out.runner.trim_end(),
        out.log.display(),
        out.console
    );
    let _ = writeln!(
        std::io::stderr(),
        "{test}: kernel lab: {summary}; command started at guest uptime {:.1} s, {:.1} s wall",
        out.boot_secs().unwrap_or(f64::NAN),
        out.wall.as_secs_f64()
    );
    Some(out)
}
