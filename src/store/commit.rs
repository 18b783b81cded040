//! Writing a load: the difference between what the store held and the merged
//! history, with the next state, applied atomically by RocksDB (a kill at any
//! moment leaves the store as before or as after).
//!
//! The difference is written one family of keys at a time, each in key order
//! (payloads, records, the format and state keys, pieces, snapshots: the
//! order of their prefixes), into table files ingested in one step
//! ([`super::tables`]), whatever the size of the commit: into a new store they
//! are the compacted store; into a store that holds data they go to level 0,
//! as a flushed `WriteBatch` would (and as fast: month 12 of the city history
//! into the 11-month store, see BENCHMARKS.md). The tests write the same
//! difference as one `WriteBatch` too (the [`Sink`] the store used before),
//! and compare.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use rocksdb::IngestExternalFileOptions;
#[cfg(test)]
use rocksdb::WriteBatch;

use super::codec::{be_u128, encode_changes, encode_line, id_key, piece_key, snapshot_key};
use super::state::StoreState;
use super::tables::{Sink, TableDir};
use super::{Store, StoreError, FORMAT_KEY, FORMAT_VERSION, LINE, PAYLOAD, PIECE, STATE_KEY};
use crate::history::{History, Snapshot, SnapshotMeta};
use crate::ip::IpKey;

/// What a commit wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub pieces_written: u64,
    pub pieces_deleted: u64,
    pub lines_written: u64,
    pub payloads_written: u64,
    pub deleted_other: u64,
    /// The commit filled an empty store with table files that all went to one
    /// level below level 0, written with the bottommost settings: the store is
    /// as a full compaction would leave it.
    pub compacted: bool,
    /// The store's state after the commit.
    pub state: StoreState,
}

impl CommitStats {
    fn add(&mut self, o: CommitStats) {
        self.pieces_written += o.pieces_written;
        self.pieces_deleted += o.pieces_deleted;
        self.lines_written += o.lines_written;
        self.payloads_written += o.payloads_written;
        self.deleted_other += o.deleted_other;
    }

    /// Keys put or deleted.
    pub fn keys(&self) -> u64 {
        self.pieces_written
            + self.pieces_deleted
            + self.lines_written
            + self.payloads_written
            + self.deleted_other
    }
}

/// What a commit needs of the store's content before a change: the snapshots,
/// and which record and payload ids are live. Their content is not kept (the
/// bulk of a history): merging only appends ids, never rewrites or reuses one,
/// so an id live before and after has the same content. Pieces are not kept
/// either: the commit compares each piece with the store's own value (one
/// sequential read), which spares a load a copy of every piece.
#[derive(Clone, Debug, Default)]
pub struct Base {
    snapshots: Vec<SnapshotMeta>,
    lines: Vec<bool>,
    payloads: Vec<bool>,
}

impl Base {
    pub fn of(h: &History) -> Base {
        Base {
            snapshots: h.snapshots.iter().map(|s| s.meta.clone()).collect(),
            lines: h.lines.iter().map(|l| l.is_some()).collect(),
            payloads: h.payloads.iter().map(Option::is_some).collect(),
        }
    }
}

impl Store {
    /// Writes the difference between `before` (what the store holds) and `after`
    /// (merged from it) atomically and durably, with the next [`StoreState`]
    /// (in `stats.state`).
    pub fn commit(&self, before: &Base, after: &History) -> Result<CommitStats, StoreError> {
        let state = self.state()?.next();
        let stats = self.commit_tables(before, after, state)?;
        Ok(CommitStats { state, ..stats })
    }

    /// The difference as one synced `WriteBatch` (how the store was written
    /// before table files: the reference the tests compare them with).
    #[cfg(test)]
    fn commit_batch(&self, before: &Base, after: &History) -> Result<CommitStats, StoreError> {
        let state = self.state()?.next();
        let mut batch = WriteBatch::default();
        let mut stats = put_payloads(before, after, &mut batch)?;
        stats.add(put_lines(before, after, &mut batch)?);
        put_meta(state, &mut batch)?;
        stats.add(self.put_pieces(after, &mut batch)?);
        stats.add(self.put_snapshots(before, after, &mut batch)?);
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(|e| self.db_err(e))?;
        Ok(CommitStats { state, ..stats })
    }

