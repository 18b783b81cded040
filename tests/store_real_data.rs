//! `load`, `lookup`, `snapshots` and `verify` on the real shared snapshots.

mod common;

use common::*;
use serde_json::Value;

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// A handful of real lines from each file, looked up at the file's own datetime
/// through their first and last address, answer with exactly that line.
#[test]
fn lookups_return_the_snapshot_line_as_loaded() {
    let db = geoip_store();
    let mut files: Vec<_> = std::fs::read_dir(geoip_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3);
    for file in &files {
        let text = read_text(file);
        let lines: Vec<&str> = text.lines().collect();
        for &i in &[
            0,
            1,
            7777,
            lines.len() / 2,
            lines.len() - 2,
            lines.len() - 1,
        ] {
            let want: Value = serde_json::from_str(lines[i]).unwrap();
            let dt = want["datetime"].as_str().unwrap();
            for ip in [
                want["begin"].as_str().unwrap(),
                want["end"].as_str().unwrap(),
            ] {
                let got = ok(&["lookup", "--db", s(db), "--at", dt, ip]);
                let got: Value = serde_json::from_str(got.trim()).unwrap();
                assert_eq!(got, want, "{ip} at {dt} in {}", file.display());
            }
        }
    }
}

/// The acceptance pair: every (ip, t) of the re-timed real log answered exactly as
/// the independent reference computed over the same three snapshots.
#[test]
fn batch_matches_the_reference_answers_for_the_acceptance_log() {
    let db = geoip_store();
    let expected =
        read_text(&shared_data().join("logs/accept-apache_logs.expected-3snapshots.jsonl"));
    let expected = json_lines(&expected);
    let mut queries = String::new();
    for e in &expected {
        queries.push_str(&serde_json::json!({"ip": e["ip"], "t": e["t"]}).to_string());
        queries.push('\n');
    }
    let out = run(
        &["lookup", "--db", s(db), "--batch"],
        Some(queries.as_bytes()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = json_lines(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(got.len(), expected.len());
    let mut matched = 0;
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        let want = if e["record"].is_null() {
            serde_json::json!({})
        } else {
            matched += 1;
            e["record"].clone()
        };
        assert_eq!(g, &want, "query {} ({} at {})", i + 1, e["ip"], e["t"]);
    }
    // The pair exercises both answers.
    assert!(matched > 5000 && matched < expected.len(), "{matched}");
}

#[test]
fn history_is_newest_first_and_latest_is_the_newest_snapshot() {
    let db = geoip_store();
    let out = ok(&["lookup", "--db", s(db), "--history", "1.0.1.5", "10.0.0.1"]);
    let lines = json_lines(&out);
    let h = lines[0]["history"].as_array().unwrap();
    assert!(!h.is_empty());
    let dts: Vec<&str> = h.iter().map(|r| r["datetime"].as_str().unwrap()).collect();
    let mut sorted = dts.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(dts, sorted);
    assert_eq!(lines[1], serde_json::json!({"history": []}));

    let latest = ok(&[
        "lookup",
        "--db",
        s(db),
        "1.0.1.5",
        "10.0.0.1",
        "::ffff:1.0.1.5",
    ]);
    let latest = json_lines(&latest);
    assert_eq!(latest[0]["datetime"], "2026-09-26T01:56:00Z");
    assert_eq!(latest[1], serde_json::json!({}));
    assert_eq!(latest[0], latest[2]);
    // Before the first snapshot nothing is known.
    let early = ok(&[
        "lookup",
        "--db",
        s(db),
        "--at",
        "2024-10-01T23:40:59Z",
        "1.0.1.5",
    ]);
    assert_eq!(early.trim(), "{}");
}

#[test]
fn snapshots_and_verify_describe_the_store() {
    let db = geoip_store();
    let out = ok(&["snapshots", "--db", s(db), "--json"]);
    let snaps = json_lines(&out);
    let ranges: Vec<u64> = snaps
        .iter()
        .map(|m| m["ranges"].as_u64().unwrap())
        .collect();
    assert_eq!(ranges, [539_125, 604_070, 609_190]);
    assert_eq!(snaps[0]["file"], "geoip-country-202410012341.jsonl.gz");
    assert_eq!(snaps[0]["sha256"].as_str().unwrap().len(), 64);
    let table = ok(&["snapshots", "--db", s(db)]);
    assert!(table.contains("2026-05-27T00:00:00Z"), "{table}");
    let verify = ok(&["verify", "--db", s(db)]);
    assert!(verify.starts_with("ok: 3 snapshots"), "{verify}");
}

#[test]
fn bad_queries_get_an_error_line_and_the_batch_goes_on() {
    let db = geoip_store();
    let input = b"{\"ip\":\"999.1.1.1\"}\n{\"ip\":\"1.0.1.5\",\"t\":\"2025-02-30\"}\nnot json {\n{\"ip\":\"fe80::1%eth0\"}\n{\"ip\":\"1.0.1.5\",\"t\":\"2025-01-01\"}\n";
    let out = run(&["lookup", "--db", s(db), "--batch"], Some(input));
    assert!(out.status.success());
    let lines = json_lines(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(lines.len(), 5);
    for l in &lines[..4] {
        assert!(l["error"].is_string(), "{l}");
    }
    assert_eq!(lines[4]["country"], "CN");
    // A bad address on the command line is a usage error, not a crash.
    let err = fails(&["lookup", "--db", s(db), "1.2.3.999"]);
    assert!(err.contains("not an IP address"), "{err}");
}

#[test]
fn reload_is_a_no_op_and_conflicting_files_need_replace() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let a = fixture("snapshots/good-2024-01-01.jsonl");
    let b = fixture("snapshots/good-2024-02-01.jsonl");
    let out = ok(&["load", "--db", s(&db), s(&b), s(&a)]);
    assert!(out.contains("2 new"), "{out}");
    let out = ok(&["load", "--db", s(&db), s(&a)]);
    assert!(out.contains("1 unchanged"), "{out}");

    // Same datetime, different content: refused, then replaced on request.
    let changed = dir.path().join("changed.jsonl");
    std::fs::write(&changed, read_text(&a).replace("\"AU\"", "\"NZ\"")).unwrap();
    let err = fails(&["load", "--db", s(&db), s(&changed)]);
    assert!(
        err.contains("already loaded") && err.contains("--replace"),
        "{err}"
    );
    let at = |ip: &str| ok(&["lookup", "--db", s(&db), "--at", "2024-01-15", ip]);
    assert!(at("1.0.0.1").contains("\"AU\""));
    ok(&["load", "--db", s(&db), "--replace", s(&changed)]);
    assert!(at("1.0.0.1").contains("\"NZ\""));
    assert!(ok(&["verify", "--db", s(&db)]).starts_with("ok: 2 snapshots"));
}

#[test]
fn missing_store_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = fails(&["lookup", "--db", s(&dir.path().join("none")), "1.2.3.4"]);
    assert!(err.contains("no whipstream store at"), "{err}");
}

/// A query written to `lookup --batch` is answered at once, while stdin stays open.
#[test]
fn batch_answers_each_query_as_it_arrives() {
    use std::io::Write;
    let db = geoip_store();
    let Interactive {
        mut child,
        mut stdin,
        lines: rx,
    } = interactive(&["lookup", "--db", s(db), "--batch"]);
    // The first answer may wait for the store to open; later ones come at once.
    for (i, t) in ["2025-01-01", "2026-07-01", "2026-10-01"]
        .iter()
        .enumerate()
    {
        writeln!(stdin, "{{\"ip\":\"1.0.1.5\",\"t\":\"{t}\"}}").unwrap();
        stdin.flush().unwrap();
        let limit = std::time::Duration::from_secs(if i == 0 { 30 } else { 1 });
        let line = rx.recv_timeout(limit).expect("answer within a second");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["country"], "CN");
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}
