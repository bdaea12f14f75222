//! The launcher's shell: one `mio` loop that owns the SSNTP client, the
//! signalfd and the timers, and turns what happens into reports.
//!
//! Start-up order (design decision 14): flags, signals blocked, logging,
//! single-instance lock, open-file limit, directories, certificates, node
//! UUID; then the loop. Every fatal start-up problem exits non-zero with
//! one clear line (`StartupError`).

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use super::capacity::{Capacity, Limits};
use super::config::{self, LauncherConfig};
use super::nodestats::{self, NodeStats};
use crate::payloads;
use crate::ssntp::client::{Client, ClientEvent, ClientSettings};
use crate::ssntp::frame::{self, Frame};
use crate::ssntp::{role, tls, uuid::Uuid};
use crate::sys::{self, lock::Flock, signals::SignalFd};

const SIGNAL: Token = Token(0);
const CLIENT: Token = Token(1);

/// How long a state-change STATS may wait so that changes coalesce.
const STATS_COALESCE: Duration = Duration::from_millis(100);

/// A fatal start-up problem: one line on stderr, exit status 1.
#[derive(Debug)]
pub struct StartupError(pub String);

impl std::fmt::Display for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Entry point of the `ciao-launcher` binary; returns the exit status.
pub fn main(args: Vec<OsString>) -> i32 {
    let cfg = config::parse_or_exit(args);
    // Block the shutdown signals before anything else (the mask is
    // inherited by any thread created later).
    let signals = match SignalFd::shutdown_signals() {
        Ok(s) => s,
        Err(e) => return fatal(&format!("cannot set up signal handling: {e}")),
    };
    if let Err(e) = config::setup_logging(&cfg) {
        return fatal(&e);
    }
    match Daemon::new(cfg, signals).and_then(|d| d.run()) {
        Ok(()) => {
            info!("ciao-launcher stopped");
            0
        }
        Err(e) => {
            error!("{e}");
            fatal(&e.0)
        }
    }
}

fn fatal(msg: &str) -> i32 {
    eprintln!("ciao-launcher: {msg}");
    1
}

/// The running daemon.
pub struct Daemon {
    cfg: LauncherConfig,
    poll: Poll,
    signals: SignalFd,
    client: Client,
    node_uuid: Uuid,
    cluster: payloads::ClusterConfig,
    capacity: Capacity,
    limits: Limits,
    /// When the periodic STATUS + STATS is due.
    next_tick: Instant,
    /// A coalesced state-change STATS, when one is pending.
    stats_due: Option<Instant>,
    /// Last READY/FULL sent, to send STATUS at once when it flips.
    last_ready: Option<bool>,
    _locks: Vec<Flock>,
}

