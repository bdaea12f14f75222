//! The one error type of the HTTP module, shared by the request (server) and
//! response (client) sides, with the status code a server answers it with.

use std::fmt;

/// Why an HTTP/1.1 message could not be parsed.
///
/// Errors are sticky: once a parser returned one, it returns the same error
/// again, because the framing of everything after it is unknown and the
/// connection has to be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// A syntax error; the text says which part of the message is wrong.
    Malformed(&'static str),
    /// The request line (or status line) is longer than the limit.
    StartLineTooLong {
        /// The limit in bytes.
        limit: usize,
    },
    /// The header section (or the trailer section) is larger than the limit.
    HeadersTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// More header fields than the limit.
    TooManyHeaders {
        /// The limit in fields.
        limit: usize,
    },
    /// The body is (or announces to be) larger than the limit.
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The HTTP version is not 1.x.
    UnsupportedVersion,
    /// A `Transfer-Encoding` other than `chunked` (the value, cut to 64 bytes).
    UnsupportedTransferEncoding(String),
    /// An `Expect` other than `100-continue` (the value, cut to 64 bytes).
    ExpectationFailed(String),
    /// The peer closed the connection in the middle of a message; the text
    /// says where.
    Truncated(&'static str),
}

impl HttpError {
    /// The status code a server answers this error with (RFC 9110 / 9112).
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Malformed(_) | HttpError::Truncated(_) => 400,
            HttpError::StartLineTooLong { .. } => 414,
            HttpError::HeadersTooLarge { .. } | HttpError::TooManyHeaders { .. } => 431,
            HttpError::BodyTooLarge { .. } => 413,
            HttpError::UnsupportedVersion => 505,
            HttpError::UnsupportedTransferEncoding(_) => 501,
            HttpError::ExpectationFailed(_) => 417,
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Malformed(what) => write!(f, "malformed HTTP message: {what}"),
            HttpError::StartLineTooLong { limit } => {
                write!(f, "HTTP request or status line longer than {limit} bytes")
            }
            HttpError::HeadersTooLarge { limit } => {
                write!(f, "HTTP header section larger than {limit} bytes")
            }
            HttpError::TooManyHeaders { limit } => {
                write!(f, "more than {limit} HTTP header fields")
            }
            HttpError::BodyTooLarge { limit } => {
                write!(f, "HTTP body larger than {limit} bytes")
            }
            HttpError::UnsupportedVersion => {
                write!(f, "HTTP version not supported (only 1.0 and 1.1)")
            }
            HttpError::UnsupportedTransferEncoding(v) => {
                write!(f, "unsupported HTTP Transfer-Encoding {v:?} (only chunked)")
            }
            HttpError::ExpectationFailed(v) => {
                write!(f, "unsupported HTTP Expect {v:?} (only 100-continue)")
            }
            HttpError::Truncated(r#where) => {
                write!(
                    f,
                    "connection closed in the middle of an HTTP message ({where})"
                )
            }
        }
    }
}

impl std::error::Error for HttpError {}

/// Cuts a header value for an error message, on a char boundary.
pub(crate) fn excerpt(v: &str) -> String {
    let mut end = v.len().min(64);
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    v[..end].to_string()
}
