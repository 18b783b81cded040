//! Every setting of a flow, defined once: a field of a section below is the
//! config file's key (`[input] format`), the command-line flag (`--format`) and,
//! where it has one, the environment variable, all from that one definition.
//!
//! The values are kept as written (text): [`super::resolve`] turns each into its
//! type through the type's `FromStr`, the same for a flag and a key, and names
//! the flag or the key (whichever gave the value) when it is refused. Help texts
//! that state a default take it from the code ([`defaults`]), never a copy.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

/// Help texts built from the defaults in the code.
pub mod defaults {
    use crate::logline::{Format, DEFAULT_IP_FIELDS, DEFAULT_TIME_FIELDS, DEFAULT_XFF_FIELDS};

    /// Longest line enriched; longer ones are dead-lettered.
    pub const MAX_LINE_BYTES: usize = 64 * 1024;
    /// Seconds between scans of watched directories.
    pub const POLL_SECONDS: f64 = 2.0;

    pub fn format() -> String {
        format!(
            "Line format: auto (recognised per line, and per file for W3C headers; see \
             `whipstream formats`), or one by name: {} [input.format; default {}]",
            Format::names()
                .into_iter()
                .filter(|n| *n != Format::Auto.name())
                .collect::<Vec<_>>()
                .join(", "),
            Format::Auto.name()
        )
    }

    pub fn ip_fields() -> String {
        format!(
            "JSON field with the client address (repeatable; dotted paths reach into \
             objects) [input.ip_fields; default {}]",
            DEFAULT_IP_FIELDS.join(", ")
        )
    }

    pub fn time_fields() -> String {
        format!(
            "JSON field with the event time (repeatable) [input.time_fields; default {}]",
            DEFAULT_TIME_FIELDS.join(", ")
        )
    }

    pub fn http_header_timeout() -> String {
        format!(
            "Seconds for a whole request head to arrive (slow clients are closed) \
             [http.header_timeout_seconds; default {}]",
            crate::http::conn::DEFAULT_HEADER_TIMEOUT_SECONDS
        )
    }

    pub fn http_idle_timeout() -> String {
        format!(
            "Seconds without a byte read or written before a connection is closed \
             [http.idle_timeout_seconds; default {}]",
            crate::http::conn::DEFAULT_IDLE_TIMEOUT_SECONDS
        )
    }

    pub fn http_max_connections() -> String {
        format!(
            "Connections served at once; more are answered 503 [http.max_connections; \
             default {}]",
            crate::http::conn::DEFAULT_MAX_CONNECTIONS
        )
    }

    pub fn xff_fields() -> String {
        format!(
            "The X-Forwarded-For field: a JSON field or regex group name, or for combined \
             lines the 1-based index of the quoted field after the user agent (repeatable) \
             [input.xff_fields; default {}]",
            DEFAULT_XFF_FIELDS.join(", ")
        )
    }

    pub fn max_line_bytes() -> String {
        format!("Lines longer than this are dead-lettered [input.max_line_bytes; default {MAX_LINE_BYTES}]")
    }

    pub fn poll_seconds() -> String {
        format!(
            "Seconds between scans of watched directories and polls of remote sources \
             (SIGHUP scans and polls at once) \
             [ingest.poll_seconds; default {POLL_SECONDS}]"
        )
    }

    pub fn download_max_bytes() -> String {
        format!(
            "Remote snapshot objects larger than this are refused unread (recorded \
             like any rejected file, not tried again until they change) \
             [ingest.download_max_bytes; default {}]",
            crate::remote::DEFAULT_MAX_BYTES
        )
    }

    pub fn download_timeout() -> String {
        format!(
            "Seconds one remote request may take, from its start to its last byte \
             [ingest.download_timeout_seconds; default {}]",
            crate::remote::DEFAULT_TIMEOUT_SECONDS
        )
    }

    pub fn download_retries() -> String {
        format!(
            "Retries of a failed transfer within a poll (the next poll tries again) \
             [ingest.download_retries; default {}]",
            crate::remote::DEFAULT_RETRIES
        )
    }

    pub fn download_backoff() -> String {
        format!(
            "Seconds before the first retry of a transfer, doubled for each further \
             one [ingest.download_backoff_seconds; default {}]",
            crate::remote::DEFAULT_BACKOFF_SECONDS
        )
    }

    pub fn settle_seconds() -> String {
        format!(
            "Seconds a watched file's size and modification time must stay unchanged \
             before it is loaded [ingest.settle_seconds; default {}]",
            crate::ingest::DEFAULT_SETTLE.as_secs_f64()
        )
    }
}

