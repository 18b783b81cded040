//! At-least-once bookkeeping: which input offsets may be committed.
//!
//! An input message is *dispatched* when its output (the enriched message or its
//! dead letter) has been handed to the producer, and *acknowledged* when the broker
//! confirmed that output. The offset committed for a partition is the next offset
//! to read after a restart, so it may only move past a message once that message
//! and every earlier dispatched message of the partition are acknowledged: the
//! smallest unacknowledged offset, or one past the highest dispatched offset when
//! nothing is outstanding. A killed process then re-reads from the last commit:
//! duplicates are possible, loss is not. A delivery that fails stays outstanding,
//! holding its partition back, rather than being skipped.
//!
//! Offsets need not be contiguous (compacted topics, transaction markers); they
//! must increase within a partition, as Kafka delivers them.

use std::collections::{BTreeSet, HashMap};

/// A topic partition.
pub type Partition = (String, i32);

#[derive(Debug, Default, Clone)]
struct State {
    /// Dispatched, not yet acknowledged.
    outstanding: BTreeSet<i64>,
    /// One past the highest dispatched offset.
    end: Option<i64>,
    /// What was last handed out for commit.
    committed: Option<i64>,
}

impl State {
    fn committable(&self) -> Option<i64> {
        self.outstanding.first().copied().or(self.end)
    }
}

/// Why an event does not fit the bookkeeping (a bug in the caller, or a broker
/// that delivered offsets out of order).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OffsetError {
    #[error("{topic}[{partition}]: offset {offset} dispatched after offset {end_minus_one}")]
    NotIncreasing {
        topic: String,
        partition: i32,
        offset: i64,
        end_minus_one: i64,
    },
    #[error("{topic}[{partition}]: offset {offset} acknowledged but not outstanding")]
    NotOutstanding {
        topic: String,
        partition: i32,
        offset: i64,
    },
}

/// Outstanding offsets of every assigned partition.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<Partition, State>,
}

impl OffsetTracker {
    pub fn new() -> OffsetTracker {
        OffsetTracker::default()
    }

