//! Sending: the canonical definitions, byte for byte, and values with Go's
//! zero-field omission.

use crate::ssntp::gob::{self, struct_type, Kind, WireType};

use super::{ConnectFrame, ConnectedFrame, Frame, FrameTrace, GoTime, Op};

const CONNECT_ID: i32 = 65;
const CONNECTED_ID: i32 = 65;
const FRAME_ID: i32 = 66;
const UUID_ID: i32 = 67;
const TRACE_ID: i32 = 68;
const TIME_ID: i32 = 69;
const NODE_ID: i32 = 70;
const NODES_ID: i32 = 71;

const CONNECT_FIELDS: [(&str, i32); 7] = [
    ("Major", gob::UINT),
    ("Minor", gob::UINT),
    ("Type", gob::UINT),
    ("Operand", gob::UINT),
    ("Role", gob::UINT),
    ("Source", gob::BYTES),
    ("Destination", gob::BYTES),
];

/// The ConnectFrame definition (id 65), as Go sends it.
fn put_connect_def(out: &mut Vec<u8>) {
    gob::put_definition(
        out,
        CONNECT_ID,
        &struct_type("ConnectFrame", &CONNECT_FIELDS),
    );
}

/// The ConnectedFrame definition (id 65), as Go sends it.
fn put_connected_def(out: &mut Vec<u8>) {
    let mut fields = CONNECT_FIELDS.to_vec();
    fields.extend([("PayloadLength", gob::UINT), ("Payload", gob::BYTES)]);
    gob::put_definition(out, CONNECTED_ID, &struct_type("ConnectedFrame", &fields));
}

/// The six Frame-family definitions (ids 66–71), in Go's order.
fn put_frame_defs(out: &mut Vec<u8>) {
    let frame = [
        ("Major", gob::UINT),
        ("Minor", gob::UINT),
        ("Type", gob::UINT),
        ("Operand", gob::UINT),
        ("Origin", UUID_ID),
        ("PayloadLength", gob::UINT),
        ("Trace", TRACE_ID),
        ("Payload", gob::BYTES),
    ];
    gob::put_definition(out, FRAME_ID, &struct_type("Frame", &frame));
    let uuid = WireType {
        name: b"UUID".to_vec(),
        kind: Kind::Array {
            elem: gob::UINT,
            len: 16,
        },
    };
    gob::put_definition(out, UUID_ID, &uuid);
    let trace = [
        ("Label", gob::BYTES),
        ("StartTimestamp", TIME_ID),
        ("EndTimestamp", TIME_ID),
        ("PathLength", gob::UINT),
        ("Path", NODES_ID),
    ];
    gob::put_definition(out, TRACE_ID, &struct_type("FrameTrace", &trace));
    let time = WireType {
        name: b"Time".to_vec(),
        kind: Kind::GobEncoder,
    };
    gob::put_definition(out, TIME_ID, &time);
    let nodes = WireType {
        name: b"[]ssntp.Node".to_vec(),
        kind: Kind::Slice { elem: NODE_ID },
    };
    gob::put_definition(out, NODES_ID, &nodes);
    let node = [
        ("UUID", gob::BYTES),
        ("Role", gob::UINT),
        ("TxTimestamp", TIME_ID),
        ("RxTimestamp", TIME_ID),
    ];
    gob::put_definition(out, NODE_ID, &struct_type("Node", &node));
}

/// Writes struct fields with Go's delta numbering and zero omission.
struct Fields<'a> {
    out: &'a mut Vec<u8>,
    next: u64,
}

impl<'a> Fields<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Fields { out, next: 0 }
    }

    /// Starts field `n` (which must follow the previous one).
    fn at(&mut self, n: u64) -> &mut Vec<u8> {
        gob::put_uint(self.out, n + 1 - self.next);
        self.next = n + 1;
        self.out
    }

    fn uint(&mut self, n: u64, v: u64) {
        if v != 0 {
            gob::put_uint(self.at(n), v);
        }
    }

    fn bytes(&mut self, n: u64, b: &[u8]) {
        if !b.is_empty() {
            gob::put_bytes(self.at(n), b);
        }
    }

    fn time(&mut self, n: u64, t: &Option<GoTime>) {
        if let Some(t) = t.filter(|t| !t.is_zero()) {
            gob::put_bytes(self.at(n), &t.to_binary());
        }
    }

    fn end(self) {
        self.out.push(0);
    }
}

fn put_trace(out: &mut Vec<u8>, t: &FrameTrace) {
    let path = &t.path[..t.path.len().min(usize::from(u8::MAX))];
    let mut w = Fields::new(out);
    w.bytes(0, &t.label);
    w.time(1, &t.start);
    w.time(2, &t.end);
    w.uint(3, path.len() as u64);
    if !path.is_empty() {
        let o = w.at(4);
        gob::put_uint(o, path.len() as u64);
        for node in path {
            let mut nw = Fields::new(o);
            nw.bytes(0, &node.uuid);
            nw.uint(1, node.role.into());
            nw.time(2, &node.tx);
            nw.time(3, &node.rx);
            nw.end();
        }
    }
    w.end();
}

/// Fields 0–3 (`Major`, `Minor`, `Type`, `Operand`), the same in the three SSNTP structs.
fn put_common_fields(w: &mut Fields<'_>, major: u8, minor: u8, op: Op) {
    w.uint(0, major.into());
    w.uint(1, minor.into());
    w.uint(2, op.ftype().into());
    w.uint(3, op.operand().into());
}

