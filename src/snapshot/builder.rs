//! Snapshots made other than by reading one Whip file: from ranges given one at a
//! time (CSV rows, MaxMind DB networks), under the same rules as JSON lines, and
//! from the parts of one release (IPv4 and IPv6 files) combined.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::digest::hex;
use super::error::{PartsOverlap, Rule, SnapshotError};
use super::rules::LineRules;
use super::{Range, SnapshotFile};
use crate::ip::IpKey;
use crate::time::Timestamp;

impl SnapshotFile {
    /// One snapshot from several files that each hold a part of it (the IPv4 and
    /// IPv6 files of one database release): their ranges must not overlap. The
    /// datetime is `datetime`, else the newest of the parts' (a release's files
    /// are built seconds apart). The identity is a hash of the parts'.
    pub fn combine(
        parts: Vec<SnapshotFile>,
        datetime: Option<Timestamp>,
    ) -> Result<SnapshotFile, SnapshotError> {
        let Some(first) = parts.first() else {
            return Err(SnapshotError::new(Path::new(""), None, Rule::Empty));
        };
        let path = PathBuf::from(
            parts
                .iter()
                .map(|p| p.path.display().to_string())
                .collect::<Vec<_>>()
                .join("+"),
        );
        let datetime = datetime.unwrap_or_else(|| {
            parts
                .iter()
                .map(|p| p.datetime)
                .max()
                .unwrap_or(first.datetime)
        });
        let mut builder = SnapshotBuilder::new(&path, datetime);
        let mut hasher = Sha256::new();
        let mut bytes = 0;
        // (range, part, position of the range in its part)
        let mut all: Vec<(Range, usize, usize)> = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            hasher.update(p.sha256.as_bytes());
            bytes += p.bytes;
            all.extend(p.ranges.iter().enumerate().map(|(k, r)| (*r, i, k)));
        }
        all.sort_by_key(|(r, _, _)| r.begin);
        for (n, (r, i, k)) in all.iter().enumerate() {
            // Each part is in order on its own: an overlap is between two parts.
            if let Some((prev, j, m)) = n.checked_sub(1).map(|p| all[p]) {
                if { r.begin } <= { prev.end } {
                    return Err(SnapshotError::new(
                        &path,
                        None,
                        Rule::PartsOverlap(Box::new(PartsOverlap {
                            begin: r.begin,
                            end: r.end,
                            at: parts[*i].position(*k),
                            other_begin: prev.begin,
                            other_end: prev.end,
                            other_at: parts[j].position(m),
                        })),
                    ));
                }
            }
            let payload = &parts[*i].payloads[r.payload as usize];
            builder
                .push(r.begin, r.end, payload, n as u64 + 1)
                .map_err(|mut e| {
                    // The position is in the combined order: name the part.
                    e.line = None;
                    e.path = parts[*i].path.clone();
                    e
                })?;
        }
        builder.finish(hex(&hasher.finalize()), bytes)
    }
}

/// Builds a snapshot from ranges given one at a time (CSV rows, MaxMind DB
/// networks) under the same rules as JSON lines: order, overlaps, families;
/// errors carry the file and the row.
pub struct SnapshotBuilder {
    path: PathBuf,
    datetime: Timestamp,
    rules: LineRules,
}

impl SnapshotBuilder {
    pub fn new(path: &Path, datetime: Timestamp) -> SnapshotBuilder {
        SnapshotBuilder {
            path: path.to_path_buf(),
            datetime,
            rules: LineRules::default(),
        }
    }

    fn fail(&self, line: Option<u64>, kind: Rule) -> SnapshotError {
        SnapshotError::new(&self.path, line, kind)
    }

    /// Adds a range; `fields` is the body of a JSON object (`"k":v,...`) without
    /// `begin`, `end` and `datetime`; `line` is the row reported in errors.
    pub fn push(
        &mut self,
        begin: IpKey,
        end: IpKey,
        fields: &[u8],
        line: u64,
    ) -> Result<(), SnapshotError> {
        self.rules
            .add_range(begin, end, fields, line)
            .map_err(|kind| self.fail(Some(line), kind))
    }

    pub fn ranges(&self) -> usize {
        self.rules.ranges.len()
    }

    /// The snapshot; `sha256` and `bytes` identify the source content.
    pub fn finish(self, sha256: String, bytes: u64) -> Result<SnapshotFile, SnapshotError> {
        if self.rules.ranges.is_empty() {
            return Err(self.fail(None, Rule::Empty));
        }
        Ok(SnapshotFile {
            path: self.path,
            datetime: self.datetime,
            datetime_text: self.datetime.to_rfc3339(),
            ranges: super::exact(self.rules.ranges),
            payloads: self.rules.payloads,
            sha256,
            bytes,
            one_range_per_line: false,
        })
    }
}
