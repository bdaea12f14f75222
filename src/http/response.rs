//! Responses: the writer the REST server answers with, and the incremental
//! client-side parser for the docker Engine API and ciaolc, buffered or
//! streaming (long polls, pull progress, events).

use super::chunked::ChunkedDecoder;
use super::error::HttpError;
use super::head::{
    append_input, content_length, is_chunked, parse_fields, parse_version, skip_empty_lines,
    write_field, HeadScanner, Headers, Version,
};

/// What a server writes to accept the body of an `Expect: 100-continue`
/// request.
pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A response: built by a server, or parsed by a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, 100 to 599.
    pub status: u16,
    /// Reason phrase (informative only).
    pub reason: String,
    /// Version of the status line (always 1.1 when we write).
    pub version: Version,
    /// Header fields in order.
    pub headers: Headers,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// Trailer fields of a chunked body.
    pub trailers: Headers,
}

impl Response {
    /// An empty response with the standard reason phrase.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            reason: reason_phrase(status).to_string(),
            version: Version::Http11,
            headers: Headers::new(),
            body: Vec::new(),
            trailers: Headers::new(),
        }
    }

    /// Adds a header field (builder style).
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(name, value);
        self
    }

    /// Sets the body (builder style).
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// Serialises as HTTP/1.1. The writer frames the message: it adds
    /// `Content-Length` (except for 1xx, 204 and 304) and `Connection:
    /// keep-alive` or `close`, and drops those two and `Transfer-Encoding`
    /// from `headers`. `head_only` (answer to HEAD) keeps the length of the
    /// body but not its bytes.
    pub fn to_bytes(&self, keep_alive: bool, head_only: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.body.len());
        let reason: String = self
            .reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        out.extend_from_slice(format!("HTTP/1.1 {:03} {reason}\r\n", self.status).as_bytes());
        for (n, v) in self.headers.iter() {
            if ["content-length", "connection", "transfer-encoding"]
                .iter()
                .any(|f| n.eq_ignore_ascii_case(f))
            {
                continue;
            }
            write_field(&mut out, n, v);
        }
        let bodyless = self.status < 200 || self.status == 204 || self.status == 304;
        if !bodyless {
            write_field(&mut out, "Content-Length", &self.body.len().to_string());
        }
        if self.status >= 200 {
            write_field(
                &mut out,
                "Connection",
                if keep_alive { "keep-alive" } else { "close" },
            );
        }
        out.extend_from_slice(b"\r\n");
        if !bodyless && !head_only {
            out.extend_from_slice(&self.body);
        }
        out
    }
}

/// A complete response in one call: status, optional `Content-Type`, body,
/// `Content-Length` and `Connection`.
#[cfg(test)]
pub(crate) fn write_response(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    keep_alive: bool,
) -> Vec<u8> {
    let mut r = Response::new(status).with_body(body);
    if let Some(ct) = content_type {
        r = r.with_header("Content-Type", ct);
    }
    r.to_bytes(keep_alive, false)
}

/// The answer to a request the parser refused: its status, a text body
/// saying why, and `Connection: close` (after a framing error nothing else
/// on the connection can be trusted).
pub(crate) fn error_response(err: &HttpError) -> Vec<u8> {
    Response::new(err.status())
        .with_header("Content-Type", "text/plain; charset=utf-8")
        .with_header("X-Content-Type-Options", "nosniff")
        .with_body(format!("{err}\n"))
        .to_bytes(false, false)
}

