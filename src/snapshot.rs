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

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::ip::{Family, IpKey, IpParseError};
use crate::json::{raw_str, Key};
use crate::time::{Instant, TimeParseError};

/// Lines longer than this are rejected: no real snapshot line comes close, and an
/// unbounded line would let one bad file exhaust memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// One range of a snapshot, its payload an index into [`SnapshotFile::payloads`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub begin: IpKey,
    pub end: IpKey,
    pub payload: u32,
}

/// A completely read and validated snapshot file.
#[derive(Debug)]
pub struct SnapshotFile {
    pub path: PathBuf,
    /// The instant every line's `datetime` names.
    pub datetime: Instant,
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
}

/// A broken rule, with where it was found.
#[derive(Debug, thiserror::Error)]
pub struct SnapshotError {
    pub path: PathBuf,
    /// 1-based line number, when the problem belongs to a line.
    pub line: Option<u64>,
    pub kind: Rule,
}

impl SnapshotError {
    pub fn new(path: &Path, line: Option<u64>, kind: Rule) -> SnapshotError {
        SnapshotError {
            path: path.to_path_buf(),
            line,
            kind,
        }
    }
}

impl fmt::Display for SnapshotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.path.display(), line, self.kind),
            None => write!(f, "{}: {}", self.path.display(), self.kind),
        }
    }
}

/// The rules a snapshot file must follow.
#[derive(Debug, thiserror::Error)]
pub enum Rule {
    #[error("cannot read file: {0}")]
    Io(#[source] io::Error),
    #[error("truncated or corrupt gzip data: {0}")]
    Gzip(#[source] io::Error),
    #[error("empty file: no ranges")]
    Empty,
    #[error("line longer than {0} bytes")]
    LineTooLong(usize),
    #[error("invalid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("line is not a JSON object")]
    NotObject,
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("field `{0}` is not a string")]
    NotString(&'static str),
    #[error("duplicate field `{0}`")]
    DuplicateField(String),
    #[error("field `{field}`: {source}")]
    BadIp {
        field: &'static str,
        source: IpParseError,
    },
    #[error("field `datetime`: {0}")]
    BadDatetime(TimeParseError),
    #[error(
        "`datetime` {found:?} differs from {expected:?} on line 1 (one snapshot, one datetime)"
    )]
    DatetimeDiffers { found: String, expected: String },
    #[error("not a MaxMind DB file: {0}")]
    Mmdb(String),
    #[error("{0}")]
    Csv(String),
    #[error("`begin` {begin} is after `end` {end}")]
    BeginAfterEnd { begin: IpKey, end: IpKey },
    #[error("`begin` {begin} and `end` {end} are of different address families")]
    MixedFamilies { begin: IpKey, end: IpKey },
    #[error("IPv6 range {begin}-{end} overlaps the IPv4-mapped block ::ffff:0:0/96")]
    SpansMappedBlock { begin: IpKey, end: IpKey },
    #[error("IPv4 range {begin} after IPv6 ranges (line {previous_line}): IPv4 must come first")]
    V4AfterV6 { begin: IpKey, previous_line: u64 },
    #[error(
        "range {begin}-{end} overlaps the range ending at {previous_end} on line {previous_line}"
    )]
    Overlap {
        begin: IpKey,
        end: IpKey,
        previous_end: IpKey,
        previous_line: u64,
    },
    #[error(
        "range {begin}-{end} is out of order: it begins before the range on line {previous_line}"
    )]
    OutOfOrder {
        begin: IpKey,
        end: IpKey,
        previous_line: u64,
    },
}

/// Hashes the decompressed bytes as they stream past.
pub(crate) struct Hashing<R> {
    pub(crate) inner: R,
    pub(crate) hasher: Sha256,
    pub(crate) bytes: u64,
}

