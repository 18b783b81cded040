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

/// A new store in a temporary directory, with one snapshot fixture loaded.
fn store_with(snapshot_fixture: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    ok(&[
        "load",
        "--db",
        s(&db),
        s(&fixture(&format!("snapshots/{snapshot_fixture}"))),
    ]);
    (dir, db)
}

fn store_with_one_snapshot() -> (tempfile::TempDir, std::path::PathBuf) {
    store_with("good-2024-01-01.jsonl")
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
        (
            "bad-ipv4-after-ipv6.jsonl",
            Some(2),
            "IPv4 (::ffff:0:0/96) must come first",
        ),
        (
            "bad-low-ipv6-after-ipv4.jsonl",
            Some(2),
            "sorts below IPv4 (::ffff:0:0/96) and must come before the IPv4 ranges",
        ),
        (
            "bad-lone-surrogate.jsonl",
            Some(2),
            "strict JSON parsers refuse: unexpected end of hex escape",
        ),
        (
            "bad-number-out-of-range.jsonl",
            Some(1),
            "strict JSON parsers refuse: number out of range",
        ),
        (
            "bad-deep-nesting.jsonl",
            Some(2),
            "nested deeper than 32 levels",
        ),
        ("bad-datetime-differs.jsonl", Some(2), "differs from"),
        (
            "bad-datetime-unparsable.jsonl",
            Some(1),
            "invalid time \"last tuesday\"",
        ),
        // Found by fuzzing: a time of 81 to 83 bytes made the message's
        // excerpt panic.
        (
            "bad-datetime-just-over-excerpt.jsonl",
            Some(1),
            "invalid time \"2024-03-01T00:00:00Z666",
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

/// The range order is that of the 128-bit key space with IPv4 at `::ffff:0:0/96`:
/// a file in that order loads and answers for all three parts (the opposite order
/// is refused, above); a UTF-8 byte-order mark and CRLF line ends are accepted.
#[test]
fn key_order_files_and_byte_order_marks_load() {
    let (_dir, db) = store_with("good-key-order-low-ipv6-first.jsonl");
    let got = ok(&["lookup", "--db", s(&db), "::7", "1.0.0.7", "2001:db8::7"]);
    let ccs: Vec<&str> = got
        .lines()
        .map(|l| {
            l.split("\"cc\":\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(ccs, ["low", "v4", "high"], "{got}");

    let (_dir, bom) = store_with("good-utf8-bom-crlf.jsonl");
    let got = ok(&["lookup", "--db", s(&bom), "1.0.0.1"]);
    assert!(got.contains("\"cc\":\"bom\""), "{got}");
}

/// One snapshot line with 100,000 distinct fields (just under the line limit) loads;
/// the duplicate check is linear, not quadratic in the fields.
#[test]
fn a_line_with_very_many_fields_loads() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wide.jsonl");
    let fields: Vec<String> = (0..100_000).map(|i| format!("\"{i:x}\":0")).collect();
    std::fs::write(
        &file,
        format!(
            "{{\"begin\":\"1.0.0.0\",\"end\":\"1.0.0.1\",\"datetime\":\"2024-01-01\",{}}}\n",
            fields.join(",")
        ),
    )
    .unwrap();
    let db = dir.path().join("db");
    ok(&["load", "--db", s(&db), s(&file)]);
    let got = ok(&["lookup", "--db", s(&db), "1.0.0.1"]);
    assert!(
        got.contains("\"1869f\":0"),
        "{}",
        &got[..200.min(got.len())]
    );
}

/// `load` reads only regular files: a FIFO is refused by name instead of blocking
/// forever; links in a snapshot directory are followed, and a dangling one is an
/// error naming it, with the store unchanged.
#[test]
fn fifos_are_refused_and_links_are_followed() {
    let (dir, db) = store_with_one_snapshot();
    let fifo = dir.path().join("f.jsonl");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let err = fails(&["load", "--db", s(&db), s(&fifo)]);
    assert!(
        err.contains("f.jsonl: not a regular file (a FIFO)"),
        "{err}"
    );

    let snaps = dir.path().join("snaps");
    std::fs::create_dir(&snaps).unwrap();
    std::os::unix::fs::symlink(
        fixture("snapshots/good-2024-02-01.jsonl"),
        snaps.join("feb.jsonl"),
    )
    .unwrap();
    std::os::unix::fs::symlink(dir.path().join("gone.jsonl"), snaps.join("gone.jsonl")).unwrap();
    let before = state(&db);
    let err = fails(&["load", "--db", s(&db), s(&snaps)]);
    assert!(err.contains("gone.jsonl: dangling symbolic link"), "{err}");
    assert_eq!(state(&db), before);

    std::fs::remove_file(snaps.join("gone.jsonl")).unwrap();
    let out = ok(&["load", "--db", s(&db), s(&snaps)]);
    assert!(out.contains("loaded 1 file(s)"), "{out}");
    assert!(ok(&["verify", "--db", s(&db)]).starts_with("ok: 2 snapshots"));
}

/// `lookup --batch` holds no more than one bounded line of its input: 20 MB
/// without a newline is one short error, and the query after it is answered.
#[test]
fn batch_lookup_bounds_its_lines_and_its_messages() {
    let (_dir, db) = store_with_one_snapshot();
    let mut input = "7".repeat(20 << 20);
    input.push_str("\n1.0.0.1\n");
    let out = run(
        &["lookup", "--db", s(&db), "--batch"],
        Some(input.as_bytes()),
    );
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:.300}");
    assert!(
        lines[0].contains("line 1: line longer than 65536 bytes") && lines[0].len() < 100,
        "{}",
        lines[0]
    );
    assert!(lines[1].contains("\"begin\":\"1.0.0.0\""), "{}", lines[1]);
}

/// Parts of one snapshot that overlap: the error names each of the two ranges with
/// its own file and line (not a position in the merged order).
#[test]
fn overlapping_parts_cite_both_files_and_lines() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.jsonl");
    let b = dir.path().join("b.jsonl");
    std::fs::write(
        &a,
        "{\"begin\":\"1.0.0.0\",\"end\":\"1.0.0.255\",\"datetime\":\"2024-05-01\"}\n\n\
         {\"begin\":\"3.0.0.0\",\"end\":\"3.0.0.255\",\"datetime\":\"2024-05-01\"}\n",
    )
    .unwrap();
    std::fs::write(
        &b,
        "{\"begin\":\"2.0.0.0\",\"end\":\"2.0.0.255\",\"datetime\":\"2024-05-01\"}\n\
         {\"begin\":\"3.0.0.128\",\"end\":\"3.0.1.0\",\"datetime\":\"2024-05-01\"}\n",
    )
    .unwrap();
    let db = dir.path().join("db");
    let err = fails(&["load", "--db", s(&db), "--one-snapshot", s(&a), s(&b)]);
    assert!(
        err.contains("range 3.0.0.128-3.0.1.0 (") && err.contains("b.jsonl:2)"),
        "{err}"
    );
    assert!(
        err.contains("overlaps range 3.0.0.0-3.0.0.255 (") && err.contains("a.jsonl:3)"),
        "{err}"
    );
}
