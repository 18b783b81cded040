//! The durable store: one data set's history in RocksDB.
//!
//! The store is the source of truth; the in-memory [`History`] is read from it at
//! start and written back as a *diff* in one `WriteBatch` with a synced WAL, which
//! RocksDB applies atomically: a crash or `kill -9` at any moment leaves the store as
//! before or as after a load, never between.
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

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rocksdb::{BlockBasedOptions, DBCompressionType, Options, WriteBatch, WriteOptions, DB};

use crate::history::{Change, History, Line, Snapshot, SnapshotMeta, NO_LINE};
use crate::ip::{Family, IpKey};

const FORMAT_KEY: &[u8] = b"Mformat";
const FORMAT_VERSION: &[u8] = b"2";
/// Stores written before the state key existed; read, and upgraded by a commit.
const FORMAT_VERSION_1: &[u8] = b"1";
const STATE_KEY: &[u8] = b"Mstate";
const SNAPSHOT: u8 = b'S';
const PIECE: u8 = b'P';
const LINE: u8 = b'L';
const PAYLOAD: u8 = b'D';

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

/// What a commit wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub pieces_written: u64,
    pub pieces_deleted: u64,
    pub lines_written: u64,
    pub payloads_written: u64,
    pub deleted_other: u64,
    /// The store's state after the commit.
    pub state: StoreState,
}

/// Which content a store holds: its id and the number of commits made to it.
/// Two opens that read the same state see the same history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StoreState {
    /// Random, given at the first commit (0 for a store that was never written
    /// by a whipstream that counts commits).
    pub id: u128,
    pub generation: u64,
}

impl StoreState {
    fn encode(&self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[..16].copy_from_slice(&self.id.to_be_bytes());
        b[16..].copy_from_slice(&self.generation.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<StoreState> {
        Some(StoreState {
            id: be_u128(b.get(..16)?)?,
            generation: u64::from_be_bytes(b.get(16..24)?.try_into().ok()?),
        })
    }

    /// The state after one more commit (a new id for a store without one).
    fn next(&self) -> StoreState {
        StoreState {
            id: if self.id == 0 { random_id() } else { self.id },
            generation: self.generation + 1,
        }
    }
}

/// 128 bits that differ between stores: time, process and address-space entropy
/// hashed together (not cryptographic; only told apart from other stores).
fn random_id() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut id = 0u128;
    for round in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(round);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        id = (id << 64) | u128::from(h.finish());
    }
    id.max(1)
}

/// What a commit needs of the store's content before a change: the snapshots
/// and pieces, and which record and payload ids are live. Their content is not
/// kept (the bulk of a history): merging only appends ids, never rewrites or
/// reuses one, so an id live before and after has the same content.
#[derive(Clone, Debug, Default)]
pub struct Base {
    snapshots: Vec<SnapshotMeta>,
    starts: Vec<IpKey>,
    offsets: Vec<u32>,
    changes: Vec<Change>,
    lines: Vec<bool>,
    payloads: Vec<bool>,
}

impl Base {
    pub fn of(h: &History) -> Base {
        Base {
            snapshots: h.snapshots.iter().map(|s| s.meta.clone()).collect(),
            starts: h.starts.clone(),
            offsets: h.offsets.clone(),
            changes: h.changes.clone(),
            lines: h.lines.iter().map(Option::is_some).collect(),
            payloads: h.payloads.iter().map(Option::is_some).collect(),
        }
    }

