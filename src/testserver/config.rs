//! Command line of `ciao-launcher-server`.
//!
//! Every flag of the original keeps its name, meaning and Go syntax
//! (see ciao-launcher-server(8)); the new options (`--ssntp-listen`, `--data-root`,
//! `--config`, `--http-header-timeout`) are GNU-style long options, which the Go parser accepts as
//! well. Parsing is pure: it returns either a configuration or what to print
//! and the exit status, so the binary stays a few lines long.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{Flag, FlagError, FlagSet, Kind};

/// Default REST address (loopback only: the API has no authentication).
pub(crate) const DEFAULT_REST: &str = "127.0.0.1:9000";
/// Default SSNTP address: every interface, port 8888, like the original, so
/// launchers on other nodes can reach it.
pub(crate) const DEFAULT_SSNTP: &str = "0.0.0.0:8888";
/// Default data root, shared with the launcher's convention.
pub(crate) const DEFAULT_DATA_ROOT: &str = "/var/lib/ciao";

/// Everything the server needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerConfig {
    /// `-server`: REST listen address as given (`HOST:PORT`, `:PORT` means
    /// all interfaces); resolve with [`resolve_listen`].
    pub rest_listen: String,
    /// `--ssntp-listen`: SSNTP listen address as given.
    pub ssntp_listen: String,
    /// `-ca-server-cert`: CA that signs launcher certificates.
    pub ca_cert: PathBuf,
    /// `-server-cert`: server certificate followed by its private key; the
    /// server's SSNTP role is read from it.
    pub server_cert: PathBuf,
    /// `-trace`: ask for SSNTP path tracing on the frames the server sends.
    pub trace: bool,
    /// `-compute-net`: one CIDR for `configure.launcher.compute_net` ("" = none).
    pub compute_net: String,
    /// `-mgmt-net`: one CIDR for `configure.launcher.mgmt_net` ("" = none).
    pub mgmt_net: String,
    /// `-disk-limit`: `configure.launcher.disk_limit`.
    pub disk_limit: bool,
    /// `-mem-limit`: `configure.launcher.mem_limit`.
    pub mem_limit: bool,
    /// `-ceph-id`: `configure.storage.ceph_id`.
    pub ceph_id: String,
    /// `--data-root`: where the server keeps its own files (its SSNTP UUID
    /// under `local/`, its lock under `lock/`).
    pub data_root: PathBuf,
    /// `--config FILE`: a cluster configuration document that replaces the
    /// one built from the flags.
    pub config_file: Option<PathBuf>,
    /// `--http-header-timeout SECS`: how long a REST client may take to
    /// send a whole request head (default 10 s).
    pub http_header_timeout: Duration,
    /// glog flags of the original, kept so the shell can map them onto its
    /// logger: `-v N`.
    pub verbosity: u32,
    /// `-logtostderr`.
    pub logtostderr: bool,
    /// `-alsologtostderr`.
    pub alsologtostderr: bool,
    /// `-log_dir`.
    pub log_dir: Option<PathBuf>,
    /// glog flags that were given but have no effect (`-vmodule`,
    /// `-log_backtrace_at`, `-stderrthreshold`), for a start-up warning.
    pub ignored_flags: Vec<String>,
}

/// What [`parse_args`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParseOutcome {
    /// Start the server with this configuration.
    Run(Box<ServerConfig>),
    /// Print `stdout`/`stderr` and exit with `code` (help, or an error).
    Exit {
        code: i32,
        stdout: String,
        stderr: String,
    },
}

