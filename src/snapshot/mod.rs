//! Whip snapshot files: reading and validating one file completely.
//!
//! A snapshot is a file of JSON lines, each an object with `begin`, `end` (an
//! inclusive range, IPv4 or IPv6 text), `datetime` (the same instant on every line)
//! and any other fields. [`SnapshotFile::read`] reads a whole file (gzip detected by
//! its magic bytes, not its name) and either returns every range, or the first broken
//! rule with the file name and line number. Nothing is returned half-read, so a
//! rejected file never reaches the store.
//!
//! The fields other than `begin`/`end`/`datetime` become the *payload*: a JSON object
//! body (`"country":"CN"`) kept as ready-to-write bytes, deduplicated within the file.
//!
//! # Layout
//!
//! - this module: the [`SnapshotFile`] type and reading a Whip file whole;
//! - [`parse`](self::parse): one JSON line into raw range fields and payload bytes;
//! - [`scan`](self::scan): the fast path of that for the common line shape;
//! - [`rules`](self::rules): the rules across the lines of one file, payload interning;
//! - [`builder`](self::builder): snapshots from rows (CSV, MaxMind DB) and from parts;
//! - [`digest`](self::digest): the content hash that identifies a snapshot;
//! - [`error`](self::error): the rules a file can break, with file and line.

mod blocks;
mod builder;
mod digest;
mod error;
mod parse;
mod rules;
mod scan;

pub use builder::SnapshotBuilder;
pub use digest::content_sha256;
pub(crate) use digest::Hashing;
pub use error::{PartsOverlap, Rule, SnapshotError};

use digest::hex;
use rules::LineRules;

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::ip::IpKey;
use crate::lines::{read_line_limited, LineRead, UTF8_BOM};
use crate::time::Timestamp;

/// Lines longer than this are rejected: no real snapshot line comes close, and an
/// unbounded line would let one bad file exhaust memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The deepest nesting a record's field values may have. Records are written into
/// enriched lines as they were loaded, two levels down; strict parsers (serde_json,
/// many others) stop at 128 levels, so a record is kept far from that.
pub const MAX_DEPTH: usize = 32;

/// One range of a snapshot, its payload an index into [`SnapshotFile::payloads`].
///
/// Packed to 36 bytes (48 with the alignment of `u128`): a load holds a few
/// parsed files of millions of ranges at once. Fields are read by value (a
/// reference to a field of a packed struct is refused by the compiler).
#[repr(C, packed(4))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub begin: IpKey,
    pub end: IpKey,
    pub payload: u32,
}

/// The ranges of a finished file without the spare capacity of their growth
/// (up to half again of a big file; a large vector shrinks in place).
pub(crate) fn exact(mut ranges: Vec<Range>) -> Vec<Range> {
    ranges.shrink_to_fit();
    ranges
}

/// A completely read and validated snapshot file.
#[derive(Debug)]
pub struct SnapshotFile {
    pub path: PathBuf,
    /// The instant every line's `datetime` names.
    pub datetime: Timestamp,
    /// The `datetime` text of the first line, as written (it is what records show).
    pub datetime_text: String,
    /// Sorted, non-overlapping ranges.
    pub ranges: Vec<Range>,
    /// Distinct payloads of this file (JSON object bodies without braces).
    pub payloads: Vec<Box<[u8]>>,
    /// SHA-256 of the decompressed content, hex: the file's identity.
    pub sha256: String,
    /// Decompressed size in bytes.
    pub bytes: u64,
    /// Range `k` is on the `k`-th non-blank line of `path` (a Whip file; not a
    /// CSV or MaxMind DB file): errors found later can be traced back to a line.
    pub one_range_per_line: bool,
}

/// Progress counters shared with a progress bar while files are read.
#[derive(Default, Debug)]
pub struct ReadProgress {
    /// Bytes read from disk (compressed bytes for gzip files).
    pub file_bytes: Arc<AtomicU64>,
    /// Ranges read.
    pub ranges: AtomicU64,
}

