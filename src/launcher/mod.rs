//! The launcher daemon.

pub mod config;
pub mod nodestats;
pub mod capacity;
pub mod daemon;
