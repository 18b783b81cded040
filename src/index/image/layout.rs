//! Laying out a history as an index image: the sections, their element types,
//! and [`Image::build`], which writes them in a deterministic order (the same
//! history and state give the same bytes).

use super::header::{write_header, HEADER_LEN};
use super::BuildError;
use super::{covered, Bytes, Image};
use crate::history::{Change, History, NO_LINE};
use crate::index::{changes, Tables};
use crate::ip::IpKey;
use crate::store::StoreState;

pub(super) const ALIGN: usize = 64;

/// The sections of the file, in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Section {
    /// JSON array of the snapshots' metadata, oldest first.
    Snapshots,
    /// Piece starts (u128).
    Starts,
    /// Change offsets per piece (u32, pieces + 1).
    Offsets,
    /// Changes: packed u32s, or 8-byte [`Change`]s when the header's line bits
    /// are 0 (see [`crate::index::changes`]).
    Changes,
    /// Lines ([`FileLine`]).
    Lines,
    /// Payload offsets into `Payloads` (u32, payloads + 1).
    PayloadOffsets,
    /// Payload bytes (JSON object bodies).
    Payloads,
    /// Bucket tables (u32).
    V4,
    V6,
    Global,
}

pub(super) const SECTIONS: [Section; 10] = [
    Section::Snapshots,
    Section::Starts,
    Section::Offsets,
    Section::Changes,
    Section::Lines,
    Section::PayloadOffsets,
    Section::Payloads,
    Section::V4,
    Section::V6,
    Section::Global,
];

impl Section {
    pub(super) fn name(self) -> &'static str {
        match self {
            Section::Snapshots => "snapshots",
            Section::Starts => "starts",
            Section::Offsets => "offsets",
            Section::Changes => "changes",
            Section::Lines => "lines",
            Section::PayloadOffsets => "payload offsets",
            Section::Payloads => "payloads",
            Section::V4 => "ipv4 table",
            Section::V6 => "ipv6 table",
            Section::Global => "global unicast table",
        }
    }

    /// Size and alignment of one element.
    pub(super) fn element(self) -> usize {
        match self {
            Section::Snapshots | Section::Payloads => 1,
            Section::Starts => 16,
            // Packed u32s, or 8-byte changes (see [`crate::index::changes`]).
            Section::Changes => 4,
            Section::Lines => std::mem::size_of::<FileLine>(),
            _ => 4,
        }
    }
}

/// A record line as the file keeps it: its range as the pieces it spans (a
/// line's `begin` always starts a piece, and its `end` always ends one), and
/// its payload.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileLine {
    pub first_piece: u32,
    pub last_piece: u32,
    pub payload: u32,
}

impl Image {
    /// Lays out `history` (built from the store at `state`) as an index image.
    pub fn build(history: &History, state: StoreState) -> Result<Image, BuildError> {
        Image::build_as(history, state, false)
    }

    /// [`Image::build`], with 8-byte changes even where packed ones fit when
    /// `wide` (so that tests reach the form only huge histories take).
    pub(crate) fn build_as(
        history: &History,
        state: StoreState,
        wide: bool,
    ) -> Result<Image, BuildError> {
        let starts = &history.starts;
        if starts.first() != Some(&IpKey::MIN) || history.offsets.len() != starts.len() + 1 {
            return Err(BuildError::Pieces);
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
        let mut line_id = vec![NO_LINE; history.lines.len()];
        let mut lines = Vec::with_capacity(history.lines.len());
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
                return Err(BuildError::LineOffPieces { line: id });
            }
            let payload = *payload_id
                .get(line.payload as usize)
                .filter(|&&p| p != u32::MAX)
                .ok_or(BuildError::MissingPayload {
                    line: id,
                    payload: line.payload,
                })?;
            line_id[id as usize] = lines.len() as u32;
            lines.push(FileLine {
                first_piece: first as u32,
                last_piece: last as u32,
                payload,
            });
        }
        let mut changes = Vec::with_capacity(history.changes.len());
        for c in &history.changes {
            let line = if c.line == NO_LINE {
                NO_LINE
            } else {
                *line_id
                    .get(c.line as usize)
                    .filter(|&&l| l != NO_LINE)
                    .ok_or(BuildError::MissingLine(c.line))?
            };
            changes.push(Change { pos: c.pos, line });
        }
        let line_bits = match wide {
            true => 0,
            false => changes::line_bits(lines.len(), history.snapshots.len()),
        };
        let change_bytes = if line_bits == 0 { 8 } else { 4 };
        let tables = Tables::of(history);
        let metas: Vec<_> = history.snapshots.iter().map(|s| &s.meta).collect();
        // Serialising plain metadata into a Vec cannot fail.
        let snapshots_json = serde_json::to_vec(&metas).unwrap_or_default();

