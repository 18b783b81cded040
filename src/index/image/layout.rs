//! Laying out a history as an index image: the sections, their element types,
//! and [`Image::lay_out`], which writes them in a deterministic order (the same
//! history and state give the same bytes) into a [`Sink`]: memory
//! ([`Image::build`]) or the index file being written (`index_file`).
//!
//! Invariant: the sections go to the sink one at a time, in file order, each
//! packed from the history into its final bytes and freed before the next is
//! packed; the header (which holds every section's place and checksum) goes
//! last. The whole image is never held by the layout itself.

use super::header::{write_header, Entry, HEADER_LEN};
use super::BuildError;
use super::{blocks, exceptions, packed, Bytes, Image};
use crate::history::{History, NO_LINE};
use crate::index::Tables;
use crate::ip::IpKey;
use crate::store::StoreState;

pub(super) const ALIGN: usize = 64;

/// The /16s of IPv4: [`Section::StartsV4High`] has one entry more.
pub(crate) const V4_HIGHS: usize = 1 << 16;

/// Wide starts per fence ([`Section::WideFences`]): two cache lines of them.
pub(crate) const FENCE: usize = 16;

/// How many times its bits a line's span kept aside is weighed when the span
/// field's width is chosen (see [`Image::build`]).
const SPAN_ASIDE_WEIGHT: u64 = 4;

/// The sections of the file, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Section {
    /// JSON array of the snapshots' metadata, oldest first.
    Snapshots,
    /// Starts of the pieces that start in IPv4 (`::ffff:0:0/96`): the low 16
    /// bits of their offset from `::ffff:0:0` (u16)...
    StartsV4,
    /// ...and where each /16 starts among them: entry `h` is the number of
    /// IPv4 starts below `h << 16`, for `h` in `0..=65536` (packed).
    StartsV4High,
    /// Starts of the other pieces, before and after the IPv4 ones: their top
    /// 64 bits (u64).
    StartsWide,
    /// The wide starts whose low 64 bits are not zero (few: real IPv6 data
    /// splits at /64 or above), by index among the wide starts (packed, sorted)...
    StartsLowAt,
    /// ...and those low 64 bits (packed).
    StartsLow,
    /// Every [`FENCE`]-th wide start's top 64 bits (u64): the first step of
    /// a search among many wide starts.
    WideFences,
    /// Change offsets per piece (pieces + 1): the block table of a two-level
    /// array ([`super::blocks`]).
    Offsets,
    /// ...and its distances (a bit stream: width 1, one element a bit).
    OffsetBits,
    /// Changes, packed: `pos << line_bits | line` (see [`crate::index::changes`]).
    Changes,
    /// Lines, packed: first piece, payload, then the number of further pieces
    /// the line spans (see [`LineBits`]), all-ones for a span kept in `Spans`.
    Lines,
    /// The lines whose span is kept aside (packed, sorted)...
    SpanAt,
    /// ...and their spans (packed).
    Spans,
    /// Payload offsets into `Payloads` (u32, payloads + 1).
    PayloadOffsets,
    /// Payload bytes (JSON object bodies).
    Payloads,
    /// Bucket tables (packed piece indexes).
    V4,
    V6,
    Global,
}

pub(super) const SECTIONS: [Section; 18] = [
    Section::Snapshots,
    Section::StartsV4,
    Section::StartsV4High,
    Section::StartsWide,
    Section::StartsLowAt,
    Section::StartsLow,
    Section::WideFences,
    Section::Offsets,
    Section::OffsetBits,
    Section::Changes,
    Section::Lines,
    Section::SpanAt,
    Section::Spans,
    Section::PayloadOffsets,
    Section::Payloads,
    Section::V4,
    Section::V6,
    Section::Global,
];

/// How a section's elements are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Form {
    /// Plain little-endian integers of this many bits.
    Fixed(u32),
    /// Bit-packed ([`super::packed`]), any width up to 64.
    Packed,
}

