//! The subset of Go's `encoding/gob` that SSNTP speaks.
//!
//! A gob stream is a sequence of messages, each `uint length` + body. A body
//! starts with a signed type id: negative ids carry a type definition
//! (`wireType`), positive ids a value of a previously defined type. Type ids
//! are chosen by the sender, so everything here is driven by the definitions
//! the peer sent on this stream ([`Types`]), never by fixed ids or positions.
//!
//! This module knows nothing about SSNTP frames: [`Stream`] splits a byte
//! stream into messages, learns definitions and hands out value messages;
//! [`Types::walk_struct`] and [`Types::skip`] let a caller decode the fields
//! it knows and skip the rest generically. `frame.rs` builds the SSNTP
//! structs on top.
//!
//! Hostile input is expected: every length and count is checked against
//! the bytes that remain before anything is allocated, messages are capped
//! before they are buffered, nesting is bounded (which also bounds recursive
//! type definitions), and no input makes this code panic.
//!
//! Differences from Go, all stricter and none reachable by a Go peer:
//! a struct must end with its `00` terminator (Go also accepts the end of
//! the message); type ids must fit Go's `int32` (Go silently truncates);
//! a definition must describe exactly one kind and arrays a length ≥ 0;
//! interface values (never used by SSNTP) are rejected; the definitions of
//! one stream may total at most [`MAX_DEFINITION_BYTES`].

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

/// Default cap on one gob message (`--max-message-size`; Go allows 8 GiB:
/// S10.8 in docs/compatibility.md).
pub(crate) const DEFAULT_MAX_MESSAGE: usize = 16 << 20;
/// Deepest nesting of composite values (struct, slice, array, map) accepted.
pub(crate) const MAX_DEPTH: usize = 32;
/// Cap on the total size of the definition messages of one stream. A Go
/// peer sends about 600 bytes; the cap bounds the memory a peer can pin in
/// type tables (a 1-byte field definition costs a few dozen bytes here).
pub(crate) const MAX_DEFINITION_BYTES: usize = 256 << 10;
/// Longest encoding of a uint: the count byte and 8 value bytes.
pub(crate) const MAX_UINT_LEN: usize = 9;

/// Built-in type ids (Go's).
pub(crate) const BOOL: i32 = 1;
pub(crate) const INT: i32 = 2;
pub(crate) const UINT: i32 = 3;
pub(crate) const FLOAT: i32 = 4;
pub(crate) const BYTES: i32 = 5;
pub(crate) const STRING: i32 = 6;
pub(crate) const COMPLEX: i32 = 7;
pub(crate) const INTERFACE: i32 = 8;
/// The lowest id a sender may define.
pub(crate) const FIRST_USER_ID: i32 = 64;

/// Why gob data was rejected. After any of these the stream is unusable:
/// the connection must be closed (as Go does after any decoding error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GobError {
    /// A value, or a message's length prefix, runs past the available data.
    Truncated,
    /// An integer's count byte announces more than 8 bytes.
    BadUint(u8),
    /// A message of length 0 (Go rejects it too).
    EmptyMessage,
    /// A message longer than the configured cap (checked before buffering).
    MessageTooLarge { len: u64, max: usize },
    /// More unread input was fed than one maximal message can need.
    BufferFull { buffered: usize, max: usize },
    /// A type id outside Go's 32-bit range.
    BadTypeId(i64),
    /// A definition for an id below 64 (built-in and reserved ids).
    ReservedTypeId(i64),
    /// A second definition for the same id.
    DuplicateType(i32),
    /// A value or field of an id that this stream never defined.
    UndefinedType(i64),
    /// The definitions of this stream exceed [`MAX_DEFINITION_BYTES`].
    DefinitionsTooLarge { max: usize },
    /// Bytes left in a message after a type definition.
    ExtraData { id: i32, extra: usize },
    /// A malformed type definition.
    BadDefinition { id: i32, why: &'static str },
    /// A struct field number beyond the sender's field list.
    FieldOutOfRange {
        type_id: i32,
        field: u64,
        fields: usize,
    },
    /// An array whose element count differs from its declared length.
    ArrayLength {
        type_id: i32,
        expected: i64,
        got: u64,
    },
    /// An element count larger than the bytes left could hold.
    CountTooLarge { count: u64, remaining: usize },
    /// Values nested deeper than [`MAX_DEPTH`].
    TooDeep { max: usize },
    /// A kind of value SSNTP never uses and this decoder does not handle.
    Unsupported(&'static str),
    /// A top-level value whose type is not a struct.
    NotAStruct(i32),
    /// A struct none of whose field names the receiver knows (Go rejects
    /// these: "no fields matched").
    NoMatchingField { local: &'static str, type_id: i32 },
    /// A known field sent with an incompatible wire type.
    FieldType {
        field: &'static str,
        want: &'static str,
        got: String,
    },
    /// A known field whose value does not fit its Go type (e.g. Major 300).
    OutOfRange { field: &'static str, value: u64 },
    /// A malformed `time.Time` (Go's `GobEncoder` form: see `frame::gotime`).
    BadTime(&'static str),
}

impl fmt::Display for GobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use GobError::*;
        match self {
            Truncated => write!(f, "gob: data ends in the middle of a value"),
            BadUint(b) => write!(
                f,
                "gob: integer with count byte {b:#04x} (more than 8 bytes)"
            ),
            EmptyMessage => write!(f, "gob: empty message"),
            MessageTooLarge { len, max } => write!(
                f,
                "gob: message of {len} bytes exceeds the limit of {max} bytes"
            ),
            BufferFull { buffered, max } => write!(
                f,
                "gob: {buffered} unread bytes buffered, more than one message of at most {max} bytes can need"
            ),
            BadTypeId(id) => write!(f, "gob: type id {id} out of range"),
            ReservedTypeId(id) => write!(
                f,
                "gob: definition of reserved type id {id} (user ids start at {FIRST_USER_ID})"
            ),
            DuplicateType(id) => write!(f, "gob: duplicate definition of type id {id}"),
            UndefinedType(id) => write!(f, "gob: undefined type id {id}"),
            DefinitionsTooLarge { max } => write!(
                f,
                "gob: type definitions exceed {max} bytes on one connection"
            ),
            ExtraData { id, extra } => write!(
                f,
                "gob: {extra} extra bytes after the definition of type id {id}"
            ),
            BadDefinition { id, why } => {
                write!(f, "gob: bad definition of type id {id}: {why}")
            }
            FieldOutOfRange {
                type_id,
                field,
                fields,
            } => write!(
                f,
                "gob: field #{field} of type id {type_id}, which defines {fields} fields"
            ),
            ArrayLength {
                type_id,
                expected,
                got,
            } => write!(
                f,
                "gob: array of type id {type_id} has {got} elements, its definition says {expected}"
            ),
            CountTooLarge { count, remaining } => write!(
                f,
                "gob: {count} elements announced but only {remaining} bytes left"
            ),
            TooDeep { max } => write!(f, "gob: values nested deeper than {max} levels"),
            Unsupported(what) => write!(f, "gob: {what} values are not supported"),
            NotAStruct(id) => write!(f, "gob: top-level value of type id {id} is not a struct"),
            NoMatchingField { local, type_id } => write!(
                f,
                "gob: type id {type_id} has no field of {local}"
            ),
            FieldType { field, want, got } => {
                write!(f, "gob: field {field} must be {want}, got {got}")
            }
            OutOfRange { field, value } => {
                write!(f, "gob: value {value} out of range for field {field}")
            }
            BadTime(why) => write!(f, "gob: bad time stamp: {why}"),
        }
    }
}

impl std::error::Error for GobError {}

pub(crate) type Result<T> = std::result::Result<T, GobError>;

// ---------------------------------------------------------------------------
// Primitives

/// Appends `v` as a gob uint.
pub(crate) fn put_uint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
        return;
    }
    let be = v.to_be_bytes();
    let skip = (v.leading_zeros() / 8) as usize;
    out.push((8 - skip as u8).wrapping_neg());
    out.extend_from_slice(&be[skip..]);
}

