//! The daemon (`whipstream run`): data sets kept current from watched
//! directories (or remote sources mirrored into one, see [`crate::remote`])
//! while lines are enriched and lookups answered.
//!
//! Life cycle: the HTTP listener starts first (`/healthz` answers while stores
//! open; `/readyz` and lookups say 503), then every store is opened (created
//! empty when missing) and its index built, then each watcher scans its
//! directory until everything in it is loaded or rejected (files still being
//! written are waited for, see [`crate::ingest`]); a data set is ready (lookups
//! answer) once that is done, and only when every data set is ready does
//! `/readyz` say 200 and the flow start (stdin or files through the
//! [`pipeline`], or the Kafka loop): lines that arrive meanwhile wait unread, so
//! none is enriched before its data is there. SIGHUP makes every watcher scan
//! at once. SIGTERM or SIGINT raises one stop: reading ends without dropping
//! anything read, lines in flight are enriched and written, sinks are flushed,
//! Kafka offsets of delivered outputs are committed and the group is left;
//! watchers finish the file in hand (a load commits whole or not at all); the
//! process exits 0. When the input ends by itself, a daemon with a listener or
//! a watched directory keeps serving until stopped; one without exits.
//!
//! This is the top of the program, like `cli`: errors carry context (anyhow).

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arc_swap::ArcSwap;

use crate::config::{Flow, Settings};
use crate::enrich::{DataSet, Enricher};
use crate::index::Index;
use crate::ingest::{Outcome, Watcher};
use crate::logline::LineParser;
use crate::remote::WatchSource;
use crate::source::{Chunker, Input};
use crate::{http, pipeline, telemetry};

/// How long the HTTP listener may take to finish open requests at the end.
const HTTP_DRAIN: Duration = Duration::from_secs(5);

