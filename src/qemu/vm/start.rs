//! START, RESTART and recovery: the backing image, the config drive, the
//! overlay, the CPU model, the launch, and the adoption of the daemonised
//! qemu.

use std::time::Duration;

use log::{debug, info, warn};

use super::{Phase, Purpose, QemuDriver};
use crate::driver::{Cx, FileAction, FileError, Job, Outcome, Res, Turn};
use crate::payloads::{default_meta_data, StartFailureReason};
use crate::qemu::cmdline::{self, Accel, Launch};
use crate::qemu::settings::AccelState;
use crate::qemu::volumes::Ceph;
use crate::sys::pidfd::ChildStatus;

/// How long the CPU probe qemu must survive for the model to count as working.
const PROBE_RUN: Duration = Duration::from_secs(2);
/// `sizeof(sockaddr_un.sun_path)`: a socket path must be shorter.
const MAX_SOCKET_PATH: usize = 108;
/// The config drive's files under the staging directory; the index is the
/// `n` of their [`Res::ConfigFile`].
const CONFIG_FILES: [&str; 2] = [
    "openstack/latest/meta_data.json",
    "openstack/latest/user_data",
];
const CONFIG_FILE_MODE: u32 = 0o644;

/// How a child ended, as [`crate::driver::Input::Exited`] reports it.
pub(super) struct Ended {
    pub(super) status: Option<ChildStatus>,
    pub(super) timed_out: bool,
    pub(super) stdout: Vec<u8>,
    pub(super) stderr: Vec<u8>,
    pub(super) error: String,
}

impl Ended {
    /// Success, or why `argv0` failed (with what it wrote on stderr).
    fn result(&self, argv0: &str) -> Result<(), String> {
        tool_result(
            argv0,
            self.status,
            self.timed_out,
            &self.stderr,
            &self.error,
        )
    }
}

fn tool_result(
    argv0: &str,
    status: Option<ChildStatus>,
    timed_out: bool,
    stderr: &[u8],
    error: &str,
) -> Result<(), String> {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    match status {
        _ if timed_out => Err(format!("{argv0} did not finish in time (killed); {text}")),
        None => Err(if error.is_empty() {
            format!("{argv0} could not run")
        } else {
            error.to_string()
        }),
        Some(s) if s.success() => Ok(()),
        Some(s) if text.is_empty() => Err(format!("{argv0}: {s}")),
        Some(s) => Err(format!("{argv0}: {s}: {text}")),
    }
}

impl QemuDriver {
    /// START (a new VM) or RESTART (the existing disk and config drive).
    pub(super) fn begin(&mut self, cx: &mut Cx, restart: bool, user_data: &[u8], meta_data: &[u8]) {
        self.urgent = false;
        self.vnic = cx.vnic.cloned();
        if self.phase != Phase::Idle {
            // The manager starts only instances that are not running.
            warn!("{}: START while qemu is {:?}", cx.inst, self.phase);
        }
        if !restart {
            self.purpose = Purpose::Start;
            return self.begin_create(cx, user_data, meta_data);
        }
        self.purpose = Purpose::Restart;
        let mut need = vec![cmdline::SEED_ISO];
        if !cx.config.image_uuid.is_empty() {
            need.push(cmdline::OVERLAY);
        }
        for f in need {
            let p = self.path(f);
            let r = self.shared.borrow().host.stat(&p);
            if let Err(e) = r {
                return self.fail(
                    cx,
                    StartFailureReason::LaunchFailure,
                    format!("{}: {e}", p.display()),
                );
            }
        }
        self.choose_accel(cx);
    }

    /// Checks the backing image, then writes the config drive's files and
    /// asks the backing image's format, at the same time.
    fn begin_create(&mut self, cx: &mut Cx, user_data: &[u8], meta_data: &[u8]) {
        let cfg = cx.config;
        // Booting from a volume: no backing image and no overlay (the
        // manager checked that a bootable volume is there).
        let backing = if cfg.image_uuid.is_empty() {
            None
        } else {
            let backing = self
                .shared
                .borrow()
                .settings
                .images_dir
                .join(&cfg.image_uuid);
            let r = self.shared.borrow().host.stat(&backing);
            if let Err(e) = r {
                return self.fail(
                    cx,
                    StartFailureReason::ImageFailure,
                    format!("backing image {}: {e}", backing.display()),
                );
            }
            Some(backing)
        };
        let meta_data = if meta_data.is_empty() {
            default_meta_data(&cfg.instance_uuid).into_bytes()
        } else {
            meta_data.to_vec()
        };
        self.phase = Phase::Preparing {
            files: 0,
            iso: false,
            disk: backing.is_none(),
        };
        let staging = self.path(cmdline::STAGING);
        for (n, (name, bytes)) in CONFIG_FILES
            .into_iter()
            .zip([meta_data, user_data.to_vec()])
            .enumerate()
        {
            cx.file(
                Res::ConfigFile(n as u8),
                FileAction::Write {
                    path: staging.join(name),
                    bytes,
                    mode: CONFIG_FILE_MODE,
                    // The ISO is made from them at once; a crash before
                    // the VM runs loses nothing worth keeping.
                    durable: false,
                },
            );
        }
        if let Some(backing) = backing {
            let tool = self.shared.borrow().settings.tool_deadline;
            cx.spawn(Res::ImageInfo, cmdline::image_info_argv(&backing), tool);
        } else {
            info!("{}: boots from a volume: no root disk", cx.inst);
        }
    }