/// Appends `v` as a gob int (zig-zag, then uint).
pub(crate) fn put_int(out: &mut Vec<u8>, v: i64) {
    let u = if v < 0 {
        (!(v as u64) << 1) | 1
    } else {
        (v as u64) << 1
    };
    put_uint(out, u);
}

/// Appends a byte string (or string): uint length, then the bytes.
pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Parses a uint from the front of `data`: `Ok(None)` when `data` is too
/// short to tell, else the value and its encoded length.
fn parse_uint(data: &[u8]) -> Result<Option<(u64, usize)>> {
    let Some(&b) = data.first() else {
        return Ok(None);
    };
    if b < 0x80 {
        return Ok(Some((u64::from(b), 1)));
    }
    // 0xff = 1 byte follows ... 0xf8 = 8; anything below announces more.
    let n = usize::from(!b) + 1;
    if n > 8 {
        return Err(GobError::BadUint(b));
    }
    let Some(digits) = data.get(1..1 + n) else {
        return Ok(None);
    };
    let v = digits
        .iter()
        .fold(0u64, |acc, &d| (acc << 8) | u64::from(d));
    Ok(Some((v, 1 + n)))
}

/// A cursor over one message body.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.data.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn uint(&mut self) -> Result<u64> {
        let (v, n) = parse_uint(self.data)?.ok_or(GobError::Truncated)?;
        self.data = &self.data[n..];
        Ok(v)
    }

    pub(crate) fn int(&mut self) -> Result<i64> {
        let u = self.uint()?;
        Ok(if u & 1 == 1 {
            !(u >> 1) as i64
        } else {
            (u >> 1) as i64
        })
    }

    /// A byte string or string: uint length + that many bytes.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.uint()?;
        if n > self.data.len() as u64 {
            return Err(GobError::Truncated);
        }
        let (b, rest) = self.data.split_at(n as usize);
        self.data = rest;
        Ok(b)
    }

    /// An element count that must fit the remaining bytes (every encoded
    /// element takes at least one byte), so callers may loop over it
    /// without trusting the peer.
    pub(crate) fn count(&mut self) -> Result<u64> {
        let n = self.uint()?;
        if n > self.data.len() as u64 {
            return Err(GobError::CountTooLarge {
                count: n,
                remaining: self.data.len(),
            });
        }
        Ok(n)
    }

    /// A type id (Go `typeId` is an int32).
    fn type_id(&mut self) -> Result<i32> {
        let v = self.int()?;
        i32::try_from(v).map_err(|_| GobError::BadTypeId(v))
    }
}

// ---------------------------------------------------------------------------
// Type definitions (`wireType`)

/// One field of a struct definition: its name and its type id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldDef {
    pub name: Vec<u8>,
    pub id: i32,
}

