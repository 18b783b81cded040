//! The fast path of reading one Whip line: a strict scan of the common line
//! shape, a flat object of `"key": value` pairs whose keys have no escapes and
//! whose values are strings, numbers, `true`, `false` or `null`.
//!
//! Invariant: when [`scan_line`] answers, the answer is exactly what the serde
//! path ([`super::rules::parse_line`]'s fallback) gives for the line — the same
//! `begin`, `end`, `datetime` text and the same payload bytes. Anything else
//! (escaped keys, nested values, a duplicate key, a missing field, a bad
//! address, any syntax error ...) is not answered here: the serde path reads the
//! line again and names the error. A line is only accepted when every part of
//! it is something the serde path accepts too:
//!
//! - the whole line is UTF-8 (serde checks each key and raw value);
//! - whitespace is serde's (space, tab, `\r`, `\n`);
//! - a key is `"..."` without `\` or control characters: its serde
//!   re-serialisation is the same bytes;
//! - a string value has no control characters and only the escapes serde's
//!   skipping accepts (`\u` with four hex digits, not decoded: the payload's
//!   strict check runs later as for the serde path);
//! - a number follows JSON's grammar (its range is checked later, as for the
//!   serde path);
//! - `begin`, `end` and `datetime` are strings without escapes.

use std::borrow::Cow;

use super::parse::SeenKeys;
use super::rules::LineFields;
use crate::ip::IpKey;
// A plain stretch of string ends at a byte a JSON writer escapes (`"`, `\\`
// or a control character): one word test for both.
use crate::json::word_needs_escape;

/// Per-thread state of the scan: the keys of the last line accepted, in order.
/// A line with the same keys in the same order has no duplicate key (the last
/// line was checked), so the common line skips the duplicate search.
#[derive(Default)]
pub(super) struct KeyOrder {
    /// The keys of the last line without a duplicate, each followed by `"`
    /// (which a key without escapes cannot hold).
    last: Vec<u8>,
    /// Where the keys of the line being scanned are in it (without quotes).
    keys: Vec<(usize, usize)>,
    /// Where its payload's keys are (with quotes).
    payload_keys: Vec<(usize, usize)>,
}

/// JSON whitespace (serde_json's set).
#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\t' | b'\r')
}

/// `a == b`, without a call for the short slices keys are.
#[inline]
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_le_bytes(w)
    };
    match n {
        // Two words that may overlap cover it.
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        0..8 => a.iter().zip(b).all(|(x, y)| x == y),
        _ => a == b,
    }
}

/// A cursor over the line's bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    #[inline]
    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.at += 1;
        }
    }

    #[inline]
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// A string from its opening quote; returns whether it had a `\`. `None`
    /// when it is not a string serde accepts.
    #[inline]
    fn string(&mut self) -> Option<bool> {
        if !self.eat(b'"') {
            return None;
        }
        let mut escaped = false;
        loop {
            // Skip the bytes that need no look (most of a string) a word at
            // a time, then byte by byte to the one that does.
            while let Some(word) = self.bytes.get(self.at..self.at + 8) {
                let mut w = [0u8; 8];
                w.copy_from_slice(word);
                if word_needs_escape(u64::from_le_bytes(w)) {
                    break;
                }
                self.at += 8;
            }
            loop {
                let b = self.peek()?;
                if b == b'"' || b == b'\\' {
                    break;
                }
                if b < 0x20 {
                    return None;
                }
                self.at += 1;
            }
            if self.eat(b'"') {
                return Some(escaped);
            }
            // A backslash.
            escaped = true;
            self.at += 1;
            match self.peek()? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.at += 1,
                b'u' => {
                    let hex = self.bytes.get(self.at + 1..self.at + 5)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return None;
                    }
                    self.at += 5;
                }
                _ => return None,
            }
        }
    }

    #[inline]
    fn digits(&mut self) -> usize {
        let start = self.at;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
        self.at - start
    }

    /// A number: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        self.eat(b'-');
        match self.peek()? {
            b'0' => {
                self.at += 1;
                if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.eat(b'.') && self.digits() == 0 {
            return None;
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(())
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            Some(())
        } else {
            None
        }
    }

    /// A flat value (not an object or array); returns whether it is a
    /// string with a `\`, or `None` when it is not a flat value serde accepts.
    #[inline]
    fn flat_value(&mut self) -> Option<bool> {
        match self.peek()? {
            b'"' => self.string(),
            b'-' | b'0'..=b'9' => self.number().map(|()| false),
            b't' => self.literal(b"true").map(|()| false),
            b'f' => self.literal(b"false").map(|()| false),
            b'n' => self.literal(b"null").map(|()| false),
            _ => None,
        }
    }
}

