//! Byte vectors shared by the encoder and decoder tests: the canonical
//! definitions and example values of the protocol, verbatim, and the
//! frames they carry.

use super::decode::decode_all;
use super::*;
use crate::ssntp::gob::GobError;

pub(super) fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

// The type definitions a Go peer sends, verbatim.
pub(super) const CONNECT_DEF: &str = "
67 ff 81 03 01 01 0c 43 6f 6e 6e 65 63 74 46 72 61 6d 65 01 ff 82 00 01 07 01 05 4d 61 6a 6f 72
01 06 00 01 05 4d 69 6e 6f 72 01 06 00 01 04 54 79 70 65 01 06 00 01 07 4f 70 65 72 61 6e 64 01
06 00 01 04 52 6f 6c 65 01 06 00 01 06 53 6f 75 72 63 65 01 0a 00 01 0b 44 65 73 74 69 6e 61 74
69 6f 6e 01 0a 00 00 00";
pub(super) const CONNECTED_DEF: &str = "
ff 87 ff 81 03 01 01 0e 43 6f 6e 6e 65 63 74 65 64 46 72 61 6d 65 01 ff 82 00 01 09 01 05 4d 61
6a 6f 72 01 06 00 01 05 4d 69 6e 6f 72 01 06 00 01 04 54 79 70 65 01 06 00 01 07 4f 70 65 72 61
6e 64 01 06 00 01 04 52 6f 6c 65 01 06 00 01 06 53 6f 75 72 63 65 01 0a 00 01 0b 44 65 73 74 69
6e 61 74 69 6f 6e 01 0a 00 01 0d 50 61 79 6c 6f 61 64 4c 65 6e 67 74 68 01 06 00 01 07 50 61 79
6c 6f 61 64 01 0a 00 00 00";
pub(super) const FRAME_DEF: &str = "
71 ff 83 03 01 01 05 46 72 61 6d 65 01 ff 84 00 01 08 01 05 4d 61 6a 6f 72 01 06 00 01 05 4d 69
6e 6f 72 01 06 00 01 04 54 79 70 65 01 06 00 01 07 4f 70 65 72 61 6e 64 01 06 00 01 06 4f 72 69
67 69 6e 01 ff 86 00 01 0d 50 61 79 6c 6f 61 64 4c 65 6e 67 74 68 01 06 00 01 05 54 72 61 63 65
01 ff 88 00 01 07 50 61 79 6c 6f 61 64 01 0a 00 00 00";
pub(super) const UUID_DEF: &str = "14 ff 85 01 01 01 04 55 55 49 44 01 ff 86 00 01 06 01 20 00 00";
pub(super) const TRACE_DEF: &str = "
61 ff 87 03 01 01 0a 46 72 61 6d 65 54 72 61 63 65 01 ff 88 00 01 05 01 05 4c 61 62 65 6c 01 0a
00 01 0e 53 74 61 72 74 54 69 6d 65 73 74 61 6d 70 01 ff 8a 00 01 0c 45 6e 64 54 69 6d 65 73 74
61 6d 70 01 ff 8a 00 01 0a 50 61 74 68 4c 65 6e 67 74 68 01 06 00 01 04 50 61 74 68 01 ff 8e 00
00 00";
pub(super) const TIME_DEF: &str = "10 ff 89 05 01 01 04 54 69 6d 65 01 ff 8a 00 00 00";
pub(super) const NODES_DEF: &str =
    "1b ff 8d 02 01 01 0c 5b 5d 73 73 6e 74 70 2e 4e 6f 64 65 01 ff 8e 00 01 ff 8c 00 00";
pub(super) const NODE_DEF: &str = "
46 ff 8b 03 01 01 04 4e 6f 64 65 01 ff 8c 00 01 04 01 04 55 55 49 44 01 0a 00 01 04 52 6f 6c 65
01 06 00 01 0b 54 78 54 69 6d 65 73 74 61 6d 70 01 ff 8a 00 01 0b 52 78 54 69 6d 65 73 74 61 6d
70 01 ff 8a 00 00 00";

pub(super) fn frame_defs() -> Vec<u8> {
    [
        FRAME_DEF, UUID_DEF, TRACE_DEF, TIME_DEF, NODES_DEF, NODE_DEF,
    ]
    .iter()
    .flat_map(|s| hex(s))
    .collect()
}