    /// The output of the message at `offset` was handed to the producer.
    pub fn dispatched(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(), OffsetError> {
        let state = self
            .partitions
            .entry((topic.to_string(), partition))
            .or_default();
        if let Some(end) = state.end {
            if offset < end {
                return Err(OffsetError::NotIncreasing {
                    topic: topic.to_string(),
                    partition,
                    offset,
                    end_minus_one: end - 1,
                });
            }
        }
        state.outstanding.insert(offset);
        state.end = Some(offset + 1);
        Ok(())
    }

    /// The broker acknowledged the output of the message at `offset`. Acks for a
    /// partition that was revoked meanwhile are ignored (`Ok(false)`).
    pub fn acknowledged(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<bool, OffsetError> {
        let Some(state) = self.partitions.get_mut(&(topic.to_string(), partition)) else {
            return Ok(false);
        };
        if !state.outstanding.remove(&offset) {
            return Err(OffsetError::NotOutstanding {
                topic: topic.to_string(),
                partition,
                offset,
            });
        }
        Ok(true)
    }

    /// The offset that may be committed now for a partition (the next offset to
    /// read), if any message was dispatched.
    pub fn committable(&self, topic: &str, partition: i32) -> Option<i64> {
        self.partitions
            .get(&(topic.to_string(), partition))
            .and_then(State::committable)
    }

    /// Offsets that advanced since the last call, to commit now (sorted).
    pub fn take_commits(&mut self) -> Vec<(Partition, i64)> {
        let mut out: Vec<(Partition, i64)> = self
            .partitions
            .iter_mut()
            .filter_map(|(tp, state)| {
                let c = state.committable()?;
                if state.committed == Some(c) {
                    return None;
                }
                state.committed = Some(c);
                Some((tp.clone(), c))
            })
            .collect();
        out.sort();
        out
    }

    /// Whether [`take_commits`](Self::take_commits) would hand anything out.
    pub fn has_new_commits(&self) -> bool {
        self.partitions
            .values()
            .any(|s| s.committable().is_some() && s.committable() != s.committed)
    }

    /// Commits handed out by [`take_commits`](Self::take_commits) that failed: hand
    /// them out again next time.
    pub fn forget_commits(&mut self, commits: &[(Partition, i64)]) {
        for (tp, _) in commits {
            if let Some(state) = self.partitions.get_mut(tp) {
                state.committed = None;
            }
        }
    }

    /// Messages dispatched and not yet acknowledged, over all partitions.
    pub fn outstanding(&self) -> usize {
        self.partitions.values().map(|s| s.outstanding.len()).sum()
    }

    /// Forgets a partition taken away by a rebalance: its in-flight work is
    /// dropped, and its new owner re-reads from the last commit.
    pub fn revoke(&mut self, topic: &str, partition: i32) {
        self.partitions.remove(&(topic.to_string(), partition));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commits_wait_for_every_earlier_ack() {
        let mut t = OffsetTracker::new();
        for o in [10, 11, 12] {
            t.dispatched("in", 0, o).unwrap();
        }
        assert_eq!(t.committable("in", 0), Some(10));
        assert!(t.acknowledged("in", 0, 11).unwrap());
        assert_eq!(t.committable("in", 0), Some(10));
        t.acknowledged("in", 0, 10).unwrap();
        assert_eq!(t.committable("in", 0), Some(12));
        t.acknowledged("in", 0, 12).unwrap();
        assert_eq!(t.committable("in", 0), Some(13));
        assert!(t.has_new_commits());
        let commits = t.take_commits();
        assert_eq!(commits, vec![(("in".to_string(), 0), 13)]);
        assert!(!t.has_new_commits());
        assert!(t.take_commits().is_empty(), "nothing advanced");
        // A failed commit is handed out again.
        t.forget_commits(&commits);
        assert!(t.has_new_commits());
        assert_eq!(t.take_commits(), commits);
        assert_eq!(t.outstanding(), 0);
    }

    #[test]
    fn partitions_are_independent_and_revocation_drops_work() {
        let mut t = OffsetTracker::new();
        t.dispatched("in", 0, 5).unwrap();
        t.dispatched("in", 1, 7).unwrap();
        t.acknowledged("in", 1, 7).unwrap();
        assert_eq!(t.committable("in", 0), Some(5));
        assert_eq!(t.committable("in", 1), Some(8));
        t.revoke("in", 0);
        assert_eq!(t.acknowledged("in", 0, 5), Ok(false));
        assert_eq!(t.committable("in", 0), None);
        assert_eq!(t.take_commits(), vec![(("in".to_string(), 1), 8)]);
    }

    #[test]
    fn misuse_is_reported() {
        let mut t = OffsetTracker::new();
        t.dispatched("in", 0, 5).unwrap();
        assert!(matches!(
            t.dispatched("in", 0, 5),
            Err(OffsetError::NotIncreasing { .. })
        ));
        assert!(matches!(
            t.acknowledged("in", 0, 6),
            Err(OffsetError::NotOutstanding { .. })
        ));
    }

    proptest! {
        /// Against a naive model: the commit never passes an unacknowledged
        /// message, and reaches one past the last message once all are acked.
        #[test]
        fn never_commits_past_an_unacknowledged_message(
            gaps in proptest::collection::vec(1i64..4, 1..60),
            order in proptest::collection::vec(any::<proptest::sample::Index>(), 0..60),
        ) {
            let mut t = OffsetTracker::new();
            let mut offsets = Vec::new();
            let mut o = 100;
            for g in gaps {
                o += g;
                offsets.push(o);
                t.dispatched("in", 3, o).unwrap();
            }
            let mut unacked: Vec<i64> = offsets.clone();
            let mut last_commit = None;
            for idx in order {
                if unacked.is_empty() {
                    break;
                }
                let offset = unacked.remove(idx.index(unacked.len()));
                t.acknowledged("in", 3, offset).unwrap();
                let c = t.committable("in", 3).unwrap();
                let naive = unacked.iter().min().copied().unwrap_or(offsets[offsets.len() - 1] + 1);
                prop_assert_eq!(c, naive);
                prop_assert!(last_commit.is_none_or(|l| l <= c), "commit went back");
                last_commit = Some(c);
            }
            if unacked.is_empty() {
                prop_assert_eq!(t.committable("in", 3), Some(offsets[offsets.len() - 1] + 1));
            }
        }
    }
}
