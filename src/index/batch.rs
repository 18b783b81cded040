//! Answering many queries at once: [`Index::at_many`] takes queries through each
//! step of a lookup (bucket, piece, changes, record) in groups, prefetching the
//! next step's memory for the whole group so that the cache misses overlap. The
//! piece search is itself taken in steps ([`Starts::step`](super::starts::Starts::step)):
//! among many IPv6 starts it goes through two fence levels before the starts.
//!
//! Invariant: the answers are exactly those of [`Index::at`], query by query.

use super::starts::Search;
use super::{Index, Match};
use crate::history::NO_LINE;
use crate::ip::IpKey;
use crate::time::Timestamp;

/// Queries resolved together by [`Index::at_many`]: their memory accesses overlap.
const GROUP: usize = 16;

/// Steps of a piece search taken for the whole group before the rest are
/// taken query by query: enough for the deepest usual search (IPv6 starts
/// crowded into one bucket: two fence levels, then the starts).
const SEARCH_STEPS: usize = 2;

/// Hints the CPU to fetch the cache line at `p`; never faults, even if `p` is not
/// a valid address.
#[inline(always)]
pub(super) fn prefetch<T>(p: *const T) {
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
    /// memory for the whole group so that the cache misses overlap. What a step
    /// reads is kept for the next (candidates, offset block, line parts), so
    /// that nothing is decoded twice.
    pub fn at_many<'a>(&'a self, queries: &[(IpKey, Timestamp)], out: &mut Vec<Option<Match<'a>>>) {
        out.reserve(queries.len());
        for group in queries.chunks(GROUP) {
            let n = group.len();
            let mut piece = [0usize; GROUP];
            let mut pos = [None; GROUP];
            let mut line = [NO_LINE; GROUP];
            let mut lowest = [0usize; GROUP];
            let mut search = [Search::Done(0); GROUP];
            let mut block = [None; GROUP];
            let mut span = [(0, 0); GROUP];
            let mut parts = [None; GROUP];
            for &(ip, _) in group {
                let (table, b) = self.bucket(ip);
                prefetch(table.address(b));
                prefetch(self.starts.v4_high_address(ip.0));
            }
            // The search for the piece among the bucket's candidates, a
            // step at a time (each prefetches what the next reads): one for
            // IPv4, up to three among many IPv6 starts.
            for (k, &(ip, _)) in group.iter().enumerate() {
                let (lo, hi) = self.candidates(ip);
                lowest[k] = lo;
                search[k] = self.starts.search(lo + 1, hi + 1, ip.0);
            }
            for _ in 0..SEARCH_STEPS {
                for (k, &(ip, _)) in group.iter().enumerate() {
                    search[k] = self.starts.step(search[k], ip.0);
                }
            }
            for (k, &(ip, t)) in group.iter().enumerate() {
                piece[k] = self.piece_found(ip, lowest[k], search[k]);
                pos[k] = self.snapshot_position(t);
                prefetch(self.offsets.address(piece[k]));
            }
            for k in 0..n {
                block[k] = self.offsets.block_of(piece[k]);
                if let Some(b) = &block[k] {
                    prefetch(self.offsets.distance_address(b, piece[k]));
                }
            }
            for k in 0..n {
                span[k] = block[k]
                    .and_then(|b| self.offsets.pair_in(b, piece[k]))
                    .map_or((0, 0), |(lo, hi)| (lo as usize, hi as usize));
                // A piece's changes are read newest first.
                prefetch(self.changes.address(span[k].0));
                prefetch(self.changes.address(span[k].1.saturating_sub(1)));
            }
            for k in 0..n {
                if let Some(p) = pos[k] {
                    line[k] = self.changes.line_at(span[k].0, span[k].1, p);
                    prefetch(self.lines.address(line[k] as usize));
                }
            }
            // A record's range comes from the starts of the pieces it spans.
            for k in 0..n {
                parts[k] = self.line_parts(line[k]);
                if let Some((first, last, payload)) = parts[k] {
                    prefetch(self.starts.address(first));
                    prefetch(self.starts.address(last + 1));
                    prefetch(self.starts.low_flag_address(first));
                    prefetch(self.starts.low_flag_address(last + 1));
                    prefetch(self.payload_offsets.as_ptr().wrapping_add(payload as usize));
                }
            }
            for k in 0..n {
                let m = match (pos[k], parts[k]) {
                    (Some(p), Some((first, last, payload))) => self
                        .line_of_parts(first, last, payload, group[k].0)
                        .and_then(|l| self.match_of(l, p)),
                    _ => None,
                };
                if let Some(m) = &m {
                    prefetch(m.payload.as_ptr());
                }
                out.push(m);
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
