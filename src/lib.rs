//! ciao-launcher in Rust: the compute/network node agent of a ciao cloud.
//!
//! Architecture (see README.md): pure, sans-IO cores (gob codec, SSNTP session,
//! payloads, instance state machines, HTTP parsers) driven by one `mio` event
//! loop (the shell) that owns every socket, pidfd, signalfd and timer.

pub mod ciaolc;
pub mod cli;
pub mod docker;
pub mod http;
pub mod launcher;
pub mod logging;
pub mod payloads;
pub mod qemu;
pub mod ssntp;
pub mod sys;
pub mod testserver;
