//! The launcher's command line (launcher.md §1.1, design.md decisions 4, 5,
//! 16) and its logging set-up.
//!
//! # Why a hand-written parser
//!
//! Every flag of the original keeps its name and all of Go's `flag` package
//! forms: `-name value`, `-name=value`, `--name value`, `--name=value`, a
//! boolean as `-name` or `-name=false`, parsing stopping at the first
//! non-flag argument or after `--`. `pico-args` (a fixed dependency of the
//! crate, used by the other binaries) looks keys up one at a time, treats
//! `-name` as a short option and has no notion of "stop at the first
//! positional", so it cannot express these rules; the ~150 lines below
//! follow Go's `FlagSet.parseOne` instead, with the same error messages.
//! New flags are GNU-style long options (`--data-root DIR`); the same parser
//! accepts them with one dash as well, since Go makes no difference.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::LevelFilter;

/// The `--help` text. `man/ciao-launcher.8` documents the same flags with
/// the same defaults (checked by `tests/launcher_flags.rs`).
pub const USAGE: &str = "\
Usage: ciao-launcher [flags]

The compute/network node agent of a ciao cloud: an SSNTP client that starts,
stops and deletes qemu VMs and docker containers on the scheduler's command,
and reports node and instance statistics.

Flags take Go's forms: -flag value, -flag=value, --flag value, --flag=value;
a boolean flag is -flag (true) or -flag=false. Parsing stops at the first
argument that is not a flag (or after --); later arguments are ignored.

SSNTP connection:
  -cacert PATH
        CA certificate (PEM) that signed the server's certificate; in ciao
        this is the scheduler's own certificate. Default: none (the CA and
        node certificates are then looked up in /etc/pki/ciao).
  -cert PATH
        This node's certificate and private key (PEM, as made by ciao-cert);
        its roles (agent, netagent) decide what the launcher does. Used
        together with -cacert. Default: none.
  --server HOST[:PORT]
        Connect to this SSNTP server instead of the addresses named in the
        CA certificate; an IPv6 address goes in brackets. Default: none
        (port 8888).
  --connect-timeout SECONDS
        Deadline of one connection attempt: TCP connect, TLS handshake and
        the server's CONNECTED frame. Default: 30.
  --max-message-size BYTES
        Largest SSNTP (gob) message accepted; a larger one closes the
        connection. Default: 16777216.

Instances:
  --data-root DIR
        Directory for everything the launcher writes: instances/, images/,
        logs/, local/ (node UUID) and lock/. Default: /var/lib/ciao.
  -network BOOL
        Set up instance networking. With -network=false VMs get qemu
        user-mode networking and STATS report no NICs. Default: true.
  -qemu-virtualisation MODE
        kvm, auto (kvm when /dev/kvm opens, else software) or software (TCG
        emulation, slow). Default: kvm.
  -with-ui MODE
        none, or nc: each VM's serial console on a TCP port bound to
        127.0.0.1 (spice is not supported). Default: none.
  --ovmf PATH
        EFI firmware for VMs that are not legacy-BIOS. Default: the first
        that exists of /usr/share/qemu/OVMF.fd, /usr/share/ovmf/OVMF.fd,
        /usr/share/OVMF/OVMF_CODE.fd.
  --docker-socket PATH
        Docker Engine API socket. Default: /var/run/docker.sock.
  -ceph_id ID
        Ceph client id for volumes. Default: none (taken from the cluster
        configuration, storage.ceph_id).
  --stats-interval SECONDS
        Period of the STATUS and STATS reports (at least 1); instance
        changes are reported sooner. Default: 30.
  --stop-timeout SECONDS
        How long STOP waits after the ACPI power button (or docker stop)
        before forcing the instance off. Default: 30.

Modes:
  -hard-reset
        Kill and delete every instance under the data root, reset host
        networking, then exit without connecting. Default: false.
  -simulation
        Fake virtualiser: no qemu or docker, instances become active after
        --simulation-delay; no single-instance lock. Default: false.
  --simulation-delay MS|MIN-MAX
        With -simulation, the delay in milliseconds before a started
        instance becomes active: fixed, or random in MIN-MAX. Default:
        1-1000.