impl Section {
    pub(super) fn name(self) -> &'static str {
        match self {
            Section::Snapshots => "snapshots",
            Section::StartsV4 => "ipv4 starts",
            Section::StartsV4High => "ipv4 starts' /16s",
            Section::StartsWide => "starts",
            Section::StartsLowAt => "starts' low bits (indexes)",
            Section::StartsLow => "starts' low bits",
            Section::WideFences => "starts' fences",
            Section::Offsets => "offsets",
            Section::OffsetBits => "offset distances",
            Section::Changes => "changes",
            Section::Lines => "lines",
            Section::SpanAt => "wide spans (lines)",
            Section::Spans => "wide spans",
            Section::PayloadOffsets => "payload offsets",
            Section::Payloads => "payloads",
            Section::V4 => "ipv4 table",
            Section::V6 => "ipv6 table",
            Section::Global => "global unicast table",
        }
    }

    pub(super) fn form(self) -> Form {
        match self {
            Section::Snapshots | Section::Payloads => Form::Fixed(8),
            Section::StartsV4 => Form::Fixed(16),
            Section::PayloadOffsets => Form::Fixed(32),
            Section::StartsWide | Section::WideFences => Form::Fixed(64),
            Section::StartsV4High
            | Section::StartsLowAt
            | Section::StartsLow
            | Section::Offsets
            | Section::OffsetBits
            | Section::SpanAt
            | Section::Spans
            | Section::Changes
            | Section::Lines
            | Section::V4
            | Section::V6
            | Section::Global => Form::Packed,
        }
    }
}

/// How a packed line splits its bits: the first piece in the low
/// `piece_bits`, the payload in the next `payload_bits`, the number of further
/// pieces the line spans in the rest (a line's `begin` always starts a piece,
/// and its `end` always ends one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LineBits {
    pub piece_bits: u32,
    pub payload_bits: u32,
}

impl LineBits {
    /// The split for `pieces` pieces and `payloads` payloads.
    pub(crate) fn of(pieces: usize, payloads: usize) -> LineBits {
        LineBits {
            piece_bits: packed::bits_for(pieces.saturating_sub(1) as u64),
            payload_bits: packed::bits_for(payloads.saturating_sub(1) as u64),
        }
    }

    fn pack(self, first: u64, payload: u64, span: u64) -> u64 {
        first | payload << self.piece_bits | span << (self.piece_bits + self.payload_bits)
    }

    /// `(first piece, span field, payload)` of a packed line: the span field
    /// is the number of further pieces, or all-ones when the span is kept
    /// aside (see [`Section::Spans`]).
    #[inline(always)]
    pub(crate) fn split(self, v: u64) -> (usize, u64, u32) {
        let first = v & ((1 << self.piece_bits) - 1);
        let rest = v >> self.piece_bits;
        let payload = rest & ((1 << self.payload_bits) - 1);
        let span = rest >> self.payload_bits;
        (first as usize, span, payload as u32)
    }
}

/// The bits of a packed change's line: every line id and the all-ones "no
/// match" above them.
pub(crate) fn change_line_bits(lines: usize) -> u32 {
    packed::bits_for(lines as u64)
}

/// Where an index image goes as it is laid out ([`Image::lay_out`]): the
/// sections in file order from [`HEADER_LEN`] on (each with the padding after
/// it), then the header, which needs every section's place and checksum.
pub(crate) trait Sink {
    type Error;
    /// Appends `bytes` after the ones before (the first [`HEADER_LEN`] are
    /// zeros held for the header).
    fn append(&mut self, bytes: &[u8]) -> Result<(), Self::Error>;
    /// Puts `header` (`HEADER_LEN` bytes) at the start, once all else is in.
    fn header(&mut self, header: &[u8]) -> Result<(), Self::Error>;
}

/// Why an image could not be laid out into a sink.
#[derive(Debug)]
pub(crate) enum LayOutError<E> {
    Build(BuildError),
    Sink(E),
}

