//! Volumes on a running VM (docs/storage.md): hot-plug through QMP
//! (`blockdev-add` with qemu's own rbd driver, then `device_add` of a
//! virtio-blk device), hot-unplug (`device_del`, the `DEVICE_DELETED`
//! event that names our device, `blockdev-del`), each step with a
//! deadline; and, when a launcher restart re-adopts a VM, the repair that
//! brings its devices in line with the recorded volumes.
//!
//! A guest that never releases a device (no guest OS, or one that ignores
//! the ACPI eject) makes the detach fail after `--detach-timeout`; the
//! volume stays attached and recorded, and the VM stays usable (the
//! original waited for ever).

use std::collections::VecDeque;
use std::time::Duration;

use log::{debug, error, info, warn};
use serde_yaml::Value;

use super::{Phase, QemuDriver};
use crate::driver::{Cx, Outcome, Timer};
use crate::http::json::Writer;
use crate::qemu::volumes::{device_id, node_name};

/// The ceph pool of every volume (as the original).
const POOL: &str = "rbd";
/// A hot-plugged volume's guest device.
const DEVICE_DRIVER: &str = "virtio-blk-pci";

/// One step of a hot-plug or hot-unplug; each waits for the reply to the
/// command it sent (or, for `Released`, for an event).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// `blockdev-add` sent.
    AddNode,
    /// `device_add` sent.
    AddDevice,
    /// `device_add` failed: the node goes again (`blockdev-del`), then
    /// the failure `why` is reported.
    DropAdded { why: String },
    /// `device_del` sent; `released`: the event came before the reply.
    DelDevice { released: bool },
    /// `device_del` accepted: the guest is asked to let go of the device
    /// (timer [`Timer::VmVolume`]).
    Released,
    /// `blockdev-del` sent.
    DropNode,
}

/// Who asked for a volume operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asker {
    /// The manager (AttachVolume, DetachVolume, or their undo): it gets an
    /// [`Outcome::Volume`].
    Manager,
    /// The repair after a re-adoption: the next fix follows.
    Repair,
}

/// The volume operation in progress.
#[derive(Debug, Clone)]
pub(super) struct VolumeOp {
    uuid: String,
    step: Step,
    /// The id of the QMP command whose reply the step waits for.
    cmd: Option<u64>,
    asker: Asker,
}

/// A difference between a re-adopted VM and its record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fix {
    /// A recorded volume has no device (`node`: its block node exists).
    Attach { uuid: String, node: bool },
    /// A device of a volume that is not recorded.
    Detach { uuid: String },
    /// One of our block nodes without a device or a record.
    DropNode { name: String },
}

/// The repair of a re-adopted VM: what the two queries found, then the
/// fixes, one at a time.
#[derive(Debug, Clone, Default)]
pub(super) struct Repair {
    devices: Option<Vec<String>>,
    nodes: Option<Vec<String>>,
    devices_cmd: Option<u64>,
    nodes_cmd: Option<u64>,
    fixes: VecDeque<Fix>,
    /// A `blockdev-del` of a [`Fix::DropNode`] in flight.
    dropping: Option<u64>,
}

impl QemuDriver {
    /// AttachVolume on the running VM.
    pub(super) fn hot_attach(&mut self, cx: &mut Cx, uuid: &str) {
        if let Err(why) = self.volume_ready() {
            return cx.outcome(Outcome::Volume(Err(why)));
        }
        self.plug(cx, uuid, false, Asker::Manager);
    }

    /// DetachVolume on the running VM.
    pub(super) fn hot_detach(&mut self, cx: &mut Cx, uuid: &str) {
        if let Err(why) = self.volume_ready() {
            return cx.outcome(Outcome::Volume(Err(why)));
        }
        self.unplug(cx, uuid, Asker::Manager);
    }

    /// Why a volume cannot be hot-plugged now, if it cannot.
    fn volume_ready(&self) -> Result<(), String> {
        if self.phase != Phase::Running {
            return Err(format!("qemu is not running ({:?})", self.phase));
        }
        if !self.qmp.as_ref().is_some_and(|q| q.is_ready()) {
            return Err("qemu's QMP socket is not available".into());
        }
        if let Some(op) = &self.volume {
            return Err(format!("volume {} is being changed", op.uuid));
        }
        Ok(())
    }

