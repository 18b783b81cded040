//! Hot snapshot ingestion: a data set's watched directory, scanned while the
//! daemon runs.
//!
//! Writers should put a complete file in place by renaming it: names starting
//! with `.` or ending in `.tmp` are being written and are skipped, as are names
//! that are not snapshot files (`*.json`, `*.jsonl`, optionally `.gz`, and
//! `*.mmdb`). A file copied straight in (`cp`, `scp`, `curl -o`) is loaded only
//! once it is complete: its size and modification time unchanged over the
//! settle interval, and a gzip or MaxMind DB file whole by its own framing (the
//! gzip trailer, the MaxMind metadata marker); until then it is left for a later
//! scan, never loaded in part and never rejected for being partial. A new file
//! is loaded into the store with the same rules and all-or-nothing commit as
//! `load`; enrichment and lookups keep using the old index until the commit,
//! then the new index is swapped in at once. A file the rules reject is moved
//! to `rejected/` beside a `NAME.error` file saying why; the daemon keeps what
//! it had. Loaded files stay where they are and are recognised by content
//! checksum (the one the store records), so a restart loads nothing twice. A
//! store that cannot be opened (e.g. another process is loading it) is a
//! passing failure: the file is tried again at the next scan.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::index::{Index, SharedIndex};
use crate::load::{is_snapshot_name, load_and_index, return_freed_heap, LoadError, LoadOptions};
use crate::telemetry;

/// The CPU priority of loads (the watcher thread and the threads it starts).
/// Below enrichment by default: on a busy machine a snapshot then takes longer
/// to arrive rather than lines taking longer to come out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadPriority {
    /// Linux SCHED_IDLE: runs when enrichment leaves a core idle (and, under
    /// full load, at a small share, so a load is slowed, not starved).
    #[default]
    Idle,
    /// nice 10.
    Low,
    /// As enrichment.
    Normal,
}

impl std::str::FromStr for LoadPriority {
    type Err = crate::value::UnknownValue;
    fn from_str(s: &str) -> Result<LoadPriority, Self::Err> {
        crate::value::pick(
            "load priority",
            s,
            &[
                ("idle", LoadPriority::Idle),
                ("low", LoadPriority::Low),
                ("normal", LoadPriority::Normal),
            ],
        )
    }
}

/// The niceness of a [`LoadPriority::Low`] loader.
#[cfg(target_os = "linux")]
const LOW_NICE: libc::c_int = 10;

impl LoadPriority {
    /// Gives the calling thread this priority; threads it starts inherit it. A
    /// failure leaves the priority as it was (logged at debug).
    pub fn apply(self) {
        #[cfg(target_os = "linux")]
        {
            // SAFETY: plain syscalls on the calling thread (pid 0 / its tid).
            let ok = unsafe {
                match self {
                    LoadPriority::Normal => true,
                    LoadPriority::Low => {
                        // Never raise a thread above the niceness it was started
                        // with (a daemon already run under `nice -n 15` stays there).
                        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                        let now = libc::getpriority(libc::PRIO_PROCESS, tid);
                        now >= LOW_NICE || libc::setpriority(libc::PRIO_PROCESS, tid, LOW_NICE) == 0
                    }
                    LoadPriority::Idle => {
                        let param = libc::sched_param { sched_priority: 0 };
                        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0
                    }
                }
            };
            if !ok {
                tracing::debug!("cannot set the loader's priority to {self:?}");
            }
        }
    }
}

/// What a scan did with one file.
#[derive(Debug)]
pub enum Outcome {
    /// Loaded and swapped in.
    Loaded { ranges: u64, seconds: f64 },
    /// Its content is already in the store.
    AlreadyLoaded,
    /// Moved to `rejected/`; the reason is in the `.error` file too.
    Rejected(String),
    /// Deleted from the directory before its load ended: nothing loaded,
    /// nothing written.
    Gone,
    /// Not loaded this time (the store could not be used); tried again later.
    Retry(String),
    /// Still being written (its size or modification time changed within the
    /// settle interval); looked at again at the next scan.
    Settling,
    /// Unchanged for the settle interval but not whole by its framing (e.g. a
    /// gzip without its end): left in place, looked at again once it changes.
    Incomplete(String),
}

