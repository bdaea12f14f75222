//! The Docker Engine API calls the launcher makes, as data: which method and
//! path, which body, which deadline; and what the answers mean. Pure: no
//! sockets, no clocks (the calls are listed in `docs/docker.md`).
//!
//! Paths here have no version prefix; [`Api::prefix`] adds the negotiated
//! one when the request is written.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::http::json::Writer;
use crate::http::{encode_query, parse_json, query_escape};

/// An Engine API version, `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Api {
    pub major: u32,
    pub minor: u32,
}

impl Api {
    pub(crate) const fn new(major: u32, minor: u32) -> Api {
        Api { major, minor }
    }

    /// Parses `1.41` (a `v` in front is tolerated).
    pub(crate) fn parse(s: &str) -> Option<Api> {
        let s = s.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        let (a, b) = s.split_once('.')?;
        let ok = |t: &str| !t.is_empty() && t.len() <= 5 && t.bytes().all(|c| c.is_ascii_digit());
        if !ok(a) || !ok(b) {
            return None;
        }
        Some(Api {
            major: a.parse().ok()?,
            minor: b.parse().ok()?,
        })
    }

    /// `/v1.41`, the prefix of every versioned path.
    pub(crate) fn prefix(&self) -> String {
        format!("/v{}.{}", self.major, self.minor)
    }

    /// `stats?one-shot=true` exists (API 1.41, Docker 20.10): one sample
    /// without the daemon's one-second wait for a second one.
    pub(crate) fn has_one_shot_stats(&self) -> bool {
        *self >= Api::new(1, 41)
    }

    /// The create body may carry `StopTimeout` (API 1.25, Docker 1.13).
    pub(crate) fn has_stop_timeout(&self) -> bool {
        *self >= Api::new(1, 25)
    }

    /// A container's MAC address belongs in its endpoint's settings (API
    /// 1.44, Docker 25; the container-wide field is deprecated there).
    pub(crate) fn has_endpoint_mac(&self) -> bool {
        *self >= Api::new(1, 44)
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The oldest API this launcher speaks: the original's pinned version
/// (Docker 1.10, 2016). Every call below exists in it.
pub(crate) const MIN_API: Api = Api::new(1, 22);
/// The newest API this launcher asks for (Docker 26.1). Nothing the
/// launcher uses changed between 1.41 and this; a newer daemon still
/// serves it (Docker keeps old versions, it only raises the minimum).
pub(crate) const MAX_API: Api = Api::new(1, 45);

/// `GET /version`, the parts that matter.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct VersionInfo {
    #[serde(rename = "Version", default)]
    pub version: Option<String>,
    #[serde(rename = "ApiVersion", default)]
    pub api_version: Option<String>,
    #[serde(rename = "MinAPIVersion", default)]
    pub min_api_version: Option<String>,
}

/// Chooses the API version from a `GET /version` body: the highest both
/// sides speak. The error text is meant for the log, as is.
pub(crate) fn negotiate(body: &[u8]) -> Result<(Api, String), String> {
    let v: VersionInfo = parse_json(body).map_err(|e| format!("GET /version: {e}"))?;
    let server = v.version.clone().unwrap_or_else(|| "?".into());
    let max = v
        .api_version
        .as_deref()
        .and_then(Api::parse)
        .ok_or_else(|| {
            format!("GET /version: dockerd {server} did not say which API version it speaks")
        })?;
    // Daemons older than API 1.25 do not report a minimum.
    let min = v
        .min_api_version
        .as_deref()
        .and_then(Api::parse)
        .unwrap_or(max);
    if max < MIN_API {
        return Err(format!(
            "dockerd {server} speaks Engine API {max} at most; ciao-launcher needs {MIN_API} or later"
        ));
    }
    let chosen = max.min(MAX_API);
    if chosen < min {
        return Err(format!(
            "dockerd {server} accepts Engine API {min} to {max}; ciao-launcher speaks {MIN_API} to {MAX_API}"
        ));
    }
    Ok((chosen, server))
}

/// One Engine API request, before the version prefix is added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Req {
    pub method: &'static str,
    /// Path and query, without the version prefix.
    pub path: String,
    /// JSON body, if any.
    pub body: Option<String>,
    /// Whole-request deadline (from the connect); `None` for long polls.
    pub deadline: Option<Duration>,
    /// The response is consumed as a stream (pull progress).
    pub stream: bool,
    /// `GET /version` goes out without a version prefix.
    pub unversioned: bool,
}

