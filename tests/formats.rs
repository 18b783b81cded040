//! Data in other forms: MaxMind DB files and range CSVs load to exactly the
//! expected ranges, and `export` writes a store's data at a time back as a Whip
//! snapshot (the real snapshots come back as they were loaded).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

fn mmdb_fixture(name: &str) -> PathBuf {
    manifest_dir().join("tests/fixtures/mmdb").join(name)
}

/// Lines as JSON values, with `begin`/`end` in canonical notation.
fn records(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            for k in ["begin", "end"] {
                let ip: whipstream::ip::IpKey = v[k].as_str().unwrap().parse().unwrap();
                v[k] = Value::String(ip.to_string());
            }
            v
        })
        .collect()
}

fn export(db: &Path, at: Option<&str>) -> String {
    let mut args = vec!["export", "--db", s(db)];
    if let Some(t) = at {
        args.extend(["--at", t]);
    }
    ok(&args)
}

#[test]
fn export_gives_back_each_real_snapshot_as_loaded() {
    let db = geoip_store();
    for file in std::fs::read_dir(geoip_dir()).unwrap() {
        let path = file.unwrap().path();
        let original = read_text(&path);
        let datetime = records(original.lines().next().unwrap())[0]["datetime"]
            .as_str()
            .unwrap()
            .to_string();
        let exported = export(db, Some(&datetime));
        assert_eq!(records(&exported), records(&original), "{}", path.display());
    }
    // Before the first snapshot there is nothing to export.
    let err = fails(&["export", "--db", s(db), "--at", "2000-01-01"]);
    assert!(err.contains("no snapshot at or before 2000-01-01"), "{err}");
}

#[test]
fn an_export_loads_again_and_answers_the_same() {
    let db = geoip_store();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("export.jsonl");
    ok(&[
        "export",
        "--db",
        s(db),
        "--at",
        "2025-06-01",
        "--output",
        s(&file),
    ]);
    let copy = tmp.path().join("copy");
    ok(&["load", "--db", s(&copy), s(&file)]);
    let ips = [
        "1.0.1.5",
        "8.29.230.76",
        "2001:200::1",
        "102.131.24.0",
        "223.255.255.1",
    ];
    let mut original = vec!["lookup", "--db", s(db), "--at", "2025-06-01"];
    original.extend(ips);
    let mut reloaded = vec!["lookup", "--db", s(&copy)];
    reloaded.extend(ips);
    assert_eq!(ok(&reloaded), ok(&original));
}

#[test]
fn a_maxmind_db_loads_to_exactly_its_ranges() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    ok(&["load", "--db", s(&db), s(&mmdb_fixture("small.mmdb"))]);
    let expected = read_text(&mmdb_fixture("small.expected.jsonl"));
    assert_eq!(records(&export(&db, None)), records(&expected));
    // The same file again changes nothing.
    let again = ok(&["load", "--db", s(&db), s(&mmdb_fixture("small.mmdb"))]);
    assert!(again.contains("1 unchanged"), "{again}");
    // An IPv4-only database (ip_version 4), with --datetime instead of its build time.
    let v4 = tmp.path().join("v4");
    ok(&[
        "load",
        "--db",
        s(&v4),
        "--datetime",
        "2024-06-01T12:34:56Z",
        s(&mmdb_fixture("small-ipv4.mmdb")),
    ]);
    let expected = read_text(&mmdb_fixture("small-ipv4.expected.jsonl"));
    assert_eq!(records(&export(&v4, None)), records(&expected));
}

#[test]
fn range_csvs_load_with_header_or_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    ok(&[
        "load",
        "--db",
        s(&db),
        "--datetime",
        "2024-01-01T00:00:00Z",
        s(&mmdb_fixture("small.csv")),
    ]);
    let expected = read_text(&mmdb_fixture("small.csv.expected.jsonl"));
    assert_eq!(records(&export(&db, None)), records(&expected));

    let db2 = tmp.path().join("db2");
    ok(&[
        "load",
        "--db",
        s(&db2),
        "--datetime",
        "2024-01-01T00:00:00Z",
        "--columns",
        "begin,end,country,asn",
        s(&mmdb_fixture("small-int.csv")),
    ]);
    let expected = read_text(&mmdb_fixture("small-int.csv.expected.jsonl"));
    assert_eq!(records(&export(&db2, None)), records(&expected));

    // Without a datetime a CSV is refused, and the store is not created.
    let db3 = tmp.path().join("db3");
    let err = fails(&["load", "--db", s(&db3), s(&mmdb_fixture("small.csv"))]);
    assert!(err.contains("--datetime"), "{err}");
}

#[test]
fn a_corrupt_maxmind_db_is_refused_and_the_store_is_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    ok(&["load", "--db", s(&db), s(&mmdb_fixture("small.mmdb"))]);
    let before = export(&db, None);
    let bytes = std::fs::read(mmdb_fixture("small.mmdb")).unwrap();
    // Cut off the metadata at the end: no longer a MaxMind DB.
    let broken = tmp.path().join("broken.mmdb");
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).unwrap();
    let err = fails(&["load", "--db", s(&db), s(&broken)]);
    assert!(
        err.contains("broken.mmdb") && err.contains("not a MaxMind DB"),
        "{err}"
    );
    assert_eq!(export(&db, None), before);
}

#[test]
fn parts_of_one_release_load_as_one_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let v6 = tmp.path().join("v6.csv");
    std::fs::write(&v6, "start,end,country\n2001:db8::,2001:db8::ffff,ZZ\n").unwrap();
    let db = tmp.path().join("db");
    ok(&[
        "load",
        "--db",
        s(&db),
        "--one-snapshot",
        "--datetime",
        "2024-06-01T12:34:56Z",
        s(&mmdb_fixture("small-ipv4.mmdb")),
        s(&v6),
    ]);
    let snapshots = ok(&["snapshots", "--db", s(&db), "--json"]);
    assert_eq!(snapshots.lines().count(), 1, "{snapshots}");
    let exported = records(&export(&db, None));
    assert_eq!(exported.len(), 4);
    assert_eq!(exported[3]["country"], "ZZ");
    // Overlapping parts are refused, naming the file.
    let other = tmp.path().join("other");
    let err = fails(&[
        "load",
        "--db",
        s(&other),
        "--one-snapshot",
        "--datetime",
        "2024-01-01",
        s(&mmdb_fixture("small.csv")),
        s(&mmdb_fixture("small-ipv4.mmdb")),
    ]);
    assert!(err.contains("overlaps"), "{err}");
}
