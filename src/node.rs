//! The composition root of `ciao-launcher`: which driver each instance
//! gets. The only module that knows the instance manager (`launcher`) and
//! every driver (`qemu`, `docker`, the simulation) at once; they know only
//! the driver interface (`driver`).

use std::cell::RefCell;
use std::ffi::OsString;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use log::{info, warn};

use crate::driver::{Driver, DriverFactory, Simulated};
use crate::launcher::config::{self, LauncherConfig};
use crate::payloads::InstanceConfig;
use crate::ssntp::uuid::Uuid;

/// Entry point of the `ciao-launcher` binary; returns the exit status.
pub fn main(args: Vec<OsString>) -> i32 {
    crate::launcher::daemon::main(args, factory)
}

fn factory(cfg: &LauncherConfig) -> Box<dyn DriverFactory> {
    Box::new(Factory {
        cfg: cfg.clone(),
        seed: u64::from_le_bytes(Uuid::random().0[..8].try_into().unwrap_or([3; 8])) | 1,
        docker: None,
        qemu: None,
        cluster_ceph_id: String::new(),
    })
}

/// Makes each instance's driver: simulated, qemu or docker.
struct Factory {
    cfg: LauncherConfig,
    seed: u64,
    /// State shared by every docker driver (socket, negotiated API version).
    docker: Option<crate::docker::SharedRef>,
    /// State shared by every qemu driver (settings, the probed CPU model).
    qemu: Option<Rc<RefCell<crate::qemu::Shared>>>,
    /// The cluster configuration's ceph id, used unless `-ceph_id` is
    /// given.
    cluster_ceph_id: String,
}

impl Factory {
    /// `-ceph_id`, else the cluster configuration's (`""`: none).
    fn ceph_id(&self) -> String {
        self.cfg
            .ceph_id
            .clone()
            .unwrap_or_else(|| self.cluster_ceph_id.clone())
    }
}

impl DriverFactory for Factory {
    fn make(&mut self, config: &InstanceConfig, dir: PathBuf) -> Box<dyn Driver> {
        if self.cfg.simulation {
            self.seed = self
                .seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let d = self.cfg.simulation_delay;
            Box::new(Simulated::new(d.min, d.max, self.seed))
        } else if config.is_container() {
            let ceph_id = self.ceph_id();
            let cfg = &self.cfg;
            // Samples as often as STATS go out (at most every 30 s), so
            // each STATS carries a fresh figure.
            let shared = self.docker.get_or_insert_with(|| {
                let mut shared = crate::docker::Shared::new(
                    cfg.docker_socket.clone(),
                    cfg.stop_timeout,
                    cfg.stats_interval.min(Duration::from_secs(30)),
                    cfg.instances_dir().to_string_lossy().into_owned(),
                );
                shared.plugin = cfg.docker_plugin_name.clone();
                Rc::new(RefCell::new(shared))
            });
            {
                let mut s = shared.borrow_mut();
                s.rbd.id = ceph_id;
                s.rbd.conf = cfg.ceph_conf.clone();
            }
            Box::new(crate::docker::Docker::new(shared.clone(), dir))
        } else {
            let ceph_id = self.ceph_id();
            let cfg = &self.cfg;
            let shared = self.qemu.get_or_insert_with(|| {
                let virtualisation = match cfg.virtualisation {
                    config::Virtualisation::Kvm => crate::qemu::Virtualisation::Kvm,
                    config::Virtualisation::Auto => crate::qemu::Virtualisation::Auto,
                    config::Virtualisation::Software => crate::qemu::Virtualisation::Software,
                };
                let mut settings = crate::qemu::Settings::new(
                    cfg.images_dir(),
                    virtualisation,
                    cfg.ovmf_path(),
                    cfg.stop_timeout,
                );
                settings.ceph_id = ceph_id;
                settings.ceph_conf = cfg.ceph_conf.clone();
                settings.ceph_timeout = cfg.ceph_timeout;
                settings.detach_timeout = cfg.detach_timeout;
                settings.hotplug_conf = write_hotplug_conf(cfg);
                if cfg.with_ui == config::UiMode::Nc {
                    info!("qemu: -with-ui nc: each VM's serial console listens on a TCP port of 127.0.0.1 (logged when the VM runs)");
                    settings.console = crate::qemu::Console::Tcp;
                }
                crate::qemu::Shared::new(settings, Box::new(crate::qemu::RealHost))
            });
            Box::new(crate::qemu::QemuDriver::new(shared.clone(), dir))
        }
    }

    fn cluster_ceph_id(&mut self, id: &str) {
        if self.cluster_ceph_id == id {
            return;
        }
        self.cluster_ceph_id = id.to_string();
        let effective = self.ceph_id();
        if let Some(d) = &self.docker {
            d.borrow_mut().rbd.id = effective.clone();
        }
        if let Some(q) = &self.qemu {
            q.borrow_mut().settings.ceph_id = effective;
        }
    }
}

/// Writes `DATA-ROOT/ceph/hotplug.conf`: the operator's ceph configuration
/// with librbd's monitor timeouts appended, for hot attaches
/// (`crate::qemu::volumes::hotplug_conf`, docs/storage.md). Written once,
/// when the first VM is made, so a changed ceph configuration reaches hot
/// attaches after a restart of the launcher. `None` when the operator's
/// configuration cannot be read: hot attaches then name it (or librbd's
/// default) as it is, without the bounded timeouts.
fn write_hotplug_conf(cfg: &LauncherConfig) -> Option<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let operator = cfg
        .ceph_conf
        .clone()
        .or_else(|| std::env::var_os("CEPH_CONF").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/etc/ceph/ceph.conf"));
    let text = match std::fs::read_to_string(&operator) {
        Ok(t) => t,
        Err(e) => {
            info!(
                "qemu: no ceph configuration at {} ({e}): hot-attached volumes use librbd's default timeouts",
                operator.display()
            );
            return None;
        }
    };
    let dir = cfg.data_root.join("ceph");
    let path = dir.join("hotplug.conf");
    let tmp = dir.join("hotplug.conf.tmp");
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        // It may name keys: not world-readable.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(crate::qemu::hotplug_conf(&text, cfg.ceph_timeout).as_bytes())?;
        std::fs::rename(&tmp, &path)
    });
    match written {
        Ok(()) => Some(path),
        Err(e) => {
            warn!(
                "qemu: cannot write {}: {e}; hot-attached volumes use librbd's default timeouts",
                path.display()
            );
            None
        }
    }
}
