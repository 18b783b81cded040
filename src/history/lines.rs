//! The lines (records) of a history by id, in 16 bytes a line instead of the
//! 36 of a `(u128, u128, u32)` (or 64 of a `Vec<Option<Line>>`), which matters
//! at city scale (millions of records held by every load and update).
//!
//! A line is its payload, 8 bytes for its `begin` and 4 for its length, in one
//! of two forms that hold almost every range of real data sets:
//! - *low*: the key's high 64 bits are zero (IPv4-mapped keys, the bottom of
//!   IPv6): `begin` is its low half, and `end` is `begin + length`;
//! - *high*: `begin`'s low 64 bits are zero and `end`'s are all ones (IPv6
//!   ranges cut on /64 or wider boundaries): `begin` is its high half, and
//!   `end`'s high half is `begin`'s `+ length`.
//!
//! The form is the top 2 bits of the 8 bytes, so the half kept must be below
//! 2^62 (every IPv4-mapped key, the global unicast IPv6 block). Any other line
//! goes whole to a side list, and the 8 bytes hold its index there. Reading a
//! line by id is O(1).
//!
//! Invariants: ids are only appended; a removed line keeps its id as a hole
//! (its payload slot holds [`HOLE`]), so that ids stay stable for the store.
//! Every line reads back exactly as it was put.

use super::{Line, LineId, PayloadId};
use crate::ip::IpKey;

/// The payload slot of a removed line. No real payload has this id: payload ids
/// count payloads, and a store's line naming it is refused as corrupt.
pub(crate) const HOLE: PayloadId = PayloadId::MAX;

/// The forms of a line, in the top 2 bits of [`Packed::key`].
const LOW: u64 = 0;
const HIGH: u64 = 1;
const WIDE: u64 = 2;
const FORM_SHIFT: u32 = 62;
const VALUE: u64 = (1 << FORM_SHIFT) - 1;

/// One line in 16 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Packed {
    /// The form (top 2 bits) and the half of `begin` it keeps, or the index
    /// of the line in the side list.
    key: u64,
    /// `end` minus `begin`, in the half kept.
    len: u32,
    payload: PayloadId,
}

const _: () = assert!(std::mem::size_of::<Packed>() == 16);

const EMPTY: Packed = Packed {
    key: 0,
    len: 0,
    payload: HOLE,
};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineTable {
    lines: Vec<Packed>,
    /// `(begin, end)` of the lines neither form holds, named by index.
    wide: Vec<(IpKey, IpKey)>,
}

impl LineTable {
    /// Number of ids given so far, holes included.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// The line with this id, if it is live.
    #[inline]
    pub fn get(&self, id: usize) -> Option<Line> {
        let p = *self.lines.get(id)?;
        if p.payload == HOLE {
            return None;
        }
        let v = p.key & VALUE;
        let len = u64::from(p.len);
        let (begin, end) = match p.key >> FORM_SHIFT {
            LOW => (IpKey(v.into()), IpKey(u128::from(v + len))),
            HIGH => (
                IpKey(u128::from(v) << 64),
                IpKey(u128::from(v + len) << 64 | u128::from(u64::MAX)),
            ),
            // Only this table writes indexes into `wide`.
            _ => self.wide[v as usize],
        };
        Some(Line {
            begin,
            end,
            payload: p.payload,
        })
    }

    /// The line packed; a wide one goes to the side list, at `old`'s index if
    /// it was wide already (a line put again).
    fn pack(&mut self, line: Line, old: Packed) -> Packed {
        let (b, e) = (line.begin.0, line.end.0);
        let halves = |x: u128| ((x >> 64) as u64, x as u64);
        let ((bh, bl), (eh, el)) = (halves(b), halves(e));
        let fits = |from: u64, to: u64| {
            from <= VALUE && to <= VALUE && from <= to && to - from <= u64::from(u32::MAX)
        };
        let (form, v, len) = if bh == 0 && eh == 0 && fits(bl, el) {
            (LOW, bl, el - bl)
        } else if bl == 0 && el == u64::MAX && fits(bh, eh) {
            (HIGH, bh, eh - bh)
        } else {
            let at = if old.payload != HOLE && old.key >> FORM_SHIFT == WIDE {
                let at = (old.key & VALUE) as usize;
                self.wide[at] = (line.begin, line.end);
                at
            } else {
                self.wide.push((line.begin, line.end));
                self.wide.len() - 1
            };
            (WIDE, at as u64, 0)
        };
        Packed {
            key: form << FORM_SHIFT | v,
            len: len as u32,
            payload: line.payload,
        }
    }

    /// Appends a line; returns its id.
    pub fn push(&mut self, line: Line) -> LineId {
        let p = self.pack(line, EMPTY);
        self.lines.push(p);
        (self.lines.len() - 1) as LineId
    }