impl SnapshotFile {
    /// Reads and validates a whole snapshot file.
    pub fn read(path: &Path, progress: &ReadProgress) -> Result<SnapshotFile, SnapshotError> {
        let fail = |line, kind| SnapshotError::new(path, line, kind);
        let (reader, gzip) = crate::io::open_file(path, progress.file_bytes.clone())
            .map_err(|e| fail(None, Rule::Io(e)))?;
        let mut rules = LineRules::default();
        let (sha256, bytes) = blocks::read_lines(path, reader, gzip, &mut rules, |ranges| {
            progress.ranges.fetch_add(ranges, Ordering::Relaxed);
        })?;
        let Some((datetime, datetime_text)) = rules.datetime else {
            return Err(fail(None, Rule::Empty));
        };
        Ok(SnapshotFile {
            path: path.to_path_buf(),
            datetime,
            datetime_text,
            ranges: exact(rules.ranges),
            payloads: rules.payloads,
            sha256,
            bytes,
            one_range_per_line: true,
        })
    }

    /// Parses snapshot lines held in memory (for tests and in-process callers).
    pub fn from_lines(name: &str, text: &str) -> Result<SnapshotFile, SnapshotError> {
        let path = PathBuf::from(name);
        let fail = |line, kind| SnapshotError::new(&path, line, kind);
        let mut parser = LineRules::default();
        let body = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (i, line) in body.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let n = i as u64 + 1;
            parser
                .line(line.as_bytes(), n)
                .map_err(|kind| fail(Some(n), kind))?;
        }
        let Some((datetime, datetime_text)) = parser.datetime else {
            return Err(fail(None, Rule::Empty));
        };
        Ok(SnapshotFile {
            sha256: hex(&Sha256::digest(text.as_bytes())),
            bytes: text.len() as u64,
            path,
            datetime,
            datetime_text,
            ranges: exact(parser.ranges),
            payloads: parser.payloads,
            one_range_per_line: false,
        })
    }

    pub fn payload(&self, range: &Range) -> &[u8] {
        &self.payloads[range.payload as usize]
    }

    /// Where the `k`-th range (from 0) came from, for an error message:
    /// `file:line` for a Whip file (found by reading the file again: errors only),
    /// else `file, range N`.
    pub fn position(&self, k: usize) -> String {
        let line = self
            .one_range_per_line
            .then(|| nth_range_line(&self.path, k))
            .flatten();
        match line {
            Some(line) => format!("{}:{line}", self.path.display()),
            None => format!("{}, range {}", self.path.display(), k + 1),
        }
    }
}

