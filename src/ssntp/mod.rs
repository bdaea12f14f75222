//! SSNTP: ciao's control protocol (gob-encoded frames over mutual TLS).

pub mod cert;
pub mod frame;
pub mod gob;
pub mod role;
pub mod tls;
pub mod uuid;
pub mod client;
pub mod server;
pub mod session;
pub mod stream;