    /// Puts a line at `id`, growing the table with holes (the store's read path,
    /// whose ids may have holes). A line whose payload is [`HOLE`] is refused.
    pub fn set(&mut self, id: usize, line: Line) -> bool {
        if line.payload == HOLE {
            return false;
        }
        if self.lines.len() <= id {
            self.lines.resize(id + 1, EMPTY);
        }
        let p = self.pack(line, self.lines[id]);
        self.lines[id] = p;
        true
    }

    /// Removes the line with this id (its id stays taken; if it was wide, its
    /// entry stays in the side list, unnamed).
    pub fn remove(&mut self, id: usize) {
        if let Some(p) = self.lines.get_mut(id) {
            *p = EMPTY;
        }
    }

    /// Every id's line, `None` for holes, in id order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Option<Line>> + '_ {
        (0..self.len()).map(|id| self.get(id))
    }

    /// Number of live lines.
    pub fn live(&self) -> usize {
        self.lines.iter().filter(|p| p.payload != HOLE).count()
    }

    /// Number of lines held whole (neither form holds them).
    pub fn wide_lines(&self) -> usize {
        self.wide.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(b: u128, e: u128, p: u32) -> Line {
        Line {
            begin: IpKey(b),
            end: IpKey(e),
            payload: p,
        }
    }

    #[test]
    fn ids_stay_with_their_lines_through_holes() {
        let mut t = LineTable::default();
        assert_eq!(t.push(line(1, 2, 0)), 0);
        assert_eq!(t.push(line(3, 4, 1)), 1);
        t.remove(0);
        assert_eq!(t.get(0), None);
        assert_eq!(t.get(1), Some(line(3, 4, 1)));
        assert_eq!(t.push(line(5, 6, 0)), 2);
        assert!(t.set(7, line(9, 9, 2)));
        assert_eq!(t.len(), 8);
        assert_eq!(t.live(), 3);
        assert_eq!(t.iter().filter(Option::is_some).count(), 3);
        assert_eq!(t.get(5), None);
        assert_eq!(t.get(8), None);
        assert!(!t.set(1, line(3, 4, HOLE)));
        assert_eq!(t.get(1), Some(line(3, 4, 1)));
    }

    #[test]
    fn every_kind_of_line_reads_back_exactly() {
        let key = |t: &str| IpKey::parse(t).unwrap().0;
        let v4 = key("1.2.3.0");
        let net = key("2001:db8::");
        let net_end = key("2001:db8:0:ffff:ffff:ffff:ffff:ffff");
        let odd = key("2001:db8::1");
        let odd_end = key("2001:db8::ff");
        let ula = key("fd00::");
        let ula_end = key("fd00::ffff:ffff:ffff:ffff");
        let compact = [
            line(v4, key("1.2.3.255"), 0),
            line(key("0.0.0.0"), key("255.255.255.255"), 1),
            line(0, 0, 2),
            line(0, (1 << 32) - 1, 3),
            line(net, net_end, 4),
            line(net, key("2001:db9::") - 1, 5),
        ];
        let wide = [
            line(odd, odd_end, 6),
            line(net, odd_end, 7),
            line(odd, net_end, 8),
            line(0, 1 << 32, 9),
            line(0, u128::MAX, 10),
            line(ula, ula_end, 11),
            line(u128::MAX, u128::MAX, 12),
            line(1 << 64, (1 << 64) | 5, 13),
            line(5, 4, 14),
            line(
                key("2000::"),
                key("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
                15,
            ),
            line(net, key("2001:db9::") | u128::from(u64::MAX), 16),
        ];
        let mut t = LineTable::default();
        for (id, l) in compact.iter().chain(&wide).enumerate() {
            assert_eq!(t.push(*l), id as LineId);
        }
        for (id, l) in compact.iter().chain(&wide).enumerate() {
            assert_eq!(t.get(id), Some(*l), "line {id}");
        }
        // Line 5 spans 2^32 /64s, the most the high form holds (16: one more).
        assert_eq!(t.wide_lines(), wide.len());
        // A line put again over a wide one reuses its entry.
        let odd_line = compact.len();
        assert!(t.set(odd_line, line(odd + 1, odd_end - 1, 9)));
        assert_eq!(t.get(odd_line), Some(line(odd + 1, odd_end - 1, 9)));
        assert_eq!(t.get(odd_line + 1), Some(wide[1]));
        assert_eq!(t.wide_lines(), wide.len());
        assert!(t.set(0, line(odd, odd, 1)));
        assert_eq!(t.get(0), Some(line(odd, odd, 1)));
        assert_eq!(t.wide_lines(), wide.len() + 1);
        // A removed wide line does not lend its entry to the next one.
        t.remove(0);
        assert!(t.set(0, line(odd, odd + 2, 1)));
        assert_eq!(t.get(0), Some(line(odd, odd + 2, 1)));
        assert_eq!(t.wide_lines(), wide.len() + 2);
    }
}