/// Deadline of an ordinary request (long polls and pulls have their own).
pub(crate) const REQUEST_DEADLINE: Duration = Duration::from_secs(30);
/// Deadline of a stats sample (the original's too).
pub(crate) const STATS_DEADLINE: Duration = Duration::from_secs(5);
/// Deadline of a whole image pull.
pub(crate) const PULL_DEADLINE: Duration = Duration::from_secs(600);
/// Extra time given to `stop?t=N` beyond N.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(30);
/// How long one exit long poll may stay open. Every wait has a deadline:
/// a dockerd that accepts the poll and then never answers (a hung daemon, a
/// lost connection nobody closed) would otherwise leave the instance
/// unwatched for ever. When it passes, the driver inspects the container and
/// opens a new poll, so a healthy long-running container costs one inspect
/// and one wait every few minutes.
pub(crate) const WAIT_RENEW: Duration = Duration::from_secs(300);

impl Req {
    fn new(method: &'static str, path: String) -> Req {
        Req {
            method,
            path,
            body: None,
            deadline: Some(REQUEST_DEADLINE),
            stream: false,
            unversioned: false,
        }
    }

    /// The bytes to write, for the given API version.
    pub(crate) fn to_bytes(&self, api: Option<Api>) -> Vec<u8> {
        let target = match (self.unversioned, api) {
            (false, Some(a)) => format!("{}{}", a.prefix(), self.path),
            _ => self.path.clone(),
        };
        let ua = concat!("ciao-launcher/", env!("CARGO_PKG_VERSION"));
        let mut headers = vec![("User-Agent", ua)];
        if self.body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        crate::http::write_request(
            self.method,
            &target,
            "docker",
            &headers,
            self.body.as_deref().unwrap_or("").as_bytes(),
        )
    }

    pub(crate) fn version() -> Req {
        Req {
            deadline: Some(Duration::from_secs(10)),
            unversioned: true,
            ..Req::new("GET", "/version".into())
        }
    }

    /// Image present? 200 yes, 404 no.
    pub(crate) fn image_inspect(image: &str) -> Req {
        Req::new("GET", format!("/images/{image}/json"))
    }

    /// Pull (`POST /images/create`), a stream of JSON progress lines.
    pub(crate) fn pull(image: &str) -> Req {
        let (repo, tag) = split_reference(image);
        Req {
            deadline: Some(PULL_DEADLINE),
            stream: true,
            ..Req::new(
                "POST",
                format!(
                    "/images/create?{}",
                    encode_query(&[("fromImage", repo), ("tag", tag)])
                ),
            )
        }
    }

    pub(crate) fn create(name: &str, body: String) -> Req {
        Req {
            body: Some(body),
            ..Req::new(
                "POST",
                format!("/containers/create?name={}", query_escape(name)),
            )
        }
    }

    pub(crate) fn start(id: &str) -> Req {
        Req::new("POST", format!("/containers/{id}/start"))
    }

    pub(crate) fn inspect(id: &str, size: bool) -> Req {
        let q = if size { "?size=1" } else { "" };
        Req::new("GET", format!("/containers/{id}/json{q}"))
    }

    pub(crate) fn stats(id: &str, one_shot: bool) -> Req {
        let q = if one_shot {
            "stream=false&one-shot=true"
        } else {
            "stream=false"
        };
        Req {
            deadline: Some(STATS_DEADLINE),
            ..Req::new("GET", format!("/containers/{id}/stats?{q}"))
        }
    }

    /// The exit long poll: answers when the container is not running, or
    /// is renewed after [`WAIT_RENEW`].
    pub(crate) fn wait(id: &str) -> Req {
        Req {
            deadline: Some(WAIT_RENEW),
            ..Req::new("POST", format!("/containers/{id}/wait"))
        }
    }

    /// SIGTERM (or the image's stop signal), SIGKILL after `timeout`.
    pub(crate) fn stop(id: &str, timeout: Duration) -> Req {
        Req {
            deadline: Some(timeout + STOP_GRACE),
            ..Req::new(
                "POST",
                format!("/containers/{id}/stop?t={}", timeout.as_secs()),
            )
        }
    }

    pub(crate) fn kill(id: &str) -> Req {
        Req::new("POST", format!("/containers/{id}/kill?signal=KILL"))
    }

    /// Removes the container (killing it if needed) and its anonymous volumes.
    pub(crate) fn remove(id: &str) -> Req {
        Req::new("DELETE", format!("/containers/{id}?force=1&v=1"))
    }

