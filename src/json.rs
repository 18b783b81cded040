//! Writing JSON by hand on the hot path: escaped strings and small helpers.
//!
//! Output records are assembled from pre-serialised pieces (the index's record
//! bytes, parsed log fields) into one reused buffer, so no value tree is built per
//! line. Inputs here are valid UTF-8 (`&str`); only `"`, `\` and control characters
//! need escaping. Reading JSON input borrows where it can ([`Key`], [`raw_str`]).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde_json::value::RawValue;

/// An object key read from JSON input: borrowed from the input unless it had
/// escapes (serde's own `Cow<str>` always copies).
pub struct Key<'a>(pub Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The text of a raw JSON string value (borrowed unless it has escapes), or
/// `None` when the value is not a string.
pub fn raw_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    if !text.starts_with('"') {
        return None;
    }
    if !text.contains('\\') {
        return Some(Cow::Borrowed(&text[1..text.len() - 1]));
    }
    serde_json::from_str::<String>(text).ok().map(Cow::Owned)
}

/// Which bytes need an escape in a JSON string.
const fn escape_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
}
static NEEDS_ESCAPE: [bool; 256] = escape_table();

/// Does any of these 8 bytes need an escape (`"`, `\\` or a control character)?
/// Bit tricks on a word ("SWAR"); exact, no false negatives or positives.
#[inline]
pub(crate) fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    // A byte below 0x20: clear the high bit first so bytes >= 0x80 do not count.
    let low = (w & !HIGHS).wrapping_sub(ONES * 0x20) & !w & HIGHS;
    low | has_zero(w ^ (ONES * u64::from(b'"'))) | has_zero(w ^ (ONES * u64::from(b'\\'))) != 0
}

/// Appends `s` as a JSON string literal (with quotes).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Fast path: copy whole words that need no escape.
    let mut start = 0;
    while start + 8 <= bytes.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[start..start + 8]);
        if word_needs_escape(u64::from_le_bytes(word)) {
            break;
        }
        start += 8;
    }
    out.extend_from_slice(&bytes[..start]);
    let bytes = &bytes[start..];
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !NEEDS_ESCAPE[b as usize] {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends `"key":` (the key must not need escaping).
pub fn write_key(out: &mut Vec<u8>, key: &str) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Appends a string or `null`.
pub fn write_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => write_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends an unsigned integer.
pub fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// The deepest `[`/`{` nesting of a JSON log line whipstream passes through:
/// strict parsers (serde_json, many others) stop at 128 levels, and the line is
/// written a level or two down in an enriched line.
pub const MAX_DEPTH: usize = 32;

/// Why JSON text is not what strict parsers read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrictError {
    #[error("a value nested deeper than {0} levels")]
    TooDeep(usize),
    #[error("not strict JSON: {0}")]
    NotStrict(String),
}

/// Checks JSON text the way a strict parser reads it: string escapes decoded (no
/// lone surrogate such as `"\ud800"`), numbers within `f64` (no `1e5000`), no
/// nesting deeper than `max_depth`. Lenient readers (a scan, a `RawValue`) let
/// such values through, and every line they are copied into would then be
/// refused downstream.
pub fn check_strict(json: &[u8], max_depth: usize) -> Result<(), StrictError> {
    if nesting_depth(json) > max_depth {
        return Err(StrictError::TooDeep(max_depth));
    }
    serde_json::from_slice::<Strict>(json).map_err(|e| {
        // The position is often in a rebuilt text, not the input: keep the message.
        let message = e.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(&*message, |(m, _)| m);
        // serde_json names a lone surrogate by where it noticed it.
        if message.contains("surrogate") || message.contains("end of hex escape") {
            return StrictError::NotStrict(format!(
                "{message} (a lone surrogate: a \\u escape of \\ud800 to \\udfff without its pair)"
            ));
        }
        StrictError::NotStrict(message.to_string())
    })?;
    Ok(())
}

