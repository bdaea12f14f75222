//! A small YAML emitter that writes what Go's yaml.v2 `Marshal` writes for our documents.
//!
//! Receivers only need YAML-equivalent text, but byte-identical output keeps golden tests
//! against the original meaningful and makes `ciaolc drain` show the same text. serde_yaml's
//! emitter differs (it indents lists under their key, writes `''` for empty strings and leaves
//! `yes`, `1_000`, `12:34` unquoted), so the few rules yaml.v2 follows are reproduced here:
//!
//! * block style, no `---`, output ends with one newline;
//! * nested mappings indented by 2; a list under a key starts at the key's column (`key:` /
//!   `- item`); a mapping in a list item continues after `- `;
//! * empty lists `[]`, empty mappings `{}`, nil `null`;
//! * strings plain when they read back as the same string, else double-quoted (`""`, `"true"`,
//!   `"123"`, `"12:34"`); strings that plain syntax cannot carry (leading space, `: `, `#`,
//!   a lone `-`) single-quoted; control characters escaped in double quotes; multi-line
//!   strings as `|-` literal blocks.
//!
//! Not reproduced: yaml.v2 folds plain and double-quoted strings containing spaces once a line
//! passes 80 columns; we never fold (the value read back is the same).

use std::borrow::Cow;
use std::fmt::Write as _;

use super::lenient::{resolve, Resolved};