/// Errors found after parsing, when the server prepares to start.
#[derive(Debug)]
pub(crate) enum ConfigError {
    /// A listen address that is not `HOST:PORT` or does not resolve.
    BadAddress {
        flag: &'static str,
        addr: String,
        why: String,
    },
    /// The `--config` file could not be read.
    ReadConfig {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The `--config` file is not a usable cluster configuration.
    BadConfig { path: PathBuf, why: String },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::BadAddress { flag, addr, why } => {
                write!(f, "invalid {flag} address {addr:?}: {why} (expected HOST:PORT, e.g. 127.0.0.1:9000)")
            }
            ConfigError::ReadConfig { path, error } => {
                write!(
                    f,
                    "cannot read the cluster configuration {}: {error}",
                    path.display()
                )
            }
            ConfigError::BadConfig { path, why } => {
                write!(
                    f,
                    "{} is not a usable cluster configuration: {why}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// Help text; the man page ciao-launcher-server(8) says the same.
pub(crate) const HELP: &str = "\
Usage: ciao-launcher-server -ca-server-cert FILE -server-cert FILE [options]

An SSNTP server with a small REST API on loopback, to drive one or more
ciao-launcher processes without the rest of ciao. Use ciaolc(1) or curl
against the REST API.

Options (Go-style -name value, -name=value, --name value and --name=value
are all accepted; booleans are set with -name and cleared with -name=false):
  -ca-server-cert FILE  PEM file of the CA that signs launcher certificates
  -server-cert FILE     PEM file with the server certificate and its key
                        (role scheduler, e.g. cert-Scheduler-localhost.pem)
  -server HOST:PORT     REST listen address (default 127.0.0.1:9000)
  --ssntp-listen HOST:PORT
                        SSNTP listen address (default 0.0.0.0:8888)
  --data-root DIR       where the server keeps its UUID (default /var/lib/ciao)
  --http-header-timeout SECS
                        a REST client must send a whole request head within
                        SECS seconds or is disconnected (default 10)
  -trace                ask launchers for SSNTP path traces
  -compute-net CIDR     compute network sent to launchers (default none)
  -mgmt-net CIDR        management network sent to launchers (default none)
  -disk-limit=BOOL      disk admission limit for launchers (default true)
  -mem-limit=BOOL       memory admission limit for launchers (default true)
  -ceph-id ID           ceph client id sent to launchers (default ciao)
  --config FILE         send this cluster configuration (a configure:
                        document) instead of the one built from the flags
  -logtostderr, -alsologtostderr, -log_dir DIR, -v N
                        logging, as in glog
  -vmodule, -log_backtrace_at, -stderrthreshold
                        accepted for compatibility, ignored
  -h, --help            print this help and exit
";

/// The message printed when no certificate is given: the original's
/// built-in certificates expired in 2017 (defect D7), so we refuse and say
/// how to make fresh ones.
pub(crate) const NO_CERTS: &str = "\
ciao-launcher-server: no certificates given (-ca-server-cert and -server-cert are required).
Make a CA with the scheduler role and a launcher certificate signed by it, e.g. from the source tree:
  cargo run --example ciao-cert -- -anchor -role scheduler -host localhost -directory certs
  cargo run --example ciao-cert -- -role agent,netagent -host localhost -anchor-cert certs/cert-Scheduler-localhost.pem -directory certs
then start:
  ciao-launcher-server -ca-server-cert certs/CAcert-localhost.pem -server-cert certs/cert-Scheduler-localhost.pem
and give the launcher -cacert certs/CAcert-localhost.pem -cert certs/cert-CNAgent-NetworkingAgent-localhost.pem
";

fn check_level(v: &str) -> Result<(), String> {
    v.parse::<u32>()
        .map(|_| ())
        .map_err(|_| "expected a non-negative integer".into())
}

/// Default of `--http-header-timeout`, in seconds.
const DEFAULT_HEADER_TIMEOUT: &str = "10";

fn header_secs(v: &str) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if (1..=3600).contains(&n) => Ok(n),
        _ => Err("expected a number of seconds from 1 to 3600".into()),
    }
}

fn check_header_secs(v: &str) -> Result<(), String> {
    header_secs(v).map(|_| ())
}

fn any_value(_: &str) -> Result<(), String> {
    Ok(())
}

fn flag_set(argv0: &str) -> FlagSet {
    let f = |name, kind, usage, default| Flag {
        name,
        kind,
        usage,
        default,
    };
    FlagSet::new(
        argv0,
        vec![
            f("server", Kind::Str, "IP port of REST server", DEFAULT_REST),
            f("ca-server-cert", Kind::Str, "Client certificate", ""),
            f("server-cert", Kind::Str, "Server certificate", ""),
            f("trace", Kind::Bool, "Enable SSNTP frame tracing", "false"),
            f("compute-net", Kind::Str, "Compute Subnet", ""),
            f("mgmt-net", Kind::Str, "Management Subnet", ""),
            f("disk-limit", Kind::Bool, "Use disk usage limits", "true"),
            f("mem-limit", Kind::Bool, "Use memory usage limits", "true"),
            f("ceph-id", Kind::Str, "ceph client id", "ciao"),
            f(
                "ssntp-listen",
                Kind::Str,
                "SSNTP listen address",
                DEFAULT_SSNTP,
            ),
            f(
                "data-root",
                Kind::Str,
                "Directory for the server's own files",
                DEFAULT_DATA_ROOT,
            ),
            f(
                "http-header-timeout",
                Kind::Value(check_header_secs),
                "Seconds a REST client has to send a whole request head",
                DEFAULT_HEADER_TIMEOUT,
            ),
            f(
                "config",
                Kind::Str,
                "Cluster configuration file to send instead of the built-in one",
                "",
            ),
            f(
                "alsologtostderr",
                Kind::Bool,
                "log to standard error as well as files",
                "false",
            ),
            f(
                "log_backtrace_at",
                Kind::Value(any_value),
                "when logging hits line file:N, emit a stack trace",
                ":0",
            ),
            f(
                "log_dir",
                Kind::Str,
                "If non-empty, write log files in this directory",
                "",
            ),
            f(
                "logtostderr",
                Kind::Bool,
                "log to standard error instead of files",
                "false",
            ),
            f(
                "stderrthreshold",
                Kind::Value(any_value),
                "logs at or above this threshold go to stderr",
                "ERROR",
            ),
            f("v", Kind::Value(check_level), "log level for V logs", "0"),
            f(
                "vmodule",
                Kind::Value(any_value),
                "comma-separated list of pattern=N settings for file-filtered logging",
                "",
            ),
        ],
    )
}

/// Parses the arguments after `argv[0]`.
pub(crate) fn parse_args(args: &[String]) -> ParseOutcome {
    let set = flag_set("ciao-launcher-server");
    let exit = |code, stderr: String| ParseOutcome::Exit {
        code,
        stdout: String::new(),
        stderr,
    };
    let p = match set.parse(args) {
        Ok(p) => p,
        Err(FlagError::Help) => {
            return ParseOutcome::Exit {
                code: 0,
                stdout: HELP.to_string(),
                stderr: String::new(),
            }
        }
        Err(FlagError::Bad(m)) => {
            return exit(
                2,
                format!("{m}\nRun ciao-launcher-server --help for the list of options.\n"),
            );
        }
    };
    if let Some(extra) = p.rest.first() {
        return exit(
            2,
            format!("unexpected argument {extra:?}: ciao-launcher-server takes options only (see --help)\n"),
        );
    }
    let ca = p.str_or("ca-server-cert", "");
    let cert = p.str_or("server-cert", "");
    match (ca.is_empty(), cert.is_empty()) {
        (true, true) => return exit(1, NO_CERTS.to_string()),
        (false, false) => {}
        _ => {
            return exit(
                1,
                "Either both or neither certificate paths must be defined\n".to_string(),
            )
        }
    }
    let nonempty = |name| {
        let v = p.str_or(name, "");
        (!v.is_empty()).then(|| PathBuf::from(v))
    };
    let ignored_flags = ["vmodule", "log_backtrace_at", "stderrthreshold"]
        .iter()
        .filter(|n| p.get(n).is_some())
        .map(|n| format!("-{n}"))
        .collect();
    let data_root = p.str_or("data-root", DEFAULT_DATA_ROOT);
    if data_root.is_empty() {
        return exit(2, "--data-root must not be empty\n".to_string());
    }
    ParseOutcome::Run(Box::new(ServerConfig {
        rest_listen: p.str_or("server", DEFAULT_REST).to_string(),
        ssntp_listen: p.str_or("ssntp-listen", DEFAULT_SSNTP).to_string(),
        ca_cert: PathBuf::from(ca),
        server_cert: PathBuf::from(cert),
        trace: p.bool_or("trace", false),
        compute_net: p.str_or("compute-net", "").to_string(),
        mgmt_net: p.str_or("mgmt-net", "").to_string(),
        disk_limit: p.bool_or("disk-limit", true),
        mem_limit: p.bool_or("mem-limit", true),
        ceph_id: p.str_or("ceph-id", "ciao").to_string(),
        data_root: PathBuf::from(data_root),
        config_file: nonempty("config"),
        http_header_timeout: Duration::from_secs(
            header_secs(p.str_or("http-header-timeout", DEFAULT_HEADER_TIMEOUT)).unwrap_or(10),
        ),
        verbosity: p.get("v").and_then(|v| v.parse().ok()).unwrap_or(0),
        logtostderr: p.bool_or("logtostderr", false),
        alsologtostderr: p.bool_or("alsologtostderr", false),
        log_dir: nonempty("log_dir"),
        ignored_flags,
    }))
}

/// Resolves a Go-style listen address: `HOST:PORT`, `[V6]:PORT`, or `:PORT`
/// for every interface. `flag` names the option in the error.
pub(crate) fn resolve_listen(
    flag: &'static str,
    addr: &str,
) -> Result<std::net::SocketAddr, ConfigError> {
    use std::net::ToSocketAddrs;
    let bad = |why: String| ConfigError::BadAddress {
        flag,
        addr: addr.to_string(),
        why,
    };
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(bad("missing port".into()));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| bad(format!("bad port {port:?}")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    let mut addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| bad(e.to_string()))?;
    addrs
        .next()
        .ok_or_else(|| bad("name resolves to no address".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn run(a: &[&str]) -> ServerConfig {
        match parse_args(&args(a)) {
            ParseOutcome::Run(c) => *c,
            other => panic!("{other:?}"),
        }
    }

    fn exit(a: &[&str]) -> (i32, String) {
        match parse_args(&args(a)) {
            ParseOutcome::Exit {
                code,
                stdout,
                stderr,
            } => (code, stdout + &stderr),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_and_go_forms() {
        let c = run(&["-ca-server-cert", "ca.pem", "--server-cert=s.pem"]);
        assert_eq!(c.rest_listen, "127.0.0.1:9000");
        assert_eq!(c.ssntp_listen, "0.0.0.0:8888");
        assert_eq!(c.http_header_timeout, Duration::from_secs(10));
        assert_eq!(c.ca_cert, PathBuf::from("ca.pem"));
        assert_eq!(c.server_cert, PathBuf::from("s.pem"));
        assert!(c.disk_limit && c.mem_limit && !c.trace);
        assert_eq!(c.ceph_id, "ciao");
        assert_eq!(c.data_root, PathBuf::from("/var/lib/ciao"));
        assert_eq!(c.config_file, None);

        let c = run(&[
            "-ca-server-cert=ca",
            "-server-cert",
            "s",
            "-disk-limit=false",
            "--mem-limit=false",
            "-trace",
            "-ceph-id",
            "",
            "-compute-net",
            "10.1.0.0/16",
            "--ssntp-listen",
            "127.0.0.1:8888",
            "--data-root=/tmp/x",
            "--config",
            "c.yaml",
            "-server",
            ":9100",
            "-v",
            "2",
            "-vmodule",
            "x=1",
            "-logtostderr",
        ]);
        assert!(!c.disk_limit && !c.mem_limit && c.trace);
        assert_eq!(c.ceph_id, "");
        assert_eq!(c.compute_net, "10.1.0.0/16");
        assert_eq!(c.ssntp_listen, "127.0.0.1:8888");
        assert_eq!(c.data_root, PathBuf::from("/tmp/x"));
        assert_eq!(c.config_file, Some(PathBuf::from("c.yaml")));
        assert_eq!(c.rest_listen, ":9100");
        assert_eq!(c.verbosity, 2);
        assert!(c.logtostderr);
        assert_eq!(c.ignored_flags, vec!["-vmodule".to_string()]);
    }

    #[test]
    fn certificate_rules() {
        assert_eq!(
            exit(&["-server-cert", "s"]),
            (
                1,
                "Either both or neither certificate paths must be defined\n".to_string()
            )
        );
        let (code, text) = exit(&[]);
        assert_eq!(code, 1);
        assert!(
            text.contains("cargo run --example ciao-cert -- -anchor -role scheduler"),
            "{text}"
        );
    }

    #[test]
    fn help_and_errors() {
        assert_eq!(exit(&["-h"]), (0, HELP.to_string()));
        assert_eq!(exit(&["--help"]).0, 0);
        let (code, text) = exit(&["-x"]);
        assert_eq!(code, 2);
        assert!(text.starts_with("flag provided but not defined: -x\n"));
        assert_eq!(
            exit(&["-ca-server-cert", "a", "-server-cert", "b", "extra"]).0,
            2
        );
        assert_eq!(exit(&["-v", "x"]).0, 2);
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(
            resolve_listen("-server", ":9000").unwrap().to_string(),
            "0.0.0.0:9000"
        );
        assert_eq!(
            resolve_listen("-server", "127.0.0.1:9000")
                .unwrap()
                .to_string(),
            "127.0.0.1:9000"
        );
        assert_eq!(
            resolve_listen("-server", "[::1]:9000").unwrap().to_string(),
            "[::1]:9000"
        );
        assert!(resolve_listen("-server", "127.0.0.1").is_err());
        assert!(resolve_listen("-server", "127.0.0.1:x").is_err());
    }

    #[test]
    fn header_timeout_is_a_number_of_seconds() {
        let c = run(&[
            "-ca-server-cert=c",
            "-server-cert=s",
            "--http-header-timeout=1",
        ]);
        assert_eq!(c.http_header_timeout, Duration::from_secs(1));
        for bad in ["0", "x", "3601", "-1"] {
            let (code, err) = exit(&[
                "-ca-server-cert=c",
                "-server-cert=s",
                &format!("--http-header-timeout={bad}"),
            ]);
            assert_eq!(code, 2, "{bad}: {err}");
        }
    }
}
