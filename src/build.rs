//! Build script: how the release binaries are linked (no code is
//! generated).
//!
//! - **Code layout of `ciao-launcher`.** The functions that start-up, an
//!   idle connected launcher and a burst of STARTs run (listed in
//!   `src/bin/ciao-launcher.order` by `bench/layout.sh`) are placed
//!   together at the start of the text, so the pages the kernel maps
//!   around each page fault (64 KiB) hold code that runs instead of code
//!   that never does: about 1.5 MB less resident (docs/memory.md, fourth
//!   round). lld's `--symbol-ordering-file`; lld is Rust's default linker
//!   for x86_64-unknown-linux-gnu since 1.90. Names the file lists that a
//!   build lacks are skipped, so a stale file costs only memory.
//!   `CIAO_LAYOUT=off` links without it.
//! - **Stripping.** Release binaries are stripped by the linker here, not
//!   by the profile's `strip`: that setting enters Cargo's metadata hash,
//!   which is part of every symbol name, so a build with symbols (which
//!   `bench/layout.sh` needs, `CIAO_KEEP_SYMBOLS=1`) would name every
//!   function differently from the build the layout is for.

use std::env;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=src/build.rs");
    println!("cargo:rerun-if-changed=src/bin/ciao-launcher.order");
    println!("cargo:rerun-if-env-changed=CIAO_LAYOUT");
    println!("cargo:rerun-if-env-changed=CIAO_KEEP_SYMBOLS");
    if env::var("PROFILE").as_deref() != Ok("release") {
        return;
    }
    let gnu_linux = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if gnu_linux && env::var_os("CIAO_KEEP_SYMBOLS").is_none() {
        println!("cargo:rustc-link-arg-bins=-Wl,--strip-all");
    }
    if layout_applies() {
        let dir = env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        let order = format!("{dir}/src/bin/ciao-launcher.order");
        println!("cargo:rustc-link-arg-bin=ciao-launcher=-Wl,--symbol-ordering-file={order}");
        println!("cargo:rustc-link-arg-bin=ciao-launcher=-Wl,--no-warn-symbol-ordering");
    }
}

/// Whether the linker is lld: x86_64 GNU/Linux with rustc 1.90 or later,
/// and no flag that picks another linker.
fn layout_applies() -> bool {
    if env::var("CIAO_LAYOUT").as_deref() == Ok("off")
        || env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu")
    {
        return false;
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if ["fuse-ld", "linker-features", "linker-flavor", "linker="]
        .iter()
        .any(|f| flags.contains(f))
    {
        return false;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let minor = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    minor.is_some_and(|m| m >= 90)
}