/// RFC 9110 reason phrases; `""` for codes without one (allowed).
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// IMF-fixdate for a `Date` header, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`,
/// from seconds since the Unix epoch (the shell passes the clock in).
pub(crate) fn http_date(unix_secs: u64) -> String {
    let days = unix_secs / 86400;
    let secs = unix_secs % 86400;
    // Civil date from day count (H. Hinnant's algorithm, days since 1970).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WD[(days % 7) as usize],
        day,
        MON[(month - 1) as usize],
        year,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Limits of [`ResponseParser`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseLimits {
    /// Longest status line.
    pub max_status_line: usize,
    /// Largest header section (and trailer section).
    pub max_header_bytes: usize,
    /// Most header fields (and trailer fields).
    pub max_headers: usize,
    /// Largest body [`ResponseParser::response`] buffers. The streaming
    /// interface has no total cap: each event holds at most what was fed.
    pub max_body: usize,
}

impl Default for ResponseLimits {
    fn default() -> Self {
        ResponseLimits {
            max_status_line: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 256,
            max_body: 16 * 1024 * 1024,
        }
    }
}

/// One step of a streamed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseEvent {
    /// The final head (1xx interim responses are skipped).
    Head {
        /// Status code.
        status: u16,
        /// Reason phrase.
        reason: String,
        /// Version of the status line.
        version: Version,
        /// Header fields.
        headers: Headers,
    },
    /// Body bytes, de-chunked, as they arrived (never empty).
    Data(Vec<u8>),
    /// The response is complete; trailers, if any, are in
    /// [`ResponseParser::trailers`].
    End,
}

#[derive(Debug)]
enum Framing {
    Empty,
    Length(u64),
    Chunked(Box<ChunkedDecoder>),
    UntilClose,
}

#[derive(Debug)]
enum State {
    Head,
    Body(Framing),
    Done,
    Failed(HttpError),
}

/// Incremental parser of the response to one request (or to several in
/// turn, with [`ResponseParser::reset`]). Feed it what the socket gave, then
/// either pull [`ResponseParser::next_event`] until `Ok(None)` (streaming)
/// or call [`ResponseParser::response`] (buffered). Call
/// [`ResponseParser::eof`] when the peer closes: that ends an until-close
/// body and turns any other incomplete response into `Err(Truncated)`.
#[derive(Debug)]
pub struct ResponseParser {
    limits: ResponseLimits,
    buf: Vec<u8>,
    pos: usize,
    eof: bool,
    head_request: bool,
    scanner: HeadScanner,
    state: State,
    reusable: bool,
    trailers: Headers,
    partial: Option<Response>,
    /// An error found after body bytes that are delivered first.
    deferred: Option<HttpError>,
}

impl ResponseParser {
    /// A parser for the response to a request with `method` (`HEAD` means
    /// no body whatever the headers say), default limits.
    pub fn new(method: &str) -> Self {
        Self::with_limits(method, ResponseLimits::default())
    }

    /// Same, with the given limits.
    pub fn with_limits(method: &str, limits: ResponseLimits) -> Self {
        ResponseParser {
            limits,
            buf: Vec::new(),
            pos: 0,
            eof: false,
            head_request: method.eq_ignore_ascii_case("HEAD"),
            scanner: HeadScanner::new(limits.max_status_line, limits.max_header_bytes),
            state: State::Head,
            reusable: false,
            trailers: Headers::new(),
            partial: None,
            deferred: None,
        }
    }

    /// Prepares for the response to the next request on the same
    /// connection, keeping bytes already received after the previous one.
    /// A failed parser stays failed.
    pub fn reset(&mut self, method: &str) {
        if !matches!(self.state, State::Failed(_)) {
            self.state = State::Head;
        }
        self.head_request = method.eq_ignore_ascii_case("HEAD");
        self.scanner.reset();
        self.reusable = false;
        self.trailers = Headers::new();
        self.partial = None;
    }

    /// Adds bytes read from the connection.
    pub fn feed(&mut self, data: &[u8]) {
        append_input(&mut self.buf, &mut self.pos, data);
    }

    /// The peer closed the connection.
    pub fn eof(&mut self) {
        self.eof = true;
    }

    /// The whole response has been read.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// After a complete response: whether the connection may carry another
    /// request (HTTP/1.1 or keep-alive, no `Connection: close`, a body with
    /// a known end, and the peer has not closed).
    pub fn keep_alive(&self) -> bool {
        self.is_done() && self.reusable && !self.eof
    }

    /// Bytes received and not yet consumed.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Trailer fields of a chunked response, once it is done.
    pub fn trailers(&self) -> &Headers {
        &self.trailers
    }

    /// The complete response, buffered, `Ok(None)` until it is all there.
    /// A body over `max_body` is `Err(BodyTooLarge)`. Do not mix with
    /// [`ResponseParser::next_event`] for the same response.
    pub fn response(&mut self) -> Result<Option<Response>, HttpError> {
        let max = self.limits.max_body;
        loop {
            match self.next_event()? {
                None => return Ok(None),
                Some(ResponseEvent::Head {
                    status,
                    reason,
                    version,
                    headers,
                }) => {
                    if let State::Body(Framing::Length(n)) = self.state {
                        if n > max as u64 {
                            return Err(self.fail(HttpError::BodyTooLarge { limit: max }));
                        }
                    }
                    self.partial = Some(Response {
                        status,
                        reason,
                        version,
                        headers,
                        body: Vec::new(),
                        trailers: Headers::new(),
                    });
                }
                Some(ResponseEvent::Data(d)) => {
                    let Some(p) = self.partial.as_mut() else {
                        continue;
                    };
                    if p.body.len() + d.len() > max {
                        return Err(self.fail(HttpError::BodyTooLarge { limit: max }));
                    }
                    p.body.extend_from_slice(&d);
                }
                Some(ResponseEvent::End) => {
                    let Some(mut p) = self.partial.take() else {
                        return Ok(None);
                    };
                    p.trailers = self.trailers.clone();
                    return Ok(Some(p));
                }
            }
        }
    }

    /// The next event of the streamed response, `Ok(None)` when more bytes
    /// are needed (or after `End`, until [`ResponseParser::reset`]).
    pub fn next_event(&mut self) -> Result<Option<ResponseEvent>, HttpError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        self.step().map_err(|e| self.fail(e))
    }

    fn fail(&mut self, e: HttpError) -> HttpError {
        self.state = State::Failed(e.clone());
        e
    }

    fn step(&mut self) -> Result<Option<ResponseEvent>, HttpError> {
        if let Some(e) = self.deferred.take() {
            return Err(e);
        }
        let eof = self.eof;
        loop {
            let avail = self.buf.len() - self.pos;
            match &mut self.state {
                State::Failed(e) => return Err(e.clone()),
                State::Done => return Ok(None),
                State::Head => match self.read_head()? {
                    HeadOutcome::NeedMore => return Ok(None),
                    HeadOutcome::Interim => continue,
                    HeadOutcome::Final(ev) => return Ok(Some(ev)),
                },
                State::Body(Framing::Empty) | State::Body(Framing::Length(0)) => {
                    self.state = State::Done;
                    return Ok(Some(ResponseEvent::End));
                }
                State::Body(Framing::Length(rem)) => {
                    if avail == 0 {
                        return starved(eof, "in the response body");
                    }
                    let n = avail.min(usize::try_from(*rem).unwrap_or(usize::MAX));
                    *rem -= n as u64;
                    let data = self.buf[self.pos..self.pos + n].to_vec();
                    self.pos += n;
                    return Ok(Some(ResponseEvent::Data(data)));
                }
                State::Body(Framing::Chunked(dec)) => {
                    let mut data = Vec::new();
                    match dec.decode(&self.buf[self.pos..], &mut data) {
                        Ok(used) => self.pos += used,
                        // Deliver the good bytes before the error, so that
                        // the outcome does not depend on how reads split.
                        Err(e) if !data.is_empty() => self.deferred = Some(e),
                        Err(e) => return Err(e),
                    }
                    if !data.is_empty() {
                        return Ok(Some(ResponseEvent::Data(data)));
                    }
                    if dec.is_done() {
                        self.trailers = std::mem::take(&mut dec.trailers);
                        self.state = State::Done;
                        return Ok(Some(ResponseEvent::End));
                    }
                    return starved(eof, "in the chunked response body");
                }
                State::Body(Framing::UntilClose) => {
                    if avail > 0 {
                        let data = self.buf[self.pos..].to_vec();
                        self.pos = self.buf.len();
                        return Ok(Some(ResponseEvent::Data(data)));
                    }
                    if eof {
                        self.state = State::Done;
                        return Ok(Some(ResponseEvent::End));
                    }
                    return Ok(None);
                }
            }
        }
    }

    /// Reads one head if it is complete. Interim (1xx) heads are consumed
    /// and reported as such so that `step` loops (no recursion: a peer can
    /// send any number of them).
    fn read_head(&mut self) -> Result<HeadOutcome, HttpError> {
        if self.scanner.scanned() == 0 {
            // Tolerate blank lines a sloppy server left after a body. After a lone
            // CR, wait for the byte after it before scanning (unless the peer closed).
            if skip_empty_lines(&self.buf, &mut self.pos) && !self.eof {
                return Ok(HeadOutcome::NeedMore);
            }
        }
        let span = match self.scanner.scan(&self.buf[self.pos..])? {
            Some(span) => span,
            None if self.eof && self.pos == self.buf.len() => {
                return Err(HttpError::Truncated("before the status line"))
            }
            None if self.eof => return Err(HttpError::Truncated("in the response head")),
            None => return Ok(HeadOutcome::NeedMore),
        };
        let head = &self.buf[self.pos..self.pos + span.end];
        let (version, status, reason) = parse_status_line(&head[..span.start_line_end])?;
        let mut headers = Headers::new();
        parse_fields(
            &head[span.fields_start..],
            self.limits.max_headers,
            &mut headers,
        )?;
        self.pos += span.end;
        self.scanner.reset();
        if (100..200).contains(&status) && status != 101 {
            // Interim response (100 Continue, 103 Early Hints): skip it.
            return Ok(HeadOutcome::Interim);
        }
        let chunked = is_chunked(&headers)?;
        let length = content_length(&headers)?;
        let framing = if self.head_request || status < 200 || status == 204 || status == 304 {
            Framing::Empty
        } else if chunked {
            Framing::Chunked(Box::new(ChunkedDecoder::new(
                u64::MAX,
                self.limits.max_header_bytes,
                self.limits.max_headers,
            )))
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        };
        let persistent = match version {
            Version::Http11 => !headers.has_token("connection", "close"),
            Version::Http10 => headers.has_token("connection", "keep-alive"),
        };
        // A message with both framings is a smuggling attempt or a broken
        // proxy: read it (chunked wins, RFC 9112 §6.3) but never reuse.
        self.reusable = persistent
            && !matches!(framing, Framing::UntilClose)
            && !(chunked && length.is_some())
            && status != 101;
        self.state = State::Body(framing);
        Ok(HeadOutcome::Final(ResponseEvent::Head {
            status,
            reason,
            version,
            headers,
        }))
    }
}