impl Daemon {
    /// Everything before the loop; any error is fatal.
    pub fn new(cfg: LauncherConfig, signals: SignalFd) -> Result<Daemon, StartupError> {
        refuse_unfinished_flags(&cfg)?;
        let mut locks = Vec::new();
        if !cfg.simulation {
            let path = cfg.agent_lock_path();
            if let Some(dir) = path.parent() {
                sys::fs::mkdir_p(dir, 0o755)
                    .map_err(|e| StartupError(format!("cannot create {}: {e}", dir.display())))?;
            }
            let lock = Flock::try_lock(&path).map_err(|e| {
                StartupError(format!(
                    "{e} (is another ciao-launcher using this data root?)"
                ))
            })?;
            locks.push(lock);
        }
        let nofile = sys::procfs::raise_nofile_limit();
        let max_instances = usize::try_from(nofile / 5).unwrap_or(usize::MAX);
        let instances = cfg.instances_dir();
        sys::fs::mkdir_p(&instances, 0o755)
            .map_err(|e| StartupError(format!("cannot create {}: {e}", instances.display())))?;

        let (cacert, cert) = match (&cfg.cacert, &cfg.cert) {
            (Some(a), Some(b)) => (a.clone(), b.clone()),
            _ => {
                return Err(StartupError(
                    "both -cacert and -cert are required (the CA certificate and this node's \
                     certificate with its key, as made by ciao-cert)"
                        .into(),
                ))
            }
        };
        let ca = tls::load_ca(&cacert).map_err(|e| StartupError(e.to_string()))?;
        let identity = tls::load_identity(&cert).map_err(|e| StartupError(e.to_string()))?;
        let own_role = identity.info.roles;
        if own_role & (role::AGENT | role::NETAGENT) == 0 {
            return Err(StartupError(format!(
                "certificate {} carries role {:#x} ({}); a launcher needs the agent or netagent role",
                cert.display(),
                own_role,
                role::name(own_role)
            )));
        }
        let tls_config =
            tls::client_config(&ca, &identity).map_err(|e| StartupError(e.to_string()))?;
        let addresses = match &cfg.server {
            Some(s) => vec![(s.host.clone(), s.port)],
            None => {
                let pem = std::fs::read(&cacert)
                    .map_err(|e| StartupError(format!("cannot read {}: {e}", cacert.display())))?;
                tls::server_addresses(&pem)
                    .into_iter()
                    .map(|a| (a.host, a.port))
                    .collect()
            }
        };
        info!(
            "ciao-launcher starting: role {}, data root {}, servers {:?}",
            role::name(own_role),
            cfg.data_root.display(),
            addresses
        );
        let (node_uuid, uuid_lock) = sys::uuidstore::node_uuid(&cfg.data_root, own_role);
        locks.extend(uuid_lock);
        info!("node UUID {node_uuid}");

        let poll = Poll::new().map_err(|e| StartupError(format!("cannot create poll: {e}")))?;
        poll.registry()
            .register(
                &mut SourceFd(&signals.as_raw_fd()),
                SIGNAL,
                Interest::READABLE,
            )
            .map_err(|e| StartupError(format!("cannot watch signals: {e}")))?;
        let client = Client::new(
            ClientSettings {
                addresses,
                tls: tls_config,
                uuid: node_uuid,
                role: own_role,
                max_message: cfg.max_message_size,
                connect_timeout: cfg.connect_timeout,
            },
            CLIENT,
        );
        let now = Instant::now();
        Ok(Daemon {
            next_tick: now + cfg.stats_interval,
            cfg,
            poll,
            signals,
            client,
            node_uuid,
            cluster: payloads::ClusterConfig::default(),
            capacity: Capacity::default(),
            limits: Limits {
                mem_limit: false,
                disk_limit: false,
                max_instances,
            },
            stats_due: None,
            last_ready: None,
            _locks: locks,
        })
    }

