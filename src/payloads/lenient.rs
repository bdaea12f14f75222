//! yaml.v2-compatible decoding on top of `serde_yaml`.
//!
//! The Go peers decode every payload with yaml.v2 into fixed structs; serde_yaml's typed
//! decoding differs in ways that turn payloads Go accepts into errors (P13.4–P13.11 in
//! docs/compatibility.md).
//! This module keeps serde_yaml's parser (both are ports of libyaml, so they accept the same
//! syntax) but replaces the *decoding* with hand-written visitors that follow yaml.v2:
//!
//! * unknown keys are skipped, missing keys keep the zero value, a key given twice: last wins;
//! * `~`, `null`, an empty value give the zero value for every field type;
//! * string fields take the literal text of any scalar (`12345`, `yes`, `0x1F`);
//! * integer fields take plain scalars as YAML 1.1 does: `010` (octal), `1_000`, `0b11`, `0x1F`,
//!   floats truncated toward zero; quoted numbers are errors;
//! * boolean fields take the YAML 1.1 set (`yes`, `On`, `n`, ...), quoted values are errors;
//! * decoding is *in place* (Go's `Unmarshal` into an existing value): a nested mapping given
//!   twice is merged, a merge key `<<: *anchor` is applied at its position;
//! * only the first YAML document is read.
//!
//! Whether a scalar was quoted is not part of serde's data model, so the scalar visitors look
//! at the input text: serde_yaml hands out plain and quoted scalars as slices borrowed from the
//! input, and the bytes around such a slice tell how it was written (see `Style`).

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// A payload that yaml.v2 would refuse (syntax error, or a value of the wrong kind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    message: String,
}

impl DecodeError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        DecodeError {
            message: message.into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "YAML payload is corrupt: {}", self.message)
    }
}

impl std::error::Error for DecodeError {}

/// The text being decoded; scalar visitors use it to find out how a scalar was written.
#[derive(Clone, Copy)]
pub(crate) struct Source<'s> {
    text: &'s str,
}

/// A field type decoded the yaml.v2 way, in place.
pub(crate) trait Lenient: Default {
    fn decode<'de, D: Deserializer<'de>>(&mut self, d: D, src: Source<'_>) -> Result<(), D::Error>;
}

/// A mapping-shaped type; implemented through [`lenient_struct!`].
pub(crate) trait LenientStruct: Default {
    /// Decodes the value of `key` into its field. Returns false for an unknown key, whose value
    /// has then not been consumed.
    fn decode_field<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
        src: Source<'_>,
    ) -> Result<bool, A::Error>;
}

/// Implements [`Lenient`] and [`LenientStruct`] for a struct: `"yaml_key" => field, ...`.
macro_rules! lenient_struct {
    ($ty:ty { $($key:literal => $field:ident),* $(,)? }) => {
        impl $crate::payloads::lenient::LenientStruct for $ty {
            fn decode_field<'de, A: serde::de::MapAccess<'de>>(
                &mut self,
                key: &str,
                map: &mut A,
                src: $crate::payloads::lenient::Source<'_>,
            ) -> Result<bool, A::Error> {
                match key {
                    $($key => {
                        map.next_value_seed($crate::payloads::lenient::InPlace::new(
                            &mut self.$field,
                            src,
                        ))?;
                        Ok(true)
                    })*
                    _ => Ok(false),
                }
            }
        }
        impl $crate::payloads::lenient::Lenient for $ty {
            fn decode<'de, D: serde::Deserializer<'de>>(
                &mut self,
                d: D,
                src: $crate::payloads::lenient::Source<'_>,
            ) -> Result<(), D::Error> {
                $crate::payloads::lenient::decode_struct(self, d, src)
            }
        }
    };
}
pub(crate) use lenient_struct;

/// Decodes `payload` (first YAML document only) into a fresh `T`.
pub(crate) fn decode_bytes<T: LenientStruct>(payload: &[u8]) -> Result<T, DecodeError> {
    let mut value = T::default();
    decode_bytes_into(payload, &mut value)?;
    Ok(value)
}

