//! IP-range data in the forms people already have, read into the same validated
//! [`SnapshotFile`](crate::snapshot::SnapshotFile) as a Whip snapshot: range CSVs
//! ([`csv`]) and MaxMind DB files ([`mmdb`]). The load that follows is the same:
//! rules, checksum, one atomic commit.

pub mod csv;
pub mod mmdb;

/// Appends `"key":value` to a JSON object body (comma-separated).
fn push_field(body: &mut Vec<u8>, key: &str, value: &serde_json::Value) {
    if !body.is_empty() {
        body.push(b',');
    }
    crate::json::write_str(body, key);
    body.push(b':');
    // Writing a Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *body, value);
}

/// Keys a record may not carry: the snapshot line's own.
const RESERVED: [&str; 3] = ["begin", "end", "datetime"];
