//! Entry points of the `http_request` and `http_response` fuzz targets
//! (also replayed by tests/fuzz_corpus.rs). Besides "never panics", they
//! check that feeding the same bytes whole, split in two at a point taken
//! from the data, or byte by byte gives the same messages and errors.

use super::{
    Headers, HttpError, Request, RequestLimits, RequestParser, ResponseEvent, ResponseLimits,
    ResponseParser,
};

/// `data[0]`: bit 0 small limits; `data[1]`: split point; rest: the bytes.
pub fn fuzz_request(data: &[u8]) {
    let [flags, cut, input @ ..] = data else {
        return;
    };
    let limits = if flags & 1 == 1 {
        RequestLimits {
            max_request_line: 64,
            max_header_bytes: 256,
            max_headers: 8,
            max_body: 64,
        }
    } else {
        RequestLimits::default()
    };
    let cut = usize::from(*cut) * input.len() / 255;
    let whole = run_requests(limits, &[input]);
    let split = run_requests(limits, &[&input[..cut], &input[cut..]]);
    assert_eq!(whole, split, "split at {cut}");
    if input.len() <= 1024 {
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(whole, run_requests(limits, &bytes), "byte by byte");
    }
    for r in whole.iter().flatten() {
        assert!(r.body.len() <= limits.max_body);
        assert!(r.path.starts_with('/') || r.path == "*");
        let _ = (r.query_params(), r.keep_alive());
    }
}

fn run_requests(limits: RequestLimits, parts: &[&[u8]]) -> Vec<Result<Request, HttpError>> {
    let mut p = RequestParser::with_limits(limits);
    let mut out = Vec::new();
    let drain = |p: &mut RequestParser, out: &mut Vec<_>| loop {
        let _ = p.take_continue();
        match p.next() {
            Ok(Some(r)) => out.push(Ok(r)),
            Ok(None) => return true,
            Err(e) => {
                assert!((400..=505).contains(&e.status()));
                out.push(Err(e));
                return false;
            }
        }
    };
    for part in parts {
        p.feed(part);
        if !drain(&mut p, &mut out) {
            return out;
        }
    }
    p.eof();
    let _ = p.is_idle();
    drain(&mut p, &mut out);
    out
}

/// One parsed response: status, headers, body, trailers.
type Parsed = (u16, Headers, Vec<u8>, Headers);

/// `data[0]`: bit 0 HEAD, bit 1 small limits, bit 2 EOF at the end;
/// `data[1]`: split point; rest: the bytes. Up to 4 responses in a row.
pub fn fuzz_response(data: &[u8]) {
    let [flags, cut, input @ ..] = data else {
        return;
    };
    let method = if flags & 1 == 1 { "HEAD" } else { "GET" };
    let limits = if flags & 2 == 2 {
        ResponseLimits {
            max_status_line: 32,
            max_header_bytes: 256,
            max_headers: 8,
            max_body: 64,
        }
    } else {
        ResponseLimits::default()
    };
    let eof = flags & 4 == 4;
    let cut = usize::from(*cut) * input.len() / 255;
    let parts: [&[u8]; 2] = [&input[..cut], &input[cut..]];
    let whole = run_responses(method, limits, &[input], eof, false);
    assert_eq!(
        whole,
        run_responses(method, limits, &parts, eof, false),
        "split at {cut}"
    );
    let buffered = run_responses(method, limits, &[input], eof, true);
    assert_eq!(
        buffered,
        run_responses(method, limits, &parts, eof, true),
        "buffered split"
    );
    if input.len() <= 1024 {
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            whole,
            run_responses(method, limits, &bytes, eof, false),
            "byte by byte"
        );
    }
    // Buffered and streaming agree unless the buffered body cap was hit.
    if !buffered
        .iter()
        .any(|r| matches!(r, Err(HttpError::BodyTooLarge { .. })))
    {
        assert_eq!(whole, buffered);
    }
    for r in buffered.iter().flatten() {
        assert!(r.2.len() <= limits.max_body);
    }
}

fn run_responses(
    method: &str,
    limits: ResponseLimits,
    parts: &[&[u8]],
    eof: bool,
    buffered: bool,
) -> Vec<Result<Parsed, HttpError>> {
    let mut p = ResponseParser::with_limits(method, limits);
    let mut out = Vec::new();
    let mut cur: Option<Parsed> = None;
    let mut step = |p: &mut ResponseParser, out: &mut Vec<_>| -> bool {
        loop {
            if out.len() >= 4 {
                return false;
            }
            if buffered {
                match p.response() {
                    Ok(Some(r)) => {
                        out.push(Ok((r.status, r.headers, r.body, r.trailers)));
                        p.reset(method);
                    }
                    Ok(None) => return true,
                    Err(e) => {
                        out.push(Err(e));
                        return false;
                    }
                }
                continue;
            }
            match p.next_event() {
                Ok(Some(ResponseEvent::Head {
                    status, headers, ..
                })) => cur = Some((status, headers, Vec::new(), Headers::new())),
                Ok(Some(ResponseEvent::Data(d))) => {
                    assert!(!d.is_empty());
                    if let Some(c) = cur.as_mut() {
                        c.2.extend_from_slice(&d);
                    }
                }
                Ok(Some(ResponseEvent::End)) => {
                    if let Some(mut c) = cur.take() {
                        c.3 = p.trailers().clone();
                        out.push(Ok(c));
                    }
                    let _ = p.keep_alive();
                    p.reset(method);
                }
                Ok(None) => return true,
                Err(e) => {
                    out.push(Err(e));
                    return false;
                }
            }
        }
    };
    for part in parts {
        p.feed(part);
        if !step(&mut p, &mut out) {
            return out;
        }
    }
    if eof {
        p.eof();
        step(&mut p, &mut out);
    }
    out
}
