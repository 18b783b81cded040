//! The changes of every piece as the index file keeps them: bit-packed
//! ([`crate::index::image::packed`]), each `pos << line_bits | line`, the
//! all-ones line meaning "no match". The widths follow the history (27 bits a
//! change for 41 country snapshots, 35 for a few hundred weekly city ones), so
//! no history is too long or too large for the form.
//!
//! Invariant: `line_bits` is in `1..=32` and below the packed width (the
//! image's layout check).

use super::image::packed::Packed;
use super::image::{Image, Section};
use crate::history::{Change, NO_LINE};

/// The changes section of one image.
#[derive(Debug)]
pub(crate) struct Changes {
    packed: Packed,
    line_bits: u32,
}

impl Changes {
    pub(crate) fn of(image: &Image) -> Changes {
        Changes {
            packed: image.packed(Section::Changes),
            line_bits: image.line_bits,
        }
    }

    #[inline(always)]
    fn line_of(&self, c: u64) -> u32 {
        let mask = (1u64 << self.line_bits) - 1;
        match c & mask {
            l if l == mask => NO_LINE,
            l => l as u32,
        }
    }

    /// The line answering at snapshot position `pos`, given the piece's changes
    /// `lo..hi` (`NO_LINE` before its first change or out of bounds).
    #[inline]
    pub(crate) fn line_at(&self, lo: usize, hi: usize, pos: usize) -> u32 {
        // `c >> line_bits <= pos` without a shift per change.
        let limit = (pos as u128 + 1) << self.line_bits;
        let mut i = hi.min(self.packed.len());
        while i > lo {
            i -= 1;
            match self.packed.get(i) {
                Some(c) if u128::from(c) < limit => return self.line_of(c),
                Some(_) => {}
                None => break,
            }
        }
        NO_LINE
    }

    /// The changes `lo..hi`, oldest first.
    pub(crate) fn iter(
        &self,
        lo: usize,
        hi: usize,
    ) -> impl DoubleEndedIterator<Item = Change> + '_ {
        (lo..hi.min(self.packed.len()).max(lo)).filter_map(move |i| {
            let c = self.packed.get(i)?;
            Some(Change {
                pos: (c >> self.line_bits) as u16,
                line: self.line_of(c),
            })
        })
    }

    /// The address of change `at`, for a prefetch (never dereferenced).
    #[inline]
    pub(crate) fn address(&self, at: usize) -> *const u8 {
        self.packed.address(at)
    }
}
