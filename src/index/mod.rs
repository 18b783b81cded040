//! The index that every lookup touches.
//!
//! An [`Index`] is a view of an index image ([`image`]): the history's
//! pieces, changes, lines and payloads as flat arrays, usually in a file mapped
//! read-only and shared by every process that opens the store, and what makes a
//! lookup cheap: the snapshot instants in one sorted array, and bucket tables (IPv4 by blocks down to /24s,
//! global unicast IPv6 `2000::/4` by blocks sized to its data, the rest of IPv6 by
//! the top 16 bits) that narrow the binary search for a piece to a few cache
//! lines, usually to none. It is immutable: a load builds a new one beside the old one
//! and swaps it in through [`SharedIndex`], so a lookup never waits for a load.
//!
//! Every read of the arrays is bounds-checked without panicking: an image whose
//! section checksums were not read ([`image::Check::Header`]) cannot
//! make a lookup crash or read outside it.
//!
//! A match is written as the snapshot line's JSON object: `begin`, `end`, the
//! answering snapshot's `datetime`, then the payload bytes as loaded, so the hot
//! path copies bytes instead of serialising values.
//!
//! # Layout
//!
//! - this module: the [`Index`], one lookup at a time, and record output;
//! - [`image`](self::image): the bytes an index views (built in memory or the
//!   store's mapped index file, [`crate::index_file`]), their header and layout;
//! - [`tables`](self::tables): the bucket tables that find an address's piece;
//! - [`starts`](self::starts): the pieces' starts, IPv4 ones in 2 bytes;
//! - [`changes`](self::changes): each piece's changes as the file packs them;
//! - [`batch`](self::batch): many lookups at once, their cache misses overlapped.

mod batch;
pub(crate) mod changes;
pub mod image;
mod starts;
mod tables;

use changes::Changes;
use image::blocks::{self, Blocks};
use image::exceptions::Exceptions;
use image::packed::Packed;
use image::{Image, LineBits, Section, View};
use starts::Starts;

pub(crate) use tables::Tables;

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::history::{History, Line, Snapshot, SnapshotMeta, NO_LINE};
use crate::ip::IpKey;
use crate::store::StoreState;
use crate::time::Timestamp;

/// Why an image cannot be used as an index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("snapshot list: {0}")]
    Snapshots(String),
    #[error(transparent)]
    Build(#[from] image::BuildError),
}

/// The index currently in use, swapped atomically when a load commits.
pub type SharedIndex = Arc<ArcSwap<Index>>;

/// Lookup structure over one data set's history.
#[derive(Debug)]
pub struct Index {
    snapshots: Vec<Snapshot>,
    instants: Vec<Timestamp>,
    /// Piece starts (`u128` keys), see [`crate::history`].
    starts: Starts,
    /// Changes of piece `i` are `changes[offsets[i]..offsets[i+1]]`.
    offsets: Blocks,
    changes: Changes,
    /// Lines: first piece, payload and span, split as `line_bits` says.
    lines: Packed,
    line_bits: LineBits,
    /// The span field that sends a line's span to `spans`.
    span_mark: u64,
    /// The spans too wide for the lines' span field, by line.
    spans: Exceptions,
    /// Payload `p` is `payloads[payload_offsets[p]..payload_offsets[p+1]]`.
    payload_offsets: View<u32>,
    payloads: View<u8>,
    /// `v4[b]`: the piece containing the first IPv4 address of block `b` (blocks of
    /// `2^v4_shift` addresses; /24s for a full data set).
    v4: Packed,
    v4_shift: u32,
    /// `v6[b]`: the piece containing the first address whose top 16 bits are `b`.
    v6: Packed,
    /// Finer table for global unicast `2000::/4`, where real IPv6 data lives:
    /// `global[b]` for blocks of `2^global_shift` addresses.
    global: Packed,
    global_shift: u32,
    /// Owns the memory the views read; declared last, dropped last.
    image: Image,
}

/// One answer: a line of one snapshot.
#[derive(Clone, Copy, Debug)]
pub struct Match<'a> {
    pub line: Line,
    pub snapshot: &'a Snapshot,
    payload: &'a [u8],
}

