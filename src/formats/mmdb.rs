//! MaxMind DB files (`.mmdb`: GeoLite2/GeoIP2, DB-IP, IPinfo, ip-location-db),
//! read with the `maxminddb` crate.
//!
//! Every network of the tree becomes a range with the record's fields (maps and
//! arrays kept as JSON). IPv4 networks of an IPv6 database are read once, from the
//! IPv4 subtree, and mapped into `::ffff:0:0/96` like every IPv4 address here; the
//! aliases of that subtree (`::ffff:0:0/96`, 6to4 `2002::/16`, Teredo `2001::/32`)
//! are skipped, so nothing is loaded twice. Adjacent networks with identical data
//! are merged into one range. The snapshot's `datetime` is the database's build
//! time (`build_epoch`) unless the user gives one. The file's SHA-256 is its
//! identity.

use std::collections::HashMap;
use std::path::Path;

use maxminddb::{Reader, WithinOptions};
use sha2::{Digest, Sha256};

use crate::ip::IpKey;
use crate::snapshot::{ReadProgress, Rule, SnapshotBuilder, SnapshotError, SnapshotFile};
use crate::time::Timestamp;

use super::{push_field, RESERVED};

/// First and last address of a network.
fn bounds(net: &ipnetwork::IpNetwork) -> (IpKey, IpKey) {
    match net {
        ipnetwork::IpNetwork::V4(n) => (IpKey::from_v4(n.network()), IpKey::from_v4(n.broadcast())),
        ipnetwork::IpNetwork::V6(n) => {
            let first = u128::from(n.network());
            let host = u128::MAX.checked_shr(u32::from(n.prefix())).unwrap_or(0);
            (IpKey(first), IpKey(first | host))
        }
    }
}

/// A record as the body of a JSON object: a map's entries, anything else as
/// `"value"`.
fn record_body(value: &serde_json::Value) -> Result<Vec<u8>, String> {
    let mut body = Vec::with_capacity(128);
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if RESERVED.contains(&k.as_str()) {
                    return Err(format!("record field {k:?} is reserved"));
                }
                push_field(&mut body, k, v);
            }
        }
        other => push_field(&mut body, "value", other),
    }
    Ok(body)
}

/// Reads a MaxMind DB file as a snapshot at `datetime`, or at its build time.
pub fn read(
    path: &Path,
    datetime: Option<Timestamp>,
    progress: &ReadProgress,
) -> Result<SnapshotFile, SnapshotError> {
    let fail = |line, kind| SnapshotError::new(path, line, kind);
    let bytes = std::fs::read(path).map_err(|e| fail(None, Rule::Io(e)))?;
    progress
        .file_bytes
        .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let sha256: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let size = bytes.len() as u64;
    let reader = Reader::from_source(bytes).map_err(|e| fail(None, Rule::Mmdb(e.to_string())))?;
    let datetime = datetime.unwrap_or_else(|| {
        Timestamp::from_unix_seconds(
            i64::try_from(reader.metadata().build_epoch).unwrap_or(i64::MAX / 1_000_000),
        )
    });
    let mut builder = SnapshotBuilder::new(path, datetime);
    // Records are shared by many networks: decode each once.
    let mut bodies: HashMap<usize, std::rc::Rc<Vec<u8>>> = HashMap::new();
    let mut pending: Option<(IpKey, IpKey, std::rc::Rc<Vec<u8>>)> = None;
    let mut n = 0u64;
    let networks = reader
        .networks(WithinOptions::default())
        .map_err(|e| fail(None, Rule::Mmdb(e.to_string())))?;
    for item in networks {
        n += 1;
        let bad = |e: String| fail(Some(n), Rule::Mmdb(format!("network {n}: {e}")));
        let item = item.map_err(|e| bad(e.to_string()))?;
        let Some(offset) = item.offset() else {
            continue;
        };
        let net = item.network().map_err(|e| bad(e.to_string()))?;
        let (begin, end) = bounds(&net);
        let body = match bodies.get(&offset) {
            Some(b) => b.clone(),
            None => {
                let value: serde_json::Value = item
                    .decode()
                    .map_err(|e| bad(e.to_string()))?
                    .unwrap_or(serde_json::Value::Null);
                let b = std::rc::Rc::new(record_body(&value).map_err(bad)?);
                bodies.insert(offset, b.clone());
                b
            }
        };
        // Adjacent networks with the same data make one range.
        match &mut pending {
            Some((_, last, data)) if last.next() == Some(begin) && **data == *body => *last = end,
            _ => {
                if let Some((b, e, data)) = pending.replace((begin, end, body)) {
                    builder.push(b, e, &data, n)?;
                }
            }
        }
        if n.is_multiple_of(4096) {
            progress
                .ranges
                .fetch_add(4096, std::sync::atomic::Ordering::Relaxed);
        }
    }
    if let Some((b, e, data)) = pending {
        builder.push(b, e, &data, n)?;
    }
    builder.finish(sha256, size)
}