    /// A file operation of START finished.
    pub(super) fn file_done(&mut self, cx: &mut Cx, res: Res, result: Result<Vec<u8>, FileError>) {
        match res {
            Res::ConfigFile(_) => self.config_file_written(cx, result),
            Res::Staging => {
                if let Err(e) = result {
                    warn!(
                        "{}: cannot remove the config drive's staging tree: {e}",
                        cx.inst
                    );
                }
            }
            Res::Pidfile => self.pidfile_cleared(cx, result),
            _ => debug!("{}: unexpected file answer for {res:?}", cx.inst),
        }
    }

    /// One of the config drive's files is written: `xorriso` runs once both
    /// are.
    fn config_file_written(&mut self, cx: &mut Cx, result: Result<Vec<u8>, FileError>) {
        let Phase::Preparing { files, iso, disk } = self.phase else {
            debug!("{}: late answer for a config drive file", cx.inst);
            return;
        };
        if let Err(e) = result {
            let staging = self.path(cmdline::STAGING);
            return self.fail(
                cx,
                StartFailureReason::ImageFailure,
                format!(
                    "cannot write the config drive files under {}: {e}",
                    staging.display()
                ),
            );
        }
        let files = files + 1;
        self.phase = Phase::Preparing { files, iso, disk };
        if usize::from(files) == CONFIG_FILES.len() {
            let tool = self.shared.borrow().settings.tool_deadline;
            cx.spawn(Res::ConfigDrive, cmdline::iso_argv(&self.dir), tool);
        }
    }

    /// A child of START or of the CPU probe ended.
    pub(super) fn exited(&mut self, cx: &mut Cx, res: Res, ended: Ended) {
        match res {
            Res::ConfigDrive | Res::ImageInfo | Res::ImageCreate => self.tool_done(cx, res, ended),
            Res::Launch => {
                let r = ended.result(cmdline::QEMU);
                self.launched(cx, r);
            }
            Res::CpuProbe => self.probe_ended(cx, ended),
            _ => debug!("{}: unexpected exit of {res:?}", cx.inst),
        }
    }

    /// `xorriso` or `qemu-img` ended: the next step, or a failed START.
    fn tool_done(&mut self, cx: &mut Cx, res: Res, ended: Ended) {
        let Phase::Preparing {
            files,
            mut iso,
            mut disk,
        } = self.phase
        else {
            debug!("{}: late result of a tool ({res:?})", cx.inst);
            return;
        };
        let r = match res {
            Res::ConfigDrive => {
                iso = true;
                self.iso_made(cx, &ended)
            }
            Res::ImageInfo => self.image_inspected(cx, &ended),
            Res::ImageCreate => {
                disk = true;
                ended
                    .result("qemu-img create")
                    .map_err(|e| format!("root disk: {e}"))
            }
            _ => Ok(()),
        };
        if let Err(detail) = r {
            return self.fail(cx, StartFailureReason::ImageFailure, detail);
        }
        self.phase = Phase::Preparing { files, iso, disk };
        if iso && disk {
            self.choose_accel(cx);
        }
    }

    /// `xorriso` ended: the staging tree goes, whatever the result.
    fn iso_made(&mut self, cx: &mut Cx, ended: &Ended) -> Result<(), String> {
        let path = self.path(cmdline::STAGING);
        cx.file(Res::Staging, FileAction::RemoveTree { path });
        ended
            .result(cmdline::XORRISO)
            .map_err(|e| format!("config drive: {e}"))
    }

    /// `qemu-img info` told the backing image's format: the overlay is made
    /// on it.
    fn image_inspected(&mut self, cx: &mut Cx, ended: &Ended) -> Result<(), String> {
        ended
            .result("qemu-img info")
            .map_err(|e| format!("backing image: {e}"))?;
        let fmt = cmdline::parse_image_format(&ended.stdout)
            .map_err(|e| format!("backing image: qemu-img info: {e}"))?;
        let shared = self.shared.borrow();
        let backing = shared.settings.images_dir.join(&cx.config.image_uuid);
        debug!("{}: backing image {} is {fmt}", cx.inst, backing.display());
        cx.spawn(
            Res::ImageCreate,
            cmdline::image_create_argv(&backing, &fmt, &self.dir),
            shared.settings.tool_deadline,
        );
        Ok(())
    }

