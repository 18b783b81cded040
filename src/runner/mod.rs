//! The one runner of a flow, for `enrich` and `run` alike: data sets opened (and
//! kept current from watched directories), the REST listener, then the flow's
//! source -> parse -> join -> sink ([`lines`] for stdin and files, or the Kafka
//! group member), and one summary.
//!
//! The commands differ only by the [`Lifetime`] of their flow:
//! - [`Lifetime::UntilInputEnds`] (`enrich`): the input starts being read before
//!   the stores are open (reading and gunzipping overlap with opening them);
//!   every index is checked whole ([`Check::Full`]) and a missing store is an
//!   error; the output file is replaced; the run ends with its input, and a
//!   signal before the end of files is an error (the output is partial).
//! - [`Lifetime::UntilStopped`] (`run`): a missing store starts empty (a
//!   watched directory fills it); loads by other processes are followed; the
//!   flow starts only once every data set is loaded (`/readyz` says 200 then),
//!   and lines that arrive meanwhile wait unread; the output file is appended
//!   to; when the input ends, a process with a listener or a watched directory
//!   keeps serving until stopped.
//!
//! In both, SIGTERM or SIGINT raise one [`Stop`]: reading ends without dropping
//! anything read, lines in flight are enriched and written, sinks are flushed,
//! Kafka offsets of delivered outputs are committed and the group is left;
//! watchers finish the file in hand (a load commits whole or not at all).
//!
//! This is the top of the program below the command line: errors carry context
//! (anyhow).

pub mod lines;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arc_swap::ArcSwap;

use crate::config::{Flow, Io};
use crate::daemon;
use crate::enrich::{Counts, DataSet, Enricher};
use crate::index::Index;
use crate::index_file::Check;
use crate::logline::LineParser;
use crate::shutdown::{self, Stop};
use crate::{http, telemetry};

/// How long the HTTP listener may take to finish open requests at the end.
const HTTP_DRAIN: Duration = Duration::from_secs(5);

/// When a flow ends (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// `enrich`: when the input ends (or at a signal).
    UntilInputEnds,
    /// `run`: when stopped.
    UntilStopped,
}

/// How a command runs its flow, beside the flow itself.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub lifetime: Lifetime,
    /// Worker threads enriching stdin and files (default: one per core).
    pub workers: Option<usize>,
    /// A progress bar on a terminal while files are read.
    pub progress: bool,
    /// The command's name, which opens its summary line (`whipstream NAME: ...`).
    pub command: &'static str,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Ended {
    pub counts: Counts,
}

