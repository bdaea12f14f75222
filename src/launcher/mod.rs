//! The launcher daemon.