    /// Uses the host's CPU choice; when nobody knows it yet, probes it
    /// (leading the node-wide job) or waits for the instance that does.
    pub(super) fn choose_accel(&mut self, cx: &mut Cx) {
        self.phase = Phase::Accel;
        let state = self.shared.borrow().accel.clone();
        match state {
            AccelState::Known(a) => self.launch(cx, &a),
            AccelState::Unknown => self.find_cpu_model(cx),
        }
    }

    /// Runs the node's CPU probe, or waits for the instance that runs it.
    fn find_cpu_model(&mut self, cx: &mut Cx) {
        match cx.join(Job::CpuModel) {
            Turn::Lead if self.probing => debug!("{}: our CPU probe still runs", cx.inst),
            Turn::Lead => {
                info!("qemu: probing whether -cpu host works with KVM here");
                self.probing = true;
                cx.spawn(Res::CpuProbe, cmdline::cpu_probe_argv("host"), PROBE_RUN);
            }
            Turn::Wait => debug!("{}: waiting for the CPU probe", cx.inst),
        }
    }

    /// The node's CPU-model job is over, or it passed to this instance
    /// because its leader went away.
    pub(super) fn cpu_model_job(&mut self, cx: &mut Cx, lead: bool) {
        if self.phase == Phase::Accel {
            self.choose_accel(cx);
        } else if lead {
            // This START was given up while it waited, but other instances
            // may wait for the answer: probe for them.
            self.find_cpu_model(cx);
        }
    }

    fn probe_ended(&mut self, cx: &mut Cx, ended: Ended) {
        if !std::mem::take(&mut self.probing) {
            debug!("{}: a CPU probe we stopped ended", cx.inst);
            return;
        }
        let Ended {
            status,
            timed_out,
            stderr,
            error,
            ..
        } = ended;
        if status.is_none() && !timed_out {
            // qemu could not even run: decide nothing, let the launch
            // report it.
            self.shared.borrow_mut().accel = AccelState::Unknown;
            cx.finish(Job::CpuModel);
            if self.phase == Phase::Accel {
                self.launch(cx, &Accel::Kvm { cpu: None });
            }
            return;
        }
        let accel = if timed_out {
            info!("qemu: -cpu host works with KVM here; VMs use it");
            Accel::Kvm {
                cpu: Some("host".into()),
            }
        } else {
            let why = match tool_result(cmdline::QEMU, status, false, &stderr, &error) {
                Ok(()) => "it exited at once".to_string(),
                Err(detail) => detail,
            };
            warn!(
                "qemu: -enable-kvm -cpu host fails here ({}); VMs use qemu's default CPU model",
                why.trim()
            );
            Accel::Kvm { cpu: None }
        };
        self.shared.borrow_mut().accel = AccelState::Known(accel.clone());
        cx.finish(Job::CpuModel);
        if self.phase == Phase::Accel {
            self.launch(cx, &accel);
        }
    }

