//! The launcher daemon.

pub mod config;
pub mod nodestats;
pub mod capacity;
pub mod daemon;
pub mod driver;
pub mod manager;
pub mod store;
pub mod timers;
