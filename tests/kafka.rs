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
        Broker::start_on(None)
    }

    fn start_on(port: Option<u16>) -> Broker {
        Broker::start_with(port, "memory")
    }

    /// A broker whose data survives [`Broker::restart`] (kept in a local S3 server).
    fn start_persistent() -> Broker {
        Broker::start_with(None, "s3")
    }

    fn start_with(port: Option<u16>, storage: &str) -> Broker {
        let state = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("bash");
        cmd.arg(script()).args(["start", s(state.path())]);
        cmd.env("BROKER_STORAGE", storage);
        if let Some(p) = port {
            cmd.env("BROKER_PORT", p.to_string());
        }
        let out = cmd.output().expect("run kafka-broker.sh");
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

    /// Stops the broker process, waits `down`, starts it again on the same port.
    fn restart(&self, down: Duration) {
        let state = s(self.state.path());
        // `restart` stops and starts; split it to keep the broker down a while.
        let pid = std::fs::read_to_string(self.state.path().join("broker.env"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("BROKER_PID=").map(String::from))
            .unwrap();
        Command::new("kill").arg(&pid).status().unwrap();
        std::thread::sleep(down);
        let status = Command::new("bash")
            .arg(script())
            .args(["restart", state])
            .status()
            .unwrap();
        assert!(status.success(), "broker restart");
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
    produce_from(addr, topic, lines, 0);
}

/// Produces `lines` with keys `first_key`, `first_key + 1`, ...
fn produce_from(addr: &str, topic: &str, lines: &[&str], first_key: usize) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for (i, line) in lines.iter().enumerate() {
        let key = (first_key + i).to_string();
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
            "consumer.session.timeout.ms=6000",
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

    // SIGTERM committed every offset: a new member of the group consumes only
    // a line produced after it started (which also shows it was running).
    let again = spawn_enricher(&broker, "whipstream-test");
    assert_only_new_work(&broker, again, lines[0], lines.len(), expected.len() + 1);
}

/// Produces `line` with key `key` to raw once `child` (a new member of a group
/// that committed everything) runs, waits for its output (`outputs` distinct
/// keys in enriched), stops `child` and checks it consumed that one line only:
/// nothing already committed was done again.
fn assert_only_new_work(
    broker: &Broker,
    child: std::process::Child,
    line: &str,
    key: usize,
    outputs: usize,
) {
    produce_from(&broker.addr, "raw", &[line], key);
    let got = consume(&broker.addr, "enriched", outputs, Duration::from_secs(120));
    let stderr = sigterm(child);
    assert!(
        got.iter().any(|(_, k, _)| *k == key.to_string()),
        "the new member enriched nothing: {stderr}"
    );
    assert_eq!(
        consumed(&stderr),
        1,
        "committed offsets were consumed again: {stderr}"
    );
}

/// `whipstream enrich` from topic raw to topic enriched in group `group`.
fn spawn_enricher(broker: &Broker, group: &str) -> std::process::Child {
    spawn_enricher_at(&broker.addr, group, &[])
}

/// `whipstream enrich` from topic raw to topic enriched at broker `addr`, group
/// `group`, with extra arguments.
fn spawn_enricher_at(addr: &str, group: &str, extra: &[&str]) -> std::process::Child {
    let db = s(geoip_store());
    let mut args = vec![
        "enrich",
        "--db",
        db,
        "--no-line",
        "--kafka-brokers",
        addr,
        "--input-topic",
        "raw",
        "--output-topic",
        "enriched",
        "--group-id",
        group,
        "--kafka-property",
        "consumer.session.timeout.ms=6000",
        "--kafka-property",
        "consumer.heartbeat.interval.ms=500",
    ];
    args.extend_from_slice(extra);
    Command::new(bin())
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn sigterm(child: std::process::Child) -> String {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "exit after SIGTERM: {stderr}");
    stderr
}

/// "N messages consumed" from an enricher's closing summary.
fn consumed(stderr: &str) -> u64 {
    stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("whipstream enrich: ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no summary in: {stderr}"))
}

fn accept_lines() -> Vec<String> {
    std::fs::read_to_string(shared_data().join("logs/accept-apache_logs.log"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// Messages seen so far, as (partition, key, value), filled by a thread.
type Collected = std::sync::Arc<std::sync::Mutex<Vec<(i32, String, String)>>>;

/// Reads `topic` from the beginning on a thread, collecting every message.
fn collect_in_background(addr: &str, topic: &str) -> Collected {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (addr, topic, sink) = (addr.to_string(), topic.to_string(), seen.clone());
    std::thread::spawn(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &addr)
            .set("group.id", format!("collector-{topic}"))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        consumer.subscribe(&[&topic]).unwrap();
        loop {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                let Ok(mut v) = sink.lock() else { break };
                v.push((m.partition(), key, value));
            }
            if std::sync::Arc::strong_count(&sink) == 1 {
                break;
            }
        }
    });
    seen
}

/// SIGKILL while a live stream is being enriched, several times, restarting each
/// time: every input line still comes out (duplicates allowed and counted),
/// because offsets are committed only after the outputs are acknowledged.
#[test]
fn sigkill_mid_stream_and_restart_lose_nothing() {
    let broker = Broker::start();
    broker.topic("raw", 4);
    broker.topic("enriched", 4);
    // A live stream: 40,000 lines (the accept log four times) at about 2,000/s.
    let base = accept_lines();
    let lines: Vec<String> = (0..4).flat_map(|_| base.iter().cloned()).collect();
    let total = lines.len();
    let addr = broker.addr.clone();
    let producing = std::thread::spawn(move || {
        for (n, batch) in lines.chunks(200).enumerate() {
            let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
            produce_from(&addr, "raw", &refs, n * 200);
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let out = collect_in_background(&broker.addr, "enriched");

    let mut seed: u64 = 0x9e37_79b9;
    let mut killed_mid_stream = 0;
    for round in 0..3 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = spawn_enricher(&broker, "killed-group");
        let delay = Duration::from_millis(3000 + seed % 3000);
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if !producing.is_finished() {
            killed_mid_stream += 1;
        }
        let seen = out.lock().map(|v| v.len()).unwrap_or(0);
        eprintln!("round {round}: killed after {delay:?}, {seen} outputs so far");
    }
    let last = spawn_enricher(&broker, "killed-group");
    producing.join().unwrap();
    let distinct = |v: &Vec<(i32, String, String)>| {
        v.iter()
            .map(|(_, k, _)| k.clone())
            .collect::<std::collections::HashSet<_>>()
    };
    let started = Instant::now();
    while out.lock().map(|v| distinct(&v).len()).unwrap_or(0) < total
        && started.elapsed() < Duration::from_secs(180)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let stderr = sigterm(last);
    let got = out.lock().unwrap().clone();
    let keys = distinct(&got);
    eprintln!(
        "{} outputs for {total} inputs: {} duplicates; {killed_mid_stream} of 3 kills mid-stream; last run: {}",
        got.len(),
        got.len() - keys.len(),
        stderr.lines().last().unwrap_or_default()
    );
    assert!(
        killed_mid_stream >= 1,
        "no kill landed while the stream was flowing"
    );
    for i in 0..total {
        assert!(keys.contains(&i.to_string()), "line {i} lost");
    }
}

/// Two instances in one group split the partitions; when one stops, the other
/// takes its partitions over and nothing is lost.
#[test]
fn two_instances_split_partitions_and_take_over() {
    let broker = Broker::start();
    broker.topic("raw", 4);
    broker.topic("enriched", 4);
    let a = spawn_enricher(&broker, "pair");
    let b = spawn_enricher(&broker, "pair");
    // Let both join before the data arrives.
    std::thread::sleep(Duration::from_secs(8));
    let lines = accept_lines();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let (first, second) = refs.split_at(8000);
    produce(&broker.addr, "raw", first);
    let got = consume(
        &broker.addr,
        "enriched",
        first.len(),
        Duration::from_secs(120),
    );
    let stderr_a = sigterm(a);
    let consumed_a = consumed(&stderr_a);
    assert!(
        consumed_a > 0 && consumed_a < first.len() as u64,
        "instance A consumed {consumed_a} of {}: the partitions were not split",
        first.len()
    );
    assert!(got.len() >= first.len());
    // A is gone: B takes over all partitions, including A's.
    produce_from(&broker.addr, "raw", second, first.len());
    let got = consume(
        &broker.addr,
        "enriched",
        lines.len(),
        Duration::from_secs(120),
    );
    let stderr_b = sigterm(b);
    let keys: std::collections::HashSet<&str> = got.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(keys.len(), lines.len(), "lines lost after the take-over");
    eprintln!(
        "A consumed {consumed_a}, B consumed {}",
        consumed(&stderr_b)
    );
}

/// The broker is not there when whipstream starts: it keeps retrying, and once
/// the broker comes up it enriches everything.
#[test]
fn broker_down_at_start_is_waited_for() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let child = spawn_enricher_at(&addr, "late-broker", &[]);
    std::thread::sleep(Duration::from_secs(5));
    let broker = Broker::start_on(Some(port));
    broker.topic("raw", 4);
    broker.topic("enriched", 4);
    let lines = accept_lines();
    let refs: Vec<&str> = lines[..2000].iter().map(String::as_str).collect();
    produce(&broker.addr, "raw", &refs);
    let got = consume(
        &broker.addr,
        "enriched",
        refs.len(),
        Duration::from_secs(120),
    );
    let stderr = sigterm(child);
    let keys: std::collections::HashSet<&str> = got.iter().map(|(_, k, _)| k.as_str()).collect();
    assert_eq!(keys.len(), refs.len(), "{stderr}");
    assert_eq!(consumed(&stderr), refs.len() as u64);
}

/// `--from TIME`: a new group starts at the first message at or after TIME (by
/// message timestamp), so an old topic can be re-enriched from a given day on.
#[test]
fn from_time_starts_a_new_group_at_that_time() {
    let broker = Broker::start();
    broker.topic("raw", 4);
    broker.topic("enriched", 4);
    let lines = accept_lines();
    let refs: Vec<&str> = lines[..2000].iter().map(String::as_str).collect();
    produce_from(&broker.addr, "raw", &refs[..1000], 0);
    std::thread::sleep(Duration::from_millis(1500));
    let from = whipstream::time::Timestamp::now().to_rfc3339();
    std::thread::sleep(Duration::from_millis(1500));
    produce_from(&broker.addr, "raw", &refs[1000..], 1000);
    let child = spawn_enricher_at(&broker.addr, "from-time", &["--from", &from]);
    let got = consume(&broker.addr, "enriched", 1000, Duration::from_secs(90));
    // Give any earlier message a chance to show up before stopping.
    std::thread::sleep(Duration::from_secs(2));
    let stderr = sigterm(child);
    let keys: Vec<usize> = got.iter().map(|(_, k, _)| k.parse().unwrap()).collect();
    assert_eq!(keys.len(), 1000, "{stderr}");
    assert!(
        keys.iter().all(|&k| k >= 1000),
        "a message before --from was enriched"
    );
    assert_eq!(consumed(&stderr), 1000);
}

/// The broker goes away mid-stream and comes back: whipstream retries, resumes
/// and loses nothing (the broker keeps its data across the restart).
#[test]
fn broker_restart_mid_stream_loses_nothing() {
    let broker = Broker::start_persistent();
    broker.topic("raw", 4);
    broker.topic("enriched", 4);
    let lines = accept_lines();
    let total = 6000;
    let addr = broker.addr.clone();
    let first: Vec<String> = lines[..total / 2].to_vec();
    let refs: Vec<&str> = first.iter().map(String::as_str).collect();
    produce(&addr, "raw", &refs);
    let child = spawn_enricher(&broker, "restart-group");
    let out = collect_in_background(&broker.addr, "enriched");
    let count = |out: &Collected| {
        out.lock()
            .map(|v| {
                v.iter()
                    .map(|(_, k, _)| k.clone())
                    .collect::<std::collections::HashSet<_>>()
                    .len()
            })
            .unwrap_or(0)
    };
    let started = Instant::now();
    while count(&out) == 0 && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(count(&out) > 0, "nothing enriched before the restart");
    broker.restart(Duration::from_secs(5));
    let second: Vec<String> = lines[total / 2..total].to_vec();
    let refs: Vec<&str> = second.iter().map(String::as_str).collect();
    produce_from(&addr, "raw", &refs, total / 2);
    let started = Instant::now();
    while count(&out) < total && started.elapsed() < Duration::from_secs(180) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let stderr = sigterm(child);
    assert_eq!(
        count(&out),
        total,
        "lines lost across the restart: {stderr}"
    );
}

/// The daemon with a Kafka source, configured by file: enriches the topic, hot
/// loads a snapshot dropped into its watched directory (messages switch at its
/// datetime), counts what it did in /metrics, and on SIGTERM commits the offsets
/// of everything it delivered.
#[test]
fn daemon_with_kafka_source_hot_loads_and_commits() {
    use common::daemon::*;
    let broker = Broker::start();
    broker.topic("raw", 4);
    broker.topic("enriched", 4);
    let tmp = tempfile::tempdir().unwrap();
    let (store, watch) = (tmp.path().join("store"), tmp.path().join("incoming"));
    std::fs::create_dir(&watch).unwrap();
    drop_snapshot(&watch, "v1.jsonl", &format!("{V1}\n"));
    let config = tmp.path().join("whipstream.toml");
    std::fs::write(
        &config,
        format!(
            r#"[[dataset]]
name = "geo"
store = {store:?}
watch = {watch:?}

[input]
source = "kafka"

[kafka]
brokers = "{}"
input_topic = "raw"
output_topic = "enriched"
group_id = "daemon"
properties = {{ "consumer.session.timeout.ms" = "6000", "consumer.heartbeat.interval.ms" = "500" }}

[http]
listen = "127.0.0.1:0"

[ingest]
poll_seconds = 0.2
"#,
            broker.addr
        ),
    )
    .unwrap();
    let d = Daemon::start(&["--config", s(&config)]);
    d.wait_for("first snapshot", |d| d.snapshots() == 1);
    let july: Vec<String> = (0..100)
        .map(|i| line(i, "01/Jul/2024").trim_end().to_string())
        .collect();
    let refs: Vec<&str> = july.iter().map(String::as_str).collect();
    produce_from(&broker.addr, "raw", &refs, 0);
    let first = consume(&broker.addr, "enriched", 100, Duration::from_secs(90));
    assert_eq!(first.len(), 100);
    assert!(first
        .iter()
        .all(|(_, _, v)| v.contains(r#""geo":{"begin":"1.2.3.0""#) && v.contains(r#""cc":"AU""#)));

    drop_snapshot(&watch, "v2.jsonl", &format!("{V2}\n"));
    d.wait_for("second snapshot", |d| d.snapshots() == 2);
    produce_from(&broker.addr, "raw", &refs, 100);
    let all = consume(&broker.addr, "enriched", 200, Duration::from_secs(90));
    let after: Vec<&String> = all
        .iter()
        .filter(|(_, k, _)| k.parse::<usize>().unwrap() >= 100)
        .map(|(_, _, v)| v)
        .collect();
    assert_eq!(after.len(), 100);
    assert!(
        after.iter().all(|v| v.contains(r#""cc":"NZ""#)),
        "{:?}",
        after[0]
    );

    let m = d.metrics();
    assert_metric(
        &m,
        r#"whipstream_lines_total{source="kafka",outcome="enriched"}"#,
        200.0,
    );
    // One lookup latency sample per message.
    assert_metric(
        &m,
        r#"whipstream_lookup_duration_seconds_count{via="enrich"}"#,
        200.0,
    );
    assert!(
        counter(&m, r#"whipstream_kafka_commits_total{result="ok"}"#) >= 1.0,
        "{m}"
    );
    let (ok, stderr, _) = d.stop();
    assert!(ok, "{stderr}");
    assert!(stderr.contains("200 messages consumed"), "{stderr}");
    // Every offset it consumed was committed after delivery: nothing left to do.
    let again = spawn_enricher(&broker, "daemon");
    assert_only_new_work(&broker, again, refs[0], 200, 201);
}
