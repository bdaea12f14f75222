//! JSON without a JSON crate (the runtime crates are the README's short
//! list): a small writer for what we send (docker create bodies, QMP
//! commands), `serde_yaml` for what we receive (JSON is, nearly, YAML), and
//! a line splitter for the streams of JSON values that docker and QMP send.
//!
//! Known gap of reading JSON as YAML: `\u` escapes of UTF-16 surrogate
//! pairs (`"\ud83d\ude00"`, how some encoders write characters outside the
//! BMP) are refused, and so are raw DEL and C1 control characters inside
//! strings (YAML does not allow them unescaped). Such a message fails to
//! parse: callers log it and skip it, it is never fatal. Docker (Go) and
//! qemu write non-BMP characters as raw UTF-8, so neither is affected in
//! practice.

use serde::de::DeserializeOwned;
use std::fmt;

/// A JSON document that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError(pub String);

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid JSON: {}", self.0)
    }
}

impl std::error::Error for JsonError {}

/// Parses one JSON document into `T` (through `serde_yaml`). Empty or
/// blank input is an error, as in JSON (YAML would read it as null).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JsonError> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(JsonError("empty document".into()));
    }
    // Deep nesting costs the YAML parser quadratic time: refused first.
    crate::payloads::depth::check_depth(bytes).map_err(|e| JsonError(e.to_string()))?;
    serde_yaml::from_slice(bytes).map_err(|e| JsonError(e.to_string()))
}

/// Appends `s` as a JSON string literal: quotes, backslash and control
/// characters escaped (`\n`, `\t`, ... or `\u00XX`, also DEL, C1, U+2028,
/// U+2029, U+FEFF, U+FFFE, U+FFFF), everything else, non-ASCII included, as
/// UTF-8.
pub(crate) fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            // Controls must be escaped in JSON. DEL, C1 controls, the
            // Unicode line separators and non-characters may be raw in
            // JSON but not in YAML (NEL, LS and PS even break lines there),
            // so they are escaped too: everything we write, we can read.
            c if (c as u32) < 0x20
                || ('\u{7f}'..='\u{9f}').contains(&c)
                || matches!(
                    c,
                    '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
                ) =>
            {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `s` as a JSON string literal.
#[cfg(test)]
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_string(&mut out, s);
    out
}

/// Streaming JSON writer; commas and colons are placed for the caller
/// (see the `nested_objects` test for a use).
///
/// Calls must nest properly (a value after each key inside objects); the
/// writer does not check, since the documents come from our own code.
#[derive(Debug, Default, Clone)]
pub(crate) struct Writer {
    out: String,
    /// Per open container: has it an element yet.
    stack: Vec<bool>,
    after_key: bool,
}

