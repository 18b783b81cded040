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
use std::hash::{BuildHasher, RandomState};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::ip::{Family, IpKey, IpParseError};
use crate::json::{raw_str, Key};
use crate::lines::{read_line_limited, LineRead, UTF8_BOM};
use crate::time::{TimeParseError, Timestamp};

/// Lines longer than this are rejected: no real snapshot line comes close, and an
/// unbounded line would let one bad file exhaust memory.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The deepest nesting a record's field values may have. Records are written into
/// enriched lines as they were loaded, two levels down; strict parsers (serde_json,
/// many others) stop at 128 levels, so a record is kept far from that.
pub const MAX_DEPTH: usize = 32;

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
    #[error("a field value that strict JSON parsers refuse: {0}")]
    NotStrictJson(String),
    #[error("a field value nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
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
    #[error(transparent)]
    PartsOverlap(Box<PartsOverlap>),
    #[error("`begin` {begin} is after `end` {end}")]
    BeginAfterEnd { begin: IpKey, end: IpKey },
    #[error("`begin` {begin} and `end` {end} are of different address families")]
    MixedFamilies { begin: IpKey, end: IpKey },
    #[error("IPv6 range {begin}-{end} overlaps the IPv4-mapped block ::ffff:0:0/96")]
    SpansMappedBlock { begin: IpKey, end: IpKey },
    #[error(
        "IPv4 range {begin} after the IPv6 range on line {previous_line}: IPv4 (::ffff:0:0/96) must come first, before the IPv6 ranges above it"
    )]
    V4AfterV6 { begin: IpKey, previous_line: u64 },
    #[error(
        "IPv6 range {begin}-{end} after the IPv4 range on line {previous_line}: it sorts below IPv4 (::ffff:0:0/96) and must come before the IPv4 ranges"
    )]
    LowV6AfterV4 {
        begin: IpKey,
        end: IpKey,
        previous_line: u64,
    },
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

/// Two parts of one snapshot (`--one-snapshot`) that overlap, each range with the
/// file and line it came from.
#[derive(Debug, thiserror::Error)]
#[error(
    "range {begin}-{end} ({at}) overlaps range {other_begin}-{other_end} ({other_at}): the parts of one snapshot must not overlap"
)]
pub struct PartsOverlap {
    pub begin: IpKey,
    pub end: IpKey,
    pub at: String,
    pub other_begin: IpKey,
    pub other_end: IpKey,
    pub other_at: String,
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

/// The keys of one object seen so far, as spans of the payload buffer. Real lines
/// have a handful of fields and a linear scan is fastest; past [`SeenKeys::LINEAR`]
/// keys the spans are also indexed by hash, so that a hostile line with 100,000
/// fields costs linear time, not quadratic.
#[derive(Default)]
struct SeenKeys {
    spans: Vec<(usize, usize)>,
    by_hash: HashMap<u64, Vec<usize>>,
    hasher: RandomState,
}

impl SeenKeys {
    const LINEAR: usize = 16;

    fn clear(&mut self) {
        self.spans.clear();
        self.by_hash.clear();
    }

