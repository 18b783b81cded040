//! The command line: raw arguments (clap) and the commands they run, one file
//! per command body.
//!
//! Arguments are checked before any work starts (a flow's through the one
//! resolver in [`crate::config`]); library errors get their context here and
//! are printed once by [`run`]. `main.rs` only parses and calls [`run`].
//! Nothing below this layer imports it.

pub mod args;
mod enrich;
mod export;
mod load;
mod lookup;
mod repair;
mod report;
mod run;
mod serve;
mod snapshots;
mod verify;

use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use clap::{Parser, Subcommand};

use crate::config::spec::parse_db;
use crate::enrich::DataSet;
use crate::index::Index;
use crate::index_file::Check;
pub use args::*;

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
    /// Serve Whip's REST API (`/ip/<ip>?datetime=..`), `/healthz` and `/metrics`
    /// (on 127.0.0.1:8080 unless `--listen`; the bracketed keys are `run`'s).
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
    /// Repair a damaged store in place with RocksDB's repair (copy the directory
    /// first) and report what it kept (exit 1 when what was kept is inconsistent).
    Repair(RepairArgs),
    /// List the access-log formats `--format auto` recognises, and how each
    /// gives the client address and the event time.
    Formats,
    /// The daemon: enrich stdin, files or Kafka while loading new snapshots from
    /// watched directories and answering REST lookups (`--config FILE` and/or flags).
    Run(Box<RunArgs>),
}

/// Runs a parsed command line; prints errors; returns the exit code.
pub fn run(cli: Cli) -> ExitCode {
    if let Command::Run(a) = cli.command {
        return report(run::cmd_run(*a, cli.log));
    }
    init_logging(cli.log.as_deref().unwrap_or("warn"), false);
    report(match cli.command {
        Command::Load(a) => load::cmd_load(a),
        Command::Lookup(a) => lookup::cmd_lookup(a),
        Command::Enrich(a) => enrich::cmd_enrich(*a),
        Command::Serve(a) => serve::cmd_serve(a),
        Command::Snapshots(a) => snapshots::cmd_snapshots(a),
        Command::Verify(a) => verify::cmd_verify(a),
        Command::Repair(a) => repair::cmd_repair(a),
        Command::Export(a) => export::cmd_export(a),
        Command::Report(a) => report::cmd_report(a),
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

pub(crate) fn init_logging(filter: &str, json: bool) {
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

/// The store's index: its persisted file mapped after a header check, or
/// rebuilt from the store when that file is missing, stale or corrupt.
/// Commands that go on to read much of it (a batch, an enrichment, an export)
/// check every section's checksum too; a few lookups and `serve` do not (`serve`
/// checks in the background, see [`crate::follow`]).
pub(crate) fn open_index(db: &std::path::Path, check: Check) -> Result<Index> {
    Ok(crate::index_file::open(db, check)?)
}

fn cmd_formats() -> Result<ExitCode> {
    let mut out = io::stdout().lock();
    out.write_all(crate::logline::catalog::markdown().as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// The stores given as `--db [NAME=]DIR`, each index checked whole.
fn open_datasets(specs: &[String]) -> Result<Vec<DataSet>> {
    let mut datasets: Vec<DataSet> = Vec::new();
    for spec in specs {
        let db = parse_db(spec).map_err(|e| anyhow::anyhow!("--db {e}"))?;
        if datasets.iter().any(|d| d.name == db.name) {
            anyhow::bail!(
                "data set {:?} given twice (name them: --db geo=DIR --db asn=DIR2)",
                db.name
            );
        }
        let index =
            open_index(&db.dir, Check::Full).with_context(|| format!("data set {:?}", db.name))?;
        datasets.push(DataSet {
            name: db.name,
            index: Arc::new(ArcSwap::from_pointee(index)),
        });
    }
    Ok(datasets)
}
