//! The output layouts of `ciaolc` (the original's): the `istats`
//! table, the `stats` block and the `status` block, aligned by Go's
//! tabwriter rules. Pure functions from documents to text, so the golden
//! tests feed them the documents of transcripts of the original.

use std::fmt::Write as _;

use super::tabwriter::align;
use crate::payloads::{InstanceStat, Ready, Stat};

/// One `istats` row per instance, after a header; empty input gives empty
/// output (not even the header), as the original.
pub fn istats(instances: &[InstanceStat]) -> String {
    if instances.is_empty() {
        return String::new();
    }
    let mut t = String::from("UUID\tStatus\tSSH\tMem\tDisk\tCPU\tVolumes\n");
    for i in instances {
        let _ = writeln!(
            t,
            "{}\t{}\t{}:{}\t{} MB\t{} MB\t{}%\t[{}]",
            i.instance_uuid,
            i.state,
            i.ssh_ip,
            i.ssh_port,
            i.memory_usage_mb,
            i.disk_usage_mb,
            i.cpu_usage,
            i.volumes.join(" ")
        );
    }
    align(&t)
}

/// The six node figures, one line each, that `stats` and `status` both print: `$doc` is a
/// [`Stat`] or a [`Ready`], which name these fields alike.
macro_rules! figure_lines {
    ($t:ident, $doc:ident) => {
        let _ = writeln!($t, "MemTotal:\t {} MB", $doc.mem_total_mb);
        let _ = writeln!($t, "MemAvailable:\t {} MB", $doc.mem_available_mb);
        let _ = writeln!($t, "DiskTotal:\t {} MB", $doc.disk_total_mb);
        let _ = writeln!($t, "DiskAvailable:\t {} MB", $doc.disk_available_mb);
        let _ = writeln!($t, "Load:\t {}", $doc.load);
        let _ = writeln!($t, "CpusOnline:\t {}", $doc.cpus_online);
    };
}

/// The `stats` node block. Unlike the original (defect C5), it is printed
/// even when the node has no instances (`Instances: 0 (...)`).
pub fn stats(s: &Stat) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "NodeUUID:\t {}", s.node_uuid);
    let _ = writeln!(t, "Status:\t {}", s.status);
    figure_lines!(t, s);
    let _ = writeln!(t, "NodeHostName:\t {}", s.hostname);
    if let [only] = &s.networks[..] {
        let _ = writeln!(t, "NodeIP:\t {}", only.ip);
        let _ = writeln!(t, "NodeMAC:\t {}", only.mac);
    }
    for (k, n) in s.networks.iter().enumerate() {
        let _ = writeln!(t, "NodeIP-{}:\t {}", k + 1, n.ip);
        let _ = writeln!(t, "NodeMAC-{}:\t {}", k + 1, n.mac);
    }
    let (mut running, mut exited, mut pending, mut other) = (0, 0, 0, 0);
    for i in &s.instances {
        match i.state.as_str() {
            "active" => running += 1,
            "exited" => exited += 1,
            "pending" => pending += 1,
            _ => other += 1,
        }
    }
    let _ = write!(
        t,
        "Instances:\t {} ({running} running {exited} exited {pending} pending",
        s.instances.len()
    );
    if other > 0 {
        let _ = write!(t, " {other} other");
    }
    t.push_str(")\n");
    align(&t)
}

/// The `status` block.
pub fn status(r: &Ready) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "NodeUUID:\t {}", r.node_uuid);
    figure_lines!(t, r);
    align(&t)
}

/// `clients` and `instances`: one element per line.
pub(crate) fn lines(items: &[String]) -> String {
    let mut out = String::new();
    for i in items {
        out.push_str(i);
        out.push('\n');
    }
    out
}

/// `drain`: the body exactly as received plus one newline (Go's
/// `fmt.Println(string(body))`).
pub(crate) fn drain(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    out.push(b'\n');
    out
}