    /// Creates a docker network (201; 409 when the name exists).
    pub(crate) fn network_create(body: String) -> Req {
        Req {
            body: Some(body),
            ..Req::new("POST", "/networks/create".into())
        }
    }

    /// Removes a docker network by name or id (204; 404 when unknown).
    pub(crate) fn network_remove(name: &str) -> Req {
        Req::new("DELETE", format!("/networks/{}", query_escape(name)))
    }

    /// Every docker network.
    pub(crate) fn network_list() -> Req {
        Req::new("GET", "/networks".into())
    }

    /// One docker network, with its endpoints.
    pub(crate) fn network_inspect(id: &str) -> Req {
        Req::new("GET", format!("/networks/{}", query_escape(id)))
    }

    /// Every container, running or not, carrying `label=value`.
    pub(crate) fn list_by_label(label: &str, value: &str) -> Req {
        let mut w = Writer::new();
        w.begin_object()
            .key("label")
            .strings(&[format!("{label}={value}")])
            .end_object();
        Req::new(
            "GET",
            format!(
                "/containers/json?{}",
                encode_query(&[("all", "1"), ("filters", w.as_str())])
            ),
        )
    }
}

/// Splits an image reference into the `fromImage` and `tag` of a pull:
/// `busybox` → (`busybox`, `latest`), `127.0.0.1:5000/a:1` →
/// (`127.0.0.1:5000/a`, `1`), `a@sha256:..` → (`a`, `sha256:..`). Without a
/// tag dockerd would pull every tag of the repository.
pub(crate) fn split_reference(image: &str) -> (&str, &str) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo, digest);
    }
    let last = image.rfind('/').map(|i| i + 1).unwrap_or(0);
    match image[last..].rfind(':') {
        Some(i) => (&image[..last + i], &image[last + i + 1..]),
        None => (image, "latest"),
    }
}

/// An image reference we are willing to put into a request path: the
/// characters of Docker's reference grammar only, so nothing from a
/// payload can change the request.
pub(crate) fn valid_reference(image: &str) -> bool {
    !image.is_empty()
        && image.len() <= 512
        && !image.starts_with(['/', '-', ':', '@', '.'])
        && !image.contains("..")
        && image
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@+".contains(&b))
}

/// A container id as dockerd writes it (hex), or a name of ours (an
/// instance UUID: hex groups and hyphens).
pub(crate) fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('-')
        && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// The label that names a container's instance, so that recovery does not
/// depend on the `docker-id` file alone.
pub(crate) const LABEL_INSTANCE: &str = "ciao.instance-uuid";
/// The label that names the launcher's instances directory, so that two
/// launchers sharing a dockerd never mistake each other's containers.
pub(crate) const LABEL_INSTANCES_DIR: &str = "ciao.instances-dir";

/// The label on the docker networks the launcher creates: its instances
/// directory, as on its containers.
pub(crate) const LABEL_NETWORK_LAUNCHER: &str = "org.ciao.launcher";

/// A tenant bridge's docker network, as `POST /networks/create` makes it
/// (docs/networking.md): the launcher's plugin is both its network driver
/// and its IPAM driver, and learns the bridge from the `bridge` option
/// (the bridge's alias, as in the original).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NetworkSpec {
    pub name: String,
    /// The plugin's name (`--docker-plugin-name`).
    pub driver: String,
    pub bridge_alias: String,
    /// `172.16.5.0/24`.
    pub subnet: String,
    /// `172.16.5.1`.
    pub gateway: String,
    pub instances_dir: String,
}

impl NetworkSpec {
    /// The JSON body of `POST /networks/create`.
    pub(crate) fn body(&self) -> String {
        let mut w = Writer::new();
        w.begin_object();
        w.key("Name").string(&self.name);
        w.key("CheckDuplicate").bool(true);
        w.key("Driver").string(&self.driver);
        w.key("EnableIPv6").bool(false);
        w.key("IPAM").begin_object();
        w.key("Driver").string(&self.driver);
        w.key("Options").null();
        w.key("Config").begin_array().begin_object();
        w.key("Subnet").string(&self.subnet);
        w.key("Gateway").string(&self.gateway);
        w.end_object().end_array();
        w.end_object();
        w.key("Internal").bool(false);
        w.key("Options").begin_object();
        w.key("bridge").string(&self.bridge_alias);
        w.end_object();
        w.key("Labels").begin_object();
        w.key(LABEL_NETWORK_LAUNCHER).string(&self.instances_dir);
        w.end_object();
        w.end_object();
        w.finish()
    }
}

