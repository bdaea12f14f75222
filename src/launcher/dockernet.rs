//! The node's own Engine API client for docker networks
//! (docs/networking.md): the launcher's tenant networks outlive the
//! containers that asked for them, so the node removes them.
//!
//! * A tuple whose last instance (VM or container) is gone: its bridge
//!   went, so `DELETE /networks/<name>`, unless an instance wants the
//!   tuple again by the time the request goes out (checked then).
//! * `-hard-reset`: `GET /networks`, then `DELETE` of each network whose
//!   driver is the launcher's plugin (or `ciao`, the original's).
//! * [`DockerNet::fetch_networks`]: `GET /networks`, then
//!   `GET /networks/<id>` of each of ours, handed back as they came for
//!   the plugin to rebuild its state from.
//!
//! One request at a time, in order, each with a deadline; the API version
//! is negotiated first (and again after dockerd was unreachable). The
//! requests are the container driver's ([`crate::docker::call`]), made
//! under the node's key ([`InstanceKey::node`]) through the same executor
//! of sockets and timers as the instances'. Removal failures are logged,
//! never retried: a network left behind is reused when its tuple comes
//! back (its name depends on the tuple only) and removed by `-hard-reset`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Instant;

use log::{debug, info, warn};

use crate::docker::api::{self, Api, NetworkListed, Req};
use crate::docker::call::{CallError, Calls, Event, Reply};
use crate::driver::{Cx, Effect, Input, InstanceKey, Jobs};
use crate::http::parse_json;
use crate::net::names::Tuple;
use crate::payloads::InstanceConfig;

/// What [`DockerNet::fetch_networks`] found: the bodies as dockerd sent
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Fetched {
    /// `GET /networks`.
    pub list: Vec<u8>,
    /// `GET /networks/<id>` of each network of ours: (id, body).
    pub networks: Vec<(String, Vec<u8>)>,
}

/// One thing to do, in queue order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Task {
    /// Remove a network; `tuple`: unless an instance wants it again.
    Remove { name: String, tuple: Option<Tuple> },
    /// List the networks, to remove ours.
    Sweep,
    /// List the networks, to fetch ours.
    Fetch,
    /// Inspect one of ours, for the fetch in progress.
    Inspect(String),
}

/// What the request in flight is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum What {
    Version,
    Task(Task),
}

/// The fetch in progress.
#[derive(Debug, Default)]
struct Fetching {
    fetched: Fetched,
    /// Inspections still queued.
    pending: usize,
}

/// The client.
pub(crate) struct DockerNet {
    socket: PathBuf,
    /// Network drivers whose networks are ours.
    drivers: Vec<String>,
    api: Option<Api>,
    queue: VecDeque<Task>,
    /// A request is in flight.
    busy: bool,
    calls: Calls<What>,
    fetching: Option<Fetching>,
    done: Vec<Result<Fetched, String>>,
    // What a driver context needs (the calls are the container driver's).
    key: InstanceKey,
    config: InstanceConfig,
    jobs: Jobs,
    effects: Vec<Effect>,
}

impl DockerNet {
    /// A client of dockerd at `socket`, for the plugin named `plugin`.
    pub(crate) fn new(socket: PathBuf, plugin: &str) -> DockerNet {
        let mut drivers = vec![plugin.to_string()];
        if plugin != "ciao" {
            drivers.push("ciao".to_string());
        }
        DockerNet {
            socket,
            drivers,
            api: None,
            queue: VecDeque::new(),
            busy: false,
            calls: Calls::default(),
            fetching: None,
            done: Vec::new(),
            key: InstanceKey::node(),
            config: InstanceConfig::default(),
            jobs: Jobs::default(),
            effects: Vec::new(),
        }
    }

    /// Removes the docker network `name` of `tuple` (whose last instance
    /// went), unless an instance wants the tuple again by then.
    pub(crate) fn remove(&mut self, name: String, tuple: Tuple) {
        self.queue.push_back(Task::Remove {
            name,
            tuple: Some(tuple),
        });
    }

