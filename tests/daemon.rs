//! `whipstream run`, the daemon, driven as a user would: a config file or flags,
//! lines on stdin, snapshot files dropped into the watched directory, REST and
//! /metrics over HTTP, SIGTERM and restarts.

mod common;

use std::time::Duration;

use common::daemon::*;
use common::*;
use serde_json::Value;

#[test]
fn hot_loads_switch_at_event_time_rejects_bad_files_and_survive_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, watch) = (tmp.path().join("store"), tmp.path().join("incoming"));
    std::fs::create_dir(&watch).unwrap();
    drop_snapshot(&watch, "geo-2024-01.jsonl", &format!("{V1}\n"));
    let config = tmp.path().join("whipstream.toml");
    std::fs::write(
        &config,
        format!(
            "[[dataset]]\nname = \"geo\"\nstore = {:?}\nwatch = {:?}\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n[output]\ninclude_line = false\n\n[ingest]\npoll_seconds = 0.2\n",
            store, watch
        ),
    )
    .unwrap();
    let mut d = Daemon::start(&["--config", s(&config)]);
    d.wait_for("ready", |d| d.get("/readyz").0 == 200);
    d.wait_for("first snapshot loaded", |d| d.snapshots() == 1);

    // Before the second snapshot: March and July both get AU.
    d.send(&line(0, "01/Mar/2024"));
    d.send(&line(1, "01/Jul/2024"));
    let out = d.take(2);
    assert_eq!(
        (&out[0]["geo"]["cc"], &out[1]["geo"]["cc"]),
        (&"AU".into(), &"AU".into())
    );

    // A new snapshot arrives while the daemon runs: lines and lookups switch at
    // its datetime, and only there.
    drop_snapshot(&watch, "geo-2024-06.jsonl", &format!("{V2}\n"));
    d.wait_for("second snapshot loaded", |d| d.snapshots() == 2);
    d.send(&line(2, "01/Mar/2024"));
    d.send(&line(3, "01/Jul/2024"));
    let out = d.take(2);
    assert_eq!(out[0]["geo"]["cc"], "AU", "{:?}", out[0]);
    assert_eq!(out[1]["geo"]["cc"], "NZ", "{:?}", out[1]);
    assert_eq!(d.get("/ip/1.2.3.4?datetime=2024-03-01").1["cc"], "AU");
    assert_eq!(d.get("/ip/1.2.3.4").1["cc"], "NZ");
    assert_eq!(
        d.get("/ip/1.2.3.4?dataset=geo&datetime=2024-07-01").1["cc"],
        "NZ"
    );
    assert_eq!(d.get("/ip/1.2.3.4?dataset=nope").0, 404);

    // A broken file and one that is still being written.
    std::fs::write(watch.join("geo-partial.jsonl.tmp"), "{\"begin\":").unwrap();
    drop_snapshot(&watch, "geo-broken.jsonl", &format!("{V1}\n{{\"begin\":\"1.2.4.0\",\"end\":\"1.2.3.0\",\"datetime\":\"2024-01-01T00:00:00Z\"}}\n"));
    let rejected = watch.join("rejected/geo-broken.jsonl.error");
    d.wait_for("broken file rejected", |_| rejected.exists());
    let reason = std::fs::read_to_string(&rejected).unwrap();
    assert!(reason.contains("geo-broken.jsonl:2"), "{reason}");
    assert!(watch.join("rejected/geo-broken.jsonl").exists());
    assert!(!watch.join("geo-broken.jsonl").exists());
    assert!(
        watch.join("geo-partial.jsonl.tmp").exists(),
        "a .tmp file was touched"
    );
    // Still serving, on what it had.
    assert_eq!(d.snapshots(), 2);
    d.send(&line(4, "01/Jul/2024"));
    assert_eq!(d.take(1)[0]["geo"]["cc"], "NZ");

    let m = d.metrics();
    assert_metric(
        &m,
        r#"whipstream_lines_total{source="stdin",outcome="read"}"#,
        5.0,
    );
    assert_metric(
        &m,
        r#"whipstream_lines_matched_total{source="stdin",dataset="geo",outcome="matched"}"#,
        5.0,
    );
    assert_metric(
        &m,
        r#"whipstream_snapshots_ingested_total{dataset="geo",outcome="loaded"}"#,
        2.0,
    );
    // Lookup latency: each REST lookup answered, and the enrichment's lookups
    // (one sample per chunk; each line sent alone is at most one chunk).
    assert_metric(
        &m,
        r#"whipstream_lookup_duration_seconds_count{via="rest"}"#,
        3.0,
    );
    let enrich = counter(
        &m,
        r#"whipstream_lookup_duration_seconds_count{via="enrich"}"#,
    );
    assert!((1.0..=5.0).contains(&enrich), "{m}");
    assert_metric(
        &m,
        r#"whipstream_snapshots_ingested_total{dataset="geo",outcome="rejected"}"#,
        1.0,
    );
    assert!(
        counter(&m, "whipstream_process_resident_memory_bytes") > 1e6,
        "{m}"
    );
    let (ok, stderr, _) = d.stop();
    assert!(ok, "{stderr}");

    // Restart: both files are recognised, nothing is loaded twice.
    let d = Daemon::start(&["--config", s(&config)]);
    d.wait_for("ready again", |d| d.get("/readyz").0 == 200);
    d.wait_for("store reopened", |d| d.snapshots() == 2);
    d.wait_for("two scans", |d| d.scans() >= 2.0);
    let m = d.metrics();
    assert_metric(
        &m,
        r#"whipstream_snapshots_ingested_total{dataset="geo",outcome="loaded"}"#,
        0.0,
    );
    let (ok, stderr, _) = d.stop();
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("loaded 1 ranges"), "{stderr}");
}

