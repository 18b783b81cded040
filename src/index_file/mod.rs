//! The persisted index: the lookup structure of a store as one immutable file,
//! mapped read-only by every process that opens the store.
//!
//! RocksDB stays the source of truth; `DB/whipstream.index` is derived from it and
//! records the [`StoreState`] it was built from. Opening a store is a header check:
//! the file is mapped (`mmap`), its header and small metadata are checked, and
//! the pages come in as lookups touch them, shared between processes through the
//! page cache (they count as file-backed, not anonymous, memory).
//!
//! Invariants:
//! - The file is only ever replaced whole: written to `whipstream.index.tmp`,
//!   synced, renamed over the old one, the directory synced, all under an
//!   exclusive lock on `whipstream.index.lock`. A `kill -9` at any moment leaves
//!   the previous file in place; a mapped file is never modified.
//! - A file is used only if its header checksum holds, its length and layout
//!   match the header, and its state equals the store's; with [`Check::Full`]
//!   every section's CRC-32 (which covers the padding after it: every byte of
//!   the file is under a checksum) is checked too. Anything else (missing, stale,
//!   corrupt) is logged and the index is rebuilt from RocksDB and persisted again.
//! - The file holds an index image ([`crate::index::image`], which describes its
//!   layout) byte for byte; the layout is deterministic, which `verify` uses to
//!   compare the file with the store.
//!
//! Why a one-shot `lookup` may trust a file checked only at its header
//! ([`Check::Header`]) instead of reading every byte for the CRCs (which would
//! make its cost grow with the history): the header is under its own checksum
//! and ties the file to the store's current state, and the layout check bounds
//! every section inside the file with the sizes its counts and widths need.
//! Damage inside a section can then make an answer wrong only where the bytes
//! are damaged, never crash or read outside the mapping: every read of the
//! arrays is bounds-checked without panicking ([`crate::index`]). The file is
//! never written in place (only replaced by rename), so such damage means a
//! disk or a person changed it; the processes that answer many queries
//! (`lookup --batch`, `enrich`, `export` when they open, `serve` and `run` in
//! a background thread) and `verify` check every section's CRC, and rebuild
//! the file when one fails.
//!
//! This module is the persistence only (mapping, persisting, opening, rebuilding
//! and verifying a store's file); what the bytes are belongs to the index.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::history::History;
use crate::index::image::{state_in_header, BuildError, LayOutError, Sink, HEADER_LEN};
pub use crate::index::image::{Check, Image, ImageError};
use crate::index::Index;
use crate::store::{Mode, Store, StoreError, StoreState};

/// The index file's name inside the store directory.
pub const FILE_NAME: &str = "whipstream.index";
const TMP_NAME: &str = "whipstream.index.tmp";
const LOCK_NAME: &str = "whipstream.index.lock";

/// Why a persisted index cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IndexFileError {
    #[error("{}: no index file", path.display())]
    Missing { path: PathBuf },
    #[error("{}: stale: built from store state {found}, the store is at {current}", path.display())]
    Stale {
        path: PathBuf,
        found: String,
        current: String,
    },
    /// Another format version, or corrupt.
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn state_text(s: &StoreState) -> String {
    format!("{:032x}/{}", s.id, s.generation)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> IndexFileError + '_ {
    move |source| IndexFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Maps the index file of the store at `db` and checks it against `state`.
pub fn map(db: &Path, state: StoreState, check: Check) -> Result<Image, IndexFileError> {
    let path = db.join(FILE_NAME);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IndexFileError::Missing { path })
        }
        Err(e) => return Err(io_err(&path)(e)),
    };
    let len = file.metadata().map_err(io_err(&path))?.len();
    if len < HEADER_LEN as u64 {
        return Err(ImageError::Corrupt {
            path,
            what: format!("{len} bytes long, shorter than a header"),
        }
        .into());
    }
    // SAFETY: the file is never modified once renamed into place (a new index
    // replaces it by rename), so the mapping's contents cannot change under us.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err(&path))?;
    let image = Image::from_mapped(map, &path, check)?;
    if image.state() != state {
        return Err(IndexFileError::Stale {
            found: state_text(&image.state()),
            current: state_text(&state),
            path,
        });
    }
    Ok(image)
}