impl Writer {
    /// An empty writer.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn sep(&mut self) {
        if std::mem::take(&mut self.after_key) {
            return;
        }
        if let Some(has) = self.stack.last_mut() {
            if *has {
                self.out.push(',');
            }
            *has = true;
        }
    }

    /// `{`
    pub(crate) fn begin_object(&mut self) -> &mut Self {
        self.sep();
        self.out.push('{');
        self.stack.push(false);
        self
    }

    /// `}`
    pub(crate) fn end_object(&mut self) -> &mut Self {
        self.stack.pop();
        self.out.push('}');
        self
    }

    /// `[`
    pub(crate) fn begin_array(&mut self) -> &mut Self {
        self.sep();
        self.out.push('[');
        self.stack.push(false);
        self
    }

    /// `]`
    pub(crate) fn end_array(&mut self) -> &mut Self {
        self.stack.pop();
        self.out.push(']');
        self
    }

    /// An object key; the next call writes its value.
    pub(crate) fn key(&mut self, k: &str) -> &mut Self {
        self.sep();
        write_string(&mut self.out, k);
        self.out.push(':');
        self.after_key = true;
        self
    }

    /// A string value.
    pub(crate) fn string(&mut self, v: &str) -> &mut Self {
        self.sep();
        write_string(&mut self.out, v);
        self
    }

    /// A signed integer value.
    pub(crate) fn int(&mut self, v: i64) -> &mut Self {
        self.sep();
        self.out.push_str(&v.to_string());
        self
    }

    /// An unsigned integer value.
    pub(crate) fn uint(&mut self, v: u64) -> &mut Self {
        self.sep();
        self.out.push_str(&v.to_string());
        self
    }

    /// `true` or `false`.
    pub(crate) fn bool(&mut self, v: bool) -> &mut Self {
        self.sep();
        self.out.push_str(if v { "true" } else { "false" });
        self
    }

    /// `null`.
    pub(crate) fn null(&mut self) -> &mut Self {
        self.sep();
        self.out.push_str("null");
        self
    }

    /// An array of strings.
    pub(crate) fn strings<S: AsRef<str>>(&mut self, items: &[S]) -> &mut Self {
        self.begin_array();
        for s in items {
            self.string(s.as_ref());
        }
        self.end_array()
    }

    /// A value that is already JSON text (not checked).
    #[cfg(test)]
    pub(crate) fn raw(&mut self, json: &str) -> &mut Self {
        self.sep();
        self.out.push_str(json);
        self
    }

    /// The text written so far.
    pub(crate) fn as_str(&self) -> &str {
        &self.out
    }

    /// The document.
    pub(crate) fn finish(self) -> String {
        self.out
    }
}

/// Splits a byte stream into lines (LF or CRLF), for the JSON-per-line
/// streams of docker (pull progress, events) and QMP. Blank lines are
/// skipped. A line longer than the cap is reported once and dropped, and
/// the splitter resynchronises at the next newline: memory stays bounded.
#[derive(Debug, Clone)]
pub(crate) struct JsonLines {
    buf: Vec<u8>,
    start: usize,
    scanned: usize,
    max_line: usize,
    skipping: bool,
}

impl JsonLines {
    /// A splitter that refuses lines over `max_line` bytes.
    pub(crate) fn new(max_line: usize) -> Self {
        JsonLines {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            max_line,
            skipping: false,
        }
    }