    /// Records the key at `payload[start..end]`; true when the object already had it.
    fn insert(&mut self, payload: &[u8], start: usize, end: usize) -> bool {
        let key = &payload[start..end];
        let seen = if self.spans.len() < Self::LINEAR {
            self.spans.iter().any(|&(s, e)| &payload[s..e] == key)
        } else {
            if self.by_hash.is_empty() {
                for (i, &(s, e)) in self.spans.iter().enumerate() {
                    let h = self.hasher.hash_one(&payload[s..e]);
                    self.by_hash.entry(h).or_default().push(i);
                }
            }
            let h = self.hasher.hash_one(key);
            let spans = &self.spans;
            let same = self.by_hash.get(&h).is_some_and(|ids| {
                ids.iter().any(|&i| {
                    let (s, e) = spans[i];
                    &payload[s..e] == key
                })
            });
            self.by_hash.entry(h).or_default().push(self.spans.len());
            same
        };
        self.spans.push((start, end));
        seen
    }
}

/// Visits the top-level object of a line: keeps begin/end/datetime raw and writes
/// every other field into the payload buffer as `"key":value` pairs.
struct LineVisitor<'b> {
    payload: &'b mut Vec<u8>,
    keys: &'b mut SeenKeys,
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
                    if self.keys.insert(&self.payload[..], start, end) && out.duplicate.is_none() {
                        out.duplicate = Some(key.into_owned());
                    }
                    self.payload.push(b':');
                    self.payload.extend_from_slice(value.get().as_bytes());
                }
            }
        }
        Ok(out)
    }
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
            buf.clear();
            match read_line_limited(&mut reader, &mut buf, MAX_LINE_BYTES) {
                Ok(LineRead::Line) => {}
                Ok(LineRead::Eof) => break,
                Ok(LineRead::TooLong) => {
                    return Err(fail(Some(line_no + 1), Rule::LineTooLong(MAX_LINE_BYTES)))
                }
                Err(e) if gzip => {
                    return Err(fail(Some(line_no + 1), Rule::Gzip(e)));
                }
                Err(e) => return Err(fail(Some(line_no + 1), Rule::Io(e))),
            }
            if line_no == 0 && buf.starts_with(UTF8_BOM) {
                buf.drain(..UTF8_BOM.len());
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
            ranges: parser.ranges,
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

impl SnapshotFile {
    /// One snapshot from several files that each hold a part of it (the IPv4 and
    /// IPv6 files of one database release): their ranges must not overlap. The
    /// datetime is `datetime`, else the newest of the parts' (a release's files
    /// are built seconds apart). The identity is a hash of the parts'.
    pub fn combine(
        parts: Vec<SnapshotFile>,
        datetime: Option<Timestamp>,
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
        // (range, part, position of the range in its part)
        let mut all: Vec<(Range, usize, usize)> = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            hasher.update(p.sha256.as_bytes());
            bytes += p.bytes;
            all.extend(p.ranges.iter().enumerate().map(|(k, r)| (*r, i, k)));
        }
        all.sort_by_key(|(r, _, _)| r.begin);
        for (n, (r, i, k)) in all.iter().enumerate() {
            // Each part is in order on its own: an overlap is between two parts.
            if let Some((prev, j, m)) = n.checked_sub(1).map(|p| all[p]) {
                if r.begin <= prev.end {
                    return Err(SnapshotError::new(
                        &path,
                        None,
                        Rule::PartsOverlap(Box::new(PartsOverlap {
                            begin: r.begin,
                            end: r.end,
                            at: parts[*i].position(*k),
                            other_begin: prev.begin,
                            other_end: prev.end,
                            other_at: parts[j].position(m),
                        })),
                    ));
                }
            }
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
    datetime: Timestamp,
    rules: LineRules,
}

impl SnapshotBuilder {
    pub fn new(path: &Path, datetime: Timestamp) -> SnapshotBuilder {
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
            one_range_per_line: false,
        })
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

/// The SHA-256 of a file's content (decompressed when gzip), as recorded for a
/// loaded snapshot: tells whether a file is already in a store without parsing it.
pub fn content_sha256(path: &Path) -> std::io::Result<String> {
    let (mut reader, _) = crate::io::open_file(path, Default::default())?;
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
    datetime: Option<(Timestamp, String)>,
    ranges: Vec<Range>,
    payloads: Vec<Box<[u8]>>,
    payload_ids: HashMap<Box<[u8]>, u32>,
    previous_line: u64,
    payload_buf: Vec<u8>,
    keys: SeenKeys,
}

impl LineRules {
    fn line(&mut self, line: &[u8], line_no: u64) -> Result<(), Rule> {
        self.payload_buf.clear();
        self.keys.clear();
        let mut de = serde_json::Deserializer::from_slice(line);
        let parsed = match de.deserialize_map(LineVisitor {
            payload: &mut self.payload_buf,
            keys: &mut self.keys,
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
                let instant = Timestamp::parse(&dt_text).map_err(Rule::BadDatetime)?;
                if instant != *first_instant {
                    return Err(Rule::DatetimeDiffers {
                        found: dt_text.into_owned(),
                        expected: first.clone(),
                    });
                }
            }
            None => {
                let instant = Timestamp::parse(&dt_text).map_err(Rule::BadDatetime)?;
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
                // Each distinct payload is checked once: it is written out as is.
                check_strict(&self.payload_buf)?;
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
                match (begin.family(), prev.begin.family()) {
                    (Family::V4, Family::V6) => {
                        return Err(Rule::V4AfterV6 {
                            begin,
                            previous_line,
                        })
                    }
                    (Family::V6, Family::V4) => {
                        return Err(Rule::LowV6AfterV4 {
                            begin,
                            end,
                            previous_line,
                        })
                    }
                    _ => {}
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

/// Checks a payload (an object body) the way a strict JSON parser reads it (see
/// [`crate::json::check_strict`]). The line was only scanned so far, so such
/// values would otherwise pass through into every enriched line.
fn check_strict(payload: &[u8]) -> Result<(), Rule> {
    let mut object = Vec::with_capacity(payload.len() + 2);
    object.push(b'{');
    object.extend_from_slice(payload);
    object.push(b'}');
    // The braces added are one level more than the payload's own.
    crate::json::check_strict(&object, MAX_DEPTH + 1).map_err(|e| match e {
        crate::json::StrictError::TooDeep(_) => Rule::TooDeep,
        crate::json::StrictError::NotStrict(message) => Rule::NotStrictJson(message),
    })
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
        assert!(s.ranges.windows(2).all(|w| w[0].end < w[1].begin));

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