Logging:
  -log_dir DIR
        Directory of the log file ciao-launcher.log (created with mode
        0755). Default: DATA-ROOT/logs/launcher.
  -logtostderr
        Log to standard error only, not to the file. Default: false.
  -alsologtostderr
        Log to the file and to standard error. Default: false.
  -stderrthreshold LEVEL
        When logging to the file, records at or above LEVEL (INFO, WARNING,
        ERROR, FATAL or 0-3) also go to standard error. Default: ERROR.
  -v N
        Verbosity: 0 info, 1 debug (frames, QMP traffic), 2 or more trace.
        Default: 0.
  -vmodule LIST
        Accepted for compatibility (glog's pattern=N,...) and ignored, with
        a warning. Default: none.
  -log_backtrace_at FILE:LINE
        Accepted for compatibility and ignored, with a warning. Default:
        none.

  -h, -help, --help
        Print this help to standard output and exit with status 0.
";

/// Default `--data-root`.
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/ciao";
/// Default `--docker-socket`.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// Default `--max-message-size` (design.md decision 1).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
/// The SSNTP port when `--server` names none.
pub const DEFAULT_SSNTP_PORT: u16 = 8888;
/// Where the OVMF firmware is looked for when `--ovmf` is not given.
pub const OVMF_CANDIDATES: [&str; 3] = [
    "/usr/share/qemu/OVMF.fd",
    "/usr/share/ovmf/OVMF.fd",
    "/usr/share/OVMF/OVMF_CODE.fd",
];
/// Name of the log file in the log directory.
pub const LOG_FILE_NAME: &str = "ciao-launcher.log";

/// How the command line failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagError {
    /// `-h`, `-help` or `--help`: print [`USAGE`] to stdout, exit 0.
    Help,
    /// A bad flag or value: print this message and [`USAGE`] to stderr,
    /// exit 2.
    Bad(String),
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlagError::Help => f.write_str("help requested"),
            FlagError::Bad(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for FlagError {}

/// `-qemu-virtualisation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Virtualisation {
    /// `-enable-kvm`; fails where KVM is unusable.
    Kvm,
    /// KVM when `/dev/kvm` opens, else software.
    Auto,
    /// TCG emulation.
    Software,
}

/// `-with-ui`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UiMode {
    /// No console.
    None,
    /// Serial console on a TCP port bound to 127.0.0.1.
    Nc,
}

/// glog severities, for `-stderrthreshold`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// INFO (0).
    Info,
    /// WARNING (1).
    Warning,
    /// ERROR (2).
    Error,
    /// FATAL (3): nothing goes to stderr through the logger.
    Fatal,
}

/// `--server HOST[:PORT]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerAddr {
    /// Host name or IP address (without brackets).
    pub host: String,
    /// Port (8888 unless given).
    pub port: u16,
}

impl fmt::Display for ServerAddr {
    /// `host:port`, with brackets around an IPv6 address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `--simulation-delay`: a random delay in `min..=max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimDelay {
    /// Shortest delay.
    pub min: Duration,
    /// Longest delay (equal to `min` for a fixed delay).
    pub max: Duration,
}

/// Everything the command line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LauncherConfig {
    /// `-cacert` (`None` when empty).
    pub cacert: Option<PathBuf>,
    /// `-cert` (`None` when empty).
    pub cert: Option<PathBuf>,
    /// `--server`.
    pub server: Option<ServerAddr>,
    /// `--connect-timeout`.
    pub connect_timeout: Duration,
    /// `--max-message-size`, bytes.
    pub max_message_size: usize,
    /// `--data-root`, made absolute.
    pub data_root: PathBuf,
    /// `-network`.
    pub network: bool,
    /// `-qemu-virtualisation`.
    pub virtualisation: Virtualisation,
    /// `-with-ui`.
    pub with_ui: UiMode,
    /// `--ovmf` (`None`: probe, see [`LauncherConfig::ovmf_path`]).
    pub ovmf: Option<PathBuf>,
    /// `--docker-socket`.
    pub docker_socket: PathBuf,
    /// `-ceph_id` (`None` when empty: taken from the cluster config).
    pub ceph_id: Option<String>,
    /// `--stats-interval`.
    pub stats_interval: Duration,
    /// `--stop-timeout`.
    pub stop_timeout: Duration,
    /// `-hard-reset`.
    pub hard_reset: bool,
    /// `-simulation`.
    pub simulation: bool,
    /// `--simulation-delay`.
    pub simulation_delay: SimDelay,
    /// `-log_dir` as given (`None` when empty; see [`LauncherConfig::log_dir`]).
    pub log_dir: Option<PathBuf>,
    /// `-logtostderr`.
    pub logtostderr: bool,
    /// `-alsologtostderr`.
    pub alsologtostderr: bool,
    /// `-stderrthreshold`.
    pub stderrthreshold: Severity,
    /// `-v`.
    pub verbosity: i32,
    /// `-vmodule` (ignored).
    pub vmodule: String,
    /// `-log_backtrace_at` (ignored).
    pub log_backtrace_at: String,
    /// Arguments after the flags (ignored, as in the original; logged).
    pub positional: Vec<OsString>,
}

