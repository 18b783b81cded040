//! The enrichment pipeline for stdin and files: read, join on all cores, write in
//! order.
//!
//! One thread reads chunks of whole lines ([`Chunker`]); worker threads enrich
//! chunks; the calling thread puts results back in input order (chunks carry
//! sequence numbers) and writes them through one buffered writer, flushing whenever
//! nothing more is ready, so a live stream sees each line at once and a backfill
//! gets big writes.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{self, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::enrich::{Counts, Enricher};
use crate::source::{BufferPool, Chunk, Chunker, SourceError};
use crate::telemetry::LineCounters;

/// What a pipeline run did.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub counts: Counts,
    /// Inputs that could not be opened or read to the end (the run went on).
    pub input_errors: Vec<String>,
    pub seconds: f64,
    /// The write that ended the run early (a closed pipe, a full disk); the
    /// counts are of the lines handed to the writers before it.
    pub output_error: Option<io::Error>,
}

/// Progress display hook: called with (bytes read from files, lines done).
pub type ProgressFn<'a> = &'a mut dyn FnMut(u64, u64);

enum Item {
    Chunk(Chunk),
    Error(SourceError),
}

/// What a worker hands back.
enum Msg {
    Done(Done),
    /// An input that could not be read (the run goes on).
    Input(SourceError),
    /// Enriching a chunk panicked: a bug. The run stops with an error rather
    /// than lose the chunk's lines (and every later one) in silence.
    Panicked {
        source: String,
        message: String,
    },
}

struct Done {
    seq: u64,
    /// Read from stdin (else a file): the metrics' source label.
    live: bool,
    out: Vec<u8>,
    dead: Vec<u8>,
    counts: Counts,
}

/// Chunks already being read: [`start_reading`] starts the reader before the
/// stores are open, so reading (and gunzipping) overlaps with opening them.
pub struct Reading {
    rx: mpsc::Receiver<Item>,
    file_bytes: Arc<std::sync::atomic::AtomicU64>,
    pool: BufferPool,
    started: Instant,
}

/// Chunks the reader may hold ahead of the workers (about 1 MB each): enough to
/// keep reading while the stores open, bounded so memory stays bounded.
const READ_AHEAD: usize = 4;

/// Starts reading `chunker` on its own thread.
pub fn start_reading(mut chunker: Chunker) -> io::Result<Reading> {
    let file_bytes = chunker.progress.clone();
    let pool = chunker.pool.clone();
    let (chunk_tx, rx) = mpsc::sync_channel::<Item>(READ_AHEAD);
    // The reader is detached: it may sit in a blocking read of stdin when output
    // fails, and must not keep the process from exiting then.
    std::thread::Builder::new()
        .name("whipstream-read".into())
        .spawn(move || loop {
            let item = match chunker.next_chunk() {
                Ok(Some(c)) => Item::Chunk(c),
                Ok(None) => break,
                Err(e) => Item::Error(e),
            };
            if chunk_tx.send(item).is_err() {
                break;
            }
        })?;
    Ok(Reading {
        rx,
        file_bytes,
        pool,
        started: Instant::now(),
    })
}