    /// Adds bytes (e.g. a [`super::ResponseEvent::Data`]).
    pub(crate) fn push(&mut self, data: &[u8]) {
        if self.start > 0 && self.start * 2 >= self.buf.len() {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete non-blank line, without its line ending.
    pub(crate) fn next_line(&mut self) -> Result<Option<Vec<u8>>, JsonError> {
        loop {
            let Some(off) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') else {
                self.scanned = self.buf.len();
                if self.skipping {
                    self.start = self.buf.len();
                } else if self.buf.len() - self.start > self.max_line {
                    self.skipping = true;
                    self.start = self.buf.len();
                    return Err(self.too_long());
                }
                return Ok(None);
            };
            let nl = self.scanned + off;
            let line = &self.buf[self.start..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let skipping = std::mem::take(&mut self.skipping);
            let out = if skipping {
                Ok(None)
            } else if line.len() > self.max_line {
                Err(self.too_long())
            } else if line.iter().all(|b| b.is_ascii_whitespace()) {
                Ok(None)
            } else {
                Ok(Some(line.to_vec()))
            };
            self.start = nl + 1;
            self.scanned = nl + 1;
            match out {
                Ok(None) => continue,
                other => return other,
            }
        }
    }

    /// At the end of the stream: a last line without a newline, if any.
    pub(crate) fn finish(&mut self) -> Option<Vec<u8>> {
        let rest = &self.buf[self.start..];
        let rest = rest.strip_suffix(b"\r").unwrap_or(rest);
        let out = (!self.skipping && !rest.iter().all(|b| b.is_ascii_whitespace()))
            .then(|| rest.to_vec());
        self.start = self.buf.len();
        self.scanned = self.start;
        self.skipping = false;
        out
    }

    fn too_long(&self) -> JsonError {
        JsonError(format!("line longer than {} bytes", self.max_line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[test]
    fn nested_objects() {
        let mut w = Writer::new();
        w.begin_object()
            .key("execute")
            .string("device_del")
            .key("arguments")
            .begin_object()
            .key("id")
            .string("vol\"1")
            .end_object()
            .end_object();
        assert_eq!(
            w.finish(),
            r#"{"execute":"device_del","arguments":{"id":"vol\"1"}}"#
        );
    }

    #[test]
    fn escaping() {
        assert_eq!(quote("a\"b\\c/d"), r#""a\"b\\c/d""#);
        assert_eq!(
            quote("\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}"),
            "\"\\n\\r\\t\\b\\f\\u0000\\u001f\\u007f\""
        );
        assert_eq!(quote("héllo – 😀"), "\"héllo – 😀\"");
    }

    #[test]
    fn writer_shapes() {
        let mut w = Writer::new();
        w.begin_object()
            .key("Hostname")
            .string("myhost")
            .key("Cmd")
            .strings(&["/bin/sleep", "3600"])
            .key("Labels")
            .begin_object()
            .key("ciao.instance-uuid")
            .string("d7d86208-b46c-4465-9018-fe14087d415f")
            .end_object()
            .key("HostConfig")
            .begin_object()
            .key("Binds")
            .begin_array()
            .end_array()
            .key("Memory")
            .int(536_870_912)
            .key("CpuQuota")
            .uint(200_000)
            .key("Privileged")
            .bool(false)
            .end_object()
            .key("NetworkingConfig")
            .null()
            .key("Raw")
            .raw("[1,{}]")
            .end_object();
        assert_eq!(
            w.finish(),
            r#"{"Hostname":"myhost","Cmd":["/bin/sleep","3600"],"Labels":{"ciao.instance-uuid":"d7d86208-b46c-4465-9018-fe14087d415f"},"HostConfig":{"Binds":[],"Memory":536870912,"CpuQuota":200000,"Privileged":false},"NetworkingConfig":null,"Raw":[1,{}]}"#
        );
        let mut w = Writer::new();
        w.begin_array()
            .int(-1)
            .begin_array()
            .end_array()
            .begin_object()
            .end_object()
            .null()
            .end_array();
        assert_eq!(w.as_str(), "[-1,[],{},null]");
    }

    #[test]
    fn written_strings_read_back() {
        // Everything the writer produces, serde_yaml reads back.
        let samples = [
            "",
            "plain",
            "quote\" back\\ slash/",
            "ctl \u{0}\u{1}\u{8}\u{b}\u{c}\u{1b}\u{1f} end",
            "lines\nand\r\ntabs\t",
            "ünïcødé ✓ 😀 \u{2028}\u{2029}",
            "del \u{7f} c1 \u{80}\u{85}\u{9f} nbsp \u{a0} bom \u{feff} nc \u{fffe}\u{ffff}",
            "yes",
            "null",
            "123",
            "- not a list",
            "key: value",
            "#comment",
            "&anchor *alias !tag",
        ];
        for s in samples {
            let mut w = Writer::new();
            w.begin_object().key(s).string(s).end_object();
            let back: BTreeMap<String, String> = parse_json(w.as_str().as_bytes()).unwrap();
            assert_eq!(back.get(s).map(String::as_str), Some(s), "{s:?}");
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Version {
        version: String,
        api_version: String,
        #[serde(rename = "MinAPIVersion")]
        min_api_version: String,
        components: Vec<Component>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Component {
        name: String,
        details: BTreeMap<String, String>,
    }

    #[test]
    fn docker_version_document() {
        let doc = br#"{"Platform":{"Name":""},"Components":[{"Name":"Engine","Version":"20.10.24+dfsg1","Details":{"ApiVersion":"1.41","Arch":"amd64","BuildTime":"2023-05-18T08:38:34.000000000+00:00","Experimental":"false","GitCommit":"5d6db84","GoVersion":"go1.19.8","KernelVersion":"6.1.0-9-amd64","MinAPIVersion":"1.12","Os":"linux"}},{"Name":"containerd","Version":"1.6.20~ds1","Details":{"GitCommit":"1.6.20~ds1-1+b1"}}],"Version":"20.10.24+dfsg1","ApiVersion":"1.41","MinAPIVersion":"1.12","GitCommit":"5d6db84","GoVersion":"go1.19.8","Os":"linux","Arch":"amd64","KernelVersion":"6.1.0-9-amd64","BuildTime":"2023-05-18T08:38:34.000000000+00:00"}
"#;
        let v: Version = parse_json(doc).unwrap();
        assert_eq!(
            (v.api_version.as_str(), v.min_api_version.as_str()),
            ("1.41", "1.12")
        );
        assert_eq!(v.version, "20.10.24+dfsg1");
        assert_eq!(v.components[0].name, "Engine");
        assert_eq!(v.components[0].details["Experimental"], "false");
        assert_eq!(v.components[1].details["GitCommit"], "1.6.20~ds1-1+b1");
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Inspect {
        id: String,
        name: String,
        state: State,
        config: Config,
        size_root_fs: Option<u64>,
        host_config: HostConfig,
        mounts: Vec<BTreeMap<String, serde_yaml::Value>>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct State {
        status: String,
        running: bool,
        paused: bool,
        restarting: bool,
        pid: i64,
        exit_code: i64,
        error: String,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Config {
        hostname: String,
        cmd: Option<Vec<String>>,
        labels: BTreeMap<String, String>,
        env: Vec<String>,
    }
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct HostConfig {
        memory: i64,
        cpu_quota: i64,
        binds: Option<Vec<String>>,
    }

    /// `GET /containers/<id>/json?size=1` from Docker 20.10 (shortened:
    /// GraphDriver, NetworkSettings trimmed), compact as the API sends it,
    /// with Go's HTML escapes (`\u003c`, `\u0026`) and nulls.
    const INSPECT: &str = r#"{"Id":"4f6e3b4d3e1a2c6f9d8e7b1a0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d","Created":"2024-01-02T10:00:00.123456789Z","Path":"/bin/sleep","Args":["3600"],"State":{"Status":"running","Running":true,"Paused":false,"Restarting":false,"OOMKilled":false,"Dead":false,"Pid":12345,"ExitCode":0,"Error":"","StartedAt":"2024-01-02T10:00:01.5Z","FinishedAt":"0001-01-01T00:00:00Z"},"Image":"sha256:a416a98b71e224a31ee99cff8e16063554498227d2b696152a9c3e0aa65e5824","ResolvConfPath":"/var/lib/docker/containers/4f6e/resolv.conf","Name":"/d7d86208-b46c-4465-9018-fe14087d415f","RestartCount":0,"Driver":"overlay2","Platform":"linux","MountLabel":"","ProcessLabel":"","AppArmorProfile":"docker-default","ExecIDs":null,"HostConfig":{"Binds":["/var/lib/ciao/instances/d7d8/volumes/v1:/volumes/v1"],"ContainerIDFile":"","LogConfig":{"Type":"json-file","Config":{}},"NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no","MaximumRetryCount":0},"AutoRemove":false,"CapAdd":null,"Dns":[],"Memory":536870912,"CpuPeriod":100000,"CpuQuota":200000,"Ulimits":null,"MaskedPaths":["/proc/asound","/proc/acpi"]},"SizeRw":0,"SizeRootFs":4861467,"Mounts":[{"Type":"bind","Source":"/var/lib/ciao/instances/d7d8/volumes/v1","Destination":"/volumes/v1","Mode":"","RW":true,"Propagation":"rprivate"}],"Config":{"Hostname":"myhost","Domainname":"","User":"","AttachStdin":false,"Tty":false,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["/bin/sleep","3600"],"Image":"busybox:latest","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{"ciao.instance-uuid":"d7d86208-b46c-4465-9018-fe14087d415f","note":"\u003cb\u003e \u0026 \"q\" \/ é"}},"NetworkSettings":{"Bridge":"","SandboxID":"9a3b","HairpinMode":false,"Ports":{},"Gateway":"172.17.0.1","IPAddress":"172.17.0.2","IPPrefixLen":16,"MacAddress":"02:42:ac:11:00:02","Networks":{"bridge":{"IPAMConfig":null,"Links":null,"Aliases":null,"NetworkID":"5c1e","Gateway":"172.17.0.1","IPAddress":"172.17.0.2","IPPrefixLen":16,"GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"MacAddress":"02:42:ac:11:00:02","DriverOpts":null}}}}
"#;

    #[test]
    fn docker_inspect_document() {
        let i: Inspect = parse_json(INSPECT.as_bytes()).unwrap();
        assert!(i.id.starts_with("4f6e3b4d"));
        assert_eq!(i.name, "/d7d86208-b46c-4465-9018-fe14087d415f");
        assert!(i.state.running && !i.state.paused && !i.state.restarting);
        assert_eq!(
            (i.state.pid, i.state.exit_code, i.state.error.as_str()),
            (12345, 0, "")
        );
        assert_eq!(i.state.status, "running");
        assert_eq!(i.size_root_fs, Some(4_861_467));
        assert_eq!(
            (i.host_config.memory, i.host_config.cpu_quota),
            (536_870_912, 200_000)
        );
        assert_eq!(i.host_config.binds.as_ref().map(Vec::len), Some(1));
        assert_eq!(i.config.hostname, "myhost");
        assert_eq!(
            i.config.cmd,
            Some(vec!["/bin/sleep".to_string(), "3600".to_string()])
        );
        assert_eq!(i.config.labels["note"], "<b> & \"q\" / é");
        assert_eq!(i.config.env.len(), 1);
        assert_eq!(i.mounts[0]["RW"], serde_yaml::Value::Bool(true));
        // The same document pretty-printed with tabs (as `docker inspect`
        // prints with some settings) reads the same.
        let pretty = INSPECT.replace(",\"", ",\n\t\"").replace('{', "{\n\t");
        let j: Inspect = parse_json(pretty.as_bytes()).unwrap();
        assert_eq!(j.config.labels, i.config.labels);
    }

    #[derive(Debug, Deserialize)]
    struct QmpMsg {
        event: Option<String>,
        timestamp: Option<Timestamp>,
        data: Option<BTreeMap<String, serde_yaml::Value>>,
        #[serde(rename = "return")]
        ret: Option<serde_yaml::Value>,
        error: Option<QmpError>,
        #[serde(rename = "QMP")]
        greeting: Option<serde_yaml::Value>,
    }
    #[derive(Debug, Deserialize)]
    struct Timestamp {
        seconds: u64,
        microseconds: u64,
    }
    #[derive(Debug, Deserialize)]
    struct QmpError {
        class: String,
        desc: String,
    }

    #[test]
    fn qmp_messages() {
        let m: QmpMsg = parse_json(br#"{"timestamp": {"seconds": 1704189600, "microseconds": 123456}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}"#).unwrap();
        assert_eq!(m.event.as_deref(), Some("SHUTDOWN"));
        let ts = m.timestamp.unwrap();
        assert_eq!((ts.seconds, ts.microseconds), (1_704_189_600, 123_456));
        assert_eq!(m.data.unwrap()["guest"], serde_yaml::Value::Bool(true));
        let m: QmpMsg = parse_json(br#"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u3"}, "capabilities": ["oob"]}}"#).unwrap();
        assert!(m.greeting.is_some());
        let m: QmpMsg = parse_json(b"{\"return\": {}}\r\n").unwrap();
        assert!(m.ret.is_some() && m.event.is_none());
        let m: QmpMsg =
            parse_json(br#"{"error": {"class": "GenericError", "desc": "Device 'x' not found"}}"#)
                .unwrap();
        assert_eq!(
            m.error.map(|e| (e.class, e.desc)),
            Some(("GenericError".into(), "Device 'x' not found".into()))
        );
    }

    #[test]
    fn json_numbers_and_edge_syntax() {
        let v: BTreeMap<String, f64> = parse_json(br#"{"a":1e5,"b":-0.5,"c":2E-3,"d":0}"#).unwrap();
        assert_eq!((v["a"], v["b"], v["c"], v["d"]), (1e5, -0.5, 2e-3, 0.0));
        let v: BTreeMap<String, u64> = parse_json(br#"{"max":18446744073709551615}"#).unwrap();
        assert_eq!(v["max"], u64::MAX);
        let v: Vec<Option<bool>> = parse_json(b"[true,false,null]").unwrap();
        assert_eq!(v, [Some(true), Some(false), None]);
        // A BMP escape is fine.
        let v: String = parse_json(br#""caf\u00e9 \u2713""#).unwrap();
        assert_eq!(v, "café ✓");
    }

    #[test]
    fn known_failures_are_errors_not_panics() {
        // Surrogate pair escapes: refused by YAML.
        let r: Result<String, _> = parse_json(br#""\ud83d\ude00""#);
        assert!(r.is_err(), "{r:?}");
        // Raw DEL inside a string.
        let r: Result<String, _> = parse_json(b"\"a\x7fb\"");
        assert!(r.is_err(), "{r:?}");
        for bad in [
            &b""[..],
            b"  \n",
            b"{",
            b"{\"a\":}",
            b"[1,2",
            b"\xff\xfe",
            b"{\"a\":1}{\"b\":2}",
            b"\"unterminated",
        ] {
            let r: Result<BTreeMap<String, u64>, _> = parse_json(bad);
            assert!(r.is_err(), "{:?} -> {r:?}", String::from_utf8_lossy(bad));
            assert!(r.unwrap_err().to_string().starts_with("invalid JSON: "));
        }
        // Deep nesting is refused, not a stack overflow.
        let deep = "[".repeat(100_000);
        let r: Result<serde_yaml::Value, _> = parse_json(deep.as_bytes());
        assert!(r.is_err());
    }

    #[test]
    fn lines() {
        let stream = b"{\"status\":\"a\"}\r\n\r\n{\"status\":\"b\"}\n{\"stat";
        for cut in 0..=stream.len() {
            let mut l = JsonLines::new(100);
            let mut got = Vec::new();
            l.push(&stream[..cut]);
            while let Some(x) = l.next_line().unwrap() {
                got.push(x);
            }
            l.push(&stream[cut..]);
            while let Some(x) = l.next_line().unwrap() {
                got.push(x);
            }
            assert_eq!(got, [&b"{\"status\":\"a\"}"[..], b"{\"status\":\"b\"}"]);
            assert_eq!(l.finish(), Some(b"{\"stat".to_vec()));
        }
        // Over-long line: one error, then resync.
        let mut l = JsonLines::new(4);
        l.push(b"0123456");
        assert!(l.next_line().is_err());
        l.push(b"789");
        assert_eq!(l.next_line(), Ok(None));
        l.push(b"\nok\n");
        assert_eq!(l.next_line(), Ok(Some(b"ok".to_vec())));
        let mut l = JsonLines::new(4);
        l.push(b"0123456\nok\n");
        assert!(l.next_line().is_err());
        assert_eq!(l.next_line(), Ok(Some(b"ok".to_vec())));
        assert_eq!(l.finish(), None);
    }
}
