//! AttachVolume and DetachVolume: routing through the instance's queue,
//! hot-plug on a running instance, the record of a stopped one, durable
//! state before success, and every failure reason (docs/storage.md).

use super::*;

const VOL: &str = "cccc0001";

fn attach(f: &mut Fx, id: &str, vol: &str) {
    f.cmd(
        Command::AttachVolume,
        format!("attach_volume:\n  instance_uuid: {id}\n  volume_uuid: {vol}\n"),
    );
}

fn detach(f: &mut Fx, id: &str, vol: &str) {
    f.cmd(
        Command::DetachVolume,
        format!("detach_volume:\n  instance_uuid: {id}\n  volume_uuid: {vol}\n"),
    );
}

/// Volume failures sent since the last call: (operand, instance, volume,
/// reason).
fn volume_errors(f: &mut Fx) -> Vec<(ErrorCode, String, String, String)> {
    let mut out = Vec::new();
    f.frames.retain(|(op, p)| {
        let frame::Op::Error(
            code @ (ErrorCode::AttachVolumeFailure | ErrorCode::DetachVolumeFailure),
        ) = *op
        else {
            return true;
        };
        let r = VolumeErrorReport::parse(p).unwrap();
        out.push((code, r.instance_uuid, r.volume_uuid, r.reason));
        false
    });
    out
}

fn verr(attach: bool, id: &str, vol: &str, reason: &str) -> (ErrorCode, String, String, String) {
    let code = if attach {
        ErrorCode::AttachVolumeFailure
    } else {
        ErrorCode::DetachVolumeFailure
    };
    (code, id.into(), vol.into(), reason.into())
}

/// The volumes recorded in the instance's state file.
fn saved_volumes(f: &Fx, id: &str) -> Vec<String> {
    let bytes = f.disk.recorded(id).unwrap();
    StateFile::decode(id, &bytes)
        .unwrap()
        .config
        .volumes
        .into_iter()
        .map(|v| v.uuid)
        .collect()
}

fn reported_volumes(f: &mut Fx, id: &str) -> Vec<String> {
    let now = f.now;
    f.m.stats(now)
        .into_iter()
        .find(|s| s.instance_uuid == id)
        .map(|s| s.volumes)
        .unwrap_or_default()
}

fn running(f: &mut Fx, id: &str) {
    f.start(id, "img");
    f.fire(id, BOOT);
    assert_eq!(f.state(id), Some("active"));
    f.took_log();
    f.m.take_wants();
}

#[test]
fn attach_and_detach_on_a_running_vm() {
    let mut f = fx("vol-run", no_limits());
    running(&mut f, "aa01");
    attach(&mut f, "aa01", VOL);
    assert_eq!(f.took_log(), [format!("hot-plug aa01 {VOL}")]);
    assert!(saved_volumes(&f, "aa01").is_empty(), "hot-plug first");
    f.fire("aa01", VOLUME);
    assert_eq!(saved_volumes(&f, "aa01"), [VOL], "then recorded");
    assert_eq!(reported_volumes(&mut f, "aa01"), [VOL]);
    assert!(f.m.take_wants().stats, "a STATS reports it");
    assert!(volume_errors(&mut f).is_empty(), "success is silent");

    // Twice: already_attached; an unknown volume: not_attached.
    attach(&mut f, "aa01", VOL);
    detach(&mut f, "aa01", "cccc0002");
    assert_eq!(
        volume_errors(&mut f),
        [
            verr(true, "aa01", VOL, "already_attached"),
            verr(false, "aa01", "cccc0002", "not_attached"),
        ],
        "the ids in their own fields (no swap)"
    );
    assert!(f.took_log().is_empty(), "the driver is not asked");

    detach(&mut f, "aa01", VOL);
    assert_eq!(f.took_log(), [format!("hot-unplug aa01 {VOL}")]);
    assert_eq!(saved_volumes(&f, "aa01"), [VOL], "recorded until unplugged");
    f.fire("aa01", VOLUME);
    assert!(saved_volumes(&f, "aa01").is_empty());
    assert!(reported_volumes(&mut f, "aa01").is_empty());
    assert!(volume_errors(&mut f).is_empty());
    assert_eq!(f.state("aa01"), Some("active"));
}

