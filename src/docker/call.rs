//! HTTP/1.1 requests to dockerd as driver effects: one Unix-socket
//! connection per request (the exit long poll is just a connection that
//! lives long), many in flight at once as distinct resources
//! ([`Res::Call`]), each with a deadline timer ([`Timer::CtrCall`]) that
//! is cancelled when the call ends. Sans-IO: the shell connects, writes
//! and reads; this table turns its inputs into complete replies.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::driver::{Cx, Input, Res, Timer};
use crate::http::{HttpError, ResponseEvent, ResponseParser};

use super::api::{Api, Req};

/// How long connecting to the daemon's socket may take.
pub(crate) const CONNECT_DEADLINE: Duration = Duration::from_secs(5);

/// Largest error body kept from a stream.
const MAX_STREAM_ERROR_BODY: usize = 64 << 10;

/// Why a request got no usable reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallError {
    /// The socket could not be connected: dockerd is not running (or the
    /// socket path is wrong).
    Unreachable(String),
    /// The deadline passed.
    Timeout(Duration),
    /// The connection broke or the reply was not HTTP.
    Broken(String),
}

impl CallError {
    pub(crate) fn is_unreachable(&self) -> bool {
        matches!(self, CallError::Unreachable(_))
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Unreachable(e) => write!(f, "cannot reach dockerd: {e}"),
            CallError::Timeout(d) => write!(f, "dockerd did not answer within {} s", d.as_secs()),
            CallError::Broken(e) => write!(f, "dockerd connection failed: {e}"),
        }
    }
}

/// A complete reply (for streams: the status, and the body only when the
/// status is an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub(crate) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// What the table reports to the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event<W> {
    /// The head of a reply arrived (the exit long poll sends it as soon as
    /// the wait is registered, API ≥ 1.30).
    Head { what: W, status: u16 },
    /// Body bytes of a 2xx streamed reply.
    Data { what: W, bytes: Vec<u8> },
    /// The request is over.
    Done {
        what: W,
        result: Result<Reply, CallError>,
    },
}

struct Call<W> {
    what: W,
    request: Vec<u8>,
    parser: ResponseParser,
    stream: bool,
    deadline: Option<Duration>,
    status: Option<u16>,
    body: Vec<u8>,
}

/// The requests of one driver.
pub(crate) struct Calls<W> {
    calls: BTreeMap<u32, Call<W>>,
    next: u32,
}

impl<W> Default for Calls<W> {
    fn default() -> Self {
        Calls {
            calls: BTreeMap::new(),
            next: 0,
        }
    }
}

impl<W: Clone + PartialEq> Calls<W> {
    /// Starts a request; returns its number.
    pub(crate) fn send(
        &mut self,
        cx: &mut Cx,
        socket: &Path,
        api: Option<Api>,
        req: &Req,
        what: W,
    ) -> u32 {
        let tag = self.next;
        self.next = self.next.wrapping_add(1);
        let connect = req
            .deadline
            .map_or(CONNECT_DEADLINE, |d| d.min(CONNECT_DEADLINE));
        cx.connect(Res::Call(tag), socket.to_path_buf(), connect);
        if let Some(d) = req.deadline {
            cx.arm(Timer::CtrCall(tag), d);
        }
        self.calls.insert(
            tag,
            Call {
                what,
                request: req.to_bytes(api),
                parser: ResponseParser::new(req.method),
                stream: req.stream,
                deadline: req.deadline,
                status: None,
                body: Vec::new(),
            },
        );
        tag
    }

    /// True when `input` belongs to this table.
    pub(crate) fn owns(&self, input: &Input) -> bool {
        matches!(
            input,
            Input::Timer(Timer::CtrCall(_))
                | Input::Connected { res: Res::Call(_) }
                | Input::ConnectFailed {
                    res: Res::Call(_),
                    ..
                }
                | Input::Data {
                    res: Res::Call(_),
                    ..
                }
                | Input::Closed { res: Res::Call(_) }
        )
    }

