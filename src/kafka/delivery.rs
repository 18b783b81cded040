//! Delivery of outputs, at least once: an output is kept whole while in flight,
//! acknowledged to the [`OffsetTracker`] when the broker has it, and sent again
//! with backoff when it fails (holding its partition's commits meanwhile).

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::offsets::OffsetTracker;
use super::settings::KafkaSummary;
use crate::telemetry;

/// One output in flight, kept whole so that it can be sent again.
pub(super) struct Pending {
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) offset: i64,
    pub(super) to: String,
    pub(super) key: Option<Vec<u8>>,
    pub(super) value: Vec<u8>,
    pub(super) headers: Option<OwnedHeaders>,
    pub(super) attempt: u32,
}

pub(super) type DeliveryFuture =
    std::pin::Pin<Box<dyn Future<Output = (Pending, Result<(), KafkaError>)> + Send>>;

pub(super) fn send(producer: &FutureProducer, p: Pending) -> DeliveryFuture {
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

/// Acknowledges a delivered output, or sends a failed one again.
pub(super) fn handle_delivery(
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
            telemetry::kafka_delivery_retry();
            tracing::warn!("delivery to {} failed (sending again): {e}", p.to);
            p.attempt += 1;
            in_flight.push(send(producer, p));
        }
    }
}
