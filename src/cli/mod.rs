//! Go-style command lines, one implementation for the three programs.
//!
//! `ciao-launcher`, `ciao-launcher-server` and `ciaolc` keep the flags of
//! their Go originals, so they read them by the rules of Go's `flag`
//! package ([`scan`]), with Go's error messages. The launcher applies each
//! flag to its configuration as it is scanned and writes its own help
//! text; the test tools collect string values in a [`FlagSet`], whose usage
//! text is Go's generated one. Why no argument-parsing crate does this
//! instead: README.md, "Dependencies".

pub(crate) mod flagset;
pub(crate) mod scan;

pub(crate) use flagset::FlagSet;
pub(crate) use scan::{debug_quote, scan, Flag, Kind, Setting};
// Part of the library's interface: `launcher::config` re-exports it.
pub use scan::FlagError;