#[test]
fn a_stopped_vm_only_changes_its_record() {
    let mut f = fx("vol-stopped", no_limits());
    running(&mut f, "aa01");
    f.simple(Command::Stop, "aa01");
    f.fire("aa01", STOP);
    assert_eq!(f.state("aa01"), Some("exited"));
    f.took_log();
    attach(&mut f, "aa01", VOL);
    attach(&mut f, "aa01", "cccc0002");
    detach(&mut f, "aa01", VOL);
    assert!(f.took_log().is_empty(), "no driver call");
    assert!(volume_errors(&mut f).is_empty());
    assert_eq!(saved_volumes(&f, "aa01"), ["cccc0002"]);
    let bytes = f.disk.recorded("aa01").unwrap();
    assert!(
        StateFile::decode("aa01", &bytes).unwrap().stopped,
        "still recorded as stopped by an operator"
    );
    // The next RESTART boots with the new set.
    f.simple(Command::Restart, "aa01");
    let records = f.m.records();
    let cfg = &records.iter().find(|(id, _)| id == "aa01").unwrap().1;
    assert_eq!(cfg.volumes.len(), 1);
    assert_eq!(cfg.volumes[0].uuid, "cccc0002");
    assert_eq!(f.took_log(), ["start aa01 restart=true"]);
}

#[test]
fn driver_failures_are_attach_and_detach_failures() {
    let mut f = fx("vol-fail", no_limits());
    running(&mut f, "aa01");
    attach(&mut f, "aa01", "bad01");
    f.fire("aa01", VOLUME);
    assert_eq!(
        volume_errors(&mut f),
        [verr(true, "aa01", "bad01", "attach_failure")]
    );
    assert!(saved_volumes(&f, "aa01").is_empty(), "not recorded");
    // A volume whose hot-unplug fails stays recorded: it is still there.
    f.simple(Command::Stop, "aa01");
    f.fire("aa01", STOP);
    attach(&mut f, "aa01", "bad02");
    f.simple(Command::Restart, "aa01");
    f.fire("aa01", BOOT);
    f.took_log();
    detach(&mut f, "aa01", "bad02");
    f.fire("aa01", VOLUME);
    assert_eq!(
        volume_errors(&mut f),
        [verr(false, "aa01", "bad02", "detach_failure")]
    );
    assert_eq!(saved_volumes(&f, "aa01"), ["bad02"]);
    assert_eq!(reported_volumes(&mut f, "aa01"), ["bad02"]);
    // The instance stays usable.
    f.simple(Command::Stop, "aa01");
    assert_eq!(
        f.took_log(),
        ["hot-unplug aa01 bad02", "stop aa01 urgent=false"]
    );
}

#[test]
fn a_failed_save_is_a_state_failure_and_undoes_the_hot_plug() {
    let mut f = fx("vol-save", no_limits());
    running(&mut f, "aa01");
    attach(&mut f, "aa01", VOL);
    // A STOP waits behind the attach.
    f.simple(Command::Stop, "aa01");
    f.disk.read_only = true;
    f.fire("aa01", VOLUME);
    assert_eq!(
        volume_errors(&mut f),
        [verr(true, "aa01", VOL, "state_failure")]
    );
    assert!(reported_volumes(&mut f, "aa01").is_empty());
    assert_eq!(
        f.took_log(),
        [
            format!("hot-plug aa01 {VOL}"),
            format!("hot-unplug aa01 {VOL}")
        ],
        "the hot-plug is undone (the original left it attached)"
    );
    f.fire("aa01", VOLUME);
    assert_eq!(f.took_log(), ["stop aa01 urgent=false"], "then the STOP");
    f.disk.read_only = false;
    f.fire("aa01", STOP);

    // A detach whose save fails: plugged back in, still recorded.
    f.simple(Command::Restart, "aa01");
    f.fire("aa01", BOOT);
    attach(&mut f, "aa01", VOL);
    f.fire("aa01", VOLUME);
    assert_eq!(saved_volumes(&f, "aa01"), [VOL]);
    f.took_log();
    detach(&mut f, "aa01", VOL);
    f.disk.read_only = true;
    f.fire("aa01", VOLUME);
    assert_eq!(
        volume_errors(&mut f),
        [verr(false, "aa01", VOL, "state_failure")]
    );
    assert_eq!(reported_volumes(&mut f, "aa01"), [VOL]);
    f.fire("aa01", VOLUME);
    assert_eq!(
        f.took_log(),
        [
            format!("hot-unplug aa01 {VOL}"),
            format!("hot-plug aa01 {VOL}")
        ]
    );

    // Stopped: nothing to undo, the record stays as it was.
    f.disk.read_only = false;
    f.simple(Command::Stop, "aa01");
    f.fire("aa01", STOP);
    f.disk.read_only = true;
    attach(&mut f, "aa01", "cccc0002");
    assert_eq!(
        volume_errors(&mut f),
        [verr(true, "aa01", "cccc0002", "state_failure")]
    );
    assert_eq!(reported_volumes(&mut f, "aa01"), [VOL]);
}

