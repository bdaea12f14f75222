//! A container's ceph volumes on the host (`docs/storage.md`, containers):
//! each volume is mapped into the kernel (`rbd map`), mounted on
//! `<instance dir>/volumes/<uuid>`, and bound into the container there.
//!
//! The steps run one at a time as children on the loop, each with a
//! deadline ([`crate::driver::Cx::spawn`]); nothing here blocks.
//!
//! * Attach (before every START and RESTART of the container): `rbd
//!   showmapped` once, then for each volume in order: make its mount
//!   point, `rbd map` it unless it is already mapped (then its device is
//!   used and it is not ours to unmap), `mount` it. Any failure unwinds
//!   everything done so far (a release) before it is reported.
//! * Release (the container stopped or is gone, and DELETE): every mount
//!   below the instance directory found in `/proc/self/mountinfo`, newest
//!   first, is unmounted; then what this launcher mapped, in reverse, is
//!   unmapped. A device whose file system could not be unmounted is not
//!   unmapped, and a mount left in place keeps the directory from being
//!   removed (the manager's removal refuses to cross a mount).
//! * What we mapped is kept in `<dir>/rbd-mapped` (`<uuid> <device>` per
//!   line), so that after a restart of the launcher recovery knows which
//!   devices are ours to unmap.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::{info, warn};
use serde::Deserialize;

use crate::driver::{Cx, FileAction, Input, Res};
use crate::http::parse_json;

/// The file recording the devices this launcher mapped.
pub(crate) const RECORD_FILE: &str = "rbd-mapped";
/// Where the volumes are mounted, below the instance directory.
pub(crate) const MOUNT_DIR: &str = "volumes";
/// The mount table of the launcher's mount namespace.
const MOUNTINFO: &str = "/proc/self/mountinfo";

/// How the `rbd` tool is run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rbd {
    /// The cephx id (`--id`), left out when empty.
    pub id: String,
    /// The ceph configuration (`-c`), left out when `None`.
    pub conf: Option<PathBuf>,
    /// Deadline of each `rbd`, `mount` and `umount`.
    pub deadline: Duration,
}

impl Rbd {
    /// `rbd [--id ID] [-c CONF] args…`.
    pub(crate) fn argv(&self, args: &[&str]) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec!["rbd".into()];
        if !self.id.is_empty() {
            v.push("--id".into());
            v.push(self.id.clone().into());
        }
        if let Some(c) = &self.conf {
            v.push("-c".into());
            v.push(c.clone().into());
        }
        v.extend(args.iter().map(OsString::from));
        v
    }
}

/// One volume held for the container.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    uuid: String,
    device: String,
    /// Mapped by this launcher (so it unmaps it); a mapping found in
    /// place is someone else's.
    ours: bool,
}

/// What the driver learns when a job is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Done {
    /// Every volume is mapped and mounted.
    Attached,
    /// An attach failed (why); what it had done is undone.
    AttachFailed(String),
    /// A release is over; `Err` lists what is left (logged).
    Released(Result<(), String>),
    /// Recovery found what is mounted and mapped.
    Recovered,
}

