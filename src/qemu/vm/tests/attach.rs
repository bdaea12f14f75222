//! Volume hot-plug and hot-unplug against a scripted QMP peer, and the
//! repair of a re-adopted VM (docs/storage.md).

use super::*;
use crate::qemu::volumes::{device_id, node_name};

const VOL: &str = "69e84267-ed01-4738-b15f-b47de06b62e7";
const VOL2: &str = "aaaa0002";

impl T {
    /// QMP sends `text` (lines).
    fn qmp(&mut self, text: &str) -> (Vec<Effect>, Vec<Outcome>) {
        self.input(Input::Data {
            res: Res::Qmp,
            bytes: text.as_bytes().to_vec(),
        })
    }

    /// The reply `{"return": <value>}` to command `id`.
    fn ret(&mut self, id: u64, value: &str) -> (Vec<Effect>, Vec<Outcome>) {
        self.qmp(&format!("{{\"return\": {value}, \"id\": {id}}}\n"))
    }

    fn qmp_error(&mut self, id: u64, class: &str, desc: &str) -> (Vec<Effect>, Vec<Outcome>) {
        self.qmp(&format!(
            "{{\"error\": {{\"class\": \"{class}\", \"desc\": \"{desc}\"}}, \"id\": {id}}}\n"
        ))
    }

    fn device_deleted(&mut self, data: &str) -> (Vec<Effect>, Vec<Outcome>) {
        self.qmp(&format!(
            "{{\"timestamp\": {{\"seconds\": 1, \"microseconds\": 2}}, \"event\": \"DEVICE_DELETED\", \"data\": {data}}}\n"
        ))
    }

    /// The QMP handshake of a re-adopted VM, then the volume queries
    /// answered with these devices and nodes; what followed.
    fn qmp_up_recovered(
        &mut self,
        devices: &[&str],
        nodes: &[&str],
    ) -> (Vec<Effect>, Vec<Outcome>) {
        let (_, _) = self.input(Input::Connected { res: Res::Qmp });
        let _ = self.qmp("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}}, \"capabilities\": []}}\n");
        let (e, o) = self.qmp("{\"return\": {}, \"id\": 0}\n");
        assert!(o.is_empty(), "not running before its volumes are checked");
        let sent = commands(&e);
        assert_eq!(
            sent.iter().map(|c| c.1.as_str()).collect::<Vec<_>>(),
            ["qom-list", "query-named-block-nodes"]
        );
        assert!(sent[0].2.contains("\"path\":\"/machine/peripheral\""));
        let devs: Vec<String> = devices
            .iter()
            .map(|d| format!("{{\"name\": \"{d}\", \"type\": \"child<virtio-blk-pci>\"}}"))
            .chain(["{\"name\": \"type\", \"type\": \"string\"}".to_string()])
            .collect();
        let (_, o) = self.ret(sent[0].0, &format!("[{}]", devs.join(",")));
        assert!(o.is_empty());
        let ns: Vec<String> = nodes
            .iter()
            .map(|n| format!("{{\"node-name\": \"{n}\"}}"))
            .chain(["{\"node-name\": \"#block123\"}".to_string()])
            .collect();
        self.ret(sent[1].0, &format!("[{}]", ns.join(",")))
    }

    /// As [`T::qmp_up_recovered`] when qemu matches the record: running.
    pub(super) fn qmp_up_repaired(&mut self, devices: &[&str], nodes: &[&str]) {
        let (e, o) = self.qmp_up_recovered(devices, nodes);
        assert!(commands(&e).is_empty(), "{e:?}");
        assert_eq!(o, vec![Outcome::Running]);
    }
}

/// The QMP commands written: (id, name, arguments JSON).
fn commands(e: &[Effect]) -> Vec<(u64, String, String)> {
    writes(e)
        .iter()
        .flat_map(|w| w.lines().map(str::to_string).collect::<Vec<_>>())
        .map(|line| {
            let v: serde_yaml::Value = crate::http::json::parse_json(line.as_bytes()).unwrap();
            let id = v.get("id").and_then(serde_yaml::Value::as_u64).unwrap();
            let name = v
                .get("execute")
                .and_then(serde_yaml::Value::as_str)
                .unwrap()
                .to_string();
            let args = line
                .split_once("\"arguments\":")
                .map(|(_, a)| a.rsplit_once(",\"id\"").map_or(a, |x| x.0).to_string())
                .unwrap_or_default();
            (id, name, args)
        })
        .collect()
}

/// The one command written.
#[track_caller]
fn one(e: &[Effect], name: &str) -> (u64, String) {
    let c = commands(e);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].1, name);
    (c[0].0, c[0].2.clone())
}

fn running() -> T {
    let mut t = T::new(Virtualisation::Software);
    {
        let mut sh = t.shared.borrow_mut();
        sh.settings.ceph_id = "ciao".into();
        sh.settings.ceph_conf = Some("/etc/ceph/x.conf".into());
    }
    t.run_to_active();
    t
}