/// Decodes `payload` over an existing value, as Go's `yaml.Unmarshal(payload, &value)`: keys
/// present overwrite, absent keys keep what `value` had (used for defaults).
pub(crate) fn decode_bytes_into<T: LenientStruct>(
    payload: &[u8],
    value: &mut T,
) -> Result<(), DecodeError> {
    let text = std::str::from_utf8(payload)
        .map_err(|e| DecodeError::new(format!("invalid UTF-8: {e}")))?;
    decode_str_into(text, value)
}

/// As [`decode_bytes_into`] for text.
pub(crate) fn decode_str_into<T: LenientStruct>(
    text: &str,
    value: &mut T,
) -> Result<(), DecodeError> {
    // yaml.v2's reader drops a leading byte-order mark before scanning; serde_yaml's scanner
    // skips it but counts it as a column, so a following `---` would not start a document.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Deep flow nesting costs the parser quadratic time: refused first.
    super::depth::check_depth(text.as_bytes()).map_err(|e| DecodeError::new(e.to_string()))?;
    let src = Source { text };
    // serde_yaml parses documents lazily: taking the first one leaves the rest unparsed, as
    // yaml.v2 does. An empty stream still yields one (empty) document.
    let Some(doc) = serde_yaml::Deserializer::from_str(text).next() else {
        return Ok(());
    };
    doc.deserialize_any(TopLevel { place: value, src })
        .map_err(|e| DecodeError::new(e.to_string()))
}

/// The document root: no document at all leaves the value alone (Go does not touch it),
/// an explicit null resets it, a mapping fills it.
struct TopLevel<'a, 's, T> {
    place: &'a mut T,
    src: Source<'s>,
}

impl<'de, T: LenientStruct> Visitor<'de> for TopLevel<'_, '_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML mapping")
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        *self.place = T::default();
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        fill_struct(self.place, map, self.src)
    }
}

/// Seed that decodes one value into an existing place.
pub(crate) struct InPlace<'a, 's, T> {
    place: &'a mut T,
    src: Source<'s>,
}

impl<'a, 's, T> InPlace<'a, 's, T> {
    pub(crate) fn new(place: &'a mut T, src: Source<'s>) -> Self {
        InPlace { place, src }
    }
}

impl<'de, T: Lenient> DeserializeSeed<'de> for InPlace<'_, '_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.place.decode(d, self.src)
    }
}

// ---------------------------------------------------------------------------------------------
// Structs

pub(crate) fn decode_struct<'de, T: LenientStruct, D: Deserializer<'de>>(
    place: &mut T,
    d: D,
    src: Source<'_>,
) -> Result<(), D::Error> {
    d.deserialize_option(OrNull(StructFill { place, src }))
}

/// A field that null resets and any other value fills: the `Option` layer that structs and
/// lists share. `F` is the visitor of the non-null value and says how null resets its place.
struct OrNull<F>(F);

trait Fill<'de>: Visitor<'de, Value = ()> {
    /// Null (`~`, `null`, empty) gives the zero value.
    fn reset(self);
    /// Asks the deserializer for the value shape `self` visits.
    fn fill<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error>;
}

impl<'de, F: Fill<'de>> Visitor<'de> for OrNull<F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.0.reset();
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.0.fill(d)
    }
}

struct StructFill<'a, 's, T> {
    place: &'a mut T,
    src: Source<'s>,
}

impl<'de, T: LenientStruct> Fill<'de> for StructFill<'_, '_, T> {
    fn reset(self) {
        *self.place = T::default();
    }

    fn fill<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: LenientStruct> Visitor<'de> for StructFill<'_, '_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        fill_struct(self.place, map, self.src)
    }
}

pub(crate) fn fill_struct<'de, T: LenientStruct, A: MapAccess<'de>>(
    place: &mut T,
    mut map: A,
    src: Source<'_>,
) -> Result<(), A::Error> {
    while let Some(key) = map.next_key_seed(KeySeed { src })? {
        if key.merge {
            map.next_value_seed(MergeSeed { place, src })?;
        } else if !place.decode_field(&key.text, &mut map, src)? {
            map.next_value::<IgnoredAny>()?;
        }
    }
    Ok(())
}