/// Fields 0–6 of ConnectFrame, with which ConnectedFrame starts too.
fn put_connect_fields(
    w: &mut Fields<'_>,
    major: u8,
    minor: u8,
    op: Op,
    role: u32,
    source: &[u8],
    destination: &[u8],
) {
    put_common_fields(w, major, minor, op);
    w.uint(4, role.into());
    w.bytes(5, source);
    w.bytes(6, destination);
}

/// Appends one value message of type `id` whose struct `fill` writes.
fn put_value(out: &mut Vec<u8>, id: i32, fill: impl FnOnce(&mut Fields<'_>)) {
    let mut body = Vec::new();
    gob::put_int(&mut body, id.into());
    let mut w = Fields::new(&mut body);
    fill(&mut w);
    w.end();
    gob::put_uint(out, body.len() as u64);
    out.extend_from_slice(&body);
}

/// Encodes one direction of one connection. A client encoder sends
/// `connect` then `frame`s; a server encoder `connected` then `frame`s (its
/// connect-time error replies come from a fresh encoder). Do not mix
/// `connect` and `connected` on one encoder: both types use id 65.
#[derive(Debug, Default)]
pub struct Encoder {
    sent_connect_def: bool,
    sent_connected_def: bool,
    sent_frame_defs: bool,
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder::default()
    }

    /// Appends a ConnectFrame (its definition first, once).
    pub fn connect(&mut self, f: &ConnectFrame, out: &mut Vec<u8>) {
        if !std::mem::replace(&mut self.sent_connect_def, true) {
            put_connect_def(out);
        }
        put_value(out, CONNECT_ID, |w| {
            put_connect_fields(w, f.major, f.minor, f.op, f.role, &f.source, &f.destination)
        });
    }

    /// Appends a ConnectedFrame (its definition first, once).
    pub fn connected(&mut self, f: &ConnectedFrame, out: &mut Vec<u8>) {
        if !std::mem::replace(&mut self.sent_connected_def, true) {
            put_connected_def(out);
        }
        put_value(out, CONNECTED_ID, |w| {
            put_connect_fields(w, f.major, f.minor, f.op, f.role, &f.source, &f.destination);
            w.uint(7, f.payload.len() as u64);
            w.bytes(8, &f.payload);
        });
    }

    /// Appends a Frame (the six Frame-family definitions first, once).
    pub fn frame(&mut self, f: &Frame, out: &mut Vec<u8>) {
        if !std::mem::replace(&mut self.sent_frame_defs, true) {
            put_frame_defs(out);
        }
        put_value(out, FRAME_ID, |w| {
            put_common_fields(w, f.major, f.minor, f.op);
            let o = w.at(4); // arrays are always sent
            gob::put_uint(o, 16);
            for b in f.origin {
                gob::put_uint(o, b.into());
            }
            w.uint(5, f.payload_length.into());
            if let Some(t) = &f.trace {
                put_trace(w.at(6), t);
            }
            w.bytes(7, &f.payload);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssntp::frame::vectors::*;
    use crate::ssntp::frame::TraceNode;

    #[test]
    fn canonical_definitions_are_verbatim() {
        let mut out = Vec::new();
        put_connect_def(&mut out);
        assert_eq!(out, hex(CONNECT_DEF));
        assert_eq!(out.len(), 104);
        out.clear();
        put_connected_def(&mut out);
        assert_eq!(out, hex(CONNECTED_DEF));
        assert_eq!(out.len(), 137);
        out.clear();
        put_frame_defs(&mut out);
        assert_eq!(out, frame_defs());
    }

    #[test]
    fn client_encoder_matches_spec_bytes() {
        let mut enc = Encoder::new();
        let mut out = Vec::new();
        enc.connect(&connect_frame(), &mut out);
        let mut want = hex(CONNECT_DEF);
        want.extend(connect_value());
        assert_eq!(out, want);
        assert_eq!(connect_value().len(), 44);
        // Definitions go out once per encoder.
        out.clear();
        enc.connect(&connect_frame(), &mut out);
        assert_eq!(out, connect_value());
        out.clear();
        let (f0, b0) = frames().remove(0);
        enc.frame(&f0, &mut out);
        let mut want = frame_defs();
        want.extend(&b0);
        assert_eq!(out, want);
        for (f, bytes) in frames() {
            out.clear();
            enc.frame(&f, &mut out);
            assert_eq!(out, bytes, "{f:?}");
        }
    }

    #[test]
    fn server_encoder_matches_spec_bytes() {
        let mut enc = Encoder::new();
        let mut out = Vec::new();
        enc.connected(&connected_frame(), &mut out);
        let mut want = hex(CONNECTED_DEF);
        want.extend(connected_value());
        assert_eq!(out, want);
        assert_eq!(connected_value().len(), 95);
        out.clear();
        enc.frame(&traced_start(), &mut out);
        let mut want = frame_defs();
        want.extend(traced_start_value());
        assert_eq!(out, want);
        assert_eq!(traced_start_value().len(), 115);
    }

    #[test]
    fn traces_round_trip() {
        let mut f = traced_start();
        let t = f.trace.as_mut().unwrap();
        t.label = b"trace-label".to_vec();
        t.end = Some(GoTime {
            secs_since_year1: 63_929_000_000,
            nanos: 190_061_199,
            offset_min: 0,
        });
        t.path.push(TraceNode {
            uuid: CLIENT,
            role: 0x14,
            tx: None,
            rx: Some(GoTime::now()),
        });
        // Zero time stamps are not sent and come back as None.
        t.path[0].rx = Some(GoTime::ZERO);
        let mut out = Vec::new();
        Encoder::new().frame(&f, &mut out);
        f.trace.as_mut().unwrap().path[0].rx = None;
        assert_eq!(decode_one(&out).unwrap().into_frame(), f);
    }
}
