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

use std::collections::HashMap;

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
    pub(crate) lines: Vec<Option<Line>>,
    pub(crate) payloads: Vec<Option<Box<[u8]>>>,
}

impl Default for History {
    fn default() -> Self {
        History {
            snapshots: Vec::new(),
            starts: vec![IpKey::MIN],
            offsets: vec![0, 0],
            changes: Vec::new(),
            lines: Vec::new(),
            payloads: Vec::new(),
        }
    }
}

/// How the new snapshot's position relates to the existing ones.
#[derive(Clone, Copy, Debug)]
enum Placement {
    Insert(usize),
    Replace(usize),
}

/// The payload interning table, built when the first merge needs it. Lines need
/// none: an existing line is found in the changes of the piece its range begins
/// (a line's `begin` always starts a piece), which keeps a load's memory to the
/// pieces instead of a hash entry per record of the whole history.
#[derive(Default, Debug)]
pub struct Interner {
    payloads: HashMap<Box<[u8]>, PayloadId>,
}

impl Interner {
    pub fn new(history: &History) -> Interner {
        let mut i = Interner::default();
        for (id, p) in history.payloads.iter().enumerate() {
            if let Some(p) = p {
                i.payloads.insert(p.clone(), id as PayloadId);
            }
        }
        i
    }
}

/// Value of a piece at position `pos` given its changes.
pub(crate) fn value_at(changes: &[Change], pos: usize) -> LineId {
    let i = changes.partition_point(|c| usize::from(c.pos) <= pos);
    if i == 0 {
        NO_LINE
    } else {
        changes[i - 1].line
    }
}

/// Appends a change unless it repeats the current value; returns nothing.
fn push_change(out: &mut Vec<Change>, base: usize, pos: usize, line: LineId) {
    let current = if out.len() > base {
        out[out.len() - 1].line
    } else {
        NO_LINE
    };
    if current != line {
        out.push(Change {
            pos: pos as u16,
            line,
        });
    }
}

/// Writes the changes of a piece after placing value `v` at the new snapshot.
fn rewrite(old: &[Change], place: Placement, n_old: usize, v: LineId, out: &mut Vec<Change>) {
    let base = out.len();
    match place {
        Placement::Insert(k) => {
            for c in old.iter().filter(|c| usize::from(c.pos) < k) {
                push_change(out, base, c.pos.into(), c.line);
            }
            push_change(out, base, k, v);
            if k < n_old {
                push_change(out, base, k + 1, value_at(old, k));
            }
            for c in old.iter().filter(|c| usize::from(c.pos) > k) {
                push_change(out, base, usize::from(c.pos) + 1, c.line);
            }
        }
        Placement::Replace(k) => {
            for c in old.iter().filter(|c| usize::from(c.pos) < k) {
                push_change(out, base, c.pos.into(), c.line);
            }
            push_change(out, base, k, v);
            if k + 1 < n_old {
                push_change(out, base, k + 1, value_at(old, k + 1));
            }
            for c in old.iter().filter(|c| usize::from(c.pos) > k + 1) {
                push_change(out, base, c.pos.into(), c.line);
            }
        }
    }
}

