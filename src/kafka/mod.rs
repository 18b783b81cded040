//! Kafka topic enrichment (issue #4), layer by layer.
//!
//! - [`offsets`]: at-least-once bookkeeping: which input offsets may be committed
//!   once the outputs of every earlier message of the partition are acknowledged.
//! - [`stream`]: the consumer-group member: consume, enrich, produce, commit.

pub mod offsets;
pub mod stream;
