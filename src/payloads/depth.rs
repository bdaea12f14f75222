//! A bound on flow nesting (`[` and `{`), checked before any YAML is parsed.
//!
//! The YAML parser under serde_yaml keeps one entry per open flow
//! collection and walks all of them for every token, so deeply nested
//! brackets cost time quadratic in their number (200 KB of `[` took 23 s),
//! even in a key that is ignored. This pre-scan refuses such input in one
//! linear pass. Every YAML (and JSON) entry point calls [`check_depth`]
//! first: payloads (`lenient`), state files, the test server's inputs.
//!
//! Block nesting (indentation, `- - -`) costs the parser nothing of the
//! kind and is bounded later by serde_yaml's own recursion limit.
//!
//! Brackets inside scalars are text, not nesting: the scan skips quoted
//! scalars, comments, block scalars (`|`, `>`: cloud-init user data is full
//! of brackets) and plain scalars in block context. When unsure it counts:
//! a quote opens a quoted scalar only where a token starts, and only if it
//! closes on the same line; a block scalar's content is skipped only while
//! it is indented deeper than the node that owns it. Counting too much can
//! at worst refuse input nested almost [`MAX_DEPTH`] deep in real text;
//! counting too little would let the quadratic case through.

use std::fmt;

/// Deepest flow nesting accepted. serde_yaml refuses anything deeper than
/// 128 anyway, and no payload or state file nests more than a few levels.
pub(crate) const MAX_DEPTH: usize = 100;

/// Input nested deeper than [`MAX_DEPTH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DepthError {
    /// Byte offset of the bracket that went too deep.
    pub(crate) offset: usize,
}

impl fmt::Display for DepthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "nested deeper than {MAX_DEPTH} levels of brackets (at byte {})",
            self.offset
        )
    }
}

impl std::error::Error for DepthError {}

/// Where the scan is within the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum At {
    /// Where a node may start: a quote opens a quoted scalar here.
    TokenStart,
    /// Inside a plain scalar (block context: brackets are text) or after
    /// a complete scalar.
    Text,
}

/// Refuses `text` if its flow collections nest deeper than [`MAX_DEPTH`].
/// Linear in the input's length; never panics.
pub(crate) fn check_depth(text: &[u8]) -> Result<(), DepthError> {
    let mut depth = 0usize;
    // Column of the node owning what follows on this line (a key or `-`).
    let mut node_col = 0usize;
    // Inside a block scalar: its owner's column, and its content's
    // indentation once the first content line fixed it.
    let mut block: Option<(usize, Option<usize>)> = None;
    let mut at = At::TokenStart;
    let mut i = 0usize;
    while i < text.len() {
        // A new line: indentation first.
        let line_end = memchr_nl(text, i);
        let indent = text[i..line_end].iter().take_while(|&&b| b == b' ').count();
        let blank = text[i + indent..line_end]
            .iter()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r'));
        if let Some((owner, content)) = block {
            let inside = blank
                || match content {
                    Some(c) => indent >= c,
                    None => indent > owner,
                };
            if inside {
                if !blank && content.is_none() {
                    block = Some((owner, Some(indent)));
                }
                i = line_end + 1;
                continue;
            }
            block = None;
        }
        let mut j = i + indent;
        if depth == 0 {
            // Block context: each line starts a node at its indentation.
            node_col = indent;
            at = At::TokenStart;
        }
        let mut key_position = depth == 0;
        while j < line_end {
            let b = text[j];
            let next = text.get(j + 1).copied().unwrap_or(b'\n');
            let spaced = matches!(next, b' ' | b'\t' | b'\r' | b'\n');
            match b {
                b' ' | b'\t' | b'\r' => {
                    j += 1;
                    continue;
                }
                b'#' if j == i || matches!(text[j - 1], b' ' | b'\t') => break,
                b'[' | b'{' if depth > 0 || at == At::TokenStart => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(DepthError { offset: j });
                    }
                    at = At::TokenStart;
                }
                b']' | b'}' if depth > 0 => {
                    depth -= 1;
                    at = At::Text;
                }
                b',' if depth > 0 => at = At::TokenStart,
                b':' if spaced || (depth > 0 && matches!(next, b',' | b']' | b'}')) => {
                    at = At::TokenStart;
                    key_position = false;
                }
                b'-' | b'?' if at == At::TokenStart && spaced && depth == 0 => {
                    node_col = j - i;
                    key_position = true;
                }
                b'|' | b'>' if at == At::TokenStart && depth == 0 => {
                    block = Some((node_col, None));
                    break;
                }
                b'\'' | b'"' if at == At::TokenStart => {
                    if key_position {
                        node_col = j - i;
                    }
                    // Not closed on this line: the rest is counted as text.
                    if let Some(len) = closing_quote(&text[j..line_end], b) {
                        j += len;
                    }
                    at = At::Text;
                }
                b'&' | b'!' | b'*' if at == At::TokenStart => {
                    // Anchor, tag or alias: a word, then the node (if any).
                    while j < line_end && !matches!(text[j], b' ' | b'\t') {
                        j += 1;
                    }
                    continue;
                }
                _ => {
                    if at == At::TokenStart && key_position {
                        node_col = j - i;
                    }
                    at = At::Text;
                }
            }
            j += 1;
        }
        i = line_end + 1;
    }
    Ok(())
}

