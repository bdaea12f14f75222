//! Requests: the server-side parser (ciao-launcher-server's REST API, the
//! docker network plugin later) and the client-side writer (docker Engine
//! API, ciaolc).

use super::chunked::ChunkedDecoder;
use super::error::{excerpt, HttpError};
use super::head::{
    append_input, content_length, is_chunked, is_tchar, parse_fields, parse_version,
    skip_empty_lines, write_field, HeadScanner, Headers, Version,
};

/// Limits of [`RequestParser`]; each violation maps to its own status code
/// (see [`HttpError::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestLimits {
    /// Longest request line, line ending excluded (→ 414).
    pub max_request_line: usize,
    /// Largest header section after the request line (→ 431).
    pub max_header_bytes: usize,
    /// Most header fields (→ 431).
    pub max_headers: usize,
    /// Largest body, announced or decoded (→ 413).
    pub max_body: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_request_line: 8 * 1024,
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            max_body: 16 * 1024 * 1024,
        }
    }
}

/// A complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// The method as sent (methods are case-sensitive).
    pub method: String,
    /// The request target as sent, e.g. `/stats?client=abc`.
    pub target: String,
    /// The path, percent-decoded (absolute-form targets reduced to it).
    pub path: String,
    /// The query as sent, without the `?`; empty when there is none.
    pub query: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: Version,
    /// Header fields in order.
    pub headers: Headers,
    /// The body, de-chunked; trailers are dropped.
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of header `name` (case-insensitive).
    #[cfg(test)]
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)
    }

    /// The first value of query parameter `name`, percent-decoded (`+` is a
    /// space), as Go's `r.URL.Query().Get` (which the original server used)
    /// except that a missing parameter is `None` rather than `""`.
    #[cfg(test)]
    pub(crate) fn query_param(&self, name: &str) -> Option<String> {
        self.query_params()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// All query parameters in order, decoded. As Go's `url.ParseQuery`:
    /// pairs are split on `&`, a pair with a bad escape or a `;` is skipped.
    pub(crate) fn query_params(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for pair in self.query.split('&') {
            if pair.is_empty() || pair.contains(';') {
                continue;
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if let (Some(k), Some(v)) = (percent_decode(k, true), percent_decode(v, true)) {
                out.push((k, v));
            }
        }
        out
    }

    /// Whether the connection stays open after the response (RFC 9112 §9.3):
    /// 1.1 unless `Connection: close`; 1.0 only with `Connection: keep-alive`
    /// and no transfer coding.
    pub(crate) fn keep_alive(&self) -> bool {
        if self.headers.has_token("connection", "close") {
            return false;
        }
        match self.version {
            Version::Http11 => true,
            Version::Http10 => {
                self.headers.has_token("connection", "keep-alive")
                    && self.headers.get("transfer-encoding").is_none()
            }
        }
    }
}

#[derive(Debug)]
enum Body {
    Length(u64),
    Chunked(ChunkedDecoder),
}

#[derive(Debug)]
enum State {
    Head,
    Body(Box<Request>, Body),
    Failed(HttpError),
}

/// Incremental request parser for one connection: feed it what the socket
/// gave, call [`RequestParser::next`] until it returns `Ok(None)`. Pipelined
/// requests come out one per call, in order.
///
/// On `Err`, answer with [`super::error_response`] and close the connection:
/// the error is sticky.
#[derive(Debug)]
pub(crate) struct RequestParser {
    limits: RequestLimits,
    buf: Vec<u8>,
    pos: usize,
    scanner: HeadScanner,
    state: State,
    continue_pending: bool,
    eof: bool,
}

impl Default for RequestParser {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestParser {
    /// A parser with the default limits.
    pub(crate) fn new() -> Self {
        Self::with_limits(RequestLimits::default())
    }

    /// A parser with the given limits.
    pub(crate) fn with_limits(limits: RequestLimits) -> Self {
        RequestParser {
            limits,
            buf: Vec::new(),
            pos: 0,
            scanner: HeadScanner::new(limits.max_request_line, limits.max_header_bytes),
            state: State::Head,
            continue_pending: false,
            eof: false,
        }
    }

    /// Adds bytes read from the connection.
    pub(crate) fn feed(&mut self, data: &[u8]) {
        append_input(&mut self.buf, &mut self.pos, data);
    }

    /// The peer closed its side. Later `next` calls return the requests still
    /// buffered, then `Err(Truncated)` if one was incomplete, else `Ok(None)`.
    pub(crate) fn eof(&mut self) {
        self.eof = true;
    }

    /// No request is partly received (only blank lines, if anything, are
    /// buffered): closing the connection now loses nothing.
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self.state, State::Head)
            && self.buf[self.pos..]
                .iter()
                .all(|&b| b == b'\r' || b == b'\n')
    }

    /// A request head is (or is yet to be) received: no body is being
    /// read and the request has not failed.
    pub(crate) fn receiving_head(&self) -> bool {
        matches!(self.state, State::Head)
    }

    /// True once after a request with `Expect: 100-continue` has its head
    /// accepted and its body is still to come: the caller then writes
    /// [`super::CONTINUE`] (`HTTP/1.1 100 Continue`) so the client sends the
    /// body. A request refused by its head (e.g. 413) never asks for it.
    pub(crate) fn take_continue(&mut self) -> bool {
        std::mem::take(&mut self.continue_pending)
    }

    /// The next complete request, `Ok(None)` if more bytes are needed.
    #[allow(clippy::should_implement_trait)] // Result<Option<_>>, not an Iterator
    pub(crate) fn next(&mut self) -> Result<Option<Request>, HttpError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        let r = self.step();
        if let Err(e) = &r {
            self.state = State::Failed(e.clone());
            self.continue_pending = false;
        }
        r
    }

    fn step(&mut self) -> Result<Option<Request>, HttpError> {
        if let State::Head = self.state {
            if !self.read_head()? {
                return Ok(None);
            }
        }
        let State::Body(req, body) = &mut self.state else {
            return Ok(None);
        };
        let input = &self.buf[self.pos..];
        let done = match body {
            Body::Length(rem) => {
                let n = input.len().min(usize::try_from(*rem).unwrap_or(usize::MAX));
                req.body.extend_from_slice(&input[..n]);
                self.pos += n;
                *rem -= n as u64;
                *rem == 0
            }
            Body::Chunked(dec) => {
                self.pos += dec.decode(input, &mut req.body)?;
                dec.is_done()
            }
        };
        if !done {
            return if self.eof {
                Err(HttpError::Truncated("in the request body"))
            } else {
                Ok(None)
            };
        }
        self.continue_pending = false;
        match std::mem::replace(&mut self.state, State::Head) {
            State::Body(req, _) => Ok(Some(*req)),
            _ => Ok(None),
        }
    }

    /// Reads a head if one is complete; `Ok(true)` when the state moved on
    /// to the body.
    fn read_head(&mut self) -> Result<bool, HttpError> {
        // Between requests the scanner is reset and has seen nothing.
        if self.scanner.scanned() == 0 {
            // RFC 9112 §2.2: ignore empty lines before the request line. After a
            // lone CR, wait for the byte after it (still idle at EOF).
            if skip_empty_lines(&self.buf, &mut self.pos) || self.pos == self.buf.len() {
                return Ok(false);
            }
        }
        let Some(span) = self.scanner.scan(&self.buf[self.pos..])? else {
            return self.need_more("in the request head");
        };
        let head = &self.buf[self.pos..self.pos + span.end];
        let req = parse_request_head(
            &head[..span.start_line_end],
            &head[span.fields_start..],
            &self.limits,
        )?;
        self.pos += span.end;
        self.scanner.reset();
        let (req, body, expect) = req;
        let body = match body {
            Some(b) => b,
            None => Body::Length(0),
        };
        self.continue_pending = expect && !matches!(body, Body::Length(0));
        self.state = State::Body(Box::new(req), body);
        Ok(true)
    }

    fn need_more(&self, r#where: &'static str) -> Result<bool, HttpError> {
        if self.eof {
            Err(HttpError::Truncated(r#where))
        } else {
            Ok(false)
        }
    }
}

/// Parses the request line and the fields; decides the body framing.
/// Returns the request (empty body), its framing and whether the client
/// waits for `100 Continue`.
fn parse_request_head(
    line: &[u8],
    fields: &[u8],
    limits: &RequestLimits,
) -> Result<(Request, Option<Body>, bool), HttpError> {
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::Malformed("invalid request line"));
    };
    let version = parse_version(version)?.ok_or(HttpError::UnsupportedVersion)?;
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(HttpError::Malformed("invalid method"));
    }
    if target.is_empty()
        || !target
            .iter()
            .all(|&b| (0x21..0x7f).contains(&b) && b != b'#')
    {
        return Err(HttpError::Malformed("invalid request target"));
    }
    // Both are ASCII after the checks above.
    let method = String::from_utf8_lossy(method).into_owned();
    let target = String::from_utf8_lossy(target).into_owned();
    let origin = if target.starts_with('/') {
        target.as_str()
    } else if target == "*" && method == "OPTIONS" {
        "*"
    } else if let Some(rest) =
        strip_prefix_ci(&target, "http://").or_else(|| strip_prefix_ci(&target, "https://"))
    {
        // absolute-form: keep path and query.
        rest.find(['/', '?']).map_or("/", |i| &rest[i..])
    } else {
        return Err(HttpError::Malformed("unsupported request target form"));
    };
    let (raw_path, query) = origin.split_once('?').unwrap_or((origin, ""));
    let raw_path = if raw_path.is_empty() { "/" } else { raw_path };
    let path = percent_decode(raw_path, false)
        .ok_or(HttpError::Malformed("invalid percent-encoding in the path"))?;
    let query = query.to_string();

    let mut headers = Headers::new();
    parse_fields(fields, limits.max_headers, &mut headers)?;
    match (version, headers.get_all("host").count()) {
        (_, n) if n > 1 => return Err(HttpError::Malformed("more than one Host header")),
        (Version::Http11, 0) => return Err(HttpError::Malformed("missing Host header")),
        _ => {}
    }
    let chunked = is_chunked(&headers)?;
    let length = content_length(&headers)?;
    let body = match (chunked, length) {
        (true, Some(_)) => {
            return Err(HttpError::Malformed(
                "both Content-Length and Transfer-Encoding",
            ))
        }
        (true, None) => Some(Body::Chunked(ChunkedDecoder::new(
            limits.max_body as u64,
            limits.max_header_bytes,
            limits.max_headers,
        ))),
        (false, Some(n)) if n > limits.max_body as u64 => {
            return Err(HttpError::BodyTooLarge {
                limit: limits.max_body,
            })
        }
        (false, Some(n)) => Some(Body::Length(n)),
        (false, None) => None,
    };
    let mut expect = false;
    if version == Version::Http11 {
        if let Some(v) = headers.get("expect") {
            if !v.eq_ignore_ascii_case("100-continue") {
                return Err(HttpError::ExpectationFailed(excerpt(v)));
            }
            expect = true;
        }
    }
    let cap = match &body {
        Some(Body::Length(n)) => (*n).min(64 * 1024) as usize,
        _ => 0,
    };
    let req = Request {
        method,
        target,
        path,
        query,
        version,
        headers,
        body: Vec::with_capacity(cap),
    };
    Ok((req, body, expect))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// Decodes `%XX` escapes (and `+` as a space when `plus` is set, for query
