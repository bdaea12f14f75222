//! The HTTP/1.1 response parser on the replies the docker driver depends
//! on (shapes recorded from Docker Engine 20.10.24), on top of the parser's
//! own tests in src/http: every reply split at every byte boundary gives
//! the same result buffered and streamed; truncation at every point is an
//! error; trailers and heads beyond the limits are refused through the
//! response parser itself; and these replies seed the `http_response` fuzz
//! corpus (replayed by tests/fuzz_corpus.rs).

use ciao::http::{HttpError, ResponseEvent, ResponseLimits, ResponseParser};

const HEAD: &str = "Api-Version: 1.41\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: Docker/20.10.24+dfsg1 (linux)\r\nDate: Wed, 25 Nov 2026 19:02:50 GMT\r\n";

fn with_length(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\n{HEAD}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn chunked(status: &str, chunks: &[&str]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n{HEAD}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    for c in chunks {
        out.push_str(&format!("{:x}\r\n{c}\r\n", c.len()));
    }
    out.push_str("0\r\n\r\n");
    out.into_bytes()
}

/// (name, method, reply) of every kind the driver reads.
fn replies() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        ("start-204", "POST", format!("HTTP/1.1 204 No Content\r\n{HEAD}\r\n").into_bytes()),
        ("start-304", "POST", format!("HTTP/1.1 304 Not Modified\r\n{HEAD}\r\n").into_bytes()),
        ("create-201", "POST", with_length("201 Created", "{\"Id\":\"53c7c0aefcf446bc0507e9eb4baec0cf228dad20716dc06d329281662b8703b1\",\"Warnings\":[]}\n")),
        ("create-409", "POST", with_length("409 Conflict", "{\"message\":\"Conflict. The container name \\\"/u\\\" is already in use by container \\\"53c7\\\". You have to remove (or rename) that container to be able to reuse that name.\"}\n")),
        ("image-404", "GET", with_length("404 Not Found", "{\"message\":\"no such image: 127.0.0.1:1/missing:latest: No such image: 127.0.0.1:1/missing:latest\"}\n")),
        ("pull-500", "POST", with_length("500 Internal Server Error", "{\"message\":\"Get \\\"http://127.0.0.1:1/v2/\\\": dial tcp 127.0.0.1:1: connect: connection refused\"}\n")),
        ("wait-200", "POST", chunked("200 OK", &["{\"Error\":null,\"StatusCode\":137}\n"])),
        ("pull-stream", "POST", chunked("200 OK", &[
            "{\"status\":\"Pulling from library/busybox\",\"id\":\"latest\"}\r\n",
            "{\"status\":\"Downloading\",\"progressDetail\":{\"current\":1,\"total\":2},\"progress\":\"[=>  ]\",\"id\":\"a\"}\r\n",
            "{\"errorDetail\":{\"message\":\"manifest unknown\"},\"error\":\"manifest unknown\"}\r\n",
        ])),
        ("stats", "GET", with_length("200 OK", "{\"read\":\"2026-11-25T19:00:51.815282439Z\",\"pids_stats\":{\"current\":2},\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":31991744,\"percpu_usage\":[15018027,16973717]},\"system_cpu_usage\":6183960000000,\"online_cpus\":2},\"memory_stats\":{\"usage\":770048,\"limit\":16777216},\"name\":\"/t1\"}\n")),
        ("list", "GET", with_length("200 OK", "[{\"Id\":\"53c7\",\"Names\":[\"/u\"],\"State\":\"running\",\"Labels\":{\"ciao.instance-uuid\":\"u\"}}]\n")),
        ("version", "GET", with_length("200 OK", "{\"Version\":\"20.10.24+dfsg1\",\"ApiVersion\":\"1.41\",\"MinAPIVersion\":\"1.12\",\"Os\":\"linux\"}\n")),
    ]
}

type Flat = (u16, Vec<u8>, bool);

fn streamed(method: &str, parts: &[&[u8]], eof: bool) -> Result<Flat, HttpError> {
    let mut p = ResponseParser::new(method);
    let (mut st, mut body, mut end) = (0, Vec::new(), false);
    let mut pull = |p: &mut ResponseParser| -> Result<(), HttpError> {
        while let Some(e) = p.next_event()? {
            match e {
                ResponseEvent::Head { status, .. } => st = status,
                ResponseEvent::Data(d) => body.extend_from_slice(&d),
                ResponseEvent::End => end = true,
            }
        }
        Ok(())
    };
    for part in parts {
        p.feed(part);
        pull(&mut p)?;
    }
    if eof {
        p.eof();
        pull(&mut p)?;
    }
    Ok((st, body, end))
}

