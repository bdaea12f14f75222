//! A scripted dockerd for the driver's unit tests: it answers the bytes the
//! driver writes with the bytes a real daemon would send (shapes taken from
//! Docker Engine 20.10.24), and plays the shell's part (connections, timers)
//! so that whole START/STOP/DELETE/recovery sequences run without a daemon.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::http::json::quote;
use crate::http::{Request, RequestParser};
use crate::launcher::driver::{Cx, Driver, Effect, Input, Key, Outcome};
use crate::payloads::InstanceConfig;

use super::{Docker, Shared};

#[derive(Debug, Clone)]
pub struct Container {
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
pub struct Daemon {
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
pub fn wait_reply(code: i64) -> Vec<u8> {
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

    pub fn container(&self, key: &str) -> Option<&Container> {
        self.find(key).map(|i| &self.containers[i])
    }

    pub fn count(&self, method: &str, needle: &str) -> usize {
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
            ("POST", ["containers", "create"]) => {
                let name = r.query_param("name").unwrap_or_default();
                if self.find(&name).is_some() {
                    return message(
                        409,
                        &format!("Conflict. The container name \"/{name}\" is already in use"),
                    );
                }
                let body = String::from_utf8_lossy(&r.body).into_owned();
                #[derive(serde::Deserialize)]
                struct B {
                    #[serde(rename = "Image")]
                    image: String,
                    #[serde(rename = "Labels", default)]
                    labels: BTreeMap<String, String>,
                }
                let b: B = match crate::http::parse_json(body.as_bytes()) {
                    Ok(b) => b,
                    Err(e) => return message(400, &e.to_string()),
                };
                if !self.images.contains(&b.image) {
                    return message(404, &format!("No such image: {}", b.image));
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

/// The driver, the daemon, and the shell between them.
pub struct Bench {
    pub drv: Docker,
    /// The instances directory.
    pub base: PathBuf,
    stop_timeout: Duration,
    pub daemon: Daemon,
    pub cfg: InstanceConfig,
    pub dir: PathBuf,
    pub now: Instant,
    pub outcomes: Vec<Outcome>,
    effects: Vec<Effect>,
    parsers: BTreeMap<u32, RequestParser>,
    /// Long polls waiting: tag → container id.
    held: BTreeMap<u32, String>,
    timers: Vec<(u32, Instant)>,
    /// Connections the driver closed.
    pub closed: usize,
}

impl Bench {
    pub fn new(tag: &str, stop_timeout: Duration) -> Bench {
        let base =
            std::env::temp_dir().join(format!("ciao-docker-unit-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let uuid = "67d86208-b46c-4465-9018-e14087d415f";
        let dir = base.join(uuid);
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = InstanceConfig {
            instance_uuid: uuid.into(),
            docker_image: "ubuntu:latest".into(),
            vm_type: crate::payloads::VmType::Docker,
            mem_mb: 16,
            cpus: 1,
            ..InstanceConfig::default()
        };
        Bench {
            drv: Docker::standalone(Bench::shared(&base, stop_timeout)),
            base,
            stop_timeout,
            daemon: Daemon::default(),
            cfg,
            dir,
            now: Instant::now(),
            outcomes: Vec::new(),
            effects: Vec::new(),
            parsers: BTreeMap::new(),
            held: BTreeMap::new(),
            timers: Vec::new(),
            closed: 0,
        }
    }

    fn shared(base: &std::path::Path, stop_timeout: Duration) -> Shared {
        Shared::new(
            PathBuf::from("/fake/docker.sock"),
            stop_timeout,
            Duration::from_secs(2),
            base.to_string_lossy().into_owned(),
        )
    }

    /// A new driver with fresh shared state, as after a launcher restart.
    pub fn restart_launcher(&mut self) {
        self.drv = Docker::standalone(Bench::shared(&self.base, self.stop_timeout));
    }

    /// Calls the driver, then plays the shell until nothing moves.
    pub fn call(&mut self, f: impl FnOnce(&mut Docker, &mut Cx)) {
        {
            let mut cx = Cx {
                now: self.now,
                key: Key {
                    instance: self.cfg.instance_uuid.clone(),
                    generation: 1,
                    tag: 0,
                },
                dir: &self.dir,
                config: &self.cfg,
                effects: &mut self.effects,
                outcomes: &mut self.outcomes,
            };
            f(&mut self.drv, &mut cx);
        }
        self.pump();
    }

    fn feed(&mut self, input: Input) {
        self.call(|d, cx| d.input(cx, input));
    }

    fn pump(&mut self) {
        while !self.effects.is_empty() {
            let effects = std::mem::take(&mut self.effects);
            for e in effects {
                match e {
                    Effect::Connect { key, .. } => {
                        let input = if self.daemon.up {
                            self.parsers.insert(key.tag, RequestParser::new());
                            Input::Connected { tag: key.tag }
                        } else {
                            Input::ConnectFailed {
                                tag: key.tag,
                                error: "/fake/docker.sock: Connection refused (os error 111)"
                                    .into(),
                            }
                        };
                        self.feed(input);
                    }
                    Effect::Write { key, bytes } => {
                        let Some(p) = self.parsers.get_mut(&key.tag) else {
                            continue;
                        };
                        p.feed(&bytes);
                        let req = match p.next() {
                            Ok(Some(r)) => r,
                            other => panic!("driver wrote a bad request: {other:?}"),
                        };
                        match self.daemon.answer(&req) {
                            Answer::Now(bytes) => self.feed(Input::Data {
                                tag: key.tag,
                                bytes,
                            }),
                            Answer::Hold => {
                                let id = req.path.split('/').nth(3).unwrap_or("").to_string();
                                self.held.insert(key.tag, id);
                            }
                        }
                    }
                    Effect::Close { key } => {
                        self.parsers.remove(&key.tag);
                        self.held.remove(&key.tag);
                        self.closed += 1;
                    }
                    Effect::Timer { key, at } => self.timers.push((key.tag, at)),
                    other => panic!("unexpected effect {other:?}"),
                }
            }
        }
    }

    /// Answers the waits of containers that are no longer running (after
    /// `docker stop`, `docker rm -f` or an exit).
    pub fn settle_waits(&mut self) {
        let held: Vec<(u32, String)> = self.held.iter().map(|(k, v)| (*k, v.clone())).collect();
        for (tag, id) in held {
            let bytes = match self.daemon.container(&id) {
                Some(c) if c.running => continue,
                Some(c) => wait_reply(c.exit_code),
                None => wait_reply(137),
            };
            self.held.remove(&tag);
            self.feed(Input::Data { tag, bytes });
        }
    }

    /// The daemon dies: every connection breaks.
    pub fn daemon_dies(&mut self) {
        self.daemon.up = false;
        for c in &mut self.daemon.containers {
            c.running = false;
        }
        let tags: Vec<u32> = self.parsers.keys().copied().collect();
        self.held.clear();
        for t in tags {
            self.parsers.remove(&t);
            self.feed(Input::Closed { tag: t });
        }
    }

    /// Moves the clock, firing due timers in order.
    pub fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        loop {
            self.timers.sort_by_key(|(_, at)| *at);
            match self.timers.first() {
                Some(&(tag, at)) if at <= end => {
                    self.timers.remove(0);
                    self.now = self.now.max(at);
                    self.feed(Input::Timer { tag });
                }
                _ => break,
            }
        }
        self.now = end;
    }

    pub fn take(&mut self) -> Vec<Outcome> {
        std::mem::take(&mut self.outcomes)
    }

    pub fn held(&self) -> usize {
        self.held.len()
    }

    pub fn open(&self) -> usize {
        self.parsers.len()
    }

    pub fn start(&mut self, user_data: &[u8], meta_data: &[u8]) {
        let (u, m) = (user_data.to_vec(), meta_data.to_vec());
        self.call(|d, cx| d.start(cx, false, &u, &m));
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}