impl<R> Hashing<R> {
    pub(crate) fn new(inner: R) -> Hashing<R> {
        Hashing {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The hex SHA-256 and size of everything read.
    pub(crate) fn finish(self) -> (String, u64) {
        (hex(&self.hasher.finalize()), self.bytes)
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// What one line holds, before range rules are checked.
struct ParsedLine<'a> {
    begin: Option<&'a RawValue>,
    end: Option<&'a RawValue>,
    datetime: Option<&'a RawValue>,
    duplicate: Option<String>,
}

/// Visits the top-level object of a line: keeps begin/end/datetime raw and writes
/// every other field into the payload buffer as `"key":value` pairs.
struct LineVisitor<'b> {
    payload: &'b mut Vec<u8>,
    key_spans: &'b mut Vec<(usize, usize)>,
}

impl<'de> Visitor<'de> for LineVisitor<'_> {
    type Value = ParsedLine<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ParsedLine<'de>, A::Error> {
        let mut out = ParsedLine {
            begin: None,
            end: None,
            datetime: None,
            duplicate: None,
        };
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let value: &'de RawValue = map.next_value()?;
            let slot = match key.as_ref() {
                "begin" => Some(&mut out.begin),
                "end" => Some(&mut out.end),
                "datetime" => Some(&mut out.datetime),
                _ => None,
            };
            match slot {
                Some(slot) => {
                    if slot.replace(value).is_some() && out.duplicate.is_none() {
                        out.duplicate = Some(key.into_owned());
                    }
                }
                None => {
                    if !self.payload.is_empty() {
                        self.payload.push(b',');
                    }
                    let start = self.payload.len();
                    serde_json::to_writer(&mut *self.payload, key.as_ref())
                        .map_err(de::Error::custom)?;
                    let end = self.payload.len();
                    let written = &self.payload[start..end];
                    if out.duplicate.is_none()
                        && self
                            .key_spans
                            .iter()
                            .any(|&(s, e)| &self.payload[s..e] == written)
                    {
                        out.duplicate = Some(key.into_owned());
                    }
                    self.key_spans.push((start, end));
                    self.payload.push(b':');
                    self.payload.extend_from_slice(value.get().as_bytes());
                }
            }
        }
        Ok(out)
    }
}

/// Reads lines of at most `limit` bytes into `buf` (without the newline).
/// Returns `Ok(false)` at end of input.
fn read_line_limited<R: BufRead>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<bool, LineError> {
    buf.clear();
    loop {
        let available = match reader.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LineError::Io(e)),
        };
        if available.is_empty() {
            return Ok(!buf.is_empty());
        }
        let (chunk, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if buf.len() + chunk.len() > limit {
            return Err(LineError::TooLong);
        }
        buf.extend_from_slice(chunk);
        let used = done.unwrap_or(chunk.len());
        reader.consume(used);
        if done.is_some() {
            return Ok(true);
        }
    }
}

enum LineError {
    Io(io::Error),
    TooLong,
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
        let (reader, gzip) = crate::source::open_file(path, progress.file_bytes.clone())
            .map_err(|e| fail(None, Rule::Io(e)))?;
        let mut reader = BufReader::with_capacity(
            256 * 1024,
            Hashing {
                inner: reader,
                hasher: Sha256::new(),
                bytes: 0,
            },
        );
        let mut parser = LineRules::default();
        let mut buf = Vec::with_capacity(256);
        let mut line_no = 0u64;
        loop {
            match read_line_limited(&mut reader, &mut buf, MAX_LINE_BYTES) {
                Ok(true) => {}
                Ok(false) => break,
                Err(LineError::TooLong) => {
                    return Err(fail(Some(line_no + 1), Rule::LineTooLong(MAX_LINE_BYTES)))
                }
                Err(LineError::Io(e)) if gzip => {
                    return Err(fail(Some(line_no + 1), Rule::Gzip(e)));
                }
                Err(LineError::Io(e)) => return Err(fail(Some(line_no + 1), Rule::Io(e))),
            }
            line_no += 1;
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            parser
                .line(&buf, line_no)
                .map_err(|kind| fail(Some(line_no), kind))?;
            if parser.ranges.len() % 4096 == 0 {
                progress.ranges.fetch_add(4096, Ordering::Relaxed);
            }
        }
        progress
            .ranges
            .fetch_add((parser.ranges.len() % 4096) as u64, Ordering::Relaxed);
        let Some((datetime, datetime_text)) = parser.datetime else {
            return Err(fail(None, Rule::Empty));
        };
        let hashing = reader.into_inner();
        let sha256 = hex(&hashing.hasher.finalize());
        Ok(SnapshotFile {
            path: path.to_path_buf(),
            datetime,
            datetime_text,
            ranges: parser.ranges,
            payloads: parser.payloads,
            sha256,
            bytes: hashing.bytes,
        })
    }

    /// Parses snapshot lines held in memory (for tests and in-process callers).
    pub fn from_lines(name: &str, text: &str) -> Result<SnapshotFile, SnapshotError> {
        let path = PathBuf::from(name);
        let fail = |line, kind| SnapshotError::new(&path, line, kind);
        let mut parser = LineRules::default();
        for (i, line) in text.lines().enumerate() {
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
            ranges: parser.ranges,
            payloads: parser.payloads,
        })
    }

    pub fn payload(&self, range: &Range) -> &[u8] {
        &self.payloads[range.payload as usize]
    }
}