impl Default for LauncherConfig {
    fn default() -> LauncherConfig {
        LauncherConfig {
            cacert: None,
            cert: None,
            server: None,
            connect_timeout: Duration::from_secs(30),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            data_root: PathBuf::from(DEFAULT_DATA_ROOT),
            network: true,
            virtualisation: Virtualisation::Kvm,
            with_ui: UiMode::None,
            ovmf: None,
            docker_socket: PathBuf::from(DEFAULT_DOCKER_SOCKET),
            ceph_id: None,
            stats_interval: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(30),
            hard_reset: false,
            simulation: false,
            simulation_delay: SimDelay {
                min: Duration::from_millis(1),
                max: Duration::from_millis(1000),
            },
            log_dir: None,
            logtostderr: false,
            alsologtostderr: false,
            stderrthreshold: Severity::Error,
            verbosity: 0,
            vmodule: String::new(),
            log_backtrace_at: String::new(),
            positional: Vec::new(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Value,
}

/// Every flag name the parser knows (the names in [`USAGE`], minus help).
pub const FLAG_NAMES: [&str; 24] = [
    "cacert",
    "cert",
    "server",
    "connect-timeout",
    "max-message-size",
    "data-root",
    "network",
    "qemu-virtualisation",
    "with-ui",
    "ovmf",
    "docker-socket",
    "ceph_id",
    "stats-interval",
    "stop-timeout",
    "hard-reset",
    "simulation",
    "simulation-delay",
    "log_dir",
    "logtostderr",
    "alsologtostderr",
    "stderrthreshold",
    "v",
    "vmodule",
    "log_backtrace_at",
];

fn kind_of(name: &str) -> Option<Kind> {
    match name {
        "network" | "hard-reset" | "simulation" | "logtostderr" | "alsologtostderr" => {
            Some(Kind::Bool)
        }
        n if FLAG_NAMES.contains(&n) => Some(Kind::Value),
        _ => None,
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn text(v: &OsStr) -> Result<&str, String> {
    v.to_str().ok_or_else(|| "not valid UTF-8".to_string())
}

fn absolute(p: &OsStr) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        return p.to_path_buf();
    }
    match std::env::current_dir() {
        Ok(cwd) => cwd.join(p),
        Err(_) => p.to_path_buf(),
    }
}

fn opt_path(v: &OsStr) -> Option<PathBuf> {
    (!v.is_empty()).then(|| absolute(v))
}

fn req_path(v: &OsStr) -> Result<PathBuf, String> {
    if v.is_empty() {
        return Err("must not be empty".into());
    }
    Ok(absolute(v))
}

fn seconds(v: &OsStr, min: u64) -> Result<Duration, String> {
    let n: u64 = text(v)?
        .parse()
        .map_err(|_| "expected a whole number of seconds".to_string())?;
    if n < min {
        return Err(format!("must be at least {min}"));
    }
    if n > 86_400 * 365 {
        return Err("too large".into());
    }
    Ok(Duration::from_secs(n))
}

fn parse_ms(s: &str) -> Result<u64, String> {
    let n: u64 = s
        .trim()
        .parse()
        .map_err(|_| "expected MS or MIN-MAX in milliseconds".to_string())?;
    if n > 3_600_000 {
        return Err("at most 3600000 ms".into());
    }
    Ok(n)
}

/// `HOST`, `HOST:PORT`, `[V6]`, `[V6]:PORT`, or a bare IPv6 address.
pub fn parse_server(s: &str) -> Result<ServerAddr, String> {
    let port_of = |p: &str| -> Result<u16, String> {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("bad port {p:?}")),
            Ok(n) => Ok(n),
        }
    };
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| "missing ']' after an IPv6 address".to_string())?;
        let port = match after {
            "" => DEFAULT_SSNTP_PORT,
            a => port_of(
                a.strip_prefix(':')
                    .ok_or_else(|| format!("unexpected {a:?} after ']'"))?,
            )?,
        };
        (h, port)
    } else if s.matches(':').count() > 1 {
        (s, DEFAULT_SSNTP_PORT)
    } else if let Some((h, p)) = s.split_once(':') {
        (h, port_of(p)?)
    } else {
        (s, DEFAULT_SSNTP_PORT)
    };
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
        return Err("expected HOST or HOST:PORT".into());
    }
    Ok(ServerAddr {
        host: host.to_string(),
        port,
    })
}

fn parse_severity(s: &str) -> Option<Severity> {
    match s.to_ascii_uppercase().as_str() {
        "INFO" | "0" => Some(Severity::Info),
        "WARNING" | "1" => Some(Severity::Warning),
        "ERROR" | "2" => Some(Severity::Error),
        "FATAL" | "3" => Some(Severity::Fatal),
        _ => None,
    }
}

