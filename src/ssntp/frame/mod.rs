//! SSNTP frames on top of gob (`spec/ssntp.md` §3.5–§5, §9).
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
//! definitions of §3.5 byte for byte, each once, before the first value of
//! its type, and omits zero-valued fields as Go does (§3.3).
//!
//! Traces (§9): a trace whose `PathLength` differs from the number of path
//! nodes, or with a node UUID that is not 16 bytes, is **dropped** (logged,
//! `trace` becomes `None`) while the rest of the frame is kept: Go would
//! crash on such a trace only when dumping or forwarding it, and the
//! payload is still good. Outgoing traces always carry
//! `PathLength = len(Path)` (at most 255 nodes are sent, as `PathLength` is
//! a `uint8`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::gob::{self, FieldDef, GobError, Kind, Reader, StructRef, Types, WireType};

// ---------------------------------------------------------------------------
// Frame types and operands (§5). Doc comments give the Go constant names.

/// Frame type `COMMAND`.
pub const COMMAND: u8 = 0;
/// Frame type `STATUS`.
pub const STATUS: u8 = 1;
/// Frame type `ERROR`.
pub const ERROR: u8 = 2;
/// Frame type `EVENT`.
pub const EVENT: u8 = 3;

/// COMMAND `CONNECT` (handshake only, in a ConnectFrame).
pub const CONNECT: u8 = 0;
/// COMMAND `START`.
pub const START: u8 = 1;
/// COMMAND `STOP`.
pub const STOP: u8 = 2;
/// COMMAND `STATS` (String() "STATISTICS").
pub const STATS: u8 = 3;
/// COMMAND `EVACUATE`.
pub const EVACUATE: u8 = 4;
/// COMMAND `DELETE`.
pub const DELETE: u8 = 5;
/// COMMAND `RESTART`.
pub const RESTART: u8 = 6;
/// COMMAND `AssignPublicIP`.
pub const ASSIGN_PUBLIC_IP: u8 = 7;
/// COMMAND `ReleasePublicIP`.
pub const RELEASE_PUBLIC_IP: u8 = 8;
/// COMMAND `CONFIGURE`.
pub const CONFIGURE: u8 = 9;
/// COMMAND `AttachVolume`.
pub const ATTACH_VOLUME: u8 = 10;
/// COMMAND `DetachVolume`.
pub const DETACH_VOLUME: u8 = 11;

/// STATUS `CONNECTED` (handshake only, in a ConnectedFrame).
pub const CONNECTED: u8 = 0;
/// STATUS `READY`.
pub const READY: u8 = 1;
/// STATUS `FULL`.
pub const FULL: u8 = 2;
/// STATUS `OFFLINE`.
pub const OFFLINE: u8 = 3;
/// STATUS `MAINTENANCE`.
pub const MAINTENANCE: u8 = 4;

/// ERROR `InvalidFrameType`.
pub const INVALID_FRAME_TYPE: u8 = 0;
/// ERROR `StartFailure`.
pub const START_FAILURE: u8 = 1;
/// ERROR `StopFailure`.
pub const STOP_FAILURE: u8 = 2;
/// ERROR `ConnectionFailure`.
pub const CONNECTION_FAILURE: u8 = 3;
/// ERROR `RestartFailure`.
pub const RESTART_FAILURE: u8 = 4;
/// ERROR `DeleteFailure`.
pub const DELETE_FAILURE: u8 = 5;
/// ERROR `ConnectionAborted`.
pub const CONNECTION_ABORTED: u8 = 6;
/// ERROR `InvalidConfiguration`.
pub const INVALID_CONFIGURATION: u8 = 7;
/// ERROR `AttachVolumeFailure`.
pub const ATTACH_VOLUME_FAILURE: u8 = 8;
/// ERROR `DetachVolumeFailure`.
pub const DETACH_VOLUME_FAILURE: u8 = 9;
/// ERROR `AssignPublicIPFailure`.
pub const ASSIGN_PUBLIC_IP_FAILURE: u8 = 10;
/// ERROR `UnassignPublicIPFailure`.
pub const UNASSIGN_PUBLIC_IP_FAILURE: u8 = 11;

/// EVENT `TenantAdded`.
pub const TENANT_ADDED: u8 = 0;
/// EVENT `TenantRemoved`.
pub const TENANT_REMOVED: u8 = 1;
/// EVENT `InstanceDeleted`.
pub const INSTANCE_DELETED: u8 = 2;
/// EVENT `ConcentratorInstanceAdded`.
pub const CONCENTRATOR_INSTANCE_ADDED: u8 = 3;
/// EVENT `PublicIPAssigned`.
pub const PUBLIC_IP_ASSIGNED: u8 = 4;
/// EVENT `PublicIPUnassigned`.
pub const PUBLIC_IP_UNASSIGNED: u8 = 5;
/// EVENT `TraceReport`.
pub const TRACE_REPORT: u8 = 6;
/// EVENT `NodeConnected`.
pub const NODE_CONNECTED: u8 = 7;
/// EVENT `NodeDisconnected`.
pub const NODE_DISCONNECTED: u8 = 8;