/// Flags alone (no file); SIGTERM in the middle of a stream: every line that was
/// read is written, in order, and the count matches what the daemon says it read.
#[test]
fn sigterm_mid_stream_writes_every_line_read() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let watch = tmp.path().join("incoming");
    let mut d = Daemon::start(&[
        "--db",
        &format!("geo={}", s(&store)),
        "--watch",
        &format!("geo={}", s(&watch)),
        "--listen",
        "127.0.0.1:0",
        "--no-line",
    ]);
    d.wait_for("ready", |d| d.get("/readyz").0 == 200);
    drop_snapshot(&watch, "v1.jsonl", &format!("{V1}\n"));
    d.wait_for("snapshot loaded", |d| d.snapshots() == 1);
    // A stream of lines in bursts, then SIGTERM while it flows.
    let mut sent = 0;
    for burst in 0..20 {
        let text: String = (0..250)
            .map(|i| line(burst * 250 + i, "01/Mar/2024"))
            .collect();
        d.send(&text);
        sent += 250;
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut got: Vec<String> = Vec::new();
    while got.len() < 1000 {
        got.push(
            d.out
                .recv_timeout(Duration::from_secs(20))
                .expect("output flows"),
        );
    }
    let (ok, stderr, rest) = d.stop();
    assert!(ok, "{stderr}");
    got.extend(rest);
    let summary = stderr
        .lines()
        .find_map(|l| l.strip_prefix("whipstream run: "))
        .unwrap_or_else(|| panic!("no summary: {stderr}"));
    let read: usize = summary.split(' ').next().unwrap().parse().unwrap();
    assert_eq!(got.len(), read, "lines read but not written: {summary}");
    assert!(read <= sent);
    for (i, l) in got.iter().enumerate() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["path"], format!("/{i}"), "order or gap at {i}");
        assert_eq!(v["geo"]["cc"], "AU");
    }
}

#[test]
fn bad_configuration_is_refused_with_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("bad.toml");
    std::fs::write(
        &config,
        "[[dataset]]\nname = \"geo\"\nstore = \"/tmp/x\"\n[input]\nformt = \"json\"\n",
    )
    .unwrap();
    let err = fails(&["run", "--config", s(&config)]);
    assert!(err.contains("bad.toml") && err.contains("formt"), "{err}");
    std::fs::write(
        &config,
        "[[dataset]]\nname = \"geo\"\nstore = \"/tmp/x\"\n[http]\nlisten = \"here\"\n",
    )
    .unwrap();
    let err = fails(&["run", "--config", s(&config)]);
    assert!(err.contains("http.listen"), "{err}");
    let err = fails(&["run"]);
    assert!(err.contains("no data set"), "{err}");
    // A Kafka flag with the stdin source would be ignored: refused instead.
    let err = fails(&["run", "--db", "geo=/tmp/x", "--group-id", "g"]);
    assert!(err.contains("--group-id") && err.contains("stdin"), "{err}");
}

/// With scans an hour apart, a dropped file waits; SIGHUP scans at once.
#[test]
fn sighup_scans_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, watch) = (tmp.path().join("store"), tmp.path().join("incoming"));
    let d = Daemon::start(&[
        "--db",
        &format!("geo={}", s(&store)),
        "--watch",
        &format!("geo={}", s(&watch)),
        "--listen",
        "127.0.0.1:0",
        "--poll-seconds",
        "3600",
    ]);
    d.wait_for("ready", |d| d.get("/readyz").0 == 200);
    // The first scan runs once the daemon is ready; the file must come after it.
    d.wait_for("first scan", |d| d.scans() >= 1.0);
    drop_snapshot(&watch, "v1.jsonl", &format!("{V1}\n"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(d.snapshots(), 0, "loaded without a scan");
    std::process::Command::new("kill")
        .args(["-HUP", &d.pid().to_string()])
        .status()
        .unwrap();
    d.wait_for("loaded after SIGHUP", |d| d.snapshots() == 1);
    let (ok, stderr, _) = d.stop();
    assert!(ok, "{stderr}");
}