/// `[input]` / input flags: where lines come from and how they are read.
#[derive(Debug, Default, Clone, Deserialize, Args)]
#[command(next_help_heading = "Input")]
#[serde(deny_unknown_fields)]
pub struct InputSection {
    /// Where lines come from: stdin, files or kafka; default files when files
    /// are given, kafka with --kafka-brokers, else stdin [input.source].
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,
    /// Log files or directories, in order; none or `-` reads stdin. Gzip is
    /// detected and decompressed [input.files].
    #[arg(value_name = "FILE")]
    #[serde(default)]
    pub files: Vec<PathBuf>,
    #[arg(long, value_name = "FORMAT", help = defaults::format())]
    pub format: Option<String>,
    /// For --format regex: a regex with named groups `ip` and `time` (others are
    /// output as fields) [input.regex].
    #[arg(long, value_name = "REGEX")]
    pub regex: Option<String>,
    /// How to read times in JSON fields and regex groups: auto, rfc3339, clf,
    /// epoch, epoch_ms [input.time_format; default auto].
    #[arg(long, value_name = "FORMAT")]
    pub time_format: Option<String>,
    /// Time zone of times written without an offset (HAProxy, ISO times without
    /// `Z`): an IANA name such as `Europe/Berlin` [input.timezone; default UTC].
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    #[arg(long = "ip-field", value_name = "FIELD", help = defaults::ip_fields())]
    #[serde(default)]
    pub ip_fields: Vec<String>,
    #[arg(long = "time-field", value_name = "FIELD", help = defaults::time_fields())]
    #[serde(default)]
    pub time_fields: Vec<String>,
    /// Where the client address comes from: remote (the format's remote address),
    /// xff (X-Forwarded-For past --trusted-proxy), any (first address in the line)
    /// [input.client_ip; default remote].
    #[arg(long, value_name = "FROM")]
    pub client_ip: Option<String>,
    #[arg(long = "xff-field", value_name = "FIELD", help = defaults::xff_fields())]
    #[serde(default)]
    pub xff_fields: Vec<String>,
    /// Proxies whose X-Forwarded-For entries are trusted (repeatable CIDR)
    /// [input.trusted_proxies].
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Event time of lines without a timestamp (marked "time_source":"at")
    /// [input.at].
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Lines without an event time of their own: by-input (default: stdin and
    /// Kafka use the read time, marked "time_source":"read" and counted; files
    /// dead-letter them as "no event time"), read (the read time for every
    /// input), dead-letter. `--at TIME` gives a fixed time instead
    /// [input.missing_time].
    #[arg(long, value_name = "POLICY")]
    pub missing_time: Option<String>,
    /// Lines older than a data set's first snapshot: none (no match, counted
    /// apart; the default) or earliest (answered from the earliest snapshot)
    /// [input.before_first].
    #[arg(long, value_name = "none|earliest")]
    pub before_first: Option<String>,
    #[arg(long, value_name = "BYTES", help = defaults::max_line_bytes())]
    pub max_line_bytes: Option<usize>,
}

/// `[output]` / output flags: where enriched lines and dead letters go (the
/// stdin and files sources; Kafka writes to its topics).
#[derive(Debug, Default, Clone, Deserialize, Args)]
#[command(next_help_heading = "Output")]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    /// Write enriched lines to FILE instead of stdout (`enrich` replaces it,
    /// `run` appends) [output.path].
    #[arg(long = "output", short = 'o', value_name = "FILE")]
    pub path: Option<PathBuf>,
    /// Write dead letters (JSON: source:line, reason, line) to FILE instead of
    /// stderr [output.dead_letter].
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,
    /// The file's spelling of --no-line (default true).
    #[arg(skip)]
    pub include_line: Option<bool>,
    /// Leave the original line out of the output [output.include_line = false].
    #[arg(long)]
    #[serde(skip)]
    pub no_line: bool,
    // Parquet output.
    /// Format of the enriched lines: json, or parquet (typed, zstd-compressed
    /// columns; needs --output); default parquet when --output ends in
    /// `.parquet`, else json [output.format].
    #[arg(
        id = "output_format",
        long = "output-format",
        value_name = "json|parquet",
        env = "WHIPSTREAM_OUTPUT_FORMAT"
    )]
    pub format: Option<String>,
    /// Split a parquet output by event day (UTC): --output is a directory of
    /// `day=YYYY-MM-DD/part-N.parquet` files, read as one table by DuckDB,
    /// Spark and Trino (`enrich` needs it new or empty; `run` adds part files)
    /// [output.partition_by; default none].
    #[arg(long, value_name = "none|day", env = "WHIPSTREAM_PARTITION_BY")]
    pub partition_by: Option<String>,
    // Output schema settings (schema, fields, ECS mappings).
    /// Shape of enriched lines: whipstream (ip, timestamp, fields, each data
    /// set's record under its name) or ecs (Elastic Common Schema: @timestamp,
    /// source.ip, source.geo.*, source.as.*, http.*, url.*; the rest under
    /// whipstream.*) [output.schema; default whipstream].
    #[arg(long, value_name = "whipstream|ecs", env = "WHIPSTREAM_SCHEMA")]
    pub schema: Option<String>,
    /// Only these record fields of a data set (missing ones null), OUT:FIELD
    /// renames, dotted paths reach into nested records, begin/end/datetime
    /// only when listed: `geo=country_code,city` (repeatable, one per data
    /// set) [output.fields].
    #[arg(long = "fields", value_name = "NAME=[OUT:]FIELD,..")]
    #[serde(default)]
    pub fields: Vec<String>,
    /// How data set NAME's record maps to ECS, replacing the recognised
    /// mapping: `geo=geo.country_iso_code:cc,geo.city_name:town` (ECS fields
    /// under source.: geo.*, as.number, as.organization.name; repeatable)
    /// [dataset.ecs].
    #[arg(long = "ecs", value_name = "NAME=ECS_FIELD:FIELD,..")]
    #[serde(skip)]
    pub ecs: Vec<String>,
}