/// How a container joins its tenant network (`docs/networking.md`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// The docker network's name.
    pub network: String,
    /// `02:00:ac:10:05:07`.
    pub mac: String,
    /// The private IP, which the plugin's IPAM hands back.
    pub ip: String,
    /// The MAC goes into the endpoint settings too (API ≥ 1.44).
    pub endpoint_mac: bool,
}

/// What the create body is made of (`docs/docker.md`, "The container").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CreateSpec {
    pub instance_uuid: String,
    pub instances_dir: String,
    pub image: String,
    pub hostname: String,
    pub cmd: Option<Vec<String>>,
    pub mem_mb: i64,
    pub cpus: i64,
    /// Seconds dockerd waits after SIGTERM when it stops the container
    /// itself (its own shutdown, `docker stop` without `-t`): the
    /// launcher's stop timeout, so every stop path agrees. API ≥ 1.25.
    pub stop_timeout: Option<u64>,
    /// The tenant network (none: docker's default network).
    pub endpoint: Option<Endpoint>,
    /// `HostConfig.Binds`: `<host path>:<container path>`, read-write
    /// (the container's volumes).
    pub binds: Vec<String>,
}

impl CreateSpec {
    /// The JSON body of `POST /containers/create`.
    pub(crate) fn body(&self) -> String {
        let mut w = Writer::new();
        w.begin_object();
        w.key("Hostname").string(&self.hostname);
        w.key("Image").string(&self.image);
        if let Some(cmd) = &self.cmd {
            w.key("Cmd").strings(cmd);
        }
        if let Some(t) = self.stop_timeout {
            w.key("StopTimeout").uint(t);
        }
        if let Some(e) = &self.endpoint {
            w.key("MacAddress").string(&e.mac);
        }
        w.key("Labels").begin_object();
        w.key(LABEL_INSTANCE).string(&self.instance_uuid);
        if !self.instances_dir.is_empty() {
            w.key(LABEL_INSTANCES_DIR).string(&self.instances_dir);
        }
        w.end_object();
        w.key("HostConfig").begin_object();
        w.key("Binds").strings(&self.binds);
        if self.mem_mb > 0 {
            w.key("Memory").int(self.mem_mb.saturating_mul(1 << 20));
        }
        if self.cpus > 0 {
            w.key("CpuPeriod").int(100_000);
            w.key("CpuQuota").int(self.cpus.saturating_mul(100_000));
        }
        if let Some(e) = &self.endpoint {
            w.key("NetworkMode").string(&e.network);
        }
        w.end_object();
        if let Some(e) = &self.endpoint {
            w.key("NetworkingConfig").begin_object();
            w.key("EndpointsConfig").begin_object();
            w.key(&e.network).begin_object();
            w.key("IPAMConfig").begin_object();
            w.key("IPv4Address").string(&e.ip);
            w.end_object();
            if e.endpoint_mac {
                w.key("MacAddress").string(&e.mac);
            }
            w.end_object();
            w.end_object();
            w.end_object();
        }
        w.end_object();
        w.finish()
    }
}

/// One entry of `GET /networks` (and the head of `GET /networks/<id>`).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct NetworkListed {
    #[serde(rename = "Name", default)]
    pub name: String,
    #[serde(rename = "Id", default)]
    pub id: String,
    #[serde(rename = "Driver", default)]
    pub driver: String,
}

/// `{"message": "..."}` of an error reply, else the body as text.
pub(crate) fn error_message(status: u16, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct E {
        #[serde(default)]
        message: Option<String>,
    }
    let text = match parse_json::<E>(body) {
        Ok(E { message: Some(m) }) => m,
        _ => {
            let t = String::from_utf8_lossy(body);
            let t = t.trim();
            let mut s: String = t.chars().take(300).collect();
            if s.len() < t.len() {
                s.push('…');
            }
            s
        }
    };
    if text.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {text}")
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Created {
    #[serde(rename = "Id")]
    pub id: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ContainerState {
    #[serde(rename = "Running", default)]
    pub running: bool,
    #[serde(rename = "Paused", default)]
    pub paused: bool,
    #[serde(rename = "Restarting", default)]
    pub restarting: bool,
    /// The main process, as the host sees it (0 when not running).
    #[serde(rename = "Pid", default)]
    pub pid: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ContainerConfig {
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// `GET /containers/{id}/json`, the parts that matter.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Inspect {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "State", default)]
    pub state: Option<ContainerState>,
    #[serde(rename = "Config", default)]
    pub config: Option<ContainerConfig>,
    #[serde(rename = "SizeRootFs", default)]
    pub size_root_fs: Option<i64>,
}

impl Inspect {
    /// The main process of a running container.
    pub(crate) fn pid(&self) -> Option<u32> {
        let p = self.state.as_ref()?.pid?;
        u32::try_from(p).ok().filter(|p| *p > 0)
    }

    /// Running as the original counts it: running, paused or restarting.
    pub(crate) fn is_running(&self) -> bool {
        self.state
            .as_ref()
            .is_some_and(|s| s.running || s.paused || s.restarting)
    }

    pub(crate) fn label(&self, name: &str) -> Option<&str> {
        self.config
            .as_ref()?
            .labels
            .as_ref()?
            .get(name)
            .map(String::as_str)
    }
}

/// One entry of `GET /containers/json`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Listed {
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "State", default)]
    pub state: Option<String>,
    #[serde(rename = "Labels", default)]
    pub labels: Option<BTreeMap<String, String>>,
}