/// Runs the pipeline to the end of the input. Output errors (e.g. a closed pipe,
/// a full disk) stop the run and are returned in the summary, with the counts
/// of what was done before.
pub fn run(
    reading: Reading,
    enricher: Arc<Enricher>,
    workers: usize,
    out: &mut dyn Write,
    dead: &mut dyn Write,
    mut progress: Option<ProgressFn<'_>>,
) -> io::Result<RunSummary> {
    let Reading {
        rx: chunk_rx,
        file_bytes,
        pool,
        started,
    } = reading;
    let workers = workers.max(1);
    let (done_tx, done_rx) = mpsc::sync_channel::<Msg>(workers * 2);

    let chunk_rx = Arc::new(Mutex::new(chunk_rx));
    let mut handles = Vec::with_capacity(workers);
    for i in 0..workers {
        let (rx, tx, enricher, pool) = (
            chunk_rx.clone(),
            done_tx.clone(),
            enricher.clone(),
            pool.clone(),
        );
        handles.push(
            std::thread::Builder::new()
                .name(format!("whipstream-enrich-{i}"))
                .spawn(move || loop {
                    // The lock is held only to take the next item.
                    let item = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => break,
                    };
                    let msg = match item {
                        Ok(Item::Chunk(chunk)) => {
                            let mut done = Done {
                                seq: chunk.seq,
                                live: chunk.read_at.is_some(),
                                out: pool.get(chunk.data.len() * 3),
                                dead: Vec::new(),
                                counts: Counts::default(),
                            };
                            let enriched = std::panic::catch_unwind(AssertUnwindSafe(|| {
                                enricher.enrich_chunk(
                                    &chunk,
                                    &mut done.out,
                                    &mut done.dead,
                                    &mut done.counts,
                                )
                            }));
                            match enriched {
                                Ok(()) => {
                                    pool.put(chunk.data);
                                    Msg::Done(done)
                                }
                                Err(panic) => Msg::Panicked {
                                    source: chunk.source.to_string(),
                                    message: panic_message(panic.as_ref()),
                                },
                            }
                        }
                        Ok(Item::Error(e)) => Msg::Input(e),
                        Err(_) => break,
                    };
                    if tx.send(msg).is_err() {
                        break;
                    }
                })?,
        );
    }
    drop(done_tx);

    let mut summary = RunSummary::default();
    let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
    let mut next_seq = 0u64;
    let mut last_progress = Instant::now();
    let mut dirty = false;
    let mut failure: Option<io::Error> = None;
    // Registered when a source first shows up, so that /metrics lists only
    // the sources in use.
    let mut counters: [Option<LineCounters>; 2] = [None, None];
    'run: loop {
        let msg = match done_rx.try_recv() {
            Ok(m) => m,
            Err(TryRecvError::Empty) => {
                // Nothing ready: make what was written visible, then wait.
                if dirty {
                    if let Err(e) = out.flush().and_then(|()| dead.flush()) {
                        summary.output_error = Some(e);
                        break;
                    }
                    dirty = false;
                }
                match done_rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                }
            }
            Err(TryRecvError::Disconnected) => break,
        };
        match msg {
            Msg::Done(done) => {
                pending.insert(done.seq, done);
            }
            Msg::Input(e) => {
                tracing::error!("{e}");
                summary.input_errors.push(e.to_string());
            }
            Msg::Panicked { source, message } => {
                failure = Some(io::Error::other(format!(
                    "internal error while enriching lines of {source}: {message} \
                     (a bug: please report it with the input); the output ends at or before \
                     those lines"
                )));
                break;
            }
        }
        while let Some(done) = pending.remove(&next_seq) {
            if let Err(e) = out
                .write_all(&done.out)
                .and_then(|()| dead.write_all(&done.dead))
            {
                summary.output_error = Some(e);
                break 'run;
            }
            pool.put(done.out);
            summary.counts.add(&done.counts);
            let (slot, source) = if done.live { (0, "stdin") } else { (1, "file") };
            counters[slot]
                .get_or_insert_with(|| LineCounters::new(source, enricher.dataset_names()))
                .add(done.counts.line_counts());
            next_seq += 1;
            dirty = true;
        }
        if let Some(p) = progress.as_mut() {
            if last_progress.elapsed() >= Duration::from_millis(100) {
                p(
                    file_bytes.load(std::sync::atomic::Ordering::Relaxed),
                    summary.counts.read,
                );
                last_progress = Instant::now();
            }
        }
    }
    if summary.output_error.is_none() {
        if let Err(e) = out.flush().and_then(|()| dead.flush()) {
            summary.output_error = Some(e);
        }
    }
    // Workers still sending end when nobody receives.
    drop(done_rx);
    for h in handles {
        let _ = h.join();
    }
    if let Some(e) = failure {
        return Err(e);
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// The text a panic was raised with.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
}