/// A launcher restart finds the VM's qemu running and re-adopts it.
fn readopt(t: &mut T) {
    t.our_qemu_running();
    let _ = t.call(|d, cx| d.recover(cx, false));
}

fn failed(o: &[Outcome]) -> String {
    match o {
        [Outcome::Volume(Err(e))] => e.clone(),
        other => panic!("not a volume failure: {other:?}"),
    }
}

#[test]
fn hot_plug_then_hot_unplug() {
    let mut t = running();
    let (e, o) = t.call(|d, cx| d.attach(cx, VOL));
    assert!(o.is_empty());
    let (id, args) = one(&e, "blockdev-add");
    assert_eq!(
        args,
        format!(
            "{{\"driver\":\"rbd\",\"node-name\":\"{}\",\"pool\":\"rbd\",\"image\":\"{VOL}\",\"user\":\"ciao\",\"conf\":\"/etc/ceph/x.conf\"}}",
            node_name(VOL)
        )
    );
    assert_eq!(
        armed(&e, Timer::VmQmp),
        Some(t.now + Duration::from_secs(20)),
        "the QMP deadline plus the ceph timeout"
    );
    let (e, o) = t.ret(id, "{}");
    assert!(o.is_empty());
    let (id, args) = one(&e, "device_add");
    assert_eq!(
        args,
        format!(
            "{{\"driver\":\"virtio-blk-pci\",\"drive\":\"{}\",\"id\":\"{}\"}}",
            node_name(VOL),
            device_id(VOL)
        )
    );
    let (_, o) = t.ret(id, "{}");
    assert_eq!(o, vec![Outcome::Volume(Ok(()))]);

    let (e, o) = t.call(|d, cx| d.detach(cx, VOL));
    assert!(o.is_empty());
    let (id, args) = one(&e, "device_del");
    assert_eq!(args, format!("{{\"id\":\"{}\"}}", device_id(VOL)));
    let (e, o) = t.ret(id, "{}");
    assert!(o.is_empty());
    assert_eq!(
        armed(&e, Timer::VmVolume),
        Some(t.now + Duration::from_secs(30)),
        "the guest gets --detach-timeout"
    );
    // The virtio backend's event names no device: not ours.
    let (e, o) = t.device_deleted(&format!(
        "{{\"path\": \"/machine/peripheral/{}/virtio-backend\"}}",
        device_id(VOL)
    ));
    assert!(commands(&e).is_empty() && o.is_empty());
    // Another device's event: not ours either.
    let (e, _) = t.device_deleted("{\"device\": \"device_bbbb\", \"path\": \"/x\"}");
    assert!(commands(&e).is_empty());
    let (e, o) = t.device_deleted(&format!(
        "{{\"device\": \"{}\", \"path\": \"/machine/peripheral/{}\"}}",
        device_id(VOL),
        device_id(VOL)
    ));
    assert!(o.is_empty());
    assert!(cancelled(&e, Timer::VmVolume));
    let (id, args) = one(&e, "blockdev-del");
    assert_eq!(args, format!("{{\"node-name\":\"{}\"}}", node_name(VOL)));
    let (_, o) = t.ret(id, "{}");
    assert_eq!(o, vec![Outcome::Volume(Ok(()))]);
}

#[test]
fn a_failed_device_add_removes_the_node() {
    let mut t = running();
    let (e, _) = t.call(|d, cx| d.attach(cx, VOL));
    let (id, _) = one(&e, "blockdev-add");
    let (e, _) = t.ret(id, "{}");
    let (id, _) = one(&e, "device_add");
    let (e, o) = t.qmp_error(
        id,
        "GenericError",
        "Bus 'pci.0' does not support hotplugging",
    );
    assert!(o.is_empty());
    let (id, args) = one(&e, "blockdev-del");
    assert!(args.contains(&node_name(VOL)));
    let (_, o) = t.ret(id, "{}");
    assert!(failed(&o).contains("hotplugging"));

    // blockdev-add refused (an image that does not exist).
    let (e, _) = t.call(|d, cx| d.attach(cx, VOL2));
    let (id, _) = one(&e, "blockdev-add");
    let (e, o) = t.qmp_error(id, "GenericError", "error opening image: No such file");
    assert!(commands(&e).is_empty(), "no device_add");
    assert!(failed(&o).starts_with("blockdev-add: "));
}

#[test]
fn an_unanswered_blockdev_add_fails_at_its_deadline() {
    let mut t = running();
    let (e, _) = t.call(|d, cx| d.attach(cx, VOL));
    let (e, o) = t.fire(&e, Timer::VmQmp);
    assert!(failed(&o).contains("no answer"));
    // Queued behind it, in case qemu finishes it after all.
    let (_, _) = one(&e, "blockdev-del");
}