/// An exclusive lock on the store's index lock file, released on drop.
struct WriteLock(File);

impl WriteLock {
    fn take(db: &Path) -> std::io::Result<WriteLock> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(db.join(LOCK_NAME))?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&file), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(WriteLock(file))
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        // SAFETY: unlocking our own descriptor (closing it would too).
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&self.0), libc::LOCK_UN) };
    }
}

/// Writes `image` as the store's index file, atomically: temp file, sync,
/// rename, directory sync. Keeps the file in place instead when it already holds
/// a newer state of the same store (another process got there first). Returns
/// whether it wrote.
pub fn persist(db: &Path, image: &Image) -> Result<bool, IndexFileError> {
    let state = image.state();
    let written = replace(db, state, |f| {
        write_paced(f, image.as_bytes()).map_err(Replacing::Io)
    });
    match written {
        Ok(wrote) => Ok(wrote),
        Err(Replacing::File(e)) => Err(e),
        Err(Replacing::Io(e)) => Err(io_err(&db.join(TMP_NAME))(e)),
        // Writing bytes already laid out cannot meet a history fault.
        Err(Replacing::Build(e)) => Err(IndexFileError::Io {
            path: db.join(TMP_NAME),
            source: std::io::Error::other(e.to_string()),
        }),
    }
}

/// Why the index file was not replaced.
enum Replacing {
    /// The history cannot be indexed (nothing is renamed into place).
    Build(BuildError),
    /// Writing the temporary file failed.
    Io(std::io::Error),
    File(IndexFileError),
}

/// Lays out `history` (the store at `state`) straight into the store's index
/// file, section by section ([`Image::lay_out`]): the whole image is never in
/// anonymous memory. Atomic as [`persist`] is; returns whether it wrote.
fn write_history(db: &Path, history: &History, state: StoreState) -> Result<bool, Replacing> {
    replace(db, state, |f| {
        let mut out = Paced::new(f);
        match Image::lay_out(history, state, &mut out) {
            Ok(_) => out.flush().map_err(Replacing::Io),
            Err(LayOutError::Build(e)) => Err(Replacing::Build(e)),
            Err(LayOutError::Sink(e)) => Err(Replacing::Io(e)),
        }
    })
}

