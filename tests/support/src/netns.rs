//! Network namespaces made by a test, and `ip(8)` run inside them: every
//! link a test creates lives in one of these, never in the namespace the
//! test started in.

use std::process::{Command, Output};

use crate::proc::rand_u64;

/// Runs `ip ARGS`; panics with its stderr when it fails. Returns stdout.
#[track_caller]
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip: {e}"));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A named network namespace (`ip netns add`, loopback up), deleted with
/// every link inside it when dropped.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A fresh namespace; `tag` makes its name readable, a random suffix
    /// unique.
    #[track_caller]
    pub fn new(tag: &str) -> Netns {
        let name = format!("ct-{tag}-{:06x}", rand_u64() & 0xff_ffff);
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <this> ARGS`; panics when it fails.
    #[track_caller]
    pub fn ip(&self, args: &[&str]) -> String {
        let mut v = vec!["-n", self.name.as_str()];
        v.extend_from_slice(args);
        ip(&v)
    }

    /// Runs `argv` inside this namespace (`ip netns exec`), whatever its
    /// status.
    pub fn exec(&self, argv: &[&str]) -> std::io::Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .output()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