    /// Hot-plug: `blockdev-add` (skipped when the node exists), then
    /// `device_add`.
    fn plug(&mut self, cx: &mut Cx, uuid: &str, node_exists: bool, asker: Asker) {
        let mut op = VolumeOp {
            uuid: uuid.to_string(),
            step: Step::AddNode,
            cmd: None,
            asker,
        };
        if node_exists {
            op.step = Step::AddDevice;
            op.cmd = self.send_device_add(cx, uuid);
        } else {
            let (args, deadline) = self.blockdev_add_args(uuid);
            op.cmd = self.qmp_call(cx, "blockdev-add", &args, deadline);
        }
        self.start_op(cx, op);
    }

    /// Hot-unplug: `device_del`, the guest's release, `blockdev-del`.
    fn unplug(&mut self, cx: &mut Cx, uuid: &str, asker: Asker) {
        let args = object(&[("id", &device_id(uuid))]);
        let deadline = self.shared.borrow().settings.qmp_deadline;
        let cmd = self.qmp_call(cx, "device_del", &args, deadline);
        let op = VolumeOp {
            uuid: uuid.to_string(),
            step: Step::DelDevice { released: false },
            cmd,
            asker,
        };
        self.start_op(cx, op);
    }

    fn start_op(&mut self, cx: &mut Cx, op: VolumeOp) {
        if op.cmd.is_none() {
            let uuid = op.uuid.clone();
            self.volume = Some(op);
            return self.finish_volume(cx, Err(format!("QMP is not available for volume {uuid}")));
        }
        self.volume = Some(op);
    }

    /// `blockdev-add` of volume `uuid` through qemu's librbd driver, and
    /// its deadline: librbd may take the ceph client timeout to give up
    /// on an unreachable cluster, and qemu answers only then.
    fn blockdev_add_args(&self, uuid: &str) -> (String, Duration) {
        let shared = self.shared.borrow();
        let s = &shared.settings;
        let mut w = Writer::new();
        w.begin_object()
            .key("driver")
            .string("rbd")
            .key("node-name")
            .string(&node_name(uuid))
            .key("pool")
            .string(POOL)
            .key("image")
            .string(uuid);
        if !s.ceph_id.is_empty() {
            w.key("user").string(&s.ceph_id);
        }
        if let Some(conf) = s.hotplug_conf.as_ref().or(s.ceph_conf.as_ref()) {
            w.key("conf").string(&conf.to_string_lossy());
        }
        w.end_object();
        (w.finish(), s.qmp_deadline + s.ceph_timeout)
    }

    fn send_device_add(&mut self, cx: &mut Cx, uuid: &str) -> Option<u64> {
        // No bus: qemu picks a free slot of the machine's PCI bus, where
        // ACPI hot-unplug works (docs/storage.md).
        let args = object(&[
            ("driver", DEVICE_DRIVER),
            ("drive", &node_name(uuid)),
            ("id", &device_id(uuid)),
        ]);
        let deadline = self.shared.borrow().settings.qmp_deadline;
        self.qmp_call(cx, "device_add", &args, deadline)
    }

    fn send_blockdev_del(&mut self, cx: &mut Cx, node: &str) -> Option<u64> {
        let args = object(&[("node-name", node)]);
        let deadline = self.shared.borrow().settings.qmp_deadline;
        self.qmp_call(cx, "blockdev-del", &args, deadline)
    }

    /// A QMP reply (or its failure, or its deadline): true when it was one
    /// of the volume commands.
    pub(super) fn volume_reply(
        &mut self,
        cx: &mut Cx,
        id: u64,
        result: &Result<Value, String>,
    ) -> bool {
        if let Some(r) = self.repair.as_mut() {
            if r.devices_cmd == Some(id) {
                r.devices_cmd = None;
                r.devices = Some(peripheral_devices(result));
                self.repair_next(cx);
                return true;
            }
            if r.nodes_cmd == Some(id) {
                r.nodes_cmd = None;
                r.nodes = Some(block_nodes(result));
                self.repair_next(cx);
                return true;
            }
            if r.dropping == Some(id) {
                r.dropping = None;
                if let Err(e) = result {
                    warn!("{}: cannot remove a stray block node: {e}", cx.inst);
                }
                self.repair_next(cx);
                return true;
            }
        }
        let Some(op) = self.volume.as_mut().filter(|op| op.cmd == Some(id)) else {
            return false;
        };
        op.cmd = None;
        let uuid = op.uuid.clone();
        let step = op.step.clone();
        match (step, result) {
            (Step::AddNode, Ok(_)) => {
                let cmd = self.send_device_add(cx, &uuid);
                self.next_step(cx, Step::AddDevice, cmd);
            }
            (Step::AddNode, Err(e)) => {
                if e.contains("no answer") {
                    // qemu may still finish it: a `blockdev-del` queued
                    // behind it removes the node then (its answer is not
                    // awaited).
                    let _ = self.send_blockdev_del(cx, &node_name(&uuid));
                }
                self.finish_volume(cx, Err(format!("blockdev-add: {e}")));
            }
            (Step::AddDevice, Ok(_)) => self.finish_volume(cx, Ok(())),
            (Step::AddDevice, Err(e)) => {
                let why = format!("device_add: {e}");
                let cmd = self.send_blockdev_del(cx, &node_name(&uuid));
                self.next_step(cx, Step::DropAdded { why }, cmd);
            }
            (Step::DropAdded { why }, r) => {
                if let Err(e) = r {
                    warn!(
                        "{}: the block node of volume {uuid} could not be removed after the failed hot-plug: {e}",
                        cx.inst
                    );
                }
                self.finish_volume(cx, Err(why));
            }
            (Step::DelDevice { released }, r) => self.device_del_answered(cx, &uuid, released, r),
            (Step::DropNode, r) => match r {
                Ok(_) => self.finish_volume(cx, Ok(())),
                // A boot-time `-drive` goes with its device: no node left.
                Err(e) if not_found(e) => self.finish_volume(cx, Ok(())),
                Err(e) => self.finish_volume(
                    cx,
                    Err(format!(
                        "the guest released the device, but blockdev-del failed: {e}"
                    )),
                ),
            },
            (Step::Released, _) => {}
        }
        true
    }

