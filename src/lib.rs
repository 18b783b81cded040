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
//! - [`repair`]: `whipstream repair`: RocksDB's repair of a damaged store, and
//!   an account of what it kept.
//! - [`load`]: the `load` pipeline (parallel read, ordered merge, one commit).
//! - [`index`]: the immutable lookup structure and record output, a view of an
//!   index image (its bytes, header and section layout, mostly bit-packed).
//! - [`index_file`]: the persisted index: an image as one checked file per store,
//!   mapped by every process that opens it, rebuilt from the store when missing
//!   or stale.
//! - [`follow`]: keeping a running process's index current with other processes' loads.
//! - [`lookup`]: answering queries, by argument and in batch.
//! - [`logline`]: access-log lines of real servers and load balancers (one module
//!   per family of formats, auto-detected): client address, event time, fields.
//! - [`io`]: opening input files, gzip recognised by content (logs, snapshots,
//!   CSVs, reports).
//! - [`source`]: enrichment inputs (stdin, files) cut into chunks of lines, each
//!   carrying its file's header line in force (W3C `#Fields:`).
//! - [`output_fields`]: the keys of an enriched line other than data sets.
//! - [`schema`]: output schemas (whipstream, ECS), chosen fields (`--fields`),
//!   per-data-set ECS mappings, and the list of fields a flow's lines contain.
//! - [`value`]: the one convention by which a setting's text becomes an enum.
//! - [`enrich`]: the join of a log line with the data sets (event-time policy,
//!   times before the first snapshot), its JSON output and its counts.
//! - [`pipeline`]: the parallel, order-keeping enrichment of chunks of lines.
//! - [`json`]: hand-written JSON output helpers for the hot path, and the strict
//!   check of JSON text passed through.
//! - [`output_file`]: an output of lines that names itself and the lines it
//!   holds when a write fails (a full disk).
//! - [`parquet`]: Parquet output (one file, or one per event day): a flow's
//!   field list as typed columns, enriched lines into record batches.
//! - [`kafka`]: Kafka topic enrichment: settings, offset bookkeeping, the group's
//!   rebalances and commits, delivery with retry, the consume loop.
//! - [`ingest`]: watched snapshot directories: wait until complete, load, recognise,
//!   reject, swap.
//! - [`remote`]: snapshots from S3 buckets and HTTP URLs, downloaded whole into a
//!   local mirror that [`ingest`] watches; what was fetched is recorded.
//! - [`config`]: a flow's settings, each defined once (flag, file key, variable),
//!   and the one resolver that checks them into a [`config::Flow`].
//! - [`shutdown`]: the async runtime, signals and the one stop of a run.
//! - [`daemon`]: watcher threads that keep data sets current while a flow runs.
//! - [`runner`]: the one runner of a flow (data sets, listener, watchers,
//!   source -> parse -> join -> sink) for `enrich` (until the input ends) and
//!   `run` (until stopped).
//! - [`http`]: Whip's REST API, `/healthz`, `/readyz`, `/metrics`; its listener's
//!   connection limits and timeouts ([`http::conn`]).
//! - [`report`]: `whipstream report`: map, timeline, tables, clusters and what event
//!   time changed, from an enriched log.
//! - [`telemetry`]: every metric, named in one place (names and numbers only).
//! - [`progress`]: progress bars on a terminal.
//! - [`cli`]: the command line: arguments and one file per command; nothing
//!   below it imports it.

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
pub mod io;
pub mod ip;
pub mod json;
pub mod kafka;
pub mod lines;
pub mod load;
pub mod logline;
pub mod lookup;
pub mod output_fields;
pub mod output_file;
pub mod parquet;
pub mod pipeline;
pub mod progress;
pub mod remote;
pub mod repair;
pub mod report;
pub mod runner;
pub mod schema;
pub mod shutdown;
pub mod snapshot;
pub mod source;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod value;