impl<E> From<BuildError> for LayOutError<E> {
    fn from(e: BuildError) -> Self {
        LayOutError::Build(e)
    }
}

/// What the header of a laid-out image records besides the state.
pub(crate) struct Laid {
    pub len: usize,
    pub v4_shift: u32,
    pub global_shift: u32,
    pub line_bits: u32,
    pub sections: [Entry; SECTIONS.len()],
}

/// An image in anonymous memory, 16-byte aligned.
#[derive(Default)]
struct Memory {
    words: Vec<u128>,
    len: usize,
}

impl Memory {
    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: the u128 buffer viewed as bytes; u8 has no alignment needs,
        // and `len` never exceeds the words' bytes.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.len) }
    }
}

impl Sink for Memory {
    type Error = std::convert::Infallible;

    fn append(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
        let at = self.len;
        self.len += bytes.len();
        self.words.resize(self.len.div_ceil(16), 0);
        self.bytes_mut()[at..].copy_from_slice(bytes);
        Ok(())
    }

    fn header(&mut self, header: &[u8]) -> Result<(), Self::Error> {
        self.bytes_mut()[..header.len()].copy_from_slice(header);
        Ok(())
    }
}

/// The sections appended so far: each goes to the sink with its padding as
/// soon as it is packed, and its bytes are freed before the next is.
struct Sections<'s, S: Sink> {
    sink: &'s mut S,
    at: usize,
    entries: [Entry; SECTIONS.len()],
    next: usize,
}

impl<'s, S: Sink> Sections<'s, S> {
    fn new(sink: &'s mut S) -> Result<Self, S::Error> {
        sink.append(&[0; HEADER_LEN])?;
        Ok(Sections {
            sink,
            at: HEADER_LEN,
            entries: [Entry::default(); SECTIONS.len()],
            next: 0,
        })
    }

    /// Appends the next section: `padded` holds its `len` bytes then zeros
    /// up to the next [`ALIGN`] (which its checksum covers too).
    fn put(&mut self, padded: &[u8], len: usize, count: usize, width: u32) -> Result<(), S::Error> {
        debug_assert_eq!(padded.len(), len.next_multiple_of(ALIGN));
        self.sink.append(padded)?;
        self.record(len, count, width, crc32fast::hash(padded));
        Ok(())
    }

    /// Appends the next section from `pieces`, one after the other: `len`
    /// bytes in all.
    fn put_pieces<'p>(
        &mut self,
        pieces: impl Iterator<Item = &'p [u8]>,
        len: usize,
    ) -> Result<(), S::Error> {
        let mut crc = crc32fast::Hasher::new();
        let mut put = 0usize;
        // Small pieces are gathered before they go to the sink.
        let mut gathered = Vec::with_capacity(1 << 16);
        for p in pieces {
            if gathered.len() + p.len() > gathered.capacity() {
                self.sink.append(&gathered)?;
                crc.update(&gathered);
                gathered.clear();
            }
            if p.len() >= gathered.capacity() {
                self.sink.append(p)?;
                crc.update(p);
            } else {
                gathered.extend_from_slice(p);
            }
            put += p.len();
        }
        debug_assert_eq!(put, len);
        gathered.resize(gathered.len() + (len.next_multiple_of(ALIGN) - len), 0);
        self.sink.append(&gathered)?;
        crc.update(&gathered);
        self.record(len, len, 8, crc.finalize());
        Ok(())
    }

    fn part(&mut self, part: Part) -> Result<(), S::Error> {
        let (len, count, width) = (part.byte_len(), part.count(), part.width());
        let mut padded = vec![0u8; len.next_multiple_of(ALIGN)];
        part.write(&mut padded[..len]);
        drop(part);
        self.put(&padded, len, count, width)
    }

    fn record(&mut self, len: usize, count: usize, width: u32, crc: u32) {
        self.entries[self.next] = Entry {
            off: self.at,
            len,
            count,
            crc,
            width,
        };
        self.next += 1;
        self.at = (self.at + len).next_multiple_of(ALIGN);
    }
}