#[test]
fn a_guest_that_never_releases_the_device() {
    let mut t = running();
    let (e, _) = t.call(|d, cx| d.detach(cx, VOL));
    let (id, _) = one(&e, "device_del");
    let (e, _) = t.ret(id, "{}");
    let (e, o) = t.fire(&e, Timer::VmVolume);
    let why = failed(&o);
    assert!(
        why.contains("did not release the device within 30s"),
        "{why}"
    );
    assert!(commands(&e).is_empty(), "no blockdev-del under a device");
    // The VM is still usable: STOP presses the power button.
    let (e, _) = t.call(|d, cx| d.stop(cx, false));
    let _ = one(&e, "system_powerdown");
    // A late release is only logged.
    let (e, o) = t.device_deleted(&format!("{{\"device\": \"{}\"}}", device_id(VOL)));
    assert!(commands(&e).is_empty() && o.is_empty());
}

#[test]
fn a_release_before_the_reply_and_a_device_already_gone() {
    let mut t = running();
    let (e, _) = t.call(|d, cx| d.detach(cx, VOL));
    let (id, _) = one(&e, "device_del");
    let (e, _) = t.device_deleted(&format!("{{\"device\": \"{}\"}}", device_id(VOL)));
    assert!(commands(&e).is_empty());
    let (e, _) = t.ret(id, "{}");
    let (id, _) = one(&e, "blockdev-del");
    // A boot-time -drive goes with its device.
    let (_, o) = t.qmp_error(
        id,
        "GenericError",
        "Failed to find node with node-name='v69e84267ed014738b15fb47de06b62'",
    );
    assert_eq!(o, vec![Outcome::Volume(Ok(()))]);

    // The device is gone already (released after an earlier failure).
    let (e, _) = t.call(|d, cx| d.detach(cx, VOL));
    let (id, _) = one(&e, "device_del");
    let (e, _) = t.qmp_error(id, "DeviceNotFound", "Device 'device_x' not found");
    let (id, _) = one(&e, "blockdev-del");
    let (_, o) = t.ret(id, "{}");
    assert_eq!(o, vec![Outcome::Volume(Ok(()))]);
}

#[test]
fn not_running_or_exiting_meanwhile() {
    let mut t = T::new(Virtualisation::Software);
    let (e, o) = t.call(|d, cx| d.attach(cx, VOL));
    assert!(e.is_empty());
    assert!(failed(&o).contains("not running"));

    let mut t = running();
    let (e, _) = t.call(|d, cx| d.attach(cx, VOL));
    let _ = one(&e, "blockdev-add");
    let (_, o) = t.gone();
    assert_eq!(o.len(), 2, "{o:?}");
    assert_eq!(o[0], Outcome::Exited, "the exit first");
    assert!(failed(&o[1..]).contains("qemu exited"));

    // QMP lost during a detach: it fails, the VM runs on.
    let mut t = running();
    let (e, _) = t.call(|d, cx| d.detach(cx, VOL));
    let _ = one(&e, "device_del");
    let (_, o) = t.input(Input::Closed { res: Res::Qmp });
    assert!(failed(&o).contains("QMP"));
}

#[test]
fn recovery_brings_the_vm_in_line_with_its_record() {
    let mut t = T::new(Virtualisation::Software);
    let recorded = "bbbb0001";
    t.vm.cfg.volumes.push(crate::payloads::VolumeConfig {
        uuid: recorded.into(),
        bootable: false,
    });
    readopt(&mut t);
    // A half-finished detach of the recorded volume (device gone, node
    // left), a half-finished attach of VOL (device, no record), a stray
    // node.
    let stray = node_name("cccc0003");
    let (e, o) = t.qmp_up_recovered(
        &[&device_id(VOL)],
        &[&node_name(recorded), &node_name(VOL), &stray],
    );
    assert!(o.is_empty());
    let (id, args) = one(&e, "device_add");
    assert!(
        args.contains(&device_id(recorded)),
        "its node exists: no blockdev-add"
    );
    let (e, o) = t.ret(id, "{}");
    assert!(o.is_empty());
    let (id, args) = one(&e, "device_del");
    assert!(args.contains(&device_id(VOL)));
    let (_, _) = t.ret(id, "{}");
    let (e, _) = t.device_deleted(&format!("{{\"device\": \"{}\"}}", device_id(VOL)));
    let (id, args) = one(&e, "blockdev-del");
    assert!(args.contains(&node_name(VOL)));
    let (e, o) = t.ret(id, "{}");
    assert!(o.is_empty());
    let (id, args) = one(&e, "blockdev-del");
    assert!(args.contains(&stray));
    // A failure is logged; the VM is adopted anyway.
    let (_, o) = t.qmp_error(id, "GenericError", "Node is in use");
    assert_eq!(o, vec![Outcome::Running]);
}

#[test]
fn a_recovered_vm_that_matches_its_record() {
    let mut t = T::new(Virtualisation::Software);
    t.vm.cfg.volumes.push(crate::payloads::VolumeConfig {
        uuid: VOL.into(),
        bootable: false,
    });
    readopt(&mut t);
    t.qmp_up_repaired(&[&device_id(VOL)], &[&node_name(VOL)]);
}
