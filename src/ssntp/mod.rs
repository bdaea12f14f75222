//! SSNTP: ciao's control protocol (gob-encoded frames over mutual TLS).

pub mod cert;
pub(crate) mod client;
pub mod frame;
mod gob;
pub mod role;
pub mod server;
mod session;
mod stream;
pub mod tls;
pub mod uuid;
