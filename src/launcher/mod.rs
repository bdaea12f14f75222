//! The launcher daemon: the instance manager (a pure core) and the shell
//! that runs it (`daemon`, with its executors `io`, `files`, `network`
//! and `timers`, and the docker plugin's server `plugin_server`).

mod capacity;
pub mod config;
pub(crate) mod daemon;
mod dockernet;
mod durable;
mod files;
mod io;
mod manager;
mod netfilter;
mod network;
pub mod nodestats;
mod outbox;
mod plugin_server;
mod service;
mod state;
pub mod statelog;
mod timers;
