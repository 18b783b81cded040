//! Merging a snapshot into the history: its position among the loaded ones,
//! splitting pieces at its boundaries, rewriting each piece's changes, and
//! dropping lines and payloads no snapshot uses any more.
//!
//! Invariant: after a merge every invariant of [`super`] holds again (the model
//! property test and [`History::check`] say so); a merge that fails leaves the
//! history as it was.

use std::collections::hash_map::{Entry, HashMap, RandomState};
use std::hash::BuildHasher;

use super::{
    Change, History, Line, LineId, MergeError, PayloadId, Snapshot, SnapshotMeta, NO_LINE,
};
use crate::ip::IpKey;
use crate::snapshot::SnapshotFile;

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
///
/// Payloads are held once, by the history: the table maps a hash of a
/// payload's bytes to the ids of the payloads with that hash, and a lookup
/// compares the bytes in `history.payloads`. Invariant: every live payload of
/// the history it serves is listed under its hash, and nothing else is.
#[derive(Default, Debug)]
pub struct Interner {
    hasher: RandomState,
    payloads: HashMap<u64, Ids>,
}

/// The payload ids under one hash: almost always one.
#[derive(Debug)]
enum Ids {
    One(PayloadId),
    Many(Vec<PayloadId>),
}

impl Interner {
    pub fn new(history: &History) -> Interner {
        let mut i = Interner::default();
        for (id, p) in history.payloads.iter().enumerate() {
            if let Some(p) = p {
                i.add(p, id as PayloadId);
            }
        }
        i
    }

    fn hash(&self, payload: &[u8]) -> u64 {
        self.hasher.hash_one(payload)
    }

    /// The id of the payload of `history` equal to `payload`, if any.
    #[cfg(test)]
    fn find(&self, history: &History, payload: &[u8]) -> Option<PayloadId> {
        self.find_at(self.hash(payload), history, payload)
    }

    fn find_at(&self, hash: u64, history: &History, payload: &[u8]) -> Option<PayloadId> {
        let same = |&id: &PayloadId| history.payload(id) == payload;
        match self.payloads.get(&hash)? {
            Ids::One(id) => Some(*id).filter(same),
            Ids::Many(ids) => ids.iter().copied().find(same),
        }
    }

    fn add(&mut self, payload: &[u8], id: PayloadId) {
        self.add_at(self.hash(payload), id);
    }

    fn add_at(&mut self, hash: u64, id: PayloadId) {
        match self.payloads.entry(hash) {
            Entry::Vacant(e) => {
                e.insert(Ids::One(id));
            }
            Entry::Occupied(mut e) => match e.get_mut() {
                Ids::One(first) => {
                    let first = *first;
                    e.insert(Ids::Many(vec![first, id]));
                }
                Ids::Many(ids) => ids.push(id),
            },
        }
    }

    fn remove(&mut self, payload: &[u8], id: PayloadId) {
        self.remove_at(self.hash(payload), id);
    }

    fn remove_at(&mut self, hash: u64, id: PayloadId) {
        let Entry::Occupied(mut e) = self.payloads.entry(hash) else {
            return;
        };
        match e.get_mut() {
            Ids::One(one) if *one == id => {
                e.remove();
            }
            Ids::One(_) => {}
            Ids::Many(ids) => {
                ids.retain(|&i| i != id);
                if let [one] = ids[..] {
                    e.insert(Ids::One(one));
                }
            }
        }
    }
}

/// The items of a vector still to be read, front first, whose memory goes back
/// as they are read: the vector is reversed in place (its front at the back),
/// read by popping, and its capacity cut to what is left each time
/// [`Backlog::RELEASE`] bytes have been read (a shrinking reallocation moves
/// nothing).
struct Backlog<T> {
    rev: Vec<T>,
}

impl<T: Copy> Backlog<T> {
    const RELEASE: usize = 2 << 20;

    fn new(mut items: Vec<T>) -> Backlog<T> {
        items.reverse();
        Backlog { rev: items }
    }

    fn peek(&self) -> Option<T> {
        self.rev.last().copied()
    }

    fn pop(&mut self) -> Option<T> {
        let item = self.rev.pop();
        self.release();
        item
    }

    /// Moves the next `n` items (or all there are) to `out`, in order.
    fn take(&mut self, n: usize, out: &mut Vec<T>) {
        let at = self.rev.len().saturating_sub(n);
        out.extend(self.rev[at..].iter().rev());
        self.rev.truncate(at);
        self.release();
    }