impl Outcome {
    /// The directory's content is not all handled yet: the file is to be
    /// looked at again soon (what a daemon's start waits for).
    pub fn pending(&self) -> bool {
        matches!(self, Outcome::Settling | Outcome::Retry(_))
    }
}

/// A file's size and modification time.
type Stamp = (u64, Option<SystemTime>);

/// The default settle interval: a file must stay unchanged this long.
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(2);

/// The watcher of one data set's directory.
pub struct Watcher {
    dataset: String,
    store: PathBuf,
    dir: PathBuf,
    index: SharedIndex,
    /// Checksums of the snapshots in the store.
    known: HashSet<String>,
    /// Files handled in this run, with the size and mtime they had then.
    seen: HashMap<PathBuf, Stamp>,
    /// Files not yet settled: their stamp and since when it has not changed.
    settling: HashMap<PathBuf, (Stamp, Instant)>,
    settle: Duration,
    /// Entries that cannot be read (dangling links, loops), already reported.
    unreadable: HashSet<PathBuf>,
}

impl Watcher {
    pub fn new(dataset: &str, store: &Path, dir: &Path, index: SharedIndex) -> Watcher {
        let known = index
            .load()
            .snapshots()
            .iter()
            .map(|s| s.meta.sha256.clone())
            .collect();
        Watcher {
            dataset: dataset.to_string(),
            store: store.to_path_buf(),
            dir: dir.to_path_buf(),
            index,
            known,
            seen: HashMap::new(),
            settling: HashMap::new(),
            settle: DEFAULT_SETTLE,
            unreadable: HashSet::new(),
        }
    }

    /// How long a file's size and modification time must stay unchanged
    /// before it is loaded.
    pub fn settle(mut self, settle: Duration) -> Watcher {
        self.settle = settle;
        self
    }

    /// Whether `path`'s stamp has stayed the same for the settle interval
    /// (noting it when new or changed).
    fn settled(&mut self, path: &Path, stamp: Stamp) -> bool {
        let now = Instant::now();
        match self.settling.get(path) {
            Some((s, since)) if *s == stamp => now.duration_since(*since) >= self.settle,
            _ => {
                self.settling.insert(path.to_path_buf(), (stamp, now));
                self.settle.is_zero()
            }
        }
    }