impl Listed {
    pub(crate) fn is_running(&self) -> bool {
        matches!(
            self.state.as_deref(),
            Some("running" | "paused" | "restarting")
        )
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct CpuUsage {
    #[serde(default)]
    pub total_usage: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct CpuStats {
    #[serde(default)]
    pub cpu_usage: Option<CpuUsage>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct MemoryStats {
    #[serde(default)]
    pub usage: Option<u64>,
}

/// `GET /containers/{id}/stats?stream=false`, the parts that matter.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Stats {
    #[serde(default)]
    pub cpu_stats: Option<CpuStats>,
    #[serde(default)]
    pub memory_stats: Option<MemoryStats>,
}

impl Stats {
    /// Memory in MiB (cgroup usage, page cache included, as the original).
    #[cfg(test)]
    pub(crate) fn memory_mb(&self) -> Option<i64> {
        let u = self.memory_stats.as_ref()?.usage?;
        i64::try_from(u >> 20).ok()
    }

    /// CPU time in nanoseconds.
    pub(crate) fn cpu_ns(&self) -> Option<u64> {
        self.cpu_stats.as_ref()?.cpu_usage.as_ref()?.total_usage
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct WaitError {
    #[serde(rename = "Message", default)]
    pub message: Option<String>,
}

/// `POST /containers/{id}/wait`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct Waited {
    #[serde(rename = "StatusCode", default)]
    pub status_code: i64,
    #[serde(rename = "Error", default)]
    pub error: Option<WaitError>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub message: Option<String>,
}

/// One line of the pull progress stream.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct PullLine {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub progress: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(rename = "errorDetail", default)]
    pub error_detail: Option<ErrorDetail>,
}

impl PullLine {
    /// The error this line reports, if it is one.
    pub(crate) fn failure(&self) -> Option<String> {
        if let Some(m) = self.error_detail.as_ref().and_then(|d| d.message.clone()) {
            return Some(m);
        }
        if self.error_detail.is_some() {
            return Some(self.error.clone().unwrap_or_else(|| "pull failed".into()));
        }
        self.error.clone()
    }
}

/// CPU use in percent between two samples, normalised per vCPU as the
/// original: integer arithmetic, divided by `cpus` when there are several.
pub(crate) fn cpu_percent(prev_ns: u64, now_ns: u64, wall: Duration, cpus: i64) -> i64 {
    let wall_ns = wall.as_nanos();
    if wall_ns == 0 || now_ns < prev_ns {
        return -1;
    }
    let pct = (u128::from(now_ns - prev_ns) * 100 / wall_ns) as i64;
    if cpus > 1 {
        pct / cpus
    } else {
        pct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GET /version` of Docker Engine 20.10.24 (Debian 12).
    const V20: &str = "{\"Platform\":{\"Name\":\"\"},\"Components\":[{\"Name\":\"Engine\",\"Version\":\"20.10.24+dfsg1\",\"Details\":{\"ApiVersion\":\"1.41\",\"MinAPIVersion\":\"1.12\"}}],\"Version\":\"20.10.24+dfsg1\",\"ApiVersion\":\"1.41\",\"MinAPIVersion\":\"1.12\",\"GitCommit\":\"5d6db84\",\"Os\":\"linux\"}";

    #[test]
    fn versions() {
        assert_eq!(Api::parse("1.41"), Some(Api::new(1, 41)));
        assert_eq!(Api::parse("v1.9"), Some(Api::new(1, 9)));
        assert!(Api::new(1, 9) < Api::new(1, 22));
        for bad in ["", "1", "1.", ".1", "a.b", "1.2.3", "1.-2", "999999.1"] {
            assert_eq!(Api::parse(bad), None, "{bad}");
        }
        assert_eq!(Api::new(1, 41).prefix(), "/v1.41");
    }

    #[test]
    fn negotiation() {
        assert_eq!(
            negotiate(V20.as_bytes()).unwrap(),
            (Api::new(1, 41), "20.10.24+dfsg1".into())
        );
        // Docker 28: minimum 1.24, maximum beyond ours.
        let v28 = br#"{"Version":"28.2.2","ApiVersion":"1.50","MinAPIVersion":"1.24"}"#;
        assert_eq!(negotiate(v28).unwrap().0, MAX_API);
        // Docker 1.9 (API 1.21): too old, clearly said.
        let e = negotiate(br#"{"Version":"1.9.1","ApiVersion":"1.21"}"#).unwrap_err();
        assert!(e.contains("1.21") && e.contains("needs 1.22"), "{e}");
        // No minimum reported (API < 1.25): the maximum is taken.
        assert_eq!(
            negotiate(br#"{"Version":"1.10.3","ApiVersion":"1.22"}"#)
                .unwrap()
                .0,
            MIN_API
        );
        // A future daemon that refuses everything we speak.
        let e = negotiate(br#"{"Version":"99","ApiVersion":"1.60","MinAPIVersion":"1.50"}"#)
            .unwrap_err();
        assert!(e.contains("1.50 to 1.60"), "{e}");
        assert!(negotiate(b"{}").is_err());
        assert!(negotiate(b"<html>").is_err());
        assert!(negotiate(b"").is_err());
    }

    #[test]
    fn requests() {
        let api = Some(Api::new(1, 41));
        let r = String::from_utf8(Req::version().to_bytes(api)).unwrap();
        assert!(
            r.starts_with("GET /version HTTP/1.1\r\nHost: docker\r\nUser-Agent: ciao-launcher/")
        );
        let r = String::from_utf8(Req::start("abc").to_bytes(api)).unwrap();
        assert!(
            r.starts_with("POST /v1.41/containers/abc/start HTTP/1.1\r\n"),
            "{r}"
        );
        assert!(r.ends_with("Content-Length: 0\r\n\r\n"), "{r}");
        let r = String::from_utf8(Req::create("u-1", "{}".into()).to_bytes(api)).unwrap();
        assert!(r.starts_with("POST /v1.41/containers/create?name=u-1 HTTP/1.1\r\n"));
        assert!(r.contains("Content-Type: application/json\r\n"));
        assert!(r.ends_with("Content-Length: 2\r\n\r\n{}"));
        assert_eq!(
            Req::pull("127.0.0.1:1/missing:latest").path,
            "/images/create?fromImage=127.0.0.1%3A1%2Fmissing&tag=latest"
        );
        assert!(Req::pull("x").stream);
        assert_eq!(
            Req::stats("c", true).path,
            "/containers/c/stats?stream=false&one-shot=true"
        );
        assert_eq!(
            Req::stats("c", false).path,
            "/containers/c/stats?stream=false"
        );
        assert_eq!(Req::wait("c").deadline, Some(WAIT_RENEW));
        let s = Req::stop("c", Duration::from_secs(7));
        assert_eq!(s.path, "/containers/c/stop?t=7");
        assert_eq!(s.deadline, Some(Duration::from_secs(37)));
        assert_eq!(Req::remove("c").path, "/containers/c?force=1&v=1");
        assert_eq!(
            Req::list_by_label(LABEL_INSTANCE, "ab-1").path,
            "/containers/json?all=1&filters=%7B%22label%22%3A%5B%22ciao.instance-uuid%3Dab-1%22%5D%7D"
        );
    }

    #[test]
    fn references() {
        assert_eq!(split_reference("busybox"), ("busybox", "latest"));
        assert_eq!(split_reference("ubuntu:22.04"), ("ubuntu", "22.04"));
        assert_eq!(
            split_reference("127.0.0.1:5000/a/b"),
            ("127.0.0.1:5000/a/b", "latest")
        );
        assert_eq!(
            split_reference("127.0.0.1:1/missing:latest"),
            ("127.0.0.1:1/missing", "latest")
        );
        assert_eq!(split_reference("a@sha256:00ff"), ("a", "sha256:00ff"));
        for ok in [
            "ubuntu:latest",
            "127.0.0.1:1/missing:latest",
            "a/b_c.d-e:1",
            "a@sha256:0f",
        ] {
            assert!(valid_reference(ok), "{ok}");
        }
        for bad in [
            "", "a b", "a?b", "a#b", "../x", "/x", "-x", "a/../b", "a\nb", "é", "a%2f",
        ] {
            assert!(!valid_reference(bad), "{bad}");
        }
        assert!(valid_id("67d86208-b46c-4465-9018-e14087d415f"));
        assert!(valid_id(
            "53c7c0aefcf446bc0507e9eb4baec0cf228dad20716dc06d329281662b8703b1"
        ));
        for bad in ["", "-a", "a/b", "a?", "../a", "zz"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn create_body() {
        let spec = CreateSpec {
            instance_uuid: "67d8".into(),
            instances_dir: "/var/lib/ciao/instances".into(),
            image: "ubuntu:latest".into(),
            hostname: "ciao".into(),
            cmd: Some(vec![
                "/bin/bash".into(),
                "-c".into(),
                "while true; do sleep \"60\"; done".into(),
            ]),
            mem_mb: 16,
            cpus: 2,
            stop_timeout: Some(30),
            endpoint: None,
            binds: vec!["/var/lib/ciao/instances/67d8/volumes/ab-12:/volumes/ab-12".into()],
        };
        assert_eq!(
            spec.body(),
            r#"{"Hostname":"ciao","Image":"ubuntu:latest","Cmd":["/bin/bash","-c","while true; do sleep \"60\"; done"],"StopTimeout":30,"Labels":{"ciao.instance-uuid":"67d8","ciao.instances-dir":"/var/lib/ciao/instances"},"HostConfig":{"Binds":["/var/lib/ciao/instances/67d8/volumes/ab-12:/volumes/ab-12"],"Memory":16777216,"CpuPeriod":100000,"CpuQuota":200000}}"#
        );
        let bare = CreateSpec {
            instance_uuid: "u".into(),
            image: "i".into(),
            ..CreateSpec::default()
        };
        assert_eq!(
            bare.body(),
            r#"{"Hostname":"","Image":"i","Labels":{"ciao.instance-uuid":"u"},"HostConfig":{"Binds":[]}}"#
        );
    }

    /// The network and endpoint fields (docs/networking.md); the MAC in
    /// the endpoint settings from API 1.44 only.
    #[test]
    fn network_bodies() {
        let net = NetworkSpec {
            name: "ciao_t_172.16.5.0-24_c_192.168.42.21".into(),
            driver: "ciao".into(),
            bridge_alias: "br_t_172.16.5.0/24_c_192.168.42.21".into(),
            subnet: "172.16.5.0/24".into(),
            gateway: "172.16.5.1".into(),
            instances_dir: "/var/lib/ciao/instances".into(),
        };
        assert_eq!(
            net.body(),
            r#"{"Name":"ciao_t_172.16.5.0-24_c_192.168.42.21","CheckDuplicate":true,"Driver":"ciao","EnableIPv6":false,"IPAM":{"Driver":"ciao","Options":null,"Config":[{"Subnet":"172.16.5.0/24","Gateway":"172.16.5.1"}]},"Internal":false,"Options":{"bridge":"br_t_172.16.5.0/24_c_192.168.42.21"},"Labels":{"org.ciao.launcher":"/var/lib/ciao/instances"}}"#
        );
        let mut spec = CreateSpec {
            instance_uuid: "u".into(),
            image: "i".into(),
            endpoint: Some(Endpoint {
                network: "n".into(),
                mac: "02:00:ac:10:05:07".into(),
                ip: "172.16.5.7".into(),
                endpoint_mac: false,
            }),
            ..CreateSpec::default()
        };
        assert_eq!(
            spec.body(),
            r#"{"Hostname":"","Image":"i","MacAddress":"02:00:ac:10:05:07","Labels":{"ciao.instance-uuid":"u"},"HostConfig":{"Binds":[],"NetworkMode":"n"},"NetworkingConfig":{"EndpointsConfig":{"n":{"IPAMConfig":{"IPv4Address":"172.16.5.7"}}}}}"#
        );
        if let Some(e) = spec.endpoint.as_mut() {
            e.endpoint_mac = true;
        }
        assert!(spec.body().ends_with(
            r#""EndpointsConfig":{"n":{"IPAMConfig":{"IPv4Address":"172.16.5.7"},"MacAddress":"02:00:ac:10:05:07"}}}}"#
        ));
        assert!(!Api::new(1, 43).has_endpoint_mac() && Api::new(1, 44).has_endpoint_mac());
        assert_eq!(Req::network_remove("ciao_a").path, "/networks/ciao_a");
        assert_eq!(Req::network_remove("ciao_a").method, "DELETE");
        assert_eq!(Req::network_inspect("ab").path, "/networks/ab");
        assert_eq!(Req::network_list().path, "/networks");
        let l: Vec<NetworkListed> = parse_json(br#"[{"Name":"bridge","Id":"9f","Driver":"bridge","IPAM":{}},{"Name":"ciao_x","Id":"ab","Driver":"ciao"}]"#).unwrap();
        assert_eq!(
            (l[1].name.as_str(), l[1].id.as_str(), l[1].driver.as_str()),
            ("ciao_x", "ab", "ciao")
        );
    }

    #[test]
    fn replies() {
        assert_eq!(
            error_message(404, br#"{"message":"No such container: x"}"#),
            "HTTP 404: No such container: x"
        );
        assert_eq!(error_message(500, b"oops\n"), "HTTP 500: oops");
        assert_eq!(error_message(502, b""), "HTTP 502");
        let long = vec![b'x'; 1000];
        assert!(error_message(500, &long).chars().count() < 320);

        let i: Inspect = parse_json(br#"{"Id":"ab","State":{"Status":"running","Running":true,"Paused":false,"Restarting":false,"Pid":19789,"ExitCode":0},"Config":{"Hostname":"ciao","Labels":{"ciao.instance-uuid":"u"}},"SizeRootFs":2076250}"#).unwrap();
        assert!(i.is_running());
        assert_eq!(i.pid(), Some(19789));
        assert_eq!(i.label(LABEL_INSTANCE), Some("u"));
        assert_eq!(i.size_root_fs, Some(2076250));
        let i: Inspect = parse_json(
            br#"{"Id":"ab","State":{"Running":false,"Paused":true},"Config":{"Labels":null}}"#,
        )
        .unwrap();
        assert!(i.is_running());
        assert_eq!(i.label(LABEL_INSTANCE), None);

        let s: Stats = parse_json(br#"{"read":"2026-11-25T19:00:51Z","pids_stats":{"current":2},"cpu_stats":{"cpu_usage":{"total_usage":31991744,"percpu_usage":[15018027,16973717]},"system_cpu_usage":6183960000000,"online_cpus":2},"memory_stats":{"usage":770048,"limit":16777216}}"#).unwrap();
        assert_eq!((s.memory_mb(), s.cpu_ns()), (Some(0), Some(31991744)));
        let s: Stats =
            parse_json(br#"{"memory_stats":{"usage":17825792},"cpu_stats":{}}"#).unwrap();
        assert_eq!((s.memory_mb(), s.cpu_ns()), (Some(17), None));
        let s: Stats =
            parse_json(br#"{"memory_stats":{},"cpu_stats":{"cpu_usage":{"total_usage":0}}}"#)
                .unwrap();
        assert_eq!((s.memory_mb(), s.cpu_ns()), (None, Some(0)));

        let w: Waited = parse_json(br#"{"Error":null,"StatusCode":137}"#).unwrap();
        assert_eq!(w.status_code, 137);
        let l: Vec<Listed> = parse_json(
            br#"[{"Id":"ab","Names":["/u"],"State":"exited","Labels":{"ciao.instance-uuid":"u"}}]"#,
        )
        .unwrap();
        assert!(!l[0].is_running());
        let l: Vec<Listed> = parse_json(b"[]").unwrap();
        assert!(l.is_empty());

        let p: PullLine = parse_json(
            br#"{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}"#,
        )
        .unwrap();
        assert_eq!(p.failure().as_deref(), Some("manifest unknown"));
        let p: PullLine = parse_json(br#"{"status":"Downloading","progressDetail":{"current":1,"total":2},"progress":"[=>  ]","id":"a"}"#).unwrap();
        assert_eq!(p.failure(), None);
    }

    #[test]
    fn cpu() {
        let s = Duration::from_secs(1);
        assert_eq!(cpu_percent(0, 500_000_000, s, 1), 50);
        assert_eq!(cpu_percent(0, 1_500_000_000, s, 2), 75);
        assert_eq!(cpu_percent(0, 1_500_000_000, s, 0), 150);
        assert_eq!(cpu_percent(10, 5, s, 1), -1);
        assert_eq!(cpu_percent(0, 5, Duration::ZERO, 1), -1);
    }
}