    fn release(&mut self) {
        if (self.rev.capacity() - self.rev.len()) * std::mem::size_of::<T>() >= Self::RELEASE {
            self.rev.shrink_to_fit();
        }
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
            .map(|p| {
                // One hash for the lookup and, when new, the entry.
                let hash = interner.hash(p);
                match interner.find_at(hash, self, p) {
                    Some(id) => id,
                    None => {
                        let id = self.payloads.len() as PayloadId;
                        interner.add_at(hash, id);
                        self.payloads.push(Some(p.clone()));
                        id
                    }
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
            let id = self
                .find_line(piece, &line)
                .unwrap_or_else(|| self.lines.push(line));
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
            .find(|&id| id != NO_LINE && self.line(id).as_ref() == Some(line))
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
    ///
    /// The old pieces are read front to back from a [`Backlog`] each, which
    /// gives their memory back as the new pieces take theirs: a sweep holds
    /// about one copy of the pieces, not two (the bulk of an update's memory
    /// beside the snapshot read).
    fn sweep(&mut self, file: &SnapshotFile, line_ids: &[LineId], place: Placement, n_old: usize) {
        let ranges = &file.ranges;
        let mut starts = Vec::with_capacity(self.starts.len() + 2 * ranges.len());
        let mut offsets = Vec::with_capacity(starts.capacity() + 1);
        let mut changes = Vec::with_capacity(self.changes.len() + ranges.len());
        offsets.push(0u32);
        let mut old_starts = Backlog::new(std::mem::take(&mut self.starts));
        let mut old_offsets = Backlog::new(std::mem::take(&mut self.offsets));
        let mut old_changes = Backlog::new(std::mem::take(&mut self.changes));
        // Reads the next old piece's changes into `old`; returns the start of
        // the one after it.
        let mut next_piece = |old: &mut Vec<Change>| {
            old_starts.pop();
            let first = old_offsets.pop().unwrap_or(0);
            let end = old_offsets.peek().unwrap_or(first);
            old.clear();
            old_changes.take(end.saturating_sub(first) as usize, old);
            old_starts.peek()
        };

        // The changes of the old piece containing x, and the next one's start.
        let mut old = Vec::new();
        let mut next_old = next_piece(&mut old);
        let mut j = 0; // first new range not entirely before x
        let mut x = IpKey::MIN;
        loop {
            while j < ranges.len() && { ranges[j].end } < x {
                j += 1;
            }
            let inside = j < ranges.len() && { ranges[j].begin } <= x;
            let v = if inside { line_ids[j] } else { NO_LINE };
            let before = changes.len();
            rewrite(&old, place, n_old, v, &mut changes);
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
            let next_new = if inside {
                { ranges[j].end }.next()
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
                next_old = next_piece(&mut old);
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
        for (id, &used) in used.iter().enumerate() {
            if let Some(line) = self.lines.get(id) {
                if used {
                    payload_used[line.payload as usize] = true;
                } else {
                    self.lines.remove(id);
                }
            }
        }
        for (id, slot) in self.payloads.iter_mut().enumerate() {
            if !payload_used[id] {
                if let Some(p) = slot.take() {
                    interner.remove(&p, id as PayloadId);
                }
            }
        }
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
    fn payloads_with_one_hash_are_told_apart_by_their_bytes() {
        let mut h = History::default();
        for p in [&b"\"cc\":\"AU\""[..], b"\"cc\":\"NZ\"", b"\"cc\":\"FR\""] {
            h.payloads.push(Some(p.into()));
        }
        let mut i = Interner::default();
        for id in 0..3 {
            i.add_at(7, id);
        }
        assert_eq!(i.find_at(7, &h, b"\"cc\":\"NZ\""), Some(1));
        assert_eq!(i.find_at(7, &h, b"\"cc\":\"FR\""), Some(2));
        assert_eq!(i.find_at(7, &h, b"\"cc\":\"DE\""), None);
        assert_eq!(i.find_at(8, &h, b"\"cc\":\"AU\""), None);
        i.remove_at(7, 1);
        i.remove_at(7, 0);
        assert_eq!(i.find_at(7, &h, b"\"cc\":\"NZ\""), None);
        assert_eq!(i.find_at(7, &h, b"\"cc\":\"FR\""), Some(2));
        i.remove_at(7, 2);
        assert!(i.payloads.is_empty());
        // Built from a history, every live payload is found under its own hash.
        h.payloads[1] = None;
        let i = Interner::new(&h);
        assert_eq!(i.find(&h, b"\"cc\":\"FR\""), Some(2));
        assert_eq!(i.find(&h, b"\"cc\":\"NZ\""), None);
    }

    #[test]
    fn a_sweep_reads_pieces_across_releases() {
        // Enough pieces (200,000) that the backlogs give memory back on the way.
        let ranges: Vec<(String, String, String)> = (0..100_000u32)
            .map(|k| {
                let ip = |x: u32| std::net::Ipv4Addr::from(x).to_string();
                (ip(k * 4), ip(k * 4 + 1), format!("C{}", k % 7))
            })
            .collect();
        fn as_refs(r: &[(String, String, String)]) -> Vec<(&str, &str, &str)> {
            r.iter()
                .map(|(b, e, c)| (b.as_str(), e.as_str(), c.as_str()))
                .collect()
        }
        let mut h = History::default();
        let mut i = Interner::default();
        load(
            &mut h,
            &mut i,
            &snap("2024-01-01T00:00:00Z", &as_refs(&ranges)),
            false,
        );
        let shifted: Vec<_> = ranges
            .iter()
            .step_by(2)
            .map(|(_, e, c)| (e.clone(), e.clone(), c.clone()))
            .collect();
        load(
            &mut h,
            &mut i,
            &snap("2024-02-01T00:00:00Z", &as_refs(&shifted)),
            false,
        );
        assert_eq!(answer(&h, "0.0.0.0", 0).as_deref(), Some(r#""cc":"C0""#));
        assert_eq!(answer(&h, "0.0.0.0", 1), None);
        assert_eq!(answer(&h, "0.0.0.1", 1).as_deref(), Some(r#""cc":"C0""#));
        assert_eq!(answer(&h, "0.0.0.9", 0).as_deref(), Some(r#""cc":"C2""#));
        assert_eq!(answer(&h, "0.0.0.9", 1).as_deref(), Some(r#""cc":"C2""#));
        assert_eq!(answer(&h, "0.0.0.5", 1), None);
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
