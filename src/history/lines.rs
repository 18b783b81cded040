//! The lines (records) of a history by id, stored as three parallel vectors:
//! 36 bytes a line instead of the 64 of a `Vec<Option<Line>>`, which matters
//! at city scale (millions of records held by every load).
//!
//! Invariant: ids are only appended; a removed line keeps its id as a hole
//! (its payload slot holds [`HOLE`]), so that ids stay stable for the store.

use super::{Line, LineId, PayloadId};
use crate::ip::IpKey;

/// The payload slot of a removed line. No real payload has this id: payload ids
/// count payloads, and a store's line naming it is refused as corrupt.
pub(crate) const HOLE: PayloadId = PayloadId::MAX;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LineTable {
    begins: Vec<IpKey>,
    ends: Vec<IpKey>,
    payloads: Vec<PayloadId>,
}

impl LineTable {
    /// Number of ids given so far, holes included.
    pub fn len(&self) -> usize {
        self.payloads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.payloads.is_empty()
    }

    /// The line with this id, if it is live.
    #[inline]
    pub fn get(&self, id: usize) -> Option<Line> {
        let payload = *self.payloads.get(id)?;
        (payload != HOLE).then(|| Line {
            begin: self.begins[id],
            end: self.ends[id],
            payload,
        })
    }

    /// Appends a line; returns its id.
    pub fn push(&mut self, line: Line) -> LineId {
        self.begins.push(line.begin);
        self.ends.push(line.end);
        self.payloads.push(line.payload);
        (self.payloads.len() - 1) as LineId
    }

    /// Puts a line at `id`, growing the table with holes (the store's read path,
    /// whose ids may have holes). A line whose payload is [`HOLE`] is refused.
    pub fn set(&mut self, id: usize, line: Line) -> bool {
        if line.payload == HOLE {
            return false;
        }
        if self.payloads.len() <= id {
            self.begins.resize(id + 1, IpKey::MIN);
            self.ends.resize(id + 1, IpKey::MIN);
            self.payloads.resize(id + 1, HOLE);
        }
        self.begins[id] = line.begin;
        self.ends[id] = line.end;
        self.payloads[id] = line.payload;
        true
    }

    /// Removes the line with this id (its id stays taken).
    pub fn remove(&mut self, id: usize) {
        if let Some(p) = self.payloads.get_mut(id) {
            *p = HOLE;
        }
    }

    /// Every id's line, `None` for holes, in id order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Option<Line>> + '_ {
        (0..self.len()).map(|id| self.get(id))
    }

    /// Number of live lines.
    pub fn live(&self) -> usize {
        self.payloads.iter().filter(|&&p| p != HOLE).count()
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
}
