//! The launcher's command line and its logging set-up.
//!
//! [`settings`] holds what the command line says ([`LauncherConfig`] and
//! the paths derived from it); [`flags`] reads the arguments into it, with
//! the [`usage`] text for `--help`; [`log_setup`] installs the logger the
//! glog flags describe. `flags` and `log_setup` depend on `settings`,
//! never the other way round.

pub mod flags;
pub mod log_setup;
pub mod settings;
pub mod usage;

pub use flags::{parse_or_exit, parse_server, FLAG_NAMES};
pub use log_setup::setup_logging;
pub use settings::{
    LauncherConfig, ServerAddr, Severity, SimDelay, UiMode, Virtualisation, DEFAULT_DATA_ROOT,
    DEFAULT_DOCKER_SOCKET, DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_SSNTP_PORT, LOG_FILE_NAME,
    OVMF_CANDIDATES,
};
pub use usage::USAGE;

/// How the command line failed (shared by the three programs).
pub use crate::cli::FlagError;
