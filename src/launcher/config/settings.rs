//! What the launcher's command line says: the configuration, its value
//! types and defaults, and the paths derived from it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use log::LevelFilter;

/// Default `--data-root`.
pub(crate) const DEFAULT_DATA_ROOT: &str = "/var/lib/ciao";
/// Default `--docker-socket`.
pub(crate) const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// Default `--container-mtu` (the original's fixed value).
pub(crate) const DEFAULT_CONTAINER_MTU: u32 = crate::net::topology::CONTAINER_MTU;
/// Default `--max-message-size`: 16 MiB per gob message, checked from
/// the length prefix before buffering (docs/compatibility.md, S10.8).
pub(crate) const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
/// The SSNTP port when `--server` names none.
pub(crate) const DEFAULT_SSNTP_PORT: u16 = 8888;
/// Where the OVMF firmware is looked for when `--ovmf` is not given.
pub(crate) const OVMF_CANDIDATES: [&str; 3] = [
    "/usr/share/qemu/OVMF.fd",
    "/usr/share/ovmf/OVMF.fd",
    "/usr/share/OVMF/OVMF_CODE.fd",
];
/// Name of the log file in the log directory.
pub(crate) const LOG_FILE_NAME: &str = "ciao-launcher.log";

/// `-qemu-virtualisation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Virtualisation {
    /// `-enable-kvm`; fails where KVM is unusable.
    Kvm,
    /// KVM when `/dev/kvm` opens, else software.
    Auto,
    /// TCG emulation.
    Software,
}

/// `-with-ui`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UiMode {
    /// No console.
    None,
    /// Serial console on a TCP port bound to 127.0.0.1.
    Nc,
}

/// glog severities, for `-stderrthreshold`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// INFO (0).
    Info,
    /// WARNING (1).
    Warning,
    /// ERROR (2).
    Error,
    /// FATAL (3): nothing goes to stderr through the logger.
    Fatal,
}

/// `--server HOST[:PORT]` (port 8888 unless given): the same address type as the list taken
/// from the CA certificate.
pub(crate) use crate::ssntp::tls::ServerAddr;

/// `--docker-plugin`: where the ciao docker network and IPAM plugin
/// listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DockerPlugin {
    /// A Unix socket: `path`, or `/run/docker/plugins/<name>.sock` when
    /// `None` (where dockerd looks for plugins).
    Unix(Option<PathBuf>),
    /// TCP on a loopback address, announced by the spec file
    /// `/etc/docker/plugins/<name>.json` (the original's way, on
    /// 127.0.0.1:9999).
    Tcp(std::net::SocketAddr),
    /// No plugin.
    Off,
}

/// Where dockerd looks for plugin sockets.
pub(crate) const PLUGIN_SOCKET_DIR: &str = "/run/docker/plugins";
/// Where dockerd looks for plugin spec files (the first of its list).
pub(crate) const PLUGIN_SPEC_DIR: &str = "/etc/docker/plugins";
/// The original plugin's address (`--docker-plugin tcp`).
pub(crate) const PLUGIN_TCP_DEFAULT: &str = "127.0.0.1:9999";

/// `--simulation-delay`: a random delay in `min..=max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimDelay {
    /// Shortest delay.
    pub min: Duration,
    /// Longest delay (equal to `min` for a fixed delay).
    pub max: Duration,
}

/// Everything the command line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LauncherConfig {
    /// `-cacert` (`None` when empty).
    pub cacert: Option<PathBuf>,
    /// `-cert` (`None` when empty).
    pub cert: Option<PathBuf>,
    /// `--server`.
    pub server: Option<ServerAddr>,
    /// `--connect-timeout`.
    pub connect_timeout: Duration,
    /// `--keepalive`: idle time before the first TCP keep-alive probe.
    pub keepalive: Duration,
    /// `--tcp-user-timeout`: how long unacknowledged data (or probes) may
    /// wait before the connection is dropped.
    pub tcp_user_timeout: Duration,
    /// `--max-message-size`, bytes.
    pub max_message_size: usize,
    /// `--data-root`, made absolute.
    pub data_root: PathBuf,
    /// `-network`.
    pub network: bool,
    /// `-qemu-virtualisation`.
    pub virtualisation: Virtualisation,
    /// `-with-ui`.
    pub with_ui: UiMode,
    /// `--ovmf` (`None`: probe, see [`LauncherConfig::ovmf_path`]).
    pub ovmf: Option<PathBuf>,
    /// `--docker-socket`.
    pub docker_socket: PathBuf,
    /// `--container-mtu`: MTU of both ends of a container's veth pair.
    pub container_mtu: u32,
    /// `--bridge-forward`: let bridged tenant traffic through iptables'
    /// FORWARD chain when the kernel filters bridged frames.
    pub bridge_forward: bool,
    /// `--docker-plugin`.
    pub docker_plugin: DockerPlugin,
    /// `--docker-plugin-name`: the plugin's driver name.
    pub docker_plugin_name: String,
    /// `-ceph_id` (`None` when empty: taken from the cluster config).
    pub ceph_id: Option<String>,
    /// `--detach-timeout`.
    pub detach_timeout: Duration,
    /// `--stats-interval`.
    pub stats_interval: Duration,
    /// `--stop-timeout`.
    pub stop_timeout: Duration,
    /// `-hard-reset`.
    pub hard_reset: bool,
    /// `-simulation`.
    pub simulation: bool,
    /// `--simulation-delay`.
    pub simulation_delay: SimDelay,
    /// `-log_dir` as given (`None` when empty; see [`LauncherConfig::log_dir`]).
    pub log_dir: Option<PathBuf>,
    /// `-logtostderr`.
    pub logtostderr: bool,
    /// `-alsologtostderr`.
    pub alsologtostderr: bool,
    /// `-stderrthreshold`.
    pub stderrthreshold: Severity,
    /// `-v`.
    pub verbosity: i32,
    /// `-vmodule` (ignored).
    pub vmodule: String,
    /// `-log_backtrace_at` (ignored).
    pub log_backtrace_at: String,
    /// Arguments after the flags (ignored, as in the original; logged).
    pub positional: Vec<OsString>,
    // Ceph volumes (docs/storage.md).
    /// `--ceph-conf`: the ceph configuration qemu's librbd reads (`None`:
    /// librbd's own default, `/etc/ceph/ceph.conf`).
    pub ceph_conf: Option<PathBuf>,
    /// `--ceph-timeout`: how long librbd may wait for the monitors when a
    /// VM opens its volumes.
    pub ceph_timeout: Duration,
}

