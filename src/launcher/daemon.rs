//! The launcher's shell: one `mio` loop that owns the SSNTP client, the
//! signalfd and the timers, feeds the instance [`Manager`] and executes
//! what it asks for.
//!
//! Start-up order: flags, signals blocked, logging, single-instance lock,
//! open-file limit, directories, certificates, node UUID, recovery of every
//! instance; then the loop, whose first act is to connect (recovery before
//! the first connection: docs/architecture.md, "Decisions"). Every fatal start-up problem exits non-zero with one clear line.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use mio::{Events, Poll, Token};

use super::capacity::Limits;
use super::config::{self, LauncherConfig};
use super::dockernet::{DockerNet, Fetched};
use super::files::{self, Files};
use super::io::Io;
use super::manager::Manager;
use super::netfilter::{self, BridgeForward};
use super::network::Network;
use super::nodestats::{self, NodeStats};
use super::outbox::{self, Outbox};
use super::plugin_server::PluginServer;
use super::service::Service;
use super::timers::Timers;
use crate::driver::{
    DriverFactory, Effect, Input, InstanceKey, Key, NetOp, Outgoing, Routed, Timer, TimerOp,
};
use crate::payloads;
use crate::ssntp::client::{Client, ClientEvent, ClientSettings};
use crate::ssntp::frame::{self, Command, Event, Frame, Op, Status};
use crate::ssntp::{role, tls, uuid::Uuid};
use crate::sys::{self, lock::Flock, notify::Notifier, signals::SignalFd};

const SIGNAL: Token = Token(0);
const CLIENT: Token = Token(1);
const RESOLVER: Token = Token(2);
const SYNCER: Token = Token(3);

/// How long a state-change STATS may wait so that changes coalesce.
const STATS_COALESCE: Duration = Duration::from_millis(100);
/// Answers handled since the last trim after which free heap pages are
/// returned to the kernel, in the first turn that handles none.
const BURST: usize = 256;
/// How long `-hard-reset` waits for instances to go away.
const HARD_RESET_DEADLINE: Duration = Duration::from_secs(120);
/// How long the exit waits for state files on their way to the disk.
const EXIT_SYNC_LIMIT: Duration = Duration::from_secs(30);

/// A fatal start-up problem: one line on stderr, exit status 1.
#[derive(Debug)]
pub(crate) struct StartupError(pub String);

impl std::fmt::Display for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn fail(msg: String) -> StartupError {
    StartupError(msg)
}

/// Makes the driver factory for a configuration (the composition root,
/// `crate::node`, chooses simulation, qemu or docker per instance).
pub(crate) type MakeFactory = fn(&LauncherConfig) -> Box<dyn DriverFactory>;

