//! The launcher's command line and its logging set-up.
//!
//! [`settings`] holds what the command line says ([`LauncherConfig`] and
//! the paths derived from it); [`flags`] reads the arguments into it, with
//! the [`usage`] text for `--help`; [`log_setup`] installs the logger the
//! glog flags describe. `flags` and `log_setup` depend on `settings`,
//! never the other way round.

mod flags;
mod log_setup;
mod settings;
mod usage;

pub(crate) use flags::parse_or_exit;
pub use flags::FLAG_NAMES;
pub use log_setup::setup_logging;
pub use settings::{DockerPlugin, LauncherConfig};
pub(crate) use settings::{UiMode, Virtualisation};
pub use usage::USAGE;

/// How the command line failed (shared by the three programs).
pub use crate::cli::FlagError;
