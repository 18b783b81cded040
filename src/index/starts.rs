//! Piece starts as the index file keeps them: the pieces that start in IPv4
//! as the low 16 bits of their offset from `::ffff:0:0`, with a table of where
//! each /16 starts among them, the others (before and after them in address
//! order) as their top 64 bits, with the few whose low 64 bits are not zero
//! (real IPv6 data splits at /64 or above) kept aside in an exception list. A
//! country history's starts take 5 bytes a piece on average instead of 16, a
//! city history's 4.
//!
//! Invariant: piece `i` is IPv4 start `i - v4_at` for the `v4.len()` pieces
//! from `v4_at`, wide start `i` below them and `i - v4.len()` after them; IPv4
//! start `j` lies in the /16 `h` with `v4_high[h] <= j < v4_high[h + 1]`; a
//! wide start's low 64 bits are its exception, zero if it has none. A damaged
//! `v4_high` gives wrong starts, never a read outside the image.

use super::batch::prefetch;
use super::image::exceptions::Exceptions;
use super::image::packed::Packed;
use super::image::{Image, Section, View, FENCE};
use crate::ip::IpKey;

/// The /16s of IPv4.
const V4_HIGHS: usize = 1 << 16;

#[derive(Debug)]
pub(crate) struct Starts {
    /// IPv4 starts' low 16 bits.
    v4: View<u16>,
    /// `v4_high[h]`: the number of IPv4 starts below the /16 `h`.
    v4_high: Packed,
    /// Wide starts' top 64 bits.
    high: View<u64>,
    /// Every [`FENCE`]-th of `high` (from the file)...
    fences: View<u64>,
    /// ...and every [`FENCE`]-th of those (made at open): a search among many
    /// wide starts (real IPv6 data crowds into few table buckets: 90,000
    /// starts in the bucket of an average city IPv6 lookup) reads a few cache
    /// lines of these, then two of `high`, instead of a binary search's 17.
    fences2: Vec<u64>,
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

/// A search among piece starts under way ([`Starts::search`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Search {
    /// The answer: a piece index.
    Done(usize),
    /// Among the IPv4 starts of one /16, pieces `from..to`: the first whose
    /// low 16 bits are above `key`.
    V4 { from: usize, to: usize, key: u16 },
    /// Among wide starts.
    Wide(Wide),
}

/// A search among wide starts: the answer lies in `from..=to` (wide start
/// indexes), inside the window `a..` that was asked; wide start `w` is piece
/// `piece + w`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Wide {
    piece: usize,
    a: usize,
    from: usize,
    to: usize,
}

