//! Writing a load: the difference between what the store held and the merged
//! history, in one synced `WriteBatch` with the next state, applied atomically by
//! RocksDB (a kill at any moment leaves the store as before or as after).

use std::collections::HashMap;

use rocksdb::{WriteBatch, WriteOptions};

use super::codec::{be_u128, encode_changes, encode_line, id_key, piece_key, snapshot_key};
use super::state::StoreState;
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
    /// The store's state after the commit.
    pub state: StoreState,
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
            let a = after.lines.get(id);
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

        // Pieces: the store's (in key order, which is start order) against
        // the merged ones; what differs is written, what is gone deleted.
        let ids_after: Vec<u32> = after.snapshots.iter().map(|s| s.meta.id).collect();
        let mut j = 0;
        let put_piece = |batch: &mut WriteBatch, j: usize, buf: &mut Vec<u8>| {
            buf.clear();
            encode_changes(after.piece_changes(j), &ids_after, buf);
            batch.put(piece_key(after.starts[j]), &buf[..]);
        };
        self.scan(PIECE, |k, stored| {
            let start = be_u128(k).ok_or_else(|| self.corrupt("bad piece key"))?;
            while j < after.starts.len() && after.starts[j].0 < start {
                put_piece(&mut batch, j, &mut buf);
                stats.pieces_written += 1;
                j += 1;
            }
            if after.starts.get(j).is_some_and(|s| s.0 == start) {
                buf.clear();
                encode_changes(after.piece_changes(j), &ids_after, &mut buf);
                if buf != stored {
                    batch.put(piece_key(after.starts[j]), &buf);
                    stats.pieces_written += 1;
                }
                j += 1;
            } else {
                batch.delete(piece_key(IpKey(start)));
                stats.pieces_deleted += 1;
            }
            Ok(())
        })?;
        while j < after.starts.len() {
            put_piece(&mut batch, j, &mut buf);
            stats.pieces_written += 1;
            j += 1;
        }

        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(|e| self.db_err(e))?;
        Ok(stats)
    }
}

impl Store {
    /// Writes what the last commits left in memory to a table file, so that the
    /// next open (read-only ones included) does not replay them from the
    /// write-ahead log.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(|e| self.db_err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Mode;

    use crate::history::Interner;
    use crate::snapshot::SnapshotFile;

    fn merge(h: &mut History, i: &mut Interner, text: &str, replace: bool) {
        let f = SnapshotFile::from_lines("x.jsonl", text).unwrap();
        let meta = SnapshotMeta::of_file(&f);
        h.merge(i, &f, meta, replace).unwrap();
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
