//! Keeping data sets current while a flow runs: each watched directory (or a
//! remote source's mirror of one, fed by its poller, see [`crate::remote`]) has a
//! watcher thread that loads new snapshot files into its data set's store and
//! swaps the new index in (see [`crate::ingest`]); SIGHUP makes every remote
//! source poll and every watcher scan at once.
//!
//! At start, each watcher scans its directory until everything in it is loaded
//! or rejected (files still being written are waited for); only then is its
//! data set marked loaded, and the runner starts the flow once every data set
//! is. At the stop, watchers finish the file in hand (a load commits whole or
//! not at all).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::runtime::Runtime;

use crate::config::Flow;
use crate::enrich::DataSet;
use crate::index::Index;
use crate::ingest::{Outcome, Watcher};
use crate::remote::WatchSource;
use crate::shutdown::{self, Stop};

/// Starts a watcher thread for each data set of `flow` with a watched
/// directory; each raises its `loaded` flag after its first scan. The others'
/// flags are left as they are. With `hangups`, SIGHUP is handled (a rescan)
/// even without watched directories, so that it never ends the process.
pub fn spawn_watchers(
    runtime: &Runtime,
    hangups: bool,
    flow: &Flow,
    datasets: &[DataSet],
    loaded: &[Arc<AtomicBool>],
    stop: &Stop,
) -> Result<Vec<JoinHandle<()>>> {
    let mut rescans = Vec::new();
    let mut polls = Vec::new();
    let mut watchers = Vec::new();
    if flow.datasets.iter().any(|s| s.watch.is_some()) {
        crate::ingest::keep_heap_returnable();
    }
    for ((d, s), loaded) in datasets.iter().zip(&flow.datasets).zip(loaded) {
        let Some(watch) = &s.watch else { continue };
        let (tx, wake) = mpsc::channel::<()>();
        rescans.push(tx.clone());
        let dir = watch.local_dir(&s.store);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create watched directory {}", dir.display()))?;
        // A remote source's files arrive whole, by rename: no settling.
        let (settle, synced) = match watch {
            WatchSource::Dir(_) => (flow.settle, None),
            WatchSource::Remote(source) => {
                let poller = crate::remote::poller::spawn(
                    &s.name,
                    source.clone(),
                    &dir,
                    flow.download_limits,
                    flow.poll_interval,
                    d.index.clone(),
                    stop.flag(),
                    tx,
                )
                .map_err(|e| anyhow::anyhow!("data set {:?}: {e}", s.name))?;
                tracing::info!(dataset = %s.name, "snapshots from {source}, mirrored in {}", dir.display());
                watchers.push(poller.thread);
                polls.push(poller.poll_now);
                (Duration::ZERO, Some(poller.synced))
            }
        };
        let mut watcher = Watcher::new(&s.name, &s.store, &dir, d.index.clone()).settle(settle);
        let (stop, poll, name) = (stop.flag(), flow.poll_interval, s.name.clone());
        let (priority, loaded) = (flow.load_priority, loaded.clone());
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
    if hangups || !rescans.is_empty() {
        shutdown::on_hangups(runtime, stop, move || {
            if polls.is_empty() {
                tracing::info!("SIGHUP: scanning watched directories");
            } else {
                tracing::info!("SIGHUP: polling remote sources and scanning watched directories");
            }
            // A poller wakes its watcher itself once it has mirrored something.
            for tx in rescans.iter().chain(&polls) {
                let _ = tx.send(());
            }
        })
        .context("cannot install the SIGHUP handler")?;
    }
    Ok(watchers)
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

/// Scans every `poll` or when woken (SIGHUP, or its poller), until the stop (the first scan
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
pub fn open_or_create(dir: &Path) -> Result<Index> {
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
