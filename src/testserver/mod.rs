//! ciao-launcher-server: SSNTP server + REST API for driving launchers in isolation.
//!
//! The pure parts live here: the client table fed by SSNTP events
//! ([`table`]), the REST API as a function from request to response and
//! frame to send ([`rest`]), the command line ([`config`]) and the cluster
//! configuration sent in CONNECTED ([`cluster`]). The shell (`shell.rs`) owns
//! the sockets and the event loop and calls into these.
//!
//! "Defect Dn" in comments is the original server's defect Dn of
//! docs/compatibility.md (section 5.1), which says what we do about it.

pub mod cluster;
pub mod config;
pub mod docs;
#[doc(hidden)]
pub mod fuzz;
pub mod rest;
pub mod shell;
pub mod table;

pub use config::{parse_args, ParseOutcome, ServerConfig};
pub use rest::{handle, Command, RestOutcome, RestResponse};
pub use table::{ClientTable, DrainEntry, FrameOutcome, IgnoredRole};