impl SnapshotFile {
    /// One snapshot from several files that each hold a part of it (the IPv4 and
    /// IPv6 files of one database release): their ranges must not overlap. The
    /// datetime is `datetime`, else the newest of the parts' (a release's files
    /// are built seconds apart). The identity is a hash of the parts'.
    pub fn combine(
        parts: Vec<SnapshotFile>,
        datetime: Option<Instant>,
    ) -> Result<SnapshotFile, SnapshotError> {
        let Some(first) = parts.first() else {
            return Err(SnapshotError::new(Path::new(""), None, Rule::Empty));
        };
        let path = PathBuf::from(
            parts
                .iter()
                .map(|p| p.path.display().to_string())
                .collect::<Vec<_>>()
                .join("+"),
        );
        let datetime = datetime.unwrap_or_else(|| {
            parts
                .iter()
                .map(|p| p.datetime)
                .max()
                .unwrap_or(first.datetime)
        });
        let mut builder = SnapshotBuilder::new(&path, datetime);
        let mut hasher = Sha256::new();
        let mut bytes = 0;
        let mut all: Vec<(Range, usize)> = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            hasher.update(p.sha256.as_bytes());
            bytes += p.bytes;
            all.extend(p.ranges.iter().map(|r| (*r, i)));
        }
        all.sort_by_key(|(r, _)| r.begin);
        for (n, (r, i)) in all.iter().enumerate() {
            let payload = &parts[*i].payloads[r.payload as usize];
            builder
                .push(r.begin, r.end, payload, n as u64 + 1)
                .map_err(|mut e| {
                    // The position is in the combined order: name the part.
                    e.line = None;
                    e.path = parts[*i].path.clone();
                    e
                })?;
        }
        builder.finish(hex(&hasher.finalize()), bytes)
    }
}

/// Builds a snapshot from ranges given one at a time (CSV rows, MaxMind DB
/// networks) under the same rules as JSON lines: order, overlaps, families;
/// errors carry the file and the row.
pub struct SnapshotBuilder {
    path: PathBuf,
    datetime: Instant,
    rules: LineRules,
}

impl SnapshotBuilder {
    pub fn new(path: &Path, datetime: Instant) -> SnapshotBuilder {
        SnapshotBuilder {
            path: path.to_path_buf(),
            datetime,
            rules: LineRules::default(),
        }
    }

    fn fail(&self, line: Option<u64>, kind: Rule) -> SnapshotError {
        SnapshotError::new(&self.path, line, kind)
    }

    /// Adds a range; `fields` is the body of a JSON object (`"k":v,...`) without
    /// `begin`, `end` and `datetime`; `line` is the row reported in errors.
    pub fn push(
        &mut self,
        begin: IpKey,
        end: IpKey,
        fields: &[u8],
        line: u64,
    ) -> Result<(), SnapshotError> {
        self.rules.payload_buf.clear();
        self.rules.payload_buf.extend_from_slice(fields);
        self.rules
            .add_range(begin, end, line)
            .map_err(|kind| self.fail(Some(line), kind))
    }

    pub fn ranges(&self) -> usize {
        self.rules.ranges.len()
    }

    /// The snapshot; `sha256` and `bytes` identify the source content.
    pub fn finish(self, sha256: String, bytes: u64) -> Result<SnapshotFile, SnapshotError> {
        if self.rules.ranges.is_empty() {
            return Err(self.fail(None, Rule::Empty));
        }
        Ok(SnapshotFile {
            path: self.path,
            datetime: self.datetime,
            datetime_text: self.datetime.to_rfc3339(),
            ranges: self.rules.ranges,
            payloads: self.rules.payloads,
            sha256,
            bytes,
        })
    }
}