/// Whether [`check_strict`] could refuse `json`: it has a `\u` escape, more
/// than 300 digits (a number beyond `f64` needs 309 without an exponent), an
/// `e`/`E` after a digit or a point (an exponent), or more than `max_depth`
/// brackets. Strings are not told apart (a false alarm only costs the strict
/// parse); the common line passes with two vectorised counts and two memchr
/// searches, so it is not parsed twice.
pub fn may_not_be_strict(json: &[u8], max_depth: usize) -> bool {
    if memchr::memmem::find(json, b"\\u").is_some() {
        return true;
    }
    let (mut brackets, mut digits) = (0usize, 0usize);
    for &b in json {
        brackets += usize::from(b == b'[' || b == b'{');
        digits += usize::from(b.is_ascii_digit());
    }
    if brackets > max_depth || digits > 300 {
        return true;
    }
    memchr::memchr2_iter(b'e', b'E', json)
        .any(|i| i > 0 && matches!(json[i - 1], b'0'..=b'9' | b'.'))
}

/// The deepest `[`/`{` nesting of JSON text, strings skipped.
fn nesting_depth(json: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in json {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Any JSON value, read completely (strings decoded, numbers converted) and kept
/// nowhere: a strict parse without building a tree.
struct Strict;

impl<'de> de::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        while seq.next_element::<Strict>()?.is_some() {}
        Ok(Strict)
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        while map.next_entry::<Strict, Strict>()?.is_some() {}
        Ok(Strict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_through_serde() {
        for s in [
            "plain",
            "quote \" and \\ backslash",
            "tab\tnew\nline\r",
            "\u{1}\u{1f}",
            "ünïcödé ☃",
            "",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, s);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn word_check_is_exact_for_every_byte_value() {
        for b in 0..=255u8 {
            for at in 0..8 {
                let mut w = *b"abcdefgh";
                w[at] = b;
                let want = b < 0x20 || b == b'"' || b == b'\\';
                assert_eq!(
                    word_needs_escape(u64::from_le_bytes(w)),
                    want,
                    "byte {b} at {at}"
                );
            }
        }
    }

    #[test]
    fn long_strings_with_late_escapes() {
        let s = "0123456789abcdefghij\"klmnop\\qrstuvwxyz\u{7f}\u{80}é";
        let mut out = Vec::new();
        write_str(&mut out, s);
        assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), s);
    }

    #[test]
    fn numbers() {
        for n in [0u64, 7, 10, 12345, u64::MAX] {
            let mut out = Vec::new();
            write_u64(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn strict_check_refuses_what_strict_parsers_refuse() {
        for bad in [r#"{"a":"\ud800"}"#, r#"{"a":1e5000}"#, r#"{"a":-1e400}"#] {
            assert!(may_not_be_strict(bad.as_bytes(), MAX_DEPTH), "{bad}");
            assert!(
                matches!(
                    check_strict(bad.as_bytes(), MAX_DEPTH),
                    Err(StrictError::NotStrict(_))
                ),
                "{bad}"
            );
        }
        let huge = format!("{{\"a\":1{}}}", "0".repeat(400));
        assert!(may_not_be_strict(huge.as_bytes(), MAX_DEPTH));
        assert!(check_strict(huge.as_bytes(), MAX_DEPTH).is_err());
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        assert!(may_not_be_strict(deep.as_bytes(), MAX_DEPTH));
        assert_eq!(
            check_strict(deep.as_bytes(), MAX_DEPTH),
            Err(StrictError::TooDeep(MAX_DEPTH))
        );
        // What strict parsers read is kept; the common line is not even parsed.
        let good = r#"{"a":"caf\u00e9 \ud83d\ude00","b":1.5e3,"c":[true,false,null]}"#;
        assert_eq!(check_strict(good.as_bytes(), MAX_DEPTH), Ok(()));
        let plain = r#"{"ip":"1.2.3.4","status":200,"t":-1.5,"ok":true,"s":"e10 \" x5 e"}"#;
        assert!(!may_not_be_strict(plain.as_bytes(), MAX_DEPTH));
    }
}
