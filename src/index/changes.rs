//! The changes of every piece as the index file keeps them: packed into one
//! `u32` each (`pos << line_bits | line`, the all-ones line meaning "no match")
//! when snapshot positions and line ids fit in 32 bits together, which halves
//! the largest section of a real history; as 8-byte [`Change`]s otherwise
//! (1.2 M records leave room for 2,048 snapshots, 50 M records for 64).
//!
//! Invariant: `line_bits` is 0 exactly when the wide form is used, else in
//! `1..=31`; the other form's view is empty.

use super::image::{Image, Section, View};
use crate::history::{Change, NO_LINE};

/// The changes section of one image, in its form.
#[derive(Debug)]
pub(crate) struct Changes {
    narrow: View<u32>,
    wide: View<Change>,
    line_bits: u32,
}

/// The bits a packed change gives its line id, or 0 when `lines` ids and
/// `snapshots` positions do not fit in 32 bits together (the wide form).
pub(crate) fn line_bits(lines: usize, snapshots: usize) -> u32 {
    // Room for every id and the all-ones "no match" above them.
    let bits = (usize::BITS - lines.leading_zeros()).max(1);
    let fits = bits <= 31 && (snapshots as u64) <= 1u64 << (32 - bits);
    if fits {
        bits
    } else {
        0
    }
}

/// `c` packed with `bits` line bits (see [`line_bits`]).
pub(crate) fn pack(c: Change, bits: u32) -> u32 {
    let mask = (1u32 << bits) - 1;
    let line = if c.line == NO_LINE { mask } else { c.line };
    (u32::from(c.pos) << bits) | line
}

#[inline(always)]
fn unpack_line(c: u32, bits: u32) -> u32 {
    let mask = (1u32 << bits) - 1;
    match c & mask {
        l if l == mask => NO_LINE,
        l => l,
    }
}

impl Changes {
    pub(crate) fn of(image: &Image) -> Changes {
        let line_bits = image.line_bits;
        if line_bits == 0 {
            Changes {
                narrow: View::empty(),
                wide: image.view(Section::Changes),
                line_bits,
            }
        } else {
            Changes {
                narrow: image.view(Section::Changes),
                wide: View::empty(),
                line_bits,
            }
        }
    }

    /// The line answering at snapshot position `pos`, given the piece's changes
    /// `lo..hi` (`NO_LINE` before its first change or out of bounds).
    #[inline]
    pub(crate) fn line_at(&self, lo: usize, hi: usize, pos: usize) -> u32 {
        if self.line_bits == 0 {
            return self
                .wide
                .get(lo..hi)
                .unwrap_or_default()
                .iter()
                .rev()
                .find(|c| usize::from(c.pos) <= pos)
                .map_or(NO_LINE, |c| c.line);
        }
        let bits = self.line_bits;
        // `c >> bits <= pos` without a shift per change.
        let limit = (pos as u64 + 1) << bits;
        self.narrow
            .get(lo..hi)
            .unwrap_or_default()
            .iter()
            .rev()
            .find(|&&c| u64::from(c) < limit)
            .map_or(NO_LINE, |&c| unpack_line(c, bits))
    }

    /// The changes `lo..hi`, oldest first.
    pub(crate) fn iter(
        &self,
        lo: usize,
        hi: usize,
    ) -> impl DoubleEndedIterator<Item = Change> + '_ {
        let bits = self.line_bits;
        let narrow = self.narrow.get(lo..hi).unwrap_or_default();
        let wide = self.wide.get(lo..hi).unwrap_or_default();
        let unpacked = narrow.iter().map(move |&c| Change {
            pos: (c >> bits) as u16,
            line: unpack_line(c, bits),
        });
        wide.iter().copied().chain(unpacked)
    }

    /// The address of change `at`, for a prefetch (never dereferenced).
    #[inline]
    pub(crate) fn address(&self, at: usize) -> *const u8 {
        if self.line_bits == 0 {
            self.wide.as_ptr().wrapping_add(at).cast()
        } else {
            self.narrow.as_ptr().wrapping_add(at).cast()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_keeps_positions_and_lines() {
        let bits = line_bits(1000, 41);
        assert_eq!(bits, 10);
        for (pos, line) in [(0u16, 0u32), (40, 999), (7, NO_LINE), (40, NO_LINE)] {
            let c = pack(Change { pos, line }, bits);
            assert_eq!(unpack_line(c, bits), line);
            assert_eq!((c >> bits) as u16, pos);
        }
        // Positions and ids that do not fit together take the wide form.
        assert_eq!(line_bits(1 << 28, 8), 29);
        assert_eq!(line_bits(1 << 28, 9), 0);
        assert_eq!(line_bits(u32::MAX as usize, 1), 0);
        assert_eq!(line_bits(0, 1), 1);
    }
}
