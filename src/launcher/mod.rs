//! The launcher daemon.

pub mod capacity;
pub mod config;
pub mod daemon;
pub mod driver;
pub mod io;
pub mod manager;
pub mod nodestats;
pub mod store;
pub mod timers;