    /// `-hard-reset`: removes every network of ours.
    pub(crate) fn sweep(&mut self) {
        self.queue.push_back(Task::Sweep);
    }

    /// Fetches the networks of ours for the plugin's rebuild; the result
    /// comes out of [`DockerNet::take_fetched`] (the daemon hands it to
    /// its `on_networks_fetched` hook). Asked for by the plugin's
    /// start-up when its state file is missing or unreadable.
    pub(crate) fn fetch_networks(&mut self) {
        self.queue.push_back(Task::Fetch);
    }

    /// Fetches that are over.
    pub(crate) fn take_fetched(&mut self) -> Vec<Result<Fetched, String>> {
        std::mem::take(&mut self.done)
    }

    /// Nothing queued, nothing in flight.
    pub(crate) fn idle(&self) -> bool {
        !self.busy && self.queue.is_empty()
    }

    pub(crate) fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// True for the node's inputs that belong to this client.
    pub(crate) fn owns(&self, input: &Input) -> bool {
        self.calls.owns(input)
    }

    /// Runs `f` on the calls with a driver context of the node (the
    /// calls' effects land in [`DockerNet::take_effects`]).
    fn with_calls<R>(&mut self, now: Instant, f: impl FnOnce(&mut Calls<What>, &mut Cx) -> R) -> R {
        let mut outcomes = Vec::new();
        let mut cx = Cx::new(
            now,
            &self.key,
            &self.config,
            &mut self.effects,
            &mut outcomes,
            &mut self.jobs,
        );
        f(&mut self.calls, &mut cx)
    }

    fn send(&mut self, now: Instant, req: &Req, what: What) {
        let (socket, api) = (self.socket.clone(), self.api);
        self.with_calls(now, |calls, cx| calls.send(cx, &socket, api, req, what));
        self.busy = true;
    }

    /// Sends the next request if none is in flight. `in_use`: whether an
    /// instance wants a tuple (its network then stays).
    pub(crate) fn pump(&mut self, now: Instant, in_use: &dyn Fn(&Tuple) -> bool) {
        while !self.busy {
            let Some(task) = self.queue.front().cloned() else {
                return;
            };
            if let Task::Remove {
                name,
                tuple: Some(t),
            } = &task
            {
                if in_use(t) {
                    debug!("docker network {name} is in use again: kept");
                    self.queue.pop_front();
                    continue;
                }
            }
            if self.api.is_none() {
                self.send(now, &Req::version(), What::Version);
                return;
            }
            self.queue.pop_front();
            let req = match &task {
                Task::Remove { name, .. } => Req::network_remove(name),
                Task::Sweep | Task::Fetch => Req::network_list(),
                Task::Inspect(id) => Req::network_inspect(id),
            };
            self.send(now, &req, What::Task(task));
        }
    }

    /// An input of the shell for the node's calls; then the next request.
    pub(crate) fn input(&mut self, now: Instant, input: Input, in_use: &dyn Fn(&Tuple) -> bool) {
        let mut events = Vec::new();
        self.with_calls(now, |calls, cx| calls.input(cx, input, &mut events));
        for ev in events {
            if let Event::Done { what, result } = ev {
                self.busy = false;
                self.done_with(what, result);
            }
        }
        self.pump(now, in_use);
    }

    fn done_with(&mut self, what: What, result: Result<Reply, CallError>) {
        if let Err(e) = &result {
            if e.is_unreachable() {
                self.api = None;
            }
        }
        match what {
            What::Version => {
                let negotiated = match &result {
                    Ok(r) if r.ok() => api::negotiate(&r.body),
                    other => Err(format!("GET /version: {}", describe(other))),
                };
                match negotiated {
                    Ok((a, _)) => self.api = Some(a),
                    Err(e) => {
                        // The task waiting for it fails.
                        if let Some(task) = self.queue.pop_front() {
                            self.failed(task, &e);
                        }
                    }
                }
            }
            What::Task(task) => match result {
                Ok(r) if r.ok() || (r.status == 404 && matches!(task, Task::Remove { .. })) => {
                    self.succeeded(task, r)
                }
                other => self.failed(task, &describe(&other)),
            },
        }
    }

