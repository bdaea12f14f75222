//! Hand-written HTTP/1.1, sans-IO: parsers are fed the bytes the event loop
//! read and hand back complete messages (or events); writers return the
//! bytes to send. No sockets, no clocks, no allocation sized by what a peer
//! announces.
//!
//! * Server side (ciao-launcher-server's REST API): [`RequestParser`] →
//!   [`Request`]; answers with [`Response::to_bytes`],
//!   refusals with [`error_response`], `Expect: 100-continue` with
//!   [`CONTINUE`].
//! * Client side (docker Engine API over its Unix socket, ciaolc):
//!   [`write_request`]; [`ResponseParser`] buffered ([`Response`]) or
//!   streaming ([`ResponseEvent`]) for long polls and progress streams.
//! * [`json`]: writer for outgoing JSON, `serde_yaml`-based reader for
//!   incoming JSON, line splitter for JSON streams.

mod chunked;
mod error;
mod fuzz;
mod head;
pub(crate) mod json;
mod request;
mod response;

pub use error::HttpError;
#[doc(hidden)]
pub use fuzz::{fuzz_request, fuzz_response};
pub(crate) use head::Headers;
pub use json::parse_json;
pub use request::write_request;
pub(crate) use request::{
    encode_query, percent_decode, query_escape, Request, RequestLimits, RequestParser,
};
pub(crate) use response::{error_response, http_date, Response, CONTINUE};
pub use response::{reason_phrase, ResponseEvent, ResponseLimits, ResponseParser};
