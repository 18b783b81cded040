//! whipstream: log enrichment at event time against the history of an IP-range
//! data set (Whip snapshots), kept in a local RocksDB store.
//!
//! # Layout
//!
//! - [`files`]: named paths and directory listings (links followed, only regular files).
//! - [`ip`]: addresses as keys of one 128-bit space (IPv4 mapped into `::ffff:0:0/96`).
//! - [`lines`]: bounded line reading, and short excerpts of input for messages.
//! - [`time`]: instants, and the only parsers of time text.
//! - [`snapshot`]: reading and validating one Whip snapshot file.
//! - [`formats`]: range CSVs and MaxMind DB files, read as snapshots.
//! - [`export`]: the data at an instant, written as a Whip snapshot file.
//! - [`history`]: the in-memory model: snapshots, range pieces, changes; merging.
//! - [`store`]: the durable RocksDB store and its atomic commits.
//! - [`load`]: the `load` pipeline (parallel read, ordered merge, one commit).
//! - [`index`]: the immutable lookup structure and record output.
//! - [`index_file`]: the persisted index: one checked file per store, mapped by
//!   every process that opens it, rebuilt from the store when missing or stale.
//! - [`follow`]: keeping a running process's index current with other processes' loads.
//! - [`lookup`]: answering queries, by argument and in batch.
//! - [`logline`]: access-log lines of real servers and load balancers (one module
//!   per family of formats, auto-detected): client address, event time, fields.
//! - [`source`]: enrichment inputs (stdin, files, gzip) cut into chunks of lines,
//!   each carrying its file's header line in force (W3C `#Fields:`).
//! - [`enrich`]: the join of a log line with the data sets (event-time policy,
//!   times before the first snapshot), and its JSON output.
//! - [`pipeline`]: the parallel, order-keeping enrichment run for stdin and files.
//! - [`json`]: hand-written JSON output helpers for the hot path.
//! - [`kafka`]: Kafka topic enrichment: offset bookkeeping and the group member.
//! - [`ingest`]: watched snapshot directories: wait until complete, load, recognise,
//!   reject, swap.
//! - [`remote`]: snapshots from S3 buckets and HTTP URLs, downloaded whole into a
//!   local mirror that [`ingest`] watches; what was fetched is recorded.
//! - [`config`]: the daemon's TOML configuration and flags, checked.
//! - [`daemon`]: `whipstream run`: the long-running process and its life cycle.
//! - [`http`]: Whip's REST API, `/healthz`, `/readyz`, `/metrics`.
//! - [`report`]: `whipstream report`: map, timeline, tables, clusters and what event
//!   time changed, from an enriched log.
//! - [`telemetry`]: every metric, named in one place.
//! - [`progress`]: progress bars on a terminal.
//! - [`cli`]: the command line.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod enrich;
pub mod export;
pub mod files;
pub mod follow;
pub mod formats;
pub mod history;
pub mod http;
pub mod index;
pub mod index_file;
pub mod ingest;
pub mod ip;
pub mod json;
pub mod kafka;
pub mod lines;
pub mod load;
pub mod logline;
pub mod lookup;
pub mod pipeline;
pub mod progress;
pub mod remote;
pub mod report;
pub mod snapshot;
pub mod source;
pub mod store;
pub mod telemetry;
pub mod time;
