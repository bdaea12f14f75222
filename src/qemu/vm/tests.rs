//! The step machine against a fake host: no file system, no qemu. The
//! shell's part (children, sockets, files, timers, node-wide jobs) is
//! played by hand from the effects the driver asks for.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::Path;
use std::time::Duration;

use super::monitor::QMP_ATTEMPTS;
use super::*;
use crate::driver::{
    Effect, FileAction, FileError, FileOp, InstanceKey, IoOp, Jobs, Routed, Signal, TimerOp,
};
use crate::payloads::{default_meta_data, FwType};
use crate::qemu::cmdline::{Accel, Launch};
use crate::qemu::host::Host;
use crate::qemu::settings::{Settings, Virtualisation};
use crate::sys::pidfd::ChildStatus;

/// A file system and process table in memory.
#[derive(Default)]
struct Fake {
    files: RefCell<HashSet<PathBuf>>,
    pids: RefCell<HashMap<u32, Vec<String>>>,
    pidfiles: RefCell<HashMap<PathBuf, u32>>,
    ticks: RefCell<u64>,
    vhost_net: RefCell<bool>,
}

struct FakeHost(Rc<Fake>);

impl Host for FakeHost {
    fn stat(&self, path: &Path) -> io::Result<()> {
        if self.0.files.borrow().contains(path) {
            Ok(())
        } else {
            Err(io::Error::from(io::ErrorKind::NotFound))
        }
    }
    fn read_pid(&self, path: &Path) -> Option<u32> {
        self.0.pidfiles.borrow().get(path).copied()
    }
    fn cmdline(&self, pid: u32) -> Option<Vec<String>> {
        self.0.pids.borrow().get(&pid).cloned()
    }
    fn pss_kb(&self, pid: u32) -> Option<u64> {
        self.0.pids.borrow().contains_key(&pid).then_some(70 * 1024)
    }
    fn cpu_ticks(&self, _pid: u32) -> Option<u64> {
        Some(*self.0.ticks.borrow())
    }
    fn ticks_per_sec(&self) -> u64 {
        100
    }
    fn file_size(&self, _path: &Path) -> Option<u64> {
        Some(3 * 1_048_576 + 5)
    }
    fn kvm_usable(&self) -> bool {
        false
    }
    fn vhost_net_usable(&self) -> bool {
        *self.0.vhost_net.borrow()
    }
}

const ID: &str = "d7d86208-b46c-4465-9018-fe14087d415f";
const OTHER: &str = "5e1f0a3c-8d2b-4c6e-9a7f-0b1c2d3e4f50";

/// One VM of the node: its instance, configuration, directory and driver.
struct Vm {
    key: InstanceKey,
    cfg: InstanceConfig,
    dir: PathBuf,
    d: QemuDriver,
}

/// The node under test: the shared state, the node-wide jobs, the clock,
/// and the VM the helpers drive.
struct T {
    fake: Rc<Fake>,
    shared: Rc<RefCell<Shared>>,
    jobs: Jobs,
    now: Instant,
    vm: Vm,
    /// The network attachment the manager puts in every `Cx`.
    vnic: Option<Vnic>,
}

impl T {
    fn new(virt: Virtualisation) -> T {
        let fake = Rc::new(Fake::default());
        fake.files
            .borrow_mut()
            .insert(PathBuf::from("/data/images/img"));
        let mut s = Settings::new(
            PathBuf::from("/data/images"),
            virt,
            Some("/ovmf.fd".into()),
            Duration::from_secs(30),
        );
        s.ceph_id = String::new();
        let shared = Shared::new(s, Box::new(FakeHost(fake.clone())));
        let vm = new_vm(&shared, ID);
        T {
            fake,
            shared,
            jobs: Jobs::default(),
            now: Instant::now(),
            vm,
            vnic: None,
        }
    }

    /// Another VM of the same node.
    fn other_vm(&self, id: &str) -> Vm {
        new_vm(&self.shared, id)
    }

    /// Runs `f` with `vm` as the VM the helpers drive.
    fn with<R>(&mut self, vm: &mut Vm, f: impl FnOnce(&mut T) -> R) -> R {
        std::mem::swap(&mut self.vm, vm);
        let r = f(self);
        std::mem::swap(&mut self.vm, vm);
        r
    }

    fn call(&mut self, f: impl FnOnce(&mut QemuDriver, &mut Cx)) -> (Vec<Effect>, Vec<Outcome>) {
        let (mut effects, mut outcomes) = (Vec::new(), Vec::new());
        let vm = &mut self.vm;
        let mut cx = Cx::new(
            self.now,
            &vm.key,
            &vm.cfg,
            &mut effects,
            &mut outcomes,
            &mut self.jobs,
        );
        cx.vnic = self.vnic.as_ref();
        f(&mut vm.d, &mut cx);
        (effects, outcomes)
    }

    fn input(&mut self, i: Input) -> (Vec<Effect>, Vec<Outcome>) {
        self.call(|d, cx| d.input(cx, i))
    }

    fn usage(&mut self, now: Instant) -> Usage {
        self.vm.d.usage(&self.vm.cfg, now)
    }

