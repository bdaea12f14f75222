//! The state log: what the launcher remembers about all its instances, in
//! one append-only file, `<data root>/instances/state.log`
//! (`docs/architecture.md`, "The state log"). Pure: the framing, the
//! checksum and the replay; `files.rs` reads, appends, syncs and rewrites
//! the file.
//!
//! One file instead of one `instance.yaml` per instance: a burst of 1000
//! STARTs appends 1000 records and syncs one file a few times, where
//! per-instance files cost a directory, a temporary file, a rename and
//! two syncs each, and most of the launcher's CPU went into the file
//! system's inode allocator (`docs/memory.md`, "Third round").
//!
//! Layout: the line [`HEADER`], then frames. A frame is [`MAGIC`], the
//! body's length and its CRC-32 (both little-endian `u32`), then the body:
//! `put <id>\n<state YAML>` (the instance's whole state, the same YAML
//! as the former `instance.yaml`) or `del <id>\n`. The last record of an
//! id wins. A crash can leave a torn tail (an append whose sync never
//! finished, so nothing was reported for it): its frames fail their
//! checksum and are dropped. The magic lets the replay find the next
//! good frame after a damaged one, so damage loses only what it hit.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};

use crate::payloads::ident::is_hex_id;

/// The log's file name in the instances directory.
pub const LOG_FILE: &str = "state.log";
/// The lock file beside it: one launcher per log.
pub const LOCK_FILE: &str = "state.log.lock";
/// First line of every state log; a different one is another format.
pub const HEADER: &[u8] = b"ciao-launcher state log 1\n";
/// Start of every frame.
const MAGIC: [u8; 4] = *b"\xc1\xa0S\x01";
/// Magic, length, checksum.
const FRAME_HEAD: usize = 12;
/// Largest body accepted: a state is a few kB; a larger length is damage.
pub const MAX_BODY: usize = 1 << 20;

/// Why a log cannot be replayed at all.
#[derive(Debug, PartialEq, Eq)]
pub enum LogError {
    /// The first line is not [`HEADER`]: not ours, or a newer format.
    Header(String),
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Header(line) => write!(
                f,
                "not a state log of this version (first line {line:?}, expected {:?})",
                String::from_utf8_lossy(HEADER.trim_ascii_end())
            ),
        }
    }
}

impl std::error::Error for LogError {}

/// A record: an instance's whole state, or its removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    Put { id: &'a str, state: &'a [u8] },
    Del { id: &'a str },
}

impl Record<'_> {
    /// The record as one frame.
    pub fn frame(&self) -> Vec<u8> {
        let (verb, id, state) = match *self {
            Record::Put { id, state } => ("put ", id, state),
            Record::Del { id } => ("del ", id, &[][..]),
        };
        let mut body = Vec::with_capacity(verb.len() + id.len() + 1 + state.len());
        body.extend_from_slice(verb.as_bytes());
        body.extend_from_slice(id.as_bytes());
        body.push(b'\n');
        body.extend_from_slice(state);
        frame(&body)
    }

    /// Parses a checked body.
    fn parse(body: &[u8]) -> Option<Record<'_>> {
        // "put " or "del ", an id (at most a UUID's 36 characters), '\n'.
        let nl = body.iter().take(48).position(|&b| b == b'\n')?;
        let (line, state) = (&body[..nl], &body[nl + 1..]);
        let line = std::str::from_utf8(line).ok()?;
        let (verb, id) = line.split_once(' ')?;
        if !is_hex_id(id) {
            return None;
        }
        match verb {
            "put" => Some(Record::Put { id, state }),
            "del" if state.is_empty() => Some(Record::Del { id }),
            _ => None,
        }
    }
}

/// `body` framed.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(FRAME_HEAD + body.len());
    f.extend_from_slice(&MAGIC);
    f.extend_from_slice(&(body.len() as u32).to_le_bytes());
    f.extend_from_slice(&crc32(body).to_le_bytes());
    f.extend_from_slice(body);
    f
}

