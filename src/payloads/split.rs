//! The START payload splitter, byte for byte as the original.
//!
//! A START payload is a stream of up to three documents: the start section, the cloud-init
//! user-data and the meta-data. The original does not parse the stream as YAML (user-data may
//! not be YAML at all); it cuts it into lines and documents textually and assigns the parts by
//! rules that `tests/data/payloads/start_split_vectors.json` pins down. Works on bytes: nothing here
//! requires UTF-8.

/// The three parts of a START payload, each `\n`-terminated line by line, markers removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SplitStart {
    /// The text parsed as the start section (may be empty).
    pub start: Vec<u8>,
    /// The cloud-init user-data, passed on untouched.
    pub cloud_init: Vec<u8>,
    /// The meta-data (JSON by convention), passed on untouched.
    pub meta_data: Vec<u8>,
}

/// Lines longer than this stop the reading (Go's `bufio.Scanner` default limit).
const MAX_LINE: usize = 65_536;

/// Splits a START payload into its start section, cloud-init and meta-data parts.
pub fn split_start_payload(payload: &[u8]) -> SplitStart {
    let lines = read_lines(payload);
    let start_line = lines.iter().position(|l| is_start_line(l));
    let docs = partition(&lines);
    let body = |d: &Doc| join(&lines[d.body_start..d.body_end]);
    let holds_start = |d: &Doc| start_line.is_some_and(|s| d.begin <= s && s < d.end);

    let mut out = SplitStart::default();
    match docs.len() {
        0 => {}
        1 | 2 => {
            let with_start = docs.iter().position(holds_start);
            match (with_start, start_line) {
                (Some(i), Some(s)) => {
                    extract_start_block(&lines, &docs[i], s, &mut out);
                    if docs.len() == 2 {
                        // The other document is the meta-data, even when it comes first.
                        out.meta_data = body(&docs[1 - i]);
                    }
                }
                _ => {
                    out.cloud_init = body(&docs[0]);
                    if let Some(d) = docs.get(1) {
                        out.meta_data = body(d);
                    }
                }
            }
        }
        _ => {
            // Only the first three documents count; the start section must be one of them.
            if let Some(i) = docs[..3].iter().position(holds_start) {
                let others: Vec<&Doc> = (0..3).filter(|&j| j != i).map(|j| &docs[j]).collect();
                out.start = body(&docs[i]);
                out.cloud_init = body(others[0]);
                out.meta_data = body(others[1]);
            } else {
                log::warn!(
                    "START payload has {} documents but no start section in the first three",
                    docs.len()
                );
            }
        }
    }
    out
}

/// Step 1: lines without their `\n` (and one `\r` before it), stopping silently at the first
/// line that is too long.
fn read_lines(payload: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        if line.len() >= MAX_LINE {
            break;
        }
        lines.push(line.strip_suffix(b"\r").unwrap_or(line));
        rest = next;
    }
    lines
}

/// Go's `\s` in the original's regular expression: space, tab, CR, LF, FF (no VT).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c')
}

/// `^start\s*:\s*$`
fn is_start_line(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"start") else {
        return false;
    };
    let rest = trim_start_spaces(rest);
    match rest.strip_prefix(b":") {
        Some(tail) => tail.iter().all(|&b| is_space(b)),
        None => false,
    }
}

fn trim_start_spaces(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| is_space(b)).count();
    &s[n..]
}

fn is_doc_start(line: &[u8]) -> bool {
    line.starts_with(b"---")
}

fn is_doc_end(line: &[u8]) -> bool {
    line.starts_with(b"...")
}

fn is_directive(line: &[u8]) -> bool {
    line.starts_with(b"%")
}

/// A document: lines `begin..end`, of which `body_start..body_end` are the body.
#[derive(Debug)]
struct Doc {
    begin: usize,
    end: usize,
    /// The `---` line, if any.
    marker: Option<usize>,
    body_start: usize,
    body_end: usize,
}

