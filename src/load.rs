//! Loading snapshot files into a store: read and validate in parallel, merge in
//! order, commit once.
//!
//! A `load` is all or nothing: every file is read and validated and merged into an
//! in-memory copy of the history, and only then is the difference written, in one
//! atomic step (table files the store ingests at once, [`crate::store`]). A file
//! that breaks a rule stops the load with its name, line and rule, and the store
//! is left exactly as it was. Inputs are Whip snapshots (JSON lines), range CSVs
//! and MaxMind DB files ([`crate::formats`]).
//!
//! After the commit the load writes the store's index file ([`crate::index_file`])
//! for the new state, so the processes that open the store next map it instead
//! of rebuilding it. A load killed between the commit and that write leaves the
//! previous file, recognised as stale and rebuilt by the next process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::files::{FileError, Kind};
use crate::formats::csv::CsvOptions;
use crate::history::{History, Interner, MergeError, Merged, SnapshotMeta};
use crate::index::Index;
use crate::index_file::Check;
use crate::snapshot::{ReadProgress, Rule, SnapshotError, SnapshotFile};
use crate::store::{Base, CommitStats, Store, StoreError};
use crate::time::Timestamp;

/// Why a load failed. The store is unchanged in every case.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("{path}: {source}")]
    Merge {
        path: PathBuf,
        #[source]
        source: MergeError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{0}: no snapshot files (*.json, *.jsonl, optionally .gz) in this directory")]
    EmptyDirectory(PathBuf),
}

/// Options of a load.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Replace an already loaded snapshot with the same datetime.
    pub replace: bool,
    /// Draw a progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Leave compaction to RocksDB's background work instead of compacting the
    /// whole store after the commit (the daemon: a load must not compete with
    /// enrichment for long; a `load` command compacts for the smallest store
    /// when it wrote a large share of it, see [`compaction_pays`]).
    pub no_compaction: bool,
    /// The snapshot `datetime` of CSV files (required for them), and of MaxMind DB
    /// files instead of their build time.
    pub datetime: Option<Timestamp>,
    /// Read every file as a range CSV (files named `*.csv[.gz]` always are).
    pub csv: Option<CsvOptions>,
    /// All the files of this load are parts of one snapshot (e.g. the IPv4 and
    /// IPv6 files of one database release).
    pub one_snapshot: bool,
}

/// The kinds of input a load reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// Whip snapshot: JSON lines.
    Whip,
    Csv,
    Mmdb,
}

impl InputKind {
    pub fn of(path: &Path, opts: &LoadOptions) -> InputKind {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let base = name.strip_suffix(".gz").unwrap_or(&name);
        if name.ends_with(".mmdb") {
            InputKind::Mmdb
        } else if opts.csv.is_some() || base.ends_with(".csv") {
            InputKind::Csv
        } else {
            InputKind::Whip
        }
    }
}

/// Reads one input as a validated snapshot, whatever its kind.
fn read_input(
    path: &Path,
    opts: &LoadOptions,
    progress: &ReadProgress,
) -> Result<SnapshotFile, SnapshotError> {
    match InputKind::of(path, opts) {
        InputKind::Whip => SnapshotFile::read(path, progress),
        InputKind::Mmdb => crate::formats::mmdb::read(path, opts.datetime, progress),
        InputKind::Csv => {
            let Some(datetime) = opts.datetime else {
                return Err(SnapshotError::new(
                    path,
                    None,
                    Rule::Csv("a CSV has no datetime: give one with --datetime".into()),
                ));
            };
            let csv = opts.csv.clone().unwrap_or_default();
            crate::formats::csv::read(path, datetime, &csv, progress)
        }
    }
}

/// What a load did.
#[derive(Clone, Debug, Default)]
pub struct LoadSummary {
    pub files: usize,
    pub added: usize,
    pub replaced: usize,
    pub unchanged: usize,
    pub ranges_read: u64,
    pub store_snapshots: usize,
    pub pieces: usize,
    pub lines: usize,
    pub payloads: usize,
    pub commit: CommitStats,
    pub seconds: f64,
    pub store_bytes: u64,
}

