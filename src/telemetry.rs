//! Every metric whipstream records, named and described in one place.
//!
//! Labels are low-cardinality (route, status, outcome): never an address. The
//! Prometheus exporter is installed once per process by [`install_prometheus`];
//! recording without it is a no-op, so library code and tests need no setup.

use std::time::Duration;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "whipstream_http_requests_total";
pub const LOOKUPS: &str = "whipstream_lookups_total";
pub const LOOKUP_SECONDS: &str = "whipstream_lookup_duration_seconds";
pub const SNAPSHOTS: &str = "whipstream_snapshots";
pub const INDEX_PIECES: &str = "whipstream_index_pieces";
pub const INDEX_RECORDS: &str = "whipstream_index_records";
pub const LINES: &str = "whipstream_lines_total";
pub const LINES_MATCHED: &str = "whipstream_lines_matched_total";
pub const LINES_BEFORE_FIRST: &str = "whipstream_lines_before_first_snapshot_total";
pub const LINES_WITHOUT_TIME: &str = "whipstream_lines_without_event_time_total";
pub const SNAPSHOTS_INGESTED: &str = "whipstream_snapshots_ingested_total";
pub const WATCH_SCANS: &str = "whipstream_watch_scans_total";
pub const REMOTE_POLLS: &str = "whipstream_remote_polls_total";
pub const REMOTE_OBJECTS: &str = "whipstream_remote_objects_total";
pub const SNAPSHOT_LOAD_SECONDS: &str = "whipstream_snapshot_load_duration_seconds";
pub const INDEX_BUILD_SECONDS: &str = "whipstream_index_build_duration_seconds";
pub const DATASET_SNAPSHOTS: &str = "whipstream_dataset_snapshots";
pub const DATASET_RANGES: &str = "whipstream_dataset_pieces";
pub const RESIDENT_BYTES: &str = "whipstream_process_resident_memory_bytes";
pub const READY: &str = "whipstream_ready";
pub const KAFKA_DELIVERY_RETRIES: &str = "whipstream_kafka_delivery_retries_total";
pub const KAFKA_COMMITS: &str = "whipstream_kafka_commits_total";
pub const KAFKA_CONSUMER_LAG: &str = "whipstream_kafka_consumer_lag";

/// The Prometheus recorder could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the metrics recorder: {0}")]
pub struct InstallError(String);

/// Installs the global Prometheus recorder and returns the handle that renders it.
pub fn install_prometheus() -> Result<PrometheusHandle, InstallError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(LOOKUP_SECONDS.to_string()),
            &[1e-7, 3e-7, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 1e-3, 1e-2],
        )
        .map_err(|e| InstallError(e.to_string()))?
        .install_recorder()
        .map_err(|e| InstallError(e.to_string()))?;
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by route and status");
    describe_counter!(LOOKUPS, "lookups answered, by outcome (matched, unmatched)");
    describe_histogram!(
        LOOKUP_SECONDS,
        Unit::Seconds,
        "time to answer one lookup (one IP in one data set), by via: rest (one request) \
         or enrich (a chunk of lines looked up in one batch: one sample per chunk, its \
         time divided by its lookups; a Kafka message: one sample each)"
    );
    describe_gauge!(SNAPSHOTS, "snapshots in the index in use");
    describe_gauge!(INDEX_PIECES, "range pieces in the index in use");
    describe_gauge!(
        INDEX_RECORDS,
        "distinct records (lines) in the index in use"
    );
    describe_counter!(
        LINES,
        "input lines, by source (stdin, file, kafka) and outcome (read, enriched, dead_lettered, header)"
    );
    describe_counter!(
        LINES_MATCHED,
        "enriched lines, by source, data set and outcome (matched, unmatched)"
    );
    describe_counter!(
        LINES_BEFORE_FIRST,
        "enriched lines whose time is before the data set's first snapshot, by source and \
         data set (unmatched, apart from the unmatched ones no range contains; or answered \
         from the earliest snapshot with before_first = earliest)"
    );
    describe_counter!(
        LINES_WITHOUT_TIME,
        "lines without an event time of their own, by source and outcome (enriched at the \
         read time, --at or the message time and marked time_source; or dead_lettered)"
    );
    describe_counter!(
        SNAPSHOTS_INGESTED,
        "snapshot files from watched directories, by data set and outcome (loaded, rejected, incomplete: unchanged for the settle interval but not whole by its framing)"
    );
    describe_counter!(
        WATCH_SCANS,
        "completed scans of a data set's watched directory (shows the watcher is alive)"
    );
    describe_counter!(
        REMOTE_POLLS,
        "polls of a data set's remote source (S3 or HTTP), by outcome (ok; failed: the \
         listing or a download failed and is tried again at the next poll)"
    );
    describe_counter!(
        REMOTE_OBJECTS,
        "objects and versions seen by a remote source's polls, by outcome (mirrored: \
         downloaded whole and handed to the watcher; unchanged; refused: not whole by its \
         framing; too_large; failed: tried again at the next poll; deleted: no longer \
         listed, what it loaded stays loaded)"
    );
    describe_histogram!(
        SNAPSHOT_LOAD_SECONDS,
        Unit::Seconds,
        "time to validate and commit one watched snapshot file"
    );
    describe_histogram!(
        INDEX_BUILD_SECONDS,
        Unit::Seconds,
        "time to build a data set's index from its history"
    );
    describe_gauge!(DATASET_SNAPSHOTS, "snapshots in a data set's index in use");
    describe_gauge!(DATASET_RANGES, "range pieces in a data set's index in use");
    describe_gauge!(
        RESIDENT_BYTES,
        Unit::Bytes,
        "resident memory of the process"
    );
    describe_gauge!(READY, "1 once every data set is loaded (what /readyz says)");
    describe_counter!(
        KAFKA_DELIVERY_RETRIES,
        "output messages sent again after a failed delivery"
    );
    describe_counter!(KAFKA_COMMITS, "offset commits, by result (ok, failed)");
    describe_gauge!(
        KAFKA_CONSUMER_LAG,
        "messages behind the partition end, by topic and partition (librdkafka statistics)"
    );
    Ok(handle)
}

