//! Range CSVs: `start,end,field...` rows, as ip-location-db, IP2Location LITE and
//! many registry exports publish them.
//!
//! - Columns are named by `--columns`, else by a header row (a first row whose
//!   first cell is not an address), else `begin,end,f3,f4...`.
//! - The range is in the columns named `begin`/`end` (or `start`/`end`,
//!   `ip_from`/`ip_to`, `first`/`last`), else in the first two columns.
//! - Addresses are text (`1.2.3.4`, `2001:db8::`) or integers (up to 2^32-1 an
//!   IPv4 address, above that an IPv6 one, as IP2Location writes them).
//! - Every other column is a field, kept as a string.
//!
//! Rows follow the snapshot rules (sorted, no overlaps, IPv4 first); errors name
//! the file, the line and the rule. The content's SHA-256 (decompressed) is the
//! file's identity; the `datetime` is given by the user.

use std::path::Path;

use crate::ip::IpKey;
use crate::snapshot::{Hashing, ReadProgress, Rule, SnapshotBuilder, SnapshotError, SnapshotFile};
use crate::time::Timestamp;

use super::{push_field, RESERVED};

/// How to read a CSV.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CsvOptions {
    /// Column names, overriding any header.
    pub columns: Option<Vec<String>>,
}

/// An address cell: text, or an integer.
fn parse_ip(cell: &str) -> Option<IpKey> {
    let cell = cell.trim();
    if !cell.is_empty() && cell.bytes().all(|b| b.is_ascii_digit()) {
        let n: u128 = cell.parse().ok()?;
        return Some(match u32::try_from(n) {
            Ok(v4) => IpKey::from_v4(v4.into()),
            Err(_) => IpKey(n),
        });
    }
    IpKey::parse(cell).ok()
}

/// Which columns hold `begin` and `end`.
fn range_columns(names: &[String]) -> (usize, usize) {
    let find = |n: &str| names.iter().position(|c| c.eq_ignore_ascii_case(n));
    for (b, e) in [
        ("begin", "end"),
        ("start", "end"),
        ("ip_from", "ip_to"),
        ("first", "last"),
    ] {
        if let (Some(b), Some(e)) = (find(b), find(e)) {
            return (b, e);
        }
    }
    (0, 1)
}