/// glog's `-vmodule` syntax: comma-separated `pattern=N`, N >= 0.
fn check_vmodule(s: &str) -> Result<(), String> {
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let syntax = || "syntax error: expect comma-separated list of filename=N".to_string();
        let (pat, lvl) = part.split_once('=').ok_or_else(syntax)?;
        if pat.is_empty() || lvl.contains('=') {
            return Err(syntax());
        }
        let n: i64 = lvl.parse().map_err(|_| syntax())?;
        if n < 0 {
            return Err("negative value for vmodule level".into());
        }
    }
    Ok(())
}

/// glog's `-log_backtrace_at` syntax: empty or `file:N`, N > 0.
fn check_backtrace_at(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Ok(());
    }
    let syntax = || "syntax error: expect file.go:234".to_string();
    let (_, line) = s.split_once(':').ok_or_else(syntax)?;
    let n: i64 = line.parse().map_err(|_| syntax())?;
    if n <= 0 {
        return Err("negative or zero value for level".into());
    }
    Ok(())
}

fn set_value(cfg: &mut LauncherConfig, name: &str, v: &OsStr) -> Result<(), String> {
    match name {
        "cacert" => cfg.cacert = opt_path(v),
        "cert" => cfg.cert = opt_path(v),
        "server" => {
            let s = text(v)?;
            cfg.server = if s.is_empty() {
                None
            } else {
                Some(parse_server(s)?)
            }
        }
        "connect-timeout" => cfg.connect_timeout = seconds(v, 1)?,
        "max-message-size" => {
            let n: usize = text(v)?
                .parse()
                .map_err(|_| "expected a number of bytes".to_string())?;
            if !(1024..=1 << 30).contains(&n) {
                return Err("must be between 1024 and 1073741824".into());
            }
            cfg.max_message_size = n;
        }
        "data-root" => cfg.data_root = req_path(v)?,
        "qemu-virtualisation" => {
            cfg.virtualisation = match text(v)? {
                "kvm" => Virtualisation::Kvm,
                "auto" => Virtualisation::Auto,
                "software" => Virtualisation::Software,
                _ => return Err("kvm, auto or software expected".into()),
            }
        }
        "with-ui" => {
            cfg.with_ui = match text(v)? {
                "none" => UiMode::None,
                "nc" => UiMode::Nc,
                "spice" => {
                    return Err("spice is not supported by this launcher; use none or nc".into())
                }
                _ => return Err("none or nc expected".into()),
            }
        }
        "ovmf" => cfg.ovmf = opt_path(v),
        "docker-socket" => cfg.docker_socket = req_path(v)?,
        "ceph_id" => {
            let s = text(v)?;
            cfg.ceph_id = (!s.is_empty()).then(|| s.to_string());
        }
        "stats-interval" => cfg.stats_interval = seconds(v, 1)?,
        "stop-timeout" => cfg.stop_timeout = seconds(v, 0)?,
        "simulation-delay" => {
            let s = text(v)?;
            let (lo, hi) = match s.split_once('-') {
                Some((a, b)) => (parse_ms(a)?, parse_ms(b)?),
                None => {
                    let n = parse_ms(s)?;
                    (n, n)
                }
            };
            if lo > hi {
                return Err("MIN is larger than MAX".into());
            }
            cfg.simulation_delay = SimDelay {
                min: Duration::from_millis(lo),
                max: Duration::from_millis(hi),
            };
        }
        "log_dir" => cfg.log_dir = opt_path(v),
        "stderrthreshold" => {
            cfg.stderrthreshold = parse_severity(text(v)?)
                .ok_or_else(|| "INFO, WARNING, ERROR, FATAL or 0-3 expected".to_string())?
        }
        "v" => {
            cfg.verbosity = text(v)?
                .parse()
                .map_err(|_| "expected an integer".to_string())?
        }
        "vmodule" => {
            let s = text(v)?;
            check_vmodule(s)?;
            cfg.vmodule = s.to_string();
        }
        "log_backtrace_at" => {
            let s = text(v)?;
            check_backtrace_at(s)?;
            cfg.log_backtrace_at = s.to_string();
        }
        _ => return Err("unknown flag".into()),
    }
    Ok(())
}

fn set_bool(cfg: &mut LauncherConfig, name: &str, b: bool) {
    match name {
        "network" => cfg.network = b,
        "hard-reset" => cfg.hard_reset = b,
        "simulation" => cfg.simulation = b,
        "logtostderr" => cfg.logtostderr = b,
        "alsologtostderr" => cfg.alsologtostderr = b,
        _ => {}
    }
}

