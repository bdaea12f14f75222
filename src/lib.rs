//! ciao-launcher in Rust: the compute/network node agent of a ciao cloud.
//!
//! Architecture (see README.md): pure, sans-IO cores (gob codec, SSNTP session,
//! payloads, instance state machines, HTTP parsers) driven by one `mio` event
//! loop (the shell) that owns every socket, pidfd, signalfd and timer.

// A dependency the library stops using should be dropped from Cargo.toml.
// This lint lives here, not in Cargo.toml's `[lints]`: there it would also
// run for every binary, test and example, which see all of the library's
// dependencies and use only a few of them directly.
#![warn(unused_crate_dependencies)]
// The library exists for the binaries, so most of it is private; its
// documentation is read with `cargo doc --document-private-items`, where
// links from public items to private ones resolve.
#![allow(rustdoc::private_intra_doc_links)]

pub mod ciaolc;
mod cli;
pub mod docker;
pub mod driver;
pub mod http;
pub mod launcher;
pub mod net;
mod logging;
pub mod node;
pub mod payloads;
pub mod qemu;
pub mod ssntp;
pub mod sys;
pub mod testserver;

// The unit tests are built with the dev-dependencies too; only the
// integration tests and examples use `ciao-test-support`, so say here that
// the unit tests do without it on purpose.
#[cfg(test)]
use ciao_test_support as _;
