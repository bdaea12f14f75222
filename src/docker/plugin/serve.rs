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
    /// What each answered request was, in order (for the shell's log).
    pub(crate) calls: Vec<Call>,
}

/// One answered request, as the shell logs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Call {
    /// The request's path (`/NetworkDriver.Join`).
    pub(crate) path: String,
    /// The HTTP status of the reply.
    pub(crate) status: u16,
    /// The reply's non-empty `Err` (network driver) or `Error` (IPAM
    /// driver), if any: the protocol's errors come with status 200.
    pub(crate) err: Option<String>,
}

/// The error members of a plugin reply (one per driver family).
#[derive(serde::Deserialize)]
struct ErrOnly {
    #[serde(rename = "Err", default)]
    err: Option<String>,
    #[serde(rename = "Error", default)]
    error: Option<String>,
}

/// The non-empty error of a reply body, if any.
fn err_of(body: &[u8]) -> Option<String> {
    let b = crate::http::parse_json::<ErrOnly>(body).ok()?;
    [b.err, b.error]
        .into_iter()
        .flatten()
        .find(|e| !e.is_empty())
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
                let (bytes, changed, call) = respond(plugin, &req, links, keep);
                s.calls.push(call);
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

/// The response to one request, whether the state changed, and what to
/// log of it. Plugin calls are POSTs; any other method gets 405.
pub(crate) fn respond(
    plugin: &mut Plugin,
    req: &Request,
    links: &mut dyn LinkLookup,
    keep_alive: bool,
) -> (Vec<u8>, bool, Call) {
    let call = |status: u16, body: &str| Call {
        path: req.path.clone(),
        status,
        err: err_of(body.as_bytes()),
    };
    if req.method != "POST" {
        let body = Body::error(
            Family::Network,
            &format!("method {} not allowed: plugin calls are POST", req.method),
        );
        let r = Response::new(405)
            .with_header("Allow", "POST")
            .with_header("Content-Type", CONTENT_TYPE)
            .with_body(body.clone());
        let bytes = r.to_bytes(keep_alive, req.method == "HEAD");
        return (bytes, false, call(405, &body));
    }
    let reply = plugin.handle(&req.path, &req.body, links);
    let logged = call(reply.status, &reply.body);
    let r = Response::new(reply.status)
        .with_header("Content-Type", CONTENT_TYPE)
        .with_body(reply.body);
    (r.to_bytes(keep_alive, false), reply.changed, logged)
}

#[cfg(test)]
mod tests {
    use super::err_of;

    #[test]
    fn the_error_of_either_family_is_found_and_an_empty_one_is_none() {
        assert_eq!(
            err_of(br#"{"Err":"no such network"}"#).as_deref(),
            Some("no such network")
        );
        assert_eq!(
            err_of(br#"{"Error":"pool exhausted","PoolID":""}"#).as_deref(),
            Some("pool exhausted")
        );
        assert_eq!(err_of(br#"{"Err":"","Value":null}"#), None);
        assert_eq!(err_of(br#"{"Implements":["NetworkDriver"]}"#), None);
        assert_eq!(err_of(b"not json"), None);
    }
}