/// Reads and validates a range CSV (gzip allowed) as a snapshot at `datetime`.
pub fn read(
    path: &Path,
    datetime: Timestamp,
    options: &CsvOptions,
    progress: &ReadProgress,
) -> Result<SnapshotFile, SnapshotError> {
    let fail = |line, kind| SnapshotError::new(path, line, kind);
    let (reader, _) = crate::io::open_file(path, progress.file_bytes.clone())
        .map_err(|e| fail(None, Rule::Io(e)))?;
    let mut hashing = Hashing::new(reader);
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .from_reader(&mut hashing);
    let mut names: Option<Vec<String>> = options.columns.clone();
    let mut builder = SnapshotBuilder::new(path, datetime);
    let mut record = csv::StringRecord::new();
    let mut body = Vec::with_capacity(256);
    loop {
        let more = csv.read_record(&mut record).map_err(|e| {
            let line = e.position().map(|p| p.line());
            fail(line, Rule::Csv(format!("CSV: {e}")))
        })?;
        if !more {
            break;
        }
        let line = record.position().map_or(0, |p| p.line());
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if names.is_none() {
            let first = record.get(0).unwrap_or_default();
            if parse_ip(first).is_none() {
                names = Some(record.iter().map(|c| c.trim().to_string()).collect());
                continue;
            }
            names = Some(
                ["begin", "end"]
                    .iter()
                    .map(|s| s.to_string())
                    .chain((3..=record.len()).map(|i| format!("f{i}")))
                    .collect(),
            );
        }
        let Some(cols) = names.as_ref() else { continue };
        if cols.len() < 2 {
            return Err(fail(
                Some(line),
                Rule::Csv(format!(
                    "a range needs two columns; the columns are {}",
                    cols.join(",")
                )),
            ));
        }
        if record.len() != cols.len() {
            return Err(fail(
                Some(line),
                Rule::Csv(format!(
                    "{} cells where the columns are {}",
                    record.len(),
                    cols.join(",")
                )),
            ));
        }
        let (b, e) = range_columns(cols);
        let ip = |i: usize, which: &'static str| {
            let cell = record.get(i).unwrap_or_default();
            parse_ip(cell).ok_or_else(|| {
                fail(
                    Some(line),
                    Rule::Csv(format!(
                        "column {which} ({:?}): not an IP address: {cell:?}",
                        cols.get(i).map_or("", String::as_str)
                    )),
                )
            })
        };
        let (begin, end) = (ip(b, "begin")?, ip(e, "end")?);
        body.clear();
        for (i, (name, cell)) in cols.iter().zip(record.iter()).enumerate() {
            if i == b || i == e {
                continue;
            }
            if RESERVED.contains(&name.as_str()) {
                return Err(fail(
                    Some(line),
                    Rule::Csv(format!("column {name:?} is reserved")),
                ));
            }
            push_field(
                &mut body,
                name,
                &serde_json::Value::String(cell.to_string()),
            );
        }
        builder.push(begin, end, &body, line)?;
        if builder.ranges().is_multiple_of(4096) {
            progress
                .ranges
                .fetch_add(4096, std::sync::atomic::Ordering::Relaxed);
        }
    }
    drop(csv);
    // Drain what the CSV reader left (nothing, normally) so the hash is whole.
    let _ = std::io::copy(&mut hashing, &mut std::io::sink());
    let (sha256, bytes) = hashing.finish();
    builder.finish(sha256, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(text: &str, columns: Option<&str>) -> Result<SnapshotFile, SnapshotError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.csv");
        std::fs::write(&path, text).unwrap();
        let options = CsvOptions {
            columns: columns.map(|c| c.split(',').map(String::from).collect()),
        };
        read(
            &path,
            Timestamp::parse("2024-01-01").unwrap(),
            &options,
            &ReadProgress::default(),
        )
    }

    #[test]
    fn header_text_and_integer_addresses() {
        let f = read_text(
            "start,end,cc\n1.0.0.0,1.0.0.255,AU\n16777472,16778239,CN\n",
            None,
        )
        .unwrap();
        assert_eq!(f.ranges.len(), 2);
        assert_eq!({ f.ranges[1].begin }, IpKey::parse("1.0.1.0").unwrap());
        assert_eq!({ f.ranges[1].end }, IpKey::parse("1.0.3.255").unwrap());
        assert_eq!(&*f.payloads[f.ranges[0].payload as usize], br#""cc":"AU""#);
        let f = read_text(
            "1.0.0.0,1.0.0.255,AU,13335\n",
            Some("begin,end,country,asn"),
        )
        .unwrap();
        assert_eq!(&*f.payloads[0], br#""country":"AU","asn":"13335""#);
    }

    #[test]
    fn rules_apply_with_the_line() {
        let e = read_text(
            "start,end,cc\n1.0.1.0,1.0.1.255,CN\n1.0.0.0,1.0.0.255,AU\n",
            None,
        )
        .unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(matches!(e.kind, Rule::OutOfOrder { .. }), "{e}");
        let e = read_text("start,end,cc\n1.0.0.0,x,AU\n", None).unwrap_err();
        assert!(e.to_string().contains(":2: column end"), "{e}");
        let e = read_text("start,end,cc\n1.0.0.0,1.0.0.9\n", None).unwrap_err();
        assert!(e.to_string().contains("2 cells"), "{e}");
        let e = read_text("1.0.0.0\n", Some("begin")).unwrap_err();
        assert!(e.to_string().contains("two columns"), "{e}");
    }
}