/// The SHA-256 of a file's content (decompressed when gzip), as recorded for a
/// loaded snapshot: tells whether a file is already in a store without parsing it.
pub fn content_sha256(path: &Path) -> std::io::Result<String> {
    let (mut reader, _) = crate::source::open_file(path, Default::default())?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut reader, &mut hasher)?;
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The per-file state of validation: previous range, datetime, payload interner.
#[derive(Default)]
struct LineRules {
    datetime: Option<(Instant, String)>,
    ranges: Vec<Range>,
    payloads: Vec<Box<[u8]>>,
    payload_ids: HashMap<Box<[u8]>, u32>,
    previous_line: u64,
    payload_buf: Vec<u8>,
    key_spans: Vec<(usize, usize)>,
}

impl LineRules {
    fn line(&mut self, line: &[u8], line_no: u64) -> Result<(), Rule> {
        self.payload_buf.clear();
        self.key_spans.clear();
        let mut de = serde_json::Deserializer::from_slice(line);
        let parsed = match de.deserialize_map(LineVisitor {
            payload: &mut self.payload_buf,
            key_spans: &mut self.key_spans,
        }) {
            Ok(p) => p,
            Err(e) if e.classify() == serde_json::error::Category::Data => {
                return Err(Rule::NotObject)
            }
            Err(e) => return Err(Rule::Json(e)),
        };
        de.end().map_err(Rule::Json)?;
        if let Some(field) = parsed.duplicate {
            return Err(Rule::DuplicateField(field));
        }
        let begin = ip_field(parsed.begin, "begin")?;
        let end = ip_field(parsed.end, "end")?;
        let dt_raw = parsed.datetime.ok_or(Rule::MissingField("datetime"))?;
        let dt_text = raw_str(dt_raw).ok_or(Rule::NotString("datetime"))?;
        match &self.datetime {
            Some((_, first)) if first == dt_text.as_ref() => {}
            Some((first_instant, first)) => {
                let instant = Instant::parse(&dt_text).map_err(Rule::BadDatetime)?;
                if instant != *first_instant {
                    return Err(Rule::DatetimeDiffers {
                        found: dt_text.into_owned(),
                        expected: first.clone(),
                    });
                }
            }
            None => {
                let instant = Instant::parse(&dt_text).map_err(Rule::BadDatetime)?;
                self.datetime = Some((instant, dt_text.into_owned()));
            }
        }
        self.add_range(begin, end, line_no)
    }

    /// Checks a range against the previous ones and adds it with the payload in
    /// `payload_buf`.
    fn add_range(&mut self, begin: IpKey, end: IpKey, line_no: u64) -> Result<(), Rule> {
        self.check_range(begin, end)?;
        let payload = match self.payload_ids.get(self.payload_buf.as_slice()) {
            Some(&id) => id,
            None => {
                let id = self.payloads.len() as u32;
                let bytes: Box<[u8]> = self.payload_buf.as_slice().into();
                self.payloads.push(bytes.clone());
                self.payload_ids.insert(bytes, id);
                id
            }
        };
        self.ranges.push(Range {
            begin,
            end,
            payload,
        });
        self.previous_line = line_no;
        Ok(())
    }

    fn check_range(&self, begin: IpKey, end: IpKey) -> Result<(), Rule> {
        if begin.family() != end.family() {
            return Err(Rule::MixedFamilies { begin, end });
        }
        if begin > end {
            return Err(Rule::BeginAfterEnd { begin, end });
        }
        if begin.family() == Family::V6 && begin < IpKey::V4_FIRST && end > IpKey::V4_LAST {
            return Err(Rule::SpansMappedBlock { begin, end });
        }
        if let Some(prev) = self.ranges.last() {
            if begin <= prev.end {
                let previous_line = self.previous_line;
                if begin.family() == Family::V4 && prev.begin.family() == Family::V6 {
                    return Err(Rule::V4AfterV6 {
                        begin,
                        previous_line,
                    });
                }
                if begin >= prev.begin {
                    return Err(Rule::Overlap {
                        begin,
                        end,
                        previous_end: prev.end,
                        previous_line,
                    });
                }
                return Err(Rule::OutOfOrder {
                    begin,
                    end,
                    previous_line,
                });
            }
        }
        Ok(())
    }
}

fn ip_field(raw: Option<&RawValue>, field: &'static str) -> Result<IpKey, Rule> {
    let raw = raw.ok_or(Rule::MissingField(field))?;
    let text = raw_str(raw).ok_or(Rule::NotString(field))?;
    IpKey::parse(&text).map_err(|source| Rule::BadIp { field, source })
}

#[cfg(test)]
mod tests {
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
        assert!(msg.contains("IPv4 must come first"), "{msg}");
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