struct Key {
    text: String,
    merge: bool,
}

/// Keys are decoded like string fields (a mapping or list as key is an error in Go too);
/// a plain `<<` is the merge key.
struct KeySeed<'s> {
    src: Source<'s>,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        match d.deserialize_option(OptScalar { src: self.src })? {
            None => Ok(Key {
                text: String::new(),
                merge: false,
            }),
            Some(s) => {
                let merge = s.style == Style::Plain && s.text == "<<";
                let text = s.into_string().map_err(de::Error::custom)?;
                Ok(Key { text, merge })
            }
        }
    }
}

/// `<<: {mapping}` or `<<: *alias` applies the mapping to the struct being filled, at the
/// position of the merge key (yaml.v2 semantics: later keys override, earlier ones are
/// overridden). A list of mappings is refused (yaml.v2 applies it in reverse order, which a
/// streaming decoder cannot do); such hand-written payloads get `invalid_payload`.
struct MergeSeed<'a, 's, T> {
    place: &'a mut T,
    src: Source<'s>,
}

impl<'de, T: LenientStruct> DeserializeSeed<'de> for MergeSeed<'_, '_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: LenientStruct> Visitor<'de> for MergeSeed<'_, '_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mapping to merge (a list of mappings is not supported)")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        fill_struct(self.place, map, self.src)
    }
}

// ---------------------------------------------------------------------------------------------
// Lists

impl<T: Lenient> Lenient for Vec<T> {
    fn decode<'de, D: Deserializer<'de>>(&mut self, d: D, src: Source<'_>) -> Result<(), D::Error> {
        d.deserialize_option(OrNull(VecFill { place: self, src }))
    }
}

struct VecFill<'a, 's, T> {
    place: &'a mut Vec<T>,
    src: Source<'s>,
}

impl<'de, T: Lenient> Fill<'de> for VecFill<'_, '_, T> {
    fn reset(self) {
        self.place.clear();
    }

    fn fill<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T: Lenient> Visitor<'de> for VecFill<'_, '_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML list")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        // A list replaces the previous value (Go makes a new slice).
        *self.place = collect_seq(seq, self.src)?;
        Ok(())
    }
}

fn collect_seq<'de, T: Lenient, A: SeqAccess<'de>>(
    mut seq: A,
    src: Source<'_>,
) -> Result<Vec<T>, A::Error> {
    let mut out = Vec::new();
    loop {
        let mut item = T::default();
        match seq.next_element_seed(InPlace::new(&mut item, src))? {
            Some(()) => out.push(item),
            None => return Ok(out),
        }
    }
}

/// A list that may also be written as a single mapping (one item). The original rejected the
/// mapping form of `storage` although its README and two example files use it; we accept it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OneOrMany<T>(pub Vec<T>);

impl<T: LenientStruct + Lenient> Lenient for OneOrMany<T> {
    fn decode<'de, D: Deserializer<'de>>(&mut self, d: D, src: Source<'_>) -> Result<(), D::Error> {
        d.deserialize_option(OrNull(OneOrManyFill {
            place: &mut self.0,
            src,
        }))
    }
}

struct OneOrManyFill<'a, 's, T> {
    place: &'a mut Vec<T>,
    src: Source<'s>,
}

impl<'de, T: LenientStruct + Lenient> Fill<'de> for OneOrManyFill<'_, '_, T> {
    fn reset(self) {
        self.place.clear();
    }

    fn fill<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: LenientStruct + Lenient> Visitor<'de> for OneOrManyFill<'_, '_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML list or mapping")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        *self.place = collect_seq(seq, self.src)?;
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let mut item = T::default();
        fill_struct(&mut item, map, self.src)?;
        *self.place = vec![item];
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Scalars

/// How a scalar was written, which decides how yaml.v2 resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Style {
    /// Plain (unquoted, untagged): resolved by the YAML 1.1 rules of yaml.v2.
    Plain,
    /// Quoted, block (`|`, `>`), or anything we cannot locate in the input: always a string.
    Quoted,
    /// Explicitly tagged (`!!int 2`, `!!str 2`, `!foo x`).
    Tagged(Tag),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    Str,
    Binary,
    Int,
    Float,
    Bool,
    Null,
    Other,
}

