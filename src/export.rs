//! `export`: the data as it was at an instant, written back as a Whip snapshot
//! file.
//!
//! The snapshot answering at the instant (the greatest `datetime` at or before
//! it) is written whole: one line per range, in address order (IPv4 first), each
//! with that snapshot's `datetime` and its fields as loaded. The output follows
//! every loader rule, so it loads again to the same answers; a store can be
//! inspected, compared with `diff`, or moved this way.

use std::io::{self, Write};

use crate::index::Index;
use crate::time::Timestamp;

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// The `datetime` of the snapshot written.
    pub datetime: String,
    pub ranges: u64,
}

/// Writes the snapshot valid at `t`; `None` when no snapshot is that old.
pub fn write_snapshot_at(
    index: &Index,
    t: Timestamp,
    out: &mut dyn Write,
) -> io::Result<Option<Exported>> {
    let Some(pos) = index.snapshot_position(t) else {
        return Ok(None);
    };
    let mut ranges = 0u64;
    let mut buf = Vec::with_capacity(1 << 16);
    for record in index.records_at(pos) {
        record.write_json(&mut buf);
        buf.push(b'\n');
        ranges += 1;
        if buf.len() >= 1 << 16 {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    out.flush()?;
    let datetime = index
        .snapshots()
        .get(pos)
        .map(|s| s.meta.datetime.clone())
        .unwrap_or_default();
    Ok(Some(Exported { datetime, ranges }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::tests::index;

    #[test]
    fn writes_the_snapshot_in_effect_and_nothing_before_the_first() {
        let v1 = concat!(
            r#"{"begin":"1.0.0.0","end":"1.0.0.255","datetime":"2024-01-01T00:00:00Z","cc":"AU"}"#,
            "\n",
            r#"{"begin":"1.0.1.0","end":"1.0.3.255","datetime":"2024-01-01T00:00:00Z","cc":"CN"}"#,
            "\n",
            r#"{"begin":"2001:db8::","end":"2001:db8::ffff","datetime":"2024-01-01T00:00:00Z","cc":"ZZ"}"#,
            "\n"
        );
        // The second snapshot splits one range and drops another.
        let v2 = concat!(
            r#"{"begin":"1.0.0.0","end":"1.0.0.127","datetime":"2024-06-01T00:00:00Z","cc":"AU"}"#,
            "\n",
            r#"{"begin":"1.0.0.128","end":"1.0.0.255","datetime":"2024-06-01T00:00:00Z","cc":"NZ"}"#,
            "\n"
        );
        let idx = index(&[v1, v2]);
        let mut out = Vec::new();
        let e = write_snapshot_at(&idx, Timestamp::parse("2024-03-01").unwrap(), &mut out)
            .unwrap()
            .unwrap();
        assert_eq!(e.ranges, 3);
        assert_eq!(String::from_utf8(out).unwrap(), v1);
        let mut out = Vec::new();
        write_snapshot_at(&idx, Timestamp::parse("2025-01-01").unwrap(), &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), v2);
        let mut out = Vec::new();
        assert_eq!(
            write_snapshot_at(&idx, Timestamp::parse("2023-01-01").unwrap(), &mut out).unwrap(),
            None
        );
    }
}