/// A job waiting for its turn.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    Attach(Vec<String>),
    Release,
    Recover(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// Attach: `rbd showmapped` (volume ids to attach).
    Showmapped(Vec<String>),
    /// Attach: making volume `i`'s mount point.
    Dir(Attach),
    /// Attach: `rbd map` of volume `i`.
    Map(Attach),
    /// Attach: `mount` of volume `i`.
    Mount(Attach),
    /// Release: reading the mount table.
    Mounts(Release),
    /// Release: `umount` of the first of `unmount`.
    Unmount(Release),
    /// Release: `rbd unmap` of the first of `unmap`.
    Unmap(Release),
    /// Recovery: reading the record, then the mount table.
    Record(Vec<String>),
    RecoverMounts(Vec<String>, Vec<Held>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Attach {
    want: Vec<String>,
    i: usize,
    /// `rbd showmapped`: image → devices.
    mapped: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Release {
    /// The attach failure being unwound, if any.
    unwinding: Option<String>,
    unmount: VecDeque<(PathBuf, String)>,
    unmap: VecDeque<String>,
    /// Devices whose file system stayed mounted: never unmapped.
    busy: Vec<String>,
    failures: Vec<String>,
}

/// A container's volumes on the host.
#[derive(Debug)]
pub(super) struct Volumes {
    dir: PathBuf,
    held: Vec<Held>,
    step: Option<Step>,
    queue: VecDeque<Want>,
}

impl Volumes {
    pub(super) fn new(dir: PathBuf) -> Volumes {
        Volumes {
            dir,
            held: Vec::new(),
            step: None,
            queue: VecDeque::new(),
        }
    }

    /// The mount point of a volume.
    pub(super) fn mount_point(dir: &Path, uuid: &str) -> PathBuf {
        dir.join(MOUNT_DIR).join(uuid)
    }

    /// The bind of a volume into the container (`HostConfig.Binds`).
    pub(super) fn bind(dir: &Path, uuid: &str) -> String {
        format!(
            "{}:/{MOUNT_DIR}/{uuid}",
            Self::mount_point(dir, uuid).display()
        )
    }

    /// A job is running or waiting.
    pub(super) fn busy(&self) -> bool {
        self.step.is_some() || !self.queue.is_empty()
    }

    /// Whether this input is one of ours.
    pub(super) fn owns(input: &Input) -> bool {
        matches!(
            input,
            Input::Exited {
                res: Res::Volume,
                ..
            } | Input::File {
                res: Res::VolumeDir | Res::VolumeRecord | Res::Mounts,
                ..
            }
        )
    }

    /// Maps and mounts `uuids` in order ([`Done::Attached`] or
    /// [`Done::AttachFailed`]).
    pub(super) fn attach(&mut self, cx: &mut Cx, rbd: &Rbd, uuids: Vec<String>) {
        self.queue.push_back(Want::Attach(uuids));
        self.next(cx, rbd);
    }

    /// Unmounts everything below the instance directory and unmaps what
    /// we mapped ([`Done::Released`]).
    pub(super) fn release(&mut self, cx: &mut Cx, rbd: &Rbd) {
        if self.queue.back() != Some(&Want::Release) {
            self.queue.push_back(Want::Release);
        }
        self.next(cx, rbd);
    }

    /// After a launcher restart: what is mapped and mounted for `uuids`
    /// ([`Done::Recovered`]).
    pub(super) fn recover(&mut self, cx: &mut Cx, rbd: &Rbd, uuids: Vec<String>) {
        self.queue.push_back(Want::Recover(uuids));
        self.next(cx, rbd);
    }

    /// Starts the next job if none runs.
    fn next(&mut self, cx: &mut Cx, rbd: &Rbd) {
        if self.step.is_some() {
            return;
        }
        match self.queue.pop_front() {
            None => {}
            Some(Want::Attach(want)) => {
                let argv = rbd.argv(&["showmapped", "--format", "json"]);
                cx.spawn(Res::Volume, argv, rbd.deadline);
                self.step = Some(Step::Showmapped(want));
            }
            Some(Want::Release) => self.read_mounts(cx, Release::default()),
            Some(Want::Recover(want)) => {
                cx.file(
                    Res::VolumeRecord,
                    FileAction::Read {
                        path: self.dir.join(RECORD_FILE),
                    },
                );
                self.step = Some(Step::Record(want));
            }
        }
    }

    fn read_mounts(&mut self, cx: &mut Cx, r: Release) {
        cx.file(
            Res::Mounts,
            FileAction::Read {
                path: MOUNTINFO.into(),
            },
        );
        self.step = Some(Step::Mounts(r));
    }

    /// An answer for one of our steps: what is over, if anything.
    pub(super) fn input(&mut self, cx: &mut Cx, rbd: &Rbd, input: Input) -> Option<Done> {
        let res = match &input {
            Input::Exited { res, .. } | Input::File { res, .. } => *res,
            _ => return None,
        };
        let expected = match &self.step {
            Some(Step::Dir(_)) => Res::VolumeDir,
            Some(Step::Mounts(_) | Step::RecoverMounts(..)) => Res::Mounts,
            Some(Step::Record(_)) => Res::VolumeRecord,
            Some(_) => Res::Volume,
            None => {
                log_stray(cx, &input);
                return None;
            }
        };
        if res != expected {
            // A record write's answer, while another step waits.
            log_stray(cx, &input);
            return None;
        }
        let step = self.step.take()?;
        let done = match (step, input) {
            (Step::Showmapped(want), ex @ Input::Exited { .. }) => {
                match tool_output(&ex).and_then(|out| parse_showmapped(&out)) {
                    Ok(mapped) => self.attach_step(cx, Attach { want, i: 0, mapped }),
                    Err(e) => self.unwind(cx, format!("rbd showmapped: {e}")),
                }
            }
            (Step::Dir(a), Input::File { result, .. }) => match result {
                Err(e) if e.kind != std::io::ErrorKind::AlreadyExists => {
                    self.unwind(cx, format!("cannot make the mount point: {e}"))
                }
                _ => self.map_step(cx, rbd, a),
            },
            (Step::Map(a), ex @ Input::Exited { .. }) => {
                let uuid = a.want[a.i].clone();
                match tool_output(&ex).and_then(|out| first_line(&out)) {
                    Ok(device) => {
                        info!("instance {}: volume {uuid} mapped as {device}", cx.inst);
                        self.held.push(Held {
                            uuid,
                            device,
                            ours: true,
                        });
                        self.write_record(cx);
                        self.mount_step(cx, rbd, a)
                    }
                    Err(e) => self.unwind(cx, format!("rbd map {uuid}: {e}")),
                }
            }
            (Step::Mount(mut a), ex @ Input::Exited { .. }) => {
                let uuid = a.want[a.i].clone();
                match tool_output(&ex) {
                    Ok(_) => {
                        a.i += 1;
                        self.attach_step(cx, a)
                    }
                    Err(e) => self.unwind(cx, format!("mount of volume {uuid}: {e}")),
                }
            }
            (Step::Mounts(mut r), Input::File { result, .. }) => {
                match result {
                    Ok(bytes) => {
                        let text = String::from_utf8_lossy(&bytes);
                        r.unmount = mounts_under(&parse_mountinfo(&text), &self.dir)
                            .into_iter()
                            .map(|m| (m.point, m.source))
                            .collect();
                    }
                    Err(e) => {
                        // Nothing is unmounted, so nothing is unmapped:
                        // a device still mounted must stay.
                        r.failures.push(format!("cannot read the mount table: {e}"));
                        r.busy = self.held.iter().map(|h| h.device.clone()).collect();
                    }
                }
                r.unmap = self
                    .held
                    .iter()
                    .rev()
                    .filter(|h| h.ours)
                    .map(|h| h.device.clone())
                    .collect();
                self.release_step(cx, rbd, r)
            }
            (Step::Unmount(mut r), ex @ Input::Exited { .. }) => {
                if let Some((point, source)) = r.unmount.pop_front() {
                    match tool_output(&ex) {
                        Ok(_) => info!("instance {}: {} unmounted", cx.inst, point.display()),
                        Err(e) => {
                            r.failures.push(format!("umount {}: {e}", point.display()));
                            r.busy.push(source);
                        }
                    }
                }
                self.release_step(cx, rbd, r)
            }
            (Step::Unmap(mut r), ex @ Input::Exited { .. }) => {
                if let Some(device) = r.unmap.pop_front() {
                    match tool_output(&ex) {
                        Ok(_) => {
                            info!("instance {}: {device} unmapped", cx.inst);
                            self.held.retain(|h| h.device != device);
                        }
                        Err(e) => r.failures.push(format!("rbd unmap {device}: {e}")),
                    }
                }
                self.release_step(cx, rbd, r)
            }
            (Step::Record(want), Input::File { result, .. }) => {
                let record = result
                    .map(|b| parse_record(&String::from_utf8_lossy(&b)))
                    .unwrap_or_default();
                cx.file(
                    Res::Mounts,
                    FileAction::Read {
                        path: MOUNTINFO.into(),
                    },
                );
                self.step = Some(Step::RecoverMounts(want, record));
                None
            }
            (Step::RecoverMounts(want, record), Input::File { result, .. }) => {
                let mounts = result
                    .map(|b| parse_mountinfo(&String::from_utf8_lossy(&b)))
                    .unwrap_or_default();
                self.recovered(cx, &want, record, &mounts);
                Some(Done::Recovered)
            }
            (step, other) => {
                log_stray(cx, &other);
                self.step = Some(step);
                return None;
            }
        };
        if done.is_some() {
            self.next(cx, rbd);
        }
        done
    }

    fn attach_step(&mut self, cx: &mut Cx, a: Attach) -> Option<Done> {
        let Some(uuid) = a.want.get(a.i) else {
            return Some(Done::Attached);
        };
        let path = Self::mount_point(&self.dir, uuid);
        cx.file(Res::VolumeDir, FileAction::CreateDir { path, mode: 0o777 });
        self.step = Some(Step::Dir(a));
        None
    }

    fn map_step(&mut self, cx: &mut Cx, rbd: &Rbd, a: Attach) -> Option<Done> {
        let uuid = a.want[a.i].clone();
        if let Some(h) = self.held.iter().find(|h| h.uuid == uuid) {
            // Mapped by an earlier run of this container (its release
            // could not unmap it): still ours.
            info!(
                "instance {}: volume {uuid} still mapped as {}",
                cx.inst, h.device
            );
            return self.mount_step(cx, rbd, a);
        }
        if let Some(device) = a.mapped.get(&uuid).and_then(|d| d.first()) {
            info!(
                "instance {}: volume {uuid} is already mapped as {device}; using it (it stays mapped afterwards)",
                cx.inst
            );
            self.held.push(Held {
                uuid,
                device: device.clone(),
                ours: false,
            });
            return self.mount_step(cx, rbd, a);
        }
        let argv = rbd.argv(&["map", "-o", "noudev", &uuid]);
        cx.spawn(Res::Volume, argv, rbd.deadline);
        self.step = Some(Step::Map(a));
        None
    }

    fn mount_step(&mut self, cx: &mut Cx, rbd: &Rbd, a: Attach) -> Option<Done> {
        let uuid = &a.want[a.i];
        let Some(h) = self.held.iter().find(|h| h.uuid == *uuid) else {
            return self.unwind(cx, format!("volume {uuid} has no device"));
        };
        let argv = vec![
            OsString::from("mount"),
            h.device.clone().into(),
            Self::mount_point(&self.dir, uuid).into(),
        ];
        cx.spawn(Res::Volume, argv, rbd.deadline);
        self.step = Some(Step::Mount(a));
        None
    }

    /// An attach failed: release what it did, then report the failure.
    fn unwind(&mut self, cx: &mut Cx, error: String) -> Option<Done> {
        warn!("instance {}: {error}; undoing the volumes' attach", cx.inst);
        self.read_mounts(
            cx,
            Release {
                unwinding: Some(error),
                ..Release::default()
            },
        );
        None
    }

    fn release_step(&mut self, cx: &mut Cx, rbd: &Rbd, mut r: Release) -> Option<Done> {
        if let Some((point, _)) = r.unmount.front() {
            let argv = vec![OsString::from("umount"), point.clone().into()];
            cx.spawn(Res::Volume, argv, rbd.deadline);
            self.step = Some(Step::Unmount(r));
            return None;
        }
        while let Some(device) = r.unmap.front() {
            if r.busy.contains(device) {
                r.failures.push(format!(
                    "{device} left mapped: its file system is still mounted"
                ));
                r.unmap.pop_front();
                continue;
            }
            let argv = rbd.argv(&["unmap", "-o", "noudev", device]);
            cx.spawn(Res::Volume, argv, rbd.deadline);
            self.step = Some(Step::Unmap(r));
            return None;
        }
        // Held entries that are not ours are forgotten: nothing to undo.
        self.held.retain(|h| h.ours);
        self.write_record(cx);
        let result = if r.failures.is_empty() {
            Ok(())
        } else {
            Err(r.failures.join("; "))
        };
        Some(match r.unwinding {
            Some(e) => {
                if let Err(left) = &result {
                    warn!("instance {}: undoing the attach left: {left}", cx.inst);
                }
                Done::AttachFailed(e)
            }
            None => Done::Released(result),
        })
    }

    /// Rewrites (or removes, when empty) the record of what we mapped.
    /// Its answer is only logged: the record helps a later recovery, and
    /// losing it leaves a mapping behind, never data.
    fn write_record(&self, cx: &mut Cx) {
        let path = self.dir.join(RECORD_FILE);
        let ours: Vec<&Held> = self.held.iter().filter(|h| h.ours).collect();
        if ours.is_empty() {
            cx.file(Res::VolumeRecord, FileAction::RemoveFile { path });
            return;
        }
        let text: String = ours
            .iter()
            .map(|h| format!("{} {}\n", h.uuid, h.device))
            .collect();
        cx.file(
            Res::VolumeRecord,
            FileAction::Write {
                path,
                bytes: text.into_bytes(),
                mode: 0o600,
                durable: true,
            },
        );
    }

    fn recovered(&mut self, cx: &Cx, want: &[String], record: Vec<Held>, mounts: &[Mount]) {
        self.held = record;
        for uuid in want {
            let point = Self::mount_point(&self.dir, uuid);
            match mounts.iter().rev().find(|m| m.point == point) {
                Some(m) => {
                    let ours = self.held.iter().any(|h| h.uuid == *uuid && h.ours);
                    info!(
                        "instance {}: volume {uuid} is mounted from {}{}",
                        cx.inst,
                        m.source,
                        if ours {
                            " (mapped by the launcher)"
                        } else {
                            ""
                        }
                    );
                    if !ours {
                        self.held.push(Held {
                            uuid: uuid.clone(),
                            device: m.source.clone(),
                            ours: false,
                        });
                    }
                }
                None => info!("instance {}: volume {uuid} is not mounted", cx.inst),
            }
        }
    }
}

fn log_stray(cx: &Cx, input: &Input) {
    if let Input::File {
        res: Res::VolumeRecord,
        result: Err(e),
    } = input
    {
        warn!(
            "instance {}: cannot record the mapped volumes: {e}",
            cx.inst
        );
    }
}

/// A tool's stdout, or why it failed (its deadline, its status, what it
/// wrote).
fn tool_output(ex: &Input) -> Result<String, String> {
    let Input::Exited {
        status,
        timed_out,
        stdout,
        stderr,
        error,
        ..
    } = ex
    else {
        return Err("unexpected answer".into());
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    if *timed_out {
        return Err("killed at its deadline".into());
    }
    match status {
        None => Err(error.clone()),
        Some(s) if s.success() => Ok(text(stdout)),
        Some(s) => {
            let mut why = s.to_string();
            for t in [text(stderr), text(stdout)] {
                if !t.is_empty() {
                    why.push_str(": ");
                    why.push_str(&t.chars().take(300).collect::<String>());
                }
            }
            Err(why)
        }
    }
}

/// The device `rbd map` printed (its first line).
fn first_line(out: &str) -> Result<String, String> {
    match out.lines().next().map(str::trim) {
        Some(d) if d.starts_with('/') => Ok(d.to_string()),
        _ => Err("it printed no device name".into()),
    }
}

/// One mapping as `rbd showmapped --format json` lists it.
#[derive(Debug, Deserialize)]
struct Mapped {
    #[serde(default)]
    pool: Option<String>,
    name: String,
    device: String,
}

/// `rbd showmapped --format json`: image → devices (pool `rbd` only).
/// Older releases print an object keyed by mapping id, newer ones an
/// array: both are read.
pub(super) fn parse_showmapped(text: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    let t = text.trim();
    let list: Vec<Mapped> = if t.is_empty() {
        Vec::new()
    } else if t.starts_with('{') {
        parse_json::<BTreeMap<String, Mapped>>(t.as_bytes())
            .map_err(|e| e.to_string())?
            .into_values()
            .collect()
    } else {
        parse_json::<Vec<Mapped>>(t.as_bytes()).map_err(|e| e.to_string())?
    };
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in list {
        if m.pool.as_deref().is_none_or(|p| p == "rbd") {
            map.entry(m.name).or_default().push(m.device);
        }
    }
    Ok(map)
}

/// One line of `/proc/self/mountinfo`: the mount point and its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub point: PathBuf,
    pub source: String,
}

/// The mounts of a `/proc/<pid>/mountinfo` text, in mount order.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            let source = right.split(' ').nth(1)?;
            Some(Mount {
                point: PathBuf::from(unescape(point)),
                source: unescape(source),
            })
        })
        .collect()
}

