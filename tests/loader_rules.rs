//! Every loader rule, through the binary: the error names the file, the line and
//! the rule, and the store is left exactly as it was.

mod common;

use std::io::Write;
use std::path::Path;

use common::*;

/// The observable state of a store: its snapshot list and a few answers.
fn state(db: &Path) -> (String, String) {
    let snaps = ok(&["snapshots", "--db", s(db), "--json"]);
    let answers = ok(&[
        "lookup",
        "--db",
        s(db),
        "--history",
        "1.0.0.1",
        "1.0.2.1",
        "2001:db8::1",
    ]);
    (snaps, answers)
}

fn store_with_one_snapshot() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    ok(&[
        "load",
        "--db",
        s(&db),
        s(&fixture("snapshots/good-2024-01-01.jsonl")),
    ]);
    (dir, db)
}

fn assert_rejected(db: &Path, file: &Path, line: Option<u64>, rule: &str) {
    let before = state(db);
    // The bad file comes second so that a good file is merged before the failure.
    let good = fixture("snapshots/good-2024-02-01.jsonl");
    let err = fails(&["load", "--db", s(db), s(&good), s(file)]);
    let name = file.file_name().unwrap().to_str().unwrap();
    let location = match line {
        Some(l) => format!("{name}:{l}: "),
        None => format!("{name}:"),
    };
    assert!(err.contains(&location), "expected {location:?} in: {err}");
    assert!(err.contains(rule), "expected {rule:?} in: {err}");
    assert!(err.contains("the store is unchanged"), "{err}");
    assert_eq!(state(db), before, "store changed after rejecting {name}");
    assert!(ok(&["verify", "--db", s(db)]).starts_with("ok: 1 snapshots"));
}