/// Replaces the store's index file by what `write` writes into a temporary
/// file (of state `state`): under the write lock, temp file, sync, rename,
/// directory sync; unless the file in place holds a newer state of the same
/// store. Returns whether it wrote.
fn replace(
    db: &Path,
    state: StoreState,
    write: impl FnOnce(&File) -> Result<(), Replacing>,
) -> Result<bool, Replacing> {
    let path = db.join(FILE_NAME);
    let tmp = db.join(TMP_NAME);
    let file_err = |p: &Path| {
        let p = p.to_path_buf();
        move |e| Replacing::File(io_err(&p)(e))
    };
    let _lock = WriteLock::take(db).map_err(file_err(&db.join(LOCK_NAME)))?;
    if let Some(found) = persisted_state(&path) {
        // A newer state of the same store is never replaced by an older one.
        if found.id == state.id && found.generation > state.generation {
            return Ok(false);
        }
    }
    let f = File::create(&tmp).map_err(file_err(&tmp))?;
    write(&f)?;
    f.sync_all().map_err(file_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(file_err(&path))?;
    File::open(db)
        .and_then(|d| d.sync_all())
        .map_err(file_err(db))?;
    Ok(true)
}

/// The slices [`write_paced`] and [`Paced`] hand to the disk.
const SLICE: usize = 8 << 20;

/// Writes `bytes` in slices, each handed to the disk as soon as it is written
/// (and the one before waited for), so that the final sync has little left to
/// do: a city-scale file (over 100 MB) synced at once is a burst of writeback
/// that stalls a daemon enriching beside the load by hundreds of ms. The
/// final `sync_all` is what makes the file durable; these hints only pace it.
fn write_paced(f: &File, bytes: &[u8]) -> std::io::Result<()> {
    let mut at = 0usize;
    for chunk in bytes.chunks(SLICE) {
        write_slice(f, at, chunk)?;
        at += chunk.len();
    }
    Ok(())
}

/// Writes `chunk` (at `at` in `f`, where the file position is) and hands it
/// to the disk, waiting for the slice before it.
fn write_slice(mut f: &File, at: usize, chunk: &[u8]) -> std::io::Result<()> {
    f.write_all(chunk)?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let fd = f.as_raw_fd();
        // SAFETY: writeback hints on a descriptor we own; failure is harmless
        // (the sync after the last slice still writes everything).
        unsafe {
            libc::sync_file_range(
                fd,
                at as libc::off64_t,
                chunk.len() as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
            if let Some(before) = at.checked_sub(SLICE) {
                libc::sync_file_range(
                    fd,
                    before as libc::off64_t,
                    SLICE as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE
                        | libc::SYNC_FILE_RANGE_WRITE
                        | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                );
            }
        }
    }
    Ok(())
}

/// An index file being laid out: what is appended is gathered into slices of
/// [`SLICE`] bytes, each written and paced as [`write_paced`] does; the
/// header goes to the start at the end.
struct Paced<'f> {
    file: &'f File,
    slice: Vec<u8>,
    at: usize,
}

impl<'f> Paced<'f> {
    fn new(file: &'f File) -> Self {
        Paced {
            file,
            slice: Vec::with_capacity(SLICE),
            at: 0,
        }
    }

    /// Writes what is gathered.
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.slice.is_empty() {
            write_slice(self.file, self.at, &self.slice)?;
            self.at += self.slice.len();
            self.slice.clear();
        }
        Ok(())
    }
}