impl Starts {
    pub(crate) fn of(image: &Image) -> Starts {
        let v4: View<u16> = image.view(Section::StartsV4);
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
        let fences: View<u64> = image.view(Section::WideFences);
        let fences2 = fences.iter().step_by(FENCE).copied().collect();
        let mut has_low = vec![0u64; high.len().div_ceil(64)];
        for w in low.indexes() {
            if let Some(word) = has_low.get_mut((w / 64) as usize) {
                *word |= 1 << (w % 64);
            }
        }
        Starts {
            len: v4.len() + high.len(),
            v4,
            v4_high: image.packed(Section::StartsV4High),
            high,
            fences,
            fences2,
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

    /// Start of piece `i`, `None` past the end, found fastest when an IPv4
    /// start lies in the /16 of `near` (a lookup's address: the pieces of
    /// its record nearly always do).
    #[inline(always)]
    pub(crate) fn get_near(&self, i: usize, near: u128) -> Option<u128> {
        let in_v4 = i.wrapping_sub(self.v4_at);
        if in_v4 < self.v4.len() {
            let low = *self.v4.get(in_v4)?;
            let top = self.v4_top(in_v4, v4_slash16(near));
            return Some(IpKey::V4_FIRST.0 | (top as u128) << 16 | u128::from(low));
        }
        let w = if i < self.v4_at { i } else { i - self.v4.len() };
        self.wide(w)
    }

    /// The number of IPv4 starts below the /16 `h` (`h` in `0..=V4_HIGHS`).
    #[inline(always)]
    fn v4_below(&self, h: usize) -> usize {
        self.v4_high.get(h).map_or(self.v4.len(), |n| n as usize)
    }

    /// The /16 of IPv4 start `j`, `hint` first.
    #[inline(always)]
    fn v4_top(&self, j: usize, hint: usize) -> usize {
        if self.v4_below(hint) <= j && j < self.v4_below(hint + 1) {
            hint
        } else {
            self.v4_top_search(j, hint)
        }
    }

    /// The /16 of IPv4 start `j`: the last `h` with `v4_high[h] <= j`,
    /// searched outwards from `hint` (a record's pieces mostly lie in a few
    /// /16s around the address looked up), then by halves.
    #[inline(never)]
    fn v4_top_search(&self, j: usize, hint: usize) -> usize {
        let (mut lo, mut hi) = (1, V4_HIGHS);
        let mut step = 1;
        if self.v4_below(hint) > j {
            // Below the hint: the answer is under it.
            hi = hint;
            while step < hint && self.v4_below(hint - step) > j {
                hi = hint - step;
                step *= 2;
            }
            lo = lo.max(hint.saturating_sub(step) + 1);
        } else {
            lo = hint + 1;
            while hint + step < V4_HIGHS && self.v4_below(hint + step) <= j {
                lo = hint + step + 1;
                step *= 2;
            }
            hi = hi.min(hint + step);
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.v4_below(mid) <= j {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo - 1
    }

    /// The answer of `search`, its remaining steps taken.
    #[inline(always)]
    pub(crate) fn answer(&self, mut search: Search, ip: u128) -> usize {
        loop {
            match search {
                Search::Done(i) => return i,
                s => search = self.step(s, ip),
            }
        }
    }

    /// The search for the first `i` in `lo..hi` whose start is above `ip`
    /// (`hi` if none), in steps that each read a cache line or a few, the
    /// next step's prefetched ([`Starts::step`]): a batch of lookups takes
    /// each step for all its queries before the next, so that their misses
    /// overlap. The starts are sorted, so this is a binary search, over one
    /// form's slice when `lo..hi` lies in one (a bucket's candidates nearly
    /// always do); among many wide starts, through the fences first.
    #[inline(always)]
    pub(crate) fn search(&self, lo: usize, hi: usize, ip: u128) -> Search {
        let hi = hi.min(self.len);
        if lo >= hi {
            return Search::Done(lo);
        }
        let v4_end = self.v4_at + self.v4.len();
        if lo >= self.v4_at && hi <= v4_end {
            let (a, b) = (lo - self.v4_at, hi - self.v4_at);
            if ip < IpKey::V4_FIRST.0 {
                return Search::Done(lo);
            }
            let Ok(offset) = u32::try_from(ip - IpKey::V4_FIRST.0) else {
                return Search::Done(hi);
            };
            // The starts below `ip`'s /16 are at or below it, those past it
            // above it: only the ones in it are compared, by their low bits.
            let top = (offset >> 16) as usize;
            let from = self.v4_below(top).clamp(a, b);
            let to = self.v4_below(top + 1).clamp(from, b);
            prefetch(self.v4.as_ptr().wrapping_add(from));
            prefetch(self.v4.as_ptr().wrapping_add(to.saturating_sub(1)));
            return Search::V4 {
                from: self.v4_at + from,
                to: self.v4_at + to,
                key: offset as u16,
            };
        }
        let (a, b) = if hi <= self.v4_at {
            (lo, hi)
        } else if lo >= v4_end {
            (lo - self.v4.len(), hi - self.v4.len())
        } else {
            return Search::Done(self.partition_point_across(lo, hi, ip));
        };
        let wide = Wide {
            piece: lo - a,
            a,
            from: a,
            to: b,
        };
        self.prefetch_level(&wide);
        Search::Wide(wide)
    }

    /// One step of a [`Starts::search`]: a narrower search, or its answer.
    #[inline(always)]
    pub(crate) fn step(&self, search: Search, ip: u128) -> Search {
        match search {
            Search::Done(i) => Search::Done(i),
            Search::V4 { from, to, key } => {
                let slice = self
                    .v4
                    .get(from - self.v4_at..to - self.v4_at)
                    .unwrap_or_default();
                Search::Done(from + slice.partition_point(|&s| s <= key))
            }
            Search::Wide(w) => match self.level_of(&w) {
                0 => Search::Done(w.piece + self.wide_point(&w, ip)),
                level => {
                    let narrower = self.narrow(w, level, (ip >> 64) as u64);
                    self.prefetch_level(&narrower);
                    Search::Wide(narrower)
                }
            },
        }
    }

    /// The fence level a step of `w` reads: the lowest whose entries in `w`
    /// fit a few cache lines (0: the starts themselves).
    #[inline(always)]
    fn level_of(&self, w: &Wide) -> usize {
        let n = w.to - w.from;
        if n <= 2 * FENCE {
            0
        } else if n <= 2 * FENCE * FENCE {
            1
        } else {
            2
        }
    }

    /// The array of fence level `level`: every `FENCE^level`-th wide start's
    /// top half.
    #[inline(always)]
    fn level(&self, level: usize) -> &[u64] {
        match level {
            0 => &self.high,
            1 => &self.fences,
            _ => &self.fences2,
        }
    }

    /// Prefetches the entries of `w`'s next step (the level it reads is
    /// small enough for its first and last cache lines to hold them, or is
    /// in memory).
    #[inline(always)]
    fn prefetch_level(&self, w: &Wide) {
        let level = self.level_of(w);
        if level < 2 {
            let stride = FENCE.pow(level as u32);
            let values = self.level(level).as_ptr();
            let (a, b) = (w.from.div_ceil(stride), w.to.div_ceil(stride));
            prefetch(values.wrapping_add(a));
            prefetch(values.wrapping_add(a + (b - a) / 2));
            prefetch(values.wrapping_add(b.saturating_sub(1)));
        }
    }

    /// `w` narrowed through fence level `level` (at least 1) to at most
    /// `FENCE^level` starts, one of which is the answer. Wrong fences give a
    /// wrong window inside `w`, never one outside it.
    #[inline(always)]
    fn narrow(&self, w: Wide, level: usize, key: u64) -> Wide {
        let stride = FENCE.pow(level as u32);
        // The fences in `from..to`: those at multiples of `stride`.
        let (fa, fb) = (w.from.div_ceil(stride), w.to.div_ceil(stride));
        let f = point(self.level(level), fa, fb, key);
        let from = if f > fa { (f - 1) * stride } else { w.from };
        let to = if f < fb { f * stride } else { w.to };
        let from = from.clamp(w.from, w.to);
        Wide {
            from,
            to: to.clamp(from, w.to),
            ..w
        }
    }

    /// The answer of a search narrowed to a few starts: the first wide start
    /// in `w` above `ip`.
    #[inline(always)]
    fn wide_point(&self, w: &Wide, ip: u128) -> usize {
        let key = (ip >> 64) as u64;
        let mut i = point(&self.high, w.from, w.to, key);
        // Starts of the same top half are ordered by their low bits: step
        // back over those above `ip` (only exceptions can be), as far as the
        // window asked, past the fences.
        while i > w.a && self.high.get(i - 1) == Some(&key) && self.low(i - 1) > ip as u64 {
            i -= 1;
        }
        i
    }

    /// A [`Starts::search`] over a range that crosses forms, whole.
    fn partition_point_across(&self, lo: usize, hi: usize, ip: u128) -> usize {
        let (mut lo, mut hi) = (lo, hi);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get_near(mid, ip).is_some_and(|s| s <= ip) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The address of the /16 table entries of `ip`, for a prefetch (never
    /// dereferenced).
    #[inline(always)]
    pub(crate) fn v4_high_address(&self, ip: u128) -> *const u8 {
        self.v4_high.address(v4_slash16(ip))
    }

    /// The address of the word saying whether piece `i`'s start has low bits
    /// (that of piece 0 for an IPv4 start), for a prefetch (never
    /// dereferenced).
    #[inline(always)]
    pub(crate) fn low_flag_address(&self, i: usize) -> *const u8 {
        let w = if i < self.v4_at {
            i
        } else {
            i.saturating_sub(self.v4.len())
        };
        self.has_low.as_ptr().wrapping_add(w / 64).cast()
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

/// The first index in `a..b` of the sorted `values` whose value is above
/// `key`, `b` if none.
#[inline(always)]
fn point(values: &[u64], a: usize, b: usize, key: u64) -> usize {
    a + values
        .get(a..b)
        .unwrap_or_default()
        .partition_point(|&v| v <= key)
}

/// The IPv4 /16 of `ip` (0 outside IPv4).
#[inline(always)]
fn v4_slash16(ip: u128) -> usize {
    match u32::try_from(ip.wrapping_sub(IpKey::V4_FIRST.0)) {
        Ok(offset) => (offset >> 16) as usize,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use crate::history::History;
    use crate::index::image::tests::{history, state};
    use crate::index::image::{Image, FENCE};
    use crate::index::Index;
    use crate::ip::IpKey;
    use crate::time::Timestamp;

    /// The range of the record answering for `ip` at `t`, from the history.
    fn expected(h: &History, ip: IpKey, t: Timestamp) -> Option<(IpKey, IpKey)> {
        let pos = h.snapshots.iter().rposition(|s| s.meta.instant() <= t)?;
        let c = h.piece_changes(h.piece_of(ip));
        let line = c.iter().rev().find(|c| usize::from(c.pos) <= pos)?.line;
        h.line(line).map(|l| (l.begin, l.end))
    }

    /// IPv4 starts on both sides of /16 edges, at an edge, and records
    /// spanning many /16s (a whole /8) read back as the history has them, by
    /// a lookup near them and by a walk over every record.
    #[test]
    fn ipv4_starts_keep_their_slash16_across_edges() {
        let records = [
            ("1.0.0.0", "1.255.255.255"),
            ("2.0.255.0", "2.1.0.255"),
            ("2.1.1.0", "2.1.255.255"),
            ("2.3.0.0", "2.3.0.0"),
            ("2.3.0.1", "2.4.0.0"),
            ("2.4.0.1", "2.4.0.1"),
            ("200.0.0.0", "200.0.0.1"),
            ("255.255.255.0", "255.255.255.255"),
        ];
        let first: String = records
            .iter()
            .enumerate()
            .map(|(n, (b, e))| {
                format!(
                    r#"{{"begin":"{b}","end":"{e}","datetime":"2024-01-01T00:00:00Z","n":{n}}}"#
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        // A second snapshot splits the /8 at every /16 of its first 300.
        let second: String = (0..300u32)
            .map(|k| {
                let (b, e) = (0x0100_0000 + (k << 16), 0x0100_0000 + (k << 16) + 0xffff);
                let ip = |v: u32| std::net::Ipv4Addr::from(v).to_string();
                format!(
                    r#"{{"begin":"{}","end":"{}","datetime":"2024-02-01T00:00:00Z","k":{k}}}"#,
                    ip(b),
                    ip(e)
                )
            })
            .collect::<Vec<_>>()
            .join("\n");
        let h = history(&[&first, &second]);
        let ix = Index::from_image(Image::build(&h, state(1)).unwrap()).unwrap();
        for ip in [
            "0.0.0.0",
            "1.0.0.0",
            "1.0.255.255",
            "1.1.0.0",
            "1.43.7.9",
            "1.255.255.255",
            "2.0.254.255",
            "2.0.255.0",
            "2.1.0.255",
            "2.1.1.0",
            "2.2.0.0",
            "2.3.0.0",
            "2.3.0.1",
            "2.3.255.255",
            "2.4.0.0",
            "2.4.0.1",
            "2.4.0.2",
            "200.0.0.1",
            "255.255.255.255",
            "::1",
            "::ffff:0:0",
        ] {
            let ip = IpKey::parse(ip).unwrap();
            for t in ["2024-01-15", "2024-02-15"] {
                let t = Timestamp::parse(t).unwrap();
                let got = ix.at(ip, t).map(|m| (m.line.begin, m.line.end));
                assert_eq!(got, expected(&h, ip, t), "{ip:?} at {t:?}");
                let mut out = Vec::new();
                ix.at_many(&[(ip, t)], &mut out);
                assert_eq!(out[0].map(|m| (m.line.begin, m.line.end)), got);
            }
        }
        // Without a hint (every record of a snapshot), the same ranges.
        let mut ranges: Vec<_> = ix.ranges().collect();
        ranges.sort();
        let mut want: Vec<_> = h.lines().map(|(_, l)| (l.begin, l.end)).collect();
        want.sort();
        assert_eq!(ranges, want);
    }

    /// Thousands of IPv6 starts in one table bucket (some sharing a top
    /// half, split by their low bits) are found through both levels of
    /// fences, as the history has them.
    #[test]
    fn crowded_ipv6_starts_are_found_through_the_fences() {
        let mut lines: Vec<String> = (0..3000u64)
            .map(|k| {
                // Every third /64 split in two halves (low bits aside).
                let net = 0x2001_0db8_0000_0000u64 + k * 0x1_0003;
                let b = std::net::Ipv6Addr::from(u128::from(net) << 64);
                let e = if k % 3 == 0 {
                    (u128::from(net) << 64) | u128::from(u64::MAX >> 1)
                } else {
                    (u128::from(net) << 64) | u128::from(u64::MAX)
                };
                let mut text = format!(
                    r#"{{"begin":"{b}","end":"{}","datetime":"2024-01-01T00:00:00Z","k":{k}}}"#,
                    std::net::Ipv6Addr::from(e)
                );
                if k % 3 == 0 {
                    text.push_str(&format!(
                        "\n{{\"begin\":\"{}\",\"end\":\"{}\",\"datetime\":\"2024-01-01T00:00:00Z\",\"h\":{k}}}",
                        std::net::Ipv6Addr::from(e + 1),
                        std::net::Ipv6Addr::from((u128::from(net) << 64) | u128::from(u64::MAX))
                    ));
                }
                text
            })
            .collect();
        // After them, one /64 split by its low bits into more pieces than
        // three fences hold: they share a top half, so a search steps back
        // over them past the window the fences narrowed it to.
        let split = 0x2001_0db8_1000_0000u128 << 64;
        let piece = |j: u128| split | j << 58;
        for j in 0..3 * FENCE as u128 {
            lines.push(format!(
                r#"{{"begin":"{}","end":"{}","datetime":"2024-01-01T00:00:00Z","j":{j}}}"#,
                std::net::Ipv6Addr::from(piece(j)),
                std::net::Ipv6Addr::from(piece(j) + (1 << 57))
            ));
        }
        let h = history(&[&lines.join("\n")]);
        let ix = Index::from_image(Image::build(&h, state(1)).unwrap()).unwrap();
        assert!(ix.starts.fences.len() > 2 * FENCE && ix.starts.fences2.len() > 2);
        let t = Timestamp::parse("2024-02-01").unwrap();
        let mut queries = Vec::new();
        for j in 0..3 * FENCE as u128 + 1 {
            for ip in [
                piece(j),
                piece(j) + 5,
                piece(j) + (1 << 57) + 1,
                piece(j) - 1,
            ] {
                queries.push((IpKey(ip), t));
            }
        }
        for k in (0..3000u128).step_by(7).chain([0, 1, 2, 2999]) {
            let net = (0x2001_0db8_0000_0000u128 + k * 0x1_0003) << 64;
            for ip in [
                net,
                net + 5,
                net | u128::from(u64::MAX >> 1),
                net | (1 << 63),
                net - 1,
            ] {
                queries.push((IpKey(ip), t));
            }
        }
        let mut out = Vec::new();
        ix.at_many(&queries, &mut out);
        for (&(ip, t), got) in queries.iter().zip(&out) {
            let want = expected(&h, ip, t);
            assert_eq!(
                ix.at(ip, t).map(|m| (m.line.begin, m.line.end)),
                want,
                "{ip:?}"
            );
            assert_eq!(got.map(|m| (m.line.begin, m.line.end)), want, "{ip:?}");
        }
    }
}