/// `[kafka]` / Kafka flags: the Kafka source and sink.
#[derive(Debug, Default, Clone, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct KafkaSection {
    /// Kafka bootstrap brokers: enrich --input-topic into --output-topic as a
    /// member of consumer group --group-id (no files, --output or --dead-letter
    /// then: they are for files and stdin) [kafka.brokers].
    #[arg(
        long = "kafka-brokers",
        value_name = "HOST:PORT[,..]",
        env = "WHIPSTREAM_KAFKA_BROKERS",
        help_heading = "Kafka"
    )]
    pub brokers: Option<String>,
    /// Topic of raw log lines, one per message [kafka.input_topic].
    #[arg(long, value_name = "TOPIC", help_heading = "Kafka")]
    pub input_topic: Option<String>,
    /// Topic for enriched JSON (the input key and headers are kept)
    /// [kafka.output_topic].
    #[arg(long, value_name = "TOPIC", help_heading = "Kafka")]
    pub output_topic: Option<String>,
    /// Topic for lines that cannot be enriched (original value, reason in
    /// headers); without it dead letters are logged [kafka.dead_letter_topic].
    #[arg(long, value_name = "TOPIC", help_heading = "Kafka")]
    pub dead_letter_topic: Option<String>,
    /// Consumer group [kafka.group_id].
    #[arg(long, value_name = "GROUP", help_heading = "Kafka")]
    pub group_id: Option<String>,
    /// Where a new consumer group starts: beginning, end, or a TIME (the first
    /// message at or after it, by message timestamp) [kafka.from; default
    /// beginning].
    #[arg(long, value_name = "WHERE", help_heading = "Kafka")]
    pub from: Option<String>,
    /// Event time of a message: line (its own time, else --at, else the message
    /// timestamp) or kafka (always the message timestamp) [kafka.time_source;
    /// default line].
    #[arg(long, value_name = "SOURCE", help_heading = "Kafka")]
    pub time_source: Option<String>,
    /// The file's librdkafka settings (a table).
    #[arg(skip)]
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Any librdkafka setting, e.g. security.protocol=SASL_SSL (repeatable); a
    /// key prefixed `consumer.` or `producer.` goes to that client only
    /// [kafka.properties].
    #[arg(
        long = "kafka-property",
        value_name = "KEY=VALUE",
        help_heading = "Kafka"
    )]
    #[serde(skip)]
    pub property_flags: Vec<String>,
}

/// `[http]` / `--listen`: REST lookups, `/metrics`, `/healthz`, `/readyz`.
#[derive(Debug, Default, Clone, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// HTTP listener for REST lookups, /metrics, /healthz, /readyz [http.listen].
    #[arg(long, value_name = "ADDR", env = "WHIPSTREAM_LISTEN")]
    pub listen: Option<String>,
    #[arg(
        long = "http-header-timeout",
        value_name = "SECONDS",
        env = "WHIPSTREAM_HTTP_HEADER_TIMEOUT",
        help = defaults::http_header_timeout()
    )]
    pub header_timeout_seconds: Option<f64>,
    #[arg(
        long = "http-idle-timeout",
        value_name = "SECONDS",
        env = "WHIPSTREAM_HTTP_IDLE_TIMEOUT",
        help = defaults::http_idle_timeout()
    )]
    pub idle_timeout_seconds: Option<f64>,
    #[arg(
        long = "http-max-connections",
        value_name = "N",
        env = "WHIPSTREAM_HTTP_MAX_CONNECTIONS",
        help = defaults::http_max_connections()
    )]
    pub max_connections: Option<usize>,
}

