//! The durable store: one data set's history in RocksDB.
//!
//! The store is the source of truth; the in-memory [`History`] is read from it at
//! start and written back as a *diff* in table files that RocksDB ingests in one
//! atomic step: a crash or `kill -9` at any moment leaves the store as before or
//! as after a load, never between.
//!
//! Key layout (one column family, one byte of prefix per kind):
//!
//! | key                          | value                                             |
//! |------------------------------|---------------------------------------------------|
//! | `M` `format`                 | format version (`2`; `1` is read too)             |
//! | `M` `state`                  | store id (16 bytes) and generation (u64 BE)        |
//! | `S` instant (i64, order-preserving) | snapshot metadata (JSON)                   |
//! | `P` piece start (u128 BE)    | changes: count, then (snapshot id, line id + 1)*  |
//! | `L` line id (u32 BE)         | range (family tag, begin, length) and payload id  |
//! | `D` payload id (u32 BE)      | payload bytes (a JSON object body)                |
//!
//! Numbers in values are LEB128 varints. Changes name snapshots by their stable id,
//! so loading an older snapshot later does not rewrite every piece.
//!
//! The *state* ([`StoreState`]) names what the store holds: a random id given at
//! the first commit and a generation counted up by every commit, in the same
//! batch. The persisted index ([`crate::index_file`]) records the state it was
//! built from, so a stale index file is recognised by comparing two numbers.
//! Version 2 marks stores whose commits keep the state current: a whipstream
//! that predates it refuses them instead of committing without counting.
//!
//! # Layout
//!
//! - this module: opening a store (format check, modes, errors) and its upkeep;
//! - [`state`](self::state): the store's state (id, generation);
//! - [`read`](self::read): reading the whole history;
//! - [`commit`](self::commit): writing a load as one atomic diff;
//! - [`tables`](self::tables): the diff as table files ingested in one step
//!   (in `ingest.tmp/` inside the store while they are written);
//! - [`codec`](self::codec): the bytes of keys and values.

mod codec;
mod commit;
mod read;
mod state;
mod tables;

pub use commit::{Base, CommitStats};
pub use state::StoreState;

use std::path::{Path, PathBuf};

use rocksdb::{BlockBasedOptions, DBCompressionType, Options, DB};

pub(super) const FORMAT_KEY: &[u8] = b"Mformat";
pub(super) const FORMAT_VERSION: &[u8] = b"2";
/// Stores written before the state key existed; read, and upgraded by a commit.
const FORMAT_VERSION_1: &[u8] = b"1";
pub(super) const STATE_KEY: &[u8] = b"Mstate";
pub(super) const SNAPSHOT: u8 = b'S';
pub(super) const PIECE: u8 = b'P';
pub(super) const LINE: u8 = b'L';
pub(super) const PAYLOAD: u8 = b'D';

/// Errors of the durable store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no whipstream store at {0} (create one with `whipstream load --db {0} FILE...`)")]
    Missing(PathBuf),
    #[error("store {path} is in use by another process (a running `load` or daemon)")]
    Locked { path: PathBuf },
    #[error("store {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error("store {path} is corrupt: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("store {path} has format version {found:?}; this whipstream reads versions 1 and 2")]
    Version { path: PathBuf, found: String },
    #[error("{0} is not empty and holds no whipstream store: refusing to create a store in it (give a new or empty directory)")]
    NotAStore(PathBuf),
    #[error("store {path}: {source}")]
    Files {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store {0} is damaged: its CURRENT file is missing while its MANIFEST and table files are there; copy the directory, then run `whipstream repair --db {0}` to keep what can be read (or load the snapshot files again into a new store)")]
    Damaged(PathBuf),
}

/// A store directory that lost its `CURRENT` file (the pointer to the live
/// MANIFEST) but still holds RocksDB's MANIFEST or table files: not "no store",
/// a damaged one, which opening would otherwise mistake for a new store.
pub fn is_damaged(path: &Path) -> bool {
    if path.join("CURRENT").exists() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.starts_with("MANIFEST-") || name.ends_with(".sst")
    })
}

/// How to open a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Read and write; creates the store if missing. One process at a time.
    ReadWrite,
    /// Read only; the store must exist. Any number of processes, beside a writer.
    ReadOnly,
}

/// A RocksDB-backed history store.
pub struct Store {
    db: DB,
    path: PathBuf,
}

/// The zstd level of the compacted (bottommost) data.
const ZSTD_LEVEL: i32 = 9;
/// Keys between full (not prefix-shared) keys in a block. RocksDB's 16 makes
/// a point read's scan in a block short; the store is read in order and by a
/// few point reads of small keys, and 128 keeps it 6 % smaller (41 country
/// snapshots: 14.1 MB instead of 15.0; zstd 15 gave the same at a slower
/// compaction, 19 with 1 MiB blocks 12.0 MB at ten times the load time).
const RESTART_INTERVAL: i32 = 128;

/// The store's options; `bottommost` sets the compression of the compacted
/// data (always, for the store; a commit's table files are written with the
/// bottommost compression when it is set, with the other levels' otherwise).
fn options(bottommost: bool) -> Options {
    let mut opts = Options::default();
    opts.set_compression_type(DBCompressionType::Lz4);
    // The store is read whole and in order (a load, an index rebuild), never
    // by point lookups: big blocks and a strong zstd level for the compacted
    // data cost little read time and keep the store small on disk.
    if bottommost {
        opts.set_bottommost_compression_type(DBCompressionType::Zstd);
        opts.set_bottommost_compression_options(-14, ZSTD_LEVEL, 0, 0, true);
    }
    let mut table = BlockBasedOptions::default();
    table.set_block_size(64 * 1024);
    table.set_block_restart_interval(RESTART_INTERVAL);
    opts.set_block_based_table_factory(&table);
    opts.set_keep_log_file_num(2);
    opts.set_max_log_file_size(1 << 20);
    opts.set_log_level(rocksdb::LogLevel::Warn);
    // Commits are table files (nothing goes through the memtable); a store
    // written by an older whipstream may replay a big batch from its log.
    opts.set_write_buffer_size(128 << 20);
    opts
}

