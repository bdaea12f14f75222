//! Argument vectors of every program the qemu driver runs (pure):
//! `qemu-img info` / `create`, `xorriso`, the CPU probe and the VM itself
//! (each step is described in `docs/qemu.md`).
//! Nothing here passes through a shell; paths come from validated ids.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::settings::Console;
use super::volumes::{self, Ceph};
use crate::driver::{Vnic, FIRST_PASSED_FD};
use crate::net::link::Mac;
use crate::payloads::InstanceConfig;

/// The VM's emulator, looked up in `PATH`.
pub(crate) const QEMU: &str = "qemu-system-x86_64";
/// The image tool, looked up in `PATH`.
pub(crate) const QEMU_IMG: &str = "qemu-img";
/// The ISO maker, looked up in `PATH`.
pub(crate) const XORRISO: &str = "xorriso";

/// Files of an instance directory `<D>` that the driver owns.
pub(crate) const OVERLAY: &str = "image.qcow2";
pub(crate) const SEED_ISO: &str = "seed.iso";
pub(crate) const QMP_SOCKET: &str = "socket";
pub(crate) const PIDFILE: &str = "qemu.pid";
pub(crate) const CONSOLE_LOG: &str = "console.log";
/// Staging directory of the config drive, removed right after the ISO.
pub(crate) const STAGING: &str = "clr-cloud-init";

/// How the VM is accelerated, as decided for this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Accel {
    /// TCG: no accelerator or CPU arguments (qemu's defaults).
    Software,
    /// KVM with a CPU model: `Some("host")`, or `None` for qemu's default
    /// model (where `-cpu host` fails: some hosts abort on an MSR it sets).
    Kvm { cpu: Option<String> },
}

impl Accel {
    fn args(&self) -> Vec<OsString> {
        match self {
            Accel::Software => Vec::new(),
            Accel::Kvm { cpu: None } => vec!["-enable-kvm".into()],
            Accel::Kvm { cpu: Some(c) } => vec!["-enable-kvm".into(), "-cpu".into(), c.into()],
        }
    }

    /// For log lines.
    pub(crate) fn describe(&self) -> String {
        match self {
            Accel::Software => "software emulation (TCG), default CPU model".into(),
            Accel::Kvm { cpu: None } => "KVM, qemu's default CPU model".into(),
            Accel::Kvm { cpu: Some(c) } => format!("KVM, -cpu {c}"),
        }
    }
}

/// Everything [`qemu_argv`] needs besides the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Launch<'a> {
    /// The instance directory (absolute).
    pub dir: &'a Path,
    pub accel: &'a Accel,
    /// EFI firmware, used unless the instance is legacy-BIOS.
    pub ovmf: Option<&'a Path>,
    /// How the volumes' drives reach the ceph cluster.
    pub ceph: Ceph<'a>,
    /// Where the serial console goes besides `console.log`.
    pub console: Console,
    /// The network attachment the launcher made (`None`: user-mode NIC).
    pub vnic: Option<&'a Vnic>,
    /// `/dev/vhost-net` is usable: the NIC's data path runs in the kernel.
    pub vhost: bool,
}