impl Tag {
    fn from_token(tok: &[u8]) -> Tag {
        let name: &[u8] = if let Some(rest) = tok.strip_prefix(b"!!") {
            rest
        } else if let Some(rest) = tok
            .strip_prefix(b"!<tag:yaml.org,2002:")
            .and_then(|r| r.strip_suffix(b">"))
        {
            rest
        } else {
            return Tag::Other;
        };
        match name {
            b"str" => Tag::Str,
            b"binary" => Tag::Binary,
            b"int" => Tag::Int,
            b"float" => Tag::Float,
            b"bool" => Tag::Bool,
            b"null" => Tag::Null,
            _ => Tag::Other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Tag::Str => "!!str",
            Tag::Binary => "!!binary",
            Tag::Int => "!!int",
            Tag::Float => "!!float",
            Tag::Bool => "!!bool",
            Tag::Null => "!!null",
            Tag::Other => "a custom tag",
        }
    }
}

/// A non-null scalar with its text and how it was written.
pub(crate) struct Scalar {
    pub text: String,
    pub style: Style,
}

impl Scalar {
    /// What yaml.v2 resolves this scalar to.
    pub(crate) fn resolve(&self) -> Resolved {
        match self.style {
            Style::Plain => resolve(&self.text),
            Style::Tagged(Tag::Int | Tag::Float | Tag::Bool | Tag::Null) => resolve(&self.text),
            Style::Quoted | Style::Tagged(_) => Resolved::Str,
        }
    }

    /// yaml.v2 refuses a core tag that does not match the text (`!!int abc`).
    fn check_tag(&self) -> Result<(), String> {
        let Style::Tagged(tag) = self.style else {
            return Ok(());
        };
        let ok = match (tag, resolve(&self.text)) {
            (Tag::Int, Resolved::Int(_)) => true,
            (Tag::Float, Resolved::Float(_)) => true,
            (Tag::Bool, Resolved::Bool(_)) => true,
            (Tag::Null, Resolved::Null) => true,
            (Tag::Int | Tag::Float | Tag::Bool | Tag::Null, _) => false,
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("cannot decode `{}` as {}", self.text, tag.name()))
        }
    }

    /// The value of a string field: the literal text.
    pub(crate) fn into_string(self) -> Result<String, String> {
        self.check_tag()?;
        Ok(self.text)
    }

    /// The value of an integer field (Go `int`, 64 bit).
    pub(crate) fn to_i64(&self) -> Result<i64, String> {
        self.check_tag()?;
        match self.resolve() {
            Resolved::Int(i) => {
                i64::try_from(i).map_err(|_| format!("`{}` overflows a 64-bit integer", self.text))
            }
            // Go converts with int64(f) after checking the range: truncation toward zero.
            Resolved::Float(f) if (-TWO_POW_63..TWO_POW_63).contains(&f) => Ok(f.trunc() as i64),
            Resolved::Float(_) => Err(format!("`{}` does not fit a 64-bit integer", self.text)),
            _ => Err(format!("cannot decode `{}` as an integer", self.text)),
        }
    }

    /// The value of a boolean field (YAML 1.1 set).
    pub(crate) fn to_bool(&self) -> Result<bool, String> {
        self.check_tag()?;
        match self.resolve() {
            Resolved::Bool(b) => Ok(b),
            _ => Err(format!("cannot decode `{}` as a boolean", self.text)),
        }
    }
}

