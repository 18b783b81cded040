//! Opt-in tests over the real 41-snapshot history (15-20 minutes to fetch):
//!
//!   ../shared/bench/fetch-geoip-history.sh DIR
//!   WHIPSTREAM_HISTORY_DIR=DIR cargo test --release --test history41 -- --ignored
//!
//! (`WHIPSTREAM_HISTORY_DIR=DIR scripts/test.sh` runs them after the default suite.)

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use common::*;
use serde_json::Value;

fn history_dir() -> PathBuf {
    let dir = std::env::var("WHIPSTREAM_HISTORY_DIR")
        .expect("set WHIPSTREAM_HISTORY_DIR to the 41-snapshot history");
    PathBuf::from(dir)
}

fn store41() -> &'static std::path::Path {
    static STORE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = STORE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = ok(&["load", "--db", s(&dir.path().join("db")), s(&history_dir())]);
        eprintln!("{out}");
        assert!(out.contains("loaded 41 file(s) (41 new"), "{out}");
        dir
    });
    Box::leak(dir.path().join("db").into_boxed_path())
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
#[ignore = "needs the 41-snapshot history (WHIPSTREAM_HISTORY_DIR)"]
fn history_store_verifies_and_lists_41_snapshots() {
    let db = store41();
    assert!(ok(&["verify", "--db", s(db)]).starts_with("ok: 41 snapshots"));
    assert_eq!(
        ok(&["snapshots", "--db", s(db), "--json"]).lines().count(),
        41
    );
}

#[test]
#[ignore = "needs the 41-snapshot history (WHIPSTREAM_HISTORY_DIR)"]
fn acceptance_log_matches_the_reference_over_the_full_history() {
    let db = store41();
    let log = shared_data().join("logs/accept-apache_logs.log");
    let expected = json_lines(
        &std::fs::read(shared_data().join("logs/accept-apache_logs.expected.jsonl")).unwrap(),
    );
    let out = run(&["enrich", "--db", s(db), "--no-line", s(&log)], None);
    assert!(out.status.success());
    let got = json_lines(&out.stdout);
    assert_eq!(got.len(), expected.len());
    let mut matched = 0;
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g["ip"], e["ip"], "line {}", i + 1);
        assert_eq!(g["timestamp"], e["t"], "line {}", i + 1);
        assert_eq!(g["whip"], e["record"], "line {}", i + 1);
        matched += usize::from(!e["record"].is_null());
    }
    eprintln!(
        "{} lines, {matched} matched, all as the reference says",
        got.len()
    );
}

/// Whip keeps answering for ranges later snapshots removed; we do not.
#[test]
#[ignore = "needs the 41-snapshot history (WHIPSTREAM_HISTORY_DIR)"]
fn removed_ranges_stop_answering() {
    let db = store41();
    let after = ok(&[
        "lookup",
        "--db",
        s(db),
        "--at",
        "2026-07-02",
        "1.140.118.71",
    ]);
    assert_eq!(after.trim(), "{}");
    let history = ok(&["lookup", "--db", s(db), "--history", "1.140.118.71"]);
    let h: Value = serde_json::from_str(history.trim()).unwrap();
    let au = h["history"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["country"] == "AU");
    assert!(au, "the range was AU before it was removed: {history}");
}