    fn succeeded(&mut self, task: Task, r: Reply) {
        match task {
            Task::Remove { name, .. } if r.status == 404 => {
                debug!("docker network {name} does not exist")
            }
            Task::Remove { name, .. } => info!("docker network {name} removed"),
            Task::Sweep | Task::Fetch => {
                let ours = match self.ours(&r.body) {
                    Ok(o) => o,
                    Err(e) => return self.failed(task, &e),
                };
                if task == Task::Sweep {
                    let names: Vec<&str> = ours.iter().map(|n| n.name.as_str()).collect();
                    info!(
                        "hard reset: removing {} docker network(s): {}",
                        ours.len(),
                        names.join(", ")
                    );
                    for n in ours.into_iter().rev() {
                        self.queue.push_front(Task::Remove {
                            name: n.id,
                            tuple: None,
                        });
                    }
                    return;
                }
                let mut f = Fetching {
                    pending: ours.len(),
                    ..Fetching::default()
                };
                f.fetched.list = r.body;
                for n in ours.into_iter().rev() {
                    self.queue.push_front(Task::Inspect(n.id));
                }
                self.fetching = Some(f);
                self.fetch_step(None);
            }
            Task::Inspect(id) => self.fetch_step(Some((id, r.body))),
        }
    }

    /// One inspection of the fetch came back (or none yet): hand the
    /// result over once all did.
    fn fetch_step(&mut self, got: Option<(String, Vec<u8>)>) {
        let Some(f) = self.fetching.as_mut() else {
            return;
        };
        if let Some(g) = got {
            f.fetched.networks.push(g);
            f.pending = f.pending.saturating_sub(1);
        }
        if f.pending == 0 {
            if let Some(f) = self.fetching.take() {
                self.done.push(Ok(f.fetched));
            }
        }
    }

    fn failed(&mut self, task: Task, why: &str) {
        match task {
            Task::Remove { name, .. } => warn!(
                "cannot remove docker network {name}: {why} (it is reused if its subnet \
                 comes back, and removed by -hard-reset)"
            ),
            Task::Sweep => warn!("hard reset: cannot list docker networks: {why}"),
            Task::Fetch | Task::Inspect(_) => {
                // The rest of this fetch is abandoned.
                self.queue.retain(|t| !matches!(t, Task::Inspect(_)));
                self.fetching = None;
                self.done
                    .push(Err(format!("cannot fetch the docker networks: {why}")));
            }
        }
    }

    /// The networks of ours in a `GET /networks` body.
    fn ours(&self, body: &[u8]) -> Result<Vec<NetworkListed>, String> {
        let all: Vec<NetworkListed> =
            parse_json(body).map_err(|e| format!("GET /networks: {e}"))?;
        Ok(all
            .into_iter()
            .filter(|n| self.drivers.contains(&n.driver) && api::valid_id(&n.id))
            .collect())
    }
}

