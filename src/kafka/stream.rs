//! The Kafka enrichment loop: a consumer-group member that reads raw lines from an
//! input topic and writes enriched JSON to an output topic, at least once.
//!
//! Each input message yields exactly one output message: the enriched object (key
//! and headers kept) on the output topic, or the original value on the dead-letter
//! topic with the reason in headers. Input offsets are committed only through the
//! [`OffsetTracker`]: a message's offset is passed only when its output and every
//! earlier output of its partition are acknowledged by the broker. A delivery
//! that fails is sent again (with backoff) and holds its partition meanwhile. On a
//! rebalance the done part of revoked partitions is committed and their in-flight
//! work is forgotten; on shutdown, fetching stops, in-flight outputs are awaited,
//! offsets committed, and the group is left.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::offsets::OffsetTracker;
use crate::enrich::Enricher;
use crate::time::Instant;

/// Where a new consumer group starts reading (partitions with a committed
/// offset always resume from it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartFrom {
    Beginning,
    End,
    /// The first message whose timestamp is at or after this instant (offsets for
    /// times): re-enrich an old topic from a day on.
    Time(Instant),
}

/// Which time a message without a time of its own is enriched at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSource {
    /// The line's own time; without one, `--at`, else the message timestamp.
    Line,
    /// The Kafka message timestamp for every message.
    Kafka,
}

/// Validated Kafka settings.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    pub brokers: String,
    pub input_topic: String,
    pub output_topic: String,
    pub dead_letter_topic: Option<String>,
    pub group_id: String,
    /// Any librdkafka settings (TLS, SASL, compression, batching...).
    pub properties: Vec<(String, String)>,
    pub start_from: StartFrom,
    pub time_source: TimeSource,
    pub commit_interval: Duration,
    /// How long shutdown waits for in-flight deliveries.
    pub drain_timeout: Duration,
}

/// Counts of a Kafka run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KafkaSummary {
    pub consumed: u64,
    pub enriched: u64,
    pub dead_lettered: u64,
    pub redelivered: u64,
    pub commits: u64,
}

/// Consumer context: commits the done part of revoked partitions and, for
/// `--from TIME`, places new partitions at the offsets for that time.
struct GroupContext {
    tracker: Arc<Mutex<OffsetTracker>>,
    start_time_ms: Option<i64>,
}

impl ClientContext for GroupContext {}

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

/// One output in flight, kept whole so that it can be sent again.
struct Pending {
    topic: String,
    partition: i32,
    offset: i64,
    to: String,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    headers: Option<OwnedHeaders>,
    attempt: u32,
}

fn client_config(c: &KafkaConfig) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &c.brokers);
    for (k, v) in &c.properties {
        cfg.set(k, v);
    }
    cfg
}

type DeliveryFuture =
    std::pin::Pin<Box<dyn Future<Output = (Pending, Result<(), KafkaError>)> + Send>>;

