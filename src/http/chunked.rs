//! The chunked transfer coding (RFC 9112 §7.1), decoded byte by byte so that
//! any split of the input gives the same result, and so that nothing is
//! allocated from a chunk size: a size only counts down as data arrives.

use super::error::HttpError;
use super::head::{parse_field_line, Headers};

/// Longest chunk-size line (size, extensions) accepted.
const MAX_SIZE_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits.
    Size,
    /// Whitespace after the digits, before `;` or CR.
    SizeWs,
    /// Inside chunk extensions (ignored), up to CR.
    Ext,
    /// After the CR of the size line.
    SizeLf,
    /// `remaining` bytes of chunk data to go.
    Data,
    /// Expecting the CR after chunk data.
    DataCr,
    /// Expecting the LF after chunk data.
    DataLf,
    /// Reading trailer field lines (after the last chunk).
    Trailer,
    /// The empty line after the trailers has been read.
    Done,
}

/// Incremental decoder of a chunked body.
#[derive(Debug, Clone)]
pub(crate) struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: usize,
    line_len: usize,
    remaining: u64,
    total: u64,
    max_body: u64,
    line: Vec<u8>,
    trailer_bytes: usize,
    max_trailer_bytes: usize,
    max_trailers: usize,
    /// Trailer fields, once read.
    pub trailers: Headers,
}