    /// Requests in flight with this purpose.
    pub(crate) fn count(&self, pred: impl Fn(&W) -> bool) -> usize {
        self.calls.values().filter(|c| pred(&c.what)).count()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Abandons the requests matching `pred` (their connections are
    /// closed; no event follows).
    pub(crate) fn cancel(&mut self, cx: &mut Cx, pred: impl Fn(&W) -> bool) {
        let tags: Vec<u32> = self
            .calls
            .iter()
            .filter(|(_, c)| pred(&c.what))
            .map(|(t, _)| *t)
            .collect();
        for t in tags {
            self.end(cx, t);
        }
    }

    /// Forgets call `tag`: its socket is closed and its deadline cancelled.
    fn end(&mut self, cx: &mut Cx, tag: u32) -> Option<Call<W>> {
        let c = self.calls.remove(&tag)?;
        cx.close(Res::Call(tag));
        if c.deadline.is_some() {
            cx.cancel(Timer::CtrCall(tag));
        }
        Some(c)
    }

    /// Feeds one input of the shell; appends what came of it.
    pub(crate) fn input(&mut self, cx: &mut Cx, input: Input, out: &mut Vec<Event<W>>) {
        match input {
            Input::Timer(Timer::CtrCall(tag)) => {
                if let Some(c) = self.end(cx, tag) {
                    let d = c.deadline.unwrap_or_default();
                    out.push(Event::Done {
                        what: c.what,
                        result: Err(CallError::Timeout(d)),
                    });
                }
            }
            Input::Connected {
                res: Res::Call(tag),
            } => {
                if let Some(c) = self.calls.get_mut(&tag) {
                    let bytes = std::mem::take(&mut c.request);
                    cx.write(Res::Call(tag), bytes);
                }
            }
            Input::ConnectFailed {
                res: Res::Call(tag),
                error,
            } => {
                if let Some(c) = self.end(cx, tag) {
                    out.push(Event::Done {
                        what: c.what,
                        result: Err(CallError::Unreachable(error)),
                    });
                }
            }
            Input::Data {
                res: Res::Call(tag),
                bytes,
            } => {
                if let Some(c) = self.calls.get_mut(&tag) {
                    c.parser.feed(&bytes);
                    self.drive(cx, tag, false, out);
                }
            }
            Input::Closed {
                res: Res::Call(tag),
            } => {
                if let Some(c) = self.calls.get_mut(&tag) {
                    c.parser.eof();
                    self.drive(cx, tag, true, out);
                }
            }
            _ => {}
        }
    }

    fn drive(&mut self, cx: &mut Cx, tag: u32, closed: bool, out: &mut Vec<Event<W>>) {
        let Some(c) = self.calls.get_mut(&tag) else {
            return;
        };
        let done: Option<Result<Reply, CallError>> = loop {
            match c.parser.next_event() {
                Ok(None) => {
                    if closed {
                        // The parser wants more but the peer is gone.
                        break Some(Err(CallError::Broken(
                            "dockerd closed the connection before the reply was complete".into(),
                        )));
                    }
                    break None;
                }
                Ok(Some(ResponseEvent::Head { status, .. })) => {
                    c.status = Some(status);
                    out.push(Event::Head {
                        what: c.what.clone(),
                        status,
                    });
                }
                Ok(Some(ResponseEvent::Data(d))) => {
                    let ok = c.status.is_some_and(|s| (200..300).contains(&s));
                    if c.stream && ok {
                        out.push(Event::Data {
                            what: c.what.clone(),
                            bytes: d,
                        });
                    } else if !c.stream || c.body.len() < MAX_STREAM_ERROR_BODY {
                        c.body.extend_from_slice(&d);
                    }
                }
                Ok(Some(ResponseEvent::End)) => {
                    break Some(Ok(Reply {
                        status: c.status.unwrap_or(0),
                        body: std::mem::take(&mut c.body),
                    }));
                }
                Err(e) => break Some(Err(broken(&e))),
            }
        };
        if let Some(result) = done {
            // Closing a socket the peer closed is harmless.
            let _ = closed;
            if let Some(c) = self.end(cx, tag) {
                out.push(Event::Done {
                    what: c.what,
                    result,
                });
            }
        }
    }
}

fn broken(e: &HttpError) -> CallError {
    CallError::Broken(format!("bad reply: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{Effect, InstanceKey, IoOp, Jobs, Outcome, TimerOp};
    use crate::payloads::InstanceConfig;
    use std::time::Instant;

    #[derive(Debug, Clone, PartialEq)]
    enum W {
        A,
        B,
    }

    struct T {
        effects: Vec<Effect>,
        outcomes: Vec<Outcome>,
        jobs: Jobs,
        inst: InstanceKey,
        cfg: InstanceConfig,
        now: Instant,
    }

    impl T {
        fn new() -> T {
            T {
                effects: Vec::new(),
                outcomes: Vec::new(),
                jobs: Jobs::default(),
                inst: InstanceKey {
                    id: "i".into(),
                    generation: 1,
                },
                cfg: InstanceConfig::default(),
                now: Instant::now(),
            }
        }
        fn with<R>(&mut self, f: impl FnOnce(&mut Cx) -> R) -> R {
            let mut cx = Cx::new(
                self.now,
                &self.inst,
                &self.cfg,
                &mut self.effects,
                &mut self.outcomes,
                &mut self.jobs,
            );
            f(&mut cx)
        }
    }

    /// Whether `e` closes the socket of call `tag`.
    fn closes(e: &Effect, tag: u32) -> bool {
        matches!(e, Effect::Io(IoOp::Close { key }) if key.what == Res::Call(tag))
    }

    #[test]
    fn request_reply_and_close() {
        let mut t = T::new();
        let mut calls = Calls::<W>::default();
        let api = Some(Api::new(1, 41));
        let tag = t.with(|cx| calls.send(cx, Path::new("/s"), api, &Req::start("c"), W::A));
        assert!(
            matches!(&t.effects[0], Effect::Io(IoOp::Connect { key, .. }) if key.what == Res::Call(tag))
        );
        assert!(
            matches!(&t.effects[1], Effect::Timer(TimerOp::Arm { key, .. }) if key.what == Timer::CtrCall(tag))
        );
        t.effects.clear();
        let mut out = Vec::new();
        t.with(|cx| {
            calls.input(
                cx,
                Input::Connected {
                    res: Res::Call(tag),
                },
                &mut out,
            )
        });
        match &t.effects[0] {
            Effect::Io(IoOp::Write { bytes, .. }) => {
                assert!(bytes.starts_with(b"POST /v1.41/containers/c/start HTTP/1.1\r\n"))
            }
            e => panic!("{e:?}"),
        }
        t.effects.clear();
        let reply = b"HTTP/1.1 204 No Content\r\nApi-Version: 1.41\r\n\r\n";
        // Byte by byte: the reply completes on the last one.
        for (i, b) in reply.iter().enumerate() {
            t.with(|cx| {
                calls.input(
                    cx,
                    Input::Data {
                        res: Res::Call(tag),
                        bytes: vec![*b],
                    },
                    &mut out,
                )
            });
            if i + 1 < reply.len() {
                assert!(!out.iter().any(|e| matches!(e, Event::Done { .. })));
            }
        }
        assert_eq!(
            out.last(),
            Some(&Event::Done {
                what: W::A,
                result: Ok(Reply {
                    status: 204,
                    body: vec![]
                })
            })
        );
        assert!(closes(&t.effects[0], tag));
        // The deadline is cancelled with the call.
        assert!(
            matches!(&t.effects[1], Effect::Timer(TimerOp::Cancel { key }) if key.what == Timer::CtrCall(tag))
        );
        assert!(calls.is_empty());
        // The deadline timer firing anyway (a race in the shell) is harmless.
        out.clear();
        t.with(|cx| calls.input(cx, Input::Timer(Timer::CtrCall(tag)), &mut out));
        assert!(out.is_empty());
    }

    #[test]
    fn failures() {
        let mut t = T::new();
        let mut calls = Calls::<W>::default();
        let mut out = Vec::new();
        let a = t.with(|cx| calls.send(cx, Path::new("/s"), None, &Req::version(), W::A));
        let b = t.with(|cx| calls.send(cx, Path::new("/s"), None, &Req::version(), W::B));
        assert_ne!(a, b);
        t.with(|cx| {
            calls.input(
                cx,
                Input::ConnectFailed {
                    res: Res::Call(a),
                    error: "/s: No such file or directory".into(),
                },
                &mut out,
            )
        });
        assert!(
            matches!(&out[0], Event::Done { what: W::A, result: Err(e) } if e.is_unreachable())
        );
        out.clear();
        t.with(|cx| calls.input(cx, Input::Connected { res: Res::Call(b) }, &mut out));
        t.with(|cx| {
            calls.input(
                cx,
                Input::Data {
                    res: Res::Call(b),
                    bytes: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec(),
                },
                &mut out,
            )
        });
        t.with(|cx| calls.input(cx, Input::Closed { res: Res::Call(b) }, &mut out));
        assert!(matches!(
            &out.last(),
            Some(Event::Done {
                what: W::B,
                result: Err(CallError::Broken(_))
            })
        ));
        // A deadline.
        out.clear();
        let c = t.with(|cx| calls.send(cx, Path::new("/s"), None, &Req::version(), W::A));
        t.effects.clear();
        t.with(|cx| calls.input(cx, Input::Timer(Timer::CtrCall(c)), &mut out));
        assert!(matches!(
            &out[0],
            Event::Done {
                result: Err(CallError::Timeout(_)),
                ..
            }
        ));
        assert!(closes(&t.effects[0], c));
        // Garbage.
        out.clear();
        let d = t.with(|cx| calls.send(cx, Path::new("/s"), None, &Req::version(), W::A));
        t.with(|cx| {
            calls.input(
                cx,
                Input::Data {
                    res: Res::Call(d),
                    bytes: b"SSH-2.0-OpenSSH\r\n\r\n".to_vec(),
                },
                &mut out,
            )
        });
        assert!(matches!(
            &out[0],
            Event::Done {
                result: Err(CallError::Broken(_)),
                ..
            }
        ));
        // Cancel: no event.
        out.clear();
        let e = t.with(|cx| calls.send(cx, Path::new("/s"), None, &Req::wait("c"), W::B));
        t.effects.clear();
        t.with(|cx| calls.cancel(cx, |w| *w == W::B));
        assert!(closes(&t.effects[0], e));
        assert!(
            matches!(&t.effects[1], Effect::Timer(TimerOp::Cancel { key }) if key.what == Timer::CtrCall(e))
        );
        t.with(|cx| calls.input(cx, Input::Closed { res: Res::Call(e) }, &mut out));
        assert!(out.is_empty());
        assert!(calls.is_empty());
    }

    #[test]
    fn streams() {
        let mut t = T::new();
        let mut calls = Calls::<W>::default();
        let mut out = Vec::new();
        let a = t.with(|cx| calls.send(cx, Path::new("/s"), None, &Req::pull("x"), W::A));
        t.with(|cx| {
            calls.input(
                cx,
                Input::Data {
                    res: Res::Call(a),
                    bytes: b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"a\":\r\n"
                        .to_vec(),
                },
                &mut out,
            )
        });
        assert_eq!(
            out,
            vec![
                Event::Head {
                    what: W::A,
                    status: 200
                },
                Event::Data {
                    what: W::A,
                    bytes: b"{\"a\":".to_vec()
                }
            ]
        );
        out.clear();
        t.with(|cx| {
            calls.input(
                cx,
                Input::Data {
                    res: Res::Call(a),
                    bytes: b"2\r\n1}\r\n0\r\n\r\n".to_vec(),
                },
                &mut out,
            )
        });
        assert_eq!(
            out[0],
            Event::Data {
                what: W::A,
                bytes: b"1}".to_vec()
            }
        );
        assert_eq!(
            out[1],
            Event::Done {
                what: W::A,
                result: Ok(Reply {
                    status: 200,
                    body: vec![]
                })
            }
        );
        // An error status keeps the body for the message.
        out.clear();
        let b = t.with(|cx| calls.send(cx, Path::new("/s"), None, &Req::pull("x"), W::B));
        t.with(|cx| calls.input(cx, Input::Data { res: Res::Call(b), bytes: b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 13\r\n\r\n{\"message\":1}".to_vec() }, &mut out));
        assert_eq!(
            out[1],
            Event::Done {
                what: W::B,
                result: Ok(Reply {
                    status: 500,
                    body: b"{\"message\":1}".to_vec()
                })
            }
        );
    }
}