impl Sink for Paced<'_> {
    type Error = std::io::Error;

    fn append(&mut self, mut bytes: &[u8]) -> std::io::Result<()> {
        while !bytes.is_empty() {
            let n = (SLICE - self.slice.len()).min(bytes.len());
            self.slice.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.slice.len() == SLICE {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn header(&mut self, header: &[u8]) -> std::io::Result<()> {
        self.flush()?;
        std::os::unix::fs::FileExt::write_all_at(self.file, header, 0)
    }
}

/// The state recorded in the header of the index file at `path`, if it has a
/// valid header.
fn persisted_state(path: &Path) -> Option<StoreState> {
    let mut head = vec![0u8; HEADER_LEN];
    let mut f = File::open(path).ok()?;
    std::io::Read::read_exact(&mut f, &mut head).ok()?;
    state_in_header(&head)
}

/// Opens the index of the store at `db`: maps the persisted file when it is
/// valid for the store's current state; otherwise (missing, stale, corrupt) says
/// why in the log, rebuilds it from the store, persists it for the next process
/// (best effort: a read-only directory still gets answers) and maps that.
pub fn open(db: &Path, check: Check) -> Result<Index, StoreError> {
    let store = Store::open(db, Mode::ReadOnly)?;
    let state = store.state()?;
    match map(db, state, check) {
        Ok(image) => {
            drop(store);
            return index_of(db, image);
        }
        Err(e) => tracing::warn!("{e}: rebuilding the index from the store"),
    }
    let history = store.read_history()?;
    drop(store);
    rebuild(db, &history, state)
}

/// Lays out `history` (the store at `state`) straight into the store's index
/// file and maps it; when the file cannot be written the index is laid out in
/// memory instead.
pub fn rebuild(db: &Path, history: &History, state: StoreState) -> Result<Index, StoreError> {
    let corrupt = |e: BuildError| StoreError::Corrupt {
        path: db.to_path_buf(),
        what: e.to_string(),
    };
    match write_history(db, history, state) {
        Ok(true) => {
            // When the file was replaced by a newer state meanwhile, the one
            // laid out in memory below is right for the state read.
            if let Ok(mapped) = map(db, state, Check::Header) {
                return index_of(db, mapped);
            }
        }
        // A newer state of the store is in place.
        Ok(false) => {}
        Err(Replacing::Build(e)) => return Err(corrupt(e)),
        Err(Replacing::Io(e)) => {
            let e = io_err(&db.join(TMP_NAME))(e);
            tracing::warn!("cannot write the index file: {e}; using it from memory");
        }
        Err(Replacing::File(e)) => {
            tracing::warn!("cannot write the index file: {e}; using it from memory");
        }
    }
    let image = Image::build(history, state).map_err(corrupt)?;
    index_of(db, image)
}

fn index_of(db: &Path, image: Image) -> Result<Index, StoreError> {
    Index::from_image(image).map_err(|e| StoreError::Corrupt {
        path: db.join(FILE_NAME),
        what: e.to_string(),
    })
}

/// What `verify` finds about the index file of a store.
#[derive(Debug)]
pub enum Status {
    /// Valid and byte for byte what the store's history gives.
    Ok { bytes: u64 },
    /// Missing or stale: rebuilt on the next open (not a fault: a killed load
    /// leaves the previous one).
    WillRebuild(String),
    /// Corrupt, or valid but different from what the store gives.
    Bad(String),
}

/// Compares the index file with the index `history` (the store at `state`) gives.
pub fn verify(db: &Path, history: &History, state: StoreState) -> Status {
    let image = match map(db, state, Check::Full) {
        Ok(image) => image,
        Err(
            e @ (IndexFileError::Missing { .. }
            | IndexFileError::Stale { .. }
            | IndexFileError::Image(ImageError::Version { .. })),
        ) => return Status::WillRebuild(e.to_string()),
        Err(e) => return Status::Bad(e.to_string()),
    };
    match Image::build(history, state) {
        Ok(expected) if expected.as_bytes() == image.as_bytes() => Status::Ok {
            bytes: image.len() as u64,
        },
        Ok(_) => Status::Bad(format!(
            "{}: differs from the index the store gives",
            db.join(FILE_NAME).display()
        )),
        Err(e) => Status::Bad(format!("the store's history cannot be indexed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::image::header_crc_at;
    use crate::index::image::tests::{history, state, A, B};
    use crate::ip::IpKey;
    use crate::time::Timestamp;

    fn answers(index: &Index) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for ip in ["1.0.0.5", "1.0.0.200", "2001:db8::1", "9.9.9.9"] {
            for t in ["2023-01-01", "2024-01-15", "2024-03-01"] {
                let ip = IpKey::parse(ip).unwrap();
                out.push(
                    index
                        .at(ip, Timestamp::parse(t).unwrap())
                        .map(|m| m.to_json()),
                );
            }
        }
        out
    }

    #[test]
    fn a_persisted_image_maps_to_the_same_answers() {
        let dir = tempfile::tempdir().unwrap();
        let h = history(&[A, B]);
        let built = Image::build(&h, state(3)).unwrap();
        let in_memory = Index::from_image(Image::build(&h, state(3)).unwrap()).unwrap();
        assert!(persist(dir.path(), &built).unwrap());
        let mapped = map(dir.path(), state(3), Check::Full).unwrap();
        assert!(mapped.is_mapped());
        assert_eq!(mapped.as_bytes(), built.as_bytes());
        let mapped = Index::from_image(mapped).unwrap();
        assert_eq!(answers(&mapped), answers(&in_memory));
        assert_eq!(mapped.state(), state(3));
        assert!(answers(&mapped).iter().flatten().count() >= 4);
        assert_eq!(
            mapped.first_snapshot(),
            Some(Timestamp::parse("2024-01-01").unwrap())
        );
    }

    #[test]
    fn a_rebuilt_file_holds_the_image_build_gives() {
        let dir = tempfile::tempdir().unwrap();
        let h = history(&[A, B]);
        let index = rebuild(dir.path(), &h, state(2)).unwrap();
        let written = std::fs::read(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(written, Image::build(&h, state(2)).unwrap().as_bytes());
        assert!(!dir.path().join(TMP_NAME).exists());
        assert!(map(dir.path(), state(2), Check::Full).is_ok());
        assert!(answers(&index).iter().flatten().count() >= 4);
    }

    /// Appends of any size across slice boundaries land in order, and the
    /// header goes over the start.
    #[test]
    fn paced_appends_and_header_land_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("paced");
        let f = File::create(&path).unwrap();
        let mut expected = Vec::new();
        let mut out = Paced::new(&f);
        for (n, size) in [HEADER_LEN, 3, SLICE - 7, 100, SLICE, 2 * SLICE + 5]
            .into_iter()
            .enumerate()
        {
            let bytes: Vec<u8> = (0..size).map(|i| (i * 7 + n) as u8).collect();
            out.append(&bytes).unwrap();
            expected.extend_from_slice(&bytes);
        }
        out.header(&[9u8; HEADER_LEN]).unwrap();
        drop(f);
        expected[..HEADER_LEN].fill(9);
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }

    #[test]
    fn stale_and_corrupt_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let image = Image::build(&history(&[A]), state(1)).unwrap();
        assert!(matches!(
            map(dir.path(), state(1), Check::Header),
            Err(IndexFileError::Missing { .. })
        ));
        persist(dir.path(), &image).unwrap();
        assert!(matches!(
            map(dir.path(), state(2), Check::Header),
            Err(IndexFileError::Stale { .. })
        ));
        let path = dir.path().join(FILE_NAME);
        let good = std::fs::read(&path).unwrap();
        for at in [0, 17, header_crc_at() + 100, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 1;
            std::fs::write(&path, &bad).unwrap();
            assert!(
                matches!(
                    map(dir.path(), state(1), Check::Full),
                    Err(IndexFileError::Image(ImageError::Corrupt { .. }))
                ),
                "byte {at}"
            );
        }
        std::fs::write(&path, &good[..good.len() - 64]).unwrap();
        assert!(matches!(
            map(dir.path(), state(1), Check::Header),
            Err(IndexFileError::Image(ImageError::Corrupt { .. }))
        ));
    }

    #[test]
    fn a_file_of_another_format_version_is_rebuilt_not_called_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let h = history(&[A, B]);
        persist(dir.path(), &Image::build(&h, state(1)).unwrap()).unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut old = std::fs::read(&path).unwrap();
        // Version 2: 32-bit changes and lines of 12 bytes.
        old[8..12].copy_from_slice(&2u32.to_le_bytes());
        std::fs::write(&path, &old).unwrap();
        assert!(matches!(
            map(dir.path(), state(1), Check::Header),
            Err(IndexFileError::Image(ImageError::Version { found: 2, .. }))
        ));
        assert!(matches!(
            verify(dir.path(), &h, state(1)),
            Status::WillRebuild(_)
        ));
    }

    #[test]
    fn a_newer_file_is_not_replaced_by_an_older_one() {
        let dir = tempfile::tempdir().unwrap();
        let h = history(&[A, B]);
        assert!(persist(dir.path(), &Image::build(&h, state(5)).unwrap()).unwrap());
        assert!(!persist(dir.path(), &Image::build(&h, state(4)).unwrap()).unwrap());
        assert!(map(dir.path(), state(5), Check::Full).is_ok());
        // The same state again, or another store's, is written.
        assert!(persist(dir.path(), &Image::build(&h, state(5)).unwrap()).unwrap());
        let other = StoreState {
            id: 8,
            generation: 1,
        };
        assert!(persist(dir.path(), &Image::build(&h, other).unwrap()).unwrap());
    }
}