impl std::fmt::Display for LoadSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "loaded {} file(s) ({} new, {} replaced, {} unchanged), {} ranges read in {:.1} s; \
             store: {} snapshots, {} pieces, {} distinct records, {} distinct payloads, {:.1} MB",
            self.files,
            self.added,
            self.replaced,
            self.unchanged,
            self.ranges_read,
            self.seconds,
            self.store_snapshots,
            self.pieces,
            self.lines,
            self.payloads,
            self.store_bytes as f64 / 1e6
        )
    }
}

/// Is this a file name a directory scan should load (Whip snapshots and MaxMind
/// DB files)? Hidden and `.tmp` files are still being written by their producer
/// (write, then rename) and are skipped.
pub fn is_snapshot_name(name: &str) -> bool {
    if name.starts_with('.') || name.ends_with(".tmp") {
        return false;
    }
    let base = name.strip_suffix(".gz").unwrap_or(name);
    base.ends_with(".json") || base.ends_with(".jsonl") || name.ends_with(".mmdb")
}

/// Expands directories into their snapshot files (sorted by name, links
/// followed); files are kept as given, whatever their name. Anything but a regular
/// file or a directory is an error naming it.
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut files = Vec::new();
    for input in inputs {
        match crate::files::kind(input)? {
            Kind::File => files.push(input.clone()),
            Kind::Dir => {
                let found = crate::files::list_dir(input, is_snapshot_name)?;
                if found.is_empty() {
                    return Err(LoadError::EmptyDirectory(input.clone()));
                }
                files.extend(found);
            }
        }
    }
    Ok(files)
}

/// Reads `files` on all cores and hands each result to `consume` in input order.
/// Stops at the first error (`consume` returning an error or a file failing).
///
/// Files are read as many at once as there are cores (a Whip file is also cut
/// into blocks parsed on every core, which keeps the cores busy while a
/// single file is read); a read file waits in its reader until it is taken,
/// so at most one file per reader is held besides the one being merged.
fn read_in_order(
    files: &[PathBuf],
    opts: &LoadOptions,
    progress: &ReadProgress,
    mut consume: impl FnMut(SnapshotFile) -> Result<(), LoadError>,
) -> Result<(), LoadError> {
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(files.len())
        .max(1);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // A rendezvous: a read file waits in its reader until it is taken.
        let (tx, rx) = mpsc::sync_channel::<(usize, Result<SnapshotFile, SnapshotError>)>(0);
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            scope.spawn(move || loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = files.get(i) else { break };
                if tx.send((i, read_input(path, opts, progress))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending = BTreeMap::new();
        let mut want = 0;
        let result = (|| {
            for (i, r) in rx.iter() {
                pending.insert(i, r);
                while let Some(r) = pending.remove(&want) {
                    consume(r?)?;
                    want += 1;
                }
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        // Unblock workers waiting to send; their results are dropped.
        for _ in rx.iter() {}
        result
    })
}

/// Loads snapshot files (or directories of them) into the store at `db`.
pub fn load(db: &Path, inputs: &[PathBuf], opts: LoadOptions) -> Result<LoadSummary, LoadError> {
    load_and_index(db, inputs, opts).map(|(summary, _)| summary)
}

/// [`load`], also returning the store's index after the load, mapped from the
/// index file the load wrote (what a running daemon swaps in).
pub fn load_and_index(
    db: &Path,
    inputs: &[PathBuf],
    opts: LoadOptions,
) -> Result<(LoadSummary, Index), LoadError> {
    let started = Instant::now();
    let files = expand_inputs(inputs)?;
    let fresh = FreshStore::note(db);
    let result = load_files(db, &files, opts, started);
    if let Err(e) = &result {
        fresh.remove_after(e);
    }
    result
}

/// A store directory as it was before a first load: missing or empty. A first
/// load that fails (a bad file, a full disk) removes what it created (RocksDB's
/// files, a partial write-ahead log), so that it leaves nothing behind.
enum FreshStore {
    Missing(PathBuf),
    Empty(PathBuf),
    /// A store already, or something else: never touched.
    Existing,
}

impl FreshStore {
    fn note(db: &Path) -> FreshStore {
        match std::fs::read_dir(db).map(|mut entries| entries.next().is_none()) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FreshStore::Missing(db.into()),
            Ok(true) => FreshStore::Empty(db.into()),
            _ => FreshStore::Existing,
        }
    }

    /// Removes what the failed load created, unless the failure was that the
    /// directory is another process's (it created the files, not this load).
    fn remove_after(self, error: &LoadError) {
        if matches!(error, LoadError::Store(StoreError::Locked { .. })) {
            return;
        }
        let removed = match &self {
            FreshStore::Existing => return,
            FreshStore::Missing(db) => std::fs::remove_dir_all(db),
            FreshStore::Empty(db) => std::fs::read_dir(db).and_then(|entries| {
                for entry in entries.flatten() {
                    let path = entry.path();
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        std::fs::remove_dir_all(&path)?;
                    } else {
                        std::fs::remove_file(&path)?;
                    }
                }
                Ok(())
            }),
        };
        if let (Err(e), FreshStore::Missing(db) | FreshStore::Empty(db)) = (removed, &self) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(
                    "cannot remove what the failed load created in {}: {e}",
                    db.display()
                );
            }
        }
    }
}