/// The frame at `buf[pos..]` if it is whole and intact: its body and where
/// the next frame starts. `budget`: how many more bytes the checksum may
/// read in this replay. The cheap checks come first and the budget bounds
/// the rest, so a log full of frame-like damage is replayed in linear
/// time, never hanging the start-up.
fn frame_at<'a>(buf: &'a [u8], pos: usize, budget: &mut Budget) -> Option<(Record<'a>, usize)> {
    let head = buf.get(pos..pos.checked_add(FRAME_HEAD)?)?;
    if head[..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    let crc = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
    if len == 0 || len > MAX_BODY {
        return None;
    }
    let start = pos + FRAME_HEAD;
    let body = buf.get(start..start + len)?;
    let rec = Record::parse(body)?;
    match budget.left.checked_sub(len) {
        Some(left) => budget.left = left,
        None => {
            budget.ran_out = true;
            return None;
        }
    }
    (crc32(body) == crc).then_some((rec, start + len))
}

/// What the checksums of one replay may still read.
struct Budget {
    left: usize,
    ran_out: bool,
}

/// What a replay found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replay {
    /// Each instance's last state, by id.
    pub live: BTreeMap<String, Vec<u8>>,
    /// Intact records read.
    pub records: usize,
    /// Unreadable stretches followed by intact frames, or so full of
    /// frame-like bytes that the replay gave up on them: `(offset,
    /// length)`. Damage, not a crash's torn tail: a synced frame is gone.
    pub damaged: Vec<(usize, usize)>,
    /// Unreadable bytes at the end (a torn tail or damage), if any:
    /// `(offset, length)`.
    pub tail: Option<(usize, usize)>,
}

impl Replay {
    /// Replays a whole log. An empty file is an empty log (a crash between
    /// its creation and its first write).
    pub fn of(buf: &[u8]) -> Result<Replay, LogError> {
        let mut r = Replay::default();
        if buf.is_empty() {
            return Ok(r);
        }
        if !buf.starts_with(HEADER) {
            let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
            let line = &line[..line.len().min(80)];
            return Err(LogError::Header(String::from_utf8_lossy(line).into_owned()));
        }
        let mut pos = HEADER.len();
        // Each intact body is checked once; damage may cost as much again.
        let mut budget = Budget {
            left: buf.len().saturating_mul(2),
            ran_out: false,
        };
        while pos < buf.len() {
            if let Some((rec, next)) = frame_at(buf, pos, &mut budget) {
                r.apply(rec);
                pos = next;
                continue;
            }
            match resync(buf, pos + 1, &mut budget) {
                Some(next) => {
                    r.damaged.push((pos, next - pos));
                    pos = next;
                }
                None => {
                    r.tail = Some((pos, buf.len() - pos));
                    break;
                }
            }
        }
        if budget.ran_out {
            // Not a torn append: whatever filled the log with frame-like
            // bytes hid what came after them.
            if let Some(t) = r.tail.take() {
                r.damaged.push(t);
            }
        }
        Ok(r)
    }

    fn apply(&mut self, rec: Record<'_>) {
        self.records += 1;
        match rec {
            Record::Put { id, state } => {
                self.live.insert(id.to_string(), state.to_vec());
            }
            Record::Del { id } => {
                self.live.remove(id);
            }
        }
    }
}

/// The first intact frame at or after `from`.
fn resync(buf: &[u8], from: usize, budget: &mut Budget) -> Option<usize> {
    (from..buf.len().saturating_sub(FRAME_HEAD - 1))
        .filter(|&p| buf[p] == MAGIC[0])
        .find(|&p| frame_at(buf, p, budget).is_some())
}

/// Writes a whole log holding `live` (id, state), in id order.
pub fn write_log<'a>(
    w: &mut impl Write,
    live: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> io::Result<()> {
    w.write_all(HEADER)?;
    for (id, state) in live {
        w.write_all(&Record::Put { id, state }.frame())?;
    }
    Ok(())
}

/// The fuzz target's entry (`fuzz/fuzz_targets/state_log.rs`): a log's
/// bytes through the replay and each state found through the decoder, as
/// at start-up; what a replay finds, written again, replays the same.
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    let Ok(r) = Replay::of(data) else {
        return;
    };
    for (id, state) in &r.live {
        let _ = super::state::StateFile::decode(id, state);
    }
    let mut again = Vec::new();
    let live = r.live.iter().map(|(id, s)| (id.as_str(), s.as_slice()));
    if write_log(&mut again, live).is_ok() {
        assert_eq!(Replay::of(&again).map(|a| a.live).ok(), Some(r.live));
    }
}