    /// `device_del` answered: wait for the guest's release (unless it
    /// came already), or go on to the node when the device is gone.
    fn device_del_answered(
        &mut self,
        cx: &mut Cx,
        uuid: &str,
        released: bool,
        r: &Result<Value, String>,
    ) {
        match r {
            Err(e) if !e.contains("DeviceNotFound") => {
                return self.finish_volume(cx, Err(format!("device_del: {e}")));
            }
            Err(_) => debug!(
                "{}: volume {uuid} has no device any more; removing its node",
                cx.inst
            ),
            Ok(_) if !released => {
                if let Some(op) = self.volume.as_mut() {
                    op.step = Step::Released;
                }
                let t = self.shared.borrow().settings.detach_timeout;
                cx.arm(Timer::VmVolume, t);
                return;
            }
            Ok(_) => {}
        }
        let cmd = self.send_blockdev_del(cx, &node_name(uuid));
        self.next_step(cx, Step::DropNode, cmd);
    }

    fn next_step(&mut self, cx: &mut Cx, step: Step, cmd: Option<u64>) {
        if let Some(op) = self.volume.as_mut() {
            op.step = step;
            op.cmd = cmd;
        }
        if cmd.is_none() {
            self.finish_volume(cx, Err("QMP is not available".into()));
        }
    }

    /// A `DEVICE_DELETED` event: the guest let go of a device. qemu sends
    /// one for the device's virtio backend first (no `device` field):
    /// only the one naming our device counts.
    pub(super) fn device_deleted(&mut self, cx: &mut Cx, data: &Value) {
        let Some(dev) = data.get("device").and_then(Value::as_str) else {
            return;
        };
        let Some(op) = self.volume.as_mut().filter(|op| device_id(&op.uuid) == dev) else {
            if let Some(uuid) = volume_of_device(dev) {
                info!(
                    "{}: the guest released volume {uuid} after its detach had failed; it stays recorded until a detach succeeds",
                    cx.inst
                );
            }
            return;
        };
        match op.step {
            Step::DelDevice { .. } => op.step = Step::DelDevice { released: true },
            Step::Released => {
                let uuid = op.uuid.clone();
                cx.cancel(Timer::VmVolume);
                let cmd = self.send_blockdev_del(cx, &node_name(&uuid));
                self.next_step(cx, Step::DropNode, cmd);
            }
            _ => {}
        }
    }

    /// [`Timer::VmVolume`]: the guest did not release the device in time.
    pub(super) fn volume_timer(&mut self, cx: &mut Cx) {
        if !self
            .volume
            .as_ref()
            .is_some_and(|op| op.step == Step::Released)
        {
            return;
        }
        let t = self.shared.borrow().settings.detach_timeout;
        self.finish_volume(
            cx,
            Err(format!(
                "the guest did not release the device within {}s (it ignores hot-unplug, or has no OS); the volume stays attached",
                t.as_secs()
            )),
        );
    }