/// What a definition describes (one of the seven `wireType` members).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Array { elem: i32, len: i64 },
    Slice { elem: i32 },
    Struct { fields: Vec<FieldDef> },
    Map { key: i32, elem: i32 },
    GobEncoder,
    BinaryMarshaler,
    TextMarshaler,
}

/// A type definition: `CommonType.Name` (informational) and its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireType {
    pub name: Vec<u8>,
    pub kind: Kind,
}

/// The definition of a struct type `name` with `(field name, type id)` fields, in order.
pub(crate) fn struct_type(name: &str, fields: &[(&str, i32)]) -> WireType {
    WireType {
        name: name.as_bytes().to_vec(),
        kind: Kind::Struct {
            fields: fields
                .iter()
                .map(|(n, id)| FieldDef {
                    name: n.as_bytes().to_vec(),
                    id: *id,
                })
                .collect(),
        },
    }
}

impl Kind {
    fn describe(&self) -> &'static str {
        match self {
            Kind::Array { .. } => "array",
            Kind::Slice { .. } => "slice",
            Kind::Struct { .. } => "struct",
            Kind::Map { .. } => "map",
            Kind::GobEncoder => "GobEncoder",
            Kind::BinaryMarshaler => "BinaryMarshaler",
            Kind::TextMarshaler => "TextMarshaler",
        }
    }
}

/// Walks a struct of a fixed schema with `nfields` fields: calls `f` with
/// each present field number until the `00` terminator.
fn fixed_struct<'a>(
    r: &mut Reader<'a>,
    nfields: usize,
    mut f: impl FnMut(usize, &mut Reader<'a>) -> Result<()>,
) -> Result<Option<u64>> {
    let mut next = 0usize; // lowest field number the next delta can reach
    loop {
        let delta = r.uint()?;
        if delta == 0 {
            return Ok(None);
        }
        if delta > (nfields - next) as u64 {
            return Ok(Some((delta - 1).saturating_add(next as u64)));
        }
        let field = next + (delta as usize - 1);
        f(field, r)?;
        next = field + 1;
    }
}

/// `CommonType {Name string, Id int}`: returns the name.
fn common_type(r: &mut Reader<'_>, id: i32) -> Result<Vec<u8>> {
    let mut name = Vec::new();
    let bad = fixed_struct(r, 2, |i, r| {
        match i {
            0 => name = r.bytes()?.to_vec(),
            _ => {
                r.type_id()?;
            }
        }
        Ok(())
    })?;
    if bad.is_some() {
        return Err(GobError::BadDefinition {
            id,
            why: "CommonType has an unknown field",
        });
    }
    Ok(name)
}

/// Parses the `wireType` value that follows a negative id.
fn parse_wire_type(r: &mut Reader<'_>, id: i32) -> Result<WireType> {
    let bad = |why| GobError::BadDefinition { id, why };
    let mut out: Option<WireType> = None;
    let unknown = fixed_struct(r, 7, |member, r| {
        if out.is_some() {
            return Err(bad("it describes more than one kind"));
        }
        let mut name = Vec::new();
        let mut ids = [0i32; 2];
        let mut len = 0i64;
        let mut fields = Vec::new();
        // Field counts of arrayType, sliceType, structType, mapType, then
        // the three marshaler types ({CommonType} only).
        let nfields = [3, 2, 2, 3, 1, 1, 1][member];
        let unknown = fixed_struct(r, nfields, |i, r| {
            match (member, i) {
                (_, 0) => name = common_type(r, id)?,
                (0, 1) | (1, 1) | (3, 1) => ids[0] = r.type_id()?,
                (3, 2) => ids[1] = r.type_id()?,
                (0, 2) => len = r.int()?,
                (2, 1) => {
                    let n = r.count()?;
                    for _ in 0..n {
                        fields.push(field_type(r, id)?);
                    }
                }
                _ => return Err(bad("unknown field")),
            }
            Ok(())
        })?;
        if unknown.is_some() {
            return Err(bad("unknown field"));
        }
        let kind = match member {
            0 if len < 0 => return Err(bad("negative array length")),
            0 => Kind::Array { elem: ids[0], len },
            1 => Kind::Slice { elem: ids[0] },
            2 => Kind::Struct {
                fields: std::mem::take(&mut fields),
            },
            3 => Kind::Map {
                key: ids[0],
                elem: ids[1],
            },
            4 => Kind::GobEncoder,
            5 => Kind::BinaryMarshaler,
            _ => Kind::TextMarshaler,
        };
        out = Some(WireType {
            name: std::mem::take(&mut name),
            kind,
        });
        Ok(())
    })?;
    if unknown.is_some() {
        return Err(bad("unknown wireType member"));
    }
    out.ok_or_else(|| bad("it describes no type"))
}

/// `fieldType {Name string, Id int}`.
fn field_type(r: &mut Reader<'_>, id: i32) -> Result<FieldDef> {
    let mut f = FieldDef {
        name: Vec::new(),
        id: 0,
    };
    let unknown = fixed_struct(r, 2, |i, r| {
        match i {
            0 => f.name = r.bytes()?.to_vec(),
            _ => f.id = r.type_id()?,
        }
        Ok(())
    })?;
    if unknown.is_some() {
        return Err(GobError::BadDefinition {
            id,
            why: "fieldType has an unknown field",
        });
    }
    Ok(f)
}