    fn exit(
        &mut self,
        res: Res,
        code: i32,
        stdout: &[u8],
        stderr: &[u8],
    ) -> (Vec<Effect>, Vec<Outcome>) {
        self.input(Input::Exited {
            res,
            status: Some(ChildStatus::Exited(code)),
            timed_out: false,
            stdout: stdout.to_vec(),
            stderr: stderr.to_vec(),
            error: String::new(),
        })
    }

    /// A file operation of `res` succeeded.
    fn file_ok(&mut self, res: Res) -> (Vec<Effect>, Vec<Outcome>) {
        self.input(Input::File {
            res,
            result: Ok(Vec::new()),
        })
    }

    /// The stale pidfile is removed (qemu is spawned next).
    fn clear_pidfile(&mut self) -> (Vec<Effect>, Vec<Outcome>) {
        self.file_ok(Res::Pidfile)
    }

    /// Fires `timer` at the time it was last armed to among `effects`.
    fn fire(&mut self, effects: &[Effect], timer: Timer) -> (Vec<Effect>, Vec<Outcome>) {
        self.now = armed(effects, timer).expect("timer armed");
        self.input(Input::Timer(timer))
    }

    /// START up to the running tools: the config drive's files written.
    fn begin(&mut self) -> (Vec<Effect>, Vec<Outcome>) {
        let (mut e, mut o) = self.call(|d, cx| d.start(cx, false, b"", b""));
        for n in 0..2 {
            let (e2, o2) = self.file_ok(Res::ConfigFile(n));
            e.extend(e2);
            o.extend(o2);
        }
        (e, o)
    }

    /// START up to the end of `qemu-img create` (backing image in
    /// `format`); what that last step asked for.
    fn prepare(&mut self, format: &str) -> (Vec<Effect>, Vec<Outcome>) {
        let _ = self.begin();
        let info = format!(r#"{{"format": "{format}"}}"#);
        let _ = self.exit(Res::ImageInfo, 0, info.as_bytes(), b"");
        let _ = self.exit(Res::ConfigDrive, 0, b"", b"");
        self.exit(Res::ImageCreate, 0, b"", b"")
    }

    /// Everything up to an adopted qemu with QMP ready.
    fn run_to_active(&mut self) {
        let (e, o) = self.call(|d, cx| d.start(cx, false, b"#cloud-config\n", b""));
        assert!(o.is_empty());
        assert_eq!(
            spawned(&e),
            vec![(Res::ImageInfo, "qemu-img".to_string())],
            "xorriso waits for the config drive's files"
        );
        let staging = self.vm.dir.join("clr-cloud-init");
        let latest = staging.join("openstack/latest");
        assert_eq!(
            file_ops(&e),
            vec![
                (
                    Res::ConfigFile(0),
                    FileAction::Write {
                        path: latest.join("meta_data.json"),
                        bytes: default_meta_data(ID).into_bytes(),
                        mode: 0o644,
                        durable: false,
                    }
                ),
                (
                    Res::ConfigFile(1),
                    FileAction::Write {
                        path: latest.join("user_data"),
                        bytes: b"#cloud-config\n".to_vec(),
                        mode: 0o644,
                        durable: false,
                    }
                ),
            ],
            "default meta-data when the payload has none"
        );
        let (e, _) = self.file_ok(Res::ConfigFile(1));
        assert!(e.is_empty(), "one file written: {e:?}");
        let (e, _) = self.file_ok(Res::ConfigFile(0));
        assert_eq!(spawned(&e), vec![(Res::ConfigDrive, "xorriso".to_string())]);
        let (e, _) = self.exit(
            Res::ImageInfo,
            0,
            br#"{"format": "raw", "virtual-size": 1}"#,
            b"",
        );
        let argv = spawn_argv(&e, Res::ImageCreate).unwrap();
        assert!(
            argv.join(" ").contains("-F raw -b /data/images/img"),
            "{argv:?}"
        );
        let (e, _) = self.exit(Res::ConfigDrive, 0, b"", b"");
        assert_eq!(e.len(), 1, "nothing but the staging tree's removal: {e:?}");
        assert_eq!(
            file_ops(&e),
            vec![(Res::Staging, FileAction::RemoveTree { path: staging })],
            "staging removed after the ISO"
        );
        let (e, o) = self.file_ok(Res::Staging);
        assert!(e.is_empty() && o.is_empty());
        let (e, _) = self.exit(Res::ImageCreate, 0, b"", b"");
        assert!(spawned(&e).is_empty(), "{e:?}");
        assert_eq!(
            file_ops(&e),
            vec![(
                Res::Pidfile,
                FileAction::RemoveFile {
                    path: self.vm.dir.join("qemu.pid")
                }
            )],
            "a stale pidfile goes before the launch"
        );
        let (e, _) = self.clear_pidfile();
        let argv = spawn_argv(&e, Res::Launch).expect("qemu launched");
        assert_eq!(argv[0], "qemu-system-x86_64");
        assert!(!argv.iter().any(|a| a == "-enable-kvm"));
        // qemu daemonised: its pidfile and /proc entry.
        self.fake
            .pidfiles
            .borrow_mut()
            .insert(self.vm.dir.join("qemu.pid"), 4242);
        self.fake.pids.borrow_mut().insert(4242, argv.clone());
        let (e, o) = self.exit(Res::Launch, 0, b"", b"");
        assert_eq!(o, vec![Outcome::Launched]);
        assert!(e.iter().any(|x| matches!(
            x,
            Effect::Io(IoOp::Watch { key, pid: 4242 }) if key.what == Res::Process
        )));
        assert!(e.iter().any(|x| matches!(
            x,
            Effect::Io(IoOp::Connect { key, path, .. })
                if key.what == Res::Qmp && path.ends_with("socket")
        )));
        self.qmp_up();
    }

    fn qmp_up(&mut self) {
        let (e, _) = self.input(Input::Connected { res: Res::Qmp });
        assert!(writes(&e).is_empty());
        let (e, o) = self.input(Input::Data {
            res: Res::Qmp,
            bytes: b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}}, \"capabilities\": [\"oob\"]}}\r\n".to_vec(),
        });
        assert!(o.is_empty());
        assert_eq!(
            writes(&e),
            vec!["{\"execute\":\"qmp_capabilities\",\"id\":0}\n".to_string()]
        );
        let (_, o) = self.input(Input::Data {
            res: Res::Qmp,
            bytes: b"{\"return\": {}, \"id\": 0}\n".to_vec(),
        });
        assert_eq!(o, vec![Outcome::Running]);
    }

    /// START up to a qemu that daemonised (PID 4242, its pidfile and
    /// command line in place) but whose foreground exit is not yet told:
    /// its arguments.
    fn daemonised(&mut self) -> Vec<String> {
        let _ = self.prepare("raw");
        let (e, _) = self.clear_pidfile();
        let argv = spawn_argv(&e, Res::Launch).unwrap();
        self.fake
            .pidfiles
            .borrow_mut()
            .insert(self.vm.dir.join("qemu.pid"), 4242);
        self.fake.pids.borrow_mut().insert(4242, argv.clone());
        argv
    }

    /// What a launcher restart finds of a VM it had running: qemu's
    /// pidfile (PID 4242) and, at that PID, the command line the launcher
    /// gives qemu for this VM.
    fn our_qemu_running(&self) {
        let argv: Vec<String> = cmdline::qemu_argv(
            &self.vm.cfg,
            &Launch {
                dir: &self.vm.dir,
                accel: &Accel::Software,
                ovmf: None,
                ceph: crate::qemu::volumes::Ceph {
                    id: "",
                    conf: None,
                    timeout: Duration::from_secs(10),
                },
                console: crate::qemu::Console::File,
                vnic: None,
                vhost: false,
            },
        )
        .unwrap()
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
        self.fake
            .pidfiles
            .borrow_mut()
            .insert(self.vm.dir.join("qemu.pid"), 4242);
        self.fake.pids.borrow_mut().insert(4242, argv);
    }

    fn gone(&mut self) -> (Vec<Effect>, Vec<Outcome>) {
        self.fake.pids.borrow_mut().remove(&4242);
        self.input(Input::Gone {
            res: Res::Process,
            error: String::new(),
        })
    }
}