impl Default for LauncherConfig {
    fn default() -> LauncherConfig {
        LauncherConfig {
            cacert: None,
            cert: None,
            server: None,
            connect_timeout: Duration::from_secs(30),
            keepalive: Duration::from_secs(30),
            tcp_user_timeout: Duration::from_secs(90),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            data_root: PathBuf::from(DEFAULT_DATA_ROOT),
            network: true,
            virtualisation: Virtualisation::Kvm,
            with_ui: UiMode::None,
            ovmf: None,
            docker_socket: PathBuf::from(DEFAULT_DOCKER_SOCKET),
            container_mtu: DEFAULT_CONTAINER_MTU,
            bridge_forward: true,
            docker_plugin: DockerPlugin::Unix(None),
            docker_plugin_name: crate::docker::plugin::DEFAULT_NAME.to_string(),
            ceph_id: None,
            detach_timeout: Duration::from_secs(30),
            stats_interval: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(30),
            hard_reset: false,
            simulation: false,
            simulation_delay: SimDelay {
                min: Duration::from_millis(1),
                max: Duration::from_millis(1000),
            },
            log_dir: None,
            logtostderr: false,
            alsologtostderr: false,
            stderrthreshold: Severity::Error,
            verbosity: 0,
            vmodule: String::new(),
            log_backtrace_at: String::new(),
            positional: Vec::new(),
            ceph_conf: None,
            ceph_timeout: Duration::from_secs(10),
        }
    }
}

impl LauncherConfig {
    /// `<data-root>/instances`.
    pub fn instances_dir(&self) -> PathBuf {
        self.data_root.join("instances")
    }

    /// `<data-root>/images`: backing images, one file per `image_uuid`.
    pub fn images_dir(&self) -> PathBuf {
        self.data_root.join("images")
    }

    /// `-log_dir`, or `<data-root>/logs/launcher`.
    pub fn log_dir(&self) -> PathBuf {
        self.log_dir
            .clone()
            .unwrap_or_else(|| self.data_root.join("logs/launcher"))
    }

    /// The log file, `<log dir>/ciao-launcher.log`.
    pub fn log_file(&self) -> PathBuf {
        self.log_dir().join(LOG_FILE_NAME)
    }

    /// `<data-root>/lock`.
    pub fn lock_dir(&self) -> PathBuf {
        self.data_root.join("lock")
    }

    /// `<data-root>/networking`: the cluster configuration of the last
    /// connection and the tenant events not yet delivered
    /// (docs/networking.md).
    pub fn networking_dir(&self) -> PathBuf {
        self.data_root.join("networking")
    }

    /// `<networking dir>/docker-plugin.yaml`: the docker plugin's state.
    pub fn docker_plugin_state(&self) -> PathBuf {
        self.networking_dir()
            .join(crate::docker::plugin::STATE_FILE)
    }

    /// The plugin's Unix socket (`None` unless it listens on one).
    pub fn docker_plugin_socket(&self) -> Option<PathBuf> {
        match &self.docker_plugin {
            DockerPlugin::Unix(Some(p)) => Some(p.clone()),
            DockerPlugin::Unix(None) => Some(
                PathBuf::from(PLUGIN_SOCKET_DIR).join(format!("{}.sock", self.docker_plugin_name)),
            ),
            _ => None,
        }
    }

    /// The plugin's spec file (`None` unless it listens on TCP).
    pub fn docker_plugin_spec(&self) -> Option<PathBuf> {
        matches!(self.docker_plugin, DockerPlugin::Tcp(_)).then(|| {
            PathBuf::from(PLUGIN_SPEC_DIR).join(format!("{}.json", self.docker_plugin_name))
        })
    }

    /// The single-instance lock, `<data-root>/lock/client-agent.lock`.
    pub fn agent_lock_path(&self) -> PathBuf {
        self.lock_dir().join("client-agent.lock")
    }

    /// `<data-root>/local/uuid-storage/role/client` (see
    /// [`crate::sys::uuidstore`]).
    pub fn uuid_dir(&self) -> PathBuf {
        crate::sys::uuidstore::uuid_dir(&self.data_root)
    }

    /// `--ovmf`, else the first of [`OVMF_CANDIDATES`] that exists.
    pub fn ovmf_path(&self) -> Option<PathBuf> {
        if let Some(p) = &self.ovmf {
            return Some(p.clone());
        }
        OVMF_CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    }

    /// The level of `log` records that `-v` enables.
    pub fn level_filter(&self) -> LevelFilter {
        match self.verbosity {
            i32::MIN..=0 => LevelFilter::Info,
            1 => LevelFilter::Debug,
            _ => LevelFilter::Trace,
        }
    }
}