fn describe(r: &Result<Reply, CallError>) -> String {
    match r {
        Ok(r) => api::error_message(r.status, &r.body),
        Err(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{IoOp, Res, Timer, TimerOp};
    use crate::http::RequestParser;
    use std::net::Ipv4Addr;

    /// Plays the shell and a dockerd answering from a script: each request
    /// the client writes is parsed and answered with the next reply.
    struct Shell {
        d: DockerNet,
        now: Instant,
        /// (method, target) of every request.
        seen: Vec<(String, String)>,
        replies: VecDeque<String>,
        /// Connects fail (dockerd is down).
        down: bool,
        timers: Vec<Timer>,
    }

    fn reply(status: u16, body: &str) -> String {
        format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn version() -> String {
        reply(
            200,
            r#"{"Version":"28.2.2","ApiVersion":"1.50","MinAPIVersion":"1.24"}"#,
        )
    }

    fn tuple(last: u8) -> Tuple {
        Tuple::new(
            "11111111-2222-4333-8444-555555555555",
            &format!("172.16.{last}.0/24"),
            "0a0b0c0d-0000-4000-8000-000000000030",
            Ipv4Addr::new(192, 168, 42, 21),
        )
        .unwrap()
    }

    impl Shell {
        fn new(plugin: &str) -> Shell {
            Shell {
                d: DockerNet::new(PathBuf::from("/fake/docker.sock"), plugin),
                now: Instant::now(),
                seen: Vec::new(),
                replies: VecDeque::new(),
                down: false,
                timers: Vec::new(),
            }
        }

        /// Runs until the client is idle, with `in_use` as the topology.
        fn run(&mut self, in_use: &dyn Fn(&Tuple) -> bool) {
            self.d.pump(self.now, in_use);
            let mut parser = RequestParser::new();
            loop {
                let effects = self.d.take_effects();
                if effects.is_empty() {
                    return;
                }
                for e in effects {
                    let node = InstanceKey::node();
                    match e {
                        Effect::Io(IoOp::Connect { key, .. }) => {
                            assert_eq!(key.inst, node);
                            let input = if self.down {
                                Input::ConnectFailed {
                                    res: key.what,
                                    error: "connection refused".into(),
                                }
                            } else {
                                parser = RequestParser::new();
                                Input::Connected { res: key.what }
                            };
                            self.d.input(self.now, input, in_use);
                        }
                        Effect::Io(IoOp::Write { key, bytes }) => {
                            parser.feed(&bytes);
                            let r = parser.next().unwrap().unwrap();
                            self.seen.push((r.method.clone(), r.target.clone()));
                            let answer = self.replies.pop_front().expect("a scripted reply");
                            let input = Input::Data {
                                res: key.what,
                                bytes: answer.into_bytes(),
                            };
                            self.d.input(self.now, input, in_use);
                        }
                        Effect::Io(IoOp::Close { .. }) => {}
                        Effect::Timer(TimerOp::Arm { key, .. }) => self.timers.push(key.what),
                        Effect::Timer(TimerOp::Cancel { key }) => {
                            self.timers.retain(|t| *t != key.what)
                        }
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
        }

        fn targets(&self) -> Vec<String> {
            self.seen.iter().map(|(m, t)| format!("{m} {t}")).collect()
        }
    }

    /// A tuple left without instances: its network is removed (the
    /// version negotiated first, once); one wanted again by then is kept;
    /// 404 is fine; every request has a deadline.
    #[test]
    fn emptied_tuples_lose_their_network_unless_in_use_again() {
        let mut s = Shell::new("ciaot1");
        s.d.remove("ciao_a".into(), tuple(5));
        s.d.remove("ciao_b".into(), tuple(6));
        s.d.remove("ciao_c".into(), tuple(7));
        s.replies.extend([
            version(),
            reply(204, ""),
            reply(404, r#"{"message":"network ciao_c not found"}"#),
        ]);
        let six = tuple(6);
        s.run(&|t| *t == six);
        assert_eq!(
            s.targets(),
            [
                "GET /version",
                "DELETE /v1.45/networks/ciao_a",
                "DELETE /v1.45/networks/ciao_c"
            ]
        );
        assert!(s.d.idle());
        assert!(s.timers.is_empty(), "each deadline ended with its call");
    }

    /// Hard reset: the networks of the plugin (and the original's `ciao`)
    /// go, by id; others stay.
    #[test]
    fn the_sweep_removes_ours_only() {
        let mut s = Shell::new("ciaot2");
        s.d.sweep();
        s.replies.extend([
            version(),
            reply(200, r#"[{"Name":"bridge","Id":"aa01","Driver":"bridge"},{"Name":"ciao_x","Id":"bb02","Driver":"ciaot2"},{"Name":"old","Id":"cc03","Driver":"ciao"},{"Name":"other","Id":"dd04","Driver":"macvlan"}]"#),
            reply(204, ""),
            reply(500, r#"{"message":"error while removing network: network old id cc03 has active endpoints"}"#),
        ]);
        s.run(&|_| false);
        assert_eq!(
            s.targets(),
            [
                "GET /version",
                "GET /v1.45/networks",
                "DELETE /v1.45/networks/bb02",
                "DELETE /v1.45/networks/cc03"
            ]
        );
        assert!(s.d.idle());
    }

    /// The plugin's rebuild gets the list and each of ours as dockerd
    /// sent them; a failure is handed over too.
    #[test]
    fn fetch_networks_hands_the_bodies_over() {
        let mut s = Shell::new("ciao");
        s.d.fetch_networks();
        let list = r#"[{"Name":"ciao_x","Id":"bb02","Driver":"ciao"},{"Name":"host","Id":"ee05","Driver":"host"}]"#;
        let one = r#"{"Name":"ciao_x","Id":"bb02","Driver":"ciao","Options":{"bridge":"br_x"},"Containers":{}}"#;
        s.replies
            .extend([version(), reply(200, list), reply(200, one)]);
        s.run(&|_| false);
        assert_eq!(
            s.targets(),
            [
                "GET /version",
                "GET /v1.45/networks",
                "GET /v1.45/networks/bb02"
            ]
        );
        assert_eq!(
            s.d.take_fetched(),
            [Ok(Fetched {
                list: list.as_bytes().to_vec(),
                networks: vec![("bb02".into(), one.as_bytes().to_vec())],
            })]
        );
        // None of ours: at once, empty.
        s.d.fetch_networks();
        s.replies.push_back(reply(200, "[]"));
        s.run(&|_| false);
        assert_eq!(
            s.d.take_fetched(),
            [Ok(Fetched {
                list: b"[]".to_vec(),
                networks: vec![]
            })]
        );
        // Garbage: an error.
        s.d.fetch_networks();
        s.replies.push_back(reply(200, "<html>"));
        s.run(&|_| false);
        assert!(matches!(s.d.take_fetched().as_slice(), [Err(e)] if e.contains("GET /networks")));
        assert!(s.d.idle());
    }

    /// dockerd down: each task fails on its own (logged), the version is
    /// negotiated again when it is back; a call past its deadline ends.
    #[test]
    fn dockerd_down_and_deadlines() {
        let mut s = Shell::new("ciao");
        s.down = true;
        s.d.remove("ciao_a".into(), tuple(5));
        s.d.fetch_networks();
        s.run(&|_| false);
        assert!(s.seen.is_empty());
        assert!(matches!(s.d.take_fetched().as_slice(), [Err(e)] if e.contains("dockerd")));
        assert!(s.d.idle());
        s.down = false;
        s.d.remove("ciao_a".into(), tuple(5));
        s.replies.extend([version(), reply(204, "")]);
        s.run(&|_| false);
        assert_eq!(
            s.targets(),
            ["GET /version", "DELETE /v1.45/networks/ciao_a"]
        );

        // A request that is never answered ends at its deadline.
        s.d.remove("ciao_b".into(), tuple(6));
        s.d.pump(s.now, &|_| false);
        let effects = s.d.take_effects();
        let tag = effects
            .iter()
            .find_map(|e| match e {
                Effect::Timer(TimerOp::Arm { key, .. }) => match key.what {
                    Timer::CtrCall(t) => Some(t),
                    _ => None,
                },
                _ => None,
            })
            .expect("a deadline");
        assert!(!s.d.idle());
        s.d.input(
            s.now,
            Input::Connected {
                res: Res::Call(tag),
            },
            &|_| false,
        );
        s.d.input(s.now, Input::Timer(Timer::CtrCall(tag)), &|_| false);
        assert!(s.d.idle());
    }
}