fn send(producer: &FutureProducer, p: Pending) -> DeliveryFuture {
    let producer = producer.clone();
    Box::pin(async move {
        if p.attempt > 0 {
            // Backoff before sending again: 100 ms, doubling, at most 5 s.
            let ms = (100u64 << p.attempt.min(6)).min(5000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let mut record = FutureRecord::to(&p.to).payload(&p.value);
        if let Some(k) = &p.key {
            record = record.key(k);
        }
        if let Some(h) = &p.headers {
            record = record.headers(h.clone());
        }
        let result = match producer.send(record, Duration::from_secs(30)).await {
            Ok(_) => Ok(()),
            Err((e, _)) => Err(e),
        };
        (p, result)
    })
}

fn commit(
    consumer: &StreamConsumer<GroupContext>,
    tracker: &Mutex<OffsetTracker>,
    mode: CommitMode,
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
    match consumer.commit(&tpl, mode) {
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

/// Runs until `shutdown` completes; then drains, commits and leaves the group.
pub async fn run(
    config: KafkaConfig,
    enricher: Arc<Enricher>,
    shutdown: impl Future<Output = ()>,
) -> Result<KafkaSummary, KafkaError> {
    let tracker = Arc::new(Mutex::new(OffsetTracker::new()));
    let consumer: StreamConsumer<GroupContext> = client_config(&config)
        .set("group.id", &config.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            match config.start_from {
                StartFrom::Beginning | StartFrom::Time(_) => "earliest",
                StartFrom::End => "latest",
            },
        )
        .create_with_context(GroupContext {
            tracker: tracker.clone(),
            start_time_ms: match config.start_from {
                StartFrom::Time(t) => Some(t.as_micros().div_euclid(1000)),
                _ => None,
            },
        })?;
    let producer: FutureProducer = client_config(&config)
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000")
        .create()?;
    consumer.subscribe(&[&config.input_topic])?;

    let mut summary = KafkaSummary::default();
    let mut in_flight: FuturesUnordered<DeliveryFuture> = FuturesUnordered::new();
    let mut ticker = tokio::time::interval(config.commit_interval);
    let mut out = Vec::with_capacity(4096);
    tokio::pin!(shutdown);
    // Bounded in-flight work: stop fetching while too much is unacknowledged.
    const MAX_IN_FLIGHT: usize = 100_000;

    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = ticker.tick() => {
                summary.commits += commit(&consumer, &tracker, CommitMode::Async);
            }
            Some((p, result)) = in_flight.next(), if !in_flight.is_empty() => {
                handle_delivery(&producer, &tracker, &mut in_flight, &mut summary, p, result);
            }
            msg = consumer.recv(), if in_flight.len() < MAX_IN_FLIGHT => {
                let msg = match msg {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!("consume error (retrying): {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                summary.consumed += 1;
                let kafka_time = msg.timestamp().to_millis().map(|ms| Instant::from_micros(ms.saturating_mul(1000)));
                let value = msg.payload().unwrap_or_default();
                let fallback = kafka_time.unwrap_or_else(Instant::now);
                out.clear();
                let result = enricher.enrich_one(value, fallback, config.time_source == TimeSource::Kafka, &mut out);
                let (to, payload, headers) = match result {
                    Ok(_) => {
                        summary.enriched += 1;
                        (Some(config.output_topic.clone()), std::mem::take(&mut out), msg.headers().map(|h| h.detach()))
                    }
                    Err(reason) => {
                        summary.dead_lettered += 1;
                        let source = format!("{}[{}]@{}", msg.topic(), msg.partition(), msg.offset());
                        let mut h = msg.headers().map(|h| h.detach()).unwrap_or_else(OwnedHeaders::new);
                        h = h
                            .insert(Header { key: "whipstream-reason", value: Some(reason.as_bytes()) })
                            .insert(Header { key: "whipstream-source", value: Some(source.as_bytes()) });
                        match &config.dead_letter_topic {
                            Some(t) => (Some(t.clone()), value.to_vec(), Some(h)),
                            None => {
                                tracing::warn!(source = %source, reason = %reason, "dead letter (no --dead-letter-topic)");
                                (None, Vec::new(), None)
                            }
                        }
                    }
                };
                let (topic, partition, offset) = (msg.topic().to_string(), msg.partition(), msg.offset());
                if let Ok(mut t) = tracker.lock() {
                    if let Err(e) = t.dispatched(&topic, partition, offset) {
                        tracing::warn!("{e}");
                    }
                    if to.is_none() {
                        // Logged above; nothing to wait for.
                        let _ = t.acknowledged(&topic, partition, offset);
                    }
                }
                if let Some(to) = to {
                    in_flight.push(send(&producer, Pending {
                        topic, partition, offset, to,
                        key: msg.key().map(<[u8]>::to_vec),
                        value: payload,
                        headers,
                        attempt: 0,
                    }));
                }
            }
        }
    }

    // Graceful stop: no more fetching; deliver what is in flight, commit, leave.
    let drain = async {
        while let Some((p, result)) = in_flight.next().await {
            handle_delivery(&producer, &tracker, &mut in_flight, &mut summary, p, result);
        }
    };
    if tokio::time::timeout(config.drain_timeout, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            "shutdown: deliveries still in flight after {:?}; their offsets stay uncommitted",
            config.drain_timeout
        );
    }
    summary.commits += commit(&consumer, &tracker, CommitMode::Sync);
    consumer.unsubscribe();
    Ok(summary)
}

fn handle_delivery(
    producer: &FutureProducer,
    tracker: &Mutex<OffsetTracker>,
    in_flight: &mut FuturesUnordered<DeliveryFuture>,
    summary: &mut KafkaSummary,
    mut p: Pending,
    result: Result<(), KafkaError>,
) {
    match result {
        Ok(()) => {
            if let Ok(mut t) = tracker.lock() {
                // A partition revoked meanwhile is no longer tracked: fine.
                if let Err(e) = t.acknowledged(&p.topic, p.partition, p.offset) {
                    tracing::debug!("{e}");
                }
            }
        }
        Err(e) => {
            summary.redelivered += 1;
            tracing::warn!("delivery to {} failed (sending again): {e}", p.to);
            p.attempt += 1;
            in_flight.push(send(producer, p));
        }
    }
}