/// A path inside `<D>`.
pub(crate) fn in_dir(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

/// qemu's option syntax doubles commas inside a value.
pub(crate) fn opt_escape(p: &(impl AsRef<OsStr> + ?Sized)) -> OsString {
    let mut v = Vec::new();
    for &b in p.as_ref().as_bytes() {
        v.push(b);
        if b == b',' {
            v.push(b',');
        }
    }
    OsString::from_vec(v)
}

fn cat(parts: &[&OsStr]) -> OsString {
    let mut s = OsString::new();
    for p in parts {
        s.push(p);
    }
    s
}

/// `aa:bb:cc:dd:ee:ff`, as qemu's `mac=` takes it.
fn mac_text(m: &Mac) -> String {
    let [a, b, c, d, e, f] = m;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// How many queues (descriptors) a macvtap gets: at least one.
fn queue_count(queues: u8) -> u32 {
    u32::from(queues.max(1))
}

/// qemu's network arguments for a VM (see `docs/qemu.md`): with a tap,
/// a virtio-net NIC on the persistent tap opened by name; with a macvtap,
/// a multi-queue virtio-net NIC on the descriptors of [`passed_files`],
/// which qemu finds at 3, 4, …; without either (`-network=false`), the
/// original's user-mode NIC. `vhost`: `/dev/vhost-net` is usable, so
/// the data path runs in the kernel (qemu refuses to start with `vhost=on`
/// where it is not). Public for the real-qemu tests.
pub fn network_args(vnic: Option<&Vnic>, vhost: bool) -> Vec<OsString> {
    let vhost = if vhost { "on" } else { "off" };
    let (netdev, device) = match vnic {
        // A veth pair is a container's; a VM never gets one.
        None | Some(Vnic::Veth { .. }) => {
            return ["-net", "nic,model=virtio", "-net", "user"]
                .map(OsString::from)
                .to_vec()
        }
        Some(Vnic::Tap { name, mac }) => (
            format!("type=tap,ifname={name},script=no,downscript=no,id={name},vhost={vhost}"),
            format!("driver=virtio-net-pci,netdev={name},mac={}", mac_text(mac)),
        ),
        Some(Vnic::Macvtap {
            name, mac, queues, ..
        }) => {
            let n = queue_count(*queues);
            let fds: Vec<String> = (FIRST_PASSED_FD..)
                .take(n as usize)
                .map(|fd| fd.to_string())
                .collect();
            (
                format!("type=tap,fds={},id={name},vhost={vhost}", fds.join(":")),
                // virtio-net needs one MSI-X vector per queue each way, one
                // for configuration changes and one for the control queue.
                format!(
                    "virtio-net-pci,netdev={name},mq=on,vectors={},mac={}",
                    2 * n + 2,
                    mac_text(mac)
                ),
            )
        }
    };
    vec![
        "-netdev".into(),
        netdev.into(),
        "-device".into(),
        device.into(),
    ]
}

/// The attachment, for log lines.
pub(crate) fn describe_vnic(v: &Vnic) -> String {
    match v {
        Vnic::Tap { name, mac } => format!("tap {name}, MAC {}", mac_text(mac)),
        Vnic::Macvtap {
            name,
            mac,
            device,
            queues,
        } => format!(
            "macvtap {name} ({}, {} queues), MAC {}",
            device.display(),
            queue_count(*queues),
            mac_text(mac)
        ),
        Vnic::Veth {
            host, peer, mac, ..
        } => {
            format!("veth {host}/{peer}, MAC {}", mac_text(mac))
        }
    }
}

/// The files the VM's qemu gets as descriptors 3, 4, … (opened read-write
/// by the shell): a macvtap's character device once per queue.
pub(crate) fn passed_files(vnic: Option<&Vnic>) -> Vec<PathBuf> {
    match vnic {
        Some(Vnic::Macvtap { device, queues, .. }) => {
            vec![device.clone(); queue_count(*queues) as usize]
        }
        _ => Vec::new(),
    }
}

/// The original's qemu command line with our additions
/// (`-pidfile`, serial console log, probed CPU), the instance's NIC
/// ([`network_args`]) and its volumes (`volumes`). The EFI firmware is
/// `-bios <ovmf>`; `None` for an EFI instance is the caller's error to
/// report. Err: the volumes do not fit.
pub(crate) fn qemu_argv(cfg: &InstanceConfig, l: &Launch) -> Result<Vec<OsString>, String> {
    let d = l.dir;
    let mut a: Vec<OsString> = vec![QEMU.into()];
    let has_image = !cfg.image_uuid.is_empty();
    if has_image {
        a.push("-drive".into());
        a.push(cat(&[
            OsStr::new("file="),
            &opt_escape(&in_dir(d, OVERLAY)),
            OsStr::new(",if=virtio,aio=threads,format=qcow2"),
        ]));
    }
    a.extend(volumes::all_volume_args(&cfg.volumes, &l.ceph, !has_image)?);
    a.push("-drive".into());
    a.push(cat(&[
        OsStr::new("file="),
        &opt_escape(&in_dir(d, SEED_ISO)),
        OsStr::new(",if=virtio,media=cdrom"),
    ]));
    a.extend(network_args(l.vnic, l.vhost));
    a.extend(l.accel.args());
    a.push("-daemonize".into());
    a.push("-pidfile".into());
    a.push(in_dir(d, PIDFILE).into());
    a.push("-qmp".into());
    a.push(cat(&[
        OsStr::new("unix:"),
        &opt_escape(&in_dir(d, QMP_SOCKET)),
        OsStr::new(",server=on,wait=off"),
    ]));
    if cfg.mem_mb > 0 {
        a.push("-m".into());
        a.push(cfg.mem_mb.to_string().into());
    }
    if cfg.cpus > 0 {
        a.push("-smp".into());
        a.push(format!("cpus={}", cfg.cpus).into());
    }
    if !cfg.is_legacy() {
        if let Some(o) = l.ovmf {
            a.push("-bios".into());
            a.push(o.into());
        }
    }
    a.extend(["-display", "none", "-vga", "none"].map(OsString::from));
    // The serial console, appended to (a RESTART keeps the earlier boots).
    a.push("-chardev".into());
    a.push(match l.console {
        Console::File => cat(&[
            OsStr::new("file,id=console0,append=on,path="),
            &opt_escape(&in_dir(d, CONSOLE_LOG)),
        ]),
        // `-with-ui nc`: a TCP server on a port the kernel picks (asked
        // over QMP once the VM runs), the log file kept as well.
        Console::Tcp => cat(&[
            OsStr::new(CONSOLE_TCP),
            &opt_escape(&in_dir(d, CONSOLE_LOG)),
        ]),
    });
    a.extend(["-serial", "chardev:console0"].map(OsString::from));
    Ok(a)
}

/// The TCP console's chardev options, before the log file's path.
const CONSOLE_TCP: &str =
    "socket,id=console0,host=127.0.0.1,port=0,server=on,wait=off,logappend=on,logfile=";

/// The port of the serial console from `query-chardev`'s answer: the
/// `console0` chardev's `filename`, `disconnected:tcp:127.0.0.1:<port>,server=on`
/// (or `tcp:...` while a client is connected).
pub(crate) fn console_port(chardevs: &serde_yaml::Value) -> Option<u16> {
    let list = chardevs.as_sequence()?;
    let c = list
        .iter()
        .find(|c| c.get("label").and_then(serde_yaml::Value::as_str) == Some("console0"))?;
    let f = c.get("filename")?.as_str()?;
    let tcp = &f[f.find("tcp:")? + 4..];
    let addr = tcp.split(',').next()?;
    addr.rsplit(':').next()?.parse().ok()
}

/// True when `/proc/PID/cmdline` (split) is a qemu started for `dir`: it
/// names our pidfile and our QMP socket (guards against PID reuse before a
/// pidfile is trusted).
pub(crate) fn cmdline_matches(args: &[String], dir: &Path) -> bool {
    let pid = in_dir(dir, PIDFILE);
    let pid = pid.to_string_lossy();
    let sock = opt_escape(&in_dir(dir, QMP_SOCKET));
    let sock = sock.to_string_lossy();
    let has_pidfile = args.windows(2).any(|w| w[0] == "-pidfile" && w[1] == pid);
    let has_socket = args.windows(2).any(|w| {
        w[0] == "-qmp"
            && w[1]
                .strip_prefix("unix:")
                .is_some_and(|r| r.starts_with(sock.as_ref()))
    });
    has_pidfile && has_socket
}

/// `qemu-img info --output=json <backing>`.
pub(crate) fn image_info_argv(backing: &Path) -> Vec<OsString> {
    vec![
        QEMU_IMG.into(),
        "info".into(),
        "--output=json".into(),
        backing.into(),
    ]
}

/// `qemu-img create -f qcow2 -F <fmt> -b <backing> <D>/image.qcow2`: the
/// backing format is explicit (QEMU ≥ 6.1 refuses to guess; launcher
/// defect 22 in docs/compatibility.md) and given with `-F`/`-b` so no comma
/// in a path needs escaping; no size, so the overlay takes the backing
/// image's.
pub(crate) fn image_create_argv(backing: &Path, format: &str, dir: &Path) -> Vec<OsString> {
    vec![
        QEMU_IMG.into(),
        "create".into(),
        "-q".into(),
        "-f".into(),
        "qcow2".into(),
        "-F".into(),
        format.into(),
        "-b".into(),
        backing.into(),
        in_dir(dir, OVERLAY).into(),
    ]
}

/// `xorriso -as mkisofs -R -V config-2 -o <D>/seed.iso <D>/clr-cloud-init`.
pub(crate) fn iso_argv(dir: &Path) -> Vec<OsString> {
    vec![
        XORRISO.into(),
        "-as".into(),
        "mkisofs".into(),
        "-R".into(),
        "-V".into(),
        "config-2".into(),
        "-o".into(),
        in_dir(dir, SEED_ISO).into(),
        in_dir(dir, STAGING).into(),
    ]
}

/// A short-lived qemu that shows whether `-enable-kvm -cpu <cpu>` can run
/// a vCPU here: it is killed at its deadline if it is still running (the
/// model works); it exits at once with an error where the model aborts
/// (on some hosts `-cpu host` aborts on an MSR it cannot set).
pub(crate) fn cpu_probe_argv(cpu: &str) -> Vec<OsString> {
    [
        QEMU,
        "-enable-kvm",
        "-cpu",
        cpu,
        "-machine",
        "pc",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-vga",
        "none",
        "-m",
        "16",
        "-no-reboot",
    ]
    .iter()
    .map(OsString::from)
    .collect()
}

#[derive(Deserialize)]
struct ImageInfo {
    format: String,
}

/// The `format` of `qemu-img info --output=json`, checked to be a plain
/// driver name (it becomes an argument).
pub(crate) fn parse_image_format(json: &[u8]) -> Result<String, String> {
    let info: ImageInfo = crate::http::json::parse_json(json).map_err(|e| e.to_string())?;
    let ok = !info.format.is_empty()
        && info.format.len() <= 32
        && info
            .format
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(info.format)
    } else {
        Err(format!("unexpected image format {:?}", info.format))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payloads::{FwType, VolumeConfig};

    fn s(v: &[OsString]) -> Vec<String> {
        v.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    fn cfg() -> InstanceConfig {
        InstanceConfig {
            instance_uuid: "d7d86208-b46c-4465-9018-fe14087d415f".into(),
            image_uuid: "img".into(),
            cpus: 2,
            mem_mb: 370,
            fw_type: FwType::Legacy,
            ..InstanceConfig::default()
        }
    }

    #[test]
    fn legacy_software() {
        let d = Path::new("/v/instances/x");
        let a = qemu_argv(
            &cfg(),
            &Launch {
                dir: d,
                accel: &Accel::Software,
                ovmf: None,
                ceph: NO_CEPH,
                console: Console::File,
                vnic: None,
                vhost: true,
            },
        )
        .unwrap();
        assert_eq!(
            s(&a).join(" "),
            "qemu-system-x86_64 -drive file=/v/instances/x/image.qcow2,if=virtio,aio=threads,format=qcow2 \
             -drive file=/v/instances/x/seed.iso,if=virtio,media=cdrom -net nic,model=virtio -net user \
             -daemonize -pidfile /v/instances/x/qemu.pid -qmp unix:/v/instances/x/socket,server=on,wait=off \
             -m 370 -smp cpus=2 -display none -vga none \
             -chardev file,id=console0,append=on,path=/v/instances/x/console.log -serial chardev:console0"
        );
        assert!(cmdline_matches(&s(&a), d));
        assert!(!cmdline_matches(&s(&a), Path::new("/v/instances/y")));
        assert!(!cmdline_matches(&["/bin/sleep".into(), "100".into()], d));
    }

    #[test]
    fn efi_kvm_volumes_and_commas() {
        let d = Path::new("/data,1/instances/x");
        let mut c = cfg();
        c.fw_type = FwType::Efi;
        c.cpus = 0;
        c.mem_mb = 0;
        c.volumes = vec![VolumeConfig {
            uuid: "v1".into(),
            bootable: false,
        }];
        let accel = Accel::Kvm {
            cpu: Some("host".into()),
        };
        let a = s(&qemu_argv(
            &c,
            &Launch {
                dir: d,
                accel: &accel,
                ovmf: Some(Path::new("/usr/share/qemu/OVMF.fd")),
                ceph: Ceph {
                    id: "ciao",
                    conf: None,
                    timeout: std::time::Duration::from_secs(10),
                },
                console: Console::Tcp,
                vnic: None,
                vhost: false,
            },
        )
        .unwrap());
        let j = a.join(" ");
        assert!(
            j.contains("-drive file=/data,,1/instances/x/image.qcow2,if=virtio"),
            "{j}"
        );
        let n = volumes::node_name("v1");
        assert!(
            j.contains(&format!("image.qcow2,if=virtio,aio=threads,format=qcow2 \
                 -drive file=rbd:rbd/v1:id=ciao:client_mount_timeout=10:rados_mon_op_timeout=10,if=none,id={n},format=raw \
                 -device virtio-blk-pci,scsi=off,bus=pci.0,addr=0x8,id=device_v1,drive={n} \
                 -drive file=/data,,1/instances/x/seed.iso")),
            "{j}"
        );
        assert!(j.contains("-enable-kvm -cpu host -daemonize"));
        assert!(j.contains("-bios /usr/share/qemu/OVMF.fd -display none"));
        assert!(!j.contains("-m ") && !j.contains("-smp"));
        assert!(j.contains(
            "-chardev socket,id=console0,host=127.0.0.1,port=0,server=on,wait=off,logappend=on,\
             logfile=/data,,1/instances/x/console.log -serial chardev:console0"
        ));
        assert!(cmdline_matches(&a, d));
        let k = s(&Accel::Kvm { cpu: None }.args());
        assert_eq!(k, vec!["-enable-kvm"]);
    }

    const NO_CEPH: Ceph = Ceph {
        id: "",
        conf: None,
        timeout: std::time::Duration::from_secs(10),
    };

    #[test]
    fn boot_from_volume_has_no_root_disk() {
        let mut c = cfg();
        c.image_uuid.clear();
        c.volumes = vec![VolumeConfig {
            uuid: "b00t".into(),
            bootable: true,
        }];
        let l = Launch {
            dir: Path::new("/d"),
            accel: &Accel::Software,
            ovmf: None,
            ceph: NO_CEPH,
            console: Console::File,
            vnic: None,
            vhost: false,
        };
        let j = s(&qemu_argv(&c, &l).unwrap()).join(" ");
        assert!(!j.contains("image.qcow2"), "{j}");
        assert!(
            j.starts_with("qemu-system-x86_64 -drive file=rbd:rbd/b00t:"),
            "{j}"
        );
        assert!(
            j.contains("id=device_b00t,drive=")
                && j.contains(",bootindex=0 -drive file=/d/seed.iso")
        );
        c.volumes = vec![VolumeConfig::default(); 25];
        assert!(qemu_argv(&c, &l).unwrap_err().contains("at most 24"));
    }

    #[test]
    fn console_port_from_query_chardev() {
        let j = br#"{"return": [{"frontend-open": true, "filename": "disconnected:tcp:127.0.0.1:41927,server=on", "label": "console0"}, {"frontend-open": true, "filename": "unix:/x/socket,server=on", "label": "compat_monitor0"}]}"#;
        let v: serde_yaml::Value = crate::http::json::parse_json(j).unwrap();
        let r = v.get("return").unwrap();
        assert_eq!(console_port(r), Some(41927));
        let j = br#"[{"filename": "tcp:127.0.0.1:5901,server=on <-> 127.0.0.1:40000", "label": "console0"}]"#;
        let v: serde_yaml::Value = crate::http::json::parse_json(j).unwrap();
        assert_eq!(console_port(&v), Some(5901));
        let j = br#"[{"filename": "file:/x", "label": "console0"}]"#;
        let v: serde_yaml::Value = crate::http::json::parse_json(j).unwrap();
        assert_eq!(console_port(&v), None);
    }

    const MAC: Mac = [0x02, 0x00, 0xAB, 0x0c, 0x7f, 0xe0];

    #[test]
    fn tap_nic_between_the_drives_and_kvm() {
        let tap = Vnic::Tap {
            name: "svn_x".into(),
            mac: MAC,
        };
        let accel = Accel::Kvm { cpu: None };
        for (vhost, on) in [(true, "on"), (false, "off")] {
            let a = s(&qemu_argv(
                &cfg(),
                &Launch {
                    dir: Path::new("/d"),
                    accel: &accel,
                    ovmf: None,
                    ceph: NO_CEPH,
                    console: Console::File,
                    vnic: Some(&tap),
                    vhost,
                },
            )
            .unwrap());
            let want = format!(
                "-drive file=/d/seed.iso,if=virtio,media=cdrom \
                 -netdev type=tap,ifname=svn_x,script=no,downscript=no,id=svn_x,vhost={on} \
                 -device driver=virtio-net-pci,netdev=svn_x,mac=02:00:ab:0c:7f:e0 \
                 -enable-kvm -daemonize"
            );
            assert!(a.join(" ").contains(&want), "{a:?}");
            assert!(!a.iter().any(|x| x == "-net"));
        }
        assert!(passed_files(Some(&tap)).is_empty());
        assert!(passed_files(None).is_empty());
    }

    #[test]
    fn macvtap_nic_on_passed_descriptors() {
        let mv = |queues| Vnic::Macvtap {
            name: "svc_x".into(),
            mac: MAC,
            device: "/v/instances/x/tap".into(),
            queues,
        };
        let four = mv(4);
        assert_eq!(
            s(&network_args(Some(&four), true)),
            vec![
                "-netdev",
                "type=tap,fds=3:4:5:6,id=svc_x,vhost=on",
                "-device",
                "virtio-net-pci,netdev=svc_x,mq=on,vectors=10,mac=02:00:ab:0c:7f:e0",
            ]
        );
        assert_eq!(
            passed_files(Some(&four)),
            vec![PathBuf::from("/v/instances/x/tap"); 4]
        );
        // No queue is one queue.
        assert_eq!(
            s(&network_args(Some(&mv(0)), false))[1],
            "type=tap,fds=3,id=svc_x,vhost=off"
        );
        assert_eq!(passed_files(Some(&mv(0))).len(), 1);
        assert_eq!(
            s(&network_args(None, true)),
            vec!["-net", "nic,model=virtio", "-net", "user"]
        );
    }

    #[test]
    fn tools() {
        let d = Path::new("/d");
        assert_eq!(
            s(&image_create_argv(Path::new("/img/a"), "raw", d)).join(" "),
            "qemu-img create -q -f qcow2 -F raw -b /img/a /d/image.qcow2"
        );
        assert_eq!(
            s(&iso_argv(d)).join(" "),
            "xorriso -as mkisofs -R -V config-2 -o /d/seed.iso /d/clr-cloud-init"
        );
        assert_eq!(
            s(&image_info_argv(Path::new("/img/a"))).join(" "),
            "qemu-img info --output=json /img/a"
        );
        assert!(s(&cpu_probe_argv("host"))
            .join(" ")
            .starts_with("qemu-system-x86_64 -enable-kvm -cpu host"));
    }

    #[test]
    fn image_format() {
        let j = br#"{
    "virtual-size": 17825792,
    "filename": "guest.img",
    "format": "raw",
    "actual-size": 17825792,
    "dirty-flag": false
}"#;
        assert_eq!(parse_image_format(j).unwrap(), "raw");
        assert!(parse_image_format(br#"{"format": "qcow2,x"}"#).is_err());
        assert!(parse_image_format(b"").is_err());
        assert!(parse_image_format(b"qemu-img: Could not open").is_err());
    }
}