    /// Checks what qemu needs, then removes a stale pidfile: qemu starts
    /// once it is gone.
    fn launch(&mut self, cx: &mut Cx, accel: &Accel) {
        let ovmf = self.shared.borrow().settings.ovmf.clone();
        if !cx.config.is_legacy() && ovmf.is_none() {
            return self.fail(
                cx,
                StartFailureReason::LaunchFailure,
                "the VM boots with EFI but no OVMF firmware was found (install ovmf or pass --ovmf)".into(),
            );
        }
        let sock = self.path(cmdline::QMP_SOCKET);
        if sock.as_os_str().len() >= MAX_SOCKET_PATH {
            return self.fail(
                cx,
                StartFailureReason::LaunchFailure,
                format!(
                    "the QMP socket path {} is longer than {} bytes, the Unix socket limit; use a shorter --data-root",
                    sock.display(),
                    MAX_SOCKET_PATH - 1
                ),
            );
        }
        let vnic = self.vnic.clone();
        let vnic = vnic.as_ref();
        // Without vhost-net the NIC is slower; with `vhost=on` and no
        // vhost-net qemu would not start at all.
        let vhost = vnic.is_some() && self.shared.borrow().host.vhost_net_usable();
        let shared = self.shared.borrow();
        let st = &shared.settings;
        let argv = cmdline::qemu_argv(
            cx.config,
            &Launch {
                dir: &self.dir,
                accel,
                ovmf: ovmf.as_deref(),
                ceph: Ceph {
                    id: &st.ceph_id,
                    conf: st.ceph_conf.as_deref(),
                    timeout: st.ceph_timeout,
                },
                console: st.console,
                vnic,
                vhost,
            },
        );
        drop(shared);
        let argv = match argv {
            Ok(a) => a,
            Err(e) => return self.fail(cx, StartFailureReason::LaunchFailure, e),
        };
        if !cx.config.volumes.is_empty() {
            let ids: Vec<&str> = cx.config.volumes.iter().map(|v| v.uuid.as_str()).collect();
            info!(
                "{}: volumes (rbd, in this order): {}",
                cx.inst,
                ids.join(" ")
            );
        }
        let net = match vnic {
            None => "user-mode network".to_string(),
            Some(v) => format!(
                "{}, vhost {}",
                cmdline::describe_vnic(v),
                if vhost {
                    "on"
                } else {
                    "off: /dev/vhost-net cannot be opened"
                }
            ),
        };
        info!("{}: launching qemu ({}; {net})", cx.inst, accel.describe());
        // A pidfile left by a qemu that was killed would name a stale PID.
        self.launch_argv = Some((argv, cmdline::passed_files(vnic)));
        self.phase = Phase::Clearing;
        let path = self.path(cmdline::PIDFILE);
        cx.file(Res::Pidfile, FileAction::RemoveFile { path });
    }

    /// The stale pidfile is gone: qemu starts.
    fn pidfile_cleared(&mut self, cx: &mut Cx, result: Result<Vec<u8>, FileError>) {
        let launch = self.launch_argv.take();
        let (Phase::Clearing, Some((argv, files))) = (self.phase, launch) else {
            debug!("{}: late answer for the pidfile", cx.inst);
            return;
        };
        if let Err(e) = result {
            warn!("{}: cannot remove the old pidfile: {e}", cx.inst);
        }
        self.phase = Phase::Launching;
        let tool = self.shared.borrow().settings.tool_deadline;
        cx.spawn_with_files(Res::Launch, argv, tool, files);
    }

    /// The foreground qemu ended: it daemonised (adopt the VM through its
    /// pidfile) or failed.
    fn launched(&mut self, cx: &mut Cx, result: Result<(), String>) {
        if self.phase != Phase::Launching {
            return;
        }
        if let Err(e) = result {
            return self.fail(cx, StartFailureReason::LaunchFailure, e);
        }
        cx.outcome(Outcome::Launched);
        let pidfile = self.path(cmdline::PIDFILE);
        let pid = self.shared.borrow().host.read_pid(&pidfile);
        let Some(pid) = pid else {
            return self.fail(
                cx,
                StartFailureReason::LaunchFailure,
                format!("qemu started but left no PID in {}", pidfile.display()),
            );
        };
        if !self.is_ours(pid) {
            return self.fail(
                cx,
                StartFailureReason::LaunchFailure,
                format!(
                    "qemu started but PID {pid} from {} is not this VM's qemu",
                    pidfile.display()
                ),
            );
        }
        self.adopt(cx, pid);
    }

    /// Recovery after a launcher restart: adopts the qemu named by the
    /// pidfile if it is still this VM's.
    pub(super) fn readopt(&mut self, cx: &mut Cx, stopped: bool) {
        self.purpose = Purpose::Recover;
        let pidfile = self.path(cmdline::PIDFILE);
        let pid = self.shared.borrow().host.read_pid(&pidfile);
        match pid {
            Some(pid) if self.is_ours(pid) => {
                if stopped {
                    info!(
                        "{}: stopped by an operator, but its qemu (PID {pid}) runs: adopting it",
                        cx.inst
                    );
                }
                self.adopt(cx, pid);
            }
            Some(pid) => {
                info!(
                    "{}: PID {pid} in {} is not this VM's qemu any more: not running",
                    cx.inst,
                    pidfile.display()
                );
                cx.outcome(Outcome::Exited);
            }
            None => cx.outcome(Outcome::Exited),
        }
    }

    fn is_ours(&self, pid: u32) -> bool {
        let args = self.shared.borrow().host.cmdline(pid);
        args.is_some_and(|a| cmdline::cmdline_matches(&a, &self.dir))
    }

    /// Watches the VM process and connects to its QMP socket.
    fn adopt(&mut self, cx: &mut Cx, pid: u32) {
        debug!("{}: qemu is PID {pid}", cx.inst);
        self.pid = Some(pid);
        self.phase = Phase::Booting;
        self.cpu.reset();
        cx.watch(Res::Process, pid);
        self.qmp_attempts = 0;
        self.connect(cx);
    }
}