/// CRC-32 (IEEE 802.3, the zlib one), table-driven.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c = CRC_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    fn log(records: &[Record<'_>]) -> Vec<u8> {
        let mut b = HEADER.to_vec();
        for r in records {
            b.extend(r.frame());
        }
        b
    }

    fn put<'a>(id: &'a str, state: &'a str) -> Record<'a> {
        Record::Put {
            id,
            state: state.as_bytes(),
        }
    }

    #[test]
    fn crc32_is_the_zlib_one() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    /// The last record of an id wins; a removal forgets it.
    #[test]
    fn replay_keeps_the_last_state_of_each_instance() {
        let b = log(&[
            put("aa01", "one"),
            put("bb02", "two"),
            put("aa01", "three"),
            Record::Del { id: "bb02" },
            put("cc03", ""),
        ]);
        let r = Replay::of(&b).unwrap();
        assert_eq!(r.records, 5);
        assert_eq!(r.tail, None);
        assert!(r.damaged.is_empty());
        let live: Vec<_> = r.live.iter().map(|(k, v)| (k.as_str(), &v[..])).collect();
        assert_eq!(live, [("aa01", &b"three"[..]), ("cc03", &b""[..])]);
        assert_eq!(Replay::of(b"").unwrap(), Replay::default());
    }

    /// Every prefix of a log replays without a panic, to the records that
    /// are whole in it, with the rest reported as its tail.
    #[test]
    fn a_torn_tail_loses_only_the_torn_records() {
        let recs = [put("aa01", "one"), put("bb02", "two"), put("cc03", "x")];
        let ends: Vec<usize> = (0..=3).map(|n| log(&recs[..n]).len()).collect();
        let b = log(&recs);
        for cut in HEADER.len()..b.len() {
            let r = Replay::of(&b[..cut]).unwrap();
            let whole = ends[1..].iter().filter(|&&e| e <= cut).count();
            assert_eq!(r.records, whole, "cut at {cut}");
            assert!(r.damaged.is_empty());
            assert_eq!(r.tail.is_some(), cut != ends[whole], "cut at {cut}");
        }
        // Zeros where the last page should be (a crash before writeback).
        let mut z = b.clone();
        let n = z.len();
        z[ends[2]..n].fill(0);
        let r = Replay::of(&z).unwrap();
        assert_eq!(r.records, 2);
        assert_eq!(r.tail, Some((ends[2], n - ends[2])));
    }

    /// A damaged frame in the middle is skipped and reported; the frames
    /// after it count.
    #[test]
    fn damage_in_the_middle_loses_only_what_it_hit() {
        let b = log(&[put("aa01", "one"), put("bb02", "two"), put("cc03", "x")]);
        let at = log(&[put("aa01", "one")]).len();
        for flip in [at, at + 5, at + 9, at + FRAME_HEAD + 2] {
            let mut d = b.clone();
            d[flip] ^= 0x40;
            let r = Replay::of(&d).unwrap();
            let ids: Vec<_> = r.live.keys().map(String::as_str).collect();
            assert_eq!(ids, ["aa01", "cc03"], "flip at {flip}");
            assert_eq!(r.damaged.len(), 1);
            assert_eq!(r.damaged[0].0, at);
            assert_eq!(r.tail, None);
        }
    }

    /// Another format, or no log at all, is refused, not guessed at.
    #[test]
    fn a_foreign_header_is_refused() {
        let e = Replay::of(b"ciao-launcher state log 2\n").unwrap_err();
        assert!(e.to_string().contains("state log 2"), "{e}");
        assert!(Replay::of(b"version: 1\nconfig: {}\n").is_err());
    }

    /// Bodies that pass the checksum but are not records (an id that is
    /// not one, an unknown verb, a removal with a state) are damage.
    #[test]
    fn bodies_that_are_not_records_are_damage() {
        for body in [
            &b"put ../x\nstate"[..],
            b"put aa01",
            b"new aa01\n",
            b"del aa01\nstate",
            b"put \n",
        ] {
            let mut b = HEADER.to_vec();
            b.extend(frame(body));
            let r = Replay::of(&b).unwrap();
            assert_eq!(r.records, 0, "{:?}", String::from_utf8_lossy(body));
            assert!(r.tail.is_some());
        }
    }

    /// 8 MiB of frames that pass every check but the checksum, each
    /// claiming a body of almost 1 MiB, replay in linear time (without
    /// the budget, about 8 TB of checksumming).
    #[test]
    fn frame_like_damage_replays_in_linear_time() {
        let mut b = HEADER.to_vec();
        while b.len() < 8 << 20 {
            b.extend_from_slice(&MAGIC);
            b.extend_from_slice(&((MAX_BODY - 64) as u32).to_le_bytes());
            b.extend_from_slice(&[0; 4]);
            b.extend_from_slice(b"put aa01\n");
        }
        let t = std::time::Instant::now();
        let r = Replay::of(&b).unwrap();
        assert_eq!(r.records, 0);
        assert_eq!(r.damaged, [(HEADER.len(), b.len() - HEADER.len())]);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
    }

    /// A whole log written from a replay replays to the same instances.
    #[test]
    fn a_rewritten_log_replays_the_same() {
        let b = log(&[put("aa01", "one"), put("bb02", "two"), put("aa01", "3")]);
        let r = Replay::of(&b).unwrap();
        let mut w = Vec::new();
        write_log(
            &mut w,
            r.live.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
        )
        .unwrap();
        let again = Replay::of(&w).unwrap();
        assert_eq!(again.live, r.live);
        assert_eq!(again.records, 2);
    }
}