impl LauncherConfig {
    /// Parses the arguments **after** the program name
    /// (`std::env::args_os().skip(1)`), following Go's `flag` package.
    pub fn parse(args: Vec<OsString>) -> Result<LauncherConfig, FlagError> {
        let mut cfg = LauncherConfig::default();
        let mut i = 0;
        while i < args.len() {
            let s = args[i].as_bytes();
            if s.len() < 2 || s[0] != b'-' {
                break;
            }
            let dashes = if s[1] == b'-' { 2 } else { 1 };
            if dashes == 2 && s.len() == 2 {
                i += 1;
                break;
            }
            let body = &s[dashes..];
            if body.is_empty() || body[0] == b'-' || body[0] == b'=' {
                return Err(FlagError::Bad(format!(
                    "bad flag syntax: {}",
                    args[i].to_string_lossy()
                )));
            }
            let (name_b, value) = match body.iter().position(|&b| b == b'=') {
                Some(p) => (&body[..p], Some(OsStr::from_bytes(&body[p + 1..]))),
                None => (body, None),
            };
            let name = String::from_utf8_lossy(name_b).into_owned();
            i += 1;
            let Some(kind) = kind_of(&name) else {
                if name == "h" || name == "help" {
                    return Err(FlagError::Help);
                }
                return Err(FlagError::Bad(format!(
                    "flag provided but not defined: -{name}"
                )));
            };
            match kind {
                Kind::Bool => {
                    let b = match value {
                        None => true,
                        Some(v) => v.to_str().and_then(parse_bool).ok_or_else(|| {
                            FlagError::Bad(format!(
                                "invalid boolean value {:?} for -{name}: parse error",
                                v.to_string_lossy()
                            ))
                        })?,
                    };
                    set_bool(&mut cfg, &name, b);
                }
                Kind::Value => {
                    let v: &OsStr = match value {
                        Some(v) => v,
                        None if i < args.len() => {
                            i += 1;
                            &args[i - 1]
                        }
                        None => {
                            return Err(FlagError::Bad(format!("flag needs an argument: -{name}")))
                        }
                    };
                    set_value(&mut cfg, &name, v).map_err(|e| {
                        FlagError::Bad(format!(
                            "invalid value {:?} for flag -{name}: {e}",
                            v.to_string_lossy()
                        ))
                    })?;
                }
            }
        }
        cfg.positional = args.into_iter().skip(i).collect();
        Ok(cfg)
    }

    /// `<data-root>/instances`.
    pub fn instances_dir(&self) -> PathBuf {
        self.data_root.join("instances")
    }

    /// `<data-root>/images`: backing images, one file per `image_uuid`.
    pub fn images_dir(&self) -> PathBuf {
        self.data_root.join("images")
    }

    /// `-log_dir`, or `<data-root>/logs/launcher`.
    pub fn log_dir(&self) -> PathBuf {
        self.log_dir
            .clone()
            .unwrap_or_else(|| self.data_root.join("logs/launcher"))
    }

    /// The log file, `<log dir>/ciao-launcher.log`.
    pub fn log_file(&self) -> PathBuf {
        self.log_dir().join(LOG_FILE_NAME)
    }

    /// `<data-root>/lock`.
    pub fn lock_dir(&self) -> PathBuf {
        self.data_root.join("lock")
    }

    /// The single-instance lock, `<data-root>/lock/client-agent.lock`.
    pub fn agent_lock_path(&self) -> PathBuf {
        self.lock_dir().join("client-agent.lock")
    }

    /// `<data-root>/local/uuid-storage/role/client` (see
    /// [`crate::sys::uuidstore`]).
    pub fn uuid_dir(&self) -> PathBuf {
        crate::sys::uuidstore::uuid_dir(&self.data_root)
    }

    /// `--ovmf`, else the first of [`OVMF_CANDIDATES`] that exists.
    pub fn ovmf_path(&self) -> Option<PathBuf> {
        if let Some(p) = &self.ovmf {
            return Some(p.clone());
        }
        OVMF_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    }

    /// The level of `log` records that `-v` enables.
    pub fn level_filter(&self) -> LevelFilter {
        match self.verbosity {
            i32::MIN..=0 => LevelFilter::Info,
            1 => LevelFilter::Debug,
            _ => LevelFilter::Trace,
        }
    }
}

/// Parses like [`LauncherConfig::parse`] and handles the outcome as Go
/// does: help ⇒ [`USAGE`] on stdout and exit 0; a bad flag ⇒ the message
/// and [`USAGE`] on stderr and exit 2.
pub fn parse_or_exit(args: Vec<OsString>) -> LauncherConfig {
    match LauncherConfig::parse(args) {
        Ok(c) => c,
        Err(FlagError::Help) => {
            let _ = io::stdout().write_all(USAGE.as_bytes());
            std::process::exit(0)
        }
        Err(FlagError::Bad(m)) => {
            let _ = write!(io::stderr(), "ciao-launcher: {m}\n\n{USAGE}");
            std::process::exit(2)
        }
    }
}