impl ChunkedDecoder {
    /// `max_body` caps the decoded size (→ `BodyTooLarge`); the trailer
    /// section is held to the same limits as a header section.
    pub(crate) fn new(max_body: u64, max_trailer_bytes: usize, max_trailers: usize) -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            line_len: 0,
            remaining: 0,
            total: 0,
            max_body,
            line: Vec::new(),
            trailer_bytes: 0,
            max_trailer_bytes,
            max_trailers,
            trailers: Headers::new(),
        }
    }

    /// The terminating empty line has been read.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`, appending chunk data to `out`. Returns how many
    /// bytes of `input` were used: all of them, or fewer when the body ended
    /// (the rest belongs to the next message).
    pub(crate) fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, HttpError> {
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            if self.state == State::Data {
                let avail = (input.len() - i) as u64;
                let n = avail.min(self.remaining) as usize;
                out.extend_from_slice(&input[i..i + n]);
                i += n;
                self.remaining -= n as u64;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let b = input[i];
            i += 1;
            self.byte(b)?;
        }
        Ok(i)
    }

    fn byte(&mut self, b: u8) -> Result<(), HttpError> {
        if matches!(self.state, State::Size | State::SizeWs | State::Ext) {
            self.line_len += 1;
            if self.line_len > MAX_SIZE_LINE {
                return Err(HttpError::Malformed("chunk size line too long"));
            }
        }
        match self.state {
            State::Size => match b {
                _ if b.is_ascii_hexdigit() => {
                    // 16 hex digits fill a u64; a longer size can never be
                    // honest, and must not wrap around to a small one.
                    if self.digits == 16 {
                        return Err(HttpError::Malformed("chunk size too large"));
                    }
                    self.digits += 1;
                    let d = (b as char).to_digit(16).unwrap_or(0);
                    self.size = (self.size << 4) | u64::from(d);
                }
                _ if self.digits == 0 => return Err(HttpError::Malformed("invalid chunk size")),
                b' ' | b'\t' => self.state = State::SizeWs,
                b';' => self.state = State::Ext,
                b'\r' => self.state = State::SizeLf,
                _ => return Err(HttpError::Malformed("invalid chunk size")),
            },
            State::SizeWs => match b {
                b' ' | b'\t' => {}
                b';' => self.state = State::Ext,
                b'\r' => self.state = State::SizeLf,
                _ => return Err(HttpError::Malformed("invalid chunk size")),
            },
            State::Ext => match b {
                b'\r' => self.state = State::SizeLf,
                b'\t' => {}
                _ if b < 0x20 || b == 0x7f => {
                    return Err(HttpError::Malformed("invalid chunk extension"))
                }
                _ => {}
            },
            State::SizeLf => {
                if b != b'\n' {
                    return Err(HttpError::Malformed("chunk size line not ended by CRLF"));
                }
                if self.size == 0 {
                    self.state = State::Trailer;
                } else {
                    if self.size > self.max_body - self.total {
                        return Err(HttpError::BodyTooLarge {
                            limit: usize::try_from(self.max_body).unwrap_or(usize::MAX),
                        });
                    }
                    self.total += self.size;
                    self.remaining = self.size;
                    self.state = State::Data;
                }
                self.size = 0;
                self.digits = 0;
                self.line_len = 0;
            }
            State::DataCr => {
                if b != b'\r' {
                    return Err(HttpError::Malformed("chunk data not followed by CRLF"));
                }
                self.state = State::DataLf;
            }
            State::DataLf => {
                if b != b'\n' {
                    return Err(HttpError::Malformed("chunk data not followed by CRLF"));
                }
                self.state = State::Size;
            }
            State::Trailer => {
                self.trailer_bytes += 1;
                if self.trailer_bytes > self.max_trailer_bytes + 2 {
                    return Err(HttpError::HeadersTooLarge {
                        limit: self.max_trailer_bytes,
                    });
                }
                if b != b'\n' {
                    self.line.push(b);
                    return Ok(());
                }
                let line = std::mem::take(&mut self.line);
                let line = line.strip_suffix(b"\r").unwrap_or(&line);
                if line.is_empty() {
                    self.state = State::Done;
                    return Ok(());
                }
                if self.trailers.len() >= self.max_trailers {
                    return Err(HttpError::TooManyHeaders {
                        limit: self.max_trailers,
                    });
                }
                let (name, value) = parse_field_line(line)?;
                self.trailers.push(&name, &value);
            }
            State::Data | State::Done => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize, Headers), HttpError> {
        let mut d = ChunkedDecoder::new(1 << 20, 1024, 10);
        let mut out = Vec::new();
        let used = d.decode(input, &mut out)?;
        if !d.is_done() {
            return Err(HttpError::Truncated("test"));
        }
        Ok((out, used, d.trailers))
    }

    #[test]
    fn basic_extensions_trailers() {
        let input = b"4;name=\"va;l\"\r\nWiki\r\n5 ; x\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0;last\r\nExpires: never\r\nX-Sum: 1\r\n\r\nNEXT";
        let (out, used, tr) = decode_all(input).unwrap();
        assert_eq!(out, b"Wikipedia in\r\n\r\nchunks.");
        assert_eq!(&input[used..], b"NEXT");
        assert_eq!(tr.get("x-sum"), Some("1"));
        assert_eq!(tr.get("expires"), Some("never"));
    }

    #[test]
    fn every_split_is_equal() {
        let input = b"a;e=1\r\n0123456789\r\n1\r\nX\r\n0\r\nT: v\r\n\r\n";
        let whole = decode_all(input).unwrap();
        for cut in 0..=input.len() {
            let mut d = ChunkedDecoder::new(1 << 20, 1024, 10);
            let mut out = Vec::new();
            let a = d.decode(&input[..cut], &mut out).unwrap();
            assert_eq!(a, cut);
            let b = d.decode(&input[cut..], &mut out).unwrap();
            assert!(d.is_done());
            assert_eq!((out, a + b, d.trailers), whole);
        }
    }

    #[test]
    fn hostile_sizes() {
        assert_eq!(
            decode_all(b"10000000000000000\r\n"),
            Err(HttpError::Malformed("chunk size too large"))
        );
        // 16 digits are accepted by the parser but refused by the body cap.
        assert_eq!(
            decode_all(b"ffffffffffffffff\r\nab"),
            Err(HttpError::BodyTooLarge { limit: 1 << 20 })
        );
        assert!(decode_all(b"\r\n").is_err());
        assert!(decode_all(b"-1\r\n").is_err());
        assert!(decode_all(b"0x1\r\n").is_err());
        assert!(decode_all(b"1\nX\r\n0\r\n\r\n").is_err());
        assert!(decode_all(b"1\r\nXY\r\n0\r\n\r\n").is_err());
        assert!(decode_all(b"1\r\nX\r\n0\r\nbad trailer\r\n\r\n").is_err());
        let long = format!("1;{}\r\n", "e".repeat(5000));
        assert_eq!(
            decode_all(long.as_bytes()),
            Err(HttpError::Malformed("chunk size line too long"))
        );
    }

    #[test]
    fn body_cap_across_chunks() {
        let mut d = ChunkedDecoder::new(5, 1024, 10);
        let mut out = Vec::new();
        assert!(d.decode(b"3\r\nabc\r\n", &mut out).is_ok());
        assert_eq!(
            d.decode(b"3\r\n", &mut out),
            Err(HttpError::BodyTooLarge { limit: 5 })
        );
    }

    #[test]
    fn trailer_limits() {
        let mut d = ChunkedDecoder::new(100, 10, 10);
        let r = d.decode(b"0\r\nX-Long: 0123456789\r\n\r\n", &mut Vec::new());
        assert_eq!(r, Err(HttpError::HeadersTooLarge { limit: 10 }));
        let mut d = ChunkedDecoder::new(100, 1000, 1);
        let r = d.decode(b"0\r\nA: 1\r\nB: 2\r\n\r\n", &mut Vec::new());
        assert_eq!(r, Err(HttpError::TooManyHeaders { limit: 1 }));
    }
}
