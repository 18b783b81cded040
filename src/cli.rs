//! The command line: raw arguments (clap) and the commands they run.
//!
//! Arguments are checked here (addresses and times parsed by their types) before any
//! work starts; library errors get their context here and are printed once by
//! `main`. `main.rs` only parses and calls [`run`].

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use arc_swap::ArcSwap;
use clap::{Args, Parser, Subcommand};

use crate::enrich::{
    parse_dataset_spec, BeforeFirst, DataSet, EnrichOptions, Enricher, MissingTime,
};
use crate::index::Index;
use crate::index_file::Check;
use crate::ip::Cidr;
use crate::ip::IpKey;
use crate::kafka::stream::{KafkaConfig, StartFrom, TimeSource};
use crate::load::{load, LoadOptions};
use crate::logline::{ClientIp, Format, LineParser, ParserConfig, TimeFormat, Zone};
use crate::lookup::{run_batch, write_answer, When};
use crate::store::{Mode, Store};
use crate::time::Timestamp;

/// Log enrichment at event time against the history of IP-range data (Whip snapshots).
#[derive(Parser, Debug)]
#[command(name = "whipstream", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log filter for diagnostics on stderr (e.g. `info`, `whipstream=debug`);
    /// default `warn`, for `run` the config's `log.level` or `info`.
    #[arg(long, global = true, env = "WHIPSTREAM_LOG")]
    pub log: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Load Whip snapshot files (JSON lines, optionally gzipped) into a store.
    Load(LoadArgs),
    /// Look up IP addresses, at a time, at the newest snapshot, or over history.
    Lookup(LookupArgs),
    /// Enrich access-log lines (stdin, files, .gz) with the record valid at each
    /// line's own time.
    Enrich(Box<EnrichArgs>),
    /// Serve Whip's REST API (`/ip/<ip>?datetime=..`), `/healthz` and `/metrics`.
    Serve(ServeArgs),
    /// List the snapshots loaded in a store.
    Snapshots(SnapshotsArgs),
    /// Write the data as it was at a time as a Whip snapshot file (loadable again).
    Export(ExportArgs),
    /// Where requests came from: a map (report.svg), report.html and report.json
    /// from enriched lines, with geographic clusters.
    Report(ReportArgs),
    /// Check a store's invariants (exit 1 when a problem is found).
    Verify(VerifyArgs),
    /// List the access-log formats `--format auto` recognises, and how each
    /// gives the client address and the event time.
    Formats,
    /// The daemon: enrich stdin, files or Kafka while loading new snapshots from
    /// watched directories and answering REST lookups (`--config FILE` and/or flags).
    Run(Box<RunArgs>),
}

