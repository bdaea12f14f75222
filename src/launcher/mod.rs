//! The launcher daemon: the instance manager (a pure core) and the shell
//! that runs it (`daemon`, with its executors `io`, `files` and `timers`).

pub mod capacity;
pub mod config;
pub mod daemon;
pub mod files;
pub mod io;
pub mod manager;
pub mod nodestats;
pub mod state;
pub mod timers;
