//! Receiving: gob values decoded by field name into [`Decoded`].

use crate::ssntp::gob::{self, GobError, Kind, Reader, StructRef, Types, WireType};

use super::{encode::Encoder, field, Decoded, FrameTrace, GoTime, Op, TraceNode};

/// Field names this side understands. The first 11 are the top-level names
/// and their index is their [`field`] bit.
static NAMES: [&str; 19] = [
    "Major",
    "Minor",
    "Type",
    "Operand",
    "Role",
    "Source",
    "Destination",
    "Origin",
    "PayloadLength",
    "Trace",
    "Payload",
    // FrameTrace
    "Label",
    "StartTimestamp",
    "EndTimestamp",
    "PathLength",
    "Path",
    // Node (and "Role")
    "UUID",
    "TxTimestamp",
    "RxTimestamp",
];
const N_LABEL: u8 = 11;
const N_START: u8 = 12;
const N_END: u8 = 13;
const N_PATH_LENGTH: u8 = 14;
const N_PATH: u8 = 15;
const N_UUID: u8 = 16;
const N_TX: u8 = 17;
const N_RX: u8 = 18;
const N_ROLE: u8 = 4;

const TOP_MASK: u64 = (1 << 11) - 1;
const TRACE_MASK: u64 = 0b11111 << N_LABEL;
const NODE_MASK: u64 = (1 << N_ROLE) | (0b111 << N_UUID);

/// `slot` if it names a field of the local struct described by `mask`.
fn local(slot: Option<u8>, mask: u64) -> Option<u8> {
    slot.filter(|s| mask & (1 << s) != 0)
}

fn uint_field(
    types: &Types,
    fid: i32,
    r: &mut Reader<'_>,
    field: &'static str,
    max: u64,
) -> Result<u64, GobError> {
    if fid != gob::UINT {
        return Err(GobError::FieldType {
            field,
            want: "uint",
            got: types.describe(fid),
        });
    }
    let v = r.uint()?;
    if v > max {
        return Err(GobError::OutOfRange { field, value: v });
    }
    Ok(v)
}

