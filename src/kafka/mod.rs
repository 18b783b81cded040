//! Kafka topic enrichment (issue #4), layer by layer.
//!
//! - [`offsets`]: at-least-once bookkeeping: which input offsets may be committed
//!   once the outputs of every earlier message of the partition are acknowledged.
//!
//! The consumer/producer plumbing (rdkafka) builds on these parts; it is not
//! written yet.

pub mod offsets;