/// `Major` bit 7: path tracing is on (§9.2). Receivers use `Major & 0x7f`.
pub const TRACE_BIT: u8 = 0x80;
/// Protocol versions this side sends.
pub const MAJOR_VERSION: u8 = 0;
pub const MINOR_VERSION: u8 = 1;

/// (Go constant name, Go `String()`) per operand, indexed by code.
const COMMANDS: [(&str, &str); 12] = [
    ("CONNECT", "CONNECT"),
    ("START", "START"),
    ("STOP", "STOP"),
    ("STATS", "STATISTICS"),
    ("EVACUATE", "EVACUATE"),
    ("DELETE", "DELETE"),
    ("RESTART", "RESTART"),
    ("AssignPublicIP", "Assign public IP"),
    ("ReleasePublicIP", "Release public IP"),
    ("CONFIGURE", "CONFIGURE"),
    ("AttachVolume", "Attach storage volume"),
    ("DetachVolume", "Detach storage volume"),
];
const STATUSES: [(&str, &str); 5] = [
    ("CONNECTED", "CONNECTED"),
    ("READY", "READY"),
    ("FULL", "FULL"),
    ("OFFLINE", "OFFLINE"),
    ("MAINTENANCE", "MAINTENANCE"),
];
const ERRORS: [(&str, &str); 12] = [
    ("InvalidFrameType", "Invalid SSNTP frame type"),
    ("StartFailure", "Could not start instance"),
    ("StopFailure", "Could not stop instance"),
    ("ConnectionFailure", "SSNTP Connection failed"),
    ("RestartFailure", "Could not restart instance"),
    ("DeleteFailure", "Could not delete instance"),
    ("ConnectionAborted", "SSNTP Connection aborted"),
    ("InvalidConfiguration", "Cluster configuration is invalid"),
    ("AttachVolumeFailure", ""),
    ("DetachVolumeFailure", ""),
    ("AssignPublicIPFailure", ""),
    ("UnassignPublicIPFailure", ""),
];
const EVENTS: [(&str, &str); 9] = [
    ("TenantAdded", "Tenant Added"),
    ("TenantRemoved", "Tenant Removed"),
    ("InstanceDeleted", "Instance Deleted"),
    (
        "ConcentratorInstanceAdded",
        "Network Concentrator Instance Added",
    ),
    ("PublicIPAssigned", "Public IP Assigned"),
    ("PublicIPUnassigned", "Public IP Unassigned"),
    ("TraceReport", "Trace Report"),
    ("NodeConnected", "Node Connected"),
    ("NodeDisconnected", "Node Disconnected"),
];

fn operands(ftype: u8) -> &'static [(&'static str, &'static str)] {
    match ftype {
        COMMAND => &COMMANDS,
        STATUS => &STATUSES,
        ERROR => &ERRORS,
        EVENT => &EVENTS,
        _ => &[],
    }
}

/// Go's `Type.String()`: "COMMAND", "STATUS", "ERROR", "EVENT", or "" for
/// an invalid type.
pub fn type_name(t: u8) -> &'static str {
    ["COMMAND", "STATUS", "ERROR", "EVENT"]
        .get(usize::from(t))
        .copied()
        .unwrap_or("")
}

/// The Go constant name of an operand, for logs (`START`, `StartFailure`,
/// `TraceReport`); the decimal code when unknown.
pub fn operand_name(ftype: u8, operand: u8) -> String {
    match operands(ftype).get(usize::from(operand)) {
        Some((name, _)) => (*name).to_string(),
        None => operand.to_string(),
    }
}

/// The operand text Go writes into a TraceReport (`Frame.DumpTrace`):
/// `String()` of COMMAND/STATUS/EVENT operands ("STATISTICS", "Trace
/// Report", "" when unknown), ERROR operands as decimal numbers, "" for an
/// invalid type.
pub fn operand_string(ftype: u8, operand: u8) -> String {
    match ftype {
        ERROR => operand.to_string(),
        _ => operands(ftype)
            .get(usize::from(operand))
            .map_or("", |(_, s)| s)
            .to_string(),
    }
}

/// Go's `Error.String()` of an ERROR operand ("Could not start instance";
/// "" for codes 8 and up, as in Go).
pub fn error_string(operand: u8) -> &'static str {
    ERRORS.get(usize::from(operand)).map_or("", |(_, s)| s)
}

// ---------------------------------------------------------------------------
// time.Time (§3.7)