/// Entry point of the `ciao-launcher` binary; returns the exit status.
pub(crate) fn main(args: Vec<OsString>, make_factory: MakeFactory) -> i32 {
    let cfg = config::parse_or_exit(args);
    sys::mem::keep_heap_small();
    // Block the shutdown signals before anything else (the mask is
    // inherited by any thread created later).
    let signals = match SignalFd::shutdown_signals() {
        Ok(s) => s,
        Err(e) => return fatal(&format!("cannot set up signal handling: {e}")),
    };
    if let Err(e) = config::setup_logging(&cfg) {
        return fatal(&e);
    }
    // Before any thread exists: this edits the environment.
    let notifier = Notifier::from_env();
    let hard_reset = cfg.hard_reset;
    let factory = make_factory(&cfg);
    let result = Daemon::new(cfg, signals, factory).and_then(|d| {
        if hard_reset {
            d.hard_reset()
        } else {
            d.run(notifier)
        }
    });
    match result {
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
pub(crate) struct Daemon {
    cfg: LauncherConfig,
    poll: Poll,
    signals: SignalFd,
    /// `None` with `-hard-reset` (no connection).
    client: Option<Client>,
    node_uuid: Uuid,
    own_role: u32,
    manager: Manager,
    timers: Timers<Key<Timer>>,
    io: Io,
    files: Files,
    /// When the periodic STATUS + STATS is due.
    next_tick: Instant,
    /// A coalesced state-change STATS, when one is pending.
    stats_due: Option<Instant>,
    /// Last READY/FULL sent, to send STATUS at once when it flips.
    last_ready: Option<bool>,
    /// The data root was found not writable at the last STATUS (logged
    /// once per episode).
    unwritable: bool,
    /// Answers handled since free heap pages were last returned.
    burst: usize,
    /// Events and errors produced while the link was down.
    outbox: Outbox,
    /// The SSNTP server while connected (for the service manager's STATUS).
    connected_to: Option<String>,
    /// Tenant networking (`-network=true`).
    network: Option<Network>,
    /// The node's docker network housekeeping (`-network=true`).
    dockernet: Option<DockerNet>,
    /// The bridge forwarding rule (`-network=true`).
    bridge_forward: Option<BridgeForward>,
    /// The docker network plugin (compute nodes with networking): served
    /// from start-up, whatever the SSNTP link does.
    plugin: Option<PluginServer>,
    /// Why the loop must end with a failure (networking could not be set
    /// up at the first connection).
    fatal: Option<String>,
    /// The host name STATS report, with or without networking (read at
    /// start-up and at every connection).
    hostname: String,
    _locks: Vec<Flock>,
}

impl Daemon {
    /// Everything before the loop; any error is fatal.
    pub(crate) fn new(
        cfg: LauncherConfig,
        signals: SignalFd,
        factory: Box<dyn DriverFactory>,
    ) -> Result<Daemon, StartupError> {
        let mut locks = Vec::new();
        if !cfg.simulation {
            let path = cfg.agent_lock_path();
            if let Some(dir) = path.parent() {
                sys::fs::mkdir_p(dir, 0o755)
                    .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
            }
            let lock = Flock::try_lock(&path).map_err(|e| {
                fail(format!(
                    "{e} (is another ciao-launcher using this data root?)"
                ))
            })?;
            locks.push(lock);
        }
        let nofile = sys::procfs::raise_nofile_limit();
        let max_instances = usize::try_from(nofile / 5).unwrap_or(usize::MAX);
        let instances = cfg.instances_dir();
        sys::fs::mkdir_p(&instances, 0o755)
            .map_err(|e| fail(format!("cannot create {}: {e}", instances.display())))?;

        let poll = signals.new_poll(SIGNAL).map_err(fail)?;

        let (client, node_uuid, own_role) = if cfg.hard_reset {
            (None, Uuid::NIL, 0)
        } else {
            let (client, uuid, role, lock) = make_client(&cfg)?;
            locks.extend(lock);
            (Some(client), uuid, role)
        };
        let limits = Limits {
            mem_limit: false,
            disk_limit: false,
            max_instances,
        };
        let (found, state_log) = files::recover(&instances).map_err(fail)?;
        let mut manager = Manager::new(instances, limits, factory);
        manager.set_network(cfg.network);
        let network = if cfg.network {
            let n = Network::open(
                cfg.networking_dir(),
                node_uuid.to_string(),
                cfg.container_mtu,
            )
            .map_err(|e| fail(e.to_string()))?;
            Some(n)
        } else {
            None
        };
        let mut dockernet = network
            .is_some()
            .then(|| DockerNet::new(cfg.docker_socket.clone(), &cfg.docker_plugin_name));
        // Served in a hard reset too: dockerd calls the plugin while it
        // removes the networks of ours.
        let mut plugin = if cfg.network && own_role & role::AGENT != 0 {
            PluginServer::start(&cfg, poll.registry()).map_err(|e| fail(e.to_string()))?
        } else {
            None
        };
        // A plugin without its state file learns dockerd's networks of ours
        // before dockerd needs it to know them.
        if let (Some(p), Some(d)) = (plugin.as_mut(), dockernet.as_mut()) {
            if p.take_needs_rebuild() {
                d.fetch_networks();
            }
        }
        let now = Instant::now();
        // Recovery before the first connection, so the first STATS is complete.
        manager.recover(found, now);
        info!("{} instance(s) recovered", manager.len());
        Ok(Daemon {
            next_tick: now + cfg.stats_interval,
            cfg,
            poll,
            signals,
            client,
            node_uuid,
            own_role,
            manager,
            timers: Timers::new(),
            io: Io::new(),
            files: Files::new(SYNCER, state_log),
            stats_due: None,
            last_ready: None,
            unwritable: false,
            burst: 0,
            outbox: Outbox::default(),
            connected_to: None,
            hostname: sys::procfs::hostname(),
            dockernet,
            bridge_forward: network.is_some().then(BridgeForward::new),
            network,
            plugin,
            fatal: None,
            _locks: locks,
        })
    }

    /// The loop; returns after a shutdown signal. A service manager
    /// (systemd `Type=notify`) hears from it through [`Service`].
    pub(crate) fn run(mut self, notifier: Option<Notifier>) -> Result<(), StartupError> {
        let mut events = Events::with_capacity(256);
        let mut now = Instant::now();
        let mut service = Service::new(notifier);
        if let Some(bf) = self.bridge_forward.as_mut() {
            // A fast local read; the iptables children run on the loop.
            let sysctl = std::fs::read_to_string(netfilter::SYSCTL).ok();
            bf.start(sysctl.as_deref(), self.cfg.bridge_forward);
        }
        self.execute(now);
        self.poll_client(true, now);
        loop {
            service.turn(now, self.connected_to.as_deref(), self.manager.len());
            let timeout = [self.next_deadline(), service.deadline()]
                .into_iter()
                .flatten()
                .min()
                .map(|d| d.saturating_duration_since(now));
            now = self.wait(&mut events, timeout)?;
            let signal = self.turn(&events, now);
            if let Some(why) = self.fatal.take() {
                if let Some(c) = self.client.as_mut() {
                    c.close(self.poll.registry());
                }
                return Err(fail(why));
            }
            if let Some(sig) = signal {
                info!("signal {sig} received: shutting down (instances keep running)");
                service.stopping();
                self.files
                    .flush_at_exit(self.poll.registry(), EXIT_SYNC_LIMIT);
                if let Some(c) = self.client.as_mut() {
                    c.close(self.poll.registry());
                }
                return Ok(());
            }
        }
    }

    /// `-hard-reset`: delete every instance the launcher knows, then exit.
    pub(crate) fn hard_reset(mut self) -> Result<(), StartupError> {
        let mut now = Instant::now();
        if let Some(net) = self.network.as_mut() {
            net.adopt(&self.manager.records())
                .map_err(|e| fail(format!("hard reset: {e}")))?;
        }
        let n = self.manager.delete_all(now);
        info!("hard reset: deleting {n} instance(s)");
        let deadline = now + HARD_RESET_DEADLINE;
        let mut events = Events::with_capacity(64);
        self.execute(now);
        // Once the instances are gone (their unplugs queued the removal
        // of their docker networks): the networks of ours that are left,
        // and the forwarding rule; then the links.
        let mut node_swept = false;
        let result = loop {
            if self.manager.is_empty() && !node_swept {
                node_swept = true;
                if let Some(d) = self.dockernet.as_mut() {
                    d.sweep();
                }
                if let (Some(bf), true) = (self.bridge_forward.as_mut(), self.cfg.bridge_forward) {
                    bf.remove();
                }
                self.execute(now);
            }
            if self.manager.is_empty() && self.node_idle() {
                if let Some(net) = self.network.as_mut() {
                    match net.hard_reset_sweep() {
                        Ok(removed) => info!("hard reset: {removed} more link(s) removed"),
                        Err(e) => break Err(fail(format!("hard reset: {e}"))),
                    }
                }
                info!("hard reset done");
                break Ok(());
            }
            if now >= deadline {
                break Err(fail(if self.manager.is_empty() {
                    "hard reset: docker networks or the forwarding rule could not be removed in time"
                        .to_string()
                } else {
                    format!(
                        "hard reset: {} instance(s) could not be deleted in time",
                        self.manager.len()
                    )
                }));
            }
            let next = self.next_deadline().map_or(deadline, |d| d.min(deadline));
            now = self.wait(&mut events, Some(next.saturating_duration_since(now)))?;
            if self.turn(&events, now).is_some() {
                break Err(fail("hard reset interrupted by a signal".into()));
            }
        };
        self.files
            .flush_at_exit(self.poll.registry(), EXIT_SYNC_LIMIT);
        if result.is_ok() {
            // Every instance is gone: so is what remembered them.
            self.files.remove_log();
        }
        result
    }

    /// Blocks in `poll` (the only place that blocks) and returns the time.
    fn wait(
        &mut self,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> Result<Instant, StartupError> {
        if let Err(e) = self.poll.poll(events, timeout) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(fail(format!("poll failed: {e}")));
            }
        }
        Ok(Instant::now())
    }

    /// One loop turn: readiness, deadlines and timers become inputs of the
    /// cores, then their effects are executed. Returns a shutdown signal.
    fn turn(&mut self, events: &Events, now: Instant) -> Option<i32> {
        let mut inputs: VecDeque<Routed> = VecDeque::new();
        let mut client_ready = false;
        for ev in events.iter() {
            match ev.token() {
                SIGNAL => {
                    if let Some(sig) = self.pending_signal() {
                        return Some(sig);
                    }
                }
                CLIENT | RESOLVER => client_ready = true,
                SYNCER => self.files.on_wake(&mut inputs),
                t if PluginServer::owns(t) => {
                    if let Some(p) = self.plugin.as_mut() {
                        p.on_event(self.poll.registry(), t, now);
                    }
                }
                t if Io::owns(t) => self.io.on_event(self.poll.registry(), t, now, &mut inputs),
                t => debug!("event for unknown token {t:?}"),
            }
        }
        self.io.tick(self.poll.registry(), now, &mut inputs);
        if let Some(p) = self.plugin.as_mut() {
            p.tick(self.poll.registry(), now);
        }
        for (key, input) in inputs {
            self.route(&key, input, now);
        }
        self.poll_client(client_ready, now);
        for key in self.timers.expired(now) {
            self.route(&key.inst, Input::Timer(key.what), now);
        }
        if self.client.is_some() && now >= self.next_tick {
            self.next_tick = now + self.cfg.stats_interval;
            self.report(now);
        }
        let before = self.burst;
        self.execute(now);
        if self.stats_due.is_some_and(|d| d <= now) {
            let node = self.sample_node();
            self.send_stats(&node, now);
        }
        if self.burst >= BURST && self.burst == before {
            // A burst leaves short-lived buffers behind in the heap, and
            // its last answers arrive turns after its largest ones: the
            // first turn without answers is when it is over.
            self.burst = 0;
            sys::mem::release_free();
        }
        None
    }

    /// Lets the SSNTP client make progress when its socket is ready or a
    /// deadline of its passed, and handles what it reports.
    fn poll_client(&mut self, ready: bool, now: Instant) {
        let mut client_events = Vec::new();
        if let Some(c) = self.client.as_mut() {
            if ready || c.deadline().is_some_and(|d| d <= now) {
                c.poll(self.poll.registry(), now, &mut client_events);
            }
        }
        for ev in client_events {
            self.on_client_event(ev, now);
        }
    }

    /// Executes the manager's effects, each by its executor, until there
    /// are none; hands the durable writes staged in this turn to the
    /// syncer as one batch (answered when it is done, in a later turn);
    /// then acts on the manager's wishes.
    fn execute(&mut self, now: Instant) {
        // Depth first: each answer is handed back, and the effects it
        // causes executed, before the next answer, so a burst never holds
        // a thousand state files' bytes in memory at once.
        let mut inputs: VecDeque<Routed> = VecDeque::new();
        loop {
            let mut effects = self.manager.take_effects();
            effects.extend(self.node_effects(now));
            for e in effects {
                match e {
                    Effect::Send(out) => self.send_outgoing(out),
                    Effect::Timer(op) => self.timer(op),
                    Effect::Io(op) => self.io.apply(self.poll.registry(), op, now, &mut inputs),
                    Effect::File(op) => self.files.apply(op, &mut inputs),
                    Effect::Net(op) => self.net(op, &mut inputs),
                }
            }
            if let Some((key, input)) = inputs.pop_front() {
                self.burst += 1;
                self.route(&key, input, now);
            } else {
                // Answers only when the batch had to be synced here.
                self.files.flush(self.poll.registry(), &mut inputs);
                if inputs.is_empty() {
                    break;
                }
            }
        }
        self.deliver_tenant_events();
        let wants = self.manager.take_wants();
        if wants.status {
            let node = self.sample_node();
            self.send_status(&node, now);
        }
        if wants.stats {
            self.stats_due.get_or_insert(now + STATS_COALESCE);
        }
    }

    /// Hands an answer to the core it belongs to: the node's own work
    /// (docker networks, the forwarding rule) or an instance.
    fn route(&mut self, key: &InstanceKey, input: Input, now: Instant) {
        if !key.is_node() {
            self.manager.on_input(key, input, now);
            return;
        }
        if BridgeForward::owns(&input) {
            if let Some(bf) = self.bridge_forward.as_mut() {
                bf.input(input);
            }
            return;
        }
        let (Some(d), net) = (self.dockernet.as_mut(), self.network.as_ref()) else {
            return;
        };
        if d.owns(&input) {
            d.input(now, input, &|t| net.is_some_and(|n| n.tuple_in_use(t)));
        }
        for fetched in d.take_fetched() {
            on_networks_fetched(self.plugin.as_mut(), fetched);
        }
    }

    /// The node's own requests (docker networks, iptables), to execute
    /// like the instances'.
    fn node_effects(&mut self, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some(d) = self.dockernet.as_mut() {
            let net = self.network.as_ref();
            d.pump(now, &|t| net.is_some_and(|n| n.tuple_in_use(t)));
            effects.extend(d.take_effects());
        }
        if let Some(bf) = self.bridge_forward.as_mut() {
            effects.extend(bf.take_effects());
        }
        effects
    }

    /// True when the node's own work is done.
    fn node_idle(&self) -> bool {
        self.dockernet.as_ref().is_none_or(DockerNet::idle)
            && self.bridge_forward.as_ref().is_none_or(BridgeForward::idle)
    }

    /// Executes a change to an instance's links (answered at once); the
    /// docker networks of tuples left without instances go next.
    fn net(&mut self, op: NetOp, inputs: &mut VecDeque<Routed>) {
        match self.network.as_mut() {
            Some(n) => {
                inputs.push_back(n.apply(op));
                if let Some(d) = self.dockernet.as_mut() {
                    for (name, tuple) in n.take_emptied() {
                        d.remove(name, tuple);
                    }
                }
            }
            None => inputs.push_back((
                op.key.inst,
                Input::Net {
                    res: op.key.what,
                    result: Err("networking is off (-network=false)".to_string()),
                },
            )),
        }
    }

    /// Hands kept tenant events to the connection while it is up.
    fn deliver_tenant_events(&mut self) {
        let (Some(n), Some(c)) = (self.network.as_mut(), self.client.as_mut()) else {
            return;
        };
        if !n.has_events() || !c.is_connected() {
            return;
        }
        let registry = self.poll.registry();
        let uuid = self.node_uuid.0;
        n.deliver(|kind, payload| {
            let op = match kind {
                payloads::TenantEventKind::Added => Event::TenantAdded,
                payloads::TenantEventKind::Removed => Event::TenantRemoved,
            };
            c.send(registry, &Frame::new(op, uuid, payload.to_vec()))
        });
    }

    fn timer(&mut self, op: TimerOp) {
        match op {
            TimerOp::Arm { key, at } => self.timers.arm(at, key),
            TimerOp::Cancel { key } => self.timers.cancel(&key),
        }
    }

    fn send_outgoing(&mut self, out: Outgoing) {
        let f = Frame::new(out.op, self.node_uuid.0, out.payload);
        self.send(&f);
    }

    fn next_deadline(&mut self) -> Option<Instant> {
        [
            self.client.is_some().then_some(self.next_tick),
            self.stats_due,
            self.client.as_ref().and_then(|c| c.deadline()),
            self.timers.earliest(),
            self.io.deadline(),
            self.plugin.as_ref().and_then(PluginServer::deadline),
        ]
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
                self.connected_to = Some(server.to_string());
                self.hostname = sys::procfs::hostname();
                self.apply_cluster_config(&config);
                if self.fatal.is_some() {
                    return;
                }
                self.report(now);
                self.deliver_kept();
            }
            ClientEvent::Disconnected(why) => {
                self.connected_to = None;
                warn!("lost the SSNTP server: {why}; reconnecting");
            }
            ClientEvent::Frame(f) => {
                debug!(
                    "received {} {} ({} bytes)",
                    f.op.type_name(),
                    f.op.operand_name(),
                    f.payload.len()
                );
                match f.op {
                    Op::Command(_) => self.manager.on_command(f, now),
                    Op::Error(code) => warn!("server reports an error: {code}"),
                    _ => {}
                }
            }
        }
    }

    fn apply_cluster_config(&mut self, config: &[u8]) {
        let cluster = if config.is_empty() {
            error!("the server sent no cluster configuration; running without memory/disk limits");
            payloads::ClusterConfig::default()
        } else {
            match payloads::ClusterConfig::parse(config) {
                Ok(c) => c,
                Err(e) => {
                    error!("the server's cluster configuration is invalid ({e}); running without memory/disk limits");
                    payloads::ClusterConfig::default()
                }
            }
        };
        self.manager
            .set_limits(cluster.mem_limit, cluster.disk_limit);
        self.manager.set_ceph_id(&cluster.ceph_id);
        if let Some(n) = self.network.as_mut() {
            if let Err(e) = n.configure(config, &cluster, &self.manager.records()) {
                // At the first connection: the node cannot serve tenant
                // networks; it says why and exits 1 (docs/networking.md).
                self.fatal = Some(e.to_string());
            }
        }
        info!(
            "cluster configuration: compute_net {:?}, mgmt_net {:?}, disk_limit {}, mem_limit {}, ceph_id {:?}",
            cluster.compute_net, cluster.mgmt_net, cluster.disk_limit, cluster.mem_limit, cluster.ceph_id
        );
    }

    fn connected(&self) -> bool {
        self.client.as_ref().is_some_and(|c| c.is_connected())
    }

    /// Sends a frame; while the link is down, a fact (event or error) is
    /// kept for the next connection and a snapshot is dropped.
    fn send(&mut self, f: &Frame) {
        let Some(c) = self.client.as_mut() else {
            return;
        };
        if c.send(self.poll.registry(), f) {
            return;
        }
        let (kind, name) = (f.op.type_name(), f.op.operand_name());
        if Outbox::is_fact(f.op) {
            debug!("not connected: keeping {kind} {name} for the next connection");
            self.outbox.push(f.clone());
        } else {
            debug!("not connected: dropping {kind} {name}");
        }
    }

    /// Delivers, in order, the facts kept while the link was down.
    fn deliver_kept(&mut self) {
        let (frames, dropped) = self.outbox.drain();
        if dropped > 0 {
            warn!(
                "{dropped} event(s) and error(s) from while the server was unreachable were \
                 dropped (at most {} frames or {} bytes are kept)",
                outbox::MAX_FRAMES,
                outbox::MAX_BYTES
            );
        }
        if !frames.is_empty() {
            info!(
                "delivering {} event(s) and error(s) from while the server was unreachable",
                frames.len()
            );
        }
        for f in &frames {
            self.send(f);
        }
    }

    fn sample_node(&mut self) -> NodeStats {
        nodestats::sample(&self.cfg.instances_dir())
    }

    /// STATUS then STATS (on connect and every tick), then a TraceReport.
    fn report(&mut self, now: Instant) {
        if !self.connected() {
            return;
        }
        let node = self.sample_node();
        self.send_status(&node, now);
        self.send_stats(&node, now);
        let traces = self.manager.take_traces();
        if !traces.is_empty() {
            let report = trace_report(&traces, self.node_uuid, self.own_role);
            let f = Frame::new(Event::TraceReport, self.node_uuid.0, report.into_bytes());
            self.send(&f);
        }
    }

    /// READY or FULL: the manager's capacity, and FULL while the instances
    /// directory is not writable (read-only remount, permissions), since no
    /// command's outcome could be made durable (O30 in
    /// docs/compatibility.md). Asked afresh each time, so READY comes back
    /// by itself once the directory is writable again.
    fn node_ready(&mut self, node: &NodeStats, now: Instant) -> bool {
        let ready = self
            .manager
            .ready(node.mem_available_mb, node.disk_available_mb, now);
        let dir = self.cfg.instances_dir();
        match crate::sys::fs::writable(&dir) {
            Ok(()) => {
                if std::mem::take(&mut self.unwritable) {
                    info!("{} is writable again", dir.display());
                }
                ready
            }
            Err(e) => {
                if !std::mem::replace(&mut self.unwritable, true) {
                    error!("{} is not writable, reporting FULL: {e}", dir.display());
                }
                false
            }
        }
    }

    fn send_status(&mut self, node: &NodeStats, now: Instant) {
        if !self.connected() {
            return;
        }
        let ready = self.node_ready(node, now);
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
            Frame::new(Status::Ready, self.node_uuid.0, payload.into_bytes())
        } else {
            Frame::new(Status::Full, self.node_uuid.0, Vec::new())
        };
        self.send(&f);
    }

    fn send_stats(&mut self, node: &NodeStats, now: Instant) {
        // Whatever was pending is in this STATS (a STATS coalesced for
        // +100 ms must not follow the full report sent on connect).
        self.stats_due = None;
        if !self.connected() {
            return;
        }
        let ready = self.node_ready(node, now);
        if self.last_ready != Some(ready) {
            // READY/FULL flipped: say so at once (docs/architecture.md,
            // reporting cadence).
            self.send_status(node, now);
        }
        let stat = payloads::Stat {
            node_uuid: self.node_uuid.to_string(),
            status: if ready {
                payloads::NodeStatus::Ready
            } else {
                payloads::NodeStatus::Full
            }
            .as_str()
            .to_string(),
            mem_total_mb: node.mem_total_mb,
            mem_available_mb: node.mem_available_mb,
            disk_total_mb: node.disk_total_mb,
            disk_available_mb: node.disk_available_mb,
            load: node.load,
            cpus_online: node.cpus_online,
            hostname: self.hostname.clone(),
            networks: self
                .network
                .as_ref()
                .map(Network::networks)
                .unwrap_or_default(),
            instances: self.manager.stats(now),
        };
        let f = Frame::new(
            Command::Stats,
            self.node_uuid.0,
            stat.to_yaml().into_bytes(),
        );
        self.send(&f);
    }
}

