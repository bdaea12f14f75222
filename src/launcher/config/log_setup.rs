//! The launcher's logger: where records go according to the glog flags.

use log::LevelFilter;

use super::settings::{LauncherConfig, Severity};

fn stderr_level(cfg: &LauncherConfig, file_level: LevelFilter) -> LevelFilter {
    match cfg.stderrthreshold {
        Severity::Info => file_level,
        Severity::Warning => LevelFilter::Warn,
        Severity::Error => LevelFilter::Error,
        Severity::Fatal => LevelFilter::Off,
    }
}

/// Installs the global logger: by default the file
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