/// `run`: every flag overrides the config file's key of the same meaning
/// (config/whipstream.toml documents them all).
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The TOML configuration file.
    #[arg(long, value_name = "FILE", env = "WHIPSTREAM_CONFIG")]
    pub config: Option<PathBuf>,
    /// A data set `NAME=DIR` (or `DIR`, named "whip"); repeatable; added to the
    /// file's [[dataset]]s. The store is created when missing.
    #[arg(long = "db", value_name = "[NAME=]DIR")]
    pub dbs: Vec<String>,
    /// Keep data set NAME current from WHERE: a directory of snapshot files,
    /// `s3://BUCKET/PREFIX/` (the objects under it) or `https://HOST/PATH/FILE`
    /// (every new version of it) [dataset.watch].
    #[arg(long = "watch", value_name = "NAME=WHERE")]
    pub watches: Vec<String>,
    /// HTTP listener for REST lookups, /metrics, /healthz, /readyz [http.listen].
    #[arg(long, value_name = "ADDR", env = "WHIPSTREAM_LISTEN")]
    pub listen: Option<String>,
    /// Log files or directories to enrich instead of stdin [input.files].
    #[arg(value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// Line format: auto, combined, common, json, regex [input.format].
    #[arg(long)]
    pub format: Option<String>,
    /// For --format regex: named groups ip and time [input.regex].
    #[arg(long, value_name = "REGEX")]
    pub regex: Option<String>,
    /// Times in JSON fields and regex groups: auto, rfc3339, clf, epoch, epoch_ms
    /// [input.time_format].
    #[arg(long)]
    pub time_format: Option<String>,
    /// Time zone (IANA name) of times written without an offset; default UTC
    /// [input.timezone].
    #[arg(long, value_name = "ZONE")]
    pub timezone: Option<String>,
    /// JSON field with the client address (repeatable) [input.ip_fields].
    #[arg(long = "ip-field", value_name = "FIELD")]
    pub ip_fields: Vec<String>,
    /// JSON field with the event time (repeatable) [input.time_fields].
    #[arg(long = "time-field", value_name = "FIELD")]
    pub time_fields: Vec<String>,
    /// Client address from: remote, xff, any [input.client_ip].
    #[arg(long)]
    pub client_ip: Option<String>,
    /// X-Forwarded-For field (repeatable) [input.xff_fields].
    #[arg(long = "xff-field", value_name = "FIELD")]
    pub xff_fields: Vec<String>,
    /// Lines longer than this are dead-lettered [input.max_line_bytes].
    #[arg(long, value_name = "BYTES")]
    pub max_line_bytes: Option<usize>,
    /// Trusted proxy CIDR for --client-ip xff (repeatable) [input.trusted_proxies].
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<String>,
    /// Event time of lines without one [input.at].
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    #[command(flatten)]
    pub time: TimeArgs,
    /// Leave the original line out [output.include_line = false].
    #[arg(long)]
    pub no_line: bool,
    /// Append enriched lines to FILE instead of stdout [output.path].
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Append dead letters to FILE instead of stderr [output.dead_letter].
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,
    /// Seconds between scans of watched directories [ingest.poll_seconds].
    #[arg(long, value_name = "SECONDS")]
    pub poll_seconds: Option<f64>,
    /// Seconds a watched file's size and modification time must stay unchanged
    /// before it is loaded (default 2) [ingest.settle_seconds].
    #[arg(long, value_name = "SECONDS")]
    pub settle_seconds: Option<f64>,
    /// CPU priority of snapshot loads: idle (only what enrichment leaves),
    /// low (nice 10) or normal [ingest.load_priority].
    #[arg(long, value_name = "PRIORITY")]
    pub load_priority: Option<String>,
    /// Diagnostics format: text or json [log.format].
    #[arg(long, env = "WHIPSTREAM_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Kafka source and sink [kafka.brokers]; see `enrich --help` for the rest.
    #[arg(
        long,
        value_name = "HOST:PORT[,..]",
        env = "WHIPSTREAM_KAFKA_BROKERS",
        help_heading = "Kafka"
    )]
    pub kafka_brokers: Option<String>,
    /// [kafka.input_topic]
    #[arg(long, value_name = "TOPIC", help_heading = "Kafka")]
    pub input_topic: Option<String>,
    /// [kafka.output_topic]
    #[arg(long, value_name = "TOPIC", help_heading = "Kafka")]
    pub output_topic: Option<String>,
    /// [kafka.dead_letter_topic]
    #[arg(long, value_name = "TOPIC", help_heading = "Kafka")]
    pub dead_letter_topic: Option<String>,
    /// [kafka.group_id]
    #[arg(long, value_name = "GROUP", help_heading = "Kafka")]
    pub group_id: Option<String>,
    /// KEY=VALUE librdkafka setting (repeatable) [kafka.properties].
    #[arg(
        long = "kafka-property",
        value_name = "KEY=VALUE",
        help_heading = "Kafka"
    )]
    pub kafka_properties: Vec<String>,
    /// beginning, end or a TIME [kafka.from].
    #[arg(long, help_heading = "Kafka")]
    pub from: Option<String>,
    /// line or kafka [kafka.time_source].
    #[arg(long, help_heading = "Kafka")]
    pub time_source: Option<String>,
}

/// Event-time settings, the same for `enrich` and `run` (the file's keys in
/// brackets).
#[derive(Args, Debug, Default, Clone)]
pub struct TimeArgs {
    /// Lines without an event time of their own: by-input (default: stdin and
    /// Kafka use the read time, marked "time_source":"read" and counted; files
    /// dead-letter them as "no event time"), read (the read time for every
    /// input), dead-letter. `--at TIME` gives a fixed time instead
    /// [input.missing_time].
    #[arg(long, value_name = "POLICY", value_parser = MissingTime::parse)]
    pub missing_time: Option<MissingTime>,
    /// Lines older than a data set's first snapshot: none (no match, counted
    /// apart; the default) or earliest (answered from the earliest snapshot)
    /// [input.before_first].
    #[arg(long, value_name = "none|earliest", value_parser = BeforeFirst::parse)]
    pub before_first: Option<BeforeFirst>,
}

