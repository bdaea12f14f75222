//! A scripted dockerd for the driver's unit tests: it answers the bytes the
//! driver writes with the bytes a real daemon would send (shapes taken from
//! Docker Engine 20.10.24), and plays the shell's part (connections,
//! timers, file operations on an in-memory instances directory, node-wide
//! jobs) so that whole START/STOP/DELETE/recovery sequences of one or more
//! instances run without a daemon and without touching the disk.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::driver::{
    Cx, Driver, Effect, FileAction, FileError, FileOp, Input, InstanceKey, IoOp, Jobs, Key,
    Outcome, Res, Timer, TimerOp, Usage,
};
use crate::http::json::quote;
use crate::http::{Request, RequestParser};
use crate::payloads::InstanceConfig;

use super::{Docker, Shared, SharedRef};

#[derive(Debug, Clone)]
pub(crate) struct Container {
    pub id: String,
    pub name: String,
    pub running: bool,
    pub labels: BTreeMap<String, String>,
    pub body: String,
    /// SIGTERM does nothing (PID 1 without a handler).
    pub ignores_term: bool,
    pub exit_code: i64,
    pub cpu_ns: u64,
}

/// The daemon's state and behaviour.
pub(crate) struct Daemon {
    pub api: &'static str,
    pub min_api: &'static str,
    pub up: bool,
    pub images: BTreeSet<String>,
    pub containers: Vec<Container>,
    pub next_id: u32,
    /// Every request seen: (method, path with query, body).
    pub log: Vec<(String, String, String)>,
    /// `start` fails with this message.
    pub start_error: Option<String>,
    /// Requests matching this substring are never answered.
    pub hang: Option<String>,
    /// Docker networks by name: id, driver and create body.
    pub networks: BTreeMap<String, (String, String, String)>,
    /// The next network create is refused with this status and message.
    pub network_error: Option<(u16, String)>,
}

impl Default for Daemon {
    fn default() -> Self {
        Daemon {
            api: "1.41",
            min_api: "1.12",
            up: true,
            images: ["ubuntu:latest".to_string()].into(),
            containers: Vec::new(),
            next_id: 1,
            log: Vec::new(),
            start_error: None,
            hang: None,
            networks: BTreeMap::new(),
            network_error: None,
        }
    }
}

enum Answer {
    Now(Vec<u8>),
    /// A long poll: answered later (wait).
    Hold,
}