impl Store {
    pub fn open(path: &Path, mode: Mode) -> Result<Store, StoreError> {
        let db_err = |source: rocksdb::Error| {
            let text = source.to_string();
            if text.contains("lock") && (text.contains("unavailable") || text.contains("LOCK")) {
                StoreError::Locked {
                    path: path.to_path_buf(),
                }
            } else {
                StoreError::Db {
                    path: path.to_path_buf(),
                    source,
                }
            }
        };
        if is_damaged(path) {
            return Err(StoreError::Damaged(path.to_path_buf()));
        }
        let mut opts = options(true);
        let db = match mode {
            Mode::ReadWrite => {
                Store::check_new_location(path)?;
                opts.create_if_missing(true);
                let db = DB::open(&opts, path).map_err(db_err)?;
                // This process holds the store's lock: no commit is running.
                tables::remove_leftovers(path)?;
                db
            }
            Mode::ReadOnly => {
                if !path.join("CURRENT").is_file() {
                    return Err(StoreError::Missing(path.to_path_buf()));
                }
                DB::open_for_read_only(&opts, path, false).map_err(db_err)?
            }
        };
        let store = Store {
            db,
            path: path.to_path_buf(),
        };
        store.check_format(mode)?;
        Ok(store)
    }

    /// A store may be created at `path`: it is a store already, or it is
    /// missing or an empty directory (a store's files are never written among
    /// other files).
    pub fn check_new_location(path: &Path) -> Result<(), StoreError> {
        if path.join("CURRENT").is_file() {
            return Ok(());
        }
        if is_damaged(path) {
            return Err(StoreError::Damaged(path.to_path_buf()));
        }
        match std::fs::read_dir(path).map(|mut entries| entries.next().is_some()) {
            Ok(true) => Err(StoreError::NotAStore(path.to_path_buf())),
            // Missing, empty, or unreadable (RocksDB then says why).
            _ => Ok(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db_err(&self, source: rocksdb::Error) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, what: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            what: what.into(),
        }
    }

    fn check_format(&self, mode: Mode) -> Result<(), StoreError> {
        match self.db.get(FORMAT_KEY).map_err(|e| self.db_err(e))? {
            Some(v) if v == FORMAT_VERSION || v == FORMAT_VERSION_1 => Ok(()),
            Some(v) => Err(StoreError::Version {
                path: self.path.clone(),
                found: String::from_utf8_lossy(&v).into_owned(),
            }),
            None => {
                let mut it = self.db.raw_iterator();
                it.seek_to_first();
                if it.valid() {
                    return Err(self.corrupt("keys present but no format version"));
                }
                if mode == Mode::ReadOnly {
                    return Err(StoreError::Missing(self.path.clone()));
                }
                Ok(())
            }
        }
    }

    /// The store's current state (id 0, generation 0 for an empty store or one
    /// written before states were kept).
    pub fn state(&self) -> Result<StoreState, StoreError> {
        match self.db.get(STATE_KEY).map_err(|e| self.db_err(e))? {
            None => Ok(StoreState::default()),
            Some(v) => StoreState::decode(&v).ok_or_else(|| self.corrupt("bad state key")),
        }
    }

    /// Calls `f(key_without_prefix, value)` for every key with this prefix.
    fn scan(
        &self,
        prefix: u8,
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut ro = rocksdb::ReadOptions::default();
        // Whole-store scans: read ahead, and keep the block cache for lookups.
        ro.set_readahead_size(4 << 20);
        ro.fill_cache(false);
        let mut it = self.db.raw_iterator_opt(ro);
        it.seek([prefix]);
        while it.valid() {
            let (Some(k), Some(v)) = (it.key(), it.value()) else {
                break;
            };
            if k.first() != Some(&prefix) {
                break;
            }
            f(&k[1..], v)?;
            it.next();
        }
        it.status().map_err(|e| self.db_err(e))
    }

    /// Compacts the whole store (drops superseded versions; smaller on disk).
    pub fn compact(&self) {
        // Rewrite the bottom level too, so that everything ends compressed
        // with the bottommost settings and nothing superseded remains.
        let mut opts = rocksdb::CompactOptions::default();
        opts.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        self.db.compact_range_opt::<&[u8], &[u8]>(None, None, &opts);
    }

    /// Keys whose prefix is none of the known kinds (a `verify` check).
    pub fn unknown_keys(&self) -> Result<u64, StoreError> {
        let mut it = self.db.raw_iterator();
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            if let Some(k) = it.key() {
                let known = k == FORMAT_KEY
                    || k == STATE_KEY
                    || matches!(k.first(), Some(&(SNAPSHOT | PIECE | LINE | PAYLOAD)));
                if !known {
                    n += 1;
                }
            }
            it.next();
        }
        it.status().map_err(|e| self.db_err(e))?;
        Ok(n)
    }

    /// Total size of the store's files on disk, in bytes.
    pub fn disk_bytes(&self) -> u64 {
        dir_size(&self.path)
    }
}

pub fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_open_of_a_missing_store_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let err = Store::open(&dir.path().join("nope"), Mode::ReadOnly)
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::Missing(_)), "{err}");
    }
}
