//! The launcher's flags: which there are, how each value is checked and
//! lands in a [`LauncherConfig`], and the Go-style exit on a bad one.
//!
//! Every flag of the original keeps its name and all of Go's forms
//! (`-name value`, `-name=value`, `--name value`, `--name=value`, a boolean
//! as `-name` or `-name=false`), and parsing stops at the first non-flag
//! argument or after `--`: [`crate::cli::scan`] applies those rules. New
//! flags are GNU-style long options (`--data-root DIR`), which the same
//! rules accept with one dash as well, since Go makes no difference.

use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::settings::{
    DockerPlugin, LauncherConfig, ServerAddr, Severity, SimDelay, UiMode, Virtualisation,
    DEFAULT_SSNTP_PORT, PLUGIN_TCP_DEFAULT,
};
use super::usage::USAGE;
use crate::cli::{debug_quote, scan, Flag, FlagError, Setting};

/// Every flag, in the order of [`USAGE`] (which also lists help).
const FLAGS: [Flag; 33] = [
    Flag::value("cacert"),
    Flag::value("cert"),
    Flag::value("server"),
    Flag::value("connect-timeout"),
    Flag::value("keepalive"),
    Flag::value("tcp-user-timeout"),
    Flag::value("max-message-size"),
    Flag::value("data-root"),
    Flag::bool("network"),
    Flag::value("qemu-virtualisation"),
    Flag::value("with-ui"),
    Flag::value("ovmf"),
    Flag::value("docker-socket"),
    Flag::value("container-mtu"),
    Flag::bool("bridge-forward"),
    Flag::value("docker-plugin"),
    Flag::value("docker-plugin-name"),
    Flag::value("ceph_id"),
    Flag::value("ceph-conf"),
    Flag::value("ceph-timeout"),
    Flag::value("detach-timeout"),
    Flag::value("stats-interval"),
    Flag::value("stop-timeout"),
    Flag::bool("hard-reset"),
    Flag::bool("simulation"),
    Flag::value("simulation-delay"),
    Flag::value("log_dir"),
    Flag::bool("logtostderr"),
    Flag::bool("alsologtostderr"),
    Flag::value("stderrthreshold"),
    Flag::value("v"),
    Flag::value("vmodule"),
    Flag::value("log_backtrace_at"),
];

/// Every flag name the parser knows (the names in [`USAGE`], minus help).
pub const FLAG_NAMES: [&str; FLAGS.len()] = {
    let mut names = [""; FLAGS.len()];
    let mut i = 0;
    while i < FLAGS.len() {
        names[i] = FLAGS[i].name;
        i += 1;
    }
    names
};

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
pub(crate) fn parse_server(s: &str) -> Result<ServerAddr, String> {
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

/// `--docker-plugin`: `unix`, `unix:PATH`, `tcp`, `tcp:ADDR` (loopback
/// only: the plugin has no authentication) or `none`.
fn parse_docker_plugin(s: &str) -> Result<DockerPlugin, String> {
    let loopback = |a: &str| -> Result<DockerPlugin, String> {
        let addr: std::net::SocketAddr = a.parse().map_err(|_| format!("{a:?} is not IP:PORT"))?;
        if !addr.ip().is_loopback() {
            return Err(format!("{a:?} is not a loopback address"));
        }
        Ok(DockerPlugin::Tcp(addr))
    };
    match s {
        "unix" => Ok(DockerPlugin::Unix(None)),
        "tcp" => loopback(PLUGIN_TCP_DEFAULT),
        "none" => Ok(DockerPlugin::Off),
        _ => {
            if let Some(p) = s.strip_prefix("unix:") {
                return Ok(DockerPlugin::Unix(Some(req_path(OsStr::new(p))?)));
            }
            if let Some(a) = s.strip_prefix("tcp:") {
                return loopback(a);
            }
            Err("unix, unix:PATH, tcp, tcp:ADDR or none expected".into())
        }
    }
}

/// `--docker-plugin-name`: a docker driver name that is also a file name.
fn check_plugin_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err("1 to 64 letters, digits, '_', '-' or '.', starting with a letter or digit".into())
    }
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
        "keepalive" => cfg.keepalive = seconds(v, 1)?,
        "tcp-user-timeout" => cfg.tcp_user_timeout = seconds(v, 1)?,
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
        "container-mtu" => {
            let n: u32 = text(v)?
                .parse()
                .map_err(|_| "expected a number of bytes".to_string())?;
            // 68: IPv4's minimum; 65535: what a veth takes.
            if !(68..=65_535).contains(&n) {
                return Err("must be between 68 and 65535".into());
            }
            cfg.container_mtu = n;
        }
        "docker-plugin" => cfg.docker_plugin = parse_docker_plugin(text(v)?)?,
        "docker-plugin-name" => {
            let s = text(v)?;
            check_plugin_name(s)?;
            cfg.docker_plugin_name = s.to_string();
        }
        "ceph_id" => {
            let s = text(v)?;
            cfg.ceph_id = (!s.is_empty()).then(|| s.to_string());
        }
        "ceph-conf" => cfg.ceph_conf = opt_path(v),
        "ceph-timeout" => cfg.ceph_timeout = seconds(v, 1)?,
        "detach-timeout" => cfg.detach_timeout = seconds(v, 1)?,
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
        "bridge-forward" => cfg.bridge_forward = b,
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
        let flags_end = scan(&FLAGS, &args, debug_quote, |flag, setting| match setting {
            Setting::Bool(b) => {
                set_bool(&mut cfg, flag.name, b);
                Ok(())
            }
            Setting::Value(v) => set_value(&mut cfg, flag.name, v),
        })?;
        cfg.positional = args.into_iter().skip(flags_end).collect();
        Ok(cfg)
    }
}

