//! What requests and responses share: the header list, the version, finding
//! the end of a head in a growing buffer, parsing and writing field lines,
//! and the framing headers (`Content-Length`, `Transfer-Encoding`).

use super::error::{excerpt, HttpError};
use std::fmt;

/// HTTP version of a message. Any `HTTP/1.x` with x ≥ 1 is read as 1.1, as
/// RFC 9110 §2.5 asks; other majors are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`: no keep-alive unless asked for, no chunked coding.
    Http10,
    /// `HTTP/1.1`.
    Http11,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        })
    }
}

/// Parses `HTTP/d.d`. `Ok(None)` is a well-formed version other than 1.x.
pub(crate) fn parse_version(v: &[u8]) -> Result<Option<Version>, HttpError> {
    match v {
        [b'H', b'T', b'T', b'P', b'/', maj, b'.', min]
            if maj.is_ascii_digit() && min.is_ascii_digit() =>
        {
            Ok(match (maj, min) {
                (b'1', b'0') => Some(Version::Http10),
                (b'1', _) => Some(Version::Http11),
                _ => None,
            })
        }
        _ => Err(HttpError::Malformed("invalid HTTP version")),
    }
}

/// Header fields in arrival order. Names compare case-insensitively; values
/// are kept as sent, without surrounding whitespace (bytes that are not
/// UTF-8 become U+FFFD).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// An empty list.
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// Appends a field (no check: the writers sanitise on output).
    pub fn push(&mut self, name: &str, value: &str) {
        self.0.push((name.to_string(), value.to_string()));
    }

    /// The first value of `name`, ignoring case.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether any value of `name`, read as a comma-separated list, holds
    /// `token` (ignoring case), e.g. `Connection: keep-alive, Upgrade`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// All fields as (name, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No fields at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Finds the end of a head (start line, fields, empty line) in a buffer that
/// grows between calls, without rescanning, and enforces the size limits
/// before the whole head has arrived (so a peer cannot make us buffer an
/// endless header). Lines end in CRLF or a bare LF (RFC 9112 §2.2).
#[derive(Debug, Clone)]
pub(crate) struct HeadScanner {
    scanned: usize,
    line_start: usize,
    fields_start: Option<usize>,
    max_start_line: usize,
    max_field_bytes: usize,
}

/// A complete head: offsets into the scanned bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct HeadSpan {
    /// End of the start line, its line ending excluded.
    pub start_line_end: usize,
    /// First byte of the field section.
    pub fields_start: usize,
    /// First byte after the empty line that ends the head.
    pub end: usize,
}

impl HeadScanner {
    pub(crate) fn new(max_start_line: usize, max_field_bytes: usize) -> Self {
        HeadScanner {
            scanned: 0,
            line_start: 0,
            fields_start: None,
            max_start_line,
            max_field_bytes,
        }
    }

    /// Bytes examined so far (0: nothing of this head seen yet).
    pub(crate) fn scanned(&self) -> usize {
        self.scanned
    }

    /// Forget progress (the next head starts at offset 0 of a new slice).
    pub(crate) fn reset(&mut self) {
        self.scanned = 0;
        self.line_start = 0;
        self.fields_start = None;
    }

    /// `head` holds the bytes from the start of the head, the same prefix as
    /// on the previous call plus whatever arrived since.
    pub(crate) fn scan(&mut self, head: &[u8]) -> Result<Option<HeadSpan>, HttpError> {
        while let Some(off) = head[self.scanned..].iter().position(|&b| b == b'\n') {
            let nl = self.scanned + off;
            let line = strip_cr(&head[self.line_start..nl]);
            self.scanned = nl + 1;
            match self.fields_start {
                None => {
                    if line.len() > self.max_start_line {
                        return Err(HttpError::StartLineTooLong {
                            limit: self.max_start_line,
                        });
                    }
                    self.fields_start = Some(nl + 1);
                }
                Some(fs) => {
                    if line.is_empty() {
                        let span = HeadSpan {
                            start_line_end: fs - 1 - usize::from(head[..fs - 1].ends_with(b"\r")),
                            fields_start: fs,
                            end: nl + 1,
                        };
                        return Ok(Some(span));
                    }
                    if nl + 1 - fs > self.max_field_bytes {
                        return Err(HttpError::HeadersTooLarge {
                            limit: self.max_field_bytes,
                        });
                    }
                }
            }
            self.line_start = nl + 1;
        }
        self.scanned = head.len();
        match self.fields_start {
            None if head.len() - self.line_start > self.max_start_line + 1 => {
                Err(HttpError::StartLineTooLong {
                    limit: self.max_start_line,
                })
            }
            Some(fs) if head.len() - fs > self.max_field_bytes + 2 => {
                Err(HttpError::HeadersTooLarge {
                    limit: self.max_field_bytes,
                })
            }
            _ => Ok(None),
        }
    }
}