/// Scans a line of the common shape: `begin`, `end`, `datetime` and the
/// payload (written into `payload`, cleared first), exactly as the serde path
/// gives them; `None` for any other line (the serde path decides).
pub(super) fn scan_line<'a>(
    line: &'a [u8],
    payload: &mut Vec<u8>,
    keys: &mut SeenKeys,
    order: &mut KeyOrder,
) -> Option<LineFields<'a>> {
    payload.clear();
    // Slices of `text` below are at ASCII bytes (quotes, `:`, `,`): char
    // boundaries.
    let text = std::str::from_utf8(line).ok()?;
    let mut c = Cursor {
        bytes: text.as_bytes(),
        at: 0,
    };
    order.keys.clear();
    order.payload_keys.clear();
    // Whether the keys so far are those of `order.last`, up to `order_at`.
    let (mut same_order, mut order_at) = (true, 0);
    // A stretch of the line that goes into the payload as it is written:
    // compact pairs (`"key":value`) with a bare `,` between them.
    let mut run: Option<(usize, usize)> = None;
    let flush = |payload: &mut Vec<u8>, run: Option<(usize, usize)>| {
        if let Some((s, e)) = run {
            if !payload.is_empty() {
                payload.push(b',');
            }
            payload.extend_from_slice(&line[s..e]);
        }
    };
    let (mut begin, mut end, mut datetime): (Option<&str>, Option<&str>, Option<&str>) =
        (None, None, None);
    c.skip_ws();
    if !c.eat(b'{') {
        return None;
    }
    c.skip_ws();
    if c.peek()? != b'}' {
        loop {
            let key_start = c.at;
            if c.string()? {
                return None;
            }
            let key_end = c.at;
            let key = &line[key_start + 1..key_end - 1];
            order.keys.push((key_start + 1, key_end - 1));
            if same_order {
                let n = key.len();
                same_order = order.last.get(order_at + n) == Some(&b'"')
                    && same_bytes(&order.last[order_at..order_at + n], key);
                order_at += n + 1;
            }
            c.skip_ws();
            if !c.eat(b':') {
                return None;
            }
            c.skip_ws();
            let value_start = c.at;
            let escaped = c.flat_value()?;
            let value_end = c.at;
            let slot = match key {
                b"begin" => Some(&mut begin),
                b"end" => Some(&mut end),
                b"datetime" => Some(&mut datetime),
                _ => None,
            };
            match slot {
                Some(slot) => {
                    let value = &text[value_start..value_end];
                    if escaped || slot.is_some() || !value.starts_with('"') {
                        return None;
                    }
                    *slot = Some(&value[1..value.len() - 1]);
                }
                None => {
                    order.payload_keys.push((key_start, key_end));
                    match &mut run {
                        // Right after the pair before and its `,`.
                        Some((_, e)) if value_start == key_end + 1 && key_start == *e + 1 => {
                            *e = value_end;
                        }
                        _ if value_start == key_end + 1 => {
                            flush(payload, run);
                            run = Some((key_start, value_end));
                        }
                        _ => {
                            flush(payload, run.take());
                            if !payload.is_empty() {
                                payload.push(b',');
                            }
                            payload.extend_from_slice(&line[key_start..key_end]);
                            payload.push(b':');
                            payload.extend_from_slice(&line[value_start..value_end]);
                        }
                    }
                }
            }
            c.skip_ws();
            if c.eat(b',') {
                c.skip_ws();
                continue;
            }
            break;
        }
    }
    flush(payload, run);
    if !c.eat(b'}') {
        return None;
    }
    c.skip_ws();
    if c.at != c.bytes.len() {
        return None;
    }
    if !same_order || order_at != order.last.len() {
        // Keys compared as written (with their quotes): without escapes, as
        // the serde path compares them.
        keys.clear();
        for &(s, e) in &order.payload_keys {
            if keys.insert(line, s, e) {
                return None;
            }
        }
        order.last.clear();
        for &(s, e) in &order.keys {
            order.last.extend_from_slice(&line[s..e]);
            order.last.push(b'"');
        }
    }
    Some(LineFields {
        // `None` when not an address: the serde path names the error.
        begin: IpKey::parse(begin?).ok()?,
        end: IpKey::parse(end?).ok()?,
        datetime: Cow::Borrowed(datetime?),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::snapshot::rules::parse_line_serde;

    /// What the serde path gives: fields and payload, or `None` on an error.
    fn serde(line: &[u8]) -> Option<(IpKey, IpKey, String, Vec<u8>)> {
        let (mut payload, mut keys) = (Vec::new(), SeenKeys::default());
        let f = parse_line_serde(line, &mut payload, &mut keys).ok()?;
        Some((f.begin, f.end, f.datetime.into_owned(), payload))
    }

    /// Scans `lines` with one state (as a worker does) and checks each answer
    /// against serde's; returns how many lines the scan answered.
    fn agree(lines: &[Vec<u8>]) -> usize {
        let (mut payload, mut keys, mut order) =
            (Vec::new(), SeenKeys::default(), KeyOrder::default());
        let mut answered = 0;
        for line in lines {
            let Some(f) = scan_line(line, &mut payload, &mut keys, &mut order) else {
                continue;
            };
            answered += 1;
            let fast = (f.begin, f.end, f.datetime.into_owned(), payload.clone());
            assert_eq!(
                Some(fast),
                serde(line),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        answered
    }

    const CITY: &str = r#"{"begin":"1.0.64.0","end":"1.0.79.255","datetime":"2025-01-01T00:00:00Z","city":"Hiroshima","country_code":"JP","latitude":34.39979934692383,"longitude":-132.45030212402344,"postcode":"730-0851","state1":"Hiroshima","state2":"","timezone":"Asia/Tokyo"}"#;

    #[test]
    fn the_common_line_is_scanned_as_serde_reads_it() {
        let lines: Vec<Vec<u8>> = [
            CITY,
            r#"  { "begin" : "2001:db8::" , "end":"2001:db8::ff",	"datetime":"2024-01-01", "n": -0.5e+10, "t": true, "f": false, "z": null, "s": "a\"b\\c\/\u00e9\n" }  "#,
            r#"{"datetime":"x","end":"::ffff:1.2.3.4","begin":"1.2.3.4"}"#,
            r#"{"begin":"1.2.3.4","end":"1.2.3.4","datetime":"d","é":"ü☃"}"#,
        ]
        .iter()
        .map(|l| l.as_bytes().to_vec())
        .collect();
        assert_eq!(agree(&lines), lines.len());
        let (mut payload, mut keys, mut order) =
            (Vec::new(), SeenKeys::default(), KeyOrder::default());
        let f = scan_line(CITY.as_bytes(), &mut payload, &mut keys, &mut order).unwrap();
        assert_eq!(f.begin, IpKey::parse("1.0.64.0").unwrap());
        assert_eq!(f.end, IpKey::parse("1.0.79.255").unwrap());
        assert_eq!(f.datetime, "2025-01-01T00:00:00Z");
        assert!(payload.starts_with(br#""city":"Hiroshima","country_code":"JP","#));
        assert!(payload.ends_with(br#""timezone":"Asia/Tokyo""#));
    }

    /// Lines the scan leaves to serde: every error, and the shapes it does not
    /// read (the serde path then decides).
    #[test]
    fn anything_unusual_is_left_to_serde() {
        let base = r#""begin":"1.0.0.0","end":"1.0.0.1","datetime":"d""#;
        let cases = [
            format!(r#"{{{base},"a":{{"b":1}}}}"#),
            format!(r#"{{{base},"a":[1]}}"#),
            format!(r#"{{{base},"\u0061":1}}"#),
            format!(r#"{{{base},"a":1,"a":2}}"#),
            format!(r#"{{{base},"begin":"1.0.0.0"}}"#),
            format!(r#"{{{base},}}"#),
            format!(r#"{{{base},"a":01}}"#),
            format!(r#"{{{base},"a":1.}}"#),
            format!(r#"{{{base},"a":1e}}"#),
            format!(r#"{{{base},"a":-}}"#),
            format!(r#"{{{base},"a":tru}}"#),
            format!(r#"{{{base},"a":"\x"}}"#),
            format!(r#"{{{base},"a":"\u12g4"}}"#),
            format!("{{{base},\"a\":\"tab\there\"}}"),
            format!(r#"{{{base}}} x"#),
            format!(r#"{{{base}"#),
            format!(r#"{{{base},"a" 1}}"#),
            r#"{"begin":"1.0.0.0","end":"1.0.0.1"}"#.into(),
            r#"{"begin":1,"end":"1.0.0.1","datetime":"d"}"#.into(),
            r#"{"begin":"1.0.0.256","end":"1.0.0.1","datetime":"d"}"#.into(),
            r#"{"begin":"1.0.0.0","end":"1.0.0.1","datetime":"\u0064"}"#.into(),
            r#"[1]"#.into(),
            r#"{}"#.into(),
            String::new(),
        ];
        let (mut payload, mut keys, mut order) =
            (Vec::new(), SeenKeys::default(), KeyOrder::default());
        for line in &cases {
            assert!(
                scan_line(line.as_bytes(), &mut payload, &mut keys, &mut order).is_none(),
                "{line}"
            );
        }
        // Not UTF-8 (in a value serde would only skip).
        let mut bad = format!(r#"{{{base},"a":"x"}}"#).into_bytes();
        let at = bad.len() - 3;
        bad[at] = 0xff;
        assert!(scan_line(&bad, &mut payload, &mut keys, &mut order).is_none());
        assert!(serde(&bad).is_none());
    }

    /// A line with the keys of the line before, in the same order, skips the
    /// duplicate search: one with a repeated key must still be found.
    #[test]
    fn duplicates_are_found_after_lines_of_other_keys() {
        let line = |keys: &str| {
            format!(r#"{{"begin":"1.0.0.0","end":"1.0.0.1","datetime":"d",{keys}}}"#).into_bytes()
        };
        let (mut payload, mut keys, mut order) =
            (Vec::new(), SeenKeys::default(), KeyOrder::default());
        let mut scan = |l: &[u8]| scan_line(l, &mut payload, &mut keys, &mut order).is_some();
        assert!(scan(&line(r#""a":1,"b":2"#)));
        assert!(scan(&line(r#""a":3,"b":4"#)));
        assert!(!scan(&line(r#""a":1,"a":2"#)));
        assert!(!scan(&line(r#""a":1,"a":2"#)));
        assert!(scan(&line(r#""a":1,"b":2"#)));
        assert!(!scan(&line(r#""b":1,"b":2"#)));
    }

    #[test]
    fn short_compares() {
        let texts = [
            "",
            "a",
            "ab",
            "abcdefg",
            "abcdefgh",
            "abcdefghi",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
        ];
        for a in texts {
            for b in texts {
                assert_eq!(same_bytes(a.as_bytes(), b.as_bytes()), a == b, "{a} {b}");
                let mut c = a.as_bytes().to_vec();
                if let Some(last) = c.last_mut() {
                    *last ^= 1;
                    assert!(!same_bytes(a.as_bytes(), &c));
                    c[0] ^= 1;
                }
            }
        }
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("\"begin\"".to_string()),
            Just("\"end\"".to_string()),
            Just("\"datetime\"".to_string()),
            Just("\"city\"".to_string()),
            Just("\"cc\"".to_string()),
            Just("\"\"".to_string()),
            Just("\"b\\u0065gin\"".to_string()),
            "\"[a-z\u{e9}\u{2603} \\\\\"\t/]{0,6}\"",
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("\"1.0.0.0\"".to_string()),
            Just("\"1.0.0.255\"".to_string()),
            Just("\"2001:db8::1\"".to_string()),
            Just("\"2024-01-01T00:00:00Z\"".to_string()),
            "\"[0-9.:a-f]{0,12}\"",
            "\"([a-zA-Z\u{e9}\u{2603} \t\"/]|\\\\[\"\\\\/bfnrtux]|\\\\u[0-9a-fA-Fg]{4}){0,8}\"",
            "-?[0-9]{0,3}(\\.[0-9]{0,2})?([eE][+-]?[0-9]{0,2})?",
            Just("true".to_string()),
            Just("false".to_string()),
            Just("null".to_string()),
            Just("nul".to_string()),
            "\\[[0-9, ]{0,5}\\]",
            "\\{(\"a\":[0-9])?\\}",
        ]
    }

    fn ws() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => Just(String::new()),
            1 => "[ \t\r\n\u{b}]{1,2}",
        ]
    }

    /// A line of fields, each with whitespace around its parts.
    fn line() -> impl Strategy<Value = Vec<u8>> {
        let field = (ws(), key(), ws(), ws(), value(), ws())
            .prop_map(|(a, k, b, c, v, d)| format!("{a}{k}{b}:{c}{v}{d}"));
        let shaped = prop::collection::vec(field, 0..8).prop_map(|fields| {
            let mut all = vec![
                r#""begin":"1.0.0.0""#.to_string(),
                r#""end":"1.0.0.255""#.to_string(),
                r#""datetime":"2024-01-01T00:00:00Z""#.to_string(),
            ];
            all.extend(fields);
            all
        });
        (
            shaped,
            any::<prop::sample::Index>(),
            ws(),
            ws(),
            any::<bool>(),
        )
            .prop_map(|(mut fields, at, w1, w2, shuffle)| {
                if shuffle {
                    let i = at.index(fields.len());
                    fields.swap(0, i);
                }
                format!("{w1}{{{}}}{w2}", fields.join(",")).into_bytes()
            })
    }

    /// A line with one byte changed, inserted or removed.
    fn mutated() -> impl Strategy<Value = Vec<u8>> {
        (line(), any::<prop::sample::Index>(), any::<u8>(), 0..3u8).prop_map(
            |(mut l, at, byte, how)| {
                if l.is_empty() {
                    return l;
                }
                let i = at.index(l.len());
                match how {
                    0 => l[i] = byte,
                    1 => l.insert(i, byte),
                    _ => {
                        l.remove(i);
                    }
                }
                l
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn the_scan_agrees_with_serde(lines in prop::collection::vec(
            prop_oneof![line(), mutated(), Just(CITY.as_bytes().to_vec())], 1..6)) {
            agree(&lines);
        }

        /// Plain lines (every value flat, keys without escapes) are answered.
        #[test]
        fn plain_lines_are_scanned(n in 0..6usize, v in "[a-z0-9 ]{0,10}") {
            let fields: String = (0..n).map(|i| format!(r#","k{i}":"{v}{i}""#)).collect();
            let l = format!(r#"{{"begin":"1.0.0.0","end":"1.0.0.1","datetime":"d"{fields}}}"#);
            prop_assert_eq!(agree(&[l.into_bytes()]), 1);
        }
    }
}