/// Outcome of a merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merged {
    /// The snapshot was added (or replaced one with the same datetime).
    Added,
    Replaced,
    /// The same file (same checksum and datetime) is already loaded.
    Unchanged,
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
        self.lines.iter().flatten().count()
    }

    pub fn payload_count(&self) -> usize {
        self.payloads.iter().flatten().count()
    }

    /// Every live line with its id.
    pub fn lines(&self) -> impl Iterator<Item = (LineId, &Line)> {
        self.lines
            .iter()
            .enumerate()
            .filter_map(|(id, l)| l.as_ref().map(|l| (id as LineId, l)))
    }

    pub fn line(&self, id: LineId) -> Option<&Line> {
        self.lines.get(id as usize).and_then(Option::as_ref)
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

    /// Merges a validated snapshot file. `meta` describes it (its id is assigned
    /// here). The same file again is `Unchanged`; a different file with a loaded
    /// datetime is an error unless `replace`.
    pub fn merge(
        &mut self,
        interner: &mut Interner,
        file: &SnapshotFile,
        mut meta: SnapshotMeta,
        replace: bool,
    ) -> Result<Merged, MergeError> {
        let found = self
            .snapshots
            .binary_search_by_key(&file.datetime, |s| s.meta.instant());
        let place = match found {
            Ok(k) if self.snapshots[k].meta.sha256 == file.sha256 => return Ok(Merged::Unchanged),
            Ok(k) if replace => Placement::Replace(k),
            Ok(k) => {
                return Err(MergeError::DatetimeTaken {
                    datetime: self.snapshots[k].meta.datetime.clone(),
                    file: self.snapshots[k].meta.file.clone(),
                })
            }
            Err(_) if self.snapshots.len() >= usize::from(u16::MAX) => {
                return Err(MergeError::TooManySnapshots)
            }
            Err(k) => Placement::Insert(k),
        };

        // Global ids for this file's payloads and lines.
        let payload_ids: Vec<PayloadId> = file
            .payloads
            .iter()
            .map(|p| match interner.payloads.get(p) {
                Some(&id) => id,
                None => {
                    let id = self.payloads.len() as PayloadId;
                    self.payloads.push(Some(p.clone()));
                    interner.payloads.insert(p.clone(), id);
                    id
                }
            })
            .collect();
        // Ranges of one file do not overlap: its new lines are distinct, and
        // those of earlier files are in the pieces already. The ranges are
        // sorted, so the piece at each `begin` is found by walking forward.
        let mut line_ids: Vec<LineId> = Vec::with_capacity(file.ranges.len());
        let mut piece = 0;
        for r in &file.ranges {
            let line = Line {
                begin: r.begin,
                end: r.end,
                payload: payload_ids[r.payload as usize],
            };
            if self.starts.get(piece).is_none_or(|&s| s > line.begin) {
                piece = self.piece_of(line.begin);
            }
            while self.starts.get(piece + 1).is_some_and(|&s| s <= line.begin) {
                piece += 1;
            }
            let id = self.find_line(piece, &line).unwrap_or_else(|| {
                self.lines.push(Some(line));
                (self.lines.len() - 1) as LineId
            });
            line_ids.push(id);
        }

        let n_old = self.snapshots.len();
        self.sweep(file, &line_ids, place, n_old);

        meta.id = self.next_snapshot_id();
        let snapshot = Snapshot::new(meta);
        match place {
            Placement::Insert(k) => self.snapshots.insert(k, snapshot),
            Placement::Replace(k) => {
                // The replaced file's id goes with it; the new file gets a new id.
                self.snapshots[k] = snapshot;
                self.collect_garbage(interner);
                return Ok(Merged::Replaced);
            }
        }
        Ok(Merged::Added)
    }

    /// The id of a loaded line equal to `line`, looked up in the changes of
    /// `piece`, the piece containing its `begin` (a loaded line's `begin` starts
    /// a piece).
    fn find_line(&self, piece: usize, line: &Line) -> Option<LineId> {
        if self.starts.get(piece) != Some(&line.begin) {
            return None;
        }
        self.piece_changes(piece)
            .iter()
            .map(|c| c.line)
            .find(|&id| id != NO_LINE && self.line(id) == Some(line))
    }

    fn next_snapshot_id(&self) -> u32 {
        self.snapshots
            .iter()
            .map(|s| s.meta.id + 1)
            .max()
            .unwrap_or(0)
    }

    /// Rebuilds pieces: cuts at the new ranges' boundaries, places each piece's new
    /// value, and coalesces neighbours that end up with identical changes.
    fn sweep(&mut self, file: &SnapshotFile, line_ids: &[LineId], place: Placement, n_old: usize) {
        let ranges = &file.ranges;
        let mut starts = Vec::with_capacity(self.starts.len() + 2 * ranges.len());
        let mut offsets = Vec::with_capacity(starts.capacity() + 1);
        let mut changes = Vec::with_capacity(self.changes.len() + ranges.len());
        offsets.push(0u32);

        let mut i = 0; // old piece containing x
        let mut j = 0; // first new range not entirely before x
        let mut x = IpKey::MIN;
        loop {
            while j < ranges.len() && ranges[j].end < x {
                j += 1;
            }
            let inside = j < ranges.len() && ranges[j].begin <= x;
            let v = if inside { line_ids[j] } else { NO_LINE };
            let old = &self.changes[self.offsets[i] as usize..self.offsets[i + 1] as usize];
            let before = changes.len();
            rewrite(old, place, n_old, v, &mut changes);
            let same_as_previous = match offsets.len().checked_sub(2) {
                Some(p) => changes[offsets[p] as usize..before] == changes[before..],
                None => false,
            };
            if same_as_previous {
                changes.truncate(before);
            } else {
                starts.push(x);
                offsets.push(changes.len() as u32);
            }

            // The next cut: the next old piece start or the next new boundary.
            let next_old = self.starts.get(i + 1).copied();
            let next_new = if inside {
                ranges[j].end.next()
            } else if j < ranges.len() {
                Some(ranges[j].begin)
            } else {
                None
            };
            let next = match (next_old, next_new) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            x = next;
            if next_old == Some(x) {
                i += 1;
            }
        }
        self.starts = starts;
        self.offsets = offsets;
        self.changes = changes;
    }

    /// Drops lines and payloads no change refers to any more.
    fn collect_garbage(&mut self, interner: &mut Interner) {
        let mut used = vec![false; self.lines.len()];
        for c in &self.changes {
            if c.line != NO_LINE {
                used[c.line as usize] = true;
            }
        }
        let mut payload_used = vec![false; self.payloads.len()];
        for (id, slot) in self.lines.iter_mut().enumerate() {
            if let Some(line) = slot {
                if used[id] {
                    payload_used[line.payload as usize] = true;
                } else {
                    *slot = None;
                }
            }
        }
        for (id, slot) in self.payloads.iter_mut().enumerate() {
            if !payload_used[id] {
                if let Some(p) = slot.take() {
                    interner.payloads.remove(&p);
                }
            }
        }
    }

    /// Builds a history from stored parts (the store's read path). The parts are
    /// checked by [`History::check`] afterwards, not trusted.
    pub(crate) fn from_parts(
        snapshots: Vec<Snapshot>,
        starts: Vec<IpKey>,
        offsets: Vec<u32>,
        changes: Vec<Change>,
        lines: Vec<Option<Line>>,
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

    /// Checks every invariant of the module documentation; returns the problems
    /// found (at most `limit` of them).
    pub fn check(&self, limit: usize) -> Vec<String> {
        let mut problems = Vec::new();
        let mut problem = |p: String| {
            if problems.len() < limit {
                problems.push(p);
            }
        };
        let n = self.snapshots.len();
        for w in self.snapshots.windows(2) {
            if w[0].meta.instant() >= w[1].meta.instant() {
                problem(format!(
                    "snapshots not strictly sorted: {} then {}",
                    w[0].meta.datetime, w[1].meta.datetime
                ));
            }
        }
        if self.starts.first() != Some(&IpKey::MIN) {
            problem("first piece does not start at 0".into());
        }
        if self.offsets.len() != self.starts.len() + 1 {
            problem("piece offsets do not match pieces".into());
            return problems;
        }
        for w in self.starts.windows(2) {
            if w[0] >= w[1] {
                problem(format!("pieces not sorted at {}", w[1]));
            }
        }
        // Per snapshot: the line currently open (covering consecutive pieces) and
        // the number of lines seen.
        let mut open: Vec<LineId> = vec![NO_LINE; n];
        let mut counted: Vec<u64> = vec![0; n];
        let mut previous: Option<&[Change]> = None;
        for i in 0..self.starts.len() {
            let (lo, hi) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
            if lo > hi || hi > self.changes.len() {
                problem(format!("piece {} has bad change offsets", self.starts[i]));
                return problems;
            }
            let ch = &self.changes[lo..hi];
            let start = self.starts[i];
            let last = self
                .starts
                .get(i + 1)
                .map(|s| IpKey(s.0 - 1))
                .unwrap_or(IpKey::MAX);
            if previous == Some(ch) {
                problem(format!("pieces at {start} and before have equal changes"));
            }
            previous = Some(ch);
            if ch.first().is_some_and(|c| c.line == NO_LINE) {
                problem(format!("piece {start} begins with a no-match change"));
            }
            for w in ch.windows(2) {
                if w[0].pos >= w[1].pos || w[0].line == w[1].line {
                    problem(format!("piece {start} has unnormalised changes"));
                }
            }
            for c in ch {
                if usize::from(c.pos) >= n {
                    problem(format!(
                        "piece {start} refers to snapshot position {}",
                        c.pos
                    ));
                }
                if c.line != NO_LINE && self.line(c.line).is_none() {
                    problem(format!("piece {start} refers to missing line {}", c.line));
                }
            }
            for (k, open_line) in open.iter_mut().enumerate() {
                let v = value_at(ch, k);
                if v != *open_line && *open_line != NO_LINE {
                    problem(format!(
                        "line {} ends inside snapshot {} before piece {start}",
                        open_line, self.snapshots[k].meta.datetime
                    ));
                }
                if v == NO_LINE {
                    *open_line = NO_LINE;
                    continue;
                }
                let Some(line) = self.line(v) else { continue };
                if line.begin > start || line.end < last {
                    problem(format!("line {v} does not contain piece {start}-{last}"));
                }
                if line.begin == start {
                    counted[k] += 1;
                }
                *open_line = if line.end == last { NO_LINE } else { v };
            }
        }
        for (k, s) in self.snapshots.iter().enumerate() {
            if counted[k] != s.meta.ranges {
                problem(format!(
                    "snapshot {} should have {} ranges, the pieces give {}",
                    s.meta.datetime, s.meta.ranges, counted[k]
                ));
            }
        }
        let mut line_used = vec![false; self.lines.len()];
        for c in &self.changes {
            if let Some(u) = line_used.get_mut(c.line as usize) {
                *u = true;
            }
        }
        let mut payload_used = vec![false; self.payloads.len()];
        for (id, line) in self.lines.iter().enumerate() {
            let Some(line) = line else { continue };
            if !line_used[id] {
                problem(format!("line {id} is not used by any snapshot"));
            }
            if line.begin > line.end || line.begin.family() != line.end.family() {
                problem(format!("line {id} has a bad range"));
            }
            match payload_used.get_mut(line.payload as usize) {
                Some(u) if self.payloads[line.payload as usize].is_some() => *u = true,
                _ => problem(format!(
                    "line {id} refers to missing payload {}",
                    line.payload
                )),
            }
        }
        for (id, p) in self.payloads.iter().enumerate() {
            let Some(p) = p else { continue };
            if !payload_used[id] {
                problem(format!("payload {id} is not used by any line"));
            }
            let mut obj = Vec::with_capacity(p.len() + 2);
            obj.push(b'{');
            obj.extend_from_slice(p);
            obj.push(b'}');
            if serde_json::from_slice::<serde::de::IgnoredAny>(&obj).is_err() {
                problem(format!("payload {id} is not a JSON object body"));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(dt: &str, ranges: &[(&str, &str, &str)]) -> SnapshotFile {
        let text: String = ranges
            .iter()
            .map(|(b, e, cc)| {
                format!(
                    "{{\"begin\":\"{b}\",\"end\":\"{e}\",\"datetime\":\"{dt}\",\"cc\":\"{cc}\"}}\n"
                )
            })
            .collect();
        SnapshotFile::from_lines(dt, &text).unwrap()
    }

    fn load(h: &mut History, i: &mut Interner, s: &SnapshotFile, replace: bool) -> Merged {
        let r = h.merge(i, s, SnapshotMeta::of_file(s), replace).unwrap();
        assert!(h.check(10).is_empty(), "{:?}", h.check(10));
        r
    }

    fn answer(h: &History, ip: &str, pos: usize) -> Option<String> {
        let piece = h.piece_of(IpKey::parse(ip).unwrap());
        let v = value_at(h.piece_changes(piece), pos);
        h.line(v)
            .map(|l| String::from_utf8_lossy(h.payload(l.payload)).into_owned())
    }

    #[test]
    fn removed_ranges_are_gone_in_newer_snapshots() {
        let mut h = History::default();
        let mut i = Interner::default();
        load(
            &mut h,
            &mut i,
            &snap(
                "2024-01-01T00:00:00Z",
                &[("1.0.0.0", "1.0.0.255", "AU"), ("2.0.0.0", "2.0.0.9", "FR")],
            ),
            false,
        );
        load(
            &mut h,
            &mut i,
            &snap("2024-02-01T00:00:00Z", &[("1.0.0.0", "1.0.0.127", "AU")]),
            false,
        );
        assert_eq!(answer(&h, "1.0.0.200", 0).as_deref(), Some(r#""cc":"AU""#));
        assert_eq!(answer(&h, "1.0.0.200", 1), None);
        assert_eq!(answer(&h, "2.0.0.5", 1), None);
        assert_eq!(answer(&h, "1.0.0.5", 1).as_deref(), Some(r#""cc":"AU""#));
    }

    #[test]
    fn out_of_order_load_equals_in_order_load() {
        let a = snap("2024-01-01T00:00:00Z", &[("1.0.0.0", "1.0.0.255", "AU")]);
        let b = snap(
            "2024-02-01T00:00:00Z",
            &[("::1", "::5", "X"), ("1.0.0.0", "1.0.0.127", "NZ")],
        );
        let c = snap("2024-03-01T00:00:00Z", &[("1.0.0.64", "1.0.0.255", "AU")]);
        let mut h1 = History::default();
        let mut i1 = Interner::default();
        for s in [&a, &b, &c] {
            load(&mut h1, &mut i1, s, false);
        }
        let mut h2 = History::default();
        let mut i2 = Interner::default();
        for s in [&c, &a, &b] {
            load(&mut h2, &mut i2, s, false);
        }
        for ip in ["1.0.0.0", "1.0.0.100", "1.0.0.200", "::3", "::6", "0.0.0.0"] {
            for pos in 0..3 {
                assert_eq!(answer(&h1, ip, pos), answer(&h2, ip, pos), "{ip} at {pos}");
            }
        }
        assert_eq!(h1.starts, h2.starts);
    }

    #[test]
    fn reload_is_a_no_op_and_a_different_file_needs_replace() {
        let a = snap("2024-01-01T00:00:00Z", &[("1.0.0.0", "1.0.0.255", "AU")]);
        let a2 = snap("2024-01-01T00:00:00Z", &[("1.0.0.0", "1.0.0.255", "NZ")]);
        let mut h = History::default();
        let mut i = Interner::default();
        assert_eq!(load(&mut h, &mut i, &a, false), Merged::Added);
        assert_eq!(load(&mut h, &mut i, &a, false), Merged::Unchanged);
        assert!(matches!(
            h.merge(&mut i, &a2, SnapshotMeta::of_file(&a2), false),
            Err(MergeError::DatetimeTaken { .. })
        ));
        assert_eq!(load(&mut h, &mut i, &a2, true), Merged::Replaced);
        assert_eq!(answer(&h, "1.0.0.1", 0).as_deref(), Some(r#""cc":"NZ""#));
        // The replaced record is collected.
        assert_eq!(h.line_count(), 1);
        assert_eq!(h.payload_count(), 1);
    }

    #[test]
    fn unchanged_answers_share_one_change() {
        let mut h = History::default();
        let mut i = Interner::default();
        for m in 1..=5 {
            let dt = format!("2024-0{m}-01T00:00:00Z");
            load(
                &mut h,
                &mut i,
                &snap(&dt, &[("1.0.0.0", "1.0.0.255", "AU")]),
                false,
            );
        }
        // Pieces: [0, 1.0.0.0), [1.0.0.0, 1.0.1.0), [1.0.1.0, max].
        assert_eq!(h.piece_count(), 3);
        assert_eq!(h.change_count(), 1);
    }
}
