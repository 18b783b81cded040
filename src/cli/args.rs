//! The arguments of every command (clap). The settings of a flow are not here:
//! `enrich` and `run` flatten [`FlowFlags`] and [`DaemonFlags`], defined once
//! beside the config file's keys ([`crate::config::sections`]).

use std::path::PathBuf;

use clap::Args;

use crate::config::{DaemonFlags, FlowFlags};
use crate::ip::IpKey;
use crate::time::Timestamp;

/// `enrich`: a flow that ends with its input.
#[derive(Args, Debug)]
pub struct EnrichArgs {
    #[command(flatten)]
    pub flow: FlowFlags,
    /// Exit with status 3 when any line was dead-lettered.
    #[arg(long, conflicts_with = "brokers", help_heading = "Run")]
    pub strict: bool,
    /// Worker threads (default: one per core).
    #[arg(long, conflicts_with = "brokers", help_heading = "Run")]
    pub workers: Option<usize>,
    /// Never draw a progress bar.
    #[arg(long, help_heading = "Run")]
    pub no_progress: bool,
}

/// `run`: a flow that runs until stopped; every flag overrides the config
/// file's key of the same meaning (config/whipstream.toml documents them all).
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The TOML configuration file.
    #[arg(long, value_name = "FILE", env = "WHIPSTREAM_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub flow: FlowFlags,
    #[command(flatten)]
    pub daemon: DaemonFlags,
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
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// The listener (127.0.0.1:8080 unless `--listen`; port 0 picks a free
    /// port, the address is logged) and its connection limits.
    #[command(flatten)]
    pub http: crate::config::HttpSection,
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

#[derive(Args, Debug)]
pub struct RepairArgs {
    #[command(flatten)]
    pub db: DbArg,
}