/// Runs the daemon until it is stopped (or its input ends, see the module doc).
pub fn run(settings: Settings) -> Result<ExitCode> {
    let metrics = telemetry::install_prometheus()
        .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
    telemetry::ready(false);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;

    // One stop for everything: a flag for threads, a watch channel for tasks.
    let stop = Arc::new(AtomicBool::new(false));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };

    let datasets: Vec<DataSet> = settings
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

    let server = match settings.listen {
        Some(addr) => {
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
                metrics: Some(metrics),
                ready: ready.clone(),
            };
            Some(runtime.spawn(http::serve(listener, state, stopped())))
        }
        None => None,
    };

    // Signals: SIGTERM/SIGINT stop, SIGHUP rescans.
    let mut rescans = Vec::new();
    let mut wakeups = Vec::new();
    for _ in settings.datasets.iter().filter(|d| d.watch.is_some()) {
        let (tx, rx) = mpsc::channel::<()>();
        rescans.push(tx);
        wakeups.push(rx);
    }
    {
        let (stop, stop_tx) = (stop.clone(), stop_tx.clone());
        let rescans = rescans.clone();
        runtime.spawn(async move {
            let mut hup = hangups();
            loop {
                tokio::select! {
                    _ = crate::cli::shutdown_signal() => {
                        tracing::info!("stop requested: draining");
                        stop.store(true, Ordering::SeqCst);
                        let _ = stop_tx.send(true);
                        break;
                    }
                    Some(()) = hup.recv() => {
                        tracing::info!("SIGHUP: scanning watched directories");
                        for tx in &rescans {
                            let _ = tx.send(());
                        }
                    }
                }
            }
        });
    }

    for ((d, s), loaded) in datasets.iter().zip(&settings.datasets).zip(&loaded) {
        let started = Instant::now();
        let index = open_or_create(&s.store).with_context(|| format!("data set {:?}", s.name))?;
        telemetry::index_built(&s.name, started.elapsed(), &index);
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
    let followers: Vec<_> = datasets
        .iter()
        .zip(&settings.datasets)
        .map(|(d, s)| crate::follow::spawn(&s.name, &s.store, d.index.clone(), stop.clone()))
        .collect();
    let mut watchers = Vec::new();
    let mut pollers = Vec::new();
    let mut wakeups = wakeups.into_iter();
    let mut rescan = rescans.iter();
    for ((d, s), loaded) in datasets.iter().zip(&settings.datasets).zip(&loaded) {
        let Some(watch) = &s.watch else { continue };
        let (Some(wake), Some(rescan)) = (wakeups.next(), rescan.next()) else {
            break;
        };
        let dir = watch.local_dir(&s.store);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create watched directory {}", dir.display()))?;
        // A remote source's files arrive whole, by rename: no settling.
        let (settle, synced) = match watch {
            WatchSource::Dir(_) => (settings.settle, None),
            WatchSource::Remote(source) => {
                let poller = crate::remote::poller::spawn(
                    &s.name,
                    source.clone(),
                    &dir,
                    crate::remote::Limits::default(),
                    settings.poll_interval,
                    d.index.clone(),
                    stop.clone(),
                    rescan.clone(),
                )
                .map_err(|e| anyhow::anyhow!("data set {:?}: {e}", s.name))?;
                tracing::info!(dataset = %s.name, "snapshots from {source}, mirrored in {}", dir.display());
                pollers.push(poller.thread);
                (Duration::ZERO, Some(poller.synced))
            }
        };
        let mut watcher = Watcher::new(&s.name, &s.store, &dir, d.index.clone()).settle(settle);
        let (stop, poll, name) = (stop.clone(), settings.poll_interval, s.name.clone());
        let (priority, loaded) = (settings.load_priority, loaded.clone());
        watchers.push(
            std::thread::Builder::new()
                .name(format!("whipstream-watch-{name}"))
                .spawn(move || {
                    priority.apply();
                    // A remote source's first poll comes first.
                    while synced.as_ref().is_some_and(|s| !s.load(Ordering::Acquire))
                        && !stop.load(Ordering::SeqCst)
                    {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    first_scan(&mut watcher, &stop, poll);
                    loaded.store(true, Ordering::Release);
                    watch_loop(&mut watcher, &stop, &wake, poll);
                })?,
        );
    }
    // The flow starts only once every data set has its data.
    while !stop.load(Ordering::SeqCst) && !loaded.iter().all(|l| l.load(Ordering::Acquire)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !stop.load(Ordering::SeqCst) {
        ready.store(true, Ordering::Release);
        telemetry::ready(true);
        tracing::info!("ready: every data set is loaded");
    }

    let serving = server.is_some() || !watchers.is_empty();
    let max_line = settings.options.max_line_bytes;
    let parser = LineParser::new(settings.parser).map_err(|e| anyhow::anyhow!(e))?;
    let enricher = Arc::new(Enricher::new(parser, datasets, settings.options));
    let result = match settings.flow {
        // Stopped before the start was done: nothing was read.
        _ if stop.load(Ordering::SeqCst) => Ok(()),
        Flow::Lines {
            files,
            output,
            dead_letter,
        } => {
            let inputs = if files.is_empty() {
                vec![Input::Stdin]
            } else {
                crate::source::expand(&files)?
            };
            let chunker = Chunker::new(inputs, max_line).stop_on(stop.clone());
            let summary = run_lines(chunker, enricher, output.as_deref(), dead_letter.as_deref());
            if summary.is_ok() && serving && !stop.load(Ordering::SeqCst) {
                tracing::info!("input ended; serving until stopped");
                runtime.block_on(stopped());
            }
            summary
        }
        Flow::Kafka(config) => runtime
            .block_on(crate::kafka::stream::run(
                *config,
                enricher.clone(),
                stopped(),
            ))
            .map(|s| {
                eprintln!(
                    "whipstream run: {} messages consumed, {} enriched ({}), {} dead-lettered, {} deliveries retried, {} commits",
                    s.consumed, s.enriched, enricher.describe_matches(&s.counts),
                    s.dead_lettered, s.redelivered, s.commits
                );
                for w in enricher.warnings(&s.counts) {
                    eprintln!("whipstream run: warning: {w}");
                }
            })
            .context("kafka enrichment failed"),
    };

    // Whatever ended the flow, everything else stops now.
    stop.store(true, Ordering::SeqCst);
    let _ = stop_tx.send(true);
    for w in watchers.into_iter().chain(followers).chain(pollers) {
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
    result.map(|()| ExitCode::SUCCESS)
}

/// stdin or files through the pipeline, to a file (appended) or stdout.
fn run_lines(
    chunker: Chunker,
    enricher: Arc<Enricher>,
    output: Option<&Path>,
    dead_letter: Option<&Path>,
) -> Result<()> {
    let append = |p: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .with_context(|| format!("cannot open {}", p.display()))
    };
    let mut out: Box<dyn Write> = match output {
        Some(p) => Box::new(io::BufWriter::with_capacity(1 << 20, append(p)?)),
        None => Box::new(io::BufWriter::with_capacity(1 << 20, io::stdout().lock())),
    };
    let mut dead: Box<dyn Write> = match dead_letter {
        Some(p) => Box::new(io::BufWriter::new(append(p)?)),
        None => Box::new(io::BufWriter::new(io::stderr())),
    };
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let reading = pipeline::start_reading(chunker)?;
    let summary = pipeline::run(
        reading,
        enricher.clone(),
        workers,
        &mut out,
        &mut dead,
        None,
    )?;
    drop(out);
    drop(dead);
    let c = &summary.counts;
    eprintln!(
        "whipstream run: {} lines read, {} enriched ({}), {} dead-lettered, {} header lines",
        c.read,
        c.enriched,
        enricher.describe_matches(c),
        c.dead_lettered,
        c.headers
    );
    for w in enricher.warnings(c) {
        eprintln!("whipstream run: warning: {w}");
    }
    for e in &summary.input_errors {
        tracing::error!("input: {e}");
    }
    Ok(())
}

/// The scans at start: again and again until no file in the directory is
/// pending (still being written, or the store busy), so that what the
/// directory holds is loaded or rejected before the data set is called ready.
fn first_scan(watcher: &mut Watcher, stop: &AtomicBool, poll: Duration) {
    let mut told = false;
    while !stop.load(Ordering::SeqCst) {
        let outcomes = watcher.scan();
        let pending: Vec<&Path> = outcomes
            .iter()
            .filter(|(_, o)| o.pending())
            .map(|(p, _)| p.as_path())
            .collect();
        if pending.is_empty() {
            return;
        }
        if !told {
            tracing::info!(
                "waiting for {} file(s) to be complete before starting: {}",
                pending.len(),
                pending
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            told = true;
        }
        // Settling files are looked at often; a busy store at the poll pace.
        let busy = outcomes.iter().any(|(_, o)| matches!(o, Outcome::Retry(_)));
        let pause = if busy {
            poll
        } else {
            poll.min(Duration::from_millis(100))
        };
        std::thread::sleep(pause);
    }
}

/// Scans every `poll` or when woken (SIGHUP), until the stop (the first scan
/// is [`first_scan`]'s). While a file is settling, scans come every 100 ms
/// whatever `poll` is, so that it is loaded soon after it is complete.
fn watch_loop(watcher: &mut Watcher, stop: &AtomicBool, wake: &mpsc::Receiver<()>, poll: Duration) {
    let mut settling = false;
    while !stop.load(Ordering::SeqCst) {
        let pause = if settling {
            poll.min(Duration::from_millis(100))
        } else {
            poll
        };
        // Wait for the next scan, looking at the stop flag often.
        let next = Instant::now() + pause;
        while !stop.load(Ordering::SeqCst) && Instant::now() < next {
            let slice = next
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(100));
            match wake.recv_timeout(slice) {
                Ok(()) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(slice);
                }
            }
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
        settling = false;
        for (path, outcome) in watcher.scan() {
            match outcome {
                Outcome::Retry(reason) => {
                    tracing::debug!("{}: later ({reason})", path.display())
                }
                Outcome::Settling => settling = true,
                _ => {}
            }
        }
    }
}

/// The index of the store at `dir`; empty when there is no store yet (the
/// first snapshot loaded from the watched directory creates it), so a daemon can
/// start before its first snapshot arrives.
fn open_or_create(dir: &Path) -> Result<Index> {
    match crate::index_file::open(dir, crate::index_file::Check::Header) {
        Ok(index) => Ok(index),
        Err(crate::store::StoreError::Missing(_)) => {
            // Refused now rather than at the first load.
            crate::store::Store::check_new_location(dir)?;
            tracing::info!("no store at {} yet: starting empty", dir.display());
            Ok(Index::default())
        }
        Err(e) => Err(e).with_context(|| format!("cannot open the store {}", dir.display())),
    }
}

/// SIGHUP as a stream of `()`; never yields where there are no such signals.
fn hangups() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut s) = signal(SignalKind::hangup()) else {
            return;
        };
        while s.recv().await.is_some() {
            if tx.send(()).await.is_err() {
                break;
            }
        }
    });
    #[cfg(not(unix))]
    drop(tx);
    rx
}
