//! `whipstream repair`: RocksDB's repair of a damaged store, and an account of
//! what it kept.
//!
//! RocksDB's repair rebuilds a store's MANIFEST (and `CURRENT`) from the table
//! and log files it can read; files it cannot read are moved to `DIR/lost/`.
//! What comes back may be less than the store held (a lost table loses its
//! keys), so the repaired store is then read back through the store's own API
//! and checked like `whipstream verify` does: the report names the snapshots
//! kept and every inconsistency found, never just "repaired".
//!
//! Invariant: repair only ever runs on an explicit request (it rewrites the
//! store's metadata in place; the user is told to copy the directory first).

use std::path::{Path, PathBuf};

use crate::history::SnapshotMeta;
use crate::store::{Mode, Store, StoreError};

/// Why a store could not be repaired.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error("{0} holds no RocksDB files (no MANIFEST, table or log file): nothing to repair")]
    NothingThere(PathBuf),
    #[error("repair of {path} failed: {source}")]
    Rocks {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error("the repaired store {path} cannot be opened: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
}

/// What a repaired store holds.
#[derive(Debug)]
pub struct Repaired {
    pub path: PathBuf,
    /// The snapshots it kept, oldest first.
    pub snapshots: Vec<SnapshotMeta>,
    pub pieces: usize,
    pub records: usize,
    /// Table files RocksDB could not read, moved to `DIR/lost/` (it moves
    /// the old MANIFEST and the logs it replayed there too: not counted).
    pub lost_tables: usize,
    /// Inconsistencies in what was kept (empty when it checks out).
    pub problems: Vec<String>,
}

impl Repaired {
    /// Whether the store is whole again (it may still hold fewer snapshots
    /// than before the damage: only the user knows how many it had).
    pub fn is_consistent(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Repairs the store at `path` in place and reads back what it kept.
pub fn repair(path: &Path) -> Result<Repaired, RepairError> {
    if !has_rocksdb_files(path) {
        return Err(RepairError::NothingThere(path.to_path_buf()));
    }
    let lost_before = lost_tables(path);
    let moved_before = lost_files(path);
    rocksdb::DB::repair(&rocksdb::Options::default(), path).map_err(|source| {
        RepairError::Rocks {
            path: path.to_path_buf(),
            source,
        }
    })?;
    // Table files that loads ingested carry no column family name, which
    // RocksDB's repair refuses: they are added back, oldest first (file
    // numbers grow with every ingestion, and the files of one ingestion do not
    // overlap), over what it kept; those that cannot be added stay lost.
    let mut moved: Vec<(u64, PathBuf)> = lost_files(path)
        .into_iter()
        .filter(|f| !moved_before.contains(f))
        .filter_map(|f| {
            let number = f.file_stem()?.to_str()?.parse::<u64>().ok()?;
            Some((number, f))
        })
        .collect();
    moved.sort();
    if !moved.is_empty() {
        let files: Vec<PathBuf> = moved.into_iter().map(|(_, f)| f).collect();
        let store = Store::open(path, Mode::ReadWrite).map_err(|source| RepairError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        for (file, e) in store.add_tables(&files) {
            tracing::warn!("{}: not added back: {e}", file.display());
        }
    }
    let lost_tables = lost_tables(path).saturating_sub(lost_before);
    let store = match Store::open(path, Mode::ReadOnly) {
        Ok(store) => store,
        // Nothing readable was left: said as what repair kept.
        Err(StoreError::Missing(_)) => {
            return Ok(Repaired {
                path: path.to_path_buf(),
                snapshots: Vec::new(),
                pieces: 0,
                records: 0,
                lost_tables,
                problems: vec!["no whipstream data could be kept".into()],
            })
        }
        Err(source) => {
            return Err(RepairError::Open {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let mut problems = Vec::new();
    let (snapshots, pieces, records) = match store.read_history() {
        Ok(history) => {
            problems.extend(history.check(50));
            let snapshots = history.snapshots().map(|s| s.meta.clone()).collect();
            (snapshots, history.piece_count(), history.line_count())
        }
        Err(e) => {
            problems.push(format!("the kept data cannot be read back: {e}"));
            (Vec::new(), 0, 0)
        }
    };
    match store.unknown_keys() {
        Ok(0) => {}
        Ok(n) => problems.push(format!("{n} keys of unknown kind")),
        Err(e) => problems.push(format!("the kept keys cannot be listed: {e}")),
    }
    Ok(Repaired {
        path: path.to_path_buf(),
        snapshots,
        pieces,
        records,
        lost_tables,
        problems,
    })
}

/// MANIFEST, table or write-ahead-log files: what RocksDB's repair works from.
fn has_rocksdb_files(path: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(path) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.starts_with("MANIFEST-") || name.ends_with(".sst") || name.ends_with(".log")
    })
}

/// The table files directly in `DIR/lost/`.
fn lost_files(path: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(path.join("lost")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .collect()
}

/// Table files in `DIR/lost/` (RocksDB moves there the tables it could not read).
fn lost_tables(path: &Path) -> usize {
    sst_count(&path.join("lost"))
}

fn sst_count(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => sst_count(&e.path()),
            _ => usize::from(e.file_name().to_string_lossy().ends_with(".sst")),
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_without_rocksdb_files_is_not_repaired() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        assert!(matches!(
            repair(dir.path()),
            Err(RepairError::NothingThere(_))
        ));
    }
}
