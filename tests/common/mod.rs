//! Helpers shared by the integration tests.
#![allow(dead_code)]
pub mod certgen;
pub mod docker;
pub mod proc;
pub mod qemu;
pub mod rawtls;
pub mod ssntp_server;
