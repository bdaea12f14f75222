//! The bridge forwarding rule (`--bridge-forward`, docs/networking.md).
//!
//! When the kernel hands bridged frames to iptables (the `br_netfilter`
//! module, which a dockerd managing iptables loads, together with a
//! FORWARD policy of DROP), frames between two ports of a tenant bridge
//! (a container's veth, a VM's tap, the GRE tunnel) cross the FORWARD
//! chain and are dropped there: tenant traffic dies silently. The launcher
//! then inserts, once, one rule accepting what stays within its bridges:
//!
//! ```text
//! iptables -w 5 -I FORWARD -i sbr_+ -o sbr_+ -j ACCEPT
//! ```
//!
//! after checking with `-C` that it is not there already, and `-hard-reset`
//! deletes it again. Each `iptables` is a child process on the loop with a
//! deadline (the node's own children, under [`InstanceKey::node`]); a
//! missing or failing `iptables` gives a warning with the command to run by
//! hand, never a failure of the launcher. Pure: the shell reads the sysctl
//! and runs the children.

use std::ffi::OsString;
use std::time::Duration;

use log::{debug, info, warn};

use crate::driver::{Effect, Input, InstanceKey, IoOp, Key, Res};

/// Says whether bridged IPv4 frames go through iptables.
pub(crate) const SYSCTL: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

/// The rule, after the chain operation.
const RULE: [&str; 7] = ["FORWARD", "-i", "sbr_+", "-o", "sbr_+", "-j", "ACCEPT"];

/// How long one `iptables` may run (it waits up to 5 s for the xtables
/// lock itself).
const DEADLINE: Duration = Duration::from_secs(15);

/// `iptables` exits 1 for "no such rule" (`-C`, `-D`).
const NO_SUCH_RULE: i32 = 1;

/// Which `iptables` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Idle,
    /// `-C`: is the rule there?
    Check,
    /// `-I`: insert it.
    Insert,
    /// `-D` (hard reset).
    Delete,
}

impl Step {
    fn op(self) -> &'static str {
        match self {
            Step::Check => "-C",
            Step::Insert => "-I",
            Step::Delete | Step::Idle => "-D",
        }
    }

    fn res(self) -> Res {
        Res::Iptables(self as u8)
    }
}

/// The command line of one step.
fn argv(step: Step) -> Vec<OsString> {
    ["iptables", "-w", "5", step.op()]
        .into_iter()
        .chain(RULE)
        .map(OsString::from)
        .collect()
}

