//! Kafka enrichment against a real Kafka-protocol broker (Tansu), started by the
//! project's own `scripts/kafka-broker.sh` on 127.0.0.1 with a free port.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde_json::Value;

struct Broker {
    state: tempfile::TempDir,
    addr: String,
}

fn script() -> PathBuf {
    manifest_dir().join("scripts/kafka-broker.sh")
}

impl Broker {
    fn start() -> Broker {
        let state = tempfile::tempdir().unwrap();
        let out = Command::new("bash")
            .arg(script())
            .args(["start", s(state.path())])
            .output()
            .expect("run kafka-broker.sh");
        assert!(
            out.status.success(),
            "broker start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let addr = text
            .lines()
            .find_map(|l| l.strip_prefix("BROKER="))
            .expect("BROKER= line")
            .to_string();
        Broker { state, addr }
    }

    fn topic(&self, name: &str, partitions: u32) {
        let status = Command::new("bash")
            .arg(script())
            .args(["topic", name, &partitions.to_string(), s(self.state.path())])
            .status()
            .unwrap();
        assert!(status.success(), "create topic {name}");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .args(["stop", s(self.state.path())])
            .status();
    }
}

fn produce(addr: &str, topic: &str, lines: &[&str]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for (i, line) in lines.iter().enumerate() {
        let key = i.to_string();
        let mut record = BaseRecord::to(topic).key(&key).payload(*line);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).unwrap();
}

/// Consumes `topic` from the beginning until `want` distinct keys were seen or
/// the time is up; returns messages in arrival order as (partition, key, value).
fn consume(addr: &str, topic: &str, want: usize, limit: Duration) -> Vec<(i32, String, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", format!("checker-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let started = Instant::now();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    while seen.len() < want && started.elapsed() < limit {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            seen.insert(key.clone());
            out.push((m.partition(), key, value));
        }
    }
    out
}

#[test]
fn accept_log_through_a_real_broker_matches_the_reference() {
    let broker = Broker::start();
    broker.topic("raw", 4);
    broker.topic("enriched", 4);
    broker.topic("dead", 1);
    let log = std::fs::read_to_string(shared_data().join("logs/accept-apache_logs.log")).unwrap();
    let mut lines: Vec<&str> = log.lines().collect();
    lines.push("this line is no access log line");
    produce(&broker.addr, "raw", &lines);

    let db = geoip_store();
    let child = Command::new(bin())
        .args([
            "enrich",
            "--db",
            s(db),
            "--no-line",
            "--kafka-brokers",
            &broker.addr,
            "--input-topic",
            "raw",
            "--output-topic",
            "enriched",
            "--dead-letter-topic",
            "dead",
            "--group-id",
            "whipstream-test",
            "--kafka-property",
            "session.timeout.ms=6000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let expected: Vec<Value> = std::fs::read_to_string(
        shared_data().join("logs/accept-apache_logs.expected-3snapshots.jsonl"),
    )
    .unwrap()
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    let got = consume(
        &broker.addr,
        "enriched",
        expected.len(),
        Duration::from_secs(120),
    );
    let dead = consume(&broker.addr, "dead", 1, Duration::from_secs(30));

    // SIGTERM: drain, commit, leave the group, exit 0.
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("dead-lettered"), "{stderr}");

    let mut by_key: HashMap<usize, Value> = HashMap::new();
    let mut last_in_partition: HashMap<i32, usize> = HashMap::new();
    for (partition, key, value) in &got {
        let i: usize = key.parse().unwrap();
        // Order within a partition is the input order.
        if let Some(prev) = last_in_partition.insert(*partition, i) {
            assert!(prev < i, "partition {partition}: {i} after {prev}");
        }
        by_key.insert(i, serde_json::from_str(value).unwrap());
    }
    assert_eq!(
        by_key.len(),
        expected.len(),
        "every input line has an output"
    );
    for (i, e) in expected.iter().enumerate() {
        let o = &by_key[&i];
        assert_eq!(
            (&o["ip"], &o["timestamp"], &o["whip"]),
            (&e["ip"], &e["t"], &e["record"]),
            "line {}",
            i + 1
        );
    }
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].2, "this line is no access log line");
}