#[test]
fn each_fixture_is_rejected_with_its_line_and_rule() {
    let (_dir, db) = store_with_one_snapshot();
    let cases: &[(&str, Option<u64>, &str)] = &[
        ("bad-invalid-json.jsonl", Some(2), "invalid JSON"),
        ("bad-not-an-object.jsonl", Some(1), "not a JSON object"),
        ("bad-missing-begin.jsonl", Some(2), "missing field `begin`"),
        (
            "bad-missing-datetime.jsonl",
            Some(1),
            "missing field `datetime`",
        ),
        (
            "bad-begin-not-string.jsonl",
            Some(1),
            "field `begin` is not a string",
        ),
        (
            "bad-end-not-string.jsonl",
            Some(1),
            "field `end` is not a string",
        ),
        (
            "bad-datetime-not-string.jsonl",
            Some(1),
            "field `datetime` is not a string",
        ),
        (
            "bad-unparsable-ip.jsonl",
            Some(2),
            "not an IP address: \"999.1.1.1\"",
        ),
        ("bad-begin-after-end.jsonl", Some(1), "is after `end`"),
        (
            "bad-mixed-families.jsonl",
            Some(1),
            "different address families",
        ),
        (
            "bad-overlap.jsonl",
            Some(2),
            "overlaps the range ending at 1.0.0.255 on line 1",
        ),
        ("bad-out-of-order.jsonl", Some(2), "out of order"),
        ("bad-ipv4-after-ipv6.jsonl", Some(2), "IPv4 must come first"),
        ("bad-datetime-differs.jsonl", Some(2), "differs from"),
        (
            "bad-datetime-unparsable.jsonl",
            Some(1),
            "invalid time \"last tuesday\"",
        ),
        ("bad-empty.jsonl", None, "empty file"),
    ];
    for (name, line, rule) in cases {
        assert_rejected(&db, &fixture(&format!("snapshots/{name}")), *line, rule);
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn truncated_and_corrupt_gzip_are_rejected() {
    let (dir, db) = store_with_one_snapshot();
    let mut text = String::new();
    for i in 0..20_000u32 {
        let [a, b] = (i as u16).to_be_bytes();
        text.push_str(&format!(
            "{{\"begin\":\"9.{a}.{b}.0\",\"end\":\"9.{a}.{b}.255\",\"datetime\":\"2024-03-01T00:00:00Z\",\"n\":{i}}}\n"
        ));
    }
    let gz = gzip(text.as_bytes());

    let whole = dir.path().join("whole.jsonl.gz");
    std::fs::write(&whole, &gz).unwrap();
    let truncated = dir.path().join("truncated.jsonl.gz");
    std::fs::write(&truncated, &gz[..gz.len() * 2 / 3]).unwrap();
    assert_rejected(&db, &truncated, None, "truncated or corrupt gzip");

    let corrupt = dir.path().join("corrupt.jsonl.gz");
    let mut bad = gz.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&corrupt, &bad).unwrap();
    let err = fails(&["load", "--db", s(&db), s(&corrupt)]);
    assert!(
        err.contains("corrupt.jsonl.gz:") && (err.contains("gzip") || err.contains("invalid JSON")),
        "{err}"
    );
    assert!(ok(&["verify", "--db", s(&db)]).starts_with("ok: 1 snapshots"));

    // The intact file loads, gzip read transparently.
    ok(&["load", "--db", s(&db), s(&whole)]);
    let got = ok(&["lookup", "--db", s(&db), "--at", "2024-03-02", "9.0.7.9"]);
    assert!(got.contains("\"n\":7"), "{got}");
}

#[test]
fn giant_lines_are_rejected_without_reading_them_whole() {
    let (dir, db) = store_with_one_snapshot();
    let giant = dir.path().join("giant.jsonl");
    let mut f = std::fs::File::create(&giant).unwrap();
    writeln!(
        f,
        r#"{{"begin":"5.0.0.0","end":"5.0.0.1","datetime":"2024-03-01"}}"#
    )
    .unwrap();
    let filler = "x".repeat(1 << 20);
    writeln!(
        f,
        r#"{{"begin":"5.0.0.2","end":"5.0.0.3","datetime":"2024-03-01","pad":"{filler}"}}"#
    )
    .unwrap();
    drop(f);
    assert_rejected(&db, &giant, Some(2), "line longer than");
}

#[test]
fn two_files_with_one_datetime_in_one_load_are_refused() {
    let (dir, db) = store_with_one_snapshot();
    let a = dir.path().join("a.jsonl");
    let b = dir.path().join("b.jsonl");
    std::fs::write(
        &a,
        r#"{"begin":"5.0.0.0","end":"5.0.0.1","datetime":"2024-05-01","v":1}"#,
    )
    .unwrap();
    std::fs::write(
        &b,
        r#"{"begin":"5.0.0.0","end":"5.0.0.1","datetime":"2024-05-01T00:00:00Z","v":2}"#,
    )
    .unwrap();
    let before = state(&db);
    let err = fails(&["load", "--db", s(&db), s(&a), s(&b)]);
    assert!(
        err.contains("b.jsonl") && err.contains("already loaded"),
        "{err}"
    );
    assert_eq!(state(&db), before);
}

#[test]
fn directories_load_their_snapshot_files_and_skip_temporary_ones() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = dir.path().join("snaps");
    std::fs::create_dir(&snaps).unwrap();
    std::fs::copy(
        fixture("snapshots/good-2024-01-01.jsonl"),
        snaps.join("a.jsonl"),
    )
    .unwrap();
    std::fs::write(snaps.join(".b.jsonl"), "garbage").unwrap();
    std::fs::write(snaps.join("c.jsonl.tmp"), "garbage").unwrap();
    std::fs::write(snaps.join("notes.txt"), "garbage").unwrap();
    let db = dir.path().join("db");
    let out = ok(&["load", "--db", s(&db), s(&snaps)]);
    assert!(out.contains("loaded 1 file(s)"), "{out}");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = fails(&["load", "--db", s(&db), s(&empty)]);
    assert!(err.contains("no snapshot files"), "{err}");
    let err = fails(&["load", "--db", s(&db), s(&dir.path().join("missing.jsonl"))]);
    assert!(err.contains("missing.jsonl"), "{err}");
}