/// The line number of the `k`-th (from 0) non-blank line of a Whip file.
fn nth_range_line(path: &Path, k: usize) -> Option<u64> {
    let (reader, _) = crate::io::open_file(path, Default::default()).ok()?;
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    let (mut line, mut ranges) = (0u64, 0usize);
    loop {
        buf.clear();
        if read_line_limited(&mut reader, &mut buf, MAX_LINE_BYTES).ok()? != LineRead::Line {
            return None;
        }
        line += 1;
        let text = if line == 1 {
            buf.strip_prefix(UTF8_BOM).unwrap_or(&buf)
        } else {
            &buf
        };
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if ranges == k {
            return Some(line);
        }
        ranges += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::parse::SeenKeys;
    use super::*;

    fn parse(text: &str) -> Result<SnapshotFile, SnapshotError> {
        SnapshotFile::from_lines("t.jsonl", text)
    }

    fn rule_of(text: &str) -> (Option<u64>, String) {
        let e = parse(text).unwrap_err();
        (e.line, e.kind.to_string())
    }

    const L1: &str =
        r#"{"begin":"1.0.0.0","end":"1.0.0.255","datetime":"2024-01-01T00:00:00Z","cc":"AU"}"#;

    #[test]
    fn a_range_takes_36_bytes() {
        // The packing is what keeps a few parsed city files in memory at once.
        assert_eq!(std::mem::size_of::<Range>(), 36);
    }

    #[test]
    fn reads_ranges_and_payloads() {
        let text = format!(
            "{L1}\n{}\n{}\n",
            r#"{"begin":"1.0.1.0","end":"1.0.1.255","datetime":"2024-01-01T00:00:00Z","cc":"CN","n":{"a": [1, 2]}}"#,
            r#"{"cc":"AU","begin":"2001:db8::","end":"2001:db8::ffff","datetime":"2024-01-01T00:00:00+00:00"}"#
        );
        let s = parse(&text).unwrap();
        assert_eq!(s.ranges.len(), 3);
        assert_eq!(s.datetime_text, "2024-01-01T00:00:00Z");
        assert_eq!(s.payload(&s.ranges[0]), br#""cc":"AU""#);
        assert_eq!(s.payload(&s.ranges[1]), br#""cc":"CN","n":{"a": [1, 2]}"#);
        // Same payload, same id: deduplicated within the file.
        assert_eq!(s.ranges[0].payload, s.ranges[2].payload);
        assert_eq!(s.payloads.len(), 2);
    }

    #[test]
    fn each_rule_names_its_line() {
        let cases: &[(&str, u64, &str)] = &[
            ("{not json", 1, "invalid JSON"),
            ("[1,2]", 1, "not a JSON object"),
            (
                r#"{"end":"1.0.0.1","datetime":"2024-01-01"}"#,
                1,
                "missing field `begin`",
            ),
            (
                r#"{"begin":1,"end":"1.0.0.1","datetime":"2024-01-01"}"#,
                1,
                "`begin` is not a string",
            ),
            (
                r#"{"begin":"1.0.0.300","end":"1.0.0.1","datetime":"2024-01-01"}"#,
                1,
                "not an IP address",
            ),
            (
                r#"{"begin":"1.0.0.9","end":"1.0.0.1","datetime":"2024-01-01"}"#,
                1,
                "is after `end`",
            ),
            (
                r#"{"begin":"1.0.0.9","end":"2001::1","datetime":"2024-01-01"}"#,
                1,
                "different address families",
            ),
            (
                r#"{"begin":"1.0.0.0","end":"1.0.0.1","datetime":"2024-02-30"}"#,
                1,
                "day out of range",
            ),
            (
                r#"{"begin":"::","end":"::1:0:0:0","datetime":"2024-02-01"}"#,
                1,
                "IPv4-mapped block",
            ),
            (
                r#"{"begin":"1.0.0.0","end":"1.0.0.1","datetime":"2024-01-01","begin":"1.0.0.0"}"#,
                1,
                "duplicate field `begin`",
            ),
            (
                r#"{"begin":"1.0.0.0","end":"1.0.0.1","datetime":"2024-01-01","x":1,"x":2}"#,
                1,
                "duplicate field `x`",
            ),
        ];
        for (text, line, needle) in cases {
            let (l, msg) = rule_of(text);
            assert_eq!(l, Some(*line), "{text}");
            assert!(msg.contains(needle), "{text}: {msg}");
        }
    }

    #[test]
    fn ordering_rules() {
        let l2 = r#"{"begin":"1.0.0.128","end":"1.0.1.0","datetime":"2024-01-01T00:00:00Z"}"#;
        let (line, msg) = rule_of(&format!("{L1}\n{l2}"));
        assert_eq!(line, Some(2));
        assert!(
            msg.contains("overlaps the range ending at 1.0.0.255 on line 1"),
            "{msg}"
        );

        let before = r#"{"begin":"0.9.0.0","end":"0.9.0.1","datetime":"2024-01-01T00:00:00Z"}"#;
        let (_, msg) = rule_of(&format!("{L1}\n\n{before}"));
        assert!(msg.contains("out of order"), "{msg}");

        let v6 = r#"{"begin":"2001:db8::","end":"2001:db8::1","datetime":"2024-01-01T00:00:00Z"}"#;
        let (line, msg) = rule_of(&format!("{v6}\n{L1}"));
        assert_eq!(line, Some(2));
        assert!(
            msg.contains("IPv4 (::ffff:0:0/96) must come first"),
            "{msg}"
        );
    }

    /// One rule, the order of the 128-bit key space in which IPv4 is
    /// `::ffff:0:0/96`: IPv6 below that block comes before IPv4, IPv6 above it after;
    /// each opposite order is refused with the reason.
    #[test]
    fn ipv4_sits_inside_the_ipv6_order() {
        let low = r#"{"begin":"::","end":"::ff","datetime":"2024-01-01T00:00:00Z"}"#;
        let v4 = r#"{"begin":"0.0.0.0","end":"0.0.0.255","datetime":"2024-01-01T00:00:00Z"}"#;
        let high =
            r#"{"begin":"2001:db8::","end":"2001:db8::1","datetime":"2024-01-01T00:00:00Z"}"#;
        let s = parse(&format!("{low}\n{v4}\n{high}")).unwrap();
        assert_eq!(s.ranges.len(), 3);
        assert!(s.ranges.windows(2).all(|w| { w[0].end } < { w[1].begin }));

        let (line, msg) = rule_of(&format!("{v4}\n{low}"));
        assert_eq!(line, Some(2));
        assert!(
            msg.contains("IPv6 range ::-::ff after the IPv4 range on line 1")
                && msg.contains("must come before the IPv4 ranges"),
            "{msg}"
        );
        let (line, msg) = rule_of(&format!("{high}\n{v4}"));
        assert_eq!(line, Some(2));
        assert!(msg.contains("must come first"), "{msg}");
    }

    #[test]
    fn values_strict_parsers_refuse_are_rejected() {
        let line = |fields: &str| {
            format!(r#"{{"begin":"1.0.0.0","end":"1.0.0.1","datetime":"2024-01-01",{fields}}}"#)
        };
        for (fields, needle) in [
            (r#""name":"\ud800""#, "hex escape"),
            (r#""name":"\ud800\u0041""#, "surrogate"),
            (r#""a":["\udc00x"]"#, "surrogate"),
            (r#""n":1e5000"#, "number out of range"),
            (r#""n":-1e400"#, "number out of range"),
        ] {
            let (l, msg) = rule_of(&line(fields));
            assert_eq!(l, Some(1), "{fields}");
            assert!(
                msg.contains("strict JSON parsers refuse") && msg.contains(needle),
                "{fields}: {msg}"
            );
        }
        let deep = format!(r#""d":{}1{}"#, "[".repeat(200), "]".repeat(200));
        let (_, msg) = rule_of(&line(&deep));
        assert!(msg.contains("nested deeper than 32 levels"), "{msg}");
        // A proper surrogate pair, a big but finite number, brackets inside strings
        // and the deepest nesting allowed are fine.
        let fine = format!(
            r#""e":"\ud83d\ude00","n":1.7e308,"s":"[[[{{{{","d":{}1{}"#,
            "[".repeat(MAX_DEPTH),
            "]".repeat(MAX_DEPTH)
        );
        assert!(parse(&line(&fine)).is_ok());
    }

    #[test]
    fn a_leading_byte_order_mark_is_not_part_of_the_first_line() {
        let s = parse(&format!("\u{feff}{L1}\n")).unwrap();
        assert_eq!(s.ranges.len(), 1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bom.jsonl");
        std::fs::write(&path, format!("\u{feff}{L1}\n")).unwrap();
        let s = SnapshotFile::read(&path, &ReadProgress::default()).unwrap();
        assert_eq!(s.ranges.len(), 1);
        // Only at the start of the file.
        assert!(parse(&format!("{L1}\n\u{feff}{L1}")).is_err());
    }

    /// Duplicate keys are found wherever they are, in lines with few or very many
    /// fields (the many-field case is linear: see `SeenKeys`).
    #[test]
    fn duplicate_keys_among_many_fields() {
        let mut fields: Vec<String> = (0..50_000).map(|i| format!(r#""f{i}":{i}"#)).collect();
        let unique = format!(
            r#"{{"begin":"1.0.0.0","end":"1.0.0.1","datetime":"2024-01-01",{}}}"#,
            fields.join(",")
        );
        assert!(parse(&unique).is_ok());
        fields.push(r#""f123":0"#.into());
        let dup = format!(
            r#"{{"begin":"1.0.0.0","end":"1.0.0.1","datetime":"2024-01-01",{}}}"#,
            fields.join(",")
        );
        let (_, msg) = rule_of(&dup);
        assert!(msg.contains("duplicate field `f123`"), "{msg}");
        for n in [
            2,
            SeenKeys::LINEAR - 1,
            SeenKeys::LINEAR,
            SeenKeys::LINEAR + 1,
        ] {
            let mut keys = SeenKeys::default();
            let payload: Vec<u8> = (0..n)
                .flat_map(|i| format!("k{i:03}").into_bytes())
                .collect();
            for i in 0..n {
                assert!(!keys.insert(&payload, i * 4, i * 4 + 4));
            }
            for i in 0..n {
                assert!(keys.insert(&payload, i * 4, i * 4 + 4), "n={n} i={i}");
            }
        }
    }

    #[test]
    fn datetime_must_be_one_instant() {
        let other = r#"{"begin":"2.0.0.0","end":"2.0.0.1","datetime":"2024-01-02T00:00:00Z"}"#;
        let (line, msg) = rule_of(&format!("{L1}\n{other}"));
        assert_eq!(line, Some(2));
        assert!(msg.contains("differs"), "{msg}");
        // The same instant written differently is the same datetime.
        let same = r#"{"begin":"2.0.0.0","end":"2.0.0.1","datetime":"2024-01-01T01:00:00+01:00"}"#;
        assert!(parse(&format!("{L1}\n{same}")).is_ok());
    }

    #[test]
    fn empty_file_is_an_error() {
        let e = parse("\n\n").unwrap_err();
        assert!(e.to_string().contains("empty file"), "{e}");
    }
}