        let mut sections = [(0usize, 0usize, 0u32); SECTIONS.len()];
        let sizes = [
            snapshots_json.len(),
            starts.len() * 16,
            history.offsets.len() * 4,
            changes.len() * change_bytes,
            lines.len() * std::mem::size_of::<FileLine>(),
            payload_offsets.len() * 4,
            payload_total,
            tables.v4.len() * 4,
            tables.v6.len() * 4,
            tables.global.len() * 4,
        ];
        let mut at = HEADER_LEN;
        for (s, size) in sections.iter_mut().zip(sizes) {
            *s = (at, size, 0);
            at = (at + size).next_multiple_of(ALIGN);
        }
        let len = at;
        let mut words = vec![0u128; len.div_ceil(16)];
        // SAFETY: the u128 buffer viewed as bytes; u8 has no alignment needs.
        let buf: &mut [u8] =
            unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len) };
        let at = |s: Section| sections[s as usize].0..sections[s as usize].0 + sizes[s as usize];
        buf[at(Section::Snapshots)].copy_from_slice(&snapshots_json);
        fill(&mut buf[at(Section::Starts)], starts, |s| s.0.to_le_bytes());
        fill(&mut buf[at(Section::Offsets)], &history.offsets, |o| {
            o.to_le_bytes()
        });
        if line_bits == 0 {
            fill(&mut buf[at(Section::Changes)], &changes, |c| {
                let mut b = [0u8; 8];
                b[..2].copy_from_slice(&c.pos.to_le_bytes());
                b[4..].copy_from_slice(&c.line.to_le_bytes());
                b
            });
        } else {
            fill(&mut buf[at(Section::Changes)], &changes, |&c| {
                changes::pack(c, line_bits).to_le_bytes()
            });
        }
        fill(&mut buf[at(Section::Lines)], &lines, |l| {
            let mut b = [0u8; 12];
            b[..4].copy_from_slice(&l.first_piece.to_le_bytes());
            b[4..8].copy_from_slice(&l.last_piece.to_le_bytes());
            b[8..].copy_from_slice(&l.payload.to_le_bytes());
            b
        });
        fill(
            &mut buf[at(Section::PayloadOffsets)],
            &payload_offsets,
            |o| o.to_le_bytes(),
        );
        let mut dst = &mut buf[at(Section::Payloads)];
        for p in history.payloads.iter().flatten() {
            let (head, rest) = dst.split_at_mut(p.len());
            head.copy_from_slice(p);
            dst = rest;
        }
        fill(&mut buf[at(Section::V4)], &tables.v4, |v| v.to_le_bytes());
        fill(&mut buf[at(Section::V6)], &tables.v6, |v| v.to_le_bytes());
        fill(&mut buf[at(Section::Global)], &tables.global, |v| {
            v.to_le_bytes()
        });
        for s in &mut sections {
            s.2 = crc32fast::hash(&buf[covered(s.0, s.1, len)]);
        }
        write_header(
            buf,
            state,
            len,
            tables.v4_shift,
            tables.global_shift,
            line_bits,
            &sections,
        );
        Ok(Image {
            bytes: Bytes::Owned(words),
            len,
            state,
            v4_shift: tables.v4_shift,
            global_shift: tables.global_shift,
            line_bits,
            sections,
            path: None,
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
        if let Some(Some(line)) = h.lines.first_mut() {
            line.end = IpKey(line.end.0 - 1);
        }
        assert!(matches!(
            Image::build(&h, state(1)),
            Err(BuildError::LineOffPieces { .. })
        ));
    }

    #[test]
    fn packed_and_wide_changes_give_the_same_answers() {
        let h = history(&[A, B]);
        let packed = Index::from_image(Image::build(&h, state(1)).unwrap()).unwrap();
        let wide = Index::from_image(Image::build_as(&h, state(1), true).unwrap()).unwrap();
        assert_ne!(packed.image().line_bits, 0);
        assert_eq!(wide.image().line_bits, 0);
        let ips = ["1.0.0.5", "1.0.0.200", "2001:db8::1", "9.9.9.9"];
        for ip in ips {
            let ip = IpKey::parse(ip).unwrap();
            for t in ["2023-01-01", "2024-01-15", "2024-03-01"] {
                let t = Timestamp::parse(t).unwrap();
                let json = |ix: &Index| ix.at(ip, t).map(|m| m.to_json());
                assert_eq!(json(&packed), json(&wide));
            }
            let history = |ix: &Index| -> Vec<String> {
                ix.history_of(ip).iter().map(|m| m.to_json()).collect()
            };
            assert_eq!(history(&packed), history(&wide));
            assert_eq!(
                packed.latest(ip).map(|m| m.to_json()),
                wide.latest(ip).map(|m| m.to_json())
            );
        }
        assert_eq!(history_of_all(&packed), history_of_all(&wide));
        assert!(!history_of_all(&packed).is_empty());
    }

    fn history_of_all(ix: &Index) -> Vec<String> {
        (0..ix.snapshot_count())
            .flat_map(|pos| ix.records_at(pos).map(|m| m.to_json()).collect::<Vec<_>>())
            .collect()
    }
}
