//! Helper for `benches/kafka-bench.sh`, written with rdkafka itself (Debian's
//! kcat cannot talk to the test broker):
//!
//!   kafka-tool produce BROKERS TOPIC FILE        one message per line, key = line number
//!   kafka-tool passthrough BROKERS IN OUT GROUP  copy IN to OUT unchanged (key,
//!                                                headers kept), committing what was
//!                                                delivered; the broker's ceiling
//!   kafka-tool wait BROKERS TOPIC GROUP N        wait until GROUP's committed offsets
//!                                                on TOPIC add up to N; print the seconds
//!                                                taken and the steady rate (messages/s
//!                                                from the first commit to the last)
//!
//! Without arguments (as under a plain `cargo bench`) it prints this and exits.

use std::collections::HashMap;
use std::io::BufRead;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["produce", brokers, topic, file] => produce(brokers, topic, file),
        ["passthrough", brokers, input, output, group] => {
            passthrough(brokers, input, output, group)
        }
        ["wait", brokers, topic, group, n] => wait(brokers, topic, group, n.parse()?),
        _ => {
            eprintln!("kafka-tool: driven by benches/kafka-bench.sh (nothing to do)");
            Ok(())
        }
    }
}

fn producer(brokers: &str) -> Result<BaseProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()?)
}

/// Sends, waiting for queue space when the producer is full.
fn send(p: &BaseProducer, mut record: BaseRecord<'_, [u8], [u8]>) {
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((_, r)) => {
                record = r;
                p.poll(Duration::from_millis(5));
            }
        }
    }
}

fn produce(brokers: &str, topic: &str, file: &str) -> Result<()> {
    let p = producer(brokers)?;
    let reader = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(file)?);
    let mut n = 0u64;
    for line in reader.split(b'\n') {
        let line = line?;
        let key = n.to_string();
        send(
            &p,
            BaseRecord::to(topic).key(key.as_bytes()).payload(&line[..]),
        );
        p.poll(Duration::ZERO);
        n += 1;
    }
    p.flush(Duration::from_secs(300))?;
    eprintln!("produced {n} messages to {topic}");
    Ok(())
}

fn passthrough(brokers: &str, input: &str, output: &str, group: &str) -> Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[input])?;
    let p = producer(brokers)?;
    // Next offset per partition of what was handed to the producer; committed
    // after a flush, so a commit covers delivered messages only.
    let mut next: HashMap<i32, i64> = HashMap::new();
    let mut last_commit = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let mut record = BaseRecord::to(output).payload(m.payload().unwrap_or_default());
                if let Some(k) = m.key() {
                    record = record.key(k);
                }
                if let Some(h) = m.headers() {
                    record = record.headers(h.detach());
                }
                send(&p, record);
                next.insert(m.partition(), m.offset() + 1);
                p.poll(Duration::ZERO);
            }
            Some(Err(e)) => eprintln!("consume error: {e}"),
            None => {}
        }
        if last_commit.elapsed() >= Duration::from_secs(1) && !next.is_empty() {
            p.flush(Duration::from_secs(60))?;
            let mut tpl = TopicPartitionList::new();
            for (&partition, &offset) in &next {
                tpl.add_partition_offset(input, partition, Offset::Offset(offset))?;
            }
            consumer.commit(&tpl, CommitMode::Sync)?;
            last_commit = Instant::now();
        }
    }
}

fn wait(brokers: &str, topic: &str, group: &str, want: i64) -> Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for t in metadata.topics() {
        for p in t.partitions() {
            tpl.add_partition(topic, p.id());
        }
    }
    let started = Instant::now();
    let mut first: Option<(Instant, i64)> = None;
    loop {
        let committed = consumer.committed_offsets(tpl.clone(), Duration::from_secs(10))?;
        let total: i64 = committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .sum();
        if total > 0 && first.is_none() {
            first = Some((Instant::now(), total));
        }
        if total >= want {
            let steady = match first {
                Some((t, n)) if t.elapsed() > Duration::ZERO && n < total => {
                    (total - n) as f64 / t.elapsed().as_secs_f64()
                }
                _ => 0.0,
            };
            println!("{:.3} {:.0}", started.elapsed().as_secs_f64(), steady);
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
