//! Reading a store's whole history (rebuilding the index, and loads that merge
//! into it). What is read is checked by [`History::check`] before it is used,
//! never trusted.

use super::codec::{be_u128, be_u32, decode_changes, decode_line};
use super::{Store, StoreError, LINE, PAYLOAD, PIECE, SNAPSHOT};
use crate::history::{Change, History, LineTable, Snapshot, SnapshotMeta};
use crate::ip::IpKey;

impl Store {
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

    fn read_lines(&self) -> Result<LineTable, StoreError> {
        let mut lines = LineTable::default();
        self.scan(LINE, |k, v| {
            let id = be_u32(k).ok_or_else(|| self.corrupt("bad line key"))? as usize;
            let line = decode_line(v).ok_or_else(|| self.corrupt(format!("line {id}")))?;
            if !lines.set(id, line) {
                return Err(self.corrupt(format!("line {id}: payload id out of range")));
            }
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
}