/// `[log]`: diagnostics on stderr (the level is the global `--log`).
#[derive(Debug, Default, Clone, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// Diagnostics format: text or json [log.format; default text].
    #[arg(
        id = "log_format",
        long = "log-format",
        value_name = "FORMAT",
        env = "WHIPSTREAM_LOG_FORMAT"
    )]
    pub format: Option<String>,
    /// A tracing filter, e.g. `info` or `whipstream=debug` (the flag is the
    /// global `--log`).
    #[arg(skip)]
    pub level: Option<String>,
}

/// `[ingest]` / ingest flags: how watched directories are scanned and loaded,
/// and how remote sources' objects are downloaded.
#[derive(Debug, Default, Clone, Deserialize, Args)]
#[command(next_help_heading = "Ingest")]
#[serde(deny_unknown_fields)]
pub struct IngestSection {
    #[arg(long, value_name = "SECONDS", help = defaults::poll_seconds())]
    pub poll_seconds: Option<f64>,
    /// CPU priority of snapshot loads: idle (only what enrichment leaves), low
    /// (nice 10) or normal [ingest.load_priority; default idle].
    #[arg(long, value_name = "PRIORITY")]
    pub load_priority: Option<String>,
    #[arg(long, value_name = "SECONDS", help = defaults::settle_seconds())]
    pub settle_seconds: Option<f64>,
    #[arg(
        long = "download-max-bytes",
        value_name = "BYTES",
        env = "WHIPSTREAM_DOWNLOAD_MAX_BYTES",
        help = defaults::download_max_bytes()
    )]
    pub download_max_bytes: Option<u64>,
    #[arg(
        long = "download-timeout",
        value_name = "SECONDS",
        env = "WHIPSTREAM_DOWNLOAD_TIMEOUT",
        help = defaults::download_timeout()
    )]
    pub download_timeout_seconds: Option<f64>,
    #[arg(
        long = "download-retries",
        value_name = "N",
        env = "WHIPSTREAM_DOWNLOAD_RETRIES",
        help = defaults::download_retries()
    )]
    pub download_retries: Option<u32>,
    #[arg(
        long = "download-backoff",
        value_name = "SECONDS",
        env = "WHIPSTREAM_DOWNLOAD_BACKOFF",
        help = defaults::download_backoff()
    )]
    pub download_backoff_seconds: Option<f64>,
}

/// `[[dataset]]`: one data set, joined under its name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSetSection {
    pub name: String,
    /// The RocksDB store (created empty when missing by `run`).
    pub store: PathBuf,
    /// Where new snapshot files come from while running: a directory,
    /// `s3://BUCKET/PREFIX/` or `http(s)://HOST/PATH/FILE` (see
    /// [`crate::remote::WatchSource`]).
    pub watch: Option<String>,
    /// `[dataset.ecs]`: ECS field (under `source.`) = record field, replacing
    /// the mapping recognised from the data set's fields.
    #[serde(default)]
    pub ecs: BTreeMap<String, String>,
}

/// `--db`: data sets given as flags (added to the file's `[[dataset]]`s).
#[derive(Debug, Default, Clone, Args)]
pub struct DataSetFlags {
    /// Data set store: `DIR` (output key "whip") or `NAME=DIR` (output key NAME);
    /// repeat for several data sets joined in one pass [dataset.name, dataset.store].
    #[arg(long = "db", value_name = "[NAME=]DIR", env = "WHIPSTREAM_DB")]
    pub dbs: Vec<String>,
}

/// `--watch`: watched directories of data sets ([[dataset]] watch).
#[derive(Debug, Default, Clone, Args)]
#[command(next_help_heading = "Daemon")]
pub struct WatchFlags {
    /// Keep data set NAME current from WHERE: a directory of snapshot files,
    /// `s3://BUCKET/PREFIX/` (the objects under it) or `https://HOST/PATH/FILE`
    /// (every new version of it) [dataset.watch].
    #[arg(long = "watch", value_name = "NAME=WHERE")]
    pub watches: Vec<String>,
}