/// [`load_and_index`] of expanded files.
fn load_files(
    db: &Path,
    files: &[PathBuf],
    opts: LoadOptions,
    started: Instant,
) -> Result<(LoadSummary, Index), LoadError> {
    let mut stages = Stages::new();
    let store = Store::open(db, crate::store::Mode::ReadWrite)?;
    let mut history = store.read_history()?;
    stages.done("read the store");
    let before = Base::of(&history);
    let mut interner = Interner::new(&history);
    stages.done("copy the base");
    let mut summary = LoadSummary {
        files: files.len(),
        ..LoadSummary::default()
    };

    let total_bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    let progress = ReadProgress::default();
    let bar = crate::progress::bytes_bar(opts.progress, total_bytes, "ranges");
    let done = AtomicBool::new(false);

    let result = std::thread::scope(|scope| {
        if let Some(bar) = &bar {
            let (progress, done) = (&progress, &done);
            scope.spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    bar.update(
                        progress.file_bytes.load(Ordering::Relaxed),
                        progress.ranges.load(Ordering::Relaxed),
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        // With --one-snapshot the parts are gathered and merged as one file.
        let mut merging = Duration::ZERO;
        let mut parts: Vec<SnapshotFile> = Vec::new();
        let mut merge_one = |file: SnapshotFile| -> Result<(), LoadError> {
            summary.ranges_read += file.ranges.len() as u64;
            let meta = SnapshotMeta::of_file(&file);
            let merge_started = Instant::now();
            let merged = history
                .merge(&mut interner, &file, meta, opts.replace)
                .map_err(|source| LoadError::Merge {
                    path: file.path.clone(),
                    source,
                })?;
            merging += merge_started.elapsed();
            match merged {
                Merged::Added => summary.added += 1,
                Merged::Replaced => summary.replaced += 1,
                Merged::Unchanged => summary.unchanged += 1,
            }
            Ok(())
        };
        let r = read_in_order(files, &opts, &progress, |file| {
            if opts.one_snapshot {
                parts.push(file);
                Ok(())
            } else {
                merge_one(file)
            }
        })
        .and_then(|()| {
            if parts.is_empty() {
                return Ok(());
            }
            let combined = SnapshotFile::combine(std::mem::take(&mut parts), opts.datetime)?;
            merge_one(combined)
        });
        done.store(true, Ordering::Relaxed);
        tracing::debug!("load: merging took {:.2} s of it", merging.as_secs_f64());
        r
    });
    if let Some(bar) = &bar {
        bar.finish();
    }
    result?;
    drop(interner);
    stages.done("read and merge the files");

    let committed = summary.added + summary.replaced > 0;
    if committed {
        summary.commit = store.commit(&before, &history)?;
        stages.done("commit");
        // A first load's table files are the compacted store already.
        if !opts.no_compaction
            && !summary.commit.compacted
            && compaction_pays(&summary.commit, &history)
        {
            store.compact();
            stages.done("compact");
        }
    }
    drop(before);
    return_freed_heap();
    stages.done("give back freed memory");
    let state = store.state()?;
    // A load that changed nothing still leaves a valid index file behind.
    let index = match crate::index_file::map(db, state, Check::Header) {
        Ok(image) if !committed => Index::from_image(image).ok(),
        _ => None,
    };
    let index = match index {
        Some(index) => index,
        None => crate::index_file::rebuild(db, &history, state)?,
    };
    stages.done("write the index file");
    summary.store_snapshots = history.snapshot_count();
    summary.pieces = history.piece_count();
    summary.lines = history.line_count();
    summary.payloads = history.payload_count();
    summary.store_bytes = store.disk_bytes();
    summary.seconds = started.elapsed().as_secs_f64();
    Ok((summary, index))
}

/// Returns the free memory of the heap to the system: the free pages inside
/// every arena (what freed blocks between live ones hold) and the free top of
/// the main one. A load calls it before the index file is built (the stage
/// that needs the most beside the history: the snapshots were parsed on every
/// core, and the allocator keeps what their threads freed unless asked); the
/// daemon again after a swap ([`crate::ingest`]).
pub(crate) fn return_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let started = Instant::now();
        // SAFETY: malloc_trim only walks glibc's own arenas under their locks.
        let released = unsafe { libc::malloc_trim(0) } != 0;
        tracing::debug!(
            "freed heap returned to the system ({released}) in {:.1} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
    }
}

/// Whether a `load` compacts the whole store after its commit: when it wrote at
/// least a quarter of what the store holds (a first load, a big one). A full
/// compaction rewrites the whole store, so doing it after every small load would
/// make each update cost as much as the history; a small load's data stays in
/// its own table files instead, which RocksDB merges down in the background.
/// (A first load's files need no compaction: see [`CommitStats::compacted`].)
fn compaction_pays(written: &CommitStats, after: &History) -> bool {
    let written = written.keys();
    let held = (after.piece_count() + after.line_count() + after.payload_count()) as u64;
    written.saturating_mul(4) >= held
}

/// Wall time of a load's stages, logged at debug level (where a load's time goes).
struct Stages {
    last: Instant,
}

impl Stages {
    fn new() -> Stages {
        Stages {
            last: Instant::now(),
        }
    }

    fn done(&mut self, stage: &str) {
        let now = Instant::now();
        tracing::debug!(
            "load: {stage} in {:.2} s (memory now {} MB, peak {} MB)",
            now.duration_since(self.last).as_secs_f64(),
            memory_mb("VmRSS:"),
            memory_mb("VmHWM:"),
        );
        self.last = now;
    }
}

/// A figure of this process's `/proc/self/status` in MB (0 where there is none).
fn memory_mb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

/// Opens a store read-only and reads its whole history (what `verify` checks).
pub fn open_history(db: &Path) -> Result<History, StoreError> {
    Store::open(db, crate::store::Mode::ReadOnly)?.read_history()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names() {
        for ok in [
            "a.jsonl",
            "a.json",
            "a.jsonl.gz",
            "geoip-2024.json.gz",
            "city.mmdb",
        ] {
            assert!(is_snapshot_name(ok), "{ok}");
        }
        for skip in [".a.jsonl", "a.jsonl.tmp", "a.txt", "a.gz", "README"] {
            assert!(!is_snapshot_name(skip), "{skip}");
        }
    }
}
