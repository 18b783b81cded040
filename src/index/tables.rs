//! Bucket tables: for each block of the address space, the piece containing its
//! first address, so that finding the piece of an address is a table read and a
//! search among the few piece starts of one block (usually none).
//!
//! Invariant: `table[b] <= table[b + 1]`, and the piece containing any address of
//! block `b` lies in `table[b] ..= table[b + 1]`.

use super::image::packed::Packed;
use super::starts::Search;
use super::Index;
use crate::history::History;
use crate::ip::{Family, IpKey};

/// Pieces per table entry, before rounding the entries up to a power of two.
const PIECES_PER_ENTRY: usize = 4;

const GLOBAL_FIRST: u128 = 0x2 << 124;
const GLOBAL_LAST: u128 = (0x3 << 124) - 1;

/// `table[b]` = the piece containing `first + (b << shift)`, for `b` in
/// `0..=2^bits` (the last entry closes the range; past the end of the space it is
/// the last piece).
fn block_table(history: &History, first: u128, bits: u32, shift: u32) -> Vec<u32> {
    let mut table = Vec::with_capacity((1 << bits) + 1);
    let mut i = history.piece_of(IpKey(first));
    for b in 0..=(1u128 << bits) {
        let at = b
            .checked_mul(1 << shift)
            .and_then(|offset| first.checked_add(offset))
            .unwrap_or(u128::MAX);
        while i + 1 < history.starts.len() && history.starts[i + 1].0 <= at {
            i += 1;
        }
        table.push(i as u32);
    }
    table
}

/// The bucket tables of a history, sized to its data.
pub(crate) struct Tables {
    pub v4: Vec<u32>,
    pub v4_shift: u32,
    pub v6: Vec<u32>,
    pub global: Vec<u32>,
    pub global_shift: u32,
}

impl Tables {
    pub(crate) fn of(history: &History) -> Tables {
        // One table entry per two to four pieces (at most one per IPv4 /24): a
        // block then holds a few piece starts, 4 bytes each in IPv4 and 8 in
        // real IPv6 data, within one or two cache lines that the batch path
        // prefetches. Denser tables (16 entries per piece) saved little lookup
        // time and were 40 % of the index file.
        let v4_pieces = history.piece_of(IpKey::V4_LAST) - history.piece_of(IpKey::V4_FIRST) + 1;
        let v4_bits = (usize::BITS - (v4_pieces / PIECES_PER_ENTRY).leading_zeros()).clamp(8, 24);
        let v4_shift = 32 - v4_bits;
        let global_pieces =
            history.piece_of(IpKey(GLOBAL_LAST)) - history.piece_of(IpKey(GLOBAL_FIRST)) + 1;
        let global_bits =
            (usize::BITS - (global_pieces / PIECES_PER_ENTRY).leading_zeros()).clamp(8, 22);
        let global_shift = 124 - global_bits;
        Tables {
            v4: block_table(history, IpKey::V4_FIRST.0, v4_bits, v4_shift),
            v4_shift,
            v6: block_table(history, 0, 16, 112),
            global: block_table(history, GLOBAL_FIRST, global_bits, global_shift),
            global_shift,
        }
    }
}

impl Index {
    /// The piece containing `ip`.
    #[inline]
    pub(super) fn piece(&self, ip: IpKey) -> usize {
        self.piece_among(ip, self.candidates(ip))
    }

    /// The piece containing `ip`, given its [`Index::candidates`].
    #[inline(always)]
    pub(super) fn piece_among(&self, ip: IpKey, (lo, hi): (usize, usize)) -> usize {
        self.piece_found(ip, lo, self.starts.search(lo + 1, hi + 1, ip.0))
    }

    /// The piece containing `ip`, given the search among its candidates
    /// from `lo` ([`Starts::search`](super::starts::Starts::search) of
    /// `lo + 1..=hi + 1`), its remaining steps taken.
    #[inline(always)]
    pub(super) fn piece_found(&self, ip: IpKey, lo: usize, search: Search) -> usize {
        // The first piece above `lo` that starts past `ip`, less one; `lo`
        // itself when none does (or the table is damaged).
        self.starts.answer(search, ip.0).saturating_sub(1).max(lo)
    }

    /// The first and last piece that may contain `ip`, from its bucket.
    #[inline]
    pub(super) fn candidates(&self, ip: IpKey) -> (usize, usize) {
        let (table, b) = self.bucket(ip);
        let lo = table.get(b).map_or(0, |p| p as usize);
        let hi = table.get(b + 1).map_or(0, |p| p as usize);
        (lo, hi)
    }

    /// The bucket table and slot for `ip`.
    #[inline]
    pub(super) fn bucket(&self, ip: IpKey) -> (&Packed, usize) {
        match ip.family() {
            Family::V4 => (&self.v4, ((ip.0 as u32) >> self.v4_shift) as usize),
            Family::V6 if (GLOBAL_FIRST..=GLOBAL_LAST).contains(&ip.0) => (
                &self.global,
                ((ip.0 - GLOBAL_FIRST) >> self.global_shift) as usize,
            ),
            Family::V6 => (&self.v6, (ip.0 >> 112) as usize),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::tests::index;
    use crate::time::Timestamp;

    #[test]
    fn bucket_edges_find_the_right_piece() {
        let text = r#"{"begin":"0.0.0.0","end":"0.0.255.255","datetime":"2024-01-01","n":0}
{"begin":"0.1.0.0","end":"0.1.0.0","datetime":"2024-01-01","n":1}
{"begin":"255.255.255.255","end":"255.255.255.255","datetime":"2024-01-01","n":2}
{"begin":"2000::","end":"2000::ff","datetime":"2024-01-01","n":4}
{"begin":"2fff:ffff:ffff:ffff:ffff:ffff:ffff:ff00","end":"3000::5","datetime":"2024-01-01","n":5}
{"begin":"ffff::","end":"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff","datetime":"2024-01-01","n":3}"#;
        let ix = index(&[text]);
        let n = |ip: &str| {
            ix.latest(IpKey::parse(ip).unwrap())
                .map(|m| String::from_utf8_lossy(m.payload).into_owned())
        };
        assert_eq!(n("0.0.255.255").as_deref(), Some(r#""n":0"#));
        assert_eq!(n("0.1.0.0").as_deref(), Some(r#""n":1"#));
        assert_eq!(n("0.1.0.1"), None);
        assert_eq!(n("255.255.255.255").as_deref(), Some(r#""n":2"#));
        assert_eq!(n("255.255.255.254"), None);
        assert_eq!(
            n("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").as_deref(),
            Some(r#""n":3"#)
        );
        assert_eq!(n("fffe::"), None);
        assert_eq!(n("2000::").as_deref(), Some(r#""n":4"#));
        assert_eq!(n("2000::100"), None);
        assert_eq!(n("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), None);
        assert_eq!(
            n("2fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").as_deref(),
            Some(r#""n":5"#)
        );
        assert_eq!(n("3000::5").as_deref(), Some(r#""n":5"#));
        assert_eq!(n("3000::6"), None);
        let mut out = Vec::new();
        let probes: Vec<_> = [
            "2000::",
            "3000::5",
            "0.1.0.0",
            "ffff::1",
            "2fff:ffff:ffff:ffff:ffff:ffff:ffff:ff00",
        ]
        .iter()
        .map(|ip| (IpKey::parse(ip).unwrap(), Timestamp::MAX))
        .collect();
        ix.at_many(&probes, &mut out);
        let got: Vec<_> = out.iter().map(|m| m.is_some()).collect();
        assert_eq!(got, [true, true, true, true, true]);
        assert_eq!(n("::"), None);
    }
}