fn new_vm(shared: &Rc<RefCell<Shared>>, id: &str) -> Vm {
    let dir = PathBuf::from(format!("/data/instances/{id}"));
    Vm {
        key: InstanceKey {
            id: id.into(),
            generation: 7,
        },
        cfg: InstanceConfig {
            instance_uuid: id.into(),
            image_uuid: "img".into(),
            fw_type: FwType::Legacy,
            cpus: 2,
            mem_mb: 128,
            ..InstanceConfig::default()
        },
        d: QemuDriver::new(shared.clone(), dir.clone()),
        dir,
    }
}

fn spawned(e: &[Effect]) -> Vec<(Res, String)> {
    e.iter()
        .filter_map(|x| match x {
            Effect::Io(IoOp::Spawn { key, argv, .. }) => {
                Some((key.what, argv[0].to_string_lossy().into_owned()))
            }
            _ => None,
        })
        .collect()
}

/// The files a spawn of `res` passes to its child.
fn spawn_files(e: &[Effect], res: Res) -> Option<Vec<PathBuf>> {
    e.iter().find_map(|x| match x {
        Effect::Io(IoOp::Spawn { key, open, .. }) if key.what == res => Some(open.clone()),
        _ => None,
    })
}

fn spawn_argv(e: &[Effect], res: Res) -> Option<Vec<String>> {
    e.iter().find_map(|x| match x {
        Effect::Io(IoOp::Spawn { key, argv, .. }) if key.what == res => Some(
            argv.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
        ),
        _ => None,
    })
}

fn file_ops(e: &[Effect]) -> Vec<(Res, FileAction)> {
    e.iter()
        .filter_map(|x| match x {
            Effect::File(FileOp { key, action }) => Some((key.what, action.clone())),
            _ => None,
        })
        .collect()
}

fn writes(e: &[Effect]) -> Vec<String> {
    e.iter()
        .filter_map(|x| match x {
            Effect::Io(IoOp::Write { bytes, .. }) => {
                Some(String::from_utf8_lossy(bytes).into_owned())
            }
            _ => None,
        })
        .collect()
}