/// The kernel writes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    String::from_utf8_lossy(&crate::sys::fs::unescape_mountinfo(s.as_bytes())).into_owned()
}

/// The mounts strictly below `dir`, newest first (the order to unmount).
pub(crate) fn mounts_under(mounts: &[Mount], dir: &Path) -> Vec<Mount> {
    mounts
        .iter()
        .rev()
        .filter(|m| m.point.starts_with(dir) && m.point != dir)
        .cloned()
        .collect()
}

/// `<uuid> <device>` lines of the record.
fn parse_record(text: &str) -> Vec<Held> {
    text.lines()
        .filter_map(|l| {
            let (uuid, device) = l.trim().split_once(' ')?;
            Some(Held {
                uuid: uuid.to_string(),
                device: device.trim().to_string(),
                ours: true,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{Effect, FileError, InstanceKey, IoOp, Jobs, Outcome};
    use crate::payloads::InstanceConfig;
    use crate::sys::pidfd::ChildStatus;
    use std::time::Instant;

    const DIR: &str = "/var/lib/ciao/instances/i1";

    /// Drives a [`Volumes`] like the shell would, keeping every effect.
    struct Rig {
        v: Volumes,
        key: InstanceKey,
        config: InstanceConfig,
        jobs: Jobs,
        rbd: Rbd,
        effects: Vec<Effect>,
    }

    impl Rig {
        fn new() -> Rig {
            Rig {
                v: Volumes::new(PathBuf::from(DIR)),
                key: InstanceKey {
                    id: "i1".into(),
                    generation: 1,
                },
                config: InstanceConfig::default(),
                jobs: Jobs::default(),
                rbd: Rbd {
                    id: "ciao".into(),
                    conf: None,
                    deadline: Duration::from_secs(60),
                },
                effects: Vec::new(),
            }
        }

        fn with<T>(&mut self, f: impl FnOnce(&mut Volumes, &mut Cx, &Rbd) -> T) -> T {
            let mut outcomes: Vec<Outcome> = Vec::new();
            let mut cx = Cx::new(
                Instant::now(),
                &self.key,
                &self.config,
                &mut self.effects,
                &mut outcomes,
                &mut self.jobs,
            );
            f(&mut self.v, &mut cx, &self.rbd)
        }

        fn feed(&mut self, input: Input) -> Option<Done> {
            self.with(|v, cx, rbd| v.input(cx, rbd, input))
        }

        /// The effects since the last call, as text.
        fn took(&mut self) -> Vec<String> {
            std::mem::take(&mut self.effects)
                .into_iter()
                .map(|e| match e {
                    Effect::Io(IoOp::Spawn { argv, .. }) => argv
                        .iter()
                        .map(|a| a.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join(" "),
                    Effect::File(op) => format!("{:?}", op.action),
                    other => format!("{other:?}"),
                })
                .collect()
        }
    }

    fn exited(code: i32, stdout: &str) -> Input {
        Input::Exited {
            res: Res::Volume,
            status: Some(ChildStatus::Exited(code)),
            timed_out: false,
            stdout: stdout.as_bytes().to_vec(),
            stderr: if code == 0 {
                Vec::new()
            } else {
                b"mount: wrong fs type".to_vec()
            },
            error: String::new(),
        }
    }

    fn file(res: Res, bytes: &str) -> Input {
        Input::File {
            res,
            result: Ok(bytes.as_bytes().to_vec()),
        }
    }

    fn mountinfo_line(n: u32, point: &str, source: &str) -> String {
        format!("{n} 1 254:{n} / {point} rw,relatime shared:{n} - ext4 {source} rw\n")
    }

    #[test]
    fn showmapped_both_shapes() {
        let object = r#"{"0":{"pool":"rbd","name":"v1","snap":"-","device":"/dev/rbd0"},
            "1":{"pool":"other","name":"v2","snap":"-","device":"/dev/rbd1"},
            "2":{"pool":"rbd","name":"v1","snap":"-","device":"/dev/rbd2"}}"#;
        let m = parse_showmapped(object).unwrap();
        assert_eq!(m.len(), 1);
        let mut d = m["v1"].clone();
        d.sort();
        assert_eq!(d, ["/dev/rbd0", "/dev/rbd2"]);
        // Pacific and later: an array (as the kernel lab's rbd printed it).
        let array = r#"[{"id":"0","pool":"rbd","namespace":"","name":"v1","snap":"-","device":"/dev/rbd0"},{"id":"1","pool":"rbd","namespace":"","name":"v3","snap":"-","device":"/dev/rbd1"}]"#;
        let m = parse_showmapped(array).unwrap();
        assert_eq!(m["v1"], ["/dev/rbd0"]);
        assert_eq!(m["v3"], ["/dev/rbd1"]);
        assert!(parse_showmapped("").unwrap().is_empty());
        assert!(parse_showmapped("[]\n").unwrap().is_empty());
        assert!(parse_showmapped("{}").unwrap().is_empty());
        assert!(parse_showmapped("[{\"name\":1}]").is_err());
        assert!(parse_showmapped("not json").is_err());
    }

    #[test]
    fn mountinfo_and_mounts_under() {
        let text = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
            56 22 254:0 / /var/lib/ciao/instances/i1/volumes/v1 rw - ext4 /dev/rbd0 rw\n\
            57 22 0:5 / /var/lib/ciao/instances/i10 rw - tmpfs tmpfs rw\n\
            58 22 254:16 / /var/lib/ciao/instances/i1/a\\040b rw shared:3 master:1 - ext4 /dev/rbd1 rw\n\
            garbage\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 4);
        assert_eq!(m[3].point, PathBuf::from("/var/lib/ciao/instances/i1/a b"));
        assert_eq!(m[3].source, "/dev/rbd1");
        let under = mounts_under(&m, Path::new(DIR));
        let points: Vec<_> = under
            .iter()
            .map(|m| m.point.display().to_string())
            .collect();
        // Newest first; a sibling with a longer name is not below it.
        assert_eq!(
            points,
            [
                "/var/lib/ciao/instances/i1/a b",
                "/var/lib/ciao/instances/i1/volumes/v1"
            ]
        );
        assert!(mounts_under(&m, Path::new("/var/lib/ciao/instances/i10")).is_empty());
    }

    #[test]
    fn record_lines() {
        let r = parse_record("v1 /dev/rbd0\nbad\nv2 /dev/rbd3\n");
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[1].uuid.as_str(), r[1].device.as_str()),
            ("v2", "/dev/rbd3")
        );
        assert!(r.iter().all(|h| h.ours));
    }

    #[test]
    fn rbd_arguments() {
        let mut r = Rbd::default();
        assert_eq!(r.argv(&["showmapped"]), ["rbd", "showmapped"]);
        r.id = "ciao".into();
        r.conf = Some("/etc/ceph/x.conf".into());
        assert_eq!(
            r.argv(&["map", "v"]),
            ["rbd", "--id", "ciao", "-c", "/etc/ceph/x.conf", "map", "v"]
        );
        assert_eq!(
            Volumes::bind(Path::new(DIR), "v1"),
            "/var/lib/ciao/instances/i1/volumes/v1:/volumes/v1"
        );
    }

    /// Two volumes, the second already mapped by someone else; its mount
    /// fails: the first is unmounted then unmapped, the second (not ours)
    /// is never unmapped, and only then is the failure reported.
    #[test]
    fn a_failed_attach_unwinds_in_reverse_and_unmaps_only_ours() {
        let mut r = Rig::new();
        r.with(|v, cx, rbd| v.attach(cx, rbd, vec!["v1".into(), "v2".into()]));
        assert_eq!(r.took(), ["rbd --id ciao showmapped --format json"]);
        let shown = r#"[{"pool":"rbd","name":"v2","device":"/dev/rbd5"}]"#;
        assert_eq!(r.feed(exited(0, shown)), None);
        assert_eq!(
            r.took(),
            [format!(
                "CreateDir {{ path: \"{DIR}/volumes/v1\", mode: 511 }}"
            )]
        );
        assert_eq!(r.feed(file(Res::VolumeDir, "")), None);
        assert_eq!(r.took(), ["rbd --id ciao map -o noudev v1"]);
        assert_eq!(r.feed(exited(0, "/dev/rbd0\n")), None);
        let t = r.took();
        assert!(t[0].starts_with(&format!("Write {{ path: \"{DIR}/rbd-mapped\", bytes: [")));
        assert_eq!(t[1], format!("mount /dev/rbd0 {DIR}/volumes/v1"));
        // The record's answer while the mount runs changes nothing.
        assert_eq!(r.feed(file(Res::VolumeRecord, "")), None);
        assert_eq!(r.feed(exited(0, "")), None);
        // v2 exists already: no error for AlreadyExists.
        r.took();
        let exists = Input::File {
            res: Res::VolumeDir,
            result: Err(FileError {
                kind: std::io::ErrorKind::AlreadyExists,
                detail: "exists".into(),
            }),
        };
        assert_eq!(r.feed(exists), None);
        assert_eq!(r.took(), [format!("mount /dev/rbd5 {DIR}/volumes/v2")]);
        assert_eq!(r.feed(exited(32, "")), None);
        assert_eq!(
            r.took(),
            ["Read { path: \"/proc/self/mountinfo\" }".to_string()]
        );
        let table = mountinfo_line(30, "/", "/dev/sda1")
            + &mountinfo_line(56, &format!("{DIR}/volumes/v1"), "/dev/rbd0");
        assert_eq!(r.feed(file(Res::Mounts, &table)), None);
        assert_eq!(r.took(), [format!("umount {DIR}/volumes/v1")]);
        assert_eq!(r.feed(exited(0, "")), None);
        assert_eq!(r.took(), ["rbd --id ciao unmap -o noudev /dev/rbd0"]);
        let done = r.feed(exited(0, ""));
        assert!(
            matches!(&done, Some(Done::AttachFailed(e)) if e.contains("mount of volume v2")),
            "{done:?}"
        );
        assert_eq!(
            r.took(),
            [format!("RemoveFile {{ path: \"{DIR}/rbd-mapped\" }}")]
        );
        assert!(!r.v.busy());
    }

    /// A release whose unmount fails leaves that device mapped (and the
    /// mount in place, which keeps the directory from being removed).
    #[test]
    fn a_busy_mount_is_never_unmapped() {
        let mut r = Rig::new();
        r.v.held = parse_record("v1 /dev/rbd0\nv2 /dev/rbd1\n");
        r.with(|v, cx, rbd| v.release(cx, rbd));
        r.took();
        let table = mountinfo_line(56, &format!("{DIR}/volumes/v1"), "/dev/rbd0")
            + &mountinfo_line(57, &format!("{DIR}/volumes/v2"), "/dev/rbd1");
        r.feed(file(Res::Mounts, &table));
        assert_eq!(r.took(), [format!("umount {DIR}/volumes/v2")]);
        r.feed(exited(0, ""));
        assert_eq!(r.took(), [format!("umount {DIR}/volumes/v1")]);
        r.feed(exited(32, "")); // busy
        assert_eq!(r.took(), ["rbd --id ciao unmap -o noudev /dev/rbd1"]);
        let done = r.feed(exited(0, ""));
        let Some(Done::Released(Err(e))) = done else {
            panic!("{done:?}")
        };
        assert!(e.contains("/dev/rbd0 left mapped"), "{e}");
        // The record keeps what is still ours.
        let t = r.took();
        assert_eq!(t.len(), 1);
        assert!(t[0].contains("rbd-mapped"), "{t:?}");
        assert_eq!(r.v.held.len(), 1);
        assert_eq!(r.v.held[0].device, "/dev/rbd0");
    }

    /// Recovery: the record says what is ours, the mount table what is
    /// mounted; a release afterwards unmaps only what is ours.
    #[test]
    fn recovery_reads_the_record_and_the_mount_table() {
        let mut r = Rig::new();
        r.with(|v, cx, rbd| v.recover(cx, rbd, vec!["v1".into(), "v2".into()]));
        assert_eq!(r.took(), [format!("Read {{ path: \"{DIR}/rbd-mapped\" }}")]);
        r.feed(file(Res::VolumeRecord, "v1 /dev/rbd0\n"));
        let table = mountinfo_line(56, &format!("{DIR}/volumes/v1"), "/dev/rbd0")
            + &mountinfo_line(57, &format!("{DIR}/volumes/v2"), "/dev/rbd7");
        assert_eq!(r.feed(file(Res::Mounts, &table)), Some(Done::Recovered));
        r.took();
        r.with(|v, cx, rbd| v.release(cx, rbd));
        r.took();
        r.feed(file(Res::Mounts, &table));
        r.feed(exited(0, ""));
        r.feed(exited(0, ""));
        assert_eq!(
            r.took(),
            [
                format!("umount {DIR}/volumes/v2"),
                format!("umount {DIR}/volumes/v1"),
                "rbd --id ciao unmap -o noudev /dev/rbd0".into()
            ]
        );
        // /dev/rbd7 was mapped by someone else: left alone.
        assert_eq!(r.feed(exited(0, "")), Some(Done::Released(Ok(()))));
    }

    /// A map that prints nothing, or dies at its deadline, fails the
    /// attach (after the unwind).
    #[test]
    fn map_without_a_device_fails() {
        assert!(first_line("").is_err());
        assert!(first_line("rbd: warning\n").is_err());
        assert_eq!(first_line("/dev/rbd3\nrest").unwrap(), "/dev/rbd3");
        let timed_out = Input::Exited {
            res: Res::Volume,
            status: Some(ChildStatus::Signaled(9)),
            timed_out: true,
            stdout: Vec::new(),
            stderr: Vec::new(),
            error: String::new(),
        };
        assert_eq!(
            tool_output(&timed_out).unwrap_err(),
            "killed at its deadline"
        );
    }
}