    /// The loop; returns after a shutdown signal.
    pub fn run(mut self) -> Result<(), StartupError> {
        let mut events = Events::with_capacity(256);
        let mut client_events = Vec::new();
        let mut now = Instant::now();
        self.client
            .poll(self.poll.registry(), now, &mut client_events);
        loop {
            let timeout = self
                .next_deadline()
                .map(|d| d.saturating_duration_since(now));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(StartupError(format!("poll failed: {e}")));
                }
            }
            now = Instant::now();
            let mut client_ready = false;
            for ev in events.iter() {
                match ev.token() {
                    SIGNAL => {
                        if let Some(sig) = self.pending_signal() {
                            info!("signal {sig} received: shutting down (instances keep running)");
                            self.client.close(self.poll.registry());
                            return Ok(());
                        }
                    }
                    CLIENT => client_ready = true,
                    t => debug!("event for unknown token {t:?}"),
                }
            }
            if client_ready || self.client.deadline().is_some_and(|d| d <= now) {
                self.client
                    .poll(self.poll.registry(), now, &mut client_events);
            }
            for ev in client_events.drain(..) {
                self.on_client_event(ev, now);
            }
            if now >= self.next_tick {
                self.next_tick = now + self.cfg.stats_interval;
                self.report(now);
            }
            if self.stats_due.is_some_and(|d| d <= now) {
                self.stats_due = None;
                let node = self.sample_node();
                self.send_stats(&node, now);
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        [Some(self.next_tick), self.stats_due, self.client.deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    fn pending_signal(&self) -> Option<i32> {
        let mut got = None;
        loop {
            match self.signals.read() {
                Ok(Some(s)) => got = Some(s),
                Ok(None) => return got,
                Err(e) => {
                    warn!("reading signals failed: {e}");
                    return got;
                }
            }
        }
    }

    fn on_client_event(&mut self, ev: ClientEvent, now: Instant) {
        match ev {
            ClientEvent::Connected { server, config } => {
                info!("connected to SSNTP server {server}");
                self.apply_cluster_config(&config);
                self.report(now);
            }
            ClientEvent::Disconnected(why) => {
                warn!("lost the SSNTP server: {why}; reconnecting");
            }
            ClientEvent::Frame(f) => self.on_frame(f),
        }
    }

    fn apply_cluster_config(&mut self, config: &[u8]) {
        if config.is_empty() {
            error!("the server sent no cluster configuration; running without memory/disk limits");
            self.cluster = payloads::ClusterConfig::default();
        } else {
            match payloads::ClusterConfig::parse(config) {
                Ok(c) => self.cluster = c,
                Err(e) => {
                    error!("the server's cluster configuration is invalid ({e}); keeping the previous one")
                }
            }
        }
        self.limits.mem_limit = self.cluster.mem_limit;
        self.limits.disk_limit = self.cluster.disk_limit;
        info!(
            "cluster configuration: compute_net {:?}, mgmt_net {:?}, disk_limit {}, mem_limit {}, ceph_id {:?}",
            self.cluster.compute_net,
            self.cluster.mgmt_net,
            self.cluster.disk_limit,
            self.cluster.mem_limit,
            self.cluster.ceph_id
        );
    }

    fn on_frame(&mut self, f: Frame) {
        debug!(
            "received {} {} ({} bytes)",
            frame::type_name(f.ftype),
            frame::operand_name(f.ftype, f.operand),
            f.payload.len()
        );
    }

    fn sample_node(&mut self) -> NodeStats {
        let node = nodestats::sample(&self.cfg.instances_dir());
        self.capacity
            .refresh(node.mem_available_mb, node.disk_available_mb, 0, 0);
        node
    }

    fn instance_count(&self) -> usize {
        0
    }

    /// STATUS then STATS (on connect and every tick).
    fn report(&mut self, now: Instant) {
        if !self.client.is_connected() {
            return;
        }
        let node = self.sample_node();
        self.send_status(&node);
        self.send_stats(&node, now);
    }

    fn send_status(&mut self, node: &NodeStats) {
        let ready = self.capacity.ready(&self.limits, self.instance_count());
        self.last_ready = Some(ready);
        let f = if ready {
            let payload = payloads::Ready {
                node_uuid: self.node_uuid.to_string(),
                mem_total_mb: node.mem_total_mb,
                mem_available_mb: node.mem_available_mb,
                disk_total_mb: node.disk_total_mb,
                disk_available_mb: node.disk_available_mb,
                load: node.load,
                cpus_online: node.cpus_online,
            }
            .to_yaml();
            Frame::new(
                frame::STATUS,
                frame::READY,
                self.node_uuid.0,
                payload.into_bytes(),
            )
        } else {
            Frame::new(frame::STATUS, frame::FULL, self.node_uuid.0, Vec::new())
        };
        self.client.send(self.poll.registry(), &f);
    }

    fn send_stats(&mut self, node: &NodeStats, _now: Instant) {
        let ready = self.capacity.ready(&self.limits, self.instance_count());
        if self.last_ready != Some(ready) {
            self.send_status(node);
        }
        let stat = payloads::Stat {
            node_uuid: self.node_uuid.to_string(),
            status: if ready { "READY" } else { "FULL" }.to_string(),
            mem_total_mb: node.mem_total_mb,
            mem_available_mb: node.mem_available_mb,
            disk_total_mb: node.disk_total_mb,
            disk_available_mb: node.disk_available_mb,
            load: node.load,
            cpus_online: node.cpus_online,
            hostname: String::new(),
            networks: Vec::new(),
            instances: Vec::new(),
        };
        let f = Frame::new(
            frame::COMMAND,
            frame::STATS,
            self.node_uuid.0,
            stat.to_yaml().into_bytes(),
        );
        self.client.send(self.poll.registry(), &f);
    }

    /// Asks for a STATS within [`STATS_COALESCE`].
    pub fn stats_soon(&mut self, now: Instant) {
        self.stats_due.get_or_insert(now + STATS_COALESCE);
    }
}

/// Flags whose features arrive with later work are refused clearly rather
/// than silently ignored.
fn refuse_unfinished_flags(cfg: &LauncherConfig) -> Result<(), StartupError> {
    if cfg.hard_reset {
        return Err(StartupError("-hard-reset is not implemented yet".into()));
    }
    if cfg.simulation {
        return Err(StartupError("-simulation is not implemented yet".into()));
    }
    if cfg.ceph_id.is_some() {
        return Err(StartupError(
            "-ceph_id is not supported yet (no ceph volume support)".into(),
        ));
    }
    if cfg.network {
        info!("-network: networking is not implemented yet; running as with -network=false");
    }
    Ok(())
}