fn reply(status: u16, body: &str) -> Answer {
    let reason = crate::http::reason_phrase(status);
    Answer::Now(
        format!(
            "HTTP/1.1 {status} {reason}\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

fn no_content() -> Answer {
    Answer::Now(b"HTTP/1.1 204 No Content\r\nApi-Version: 1.41\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\n\r\n".to_vec())
}

fn message(status: u16, m: &str) -> Answer {
    reply(status, &format!("{{\"message\":{}}}\n", quote(m)))
}

/// The chunked reply of a wait that ends.
pub(crate) fn wait_reply(code: i64) -> Vec<u8> {
    let body = format!("{{\"Error\":null,\"StatusCode\":{code}}}\n");
    format!(
        "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    )
    .into_bytes()
}

impl Daemon {
    fn find(&self, key: &str) -> Option<usize> {
        self.containers.iter().position(|c| {
            c.id == key || c.name == key || (key.len() >= 12 && c.id.starts_with(key))
        })
    }

    pub(crate) fn container(&self, key: &str) -> Option<&Container> {
        self.find(key).map(|i| &self.containers[i])
    }

    pub(crate) fn count(&self, method: &str, needle: &str) -> usize {
        self.log
            .iter()
            .filter(|(m, p, _)| m == method && p.contains(needle))
            .count()
    }

    fn inspect(&self, c: &Container) -> String {
        let labels: Vec<String> = c
            .labels
            .iter()
            .map(|(k, v)| format!("{}:{}", quote(k), quote(v)))
            .collect();
        format!(
            "{{\"Id\":\"{}\",\"Name\":\"/{}\",\"State\":{{\"Status\":\"{}\",\"Running\":{},\"Paused\":false,\"Restarting\":false,\"ExitCode\":{}}},\"Config\":{{\"Hostname\":\"h\",\"Labels\":{{{}}}}},\"SizeRootFs\":2076250}}",
            c.id,
            c.name,
            if c.running { "running" } else { "exited" },
            c.running,
            c.exit_code,
            labels.join(",")
        )
    }

    fn answer(&mut self, r: &Request) -> Answer {
        let target = r.target.clone();
        self.log.push((
            r.method.clone(),
            target.clone(),
            String::from_utf8_lossy(&r.body).into_owned(),
        ));
        if self.hang.as_deref().is_some_and(|h| target.contains(h)) {
            return Answer::Hold;
        }
        if r.path == "/version" {
            return reply(200, &format!("{{\"Version\":\"20.10.24+dfsg1\",\"ApiVersion\":\"{}\",\"MinAPIVersion\":\"{}\",\"Os\":\"linux\"}}\n", self.api, self.min_api));
        }
        let Some(rest) = r.path.strip_prefix("/v") else {
            return message(400, "no version");
        };
        let Some((_, path)) = rest.split_once('/') else {
            return message(404, "page not found");
        };
        let parts: Vec<&str> = path.split('/').collect();
        match (r.method.as_str(), parts.as_slice()) {
            ("GET", ["images", .., "json"]) => {
                let name = path
                    .strip_prefix("images/")
                    .and_then(|p| p.strip_suffix("/json"))
                    .unwrap_or("");
                if self.images.contains(name) {
                    reply(
                        200,
                        &format!("{{\"Id\":\"sha256:fb66\",\"RepoTags\":[\"{name}\"]}}\n"),
                    )
                } else {
                    message(
                        404,
                        &format!("no such image: {name}: No such image: {name}"),
                    )
                }
            }
            ("POST", ["images", "create"]) => {
                let from = r.query_param("fromImage").unwrap_or_default();
                if from.starts_with("127.0.0.1:1/") {
                    return message(500, "Get \"http://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: connection refused");
                }
                let tag = r.query_param("tag").unwrap_or_default();
                let lines = if from == "badstream" {
                    "{\"status\":\"Pulling from library/x\",\"id\":\"latest\"}\r\n{\"errorDetail\":{\"message\":\"manifest unknown\"},\"error\":\"manifest unknown\"}\r\n".to_string()
                } else {
                    self.images.insert(format!("{from}:{tag}"));
                    "{\"status\":\"Pulling from library/x\",\"id\":\"latest\"}\r\n{\"status\":\"Downloading\",\"progressDetail\":{\"current\":1,\"total\":2},\"progress\":\"[=> ]\",\"id\":\"a\"}\r\n{\"status\":\"Status: Downloaded newer image\"}\r\n".to_string()
                };
                let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
                for l in lines.split_inclusive("\r\n") {
                    out.extend_from_slice(format!("{:x}\r\n{l}\r\n", l.len()).as_bytes());
                }
                out.extend_from_slice(b"0\r\n\r\n");
                Answer::Now(out)
            }
            ("POST", ["networks", "create"]) => {
                if let Some((status, m)) = self.network_error.take() {
                    return message(status, &m);
                }
                #[derive(serde::Deserialize)]
                struct N {
                    #[serde(rename = "Name")]
                    name: String,
                    #[serde(rename = "Driver")]
                    driver: String,
                }
                let body = String::from_utf8_lossy(&r.body).into_owned();
                let n: N = match crate::http::parse_json(body.as_bytes()) {
                    Ok(n) => n,
                    Err(e) => return message(400, &e.to_string()),
                };
                if self.networks.contains_key(&n.name) {
                    return message(409, &format!("network with name {} already exists", n.name));
                }
                let id = format!("{:064x}", 0xbeef0000u64 + u64::from(self.next_id));
                self.next_id += 1;
                self.networks.insert(n.name, (id.clone(), n.driver, body));
                reply(201, &format!("{{\"Id\":\"{id}\",\"Warning\":\"\"}}\n"))
            }
            ("GET", ["networks"]) => {
                let items: Vec<String> = self
                    .networks
                    .iter()
                    .map(|(name, (id, driver, _))| {
                        format!(
                            "{{\"Name\":{},\"Id\":\"{id}\",\"Driver\":{}}}",
                            quote(name),
                            quote(driver)
                        )
                    })
                    .collect();
                reply(200, &format!("[{}]\n", items.join(",")))
            }
            (m, ["networks", key]) => {
                let key = crate::http::percent_decode(key, false).unwrap_or_default();
                let found = self
                    .networks
                    .iter()
                    .find(|(name, (id, _, _))| **name == key || *id == key)
                    .map(|(name, (id, driver, _))| (name.clone(), id.clone(), driver.clone()));
                let Some((name, id, driver)) = found else {
                    return message(404, &format!("network {key} not found"));
                };
                match m {
                    "DELETE" => {
                        self.networks.remove(&name);
                        no_content()
                    }
                    "GET" => reply(
                        200,
                        &format!(
                            "{{\"Name\":{},\"Id\":\"{id}\",\"Driver\":{},\"Options\":{{}},\"Containers\":{{}}}}\n",
                            quote(&name),
                            quote(&driver)
                        ),
                    ),
                    _ => message(404, "page not found"),
                }
            }
            ("POST", ["containers", "create"]) => {
                let name = r.query_param("name").unwrap_or_default();
                if self.find(&name).is_some() {
                    return message(
                        409,
                        &format!("Conflict. The container name \"/{name}\" is already in use"),
                    );
                }
                let body = String::from_utf8_lossy(&r.body).into_owned();
                #[derive(serde::Deserialize, Default)]
                struct H {
                    #[serde(rename = "NetworkMode", default)]
                    network_mode: Option<String>,
                }
                #[derive(serde::Deserialize)]
                struct B {
                    #[serde(rename = "Image")]
                    image: String,
                    #[serde(rename = "Labels", default)]
                    labels: BTreeMap<String, String>,
                    #[serde(rename = "HostConfig", default)]
                    host_config: H,
                }
                let b: B = match crate::http::parse_json(body.as_bytes()) {
                    Ok(b) => b,
                    Err(e) => return message(400, &e.to_string()),
                };
                if !self.images.contains(&b.image) {
                    return message(404, &format!("No such image: {}", b.image));
                }
                if let Some(n) = b.host_config.network_mode {
                    if !self.networks.contains_key(&n) {
                        return message(404, &format!("network {n} not found"));
                    }
                }
                let id = format!("{:064x}", 0xc0ffee0000u64 + u64::from(self.next_id));
                self.next_id += 1;
                self.containers.push(Container {
                    id: id.clone(),
                    name,
                    running: false,
                    labels: b.labels,
                    body,
                    ignores_term: false,
                    exit_code: 0,
                    cpu_ns: 0,
                });
                reply(201, &format!("{{\"Id\":\"{id}\",\"Warnings\":[]}}\n"))
            }
            ("GET", ["containers", "json"]) => {
                let filters = r.query_param("filters").unwrap_or_default();
                let items: Vec<String> = self
                    .containers
                    .iter()
                    .filter(|c| c.labels.iter().any(|(k, v)| filters.contains(&format!("{k}={v}"))))
                    .map(|c| {
                        let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{}:{}", quote(k), quote(v))).collect();
                        format!(
                            "{{\"Id\":\"{}\",\"Names\":[\"/{}\"],\"State\":\"{}\",\"Labels\":{{{}}}}}",
                            c.id,
                            c.name,
                            if c.running { "running" } else { "exited" },
                            labels.join(",")
                        )
                    })
                    .collect();
                reply(200, &format!("[{}]\n", items.join(",")))
            }
            (m, ["containers", key, rest @ ..]) => {
                let Some(i) = self.find(key) else {
                    return message(404, &format!("No such container: {key}"));
                };
                match (m, rest) {
                    ("POST", ["start"]) => {
                        if let Some(e) = &self.start_error {
                            return message(400, e);
                        }
                        if self.containers[i].running {
                            return Answer::Now(b"HTTP/1.1 304 Not Modified\r\n\r\n".to_vec());
                        }
                        self.containers[i].running = true;
                        no_content()
                    }
                    ("GET", ["json"]) => reply(200, &self.inspect(&self.containers[i].clone())),
                    ("GET", ["stats"]) => {
                        let c = &mut self.containers[i];
                        c.cpu_ns += 250_000_000;
                        reply(200, &format!("{{\"read\":\"2026-11-25T19:00:51Z\",\"cpu_stats\":{{\"cpu_usage\":{{\"total_usage\":{}}}}},\"memory_stats\":{{\"usage\":{}}}}}\n", c.cpu_ns, 5u64 << 20))
                    }
                    ("POST", ["wait"]) => {
                        if self.containers[i].running {
                            Answer::Hold
                        } else {
                            Answer::Now(wait_reply(self.containers[i].exit_code))
                        }
                    }
                    ("POST", ["stop"]) => {
                        let c = &mut self.containers[i];
                        if !c.running {
                            return Answer::Now(b"HTTP/1.1 304 Not Modified\r\n\r\n".to_vec());
                        }
                        c.running = false;
                        c.exit_code = if c.ignores_term { 137 } else { 143 };
                        no_content()
                    }
                    ("POST", ["kill"]) => {
                        let c = &mut self.containers[i];
                        if !c.running {
                            return message(409, &format!("Container {} is not running", c.id));
                        }
                        c.running = false;
                        c.exit_code = 137;
                        no_content()
                    }
                    ("DELETE", []) => {
                        self.containers.remove(i);
                        no_content()
                    }
                    _ => message(404, "page not found"),
                }
            }
            _ => message(404, "page not found"),
        }
    }
}

/// The answer to a file operation.
type FileResult = Result<Vec<u8>, FileError>;

/// One instance: its key, configuration, directory and driver.
pub(crate) struct Inst {
    pub key: InstanceKey,
    pub cfg: InstanceConfig,
    pub dir: PathBuf,
    pub drv: Docker,
    /// The network attachment the manager hands the driver.
    pub vnic: Option<crate::driver::Vnic>,
    pub outcomes: Vec<Outcome>,
    /// Forgotten by the manager (deleted): its answers are dropped.
    pub gone: bool,
}

/// The drivers, the daemon, and the shell between them.
pub(crate) struct Bench {
    /// The launcher's instances; index 0 is made by [`Bench::new`].
    pub insts: Vec<Inst>,
    shared: SharedRef,
    /// The instances directory.
    pub base: PathBuf,
    stop_timeout: Duration,
    pub daemon: Daemon,
    pub now: Instant,
    jobs: Jobs,
    next_generation: u64,
    effects: Vec<Effect>,
    /// The files of the instances directory, in memory: bytes and mode.
    pub files: BTreeMap<PathBuf, (Vec<u8>, u32)>,
    /// Its directories.
    pub dirs: BTreeSet<PathBuf>,
    /// File operations on paths containing this fail (permission denied).
    pub file_error: Option<String>,
    /// Durable writes done in this turn, answered at its end (as the file
    /// executor answers them once the batch is on disk).
    staged: Vec<(Key<Res>, FileResult)>,
    /// Durable writes are not answered until [`Bench::finish_writes`].
    pub stall_writes: bool,
    /// Connects are not answered until [`Bench::finish_connects`].
    pub stall_connects: bool,
    stalled: Vec<Key<Res>>,
    /// Connection attempts seen (answered or not).
    pub connects: usize,
    parsers: BTreeMap<Key<Res>, RequestParser>,
    /// Requests the daemon holds (long polls, or made to hang): the
    /// container they are about.
    held: BTreeMap<Key<Res>, String>,
    /// One timer per key: arming again moves it.
    timers: BTreeMap<Key<Timer>, Instant>,
    /// Connections the drivers closed.
    pub closed: usize,
    /// Answers waiting to be handed to their drivers, in order.
    inbox: VecDeque<(InstanceKey, Input)>,
    /// Inside [`Bench::pump`].
    pumping: bool,
    /// The host's side of the volume tools (`rbd`, `mount`, `umount`).
    pub host: Host,
}

/// A scripted host for the volume steps: the children the driver runs
/// and the mount table they change.
#[derive(Debug, Default)]
pub(crate) struct Host {
    /// Every command line run, in order (the `rbd` options left out).
    pub log: Vec<String>,
    /// Mounts: (mount point, device), in mount order.
    pub mounts: Vec<(String, String)>,
    /// Mapped images: (image, device).
    pub mapped: Vec<(String, String)>,
    /// Commands whose line contains this fail (status 32).
    pub fail: Option<String>,
    next_device: u32,
}

impl Host {
    /// Runs one command line: (status, stdout).
    fn run(&mut self, argv: &[String]) -> (i32, String) {
        let args: Vec<&str> = argv
            .iter()
            .map(String::as_str)
            .filter(|a| !matches!(*a, "--id" | "ciao" | "-o" | "noudev"))
            .collect();
        let line = args.join(" ");
        self.log.push(line.clone());
        if self.fail.as_deref().is_some_and(|f| line.contains(f)) {
            return (32, String::new());
        }
        match args.as_slice() {
            ["rbd", "showmapped", ..] => {
                let items: Vec<String> = self
                    .mapped
                    .iter()
                    .map(|(n, d)| format!(r#"{{"pool":"rbd","name":"{n}","device":"{d}"}}"#))
                    .collect();
                (0, format!("[{}]", items.join(",")))
            }
            ["rbd", "map", name] => {
                let d = format!("/dev/rbd{}", self.next_device);
                self.next_device += 1;
                self.mapped.push((name.to_string(), d.clone()));
                (0, format!("{d}\n"))
            }
            ["rbd", "unmap", dev] => {
                self.mapped.retain(|(_, d)| d != dev);
                (0, String::new())
            }
            ["mount", dev, point] => {
                self.mounts.push((point.to_string(), dev.to_string()));
                (0, String::new())
            }
            ["umount", point] => {
                self.mounts.retain(|(p, _)| p != point);
                (0, String::new())
            }
            other => panic!("unexpected command {other:?}"),
        }
    }

    /// `/proc/self/mountinfo` for the mounts.
    fn mountinfo(&self) -> Vec<u8> {
        let mut t = String::from("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n");
        for (i, (p, d)) in self.mounts.iter().enumerate() {
            t.push_str(&format!("{} 22 254:{i} / {p} rw - ext4 {d} rw\n", 30 + i));
        }
        t.into_bytes()
    }
}

impl Bench {
    /// A launcher with one docker instance, and a daemon with
    /// `ubuntu:latest`.
    pub(crate) fn new(tag: &str, stop_timeout: Duration) -> Bench {
        let base = PathBuf::from(format!("/fake/ciao-docker-unit-{tag}/instances"));
        let mut b = Bench {
            insts: Vec::new(),
            shared: Bench::shared(&base, stop_timeout),
            dirs: [base.clone()].into(),
            base,
            stop_timeout,
            daemon: Daemon::default(),
            now: Instant::now(),
            jobs: Jobs::default(),
            next_generation: 0,
            effects: Vec::new(),
            files: BTreeMap::new(),
            file_error: None,
            staged: Vec::new(),
            stall_writes: false,
            stall_connects: false,
            stalled: Vec::new(),
            connects: 0,
            parsers: BTreeMap::new(),
            held: BTreeMap::new(),
            timers: BTreeMap::new(),
            closed: 0,
            inbox: VecDeque::new(),
            pumping: false,
            host: Host::default(),
        };
        b.add("67d86208-b46c-4465-9018-e14087d415f");
        b
    }

    fn shared(base: &Path, stop_timeout: Duration) -> SharedRef {
        Rc::new(RefCell::new(Shared::new(
            PathBuf::from("/fake/docker.sock"),
            stop_timeout,
            Duration::from_secs(2),
            base.to_string_lossy().into_owned(),
        )))
    }

    /// Another instance of the same launcher (its directory is made);
    /// returns its index.
    pub(crate) fn add(&mut self, uuid: &str) -> usize {
        let dir = self.base.join(uuid);
        self.dirs.insert(dir.clone());
        self.next_generation += 1;
        let cfg = InstanceConfig {
            instance_uuid: uuid.into(),
            docker_image: "ubuntu:latest".into(),
            vm_type: crate::payloads::VmType::Docker,
            mem_mb: 16,
            cpus: 1,
            ..InstanceConfig::default()
        };
        self.insts.push(Inst {
            key: InstanceKey {
                id: uuid.into(),
                generation: self.next_generation,
            },
            cfg,
            drv: Docker::new(self.shared.clone(), dir.clone()),
            dir,
            vnic: None,
            outcomes: Vec::new(),
            gone: false,
        });
        self.insts.len() - 1
    }

    /// Instance 0's configuration (change it before its START).
    pub(crate) fn cfg(&mut self) -> &mut InstanceConfig {
        &mut self.insts[0].cfg
    }

    /// Instance 0's directory.
    pub(crate) fn dir(&self) -> PathBuf {
        self.insts[0].dir.clone()
    }

    /// Instance 0's current resource use.
    pub(crate) fn usage(&mut self) -> Usage {
        let now = self.now;
        let i = &mut self.insts[0];
        i.drv.usage(&i.cfg, now)
    }

    /// A file of the instances directory.
    pub(crate) fn file(&self, path: &Path) -> Option<&(Vec<u8>, u32)> {
        self.files.get(path)
    }

    /// A launcher restart: new drivers (new generations) with fresh shared
    /// state; the shell's connections, timers and jobs are gone, the files
    /// stay.
    pub(crate) fn restart_launcher(&mut self) {
        self.shared = Bench::shared(&self.base, self.stop_timeout);
        self.jobs = Jobs::default();
        self.parsers.clear();
        self.held.clear();
        self.timers.clear();
        self.stalled.clear();
        self.staged.clear();
        self.inbox.clear();
        for i in 0..self.insts.len() {
            self.next_generation += 1;
            let inst = &mut self.insts[i];
            inst.key.generation = self.next_generation;
            inst.drv = Docker::new(self.shared.clone(), inst.dir.clone());
        }
    }

    /// Calls instance 0's driver, then plays the shell until nothing moves.
    pub(crate) fn call(&mut self, f: impl FnOnce(&mut Docker, &mut Cx)) {
        self.call_on(0, f);
    }

    /// Calls instance `who`'s driver, then plays the shell.
    pub(crate) fn call_on(&mut self, who: usize, f: impl FnOnce(&mut Docker, &mut Cx)) {
        {
            let inst = &mut self.insts[who];
            assert!(!inst.gone, "instance {who} was forgotten");
            let mut cx = Cx::new(
                self.now,
                &inst.key,
                &inst.cfg,
                &mut self.effects,
                &mut inst.outcomes,
                &mut self.jobs,
            );
            cx.vnic = inst.vnic.as_ref();
            f(&mut inst.drv, &mut cx);
        }
        self.settle();
        self.pump();
    }

    /// The manager forgets instance `who` (deleted): the jobs it led pass
    /// on, and its connections and timers are dropped.
    pub(crate) fn forget(&mut self, who: usize) {
        let key = self.insts[who].key.clone();
        self.insts[who].gone = true;
        self.jobs.leave(&key);
        self.parsers.retain(|k, _| k.inst != key);
        self.held.retain(|k, _| k.inst != key);
        self.timers.retain(|k, _| k.inst != key);
        self.stalled.retain(|k| k.inst != key);
        self.staged.retain(|(k, _)| k.inst != key);
        self.settle();
        self.pump();
    }

    /// Queues an input for the instance it names (dropped if forgotten
    /// meanwhile), and plays the shell.
    fn deliver(&mut self, inst: &InstanceKey, input: Input) {
        self.inbox.push_back((inst.clone(), input));
        self.pump();
    }

    /// What node-wide jobs have to tell their waiters goes to them next.
    fn settle(&mut self) {
        for notice in self.jobs.take_notices().into_iter().rev() {
            self.inbox.push_front(notice);
        }
    }

    /// Plays the shell until nothing moves: executes the effects, then
    /// hands the next answer to its driver (whose effects come first
    /// again), and answers the durable writes when nothing else is left
    /// (the end of the loop turn). Re-entered from a driver call, it
    /// leaves everything to the outer run.
    fn pump(&mut self) {
        if self.pumping {
            return;
        }
        self.pumping = true;
        loop {
            for e in std::mem::take(&mut self.effects) {
                self.execute(e);
            }
            if !self.effects.is_empty() {
                continue;
            }
            if let Some((inst, input)) = self.inbox.pop_front() {
                let who = self.insts.iter().position(|i| i.key == inst && !i.gone);
                if let Some(who) = who {
                    self.call_on(who, |d, cx| d.input(cx, input));
                }
                continue;
            }
            if self.stall_writes || self.staged.is_empty() {
                break;
            }
            for (key, result) in std::mem::take(&mut self.staged) {
                self.inbox.push_back((
                    key.inst,
                    Input::File {
                        res: key.what,
                        result,
                    },
                ));
            }
        }
        self.pumping = false;
    }

    fn execute(&mut self, e: Effect) {
        match e {
            Effect::Io(IoOp::Connect { key, .. }) => {
                self.connects += 1;
                if self.stall_connects {
                    self.stalled.push(key);
                } else {
                    self.connected(key);
                }
            }
            Effect::Io(IoOp::Write { key, bytes }) => {
                let Some(p) = self.parsers.get_mut(&key) else {
                    return;
                };
                p.feed(&bytes);
                let req = match p.next() {
                    Ok(Some(r)) => r,
                    other => panic!("driver wrote a bad request: {other:?}"),
                };
                match self.daemon.answer(&req) {
                    Answer::Now(bytes) => self.deliver(
                        &key.inst,
                        Input::Data {
                            res: key.what,
                            bytes,
                        },
                    ),
                    Answer::Hold => {
                        let container = req.path.split('/').nth(3).unwrap_or("").to_string();
                        self.held.insert(key, container);
                    }
                }
            }
            Effect::Io(IoOp::Close { key }) => {
                self.parsers.remove(&key);
                self.held.remove(&key);
                self.stalled.retain(|k| *k != key);
                self.closed += 1;
            }
            Effect::Timer(TimerOp::Arm { key, at }) => {
                self.timers.insert(key, at);
            }
            Effect::Timer(TimerOp::Cancel { key }) => {
                self.timers.remove(&key);
            }
            Effect::File(op) => self.file_op(op),
            Effect::Io(IoOp::Spawn { key, argv, .. }) => {
                let argv: Vec<String> = argv
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect();
                let (code, stdout) = self.host.run(&argv);
                self.deliver(
                    &key.inst,
                    Input::Exited {
                        res: key.what,
                        status: Some(crate::sys::pidfd::ChildStatus::Exited(code)),
                        timed_out: false,
                        stdout: stdout.into_bytes(),
                        stderr: Vec::new(),
                        error: String::new(),
                    },
                );
            }
            other => panic!("unexpected effect {other:?}"),
        }
    }

    /// Answers a connect as the daemon's state says.
    fn connected(&mut self, key: Key<Res>) {
        let input = if self.daemon.up {
            self.parsers.insert(key.clone(), RequestParser::new());
            Input::Connected { res: key.what }
        } else {
            Input::ConnectFailed {
                res: key.what,
                error: "/fake/docker.sock: Connection refused (os error 111)".into(),
            }
        };
        self.deliver(&key.inst, input);
    }

    /// Answers the connects held back by [`Bench::stall_connects`] (which
    /// is turned off).
    pub(crate) fn finish_connects(&mut self) {
        self.stall_connects = false;
        for key in std::mem::take(&mut self.stalled) {
            self.connected(key);
        }
    }

    /// Answers the durable writes held back by [`Bench::stall_writes`]
    /// (which is turned off).
    pub(crate) fn finish_writes(&mut self) {
        self.stall_writes = false;
        self.pump();
    }

    /// Durable writes waiting for [`Bench::finish_writes`].
    pub(crate) fn staged(&self) -> usize {
        self.staged.len()
    }

    /// The instances whose connects wait for [`Bench::finish_connects`].
    pub(crate) fn asking(&self) -> Vec<&str> {
        self.stalled.iter().map(|k| &*k.inst.id).collect()
    }

    /// Runs a file operation on the in-memory instances directory.
    fn file_op(&mut self, op: FileOp) {
        let FileOp { key, action } = op;
        let path = action.path().to_path_buf();
        let fail = |kind: io::ErrorKind| Err(FileError::new(&path, &io::Error::from(kind)));
        let mut durable_write = false;
        let result = if self
            .file_error
            .as_deref()
            .is_some_and(|f| path.to_string_lossy().contains(f))
        {
            fail(io::ErrorKind::PermissionDenied)
        } else {
            match action {
                FileAction::CreateDir { .. } if self.dirs.contains(&path) => {
                    fail(io::ErrorKind::AlreadyExists)
                }
                FileAction::CreateDir { .. } => {
                    self.dirs.extend(path.ancestors().map(Path::to_path_buf));
                    Ok(Vec::new())
                }
                FileAction::Write {
                    bytes,
                    mode,
                    durable,
                    ..
                } => {
                    if let Some(parent) = path.parent() {
                        self.dirs.extend(parent.ancestors().map(Path::to_path_buf));
                    }
                    self.files.insert(path.clone(), (bytes, mode));
                    durable_write = durable;
                    Ok(Vec::new())
                }
                FileAction::Read { .. } if path == Path::new("/proc/self/mountinfo") => {
                    Ok(self.host.mountinfo())
                }
                FileAction::Read { .. } => match self.files.get(&path) {
                    Some((bytes, _)) => Ok(bytes.clone()),
                    None if self.dirs.contains(&path) => fail(io::ErrorKind::IsADirectory),
                    None => fail(io::ErrorKind::NotFound),
                },
                FileAction::RemoveFile { .. } => {
                    self.files.remove(&path);
                    Ok(Vec::new())
                }
                FileAction::RemoveTree { .. } => {
                    self.files.retain(|p, _| !p.starts_with(&path));
                    self.dirs.retain(|p| !p.starts_with(&path));
                    Ok(Vec::new())
                }
                // The manager's; a driver never asks for one.
                FileAction::Record { .. } => fail(io::ErrorKind::Unsupported),
                FileAction::CheckAbsent { .. }
                    if self.dirs.contains(&path) || self.files.contains_key(&path) =>
                {
                    fail(io::ErrorKind::AlreadyExists)
                }
                FileAction::CheckAbsent { .. } => Ok(Vec::new()),
            }
        };
        if durable_write {
            self.staged.push((key, result));
        } else {
            self.deliver(
                &key.inst,
                Input::File {
                    res: key.what,
                    result,
                },
            );
        }
    }

    /// Answers the waits of containers that are no longer running (after
    /// `docker stop`, `docker rm -f` or an exit).
    pub(crate) fn settle_waits(&mut self) {
        let keys: Vec<Key<Res>> = self.held.keys().cloned().collect();
        for key in keys {
            let Some(container) = self.held.get(&key) else {
                continue;
            };
            let bytes = match self.daemon.container(container) {
                Some(c) if c.running => continue,
                Some(c) => wait_reply(c.exit_code),
                None => wait_reply(137),
            };
            self.held.remove(&key);
            self.deliver(
                &key.inst,
                Input::Data {
                    res: key.what,
                    bytes,
                },
            );
        }
    }

    /// The daemon dies: every connection breaks.
    pub(crate) fn daemon_dies(&mut self) {
        self.daemon.up = false;
        for c in &mut self.daemon.containers {
            c.running = false;
        }
        let keys: Vec<Key<Res>> = self.parsers.keys().cloned().collect();
        self.held.clear();
        for key in keys {
            self.parsers.remove(&key);
            self.deliver(&key.inst, Input::Closed { res: key.what });
        }
    }

    /// Moves the clock, firing due timers in order.
    pub(crate) fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        loop {
            let next = self
                .timers
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(k, at)| (k.clone(), *at));
            match next {
                Some((key, at)) if at <= end => {
                    self.timers.remove(&key);
                    self.now = self.now.max(at);
                    self.deliver(&key.inst, Input::Timer(key.what));
                }
                _ => break,
            }
        }
        self.now = end;
    }

    /// The timers instance `who` has armed.
    pub(crate) fn timers(&self, who: usize) -> Vec<Timer> {
        let key = &self.insts[who].key;
        self.timers
            .keys()
            .filter(|k| k.inst == *key)
            .map(|k| k.what)
            .collect()
    }

    /// Instance 0's outcomes since the last call.
    pub(crate) fn take(&mut self) -> Vec<Outcome> {
        self.take_of(0)
    }

    /// Instance `who`'s outcomes since the last call.
    pub(crate) fn take_of(&mut self, who: usize) -> Vec<Outcome> {
        std::mem::take(&mut self.insts[who].outcomes)
    }

    pub(crate) fn held(&self) -> usize {
        self.held.len()
    }

    pub(crate) fn open(&self) -> usize {
        self.parsers.len()
    }

    /// A START of instance 0.
    pub(crate) fn start(&mut self, user_data: &[u8], meta_data: &[u8]) {
        self.start_on(0, user_data, meta_data);
    }

    /// A START of instance `who`.
    pub(crate) fn start_on(&mut self, who: usize, user_data: &[u8], meta_data: &[u8]) {
        let (u, m) = (user_data.to_vec(), meta_data.to_vec());
        self.call_on(who, |d, cx| d.start(cx, false, &u, &m));
    }
}
