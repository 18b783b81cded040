//! Bit-packed arrays: `len` unsigned values of `width` bits each, one after
//! the other, little-endian, so that a section costs the bits its values need
//! (a piece index of a country history 20 bits instead of 32, a change 27
//! instead of 32 or 64) and no history is too long or too large for its form.
//!
//! Reading value `i` is one unaligned load of the 8 bytes (16 when `width` is
//! over 57) holding its bits, a shift and a mask; the section is written with
//! [`SLACK`] zero bytes after its last value so that the load never leaves it.
//!
//! Invariants: `1 <= width <= MAX_WIDTH`; a [`Packed`] view's bytes hold
//! `len` values and the slack (checked when the image is made, and again by
//! [`Packed::new`]), so a read of a value below `len` stays inside them; a read
//! past `len` is `None`, never a panic.

use super::View;

/// The widest value a packed array holds.
pub(crate) const MAX_WIDTH: u32 = 64;
/// Zero bytes after the last value: the widest load reads 16 bytes from the
/// byte holding a value's first bit.
pub(crate) const SLACK: usize = 16;

/// The bits an unsigned value up to `max` needs (at least 1).
pub(crate) fn bits_for(max: u64) -> u32 {
    (u64::BITS - max.leading_zeros()).max(1)
}

/// Bytes of a packed array of `len` values of `width` bits, slack included.
pub(crate) fn byte_len(len: usize, width: u32) -> usize {
    (len * width as usize).div_ceil(8) + SLACK
}

/// Writes `values` packed at `width` bits into `dst` (zeroed, at least
/// [`byte_len`] long). Values wider than `width` are cut to it: callers size
/// `width` with [`bits_for`] from the largest value.
pub(crate) fn pack_into(dst: &mut [u8], values: impl IntoIterator<Item = u64>, width: u32) {
    let mut bit = 0usize;
    for v in values {
        let v = u128::from(v & mask(width)) << (bit & 7);
        let at = bit >> 3;
        for (k, d) in dst[at..at + 9].iter_mut().enumerate() {
            *d |= (v >> (8 * k)) as u8;
        }
        bit += width as usize;
    }
}

#[inline(always)]
fn mask(width: u32) -> u64 {
    u64::MAX >> (64 - width)
}

/// A bit stream being written: values of any width up to 57 bits, one after
/// the other, read back with [`Packed::bits`] from a width-1 view.
#[derive(Debug, Default)]
pub(crate) struct BitWriter {
    bytes: Vec<u8>,
    bits: usize,
}

impl BitWriter {
    /// Appends the low `width` bits of `v` (`width` at most 57; 0 writes nothing).
    pub(crate) fn push(&mut self, v: u64, width: u32) {
        if width == 0 {
            return;
        }
        let v = (v & mask(width)) << (self.bits & 7);
        let at = self.bits >> 3;
        self.bytes
            .resize((self.bits + width as usize).div_ceil(8).max(at + 1), 0);
        for (k, d) in self.bytes[at..].iter_mut().enumerate().take(8) {
            *d |= (v >> (8 * k)) as u8;
        }
        self.bits += width as usize;
    }

    /// The number of bits written.
    pub(crate) fn len(&self) -> usize {
        self.bits
    }

    /// The stream's bytes (the last one zero-filled).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A read-only view of a packed array in an image.
#[derive(Debug)]
pub(crate) struct Packed {
    bytes: View<u8>,
    width: u32,
    mask: u64,
    len: usize,
}

impl Packed {
    /// A view of `len` values of `width` bits in `bytes` (checked when the
    /// image was made to be [`byte_len`] long, `width` in `1..=MAX_WIDTH`; a
    /// view that breaks this is made empty, so no read can leave `bytes`).
    pub(crate) fn new(bytes: View<u8>, width: u32, len: usize) -> Packed {
        let fits = (1..=MAX_WIDTH).contains(&width)
            && len
                .checked_mul(width as usize)
                .is_some_and(|bits| bits.div_ceil(8) + SLACK <= bytes.len());
        let (width, len) = if fits { (width, len) } else { (1, 0) };
        Packed {
            bytes,
            width,
            mask: mask(width),
            len,
        }
    }

    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Value `i`, `None` past the end.
    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> Option<u64> {
        if i >= self.len {
            return None;
        }
        let bit = i * self.width as usize;
        let at = bit >> 3;
        let shift = (bit & 7) as u32;
        let p = self.bytes.as_ptr().wrapping_add(at);
        // SAFETY: `i < len`, so the value's first byte is at most
        // `(len * width - 1) / 8` and the 16 bytes from it end inside the
        // [`SLACK`] that `new` checked `bytes` to hold.
        let v = unsafe {
            if self.width <= 57 {
                std::ptr::read_unaligned(p.cast::<u64>()).to_le() >> shift
            } else {
                (std::ptr::read_unaligned(p.cast::<u128>()).to_le() >> shift) as u64
            }
        };
        Some(v & self.mask)
    }