enum HeadOutcome {
    NeedMore,
    Interim,
    Final(ResponseEvent),
}

fn starved(eof: bool, r#where: &'static str) -> Result<Option<ResponseEvent>, HttpError> {
    if eof {
        Err(HttpError::Truncated(r#where))
    } else {
        Ok(None)
    }
}

/// `HTTP/1.x SP 3DIGIT [SP reason]`.
fn parse_status_line(line: &[u8]) -> Result<(Version, u16, String), HttpError> {
    const BAD: HttpError = HttpError::Malformed("invalid status line");
    let version = parse_version(line.get(..8).ok_or(BAD)?)?.ok_or(HttpError::UnsupportedVersion)?;
    let rest = &line[8..];
    let [b' ', d1, d2, d3, tail @ ..] = rest else {
        return Err(BAD);
    };
    if ![d1, d2, d3].iter().all(|d| d.is_ascii_digit()) {
        return Err(BAD);
    }
    let status = u16::from(d1 - b'0') * 100 + u16::from(d2 - b'0') * 10 + u16::from(d3 - b'0');
    if !(100..600).contains(&status) {
        return Err(BAD);
    }
    let reason = match tail {
        [] => &[][..],
        [b' ', r @ ..] => r,
        _ => return Err(BAD),
    };
    if reason
        .iter()
        .any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        return Err(BAD);
    }
    Ok((
        version,
        status,
        String::from_utf8_lossy(reason).into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GET /version` as answered by Docker Engine 20.10.24 (Debian 12).
    const VERSION_BODY: &str = "{\"Platform\":{\"Name\":\"\"},\"Components\":[{\"Name\":\"Engine\",\"Version\":\"20.10.24+dfsg1\",\"Details\":{\"ApiVersion\":\"1.41\",\"Arch\":\"amd64\",\"BuildTime\":\"2023-05-18T08:38:34.000000000+00:00\",\"Experimental\":\"false\",\"GitCommit\":\"5d6db84\",\"GoVersion\":\"go1.19.8\",\"KernelVersion\":\"6.1.0-9-amd64\",\"MinAPIVersion\":\"1.12\",\"Os\":\"linux\"}},{\"Name\":\"containerd\",\"Version\":\"1.6.20~ds1\",\"Details\":{\"GitCommit\":\"1.6.20~ds1-1+b1\"}},{\"Name\":\"runc\",\"Version\":\"1.1.5+ds1\",\"Details\":{\"GitCommit\":\"1.1.5+ds1-1\"}},{\"Name\":\"docker-init\",\"Version\":\"0.19.0\",\"Details\":{\"GitCommit\":\"\"}}],\"Version\":\"20.10.24+dfsg1\",\"ApiVersion\":\"1.41\",\"MinAPIVersion\":\"1.12\",\"GitCommit\":\"5d6db84\",\"GoVersion\":\"go1.19.8\",\"Os\":\"linux\",\"Arch\":\"amd64\",\"KernelVersion\":\"6.1.0-9-amd64\",\"BuildTime\":\"2023-05-18T08:38:34.000000000+00:00\"}\n";

    pub(crate) fn docker_version_reply() -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nCache-Control: no-cache, no-store, must-revalidate\r\nContent-Type: application/json\r\nDocker-Experimental: false\r\nOstype: linux\r\nPragma: no-cache\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nDate: Tue, 02 Jan 2024 10:00:00 GMT\r\nContent-Length: {}\r\n\r\n{VERSION_BODY}",
            VERSION_BODY.len()
        )
        .into_bytes()
    }

    /// `POST /images/create?fromImage=busybox:latest`: chunked JSON
    /// progress, one object per chunk, each ending in CRLF as dockerd sends.
    pub(crate) const DOCKER_PULL_REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nContent-Type: application/json\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nDate: Tue, 02 Jan 2024 10:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n\
39\r\n{\"status\":\"Pulling from library/busybox\",\"id\":\"latest\"}\r\n\r\n\
3c\r\n{\"status\":\"Pulling fs layer\",\"progressDetail\":{},\"id\":\"a\"}\r\n\r\n\
2d\r\n{\"status\":\"Status: Downloaded newer image\"}\r\n\r\n\
0\r\n\r\n";

    /// A chunked reply with extensions and trailers (RFC 9112 §7.1 style).
    const EXT_TRAILER_REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n\
5;name=value;quoted=\"a;b\"\r\nhello\r\n1 ; lone\r\n \r\n5\r\nworld\r\n0;end\r\nX-Checksum: abc\r\nX-More: 1\r\n\r\n";

    fn events(input: &[u8], method: &str, eof: bool) -> Result<Vec<ResponseEvent>, HttpError> {
        let mut p = ResponseParser::new(method);
        p.feed(input);
        if eof {
            p.eof();
        }
        let mut out = Vec::new();
        while let Some(ev) = p.next_event()? {
            out.push(ev);
        }
        Ok(out)
    }

    fn buffered(input: &[u8], method: &str, eof: bool) -> Result<Option<Response>, HttpError> {
        let mut p = ResponseParser::new(method);
        p.feed(input);
        if eof {
            p.eof();
        }
        p.response()
    }

    /// Head, concatenated data, and whether `End` came.
    fn flatten(evs: &[ResponseEvent]) -> (Option<u16>, Vec<u8>, bool) {
        let mut st = None;
        let mut data = Vec::new();
        let mut end = false;
        for e in evs {
            match e {
                ResponseEvent::Head { status, .. } => st = Some(*status),
                ResponseEvent::Data(d) => {
                    assert!(!d.is_empty());
                    data.extend_from_slice(d)
                }
                ResponseEvent::End => end = true,
            }
        }
        (st, data, end)
    }

    #[test]
    fn docker_version() {
        let r = buffered(&docker_version_reply(), "GET", false)
            .unwrap()
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("api-version"), Some("1.41"));
        assert_eq!(r.body, VERSION_BODY.as_bytes());
        let mut p = ResponseParser::new("GET");
        p.feed(&docker_version_reply());
        assert!(p.response().unwrap().is_some());
        assert!(p.keep_alive());
    }

    #[test]
    fn docker_pull_stream() {
        let r = buffered(DOCKER_PULL_REPLY, "POST", false).unwrap().unwrap();
        let lines: Vec<&[u8]> = r
            .body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[2].starts_with(b"{\"status\":\"Status: Downloaded"));
        // Streaming: each chunk comes out as soon as it is complete.
        let mut p = ResponseParser::new("POST");
        let head_end = DOCKER_PULL_REPLY
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap()
            + 4;
        p.feed(&DOCKER_PULL_REPLY[..head_end + 30]);
        assert!(matches!(
            p.next_event(),
            Ok(Some(ResponseEvent::Head { status: 200, .. }))
        ));
        match p.next_event() {
            Ok(Some(ResponseEvent::Data(d))) => {
                assert_eq!(d, &DOCKER_PULL_REPLY[head_end + 4..head_end + 30])
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p.next_event(), Ok(None));
    }

    #[test]
    fn extensions_and_trailers() {
        let r = buffered(EXT_TRAILER_REPLY, "GET", false).unwrap().unwrap();
        assert_eq!(r.body, b"hello world");
        assert_eq!(r.trailers.get("x-checksum"), Some("abc"));
        assert_eq!(r.trailers.len(), 2);
    }

    #[test]
    fn every_split_gives_the_same_result() {
        let mut inputs: Vec<(Vec<u8>, bool)> = vec![
            (docker_version_reply(), false),
            (DOCKER_PULL_REPLY.to_vec(), false),
            (EXT_TRAILER_REPLY.to_vec(), false),
            (
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\n\r\nuntil close".to_vec(),
                true,
            ),
        ];
        inputs.push((
            b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n".to_vec(),
            false,
        ));
        for (input, eof) in inputs {
            let whole = buffered(&input, "GET", eof).unwrap().unwrap();
            let whole_ev = flatten(&events(&input, "GET", eof).unwrap());
            assert_eq!(whole_ev, (Some(whole.status), whole.body.clone(), true));
            for cut in 0..=input.len() {
                let mut p = ResponseParser::new("GET");
                let mut evs = Vec::new();
                p.feed(&input[..cut]);
                while let Some(e) = p.next_event().unwrap() {
                    evs.push(e);
                }
                p.feed(&input[cut..]);
                if eof {
                    p.eof();
                }
                while let Some(e) = p.next_event().unwrap() {
                    evs.push(e);
                }
                assert_eq!(flatten(&evs), whole_ev, "cut {cut}");
                assert_eq!(p.trailers(), &whole.trailers);
                let mut p = ResponseParser::new("GET");
                p.feed(&input[..cut]);
                let first = p.response().unwrap();
                p.feed(&input[cut..]);
                if eof {
                    p.eof();
                }
                let r = first.or_else(|| p.response().unwrap());
                assert_eq!(r.as_ref(), Some(&whole), "cut {cut}");
            }
        }
    }

    #[test]
    fn truncation() {
        let full = docker_version_reply();
        for cut in 0..full.len() {
            let r = buffered(&full[..cut], "GET", true);
            assert!(
                matches!(r, Err(HttpError::Truncated(_))),
                "cut {cut}: {r:?}"
            );
        }
        for cut in 0..DOCKER_PULL_REPLY.len() {
            let r = buffered(&DOCKER_PULL_REPLY[..cut], "GET", true);
            assert!(
                matches!(r, Err(HttpError::Truncated(_))),
                "cut {cut}: {r:?}"
            );
        }
        // No length: the close ends the body; it is not reusable.
        let mut p = ResponseParser::new("GET");
        p.feed(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome");
        assert_eq!(p.response(), Ok(None));
        p.feed(b" text");
        p.eof();
        assert_eq!(p.response().unwrap().unwrap().body, b"some text");
        assert!(!p.keep_alive());
    }

    #[test]
    fn bodyless_responses() {
        let r = buffered(
            b"HTTP/1.1 200 OK\r\nContent-Length: 851\r\n\r\n",
            "HEAD",
            false,
        )
        .unwrap()
        .unwrap();
        assert!(r.body.is_empty());
        for st in ["204 No Content", "304 Not Modified"] {
            let input = format!("HTTP/1.1 {st}\r\nContent-Length: 5\r\n\r\n");
            assert!(buffered(input.as_bytes(), "GET", false)
                .unwrap()
                .unwrap()
                .body
                .is_empty());
        }
        // Several interim responses before the final one.
        let r = buffered(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", "POST", false).unwrap().unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, &b"ok"[..]));
    }

    #[test]
    fn keep_alive_and_reset() {
        let mut p = ResponseParser::new("GET");
        p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 3\r\n\r\nno\n");
        let r = p.response().unwrap().unwrap();
        assert_eq!(r.body, b"a");
        assert!(p.keep_alive());
        p.reset("GET");
        let r = p.response().unwrap().unwrap();
        assert_eq!((r.status, r.body.as_slice()), (404, &b"no\n"[..]));
        assert!(!p.keep_alive());
        let mut p = ResponseParser::new("GET");
        p.feed(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert!(p.response().unwrap().is_some());
        assert!(!p.keep_alive());
    }

    #[test]
    fn malformed_and_limits() {
        for bad in [
            &b"HTTP/1.1 20 OK\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1  200 OK\r\n\r\n",
            b"HTTP/1.1 099 X\r\n\r\n",
            b"HTTP/1.1 600 X\r\n\r\n",
            b"HTTP/1.1 200\x01OK\r\n\r\n",
            b"HTTP/1.1 200 O\x00K\r\n\r\n",
            b"HTTP/1.1\r\n\r\n",
            b"HTTP/1 200 OK\r\n\r\n",
            b"ICY 200 OK\r\n\r\n",
            b"http/1.1 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
        ] {
            let r = buffered(bad, "GET", false);
            assert!(r.is_err(), "{}: {r:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(
            buffered(b"HTTP/2.0 200 OK\r\n\r\n", "GET", false),
            Err(HttpError::UnsupportedVersion)
        );
        // Accepted variants: no reason, empty reason.
        assert_eq!(
            buffered(b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", "GET", false)
                .unwrap()
                .unwrap()
                .reason,
            ""
        );
        assert!(
            buffered(b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", "GET", false)
                .unwrap()
                .is_some()
        );

        let small = ResponseLimits {
            max_status_line: 32,
            max_header_bytes: 64,
            max_headers: 3,
            max_body: 10,
        };
        let run = |input: &[u8]| {
            let mut p = ResponseParser::with_limits("GET", small);
            p.feed(input);
            p.response()
        };
        let big = format!("HTTP/1.1 200 OK\r\nX: {}\r\n", "a".repeat(100));
        assert_eq!(
            run(big.as_bytes()),
            Err(HttpError::HeadersTooLarge { limit: 64 })
        );
        assert_eq!(
            run(&[b'H'; 40]),
            Err(HttpError::StartLineTooLong { limit: 32 })
        );
        assert_eq!(
            run(b"HTTP/1.1 200 OK\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n"),
            Err(HttpError::TooManyHeaders { limit: 3 })
        );
        assert_eq!(
            run(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n"),
            Err(HttpError::BodyTooLarge { limit: 10 })
        );
        assert_eq!(
            run(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nabcdef\r\n"),
            Err(HttpError::BodyTooLarge { limit: 10 })
        );
        // The streaming interface has no total cap.
        let mut p = ResponseParser::with_limits("GET", small);
        p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n01234567890123456789");
        let (_, data, end) =
            flatten(&std::iter::from_fn(|| p.next_event().unwrap()).collect::<Vec<_>>());
        assert_eq!((data.len(), end), (20, true));
    }

    #[test]
    fn writer() {
        assert_eq!(
            write_response(200, Some("text/plain; charset=utf-8"), b"[]\n", true),
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n[]\n"
        );
        assert_eq!(
            write_response(200, None, b"", false),
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let head = Response::new(400)
            .with_body("GET expected\n")
            .to_bytes(true, true);
        assert!(head.ends_with(b"Content-Length: 13\r\nConnection: keep-alive\r\n\r\n"));
        let e = error_response(&HttpError::BodyTooLarge { limit: 5 });
        assert!(e.starts_with(b"HTTP/1.1 413 Content Too Large\r\n"));
        assert!(e.ends_with(b"Connection: close\r\n\r\nHTTP body larger than 5 bytes\n"));
        // Round trip through our own parser.
        let r = Response::new(404)
            .with_header("X-A", "b")
            .with_body("404 page not found\n");
        let mut p = ResponseParser::new("GET");
        p.feed(&r.to_bytes(true, false));
        assert_eq!(p.response().unwrap().unwrap().body, b"404 page not found\n");
        assert_eq!(CONTINUE, b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    #[test]
    fn dates() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(http_date(1_704_189_600), "Tue, 02 Jan 2024 10:00:00 GMT");
    }
}