/// Where the docker networks of ours arrive when
/// `DockerNet::fetch_networks` was asked for them (the plugin's state file
/// was missing or unreadable at start-up): the plugin's state is rebuilt
/// from them (docs/networking.md).
fn on_networks_fetched(plugin: Option<&mut PluginServer>, fetched: Result<Fetched, String>) {
    let Some(plugin) = plugin else {
        return;
    };
    match fetched {
        Ok(f) => {
            let bodies: Vec<Vec<u8>> = f.networks.into_iter().map(|(_, body)| body).collect();
            let (state, problems) = crate::docker::plugin::rebuild::rebuild(plugin.name(), &bodies);
            for p in problems {
                warn!("docker plugin {}: rebuild from dockerd: {p}", plugin.name());
            }
            plugin.install_rebuilt(state);
        }
        Err(e) => warn!(
            "docker plugin {}: cannot rebuild its state from dockerd: {e}",
            plugin.name()
        ),
    }
}

/// Loads certificates, checks the launcher's own role, finds the node UUID
/// and the server addresses.
fn make_client(cfg: &LauncherConfig) -> Result<(Client, Uuid, u32, Option<Flock>), StartupError> {
    let (cacert, cert) = match (&cfg.cacert, &cfg.cert) {
        (Some(a), Some(b)) => (a.clone(), b.clone()),
        (None, None) => {
            let dir = std::path::Path::new(tls::DEFAULT_PKI_DIR);
            let found = tls::discover_certificates(dir).map_err(|e| {
                fail(format!(
                    "{e} (give -cacert and -cert, as made by ciao-cert)"
                ))
            })?;
            info!(
                "using certificates {} and {}",
                found.0.display(),
                found.1.display()
            );
            found
        }
        _ => {
            return Err(fail(
                "-cacert and -cert go together (the CA certificate and this node's \
                 certificate with its key, as made by ciao-cert)"
                    .into(),
            ))
        }
    };
    let ca = tls::load_ca(&cacert).map_err(|e| fail(e.to_string()))?;
    let identity = tls::load_identity(&cert).map_err(|e| fail(e.to_string()))?;
    let own_role = identity.info.roles;
    if own_role & (role::AGENT | role::NETAGENT) == 0 {
        return Err(fail(format!(
            "certificate {} carries role {:#x} ({}); a launcher needs the agent or netagent role",
            cert.display(),
            own_role,
            role::name(own_role)
        )));
    }
    let tls_config = tls::client_config(&ca, &identity).map_err(|e| fail(e.to_string()))?;
    let addresses = match &cfg.server {
        Some(s) => vec![(s.host.clone(), s.port)],
        None => {
            let pem = std::fs::read(&cacert)
                .map_err(|e| fail(format!("cannot read {}: {e}", cacert.display())))?;
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
    info!("node UUID {node_uuid}");
    let client = Client::new(
        ClientSettings {
            addresses,
            tls: tls_config,
            uuid: node_uuid,
            role: own_role,
            max_message: cfg.max_message_size,
            connect_timeout: cfg.connect_timeout,
            dead_peer: Some(crate::sys::tcp::DeadPeer {
                keepalive: cfg.keepalive,
                user_timeout: cfg.tcp_user_timeout,
            }),
            resolver_token: RESOLVER,
        },
        CLIENT,
    );
    Ok((client, node_uuid, own_role, uuid_lock))
}

/// The TraceReport payload for traced START frames (as the original sends it):
/// the launcher appends itself as the last node, with its receive time.
fn trace_report(frames: &[Frame], own: Uuid, own_role: u32) -> String {
    let ts = |t: &Option<frame::GoTime>| t.as_ref().map(|t| t.rfc3339_nano()).unwrap_or_default();
    let report = payloads::TraceReport {
        frames: frames
            .iter()
            .filter_map(|f| {
                let tr = f.trace.as_ref()?;
                let mut nodes: Vec<payloads::TraceNode> = tr
                    .path
                    .iter()
                    .map(|n| payloads::TraceNode {
                        ssntp_node_uuid: Uuid(n.uuid).to_string(),
                        ssntp_role: role::name(n.role),
                        tx_timestamp: ts(&n.tx),
                        rx_timestamp: ts(&n.rx),
                    })
                    .collect();
                nodes.push(payloads::TraceNode {
                    ssntp_node_uuid: own.to_string(),
                    ssntp_role: role::name(own_role),
                    tx_timestamp: String::new(),
                    rx_timestamp: ts(&tr.end),
                });
                Some(payloads::TraceFrame {
                    label: String::from_utf8_lossy(&tr.label).into_owned(),
                    frame_type: f.op.type_name().to_string(),
                    operand: f.op.operand_string(),
                    start_timestamp: ts(&tr.start),
                    end_timestamp: ts(&tr.end),
                    nodes,
                })
            })
            .collect(),
    };
    report.to_yaml()
}