/// The parts of a section before it is written.
enum Part<'a> {
    Bytes(&'a [u8]),
    Fixed16(Vec<u16>),
    Fixed32(Vec<u32>),
    Fixed64(Vec<u64>),
    Packed(Vec<u64>, u32),
    /// A bit stream: `count` bits, width 1.
    Bits(packed::BitWriter),
}

impl Part<'_> {
    fn count(&self) -> usize {
        match self {
            Part::Bytes(b) => b.len(),
            Part::Fixed16(v) => v.len(),
            Part::Fixed32(v) => v.len(),
            Part::Fixed64(v) => v.len(),
            Part::Packed(v, _) => v.len(),
            Part::Bits(w) => w.len(),
        }
    }

    fn width(&self) -> u32 {
        match self {
            Part::Bytes(_) => 8,
            Part::Fixed16(_) => 16,
            Part::Fixed32(_) => 32,
            Part::Fixed64(_) => 64,
            Part::Packed(_, w) => *w,
            Part::Bits(_) => 1,
        }
    }

    fn byte_len(&self) -> usize {
        match self {
            Part::Packed(v, w) => packed::byte_len(v.len(), *w),
            Part::Bits(w) => packed::byte_len(w.len(), 1),
            _ => self.count() * self.width() as usize / 8,
        }
    }

    fn write(&self, dst: &mut [u8]) {
        match self {
            Part::Bytes(b) => dst.copy_from_slice(b),
            Part::Fixed16(v) => fill(dst, v, |x| x.to_le_bytes()),
            Part::Fixed32(v) => fill(dst, v, |x| x.to_le_bytes()),
            Part::Fixed64(v) => fill(dst, v, |x| x.to_le_bytes()),
            Part::Packed(v, w) => packed::pack_into(dst, v.iter().copied(), *w),
            Part::Bits(w) => dst[..w.bytes().len()].copy_from_slice(w.bytes()),
        }
    }
}

/// `values` packed at the width of the largest one.
fn packed_part<'a>(values: Vec<u64>) -> Part<'a> {
    let width = packed::bits_for(values.iter().copied().max().unwrap_or(0));
    Part::Packed(values, width)
}

/// `count` values packed at `width` bits, padded to [`ALIGN`]: `(bytes, len)`.
fn packed_padded(count: usize, width: u32, values: impl Iterator<Item = u64>) -> (Vec<u8>, usize) {
    let len = packed::byte_len(count, width);
    let mut padded = vec![0u8; len.next_multiple_of(ALIGN)];
    packed::pack_into(&mut padded[..len], values, width);
    (padded, len)
}

impl Image {
    /// Lays out `history` (built from the store at `state`) as an index image
    /// in memory.
    pub fn build(history: &History, state: StoreState) -> Result<Image, BuildError> {
        let mut memory = Memory::default();
        let laid = match Image::lay_out(history, state, &mut memory) {
            Ok(laid) => laid,
            Err(LayOutError::Build(e)) => return Err(e),
            Err(LayOutError::Sink(never)) => match never {},
        };
        let mut words = memory.words;
        words.shrink_to_fit();
        Ok(Image {
            bytes: Bytes::Owned(words),
            len: laid.len,
            state,
            v4_shift: laid.v4_shift,
            global_shift: laid.global_shift,
            line_bits: laid.line_bits,
            sections: laid.sections,
            path: None,
        })
    }

