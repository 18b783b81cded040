//! Hot snapshot ingestion: a data set's watched directory, scanned while the
//! daemon runs.
//!
//! Writers put a complete file in place by renaming it: names starting with `.`
//! or ending in `.tmp` are being written and are skipped, as are names that are
//! not snapshot files (`*.json`, `*.jsonl`, optionally `.gz`). A new file is
//! loaded into the store with the same rules and all-or-nothing commit as `load`;
//! enrichment and lookups keep using the old index until the commit, then the new
//! index is swapped in at once. A file the rules reject is moved to `rejected/`
//! beside a `NAME.error` file saying why; the daemon keeps what it had. Loaded
//! files stay where they are and are recognised by content checksum (the one the
//! store records), so a restart loads nothing twice. A store that cannot be
//! opened (e.g. another process is loading it) is a passing failure: the file is
//! tried again at the next scan.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant as WallClock, SystemTime};

use crate::index::{Index, SharedIndex};
use crate::load::{is_snapshot_name, load_and_index, LoadError, LoadOptions};
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

impl LoadPriority {
    pub fn parse(s: &str) -> Result<LoadPriority, String> {
        match s {
            "idle" => Ok(LoadPriority::Idle),
            "low" => Ok(LoadPriority::Low),
            "normal" => Ok(LoadPriority::Normal),
            other => Err(format!("{other:?}: expected idle, low or normal")),
        }
    }

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
                        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                        libc::setpriority(libc::PRIO_PROCESS, tid, 10) == 0
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
    /// Not loaded this time (the store could not be used); tried again later.
    Retry(String),
}

/// The watcher of one data set's directory.
pub struct Watcher {
    dataset: String,
    store: PathBuf,
    dir: PathBuf,
    index: SharedIndex,
    /// Checksums of the snapshots in the store.
    known: HashSet<String>,
    /// Files handled in this run, with the size and mtime they had then.
    seen: HashMap<PathBuf, (u64, Option<SystemTime>)>,
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
        }
    }

    /// Looks at the directory once; loads, recognises or rejects each new file.
    pub fn scan(&mut self) -> Vec<(PathBuf, Outcome)> {
        let mut files: Vec<(PathBuf, (u64, Option<SystemTime>))> = match std::fs::read_dir(
            &self.dir,
        ) {
            Ok(entries) => entries
                .flatten()
                .filter(|e| e.file_name().to_str().is_some_and(is_snapshot_name))
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    m.is_file()
                        .then(|| (e.path(), (m.len(), m.modified().ok())))
                })
                .collect(),
            Err(e) => {
                tracing::warn!(dataset = %self.dataset, "cannot read {}: {e}", self.dir.display());
                return Vec::new();
            }
        };
        // Names usually carry the date: oldest first reads best in the log.
        files.sort();
        let mut out = Vec::new();
        for (path, stamp) in files {
            if self.seen.get(&path) == Some(&stamp) {
                continue;
            }
            let outcome = self.ingest(&path);
            if !matches!(outcome, Outcome::Retry(_)) {
                self.seen.insert(path.clone(), stamp);
            }
            out.push((path, outcome));
        }
        telemetry::watch_scanned(&self.dataset);
        out
    }

    fn ingest(&mut self, path: &Path) -> Outcome {
        let sha = match crate::snapshot::content_sha256(path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Outcome::Retry(format!("{}: gone", path.display()))
            }
            // Unreadable content (e.g. corrupt gzip): the load gives the
            // positioned reason below.
            Err(_) => String::new(),
        };
        if self.known.contains(&sha) {
            tracing::debug!(dataset = %self.dataset, "{}: already loaded", path.display());
            return Outcome::AlreadyLoaded;
        }
        let started = WallClock::now();
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
                telemetry::index_built(&self.dataset, Duration::ZERO, &index);
                let old = self.index.swap(Arc::new(index));
                release(old);
                telemetry::snapshot_ingested(&self.dataset, "loaded", load_seconds);
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
            Err(LoadError::Input { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Outcome::Retry(format!("{}: gone", path.display()))
            }
            Err(e) => {
                let reason = e.to_string();
                telemetry::snapshot_ingested(
                    &self.dataset,
                    "rejected",
                    started.elapsed().as_secs_f64(),
                );
                match reject(&self.dir, path, &reason) {
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

/// Moves `path` to `dir/rejected/` and writes `NAME.error` beside it.
fn reject(dir: &Path, path: &Path, reason: &str) -> std::io::Result<PathBuf> {
    let rejected = dir.join("rejected");
    std::fs::create_dir_all(&rejected)?;
    let name = path.file_name().unwrap_or_default();
    let to = rejected.join(name);
    let mut error_name = name.to_os_string();
    error_name.push(".error");
    std::fs::write(rejected.join(error_name), format!("{reason}\n"))?;
    std::fs::rename(path, &to)?;
    Ok(to)
}

/// Drops a replaced index here, once readers are done with it, not on an
/// enrichment thread that happens to hold the last reference (freeing a large
/// index takes a while).
fn release(old: Arc<Index>) {
    let deadline = WallClock::now() + Duration::from_secs(5);
    while Arc::strong_count(&old) > 1 && WallClock::now() < deadline {
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
        assert_eq!(LoadPriority::parse("idle"), Ok(LoadPriority::Idle));
        assert_eq!(LoadPriority::parse("low"), Ok(LoadPriority::Low));
        assert_eq!(LoadPriority::parse("normal"), Ok(LoadPriority::Normal));
        assert!(LoadPriority::parse("high")
            .unwrap_err()
            .contains("idle, low or normal"));
        #[cfg(target_os = "linux")]
        {
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
            assert_eq!(on_thread(LoadPriority::Low), (libc::SCHED_OTHER, 10));
            assert_eq!(on_thread(LoadPriority::Normal), (libc::SCHED_OTHER, 0));
        }
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
        let mut w = Watcher::new("geo", &store, &dir, index.clone());
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
        let mut again = Watcher::new("geo", &store, &dir, reopened);
        let out = again.scan();
        assert_eq!(out.len(), 2);
        assert!(
            out.iter().all(|(_, o)| matches!(o, Outcome::AlreadyLoaded)),
            "{out:?}"
        );
    }
}