pub(super) const CLIENT: [u8; 16] = [
    0x18, 0x1c, 0x83, 0x02, 0x99, 0x22, 0x41, 0xaa, 0xaf, 0x44, 0xc7, 0x49, 0x80, 0xca, 0x46, 0x41,
];
pub(super) const SERVER: [u8; 16] = [
    0xf8, 0xca, 0x96, 0xd7, 0x91, 0xea, 0x41, 0xcd, 0xb9, 0x24, 0x91, 0x2f, 0x27, 0x08, 0x93, 0xd9,
];
pub(super) const CLIENT_ARRAY: &str =
    "18 1c ff 83 02 ff 99 22 41 ff aa ff af 44 ff c7 49 ff 80 ff ca 46 41";
pub(super) const SERVER_ARRAY: &str =
    "ff f8 ff ca ff 96 ff d7 ff 91 ff ea 41 ff cd ff b9 24 ff 91 2f 27 08 ff 93 ff d9";
pub(super) const CONFIG: &[u8] = b"configure:\n  launcher:\n    disk_limit: false\n";

// Example values, as a Go peer encodes them.
pub(super) fn connect_value() -> Vec<u8> {
    hex("2b ff 82 02 01 03 14
         01 10 18 1c 83 02 99 22 41 aa af 44 c7 49 80 ca 46 41
         01 10 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00")
}
pub(super) fn connected_value() -> Vec<u8> {
    let mut v = hex("5e ff 82 02 01 01 01 02 08
         01 10 f8 ca 96 d7 91 ea 41 cd b9 24 91 2f 27 08 93 d9
         01 10 18 1c 83 02 99 22 41 aa af 44 c7 49 80 ca 46 41 01 2d 01 2d");
    v.extend_from_slice(CONFIG);
    v.push(0);
    v
}
pub(super) fn ready_value() -> Vec<u8> {
    hex(&format!(
        "33 ff 84 02 01 01 01 01 01 01 10 {CLIENT_ARRAY} 01 0d
         02 0d 6e 6f 64 65 5f 75 75 69 64 3a 20 78 0a 00"
    ))
}
pub(super) fn full_value() -> Vec<u8> {
    hex(&format!(
        "22 ff 84 02 01 01 01 01 02 01 10 {CLIENT_ARRAY} 00"
    ))
}
pub(super) fn aborted_value() -> Vec<u8> {
    let mut v = hex("1b ff 84 02 01 01 02 01 06 01 10");
    v.extend([0u8; 16]);
    v.push(0);
    v
}
pub(super) fn start_value() -> Vec<u8> {
    let mut v = hex(&format!(
        "32 ff 84 02 01 02 01 01 10 {SERVER_ARRAY} 01 0a 02 0a"
    ));
    v.extend_from_slice(b"start: {}\n");
    v.push(0);
    v
}
// A traced START as the original server sends it with `-trace` (one path
// node); the Go launcher accepted it.
pub(super) const T2017: &str = "01 00 00 00 0e d0 13 d6 a0 00 00 00 00 ff ff";
pub(super) fn traced_start_value() -> Vec<u8> {
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

pub(super) fn t2017() -> GoTime {
    GoTime {
        secs_since_year1: 63_620_503_200,
        nanos: 0,
        offset_min: -1,
    }
}

pub(super) fn connect_frame() -> ConnectFrame {
    ConnectFrame {
        major: 0,
        minor: 1,
        op: Op::Command(Command::Connect),
        role: 0x14,
        source: CLIENT.to_vec(),
        destination: vec![0; 16],
    }
}
pub(super) fn connected_frame() -> ConnectedFrame {
    ConnectedFrame {
        major: 0,
        minor: 1,
        op: Op::Status(Status::Connected),
        role: 8,
        source: SERVER.to_vec(),
        destination: CLIENT.to_vec(),
        payload: CONFIG.to_vec(),
    }
}
pub(super) fn traced_start() -> Frame {
    let mut f = Frame::new(Command::Start, SERVER, b"start: {}\n".to_vec());
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
pub(super) fn frames() -> Vec<(Frame, Vec<u8>)> {
    vec![
        (
            Frame::new(Status::Ready, CLIENT, b"node_uuid: x\n".to_vec()),
            ready_value(),
        ),
        (Frame::new(Status::Full, CLIENT, vec![]), full_value()),
        (
            Frame::new(ErrorCode::ConnectionAborted, [0; 16], vec![]),
            aborted_value(),
        ),
        (
            Frame::new(Command::Start, SERVER, b"start: {}\n".to_vec()),
            start_value(),
        ),
        (traced_start(), traced_start_value()),
    ]
}

pub(super) fn decode_one(bytes: &[u8]) -> Result<Decoded, GobError> {
    let mut v = decode_all(bytes)?;
    assert_eq!(v.len(), 1, "expected one value");
    Ok(v.remove(0))
}
