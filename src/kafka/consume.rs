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
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::FutureProducer;

use super::delivery::{handle_delivery, send, DeliveryFuture, Pending};
use super::group::{commit, GroupContext};
use super::offsets::OffsetTracker;
use super::settings::{client_config, KafkaConfig, KafkaSummary, Role, StartFrom, TimeSource};
use crate::enrich::{Counts, Enricher, TimeOrigin};
use crate::telemetry;
use crate::time::Timestamp;

/// Logs a run of failed fetches (broker down, network gone): the first error is
/// a warning, repeats are debug, and the recovery is said once, so a broker that
/// is down for an hour does not fill the log.
#[derive(Debug, Default)]
struct Outage {
    failures: u32,
    since: Option<std::time::Instant>,
}

impl Outage {
    fn failed(&mut self, e: &KafkaError) {
        if self.failures == 0 {
            tracing::warn!("cannot fetch from Kafka, retrying: {e}");
            self.since = Some(std::time::Instant::now());
        } else {
            tracing::debug!("fetch failed again: {e}");
        }
        self.failures = self.failures.saturating_add(1);
    }

    fn ended(&mut self) {
        if self.failures > 0 {
            let down = self.since.map(|s| s.elapsed()).unwrap_or_default();
            tracing::info!(
                "fetching again after {} failed attempts over {:.1} s",
                self.failures,
                down.as_secs_f64()
            );
            self.failures = 0;
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
    let consumer: StreamConsumer<GroupContext> = client_config(
        &config,
        Role::Consumer,
        &[("statistics.interval.ms", "5000")],
    )
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
    let producer: FutureProducer =
        client_config(&config, Role::Producer, &[("message.timeout.ms", "60000")])
            .set("enable.idempotence", "true")
            .create()?;
    consumer.subscribe(&[&config.input_topic])?;

    let mut summary = KafkaSummary::default();
    let mut in_flight: FuturesUnordered<DeliveryFuture> = FuturesUnordered::new();
    let mut ticker = tokio::time::interval(config.commit_interval);
    let mut out = Vec::with_capacity(4096);
    let lines = telemetry::LineCounters::new("kafka", enricher.dataset_names());
    let mut outage = Outage::default();
    tokio::pin!(shutdown);
    // Bounded in-flight work: stop fetching while too much is unacknowledged.
    const MAX_IN_FLIGHT: usize = 100_000;

    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            _ = ticker.tick() => {
                summary.commits += commit(&consumer, &tracker);
            }
            Some((p, result)) = in_flight.next(), if !in_flight.is_empty() => {
                handle_delivery(&producer, &tracker, &mut in_flight, &mut summary, p, result);
            }
            msg = consumer.recv(), if in_flight.len() < MAX_IN_FLIGHT => {
                let msg = match msg {
                    Ok(m) => m,
                    Err(e) => {
                        outage.failed(&e);
                        // A short pause only: librdkafka reconnects with its own
                        // exponential backoff, and the consumer must keep being
                        // polled (long pauses here were seen to stall it for good
                        // once the broker came back).
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                outage.ended();
                summary.consumed += 1;
                let kafka_time = msg.timestamp().to_millis().map(|ms| Timestamp::from_micros(ms.saturating_mul(1000)));
                let value = msg.payload().unwrap_or_default();
                let fallback = match kafka_time {
                    Some(t) => (t, TimeOrigin::Kafka),
                    None => (Timestamp::now(), TimeOrigin::Read),
                };
                out.clear();
                let mut counts = Counts::default();
                let result = enricher.enrich_one(value, fallback, config.time_source == TimeSource::Kafka, &mut out, &mut counts);
                lines.add(counts.line_counts());
                summary.counts.add(&counts);
                let (to, payload, headers) = match result {
                    Ok(_) => {
                        summary.enriched += 1;
                        (Some(config.output_topic.clone()), std::mem::take(&mut out), msg.headers().map(|h| h.detach()))
                    }
                    Err(reason) => {
                        let reason = reason.to_string();
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
    // The last commit decides where the next run starts: retry it a few times
    // (a failure leaves duplicates for the next run, never a loss).
    for attempt in 0..5u32 {
        let pending = tracker.lock().map(|t| t.has_new_commits()).unwrap_or(false);
        if !pending {
            break;
        }
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        summary.commits += commit(&consumer, &tracker);
    }
    consumer.unsubscribe();
    Ok(summary)
}

/// Fast checks of the loop against librdkafka's in-process mock cluster. The
/// proof against a real broker is in `tests/kafka.rs`.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrich::{DataSet, EnrichOptions};
    use crate::history::{History, Interner, SnapshotMeta};
    use crate::index::Index;
    use crate::logline::{LineParser, ParserConfig};
    use crate::snapshot::SnapshotFile;
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::BaseConsumer;
    use rdkafka::message::Headers;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::types::RDKafkaRespErr;

    fn enricher() -> Arc<Enricher> {
        let f = SnapshotFile::from_lines(
            "t",
            r#"{"begin":"1.2.3.0","end":"1.2.3.255","datetime":"2024-01-01T00:00:00Z","cc":"AU"}"#,
        )
        .unwrap();
        let mut h = History::default();
        h.merge(
            &mut Interner::default(),
            &f,
            SnapshotMeta::of_file(&f),
            false,
        )
        .unwrap();
        let geo = DataSet {
            name: "geo".into(),
            index: Arc::new(arc_swap::ArcSwap::from_pointee(Index::new(h))),
        };
        Arc::new(Enricher::new(
            LineParser::new(ParserConfig::default()).unwrap(),
            vec![geo],
            EnrichOptions::default(),
        ))
    }

    fn config(brokers: &str, group: &str) -> KafkaConfig {
        KafkaConfig {
            brokers: brokers.into(),
            input_topic: "in".into(),
            output_topic: "out".into(),
            dead_letter_topic: Some("dead".into()),
            group_id: group.into(),
            // Rejoining a group must not wait out the default 45 s session.
            properties: vec![
                ("session.timeout.ms".into(), "6000".into()),
                ("heartbeat.interval.ms".into(), "500".into()),
            ],
            start_from: StartFrom::Beginning,
            time_source: TimeSource::Line,
            commit_interval: Duration::from_millis(200),
            drain_timeout: Duration::from_secs(10),
        }
    }

    fn produce(brokers: &str, lines: &[&str]) {
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .unwrap();
        for (i, line) in lines.iter().enumerate() {
            let key = format!("k{i}");
            let headers = OwnedHeaders::new().insert(Header {
                key: "origin",
                value: Some("test"),
            });
            p.send(
                BaseRecord::to("in")
                    .key(&key)
                    .payload(*line)
                    .headers(headers),
            )
            .unwrap();
        }
        p.flush(Duration::from_secs(10)).unwrap();
    }

    static READERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    /// Every message of `topic` as (key, value, headers), waiting for `want`.
    fn read_all(brokers: &str, topic: &str, want: usize) -> Vec<(String, String, Vec<String>)> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            // A fresh group each time: no waiting for an old member's session.
            .set(
                "group.id",
                format!(
                    "reader-{topic}-{}",
                    READERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                ),
            )
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        c.subscribe(&[topic]).unwrap();
        let mut out = Vec::new();
        let started = std::time::Instant::now();
        while out.len() < want && started.elapsed() < Duration::from_secs(30) {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| {
                                format!(
                                    "{}={}",
                                    h.key,
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((
                    String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
                    String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                    headers,
                ));
            }
        }
        out
    }

    /// Runs the loop until the output topic holds `outputs` messages, then shuts
    /// it down.
    async fn run_until_outputs(brokers: &str, group: &str, outputs: usize) -> KafkaSummary {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let b = brokers.to_string();
        let watcher = tokio::task::spawn_blocking(move || {
            let got = read_all(&b, "out", outputs);
            let _ = tx.send(());
            got.len()
        });
        let summary = run(config(brokers, group), enricher(), async {
            let _ = rx.await;
        })
        .await
        .unwrap();
        assert_eq!(watcher.await.unwrap(), outputs, "{summary:?}");
        summary
    }

    fn cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
        let c = MockCluster::new(1).unwrap();
        c.create_topic("in", 2, 1).unwrap();
        c.create_topic("out", 2, 1).unwrap();
        c.create_topic("dead", 1, 1).unwrap();
        c
    }

    const GOOD: &str =
        r#"1.2.3.4 - - [01/Mar/2024:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "ua""#;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn enriches_keeps_key_and_headers_dead_letters_and_commits() {
        let c = cluster();
        let brokers = c.bootstrap_servers();
        produce(&brokers, &[GOOD, "not a log line", GOOD]);
        let summary = run_until_outputs(&brokers, "g", 2).await;
        assert_eq!(
            (summary.consumed, summary.enriched, summary.dead_lettered),
            (3, 2, 1)
        );

        let out = read_all(&brokers, "out", 2);
        for (key, value, headers) in &out {
            assert!(key == "k0" || key == "k2", "{key}");
            let v: serde_json::Value = serde_json::from_str(value).unwrap();
            assert_eq!(v["geo"]["cc"], "AU");
            assert_eq!(headers, &vec!["origin=test".to_string()]);
        }
        let dead = read_all(&brokers, "dead", 1);
        assert_eq!(dead.len(), 1);
        let (key, value, headers) = &dead[0];
        assert_eq!((key.as_str(), value.as_str()), ("k1", "not a log line"));
        assert!(
            headers.iter().any(|h| h.starts_with("whipstream-reason=")),
            "{headers:?}"
        );
        assert!(
            headers
                .iter()
                .any(|h| h.starts_with("whipstream-source=in[")),
            "{headers:?}"
        );

        // Shutdown committed every offset: the same group resumes after them.
        produce(&brokers, &[GOOD]);
        let again = run_until_outputs(&brokers, "g", 3).await;
        assert_eq!(again.consumed, 1, "{again:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_commits_are_retried() {
        let c = cluster();
        let brokers = c.bootstrap_servers();
        // The first commits fail: the offsets must be committed again later.
        c.request_errors(
            rdkafka::types::RDKafkaApiKey::OffsetCommit,
            &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE; 3],
        );
        produce(&brokers, &[GOOD, GOOD]);
        let summary = run_until_outputs(&brokers, "g2", 2).await;
        assert_eq!(summary.consumed, 2);
        // The group resumes after both: their offsets were committed in the end.
        produce(&brokers, &[GOOD]);
        let again = run_until_outputs(&brokers, "g2", 3).await;
        assert_eq!(again.consumed, 1, "{again:?}");
    }
}