    /// Lays out `history` (built from the store at `state`) as an index image
    /// into `sink`, section by section: only one section's bytes (and what
    /// later sections need of the earlier ones: line ids, packed lines) are
    /// held at a time, never the whole image.
    pub(crate) fn lay_out<S: Sink>(
        history: &History,
        state: StoreState,
        sink: &mut S,
    ) -> Result<Laid, LayOutError<S::Error>> {
        let starts = &history.starts;
        if starts.first() != Some(&IpKey::MIN) || history.offsets.len() != starts.len() + 1 {
            return Err(BuildError::Pieces.into());
        }
        let last_offset = history.offsets.last().copied().unwrap_or(0);
        if last_offset as usize != history.changes.len() {
            return Err(BuildError::Pieces.into());
        }
        // Dense ids for the live payloads and lines, in id order.
        let mut payload_id = vec![u32::MAX; history.payloads.len()];
        let mut payload_offsets = vec![0u32];
        let mut payload_total = 0usize;
        for (id, p) in history.payloads.iter().enumerate() {
            if let Some(p) = p {
                payload_id[id] = (payload_offsets.len() - 1) as u32;
                payload_total += p.len();
                let end =
                    u32::try_from(payload_total).map_err(|_| BuildError::TooBig("payloads"))?;
                payload_offsets.push(end);
            }
        }
        let line_bits = LineBits::of(starts.len(), payload_offsets.len() - 1);
        let mut line_id = vec![NO_LINE; history.lines.len()];
        let mut lines = Vec::with_capacity(history.lines.len());
        let mut spans = Vec::with_capacity(history.lines.len());
        for (id, line) in history.lines.iter().enumerate() {
            let Some(line) = line else { continue };
            let id = id as u32;
            let first = history.piece_of(line.begin);
            let last = history.piece_of(line.end);
            let ends_a_piece = match starts.get(last + 1) {
                Some(next) => next.0.checked_sub(1) == Some(line.end.0),
                None => line.end == IpKey::MAX,
            };
            if starts[first] != line.begin || !ends_a_piece {
                return Err(BuildError::LineOffPieces { line: id }.into());
            }
            let payload = *payload_id
                .get(line.payload as usize)
                .filter(|&&p| p != u32::MAX)
                .ok_or(BuildError::MissingPayload {
                    line: id,
                    payload: line.payload,
                })?;
            line_id[id as usize] = lines.len() as u32;
            lines.push(line_bits.pack(first as u64, payload.into(), 0));
            spans.push((last - first) as u32);
        }
        drop(payload_id);
        // Spans in the bits most lines need, the rare wider ones aside. A
        // span kept aside costs a binary search, and wide lines are the ones
        // lookups hit most (they cover the most addresses): each is weighed
        // as [`SPAN_ASIDE_WEIGHT`] times its bits (41 country snapshots: 5
        // span bits and 6,380 aside rather than 4 bits and 22,640 aside).
        let widest = spans.iter().copied().max().unwrap_or(0);
        let aside_bits = packed::bits_for(lines.len() as u64) + packed::bits_for(widest.into());
        let span_bits =
            exceptions::narrowest(&spans, u64::from(aside_bits) * SPAN_ASIDE_WEIGHT, true);
        let mark = u64::MAX >> (64 - span_bits);
        let shift = line_bits.piece_bits + line_bits.payload_bits;
        let line_count = lines.len();
        // Changes (at most 16 + 32 bits), offsets and tables (32) always fit.
        let line_width = shift + span_bits;
        if line_width > packed::MAX_WIDTH {
            return Err(BuildError::LineTooWide(line_width).into());
        }
        // The lines packed now (the changes need their ids first), with
        // their spans, in their final bytes.
        let (mut span_at, mut span_aside) = (Vec::new(), Vec::new());
        let packed_lines = packed_padded(
            line_count,
            line_width,
            lines
                .iter()
                .zip(&spans)
                .enumerate()
                .map(|(id, (l, &span))| {
                    let span = u64::from(span);
                    let field = if span < mark {
                        span
                    } else {
                        span_at.push(id as u64);
                        span_aside.push(span);
                        mark
                    };
                    l | field << shift
                }),
        );
        drop(spans);
        drop(lines);

        let sink_err = LayOutError::Sink;
        let mut out = Sections::new(sink).map_err(sink_err)?;
        let metas: Vec<_> = history.snapshots.iter().map(|s| &s.meta).collect();
        // Serialising plain metadata into a Vec cannot fail.
        let snapshots_json = serde_json::to_vec(&metas).unwrap_or_default();
        out.part(Part::Bytes(&snapshots_json)).map_err(sink_err)?;
        drop(snapshots_json);
        let v4_at = starts.partition_point(|s| *s < IpKey::V4_FIRST);
        let v4_end = starts.partition_point(|s| *s <= IpKey::V4_LAST);
        // IPv4 starts: the low 16 bits of each, and per /16 how many start
        // below it.
        let mut starts_v4 = Vec::with_capacity(v4_end - v4_at);
        let mut v4_high = Vec::with_capacity(V4_HIGHS + 1);
        for s in &starts[v4_at..v4_end] {
            let offset = (s.0 - IpKey::V4_FIRST.0) as u32;
            while v4_high.len() <= (offset >> 16) as usize {
                v4_high.push(starts_v4.len() as u64);
            }
            starts_v4.push(offset as u16);
        }
        v4_high.resize(V4_HIGHS + 1, starts_v4.len() as u64);
        out.part(Part::Fixed16(starts_v4)).map_err(sink_err)?;
        out.part(packed_part(v4_high)).map_err(sink_err)?;
        let (mut low_at, mut low) = (Vec::new(), Vec::new());
        let wide: Vec<u64> = starts[..v4_at]
            .iter()
            .chain(&starts[v4_end..])
            .enumerate()
            .map(|(i, s)| {
                if s.0 as u64 != 0 {
                    low_at.push(i as u64);
                    low.push(s.0 as u64);
                }
                (s.0 >> 64) as u64
            })
            .collect();
        let fences: Vec<u64> = wide.iter().step_by(FENCE).copied().collect();
        out.part(Part::Fixed64(wide)).map_err(sink_err)?;
        out.part(packed_part(low_at)).map_err(sink_err)?;
        out.part(packed_part(low)).map_err(sink_err)?;
        out.part(Part::Fixed64(fences)).map_err(sink_err)?;
        let offsets =
            blocks::encode(&history.offsets).ok_or(BuildError::TooBig("change offsets"))?;
        out.part(packed_part(offsets.table)).map_err(sink_err)?;
        out.part(Part::Bits(offsets.stream)).map_err(sink_err)?;
        // Changes, packed straight from the history.
        let change_line_bits = change_line_bits(line_count);
        let no_line = (1u64 << change_line_bits) - 1;
        // Every position fits, even before the first change.
        let positions = packed::bits_for(history.snapshots.len().saturating_sub(1) as u64);
        let change_width = change_line_bits + positions;
        let mut missing = None;
        let (changes, len) = packed_padded(
            history.changes.len(),
            change_width,
            history.changes.iter().map(|c| {
                let line = if c.line == NO_LINE {
                    no_line
                } else {
                    match line_id.get(c.line as usize).filter(|&&l| l != NO_LINE) {
                        Some(&l) => l.into(),
                        None => {
                            missing.get_or_insert(c.line);
                            0
                        }
                    }
                };
                u64::from(c.pos) << change_line_bits | line
            }),
        );
        if let Some(line) = missing {
            return Err(BuildError::MissingLine(line).into());
        }
        drop(line_id);
        out.put(&changes, len, history.changes.len(), change_width)
            .map_err(sink_err)?;
        drop(changes);
        let (lines, len) = packed_lines;
        out.put(&lines, len, line_count, line_width)
            .map_err(sink_err)?;
        drop(lines);
        out.part(packed_part(span_at)).map_err(sink_err)?;
        out.part(packed_part(span_aside)).map_err(sink_err)?;
        out.part(Part::Fixed32(payload_offsets)).map_err(sink_err)?;
        out.put_pieces(
            history.payloads.iter().flatten().map(|p| &p[..]),
            payload_total,
        )
        .map_err(sink_err)?;
        let tables = Tables::of(history);
        let table = |t: &[u32]| packed_part(t.iter().map(|&p| u64::from(p)).collect());
        out.part(table(&tables.v4)).map_err(sink_err)?;
        out.part(table(&tables.v6)).map_err(sink_err)?;
        out.part(table(&tables.global)).map_err(sink_err)?;

        let len = out.at;
        let sections = out.entries;
        let mut header = vec![0u8; HEADER_LEN];
        write_header(
            &mut header,
            state,
            len,
            tables.v4_shift,
            tables.global_shift,
            change_line_bits,
            &sections,
        );
        sink.header(&header).map_err(sink_err)?;
        Ok(Laid {
            len,
            v4_shift: tables.v4_shift,
            global_shift: tables.global_shift,
            line_bits: change_line_bits,
            sections,
        })
    }
}

