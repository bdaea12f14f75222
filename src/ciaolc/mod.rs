//! ciaolc: command-line client of the ciao-launcher-server REST API.
//!
//! Command names, per-command flags, flag-set names, the stop-at-first-
//! positional rule, the request paths and bodies, and the output layouts are
//! the original's, so scripts keep working. What differs
//! on purpose (docs/compatibility.md): `-server` works, every failure (an
//! HTTP error answer, an unreachable server) is a message on stderr and a
//! non-zero exit status, and `stats` prints its block even when the node has
//! no instances.
//!
//! [`run`] is the whole program minus the process: it takes the arguments, a
//! [`client::Transport`] and two writers, and returns the exit status.

mod bodies;
pub mod client;
pub mod format;
mod tabwriter;

use std::io::Write;

use crate::cli::{Flag, FlagError, FlagSet, Kind};
use client::{Request, Response, TcpTransport, Transport};

/// Default server address.
pub(crate) const DEFAULT_SERVER: &str = "127.0.0.1:9000";

/// The usage text of the original, byte for byte (it does not list
/// `clients` and `instances`: C7 in docs/compatibility.md, kept so that
/// the text stays the original's; ciaolc(1) documents every command).
pub(crate) const USAGE: &str = "ciaolc is a command line tool for testing ciao-launcher

Usage:
\tciaolc command

Where commands are:
\tstartf
\tdelete
\tstop
\trestart
\tdrain
\tstats
\tistats
\tstatus
\tattach
\tdetach