/// Step 3: cut the lines into documents, from the end backwards.
fn partition(lines: &[&[u8]]) -> Vec<Doc> {
    let mut docs = Vec::new();
    let mut end = lines.len();
    while end > 0 {
        let last = end - 1;
        let (mut i, body_end) = if is_doc_end(lines[last]) {
            (last, last)
        } else {
            (end, end)
        };
        let mut begin = 0;
        let mut marker = None;
        while i > 0 {
            i -= 1;
            if is_doc_start(lines[i]) {
                marker = Some(i);
                break;
            }
            if is_doc_end(lines[i]) {
                begin = i + 1;
                break;
            }
        }
        let body_start = match marker {
            Some(m) => {
                begin = m;
                while begin > 0 && is_directive(lines[begin - 1]) {
                    begin -= 1;
                }
                m + 1
            }
            None => begin,
        };
        docs.push(Doc {
            begin,
            end,
            marker,
            body_start,
            body_end,
        });
        end = begin;
    }
    docs.reverse();
    docs
}

/// Step 5: the start section is the start line plus every following line of the document
/// that is empty or contains white space; the lines before it (after `---`) and the lines
/// after it (unless they begin with `...`) are the cloud-init.
fn extract_start_block(lines: &[&[u8]], doc: &Doc, start_line: usize, out: &mut SplitStart) {
    let prefix_from = match doc.marker {
        Some(m) if m < start_line => m + 1,
        _ => doc.begin,
    };
    out.cloud_init = join(&lines[prefix_from..start_line]);
    let mut i = start_line + 1;
    while i < doc.end && (lines[i].is_empty() || lines[i].iter().any(|&b| is_space(b))) {
        i += 1;
    }
    out.start = join(&lines[start_line..i]);
    if i < doc.end && !is_doc_end(lines[i]) {
        out.cloud_init.extend(join(&lines[i..doc.end]));
    }
}

fn join(lines: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> (String, String, String) {
        let r = split_start_payload(s.as_bytes());
        (
            String::from_utf8(r.start).unwrap(),
            String::from_utf8(r.cloud_init).unwrap(),
            String::from_utf8(r.meta_data).unwrap(),
        )
    }

    #[test]
    fn start_line_pattern() {
        for yes in ["start:", "start :", "start:   ", "start\t:\t", "start:\x0c"] {
            assert!(is_start_line(yes.as_bytes()), "{yes:?}");
        }
        for no in [
            "start: {}",
            "  start:",
            "\u{feff}start:",
            "start",
            "starts:",
            "start:\x0b",
        ] {
            assert!(!is_start_line(no.as_bytes()), "{no:?}");
        }
    }

    #[test]
    fn long_lines_stop_reading() {
        let mut p = b"start:\n  instance_uuid: ab\n".to_vec();
        p.extend(vec![b'x'; MAX_LINE]);
        p.extend(b"\nmore\n");
        let (start, cloud, meta) = split(std::str::from_utf8(&p).unwrap());
        assert_eq!(start, "start:\n  instance_uuid: ab\n");
        assert_eq!((cloud.as_str(), meta.as_str()), ("", ""));
        // One byte shorter is still a line (and has no white space: ends the start block).
        let mut p = b"start:\n".to_vec();
        p.extend(vec![b'x'; MAX_LINE - 1]);
        let r = split_start_payload(&p);
        assert_eq!(r.cloud_init.len(), MAX_LINE);
    }

    #[test]
    fn non_utf8_is_passed_through() {
        let r = split_start_payload(b"start:\n  a: b\n...\n\xff\xfe\n...\n");
        assert_eq!(r.start, b"start:\n  a: b\n");
        assert_eq!(r.meta_data, b"\xff\xfe\n");
    }

    #[test]
    fn two_documents_start_first_gives_meta_data() {
        let (s, c, m) = split("---\nstart:\n  a: b\n...\n---\n#cloud-config\n...\n");
        assert_eq!(
            (s.as_str(), c.as_str(), m.as_str()),
            ("start:\n  a: b\n", "", "#cloud-config\n")
        );
    }
}
