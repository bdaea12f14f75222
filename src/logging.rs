//! Logger set-up shared by the daemons: glog-like sinks on top of
//! simplelog (an optional log file plus stderr, each with its own level).

use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use simplelog::{CombinedLogger, ConfigBuilder, LevelFilter, SharedLogger, WriteLogger};

/// Mode of a log file we create (an existing file keeps its mode).
pub(crate) const LOG_FILE_MODE: u32 = 0o640;

/// Where records go.
pub(crate) struct Sinks {
    /// Level of the file (and of stderr when there is no file).
    pub level: LevelFilter,
    /// Log file, appended to; its directory is created (0755), the file
    /// itself with mode 0640 (whatever the umask allows of it: logs name
    /// instances and tenants, so they are not for every local user).
    pub file: Option<PathBuf>,
    /// Level of stderr when a file is used too (`Off` for none).
    pub stderr: LevelFilter,
    /// Targets (module prefixes) kept to warnings and errors below trace
    /// level (rustls is chatty at debug level).
    pub quiet: &'static [&'static str],
}

/// Installs the global logger.
pub(crate) fn install(s: Sinks) -> Result<(), String> {
    let mut b = ConfigBuilder::new();
    b.set_thread_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Debug)
        .set_time_format_rfc3339();
    if s.level < LevelFilter::Trace {
        for q in s.quiet {
            b.add_filter_ignore_str(q);
        }
    }
    let conf = b.build();
    // The journal stamps every line itself: on it, stderr goes without ours.
    let stderr_conf = if stderr_is_journal() {
        b.set_time_level(LevelFilter::Off).build()
    } else {
        conf.clone()
    };
    let stderr = || io::LineWriter::new(io::stderr());
    let mut loggers: Vec<Box<dyn SharedLogger>> = Vec::new();
    match &s.file {
        None => loggers.push(WriteLogger::new(s.level, stderr_conf, stderr())),
        Some(path) => {
            if let Some(dir) = path.parent() {
                crate::sys::fs::mkdir_p(dir, 0o755)
                    .map_err(|e| format!("cannot create log directory {}: {e}", dir.display()))?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(LOG_FILE_MODE)
                .open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?;
            loggers.push(WriteLogger::new(s.level, conf, io::LineWriter::new(file)));
            if s.stderr != LevelFilter::Off {
                loggers.push(WriteLogger::new(s.stderr, stderr_conf, stderr()));
            }
        }
    }
    CombinedLogger::init(loggers).map_err(|e| format!("cannot install the logger: {e}"))
}

/// Whether stderr is the systemd journal: systemd sets `$JOURNAL_STREAM`
/// to `<device>:<inode>` of the stream it connects to stderr, and checking
/// that it still is our stderr keeps a variable inherited by a process
/// started from a service's shell (stderr redirected elsewhere) from
/// changing the format.
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    journal_stream_is(&stream.to_string_lossy(), meta.dev(), meta.ino())
}

/// Whether a `$JOURNAL_STREAM` value names device `dev`, inode `ino`.
fn journal_stream_is(value: &str, dev: u64, ino: u64) -> bool {
    value
        .split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        == Some((dev, ino))
}

#[cfg(test)]
mod tests {
    use super::journal_stream_is;

    #[test]
    fn journal_stream_must_name_our_stderr() {
        assert!(journal_stream_is("8:12345", 8, 12345));
        assert!(!journal_stream_is("8:12345", 8, 12346));
        assert!(!journal_stream_is("8", 8, 12345));
        assert!(!journal_stream_is("x:y", 8, 12345));
    }
}