pub fn http_request(route: &'static str, status: u16) {
    counter!(HTTP_REQUESTS, "route" => route, "status" => status.to_string()).increment(1);
}

pub fn lookup(matched: bool, took: Duration) {
    let outcome = if matched { "matched" } else { "unmatched" };
    counter!(LOOKUPS, "outcome" => outcome).increment(1);
    histogram!(LOOKUP_SECONDS, "via" => "rest").record(took.as_secs_f64());
}

/// The lookup latency histogram of enrichment (labelled `via="enrich"`).
pub fn enrich_lookup_histogram() -> metrics::Histogram {
    histogram!(LOOKUP_SECONDS, "via" => "enrich")
}

/// The size of the index in use: snapshots, range pieces, records.
pub fn index_in_use(snapshots: usize, pieces: usize, records: usize) {
    gauge!(SNAPSHOTS).set(snapshots as f64);
    gauge!(INDEX_PIECES).set(pieces as f64);
    gauge!(INDEX_RECORDS).set(records as f64);
}

pub fn kafka_delivery_retry() {
    counter!(KAFKA_DELIVERY_RETRIES).increment(1);
}

pub fn kafka_commit(ok: bool) {
    let result = if ok { "ok" } else { "failed" };
    counter!(KAFKA_COMMITS, "result" => result).increment(1);
}

/// Partitions are few (a topic's partition count), so they make fine labels.
pub fn kafka_consumer_lag(topic: &str, partition: i32, lag: i64) {
    gauge!(KAFKA_CONSUMER_LAG, "topic" => topic.to_string(), "partition" => partition.to_string())
        .set(lag as f64);
}

/// What a batch of lines came to (numbers only: this module knows no
/// enrichment types).
#[derive(Debug, Clone, Copy)]
pub struct LineCounts<'a> {
    pub read: u64,
    pub enriched: u64,
    pub dead_lettered: u64,
    pub headers: u64,
    /// Per data set, in the order given to [`LineCounters::new`].
    pub matched: &'a [u64],
    pub before_first: &'a [u64],
    /// Lines without a time of their own enriched at another time.
    pub time_substituted: u64,
    /// Lines dead-lettered for having no time.
    pub no_time: u64,
}

