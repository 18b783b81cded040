//! Kafka settings, checked: brokers, topics, group, where a new group starts,
//! which time a message is enriched at, and the librdkafka client settings
//! built from them (a property may be scoped to the consumer or the producer).

use std::time::Duration;

use rdkafka::config::ClientConfig;

use crate::enrich::Counts;
use crate::time::Timestamp;
use crate::value::UnknownValue;

/// Where a new consumer group starts reading (partitions with a committed
/// offset always resume from it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartFrom {
    Beginning,
    End,
    /// The first message whose timestamp is at or after this instant (offsets for
    /// times): re-enrich an old topic from a day on.
    Time(Timestamp),
}

/// A `--from` that is neither beginning, end nor a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected beginning, end or a time: {0}")]
pub struct BadStart(String);

impl std::str::FromStr for StartFrom {
    type Err = BadStart;
    /// `beginning` (`earliest`), `end` (`latest`) or a time.
    fn from_str(s: &str) -> Result<StartFrom, BadStart> {
        match s {
            "beginning" | "earliest" => Ok(StartFrom::Beginning),
            "end" | "latest" => Ok(StartFrom::End),
            _ => Timestamp::parse(s)
                .map(StartFrom::Time)
                .map_err(|e| BadStart(e.to_string())),
        }
    }
}

/// Which time a message without a time of its own is enriched at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSource {
    /// The line's own time; without one, `--at`, else the message timestamp.
    Line,
    /// The Kafka message timestamp for every message.
    Kafka,
}

impl std::str::FromStr for TimeSource {
    type Err = UnknownValue;
    fn from_str(s: &str) -> Result<TimeSource, UnknownValue> {
        crate::value::pick(
            "time source",
            s,
            &[("line", TimeSource::Line), ("kafka", TimeSource::Kafka)],
        )
    }
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

impl KafkaConfig {
    /// How often done offsets are committed.
    pub const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
    /// How long a graceful stop waits for deliveries.
    pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
}

/// A `--kafka-property` without `=`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?}: expected KEY=VALUE")]
pub struct BadProperty(String);

/// A `--kafka-property` argument: `KEY=VALUE`.
pub fn parse_property(p: &str) -> Result<(String, String), BadProperty> {
    let (key, value) = p
        .split_once('=')
        .ok_or_else(|| BadProperty(p.to_string()))?;
    Ok((key.trim().to_string(), value.trim().to_string()))
}

/// Counts of a Kafka run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KafkaSummary {
    pub consumed: u64,
    pub enriched: u64,
    pub dead_lettered: u64,
    pub redelivered: u64,
    pub commits: u64,
    /// The lines' counts (matches, times, before the first snapshot).
    pub counts: Counts,
}

/// Which client a configuration is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    Consumer,
    Producer,
}

/// `defaults` are ours and yield to `--kafka-property`; settings the delivery
/// guarantee depends on are set after this by the caller. A property named
/// `consumer.KEY` or `producer.KEY` is for that client only (librdkafka warns
/// about consumer settings given to a producer, and the other way round).
pub(super) fn client_config(
    c: &KafkaConfig,
    role: Role,
    defaults: &[(&str, &str)],
) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &c.brokers);
    for (k, v) in defaults {
        cfg.set(*k, *v);
    }
    for (k, v) in &c.properties {
        let key = match (k.split_once('.'), role) {
            (Some(("consumer", rest)), Role::Consumer)
            | (Some(("producer", rest)), Role::Producer) => rest,
            (Some(("consumer" | "producer", _)), _) => continue,
            _ => k.as_str(),
        };
        cfg.set(key, v);
    }
    cfg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(brokers: &str, group: &str) -> KafkaConfig {
        KafkaConfig {
            brokers: brokers.into(),
            input_topic: "in".into(),
            output_topic: "out".into(),
            dead_letter_topic: None,
            group_id: group.into(),
            properties: Vec::new(),
            start_from: StartFrom::Beginning,
            time_source: TimeSource::Line,
            commit_interval: KafkaConfig::COMMIT_INTERVAL,
            drain_timeout: KafkaConfig::DRAIN_TIMEOUT,
        }
    }

    #[test]
    fn scoped_properties_reach_one_client() {
        let mut c = config("b:9092", "g");
        c.properties = vec![
            ("consumer.session.timeout.ms".into(), "7000".into()),
            ("producer.linger.ms".into(), "20".into()),
            ("client.id".into(), "x".into()),
        ];
        let consumer = client_config(&c, Role::Consumer, &[]);
        let producer = client_config(&c, Role::Producer, &[]);
        assert_eq!(consumer.get("session.timeout.ms"), Some("7000"));
        assert_eq!(consumer.get("linger.ms"), None);
        assert_eq!(producer.get("linger.ms"), Some("20"));
        assert_eq!(producer.get("session.timeout.ms"), None);
        assert_eq!(
            (consumer.get("client.id"), producer.get("client.id")),
            (Some("x"), Some("x"))
        );
    }
}
