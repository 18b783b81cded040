//! The history of a data set: every loaded snapshot, as changes over range pieces.
//!
//! The IP space is cut into *pieces*: maximal intervals on which every snapshot has
//! the same answer. Piece `i` covers `starts[i] ..= starts[i+1]-1` (the last one runs
//! to the end of the space) and `starts[0]` is always 0. Each piece holds its
//! *changes*: `(position, line)` pairs meaning "from the snapshot at this position on
//! (snapshots sorted by datetime), the answer is this line" (`NO_LINE`: no match).
//! A piece gets a new change only when its answer differs from the previous snapshot's.
//!
//! Invariants (checked by [`History::check`]):
//! - snapshots are sorted by instant, strictly;
//! - changes of a piece have strictly increasing positions, consecutive changes name
//!   different lines, and the first names a line (a leading "no match" is implied);
//! - adjacent pieces have different changes (pieces are maximal);
//! - a line answering for a piece at some snapshot contains the whole piece, and
//!   every snapshot's lines cover exactly its ranges.
//!
//! Lines (`begin`, `end`, payload) and payloads (JSON object bodies) are deduplicated;
//! a line or payload no snapshot uses any more (after `replace`) is removed.
//!
//! # Layout
//!
//! - this module: the types (snapshots, lines, changes) and reading the history;
//! - [`merge`](self::merge): adding or replacing a snapshot, and the interner;
//! - [`check`](self::check): verifying every invariant above.

mod check;
mod lines;
mod merge;

pub use lines::LineTable;
pub use merge::{Interner, Merged};

use crate::ip::IpKey;
use crate::snapshot::SnapshotFile;
use crate::time::Timestamp;

pub type LineId = u32;
pub type PayloadId = u32;
/// "No match" in a change.
pub const NO_LINE: LineId = u32::MAX;

/// One record line of a snapshot: its range and its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Line {
    pub begin: IpKey,
    pub end: IpKey,
    pub payload: PayloadId,
}

/// From snapshot position `pos` on, the piece's answer is `line`. The layout is
/// fixed (`repr(C)`, 8 bytes) because the index file stores changes as they are.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub pos: u16,
    pub line: LineId,
}

/// What is known about a loaded snapshot.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotMeta {
    /// Stable id, never reused; the store refers to snapshots by it.
    pub id: u32,
    /// The `datetime` text as written in the file.
    pub datetime: String,
    /// The instant, in microseconds since the epoch.
    pub instant_micros: i64,
    /// File name (no directory) it was loaded from.
    pub file: String,
    /// SHA-256 of the decompressed file content.
    pub sha256: String,
    /// Number of ranges.
    pub ranges: u64,
    /// Decompressed size in bytes.
    pub bytes: u64,
    /// When it was loaded (RFC 3339 UTC).
    pub loaded_at: String,
}

impl SnapshotMeta {
    /// What is known about a freshly read file (its id is assigned on merge).
    pub fn of_file(file: &SnapshotFile) -> SnapshotMeta {
        SnapshotMeta {
            id: 0,
            datetime: file.datetime_text.clone(),
            instant_micros: file.datetime.as_micros(),
            file: file
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256: file.sha256.clone(),
            ranges: file.ranges.len() as u64,
            bytes: file.bytes,
            loaded_at: Timestamp::now().to_rfc3339(),
        }
    }

    pub fn instant(&self) -> Timestamp {
        Timestamp::from_micros(self.instant_micros)
    }
}

/// A snapshot as the lookup path sees it.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    /// The datetime as a JSON string literal (quotes included), ready to splice.
    pub datetime_json: Box<[u8]>,
}

impl Snapshot {
    pub fn new(meta: SnapshotMeta) -> Snapshot {
        let datetime_json = serde_json::to_vec(&meta.datetime)
            .unwrap_or_else(|_| b"null".to_vec())
            .into_boxed_slice();
        Snapshot {
            meta,
            datetime_json,
        }
    }
}

/// Why a snapshot cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("a different snapshot with datetime {datetime} is already loaded (from {file}); use --replace to replace it")]
    DatetimeTaken { datetime: String, file: String },
    #[error("too many snapshots: at most {} are supported", u16::MAX)]
    TooManySnapshots,
}

/// The whole history of one data set, in memory.
#[derive(Clone, Debug)]
pub struct History {
    pub(crate) snapshots: Vec<Snapshot>,
    pub(crate) starts: Vec<IpKey>,
    /// Changes of piece `i` are `changes[offsets[i]..offsets[i+1]]`.
    pub(crate) offsets: Vec<u32>,
    pub(crate) changes: Vec<Change>,
    pub(crate) lines: LineTable,
    pub(crate) payloads: Vec<Option<Box<[u8]>>>,
}

impl Default for History {
    fn default() -> Self {
        History {
            snapshots: Vec::new(),
            starts: vec![IpKey::MIN],
            offsets: vec![0, 0],
            changes: Vec::new(),
            lines: LineTable::default(),
            payloads: Vec::new(),
        }
    }
}

impl History {
    pub fn snapshots(&self) -> impl ExactSizeIterator<Item = &Snapshot> {
        self.snapshots.iter()
    }

    pub fn snapshot_count(&self) -> usize {
        self.snapshots.len()
    }

    pub fn piece_count(&self) -> usize {
        self.starts.len()
    }

    pub fn change_count(&self) -> usize {
        self.changes.len()
    }

    pub fn line_count(&self) -> usize {
        self.lines.live()
    }

    pub fn payload_count(&self) -> usize {
        self.payloads.iter().flatten().count()
    }

    /// Every live line with its id.
    pub fn lines(&self) -> impl Iterator<Item = (LineId, Line)> + '_ {
        self.lines
            .iter()
            .enumerate()
            .filter_map(|(id, l)| l.map(|l| (id as LineId, l)))
    }

    pub fn line(&self, id: LineId) -> Option<Line> {
        self.lines.get(id as usize)
    }

    pub fn payload(&self, id: PayloadId) -> &[u8] {
        self.payloads
            .get(id as usize)
            .and_then(Option::as_deref)
            .unwrap_or_default()
    }

    pub(crate) fn piece_changes(&self, i: usize) -> &[Change] {
        &self.changes[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// Index of the piece containing `ip`.
    pub(crate) fn piece_of(&self, ip: IpKey) -> usize {
        self.starts.partition_point(|&s| s <= ip) - 1
    }

    /// The snapshot with this datetime, if loaded.
    pub fn snapshot_at(&self, instant: Timestamp) -> Option<&Snapshot> {
        self.snapshots
            .binary_search_by_key(&instant, |s| s.meta.instant())
            .ok()
            .map(|i| &self.snapshots[i])
    }

    /// Builds a history from stored parts (the store's read path). The parts are
    /// checked by [`History::check`] afterwards, not trusted.
    pub(crate) fn from_parts(
        snapshots: Vec<Snapshot>,
        starts: Vec<IpKey>,
        offsets: Vec<u32>,
        changes: Vec<Change>,
        lines: LineTable,
        payloads: Vec<Option<Box<[u8]>>>,
    ) -> History {
        History {
            snapshots,
            starts,
            offsets,
            changes,
            lines,
            payloads,
        }
    }
}