/// The command as an operator types it.
fn command(step: Step) -> String {
    argv(step)
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The rule's state machine: one child at a time.
#[derive(Debug)]
pub(crate) struct BridgeForward {
    step: Step,
    effects: Vec<Effect>,
}

impl BridgeForward {
    pub(crate) fn new() -> BridgeForward {
        BridgeForward {
            step: Step::Idle,
            effects: Vec::new(),
        }
    }

    /// At start-up, networking on: `filtered` is the sysctl's content
    /// (`None`: no such file, `br_netfilter` is not loaded); `enabled` is
    /// `--bridge-forward`.
    pub(crate) fn start(&mut self, filtered: Option<&str>, enabled: bool) {
        if filtered.map(str::trim) != Some("1") {
            debug!("bridged frames do not go through iptables: no forwarding rule needed");
            return;
        }
        if !enabled {
            info!(
                "bridged frames go through iptables (br_netfilter); -bridge-forward=false: \
                 tenant traffic on the bridges needs a FORWARD rule such as: {}",
                command(Step::Insert)
            );
            return;
        }
        self.run(Step::Check);
    }

    /// `-hard-reset`: deletes the rule (nothing if it is not there).
    pub(crate) fn remove(&mut self) {
        self.run(Step::Delete);
    }

    /// No child is running.
    pub(crate) fn idle(&self) -> bool {
        self.step == Step::Idle
    }

    pub(crate) fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// True for the inputs of this machine.
    pub(crate) fn owns(input: &Input) -> bool {
        matches!(
            input,
            Input::Exited {
                res: Res::Iptables(_),
                ..
            }
        )
    }

    fn run(&mut self, step: Step) {
        self.step = step;
        self.effects.push(Effect::Io(IoOp::Spawn {
            key: Key {
                inst: InstanceKey::node(),
                what: step.res(),
            },
            argv: argv(step),
            deadline: DEADLINE,
            open: Vec::new(),
        }));
    }

    /// A child ended.
    pub(crate) fn input(&mut self, input: Input) {
        let Input::Exited {
            res,
            status,
            timed_out,
            stderr,
            error,
            ..
        } = input
        else {
            return;
        };
        let step = self.step;
        if res != step.res() {
            return;
        }
        self.step = Step::Idle;
        let code = status.and_then(|s| s.code());
        let why = || {
            if timed_out {
                format!("no answer within {} s", DEADLINE.as_secs())
            } else if status.is_none() {
                error.clone()
            } else {
                let text = String::from_utf8_lossy(&stderr).trim().to_string();
                match status {
                    Some(s) if text.is_empty() => format!("exit status {s}"),
                    _ => text,
                }
            }
        };
        match (step, code) {
            (Step::Check, Some(0)) => {
                info!("bridge forwarding rule present: {}", command(Step::Insert))
            }
            (Step::Check, Some(NO_SUCH_RULE)) => self.run(Step::Insert),
            (Step::Insert, Some(0)) => info!(
                "bridged frames go through iptables (br_netfilter): inserted {}",
                command(Step::Insert)
            ),
            (Step::Check | Step::Insert, _) => warn!(
                "bridged frames go through iptables (br_netfilter) and the forwarding rule \
                 for the tenant bridges could not be set up ({}): tenant traffic may be \
                 dropped; run: {}",
                why(),
                command(Step::Insert)
            ),
            (Step::Delete, Some(0)) => {
                info!("hard reset: removed the iptables rule {}", RULE.join(" "))
            }
            (Step::Delete, Some(NO_SUCH_RULE)) => debug!("hard reset: no forwarding rule"),
            (Step::Delete, _) => warn!(
                "hard reset: cannot remove the bridge forwarding rule ({}); run: {}",
                why(),
                command(Step::Delete)
            ),
            (Step::Idle, _) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::pidfd::ChildStatus;

    fn exited(step: u8, code: Option<i32>) -> Input {
        Input::Exited {
            res: Res::Iptables(step),
            status: code.map(ChildStatus::Exited),
            timed_out: false,
            stdout: Vec::new(),
            stderr: Vec::new(),
            error: if code.is_none() {
                "iptables: No such file or directory".into()
            } else {
                String::new()
            },
        }
    }

    fn spawned(b: &mut BridgeForward) -> Vec<String> {
        b.take_effects()
            .into_iter()
            .map(|e| match e {
                Effect::Io(IoOp::Spawn { key, argv, .. }) => {
                    assert!(key.inst.is_node());
                    argv.iter()
                        .map(|a| a.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                }
                other => panic!("{other:?}"),
            })
            .collect()
    }

    /// Checked first, inserted only when missing; nothing without
    /// br_netfilter or with the option off; a missing iptables only warns.
    #[test]
    fn the_rule_is_checked_then_inserted_once() {
        let mut b = BridgeForward::new();
        b.start(Some("1\n"), true);
        assert_eq!(
            spawned(&mut b),
            ["iptables -w 5 -C FORWARD -i sbr_+ -o sbr_+ -j ACCEPT"]
        );
        b.input(exited(Step::Check as u8, Some(1)));
        assert_eq!(
            spawned(&mut b),
            ["iptables -w 5 -I FORWARD -i sbr_+ -o sbr_+ -j ACCEPT"]
        );
        assert!(!b.idle());
        b.input(exited(Step::Insert as u8, Some(0)));
        assert!(b.idle() && spawned(&mut b).is_empty());

        // Present already: not duplicated.
        b.start(Some("1"), true);
        spawned(&mut b);
        b.input(exited(Step::Check as u8, Some(0)));
        assert!(b.idle() && spawned(&mut b).is_empty());

        for (sysctl, on) in [(None, true), (Some("0"), true), (Some("1"), false)] {
            b.start(sysctl, on);
            assert!(b.idle() && spawned(&mut b).is_empty(), "{sysctl:?} {on}");
        }

        // No iptables: a warning, and idle.
        b.start(Some("1"), true);
        spawned(&mut b);
        b.input(exited(Step::Check as u8, None));
        assert!(b.idle() && spawned(&mut b).is_empty());

        b.remove();
        assert_eq!(
            spawned(&mut b),
            ["iptables -w 5 -D FORWARD -i sbr_+ -o sbr_+ -j ACCEPT"]
        );
        // A late answer of another step changes nothing.
        b.input(exited(Step::Check as u8, Some(0)));
        assert!(!b.idle());
        b.input(exited(Step::Delete as u8, Some(1)));
        assert!(b.idle());
    }
}