/// The line counters of one source (stdin, file, kafka), registered once: a
/// labelled lookup per line would cost more than the line.
pub struct LineCounters {
    read: Counter,
    enriched: Counter,
    dead_lettered: Counter,
    /// Directive lines (W3C `#Fields:`...): neither enriched nor dead letters.
    header: Counter,
    /// Per data set: (matched, unmatched, before the first snapshot).
    matched: Vec<(Counter, Counter, Counter)>,
    /// Lines without a time: (enriched at another time, dead-lettered).
    without_time: (Counter, Counter),
}

impl LineCounters {
    /// `datasets`: the data set names, in the order of [`LineCounts::matched`].
    pub fn new<'a>(
        source: &'static str,
        datasets: impl IntoIterator<Item = &'a str>,
    ) -> LineCounters {
        let by_dataset = |name: &str, outcome: &'static str| counter!(LINES_MATCHED, "source" => source, "dataset" => name.to_string(), "outcome" => outcome);
        LineCounters {
            read: counter!(LINES, "source" => source, "outcome" => "read"),
            enriched: counter!(LINES, "source" => source, "outcome" => "enriched"),
            dead_lettered: counter!(LINES, "source" => source, "outcome" => "dead_lettered"),
            header: counter!(LINES, "source" => source, "outcome" => "header"),
            matched: datasets
                .into_iter()
                .map(|name| {
                    (
                        by_dataset(name, "matched"),
                        by_dataset(name, "unmatched"),
                        counter!(LINES_BEFORE_FIRST, "source" => source, "dataset" => name.to_string()),
                    )
                })
                .collect(),
            without_time: (
                counter!(LINES_WITHOUT_TIME, "source" => source, "outcome" => "enriched"),
                counter!(LINES_WITHOUT_TIME, "source" => source, "outcome" => "dead_lettered"),
            ),
        }
    }

    /// Lines done (a chunk, or one Kafka message).
    pub fn add(&self, counts: LineCounts<'_>) {
        self.read.increment(counts.read);
        self.enriched.increment(counts.enriched);
        self.dead_lettered.increment(counts.dead_lettered);
        self.header.increment(counts.headers);
        for (((matched, unmatched, before), &m), &b) in self
            .matched
            .iter()
            .zip(counts.matched)
            .zip(counts.before_first)
        {
            matched.increment(m);
            unmatched.increment(counts.enriched.saturating_sub(m));
            before.increment(b);
        }
        self.without_time.0.increment(counts.time_substituted);
        self.without_time.1.increment(counts.no_time);
    }
}

pub fn snapshot_ingested(dataset: &str, outcome: &'static str, seconds: f64) {
    counter!(SNAPSHOTS_INGESTED, "dataset" => dataset.to_string(), "outcome" => outcome)
        .increment(1);
    if outcome == "loaded" {
        histogram!(SNAPSHOT_LOAD_SECONDS, "dataset" => dataset.to_string()).record(seconds);
    }
}

/// A scan of a data set's watched directory finished.
pub fn watch_scanned(dataset: &str) {
    counter!(WATCH_SCANS, "dataset" => dataset.to_string()).increment(1);
}

/// A poll of a data set's remote source ended.
pub fn remote_poll(dataset: &str, ok: bool) {
    let outcome = if ok { "ok" } else { "failed" };
    counter!(REMOTE_POLLS, "dataset" => dataset.to_string(), "outcome" => outcome).increment(1);
}

/// A remote source's poll dealt with an object (see [`REMOTE_OBJECTS`]).
pub fn remote_object(dataset: &str, outcome: &'static str) {
    counter!(REMOTE_OBJECTS, "dataset" => dataset.to_string(), "outcome" => outcome).increment(1);
}

/// A data set's index was built (at start or after a load) and is now in use.
pub fn index_built(dataset: &str, took: Duration, snapshots: usize, pieces: usize) {
    histogram!(INDEX_BUILD_SECONDS, "dataset" => dataset.to_string()).record(took.as_secs_f64());
    gauge!(DATASET_SNAPSHOTS, "dataset" => dataset.to_string()).set(snapshots as f64);
    gauge!(DATASET_RANGES, "dataset" => dataset.to_string()).set(pieces as f64);
}

pub fn ready(ready: bool) {
    gauge!(READY).set(if ready { 1.0 } else { 0.0 });
}

/// Samples the process's resident memory (Linux `/proc/self/statm`).
pub fn sample_memory() {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return;
    };
    if let Some(pages) = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<f64>().ok())
    {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        gauge!(RESIDENT_BYTES).set(pages * page.max(1) as f64);
    }
}
