//! Exception lists: the few values of a field too wide for the width most of
//! them need, kept aside as two packed arrays, the sorted indexes of the
//! elements and their values, found by a binary search. Lines keep their span
//! this way (a country record spans a few pieces; a rare one thousands), and
//! the wide piece starts their low 64 bits (zero but for a few).
//!
//! A lookup finds an index among a few of them: when the list is opened, a
//! directory of where each block of indexes begins in it is made in memory
//! (one pass over the indexes, which are few), so a search reads a cache line
//! or two of the list instead of the dozen of a binary search over all of it.
//!
//! Invariant: the indexes are strictly increasing; an index not in the list
//! has no exception. A list whose indexes are not increasing (a damaged file)
//! gives wrong exceptions, never a read outside it.

use super::packed::{bits_for, Packed};

/// Exceptions per block of the directory, on average: a few cache lines of
/// the list at most.
const PER_BLOCK: usize = 8;

/// A read-only view of an exception list.
#[derive(Debug)]
pub(crate) struct Exceptions {
    at: Packed,
    values: Packed,
    /// `directory[b]`: the number of listed indexes below `b << shift`, for
    /// every block `b` up to the one after the last index.
    directory: Vec<u32>,
    shift: u32,
}

impl Exceptions {
    /// The list whose indexes are `at` and values `values` (a list whose
    /// arrays differ in length holds nothing).
    pub(crate) fn new(at: Packed, values: Packed) -> Exceptions {
        if at.len() != values.len() || u32::try_from(at.len()).is_err() {
            return Exceptions {
                at: Packed::new(super::View::empty(), 1, 0),
                values: Packed::new(super::View::empty(), 1, 0),
                directory: Vec::new(),
                shift: 0,
            };
        }
        // Blocks sized so that `PER_BLOCK` indexes fall in each on average.
        let top = at.len().checked_sub(1).and_then(|k| at.get(k)).unwrap_or(0);
        let blocks = (at.len() / PER_BLOCK).max(1) as u64;
        // At most 63: a damaged list's last index may be anything.
        let shift = bits_for(top / blocks).min(63);
        let mut directory = vec![0u32; ((top >> shift) as usize) + 2];
        for i in (0..at.len()).filter_map(|k| at.get(k)) {
            // Counts per block, made cumulative below; an index past the
            // last (a damaged list) counts in the last block.
            let b = ((i >> shift) as usize + 1).min(directory.len() - 1);
            directory[b] += 1;
        }
        for b in 1..directory.len() {
            directory[b] += directory[b - 1];
        }
        Exceptions {
            at,
            values,
            directory,
            shift,
        }
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// Element `i`'s exception, `None` if it has none.
    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> Option<u64> {
        if self.at.is_empty() {
            return None;
        }
        self.search(i)
    }

    /// The indexes that have an exception, in increasing order.
    pub(crate) fn indexes(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.at.len()).filter_map(|k| self.at.get(k))
    }

    /// [`Exceptions::get`] in a list that is not empty: out of line, so
    /// that the common path stays small.
    #[inline(never)]
    fn search(&self, i: usize) -> Option<u64> {
        let b = i >> self.shift;
        let lo = *self.directory.get(b)? as usize;
        let hi = self.directory.get(b + 1).map_or(lo, |&n| n as usize);
        self.values.get(self.at.find_in(lo, hi, i as u64)?)
    }
}

/// The width that makes `values` smallest when every value that needs more
/// bits (or is the all-ones mark itself) goes to an exception list costing
/// `exception_bits` each; with `mark`, the field's all-ones value is kept
/// free to mark an exception. At least 1.
pub(crate) fn narrowest<T: Copy + Into<u64>>(values: &[T], exception_bits: u64, mark: bool) -> u32 {
    // How many values need exactly `b` bits (their all-ones too, with a mark).
    let mut need = [0u64; 66];
    for v in values.iter().map(|&v| v.into()) {
        let b = if mark {
            bits_for(v.saturating_add(1))
        } else {
            bits_for(v)
        };
        need[b as usize] += 1;
    }
    let widest = (1..need.len()).rev().find(|&b| need[b] > 0).unwrap_or(1);
    let n = values.len() as u64;
    let mut best = (u64::MAX, widest as u32);
    let mut above = 0u64;
    for b in (1..=widest).rev() {
        // `above`: values needing more than `b` bits.
        let cost = (n * b as u64).saturating_add(above.saturating_mul(exception_bits));
        if cost < best.0 {
            best = (cost, b as u32);
        }
        above += need[b];
    }
    best.1.min(64)
}