/// The end of the line that starts at `from` (the input's length if none).
fn memchr_nl(text: &[u8], from: usize) -> usize {
    text[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |p| from + p)
}

/// `s` starts with quote `q`: the length up to the closing quote (excluded;
/// the caller's step moves past it), if it closes within `s`.
fn closing_quote(s: &[u8], q: u8) -> Option<usize> {
    let mut k = 1;
    while k < s.len() {
        match s[k] {
            b'\\' if q == b'"' => k += 2,
            c if c == q => {
                if q == b'\'' && s.get(k + 1) == Some(&b'\'') {
                    k += 2;
                } else {
                    return Some(k);
                }
            }
            _ => k += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(n: usize) -> String {
        "[".repeat(n) + &"]".repeat(n)
    }

    #[test]
    fn shallow_documents_pass_and_deep_ones_are_refused() {
        assert!(check_depth(b"").is_ok());
        assert!(check_depth(b"a: [1, {b: [2]}]\n- x\n").is_ok());
        assert!(check_depth(nested(MAX_DEPTH).as_bytes()).is_ok());
        assert_eq!(
            check_depth(nested(MAX_DEPTH + 1).as_bytes()),
            Err(DepthError { offset: MAX_DEPTH })
        );
        let ignored = format!("start:\n  instance_uuid: ab\n  junk: {}\n", nested(30_000));
        assert!(check_depth(ignored.as_bytes()).is_err());
        let json = format!("{{\"a\": {}}}", "{\"b\": ".repeat(200) + &"1}".repeat(200));
        assert!(check_depth(json.as_bytes()).is_err());
    }

    /// Brackets in block scalars, quoted scalars, comments and plain text
    /// are not nesting.
    #[test]
    fn brackets_in_scalars_are_not_counted() {
        let deep = "[".repeat(500);
        for doc in [
            format!("user_data: |\n  #cloud-config\n  runcmd: {deep}\n\n  - x {deep}\nnext: 1\n"),
            format!("- a: >-\n    {deep}\n    {deep}\n  b: 1\n"),
            format!("a: '{deep} it''s'\nb: \"{deep} \\\" \"\n"),
            format!("a: 1 # {deep}\n# {deep}\n"),
            format!("a: echo {deep}\n  continued {deep}\n"),
            format!("[a, '{deep}', \"{deep}\"]\n"),
            format!("[a, \"b\\\", {deep}\"]\n"),
        ] {
            assert_eq!(check_depth(doc.as_bytes()), Ok(()), "{doc:.60}");
        }
    }

    /// Where the parser would see structure, the scan counts it: the end
    /// of a block scalar, an unclosed quote, a quote inside a plain scalar.
    #[test]
    fn scalars_cannot_hide_nesting() {
        let deep = "[".repeat(MAX_DEPTH + 1);
        for doc in [
            format!("- key: |\n    text\n  other: {deep}\n"),
            format!("a: |\nb: {deep}\n"),
            format!("a: 'open\nb: {deep}\n"),
            format!("a: x'y\nb: {deep}\n"),
            format!("[a 'b, {deep}]\n"),
            format!("a: &x {deep}\n"),
            format!("? {deep}\n"),
        ] {
            assert!(check_depth(doc.as_bytes()).is_err(), "{doc:.60}");
        }
    }

    /// Linear time: megabytes of brackets are refused at once.
    #[test]
    fn refusal_is_fast() {
        let big = "[".repeat(4 << 20) + &"'".repeat(1 << 20);
        let t = std::time::Instant::now();
        assert!(check_depth(big.as_bytes()).is_err());
        let quotes = "a: '".repeat(1 << 20);
        assert!(check_depth(quotes.as_bytes()).is_ok());
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }
}