#[derive(Args, Debug)]
pub struct DbArg {
    /// Store directory (RocksDB); `load` creates it.
    #[arg(long, value_name = "DIR", env = "WHIPSTREAM_DB")]
    pub db: PathBuf,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Whip snapshot files (JSON lines), MaxMind DB files (*.mmdb), range CSVs
    /// (*.csv[.gz], or any file with --csv), or directories (every *.json[l][.gz]
    /// and *.mmdb in them).
    #[arg(required = true, value_name = "FILE_OR_DIR")]
    pub inputs: Vec<PathBuf>,
    /// Replace already loaded snapshots that have the same datetime.
    #[arg(long)]
    pub replace: bool,
    /// Never draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// The snapshot datetime of CSV files (required for them) and of MaxMind DB
    /// files (default: their build time).
    #[arg(long, value_name = "TIME")]
    pub datetime: Option<Timestamp>,
    /// Read the files as range CSVs: `begin,end,field...` rows, addresses as text
    /// or integers, with or without a header.
    #[arg(long)]
    pub csv: bool,
    /// CSV column names (implies --csv), e.g. `begin,end,country`; the range is
    /// in begin/end (or start/end, ip_from/ip_to), else the first two columns.
    #[arg(long, value_name = "NAME,NAME,...", value_delimiter = ',')]
    pub columns: Vec<String>,
    /// The files are parts of one snapshot (e.g. a database's IPv4 and IPv6
    /// files); their ranges must not overlap.
    #[arg(long)]
    pub one_snapshot: bool,
}

#[derive(Args, Debug)]
pub struct LookupArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Answer with the snapshot valid at this time (RFC 3339 or a date).
    #[arg(long, value_name = "TIME", conflicts_with = "history")]
    pub at: Option<Timestamp>,
    /// Print every version of the record, newest first, as {"history": [...]}.
    #[arg(long)]
    pub history: bool,
    /// Read queries from stdin, one per line: {"ip": "..", "t": ".."} (t optional)
    /// or a bare address.
    #[arg(long, conflicts_with_all = ["at", "history", "ips"])]
    pub batch: bool,
    /// Addresses to look up (IPv4, IPv6, ::ffff:a.b.c.d).
    #[arg(value_name = "IP", required_unless_present = "batch")]
    pub ips: Vec<IpKey>,
}