/// 2^63: integer fields take floats in `[-2^63, 2^63)`.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// Decodes the next map value as a possibly-null scalar (`None` for null); for callers that
/// need to know how the scalar was written.
pub(crate) fn next_scalar<'de, A: MapAccess<'de>>(
    map: &mut A,
    src: Source<'_>,
) -> Result<Option<Scalar>, A::Error> {
    struct Seed<'s>(Source<'s>);
    impl<'de> DeserializeSeed<'de> for Seed<'_> {
        type Value = Option<Scalar>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Scalar>, D::Error> {
            d.deserialize_option(OptScalar { src: self.0 })
        }
    }
    map.next_value_seed(Seed(src))
}

/// Decodes a possibly-null scalar: `None` for null / empty.
pub(crate) struct OptScalar<'s> {
    src: Source<'s>,
}

impl<'de> Visitor<'de> for OptScalar<'_> {
    type Value = Option<Scalar>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML scalar")
    }

    fn visit_none<E: de::Error>(self) -> Result<Option<Scalar>, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<Scalar>, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<Scalar>, D::Error> {
        d.deserialize_str(ScalarVisitor { src: self.src }).map(Some)
    }
}

struct ScalarVisitor<'s> {
    src: Source<'s>,
}

impl<'de> Visitor<'de> for ScalarVisitor<'_> {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML scalar")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar, E> {
        Ok(Scalar {
            style: classify(self.src, v),
            text: v.to_owned(),
        })
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        // Not a slice of the input: escapes, folding or a block scalar, so never plain.
        Ok(Scalar {
            text: v.to_owned(),
            style: Style::Quoted,
        })
    }
}

/// Finds how the scalar `v` (a slice of `src`) was written: quotes around it, and a tag
/// (`!!int`, `!foo`) before it on the same line, possibly next to an anchor.
fn classify(src: Source<'_>, v: &str) -> Style {
    let base = src.text.as_ptr() as usize;
    let p = v.as_ptr() as usize;
    if p < base || p + v.len() > base + src.text.len() {
        return Style::Quoted;
    }
    let bytes = src.text.as_bytes();
    let start = p - base;
    let end = start + v.len();
    let quoted = start > 0
        && matches!(bytes[start - 1], b'"' | b'\'')
        && bytes.get(end) == Some(&bytes[start - 1]);
    let node_start = if quoted { start - 1 } else { start };
    match find_tag(bytes, node_start) {
        Some(tag) => Style::Tagged(tag),
        None if quoted => Style::Quoted,
        None => Style::Plain,
    }
}

fn find_tag(bytes: &[u8], mut i: usize) -> Option<Tag> {
    // At most two node properties (anchor and tag, in either order) precede a scalar.
    for _ in 0..2 {
        while i > 0 && matches!(bytes[i - 1], b' ' | b'\t') {
            i -= 1;
        }
        let end = i;
        while i > 0
            && !matches!(
                bytes[i - 1],
                b' ' | b'\t' | b'\n' | b'\r' | b'[' | b'{' | b','
            )
        {
            i -= 1;
        }
        let tok = &bytes[i..end];
        match tok.first() {
            Some(b'!') => return Some(Tag::from_token(tok)),
            Some(b'&') => continue,
            _ => return None,
        }
    }
    None
}

impl Lenient for String {
    fn decode<'de, D: Deserializer<'de>>(&mut self, d: D, src: Source<'_>) -> Result<(), D::Error> {
        *self = match d.deserialize_option(OptScalar { src })? {
            None => String::new(),
            Some(s) => s.into_string().map_err(de::Error::custom)?,
        };
        Ok(())
    }
}

impl Lenient for i64 {
    fn decode<'de, D: Deserializer<'de>>(&mut self, d: D, src: Source<'_>) -> Result<(), D::Error> {
        *self = match d.deserialize_option(OptScalar { src })? {
            None => 0,
            Some(s) => s.to_i64().map_err(de::Error::custom)?,
        };
        Ok(())
    }
}