/// Appends a complete definition message (length prefix included) for
/// `id`, encoded as Go's encoder does (zero values omitted).
pub(crate) fn put_definition(out: &mut Vec<u8>, id: i32, wt: &WireType) {
    fn common(b: &mut Vec<u8>, name: &[u8], id: i32) {
        b.push(1); // field #0 CommonType
        if !name.is_empty() {
            b.push(1);
            put_bytes(b, name);
            b.push(1);
        } else {
            b.push(2);
        }
        put_int(b, i64::from(id));
        b.push(0);
    }
    let mut b = Vec::new();
    put_int(&mut b, -i64::from(id));
    match &wt.kind {
        Kind::Array { elem, len } => {
            b.push(1);
            common(&mut b, &wt.name, id);
            b.push(1);
            put_int(&mut b, i64::from(*elem));
            b.push(1);
            put_int(&mut b, *len);
        }
        Kind::Slice { elem } => {
            b.push(2);
            common(&mut b, &wt.name, id);
            b.push(1);
            put_int(&mut b, i64::from(*elem));
        }
        Kind::Struct { fields } => {
            b.push(3);
            common(&mut b, &wt.name, id);
            if !fields.is_empty() {
                b.push(1);
                put_uint(&mut b, fields.len() as u64);
                for f in fields {
                    let mut delta = 1;
                    if !f.name.is_empty() {
                        b.push(delta);
                        put_bytes(&mut b, &f.name);
                    } else {
                        delta += 1;
                    }
                    if f.id != 0 {
                        b.push(delta);
                        put_int(&mut b, i64::from(f.id));
                    }
                    b.push(0);
                }
            }
        }
        Kind::Map { key, elem } => {
            b.push(4);
            common(&mut b, &wt.name, id);
            b.push(1);
            put_int(&mut b, i64::from(*key));
            b.push(1);
            put_int(&mut b, i64::from(*elem));
        }
        Kind::GobEncoder | Kind::BinaryMarshaler | Kind::TextMarshaler => {
            b.push(match wt.kind {
                Kind::GobEncoder => 5,
                Kind::BinaryMarshaler => 6,
                _ => 7,
            });
            common(&mut b, &wt.name, id);
        }
    }
    b.push(0); // end of the member struct
    b.push(0); // end of wireType
    put_uint(out, b.len() as u64);
    out.extend_from_slice(&b);
}

/// A defined type plus what the receiver precomputed about its field names.
#[derive(Debug)]
struct Entry {
    wire: WireType,
    /// Per struct field: index into the receiver's name list, if known.
    slots: Vec<Option<u8>>,
    /// Bit `i` set when name `i` of the receiver's list is a field.
    mask: u64,
}

/// The type definitions one stream (one direction of one connection) has
/// received. Field names are matched once, at definition time, against the
/// receiver's list of names, so decoding a value costs O(its bytes).
#[derive(Debug)]
pub(crate) struct Types {
    names: &'static [&'static str],
    defs: HashMap<i32, Entry>,
    def_bytes: usize,
}

/// A struct definition as [`Types::walk_struct`] sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StructRef<'t> {
    pub id: i32,
    /// Bits of the receiver's names that occur as fields (see [`Types::new`]).
    pub mask: u64,
    entry: &'t Entry,
}