/// A Go `time.Time` as its v1 binary encoding carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GoTime {
    /// Seconds since 0001-01-01T00:00:00Z.
    pub secs_since_year1: i64,
    /// Nanoseconds within the second (< 1e9).
    pub nanos: u32,
    /// Zone offset in minutes east of UTC; −1 means UTC.
    pub offset_min: i16,
}

impl GoTime {
    /// Go's zero `time.Time` (0001-01-01T00:00:00Z).
    pub const ZERO: GoTime = GoTime {
        secs_since_year1: 0,
        nanos: 0,
        offset_min: -1,
    };
    /// Seconds from 0001-01-01 to 1970-01-01.
    pub const UNIX_EPOCH_SECS: i64 = 62_135_596_800;
    const LEN: usize = 15;

    /// The current time, in UTC.
    pub fn now() -> GoTime {
        GoTime::from(SystemTime::now())
    }

    /// Go's `IsZero()`: the instant 0001-01-01T00:00:00Z in any zone.
    pub fn is_zero(&self) -> bool {
        self.secs_since_year1 == 0 && self.nanos == 0
    }

    /// The v1 binary form (Go `MarshalBinary`, always version 1).
    pub fn to_binary(&self) -> [u8; 15] {
        let mut b = [0u8; Self::LEN];
        b[0] = 1;
        b[1..9].copy_from_slice(&self.secs_since_year1.to_be_bytes());
        b[9..13].copy_from_slice(&self.nanos.to_be_bytes());
        b[13..15].copy_from_slice(&self.offset_min.to_be_bytes());
        b
    }

    /// Parses the v1 binary form; anything else is an error (Go ≥ 1.17's
    /// v2, which adds offset seconds, is refused: no real peer sends it).
    pub fn from_binary(b: &[u8]) -> Result<GoTime, GobError> {
        match b.first() {
            None => return Err(GobError::BadTime("no data")),
            Some(1) => {}
            Some(2) => return Err(GobError::BadTime("version 2 is not supported")),
            Some(_) => return Err(GobError::BadTime("unknown version")),
        }
        let b: &[u8; 15] = b
            .try_into()
            .map_err(|_| GobError::BadTime("length is not 15 bytes"))?;
        let mut secs = [0u8; 8];
        secs.copy_from_slice(&b[1..9]);
        let nanos = u32::from_be_bytes([b[9], b[10], b[11], b[12]]);
        if nanos >= 1_000_000_000 {
            return Err(GobError::BadTime("nanoseconds out of range"));
        }
        Ok(GoTime {
            secs_since_year1: i64::from_be_bytes(secs),
            nanos,
            offset_min: i16::from_be_bytes([b[13], b[14]]),
        })
    }

    /// The instant as a `SystemTime`, if representable.
    pub fn to_system_time(&self) -> Option<SystemTime> {
        let unix = self.secs_since_year1.checked_sub(Self::UNIX_EPOCH_SECS)?;
        let base = if unix >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_secs(unix.unsigned_abs()))?
        } else {
            UNIX_EPOCH.checked_sub(Duration::from_secs(unix.unsigned_abs()))?
        };
        base.checked_add(Duration::from_nanos(u64::from(self.nanos)))
    }

    /// Offset from UTC in seconds (the UTC marker −1 counts as 0).
    fn offset_secs(&self) -> i64 {
        if self.offset_min == -1 {
            0
        } else {
            i64::from(self.offset_min) * 60
        }
    }

    /// Go's `Format(time.RFC3339Nano)`: local time of the stored offset,
    /// fraction with trailing zeros trimmed (none when zero), `Z` for a
    /// zero offset, else `±hh:mm`. E.g. `2017-01-20T10:00:00Z`,
    /// `2026-11-25T16:45:47.18862462Z`.
    pub fn rfc3339_nano(&self) -> String {
        let local = i128::from(self.secs_since_year1) + i128::from(self.offset_secs())
            - i128::from(Self::UNIX_EPOCH_SECS);
        let (days, sod) = (local.div_euclid(86_400), local.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        let mut s = if y < 0 {
            format!("-{:04}", -y)
        } else {
            format!("{y:04}")
        };
        s.push_str(&format!(
            "-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            sod / 60 % 60,
            sod % 60
        ));
        if self.nanos != 0 {
            let frac = format!("{:09}", self.nanos);
            s.push('.');
            s.push_str(frac.trim_end_matches('0'));
        }
        let off = self.offset_secs();
        if off == 0 {
            s.push('Z');
        } else {
            let sign = if off < 0 { '-' } else { '+' };
            let a = off.abs();
            s.push_str(&format!("{sign}{:02}:{:02}", a / 3600, a / 60 % 60));
        }
        s
    }
}