Flags:
  -server string
    \tIP port of server (default \"127.0.0.1:9000\")
";

/// The `-filter` check of the original (its help text says `running`, which
/// it rejects: defect C4, kept).
fn check_filter(v: &str) -> Result<(), String> {
    match v {
        "none" | "exited" | "pending" | "active" => Ok(()),
        _ => Err("exited, pending, active expected".to_string()),
    }
}

fn client_flag() -> Flag {
    Flag {
        name: "client",
        kind: Kind::Str,
        usage: "UUID of client",
        default: "",
    }
}

fn filter_flag() -> Flag {
    Flag {
        name: "filter",
        kind: Kind::Value(check_filter),
        usage: "Can be exited, pending or running",
        default: "none",
    }
}

/// `path` plus the non-empty parameters, keys in sorted order, as Go's
/// `url.Values.Encode` writes them (`client` before `filter`).
pub(crate) fn target(path: &str, params: &[(&str, &str)]) -> String {
    let mut params: Vec<(&str, &str)> = params
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    params.sort_by_key(|(k, _)| *k);
    if params.is_empty() {
        return path.to_string();
    }
    format!("{path}?{}", crate::http::encode_query(&params))
}

/// Output and exit status of one run, before it is written anywhere.
struct Outcome {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Outcome {
    fn ok(stdout: impl Into<Vec<u8>>) -> Self {
        Outcome {
            code: 0,
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }
    fn fail(code: i32, stderr: impl Into<String>) -> Self {
        Outcome {
            code,
            stdout: Vec::new(),
            stderr: stderr.into(),
        }
    }
    fn error(msg: impl std::fmt::Display) -> Self {
        Self::fail(1, format!("Error: {msg}\n"))
    }
}

/// What a command needs to talk to the server.
struct Ctx<'a> {
    server: String,
    transport: &'a mut dyn Transport,
}

impl Ctx<'_> {
    /// Sends the request; any transport failure or non-200 answer becomes
    /// the error message to print.
    fn call(&mut self, req: Request, client: &str) -> Result<Vec<u8>, Outcome> {
        let resp = self
            .transport
            .send(&self.server, &req)
            .map_err(Outcome::error)?;
        if resp.status == 200 {
            return Ok(resp.body);
        }
        Err(Outcome::error(explain(&self.server, &req, client, &resp)))
    }

    fn get(
        &mut self,
        path: &str,
        params: &[(&str, &str)],
        client: &str,
    ) -> Result<Vec<u8>, Outcome> {
        self.call(
            Request {
                method: "GET",
                target: target(path, params),
                body: None,
            },
            client,
        )
    }

    fn post(&mut self, path: &str, client: &str, body: Vec<u8>) -> Outcome {
        let req = Request {
            method: "POST",
            target: target(path, &[("client", client)]),
            body: Some(body),
        };
        match self.call(req, client) {
            Ok(_) => Outcome::ok(Vec::new()),
            Err(o) => o,
        }
    }
}

/// A one-line explanation of an error answer, with what to do about it.
fn explain(server: &str, req: &Request, client: &str, resp: &Response) -> String {
    let text = String::from_utf8_lossy(&resp.body);
    let text = text.trim();
    let text: String = if text.chars().count() > 200 {
        text.chars().take(200).collect::<String>() + "..."
    } else {
        text.to_string()
    };
    let path = req.target.split('?').next().unwrap_or("");
    let hint = match (resp.status, text.as_str()) {
        (400, "Invalid client") if client.is_empty() => {
            "No launcher is connected, or several are: choose one with -client UUID (see ciaolc clients).".to_string()
        }
        (400, "Invalid client") => format!("No launcher with UUID {client} is connected (see ciaolc clients)."),
        (404, "Stats not available") => {
            "The launcher has not sent its statistics yet; try again in a few seconds.".to_string()
        }
        (404, "Statuss not available") => "The launcher has not sent its status yet; try again in a few seconds.".to_string(),
        (404, _) => format!("The server at {server} does not know {path}: is it a ciao-launcher-server?"),
        (500, _) => "The command could not be sent to the launcher: is it still connected (see ciaolc clients)?".to_string(),
        _ => format!("Unexpected answer: is {server} a ciao-launcher-server?"),
    };
    let status = if resp.reason.is_empty() {
        resp.status.to_string()
    } else {
        format!("{} {}", resp.status, resp.reason)
    };
    format!(
        "{} {path} on {server} failed with {status}: {text}. {hint}",
        req.method
    )
}

/// Decodes a YAML list of strings (`/clients`, `/instances`): an empty
/// document is an empty list, null elements are empty strings.
pub(crate) fn decode_list(body: &[u8]) -> Result<Vec<String>, serde_yaml::Error> {
    if let Err(e) = crate::payloads::depth::check_depth(body) {
        return Err(serde::de::Error::custom(e));
    }
    let v: Option<Vec<Option<String>>> = serde_yaml::from_slice(body)?;
    Ok(v.unwrap_or_default()
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect())
}

fn undecodable(server: &str, path: &str, what: &str, e: impl std::fmt::Display) -> Outcome {
    Outcome::error(format!(
        "the answer of {server} to GET {path} is not a {what}: {e}; is it a ciao-launcher-server?"
    ))
}

/// Runs ciaolc with `args` (without `argv[0]`); returns the exit status.
pub fn run(
    args: &[String],
    transport: &mut dyn Transport,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    let o = run_inner(args, transport);
    // Output errors (a closed pipe) cannot be reported anywhere useful.
    let _ = stdout.write_all(&o.stdout).and_then(|_| stdout.flush());
    let _ = stderr
        .write_all(o.stderr.as_bytes())
        .and_then(|_| stderr.flush());
    o.code
}

/// Entry point of the `ciaolc` binary.
pub fn main() -> i32 {
    let mut args = Vec::new();
    for (i, a) in std::env::args_os().skip(1).enumerate() {
        match a.into_string() {
            Ok(s) => args.push(s),
            Err(a) => {
                eprintln!(
                    "Error: argument {} ({}) is not valid UTF-8",
                    i + 1,
                    a.to_string_lossy()
                );
                return 1;
            }
        }
    }
    let mut t = TcpTransport::default();
    run(
        &args,
        &mut t,
        &mut std::io::stdout().lock(),
        &mut std::io::stderr().lock(),
    )
}

fn run_inner(args: &[String], transport: &mut dyn Transport) -> Outcome {
    let global = FlagSet::new(
        "ciaolc",
        vec![Flag {
            name: "server",
            kind: Kind::Str,
            usage: "IP port of server",
            default: DEFAULT_SERVER,
        }],
    );
    let g = match global.parse(args) {
        Ok(g) => g,
        Err(FlagError::Help) => return Outcome::fail(0, USAGE),
        Err(FlagError::Bad(m)) => return Outcome::fail(2, format!("{m}\n{USAGE}")),
    };
    let Some((cmd, cmd_args)) = g.rest.split_first() else {
        return Outcome::fail(1, USAGE);
    };
    let mut ctx = Ctx {
        server: g.str_or("server", DEFAULT_SERVER).to_string(),
        transport,
    };
    let cmd = cmd.as_str();
    if cmd == "clients" {
        // The original ignores everything after `clients`, even bad flags.
        return match ctx.get("/clients", &[], "") {
            Ok(body) => match decode_list(&body) {
                Ok(l) => Outcome::ok(format::lines(&l)),
                Err(e) => undecodable(&ctx.server, "/clients", "list of client UUIDs", e),
            },
            Err(o) => o,
        };
    }
    let (set_name, flags) = match cmd {
        "instances" | "istats" => (cmd, vec![client_flag(), filter_flag()]),
        "startf" => ("start", vec![client_flag()]),
        "stats" | "status" | "drain" | "stop" | "restart" | "delete" | "attach" | "detach" => {
            (cmd, vec![client_flag()])
        }
        _ => return Outcome::fail(1, format!("Unknown command {cmd}\n")),
    };
    let set = FlagSet::new(set_name, flags);
    let p = match set.parse(cmd_args) {
        Ok(p) => p,
        Err(FlagError::Help) => return Outcome::fail(0, set.usage()),
        Err(FlagError::Bad(m)) => return Outcome::fail(2, format!("{m}\n{}", set.usage())),
    };
    let client = p.str_or("client", "");
    let filter = match p.str_or("filter", "none") {
        "none" => "",
        f => f,
    };
    let instance = p.rest.first().map(String::as_str);
    let volume = p.rest.get(1).map(String::as_str);
    let missing_instance = || Outcome::error("Missing instance-uuid");
    let missing_volume = || Outcome::error("Missing volume-uuid");
    let server = ctx.server.clone();
    match cmd {
        "instances" => match ctx.get(
            "/instances",
            &[("client", client), ("filter", filter)],
            client,
        ) {
            Ok(body) => match decode_list(&body) {
                Ok(l) => Outcome::ok(format::lines(&l)),
                Err(e) => undecodable(&server, "/instances", "list of instance UUIDs", e),
            },
            Err(o) => o,
        },
        "istats" | "stats" => {
            let params: &[(&str, &str)] = if cmd == "istats" {
                &[("client", client), ("filter", filter)]
            } else {
                &[("client", client)]
            };
            match ctx.get("/stats", params, client) {
                Ok(body) => match crate::payloads::Stat::parse(&body) {
                    Ok(s) if cmd == "istats" => Outcome::ok(format::istats(&s.instances)),
                    Ok(s) => Outcome::ok(format::stats(&s)),
                    Err(e) => undecodable(&server, "/stats", "STATS document", e),
                },
                Err(o) => o,
            }
        }
        "status" => match ctx.get("/status", &[("client", client)], client) {
            Ok(body) => match crate::payloads::Ready::parse(&body) {
                Ok(r) => Outcome::ok(format::status(&r)),
                Err(e) => undecodable(&server, "/status", "STATUS document", e),
            },
            Err(o) => o,
        },
        "drain" => match ctx.get("/drain", &[("client", client)], client) {
            Ok(body) => Outcome::ok(format::drain(&body)),
            Err(o) => o,
        },
        "startf" => {
            let Some(file) = instance else {
                return missing_instance();
            };
            match std::fs::read(file) {
                Ok(body) => ctx.post("/start", client, body),
                Err(e) => Outcome::error(format!("open {file}: {}", client::io_text(&e))),
            }
        }
        "stop" | "restart" | "delete" => {
            let Some(instance) = instance else {
                return missing_instance();
            };
            let body = match cmd {
                "stop" => bodies::stop(instance),
                "restart" => bodies::restart(instance),
                _ => bodies::delete(instance),
            };
            ctx.post(&format!("/{cmd}"), client, body)
        }
        _ => {
            // attach, detach
            let Some(instance) = instance else {
                return missing_instance();
            };
            let Some(volume) = volume else {
                return missing_volume();
            };
            let body = if cmd == "attach" {
                bodies::attach(instance, volume)
            } else {
                bodies::detach(instance, volume)
            };
            ctx.post(&format!("/{cmd}"), client, body)
        }
    }
}