#[test]
fn refusals() {
    let mut f = fx("vol-refuse", no_limits());
    // A container: not_supported, both ways.
    f.cmd(Command::Start, start_yaml("cc01", "busybox", true));
    f.fire("cc01", BOOT);
    attach(&mut f, "cc01", VOL);
    detach(&mut f, "cc01", VOL);
    // Unknown instance: no_instance (the original sent nothing).
    attach(&mut f, "dd01", VOL);
    detach(&mut f, "dd01", VOL);
    // On receipt, with empty ids.
    f.cmd(Command::AttachVolume, "attach_volume: [x".into());
    f.cmd(
        Command::DetachVolume,
        "detach_volume:\n  instance_uuid: cc01\n  volume_uuid: ../x\n".into(),
    );
    assert_eq!(
        volume_errors(&mut f),
        [
            verr(true, "cc01", VOL, "not_supported"),
            verr(false, "cc01", VOL, "not_supported"),
            verr(true, "dd01", VOL, "no_instance"),
            verr(false, "dd01", VOL, "no_instance"),
            verr(true, "", "", "invalid_payload"),
            verr(false, "", "", "invalid_data"),
        ]
    );
}

#[test]
fn the_boot_volume_cannot_be_detached() {
    let mut f = fx("vol-boot", no_limits());
    let mut config = InstanceConfig {
        instance_uuid: "ee01".into(),
        ..InstanceConfig::default()
    };
    config.volumes.push(payloads::VolumeConfig {
        uuid: "b001".into(),
        bootable: true,
    });
    let state = StateFile::new(config, true);
    f.disk.dirs.insert(f.root.join("ee01"));
    f.disk.log.extend(state.record("ee01"));
    let now = f.now;
    f.m.recover(vec![Found::Instance("ee01".into(), Box::new(state))], now);
    f.pump();
    detach(&mut f, "ee01", "b001");
    assert_eq!(
        volume_errors(&mut f),
        [verr(false, "ee01", "b001", "detach_failure")]
    );
    assert_eq!(saved_volumes(&f, "ee01"), ["b001"]);
}

#[test]
fn instance_failures() {
    let mut f = fx("vol-inst", no_limits());
    // A quarantined instance (unreadable state).
    let now = f.now;
    f.m.recover(
        vec![Found::Quarantined("ff01".into(), "scripted".into())],
        now,
    );
    f.pump();
    attach(&mut f, "ff01", VOL);
    detach(&mut f, "ff01", VOL);
    // Queued behind a START that fails before its launch.
    f.start("ff02", "fail-image");
    attach(&mut f, "ff02", VOL);
    f.fire("ff02", BOOT);
    assert_eq!(
        volume_errors(&mut f),
        [
            verr(true, "ff01", VOL, "instance_failure"),
            verr(false, "ff01", VOL, "instance_failure"),
            verr(true, "ff02", VOL, "instance_failure"),
        ]
    );
    // Queued behind a DELETE: the instance is gone.
    f.start("ff03", "img");
    f.fire("ff03", BOOT);
    f.simple(Command::Delete, "ff03");
    detach(&mut f, "ff03", VOL);
    f.fire("ff03", STOP);
    f.fire("ff03", DESTROY);
    assert_eq!(f.deleted(), ["ff03"]);
    assert_eq!(
        volume_errors(&mut f),
        [verr(false, "ff03", VOL, "no_instance")]
    );
}
