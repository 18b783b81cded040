//! Answering many queries at once: [`Index::at_many`] takes queries through each
//! step of a lookup (bucket, piece, changes, record) in groups, prefetching the
//! next step's memory for the whole group so that the cache misses overlap.
//!
//! Invariant: the answers are exactly those of [`Index::at`], query by query.

use super::{Index, Match};
use crate::history::NO_LINE;
use crate::ip::IpKey;
use crate::time::Timestamp;

/// Queries resolved together by [`Index::at_many`]: their memory accesses overlap.
const GROUP: usize = 16;

/// Hints the CPU to fetch the cache line at `p`; never faults, even if `p` is not
/// a valid address.
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint; it does not dereference `p`.
    #[allow(unused_unsafe)]
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl Index {
    /// Answers many `(ip, t)` queries at once, pushing one answer per query to
    /// `out`. Same answers as [`Index::at`], faster: queries go through each step
    /// (bucket, piece, changes, record) in groups, prefetching the next step's
    /// memory for the whole group so that the cache misses overlap.
    pub fn at_many<'a>(&'a self, queries: &[(IpKey, Timestamp)], out: &mut Vec<Option<Match<'a>>>) {
        for group in queries.chunks(GROUP) {
            let mut piece = [0usize; GROUP];
            let mut pos = [None; GROUP];
            let mut line = [NO_LINE; GROUP];
            for &(ip, _) in group {
                let (table, b) = self.bucket(ip);
                prefetch(table.address(b));
            }
            for &(ip, _) in group {
                // The candidate starts the search will read (up to 4 cache lines).
                let (lo, hi) = self.candidates(ip);
                for i in (lo + 1..=hi).step_by(4).take(4) {
                    prefetch(self.starts.address(i));
                }
            }
            for (k, &(ip, t)) in group.iter().enumerate() {
                piece[k] = self.piece(ip);
                pos[k] = self.snapshot_position(t);
                prefetch(self.offsets.address(piece[k]));
            }
            for &p in &piece[..group.len()] {
                prefetch(self.offsets.distance_address(p));
            }
            let mut span = [(0, 0); GROUP];
            for k in 0..group.len() {
                span[k] = self.change_span(piece[k]);
                prefetch(self.changes.address(span[k].0));
            }
            for k in 0..group.len() {
                if let Some(p) = pos[k] {
                    line[k] = self.changes.line_at(span[k].0, span[k].1, p);
                    prefetch(self.lines.address(line[k] as usize));
                }
            }
            // A record's range comes from the starts of the pieces it spans.
            for &l in &line[..group.len()] {
                if let Some((first, last, payload)) = self.line_parts(l) {
                    prefetch(self.starts.address(first));
                    prefetch(self.starts.address(last + 1));
                    prefetch(self.payload_offsets.as_ptr().wrapping_add(payload as usize));
                }
            }
            for k in 0..group.len() {
                out.push(pos[k].and_then(|p| self.matched(line[k], p)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::tests::{index, A, B};

    #[test]
    fn at_many_answers_like_at() {
        let ix = index(&[A, B]);
        let mut queries = Vec::new();
        for ip in [
            "1.0.0.0",
            "1.0.0.200",
            "::ffff:1.0.0.5",
            "2001:db8::1",
            "9.9.9.9",
            "::",
        ] {
            for t in ["2023-12-31", "2024-01-15", "2024-02-01", "2030-01-01"] {
                queries.push((IpKey::parse(ip).unwrap(), Timestamp::parse(t).unwrap()));
            }
        }
        let mut out = Vec::new();
        ix.at_many(&queries, &mut out);
        assert_eq!(out.len(), queries.len());
        for (q, got) in queries.iter().zip(&out) {
            assert_eq!(
                got.map(|m| m.to_json()),
                ix.at(q.0, q.1).map(|m| m.to_json())
            );
        }
    }
}