    /// Looks at the directory once; loads, recognises or rejects each new file.
    pub fn scan(&mut self) -> Vec<(PathBuf, Outcome)> {
        // Links are followed (a directory of links into release folders); a
        // link that leads nowhere is named once, and the other files are read.
        let entries = match crate::files::list_dir_entries(&self.dir, is_snapshot_name) {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(dataset = %self.dataset, "cannot read the watched directory: {e}");
                return Vec::new();
            }
        };
        let mut files: Vec<(PathBuf, Stamp)> = Vec::new();
        let mut unreadable = HashSet::new();
        for entry in entries {
            match entry {
                Ok(path) => {
                    // The stamp of the file a link leads to.
                    if let Ok(m) = std::fs::metadata(&path) {
                        files.push((path, (m.len(), m.modified().ok())));
                    }
                }
                Err(e) => {
                    let path = e.path().to_path_buf();
                    if !self.unreadable.contains(&path) {
                        tracing::error!(dataset = %self.dataset, "not loaded: {e}");
                    }
                    unreadable.insert(path);
                }
            }
        }
        // Named again only once it was fixed and broke again.
        self.unreadable = unreadable;
        // Names usually carry the date: oldest first reads best in the log.
        files.sort();
        let mut out = Vec::new();
        for (path, stamp) in files {
            if self.seen.get(&path) == Some(&stamp) {
                continue;
            }
            // A file first seen whose content is already in the store is
            // complete by definition: no need to wait (a restart's files).
            if !self.settling.contains_key(&path) && self.is_known(&path) {
                self.seen.insert(path.clone(), stamp);
                out.push((path, Outcome::AlreadyLoaded));
                continue;
            }
            if !self.settled(&path, stamp) {
                out.push((path, Outcome::Settling));
                continue;
            }
            let outcome = match framing_incomplete(&path) {
                Some(reason) => self.incomplete(&path, reason),
                None => self.ingest(&path),
            };
            if !matches!(outcome, Outcome::Retry(_)) {
                self.settling.remove(&path);
                self.seen.insert(path.clone(), stamp);
            }
            out.push((path, outcome));
        }
        // Forget files that went away while settling.
        self.settling.retain(|p, _| p.exists());
        telemetry::watch_scanned(&self.dataset);
        out
    }

    /// Whether `path`'s content is a snapshot already in the store.
    fn is_known(&self, path: &Path) -> bool {
        !self.known.is_empty()
            && crate::snapshot::content_sha256(path).is_ok_and(|sha| self.known.contains(&sha))
    }

    /// A file deleted from the directory before or while it was loaded: not an
    /// error, nothing to reject; the store is as it was.
    fn gone(&self, path: &Path) -> Outcome {
        tracing::info!(
            dataset = %self.dataset,
            "{}: deleted from the watched directory before its load ended; nothing loaded",
            path.display()
        );
        Outcome::Gone
    }

    /// A settled file that is not whole: left where it is until it changes.
    fn incomplete(&self, path: &Path, reason: String) -> Outcome {
        telemetry::snapshot_ingested(&self.dataset, "incomplete", 0.0);
        tracing::warn!(
            dataset = %self.dataset,
            "{}: not loaded: {reason}; left in place until it changes",
            path.display()
        );
        Outcome::Incomplete(reason)
    }

    fn ingest(&mut self, path: &Path) -> Outcome {
        let sha = match crate::snapshot::content_sha256(path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return self.gone(path),
            // A gzip stream that stops before its end: not complete yet.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return self.incomplete(path, format!("the gzip stream ends early ({e})"));
            }
            // Unreadable content (e.g. corrupt gzip): the load gives the
            // positioned reason below.
            Err(_) => String::new(),
        };
        if self.known.contains(&sha) {
            tracing::debug!(dataset = %self.dataset, "{}: already loaded", path.display());
            return Outcome::AlreadyLoaded;
        }
        let outcome = self.load(path);
        // The load's working memory (the whole history read from the store and
        // merged, RocksDB's buffers) is freed by now, and the index in use is
        // mapped from its file: give the freed heap back to the system.
        return_freed_heap();
        outcome
    }

    /// Loads `path` into the store and swaps the new index in, or rejects it.
    fn load(&mut self, path: &Path) -> Outcome {
        let started = Instant::now();
        let opts = LoadOptions {
            replace: false,
            progress: false,
            no_compaction: true,
            ..LoadOptions::default()
        };
        match load_and_index(&self.store, &[path.to_path_buf()], opts) {
            Ok((summary, index)) => {
                let load_seconds = started.elapsed().as_secs_f64();
                self.known = index
                    .snapshots()
                    .iter()
                    .map(|s| s.meta.sha256.clone())
                    .collect();
                // The load wrote and mapped the new index file.
                telemetry::index_built(
                    &self.dataset,
                    Duration::ZERO,
                    index.snapshot_count(),
                    index.piece_count(),
                );
                // Counted before the swap: whoever sees the new index also sees
                // the load counted (the load is committed already).
                telemetry::snapshot_ingested(&self.dataset, "loaded", load_seconds);
                let old = self.index.swap(Arc::new(index));
                release(old);
                tracing::info!(
                    dataset = %self.dataset,
                    "{}: loaded {} ranges in {:.2} s, new index in use",
                    path.display(),
                    summary.ranges_read,
                    load_seconds
                );
                Outcome::Loaded {
                    ranges: summary.ranges_read,
                    seconds: load_seconds,
                }
            }
            Err(LoadError::Store(e)) => {
                tracing::warn!(dataset = %self.dataset, "{}: store unavailable, will retry: {e}", path.display());
                Outcome::Retry(e.to_string())
            }
            // Deleted while it was read (whatever step noticed): simply gone.
            Err(_) if !exists(path) => self.gone(path),
            Err(e) => {
                let reason = e.to_string();
                telemetry::snapshot_ingested(
                    &self.dataset,
                    "rejected",
                    started.elapsed().as_secs_f64(),
                );
                match reject(&self.dir, path, &reason) {
                    Err(io) if io.kind() == std::io::ErrorKind::NotFound => return self.gone(path),
                    Ok(to) => tracing::error!(
                        dataset = %self.dataset,
                        "rejected {} (moved to {}): {reason}",
                        path.display(),
                        to.display()
                    ),
                    Err(io) => tracing::error!(
                        dataset = %self.dataset,
                        "rejected {}: {reason}; and it cannot be moved to rejected/: {io}",
                        path.display()
                    ),
                }
                Outcome::Rejected(reason)
            }
        }
    }
}