/// Writes each item's `N` bytes one after the other into `dst`.
fn fill<T, const N: usize>(dst: &mut [u8], items: &[T], bytes: impl Fn(&T) -> [u8; N]) {
    for (d, item) in dst.chunks_exact_mut(N).zip(items) {
        d.copy_from_slice(&bytes(item));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::image::tests::{history, state, A, B};
    use crate::index::Index;
    use crate::time::Timestamp;

    #[test]
    fn lines_off_piece_boundaries_are_refused() {
        let mut h = history(&[A]);
        let mut line = h.lines.get(0).expect("the history has a line");
        line.end = IpKey(line.end.0 - 1);
        assert!(h.lines.set(0, line));
        assert!(matches!(
            Image::build(&h, state(1)),
            Err(BuildError::LineOffPieces { .. })
        ));
    }

    /// A history whose IPv6 starts all have zero low 64 bits keeps none
    /// aside; another keeps the ones that do not; both answer as the history
    /// does.
    #[test]
    fn wide_starts_keep_only_their_nonzero_low_bits_aside() {
        const SLASH64: &str = r#"{"begin":"1.0.0.0","end":"1.0.0.255","datetime":"2024-01-01T00:00:00Z","cc":"AU"}
{"begin":"2001:db8::","end":"2001:db8:0:1:ffff:ffff:ffff:ffff","datetime":"2024-01-01T00:00:00Z","cc":"DE"}"#;
        let narrow = history(&[SLASH64, B]);
        let wide = history(&[A, B]);
        let aside = |h: &History| {
            let image = Image::build(h, state(1)).unwrap();
            assert_eq!(image.width(Section::StartsWide), 64);
            image.count(Section::StartsLowAt)
        };
        assert_eq!(aside(&narrow), 0);
        // `2001:db8::1:0` (after `2001:db8::ffff`) has low bits; `::` and
        // `2001:db8::` do not.
        assert_eq!(aside(&wide), 1);
        for h in [narrow, wide] {
            let ix = Index::from_image(Image::build(&h, state(1)).unwrap()).unwrap();
            assert_eq!(ix.piece_count(), h.piece_count());
            for ip in [
                "1.0.0.5",
                "1.0.0.200",
                "2001:db8::1",
                "2001:db8:0:1::5",
                "9.9.9.9",
                "::",
            ] {
                let ip = IpKey::parse(ip).unwrap();
                for t in ["2023-01-01", "2024-01-15", "2024-03-01"] {
                    let t = Timestamp::parse(t).unwrap();
                    let expected = h
                        .snapshots
                        .iter()
                        .rposition(|s| s.meta.instant() <= t)
                        .and_then(|pos| {
                            let c = h.piece_changes(h.piece_of(ip));
                            let line = c.iter().rev().find(|c| usize::from(c.pos) <= pos)?.line;
                            h.line(line).map(|l| (l.begin, l.end))
                        });
                    let got = ix.at(ip, t).map(|m| (m.line.begin, m.line.end));
                    assert_eq!(got, expected, "{ip:?} at {t:?}");
                }
            }
            assert!(!history_of_all(&ix).is_empty());
        }
    }

    #[test]
    fn no_history_is_too_long_for_packed_changes() {
        // 300 snapshots: positions take 9 bits beside the line ids, where a
        // 32-bit change of version 2 had room for 64 snapshots of a history of
        // 50 M records and fell back to 8 bytes.
        let files: Vec<String> = (0..300)
            .map(|n| {
                let first = Timestamp::parse("2020-01-01").unwrap().as_micros();
                let day = Timestamp::from_micros(first + n * 86_400_000_000).to_rfc3339();
                format!(
                    r#"{{"begin":"1.0.0.0","end":"1.0.0.{}","datetime":"{day}","n":{}}}"#,
                    100 + n % 7,
                    n % 3
                )
            })
            .collect();
        let texts: Vec<&str> = files.iter().map(String::as_str).collect();
        let h = history(&texts);
        let image = Image::build(&h, state(1)).unwrap();
        assert_eq!(image.width(Section::Changes) - image.line_bits, 9);
        let ix = Index::from_image(image).unwrap();
        for (n, s) in h.snapshots().enumerate() {
            let m = ix
                .at(IpKey::parse("1.0.0.50").unwrap(), s.meta.instant())
                .unwrap();
            assert_eq!(m.snapshot.meta.datetime, s.meta.datetime);
            assert_eq!(
                m.line.end,
                IpKey::parse(&format!("1.0.0.{}", 100 + n % 7)).unwrap()
            );
        }
        assert_eq!(change_line_bits(50_000_000), 26);
        assert!(change_line_bits(50_000_000) + packed::bits_for(299) <= packed::MAX_WIDTH);
    }

    /// A record spanning more pieces than the span field holds keeps its
    /// span aside; the others stay in the field; both answer as the history
    /// does.
    #[test]
    fn wide_spans_are_kept_aside_and_read_back() {
        // Snapshot 1: one /16; snapshot 2: its 256 /24s, so the /16 spans 256
        // pieces while every other record spans one.
        let first =
            r#"{"begin":"1.0.0.0","end":"1.0.255.255","datetime":"2024-01-01T00:00:00Z","n":0}"#;
        let second: String = (0..256)
            .map(|i| {
                format!(
                    r#"{{"begin":"1.0.{i}.0","end":"1.0.{i}.255","datetime":"2024-02-01T00:00:00Z","n":{i}}}"#
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let h = history(&[first, &second]);
        let image = Image::build(&h, state(1)).unwrap();
        assert_eq!(image.count(Section::SpanAt), 1);
        assert_eq!(image.count(Section::Spans), 1);
        let ix = Index::from_image(image).unwrap();
        let t1 = Timestamp::parse("2024-01-15").unwrap();
        let t2 = Timestamp::parse("2024-02-15").unwrap();
        for ip in ["1.0.0.0", "1.0.7.9", "1.0.255.255", "1.1.0.0"] {
            let ip = IpKey::parse(ip).unwrap();
            let old = ix.at(ip, t1).map(|m| (m.line.begin, m.line.end));
            let expected = (ip.0 >> 16 == IpKey::parse("1.0.0.0").unwrap().0 >> 16).then(|| {
                (
                    IpKey::parse("1.0.0.0").unwrap(),
                    IpKey::parse("1.0.255.255").unwrap(),
                )
            });
            assert_eq!(old, expected, "{ip:?}");
            let new = ix.at(ip, t2).map(|m| m.line.end.0 - m.line.begin.0);
            assert_eq!(new, expected.map(|_| 255));
        }
        // A history of short records only keeps nothing aside.
        let image = Image::build(&history(&[A, B]), state(1)).unwrap();
        assert_eq!(image.count(Section::SpanAt), 0);
    }

    fn history_of_all(ix: &Index) -> Vec<String> {
        (0..ix.snapshot_count())
            .flat_map(|pos| ix.records_at(pos).map(|m| m.to_json()).collect::<Vec<_>>())
            .collect()
    }
}