impl Types {
    /// An empty table. `names` (at most 64) are the field names the
    /// receiver understands; [`Types::walk_struct`] reports fields by their
    /// index in this list.
    pub(crate) fn new(names: &'static [&'static str]) -> Self {
        Types {
            names: &names[..names.len().min(64)],
            defs: HashMap::new(),
            def_bytes: 0,
        }
    }

    /// Learns the definition in the rest of a message whose id was `-id`;
    /// `msg_len` is the whole body's length (for the per-stream budget).
    pub(crate) fn define(&mut self, neg_id: i64, r: &mut Reader<'_>, msg_len: usize) -> Result<()> {
        let id = neg_id.checked_neg().ok_or(GobError::BadTypeId(neg_id))?;
        let id32 = i32::try_from(id).map_err(|_| GobError::BadTypeId(id))?;
        if id32 < FIRST_USER_ID {
            return Err(GobError::ReservedTypeId(id));
        }
        if self.defs.contains_key(&id32) {
            return Err(GobError::DuplicateType(id32));
        }
        self.def_bytes = self.def_bytes.saturating_add(msg_len);
        if self.def_bytes > MAX_DEFINITION_BYTES {
            return Err(GobError::DefinitionsTooLarge {
                max: MAX_DEFINITION_BYTES,
            });
        }
        let wire = parse_wire_type(r, id32)?;
        if !r.is_empty() {
            return Err(GobError::ExtraData {
                id: id32,
                extra: r.remaining(),
            });
        }
        let mut slots = Vec::new();
        let mut mask = 0u64;
        if let Kind::Struct { fields } = &wire.kind {
            for f in fields {
                let slot = self.names.iter().position(|n| n.as_bytes() == f.name);
                if let Some(s) = slot {
                    mask |= 1 << s;
                }
                slots.push(slot.map(|s| s as u8));
            }
        }
        self.defs.insert(id32, Entry { wire, slots, mask });
        Ok(())
    }

    /// The definition of a user id, if this stream has one.
    pub(crate) fn get(&self, id: i32) -> Option<&WireType> {
        self.defs.get(&id).map(|e| &e.wire)
    }

    /// The struct definition of `id`: `UndefinedType` or `NotAStruct` else.
    pub(crate) fn struct_ref(&self, id: i32) -> Result<StructRef<'_>> {
        match self.defs.get(&id) {
            Some(entry) if matches!(entry.wire.kind, Kind::Struct { .. }) => Ok(StructRef {
                id,
                mask: entry.mask,
                entry,
            }),
            Some(_) => Err(GobError::NotAStruct(id)),
            None if (BOOL..=INTERFACE).contains(&id) => Err(GobError::NotAStruct(id)),
            None => Err(GobError::UndefinedType(id.into())),
        }
    }

    /// A short description of a type id for error messages.
    pub(crate) fn describe(&self, id: i32) -> String {
        const BUILTIN: [&str; 8] = [
            "bool",
            "int",
            "uint",
            "float",
            "bytes",
            "string",
            "complex",
            "interface",
        ];
        match self.defs.get(&id) {
            Some(e) => format!("type id {id} ({})", e.wire.kind.describe()),
            None if (BOOL..=INTERFACE).contains(&id) => BUILTIN[(id - 1) as usize].to_string(),
            None => format!("undefined type id {id}"),
        }
    }

    /// Reads a struct value of `s` from `r` (at nesting level `depth`):
    /// calls `f(slot, field_type_id, reader, depth + 1)` for each present
    /// field, `slot` being the field name's index in the receiver's list.
    /// `f` must consume exactly the field's value (or call [`Types::skip`]).
    pub(crate) fn walk_struct<'a>(
        &self,
        s: StructRef<'_>,
        r: &mut Reader<'a>,
        depth: usize,
        mut f: impl FnMut(Option<u8>, i32, &mut Reader<'a>, usize) -> Result<()>,
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(GobError::TooDeep { max: MAX_DEPTH });
        }
        let Kind::Struct { fields } = &s.entry.wire.kind else {
            return Err(GobError::NotAStruct(s.id));
        };
        let beyond = fixed_struct(r, fields.len(), |i, r| {
            f(s.entry.slots[i], fields[i].id, r, depth + 1)
        })?;
        match beyond {
            None => Ok(()),
            Some(field) => Err(GobError::FieldOutOfRange {
                type_id: s.id,
                field,
                fields: fields.len(),
            }),
        }
    }

    /// Reads and discards one value of type `id` at nesting level `depth`.
    pub(crate) fn skip(&self, id: i32, r: &mut Reader<'_>, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(GobError::TooDeep { max: MAX_DEPTH });
        }
        match id {
            BOOL | INT | UINT | FLOAT => {
                r.uint()?;
            }
            BYTES | STRING => {
                r.bytes()?;
            }
            COMPLEX => {
                r.uint()?;
                r.uint()?;
            }
            INTERFACE => return Err(GobError::Unsupported("interface")),
            _ => {
                let e = self
                    .defs
                    .get(&id)
                    .ok_or(GobError::UndefinedType(id.into()))?;
                match &e.wire.kind {
                    Kind::Array { elem, len } => {
                        let n = r.uint()?;
                        if n != *len as u64 {
                            return Err(GobError::ArrayLength {
                                type_id: id,
                                expected: *len,
                                got: n,
                            });
                        }
                        if n > r.remaining() as u64 {
                            return Err(GobError::CountTooLarge {
                                count: n,
                                remaining: r.remaining(),
                            });
                        }
                        for _ in 0..n {
                            self.skip(*elem, r, depth + 1)?;
                        }
                    }
                    Kind::Slice { elem } => {
                        for _ in 0..r.count()? {
                            self.skip(*elem, r, depth + 1)?;
                        }
                    }
                    Kind::Map { key, elem } => {
                        for _ in 0..r.count()? {
                            self.skip(*key, r, depth + 1)?;
                            self.skip(*elem, r, depth + 1)?;
                        }
                    }
                    Kind::Struct { .. } => {
                        let s = StructRef {
                            id,
                            mask: e.mask,
                            entry: e,
                        };
                        self.walk_struct(s, r, depth, |_, fid, r, d| self.skip(fid, r, d))?;
                    }
                    Kind::GobEncoder | Kind::BinaryMarshaler | Kind::TextMarshaler => {
                        r.bytes()?;
                    }
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Messages over a byte stream

/// Splits a byte stream into length-prefixed messages, holding at most one
/// incomplete message (whose declared length was checked against the cap
/// before its body was buffered) plus the last chunk fed.
#[derive(Debug)]
pub(crate) struct Messages {
    buf: Vec<u8>,
    pos: usize,
    max: usize,
}

/// Capacity kept after the buffer empties; more is released, so one large
/// message does not pin its memory for the life of the connection.
const KEEP_CAPACITY: usize = 64 << 10;

impl Messages {
    pub(crate) fn new(max_message: usize) -> Self {
        Messages {
            buf: Vec::new(),
            pos: 0,
            max: max_message,
        }
    }

    /// Unread bytes.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Appends received bytes. Call [`Messages::next_range`] until it
    /// returns `Ok(None)` before feeding more: then at most one incomplete
    /// message is held, and feeding refuses to grow a buffer beyond that.
    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<()> {
        let buffered = self.buffered();
        if buffered > self.max.saturating_add(MAX_UINT_LEN) {
            return Err(GobError::BufferFull {
                buffered,
                max: self.max,
            });
        }
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.buf.is_empty() && self.buf.capacity() > KEEP_CAPACITY {
            self.buf.shrink_to(KEEP_CAPACITY);
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    /// The next complete message body (as a range of [`Messages::get`]'s
    /// buffer), `Ok(None)` if it has not fully arrived yet. A length above
    /// the cap is an error as soon as the length prefix is complete.
    pub(crate) fn next_range(&mut self) -> Result<Option<Range<usize>>> {
        if self.pos == self.buf.len() {
            // All consumed: release a burst's worth of buffer now rather
            // than at the next feed, which may be long in coming.
            self.buf.clear();
            self.pos = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf.shrink_to(KEEP_CAPACITY);
            }
            return Ok(None);
        }
        let avail = &self.buf[self.pos..];
        let Some((len, hlen)) = parse_uint(avail)? else {
            return Ok(None);
        };
        if len == 0 {
            return Err(GobError::EmptyMessage);
        }
        if len > self.max as u64 {
            return Err(GobError::MessageTooLarge { len, max: self.max });
        }
        let len = len as usize;
        if avail.len() - hlen < len {
            return Ok(None);
        }
        let start = self.pos + hlen;
        self.pos = start + len;
        Ok(Some(start..start + len))
    }

    /// The bytes of a range returned by [`Messages::next_range`], valid
    /// until the next `feed` or `next_range`.
    pub(crate) fn get(&self, r: Range<usize>) -> &[u8] {
        self.buf.get(r).unwrap_or(&[])
    }
}

/// A value message: its type id and the reader positioned after the id.
#[derive(Debug)]
pub(crate) struct Value<'a> {
    pub id: i32,
    pub body: Reader<'a>,
    pub types: &'a Types,
}

/// One direction of one connection: messages plus the definitions learned.
/// After an error the stream is in an undefined state; drop it.
#[derive(Debug)]
pub(crate) struct Stream {
    msgs: Messages,
    types: Types,
}

impl Stream {
    /// `names`: the field names the receiver understands (see [`Types::new`]).
    pub(crate) fn new(max_message: usize, names: &'static [&'static str]) -> Self {
        Stream {
            msgs: Messages::new(max_message),
            types: Types::new(names),
        }
    }

    pub(crate) fn feed(&mut self, bytes: &[u8]) -> Result<()> {
        self.msgs.feed(bytes)
    }

    /// Consumes definition messages and returns the next value message, or
    /// `Ok(None)` when no complete value message is buffered.
    pub(crate) fn next_value(&mut self) -> Result<Option<Value<'_>>> {
        let range = loop {
            let Some(range) = self.msgs.next_range()? else {
                return Ok(None);
            };
            let body = self.msgs.get(range.clone());
            let mut r = Reader::new(body);
            let id = r.int()?;
            if id >= 0 {
                break range;
            }
            self.types.define(id, &mut r, body.len())?;
        };
        let mut body = Reader::new(self.msgs.get(range));
        let id = body.type_id()?;
        Ok(Some(Value {
            id,
            body,
            types: &self.types,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::struct_type as st;
    use super::*;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    fn uint_bytes(v: u64) -> Vec<u8> {
        let mut b = Vec::new();
        put_uint(&mut b, v);
        b
    }

    fn int_bytes(v: i64) -> Vec<u8> {
        let mut b = Vec::new();
        put_int(&mut b, v);
        b
    }

    #[test]
    fn primitives_match_spec_examples() {
        assert_eq!(uint_bytes(5), hex("05"));
        assert_eq!(uint_bytes(128), hex("ff 80"));
        assert_eq!(uint_bytes(256), hex("fe 01 00"));
        assert_eq!(uint_bytes(509), hex("fe 01 fd"));
        assert_eq!(uint_bytes(u64::MAX), hex("f8 ff ff ff ff ff ff ff ff"));
        assert_eq!(int_bytes(3), hex("06"));
        assert_eq!(int_bytes(5), hex("0a"));
        assert_eq!(int_bytes(65), hex("ff 82"));
        assert_eq!(int_bytes(-65), hex("ff 81"));
        assert_eq!(int_bytes(-71), hex("ff 8d"));
        for v in [0, 1, 127, 128, 255, 256, 1 << 40, u64::MAX - 1, u64::MAX] {
            assert_eq!(Reader::new(&uint_bytes(v)).uint(), Ok(v));
        }
        for v in [0, 1, -1, 64, -64, i64::MIN, i64::MAX] {
            assert_eq!(Reader::new(&int_bytes(v)).int(), Ok(v));
        }
    }

    #[test]
    fn uint_reader_edge_cases() {
        // Non-minimal forms are accepted, as Go does.
        assert_eq!(Reader::new(&hex("ff 05")).uint(), Ok(5));
        assert_eq!(
            Reader::new(&hex("f8 00 00 00 00 00 00 00 07")).uint(),
            Ok(7)
        );
        // A count byte announcing more than 8 bytes.
        assert_eq!(
            Reader::new(&hex("f7 00")).uint(),
            Err(GobError::BadUint(0xf7))
        );
        assert_eq!(Reader::new(&hex("80")).uint(), Err(GobError::BadUint(0x80)));
        assert_eq!(Reader::new(&hex("fe 01")).uint(), Err(GobError::Truncated));
        assert_eq!(Reader::new(&[]).uint(), Err(GobError::Truncated));
        // Byte strings longer than the rest.
        assert_eq!(
            Reader::new(&hex("03 61 62")).bytes(),
            Err(GobError::Truncated)
        );
        assert_eq!(
            Reader::new(&hex("f8 ff ff ff ff ff ff ff ff 00")).bytes(),
            Err(GobError::Truncated)
        );
        assert_eq!(
            Reader::new(&hex("05 00 00")).count(),
            Err(GobError::CountTooLarge {
                count: 5,
                remaining: 2
            })
        );
    }

    fn defs_of(bytes: &[u8]) -> Result<Types> {
        let mut t = Types::new(&["A", "B"]);
        let mut m = Messages::new(DEFAULT_MAX_MESSAGE);
        m.feed(bytes)?;
        while let Some(range) = m.next_range()? {
            let body = m.get(range);
            let mut r = Reader::new(body);
            let id = r.int()?;
            assert!(id < 0, "not a definition");
            t.define(id, &mut r, body.len())?;
        }
        assert_eq!(m.buffered(), 0);
        Ok(t)
    }

    #[test]
    fn definitions_round_trip_every_kind() {
        let all = [
            (64, st("S", &[("A", UINT), ("", 0), ("B", 66)])),
            (
                65,
                WireType {
                    name: b"Arr".to_vec(),
                    kind: Kind::Array {
                        elem: UINT,
                        len: 16,
                    },
                },
            ),
            (
                66,
                WireType {
                    name: vec![],
                    kind: Kind::Slice { elem: 64 },
                },
            ),
            (
                67,
                WireType {
                    name: b"M".to_vec(),
                    kind: Kind::Map {
                        key: STRING,
                        elem: INT,
                    },
                },
            ),
            (
                68,
                WireType {
                    name: b"G".to_vec(),
                    kind: Kind::GobEncoder,
                },
            ),
            (
                69,
                WireType {
                    name: b"B".to_vec(),
                    kind: Kind::BinaryMarshaler,
                },
            ),
            (
                70,
                WireType {
                    name: b"T".to_vec(),
                    kind: Kind::TextMarshaler,
                },
            ),
            (71, st("Empty", &[])),
        ];
        let mut bytes = Vec::new();
        for (id, wt) in &all {
            put_definition(&mut bytes, *id, wt);
        }
        let t = defs_of(&bytes).unwrap();
        for (id, wt) in &all {
            assert_eq!(t.get(*id), Some(wt), "id {id}");
        }
        let s = t.struct_ref(64).unwrap();
        assert_eq!(s.mask, 0b11);
        assert_eq!(t.struct_ref(65).unwrap_err(), GobError::NotAStruct(65));
        assert_eq!(t.struct_ref(3).unwrap_err(), GobError::NotAStruct(3));
        assert_eq!(t.struct_ref(99).unwrap_err(), GobError::UndefinedType(99));
    }

    #[test]
    fn definition_errors() {
        let s = st("S", &[("A", UINT)]);
        let mut one = Vec::new();
        put_definition(&mut one, 64, &s);
        // Duplicate id.
        let mut two = one.clone();
        two.extend_from_slice(&one);
        assert_eq!(defs_of(&two).unwrap_err(), GobError::DuplicateType(64));
        // Reserved id.
        let mut low = Vec::new();
        put_definition(&mut low, 63, &s);
        assert_eq!(defs_of(&low).unwrap_err(), GobError::ReservedTypeId(63));
        // Extra data after the definition (length bumped, one byte added).
        let mut extra = one.clone();
        extra[0] += 1;
        extra.push(0);
        assert_eq!(
            defs_of(&extra).unwrap_err(),
            GobError::ExtraData { id: 64, extra: 1 }
        );
        // Truncated definition (length shortened).
        let mut short = one.clone();
        short[0] -= 1;
        short.pop();
        assert_eq!(defs_of(&short).unwrap_err(), GobError::Truncated);
        // No kind, two kinds, unknown member, negative array length.
        for body in [
            "ff 81 00",
            "ff 81 05 00 01 00 00",
            "ff 81 08 00 00",
            "ff 81 01 03 01 00 00",
        ] {
            let mut m = Vec::new();
            put_bytes(&mut m, &hex(body));
            assert!(
                matches!(defs_of(&m), Err(GobError::BadDefinition { id: 65, .. })),
                "{body}: {:?}",
                defs_of(&m)
            );
        }
        // Type ids beyond int32.
        let mut big = Vec::new();
        put_bytes(&mut big, &hex("f8 ff ff ff ff ff ff ff ff 00"));
        assert!(matches!(defs_of(&big), Err(GobError::BadTypeId(_))));
    }

    #[test]
    fn definitions_budget_is_enforced() {
        // Each definition body is over 10 bytes, so this exceeds the budget.
        let mut bytes = Vec::new();
        for id in 64..64 + (MAX_DEFINITION_BYTES / 10) as i32 {
            put_definition(&mut bytes, id, &st("S", &[("A", UINT)]));
        }
        let err = defs_of(&bytes).err();
        assert_eq!(
            err,
            Some(GobError::DefinitionsTooLarge {
                max: MAX_DEFINITION_BYTES
            })
        );
    }

    #[test]
    fn skip_every_kind() {
        let mut bytes = Vec::new();
        put_definition(
            &mut bytes,
            64,
            &st("S", &[("a", UINT), ("b", 65), ("c", 66)]),
        );
        put_definition(
            &mut bytes,
            65,
            &WireType {
                name: vec![],
                kind: Kind::Array {
                    elem: STRING,
                    len: 2,
                },
            },
        );
        put_definition(
            &mut bytes,
            66,
            &WireType {
                name: vec![],
                kind: Kind::Map { key: INT, elem: 67 },
            },
        );
        put_definition(
            &mut bytes,
            67,
            &WireType {
                name: vec![],
                kind: Kind::Slice { elem: 68 },
            },
        );
        put_definition(
            &mut bytes,
            68,
            &WireType {
                name: vec![],
                kind: Kind::GobEncoder,
            },
        );
        let t = defs_of(&bytes).unwrap();
        // {a: 300, b: ["x", ""], c: {-1: [<3 bytes>]}} followed by a marker.
        let v = hex("01 fe 01 2c 01 02 01 78 00 01 01 01 01 03 61 62 63 00 aa");
        let mut r = Reader::new(&v);
        t.skip(64, &mut r, 1).unwrap();
        assert_eq!(r.remaining(), 1);
        // Builtins.
        for (id, v) in [
            (BOOL, "01"),
            (FLOAT, "fe 01 02"),
            (COMPLEX, "01 02"),
            (STRING, "01 41"),
        ] {
            let b = hex(v);
            let mut r = Reader::new(&b);
            t.skip(id, &mut r, 1).unwrap();
            assert!(r.is_empty());
        }
        let mut r = Reader::new(&[1]);
        assert_eq!(
            t.skip(INTERFACE, &mut r, 1),
            Err(GobError::Unsupported("interface"))
        );
        assert_eq!(t.skip(99, &mut r, 1), Err(GobError::UndefinedType(99)));
        assert_eq!(t.skip(9, &mut r, 1), Err(GobError::UndefinedType(9)));
        // Wrong array length.
        let b = hex("03 01 78 01 78 01 78");
        assert_eq!(
            t.skip(65, &mut Reader::new(&b), 1),
            Err(GobError::ArrayLength {
                type_id: 65,
                expected: 2,
                got: 3
            })
        );
        // A field number beyond the definition.
        let b = hex("04 00");
        assert_eq!(
            t.skip(64, &mut Reader::new(&b), 1),
            Err(GobError::FieldOutOfRange {
                type_id: 64,
                field: 3,
                fields: 3
            })
        );
        // A huge delta after a field (no overflow computing its number).
        let b = hex("01 05 f8 ff ff ff ff ff ff ff ff");
        assert_eq!(
            t.skip(64, &mut Reader::new(&b), 1),
            Err(GobError::FieldOutOfRange {
                type_id: 64,
                field: u64::MAX,
                fields: 3
            })
        );
        // A slice count the bytes cannot hold.
        let b = hex("f8 7f ff ff ff ff ff ff ff 00");
        assert!(matches!(
            t.skip(67, &mut Reader::new(&b), 1),
            Err(GobError::CountTooLarge { .. })
        ));
        // A missing struct terminator.
        let b = hex("01 05");
        assert_eq!(
            t.skip(64, &mut Reader::new(&b), 1),
            Err(GobError::Truncated)
        );
    }

    #[test]
    fn recursive_types_are_bounded_by_depth() {
        let mut bytes = Vec::new();
        put_definition(&mut bytes, 64, &st("R", &[("Next", 64)]));
        put_definition(
            &mut bytes,
            65,
            &WireType {
                name: vec![],
                kind: Kind::Slice { elem: 65 },
            },
        );
        let t = defs_of(&bytes).unwrap();
        let mut shallow = vec![1u8; 10];
        shallow.extend([0u8; 11]);
        let mut r = Reader::new(&shallow);
        t.skip(64, &mut r, 1).unwrap();
        assert!(r.is_empty());
        let deep = vec![1u8; 1000];
        assert_eq!(
            t.skip(64, &mut Reader::new(&deep), 1),
            Err(GobError::TooDeep { max: MAX_DEPTH })
        );
        assert_eq!(
            t.skip(65, &mut Reader::new(&deep), 1),
            Err(GobError::TooDeep { max: MAX_DEPTH })
        );
    }

    #[test]
    fn messages_are_split_and_capped() {
        let mut m = Messages::new(300);
        m.feed(&hex("02 aa bb 01")).unwrap();
        let r = m.next_range().unwrap().unwrap();
        assert_eq!(m.get(r), &[0xaa, 0xbb]);
        assert_eq!(m.next_range(), Ok(None));
        m.feed(&hex("cc fe 01")).unwrap();
        let r = m.next_range().unwrap().unwrap();
        assert_eq!(m.get(r), &[0xcc]);
        assert_eq!(m.next_range(), Ok(None));
        // 0x012c = 300 is allowed; 0x012d is refused before its body arrives.
        m.feed(&hex("2c")).unwrap();
        assert_eq!(m.next_range(), Ok(None));
        let mut m = Messages::new(300);
        m.feed(&hex("fe 01 2d")).unwrap();
        assert_eq!(
            m.next_range(),
            Err(GobError::MessageTooLarge { len: 301, max: 300 })
        );
        let mut m = Messages::new(300);
        m.feed(&hex("f8 ff ff ff ff ff ff ff ff")).unwrap();
        assert!(matches!(
            m.next_range(),
            Err(GobError::MessageTooLarge { .. })
        ));
        let mut m = Messages::new(300);
        m.feed(&hex("00")).unwrap();
        assert_eq!(m.next_range(), Err(GobError::EmptyMessage));
        let mut m = Messages::new(300);
        m.feed(&hex("f0")).unwrap();
        assert_eq!(m.next_range(), Err(GobError::BadUint(0xf0)));
        // Feeding without draining is refused once more than a message is held.
        let mut m = Messages::new(4);
        m.feed(&[0x7f; 14]).unwrap();
        assert!(matches!(m.feed(&[0]), Err(GobError::BufferFull { .. })));
    }
}
