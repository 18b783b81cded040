//! Piece starts as the index file keeps them: the pieces that start in IPv4
//! as 4-byte offsets from `::ffff:0:0`, the others (before and after them in
//! address order) as their top 64 bits, with the few whose low 64 bits are
//! not zero (real IPv6 data splits at /64 or above) kept aside in an
//! exception list. A country history's starts take 6 bytes a piece on
//! average instead of 16, a city history's 5.4.
//!
//! Invariant: piece `i` is `wide[i]` below `v4_at`, `v4[i - v4_at]` for the
//! next `v4.len()` pieces, and `wide[i - v4.len()]` after them; a wide
//! start's low 64 bits are its exception, zero if it has none.

use super::image::exceptions::Exceptions;
use super::image::{Image, Section, View};
use crate::ip::IpKey;

#[derive(Debug)]
pub(crate) struct Starts {
    v4: View<u32>,
    /// Wide starts' top 64 bits.
    high: View<u64>,
    /// Wide starts' low 64 bits, where not zero.
    low: Exceptions,
    /// Which wide starts have low bits, one bit each, read from `low` when
    /// the index is opened (a pass over the exceptions only, which are few):
    /// most IPv6 lookups look at the low bits of the start before theirs, and
    /// testing a bit spares them a search of the list.
    has_low: Vec<u64>,
    /// The first piece that starts in IPv4.
    v4_at: usize,
    len: usize,
}

impl Starts {
    pub(crate) fn of(image: &Image) -> Starts {
        let v4: View<u32> = image.view(Section::StartsV4);
        let high: View<u64> = image.view(Section::StartsWide);
        let low = Exceptions::new(
            image.packed(Section::StartsLowAt),
            image.packed(Section::StartsLow),
        );
        // The wide starts below IPv4: the partition is stored implicitly, the
        // first wide start at or above `::ffff:0:0` follows the IPv4 ones
        // (`::ffff:0:0` has low bits, so the top halves alone cannot say).
        let below = |w: usize| {
            let s = high.get(w).map_or(u128::MAX, |&h| {
                u128::from(h) << 64 | u128::from(low.get(w).unwrap_or(0))
            });
            s < IpKey::V4_FIRST.0
        };
        let (mut lo, mut hi) = (0, high.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if below(mid) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let mut has_low = vec![0u64; high.len().div_ceil(64)];
        for w in low.indexes() {
            if let Some(word) = has_low.get_mut((w / 64) as usize) {
                *word |= 1 << (w % 64);
            }
        }
        Starts {
            len: v4.len() + high.len(),
            v4,
            high,
            low,
            has_low,
            v4_at: lo,
        }
    }

    /// The low 64 bits of wide start `w` (zero for nearly all).
    #[inline(always)]
    fn low(&self, w: usize) -> u64 {
        let listed = self
            .has_low
            .get(w / 64)
            .is_some_and(|word| word >> (w % 64) & 1 == 1);
        if listed {
            self.low.get(w).unwrap_or(0)
        } else {
            0
        }
    }

    /// Wide start `w` whole.
    #[inline(always)]
    fn wide(&self, w: usize) -> Option<u128> {
        let h = u128::from(*self.high.get(w)?) << 64;
        Some(h | u128::from(self.low(w)))
    }

    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Start of piece `i`, `None` past the end.
    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> Option<u128> {
        let in_v4 = i.wrapping_sub(self.v4_at);
        if in_v4 < self.v4.len() {
            return Some(IpKey::V4_FIRST.0 | u128::from(*self.v4.get(in_v4)?));
        }
        let w = if i < self.v4_at { i } else { i - self.v4.len() };
        self.wide(w)
    }

    /// The first `i` in `lo..hi` whose start is above `ip`, `hi` if none:
    /// the starts are sorted, so this is a binary search, over one form's
    /// slice when `lo..hi` lies in one (a bucket's candidates nearly always do).
    #[inline(always)]
    pub(crate) fn partition_point(&self, lo: usize, hi: usize, ip: u128) -> usize {
        let hi = hi.min(self.len);
        if lo >= hi {
            return lo;
        }
        let v4_end = self.v4_at + self.v4.len();
        if lo >= self.v4_at && hi <= v4_end {
            let slice = self
                .v4
                .get(lo - self.v4_at..hi - self.v4_at)
                .unwrap_or_default();
            let below = ip.saturating_sub(IpKey::V4_FIRST.0);
            let n = match u32::try_from(below) {
                _ if ip < IpKey::V4_FIRST.0 => 0,
                Ok(key) => slice.partition_point(|&s| s <= key),
                Err(_) => slice.len(),
            };
            return lo + n;
        }
        let wide = if hi <= self.v4_at {
            Some((lo, hi))
        } else if lo >= v4_end {
            Some((lo - self.v4.len(), hi - self.v4.len()))
        } else {
            None
        };
        match wide {
            Some((a, b)) => {
                let key = (ip >> 64) as u64;
                let slice = self.high.get(a..b).unwrap_or_default();
                let mut w = a + slice.partition_point(|&s| s <= key);
                // Starts of the same top half are ordered by their low bits:
                // step back over those above `ip` (only exceptions can be).
                while w > a && self.high.get(w - 1) == Some(&key) && self.low(w - 1) > ip as u64 {
                    w -= 1;
                }
                lo + (w - a)
            }
            None => self.partition_point_across(lo, hi, ip),
        }
    }

    /// [`Starts::partition_point`] over a range that crosses forms.
    fn partition_point_across(&self, lo: usize, hi: usize, ip: u128) -> usize {
        let (mut lo, mut hi) = (lo, hi);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid).is_some_and(|s| s <= ip) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The address of piece `i`'s start, for a prefetch (never dereferenced).
    #[inline(always)]
    pub(crate) fn address(&self, i: usize) -> *const u8 {
        let in_v4 = i.wrapping_sub(self.v4_at);
        if in_v4 < self.v4.len() {
            return self.v4.as_ptr().wrapping_add(in_v4).cast();
        }
        let w = if i < self.v4_at {
            i
        } else {
            i.wrapping_sub(self.v4.len())
        };
        self.high.as_ptr().wrapping_add(w).cast()
    }
}
