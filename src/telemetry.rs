//! Every metric whipstream records, named and described in one place.
//!
//! Labels are low-cardinality (route, status, outcome): never an address. The
//! Prometheus exporter is installed once per process by [`install_prometheus`];
//! recording without it is a no-op, so library code and tests need no setup.

use std::time::Duration;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::index::Index;

pub const HTTP_REQUESTS: &str = "whipstream_http_requests_total";
pub const LOOKUPS: &str = "whipstream_lookups_total";
pub const LOOKUP_SECONDS: &str = "whipstream_lookup_duration_seconds";
pub const SNAPSHOTS: &str = "whipstream_snapshots";
pub const INDEX_PIECES: &str = "whipstream_index_pieces";
pub const INDEX_RECORDS: &str = "whipstream_index_records";

/// Installs the global Prometheus recorder and returns the handle that renders it.
pub fn install_prometheus() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(LOOKUP_SECONDS.to_string()),
            &[1e-7, 3e-7, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 1e-3, 1e-2],
        )
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by route and status");
    describe_counter!(LOOKUPS, "lookups answered, by outcome (matched, unmatched)");
    describe_histogram!(LOOKUP_SECONDS, Unit::Seconds, "time to answer one lookup");
    describe_gauge!(SNAPSHOTS, "snapshots in the index in use");
    describe_gauge!(INDEX_PIECES, "range pieces in the index in use");
    describe_gauge!(
        INDEX_RECORDS,
        "distinct records (lines) in the index in use"
    );
    Ok(handle)
}

pub fn http_request(route: &'static str, status: u16) {
    counter!(HTTP_REQUESTS, "route" => route, "status" => status.to_string()).increment(1);
}

pub fn lookup(matched: bool, took: Duration) {
    let outcome = if matched { "matched" } else { "unmatched" };
    counter!(LOOKUPS, "outcome" => outcome).increment(1);
    histogram!(LOOKUP_SECONDS).record(took.as_secs_f64());
}

pub fn index_in_use(index: &Index) {
    let h = index.history();
    gauge!(SNAPSHOTS).set(h.snapshot_count() as f64);
    gauge!(INDEX_PIECES).set(h.piece_count() as f64);
    gauge!(INDEX_RECORDS).set(h.line_count() as f64);
}