/// Appends what the socket gave to a parser's input `buf`, whose first `pos` bytes are
/// consumed. The consumed prefix is dropped only once it is at least half the buffer, so that
/// byte-by-byte feeding stays linear.
pub(crate) fn append_input(buf: &mut Vec<u8>, pos: &mut usize, data: &[u8]) {
    if *pos > 0 && *pos * 2 >= buf.len() {
        buf.drain(..*pos);
        *pos = 0;
    }
    buf.extend_from_slice(data);
}

/// Skips the empty lines (LF or CRLF) that may precede a start line (RFC 9112 §2.2), moving
/// `pos` past them. True when what is left is a lone CR: the byte after it decides.
pub(crate) fn skip_empty_lines(buf: &[u8], pos: &mut usize) -> bool {
    loop {
        let rest = &buf[*pos..];
        if rest.starts_with(b"\n") {
            *pos += 1;
        } else if rest.starts_with(b"\r\n") {
            *pos += 2;
        } else {
            return rest == b"\r";
        }
    }
}

/// Drops one trailing CR.
pub(crate) fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// RFC 9110 `tchar`: the bytes allowed in methods, field names and tokens.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses the field lines of a complete field section (or trailer section),
/// up to its empty line, appending to `out`.
pub(crate) fn parse_fields(
    block: &[u8],
    max_fields: usize,
    out: &mut Headers,
) -> Result<(), HttpError> {
    for raw in block.split(|&b| b == b'\n') {
        let line = strip_cr(raw);
        if line.is_empty() {
            break;
        }
        if out.len() >= max_fields {
            return Err(HttpError::TooManyHeaders { limit: max_fields });
        }
        let (name, value) = parse_field_line(line)?;
        out.0.push((name, value));
    }
    Ok(())
}

/// One `name: value` line, its line ending already removed.
pub(crate) fn parse_field_line(line: &[u8]) -> Result<(String, String), HttpError> {
    if line.contains(&b'\r') {
        return Err(HttpError::Malformed("bare CR in a header line"));
    }
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(HttpError::Malformed("obsolete line folding in a header"));
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(HttpError::Malformed("header line without a colon"))?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(HttpError::Malformed("invalid header name"));
    }
    let value = trim_ows(&line[colon + 1..]);
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(HttpError::Malformed("control character in a header value"));
    }
    // A tchar name is ASCII, so this conversion is exact.
    let name = String::from_utf8_lossy(name).into_owned();
    Ok((name, String::from_utf8_lossy(value).into_owned()))
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// Appends `name: value\r\n`, dropping bytes that could end the line or the
/// head early: a caller that puts a container name or an error text into a
/// header can never inject a field or split the message.
pub(crate) fn write_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend(name.bytes().filter(|&b| is_tchar(b)));
    out.extend_from_slice(b": ");
    out.extend(value.bytes().map(|b| {
        if matches!(b, b'\r' | b'\n' | 0) {
            b' '
        } else {
            b
        }
    }));
    out.extend_from_slice(b"\r\n");
}

/// The body length announced by `Content-Length`. Several fields (or a list)
/// must agree (RFC 9112 §6.3); a value past `u64::MAX` saturates, which every
/// body limit then refuses.
pub(crate) fn content_length(headers: &Headers) -> Result<Option<u64>, HttpError> {
    let mut found: Option<u64> = None;
    for part in headers.get_all("content-length").flat_map(|v| v.split(',')) {
        let part = part.trim_matches([' ', '\t']);
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(HttpError::Malformed("invalid Content-Length"));
        }
        let n = part.bytes().fold(0u64, |n, d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        });
        match found {
            Some(prev) if prev != n => {
                return Err(HttpError::Malformed("conflicting Content-Length values"))
            }
            _ => found = Some(n),
        }
    }
    Ok(found)
}