#[derive(Args, Debug)]
pub struct EnrichArgs {
    /// Data set store: `DIR` (output key "whip") or `NAME=DIR` (output key NAME);
    /// repeat for several data sets joined in one pass.
    #[arg(
        long = "db",
        value_name = "[NAME=]DIR",
        required = true,
        env = "WHIPSTREAM_DB"
    )]
    pub dbs: Vec<String>,
    /// Log files or directories, in order; none or `-` reads stdin. Gzip is
    /// detected and decompressed.
    #[arg(value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// Line format: auto (recognised per line, and per file for W3C headers; see
    /// `whipstream formats`), or one by name: combined, common, json, w3c,
    /// haproxy, elb, squid, envoy, regex.
    #[arg(long, default_value = "auto", value_parser = Format::parse)]
    pub format: Format,
    /// Time zone of times written without an offset (HAProxy, ISO times without
    /// `Z`): an IANA name such as `Europe/Berlin`. Default UTC.
    #[arg(long, value_name = "ZONE", value_parser = Zone::parse)]
    pub timezone: Option<Zone>,
    /// For --format regex: a regex with named groups `ip` and `time` (others are
    /// output as fields).
    #[arg(long, value_name = "REGEX")]
    pub regex: Option<String>,
    /// How to read times in JSON fields and regex groups: auto, rfc3339, clf,
    /// epoch, epoch_ms.
    #[arg(long, default_value = "auto")]
    pub time_format: TimeFormat,
    /// JSON field with the client address (repeatable; dotted paths reach into
    /// objects). Default: remote_addr, client_ip, clientip, ip, remote_ip, client,
    /// src_ip, source.ip, client.ip.
    #[arg(long = "ip-field", value_name = "FIELD")]
    pub ip_fields: Vec<String>,
    /// JSON field with the event time (repeatable). Default: time, timestamp,
    /// @timestamp, time_local, ts, date.
    #[arg(long = "time-field", value_name = "FIELD")]
    pub time_fields: Vec<String>,
    /// Where the client address comes from: remote (the format's remote address),
    /// xff (X-Forwarded-For past --trusted-proxy), any (first address in the line).
    #[arg(long, default_value = "remote", value_parser = ClientIp::parse)]
    pub client_ip: ClientIp,
    /// The X-Forwarded-For field: a JSON field or regex group name, or for
    /// combined lines the 1-based index of the quoted field after the user agent.
    /// Default: x_forwarded_for, http_x_forwarded_for, xff; extra field 1.
    #[arg(long = "xff-field", value_name = "FIELD")]
    pub xff_fields: Vec<String>,
    /// Proxies whose X-Forwarded-For entries are trusted (repeatable CIDR).
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<Cidr>,
    /// Event time of lines without a timestamp (marked "time_source":"at").
    #[arg(long, value_name = "TIME")]
    pub at: Option<Timestamp>,
    #[command(flatten)]
    pub time: TimeArgs,
    /// Leave the original line out of the output.
    #[arg(long)]
    pub no_line: bool,
    /// Write enriched lines to FILE instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write dead letters (JSON: source:line, reason, line) to FILE instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub dead_letter: Option<PathBuf>,
    /// Lines longer than this are dead-lettered.
    #[arg(long, default_value_t = 64 * 1024, value_name = "BYTES")]
    pub max_line_bytes: usize,
    /// Exit with status 3 when any line was dead-lettered.
    #[arg(long)]
    pub strict: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Never draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,

    /// Kafka bootstrap brokers: enrich --input-topic into --output-topic as a
    /// member of consumer group --group-id (no FILE, --output, --dead-letter,
    /// --strict or --workers then: they are for files and stdin).
    #[arg(long, value_name = "HOST:PORT[,..]", env = "WHIPSTREAM_KAFKA_BROKERS", help_heading = "Kafka",
          requires_all = ["input_topic", "output_topic", "group_id"],
          conflicts_with_all = ["inputs", "output", "dead_letter", "strict", "workers"])]
    pub kafka_brokers: Option<String>,
    /// Topic of raw log lines, one per message.
    #[arg(
        long,
        value_name = "TOPIC",
        help_heading = "Kafka",
        requires = "kafka_brokers"
    )]
    pub input_topic: Option<String>,
    /// Topic for enriched JSON (the input key and headers are kept).
    #[arg(
        long,
        value_name = "TOPIC",
        help_heading = "Kafka",
        requires = "kafka_brokers"
    )]
    pub output_topic: Option<String>,
    /// Topic for lines that cannot be enriched (original value, reason in headers);
    /// without it dead letters are logged.
    #[arg(
        long,
        value_name = "TOPIC",
        help_heading = "Kafka",
        requires = "kafka_brokers"
    )]
    pub dead_letter_topic: Option<String>,
    /// Consumer group.
    #[arg(
        long,
        value_name = "GROUP",
        help_heading = "Kafka",
        requires = "kafka_brokers"
    )]
    pub group_id: Option<String>,
    /// Any librdkafka setting, e.g. security.protocol=SASL_SSL (repeatable); a
    /// key prefixed `consumer.` or `producer.` goes to that client only.
    #[arg(
        long = "kafka-property",
        value_name = "KEY=VALUE",
        help_heading = "Kafka",
        requires = "kafka_brokers"
    )]
    pub kafka_properties: Vec<String>,
    /// Where a new consumer group starts: beginning, end, or a TIME (the first
    /// message at or after it, by message timestamp).
    #[arg(long, default_value = "beginning", value_parser = StartFrom::parse, help_heading = "Kafka",
          requires = "kafka_brokers")]
    pub from: StartFrom,
    /// Event time of a message: line (its own time, else --at, else the message
    /// timestamp) or kafka (always the message timestamp).
    #[arg(long, default_value = "line", value_parser = TimeSource::parse, help_heading = "Kafka",
          requires = "kafka_brokers")]
    pub time_source: TimeSource,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Address to listen on (port 0 picks a free port; the address is logged).
    #[arg(long, default_value = "127.0.0.1:8080", env = "WHIPSTREAM_LISTEN")]
    pub listen: SocketAddr,
}

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// One JSON object per snapshot instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// The time: the snapshot in effect then is written (default: the newest).
    #[arg(long, value_name = "TIME")]
    pub at: Option<Timestamp>,
    /// Write to FILE instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Enriched JSON lines (the output of `enrich`); none reads stdin.
    #[arg(value_name = "FILE")]
    pub inputs: Vec<PathBuf>,
    /// The data set to map (default: the one whose records have coordinates or
    /// countries; networks come from the one with ASN fields).
    #[arg(long, value_name = "NAME")]
    pub data_set: Option<String>,
    /// A store the log was enriched from, as given to `enrich` (`NAME=DIR`, or
    /// `DIR` for "whip"); repeatable. Every client is also looked up in its
    /// newest snapshot: what the latest data would have placed elsewhere.
    #[arg(long = "db", value_name = "[NAME=]DIR")]
    pub dbs: Vec<String>,
    /// Clusters are groups of locations all within this distance of each other.
    #[arg(long, value_name = "KM", default_value_t = 100.0)]
    pub within: f64,
    /// Rows per table.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
    /// Directory for report.html, report.svg and report.json.
    #[arg(long, short, value_name = "DIR", default_value = ".")]
    pub output_dir: PathBuf,
    /// Never draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub db: DbArg,
}

