//! Time buckets whose size follows the log's span: hours for a few days, days
//! for months, weeks (from Monday, UTC) for longer.
//!
//! The span is known only at the end of a stream, so counting starts in hours
//! and every series is coarsened in place when the span outgrows its step.
//! Coarser buckets are unions of finer ones (a day is 24 whole hours, a week 7
//! whole days), so coarsening loses nothing: the result equals counting in the
//! final step from the start. Memory is bounded by the number of buckets, which
//! the step keeps to a few hundred for any span of real logs.

use std::collections::BTreeMap;

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;
const WEEK: i64 = 7 * DAY;

/// Bucket size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    #[default]
    Hour,
    Day,
    Week,
}

impl Step {
    /// The step for a span (microseconds from the first to the last event):
    /// at most 72 hours in hours, at most 26 weeks in days, else weeks.
    pub fn for_span(span: i64) -> Step {
        if span < 3 * DAY {
            Step::Hour
        } else if span < 26 * WEEK {
            Step::Day
        } else {
            Step::Week
        }
    }

    pub fn micros(self) -> i64 {
        match self {
            Step::Hour => HOUR,
            Step::Day => DAY,
            Step::Week => WEEK,
        }
    }

    /// The start of the bucket holding `t` (microseconds since the epoch).
    pub fn start(self, t: i64) -> i64 {
        match self {
            Step::Hour | Step::Day => t - t.rem_euclid(self.micros()),
            // 1970-01-05 was a Monday.
            Step::Week => t - (t - 4 * DAY).rem_euclid(WEEK),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Step::Hour => "hour",
            Step::Day => "day",
            Step::Week => "week",
        }
    }
}

/// The span of event times seen so far, and the step it calls for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    range: Option<(i64, i64)>,
    step: Step,
}

impl Clock {
    /// Notes an event time; returns the new step when the span outgrew the
    /// current one (every series must then be coarsened before adding).
    pub fn see(&mut self, t: i64) -> Option<Step> {
        let (lo, hi) = match self.range {
            None => (t, t),
            Some((lo, hi)) => (lo.min(t), hi.max(t)),
        };
        self.range = Some((lo, hi));
        let step = Step::for_span(hi.saturating_sub(lo)).max(self.step);
        (step != self.step).then(|| {
            self.step = step;
            step
        })
    }

    pub fn step(&self) -> Step {
        self.step
    }

    /// Every bucket start from the first event's to the last's.
    pub fn buckets(&self) -> Vec<i64> {
        let Some((lo, hi)) = self.range else {
            return Vec::new();
        };
        let (first, last) = (self.step.start(lo), self.step.start(hi));
        (0..)
            .map(|i| first + i * self.step.micros())
            .take_while(|&b| b <= last)
            .collect()
    }
}

/// Something counted per bucket that can be merged into coarser buckets.
pub trait Merge: Default {
    fn merge(&mut self, other: Self);
}

impl Merge for u64 {
    fn merge(&mut self, other: u64) {
        *self += other;
    }
}

/// Values per bucket start.
#[derive(Clone, Debug)]
pub struct Series<T>(pub BTreeMap<i64, T>);

impl<T> Default for Series<T> {
    fn default() -> Self {
        Series(BTreeMap::new())
    }
}

impl<T: Merge> Series<T> {
    pub fn entry(&mut self, bucket: i64) -> &mut T {
        self.0.entry(bucket).or_default()
    }

    /// Re-buckets in `step` (never finer than the current buckets).
    pub fn coarsen(&mut self, step: Step) {
        let old = std::mem::take(&mut self.0);
        for (b, v) in old {
            self.entry(step.start(b)).merge(v);
        }
    }

    /// The values at `buckets`, with `T::default()` where there is none.
    pub fn aligned<'a>(&'a self, buckets: &'a [i64]) -> impl Iterator<Item = Option<&'a T>> {
        buckets.iter().map(|b| self.0.get(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_the_span() {
        assert_eq!(Step::for_span(DAY), Step::Hour);
        assert_eq!(Step::for_span(60 * DAY), Step::Day);
        assert_eq!(Step::for_span(700 * DAY), Step::Week);
        // 2024-03-06 (a Wednesday) 13:30 UTC.
        let t = 1_709_731_800_000_000;
        assert_eq!(Step::Hour.start(t), 1_709_730_000_000_000);
        assert_eq!(Step::Day.start(t), 1_709_683_200_000_000);
        // Monday 2024-03-04.
        assert_eq!(Step::Week.start(t), 1_709_510_400_000_000);
    }

    /// Coarsening while streaming gives the counts of the final step.
    #[test]
    fn coarsening_equals_counting_in_the_final_step() {
        let times: Vec<i64> = (0..500)
            .map(|i| i * 10 * HOUR + (i % 13) * 60_000_000)
            .collect();
        let mut clock = Clock::default();
        let mut streamed = Series::<u64>::default();
        for &t in &times {
            if let Some(step) = clock.see(t) {
                streamed.coarsen(step);
            }
            *streamed.entry(clock.step().start(t)) += 1;
        }
        assert_eq!(clock.step(), Step::Week);
        let mut direct = Series::<u64>::default();
        for &t in &times {
            *direct.entry(Step::Week.start(t)) += 1;
        }
        assert_eq!(streamed.0, direct.0);
        let buckets = clock.buckets();
        // Weeks from Monday 1969-12-29 to the one holding day 207 (4,990 h).
        assert_eq!(buckets.len(), 31);
        let total: u64 = streamed.aligned(&buckets).flatten().sum();
        assert_eq!(total, 500);
    }
}