/// When `timer` fires after `e` (`None`: not armed, or cancelled last).
fn armed(e: &[Effect], timer: Timer) -> Option<Instant> {
    e.iter()
        .rev()
        .find_map(|x| match x {
            Effect::Timer(TimerOp::Arm { key, at }) if key.what == timer => Some(Some(*at)),
            Effect::Timer(TimerOp::Cancel { key }) if key.what == timer => Some(None),
            _ => None,
        })
        .flatten()
}

fn cancelled(e: &[Effect], timer: Timer) -> bool {
    e.iter()
        .any(|x| matches!(x, Effect::Timer(TimerOp::Cancel { key }) if key.what == timer))
}

fn signals(e: &[Effect]) -> Vec<(Res, Signal)> {
    e.iter()
        .filter_map(|x| match x {
            Effect::Io(IoOp::Signal { key, signal }) => Some((key.what, *signal)),
            _ => None,
        })
        .collect()
}

/// The reason and detail of the first outcome, which must be a failed
/// START.
fn start_failure(o: &[Outcome]) -> (StartFailureReason, &str) {
    match o.first() {
        Some(Outcome::StartFailed { reason, detail }) => (*reason, detail),
        other => panic!("expected a failed START, got {other:?}"),
    }
}

/// The notices of node-wide jobs, with what each says.
fn job_notices(jobs: &mut Jobs) -> Vec<(String, bool)> {
    jobs.take_notices()
        .into_iter()
        .map(|(k, i): Routed| match i {
            Input::Job {
                job: Job::CpuModel,
                lead,
            } => (k.id.to_string(), lead),
            other => panic!("not a CPU-model notice: {other:?}"),
        })
        .collect()
}

#[test]
fn start_then_graceful_stop_by_acpi() {
    let mut t = T::new(Virtualisation::Software);
    t.run_to_active();
    // Usage: PSS, overlay size, CPU -1 first then per vCPU.
    let u = t.usage(t.now);
    assert_eq!((u.memory_mb, u.disk_mb, u.cpu_percent), (70, 3, -1));
    *t.fake.ticks.borrow_mut() = 100; // 1 s of CPU over 2 s, 2 vCPUs
    let u = t.usage(t.now + Duration::from_secs(2));
    assert_eq!(u.cpu_percent, 25);

    let (e, o) = t.call(|d, cx| d.stop(cx, false));
    assert!(o.is_empty());
    assert!(writes(&e)[0].contains("system_powerdown"));
    assert_eq!(
        armed(&e, Timer::VmStop),
        Some(t.now + Duration::from_secs(30))
    );
    let (g, o) = t.gone();
    assert_eq!(o, vec![Outcome::Exited]);
    assert!(cancelled(&g, Timer::VmStop), "the stop timer is cancelled");
    assert!(t.usage(t.now).memory_mb == -1);
    // A stop timer that fires anyway is ignored.
    let (e, o) = t.fire(&e, Timer::VmStop);
    assert!(e.is_empty() && o.is_empty());

    // RESTART: same files, no tools.
    t.fake.files.borrow_mut().insert(t.vm.dir.join("seed.iso"));
    t.fake
        .files
        .borrow_mut()
        .insert(t.vm.dir.join("image.qcow2"));
    let (e, o) = t.call(|d, cx| d.start(cx, true, b"", b""));
    assert!(o.is_empty());
    assert!(spawned(&e).is_empty());
    assert_eq!(
        file_ops(&e),
        vec![(
            Res::Pidfile,
            FileAction::RemoveFile {
                path: t.vm.dir.join("qemu.pid")
            }
        )]
    );
    let (e, _) = t.clear_pidfile();
    assert_eq!(
        spawned(&e),
        vec![(Res::Launch, "qemu-system-x86_64".to_string())]
    );
}

#[test]
fn stop_escalates_quit_then_kill() {
    let mut t = T::new(Virtualisation::Software);
    t.run_to_active();
    let (e, _) = t.call(|d, cx| d.stop(cx, false));
    let _ = t.input(Input::Data {
        res: Res::Qmp,
        bytes: b"{\"return\": {}, \"id\": 1}\n".to_vec(),
    });
    let (e, o) = t.fire(&e, Timer::VmStop);
    assert!(o.is_empty());
    assert!(writes(&e)[0].contains("\"quit\""));
    // quit's reply times out (10 s) before the stop step timer: kill.
    let (e2, _) = t.fire(&e, Timer::VmQmp);
    assert_eq!(signals(&e2), vec![(Res::Process, Signal::Kill)]);
    let (_, o) = t.gone();
    assert_eq!(o, vec![Outcome::Exited]);
}

