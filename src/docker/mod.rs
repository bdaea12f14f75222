//! Docker containers over the Engine API (`docs/docker.md`): a
//! hand-written HTTP/1.1 client on the launcher's one `mio` loop, talking
//! to dockerd's Unix socket.
//!
//! * [`api`]: the calls as data (method, path, body, deadline) and what the
//!   replies mean; API version negotiation (`GET /version`, 1.22 to 1.45).
//! * [`call`]: one connection per request as driver effects, many in
//!   flight at once, each with a deadline (when the exit long poll's
//!   passes, the driver looks at the container and polls again).
//! * [`cgroup`]: memory and CPU of a running container from its cgroup
//!   files, without asking dockerd.
//! * [`plugin`]: the ciao network and IPAM plugin dockerd calls for
//!   containers on tenant networks (served by the launcher's loop).
//! * [`driver`]: the per-container step machine ([`Docker`]): image check
//!   and pull, create, start, exit detection, graceful stop, restart,
//!   delete, statistics, recovery, and what happens while dockerd is down.
//!
//! Everything but the cgroup reads is sans-IO and unit-tested against a
//! scripted daemon that also plays the shell (`fake.rs`); the end-to-end
//! tests (`tests/docker_*.rs`) run a real, private dockerd.

pub(crate) mod api;
pub(crate) mod call;
pub mod cgroup;
mod driver;
pub mod plugin;
mod volumes;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use log::{error, info};

use api::Api;

pub(crate) use driver::Docker;
pub(crate) use volumes::Rbd;

/// What every container driver of one launcher shares: where dockerd is,
/// which API version it was found to speak, and whether it is down (so an
/// outage is logged once, not once per container).
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    /// dockerd's socket (`--docker-socket`).
    pub socket: PathBuf,
    /// The negotiated version; `None` until `GET /version` succeeded, and
    /// again after the daemon was unreachable (it may come back upgraded).
    pub api: Option<Api>,
    /// `--stop-timeout`: how long a STOP waits after SIGTERM.
    pub stop_timeout: Duration,
    /// How often a running container's statistics are sampled.
    pub sample_interval: Duration,
    /// The launcher's instances directory, written into a label so that
    /// launchers sharing a daemon never take each other's containers.
    pub instances_dir: String,
    /// The network and IPAM driver of tenant networks: the launcher's
    /// plugin (`--docker-plugin-name`).
    pub plugin: String,
    down: bool,
    server: String,
    /// Containers of deleted instances may be left behind (a DELETE that
    /// gave up while dockerd was down): look for them after the next
    /// successful negotiation.
    sweep_due: bool,
    /// Why the last negotiation failed, for the instances that waited for
    /// it (`None` after a success).
    pub negotiation_failure: Option<call::CallError>,
    /// How volumes are mapped (`rbd`: ceph id, configuration, deadline).
    pub rbd: Rbd,
}

/// The shared state, as the factory hands it to each driver.
pub(crate) type SharedRef = Rc<RefCell<Shared>>;

impl Shared {
    pub(crate) fn new(
        socket: PathBuf,
        stop_timeout: Duration,
        sample_interval: Duration,
        instances_dir: String,
    ) -> Shared {
        Shared {
            socket,
            api: None,
            stop_timeout,
            sample_interval,
            instances_dir,
            plugin: "ciao".to_string(),
            down: false,
            server: String::new(),
            sweep_due: true,
            negotiation_failure: None,
            rbd: Rbd {
                deadline: Duration::from_secs(60),
                ..Rbd::default()
            },
        }
    }

    /// A version was negotiated.
    pub(crate) fn negotiated(&mut self, api: Api, server: &str) {
        if self.api != Some(api) || self.down || self.server != server {
            info!(
                "dockerd {server} at {}: using Engine API {api}",
                self.socket.display()
            );
        }
        self.api = Some(api);
        self.server = server.to_string();
        self.down = false;
    }

    /// A request could not connect: log the outage once and negotiate
    /// again when the daemon is back.
    pub(crate) fn unreachable(&mut self, why: &str) {
        if !self.down {
            error!(
                "dockerd is unreachable at {} ({why}): container commands fail until it is back",
                self.socket.display()
            );
        }
        self.down = true;
        self.api = None;
        self.sweep_due = true;
    }

    /// Whether the caller should look for left-over containers now.
    pub(crate) fn take_sweep(&mut self) -> bool {
        std::mem::take(&mut self.sweep_due)
    }
}

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;