/// A document tree to emit. Mapping keys keep their order. Strings and
/// keys borrow where they can: a STATS of 1000 instances is a tree of
/// 9000 nodes, built every second, and copying each key and value into
/// a `String` of its own made it 20000 short-lived allocations.
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Str(Cow<'a, str>),
    Seq(Vec<Node<'a>>),
    Map(Vec<(Cow<'a, str>, Node<'a>)>),
}

impl<'a> Node<'a> {
    /// A string node.
    pub fn str(s: impl Into<Cow<'a, str>>) -> Node<'a> {
        Node::Str(s.into())
    }

    /// A mapping node from `(key, value)` pairs.
    pub fn map<K: Into<Cow<'a, str>>>(pairs: impl IntoIterator<Item = (K, Node<'a>)>) -> Node<'a> {
        Node::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// A list of strings.
    pub fn str_seq<S: AsRef<str>>(items: &'a [S]) -> Node<'a> {
        Node::Seq(items.iter().map(|s| Node::str(s.as_ref())).collect())
    }
}

/// Emits `node` as one YAML document, as yaml.v2 `Marshal` would.
pub(crate) fn to_yaml(node: &Node) -> String {
    let mut e = Emitter {
        out: String::new(),
        open_ended: false,
    };
    match node {
        Node::Map(m) if !m.is_empty() => e.map(m, 0, false),
        Node::Seq(s) if !s.is_empty() => e.seq(s, 0, false),
        other => {
            e.scalar(other, 2);
            e.end_line();
        }
    }
    if e.open_ended {
        // A literal block kept trailing newlines (`|+`): yaml.v2 closes the stream with `...`.
        e.out.push_str("...\n");
    }
    e.out
}

struct Emitter {
    out: String,
    /// The last thing written was a `|+` block scalar.
    open_ended: bool,
}

impl Emitter {
    fn indent(&mut self, n: usize) {
        for _ in 0..n {
            self.out.push(' ');
        }
    }

    fn end_line(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with('\n') {
            self.out.push('\n');
        }
    }

    /// A block mapping whose keys are at column `ind`; with `inline_first` the first key
    /// continues the current line (after `- `).
    fn map(&mut self, m: &[(Cow<str>, Node)], ind: usize, inline_first: bool) {
        for (i, (k, v)) in m.iter().enumerate() {
            if i > 0 || !inline_first {
                self.indent(ind);
            }
            key_text(&mut self.out, k);
            self.out.push(':');
            self.value(v, ind);
        }
    }

    /// The value after `key:` for a key at column `ind`.
    fn value(&mut self, v: &Node, ind: usize) {
        match v {
            Node::Map(m) if !m.is_empty() => {
                self.out.push('\n');
                self.map(m, ind + 2, false);
            }
            Node::Seq(s) if !s.is_empty() => {
                // yaml.v2 does not indent a list under its key.
                self.out.push('\n');
                self.seq(s, ind, false);
            }
            _ => {
                self.out.push(' ');
                self.scalar(v, ind + 2);
                self.end_line();
            }
        }
    }

    /// A block list whose dashes are at column `ind`.
    fn seq(&mut self, s: &[Node], ind: usize, inline_first: bool) {
        for (i, item) in s.iter().enumerate() {
            if i > 0 || !inline_first {
                self.indent(ind);
            }
            self.out.push_str("- ");
            match item {
                Node::Map(m) if !m.is_empty() => self.map(m, ind + 2, true),
                Node::Seq(q) if !q.is_empty() => self.seq(q, ind + 2, true),
                _ => {
                    self.scalar(item, ind + 2);
                    self.end_line();
                }
            }
        }
    }

    /// A scalar (or empty collection) on the current line; block scalar content goes at
    /// column `content_ind`.
    fn scalar(&mut self, v: &Node, content_ind: usize) {
        self.open_ended = false;
        match v {
            Node::Null => self.out.push_str("null"),
            Node::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Node::Int(i) => {
                let _ = write!(self.out, "{i}");
            }
            Node::Seq(_) => self.out.push_str("[]"),
            Node::Map(_) => self.out.push_str("{}"),
            Node::Str(s) => match select_style(s) {
                ScalarStyle::Plain => self.out.push_str(s),
                ScalarStyle::SingleQuoted => single_quoted(&mut self.out, s),
                ScalarStyle::DoubleQuoted => double_quoted(&mut self.out, s),
                ScalarStyle::Literal => self.literal(s, content_ind),
            },
        }
    }

    fn literal(&mut self, s: &str, ind: usize) {
        self.out.push('|');
        if s.starts_with([' ', '\n']) {
            self.out.push('2');
        }
        let chomp = if !s.ends_with('\n') {
            "-"
        } else if s == "\n" || s.ends_with("\n\n") {
            self.open_ended = true;
            "+"
        } else {
            ""
        };
        self.out.push_str(chomp);
        self.out.push('\n');
        let mut at_line_start = true;
        for c in s.chars() {
            if c == '\n' {
                self.out.push('\n');
                at_line_start = true;
            } else {
                if at_line_start {
                    self.indent(ind);
                    at_line_start = false;
                }
                self.out.push(c);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScalarStyle {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
}

fn key_text(out: &mut String, k: &str) {
    match select_style(k) {
        ScalarStyle::Plain => out.push_str(k),
        ScalarStyle::SingleQuoted => single_quoted(out, k),
        _ => double_quoted(out, k),
    }
}

/// yaml.v2 `stringv` plus libyaml's `select_scalar_style` for block context.
fn select_style(s: &str) -> ScalarStyle {
    if reads_back_as_non_string(s) {
        return ScalarStyle::DoubleQuoted;
    }
    let a = analyze(s);
    if s.contains('\n') {
        return if a.block_allowed {
            ScalarStyle::Literal
        } else {
            ScalarStyle::DoubleQuoted
        };
    }
    if a.block_plain_allowed {
        ScalarStyle::Plain
    } else if a.single_quoted_allowed {
        ScalarStyle::SingleQuoted
    } else {
        ScalarStyle::DoubleQuoted
    }
}

/// Strings a YAML reader would not give back as the same string when written plain.
/// yaml.v2's own rule (YAML 1.1 resolution plus base-60 numbers), widened to the integer
/// prefixes newer Go and YAML 1.2 readers know (`0o17`, `0B1`), which costs nothing.
pub(crate) fn reads_back_as_non_string(s: &str) -> bool {
    resolve(s) != Resolved::Str || is_base60_float(s) || is_prefixed_int(s)
}

/// yaml.v2's `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`.
fn is_base60_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    if !b.get(i).is_some_and(u8::is_ascii_digit) {
        return false;
    }
    i += 1;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
        i += 1;
    }
    let mut groups = 0;
    while b.get(i) == Some(&b':') {
        i += 1;
        // [0-5]?[0-9]
        let d1 = b.get(i).copied();
        let d2 = b.get(i + 1).copied();
        match (d1, d2) {
            (Some(b'0'..=b'5'), Some(b'0'..=b'9')) => i += 2,
            (Some(b'0'..=b'9'), _) => i += 1,
            _ => return false,
        }
        groups += 1;
    }
    if groups == 0 {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
    }
    i == b.len()
}

/// `0o17`, `0O17`, `0b1`, `0B1`, `0X1F` with optional sign and underscores.
fn is_prefixed_int(s: &str) -> bool {
    let t: String = s.chars().filter(|&c| c != '_').collect();
    let t = t.strip_prefix(['+', '-']).unwrap_or(&t);
    let Some(rest) = t.strip_prefix('0') else {
        return false;
    };
    let radix = match rest.as_bytes().first() {
        Some(b'o' | b'O') => 8,
        Some(b'b' | b'B') => 2,
        Some(b'x' | b'X') => 16,
        _ => return false,
    };
    let digits = &rest[1..];
    !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix))
}

struct Analysis {
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

fn is_printable(c: char) -> bool {
    let c = c as u32;
    c == 0x0A
        || (0x20..=0x7E).contains(&c)
        || (0xA0..=0xD7FF).contains(&c)
        || ((0xE000..=0xFFFD).contains(&c) && c != 0xFEFF)
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// libyaml's `yaml_emitter_analyze_scalar` (block context, unicode output).
fn analyze(s: &str) -> Analysis {
    if s.is_empty() {
        return Analysis {
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let mut block_indicators = s.starts_with("---") || s.starts_with("...");
    let mut line_breaks = false;
    let mut special = false;
    let (mut leading_space, mut leading_break) = (false, false);
    let (mut trailing_space, mut trailing_break) = (false, false);
    let (mut break_space, mut space_break) = (false, false);
    let mut preceded_by_whitespace = true;
    let (mut previous_space, mut previous_break) = (false, false);
    // One pass with a one-character look-ahead, without collecting the
    // characters (every string scalar of every STATS comes through here).
    let mut chars = s.chars().peekable();
    let mut first = true;
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        let followed_by_whitespace = !matches!(next, Some(n) if !is_blank(n));
        let last = next.is_none();
        if first {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_indicators = true,
                '?' | ':' | '-' if followed_by_whitespace => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_whitespace => block_indicators = true,
                '#' if preceded_by_whitespace => block_indicators = true,
                _ => {}
            }
        }
        // Unicode line and paragraph separators count as line breaks in block scalars, which
        // the literal writer does not handle: escape them in double quotes (yaml.v2 might
        // write a block; both read back the same).
        if !is_printable(c) || c == '\u{2028}' || c == '\u{2029}' {
            special = true;
        }
        if c == ' ' {
            leading_space |= first;
            trailing_space |= last;
            break_space |= previous_break;
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            line_breaks = true;
            leading_break |= first;
            trailing_break |= last;
            space_break |= previous_space;
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = is_blank(c) || is_break(c) || c == '\0';
        first = false;
    }
    let mut a = Analysis {
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.block_plain_allowed = false;
    }
    if trailing_space {
        a.block_allowed = false;
    }
    if break_space {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
    }
    if space_break || special {
        a.block_plain_allowed = false;
        a.single_quoted_allowed = false;
        a.block_allowed = false;
    }
    if line_breaks {
        a.block_plain_allowed = false;
        // Our single-quoted writer does not fold line breaks; double quotes escape them.
        a.single_quoted_allowed = false;
    }
    if block_indicators {
        a.block_plain_allowed = false;
    }
    a
}

fn single_quoted(out: &mut String, s: &str) {
    out.push('\'');
    for c in s.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
}

fn double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        let escape = !is_printable(c) || c == '\u{FEFF}' || is_break(c) || c == '"' || c == '\\';
        if !escape {
            out.push(c);
            continue;
        }
        out.push('\\');
        match c {
            '\0' => out.push('0'),
            '\u{7}' => out.push('a'),
            '\u{8}' => out.push('b'),
            '\t' => out.push('t'),
            '\n' => out.push('n'),
            '\u{b}' => out.push('v'),
            '\u{c}' => out.push('f'),
            '\r' => out.push('r'),
            '\u{1b}' => out.push('e'),
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            '\u{85}' => out.push('N'),
            '\u{a0}' => out.push('_'),
            '\u{2028}' => out.push('L'),
            '\u{2029}' => out.push('P'),
            c if (c as u32) <= 0xFF => out.push_str(&format!("x{:02X}", c as u32)),
            c if (c as u32) <= 0xFFFF => out.push_str(&format!("u{:04X}", c as u32)),
            c => out.push_str(&format!("U{:08X}", c as u32)),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(s: &str) -> String {
        let doc = to_yaml(&Node::map([("k", Node::str(s))]));
        doc.strip_prefix("k: ")
            .unwrap()
            .strip_suffix('\n')
            .unwrap()
            .to_string()
    }

    #[test]
    fn quoting_like_yaml_v2() {
        for (input, want) in [
            ("", "\"\""),
            ("abc", "abc"),
            (
                "d7d86208-b46c-4465-9018-fe14087d415f",
                "d7d86208-b46c-4465-9018-fe14087d415f",
            ),
            ("192.168.8.0/24", "192.168.8.0/24"),
            ("02:00:15:03:6f:49", "02:00:15:03:6f:49"),
            ("02:00:15:03:01:49", "\"02:00:15:03:01:49\""),
            ("12345678", "\"12345678\""),
            ("true", "\"true\""),
            ("yes", "\"yes\""),
            ("y", "\"y\""),
            ("~", "\"~\""),
            ("null", "\"null\""),
            ("1e3", "\"1e3\""),
            ("0x1F", "\"0x1F\""),
            ("+1", "\"+1\""),
            ("12:34", "\"12:34\""),
            ("1_000", "\"1_000\""),
            ("0o17", "\"0o17\""),
            (".5", "\".5\""),
            ("<<", "\"<<\""),
            (" lead", "' lead'"),
            ("a: b", "'a: b'"),
            ("#x", "'#x'"),
            ("-", "'-'"),
            ("it's: x", "'it''s: x'"),
            ("a#b", "a#b"),
            ("a #b", "'a #b'"),
            ("- x", "'- x'"),
            ("-x", "-x"),
            (
                "2017-01-10T14:03:07.123456789Z",
                "2017-01-10T14:03:07.123456789Z",
            ),
            ("tab\there", "\"tab\\there\""),
            ("ünïcödé", "ünïcödé"),
            ("\u{1F600}", "\"\\U0001F600\""),
            ("---", "'---'"),
            ("a\"b", "a\"b"),
            ("trailing ", "'trailing '"),
            ("a\u{2028}", "\"a\\L\""),
            ("a\nb\u{2029}", "\"a\\nb\\P\""),
            ("READY", "READY"),
            ("127.0.0.1:8888", "127.0.0.1:8888"),
        ] {
            assert_eq!(scalar(input), want, "{input:?}");
        }
    }

    #[test]
    fn literal_blocks() {
        assert_eq!(
            to_yaml(&Node::map([("k", Node::str("a\nb")), ("z", Node::Int(1))])),
            "k: |-\n  a\n  b\nz: 1\n"
        );
        assert_eq!(
            to_yaml(&Node::map([("k", Node::str("a\n\nb\n"))])),
            "k: |\n  a\n\n  b\n"
        );
        assert_eq!(
            to_yaml(&Node::map([("k", Node::str("a\n\n"))])),
            "k: |+\n  a\n\n...\n"
        );
        assert_eq!(
            to_yaml(&Node::map([("k", Node::str(" a\nb"))])),
            "k: |2-\n   a\n  b\n"
        );
        // Trailing space on a line before a break: not a block, double quotes.
        assert_eq!(
            to_yaml(&Node::map([("k", Node::str("a \nb"))])),
            "k: \"a \\nb\"\n"
        );
    }

    #[test]
    fn layout() {
        let doc = Node::map([
            ("a", Node::Int(-1)),
            ("empty", Node::Seq(vec![])),
            ("emptymap", Node::Map(vec![])),
            ("list", Node::str_seq(&["x", "y"])),
            (
                "items",
                Node::Seq(vec![
                    Node::map([("k", Node::Bool(true)), ("v", Node::str_seq(&["1"]))]),
                    Node::map([("w", Node::map([("x", Node::Null)]))]),
                    Node::Seq(vec![Node::str("p"), Node::str("q")]),
                ]),
            ),
            (
                "nested",
                Node::map([("b", Node::map([("c", Node::str("d"))]))]),
            ),
        ]);
        assert_eq!(
            to_yaml(&doc),
            "a: -1\nempty: []\nemptymap: {}\nlist:\n- x\n- \"y\"\nitems:\n- k: true\n  v:\n  - \"1\"\n- w:\n    x: null\n- - p\n  - q\nnested:\n  b:\n    c: d\n"
        );
        assert_eq!(to_yaml(&Node::Seq(vec![])), "[]\n");
        assert_eq!(to_yaml(&Node::Seq(vec![Node::Null])), "- null\n");
    }
}
