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

mod cluster;
pub(crate) mod config;
mod docs;
#[doc(hidden)]
pub mod fuzz;
pub mod rest;
pub mod shell;
mod table;

pub use table::ClientTable;