    /// The operation in progress is over.
    fn finish_volume(&mut self, cx: &mut Cx, result: Result<(), String>) {
        let Some(op) = self.volume.take() else {
            return;
        };
        cx.cancel(Timer::VmVolume);
        match op.asker {
            Asker::Manager => cx.outcome(Outcome::Volume(result)),
            Asker::Repair => {
                match result {
                    Ok(()) => info!(
                        "{}: volume {} brought in line with its record",
                        cx.inst, op.uuid
                    ),
                    Err(e) => error!(
                        "{}: volume {} could not be brought in line with its record: {e}",
                        cx.inst, op.uuid
                    ),
                }
                self.repair_next(cx);
            }
        }
    }

    /// The QMP session or the VM went away: the operation in progress
    /// fails (its answers will not come), and a repair is abandoned.
    pub(super) fn volume_lost(&mut self, cx: &mut Cx, why: &str) {
        self.repair = None;
        if let Some(op) = self.volume.as_mut() {
            op.asker = Asker::Manager;
            let uuid = op.uuid.clone();
            self.finish_volume(
                cx,
                Err(format!("{why} while volume {uuid} was being changed")),
            );
        }
    }

    /// The VM exited while `op` was in progress: it failed.
    pub(super) fn volume_after_exit(&mut self, cx: &mut Cx, op: Option<VolumeOp>) {
        if let Some(op) = op.filter(|op| op.asker == Asker::Manager) {
            cx.outcome(Outcome::Volume(Err(format!(
                "qemu exited while volume {} was being changed",
                op.uuid
            ))));
        }
    }

    /// A re-adopted VM's QMP is up: find its volume devices and nodes.
    pub(super) fn begin_repair(&mut self, cx: &mut Cx) {
        let deadline = self.shared.borrow().settings.qmp_deadline;
        let devices_cmd = self.qmp_call(
            cx,
            "qom-list",
            &object(&[("path", "/machine/peripheral")]),
            deadline,
        );
        let nodes_cmd = self.qmp_call(cx, "query-named-block-nodes", "{\"flat\":true}", deadline);
        self.repair = Some(Repair {
            devices_cmd,
            nodes_cmd,
            ..Repair::default()
        });
        if devices_cmd.is_none() || nodes_cmd.is_none() {
            self.repair = None;
            self.running(cx);
        }
    }

    /// The next step of the repair; the VM is reported running once it is
    /// over.
    fn repair_next(&mut self, cx: &mut Cx) {
        let Some(r) = self.repair.as_mut() else {
            return;
        };
        if r.devices_cmd.is_some() || r.nodes_cmd.is_some() || r.dropping.is_some() {
            return;
        }
        if let (Some(devices), Some(nodes)) = (r.devices.take(), r.nodes.take()) {
            let recorded: Vec<&str> = cx.config.volumes.iter().map(|v| v.uuid.as_str()).collect();
            r.fixes = plan(&recorded, &devices, &nodes).into();
            if !r.fixes.is_empty() {
                info!(
                    "{}: {} volume difference(s) between qemu and the record; the record decides",
                    cx.inst,
                    r.fixes.len()
                );
            }
        }
        let Some(fix) = r.fixes.pop_front() else {
            self.repair = None;
            return self.running(cx);
        };
        match fix {
            Fix::Attach { uuid, node } => {
                info!(
                    "{}: recorded volume {uuid} is not in qemu: attaching it",
                    cx.inst
                );
                self.plug(cx, &uuid, node, Asker::Repair);
            }
            Fix::Detach { uuid } => {
                info!(
                    "{}: volume {uuid} is in qemu but not recorded: detaching it",
                    cx.inst
                );
                self.unplug(cx, &uuid, Asker::Repair);
            }
            Fix::DropNode { name } => {
                info!(
                    "{}: removing block node {name} (no device, no record)",
                    cx.inst
                );
                let cmd = self.send_blockdev_del(cx, &name);
                match self.repair.as_mut() {
                    Some(r) if cmd.is_some() => r.dropping = cmd,
                    _ => self.repair_next(cx),
                }
            }
        }
    }

    /// Sends a command with arguments when QMP is ready; its id.
    fn qmp_call(&mut self, cx: &mut Cx, name: &str, args: &str, deadline: Duration) -> Option<u64> {
        let q = self.qmp.as_mut().filter(|q| q.is_ready())?;
        let id = q.command(name, args, cx.now, deadline);
        self.flush_qmp(cx);
        Some(id)
    }
}

