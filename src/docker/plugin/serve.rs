//! One HTTP connection's requests answered by the plugin, sans-IO: the
//! shell feeds the bytes it read and writes the bytes this returns. Kept
//! apart from the shell so that the fuzz target drives exactly what the
//! launcher serves.

use super::endpoints::{Body, Family};
use super::{LinkLookup, Plugin, CONTENT_TYPE};
use crate::http::{error_response, Request, RequestLimits, RequestParser, Response, CONTINUE};

/// Largest request body: the biggest call dockerd makes (CreateEndpoint
/// with its options) is well under 4 KiB.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// The limits of a plugin connection's parser.
pub(crate) fn limits() -> RequestLimits {
    RequestLimits {
        max_request_line: 4 * 1024,
        max_header_bytes: 16 * 1024,
        max_headers: 64,
        max_body: MAX_BODY,
    }
}

/// What serving the buffered requests produced.
#[derive(Debug, Default)]
pub(crate) struct Served {
    /// Bytes to write, in order.
    pub(crate) out: Vec<u8>,
    /// The connection ends once `out` is written (`Connection: close`,
    /// HTTP/1.0 without keep-alive, or a request that did not parse).
    pub(crate) close: bool,
    /// The plugin's state changed (save it).
    pub(crate) changed: bool,
    /// Requests answered.
    pub(crate) answered: usize,
}

/// Answers every complete request buffered in `parser`.
pub(crate) fn serve(
    parser: &mut RequestParser,
    plugin: &mut Plugin,
    links: &mut dyn LinkLookup,
) -> Served {
    let mut s = Served::default();
    if parser.take_continue() {
        s.out.extend_from_slice(CONTINUE);
    }
    while !s.close {
        match parser.next() {
            Ok(Some(req)) => {
                let keep = req.keep_alive();
                let (bytes, changed) = respond(plugin, &req, links, keep);
                s.out.extend_from_slice(&bytes);
                s.changed |= changed;
                s.answered += 1;
                s.close = !keep;
            }
            Ok(None) => break,
            Err(e) => {
                s.out.extend_from_slice(&error_response(&e));
                s.close = true;
            }
        }
    }
    s
}

/// The response to one request, and whether the state changed. Plugin
/// calls are POSTs; any other method gets 405.
pub(crate) fn respond(
    plugin: &mut Plugin,
    req: &Request,
    links: &mut dyn LinkLookup,
    keep_alive: bool,
) -> (Vec<u8>, bool) {
    if req.method != "POST" {
        let body = Body::error(
            Family::Network,
            &format!("method {} not allowed: plugin calls are POST", req.method),
        );
        let r = Response::new(405)
            .with_header("Allow", "POST")
            .with_header("Content-Type", CONTENT_TYPE)
            .with_body(body);
        return (r.to_bytes(keep_alive, req.method == "HEAD"), false);
    }
    let reply = plugin.handle(&req.path, &req.body, links);
    let r = Response::new(reply.status)
        .with_header("Content-Type", CONTENT_TYPE)
        .with_body(reply.body);
    (r.to_bytes(keep_alive, false), reply.changed)
}