/// components). `None` on a malformed escape; bytes that are not UTF-8 after
/// decoding become U+FFFD.
pub(crate) fn percent_decode(s: &str, plus: bool) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hi = (hex[0] as char).to_digit(16)?;
                let lo = (hex[1] as char).to_digit(16)?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
            b'+' if plus => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Escapes a query component as Go's `url.QueryEscape`: `A-Za-z0-9-_.~`
/// stay, a space becomes `+`, everything else `%XX`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => push_pct(&mut out, b),
        }
    }
    out
}

/// `k1=v1&k2=v2`, each side escaped with [`query_escape`], in the order
/// given (ciaolc sorts its keys, as Go's `url.Values.Encode`).
pub(crate) fn encode_query(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect();
    parts.join("&")
}

fn push_pct(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 15)] as char);
}

/// Serialises a request: `method target HTTP/1.1`, `Host`, `headers` in
/// order, `Content-Length` when there is a body or the method is POST, PUT
/// or PATCH (Go's client does the same; dockerd wants a length on a
/// body-less POST), then the body.
///
/// The writer frames the message itself: `Host`, `Content-Length` and
/// `Transfer-Encoding` in `headers` are dropped. Bytes of `target` that are
/// spaces, controls or not ASCII are percent-encoded, and CR/LF in header
/// values become spaces, so no caller data can split the request.
pub fn write_request(
    method: &str,
    target: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + target.len() + body.len());
    out.extend(method.bytes().filter(|&b| is_tchar(b)));
    out.push(b' ');
    if target.is_empty() {
        out.push(b'/');
    }
    for b in target.bytes() {
        if b <= b' ' || b >= 0x7f {
            let mut s = String::new();
            push_pct(&mut s, b);
            out.extend_from_slice(s.as_bytes());
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    write_field(&mut out, "Host", host);
    for (n, v) in headers {
        if ["host", "content-length", "transfer-encoding"]
            .iter()
            .any(|f| n.eq_ignore_ascii_case(f))
        {
            continue;
        }
        write_field(&mut out, n, v);
    }
    if !body.is_empty() || ["POST", "PUT", "PATCH"].contains(&method) {
        write_field(&mut out, "Content-Length", &body.len().to_string());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8], limits: RequestLimits) -> Vec<Result<Request, HttpError>> {
        let mut p = RequestParser::with_limits(limits);
        p.feed(input);
        p.eof();
        let mut out = Vec::new();
        loop {
            match p.next() {
                Ok(Some(r)) => out.push(Ok(r)),
                Ok(None) => return out,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }

    fn one(input: &[u8]) -> Result<Request, HttpError> {
        parse_all(input, RequestLimits::default())
            .into_iter()
            .next()
            .unwrap_or(Err(HttpError::Truncated("nothing")))
    }

    fn status(input: &[u8]) -> u16 {
        one(input).map(|_| 200).unwrap_or_else(|e| e.status())
    }

    /// The exact bytes the original ciaolc sends (captured from it).
    const CIAOLC_GET: &[u8] = b"GET /instances?client=abc&filter=active HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUser-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n";
    const CIAOLC_POST: &[u8] = b"POST /stop HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 56\r\nContent-Type: text/yaml\r\nAccept-Encoding: gzip\r\n\r\nstop:\n  instance_uuid: \"1234\"\n  workload_agent_uuid: \"\"\n";

    #[test]
    fn ciaolc_requests() {
        let r = one(CIAOLC_GET).unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/instances"));
        assert_eq!(r.query_param("client").as_deref(), Some("abc"));
        assert_eq!(r.query_param("filter").as_deref(), Some("active"));
        assert_eq!(r.query_param("other"), None);
        assert_eq!(r.header("user-agent"), Some("Go-http-client/1.1"));
        assert!(r.keep_alive());
        assert!(r.body.is_empty());
        let r = one(CIAOLC_POST).unwrap();
        assert_eq!(r.path, "/stop");
        assert_eq!(r.body.len(), 56);
        assert!(r.body.starts_with(b"stop:\n"));
    }

    #[test]
    fn every_split_gives_the_same_requests() {
        let mut input = Vec::new();
        input.extend_from_slice(CIAOLC_GET);
        input.extend_from_slice(CIAOLC_POST);
        input.extend_from_slice(
            b"POST /start?client=x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
        );
        let whole = parse_all(&input, RequestLimits::default());
        assert_eq!(whole.len(), 3);
        assert!(whole.iter().all(|r| r.is_ok()));
        for cut in 0..=input.len() {
            let mut p = RequestParser::new();
            let mut got = Vec::new();
            p.feed(&input[..cut]);
            while let Some(r) = p.next().unwrap() {
                got.push(Ok(r));
            }
            p.feed(&input[cut..]);
            while let Some(r) = p.next().unwrap() {
                got.push(Ok(r));
            }
            assert_eq!(got, whole, "cut at {cut}");
        }
        // And one byte at a time.
        let mut p = RequestParser::new();
        let mut got = Vec::new();
        for b in &input {
            p.feed(std::slice::from_ref(b));
            while let Some(r) = p.next().unwrap() {
                got.push(Ok(r));
            }
        }
        assert_eq!(got, whole);
        assert!(p.is_idle());
    }

    #[test]
    fn pipelined_and_blank_lines() {
        let input = b"\r\n\nGET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.0\r\n\r\n\r\nGET /c HTTP/1.1\nHost: h\n\n";
        let all = parse_all(input, RequestLimits::default());
        let paths: Vec<_> = all
            .iter()
            .map(|r| r.as_ref().unwrap().path.clone())
            .collect();
        assert_eq!(paths, ["/a", "/b", "/c"]);
        assert!(!all[1].as_ref().unwrap().keep_alive());
    }

    #[test]
    fn query_decoding_like_go() {
        let r =
            one(b"GET /x?a=1&a=2&b=%41+b&bad=%zz&c;d=1&=e&f HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(r.query_param("a").as_deref(), Some("1"));
        assert_eq!(r.query_param("b").as_deref(), Some("A b"));
        assert_eq!(r.query_param("bad"), None);
        assert_eq!(r.query_param("c"), None);
        assert_eq!(r.query_param("f").as_deref(), Some(""));
        let r = one(b"GET /%63lients HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(r.path, "/clients");
        let r =
            one(b"GET http://127.0.0.1:9000/stats?client=a HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!((r.path.as_str(), r.query.as_str()), ("/stats", "client=a"));
        assert_eq!(status(b"GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n"), 400);
    }

    #[test]
    fn each_limit_has_its_status() {
        let small = RequestLimits {
            max_request_line: 64,
            max_header_bytes: 128,
            max_headers: 4,
            max_body: 16,
        };
        let st = |input: &[u8]| match parse_all(input, small).pop() {
            Some(Ok(_)) => 200,
            Some(Err(e)) => e.status(),
            None => 0,
        };
        let long_uri = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(100));
        assert_eq!(st(long_uri.as_bytes()), 414);
        // Refused before the line ends: the peer cannot make us buffer more.
        let mut p = RequestParser::with_limits(small);
        p.feed(&[b'a'; 70]);
        assert_eq!(p.next().map_err(|e| e.status()), Err(414));
        let big_headers = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
            "v".repeat(200)
        );
        assert_eq!(st(big_headers.as_bytes()), 431);
        assert_eq!(
            st(b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n"),
            431
        );
        assert_eq!(
            st(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 17\r\n\r\n"),
            413
        );
        assert_eq!(
            st(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n123456789\r\n9\r\n"),
            413
        );
        assert_eq!(
            st(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            413
        );
        assert_eq!(st(b"GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 505);
        assert_eq!(st(b"GET / HTTP/1.2\r\nHost: h\r\n\r\n"), 200);
        assert_eq!(
            st(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"),
            501
        );
        assert_eq!(
            st(b"POST / HTTP/1.1\r\nHost: h\r\nExpect: teapot\r\n\r\n"),
            417
        );
        for bad in [
            &b"GET /  HTTP/1.1\r\nHost: h\r\n\r\n"[..],
            b"GET / HTTP/1.1 x\r\nHost: h\r\n\r\n",
            b"GET / HTTP1.1\r\nHost: h\r\n\r\n",
            b"G@T / HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET x HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n",
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n",
            b"GET\r\n\r\n",
        ] {
            assert_eq!(status(bad), 400, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn truncation_and_eof() {
        let mut p = RequestParser::new();
        p.feed(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc");
        assert_eq!(p.next(), Ok(None));
        assert!(!p.is_idle());
        p.eof();
        assert_eq!(p.next(), Err(HttpError::Truncated("in the request body")));
        // Sticky.
        assert_eq!(p.next(), Err(HttpError::Truncated("in the request body")));
        let mut p = RequestParser::new();
        p.feed(b"GET / HT");
        p.eof();
        assert!(matches!(p.next(), Err(HttpError::Truncated(_))));
        let mut p = RequestParser::new();
        p.feed(b"\r\n");
        p.eof();
        assert_eq!(p.next(), Ok(None));
    }

    #[test]
    fn expect_continue() {
        let mut p = RequestParser::new();
        p.feed(
            b"POST /start HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
        );
        assert_eq!(p.next(), Ok(None));
        assert!(p.take_continue());
        assert!(!p.take_continue());
        p.feed(b"abc");
        assert_eq!(p.next().unwrap().unwrap().body, b"abc");
        // Body already there: no 100 needed.
        let mut p = RequestParser::new();
        p.feed(b"POST /start HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc");
        assert!(p.next().unwrap().is_some());
        assert!(!p.take_continue());
        // Too large: refused instead of continued.
        let mut p = RequestParser::with_limits(RequestLimits {
            max_body: 2,
            ..RequestLimits::default()
        });
        p.feed(
            b"POST /start HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
        );
        assert_eq!(p.next().map_err(|e| e.status()), Err(413));
        assert!(!p.take_continue());
    }

    #[test]
    fn writer() {
        let w = write_request(
            "POST",
            "/v1.41/images/create?fromImage=a b\r\n",
            "docker",
            &[
                ("User-Agent", "ciao-1.0"),
                ("Content-Length", "99"),
                ("X-Registry-Auth", ""),
            ],
            b"",
        );
        assert_eq!(
            w,
            b"POST /v1.41/images/create?fromImage=a%20b%0D%0A HTTP/1.1\r\nHost: docker\r\nUser-Agent: ciao-1.0\r\nX-Registry-Auth: \r\nContent-Length: 0\r\n\r\n"
        );
        let w = write_request("GET", "/version", "docker", &[], b"");
        assert_eq!(w, b"GET /version HTTP/1.1\r\nHost: docker\r\n\r\n");
        // What we write, we parse back.
        let w = write_request("PUT", "/x?q=1", "h", &[("A", "b")], b"body");
        let r = one(&w).unwrap();
        assert_eq!(
            (r.method.as_str(), r.body.as_slice()),
            ("PUT", &b"body"[..])
        );
        assert_eq!(
            encode_query(&[("client", "a b&c"), ("filter", "active/é")]),
            "client=a+b%26c&filter=active%2F%C3%A9"
        );
    }
}
