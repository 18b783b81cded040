//! Two-level offsets: a monotone array (the change offset of every piece) kept
//! as a base per block of [`BLOCK`] values plus each value's distance from its
//! block's base, in the bits the block's largest distance needs. A country
//! history's offsets take about 8 bits a piece instead of 22, a city one's
//! about 8 instead of 23 (blocks of 16 or 64 came out larger on the city
//! history).
//!
//! Layout: the block table is packed, one entry per block and one more, each
//! `base | bit << base_bits` where `bit` is where the block's distances start
//! in the bit stream; the entry after the last block holds the stream's length.
//! A block's width is the bits between its start and the next one's over
//! [`BLOCK`] (every block, the last one too, holds [`BLOCK`] distances, the
//! last one padded with zeros); a block whose values are all equal takes none.
//!
//! Invariants: distances are at most 32 bits; a read of a value past the
//! array's length, or of bits outside the stream (a corrupt file), is `None`.

use super::packed::{bits_for, BitWriter, Packed};

/// Values a block holds (a power of two).
pub(crate) const BLOCK: usize = 32;
const BLOCK_SHIFT: u32 = BLOCK.trailing_zeros();

/// An encoded monotone array: the block table and the distances' bit stream.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub(crate) table: Vec<u64>,
    pub(crate) stream: BitWriter,
}

/// The bits of a block table entry's base for arrays whose last value is `last`.
pub(crate) fn base_bits(last: u64) -> u32 {
    bits_for(last)
}

/// Encodes the non-decreasing `values` (`None` if they decrease, or if
/// the table does not fit 64-bit entries).
pub(crate) fn encode<T: Copy + Into<u64> + PartialOrd>(values: &[T]) -> Option<Encoded> {
    let last = values.last().map_or(0, |&v| v.into());
    let base_bits = base_bits(last);
    let mut table = Vec::with_capacity(values.len().div_ceil(BLOCK) + 1);
    let mut stream = BitWriter::default();
    if values.windows(2).any(|w| w[0] > w[1]) {
        return None;
    }
    for block in values.chunks(BLOCK) {
        let base: u64 = block[0].into();
        let widest = block[block.len() - 1].into() - base;
        let width = if widest == 0 { 0 } else { bits_for(widest) };
        if width > 32 {
            return None;
        }
        table.push((base, stream.len()));
        for &v in block {
            stream.push(v.into() - base, width);
        }
        for _ in block.len()..BLOCK {
            stream.push(0, width);
        }
    }
    table.push((last, stream.len()));
    let bit_bits = bits_for(stream.len() as u64);
    if base_bits + bit_bits > 64 {
        return None;
    }
    let table = table
        .into_iter()
        .map(|(base, bit)| base | (bit as u64) << base_bits)
        .collect();
    Some(Encoded { table, stream })
}

/// A read-only view of a two-level array.
#[derive(Debug)]
pub(crate) struct Blocks {
    table: Packed,
    stream: Packed,
    base_bits: u32,
    len: usize,
}

impl Blocks {
    /// The array of `len` values whose block `table` (bases of `base_bits`
    /// bits) and distance `stream` (a width-1 packed view) are these.
    pub(crate) fn new(table: Packed, stream: Packed, base_bits: u32, len: usize) -> Blocks {
        let fits = base_bits < 64 && len.div_ceil(BLOCK) + 1 == table.len();
        Blocks {
            table,
            stream,
            base_bits,
            len: if fits { len } else { 0 },
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Block `k`'s entry and the next one's, decoded; `None` past the table
    /// or for a corrupt entry.
    #[inline(always)]
    fn block(&self, k: usize) -> Option<Block> {
        let here = self.table.get(k)?;
        let next = self.table.get(k + 1)?;
        let mask = (1u64 << self.base_bits) - 1;
        let bit = (here >> self.base_bits) as usize;
        let width = ((next >> self.base_bits) as usize).checked_sub(bit)? >> BLOCK_SHIFT;
        Some(Block {
            base: here & mask,
            next_base: next & mask,
            bit,
            width: u32::try_from(width).ok()?,
        })
    }

    /// Value `i`, `None` past the end (lookups read values in pairs,
    /// [`Blocks::pair`]).
    #[cfg(test)]
    pub(crate) fn get(&self, i: usize) -> Option<u64> {
        if i >= self.len {
            return None;
        }
        let b = self.block(i >> BLOCK_SHIFT)?;
        let at = b.bit + (i & (BLOCK - 1)) * b.width as usize;
        Some(b.base + self.stream.bits(at, b.width)?)
    }

    /// The block of values `i` and `i + 1` (read by [`Blocks::pair_in`]),
    /// `None` past the end.
    #[inline(always)]
    pub(crate) fn block_of(&self, i: usize) -> Option<Block> {
        if i.checked_add(1)? >= self.len {
            return None;
        }
        self.block(i >> BLOCK_SHIFT)
    }

    /// Values `i` and `i + 1` (a piece's first change and the next piece's),
    /// `None` past the end: one block entry pair read for both.
    #[inline(always)]
    pub(crate) fn pair(&self, i: usize) -> Option<(u64, u64)> {
        self.pair_in(self.block_of(i)?, i)
    }

    /// [`Blocks::pair`] given `b`, [`Blocks::block_of`] `i`.
    #[inline(always)]
    pub(crate) fn pair_in(&self, b: Block, i: usize) -> Option<(u64, u64)> {
        let j = i & (BLOCK - 1);
        let at = b.bit + j * b.width as usize;
        let lo = b.base + self.stream.bits(at, b.width)?;
        // The next block's first value is its base.
        let hi = if j + 1 < BLOCK {
            b.base + self.stream.bits(at + b.width as usize, b.width)?
        } else {
            b.next_base
        };
        Some((lo, hi))
    }

    /// The address of value `i`'s block entry, for a prefetch (never
    /// dereferenced).
    #[inline(always)]
    pub(crate) fn address(&self, i: usize) -> *const u8 {
        self.table.address(i >> BLOCK_SHIFT)
    }

    /// The address of value `i`'s distance in block `b` (its
    /// [`Blocks::block_of`]), for a prefetch (never dereferenced).
    #[inline(always)]
    pub(crate) fn distance_address(&self, b: &Block, i: usize) -> *const u8 {
        self.stream.address(
            b.bit
                .wrapping_add((i & (BLOCK - 1)).wrapping_mul(b.width as usize)),
        )
    }
}

/// A block's entry, decoded: its base, the next block's, and where and in
/// how many bits its distances lie.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Block {
    base: u64,
    next_base: u64,
    bit: usize,
    width: u32,
}

#[cfg(test)]
mod tests {
    use super::super::packed::{byte_len, pack_into, Packed, SLACK};
    use super::super::View;
    use super::*;