    /// The `width` bits (at most 57) starting at bit `bit` of a width-1 array
    /// (a bit stream), `None` when they do not all lie inside it.
    #[inline(always)]
    pub(crate) fn bits(&self, bit: usize, width: u32) -> Option<u64> {
        if width > 57 || bit.checked_add(width as usize)? > self.len {
            return None;
        }
        if width == 0 {
            return Some(0);
        }
        let p = self.bytes.as_ptr().wrapping_add(bit >> 3);
        // SAFETY: the bits end inside the stream, so its first byte is at
        // most `(len - 1) / 8` and the 8 bytes from it end inside the slack.
        let v = unsafe { std::ptr::read_unaligned(p.cast::<u64>()).to_le() };
        Some((v >> (bit & 7)) & mask(width))
    }

    /// The index of `key` in a sorted array, `None` if it is not there.
    #[cfg(test)]
    pub(crate) fn find(&self, key: u64) -> Option<usize> {
        self.find_in(0, self.len, key)
    }

    /// The index of `key` among values `lo..hi` of a sorted array, `None`
    /// if it is not there.
    #[inline]
    pub(crate) fn find_in(&self, lo: usize, hi: usize, key: u64) -> Option<usize> {
        let (mut lo, mut hi) = (lo, hi.min(self.len));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.get(mid)?.cmp(&key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address of value `i`'s first byte, for a prefetch (never
    /// dereferenced).
    #[inline(always)]
    pub(crate) fn address(&self, i: usize) -> *const u8 {
        self.bytes
            .as_ptr()
            .wrapping_add(i.wrapping_mul(self.width as usize) >> 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(values: &[u64], width: u32) {
        let mut buf = vec![0u128; byte_len(values.len(), width).div_ceil(16)];
        let len = byte_len(values.len(), width);
        // SAFETY: the u128 buffer viewed as bytes.
        let bytes = unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr().cast::<u8>(), len) };
        pack_into(bytes, values.iter().copied(), width);
        let view = View {
            ptr: bytes.as_ptr(),
            len,
        };
        let p = Packed::new(view, width, values.len());
        for (i, &v) in values.iter().enumerate() {
            assert_eq!(p.get(i), Some(v), "value {i} at width {width}");
        }
        assert_eq!(p.get(values.len()), None);
    }

    #[test]
    fn every_width_reads_back_what_was_written() {
        for width in 1..=MAX_WIDTH {
            let top = mask(width);
            let values: Vec<u64> = (0..67u64)
                .map(|i| match i % 4 {
                    0 => top,
                    1 => 0,
                    2 => i.wrapping_mul(0x9e37_79b9_7f4a_7c15) & top,
                    _ => top >> 1,
                })
                .collect();
            round_trip(&values, width);
        }
    }

    #[test]
    fn widths_fit_their_largest_value() {
        assert_eq!(bits_for(0), 1);
        assert_eq!(bits_for(1), 1);
        assert_eq!(bits_for(2), 2);
        assert_eq!(bits_for(1023), 10);
        assert_eq!(bits_for(1024), 11);
        assert_eq!(bits_for(u64::MAX), 64);
        assert_eq!(byte_len(0, 7), SLACK);
        assert_eq!(byte_len(3, 7), 3 + SLACK);
    }
    fn view_of(bytes: &[u8]) -> View<u8> {
        View {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    #[test]
    fn a_bit_stream_reads_back_values_of_mixed_widths() {
        let items: Vec<(u64, u32)> = (0..200u64)
            .map(|i| {
                let w = (i * 7 % 58) as u32;
                (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) & mask(w.max(1)), w)
            })
            .map(|(v, w)| (if w == 0 { 0 } else { v }, w))
            .collect();
        let mut w = BitWriter::default();
        for &(v, width) in &items {
            w.push(v, width);
        }
        let mut buf = w.bytes().to_vec();
        buf.resize(byte_len(w.len(), 1), 0);
        let p = Packed::new(view_of(&buf), 1, w.len());
        let mut bit = 0;
        for &(v, width) in &items {
            assert_eq!(p.bits(bit, width), Some(v), "at bit {bit}, width {width}");
            bit += width as usize;
        }
        assert_eq!(bit, w.len());
        assert_eq!(p.bits(bit, 1), None);
        assert_eq!(p.bits(bit, 0), Some(0));
        assert_eq!(p.bits(0, 58), None);
        // An empty stream holds no bits.
        let empty = vec![0u8; SLACK];
        let e = Packed::new(view_of(&empty), 1, 0);
        assert_eq!(e.bits(0, 1), None);
        assert_eq!(e.bits(0, 0), Some(0));
    }

    #[test]
    fn find_locates_keys_of_a_sorted_array() {
        let values = [3u64, 9, 10, 400, 1 << 40];
        let width = bits_for(1 << 40);
        let mut buf = vec![0u8; byte_len(values.len(), width)];
        pack_into(&mut buf, values.iter().copied(), width);
        let p = Packed::new(view_of(&buf), width, values.len());
        for (i, &v) in values.iter().enumerate() {
            assert_eq!(p.find(v), Some(i));
        }
        for missing in [0, 4, 11, 401, u64::MAX] {
            assert_eq!(p.find(missing), None);
        }
        let empty = vec![0u8; SLACK];
        assert_eq!(Packed::new(view_of(&empty), 5, 0).find(0), None);
    }
}