/// Runs `flow` until its lifetime ends.
pub fn run(flow: Flow, options: RunOptions) -> Result<Ended> {
    let runtime = shutdown::runtime().context("cannot start the async runtime")?;
    let stop = Stop::new();
    shutdown::stop_on_signals(&runtime, &stop).context("cannot install the signal handlers")?;
    let until_stopped = options.lifetime == Lifetime::UntilStopped;
    let max_line = flow.options.max_line_bytes;

    // `enrich` reads ahead while the stores open.
    let mut early = None;
    if let (Io::Lines { files, .. }, false) = (&flow.io, until_stopped) {
        early = Some(lines::Input::start(files, max_line, &stop)?);
    }

    let metrics = match flow.listen {
        Some(_) => Some(telemetry::install_prometheus()?),
        None => None,
    };
    telemetry::ready(false);
    let datasets: Vec<DataSet> = flow
        .datasets
        .iter()
        .map(|d| DataSet {
            name: d.name.clone(),
            index: Arc::new(ArcSwap::from_pointee(Index::default())),
        })
        .collect();
    // Per data set: its store is open and its watched directory loaded.
    let loaded: Vec<Arc<AtomicBool>> = datasets
        .iter()
        .map(|_| Arc::new(AtomicBool::new(false)))
        .collect();
    let ready = Arc::new(AtomicBool::new(false));

    let server = match (flow.listen, metrics) {
        (Some(addr), metrics) => {
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind(addr))
                .with_context(|| format!("cannot listen on {addr}"))?;
            let local = listener.local_addr()?;
            eprintln!("whipstream: listening on http://{local}");
            let state = http::AppState {
                datasets: datasets
                    .iter()
                    .zip(&loaded)
                    .map(|(d, ready)| http::Served {
                        name: d.name.clone(),
                        index: d.index.clone(),
                        ready: ready.clone(),
                    })
                    .collect(),
                metrics,
                ready: ready.clone(),
            };
            Some(runtime.spawn(http::serve(
                listener,
                state,
                flow.http_limits,
                stop.stopped(),
            )))
        }
        (None, _) => None,
    };

    for ((d, s), loaded) in datasets.iter().zip(&flow.datasets).zip(&loaded) {
        let started = Instant::now();
        let index = if until_stopped {
            daemon::open_or_create(&s.store)
        } else {
            crate::index_file::open(&s.store, Check::Full).map_err(anyhow::Error::from)
        }
        .with_context(|| format!("data set {:?}", s.name))?;
        telemetry::index_built(
            &s.name,
            started.elapsed(),
            index.snapshot_count(),
            index.piece_count(),
        );
        tracing::info!(
            dataset = %s.name,
            "{} snapshot(s) from {} in {:.2} s",
            index.snapshot_count(),
            s.store.display(),
            started.elapsed().as_secs_f64()
        );
        d.index.store(Arc::new(index));
        if s.watch.is_none() {
            loaded.store(true, Ordering::Release);
        }
    }

    // Loads made by other processes (a `whipstream load` on the same store) are
    // followed through the index file they write.
    let followers: Vec<_> = if until_stopped {
        datasets
            .iter()
            .zip(&flow.datasets)
            .map(|(d, s)| crate::follow::spawn(&s.name, &s.store, d.index.clone(), stop.flag()))
            .collect()
    } else {
        Vec::new()
    };
    let watchers =
        daemon::spawn_watchers(&runtime, until_stopped, &flow, &datasets, &loaded, &stop)?;
    // The flow starts only once every data set has its data.
    while !stop.is_raised() && !loaded.iter().all(|l| l.load(Ordering::Acquire)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !stop.is_raised() {
        ready.store(true, Ordering::Release);
        telemetry::ready(true);
        tracing::info!("ready: every data set is loaded");
    }

    let serving = until_stopped && (server.is_some() || !watchers.is_empty());
    let parser = LineParser::new(flow.parser)?;
    let enricher = Arc::new(Enricher::new(parser, datasets, flow.options));
    let result = match flow.io {
        // Stopped before the start was done: nothing was read.
        _ if stop.is_raised() && until_stopped => Ok(Ended::default()),
        Io::Lines {
            files,
            output,
            dead_letter,
            output_format,
            partition_by,
        } => {
            let input = match early {
                Some(input) => input,
                None => lines::Input::start(&files, max_line, &stop)?,
            };
            let sinks = lines::Sinks {
                output: output.as_deref(),
                dead_letter: dead_letter.as_deref(),
                append: until_stopped,
                format: output_format,
                partition_by,
            };
            let ended = lines::run(input, &enricher, sinks, &options, &stop);
            if ended.is_ok() && serving && !stop.is_raised() {
                tracing::info!("input ended; serving until stopped");
                runtime.block_on(stop.stopped());
            }
            ended
        }
        Io::Kafka(config) => runtime
            .block_on(crate::kafka::run(*config, enricher.clone(), stop.stopped()))
            .map(|s| {
                eprintln!(
                    "whipstream {}: {} messages consumed, {} enriched ({}), {} dead-lettered, {} deliveries retried, {} commits",
                    options.command, s.consumed, s.enriched, enricher.describe_matches(&s.counts),
                    s.dead_lettered, s.redelivered, s.commits
                );
                warn(&enricher, &s.counts, options.command);
                Ended { counts: s.counts }
            })
            .context("kafka enrichment failed"),
    };

    // Whatever ended the flow, everything else stops now.
    stop.raise();
    for w in watchers.into_iter().chain(followers) {
        let _ = w.join();
    }
    if let Some(server) = server {
        match runtime.block_on(async { tokio::time::timeout(HTTP_DRAIN, server).await }) {
            Ok(Ok(Err(e))) => tracing::warn!("HTTP server: {e}"),
            Err(_) => tracing::warn!("HTTP requests still open after {HTTP_DRAIN:?}"),
            _ => {}
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// The enricher's warnings about a run's counts, one line each.
pub(crate) fn warn(enricher: &Enricher, counts: &Counts, command: &str) {
    for w in enricher.warnings(counts) {
        eprintln!("whipstream {command}: warning: {w}");
    }
}