/// Parses like [`LauncherConfig::parse`] and handles the outcome as Go
/// does: help ⇒ [`USAGE`] on stdout and exit 0; a bad flag ⇒ the message
/// and [`USAGE`] on stderr and exit 2.
pub(crate) fn parse_or_exit(args: Vec<OsString>) -> LauncherConfig {
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

#[cfg(test)]
mod tests {
    use super::*;
    use log::LevelFilter;
    use std::os::unix::ffi::OsStrExt;

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
        assert_eq!(c.container_mtu, 1400);
        assert!(c.bridge_forward);
        assert_eq!(c.docker_plugin_name, "ciao");
        assert_eq!(c.virtualisation, Virtualisation::Kvm);
        assert_eq!(c.with_ui, UiMode::None);
        assert_eq!(c.stats_interval, Duration::from_secs(30));
        assert_eq!(c.stop_timeout, Duration::from_secs(30));
        assert_eq!(c.connect_timeout, Duration::from_secs(30));
        assert_eq!(c.keepalive, Duration::from_secs(30));
        assert_eq!(c.tcp_user_timeout, Duration::from_secs(90));
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

    /// Go's reading, which a lookup of keys anywhere in the arguments
    /// (pico-args' model, see README.md "Dependencies") gets wrong: a value
    /// that equals a flag name is a value, and the first bad flag in
    /// argument order is the one reported.
    #[test]
    fn arguments_are_read_in_order() {
        let c = p(&["-ceph_id", "--cacert", "-cacert", "/ca.pem"]).unwrap();
        assert_eq!(c.ceph_id.as_deref(), Some("--cacert"));
        assert_eq!(c.cacert.as_deref(), Some(Path::new("/ca.pem")));
        assert!(bad(&["-v", "x", "--stats-interval", "0"]).contains("flag -v:"));
        assert!(bad(&["--stats-interval", "0", "-v", "x"]).contains("flag -stats-interval:"));
        assert!(bad(&["-v", "1", "-v", "x", "-v", "2"]).contains("\"x\""));
    }

    /// Every flag in the table lands somewhere in the configuration.
    #[test]
    fn every_flag_is_applied() {
        for f in FLAGS {
            if let crate::cli::Kind::Bool = f.kind {
                let changed = [false, true].iter().any(|&b| {
                    let mut cfg = LauncherConfig::default();
                    set_bool(&mut cfg, f.name, b);
                    cfg != LauncherConfig::default()
                });
                assert!(changed, "{}", f.name);
            } else {
                let r = set_value(&mut LauncherConfig::default(), f.name, OsStr::new(""));
                assert_ne!(r, Err("unknown flag".into()), "{}", f.name);
            }
        }
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
        assert!(bad(&["--container-mtu", "67"]).contains("between 68 and 65535"));
        assert!(bad(&["--container-mtu", "x"]).contains("number of bytes"));
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
            "--container-mtu",
            "9000",
            "-bridge-forward=false",
            "--ovmf",
            "/fw/OVMF.fd",
            "--connect-timeout",
            "5",
            "--keepalive=4",
            "--tcp-user-timeout",
            "12",
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
        assert_eq!(c.container_mtu, 9000);
        assert!(!c.bridge_forward);
        assert_eq!(c.ovmf_path(), Some(PathBuf::from("/fw/OVMF.fd")));
        assert_eq!(c.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.keepalive, Duration::from_secs(4));
        assert_eq!(c.tcp_user_timeout, Duration::from_secs(12));
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
    fn docker_plugin_forms() {
        let c = p(&[]).unwrap();
        assert_eq!(c.docker_plugin, DockerPlugin::Unix(None));
        assert_eq!(c.docker_plugin_name, "ciao");
        assert_eq!(
            c.docker_plugin_socket(),
            Some(PathBuf::from("/run/docker/plugins/ciao.sock"))
        );
        assert_eq!(c.docker_plugin_spec(), None);
        assert_eq!(
            c.docker_plugin_state(),
            Path::new("/var/lib/ciao/networking/docker-plugin.yaml")
        );
        let c = p(&["--docker-plugin-name", "ciaot1x2"]).unwrap();
        assert_eq!(
            c.docker_plugin_socket(),
            Some(PathBuf::from("/run/docker/plugins/ciaot1x2.sock"))
        );
        let c = p(&["--docker-plugin=unix:/tmp/p.sock"]).unwrap();
        assert_eq!(c.docker_plugin_socket(), Some(PathBuf::from("/tmp/p.sock")));
        let c = p(&["--docker-plugin", "tcp"]).unwrap();
        assert_eq!(
            c.docker_plugin,
            DockerPlugin::Tcp("127.0.0.1:9999".parse().unwrap())
        );
        assert_eq!(c.docker_plugin_socket(), None);
        assert_eq!(
            c.docker_plugin_spec(),
            Some(PathBuf::from("/etc/docker/plugins/ciao.json"))
        );
        assert_eq!(
            p(&["--docker-plugin", "tcp:[::1]:7"])
                .unwrap()
                .docker_plugin,
            DockerPlugin::Tcp("[::1]:7".parse().unwrap())
        );
        assert_eq!(
            p(&["--docker-plugin", "none"]).unwrap().docker_plugin,
            DockerPlugin::Off
        );
        assert!(bad(&["--docker-plugin", "tcp:0.0.0.0:9999"]).contains("not a loopback"));
        assert!(bad(&["--docker-plugin", "tcp:x"]).contains("not IP:PORT"));
        assert!(bad(&["--docker-plugin", "unix:"]).contains("must not be empty"));
        assert!(bad(&["--docker-plugin", "udp"]).contains("unix, unix:PATH"));
        for name in ["", "../x", "a/b", ".x", "x y"] {
            assert!(
                bad(&["--docker-plugin-name", name]).contains("letters, digits"),
                "{name:?}"
            );
        }
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
    /// original had them swapped, docs/compatibility.md L34).
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
        let after = |flag: &str| {
            let i = USAGE.find(flag).unwrap();
            USAGE[i..].lines().nth(1).unwrap().to_string()
        };
        assert!(after("  -cacert PATH").contains("CA certificate"));
        assert!(after("  -cert PATH").contains("This node's certificate"));
        assert!(USAGE.lines().all(|l| l.len() <= 80));
    }
}