impl Lenient for bool {
    fn decode<'de, D: Deserializer<'de>>(&mut self, d: D, src: Source<'_>) -> Result<(), D::Error> {
        *self = match d.deserialize_option(OptScalar { src })? {
            None => false,
            Some(s) => s.to_bool().map_err(de::Error::custom)?,
        };
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// yaml.v2 scalar resolution (resolve.go of the vendored revision, Go 1.8 strconv)

/// What a plain scalar means to yaml.v2.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Resolved {
    Null,
    Bool(bool),
    /// Integers in `[-2^63, 2^64)` (Go's ParseInt or ParseUint succeeded).
    Int(i128),
    Float(f64),
    /// The merge key `<<`.
    Merge,
    Str,
}

/// Resolves a plain scalar as yaml.v2 does.
pub(crate) fn resolve(s: &str) -> Resolved {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
            return Resolved::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => {
            return Resolved::Bool(false)
        }
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        "<<" => return Resolved::Merge,
        _ => {}
    }
    match s.as_bytes()[0] {
        b'.' => {
            if is_dot_float(s) {
                if let Ok(f) = s.parse::<f64>() {
                    if f.is_finite() {
                        return Resolved::Float(f);
                    }
                }
            }
            Resolved::Str
        }
        b'+' | b'-' | b'0'..=b'9' => {
            // Most such strings (UUIDs starting with a digit, plain
            // numbers) have no `_`: no copy for them.
            let plain: std::borrow::Cow<'_, str> = if s.contains('_') {
                s.chars().filter(|&c| c != '_').collect::<String>().into()
            } else {
                s.into()
            };
            if let Some(i) = go_parse_int(&plain) {
                return Resolved::Int(i);
            }
            if is_yaml_style_float(&plain) {
                if let Ok(f) = plain.parse::<f64>() {
                    // Go's ParseFloat reports out-of-range values as errors.
                    if f.is_finite() {
                        return Resolved::Float(f);
                    }
                }
            }
            if let Some(rest) = plain.strip_prefix("0b") {
                if let Some(i) = go_parse_signed_radix(rest, 2) {
                    return Resolved::Int(i);
                }
            } else if let Some(rest) = plain.strip_prefix("-0b") {
                if let Some(i) = go_parse_signed_radix(rest, 2) {
                    return Resolved::Int(-i);
                }
            }
            Resolved::Str
        }
        _ => Resolved::Str,
    }
}

/// Go 1.8 `strconv.ParseInt(s, 0, 64)`, falling back to `ParseUint(s, 0, 64)`: optional sign,
/// `0x`/`0X` hex, leading-`0` octal, decimal.
fn go_parse_int(s: &str) -> Option<i128> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let value = go_parse_uint_base0(body)?;
    if neg {
        // ParseInt: magnitude up to 2^63.
        (value <= 1u128 << 63).then(|| -(value as i128))
    } else if s.starts_with('+') {
        (value < 1u128 << 63).then_some(value as i128)
    } else {
        // ParseInt up to 2^63-1, then ParseUint up to 2^64-1.
        (value <= u64::MAX as u128).then_some(value as i128)
    }
}

fn go_parse_uint_base0(s: &str) -> Option<u128> {
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    let (radix, digits) = if b[0] == b'0' && b.len() > 1 && (b[1] == b'x' || b[1] == b'X') {
        (16, &s[2..])
    } else if b[0] == b'0' {
        (8, s)
    } else {
        (10, s)
    };
    parse_digits(digits, radix)
}

fn parse_digits(digits: &str, radix: u32) -> Option<u128> {
    if digits.is_empty() {
        return None;
    }
    let mut v: u128 = 0;
    for c in digits.chars() {
        let d = c.to_digit(radix)?;
        v = v.checked_mul(radix as u128)?.checked_add(d as u128)?;
        if v > u64::MAX as u128 {
            return None;
        }
    }
    Some(v)
}

/// `strconv.ParseInt(s, radix, 64)` with an optional sign.
fn go_parse_signed_radix(s: &str, radix: u32) -> Option<i128> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let v = parse_digits(body, radix)?;
    if neg {
        (v <= 1u128 << 63).then(|| -(v as i128))
    } else {
        (v < 1u128 << 63).then_some(v as i128)
    }
}

