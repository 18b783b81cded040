//! A commit written as sorted table files and added to the store in one step.
//!
//! A large commit (a first load, a big one) is not built as one `WriteBatch` in
//! memory and then flushed and compacted: its keys are streamed, in key order,
//! into table files (RocksDB's `SstFileWriter`) in a directory inside the store
//! ([`TMP_DIR`]), which one `ingest_external_file` call then moves into the
//! store. RocksDB applies an ingestion atomically (all files or none, in one
//! MANIFEST record), so a kill at any moment leaves the store as before or as
//! after, as a batch does. Table files ingested into an empty key range land
//! at the bottom level, written with the bottommost (compacted) settings: a
//! first load needs no compaction.
//!
//! Invariants:
//! - every [`TableWriter`] receives its keys in strictly increasing order
//!   (RocksDB refuses anything else), and the key ranges of the writers of one
//!   commit do not overlap (files that overlap each other would all go to
//!   level 0);
//! - the temporary directory exists only during a commit: a commit removes it
//!   when it ends (success or error), and the next read-write open removes one
//!   a killed commit left ([`remove_leftovers`]); read-only opens never touch it
//!   (a writer may be using it).

use std::path::{Path, PathBuf};

use rocksdb::{Options, SstFileWriter};

use super::StoreError;

/// The directory inside the store where a commit writes its table files.
pub(super) const TMP_DIR: &str = "ingest.tmp";

/// A table file is closed and the next one started at this size (compressed),
/// the size RocksDB's compactions cut files at (`target_file_size_base`): an
/// update later rewrites only the files its keys overlap.
const FILE_BYTES: u64 = 64 << 20;

/// Where a commit's writes go. Each family of keys is written in key order.
pub(super) trait Sink {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError>;
}

/// The temporary directory of one commit's table files, removed on drop.
pub(super) struct TableDir {
    dir: PathBuf,
}

impl TableDir {
    /// Creates the (empty) directory in the store at `store`.
    pub(super) fn create(store: &Path) -> Result<TableDir, StoreError> {
        let dir = store.join(TMP_DIR);
        let io_err = |source| StoreError::Files {
            path: dir.clone(),
            source,
        };
        remove_dir(&dir).map_err(io_err)?;
        std::fs::create_dir(&dir).map_err(io_err)?;
        Ok(TableDir { dir })
    }

    /// A writer of files named `NAME-N.sst` in this directory.
    pub(super) fn writer<'a>(&'a self, opts: &'a Options, name: &str) -> TableWriter<'a> {
        TableWriter {
            opts,
            dir: &self.dir,
            name: name.to_string(),
            open: None,
            files: Vec::new(),
        }
    }
}

impl Drop for TableDir {
    fn drop(&mut self) {
        if let Err(e) = remove_dir(&self.dir) {
            tracing::warn!("cannot remove {}: {e}", self.dir.display());
        }
    }
}

fn remove_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Removes the table files a killed commit left in the store at `store` (only
/// by the process that holds the store's lock).
pub(super) fn remove_leftovers(store: &Path) -> Result<(), StoreError> {
    let dir = store.join(TMP_DIR);
    remove_dir(&dir).map_err(|source| StoreError::Files { path: dir, source })
}

/// Streams keys in order into table files, starting a new file every
/// [`FILE_BYTES`]. A writer that received no key writes no file.
pub(super) struct TableWriter<'a> {
    opts: &'a Options,
    dir: &'a Path,
    name: String,
    open: Option<(SstFileWriter<'a>, PathBuf)>,
    files: Vec<PathBuf>,
}

impl<'a> TableWriter<'a> {
    fn err(&self, path: &Path, source: rocksdb::Error) -> StoreError {
        StoreError::Db {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The open file, opened (or rolled over to a new one) as needed.
    fn file(&mut self) -> Result<&mut SstFileWriter<'a>, StoreError> {
        if self
            .open
            .as_ref()
            .is_some_and(|(w, _)| w.file_size() >= FILE_BYTES)
        {
            self.close()?;
        }
        let open = match self.open.take() {
            Some(open) => open,
            None => {
                let path = self
                    .dir
                    .join(format!("{}-{}.sst", self.name, self.files.len()));
                let writer = SstFileWriter::create(self.opts);
                writer.open(&path).map_err(|e| self.err(&path, e))?;
                (writer, path)
            }
        };
        Ok(&mut self.open.insert(open).0)
    }

    fn close(&mut self) -> Result<(), StoreError> {
        if let Some((mut w, path)) = self.open.take() {
            w.finish().map_err(|e| self.err(&path, e))?;
            self.files.push(path);
        }
        Ok(())
    }

    /// Finishes the last file (synced by RocksDB) and gives the files written,
    /// in key order.
    pub(super) fn finish(mut self) -> Result<Vec<PathBuf>, StoreError> {
        self.close()?;
        Ok(std::mem::take(&mut self.files))
    }

    fn path(&self) -> PathBuf {
        self.open
            .as_ref()
            .map_or_else(|| self.dir.to_path_buf(), |(_, p)| p.clone())
    }
}

impl Sink for TableWriter<'_> {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        let r = self.file()?.put(key, value);
        r.map_err(|e| self.err(&self.path(), e))
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        let r = self.file()?.delete(key);
        r.map_err(|e| self.err(&self.path(), e))
    }
}

impl Sink for rocksdb::WriteBatch {
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        rocksdb::WriteBatch::put(self, key, value);
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StoreError> {
        rocksdb::WriteBatch::delete(self, key);
        Ok(())
    }
}
