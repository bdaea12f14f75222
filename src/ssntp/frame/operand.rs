//! The SSNTP vocabulary: frame types and their operands as Rust types.
//!
//! On the wire a frame names what it is with two bytes, `Type` and
//! `Operand`, and the operand's meaning depends on the type. [`Op`] is that
//! pair, typed: one enum per frame type ([`Command`], [`Status`],
//! [`ErrorCode`], [`Event`]), each with an `Unknown(u8)` variant, and
//! [`Op::Unknown`] for a type outside the four. So every pair of bytes has a
//! value, decoding never fails on a code we do not know, and what comes in
//! goes out again unchanged.
//!
//! The names are Go's constant names (`START`, `StartFailure`,
//! `TraceReport`), used in logs; COMMAND, STATUS and EVENT operands also
//! carry Go's `String()` text, which trace reports repeat.

use std::fmt;

/// Declares one operand enum (in the style of rustls' `enum_builder!`):
/// named variants with their wire code and Go constant name, optionally
/// Go's `String()` text, plus `Unknown(u8)` for any other code. Generates
/// `From<u8>`, `From<Self> for u8`, `go_name`, `Display` (the Go name, or
/// the decimal code when unknown) and, with texts, `go_string`.
///
/// `Unknown(n)` with the code of a named variant encodes like that variant
/// but does not compare equal to it; `From<u8>` never builds one.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal => ($go:literal, $text:literal), )*
        }
    ) => {
        wire_enum! {
            $(#[$meta])*
            pub enum $name {
                $( $(#[$vmeta])* $variant = $code => $go, )*
            }
        }

        impl $name {
            /// Go's `String()` of the operand; `""` when unknown, as in Go.
            pub fn go_string(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )*
                    $name::Unknown(_) => "",
                }
            }
        }
    };
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal => $go:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A code this side has no name for, kept as received.
            Unknown(u8),
        }

        impl From<u8> for $name {
            fn from(code: u8) -> Self {
                match code {
                    $( $code => $name::$variant, )*
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for u8 {
            fn from(op: $name) -> u8 {
                match op {
                    $( $name::$variant => $code, )*
                    $name::Unknown(code) => code,
                }
            }
        }

        impl $name {
            /// Go's constant name, `None` when unknown.
            pub fn go_name(self) -> Option<&'static str> {
                match self {
                    $( $name::$variant => Some($go), )*
                    $name::Unknown(_) => None,
                }
            }
        }

        impl fmt::Display for $name {
            /// The Go constant name, or the decimal code when unknown.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.go_name() {
                    Some(name) => f.write_str(name),
                    None => write!(f, "{}", u8::from(*self)),
                }
            }
        }
    };
}

wire_enum! {
    /// Operands of COMMAND frames.
    pub enum Command {
        /// Handshake only, in a ConnectFrame.
        Connect = 0 => ("CONNECT", "CONNECT"),
        Start = 1 => ("START", "START"),
        Stop = 2 => ("STOP", "STOP"),
        /// The launcher's STATS report (Go `String()` "STATISTICS").
        Stats = 3 => ("STATS", "STATISTICS"),
        Evacuate = 4 => ("EVACUATE", "EVACUATE"),
        Delete = 5 => ("DELETE", "DELETE"),
        Restart = 6 => ("RESTART", "RESTART"),
        AssignPublicIp = 7 => ("AssignPublicIP", "Assign public IP"),
        ReleasePublicIp = 8 => ("ReleasePublicIP", "Release public IP"),
        Configure = 9 => ("CONFIGURE", "CONFIGURE"),
        AttachVolume = 10 => ("AttachVolume", "Attach storage volume"),
        DetachVolume = 11 => ("DetachVolume", "Detach storage volume"),
    }
}

wire_enum! {
    /// Operands of STATUS frames.
    pub enum Status {
        /// Handshake only, in a ConnectedFrame.
        Connected = 0 => ("CONNECTED", "CONNECTED"),
        Ready = 1 => ("READY", "READY"),
        Full = 2 => ("FULL", "FULL"),
        Offline = 3 => ("OFFLINE", "OFFLINE"),
        Maintenance = 4 => ("MAINTENANCE", "MAINTENANCE"),
    }
}