    fn piece_changes(&self, i: usize) -> &[Change] {
        &self.changes[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }
}

/// A RocksDB-backed history store.
pub struct Store {
    db: DB,
    path: PathBuf,
}

fn options() -> Options {
    let mut opts = Options::default();
    opts.set_compression_type(DBCompressionType::Lz4);
    opts.set_bottommost_compression_type(DBCompressionType::Zstd);
    let mut table = BlockBasedOptions::default();
    table.set_block_size(16 * 1024);
    opts.set_block_based_table_factory(&table);
    opts.set_keep_log_file_num(2);
    opts.set_max_log_file_size(1 << 20);
    opts.set_log_level(rocksdb::LogLevel::Warn);
    // A load writes one big batch; let the memtable hold it.
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
        let mut opts = options();
        let db = match mode {
            Mode::ReadWrite => {
                Store::check_new_location(path)?;
                opts.create_if_missing(true);
                DB::open(&opts, path).map_err(db_err)?
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

    /// Reads the whole history. Records and pieces (the bulk) are read by two
    /// threads at once.
    pub fn read_history(&self) -> Result<History, StoreError> {
        let mut snapshots = Vec::new();
        self.scan(SNAPSHOT, |_, v| {
            let meta: SnapshotMeta = serde_json::from_slice(v)
                .map_err(|e| self.corrupt(format!("snapshot metadata: {e}")))?;
            snapshots.push(Snapshot::new(meta));
            Ok(())
        })?;
        // Snapshot id -> position in time order (ids are small and dense).
        let max_id = snapshots
            .iter()
            .map(|s| s.meta.id as usize + 1)
            .max()
            .unwrap_or(0);
        let mut position = vec![u16::MAX; max_id];
        for (pos, s) in snapshots.iter().enumerate() {
            position[s.meta.id as usize] = pos as u16;
        }

        let mut payloads: Vec<Option<Box<[u8]>>> = Vec::new();
        self.scan(PAYLOAD, |k, v| {
            let id = be_u32(k).ok_or_else(|| self.corrupt("bad payload key"))? as usize;
            if payloads.len() <= id {
                payloads.resize(id + 1, None);
            }
            payloads[id] = Some(v.into());
            Ok(())
        })?;

        let (lines, pieces) = std::thread::scope(|scope| {
            let lines = scope.spawn(|| self.read_lines());
            let pieces = self.read_pieces(&position);
            let lines = lines
                .join()
                .unwrap_or_else(|_| Err(self.corrupt("reader thread failed")));
            (lines, pieces)
        });
        let lines = lines?;
        let (mut starts, mut offsets, changes) = pieces?;
        if starts.is_empty() {
            starts.push(IpKey::MIN);
            offsets.push(0);
        }
        Ok(History::from_parts(
            snapshots, starts, offsets, changes, lines, payloads,
        ))
    }

    fn read_lines(&self) -> Result<Vec<Option<Line>>, StoreError> {
        let mut lines: Vec<Option<Line>> = Vec::new();
        self.scan(LINE, |k, v| {
            let id = be_u32(k).ok_or_else(|| self.corrupt("bad line key"))? as usize;
            let line = decode_line(v).ok_or_else(|| self.corrupt(format!("line {id}")))?;
            if lines.len() <= id {
                lines.resize(id + 1, None);
            }
            lines[id] = Some(line);
            Ok(())
        })?;
        Ok(lines)
    }

    #[allow(clippy::type_complexity)]
    fn read_pieces(
        &self,
        position: &[u16],
    ) -> Result<(Vec<IpKey>, Vec<u32>, Vec<Change>), StoreError> {
        let mut starts = Vec::new();
        let mut offsets = vec![0u32];
        let mut changes = Vec::new();
        self.scan(PIECE, |k, v| {
            let start = be_u128(k).ok_or_else(|| self.corrupt("bad piece key"))?;
            decode_changes(v, position, &mut changes)
                .ok_or_else(|| self.corrupt(format!("changes of piece {}", IpKey(start))))?;
            starts.push(IpKey(start));
            offsets.push(changes.len() as u32);
            Ok(())
        })?;
        Ok((starts, offsets, changes))
    }

    /// Writes the difference between `before` (what the store holds) and `after`
    /// (merged from it) in one atomic, synced batch, with the next [`StoreState`]
    /// (in `stats.state`).
    pub fn commit(&self, before: &Base, after: &History) -> Result<CommitStats, StoreError> {
        let mut batch = WriteBatch::default();
        let mut stats = CommitStats {
            state: self.state()?.next(),
            ..CommitStats::default()
        };
        batch.put(FORMAT_KEY, FORMAT_VERSION);
        batch.put(STATE_KEY, stats.state.encode());

        let key_of = |m: &SnapshotMeta| snapshot_key(m.instant_micros);
        let after_ids: HashMap<u32, &Snapshot> =
            after.snapshots.iter().map(|s| (s.meta.id, s)).collect();
        for m in &before.snapshots {
            if !after_ids.contains_key(&m.id) {
                batch.delete(key_of(m));
                stats.deleted_other += 1;
            }
        }
        let before_ids: HashMap<u32, &SnapshotMeta> =
            before.snapshots.iter().map(|m| (m.id, m)).collect();
        for s in &after.snapshots {
            if before_ids.get(&s.meta.id) != Some(&&s.meta) {
                let meta = serde_json::to_vec(&s.meta)
                    .map_err(|e| self.corrupt(format!("snapshot metadata: {e}")))?;
                batch.put(key_of(&s.meta), meta);
            }
        }

        // Ids are only appended: one live before and after has the same content.
        let n = before.payloads.len().max(after.payloads.len());
        for id in 0..n {
            let b = before.payloads.get(id).copied().unwrap_or(false);
            let a = after.payloads.get(id).and_then(Option::as_ref);
            let key = id_key(PAYLOAD, id as u32);
            match (b, a) {
                (true, None) => {
                    batch.delete(key);
                    stats.deleted_other += 1;
                }
                (false, Some(a)) => {
                    batch.put(key, a);
                    stats.payloads_written += 1;
                }
                _ => {}
            }
        }
        let n = before.lines.len().max(after.lines.len());
        let mut buf = Vec::with_capacity(64);
        for id in 0..n {
            let b = before.lines.get(id).copied().unwrap_or(false);
            let a = after.lines.get(id).copied().flatten();
            let key = id_key(LINE, id as u32);
            match (b, a) {
                (true, None) => {
                    batch.delete(key);
                    stats.deleted_other += 1;
                }
                (false, Some(a)) => {
                    buf.clear();
                    encode_line(&a, &mut buf);
                    batch.put(key, &buf);
                    stats.lines_written += 1;
                }
                _ => {}
            }
        }

        // Pieces: walk both sorted start lists.
        let ids_before: Vec<u32> = before.snapshots.iter().map(|m| m.id).collect();
        let ids_after: Vec<u32> = after.snapshots.iter().map(|s| s.meta.id).collect();
        let (mut i, mut j) = (0, 0);
        let mut old_buf = Vec::with_capacity(64);
        let empty_before = before.snapshots.is_empty() && before.changes.is_empty();
        while i < before.starts.len() || j < after.starts.len() {
            let bs = before.starts.get(i).copied();
            let as_ = after.starts.get(j).copied();
            match (bs, as_) {
                (Some(b), Some(a)) if b == a => {
                    buf.clear();
                    encode_changes(after.piece_changes(j), &ids_after, &mut buf);
                    old_buf.clear();
                    encode_changes(before.piece_changes(i), &ids_before, &mut old_buf);
                    // An empty store has no keys at all, not even the first piece.
                    if buf != old_buf || empty_before {
                        batch.put(piece_key(a), &buf);
                        stats.pieces_written += 1;
                    }
                    i += 1;
                    j += 1;
                }
                (Some(b), a) if a.is_none_or(|a| b < a) => {
                    batch.delete(piece_key(b));
                    stats.pieces_deleted += 1;
                    i += 1;
                }
                (_, Some(a)) => {
                    buf.clear();
                    encode_changes(after.piece_changes(j), &ids_after, &mut buf);
                    batch.put(piece_key(a), &buf);
                    stats.pieces_written += 1;
                    j += 1;
                }
                _ => break,
            }
        }

        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(|e| self.db_err(e))?;
        Ok(stats)
    }

    /// Compacts the whole store (drops superseded versions; smaller on disk).
    pub fn compact(&self) {
        self.db.compact_range::<&[u8], &[u8]>(None, None);
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

fn snapshot_key(micros: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(SNAPSHOT);
    // Flipping the sign bit makes big-endian bytes sort like the signed value.
    k.extend_from_slice(&((micros as u64) ^ (1 << 63)).to_be_bytes());
    k
}

fn piece_key(start: IpKey) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = PIECE;
    k[1..].copy_from_slice(&start.0.to_be_bytes());
    k
}

fn id_key(prefix: u8, id: u32) -> [u8; 5] {
    let mut k = [0u8; 5];
    k[0] = prefix;
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.try_into().ok()?))
}

fn be_u128(b: &[u8]) -> Option<u128> {
    Some(u128::from_be_bytes(b.try_into().ok()?))
}

fn put_varint(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> Option<u128> {
    let mut v: u128 = 0;
    let mut shift = 0;
    loop {
        let byte = *b.get(*pos)?;
        *pos += 1;
        if shift >= 128 {
            return None;
        }
        v |= u128::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
    }
}

fn encode_changes(changes: &[Change], ids: &[u32], out: &mut Vec<u8>) {
    put_varint(out, changes.len() as u128);
    for c in changes {
        put_varint(out, u128::from(ids[usize::from(c.pos)]));
        let line = if c.line == NO_LINE {
            0
        } else {
            u128::from(c.line) + 1
        };
        put_varint(out, line);
    }
}

/// Decodes changes and puts them in snapshot order (ids are not ordered by time).
fn decode_changes(b: &[u8], position: &[u16], out: &mut Vec<Change>) -> Option<()> {
    let mut p = 0;
    let n = usize::try_from(get_varint(b, &mut p)?).ok()?;
    let first = out.len();
    for _ in 0..n {
        let id = u32::try_from(get_varint(b, &mut p)?).ok()?;
        let line = get_varint(b, &mut p)?;
        let line = if line == 0 {
            NO_LINE
        } else {
            u32::try_from(line - 1).ok()?
        };
        let pos = *position.get(id as usize)?;
        if pos == u16::MAX {
            return None;
        }
        out.push(Change { pos, line });
    }
    out[first..].sort_by_key(|c| c.pos);
    (p == b.len()).then_some(())
}

fn encode_line(line: &Line, out: &mut Vec<u8>) {
    match line.begin.family() {
        Family::V4 => {
            out.push(4);
            out.extend_from_slice(&(line.begin.0 as u32).to_be_bytes());
        }
        Family::V6 => {
            out.push(6);
            out.extend_from_slice(&line.begin.0.to_be_bytes());
        }
    }
    put_varint(out, line.end.0 - line.begin.0);
    put_varint(out, u128::from(line.payload));
}

fn decode_line(b: &[u8]) -> Option<Line> {
    let (begin, mut p) = match b.first()? {
        4 => (IpKey::V4_FIRST.0 | u128::from(be_u32(b.get(1..5)?)?), 5),
        6 => (be_u128(b.get(1..17)?)?, 17),
        _ => return None,
    };
    let len = get_varint(b, &mut p)?;
    let payload = u32::try_from(get_varint(b, &mut p)?).ok()?;
    (p == b.len()).then_some(Line {
        begin: IpKey(begin),
        end: IpKey(begin.checked_add(len)?),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Interner;
    use crate::snapshot::SnapshotFile;

    fn merge(h: &mut History, i: &mut Interner, text: &str, replace: bool) {
        let f = SnapshotFile::from_lines("x.jsonl", text).unwrap();
        let meta = SnapshotMeta::of_file(&f);
        h.merge(i, &f, meta, replace).unwrap();
    }

    #[test]
    fn varints_and_lines_round_trip() {
        for v in [0u128, 1, 127, 128, u64::MAX as u128, u128::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut p = 0;
            assert_eq!(get_varint(&b, &mut p), Some(v));
            assert_eq!(p, b.len());
        }
        for (b, e) in [
            ("1.2.3.4", "1.2.3.4"),
            ("::", "::ffff"),
            ("2001:db8::", "ffff::"),
        ] {
            let line = Line {
                begin: IpKey::parse(b).unwrap(),
                end: IpKey::parse(e).unwrap(),
                payload: 7,
            };
            let mut out = Vec::new();
            encode_line(&line, &mut out);
            assert_eq!(decode_line(&out), Some(line));
        }
        assert_eq!(decode_line(&[9, 1, 2]), None);
    }

    #[test]
    fn commit_and_read_back_give_the_same_history() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Mode::ReadWrite).unwrap();
        let mut h = store.read_history().unwrap();
        let mut i = Interner::new(&h);
        let before = Base::of(&h);
        merge(
            &mut h,
            &mut i,
            r#"{"begin":"1.0.0.0","end":"1.0.0.9","datetime":"2024-03-01","a":1}"#,
            false,
        );
        merge(
            &mut h,
            &mut i,
            r#"{"begin":"1.0.0.5","end":"1.0.0.9","datetime":"2024-01-01","a":2}"#,
            false,
        );
        store.commit(&before, &h).unwrap();
        let back = store.read_history().unwrap();
        assert_eq!(back.starts, h.starts);
        assert_eq!(back.changes, h.changes);
        assert_eq!(back.lines, h.lines);
        assert!(back.check(10).is_empty(), "{:?}", back.check(10));

        // A replace garbage-collects; the diff deletes what is gone.
        let before = Base::of(&back);
        let mut h = back;
        let mut i = Interner::new(&h);
        merge(
            &mut h,
            &mut i,
            r#"{"begin":"1.0.0.0","end":"1.0.0.9","datetime":"2024-03-01","a":3}"#,
            true,
        );
        let stats = store.commit(&before, &h).unwrap();
        assert!(stats.deleted_other >= 3, "{stats:?}");
        let back = store.read_history().unwrap();
        assert!(back.check(10).is_empty(), "{:?}", back.check(10));
        assert_eq!(back.line_count(), 2);
        assert_eq!(store.unknown_keys().unwrap(), 0);
    }

    #[test]
    fn read_only_open_of_a_missing_store_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let err = Store::open(&dir.path().join("nope"), Mode::ReadOnly)
            .err()
            .unwrap();
        assert!(matches!(err, StoreError::Missing(_)), "{err}");
    }
}