/// Proleptic Gregorian (year, month, day) of a day count from 1970-01-01
/// (H. Hinnant's algorithm), in i128 so no input overflows.
fn civil_from_days(z: i128) -> (i128, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i128::from(m <= 2);
    (y, m, d)
}

impl From<SystemTime> for GoTime {
    /// The instant in UTC (offset −1), as Go's `time.Now().UTC()`.
    fn from(t: SystemTime) -> GoTime {
        let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                d.subsec_nanos(),
            ),
            Err(e) => {
                let d = e.duration();
                let s = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                match d.subsec_nanos() {
                    0 => (-s, 0),
                    n => (-s - 1, 1_000_000_000 - n),
                }
            }
        };
        GoTime {
            secs_since_year1: secs.saturating_add(Self::UNIX_EPOCH_SECS),
            nanos,
            offset_min: -1,
        }
    }
}

impl fmt::Display for GoTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.rfc3339_nano())
    }
}

// ---------------------------------------------------------------------------
// Frame structures (§4, §9.1)

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

/// Every frame after the handshake (§4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Protocol major (0) plus [`TRACE_BIT`].
    pub major: u8,
    pub minor: u8,
    pub ftype: u8,
    pub operand: u8,
    /// UUID of the node that created the frame.
    pub origin: [u8; 16],
    /// Informational copy of `payload.len()`; never checked by anyone.
    pub payload_length: u32,
    pub trace: Option<FrameTrace>,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A frame from `origin` with version 0.1, no trace.
    pub fn new(ftype: u8, operand: u8, origin: [u8; 16], payload: Vec<u8>) -> Frame {
        Frame {
            major: MAJOR_VERSION,
            minor: MINOR_VERSION,
            ftype,
            operand,
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

/// The client's first message (§4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectFrame {
    pub major: u8,
    pub minor: u8,
    pub ftype: u8,
    pub operand: u8,
    pub role: u32,
    pub source: Vec<u8>,
    pub destination: Vec<u8>,
}

/// The server's reply to CONNECT (§4.2). `PayloadLength` is written as
/// `payload.len()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectedFrame {
    pub major: u8,
    pub minor: u8,
    pub ftype: u8,
    pub operand: u8,
    pub role: u32,
    pub source: Vec<u8>,
    pub destination: Vec<u8>,
    pub payload: Vec<u8>,
}

/// Bits of [`Decoded::present`] and [`Decoded::defined`], one per field
/// name of the three SSNTP structs.
pub mod field {
    pub const MAJOR: u32 = 1 << 0;
    pub const MINOR: u32 = 1 << 1;
    pub const TYPE: u32 = 1 << 2;
    pub const OPERAND: u32 = 1 << 3;
    pub const ROLE: u32 = 1 << 4;
    pub const SOURCE: u32 = 1 << 5;
    pub const DESTINATION: u32 = 1 << 6;
    pub const ORIGIN: u32 = 1 << 7;
    pub const PAYLOAD_LENGTH: u32 = 1 << 8;
    pub const TRACE: u32 = 1 << 9;
    pub const PAYLOAD: u32 = 1 << 10;
    const COMMON: u32 = MAJOR | MINOR | TYPE | OPERAND;
    /// Fields of Go's `ConnectFrame`.
    pub const CONNECT_FIELDS: u32 = COMMON | ROLE | SOURCE | DESTINATION;
    /// Fields of Go's `ConnectedFrame`.
    pub const CONNECTED_FIELDS: u32 = CONNECT_FIELDS | PAYLOAD_LENGTH | PAYLOAD;
    /// Fields of Go's `Frame`.
    pub const FRAME_FIELDS: u32 = COMMON | ORIGIN | PAYLOAD_LENGTH | TRACE | PAYLOAD;
}

/// A received value, decoded by field name into the union of the three
/// SSNTP structs; absent fields are zero.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decoded {
    pub major: u8,
    pub minor: u8,
    pub ftype: u8,
    pub operand: u8,
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
            ftype: self.ftype,
            operand: self.operand,
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
            ftype: self.ftype,
            operand: self.operand,
            role: self.role,
            source: self.source,
            destination: self.destination,
        }
    }

    pub fn into_connected(self) -> ConnectedFrame {
        ConnectedFrame {
            major: self.major,
            minor: self.minor,
            ftype: self.ftype,
            operand: self.operand,
            role: self.role,
            source: self.source,
            destination: self.destination,
            payload: self.payload,
        }
    }
}