    /// Encodes `values` and reads every one back (the buffers are leaked: a
    /// test's few bytes).
    fn round_trip(values: &[u64]) -> Blocks {
        let e = encode(values).unwrap();
        let width = bits_for(e.table.iter().copied().max().unwrap_or(0));
        let table: &mut [u8] = vec![0u8; byte_len(e.table.len(), width)].leak();
        pack_into(table, e.table.iter().copied(), width);
        let stream: &mut [u8] = vec![0u8; byte_len(e.stream.len(), 1)].leak();
        stream[..e.stream.bytes().len()].copy_from_slice(e.stream.bytes());
        let view = |b: &[u8]| View {
            ptr: b.as_ptr(),
            len: b.len(),
        };
        let blocks = Blocks::new(
            Packed::new(view(table), width, e.table.len()),
            Packed::new(view(stream), 1, e.stream.len()),
            base_bits(values.last().copied().unwrap_or(0)),
            values.len(),
        );
        assert_eq!(blocks.len(), values.len());
        for (i, &v) in values.iter().enumerate() {
            assert_eq!(blocks.get(i), Some(v), "value {i}");
            let pair = values.get(i + 1).map(|&next| (v, next));
            assert_eq!(blocks.pair(i), pair, "pair {i}");
        }
        assert_eq!(blocks.get(values.len()), None);
        assert_eq!(blocks.pair(values.len()), None);
        assert_eq!(blocks.pair(usize::MAX), None);
        blocks
    }

    #[test]
    fn offsets_read_back_across_blocks_and_widths() {
        // Flat runs (width 0), small steps, a huge jump, a partial last block.
        let mut values = vec![0u64; 40];
        let mut v = 0;
        for i in 0..300u64 {
            v += i % 5;
            values.push(v);
        }
        v += 3_000_000_000;
        values.extend((0..70).map(|i| v + i * 3));
        round_trip(&values);
    }

    #[test]
    fn edge_cases_read_back() {
        round_trip(&[0]);
        round_trip(&[0, 0]);
        round_trip(&[5; BLOCK]);
        round_trip(&(0..BLOCK as u64 * 2).collect::<Vec<_>>());
        round_trip(&(0..BLOCK as u64 * 2 + 1).map(|i| i * i).collect::<Vec<_>>());
        let empty = round_trip(&[]);
        assert_eq!(empty.get(0), None);
    }

    #[test]
    fn a_flat_block_takes_no_bits_and_decreasing_values_are_refused() {
        let e = encode(&[7u64; 3 * BLOCK]).unwrap();
        assert_eq!(e.stream.len(), 0);
        assert!(encode(&[1u64, 2, 1]).is_none());
        // Distances wider than 32 bits are refused.
        assert!(encode(&[0u64, 1 << 33]).is_none());
    }

    #[test]
    fn a_table_of_the_wrong_length_reads_nothing() {
        let e = encode(&[1u64, 2, 3]).unwrap();
        let table = vec![0u8; byte_len(e.table.len(), 8)];
        let stream = vec![0u8; SLACK + 1];
        let view = |b: &[u8]| View {
            ptr: b.as_ptr(),
            len: b.len(),
        };
        let b = Blocks::new(
            Packed::new(view(&table), 8, e.table.len()),
            Packed::new(view(&stream), 1, e.stream.len()),
            2,
            100,
        );
        assert_eq!(b.len(), 0);
        assert_eq!(b.get(0), None);
    }
}