impl Match<'_> {
    /// Appends the record as a JSON object.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"begin\":\"");
        self.line.begin.write_text(out);
        out.extend_from_slice(b"\",\"end\":\"");
        self.line.end.write_text(out);
        out.extend_from_slice(b"\",\"datetime\":");
        out.extend_from_slice(&self.snapshot.datetime_json);
        if !self.payload.is_empty() {
            out.push(b',');
            out.extend_from_slice(self.payload);
        }
        out.push(b'}');
    }

    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(128);
        self.write_json(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

impl Default for Index {
    fn default() -> Self {
        Index::new(History::default())
    }
}

impl Index {
    /// The index of an in-memory history (not tied to a store).
    ///
    /// # Panics
    ///
    /// If `history` breaks the invariants of [`crate::history`], which merging
    /// never does; a history read from disk goes through [`Index::build`].
    pub fn new(history: History) -> Index {
        match Index::build(&history, StoreState::default()) {
            Ok(index) => index,
            Err(e) => panic!("a merged history must be indexable: {e}"),
        }
    }

    /// The index of `history`, the content of a store at `state`, in memory.
    pub fn build(history: &History, state: StoreState) -> Result<Index, IndexError> {
        Index::from_image(Image::build(history, state)?)
    }

    /// The index viewing `image` (checked when it was made or mapped).
    pub fn from_image(image: Image) -> Result<Index, IndexError> {
        let metas: Vec<SnapshotMeta> = serde_json::from_slice(image.snapshots_json())
            .map_err(|e| IndexError::Snapshots(e.to_string()))?;
        let snapshots: Vec<Snapshot> = metas.into_iter().map(Snapshot::new).collect();
        let instants: Vec<Timestamp> = snapshots.iter().map(|s| s.meta.instant()).collect();
        if instants.windows(2).any(|w| w[0] >= w[1]) || snapshots.len() > usize::from(u16::MAX) {
            return Err(IndexError::Snapshots("not strictly sorted".into()));
        }
        let pieces = image.count(Section::StartsV4) + image.count(Section::StartsWide);
        let line_bits = LineBits::of(
            pieces,
            image.count(Section::PayloadOffsets).saturating_sub(1),
        );
        // The image's layout check keeps this in 1..=64.
        let span_bits = image
            .width(Section::Lines)
            .saturating_sub(line_bits.piece_bits + line_bits.payload_bits)
            .clamp(1, 64);
        let offsets = Blocks::new(
            image.packed(Section::Offsets),
            image.packed(Section::OffsetBits),
            blocks::base_bits(image.count(Section::Changes) as u64),
            pieces + 1,
        );
        Ok(Index {
            snapshots,
            instants,
            starts: Starts::of(&image),
            offsets,
            changes: Changes::of(&image),
            lines: image.packed(Section::Lines),
            line_bits,
            span_mark: u64::MAX >> (64 - span_bits),
            spans: Exceptions::new(image.packed(Section::SpanAt), image.packed(Section::Spans)),
            payload_offsets: image.view(Section::PayloadOffsets),
            payloads: image.view(Section::Payloads),
            v4: image.packed(Section::V4),
            v4_shift: image.v4_shift,
            v6: image.packed(Section::V6),
            global: image.packed(Section::Global),
            global_shift: image.global_shift,
            image,
        })
    }

    /// The image this index reads (its state, whether it is mapped).
    pub fn image(&self) -> &Image {
        &self.image
    }

    /// The store state this index was built from.
    pub fn state(&self) -> StoreState {
        self.image.state()
    }

    /// The loaded snapshots, oldest first.
    pub fn snapshots(&self) -> &[Snapshot] {
        &self.snapshots
    }

    pub fn piece_count(&self) -> usize {
        self.starts.len()
    }

    /// Distinct records (lines) of the whole history.
    pub fn line_count(&self) -> usize {
        self.lines.len()
    }

    pub fn payload_count(&self) -> usize {
        self.payload_offsets.len().saturating_sub(1)
    }

    /// Every distinct payload (a record's fields other than `begin`, `end` and
    /// `datetime`: the members of a JSON object, without braces), each once.
    pub fn payloads(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.payload_count() as u32).map(|p| self.payload(p))
    }

    /// Every distinct record's range, in no particular order.
    pub fn ranges(&self) -> impl Iterator<Item = (IpKey, IpKey)> + '_ {
        (0..self.lines.len() as u32).filter_map(|l| {
            let line = self.line(l)?;
            Some((line.begin, line.end))
        })
    }

    /// The span of piece `piece`'s changes (empty past the end).
    #[inline(always)]
    fn change_span(&self, piece: usize) -> (usize, usize) {
        self.offsets
            .pair(piece)
            .map_or((0, 0), |(lo, hi)| (lo as usize, hi as usize))
    }

    /// The line answering for piece `piece` in the snapshot at `pos`.
    #[inline]
    fn piece_line(&self, piece: usize, pos: usize) -> u32 {
        let (lo, hi) = self.change_span(piece);
        self.changes.line_at(lo, hi, pos)
    }

    /// The record line `id`: its range (from the pieces it spans) and payload.
    #[inline]
    fn line(&self, id: u32) -> Option<Line> {
        self.line_near(id, IpKey(0))
    }

    /// [`Index::line`], fastest for a line near `ip` (one that contains it).
    #[inline(always)]
    fn line_near(&self, id: u32, ip: IpKey) -> Option<Line> {
        let (first, last, payload) = self.line_parts(id)?;
        self.line_of_parts(first, last, payload, ip)
    }

    /// The line of pieces `first..=last` and payload `payload`, near `ip`.
    #[inline(always)]
    fn line_of_parts(&self, first: usize, last: usize, payload: u32, ip: IpKey) -> Option<Line> {
        let begin = self.starts.get_near(first, ip.0)?;
        let end = match self.starts.get_near(last + 1, ip.0) {
            Some(next) => next.wrapping_sub(1),
            None => u128::MAX,
        };
        Some(Line {
            begin: IpKey(begin),
            end: IpKey(end),
            payload,
        })
    }

    /// Line `id`'s first and last piece and its payload.
    #[inline]
    fn line_parts(&self, id: u32) -> Option<(usize, usize, u32)> {
        let (first, span, payload) = self.line_bits.split(self.lines.get(id as usize)?);
        let span = if span == self.span_mark {
            self.spans.get(id as usize)?
        } else {
            span
        };
        Some((
            first,
            first.checked_add(usize::try_from(span).ok()?)?,
            payload,
        ))
    }

    /// Payload `id`'s bytes: the record's fields other than `begin`, `end`
    /// and `datetime`, as loaded, without braces (empty for an unknown id).
    #[inline]
    pub fn payload(&self, id: u32) -> &[u8] {
        let lo = self
            .payload_offsets
            .get(id as usize)
            .map_or(0, |&o| o as usize);
        let hi = self
            .payload_offsets
            .get(id as usize + 1)
            .map_or(0, |&o| o as usize);
        self.payloads.get(lo..hi).unwrap_or_default()
    }

    #[inline]
    fn matched(&self, line: u32, pos: usize) -> Option<Match<'_>> {
        self.matched_near(line, pos, IpKey(0))
    }

    /// [`Index::matched`] for a line that contains `ip`.
    #[inline]
    fn matched_near(&self, line: u32, pos: usize, ip: IpKey) -> Option<Match<'_>> {
        if line == NO_LINE {
            return None;
        }
        self.match_of(self.line_near(line, ip)?, pos)
    }

    /// The answer of line `l` in the snapshot at `pos`.
    #[inline(always)]
    fn match_of(&self, l: Line, pos: usize) -> Option<Match<'_>> {
        Some(Match {
            line: l,
            snapshot: self.snapshots.get(pos)?,
            payload: self.payload(l.payload),
        })
    }

    /// The datetime of the earliest snapshot; `None` when there is none. Times
    /// before it have no snapshot to answer them.
    pub fn first_snapshot(&self) -> Option<Timestamp> {
        self.instants.first().copied()
    }

    /// Position of the snapshot answering at `t`: the greatest datetime <= t.
    #[inline]
    pub fn snapshot_position(&self, t: Timestamp) -> Option<usize> {
        self.instants.partition_point(|&s| s <= t).checked_sub(1)
    }

    /// Every record of the snapshot at `pos`, in address order (each once, though
    /// its range may span several pieces).
    pub fn records_at(&self, pos: usize) -> impl Iterator<Item = Match<'_>> + '_ {
        let mut previous = NO_LINE;
        (0..self.starts.len()).filter_map(move |i| {
            let line = self.piece_line(i, pos);
            if line == previous {
                return None;
            }
            previous = line;
            self.matched(line, pos)
        })
    }

    /// The record valid for `ip` at instant `t`.
    #[inline]
    pub fn at(&self, ip: IpKey, t: Timestamp) -> Option<Match<'_>> {
        let pos = self.snapshot_position(t)?;
        let line = self.line_at(ip, pos);
        self.matched_near(line, pos, ip)
    }

    /// The line id answering for `ip` in the snapshot at `pos` (`NO_LINE` if none).
    #[inline]
    pub fn line_at(&self, ip: IpKey, pos: usize) -> u32 {
        self.piece_line(self.piece(ip), pos)
    }

    /// The record in the newest snapshot.
    #[inline]
    pub fn latest(&self, ip: IpKey) -> Option<Match<'_>> {
        let pos = self.instants.len().checked_sub(1)?;
        let line = self.piece_line(self.piece(ip), pos);
        self.matched_near(line, pos, ip)
    }

    /// Every version of the record for `ip`, newest first; each carries the
    /// datetime of the snapshot in which it first answered. Periods without a match
    /// are not listed.
    pub fn history_of(&self, ip: IpKey) -> Vec<Match<'_>> {
        let (lo, hi) = self.change_span(self.piece(ip));
        self.changes
            .iter(lo, hi)
            .rev()
            .filter_map(|c| self.matched_near(c.line, c.pos.into(), ip))
            .collect()
    }

    pub fn snapshot_count(&self) -> usize {
        self.instants.len()
    }
}