#[test]
fn urgent_stop_escalates_a_graceful_one() {
    let mut t = T::new(Virtualisation::Software);
    t.run_to_active();
    let _ = t.call(|d, cx| d.stop(cx, false));
    let (e, _) = t.call(|d, cx| d.stop(cx, true));
    assert!(writes(&e)[0].contains("\"quit\""));
    // qemu answers quit then goes away: Exited, then Destroyed.
    let (_, o) = t.input(Input::Data {
        res: Res::Qmp,
        bytes: b"{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": false}}\n{\"return\": {}, \"id\": 2}\n".to_vec(),
    });
    assert!(o.is_empty());
    let (_, o) = t.input(Input::Closed { res: Res::Qmp });
    assert!(o.is_empty());
    let (_, o) = t.gone();
    assert_eq!(o, vec![Outcome::Exited]);
    let (e, o) = t.call(|d, cx| d.destroy(cx));
    assert_eq!(o, vec![Outcome::Destroyed]);
    assert!(e
        .iter()
        .any(|x| matches!(x, Effect::Io(IoOp::Unwatch { .. }))));
}

#[test]
fn stop_without_qmp_uses_signals() {
    let mut t = T::new(Virtualisation::Software);
    t.run_to_active();
    let (_, o) = t.input(Input::Closed { res: Res::Qmp });
    assert!(o.is_empty());
    let (e, _) = t.call(|d, cx| d.stop(cx, false));
    assert_eq!(signals(&e), vec![(Res::Process, Signal::Term)]);
    let (e, _) = t.fire(&e, Timer::VmStop);
    assert_eq!(signals(&e), vec![(Res::Process, Signal::Kill)]);
    let (_, o) = t.fire(&e, Timer::VmStop);
    assert_eq!(
        o,
        vec![Outcome::Exited],
        "given up after SIGKILL's deadline"
    );
}

#[test]
fn unexpected_exit_and_qmp_reconnect() {
    let mut t = T::new(Virtualisation::Software);
    t.run_to_active();
    let (e, o) = t.input(Input::Closed { res: Res::Qmp });
    assert!(o.is_empty());
    let (e, _) = t.fire(&e, Timer::VmReconnect);
    assert!(e
        .iter()
        .any(|x| matches!(x, Effect::Io(IoOp::Connect { .. }))));
    let (_, o) = t.gone();
    assert_eq!(o, vec![Outcome::Exited]);
}

#[test]
fn missing_backing_image() {
    let mut t = T::new(Virtualisation::Software);
    t.vm.cfg.image_uuid = "nope".into();
    let (e, o) = t.call(|d, cx| d.start(cx, false, b"", b""));
    assert!(spawned(&e).is_empty());
    assert!(file_ops(&e).is_empty());
    let (reason, detail) = start_failure(&o);
    assert_eq!(reason, StartFailureReason::ImageFailure);
    assert!(detail.contains("/data/images/nope"), "{detail}");
}

#[test]
fn tool_failures() {
    let mut t = T::new(Virtualisation::Software);
    let _ = t.begin();
    let (e, o) = t.exit(Res::ConfigDrive, 1, b"", b"xorriso : FAILURE : no space");
    let (reason, detail) = start_failure(&o);
    assert_eq!(reason, StartFailureReason::ImageFailure);
    assert!(detail.contains("no space"), "{detail}");
    assert!(
        signals(&e).contains(&(Res::ImageInfo, Signal::Kill)),
        "the other tool is stopped"
    );
    assert!(
        file_ops(&e)
            .iter()
            .any(|(res, a)| *res == Res::Staging && matches!(a, FileAction::RemoveTree { .. })),
        "the staging tree goes even on failure"
    );

    let mut t = T::new(Virtualisation::Software);
    let _ = t.begin();
    let (_, o) = t.exit(Res::ImageInfo, 0, b"not json", b"");
    assert_eq!(start_failure(&o).0, StartFailureReason::ImageFailure);
}

#[test]
fn config_drive_file_failure() {
    let mut t = T::new(Virtualisation::Software);
    let _ = t.call(|d, cx| d.start(cx, false, b"", b""));
    let (e, o) = t.input(Input::File {
        res: Res::ConfigFile(0),
        result: Err(FileError {
            kind: io::ErrorKind::StorageFull,
            detail: "meta_data.json: No space left on device".into(),
        }),
    });
    let (reason, detail) = start_failure(&o);
    assert_eq!(reason, StartFailureReason::ImageFailure);
    assert!(detail.contains("No space left"), "{detail}");
    assert!(signals(&e).contains(&(Res::ImageInfo, Signal::Kill)));
    // The other file's answer comes late: no xorriso.
    let (e, o) = t.file_ok(Res::ConfigFile(1));
    assert!(e.is_empty() && o.is_empty(), "{e:?} {o:?}");
}

#[test]
fn launch_failure_carries_qemu_message() {
    let mut t = T::new(Virtualisation::Software);
    let _ = t.prepare("qcow2");
    let (e, _) = t.clear_pidfile();
    assert!(spawn_argv(&e, Res::Launch).is_some());
    let (_, o) = t.exit(
        Res::Launch,
        1,
        b"",
        b"qemu-system-x86_64: Invalid SMP CPUs 1000\n",
    );
    let (reason, detail) = start_failure(&o);
    assert_eq!(reason, StartFailureReason::LaunchFailure);
    assert!(detail.contains("Invalid SMP CPUs 1000"), "{detail}");
}