fn u8_field(
    types: &Types,
    fid: i32,
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<u8, GobError> {
    Ok(uint_field(types, fid, r, field, u8::MAX.into())? as u8)
}

fn u32_field(
    types: &Types,
    fid: i32,
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<u32, GobError> {
    Ok(uint_field(types, fid, r, field, u32::MAX.into())? as u32)
}

fn bytes_field(
    types: &Types,
    fid: i32,
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<Vec<u8>, GobError> {
    if fid != gob::BYTES {
        return Err(GobError::FieldType {
            field,
            want: "bytes",
            got: types.describe(fid),
        });
    }
    Ok(r.bytes()?.to_vec())
}

fn uuid_array(types: &Types, fid: i32, r: &mut Reader<'_>) -> Result<[u8; 16], GobError> {
    let ok = matches!(
        types.get(fid),
        Some(WireType {
            kind: Kind::Array {
                elem: gob::UINT,
                len: 16
            },
            ..
        })
    );
    if !ok {
        return Err(GobError::FieldType {
            field: "Origin",
            want: "an array of 16 uint",
            got: types.describe(fid),
        });
    }
    let n = r.uint()?;
    if n != 16 {
        return Err(GobError::ArrayLength {
            type_id: fid,
            expected: 16,
            got: n,
        });
    }
    let mut out = [0u8; 16];
    for b in &mut out {
        *b = u8_field(types, gob::UINT, r, "Origin")?;
    }
    Ok(out)
}

fn time_field(
    types: &Types,
    fid: i32,
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<Option<GoTime>, GobError> {
    if !matches!(
        types.get(fid),
        Some(WireType {
            kind: Kind::GobEncoder,
            ..
        })
    ) {
        return Err(GobError::FieldType {
            field,
            want: "a GobEncoder (time.Time)",
            got: types.describe(fid),
        });
    }
    let t = GoTime::from_binary(r.bytes()?)?;
    Ok(Some(t).filter(|t| !t.is_zero()))
}

/// A struct-typed field whose definition shares a name with `local_mask`.
fn struct_field<'t>(
    types: &'t Types,
    fid: i32,
    field: &'static str,
    local_mask: u64,
    local: &'static str,
) -> Result<StructRef<'t>, GobError> {
    let s = types.struct_ref(fid).map_err(|_| GobError::FieldType {
        field,
        want: "a struct",
        got: types.describe(fid),
    })?;
    if s.mask & local_mask == 0 {
        return Err(GobError::NoMatchingField {
            local,
            type_id: fid,
        });
    }
    Ok(s)
}

fn decode_node(
    types: &Types,
    s: StructRef<'_>,
    r: &mut Reader<'_>,
    depth: usize,
) -> Result<(TraceNode, bool), GobError> {
    let mut node = TraceNode::default();
    let mut uuid_ok = false;
    types.walk_struct(s, r, depth, |slot, fid, r, depth| {
        match local(slot, NODE_MASK) {
            Some(N_UUID) => {
                let u = bytes_field(types, fid, r, "UUID")?;
                uuid_ok = u.len() == 16;
                if let Ok(u) = <[u8; 16]>::try_from(u.as_slice()) {
                    node.uuid = u;
                }
            }
            Some(N_ROLE) => node.role = u32_field(types, fid, r, "Role")?,
            Some(N_TX) => node.tx = time_field(types, fid, r, "TxTimestamp")?,
            Some(N_RX) => node.rx = time_field(types, fid, r, "RxTimestamp")?,
            _ => types.skip(fid, r, depth)?,
        }
        Ok(())
    })?;
    Ok((node, uuid_ok))
}

fn decode_trace(
    types: &Types,
    fid: i32,
    r: &mut Reader<'_>,
    depth: usize,
) -> Result<Option<FrameTrace>, GobError> {
    let s = struct_field(types, fid, "Trace", TRACE_MASK, "FrameTrace")?;
    let mut t = FrameTrace::default();
    let mut path_length = 0u8;
    let mut uuids_ok = true;
    types.walk_struct(s, r, depth, |slot, fid, r, depth| {
        match local(slot, TRACE_MASK) {
            Some(N_LABEL) => t.label = bytes_field(types, fid, r, "Label")?,
            Some(N_START) => t.start = time_field(types, fid, r, "StartTimestamp")?,
            Some(N_END) => t.end = time_field(types, fid, r, "EndTimestamp")?,
            Some(N_PATH_LENGTH) => path_length = u8_field(types, fid, r, "PathLength")?,
            Some(N_PATH) => {
                let elem = match types.get(fid) {
                    Some(WireType {
                        kind: Kind::Slice { elem },
                        ..
                    }) => *elem,
                    _ => {
                        return Err(GobError::FieldType {
                            field: "Path",
                            want: "a slice of Node",
                            got: types.describe(fid),
                        })
                    }
                };
                let node = struct_field(types, elem, "Path", NODE_MASK, "Node")?;
                t.path.clear();
                for _ in 0..r.count()? {
                    let (n, ok) = decode_node(types, node, r, depth + 1)?;
                    uuids_ok &= ok;
                    t.path.push(n);
                }
            }
            _ => types.skip(fid, r, depth)?,
        }
        Ok(())
    })?;
    let problem = if usize::from(path_length) != t.path.len() {
        "PathLength differs from the number of path nodes"
    } else if !uuids_ok {
        "a path node UUID is not 16 bytes"
    } else {
        return Ok(Some(t));
    };
    log::warn!("SSNTP: dropping the trace section of a received frame: {problem}");
    Ok(None)
}

/// Decodes one value message by field names.
fn decode_value(v: gob::Value<'_>) -> Result<Decoded, GobError> {
    let types = v.types;
    let mut r = v.body;
    let s = types.struct_ref(v.id)?;
    if s.mask & TOP_MASK == 0 {
        return Err(GobError::NoMatchingField {
            local: "an SSNTP frame",
            type_id: v.id,
        });
    }
    let mut d = Decoded {
        defined: (s.mask & TOP_MASK) as u32,
        ..Decoded::default()
    };
    // Type and Operand may come in either order: the pair is typed at the end.
    let (mut ftype, mut operand) = (0, 0);
    types.walk_struct(s, &mut r, 1, |slot, fid, r, depth| {
        let Some(slot) = local(slot, TOP_MASK) else {
            return types.skip(fid, r, depth);
        };
        d.present |= 1 << slot;
        match 1u32 << slot {
            field::MAJOR => d.major = u8_field(types, fid, r, "Major")?,
            field::MINOR => d.minor = u8_field(types, fid, r, "Minor")?,
            field::TYPE => ftype = u8_field(types, fid, r, "Type")?,
            field::OPERAND => operand = u8_field(types, fid, r, "Operand")?,
            field::ROLE => d.role = u32_field(types, fid, r, "Role")?,
            field::SOURCE => d.source = bytes_field(types, fid, r, "Source")?,
            field::DESTINATION => d.destination = bytes_field(types, fid, r, "Destination")?,
            field::ORIGIN => d.origin = uuid_array(types, fid, r)?,
            field::PAYLOAD_LENGTH => d.payload_length = u32_field(types, fid, r, "PayloadLength")?,
            field::TRACE => d.trace = decode_trace(types, fid, r, depth)?,
            _ => d.payload = bytes_field(types, fid, r, "Payload")?,
        }
        Ok(())
    })?;
    d.op = Op::new(ftype, operand);
    // Bytes after the value are ignored, as Go does.
    Ok(d)
}

/// Decodes one direction of one connection. Feed it received bytes, then
/// call [`Decoder::next`] until it returns `Ok(None)`. Definitions are
/// learned silently; after an error every later call returns that error.
#[derive(Debug)]
pub struct Decoder {
    stream: gob::Stream,
    failed: Option<GobError>,
}

impl Decoder {
    /// `max_message`: the cap on one gob message
    /// ([`gob::DEFAULT_MAX_MESSAGE`] unless configured otherwise).
    pub fn new(max_message: usize) -> Decoder {
        Decoder {
            stream: gob::Stream::new(max_message, &NAMES),
            failed: None,
        }
    }

    /// Buffers received bytes. Feeding again without draining `next` first
    /// fails the decoder once more than one maximal message is held.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            if let Err(e) = self.stream.feed(bytes) {
                self.failed = Some(e);
            }
        }
    }

    /// The next value, `Ok(None)` when more bytes are needed.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Decoded>, GobError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = match self.stream.next_value() {
            Ok(Some(v)) => decode_value(v).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(e),
        };
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    /// True after an error: the connection must be closed.
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }
}