/// What a re-adopted VM needs so that it matches its record.
fn plan(recorded: &[&str], devices: &[String], nodes: &[String]) -> Vec<Fix> {
    let mut fixes = Vec::new();
    for uuid in recorded {
        if !devices.contains(&device_id(uuid)) {
            fixes.push(Fix::Attach {
                uuid: uuid.to_string(),
                node: nodes.contains(&node_name(uuid)),
            });
        }
    }
    let mut detached = Vec::new();
    for uuid in devices.iter().filter_map(|d| volume_of_device(d)) {
        if !recorded.contains(&uuid) {
            fixes.push(Fix::Detach {
                uuid: uuid.to_string(),
            });
            detached.push(node_name(uuid));
        }
    }
    for name in nodes.iter().filter(|n| is_volume_node(n)) {
        let used = recorded.iter().any(|u| node_name(u) == *name) || detached.contains(name);
        if !used {
            fixes.push(Fix::DropNode { name: name.clone() });
        }
    }
    fixes
}

/// The device ids under `/machine/peripheral` (`qom-list`).
fn peripheral_devices(result: &Result<Value, String>) -> Vec<String> {
    names(result, "name", |item| {
        item.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t.starts_with("child<"))
    })
}

/// The node names of `query-named-block-nodes`.
fn block_nodes(result: &Result<Value, String>) -> Vec<String> {
    names(result, "node-name", |_| true)
}

fn names(result: &Result<Value, String>, key: &str, keep: impl Fn(&Value) -> bool) -> Vec<String> {
    let list = match result {
        Ok(Value::Sequence(list)) => list,
        Ok(_) => return Vec::new(),
        Err(e) => {
            warn!("a volume query failed: {e}");
            return Vec::new();
        }
    };
    list.iter()
        .filter(|item| keep(item))
        .filter_map(|item| item.get(key).and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// The volume a device id names, if it is one of ours.
pub(crate) fn volume_of_device(id: &str) -> Option<&str> {
    id.strip_prefix("device_")
        .filter(|u| crate::payloads::ident::is_hex_id(u))
}

/// True for a name [`node_name`] can make: `v` and hex digits, at most 31
/// characters (qemu's own node names start with `#`).
pub(crate) fn is_volume_node(name: &str) -> bool {
    name.len() <= 31
        && name
            .strip_prefix('v')
            .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// qemu's answer when a node or device is not there.
fn not_found(error: &str) -> bool {
    error.contains("DeviceNotFound")
        || error.contains("not found")
        || error.contains("Failed to find")
        || error.contains("Cannot find")
}

/// A JSON object of string values.
fn object(fields: &[(&str, &str)]) -> String {
    let mut w = Writer::new();
    w.begin_object();
    for (k, v) in fields {
        w.key(k).string(v);
    }
    w.end_object();
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_follows_the_record() {
        let a = "aaaa0001";
        let b = "bbbb0002";
        let c = "cccc0003";
        let devices = vec![device_id(a), device_id(c), "net0".to_string()];
        let nodes = vec![
            node_name(a),
            node_name(b),
            node_name(c),
            "vdddd0004".to_string(),
            "#block123".to_string(),
        ];
        assert_eq!(
            plan(&[a, b], &devices, &nodes),
            [
                Fix::Attach {
                    uuid: b.into(),
                    node: true
                },
                Fix::Detach { uuid: c.into() },
                Fix::DropNode {
                    name: "vdddd0004".into()
                },
            ]
        );
        assert!(plan(&[a], &[device_id(a)], &[node_name(a)]).is_empty());
        assert_eq!(
            plan(&[a], &[], &[]),
            [Fix::Attach {
                uuid: a.into(),
                node: false
            }]
        );
    }

    #[test]
    fn our_names() {
        let u = "69e84267-ed01-4738-b15f-b47de06b62e7";
        assert_eq!(volume_of_device(&device_id(u)), Some(u));
        assert_eq!(volume_of_device("device_../x"), None);
        assert_eq!(volume_of_device("net0"), None);
        assert!(is_volume_node(&node_name(u)));
        assert!(!is_volume_node("#block123"));
        assert!(!is_volume_node("v"));
        assert!(!is_volume_node("vx"));
    }

    #[test]
    fn query_answers() {
        let v: Value = crate::http::json::parse_json(
            br#"[{"name":"type","type":"string"},{"name":"device_aa01","type":"child<virtio-blk-pci>"}]"#,
        )
        .unwrap();
        assert_eq!(peripheral_devices(&Ok(v)), ["device_aa01"]);
        let v: Value = crate::http::json::parse_json(
            br##"[{"node-name":"vaa01","drv":"rbd"},{"node-name":"#block1","drv":"file"}]"##,
        )
        .unwrap();
        assert_eq!(block_nodes(&Ok(v)), ["vaa01", "#block1"]);
        assert!(block_nodes(&Err("x".into())).is_empty());
    }
}
