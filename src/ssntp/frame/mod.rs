//! SSNTP frames on top of gob: the three frame structs, their types and
//! operands, and the optional trace section.
//!
//! Receiving: a [`Decoder`] per connection direction turns bytes into
//! [`Decoded`] values. Go decodes each message into a fixed local struct by
//! field **name**, using the sender's definition; `Decoded` is the union of
//! the three local structs (`ConnectFrame`, `ConnectedFrame`, `Frame`), so
//! the session decides which shape it expected ([`Decoded::into_connect`],
//! [`Decoded::into_connected`], [`Decoded::into_frame`]). Unknown field
//! names are skipped; known names must carry Go-compatible wire types and
//! values that fit (a `Major` of 300 is an error, as in Go).
//!
//! Sending: an [`Encoder`] per connection direction writes the canonical
//! type definitions the Go peers send, byte for byte (the tests compare
//! them with the captured bytes of `vectors.rs`), each once, before the
//! first value of its type, and omits zero-valued fields as Go does.
//!
//! Traces: a trace whose `PathLength` differs from the number of path
//! nodes, or with a node UUID that is not 16 bytes, is **dropped** (logged,
//! `trace` becomes `None`) while the rest of the frame is kept: Go would
//! crash on such a trace only when dumping or forwarding it, and the
//! payload is still good. Outgoing traces always carry
//! `PathLength = len(Path)` (at most 255 nodes are sent, as `PathLength` is
//! a `uint8`).
//!
//! Frame types and operands are typed ([`Op`], in `operand.rs`); Go's
//! `time.Time` is [`GoTime`] (`gotime.rs`); `decode.rs` and `encode.rs`
//! hold the two directions.

mod decode;
mod encode;
mod gotime;
mod operand;
#[cfg(test)]
mod vectors;

pub use decode::{fuzz_gob_decode, Decoder};
pub use encode::Encoder;
pub use gotime::GoTime;
pub use operand::{Command, ErrorCode, Event, Op, Status};

/// `Major` bit 7: path tracing is on (when a trace is present too).
/// Receivers use `Major & 0x7f`.
pub const TRACE_BIT: u8 = 0x80;
/// Protocol versions this side sends.
pub(crate) const MAJOR_VERSION: u8 = 0;
pub(crate) const MINOR_VERSION: u8 = 1;

/// One node of a trace path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceNode {
    pub uuid: [u8; 16],
    pub role: u32,
    pub tx: Option<GoTime>,
    pub rx: Option<GoTime>,
}

/// The optional trace section of a Frame. `PathLength` is not stored: it is
/// `path.len()` on the wire. Unset or zero time stamps are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FrameTrace {
    pub label: Vec<u8>,
    pub start: Option<GoTime>,
    pub end: Option<GoTime>,
    pub path: Vec<TraceNode>,
}

/// Every frame after the handshake, both directions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Protocol major (0) plus [`TRACE_BIT`].
    pub major: u8,
    pub minor: u8,
    pub op: Op,
    /// UUID of the node that created the frame.
    pub origin: [u8; 16],
    /// Informational copy of `payload.len()`; never checked by anyone.
    pub payload_length: u32,
    pub trace: Option<FrameTrace>,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A frame from `origin` with version 0.1, no trace.
    pub fn new(op: impl Into<Op>, origin: [u8; 16], payload: Vec<u8>) -> Frame {
        Frame {
            major: MAJOR_VERSION,
            minor: MINOR_VERSION,
            op: op.into(),
            origin,
            payload_length: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            trace: None,
            payload,
        }
    }

    /// Go's `PathTrace()`: a trace is present and Major has bit 7.
    pub fn is_traced(&self) -> bool {
        self.major & TRACE_BIT != 0 && self.trace.is_some()
    }
}

/// The client's first message (exactly once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectFrame {
    pub major: u8,
    pub minor: u8,
    pub op: Op,
    pub role: u32,
    pub source: Vec<u8>,
    pub destination: Vec<u8>,
}

/// The server's reply to CONNECT (exactly once). `PayloadLength` is written as
/// `payload.len()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedFrame {
    pub major: u8,
    pub minor: u8,
    pub op: Op,
    pub role: u32,
    pub source: Vec<u8>,
    pub destination: Vec<u8>,
    pub payload: Vec<u8>,
}

/// Bits of [`Decoded::present`] and [`Decoded::defined`], one per field
/// name of the three SSNTP structs.
pub(crate) mod field {
    pub(crate) const MAJOR: u32 = 1 << 0;
    pub(crate) const MINOR: u32 = 1 << 1;
    pub(crate) const TYPE: u32 = 1 << 2;
    pub(crate) const OPERAND: u32 = 1 << 3;
    pub(crate) const ROLE: u32 = 1 << 4;
    pub(crate) const SOURCE: u32 = 1 << 5;
    pub(crate) const DESTINATION: u32 = 1 << 6;
    pub(crate) const ORIGIN: u32 = 1 << 7;
    pub(crate) const PAYLOAD_LENGTH: u32 = 1 << 8;
    pub(crate) const TRACE: u32 = 1 << 9;
    #[cfg(test)]
    pub(crate) const PAYLOAD: u32 = 1 << 10;
    #[cfg(test)]
    const COMMON: u32 = MAJOR | MINOR | TYPE | OPERAND;
    /// Fields of Go's `ConnectFrame`.
    #[cfg(test)]
    pub(crate) const CONNECT_FIELDS: u32 = COMMON | ROLE | SOURCE | DESTINATION;
    /// Fields of Go's `Frame`.
    #[cfg(test)]
    pub(crate) const FRAME_FIELDS: u32 = COMMON | ORIGIN | PAYLOAD_LENGTH | TRACE | PAYLOAD;
}

/// A received value, decoded by field name into the union of the three
/// SSNTP structs; absent fields are zero.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decoded {
    pub major: u8,
    pub minor: u8,
    pub op: Op,
    pub role: u32,
    pub source: Vec<u8>,
    pub destination: Vec<u8>,
    pub origin: [u8; 16],
    pub payload_length: u32,
    pub trace: Option<FrameTrace>,
    pub payload: Vec<u8>,
    /// Known field names present in this value ([`field`] bits).
    pub present: u32,
    /// Known field names in the sender's definition ([`field`] bits). Go
    /// refuses a value whose definition shares no name with its local
    /// struct: `defined & field::FRAME_FIELDS == 0` is such a value for a
    /// Frame (the decoder already refuses one with no known name at all).
    pub defined: u32,
}

impl Decoded {
    pub fn into_frame(self) -> Frame {
        Frame {
            major: self.major,
            minor: self.minor,
            op: self.op,
            origin: self.origin,
            payload_length: self.payload_length,
            trace: self.trace,
            payload: self.payload,
        }
    }

    pub fn into_connect(self) -> ConnectFrame {
        ConnectFrame {
            major: self.major,
            minor: self.minor,
            op: self.op,
            role: self.role,
            source: self.source,
            destination: self.destination,
        }
    }

    pub fn into_connected(self) -> ConnectedFrame {
        ConnectedFrame {
            major: self.major,
            minor: self.minor,
            op: self.op,
            role: self.role,
            source: self.source,
            destination: self.destination,
            payload: self.payload,
        }
    }
}