/// Decodes a whole byte string with a fresh [`Decoder`] (default cap):
/// every complete value, or the first error. A trailing incomplete message
/// is ignored.
pub(crate) fn decode_all(data: &[u8]) -> Result<Vec<Decoded>, GobError> {
    let mut d = Decoder::new(gob::DEFAULT_MAX_MESSAGE);
    d.feed(data);
    let mut out = Vec::new();
    while let Some(v) = d.next()? {
        out.push(v);
    }
    Ok(out)
}

fn decode_chunked(data: &[u8], chunk: usize) -> (Vec<Decoded>, Option<GobError>) {
    let mut d = Decoder::new(gob::DEFAULT_MAX_MESSAGE);
    let mut out = Vec::new();
    for c in data.chunks(chunk.max(1)) {
        d.feed(c);
        loop {
            match d.next() {
                Ok(Some(v)) => out.push(v),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

/// The `gob_decode` fuzz target: decodes `data` fed at once and fed in
/// chunks (size from the first byte) and checks that both agree, then
/// re-encodes every decoded value in each shape and checks that it decodes
/// back to the same value. Panics only on a bug.
pub fn fuzz_gob_decode(data: &[u8]) {
    let whole = decode_chunked(data, data.len());
    let chunk = data.first().map_or(1, |b| usize::from(b % 16) + 1);
    assert_eq!(
        whole,
        decode_chunked(data, chunk),
        "chunked decoding differs"
    );
    for v in whole.0 {
        let (f, c, cd) = (
            v.clone().into_frame(),
            v.clone().into_connect(),
            v.into_connected(),
        );
        let mut out = Vec::new();
        Encoder::new().frame(&f, &mut out);
        let back = decode_all(&out).map(|v| v.into_iter().map(Decoded::into_frame).collect());
        assert_eq!(back, Ok(vec![f]), "Frame round trip");
        out.clear();
        Encoder::new().connect(&c, &mut out);
        let back = decode_all(&out).map(|v| v.into_iter().map(Decoded::into_connect).collect());
        assert_eq!(back, Ok(vec![c]), "ConnectFrame round trip");
        out.clear();
        Encoder::new().connected(&cd, &mut out);
        let back = decode_all(&out).map(|v| v.into_iter().map(Decoded::into_connected).collect());
        assert_eq!(back, Ok(vec![cd]), "ConnectedFrame round trip");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssntp::frame::vectors::*;
    use crate::ssntp::frame::{ErrorCode, Status, TRACE_BIT};
    use crate::ssntp::gob::struct_type;

    #[test]
    fn decoder_reads_spec_bytes() {
        let mut bytes = hex(CONNECT_DEF);
        bytes.extend(connect_value());
        let d = decode_one(&bytes).unwrap();
        assert_eq!(
            d.present,
            field::MINOR | field::ROLE | field::SOURCE | field::DESTINATION
        );
        assert_eq!(d.defined, field::CONNECT_FIELDS);
        assert_eq!(d.into_connect(), connect_frame());

        let mut bytes = hex(CONNECTED_DEF);
        bytes.extend(connected_value());
        let d = decode_one(&bytes).unwrap();
        assert_eq!(d.payload_length, 45);
        assert_eq!(d.into_connected(), connected_frame());

        for (f, value) in frames() {
            let mut bytes = frame_defs();
            bytes.extend(&value);
            let d = decode_one(&bytes).unwrap();
            assert_eq!(d.defined, field::FRAME_FIELDS);
            assert_eq!(d.into_frame(), f);
        }
        let f = traced_start();
        assert!(f.is_traced());
        let t = f.trace.unwrap();
        assert_eq!(t.start.unwrap().rfc3339_nano(), "2017-01-20T10:00:00Z");
    }

    #[test]
    fn client_understands_an_error_reply_to_connect() {
        // The Go server answers a bad CONNECT with a Frame, not a
        // ConnectedFrame.
        let mut bytes = frame_defs();
        bytes.extend(aborted_value());
        let c = decode_one(&bytes).unwrap().into_connected();
        assert_eq!(c.op, Op::Error(ErrorCode::ConnectionAborted));
    }

    /// All examples of one stream direction, concatenated.
    fn client_stream() -> Vec<u8> {
        let mut bytes = hex(CONNECT_DEF);
        bytes.extend(connect_value());
        bytes.extend(frame_defs());
        for (_, v) in frames() {
            bytes.extend(v);
        }
        bytes
    }

    #[test]
    fn split_at_every_byte_decodes_the_same() {
        let bytes = client_stream();
        let whole = decode_all(&bytes).unwrap();
        assert_eq!(whole.len(), 6);
        for k in 0..=bytes.len() {
            let mut d = Decoder::new(gob::DEFAULT_MAX_MESSAGE);
            let mut got = Vec::new();
            for part in [&bytes[..k], &bytes[k..]] {
                d.feed(part);
                while let Some(v) = d.next().unwrap() {
                    got.push(v);
                }
            }
            assert_eq!(got, whole, "split at {k}");
        }
        assert_eq!(decode_chunked(&bytes, 1), (whole, None));
        // An incomplete tail is simply not returned yet.
        assert_eq!(decode_all(&bytes[..bytes.len() - 1]).unwrap().len(), 5);
    }

    #[test]
    fn renumbered_and_reordered_definitions() {
        // The Frame family as ids 100..105, defined in another order.
        let mut bytes = Vec::new();
        let uuid = WireType {
            name: vec![],
            kind: Kind::Array {
                elem: gob::UINT,
                len: 16,
            },
        };
        let node = struct_type(
            "N",
            &[
                ("RxTimestamp", 103),
                ("UUID", gob::BYTES),
                ("Role", gob::UINT),
                ("TxTimestamp", 103),
            ],
        );
        let time = WireType {
            name: vec![],
            kind: Kind::GobEncoder,
        };
        let nodes = WireType {
            name: vec![],
            kind: Kind::Slice { elem: 105 },
        };
        let trace = struct_type(
            "T",
            &[
                ("Path", 104),
                ("PathLength", gob::UINT),
                ("StartTimestamp", 103),
            ],
        );
        let frame = struct_type(
            "F",
            &[
                ("Payload", gob::BYTES),
                ("Trace", 102),
                ("Major", gob::UINT),
                ("Origin", 101),
                ("Operand", gob::UINT),
                ("Minor", gob::UINT),
            ],
        );
        gob::put_definition(&mut bytes, 105, &node);
        gob::put_definition(&mut bytes, 104, &nodes);
        gob::put_definition(&mut bytes, 103, &time);
        gob::put_definition(&mut bytes, 101, &uuid);
        gob::put_definition(&mut bytes, 102, &trace);
        gob::put_definition(&mut bytes, 100, &frame);
        // The traced START, fields in this definition's order.
        let v = hex(&format!(
            "70 ff c8
             01 0a 73 74 61 72 74 3a 20 7b 7d 0a
             01 01 01 02 10 f8 ca 96 d7 91 ea 41 cd b9 24 91 2f 27 08 93 d9 01 08 01 0f {T2017} 00
                01 01 01 0f {T2017} 00
             01 ff 80 01 10 {SERVER_ARRAY} 01 01 01 01 00"
        ));
        assert_eq!(v.len() - 1, usize::from(v[0]));
        bytes.extend(v);
        let mut want = traced_start();
        want.payload_length = 0; // not sent in this value
        assert_eq!(decode_one(&bytes).unwrap().into_frame(), want);
    }

    #[test]
    fn minimal_definition_with_unknown_field() {
        // Go matches fields by name: {Type, Operand, Bogus string, Payload}
        // as id 100, value 100.
        let mut bytes = Vec::new();
        let def = struct_type(
            "Frame",
            &[
                ("Type", gob::UINT),
                ("Operand", gob::UINT),
                ("Bogus", gob::STRING),
                ("Payload", gob::BYTES),
            ],
        );
        gob::put_definition(&mut bytes, 100, &def);
        // Non-minimal uints too: Type `ff 01`, Operand `fe 00 02`.
        bytes.extend(hex("10 ff c8 01 ff 01 01 fe 00 02 01 01 78 01 01 79 00"));
        let d = decode_one(&bytes).unwrap();
        assert_eq!(d.defined, field::TYPE | field::OPERAND | field::PAYLOAD);
        let f = d.into_frame();
        assert_eq!((f.op, f.payload), (Op::Status(Status::Full), b"y".to_vec()));
        assert_eq!(f.origin, [0; 16]);
    }

    #[test]
    fn several_values_in_one_feed_and_bytes_after_a_value() {
        let mut bytes = frame_defs();
        let mut extra = full_value();
        extra[0] += 2;
        extra.extend([0x05, 0x05]); // ignored, as Go does
        bytes.extend(&extra);
        bytes.extend(ready_value());
        let v = decode_all(&bytes).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].op, Op::Status(Status::Ready));
    }

    fn with_defs(defs: &[u8], value: &str) -> Vec<u8> {
        let mut b = defs.to_vec();
        b.extend(hex(value));
        b
    }

    #[test]
    fn rejects_bad_streams() {
        let fd = frame_defs();
        let cases: Vec<(Vec<u8>, GobError)> = vec![
            // Duplicate definition.
            (
                [hex(CONNECT_DEF), hex(CONNECT_DEF)].concat(),
                GobError::DuplicateType(65),
            ),
            // Value of an undefined id.
            (hex("03 ff 82 00"), GobError::UndefinedType(65)),
            // Message length with a count byte meaning 9 bytes.
            (
                hex("f7 00 00 00 00 00 00 00 00 00"),
                GobError::BadUint(0xf7),
            ),
            // Count byte > 8 inside a value.
            (with_defs(&fd, "04 ff 84 01 f0"), GobError::BadUint(0xf0)),
            // Byte string longer than the message.
            (with_defs(&fd, "06 ff 84 08 05 61 00"), GobError::Truncated),
            (
                with_defs(&fd, "0d ff 84 08 f8 7f ff ff ff ff ff ff ff 00"),
                GobError::Truncated,
            ),
            // Message length beyond the cap.
            (
                hex("fc 01 00 00 01"),
                GobError::MessageTooLarge {
                    len: (16 << 20) + 1,
                    max: 16 << 20,
                },
            ),
            // Major = 300.
            (
                with_defs(&fd, "06 ff 84 01 fe 01 2c 00"),
                GobError::OutOfRange {
                    field: "Major",
                    value: 300,
                },
            ),
            // Origin element 256.
            (
                with_defs(&fd, "08 ff 84 05 10 fe 01 00 00"),
                GobError::OutOfRange {
                    field: "Origin",
                    value: 256,
                },
            ),
            // Origin array of 15 elements.
            (
                with_defs(&fd, "05 ff 84 05 0f 00"),
                GobError::ArrayLength {
                    type_id: 67,
                    expected: 16,
                    got: 15,
                },
            ),
            // Field number beyond the definition.
            (
                with_defs(&fd, "04 ff 84 09 00"),
                GobError::FieldOutOfRange {
                    type_id: 66,
                    field: 8,
                    fields: 8,
                },
            ),
            // Definition with extra data (length + 1, trailing 00).
            (
                {
                    let mut d = hex(TIME_DEF);
                    d[0] += 1;
                    d.push(0);
                    d
                },
                GobError::ExtraData { id: 69, extra: 1 },
            ),
            // Definition of a reserved id.
            (hex("03 7d 05 00"), GobError::ReservedTypeId(63)),
            // Top-level non-struct and empty message.
            (hex("02 06 00"), GobError::NotAStruct(3)),
            (hex("00"), GobError::EmptyMessage),
            // Bad time stamp (version 2, 16 bytes).
            (
                with_defs(
                    &fd,
                    "17 ff 84 07 02 10 02 00 00 00 0e d0 13 d6 a0 00 00 00 00 ff ff 00 00 00",
                ),
                GobError::BadTime("version 2 is not supported"),
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(decode_all(&bytes), Err(want.clone()), "{bytes:02x?}");
            // The error sticks.
            let mut d = Decoder::new(gob::DEFAULT_MAX_MESSAGE);
            d.feed(&bytes);
            while let Ok(Some(_)) = d.next() {}
            assert!(d.is_failed());
            d.feed(&full_value());
            assert_eq!(d.next(), Err(want));
        }
    }

    #[test]
    fn cap_is_checked_before_buffering() {
        let mut d = Decoder::new(100);
        d.feed(&hex("ff 65")); // 101
        assert_eq!(
            d.next(),
            Err(GobError::MessageTooLarge { len: 101, max: 100 })
        );
        let mut d = Decoder::new(100);
        d.feed(&hex("64"));
        assert_eq!(d.next(), Ok(None));
        // Feeding twice without draining is refused beyond one message.
        let mut d = Decoder::new(100);
        d.feed(&[0x64; 120]);
        d.feed(&[0]);
        assert!(matches!(d.next(), Err(GobError::BufferFull { .. })));
    }

    /// A stream whose one type is a custom Frame-like struct.
    fn custom(fields: &[(&str, i32)], extra_defs: &[(i32, WireType)], value: &str) -> Vec<u8> {
        let mut b = Vec::new();
        for (id, wt) in extra_defs {
            gob::put_definition(&mut b, *id, wt);
        }
        gob::put_definition(&mut b, 90, &struct_type("X", fields));
        let mut v = Vec::new();
        gob::put_int(&mut v, 90);
        v.extend(hex(value));
        gob::put_bytes(&mut b, &v);
        b
    }

    fn field_type_error(bytes: &[u8]) -> &'static str {
        match decode_all(bytes) {
            Err(GobError::FieldType { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn type_compatibility_is_checked_like_go() {
        let enc = |kind| WireType { name: vec![], kind };
        assert_eq!(
            field_type_error(&custom(&[("Major", gob::INT)], &[], "01 02 00")),
            "Major"
        );
        assert_eq!(
            field_type_error(&custom(&[("Source", gob::STRING)], &[], "01 01 41 00")),
            "Source"
        );
        assert_eq!(
            field_type_error(&custom(
                &[("Origin", 70)],
                &[(
                    70,
                    enc(Kind::Array {
                        elem: gob::UINT,
                        len: 15
                    })
                )],
                "01 0f 00"
            )),
            "Origin"
        );
        assert_eq!(
            field_type_error(&custom(
                &[("Trace", 70), ("Payload", gob::BYTES)],
                &[(70, enc(Kind::Slice { elem: gob::UINT }))],
                "01 00 00"
            )),
            "Trace"
        );
        let trace = |time_kind| {
            custom(
                &[("Trace", 70)],
                &[
                    (71, enc(time_kind)),
                    (70, struct_type("T", &[("StartTimestamp", 71)])),
                ],
                &format!("01 01 0f {T2017} 00 00"),
            )
        };
        assert_eq!(
            field_type_error(&trace(Kind::BinaryMarshaler)),
            "StartTimestamp"
        );
        let d = decode_one(&trace(Kind::GobEncoder)).unwrap();
        assert_eq!(d.trace.unwrap().start, Some(t2017()));
        // Role must fit 32 bits.
        assert_eq!(
            decode_all(&custom(
                &[("Role", gob::UINT)],
                &[],
                "01 fb 01 00 00 00 00 00"
            )),
            Err(GobError::OutOfRange {
                field: "Role",
                value: 1 << 32
            })
        );
        // No known field name at all, at the top and in a trace.
        assert_eq!(
            decode_all(&custom(&[("Bogus", gob::UINT)], &[], "00")),
            Err(GobError::NoMatchingField {
                local: "an SSNTP frame",
                type_id: 90
            })
        );
        assert_eq!(
            decode_all(&custom(
                &[("Trace", 70)],
                &[(70, struct_type("T", &[("Bogus", gob::UINT)]))],
                "01 00 00"
            )),
            Err(GobError::NoMatchingField {
                local: "FrameTrace",
                type_id: 70
            })
        );
    }

    #[test]
    fn inconsistent_traces_are_dropped() {
        // PathLength 2 with one node.
        let mut v = traced_start_value();
        let at = v
            .windows(4)
            .position(|w| w == [0x02, 0x01, 0x01, 0x01])
            .unwrap();
        v[at + 1] = 2;
        let d = decode_one(&[frame_defs(), v].concat()).unwrap();
        assert_eq!(d.trace, None);
        assert_eq!(d.payload, b"start: {}\n");
        // A 15-byte node UUID.
        let mut v = traced_start_value();
        let at = v.windows(3).position(|w| w == [0x01, 0x10, 0xf8]).unwrap();
        v[at + 1] = 0x0f;
        v.remove(at + 2);
        v[0] -= 1;
        let d = decode_one(&[frame_defs(), v].concat()).unwrap();
        assert_eq!(d.trace, None);
        assert_eq!(d.major, TRACE_BIT);
    }

    #[test]
    fn fuzz_entry_accepts_the_spec_stream() {
        fuzz_gob_decode(&client_stream());
        fuzz_gob_decode(&[]);
        fuzz_gob_decode(&[0xff]);
    }
}