fn stderr_level(cfg: &LauncherConfig, file_level: LevelFilter) -> LevelFilter {
    match cfg.stderrthreshold {
        Severity::Info => file_level,
        Severity::Warning => LevelFilter::Warn,
        Severity::Error => LevelFilter::Error,
        Severity::Fatal => LevelFilter::Off,
    }
}

/// Installs the global logger (design.md decision 16): by default the file
/// `<log dir>/ciao-launcher.log` (directory created with mode 0755, file
/// appended to) plus, as glog, records at or above `-stderrthreshold` on
/// stderr; `-logtostderr` stderr only; `-alsologtostderr` both. `-v`
/// picks the level. Then warns once about flags that are accepted but
/// ignored, and about ignored positional arguments. Err: a message for
/// stderr (the caller exits 1).
pub fn setup_logging(cfg: &LauncherConfig) -> Result<(), String> {
    let level = cfg.level_filter();
    let (file, stderr) = if cfg.logtostderr {
        (None, level)
    } else if cfg.alsologtostderr {
        (Some(cfg.log_file()), level)
    } else {
        (Some(cfg.log_file()), stderr_level(cfg, level))
    };
    crate::logging::install(crate::logging::Sinks {
        level,
        file,
        stderr,
        quiet: &[],
    })?;

    for (flag, val) in [
        ("-vmodule", &cfg.vmodule),
        ("-log_backtrace_at", &cfg.log_backtrace_at),
    ] {
        if !val.is_empty() {
            log::warn!("{flag}={val} is accepted for compatibility and ignored");
        }
    }
    if cfg.logtostderr && cfg.stderrthreshold != Severity::Error {
        log::warn!("-stderrthreshold has no effect with -logtostderr");
    }
    if !cfg.positional.is_empty() {
        log::warn!("ignoring arguments after the flags: {:?}", cfg.positional);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<LauncherConfig, FlagError> {
        LauncherConfig::parse(args.iter().map(OsString::from).collect())
    }

    fn bad(args: &[&str]) -> String {
        match p(args) {
            Err(FlagError::Bad(m)) => m,
            other => panic!("{args:?}: expected Bad, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let c = p(&[]).unwrap();
        assert_eq!(c, LauncherConfig::default());
        assert_eq!(c.data_root, Path::new("/var/lib/ciao"));
        assert_eq!(c.instances_dir(), Path::new("/var/lib/ciao/instances"));
        assert_eq!(c.images_dir(), Path::new("/var/lib/ciao/images"));
        assert_eq!(c.log_dir(), Path::new("/var/lib/ciao/logs/launcher"));
        assert_eq!(
            c.log_file(),
            Path::new("/var/lib/ciao/logs/launcher/ciao-launcher.log")
        );
        assert_eq!(c.lock_dir(), Path::new("/var/lib/ciao/lock"));
        assert_eq!(
            c.agent_lock_path(),
            Path::new("/var/lib/ciao/lock/client-agent.lock")
        );
        assert_eq!(
            c.uuid_dir(),
            Path::new("/var/lib/ciao/local/uuid-storage/role/client")
        );
        assert!(c.network);
        assert_eq!(c.virtualisation, Virtualisation::Kvm);
        assert_eq!(c.with_ui, UiMode::None);
        assert_eq!(c.stats_interval, Duration::from_secs(30));
        assert_eq!(c.stop_timeout, Duration::from_secs(30));
        assert_eq!(c.connect_timeout, Duration::from_secs(30));
        assert_eq!(c.max_message_size, 16 << 20);
        assert_eq!(c.stderrthreshold, Severity::Error);
        assert_eq!(c.level_filter(), LevelFilter::Info);
        assert_eq!(
            c.simulation_delay,
            SimDelay {
                min: Duration::from_millis(1),
                max: Duration::from_millis(1000)
            }
        );
    }

    #[test]
    fn go_value_forms() {
        for args in [
            &["-cacert", "/a/ca.pem"][..],
            &["-cacert=/a/ca.pem"],
            &["--cacert", "/a/ca.pem"],
            &["--cacert=/a/ca.pem"],
        ] {
            let c = p(args).unwrap();
            assert_eq!(
                c.cacert.as_deref(),
                Some(Path::new("/a/ca.pem")),
                "{args:?}"
            );
        }
        // A value may itself start with a dash.
        assert_eq!(
            p(&["-ceph_id", "-x"]).unwrap().ceph_id.as_deref(),
            Some("-x")
        );
        // Empty value means "not set", as in Go.
        assert_eq!(p(&["-cacert="]).unwrap().cacert, None);
        // Later occurrences win.
        assert_eq!(p(&["-v", "1", "-v=2"]).unwrap().verbosity, 2);
        // '=' splits at the first one only.
        assert_eq!(
            p(&["-ceph_id=a=b"]).unwrap().ceph_id.as_deref(),
            Some("a=b")
        );
    }

    #[test]
    fn go_bool_forms() {
        assert!(p(&["-simulation"]).unwrap().simulation);
        assert!(p(&["--simulation"]).unwrap().simulation);
        assert!(p(&["-simulation=true"]).unwrap().simulation);
        assert!(p(&["-simulation=T"]).unwrap().simulation);
        assert!(p(&["-simulation=1"]).unwrap().simulation);
        assert!(!p(&["-network=false"]).unwrap().network);
        assert!(!p(&["--network=0"]).unwrap().network);
        assert!(!p(&["-network=F"]).unwrap().network);
        assert!(p(&["-hard-reset"]).unwrap().hard_reset);
        assert!(
            p(&["-logtostderr", "-alsologtostderr"])
                .unwrap()
                .logtostderr
        );
        // "-network false": the bool takes no separate value, so "false" is
        // the first positional argument and parsing stops there.
        let c = p(&["-network", "false", "-simulation"]).unwrap();
        assert!(c.network && !c.simulation);
        assert_eq!(
            c.positional,
            [OsString::from("false"), "-simulation".into()]
        );
        assert!(bad(&["-network=maybe"]).contains("invalid boolean value"));
    }

    #[test]
    fn stops_at_first_non_flag_and_after_double_dash() {
        let c = p(&["-v", "1", "pos", "-simulation"]).unwrap();
        assert!(!c.simulation);
        assert_eq!(c.positional.len(), 2);
        let c = p(&["--", "-simulation"]).unwrap();
        assert!(!c.simulation);
        assert_eq!(c.positional, [OsString::from("-simulation")]);
        // A lone "-" is a positional argument.
        let c = p(&["-", "-simulation"]).unwrap();
        assert!(!c.simulation);
    }

    #[test]
    fn errors() {
        assert_eq!(bad(&["-foo"]), "flag provided but not defined: -foo");
        assert_eq!(bad(&["--foo=1"]), "flag provided but not defined: -foo");
        assert_eq!(bad(&["-cacert"]), "flag needs an argument: -cacert");
        assert_eq!(bad(&["---cacert"]), "bad flag syntax: ---cacert");
        assert_eq!(bad(&["-=x"]), "bad flag syntax: -=x");
        assert!(bad(&["-v", "x"]).starts_with("invalid value \"x\" for flag -v"));
        assert!(bad(&["-with-ui", "spice"]).contains("spice is not supported"));
        assert!(bad(&["-with-ui", "vnc"]).contains("none or nc expected"));
        assert!(bad(&["-qemu-virtualisation", "xen"]).contains("kvm, auto or software"));
        assert!(bad(&["--stats-interval", "0"]).contains("at least 1"));
        assert!(bad(&["--stats-interval", "1.5"]).contains("whole number"));
        assert!(bad(&["--connect-timeout=0"]).contains("at least 1"));
        assert!(bad(&["--data-root", ""]).contains("must not be empty"));
        assert!(bad(&["--simulation-delay", "10-5"]).contains("MIN is larger"));
        assert!(bad(&["--simulation-delay", "x"]).contains("MS or MIN-MAX"));
        assert!(bad(&["--max-message-size", "10"]).contains("between"));
        assert!(bad(&["--server", "host:99999"]).contains("bad port"));
        assert!(bad(&["--server", "[::1"]).contains("']'"));
        assert!(bad(&["-stderrthreshold", "LOUD"]).contains("INFO, WARNING"));
        assert!(bad(&["-vmodule", "x"]).contains("syntax error"));
        assert!(bad(&["-vmodule", "x=-1"]).contains("negative"));
        assert!(bad(&["-log_backtrace_at", "x.go"]).contains("syntax error"));
        assert!(bad(&["-log_backtrace_at", "x.go:0"]).contains("zero"));
    }

    #[test]
    fn help() {
        for h in ["-h", "-help", "--help", "--h", "-help=1"] {
            assert_eq!(p(&[h]), Err(FlagError::Help), "{h}");
        }
        assert_eq!(p(&["-v", "1", "-h", "-foo"]), Err(FlagError::Help));
    }

    #[test]
    fn new_flags() {
        let c = p(&[
            "--data-root",
            "/tmp/ciao-x",
            "--server",
            "127.0.0.1:9999",
            "--stats-interval",
            "2",
            "--stop-timeout=0",
            "--simulation-delay",
            "0",
            "--max-message-size",
            "65536",
            "--docker-socket",
            "/run/d.sock",
            "--ovmf",
            "/fw/OVMF.fd",
            "--connect-timeout",
            "5",
            "-qemu-virtualisation=software",
            "-with-ui",
            "nc",
            "-log_dir",
            "/tmp/logs",
            "-stderrthreshold",
            "warning",
            "-v",
            "2",
            "-vmodule",
            "qmp=2,",
            "-log_backtrace_at",
            "qemu.go:42",
        ])
        .unwrap();
        assert_eq!(c.data_root, Path::new("/tmp/ciao-x"));
        assert_eq!(c.instances_dir(), Path::new("/tmp/ciao-x/instances"));
        assert_eq!(c.log_dir(), Path::new("/tmp/logs"));
        assert_eq!(
            c.server,
            Some(ServerAddr {
                host: "127.0.0.1".into(),
                port: 9999
            })
        );
        assert_eq!(c.stats_interval, Duration::from_secs(2));
        assert_eq!(c.stop_timeout, Duration::ZERO);
        assert_eq!(c.simulation_delay.min, Duration::ZERO);
        assert_eq!(c.simulation_delay.max, Duration::ZERO);
        assert_eq!(c.max_message_size, 65536);
        assert_eq!(c.docker_socket, Path::new("/run/d.sock"));
        assert_eq!(c.ovmf_path(), Some(PathBuf::from("/fw/OVMF.fd")));
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.virtualisation, Virtualisation::Software);
        assert_eq!(c.with_ui, UiMode::Nc);
        assert_eq!(c.stderrthreshold, Severity::Warning);
        assert_eq!(c.level_filter(), LevelFilter::Trace);
        assert_eq!(c.vmodule, "qmp=2,");
        assert_eq!(c.log_backtrace_at, "qemu.go:42");
        let c = p(&["--simulation-delay=5-50", "-data-root=rel"]).unwrap();
        assert_eq!(c.simulation_delay.min, Duration::from_millis(5));
        assert_eq!(c.simulation_delay.max, Duration::from_millis(50));
        assert!(c.data_root.is_absolute() && c.data_root.ends_with("rel"));
        assert_eq!(p(&["-v", "1"]).unwrap().level_filter(), LevelFilter::Debug);
        assert_eq!(p(&["-v", "-3"]).unwrap().level_filter(), LevelFilter::Info);
    }

    #[test]
    fn server_forms() {
        let s = |x| parse_server(x).unwrap().to_string();
        assert_eq!(s("sched"), "sched:8888");
        assert_eq!(s("sched:1"), "sched:1");
        assert_eq!(s("[::1]"), "[::1]:8888");
        assert_eq!(s("[::1]:9"), "[::1]:9");
        assert_eq!(s("fe80::1"), "[fe80::1]:8888");
        assert!(parse_server("").is_err());
        assert!(parse_server(":8888").is_err());
        assert!(parse_server("h:0").is_err());
        assert!(parse_server("[::1]x").is_err());
    }

    #[test]
    fn non_utf8_paths_are_fine() {
        let v = vec![
            OsString::from("-cacert"),
            OsString::from(OsStr::from_bytes(b"/a/\xff.pem")),
        ];
        let c = LauncherConfig::parse(v).unwrap();
        assert_eq!(c.cacert.unwrap().as_os_str().as_bytes(), b"/a/\xff.pem");
        let v = vec![
            OsString::from("-v"),
            OsString::from(OsStr::from_bytes(b"\xff")),
        ];
        assert!(LauncherConfig::parse(v).is_err());
    }

    /// Every parser flag is in USAGE and the other way round; the help text
    /// of -cacert talks about the CA and -cert about this node (the
    /// original had them swapped, launcher.md §10 item 34).
    #[test]
    fn usage_lists_exactly_the_flags() {
        let mut in_usage: Vec<String> = USAGE
            .lines()
            .filter(|l| l.starts_with("  -"))
            .flat_map(|l| {
                l.trim()
                    .split(", ")
                    .map(|f| {
                        f.split_whitespace()
                            .next()
                            .unwrap_or("")
                            .trim_start_matches('-')
                            .to_string()
                    })
                    .collect::<Vec<_>>()
            })
            .filter(|n| n != "h" && n != "help")
            .collect();
        in_usage.sort();
        let mut known: Vec<String> = FLAG_NAMES.iter().map(|s| s.to_string()).collect();
        known.sort();
        assert_eq!(in_usage, known);
        for n in FLAG_NAMES {
            assert!(kind_of(n).is_some());
        }
        let after = |flag: &str| {
            let i = USAGE.find(flag).unwrap();
            USAGE[i..].lines().nth(1).unwrap().to_string()
        };
        assert!(after("  -cacert PATH").contains("CA certificate"));
        assert!(after("  -cert PATH").contains("This node's certificate"));
        assert!(USAGE.lines().all(|l| l.len() <= 80));
    }
}