/// The MaxMind DB metadata marker; the metadata follows it at the end of a file.
const MMDB_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";
/// The metadata section is at most this far from a MaxMind DB file's end.
const MMDB_METADATA_MAX: u64 = 128 * 1024;

/// Why a MaxMind DB file is not whole by its framing (no metadata marker near
/// its end), or `None`. A gzip file's framing is checked as its checksum is
/// taken (a stream without its end is an `UnexpectedEof`); JSON lines have no
/// framing beyond the settle interval.
pub(crate) fn framing_incomplete(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    if path.extension().is_none_or(|e| e != "mmdb") {
        return None;
    }
    let mut tail = Vec::new();
    let read = std::fs::File::open(path).and_then(|mut f| {
        let len = f.metadata()?.len();
        f.seek(SeekFrom::Start(len.saturating_sub(MMDB_METADATA_MAX)))?;
        f.read_to_end(&mut tail)
    });
    match read {
        // Unreadable: the load says why.
        Err(_) => None,
        Ok(_) if memchr::memmem::find(&tail, MMDB_MARKER).is_some() => None,
        Ok(_) => Some("no MaxMind DB metadata at its end (still being written?)".into()),
    }
}

/// Moves `path` to `dir/rejected/` and writes `NAME.error` beside it.
fn reject(dir: &Path, path: &Path, reason: &str) -> std::io::Result<PathBuf> {
    reject_as(dir, path, path.file_name().unwrap_or_default(), reason)
}

/// Moves `path` to `dir/rejected/name` and writes `name.error` beside it (a
/// remote source's refused download arrives under a staging name).
pub(crate) fn reject_as(
    dir: &Path,
    path: &Path,
    name: &std::ffi::OsStr,
    reason: &str,
) -> std::io::Result<PathBuf> {
    let rejected = dir.join("rejected");
    std::fs::create_dir_all(&rejected)?;
    let to = rejected.join(name);
    let mut error_name = name.to_os_string();
    error_name.push(".error");
    // The move first: a file that is gone leaves no `.error` without its file.
    std::fs::rename(path, &to)?;
    std::fs::write(rejected.join(error_name), format!("{reason}\n"))?;
    Ok(to)
}

/// Whether `path` is still an entry of its directory (a link counts, even one
/// whose target went away: that is for the load to name).
fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// Makes the memory loads free returnable to the system (once, before the
/// first load of a long-running process). glibc raises its thresholds as
/// large blocks are freed: its trim threshold reaches 64 MiB, and the free
/// top of a thread's arena below that is never given back, not even by
/// `malloc_trim` (which only trims the main arena's top). A load frees
/// hundreds of MB in the arenas of the watcher and the reader threads, so
/// without this a daemon keeps tens of MB (country history) to hundreds
/// (city) more than it uses after every load. Fixed thresholds: blocks of
/// 32 MiB and more are mapped on their own (the highest glibc would choose
/// itself), a free arena top over 4 MiB is returned at once.
pub fn keep_heap_returnable() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets glibc's allocator parameters.
        let ok = unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, 4 << 20) == 1
        };
        if !ok {
            tracing::debug!("cannot set the allocator's thresholds");
        }
    }
}