/// Whether the body is chunked. Only `chunked` alone is supported: we never
/// ask for compression, and a coding we cannot undo would hand garbage to the
/// JSON or YAML reader.
pub(crate) fn is_chunked(headers: &Headers) -> Result<bool, HttpError> {
    let mut any = false;
    let mut codings = 0usize;
    let mut chunked = false;
    for v in headers.get_all("transfer-encoding") {
        any = true;
        for t in v.split(',') {
            let t = t.trim_matches([' ', '\t']);
            if t.is_empty() {
                continue;
            }
            codings += 1;
            chunked = t.eq_ignore_ascii_case("chunked");
        }
    }
    if !any {
        return Ok(false);
    }
    if codings == 1 && chunked {
        return Ok(true);
    }
    let all: Vec<&str> = headers.get_all("transfer-encoding").collect();
    Err(HttpError::UnsupportedTransferEncoding(excerpt(
        &all.join(", "),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_finds_head_end_incrementally() {
        let msg = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody";
        let mut s = HeadScanner::new(100, 100);
        for n in 0..msg.len() {
            let r = s.scan(&msg[..n]).unwrap();
            if n < 27 {
                assert!(r.is_none(), "{n}");
            } else {
                let span = r.unwrap();
                assert_eq!(
                    (span.start_line_end, span.fields_start, span.end),
                    (14, 16, 27)
                );
                return;
            }
        }
    }

    #[test]
    fn scanner_limits() {
        let mut s = HeadScanner::new(10, 20);
        assert!(s.scan(b"GET /0123456789").is_err());
        let mut s = HeadScanner::new(10, 20);
        assert_eq!(
            s.scan(b"GET / 1\nA: 01234567890123456789\n"),
            Err(HttpError::HeadersTooLarge { limit: 20 })
        );
        let mut s = HeadScanner::new(10, 20);
        assert!(s
            .scan(b"GET / 1\nA: 0123456789012345\n\n")
            .unwrap()
            .is_some());
    }

    #[test]
    fn field_lines() {
        assert_eq!(
            parse_field_line(b"X-A:  v  1 \t").unwrap(),
            ("X-A".into(), "v  1".into())
        );
        assert!(parse_field_line(b"X A: v").is_err());
        assert!(parse_field_line(b"X-A : v").is_err());
        assert!(parse_field_line(b" X-A: v").is_err());
        assert!(parse_field_line(b"X-A v").is_err());
        assert!(parse_field_line(b"X-A: a\rb").is_err());
        assert!(parse_field_line(b"X-A: a\0b").is_err());
        assert_eq!(parse_field_line(b"X-A:").unwrap().1, "");
    }

    #[test]
    fn framing_headers() {
        let mut h = Headers::new();
        h.push("Content-Length", "5");
        h.push("content-length", "5, 5");
        assert_eq!(content_length(&h), Ok(Some(5)));
        h.push("Content-Length", "6");
        assert!(content_length(&h).is_err());
        let mut h = Headers::new();
        h.push("Content-Length", "+5");
        assert!(content_length(&h).is_err());
        let mut h = Headers::new();
        h.push("Content-Length", "99999999999999999999999");
        assert_eq!(content_length(&h), Ok(Some(u64::MAX)));

        let mut h = Headers::new();
        assert_eq!(is_chunked(&h), Ok(false));
        h.push("Transfer-Encoding", "Chunked");
        assert_eq!(is_chunked(&h), Ok(true));
        h.push("Transfer-Encoding", "chunked");
        assert!(is_chunked(&h).is_err());
        let mut h = Headers::new();
        h.push("Transfer-Encoding", "gzip, chunked");
        assert_eq!(
            is_chunked(&h),
            Err(HttpError::UnsupportedTransferEncoding(
                "gzip, chunked".into()
            ))
        );
    }

    #[test]
    fn write_field_cannot_inject() {
        let mut out = Vec::new();
        write_field(&mut out, "X-Na me\r\n", "a\r\nInjected: 1");
        assert_eq!(out, b"X-Name: a  Injected: 1\r\n");
    }

    #[test]
    fn tokens() {
        let mut h = Headers::new();
        h.push("Connection", "Keep-Alive, Upgrade");
        assert!(h.has_token("connection", "keep-alive"));
        assert!(!h.has_token("connection", "close"));
    }
}
