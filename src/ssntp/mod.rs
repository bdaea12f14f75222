//! SSNTP: ciao's control protocol (gob-encoded frames over mutual TLS).

pub mod cert;
pub mod client;
pub mod frame;
pub mod gob;
pub mod role;
pub mod server;
pub mod session;
pub mod stream;
pub mod tls;
pub mod uuid;