/// Drops a replaced index here, once readers are done with it, not on an
/// enrichment thread that happens to hold the last reference (freeing a large
/// index takes a while).
fn release(old: Arc<Index>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(old);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::History;

    const V1: &str =
        r#"{"begin":"1.2.3.0","end":"1.2.3.255","datetime":"2024-01-01T00:00:00Z","cc":"AU"}"#;
    const V2: &str =
        r#"{"begin":"1.2.3.0","end":"1.2.3.255","datetime":"2024-06-01T00:00:00Z","cc":"NZ"}"#;

    fn shared() -> SharedIndex {
        Arc::new(arc_swap::ArcSwap::from_pointee(Index::new(
            History::default(),
        )))
    }

    #[test]
    fn load_priority_parses_and_applies_to_the_calling_thread() {
        assert_eq!("idle".parse(), Ok(LoadPriority::Idle));
        assert_eq!("low".parse(), Ok(LoadPriority::Low));
        assert_eq!("normal".parse(), Ok(LoadPriority::Normal));
        assert_eq!(
            "high".parse::<LoadPriority>().unwrap_err().to_string(),
            "unknown load priority \"high\" (expected idle, low, normal)"
        );
        #[cfg(target_os = "linux")]
        {
            // The niceness the test runs with (cargo itself may run under `nice`).
            // SAFETY: a query about the calling process.
            let started = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
            // (policy, nice) of a thread after apply, read back by the thread.
            let on_thread = |p: LoadPriority| {
                std::thread::spawn(move || {
                    p.apply();
                    // SAFETY: queries about the calling thread.
                    unsafe {
                        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                        (
                            libc::sched_getscheduler(0),
                            libc::getpriority(libc::PRIO_PROCESS, tid),
                        )
                    }
                })
                .join()
                .unwrap()
            };
            assert_eq!(on_thread(LoadPriority::Idle).0, libc::SCHED_IDLE);
            assert_eq!(
                on_thread(LoadPriority::Low),
                (libc::SCHED_OTHER, started.max(LOW_NICE))
            );
            assert_eq!(
                on_thread(LoadPriority::Normal),
                (libc::SCHED_OTHER, started)
            );
        }
    }

    #[test]
    fn a_file_is_loaded_only_once_settled_and_whole() {
        use std::io::Write;
        let tmp = tempfile::tempdir().unwrap();
        let (store, dir) = (tmp.path().join("store"), tmp.path().join("in"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a.jsonl"), format!("{V1}\n")).unwrap();
        let index = shared();
        // Not settled yet: left for later, however often the directory is scanned.
        let mut w =
            Watcher::new("geo", &store, &dir, index.clone()).settle(Duration::from_secs(3600));
        for _ in 0..3 {
            let out = w.scan();
            assert!(matches!(out[..], [(_, Outcome::Settling)]), "{out:?}");
        }
        assert_eq!(index.load().snapshot_count(), 0);

        // A gzip without its end: incomplete, neither loaded nor rejected, and
        // not looked at again until it changes; once whole, loaded.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(format!("{V2}\n").as_bytes()).unwrap();
        let whole = gz.finish().unwrap();
        let path = dir.join("b.jsonl.gz");
        std::fs::write(&path, &whole[..whole.len() - 6]).unwrap();
        let mut w = Watcher::new("geo", &store, &dir, index.clone()).settle(Duration::ZERO);
        let out = w.scan();
        assert!(matches!(out[0].1, Outcome::Loaded { .. }), "{out:?}");
        assert!(matches!(out[1].1, Outcome::Incomplete(_)), "{out:?}");
        assert!(w.scan().is_empty());
        assert!(path.exists() && !dir.join("rejected").exists());
        std::fs::write(&path, &whole).unwrap();
        let out = w.scan();
        assert!(matches!(out[..], [(_, Outcome::Loaded { .. })]), "{out:?}");
        assert_eq!(index.load().snapshot_count(), 2);
    }

    #[test]
    fn a_maxmind_file_without_its_metadata_is_incomplete() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.mmdb");
        std::fs::write(&path, b"\0\0\0 data section, no metadata yet").unwrap();
        assert!(framing_incomplete(&path).is_some());
        let mut whole = b"\0\0\0 data".to_vec();
        whole.extend_from_slice(MMDB_MARKER);
        whole.extend_from_slice(b"metadata");
        std::fs::write(&path, whole).unwrap();
        assert_eq!(framing_incomplete(&path), None);
    }

    #[test]
    fn loads_new_files_skips_partial_ones_and_rejects_bad_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, dir) = (tmp.path().join("store"), tmp.path().join("in"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a.jsonl"), format!("{V1}\n")).unwrap();
        std::fs::write(dir.join(".b.jsonl"), format!("{V2}\n")).unwrap();
        std::fs::write(dir.join("c.jsonl.tmp"), format!("{V2}\n")).unwrap();
        std::fs::write(dir.join("bad.jsonl"), "{\"begin\":\"1.2.3.0\"}\n").unwrap();
        let index = shared();
        let mut w = Watcher::new("geo", &store, &dir, index.clone()).settle(Duration::ZERO);
        let out = w.scan();
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(
            matches!(out[0].1, Outcome::Loaded { ranges: 1, .. }),
            "{out:?}"
        );
        assert!(
            matches!(&out[1].1, Outcome::Rejected(r) if r.contains("bad.jsonl:1")),
            "{out:?}"
        );
        assert_eq!(index.load().snapshot_count(), 1);
        assert!(dir.join("rejected/bad.jsonl").exists());
        let error = std::fs::read_to_string(dir.join("rejected/bad.jsonl.error")).unwrap();
        assert!(error.contains("bad.jsonl:1"), "{error}");

        // Nothing new: nothing done. A renamed-in file is picked up.
        assert!(w.scan().is_empty());
        std::fs::rename(dir.join(".b.jsonl"), dir.join("b.jsonl")).unwrap();
        let out = w.scan();
        assert!(matches!(out[0].1, Outcome::Loaded { .. }), "{out:?}");
        assert_eq!(index.load().snapshot_count(), 2);

        // A new watcher (a restart) recognises both by checksum.
        let reopened = Arc::new(arc_swap::ArcSwap::from_pointee(Index::new(
            crate::load::open_history(&store).unwrap(),
        )));
        let mut again = Watcher::new("geo", &store, &dir, reopened).settle(Duration::ZERO);
        let out = again.scan();
        assert_eq!(out.len(), 2);
        assert!(
            out.iter().all(|(_, o)| matches!(o, Outcome::AlreadyLoaded)),
            "{out:?}"
        );
    }

    #[test]
    fn a_file_gone_before_its_load_ends_is_gone_not_rejected() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, dir) = (tmp.path().join("store"), tmp.path().join("in"));
        std::fs::create_dir(&dir).unwrap();
        let mut w = Watcher::new("geo", &store, &dir, shared()).settle(Duration::ZERO);
        // Listed, then deleted before the load reads it.
        let out = w.ingest(&dir.join("deleted.jsonl"));
        assert!(matches!(out, Outcome::Gone), "{out:?}");
        assert!(!dir.join("rejected").exists(), "nothing written");
    }

    #[test]
    fn linked_files_are_loaded_and_a_dangling_link_is_named_not_fatal() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, dir) = (tmp.path().join("store"), tmp.path().join("in"));
        std::fs::create_dir(&dir).unwrap();
        let target = tmp.path().join("release-a.jsonl");
        std::fs::write(&target, format!("{V1}\n")).unwrap();
        std::os::unix::fs::symlink(&target, dir.join("a.jsonl")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("nowhere"), dir.join("b.jsonl")).unwrap();
        let index = shared();
        let mut w = Watcher::new("geo", &store, &dir, index.clone()).settle(Duration::ZERO);
        let out = w.scan();
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(
            matches!(out[0].1, Outcome::Loaded { ranges: 1, .. }),
            "{out:?}"
        );
        assert_eq!(index.load().snapshot_count(), 1);
        assert!(w.unreadable.contains(&dir.join("b.jsonl")));
        assert!(!dir.join("rejected").exists(), "a link is not moved away");
    }
}