#[cfg(test)]
mod tests {
    use super::super::packed::{byte_len, pack_into};
    use super::super::View;
    use super::*;

    fn packed(values: &[u64]) -> Packed {
        let width = bits_for(values.iter().copied().max().unwrap_or(0));
        let buf: &mut [u8] = vec![0u8; byte_len(values.len(), width)].leak();
        pack_into(buf, values.iter().copied(), width);
        Packed::new(
            View {
                ptr: buf.as_ptr(),
                len: buf.len(),
            },
            width,
            values.len(),
        )
    }

    #[test]
    fn listed_elements_have_their_value_and_others_none() {
        let e = Exceptions::new(packed(&[2, 5, 1000]), packed(&[7, 0, u64::MAX]));
        assert!(!e.is_empty());
        assert_eq!(e.get(2), Some(7));
        assert_eq!(e.get(5), Some(0));
        assert_eq!(e.get(1000), Some(u64::MAX));
        for i in [0, 1, 3, 999, 1001, usize::MAX] {
            assert_eq!(e.get(i), None);
        }
    }

    /// A damaged list (indexes out of order, one as large as can be) reads
    /// without a panic and without a huge directory.
    #[test]
    fn a_damaged_list_reads_without_a_panic() {
        let e = Exceptions::new(packed(&[3, u64::MAX, 2]), packed(&[1, 2, 3]));
        assert!(e.directory.len() <= 3);
        // A shift of 64 would overflow (a panic where overflow is checked).
        assert!(e.shift < u64::BITS);
        assert_eq!(e.get(3), Some(1));
        for i in [0, 2, 4, usize::MAX] {
            let _ = e.get(i);
        }
    }

    #[test]
    fn no_exceptions_and_all_exceptions() {
        let none = Exceptions::new(packed(&[]), packed(&[]));
        assert!(none.is_empty());
        assert_eq!(none.get(0), None);
        let all: Vec<u64> = (0..50).collect();
        let e = Exceptions::new(
            packed(&all),
            packed(&all.iter().map(|v| v * 3).collect::<Vec<_>>()),
        );
        for i in 0..50 {
            assert_eq!(e.get(i), Some(i as u64 * 3));
        }
        // Arrays of different lengths hold nothing.
        let bad = Exceptions::new(packed(&[1, 2]), packed(&[1]));
        assert!(bad.is_empty());
        assert_eq!(bad.get(1), None);
    }

    /// Indexes crowded in places and sparse in others: every element reads
    /// its exception, or none, through the directory's blocks.
    #[test]
    fn uneven_lists_are_found_through_the_directory() {
        let mut at = Vec::new();
        let mut i = 0u64;
        for k in 0..2000u64 {
            // Runs of neighbours, then long gaps.
            i += if k % 100 < 60 { 1 } else { 1 + k * 37 % 5000 };
            at.push(i);
        }
        let values: Vec<u64> = at.iter().map(|&i| i * 7 + 1).collect();
        let e = Exceptions::new(packed(&at), packed(&values));
        assert!(e.directory.len() > 2, "{} blocks", e.directory.len());
        let listed: std::collections::HashMap<u64, u64> =
            at.iter().copied().zip(values.iter().copied()).collect();
        for i in 0..=i + 10 {
            assert_eq!(e.get(i as usize), listed.get(&i).copied(), "index {i}");
        }
    }

    #[test]
    fn the_narrowest_width_leaves_the_rare_wide_values_out() {
        // 1000 small values and 3 huge ones: 2 bits (3 is all-ones: marked).
        let mut v = [0u64, 1, 2, 1].repeat(250);
        v.extend([1 << 20, 1 << 30, 5000]);
        assert_eq!(narrowest(&v, 64, true), 2);
        assert_eq!(narrowest(&v, 64, false), 2);
        // Without exceptions worth taking, the widest.
        let wide: Vec<u64> = (0..100).map(|i| i * 1000).collect();
        assert_eq!(narrowest(&wide, 64, false), bits_for(99_000));
        assert_eq!(narrowest::<u64>(&[], 64, true), 1);
        assert_eq!(narrowest(&[0u64, 0], 64, true), 1);
        // With a mark, a field of all-ones values needs one bit more.
        assert_eq!(narrowest(&[1u64, 1, 1], 64, true), 2);
    }
}