/// Writes a `{"history":[...]}` object.
pub fn write_history_json(matches: &[Match<'_>], out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"history\":[");
    for (i, m) in matches.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        m.write_json(out);
    }
    out.extend_from_slice(b"]}");
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::history::{Interner, SnapshotMeta};
    use crate::snapshot::SnapshotFile;

    /// The index of snapshot files given as text, oldest first (also used by
    /// other modules' tests).
    pub(crate) fn index(files: &[&str]) -> Index {
        let mut h = History::default();
        let mut interner = Interner::default();
        for (n, text) in files.iter().enumerate() {
            let f = SnapshotFile::from_lines(&format!("f{n}"), text).unwrap();
            let meta = SnapshotMeta::of_file(&f);
            h.merge(&mut interner, &f, meta, false).unwrap();
        }
        Index::new(h)
    }

    fn at(ix: &Index, ip: &str, t: &str) -> Option<String> {
        ix.at(IpKey::parse(ip).unwrap(), Timestamp::parse(t).unwrap())
            .map(|m| m.to_json())
    }

    pub(crate) const A: &str = r#"{"begin":"1.0.0.0","end":"1.0.0.255","datetime":"2024-01-01T00:00:00Z","cc":"AU"}
{"begin":"2001:db8::","end":"2001:db8::ffff","datetime":"2024-01-01T00:00:00Z","cc":"DE"}"#;
    pub(crate) const B: &str =
        r#"{"begin":"1.0.0.0","end":"1.0.0.127","datetime":"2024-02-01T00:00:00+00:00","cc":"AU"}"#;

    #[test]
    fn event_time_lookups_follow_complete_snapshot_semantics() {
        let ix = index(&[A, B]);
        assert_eq!(at(&ix, "1.0.0.200", "2023-12-31"), None);
        assert_eq!(
            at(&ix, "1.0.0.200", "2024-01-15").as_deref(),
            Some(
                r#"{"begin":"1.0.0.0","end":"1.0.0.255","datetime":"2024-01-01T00:00:00Z","cc":"AU"}"#
            )
        );
        assert_eq!(at(&ix, "1.0.0.200", "2024-02-01"), None);
        assert_eq!(
            at(&ix, "::ffff:1.0.0.5", "2030-01-01").as_deref(),
            Some(
                r#"{"begin":"1.0.0.0","end":"1.0.0.127","datetime":"2024-02-01T00:00:00+00:00","cc":"AU"}"#
            )
        );
        assert_eq!(
            at(&ix, "2001:db8::1", "2024-01-01T00:00:00Z").as_deref(),
            Some(
                r#"{"begin":"2001:db8::","end":"2001:db8::ffff","datetime":"2024-01-01T00:00:00Z","cc":"DE"}"#
            )
        );
        assert_eq!(at(&ix, "2001:db8::1", "2024-03-01"), None);
        assert!(ix.latest(IpKey::parse("1.0.0.200").unwrap()).is_none());
        assert!(ix.latest(IpKey::parse("1.0.0.100").unwrap()).is_some());
    }

    #[test]
    fn history_is_newest_first() {
        let ix = index(&[A, B]);
        let h = ix.history_of(IpKey::parse("1.0.0.1").unwrap());
        let dts: Vec<_> = h
            .iter()
            .map(|m| m.snapshot.meta.datetime.as_str())
            .collect();
        assert_eq!(dts, ["2024-02-01T00:00:00+00:00", "2024-01-01T00:00:00Z"]);
        assert!(ix.history_of(IpKey::parse("9.9.9.9").unwrap()).is_empty());
    }

    #[test]
    fn empty_index_matches_nothing() {
        let ix = Index::default();
        assert!(ix.latest(IpKey::parse("1.2.3.4").unwrap()).is_none());
        assert!(ix
            .at(
                IpKey::parse("::1").unwrap(),
                Timestamp::parse("2024-01-01").unwrap()
            )
            .is_none());
    }
}