wire_enum! {
    /// Operands of ERROR frames (Go's `ssntp.Error`). No text: trace
    /// reports give ERROR operands as numbers.
    pub enum ErrorCode {
        InvalidFrameType = 0 => "InvalidFrameType",
        StartFailure = 1 => "StartFailure",
        StopFailure = 2 => "StopFailure",
        ConnectionFailure = 3 => "ConnectionFailure",
        RestartFailure = 4 => "RestartFailure",
        DeleteFailure = 5 => "DeleteFailure",
        ConnectionAborted = 6 => "ConnectionAborted",
        InvalidConfiguration = 7 => "InvalidConfiguration",
        AttachVolumeFailure = 8 => "AttachVolumeFailure",
        DetachVolumeFailure = 9 => "DetachVolumeFailure",
        AssignPublicIpFailure = 10 => "AssignPublicIPFailure",
        UnassignPublicIpFailure = 11 => "UnassignPublicIPFailure",
    }
}

wire_enum! {
    /// Operands of EVENT frames.
    pub enum Event {
        TenantAdded = 0 => ("TenantAdded", "Tenant Added"),
        TenantRemoved = 1 => ("TenantRemoved", "Tenant Removed"),
        InstanceDeleted = 2 => ("InstanceDeleted", "Instance Deleted"),
        ConcentratorInstanceAdded = 3 => (
            "ConcentratorInstanceAdded",
            "Network Concentrator Instance Added"
        ),
        PublicIpAssigned = 4 => ("PublicIPAssigned", "Public IP Assigned"),
        PublicIpUnassigned = 5 => ("PublicIPUnassigned", "Public IP Unassigned"),
        TraceReport = 6 => ("TraceReport", "Trace Report"),
        NodeConnected = 7 => ("NodeConnected", "Node Connected"),
        NodeDisconnected = 8 => ("NodeDisconnected", "Node Disconnected"),
    }
}

/// Frame type codes on the wire.
const COMMAND: u8 = 0;
const STATUS: u8 = 1;
const ERROR: u8 = 2;
const EVENT: u8 = 3;

/// What a frame is: its type and operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Command(Command),
    Status(Status),
    Error(ErrorCode),
    Event(Event),
    /// A frame type outside the four (a session answers it with ERROR
    /// InvalidFrameType). `ftype` is never 0–3 when decoded.
    Unknown {
        ftype: u8,
        operand: u8,
    },
}

impl Op {
    /// The value of a wire (`Type`, `Operand`) pair.
    pub fn new(ftype: u8, operand: u8) -> Op {
        match ftype {
            COMMAND => Op::Command(operand.into()),
            STATUS => Op::Status(operand.into()),
            ERROR => Op::Error(operand.into()),
            EVENT => Op::Event(operand.into()),
            ftype => Op::Unknown { ftype, operand },
        }
    }

    /// The wire `Type`.
    pub fn ftype(self) -> u8 {
        match self {
            Op::Command(_) => COMMAND,
            Op::Status(_) => STATUS,
            Op::Error(_) => ERROR,
            Op::Event(_) => EVENT,
            Op::Unknown { ftype, .. } => ftype,
        }
    }

    /// The wire `Operand`.
    pub fn operand(self) -> u8 {
        match self {
            Op::Command(c) => c.into(),
            Op::Status(s) => s.into(),
            Op::Error(e) => e.into(),
            Op::Event(e) => e.into(),
            Op::Unknown { operand, .. } => operand,
        }
    }

    /// Go's `Type.String()`: "COMMAND", "STATUS", "ERROR", "EVENT", or ""
    /// for an unknown type.
    pub fn type_name(self) -> &'static str {
        match self {
            Op::Command(_) => "COMMAND",
            Op::Status(_) => "STATUS",
            Op::Error(_) => "ERROR",
            Op::Event(_) => "EVENT",
            Op::Unknown { .. } => "",
        }
    }

    /// The Go constant name of the operand, for logs (`START`,
    /// `StartFailure`, `TraceReport`); the decimal code when unknown.
    pub fn operand_name(self) -> String {
        match self {
            Op::Command(c) => c.to_string(),
            Op::Status(s) => s.to_string(),
            Op::Error(e) => e.to_string(),
            Op::Event(e) => e.to_string(),
            Op::Unknown { operand, .. } => operand.to_string(),
        }
    }

    /// The operand text Go writes into a TraceReport (`Frame.DumpTrace`):
    /// `String()` of COMMAND/STATUS/EVENT operands ("STATISTICS", "Trace
    /// Report", "" when unknown), ERROR operands as decimal numbers, "" for
    /// an unknown type.
    pub fn operand_string(self) -> String {
        match self {
            Op::Command(c) => c.go_string().to_string(),
            Op::Status(s) => s.go_string().to_string(),
            Op::Error(e) => u8::from(e).to_string(),
            Op::Event(e) => e.go_string().to_string(),
            Op::Unknown { .. } => String::new(),
        }
    }
}

impl Default for Op {
    /// Type and operand 0 (COMMAND CONNECT), as a frame with neither field.
    fn default() -> Op {
        Op::new(0, 0)
    }
}

