//! What a snapshot can break: the rules, and where a broken one was found
//! (file and line), so that every rejection names its input.

use std::path::{Path, PathBuf};
use std::{fmt, io};

use super::MAX_DEPTH;
use crate::ip::{IpKey, IpParseError};
use crate::time::TimeParseError;

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