/// yaml.v2's `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// What Go's `ParseFloat` accepts for a text starting with `.`: `.5`, `.5e3`.
fn is_dot_float(s: &str) -> bool {
    is_yaml_style_float(s) && s.starts_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq)]
    struct Inner {
        a: String,
        b: i64,
    }
    lenient_struct!(Inner { "a" => a, "b" => b });

    #[derive(Debug, Default, PartialEq)]
    struct Doc {
        s: String,
        i: i64,
        b: bool,
        l: Vec<String>,
        m: Inner,
        many: OneOrMany<Inner>,
    }
    lenient_struct!(Doc { "s" => s, "i" => i, "b" => b, "l" => l, "m" => m, "many" => many });

    fn doc(text: &str) -> Result<Doc, DecodeError> {
        decode_bytes(text.as_bytes())
    }

    fn int(v: &str) -> Result<i64, DecodeError> {
        doc(&format!("i: {v}\n")).map(|d| d.i)
    }

    fn boolean(v: &str) -> Result<bool, DecodeError> {
        doc(&format!("b: {v}\n")).map(|d| d.b)
    }

    fn string(v: &str) -> String {
        doc(&format!("s: {v}\n")).unwrap().s
    }

    #[test]
    fn integers_follow_yaml_v2() {
        for (text, want) in [
            ("2", 2),
            ("-2", -2),
            ("+2", 2),
            ("010", 8),
            ("-010", -8),
            ("08", 8),
            ("0x1F", 31),
            ("0X1f", 31),
            ("-0x1F", -31),
            ("0b101", 5),
            ("-0b101", -5),
            ("1_000", 1000),
            ("2.0", 2),
            ("2.5", 2),
            ("-2.7", -2),
            ("1e3", 1000),
            (".5", 0),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
            ("!!int 7", 7),
            ("&x 9", 9),
        ] {
            assert_eq!(int(text).unwrap(), want, "{text}");
        }
        for text in [
            "\"2\"",
            "'2'",
            "!!str 2",
            "true",
            "yes",
            "abc",
            "9223372036854775808",
            "1e400",
            ".inf",
            ".nan",
            "0o17",
            "+0b1",
            "[1]",
            "{a: 1}",
            "|\n  2",
            "!!float 2",
        ] {
            assert!(int(text).is_err(), "{text} must be refused");
        }
        for null in ["~", "null", "NULL", ""] {
            assert_eq!(int(null).unwrap(), 0);
        }
    }

    #[test]
    fn booleans_follow_yaml_1_1() {
        for t in [
            "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON",
        ] {
            assert!(boolean(t).unwrap(), "{t}");
        }
        for f in [
            "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", "~", "",
        ] {
            assert!(!boolean(f).unwrap(), "{f}");
        }
        for bad in ["\"true\"", "'yes'", "1", "0", "tRUE", "[true]"] {
            assert!(boolean(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn strings_take_the_literal_text() {
        assert_eq!(string("12345"), "12345");
        assert_eq!(string("yes"), "yes");
        assert_eq!(string("0x1F"), "0x1F");
        assert_eq!(string("1e3"), "1e3");
        assert_eq!(string("\"~\""), "~");
        assert_eq!(string("'null'"), "null");
        assert_eq!(string("~"), "");
        assert_eq!(string("null"), "");
        assert_eq!(string(""), "");
        assert_eq!(string("!!str ~"), "~");
        assert_eq!(string("\"a\\tb\""), "a\tb");
        assert!(doc("s: [a]\n").is_err());
        assert!(doc("s: {a: 1}\n").is_err());
        assert!(doc("s: !!int abc\n").is_err());
    }

    #[test]
    fn structure_rules() {
        // Unknown keys ignored, missing keys zero, duplicates: last wins, nested merge.
        let d = doc("zz: [1, 2]\ns: a\ns: b\nm: {a: x}\nm: {b: 3}\n").unwrap();
        assert_eq!(d.s, "b");
        assert_eq!(
            d.m,
            Inner {
                a: "x".into(),
                b: 3
            }
        );
        // Null struct and list.
        let d = doc("m: ~\nl: null\n").unwrap();
        assert_eq!(d, Doc::default());
        // Wrong shapes.
        assert!(doc("m: x\n").is_err());
        assert!(doc("m: [1]\n").is_err());
        assert!(doc("l: x\n").is_err());
        assert!(doc("l: {a: 1}\n").is_err());
        assert!(doc("- a\n").is_err());
        assert!(doc("just a scalar\n").is_err());
        assert!(doc("a:\n\tb: 1\n").is_err());
        // Empty documents.
        assert_eq!(doc("").unwrap(), Doc::default());
        assert_eq!(doc("~\n").unwrap(), Doc::default());
        assert_eq!(doc("# comment only\n").unwrap(), Doc::default());
        // Only the first document counts; the rest is not even parsed.
        assert_eq!(doc("s: a\n---\n: [ {\n").unwrap().s, "a");
        // Byte-order mark, CRLF, document markers.
        assert_eq!(doc("\u{feff}---\r\ns: a\r\n...\r\n").unwrap().s, "a");
        // Invalid UTF-8.
        assert!(decode_bytes::<Doc>(b"s: \xff\n").is_err());
    }

    #[test]
    fn merge_keys_and_aliases() {
        let d = doc("base: &b {a: x, b: 2}\nm:\n  <<: *b\n  b: 3\n").unwrap();
        assert_eq!(
            d.m,
            Inner {
                a: "x".into(),
                b: 3
            }
        );
        // A merge after an explicit key overrides it (yaml.v2 applies merges in order).
        let d = doc("base: &b {b: 2}\nm:\n  b: 3\n  <<: *b\n").unwrap();
        assert_eq!(d.m.b, 2);
        let d = doc("x: &v 7\ni: *v\n").unwrap();
        assert_eq!(d.i, 7);
        // A quoted "<<" is an ordinary (unknown) key.
        let d = doc("m:\n  \"<<\": {a: x}\n").unwrap();
        assert_eq!(d.m, Inner::default());
        assert!(doc("m:\n  <<: [{a: x}]\n").is_err());
    }

    #[test]
    fn one_or_many() {
        assert_eq!(
            doc("many: {a: x}\n").unwrap().many.0,
            vec![Inner {
                a: "x".into(),
                b: 0
            }]
        );
        assert_eq!(doc("many: [{a: x}, {b: 1}]\n").unwrap().many.0.len(), 2);
        assert!(doc("many: ~\n").unwrap().many.0.is_empty());
        assert!(doc("many: x\n").is_err());
    }

    #[test]
    fn defaults_survive_decoding_over_them() {
        let mut d = Doc {
            s: "default".into(),
            i: 5,
            ..Doc::default()
        };
        decode_bytes_into(b"i: 6\n", &mut d).unwrap();
        assert_eq!((d.s.as_str(), d.i), ("default", 6));
        decode_bytes_into(b"", &mut d).unwrap();
        assert_eq!(d.i, 6);
    }

    #[test]
    fn resolution_table() {
        assert_eq!(resolve("0b-1"), Resolved::Int(-1));
        assert_eq!(
            resolve("18446744073709551615"),
            Resolved::Int(u64::MAX as i128)
        );
        assert_eq!(resolve("12:34"), Resolved::Str);
        assert_eq!(resolve("1.2.3"), Resolved::Str);
        assert_eq!(resolve("-"), Resolved::Str);
        assert_eq!(resolve("+1"), Resolved::Int(1));
        assert_eq!(resolve("0x"), Resolved::Str);
        assert_eq!(resolve("._5"), Resolved::Str);
        assert_eq!(resolve("1."), Resolved::Float(1.0));
        assert_eq!(resolve("+.5"), Resolved::Float(0.5));
        assert_eq!(resolve(".5e1"), Resolved::Float(5.0));
        assert_eq!(resolve("1e400"), Resolved::Str);
        assert_eq!(resolve("0777"), Resolved::Int(511));
        assert_eq!(resolve("+0x1F"), Resolved::Int(31));
        assert_eq!(resolve("0x-1"), Resolved::Str);
    }
}