/// Runs a parsed command line; prints errors; returns the exit code.
pub fn run(cli: Cli) -> ExitCode {
    if let Command::Run(a) = cli.command {
        return report(cmd_run(*a, cli.log));
    }
    init_logging(cli.log.as_deref().unwrap_or("warn"), false);
    report(match cli.command {
        Command::Load(a) => cmd_load(a),
        Command::Lookup(a) => cmd_lookup(a),
        Command::Enrich(a) => cmd_enrich(*a),
        Command::Serve(a) => cmd_serve(a),
        Command::Snapshots(a) => cmd_snapshots(a),
        Command::Verify(a) => cmd_verify(a),
        Command::Export(a) => cmd_export(a),
        Command::Report(a) => cmd_report(a),
        Command::Formats => cmd_formats(),
        Command::Run(_) => unreachable!("handled above"),
    })
}

fn report(result: Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("whipstream: error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each said once: a message that
/// already contains its cause's text (`path: {source}`) does not get it again.
fn error_chain(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn init_logging(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

fn cmd_run(a: RunArgs, log: Option<String>) -> Result<ExitCode> {
    let file = match &a.config {
        Some(path) => crate::config::FileConfig::read(path)?,
        None => crate::config::FileConfig::default(),
    };
    let flags = crate::config::RunFlags {
        dbs: a.dbs,
        watches: a.watches,
        listen: a.listen,
        files: a.inputs,
        format: a.format,
        regex: a.regex,
        time_format: a.time_format,
        timezone: a.timezone,
        ip_fields: a.ip_fields,
        time_fields: a.time_fields,
        client_ip: a.client_ip,
        xff_fields: a.xff_fields,
        max_line_bytes: a.max_line_bytes,
        trusted_proxies: a.trusted_proxies,
        at: a.at,
        missing_time: a.time.missing_time,
        before_first: a.time.before_first,
        no_line: a.no_line,
        output: a.output,
        dead_letter: a.dead_letter,
        kafka_brokers: a.kafka_brokers,
        input_topic: a.input_topic,
        output_topic: a.output_topic,
        dead_letter_topic: a.dead_letter_topic,
        group_id: a.group_id,
        kafka_properties: a.kafka_properties,
        from: a.from,
        time_source: a.time_source,
        log_format: a.log_format,
        poll_seconds: a.poll_seconds,
        settle_seconds: a.settle_seconds,
        load_priority: a.load_priority,
    };
    let settings = file.resolve(&flags)?;
    let filter = log
        .or(settings.log_level.clone())
        .unwrap_or_else(|| "info".into());
    init_logging(
        &filter,
        settings.log_format == crate::config::LogFormat::Json,
    );
    crate::daemon::run(settings)
}

fn cmd_load(a: LoadArgs) -> Result<ExitCode> {
    let summary = load(
        &a.db.db,
        &a.inputs,
        LoadOptions {
            replace: a.replace,
            progress: !a.no_progress,
            no_compaction: false,
            datetime: a.datetime,
            one_snapshot: a.one_snapshot,
            csv: (a.csv || !a.columns.is_empty()).then(|| crate::formats::csv::CsvOptions {
                columns: (!a.columns.is_empty()).then(|| a.columns.clone()),
            }),
        },
    )
    .context("load failed; the store is unchanged")?;
    let mut out = io::stdout().lock();
    writeln!(out, "{summary}")?;
    Ok(ExitCode::SUCCESS)
}

/// The store's index: its persisted file mapped after a header check, or
/// rebuilt from the store when that file is missing, stale or corrupt.
/// Commands that go on to read much of it (a batch, an enrichment, an export)
/// check every section's checksum too; a few lookups and `serve` do not (`serve`
/// checks in the background, see [`crate::follow`]).
fn open_index(db: &std::path::Path, check: Check) -> Result<Index> {
    Ok(crate::index_file::open(db, check)?)
}

fn cmd_lookup(a: LookupArgs) -> Result<ExitCode> {
    let check = if a.batch { Check::Full } else { Check::Header };
    let index = open_index(&a.db.db, check)?;
    let stdout = io::stdout();
    if a.batch {
        let stdin = io::stdin().lock();
        let stats = run_batch(
            &index,
            &mut io::BufReader::with_capacity(256 * 1024, stdin),
            stdout.lock(),
        )?;
        tracing::info!(
            queries = stats.queries,
            matched = stats.matched,
            errors = stats.errors,
            "batch done"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let when = match (a.at, a.history) {
        (Some(t), _) => When::At(t),
        (None, true) => When::History,
        (None, false) => When::Latest,
    };
    let mut out = Vec::with_capacity(256);
    for ip in a.ips {
        write_answer(&index, ip, when, &mut out);
        out.push(b'\n');
    }
    stdout.lock().write_all(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn open_datasets(specs: &[String]) -> Result<Vec<DataSet>> {
    let mut datasets: Vec<DataSet> = Vec::new();
    for spec in specs {
        let (name, dir) = parse_dataset_spec(spec).map_err(|e| anyhow::anyhow!("--db {e}"))?;
        if datasets.iter().any(|d| d.name == name) {
            bail!("data set {name:?} given twice (name them: --db geo=DIR --db asn=DIR2)");
        }
        let index = open_index(&dir, Check::Full).with_context(|| format!("data set {name:?}"))?;
        datasets.push(DataSet {
            name,
            index: Arc::new(ArcSwap::from_pointee(index)),
        });
    }
    Ok(datasets)
}

fn parser_config(a: &EnrichArgs) -> Result<ParserConfig> {
    let mut c = ParserConfig {
        format: a.format,
        time_format: a.time_format,
        zone: a.timezone.clone().unwrap_or_default(),
        client_ip: a.client_ip,
        trusted_proxies: a.trusted_proxies.clone(),
        ..ParserConfig::default()
    };
    if let Some(re) = &a.regex {
        c.use_regex(regex::Regex::new(re).context("--regex")?);
    }
    if !a.ip_fields.is_empty() {
        c.ip_fields = a.ip_fields.clone();
    }
    if !a.time_fields.is_empty() {
        c.time_fields = a.time_fields.clone();
    }
    if !a.xff_fields.is_empty() {
        c.xff_fields = a.xff_fields.clone();
    }
    Ok(c)
}

fn enrich_options(a: &EnrichArgs) -> Result<EnrichOptions> {
    Ok(EnrichOptions {
        include_line: !a.no_line,
        missing_time: MissingTime::from_settings(a.at, a.time.missing_time)
            .map_err(|e| anyhow::anyhow!("--at, --missing-time: {e}"))?,
        before_first: a.time.before_first.unwrap_or_default(),
        max_line_bytes: a.max_line_bytes,
    })
}

fn cmd_enrich_kafka(a: EnrichArgs, brokers: String) -> Result<ExitCode> {
    let parser = LineParser::new(parser_config(&a)?).map_err(|e| anyhow::anyhow!(e))?;
    let properties = a
        .kafka_properties
        .iter()
        .map(|p| crate::kafka::stream::parse_property(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--kafka-property {e}"))?;
    let config = KafkaConfig {
        brokers,
        input_topic: a.input_topic.clone().context("--input-topic is required")?,
        output_topic: a
            .output_topic
            .clone()
            .context("--output-topic is required")?,
        dead_letter_topic: a.dead_letter_topic.clone(),
        group_id: a.group_id.clone().context("--group-id is required")?,
        properties,
        start_from: a.from,
        time_source: a.time_source,
        commit_interval: KafkaConfig::COMMIT_INTERVAL,
        drain_timeout: KafkaConfig::DRAIN_TIMEOUT,
    };
    let enricher = Arc::new(Enricher::new(
        parser,
        open_datasets(&a.dbs)?,
        enrich_options(&a)?,
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let summary = runtime
        .block_on(crate::kafka::stream::run(
            config,
            enricher.clone(),
            shutdown_signal(),
        ))
        .context("kafka enrichment failed")?;
    eprintln!(
        "whipstream enrich: {} messages consumed, {} enriched ({}), {} dead-lettered, {} deliveries retried, {} commits",
        summary.consumed, summary.enriched, enricher.describe_matches(&summary.counts),
        summary.dead_lettered, summary.redelivered, summary.commits
    );
    for w in enricher.warnings(&summary.counts) {
        eprintln!("whipstream enrich: warning: {w}");
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_enrich(a: EnrichArgs) -> Result<ExitCode> {
    if let Some(brokers) = a.kafka_brokers.clone() {
        return cmd_enrich_kafka(a, brokers);
    }
    let parser = LineParser::new(parser_config(&a)?).map_err(|e| anyhow::anyhow!(e))?;
    let inputs = crate::source::expand(&a.inputs)?;
    let total_bytes: u64 = inputs
        .iter()
        .filter_map(|i| match i {
            crate::source::Input::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            crate::source::Input::Stdin => None,
        })
        .sum();
    let reads_stdin = inputs.contains(&crate::source::Input::Stdin);
    let only_stdin = inputs.iter().all(|i| *i == crate::source::Input::Stdin);
    let options = enrich_options(&a)?;
    // SIGINT/SIGTERM end the input as its end would: what was read is enriched,
    // written and counted in the summary.
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_signal(stop.clone())?;
    // Reading starts first and goes on while the stores open.
    let reading = crate::pipeline::start_reading(
        crate::source::Chunker::new(inputs, a.max_line_bytes).stop_on(stop.clone()),
    )?;
    let datasets = open_datasets(&a.dbs)?;
    let enricher = Arc::new(Enricher::new(parser, datasets, options));
    let workers = a.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });

    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(io::BufWriter::with_capacity(1 << 20, io::stdout().lock())),
    };
    let mut dead: Box<dyn Write> = match &a.dead_letter {
        Some(p) => Box::new(io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(io::BufWriter::new(io::stderr())),
    };
    let bar = crate::progress::bytes_bar(!a.no_progress && !reads_stdin, total_bytes, "lines");
    let mut update = |bytes: u64, lines: u64| {
        if let Some(b) = &bar {
            b.update(bytes, lines);
        }
    };
    let summary = crate::pipeline::run(
        reading,
        enricher.clone(),
        workers,
        &mut out,
        &mut dead,
        Some(&mut update),
    )?;
    if let Some(b) = &bar {
        b.finish();
    }
    drop(out);
    drop(dead);

    let c = &summary.counts;
    let headers = if c.headers > 0 {
        format!(", {} header lines", c.headers)
    } else {
        String::new()
    };
    eprintln!(
        "whipstream enrich: {} lines read, {} enriched ({}), {} dead-lettered{} in {:.2} s ({:.0} lines/s)",
        c.read,
        c.enriched,
        enricher.describe_matches(c),
        c.dead_lettered,
        headers,
        summary.seconds,
        c.read as f64 / summary.seconds.max(1e-9)
    );
    for w in enricher.warnings(c) {
        eprintln!("whipstream enrich: warning: {w}");
    }
    if stop.load(Ordering::SeqCst) && !only_stdin {
        bail!("stopped by a signal before the end of the input (the summary counts what was done)");
    }
    if !summary.input_errors.is_empty() {
        bail!(
            "{} input(s) could not be read to the end: {}",
            summary.input_errors.len(),
            summary.input_errors.join("; ")
        );
    }
    if a.strict && c.dead_lettered > 0 {
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_formats() -> Result<ExitCode> {
    let mut out = io::stdout().lock();
    out.write_all(crate::logline::catalog::markdown().as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn cmd_serve(a: ServeArgs) -> Result<ExitCode> {
    let index = open_index(&a.db.db, Check::Header)?;
    let shared = Arc::new(ArcSwap::from_pointee(index));
    // Loads by other processes are picked up from the index file they write.
    let stop_following = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follower =
        crate::follow::spawn("default", &a.db.db, shared.clone(), stop_following.clone());
    let metrics = crate::telemetry::install_prometheus()
        .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("cannot listen on {}", a.listen))?;
        let local = listener.local_addr()?;
        eprintln!(
            "whipstream: serving {} on http://{local}",
            a.db.db.display()
        );
        let state = crate::http::AppState::single(shared, Some(metrics));
        crate::http::serve(listener, state, shutdown_signal()).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    stop_following.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = follower.join();
    Ok(ExitCode::SUCCESS)
}

/// Raises `stop` on the first SIGINT or SIGTERM (a thread of its own); returns
/// once the handlers are in place, so that a signal never kills the process
/// without its summary.
fn stop_on_signal(stop: Arc<AtomicBool>) -> Result<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
    std::thread::Builder::new()
        .name("whipstream-signals".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            runtime.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let handlers = signal(SignalKind::interrupt())
                    .and_then(|int| Ok((int, signal(SignalKind::terminate())?)));
                let (mut int, mut term) = match handlers {
                    Ok(h) => h,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                tokio::select! {
                    _ = int.recv() => {},
                    _ = term.recv() => {},
                }
                stop.store(true, Ordering::SeqCst);
            });
        })?;
    ready_rx
        .recv()
        .context("the signal handler thread ended")?
        .context("cannot install the signal handlers")
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn cmd_snapshots(a: SnapshotsArgs) -> Result<ExitCode> {
    let index = open_index(&a.db.db, Check::Header)?;
    let mut out = io::stdout().lock();
    if a.json {
        for s in index.snapshots() {
            serde_json::to_writer(&mut out, &s.meta)?;
            writeln!(out)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<26} {:>9} {:<14} {:<22} FILE",
        "DATETIME", "RANGES", "SHA256", "LOADED AT"
    )?;
    for s in index.snapshots() {
        let m = &s.meta;
        writeln!(
            out,
            "{:<26} {:>9} {:<14} {:<22} {}",
            m.datetime,
            m.ranges,
            m.sha256.get(..12).unwrap_or(&m.sha256),
            m.loaded_at.get(..19).unwrap_or(&m.loaded_at),
            m.file
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_report(a: ReportArgs) -> Result<ExitCode> {
    if !(a.within.is_finite() && a.within > 0.0) {
        bail!("--within must be a positive number of kilometres");
    }
    let options = crate::report::ReportOptions {
        dataset: a.data_set,
        within_km: a.within,
        top: a.top,
        output_dir: a.output_dir,
        progress: !a.no_progress,
    };
    let datasets = open_datasets(&a.dbs)?;
    let indexes: Vec<(&str, Arc<Index>)> = datasets
        .iter()
        .map(|d| (d.name.as_str(), d.index.load_full()))
        .collect();
    let stores: Vec<crate::report::Store> = indexes
        .iter()
        .map(|(name, index)| crate::report::Store { name, index })
        .collect();
    let s = crate::report::run(&a.inputs, &options, &stores)?;
    for note in &s.notes {
        eprintln!("whipstream report: {note}");
    }
    let latest = match s.latest_differs {
        Some((requests, share)) => format!(
            ", {requests} requests ({:.2} %) placed elsewhere by the latest data",
            100.0 * share
        ),
        None => String::new(),
    };
    eprintln!(
        "whipstream report: {} lines, {} matched, {} locations, {} clusters ({}), {} moved clients{latest}; wrote {}",
        s.lines,
        s.matched,
        s.locations,
        s.clusters,
        s.method.name(),
        s.moved_clients,
        s.files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

fn cmd_export(a: ExportArgs) -> Result<ExitCode> {
    let index = open_index(&a.db.db, Check::Full)?;
    let at = a.at.unwrap_or(Timestamp::MAX);
    let mut out: Box<dyn Write> = match &a.output {
        Some(p) => Box::new(io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => Box::new(io::BufWriter::new(io::stdout().lock())),
    };
    match crate::export::write_snapshot_at(&index, at, &mut out)? {
        Some(e) => {
            eprintln!(
                "whipstream export: {} ranges of the snapshot {}",
                e.ranges, e.datetime
            );
            Ok(ExitCode::SUCCESS)
        }
        None => match a.at {
            Some(t) => bail!("no snapshot at or before {}", t.to_rfc3339()),
            None => bail!("the store has no snapshots"),
        },
    }
}

fn cmd_verify(a: VerifyArgs) -> Result<ExitCode> {
    let store = Store::open(&a.db.db, Mode::ReadOnly)?;
    let history = store
        .read_history()
        .context("the store cannot be read back")?;
    let mut problems = history.check(50);
    let unknown = store.unknown_keys()?;
    if unknown > 0 {
        problems.push(format!("{unknown} keys of unknown kind"));
    }
    let index = match crate::index_file::verify(&a.db.db, &history, store.state()?) {
        crate::index_file::Status::Ok { bytes } => {
            format!("index file ok ({:.1} MB)", bytes as f64 / 1e6)
        }
        crate::index_file::Status::WillRebuild(why) => {
            format!("index file to be rebuilt on the next open ({why})")
        }
        crate::index_file::Status::Bad(why) => {
            problems.push(format!("index file: {why} (rebuilt on the next open)"));
            String::new()
        }
    };
    let mut out = io::stdout().lock();
    if problems.is_empty() {
        writeln!(
            out,
            "ok: {} snapshots, {} pieces, {} changes, {} records, {} payloads; {index}",
            history.snapshot_count(),
            history.piece_count(),
            history.change_count(),
            history.line_count(),
            history.payload_count()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    for p in &problems {
        writeln!(out, "problem: {p}")?;
    }
    bail!(
        "{} problem(s) found in {}",
        problems.len(),
        a.db.db.display()
    )
}