    /// The commit as table files: payloads, records and the format and state
    /// keys (one range of keys: D, L, M) on this thread, pieces and snapshots
    /// (P, S) on another, into files whose key ranges do not overlap; then one
    /// ingestion, which moves the files into the store atomically.
    fn commit_tables(
        &self,
        before: &Base,
        after: &History,
        state: StoreState,
    ) -> Result<CommitStats, StoreError> {
        let empty = self.is_empty()?;
        // Into an empty store the files go to the bottom level, where they stay:
        // written as a compaction would. Otherwise they overlap what is there
        // and go to level 0, to be compacted down later: written fast.
        let opts = super::options(empty);
        let dir = TableDir::create(&self.path)?;
        let (pieces, records) = std::thread::scope(|scope| {
            let pieces = scope.spawn(|| -> Result<(CommitStats, Vec<PathBuf>), StoreError> {
                let t = Instant::now();
                let mut w = dir.writer(&opts, "pieces");
                let mut stats = self.put_pieces(after, &mut w)?;
                stats.add(self.put_snapshots(before, after, &mut w)?);
                let files = w.finish()?;
                tracing::debug!(
                    "commit: pieces written in {:.2} s",
                    t.elapsed().as_secs_f64()
                );
                Ok((stats, files))
            });
            let records = (|| -> Result<(CommitStats, Vec<PathBuf>), StoreError> {
                let t = Instant::now();
                let mut w = dir.writer(&opts, "records");
                let mut stats = put_payloads(before, after, &mut w)?;
                stats.add(put_lines(before, after, &mut w)?);
                put_meta(state, &mut w)?;
                let files = w.finish()?;
                tracing::debug!(
                    "commit: records written in {:.2} s",
                    t.elapsed().as_secs_f64()
                );
                Ok((stats, files))
            })();
            let pieces = pieces
                .join()
                .unwrap_or_else(|_| Err(self.corrupt("table writer thread failed")));
            (pieces, records)
        });
        let (mut stats, mut files) = records?;
        let (piece_stats, piece_files) = pieces?;
        stats.add(piece_stats);
        files.extend(piece_files);
        let bytes: u64 = files
            .iter()
            .filter_map(|f| std::fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();

        let mut io = IngestExternalFileOptions::default();
        io.set_move_files(true);
        self.db
            .ingest_external_file_opts(&io, files.clone())
            .map_err(|e| self.db_err(e))?;
        drop(dir);
        stats.compacted = empty && self.in_one_level()?;
        tracing::debug!(
            "commit: {} table files, {:.1} MB, ingested{}",
            files.len(),
            bytes as f64 / 1e6,
            if stats.compacted {
                " at the bottom level"
            } else {
                ""
            }
        );
        Ok(stats)
    }

    /// Adds table files back one at a time, in the order given (each over
    /// the ones before: `whipstream repair` with the files RocksDB's repair
    /// refused); the files that could not be added, with why.
    pub fn add_tables(&self, files: &[PathBuf]) -> Vec<(PathBuf, StoreError)> {
        let mut io = IngestExternalFileOptions::default();
        io.set_move_files(true);
        files
            .iter()
            .filter_map(|f| {
                let r = self.db.ingest_external_file_opts(&io, vec![f]);
                r.err().map(|e| (f.clone(), self.db_err(e)))
            })
            .collect()
    }

    /// Whether the store holds no key.
    fn is_empty(&self) -> Result<bool, StoreError> {
        let mut it = self.db.raw_iterator();
        it.seek_to_first();
        let empty = !it.valid();
        it.status().map_err(|e| self.db_err(e))?;
        Ok(empty)
    }

    /// Whether every table file is in one level below level 0 (one sorted
    /// run: nothing for a compaction to merge).
    fn in_one_level(&self) -> Result<bool, StoreError> {
        let files = self.db.live_files().map_err(|e| self.db_err(e))?;
        let first = files.first().map_or(0, |f| f.level);
        Ok(first > 0 && files.iter().all(|f| f.level == first))
    }

    /// Pieces: the store's (in key order, which is start order) against
    /// the merged ones; what differs is written, what is gone deleted.
    fn put_pieces(&self, after: &History, sink: &mut impl Sink) -> Result<CommitStats, StoreError> {
        let mut stats = CommitStats::default();
        let ids_after: Vec<u32> = after.snapshots.iter().map(|s| s.meta.id).collect();
        let mut buf = Vec::with_capacity(64);
        let mut j = 0;
        let put_piece = |sink: &mut dyn Sink, j: usize, buf: &mut Vec<u8>| {
            buf.clear();
            encode_changes(after.piece_changes(j), &ids_after, buf);
            sink.put(&piece_key(after.starts[j]), &buf[..])
        };
        self.scan(PIECE, |k, stored| {
            let start = be_u128(k).ok_or_else(|| self.corrupt("bad piece key"))?;
            while j < after.starts.len() && after.starts[j].0 < start {
                put_piece(sink, j, &mut buf)?;
                stats.pieces_written += 1;
                j += 1;
            }
            if after.starts.get(j).is_some_and(|s| s.0 == start) {
                buf.clear();
                encode_changes(after.piece_changes(j), &ids_after, &mut buf);
                if buf != stored {
                    sink.put(&piece_key(after.starts[j]), &buf)?;
                    stats.pieces_written += 1;
                }
                j += 1;
            } else {
                sink.delete(&piece_key(IpKey(start)))?;
                stats.pieces_deleted += 1;
            }
            Ok(())
        })?;
        while j < after.starts.len() {
            put_piece(sink, j, &mut buf)?;
            stats.pieces_written += 1;
            j += 1;
        }
        Ok(stats)
    }

    /// Snapshots that are gone deleted, new or changed ones written, in key
    /// (time) order; a snapshot replaced by one at the same instant is one put.
    fn put_snapshots(
        &self,
        before: &Base,
        after: &History,
        sink: &mut impl Sink,
    ) -> Result<CommitStats, StoreError> {
        let mut stats = CommitStats::default();
        let mut ops: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        let key_of = |m: &SnapshotMeta| snapshot_key(m.instant_micros);
        let after_ids: HashMap<u32, &Snapshot> =
            after.snapshots.iter().map(|s| (s.meta.id, s)).collect();
        for m in &before.snapshots {
            if !after_ids.contains_key(&m.id) {
                ops.insert(key_of(m), None);
                stats.deleted_other += 1;
            }
        }
        let before_ids: HashMap<u32, &SnapshotMeta> =
            before.snapshots.iter().map(|m| (m.id, m)).collect();
        for s in &after.snapshots {
            if before_ids.get(&s.meta.id) != Some(&&s.meta) {
                let meta = serde_json::to_vec(&s.meta)
                    .map_err(|e| self.corrupt(format!("snapshot metadata: {e}")))?;
                ops.insert(key_of(&s.meta), Some(meta));
            }
        }
        for (key, value) in &ops {
            match value {
                Some(v) => sink.put(key, v)?,
                None => sink.delete(key)?,
            }
        }
        Ok(stats)
    }
}

/// The format version and the next state.
fn put_meta(state: StoreState, sink: &mut impl Sink) -> Result<(), StoreError> {
    debug_assert!(FORMAT_KEY < STATE_KEY);
    sink.put(FORMAT_KEY, FORMAT_VERSION)?;
    sink.put(STATE_KEY, &state.encode())
}

/// Payloads: ids are only appended, so one live before and after has the same
/// content; only new ones are written and gone ones deleted.
fn put_payloads(
    before: &Base,
    after: &History,
    sink: &mut impl Sink,
) -> Result<CommitStats, StoreError> {
    let mut stats = CommitStats::default();
    let n = before.payloads.len().max(after.payloads.len());
    for id in 0..n {
        let b = before.payloads.get(id).copied().unwrap_or(false);
        let a = after.payloads.get(id).and_then(Option::as_ref);
        let key = id_key(PAYLOAD, id as u32);
        match (b, a) {
            (true, None) => {
                sink.delete(&key)?;
                stats.deleted_other += 1;
            }
            (false, Some(a)) => {
                sink.put(&key, a)?;
                stats.payloads_written += 1;
            }
            _ => {}
        }
    }
    Ok(stats)
}

/// Records, as payloads.
fn put_lines(
    before: &Base,
    after: &History,
    sink: &mut impl Sink,
) -> Result<CommitStats, StoreError> {
    let mut stats = CommitStats::default();
    let n = before.lines.len().max(after.lines.len());
    let mut buf = Vec::with_capacity(64);
    for id in 0..n {
        let b = before.lines.get(id).copied().unwrap_or(false);
        let a = after.lines.get(id);
        let key = id_key(LINE, id as u32);
        match (b, a) {
            (true, None) => {
                sink.delete(&key)?;
                stats.deleted_other += 1;
            }
            (false, Some(a)) => {
                buf.clear();
                encode_line(&a, &mut buf);
                sink.put(&key, &buf)?;
                stats.lines_written += 1;
            }
            _ => {}
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Mode;

    use crate::history::Interner;
    use crate::snapshot::SnapshotFile;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn merge(h: &mut History, i: &mut Interner, text: &str, replace: bool) {
        let f = SnapshotFile::from_lines("x.jsonl", text).unwrap();
        let meta = SnapshotMeta::of_file(&f);
        h.merge(i, &f, meta, replace).unwrap();
    }

    /// Every key and value of the store but the state (whose id is random),
    /// in key order.
    fn dump(store: &Store) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        let mut it = store.db.raw_iterator();
        it.seek_to_first();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if k != STATE_KEY {
                out.push((k.to_vec(), v.to_vec()));
            }
            it.next();
        }
        it.status().unwrap();
        out
    }

    /// A snapshot of `n` ranges on `day` of January 2024, in IPv4 and IPv6,
    /// whose payloads depend on `seed`.
    fn snapshot(day: u32, n: u32, seed: u32) -> String {
        shifted(day, n, seed, 0)
    }

    /// [`snapshot`] with the ends of the ranges moved by `shift`.
    fn shifted(day: u32, n: u32, seed: u32, shift: u32) -> String {
        let mut text = String::new();
        let mut line = |b: String, e: String, k: u32| {
            text.push_str(&format!(
                "{{\"begin\":\"{b}\",\"end\":\"{e}\",\"datetime\":\"2024-01-{day:02}\",\"c\":\"c{}\"}}\n",
                (k / 3 * seed) % 997
            ));
        };
        // IPv4 first, then IPv6, in address order (as a snapshot must be).
        for k in (0..n).filter(|k| k % 3 != 0) {
            let b = 0x0100_0000u32 + k * 16;
            let e = b + (k + shift) % 5;
            line(
                Ipv4Addr::from(b).to_string(),
                Ipv4Addr::from(e).to_string(),
                k,
            );
        }
        for k in (0..n).filter(|k| k % 3 == 0) {
            let b = 0x2001_0db8_0000_0000_0000_0000_0000_0000u128 + (u128::from(k) << 64);
            let e = b + u128::from((k + shift) % 7);
            line(
                Ipv6Addr::from(b).to_string(),
                Ipv6Addr::from(e).to_string(),
                k,
            );
        }
        text
    }

    fn table_bytes(dir: &std::path::Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".sst"))
            .map(|e| e.metadata().unwrap().len())
            .sum()
    }

    #[test]
    fn table_and_batch_commits_write_the_same_keys() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let batch = Store::open(a.path(), Mode::ReadWrite).unwrap();
        let tables = Store::open(b.path(), Mode::ReadWrite).unwrap();
        let mut h = History::default();
        let mut i = Interner::new(&h);
        // A first load, older and newer snapshots, a replace that drops
        // records, payloads and pieces (deletes), a replace at the same instant.
        let steps = [
            (snapshot(10, 5000, 3), false),
            (snapshot(5, 4000, 7), false),
            (shifted(20, 6000, 11, 1), false),
            (snapshot(10, 2000, 13), true),
            (snapshot(20, 300, 3), true),
        ];
        for (step, (text, replace)) in steps.iter().enumerate() {
            let before = Base::of(&h);
            merge(&mut h, &mut i, text, *replace);
            let sb = batch.commit_batch(&before, &h).unwrap();
            let st = tables.commit(&before, &h).unwrap();
            assert_eq!(st.compacted, step == 0, "step {step}");
            assert!(!sb.compacted);
            assert_eq!(
                CommitStats {
                    state: sb.state,
                    compacted: st.compacted,
                    ..sb
                },
                CommitStats {
                    state: sb.state,
                    ..st
                },
                "step {step}"
            );
            if step >= 3 {
                assert!(st.deleted_other > 0, "{st:?}");
            }
            if step == 4 {
                assert!(st.pieces_deleted > 0, "{st:?}");
            }
            assert_eq!(sb.state.generation, st.state.generation);
            assert_eq!(dump(&batch), dump(&tables), "step {step}");
            assert_eq!(tables.state().unwrap(), st.state);
            assert!(!b.path().join(super::super::tables::TMP_DIR).exists());
            let back = tables.read_history().unwrap();
            assert!(back.check(10).is_empty(), "{:?}", back.check(10));
            assert_eq!(back.starts, h.starts);
            assert_eq!(back.changes, h.changes);
        }
        assert_eq!(tables.unknown_keys().unwrap(), 0);
    }

    #[test]
    fn a_first_commit_as_tables_is_as_small_as_a_compacted_batch() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let batch = Store::open(a.path(), Mode::ReadWrite).unwrap();
        let tables = Store::open(b.path(), Mode::ReadWrite).unwrap();
        let mut h = History::default();
        let mut i = Interner::new(&h);
        let before = Base::of(&h);
        merge(&mut h, &mut i, &snapshot(10, 30000, 3), false);
        merge(&mut h, &mut i, &snapshot(12, 30000, 5), false);
        batch.commit_batch(&before, &h).unwrap();
        batch.compact();
        let st = tables.commit(&before, &h).unwrap();
        assert!(st.compacted);
        let levels: Vec<i32> = tables
            .db
            .live_files()
            .unwrap()
            .iter()
            .map(|f| f.level)
            .collect();
        assert!(
            levels.len() >= 2 && levels.iter().all(|&l| l == 6),
            "{levels:?}"
        );
        let (compacted, ingested) = (table_bytes(a.path()), table_bytes(b.path()));
        assert!(
            ingested <= compacted + compacted / 50 + 4096,
            "ingested {ingested} bytes, compacted {compacted}"
        );
        // An update over it overlaps what is there: not compacted.
        let before = Base::of(&h);
        merge(&mut h, &mut i, &snapshot(14, 30000, 7), false);
        let st = tables.commit(&before, &h).unwrap();
        assert!(!st.compacted);
        assert_eq!(tables.read_history().unwrap().changes, h.changes);
    }

    #[test]
    fn table_files_a_killed_commit_left_go_at_the_next_writable_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), Mode::ReadWrite).unwrap();
            let mut h = History::default();
            let mut i = Interner::new(&h);
            let before = Base::of(&h);
            merge(&mut h, &mut i, &snapshot(10, 100, 3), false);
            store.commit(&before, &h).unwrap();
        }
        let tmp = dir.path().join(super::super::tables::TMP_DIR);
        std::fs::create_dir(&tmp).unwrap();
        std::fs::write(tmp.join("pieces-0.sst"), b"half a table").unwrap();
        // A reader may run beside a writer: it leaves the directory alone.
        let reader = Store::open(dir.path(), Mode::ReadOnly).unwrap();
        assert!(tmp.join("pieces-0.sst").exists());
        assert_eq!(reader.read_history().unwrap().snapshot_count(), 1);
        drop(reader);
        let store = Store::open(dir.path(), Mode::ReadWrite).unwrap();
        assert!(!tmp.exists());
        assert_eq!(store.read_history().unwrap().snapshot_count(), 1);
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
}
