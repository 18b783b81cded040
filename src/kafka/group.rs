//! The consumer-group side: the consumer's context (lag statistics, placing new
//! partitions for `--from TIME`, committing the done part of revoked partitions
//! on a rebalance) and the periodic commit of what the [`OffsetTracker`] allows.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::offsets::OffsetTracker;
use crate::telemetry;

/// Consumer context: commits the done part of revoked partitions and, for
/// `--from TIME`, places new partitions at the offsets for that time.
pub(super) struct GroupContext {
    pub(super) tracker: Arc<Mutex<OffsetTracker>>,
    pub(super) start_time_ms: Option<i64>,
}

impl ClientContext for GroupContext {
    /// Consumer lag per partition, from librdkafka's periodic statistics.
    fn stats(&self, statistics: Statistics) {
        for (topic, t) in &statistics.topics {
            for (&partition, p) in &t.partitions {
                // -1 is librdkafka's "unknown" (e.g. the internal UA partition).
                if partition >= 0 && p.consumer_lag >= 0 {
                    telemetry::kafka_consumer_lag(topic, partition, p.consumer_lag);
                }
            }
        }
    }

    /// Global errors (broker down...) come back through `recv` as well, where the
    /// loop logs them with its backoff; logging both would say everything twice.
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!("librdkafka: {error}: {reason}");
    }
}

const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

impl GroupContext {
    /// Partitions of `tpl` without a committed offset start at the first message
    /// at or after the start time.
    fn place_new_partitions(
        &self,
        consumer: &BaseConsumer<Self>,
        tpl: &mut TopicPartitionList,
        ms: i64,
    ) {
        let committed = match consumer.committed_offsets(tpl.clone(), BROKER_TIMEOUT) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(
                    "cannot read committed offsets, starting per auto.offset.reset: {e}"
                );
                return;
            }
        };
        let mut times = TopicPartitionList::new();
        for e in committed.elements() {
            if !matches!(e.offset(), Offset::Offset(_)) {
                let _ = times.add_partition_offset(e.topic(), e.partition(), Offset::Offset(ms));
            }
        }
        if times.count() == 0 {
            return;
        }
        match consumer.offsets_for_times(times, BROKER_TIMEOUT) {
            Ok(found) => {
                for e in found.elements() {
                    // No message at or after the time: start at the end.
                    let offset = match e.offset() {
                        Offset::Offset(o) => Offset::Offset(o),
                        _ => Offset::End,
                    };
                    let _ = tpl.set_partition_offset(e.topic(), e.partition(), offset);
                }
            }
            Err(e) => {
                tracing::warn!("offsets for times failed, starting per auto.offset.reset: {e}")
            }
        }
    }

    /// Commits the done part of revoked partitions and forgets their work.
    fn revoke(&self, consumer: &BaseConsumer<Self>, revoked: &TopicPartitionList) {
        let Ok(mut tracker) = self.tracker.lock() else {
            return;
        };
        let mut tpl = TopicPartitionList::new();
        for e in revoked.elements() {
            if let Some(o) = tracker.committable(e.topic(), e.partition()) {
                let _ = tpl.add_partition_offset(e.topic(), e.partition(), Offset::Offset(o));
            }
            tracker.revoke(e.topic(), e.partition());
        }
        if tpl.count() > 0 {
            // A commit during a revoke can fail (e.g. RebalanceInProgress); the new
            // owner then re-reads from the previous commit: duplicates, no loss.
            if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                tracing::warn!("commit of revoked partitions failed: {e}");
            }
        }
    }
}

impl ConsumerContext for GroupContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Some(ms) = self.start_time_ms {
                    self.place_new_partitions(consumer, tpl, ms);
                }
                tracing::info!("assigned {} partition(s)", tpl.count());
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.revoke(consumer, tpl);
                tracing::info!("revoked {} partition(s)", tpl.count());
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
            other => {
                tracing::warn!("rebalance error: {other:?}");
                consumer.unassign()
            }
        };
        if let Err(e) = result {
            tracing::warn!("rebalance: {e}");
        }
    }
}

/// Commits what the tracker allows. Synchronous, so that a failure is seen and
/// the offsets handed out again (rdkafka's stream consumer did not report async
/// commit results in tests); run off the async workers, it costs one round trip
/// per commit interval, not per message.
pub(super) fn commit(
    consumer: &StreamConsumer<GroupContext>,
    tracker: &Mutex<OffsetTracker>,
) -> u64 {
    let commits = match tracker.lock() {
        Ok(mut t) => t.take_commits(),
        Err(_) => return 0,
    };
    if commits.is_empty() {
        return 0;
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), offset) in &commits {
        let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset));
    }
    let result = tokio::task::block_in_place(|| consumer.commit(&tpl, CommitMode::Sync));
    telemetry::kafka_commit(result.is_ok());
    match result {
        Ok(()) => 1,
        Err(e) => {
            tracing::warn!("offset commit failed (will retry): {e}");
            // Hand the same offsets out again at the next commit.
            if let Ok(mut t) = tracker.lock() {
                t.forget_commits(&commits);
            }
            0
        }
    }
}
