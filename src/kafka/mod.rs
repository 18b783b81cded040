//! Kafka topic enrichment: a consumer-group member that turns a topic of raw
//! lines into a topic of enriched JSON, at least once. Split by concept:
//!
//! - [`settings`]: the checked settings and the librdkafka client settings.
//! - [`offsets`]: at-least-once bookkeeping: which input offsets may be committed
//!   once the outputs of every earlier message of the partition are acknowledged.
//! - [`group`]: the consumer's context (rebalance, lag) and commits.
//! - [`delivery`]: outputs in flight, acknowledged or sent again with backoff.
//! - [`consume`]: the loop: consume, enrich, produce, commit; drain on stop.

pub mod consume;
pub mod delivery;
pub mod group;
pub mod offsets;
pub mod settings;

pub use consume::run;
pub use settings::{parse_property, KafkaConfig, KafkaSummary, StartFrom, TimeSource};