// ---------------------------------------------------------------------------
// Decoding

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
    types.walk_struct(s, &mut r, 1, |slot, fid, r, depth| {
        let Some(slot) = local(slot, TOP_MASK) else {
            return types.skip(fid, r, depth);
        };
        d.present |= 1 << slot;
        match 1u32 << slot {
            field::MAJOR => d.major = u8_field(types, fid, r, "Major")?,
            field::MINOR => d.minor = u8_field(types, fid, r, "Minor")?,
            field::TYPE => d.ftype = u8_field(types, fid, r, "Type")?,
            field::OPERAND => d.operand = u8_field(types, fid, r, "Operand")?,
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
pub fn decode_all(data: &[u8]) -> Result<Vec<Decoded>, GobError> {
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

// ---------------------------------------------------------------------------
// Encoding

const CONNECT_ID: i32 = 65;
const CONNECTED_ID: i32 = 65;
const FRAME_ID: i32 = 66;
const UUID_ID: i32 = 67;
const TRACE_ID: i32 = 68;
const TIME_ID: i32 = 69;
const NODE_ID: i32 = 70;
const NODES_ID: i32 = 71;

fn struct_type(name: &str, fields: &[(&str, i32)]) -> WireType {
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
            w.uint(0, f.major.into());
            w.uint(1, f.minor.into());
            w.uint(2, f.ftype.into());
            w.uint(3, f.operand.into());
            w.uint(4, f.role.into());
            w.bytes(5, &f.source);
            w.bytes(6, &f.destination);
        });
    }

    /// Appends a ConnectedFrame (its definition first, once).
    pub fn connected(&mut self, f: &ConnectedFrame, out: &mut Vec<u8>) {
        if !std::mem::replace(&mut self.sent_connected_def, true) {
            put_connected_def(out);
        }
        put_value(out, CONNECTED_ID, |w| {
            w.uint(0, f.major.into());
            w.uint(1, f.minor.into());
            w.uint(2, f.ftype.into());
            w.uint(3, f.operand.into());
            w.uint(4, f.role.into());
            w.bytes(5, &f.source);
            w.bytes(6, &f.destination);
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
            w.uint(0, f.major.into());
            w.uint(1, f.minor.into());
            w.uint(2, f.ftype.into());
            w.uint(3, f.operand.into());
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

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    // §3.5, verbatim.
    const CONNECT_DEF: &str = "
67 ff 81 03 01 01 0c 43 6f 6e 6e 65 63 74 46 72 61 6d 65 01 ff 82 00 01 07 01 05 4d 61 6a 6f 72
01 06 00 01 05 4d 69 6e 6f 72 01 06 00 01 04 54 79 70 65 01 06 00 01 07 4f 70 65 72 61 6e 64 01
06 00 01 04 52 6f 6c 65 01 06 00 01 06 53 6f 75 72 63 65 01 0a 00 01 0b 44 65 73 74 69 6e 61 74
69 6f 6e 01 0a 00 00 00";
    const CONNECTED_DEF: &str = "
ff 87 ff 81 03 01 01 0e 43 6f 6e 6e 65 63 74 65 64 46 72 61 6d 65 01 ff 82 00 01 09 01 05 4d 61
6a 6f 72 01 06 00 01 05 4d 69 6e 6f 72 01 06 00 01 04 54 79 70 65 01 06 00 01 07 4f 70 65 72 61
6e 64 01 06 00 01 04 52 6f 6c 65 01 06 00 01 06 53 6f 75 72 63 65 01 0a 00 01 0b 44 65 73 74 69
6e 61 74 69 6f 6e 01 0a 00 01 0d 50 61 79 6c 6f 61 64 4c 65 6e 67 74 68 01 06 00 01 07 50 61 79
6c 6f 61 64 01 0a 00 00 00";
    const FRAME_DEF: &str = "
71 ff 83 03 01 01 05 46 72 61 6d 65 01 ff 84 00 01 08 01 05 4d 61 6a 6f 72 01 06 00 01 05 4d 69
6e 6f 72 01 06 00 01 04 54 79 70 65 01 06 00 01 07 4f 70 65 72 61 6e 64 01 06 00 01 06 4f 72 69
67 69 6e 01 ff 86 00 01 0d 50 61 79 6c 6f 61 64 4c 65 6e 67 74 68 01 06 00 01 05 54 72 61 63 65
01 ff 88 00 01 07 50 61 79 6c 6f 61 64 01 0a 00 00 00";
    const UUID_DEF: &str = "14 ff 85 01 01 01 04 55 55 49 44 01 ff 86 00 01 06 01 20 00 00";
    const TRACE_DEF: &str = "
61 ff 87 03 01 01 0a 46 72 61 6d 65 54 72 61 63 65 01 ff 88 00 01 05 01 05 4c 61 62 65 6c 01 0a
00 01 0e 53 74 61 72 74 54 69 6d 65 73 74 61 6d 70 01 ff 8a 00 01 0c 45 6e 64 54 69 6d 65 73 74
61 6d 70 01 ff 8a 00 01 0a 50 61 74 68 4c 65 6e 67 74 68 01 06 00 01 04 50 61 74 68 01 ff 8e 00
00 00";
    const TIME_DEF: &str = "10 ff 89 05 01 01 04 54 69 6d 65 01 ff 8a 00 00 00";
    const NODES_DEF: &str =
        "1b ff 8d 02 01 01 0c 5b 5d 73 73 6e 74 70 2e 4e 6f 64 65 01 ff 8e 00 01 ff 8c 00 00";
    const NODE_DEF: &str = "
46 ff 8b 03 01 01 04 4e 6f 64 65 01 ff 8c 00 01 04 01 04 55 55 49 44 01 0a 00 01 04 52 6f 6c 65
01 06 00 01 0b 54 78 54 69 6d 65 73 74 61 6d 70 01 ff 8a 00 01 0b 52 78 54 69 6d 65 73 74 61 6d
70 01 ff 8a 00 00 00";

    fn frame_defs() -> Vec<u8> {
        [
            FRAME_DEF, UUID_DEF, TRACE_DEF, TIME_DEF, NODES_DEF, NODE_DEF,
        ]
        .iter()
        .flat_map(|s| hex(s))
        .collect()
    }

    const CLIENT: [u8; 16] = [
        0x18, 0x1c, 0x83, 0x02, 0x99, 0x22, 0x41, 0xaa, 0xaf, 0x44, 0xc7, 0x49, 0x80, 0xca, 0x46,
        0x41,
    ];
    const SERVER: [u8; 16] = [
        0xf8, 0xca, 0x96, 0xd7, 0x91, 0xea, 0x41, 0xcd, 0xb9, 0x24, 0x91, 0x2f, 0x27, 0x08, 0x93,
        0xd9,
    ];
    const CLIENT_ARRAY: &str =
        "18 1c ff 83 02 ff 99 22 41 ff aa ff af 44 ff c7 49 ff 80 ff ca 46 41";
    const SERVER_ARRAY: &str =
        "ff f8 ff ca ff 96 ff d7 ff 91 ff ea 41 ff cd ff b9 24 ff 91 2f 27 08 ff 93 ff d9";
    const CONFIG: &[u8] = b"configure:\n  launcher:\n    disk_limit: false\n";

    // §4.4
    fn connect_value() -> Vec<u8> {
        hex("2b ff 82 02 01 03 14
             01 10 18 1c 83 02 99 22 41 aa af 44 c7 49 80 ca 46 41
             01 10 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00")
    }
    fn connected_value() -> Vec<u8> {
        let mut v = hex("5e ff 82 02 01 01 01 02 08
             01 10 f8 ca 96 d7 91 ea 41 cd b9 24 91 2f 27 08 93 d9
             01 10 18 1c 83 02 99 22 41 aa af 44 c7 49 80 ca 46 41 01 2d 01 2d");
        v.extend_from_slice(CONFIG);
        v.push(0);
        v
    }
    fn ready_value() -> Vec<u8> {
        hex(&format!(
            "33 ff 84 02 01 01 01 01 01 01 10 {CLIENT_ARRAY} 01 0d
             02 0d 6e 6f 64 65 5f 75 75 69 64 3a 20 78 0a 00"
        ))
    }
    fn full_value() -> Vec<u8> {
        hex(&format!(
            "22 ff 84 02 01 01 01 01 02 01 10 {CLIENT_ARRAY} 00"
        ))
    }
    fn aborted_value() -> Vec<u8> {
        let mut v = hex("1b ff 84 02 01 01 02 01 06 01 10");
        v.extend([0u8; 16]);
        v.push(0);
        v
    }
    fn start_value() -> Vec<u8> {
        let mut v = hex(&format!(
            "32 ff 84 02 01 02 01 01 10 {SERVER_ARRAY} 01 0a 02 0a"
        ));
        v.extend_from_slice(b"start: {}\n");
        v.push(0);
        v
    }
    // §9.3
    const T2017: &str = "01 00 00 00 0e d0 13 d6 a0 00 00 00 00 ff ff";
    fn traced_start_value() -> Vec<u8> {
        let mut v = hex(&format!(
            "72 ff 84 01 ff 80 01 01 02 01 01 10 {SERVER_ARRAY} 01 0a
             01 02 0f {T2017} 02 01 01 01
                01 10 f8 ca 96 d7 91 ea 41 cd b9 24 91 2f 27 08 93 d9 01 08 01 0f {T2017} 00
             00 01 0a"
        ));
        v.extend_from_slice(b"start: {}\n");
        v.push(0);
        v
    }

    fn t2017() -> GoTime {
        GoTime {
            secs_since_year1: 63_620_503_200,
            nanos: 0,
            offset_min: -1,
        }
    }

    fn connect_frame() -> ConnectFrame {
        ConnectFrame {
            major: 0,
            minor: 1,
            ftype: COMMAND,
            operand: CONNECT,
            role: 0x14,
            source: CLIENT.to_vec(),
            destination: vec![0; 16],
        }
    }
    fn connected_frame() -> ConnectedFrame {
        ConnectedFrame {
            major: 0,
            minor: 1,
            ftype: STATUS,
            operand: CONNECTED,
            role: 8,
            source: SERVER.to_vec(),
            destination: CLIENT.to_vec(),
            payload: CONFIG.to_vec(),
        }
    }
    fn traced_start() -> Frame {
        let mut f = Frame::new(COMMAND, START, SERVER, b"start: {}\n".to_vec());
        f.major = TRACE_BIT;
        f.trace = Some(FrameTrace {
            label: vec![],
            start: Some(t2017()),
            end: None,
            path: vec![TraceNode {
                uuid: SERVER,
                role: 8,
                tx: Some(t2017()),
                rx: None,
            }],
        });
        f
    }
    /// Every Frame example with its bytes.
    fn frames() -> Vec<(Frame, Vec<u8>)> {
        vec![
            (
                Frame::new(STATUS, READY, CLIENT, b"node_uuid: x\n".to_vec()),
                ready_value(),
            ),
            (Frame::new(STATUS, FULL, CLIENT, vec![]), full_value()),
            (
                Frame::new(ERROR, CONNECTION_ABORTED, [0; 16], vec![]),
                aborted_value(),
            ),
            (
                Frame::new(COMMAND, START, SERVER, b"start: {}\n".to_vec()),
                start_value(),
            ),
            (traced_start(), traced_start_value()),
        ]
    }

    fn decode_one(bytes: &[u8]) -> Result<Decoded, GobError> {
        let mut v = decode_all(bytes)?;
        assert_eq!(v.len(), 1, "expected one value");
        Ok(v.remove(0))
    }

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
        // The Go server answers a bad CONNECT with a Frame (§6.3).
        let mut bytes = frame_defs();
        bytes.extend(aborted_value());
        let c = decode_one(&bytes).unwrap().into_connected();
        assert_eq!((c.ftype, c.operand), (ERROR, CONNECTION_ABORTED));
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
        // §3.6: {Type, Operand, Bogus string, Payload} as id 100, value 100.
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
        assert_eq!(
            (f.ftype, f.operand, f.payload),
            (STATUS, FULL, b"y".to_vec())
        );
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
        assert_eq!(v[1].operand, READY);
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

    #[test]
    fn time_encoding_and_formatting() {
        let t = GoTime::from_binary(&hex(T2017)).unwrap();
        assert_eq!(t, t2017());
        assert_eq!(t.to_binary().to_vec(), hex(T2017));
        assert_eq!(GoTime::ZERO.rfc3339_nano(), "0001-01-01T00:00:00Z");
        // 2026-11-25T16:45:47.18862462Z
        let unix = 1_795_625_147i64;
        let t = GoTime {
            secs_since_year1: unix + GoTime::UNIX_EPOCH_SECS,
            nanos: 188_624_620,
            offset_min: 0,
        };
        assert_eq!(t.rfc3339_nano(), "2026-11-25T16:45:47.18862462Z");
        assert_eq!(
            GoTime {
                offset_min: 60,
                ..t
            }
            .rfc3339_nano(),
            "2026-11-25T17:45:47.18862462+01:00"
        );
        assert_eq!(
            GoTime {
                offset_min: -330,
                nanos: 1,
                ..t
            }
            .to_string(),
            "2026-11-25T11:15:47.000000001-05:30"
        );
        assert_eq!(
            GoTime {
                secs_since_year1: -86_400,
                nanos: 0,
                offset_min: -1
            }
            .rfc3339_nano(),
            "0000-12-31T00:00:00Z"
        );
        assert_eq!(
            GoTime {
                secs_since_year1: -367 * 86_400,
                nanos: 0,
                offset_min: -1
            }
            .rfc3339_nano(),
            "-0001-12-31T00:00:00Z"
        );
        // Extremes format without overflow.
        for s in [i64::MIN, i64::MAX] {
            let _ = GoTime {
                secs_since_year1: s,
                nanos: 999_999_999,
                offset_min: i16::MIN,
            }
            .rfc3339_nano();
        }
        // SystemTime conversions.
        let now = SystemTime::now();
        assert_eq!(GoTime::from(now).to_system_time(), Some(now));
        let before = UNIX_EPOCH - Duration::new(5, 250);
        let g = GoTime::from(before);
        assert_eq!(g.nanos, 999_999_750);
        assert_eq!(g.to_system_time(), Some(before));
        assert_eq!(
            GoTime::from(UNIX_EPOCH).rfc3339_nano(),
            "1970-01-01T00:00:00Z"
        );
        // Malformed binary times.
        assert!(GoTime::from_binary(&[]).is_err());
        assert!(GoTime::from_binary(&hex(T2017)[..14]).is_err());
        let mut b = hex(T2017);
        b[0] = 3;
        assert!(GoTime::from_binary(&b).is_err());
        let mut b = hex(T2017);
        b[9..13].copy_from_slice(&1_000_000_000u32.to_be_bytes());
        assert!(GoTime::from_binary(&b).is_err());
    }

    #[test]
    fn names_and_strings() {
        assert_eq!(type_name(COMMAND), "COMMAND");
        assert_eq!(type_name(EVENT), "EVENT");
        assert_eq!(type_name(4), "");
        assert_eq!(operand_name(COMMAND, STATS), "STATS");
        assert_eq!(operand_name(ERROR, START_FAILURE), "StartFailure");
        assert_eq!(operand_name(EVENT, TRACE_REPORT), "TraceReport");
        assert_eq!(operand_name(STATUS, MAINTENANCE), "MAINTENANCE");
        assert_eq!(operand_name(COMMAND, 99), "99");
        assert_eq!(operand_name(9, 1), "1");
        assert_eq!(operand_string(COMMAND, STATS), "STATISTICS");
        assert_eq!(
            operand_string(COMMAND, DETACH_VOLUME),
            "Detach storage volume"
        );
        assert_eq!(operand_string(EVENT, TRACE_REPORT), "Trace Report");
        assert_eq!(operand_string(EVENT, 9), "");
        assert_eq!(operand_string(ERROR, START_FAILURE), "1");
        assert_eq!(operand_string(5, 0), "");
        assert_eq!(error_string(START_FAILURE), "Could not start instance");
        assert_eq!(error_string(ATTACH_VOLUME_FAILURE), "");
        // The tables agree with the constants.
        let check = |ftype, pairs: &[(u8, &str)]| {
            for (code, name) in pairs {
                assert_eq!(operand_name(ftype, *code), *name);
            }
        };
        check(
            COMMAND,
            &[
                (CONNECT, "CONNECT"),
                (START, "START"),
                (STOP, "STOP"),
                (STATS, "STATS"),
                (EVACUATE, "EVACUATE"),
                (DELETE, "DELETE"),
                (RESTART, "RESTART"),
                (ASSIGN_PUBLIC_IP, "AssignPublicIP"),
                (RELEASE_PUBLIC_IP, "ReleasePublicIP"),
                (CONFIGURE, "CONFIGURE"),
                (ATTACH_VOLUME, "AttachVolume"),
                (DETACH_VOLUME, "DetachVolume"),
            ],
        );
        check(
            STATUS,
            &[
                (CONNECTED, "CONNECTED"),
                (READY, "READY"),
                (FULL, "FULL"),
                (OFFLINE, "OFFLINE"),
                (MAINTENANCE, "MAINTENANCE"),
            ],
        );
        check(
            ERROR,
            &[
                (INVALID_FRAME_TYPE, "InvalidFrameType"),
                (START_FAILURE, "StartFailure"),
                (STOP_FAILURE, "StopFailure"),
                (CONNECTION_FAILURE, "ConnectionFailure"),
                (RESTART_FAILURE, "RestartFailure"),
                (DELETE_FAILURE, "DeleteFailure"),
                (CONNECTION_ABORTED, "ConnectionAborted"),
                (INVALID_CONFIGURATION, "InvalidConfiguration"),
                (ATTACH_VOLUME_FAILURE, "AttachVolumeFailure"),
                (DETACH_VOLUME_FAILURE, "DetachVolumeFailure"),
                (ASSIGN_PUBLIC_IP_FAILURE, "AssignPublicIPFailure"),
                (UNASSIGN_PUBLIC_IP_FAILURE, "UnassignPublicIPFailure"),
            ],
        );
        check(
            EVENT,
            &[
                (TENANT_ADDED, "TenantAdded"),
                (TENANT_REMOVED, "TenantRemoved"),
                (INSTANCE_DELETED, "InstanceDeleted"),
                (CONCENTRATOR_INSTANCE_ADDED, "ConcentratorInstanceAdded"),
                (PUBLIC_IP_ASSIGNED, "PublicIPAssigned"),
                (PUBLIC_IP_UNASSIGNED, "PublicIPUnassigned"),
                (TRACE_REPORT, "TraceReport"),
                (NODE_CONNECTED, "NodeConnected"),
                (NODE_DISCONNECTED, "NodeDisconnected"),
            ],
        );
    }

    #[test]
    fn fuzz_entry_accepts_the_spec_stream() {
        fuzz_gob_decode(&client_stream());
        fuzz_gob_decode(&[]);
        fuzz_gob_decode(&[0xff]);
    }
}