#[test]
fn every_docker_reply_at_every_split() {
    for (name, method, reply) in replies() {
        let whole = streamed(method, &[&reply], false).unwrap();
        assert!(whole.2, "{name}: complete");
        let mut p = ResponseParser::new(method);
        p.feed(&reply);
        let r = p.response().unwrap().unwrap();
        assert_eq!(
            (r.status, r.body.clone(), true),
            whole,
            "{name}: buffered = streamed"
        );
        for cut in 0..=reply.len() {
            let got = streamed(method, &[&reply[..cut], &reply[cut..]], false).unwrap();
            assert_eq!(got, whole, "{name}: cut at {cut}");
        }
        let bytes: Vec<&[u8]> = reply.chunks(1).collect();
        assert_eq!(
            streamed(method, &bytes, false).unwrap(),
            whole,
            "{name}: byte by byte"
        );
    }
}

#[test]
fn a_docker_reply_cut_short_is_an_error() {
    for (name, method, reply) in replies() {
        for cut in 0..reply.len() {
            let mut p = ResponseParser::new(method);
            p.feed(&reply[..cut]);
            p.eof();
            let r = p.response();
            // A body-less reply is complete once its head is.
            let head_end = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            if cut >= head_end && (name == "start-204" || name == "start-304") {
                continue;
            }
            assert!(
                matches!(r, Err(HttpError::Truncated(_))),
                "{name}: cut at {cut}: {r:?}"
            );
        }
    }
}

/// The exit long poll: the head comes at once, the body when the container
/// stops (possibly hours later), and a connection that breaks in between
/// is a truncated reply, not an exit status.
#[test]
fn the_wait_long_poll() {
    let reply = chunked("200 OK", &["{\"Error\":null,\"StatusCode\":0}\n"]);
    let head_end = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mut p = ResponseParser::new("POST");
    p.feed(&reply[..head_end]);
    assert!(matches!(
        p.next_event(),
        Ok(Some(ResponseEvent::Head { status: 200, .. }))
    ));
    assert_eq!(p.next_event(), Ok(None));
    assert_eq!(p.response(), Ok(None));
    p.eof();
    assert!(matches!(p.next_event(), Err(HttpError::Truncated(_))));
}

#[test]
fn chunk_extensions_and_trailers_through_the_parser() {
    let reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1d;ext=\"a;b\";other\r\n{\"Error\":null,\"StatusCode\":0}\r\n0;last\r\nX-Docker: 1\r\n\r\n";
    let mut p = ResponseParser::new("POST");
    p.feed(reply);
    let r = p.response().unwrap().unwrap();
    assert_eq!(r.body, b"{\"Error\":null,\"StatusCode\":0}");
    assert_eq!(r.trailers.get("x-docker"), Some("1"));
    // Trailers are held to the header limits.
    let small = ResponseLimits {
        max_status_line: 64,
        max_header_bytes: 64,
        max_headers: 4,
        max_body: 1024,
    };
    let big = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200)
    );
    let mut p = ResponseParser::with_limits("POST", small);
    p.feed(big.as_bytes());
    assert_eq!(p.response(), Err(HttpError::HeadersTooLarge { limit: 64 }));
    let many = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\nE: 1\r\n\r\n";
    let mut p = ResponseParser::with_limits("POST", small);
    p.feed(many.as_bytes());
    assert_eq!(p.response(), Err(HttpError::TooManyHeaders { limit: 4 }));
    // An oversized head from the daemon, fed in small pieces, is refused
    // without buffering it all.
    let mut p = ResponseParser::with_limits("GET", small);
    p.feed(b"HTTP/1.1 200 OK\r\n");
    let mut refused = false;
    for _ in 0..100 {
        p.feed(b"X-Filler: aaaaaaaaaaaaaaaa\r\n");
        if p.response().is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused);
    assert!(p.buffered() < 4096);
}

/// The replies above are in the fuzz corpus (flags 0: GET, default limits,
/// no EOF; the split in the middle), so the fuzzer starts from them.
#[test]
fn docker_replies_are_in_the_fuzz_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/http_response");
    for (name, _, reply) in replies() {
        let mut seed = vec![0u8, 128];
        seed.extend_from_slice(&reply);
        let path = dir.join(format!("docker-{name}"));
        let have = std::fs::read(&path).unwrap_or_default();
        if have != seed {
            if std::env::var("CIAO_WRITE_CORPUS").is_ok() {
                std::fs::write(&path, &seed).unwrap();
            } else {
                panic!(
                    "{} is missing or stale: run this test with CIAO_WRITE_CORPUS=1",
                    path.display()
                );
            }
        }
    }
}