/// START with `vnic` in the START call's `Cx` only (the manager may give
/// it nowhere else): the launch's network arguments and passed files.
fn launched_with(t: &mut T, vnic: Option<Vnic>) -> (String, Vec<PathBuf>) {
    t.vnic = vnic;
    let _ = t.begin();
    t.vnic = None;
    let _ = t.exit(Res::ImageInfo, 0, br#"{"format": "raw"}"#, b"");
    let _ = t.exit(Res::ConfigDrive, 0, b"", b"");
    let _ = t.exit(Res::ImageCreate, 0, b"", b"");
    let (e, _) = t.clear_pidfile();
    let argv = spawn_argv(&e, Res::Launch).expect("qemu launched");
    let net = argv
        .windows(2)
        .filter(|w| w[0] == "-netdev" || w[0] == "-device" || w[0] == "-net")
        .map(|w| w.join(" "))
        .collect::<Vec<_>>()
        .join(" ");
    (net, spawn_files(&e, Res::Launch).unwrap())
}

const MAC: crate::net::link::Mac = [0x52, 0x54, 0x00, 0xAA, 0x0b, 0x01];

#[test]
fn launch_attaches_the_vnic() {
    // -network=false: the original's user-mode NIC, nothing passed.
    let mut t = T::new(Virtualisation::Software);
    assert_eq!(
        launched_with(&mut t, None),
        ("-net nic,model=virtio -net user".to_string(), vec![])
    );

    // A tap, opened by qemu by name; vhost only where /dev/vhost-net opens.
    let tap = Vnic::Tap {
        name: "svn_a1".into(),
        mac: MAC,
    };
    for (vhost, on) in [(false, "off"), (true, "on")] {
        let mut t = T::new(Virtualisation::Software);
        *t.fake.vhost_net.borrow_mut() = vhost;
        let (net, files) = launched_with(&mut t, Some(tap.clone()));
        assert_eq!(
            net,
            format!(
                "-netdev type=tap,ifname=svn_a1,script=no,downscript=no,id=svn_a1,vhost={on} \
                 -device driver=virtio-net-pci,netdev=svn_a1,mac=52:54:00:aa:0b:01"
            )
        );
        assert!(files.is_empty());
    }

    // A macvtap: its device once per queue, at 3, 4, 5, 6.
    let mut t = T::new(Virtualisation::Software);
    *t.fake.vhost_net.borrow_mut() = true;
    let dev = PathBuf::from("/data/instances/x/macvtap");
    let mv = Vnic::Macvtap {
        name: "svc_a1".into(),
        mac: MAC,
        device: dev.clone(),
        queues: 4,
    };
    let (net, files) = launched_with(&mut t, Some(mv.clone()));
    assert_eq!(
        net,
        "-netdev type=tap,fds=3:4:5:6,id=svc_a1,vhost=on \
         -device virtio-net-pci,netdev=svc_a1,mq=on,vectors=10,mac=52:54:00:aa:0b:01"
    );
    assert_eq!(files, vec![dev.clone(); 4]);

    // RESTART gets the same attachment again.
    t.fake.files.borrow_mut().extend([
        t.vm.dir.join(cmdline::SEED_ISO),
        t.vm.dir.join(cmdline::OVERLAY),
    ]);
    t.vnic = Some(mv);
    let (e, o) = t.call(|d, cx| d.start(cx, true, b"", b""));
    assert!(o.is_empty(), "{o:?}");
    assert!(!file_ops(&e).is_empty(), "the pidfile is cleared: {e:?}");
    t.vnic = None;
    let (e, _) = t.clear_pidfile();
    assert_eq!(spawn_files(&e, Res::Launch).unwrap(), vec![dev; 4]);
    let argv = spawn_argv(&e, Res::Launch).unwrap();
    assert!(argv
        .iter()
        .any(|a| a == "type=tap,fds=3:4:5:6,id=svc_a1,vhost=on"));
}

#[test]
fn efi_without_firmware() {
    let mut t = T::new(Virtualisation::Software);
    t.shared.borrow_mut().settings.ovmf = None;
    t.vm.cfg.fw_type = FwType::Efi;
    let (_, o) = t.prepare("raw");
    let (reason, detail) = start_failure(&o);
    assert_eq!(reason, StartFailureReason::LaunchFailure);
    assert!(detail.contains("OVMF"), "{detail}");
}

/// A KVM node with two VMs at the CPU model: this one leads the probe,
/// the other one (returned) waits for it, without a probe of its own or a
/// polling timer.
fn probing_with_a_waiter(t: &mut T) -> Vm {
    let (e, _) = t.prepare("raw");
    let probe = spawn_argv(&e, Res::CpuProbe).expect("probe");
    assert!(probe.join(" ").contains("-enable-kvm -cpu host"));
    assert!(file_ops(&e).is_empty(), "no launch before the probe ends");
    let mut other = t.other_vm(OTHER);
    let (e2, o2) = t.with(&mut other, |t| t.prepare("raw"));
    assert!(e2.is_empty() && o2.is_empty(), "{e2:?} {o2:?}");
    assert!(job_notices(&mut t.jobs).is_empty());
    other
}

/// The CPU probe ended, killed by `signal`: at its deadline (the model
/// works) or on its own.
fn probe_ended(signal: i32, at_deadline: bool, stderr: &[u8]) -> Input {
    Input::Exited {
        res: Res::CpuProbe,
        status: Some(ChildStatus::Signaled(signal)),
        timed_out: at_deadline,
        stdout: vec![],
        stderr: stderr.to_vec(),
        error: String::new(),
    }
}

fn cpu_model_notice(lead: bool) -> Input {
    Input::Job {
        job: Job::CpuModel,
        lead,
    }
}

#[test]
fn kvm_probe_once_then_shared() {
    let mut t = T::new(Virtualisation::Kvm);
    let mut other = probing_with_a_waiter(&mut t);
    // The probe aborts: default CPU model.
    let (e, _) = t.input(probe_ended(
        6,
        false,
        b"kvm_buf_set_msrs: Assertion failed (failed to set MSR 0x10a)",
    ));
    assert!(spawned(&e).is_empty(), "the pidfile goes first");
    let (e, _) = t.clear_pidfile();
    let argv = spawn_argv(&e, Res::Launch).unwrap().join(" ");
    assert!(argv.contains("-enable-kvm -daemonize"), "{argv}");
    // The waiting instance is told at once and launches with the same model.
    assert_eq!(job_notices(&mut t.jobs), vec![(OTHER.to_string(), false)]);
    let (e3, _) = t.with(&mut other, |t| {
        let (e, _) = t.input(cpu_model_notice(false));
        assert!(spawned(&e).is_empty(), "no second probe: {e:?}");
        t.clear_pidfile()
    });
    let argv = spawn_argv(&e3, Res::Launch).unwrap().join(" ");
    assert!(argv.contains("-enable-kvm -daemonize"), "{argv}");
    assert!(argv.contains(OTHER), "{argv}");
}

#[test]
fn cpu_probe_passes_to_a_waiter_when_its_leader_goes() {
    let mut t = T::new(Virtualisation::Kvm);
    let mut other = probing_with_a_waiter(&mut t);
    // The leader's instance is gone (the manager forgot it).
    let leader = t.vm.key.clone();
    t.jobs.leave(&leader);
    assert_eq!(job_notices(&mut t.jobs), vec![(OTHER.to_string(), true)]);
    let e3 = t.with(&mut other, |t| {
        let (e, _) = t.input(cpu_model_notice(true));
        let probe = spawn_argv(&e, Res::CpuProbe).expect("the waiter probes");
        assert!(probe.join(" ").contains("-enable-kvm -cpu host"));
        // Still running at its deadline: -cpu host works.
        let _ = t.input(probe_ended(libc::SIGKILL, true, b""));
        t.clear_pidfile().0
    });
    let argv = spawn_argv(&e3, Res::Launch).unwrap().join(" ");
    assert!(argv.contains("-enable-kvm -cpu host"), "{argv}");
    assert!(job_notices(&mut t.jobs).is_empty(), "nobody else waits");
}

#[test]
fn deleting_the_prober_hands_the_probe_on() {
    let mut t = T::new(Virtualisation::Kvm);
    let mut other = probing_with_a_waiter(&mut t);
    // DELETE of the leader during its probe: the probe is killed and
    // decides nothing; the waiter is told and probes itself.
    let (_, o) = t.call(|d, cx| d.stop(cx, true));
    assert_eq!(o, vec![Outcome::Exited]);
    let (e, o) = t.call(|d, cx| d.destroy(cx));
    assert_eq!(o, vec![Outcome::Destroyed]);
    assert!(signals(&e).contains(&(Res::CpuProbe, Signal::Kill)));
    let (e, o) = t.input(probe_ended(libc::SIGKILL, false, b""));
    assert!(e.is_empty() && o.is_empty(), "{e:?} {o:?}");
    assert_eq!(job_notices(&mut t.jobs), vec![(OTHER.to_string(), false)]);
    let (e, _) = t.with(&mut other, |t| t.input(cpu_model_notice(false)));
    let probe = spawn_argv(&e, Res::CpuProbe).expect("the waiter probes");
    assert!(probe.join(" ").contains("-enable-kvm -cpu host"));
}

#[test]
fn a_stopped_waiter_told_to_lead_still_probes() {
    let mut t = T::new(Virtualisation::Kvm);
    let mut other = probing_with_a_waiter(&mut t);
    let (_, o) = t.with(&mut other, |t| t.call(|d, cx| d.stop(cx, false)));
    assert_eq!(o, vec![Outcome::Exited]);
    // Other instances may wait behind it: it probes for them and launches
    // nothing.
    let leader = t.vm.key.clone();
    t.jobs.leave(&leader);
    assert_eq!(job_notices(&mut t.jobs), vec![(OTHER.to_string(), true)]);
    let (e, o) = t.with(&mut other, |t| t.input(cpu_model_notice(true)));
    assert!(spawn_argv(&e, Res::CpuProbe).is_some(), "{e:?}");
    assert!(o.is_empty());
    let (e, o) = t.with(&mut other, |t| {
        t.input(probe_ended(libc::SIGKILL, true, b""))
    });
    assert!(e.is_empty() && o.is_empty(), "{e:?} {o:?}");
}

#[test]
fn recovery() {
    let mut t = T::new(Virtualisation::Software);
    t.our_qemu_running();
    let (e, o) = t.call(|d, cx| d.recover(cx, false));
    assert!(o.is_empty());
    assert!(e
        .iter()
        .any(|x| matches!(x, Effect::Io(IoOp::Watch { pid: 4242, .. }))));
    // Running once its volumes are checked against the record (none).
    t.qmp_up_repaired(&[], &[]);

    // PID reused by another program.
    let mut t = T::new(Virtualisation::Software);
    t.fake
        .pidfiles
        .borrow_mut()
        .insert(t.vm.dir.join("qemu.pid"), 4242);
    t.fake
        .pids
        .borrow_mut()
        .insert(4242, vec!["/bin/sleep".into(), "99".into()]);
    let (e, o) = t.call(|d, cx| d.recover(cx, false));
    assert_eq!(o, vec![Outcome::Exited]);
    assert!(e.is_empty());

    // No pidfile.
    let mut t = T::new(Virtualisation::Software);
    let (_, o) = t.call(|d, cx| d.recover(cx, true));
    assert_eq!(o, vec![Outcome::Exited]);
}

mod attach;

#[test]
fn qmp_never_answers_at_start() {
    let mut t = T::new(Virtualisation::Software);
    let _ = t.daemonised();
    let _ = t.exit(Res::Launch, 0, b"", b"");
    let mut last = Vec::new();
    for _ in 0..=QMP_ATTEMPTS {
        let (e, o) = t.input(Input::ConnectFailed {
            res: Res::Qmp,
            error: "refused".into(),
        });
        if !o.is_empty() {
            assert_eq!(start_failure(&o).0, StartFailureReason::LaunchFailure);
            assert!(signals(&e).contains(&(Res::Process, Signal::Kill)));
            return;
        }
        last = e;
    }
    panic!("never gave up: {last:?}");
}

#[test]
fn boot_from_volume_makes_no_root_disk() {
    let mut t = T::new(Virtualisation::Software);
    {
        let mut sh = t.shared.borrow_mut();
        sh.settings.ceph_id = "ciao".into();
        sh.settings.ceph_conf = Some("/etc/c/ceph.conf".into());
        sh.settings.ceph_timeout = Duration::from_secs(4);
    }
    t.vm.cfg.image_uuid.clear();
    t.vm.cfg.volumes = vec![
        crate::payloads::VolumeConfig {
            uuid: "da7a".into(),
            bootable: false,
        },
        crate::payloads::VolumeConfig {
            uuid: "b007".into(),
            bootable: true,
        },
    ];
    let (e, o) = t.begin();
    assert!(o.is_empty(), "{o:?}");
    assert_eq!(
        spawned(&e),
        vec![(Res::ConfigDrive, "xorriso".to_string())],
        "no qemu-img without a backing image"
    );
    let (e, _) = t.exit(Res::ConfigDrive, 0, b"", b"");
    assert!(spawned(&e).is_empty());
    let (e, _) = t.clear_pidfile();
    let argv = spawn_argv(&e, Res::Launch)
        .expect("qemu launched")
        .join(" ");
    assert!(!argv.contains("image.qcow2"), "{argv}");
    let rbd = |u: &str| {
        format!("rbd:rbd/{u}:id=ciao:conf=/etc/c/ceph.conf:client_mount_timeout=4:rados_mon_op_timeout=4")
    };
    let (a, b) = (
        argv.find(&rbd("da7a")).expect("first volume"),
        argv.find(&rbd("b007")).expect("second volume"),
    );
    assert!(a < b, "list order: {argv}");
    assert!(argv.contains("id=device_b007,drive="), "{argv}");
    assert!(argv.contains(",bootindex=0 "), "{argv}");
    assert_eq!(argv.matches("bootindex").count(), 1);
}

#[test]
fn tcp_console_port_is_asked_for() {
    let mut t = T::new(Virtualisation::Software);
    t.shared.borrow_mut().settings.console = crate::qemu::Console::Tcp;
    let argv = t.daemonised();
    assert!(argv
        .join(" ")
        .contains("-chardev socket,id=console0,host=127.0.0.1,port=0"));
    let _ = t.exit(Res::Launch, 0, b"", b"");
    let _ = t.input(Input::Connected { res: Res::Qmp });
    let _ = t.input(Input::Data {
        res: Res::Qmp,
        bytes:
            b"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}}}}\n"
                .to_vec(),
    });
    let (e, o) = t.input(Input::Data {
        res: Res::Qmp,
        bytes: b"{\"return\": {}, \"id\": 0}\n".to_vec(),
    });
    assert_eq!(o, vec![Outcome::Running]);
    assert_eq!(
        writes(&e),
        vec!["{\"execute\":\"query-chardev\",\"id\":1}\n".to_string()]
    );
    let (_, o) = t.input(Input::Data {
        res: Res::Qmp,
        bytes: b"{\"return\": [{\"filename\": \"disconnected:tcp:127.0.0.1:4567,server=on\", \"label\": \"console0\"}], \"id\": 1}\n".to_vec(),
    });
    assert!(o.is_empty());
    assert_eq!(t.vm.d.console_query, None);
}