impl From<Command> for Op {
    fn from(c: Command) -> Op {
        Op::Command(c)
    }
}

impl From<Status> for Op {
    fn from(s: Status) -> Op {
        Op::Status(s)
    }
}

impl From<ErrorCode> for Op {
    fn from(e: ErrorCode) -> Op {
        Op::Error(e)
    }
}

impl From<Event> for Op {
    fn from(e: Event) -> Op {
        Op::Event(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_strings() {
        assert_eq!(Op::from(Command::Start).type_name(), "COMMAND");
        assert_eq!(Op::from(Event::TraceReport).type_name(), "EVENT");
        assert_eq!(Op::new(4, 0).type_name(), "");
        assert_eq!(Op::from(Command::Stats).operand_name(), "STATS");
        assert_eq!(
            Op::from(ErrorCode::StartFailure).operand_name(),
            "StartFailure"
        );
        assert_eq!(Op::from(Event::TraceReport).operand_name(), "TraceReport");
        assert_eq!(Op::from(Status::Maintenance).operand_name(), "MAINTENANCE");
        assert_eq!(Op::new(COMMAND, 99).operand_name(), "99");
        assert_eq!(Op::new(9, 1).operand_name(), "1");
        assert_eq!(Op::from(Command::Stats).operand_string(), "STATISTICS");
        assert_eq!(
            Op::from(Command::DetachVolume).operand_string(),
            "Detach storage volume"
        );
        assert_eq!(
            Op::from(Event::TraceReport).operand_string(),
            "Trace Report"
        );
        assert_eq!(Op::new(EVENT, 9).operand_string(), "");
        assert_eq!(Op::from(ErrorCode::StartFailure).operand_string(), "1");
        assert_eq!(Op::new(5, 0).operand_string(), "");
    }

    /// Every code of every type, and a few unknown types, survive the round
    /// trip through `Op`; the named ones have the Go constant names and
    /// codes of the protocol.
    #[test]
    fn codes_round_trip_and_match_the_protocol() {
        for ftype in 0..=6u8 {
            for operand in 0..=255u8 {
                let op = Op::new(ftype, operand);
                assert_eq!((op.ftype(), op.operand()), (ftype, operand));
            }
        }
        let check = |ftype, names: &[&str]| {
            for (code, name) in names.iter().enumerate() {
                let op = Op::new(ftype, code as u8);
                assert_eq!(op.operand_name(), *name, "{op:?}");
            }
            let unknown = Op::new(ftype, names.len() as u8);
            assert_eq!(unknown.operand_name(), names.len().to_string());
        };
        check(
            COMMAND,
            &[
                "CONNECT",
                "START",
                "STOP",
                "STATS",
                "EVACUATE",
                "DELETE",
                "RESTART",
                "AssignPublicIP",
                "ReleasePublicIP",
                "CONFIGURE",
                "AttachVolume",
                "DetachVolume",
            ],
        );
        check(
            STATUS,
            &["CONNECTED", "READY", "FULL", "OFFLINE", "MAINTENANCE"],
        );
        check(
            ERROR,
            &[
                "InvalidFrameType",
                "StartFailure",
                "StopFailure",
                "ConnectionFailure",
                "RestartFailure",
                "DeleteFailure",
                "ConnectionAborted",
                "InvalidConfiguration",
                "AttachVolumeFailure",
                "DetachVolumeFailure",
                "AssignPublicIPFailure",
                "UnassignPublicIPFailure",
            ],
        );
        check(
            EVENT,
            &[
                "TenantAdded",
                "TenantRemoved",
                "InstanceDeleted",
                "ConcentratorInstanceAdded",
                "PublicIPAssigned",
                "PublicIPUnassigned",
                "TraceReport",
                "NodeConnected",
                "NodeDisconnected",
            ],
        );
        // Spot checks of the variant ↔ code mapping.
        assert_eq!(u8::from(Command::Stats), 3);
        assert_eq!(u8::from(Command::DetachVolume), 11);
        assert_eq!(u8::from(Status::Full), 2);
        assert_eq!(u8::from(ErrorCode::ConnectionAborted), 6);
        assert_eq!(u8::from(Event::TraceReport), 6);
        assert_eq!(Op::new(ERROR, 8), Op::Error(ErrorCode::AttachVolumeFailure));
        assert_eq!(
            Op::new(EVENT, 200),
            Op::Event(Event::Unknown(200)),
            "unknown operands are kept"
        );
        assert_eq!(
            Op::new(7, 1),
            Op::Unknown {
                ftype: 7,
                operand: 1
            }
        );
    }
}
