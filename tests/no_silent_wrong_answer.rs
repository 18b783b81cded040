//! Never a silent wrong answer (issue 11), through the real binary: the daemon
//! answers only from data it has finished loading, a watched file is loaded only
//! once complete, a line without its own time is never quietly enriched at
//! "now" in a backfill, lines older than the data are counted and explained, and
//! the loose ends (truncated gzip, signals, error messages, store directories).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::*;
use common::*;
use serde_json::Value;

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The shared geoip-country snapshots, copied into `dir` the way `cp` does.
fn copy_geoip_snapshots(dir: &Path) -> Vec<PathBuf> {
    let mut copied = Vec::new();
    for e in std::fs::read_dir(geoip_dir()).unwrap() {
        let p = e.unwrap().path();
        if p.to_str().unwrap().ends_with(".jsonl.gz") {
            let to = dir.join(p.file_name().unwrap());
            std::fs::copy(&p, &to).unwrap();
            copied.push(to);
        }
    }
    assert_eq!(copied.len(), 3);
    copied
}

/// Snapshot files already in the watched directory at start, and every line of
/// the re-timed real log written on stdin at once: each line gets the reference
/// answer (none is enriched before the data is loaded), and the store holds the
/// three snapshots.
#[test]
fn preplaced_snapshots_are_loaded_before_the_first_line_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, watch) = (tmp.path().join("store"), tmp.path().join("incoming"));
    std::fs::create_dir(&watch).unwrap();
    copy_geoip_snapshots(&watch);
    let log = std::fs::read_to_string(shared_data().join("logs/accept-apache_logs.log")).unwrap();
    let expected = json_lines(
        &std::fs::read_to_string(
            shared_data().join("logs/accept-apache_logs.expected-3snapshots.jsonl"),
        )
        .unwrap(),
    );
    let mut d = Daemon::start(&[
        "--db",
        &format!("geo={}", s(&store)),
        "--watch",
        &format!("geo={}", s(&watch)),
        "--listen",
        "127.0.0.1:0",
        "--no-line",
    ]);
    d.send(&log);
    let out = d.take(expected.len());
    for (i, (got, want)) in out.iter().zip(&expected).enumerate() {
        assert_eq!(got["ip"], want["ip"], "line {}", i + 1);
        assert_eq!(got["geo"], want["record"], "line {}", i + 1);
    }
    assert_eq!(d.snapshots(), 3);
    assert_eq!(d.get("/readyz").0, 200);
    let (ok, stderr, _) = d.stop();
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("10000 lines read, 10000 enriched"),
        "{stderr}"
    );
}

/// A client that polls a lookup from the moment the daemon starts sees 503s
/// (JSON error, Retry-After) and then the right answer: never a 200 `{}`; the
/// same with `?dataset=`, and `/readyz` turns 200 only with the data.
#[test]
fn rest_says_503_until_the_data_is_loaded_then_answers_right() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, watch) = (tmp.path().join("store"), tmp.path().join("incoming"));
    std::fs::create_dir(&watch).unwrap();
    // The oldest snapshot answers the question below (the next is from 2026-05).
    let oldest = "geoip-country-202410012341.jsonl.gz";
    std::fs::copy(geoip_dir().join(oldest), watch.join(oldest)).unwrap();
    // A long settle interval: the start takes at least this long.
    let d = Daemon::start(&[
        "--db",
        &format!("geo={}", s(&store)),
        "--watch",
        &format!("geo={}", s(&watch)),
        "--listen",
        "127.0.0.1:0",
        "--settle-seconds",
        "3",
    ]);
    // From the reference: 129.151.103.92 in 2026-02 is CL (snapshot 2024-10-01).
    let paths = [
        "/ip/129.151.103.92?datetime=2026-02-20T23:48:00Z",
        "/ip/129.151.103.92?datetime=2026-02-20T23:48:00Z&dataset=geo",
    ];
    let started = Instant::now();
    let mut unavailable = 0;
    let mut answered = [false, false];
    while !answered.iter().all(|a| *a) {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no answer in time"
        );
        for (path, done) in paths.iter().zip(answered.iter_mut()) {
            let (status, head, body) = http_get_with_headers(&d.addr, path);
            let v: Value = serde_json::from_str(&body).unwrap();
            match status {
                503 => {
                    assert!(!*done, "a 503 after an answer");
                    assert!(head.contains("retry-after: 1"), "{head}");
                    assert!(v["error"].as_str().unwrap().contains("loading"), "{v}");
                    unavailable += 1;
                }
                200 => {
                    assert_eq!(v["country"], "CL", "{path}: {v}");
                    assert_eq!(v["datetime"], "2024-10-01T23:41:00Z");
                    *done = true;
                }
                other => panic!("{path}: {other} {body}"),
            }
        }
        // /readyz never says ready before the data is there.
        let (status, ready) = d.get("/readyz");
        if status == 200 {
            assert_eq!(ready["datasets"]["geo"], 1, "{ready}");
        }
    }
    assert!(unavailable > 0, "never saw the daemon loading");
    // The data set answers first; the whole daemon is ready a moment later.
    d.wait_for("ready", |d| d.get("/readyz").0 == 200);
    let (ok, stderr, _) = d.stop();
    assert!(ok, "{stderr}");
}

/// A real snapshot copied straight into the watched directory by a slow writer
/// (no temporary name, no rename), cut at line boundaries so that every part
/// is a valid snapshot on its own: only the whole file is loaded, never a part,
/// and nothing is rejected. Then a gzip that stops before its end waits (not
/// rejected) until it is whole.
#[test]
fn a_file_copied_in_slowly_is_loaded_whole_and_only_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, watch) = (tmp.path().join("store"), tmp.path().join("incoming"));
    std::fs::create_dir(&watch).unwrap();
    let d = Daemon::start(&[
        "--db",
        &format!("geo={}", s(&store)),
        "--watch",
        &format!("geo={}", s(&watch)),
        "--listen",
        "127.0.0.1:0",
        "--poll-seconds",
        "0.05",
        "--settle-seconds",
        "4",
    ]);
    d.wait_for("ready", |d| d.get("/readyz").0 == 200);
    // The first 30,000 ranges of the oldest shared snapshot.
    let full = read_text(&geoip_dir().join("geoip-country-202410012341.jsonl.gz"));
    let lines: Vec<&str> = full.lines().take(30_000).collect();
    let path = watch.join("geo-2024-10.jsonl");
    let mut file = std::fs::File::create(&path).unwrap();
    for (i, part) in lines.chunks(500).enumerate() {
        for l in part {
            writeln!(file, "{l}").unwrap();
        }
        file.flush().unwrap();
        // The watcher scans every 50 ms; the writer never pauses near the
        // settle interval, so no part may be loaded.
        std::thread::sleep(Duration::from_millis(20));
        if i % 10 == 0 {
            assert_eq!(d.snapshots(), 0, "a part was loaded");
        }
    }
    drop(file);
    d.wait_for("the whole file loaded", |d| d.snapshots() == 1);
    assert!(!watch.join("rejected").exists());
    let m = d.metrics();
    assert_metric(
        &m,
        r#"whipstream_snapshots_ingested_total{dataset="geo",outcome="loaded"}"#,
        1.0,
    );

    // A gzip without its end, unchanged for the settle interval: incomplete,
    // left in place; once whole, loaded.
    let gz_path = watch.join("geo-2026-05.jsonl.gz");
    let gz = std::fs::read(geoip_dir().join("geoip-country-202605270000.jsonl.gz")).unwrap();
    std::fs::write(&gz_path, &gz[..gz.len() / 2]).unwrap();
    d.wait_for("the half gzip found incomplete", |d| {
        counter(
            &d.metrics(),
            r#"whipstream_snapshots_ingested_total{dataset="geo",outcome="incomplete"}"#,
        ) >= 1.0
    });
    assert_eq!(d.snapshots(), 1);
    assert!(gz_path.exists() && !watch.join("rejected").exists());
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&gz_path)
        .unwrap();
    f.write_all(&gz[gz.len() / 2..]).unwrap();
    drop(f);
    d.wait_for("the whole gzip loaded", |d| d.snapshots() == 2);
    assert!(!watch.join("rejected").exists());
    let (ok, stderr, _) = d.stop();
    assert!(ok, "{stderr}");

    let listed = ok_json_lines(&["snapshots", "--db", s(&store), "--json"]);
    assert_eq!(listed[0]["ranges"], 30_000);
}

fn ok_json_lines(args: &[&str]) -> Vec<Value> {
    json_lines(&ok(args))
}

/// A JSON line without a time field: from a file (a backfill) a dead letter
/// "no event time" unless --at or --missing-time read says what to use; from
/// stdin enriched at the read time, marked and counted.
#[test]
fn a_line_without_its_own_time_is_never_quietly_enriched_at_now() {
    let db = geoip_store();
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("backfill.jsonl");
    let timed = "{\"remote_addr\":\"129.151.103.92\",\"time\":\"2026-02-20T23:48:00Z\"}\n";
    let untimed = "{\"remote_addr\":\"129.151.103.92\",\"request_uri\":\"/\"}\n";
    std::fs::write(&log, format!("{timed}{untimed}")).unwrap();

    let out = run(&["enrich", "--db", s(db), s(&log)], None);
    assert!(out.status.success());
    let err = stderr_of(&out);
    let written = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(written.len(), 1);
    assert!(written[0].get("time_source").is_none());
    let dead: Vec<Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 1, "{err}");
    assert_eq!(dead[0]["reason"], "no event time");
    assert_eq!(dead[0]["source"], format!("{}:2", s(&log)));
    assert!(err.contains("2 lines read, 1 enriched"), "{err}");
    assert!(
        err.contains("warning: 1 line(s) without an event time were dead-lettered")
            && err.contains("--missing-time read"),
        "{err}"
    );

    // The user says what to use: --at, or the read time; the line says so.
    let at = ok_json_lines(&["enrich", "--db", s(db), "--at", "2026-02-20", s(&log)]);
    assert_eq!(at[1]["timestamp"], "2026-02-20T00:00:00Z");
    assert_eq!(at[1]["time_source"], "at");
    assert_eq!(at[1]["whip"]["country"], "CL");
    let read = ok_json_lines(&["enrich", "--db", s(db), "--missing-time", "read", s(&log)]);
    assert_eq!(read[1]["time_source"], "read");
    assert_eq!(read.len(), 2);
    let both = fails(&[
        "enrich",
        "--db",
        s(db),
        "--at",
        "2026-02-20",
        "--missing-time",
        "read",
        s(&log),
    ]);
    assert!(both.contains("not both"), "{both}");

    // Live input: the read time, marked and counted in the summary.
    let out = run(
        &["enrich", "--db", s(db)],
        Some(format!("{timed}{untimed}").as_bytes()),
    );
    assert!(out.status.success());
    let written = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(written.len(), 2);
    assert_eq!(written[1]["time_source"], "read");
    let err = stderr_of(&out);
    assert!(
        err.contains("1 line(s) without an event time were enriched at another time"),
        "{err}"
    );

    // The daemon on stdin: marked, and counted in /metrics.
    let mut d = Daemon::start(&["--db", &format!("geo={}", s(db)), "--listen", "127.0.0.1:0"]);
    d.send(untimed);
    let out = d.take(1);
    assert_eq!(out[0]["time_source"], "read");
    assert_metric(
        &d.metrics(),
        r#"whipstream_lines_without_event_time_total{source="stdin",outcome="enriched"}"#,
        1.0,
    );
    let (ok, stderr, _) = d.stop();
    assert!(ok, "{stderr}");
}

/// The real 2015 log over the 2024-2026 snapshots: every line is before the
/// first snapshot, said so in the summary with one warning naming the option,
/// counted in /metrics; `--before-first earliest` answers them from the
/// earliest snapshot.
#[test]
fn lines_older_than_the_data_are_counted_apart_and_can_use_the_earliest() {
    let db = geoip_store();
    let log = shared_data().join("logs/apache_logs.log");
    let out = run(&["enrich", "--db", s(db), s(&log)], None);
    assert!(out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains(
            "whip: 0 matched, 10000 unmatched (10000 before the first snapshot \
             (2024-10-01T23:41:00Z), 0 no range contains the address)"
        ),
        "{err}"
    );
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains("--before-first earliest"), "{err}");

    let out = run(
        &[
            "enrich",
            "--db",
            s(db),
            "--before-first",
            "earliest",
            s(&log),
        ],
        None,
    );
    assert!(out.status.success());
    let written = json_lines(&String::from_utf8_lossy(&out.stdout));
    let matched: Vec<&Value> = written.iter().filter(|o| !o["whip"].is_null()).collect();
    assert!(matched.len() > 9000, "{}", matched.len());
    assert!(matched
        .iter()
        .all(|o| o["whip"]["datetime"] == "2024-10-01T23:41:00Z"));
    // The line keeps its own time.
    assert_eq!(written[0]["timestamp"], "2015-05-17T10:05:03Z");
    let err = stderr_of(&out);
    assert!(!err.contains("warning"), "{err}");
    assert!(
        err.contains("10000 before the first snapshot answered from it (2024-10-01T23:41:00Z)"),
        "{err}"
    );

    // The daemon counts them in /metrics; the config key sets the option.
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("w.toml");
    std::fs::write(
        &config,
        format!(
            "[[dataset]]\nname = \"geo\"\nstore = {:?}\n[http]\nlisten = \"127.0.0.1:0\"\n[input]\nbefore_first = \"earliest\"\n",
            db
        ),
    )
    .unwrap();
    let mut d = Daemon::start(&["--config", s(&config)]);
    d.send("83.149.9.216 - - [17/May/2015:10:05:03 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"ua\"\n");
    let out = d.take(1);
    assert_eq!(out[0]["geo"]["datetime"], "2024-10-01T23:41:00Z");
    assert_metric(
        &d.metrics(),
        r#"whipstream_lines_before_first_snapshot_total{source="stdin",dataset="geo"}"#,
        1.0,
    );
    let (ok, stderr, _) = d.stop();
    assert!(ok, "{stderr}");
}

/// A gzip cut short: the partial last line read is a dead letter "truncated
/// input", so that written + dead-lettered = read holds.
#[test]
fn a_truncated_gzip_dead_letters_its_partial_last_line() {
    let tmp = tempfile::tempdir().unwrap();
    let log = std::fs::read(shared_data().join("logs/accept-apache_logs.log")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&log).unwrap();
    let gz = gz.finish().unwrap();
    let path = tmp.path().join("access.log.gz");
    std::fs::write(&path, &gz[..gz.len() * 2 / 3]).unwrap();
    let out = run(&["enrich", "--db", s(geoip_store()), s(&path)], None);
    let err = stderr_of(&out);
    assert!(!out.status.success(), "a truncated input is an error");
    assert!(err.contains("could not be read to the end"), "{err}");
    let written = String::from_utf8(out.stdout).unwrap().lines().count() as u64;
    let dead: Vec<Value> = err
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(dead.len(), 1, "{err}");
    assert_eq!(dead[0]["reason"], "truncated input");
    let summary = err
        .lines()
        .find_map(|l| l.strip_prefix("whipstream enrich: "))
        .unwrap();
    let read: u64 = summary.split(' ').next().unwrap().parse().unwrap();
    assert_eq!(read, written + 1, "{summary}");
    assert_eq!(dead[0]["source"], format!("{}:{read}", s(&path)));
}

/// `run` refuses what `enrich` refuses: a data set named like an output field.
#[test]
fn run_and_enrich_refuse_the_same_data_set_names() {
    for name in ["status", "time_source"] {
        let spec = format!("{name}=/tmp/nowhere");
        let enrich = fails(&["enrich", "--db", &spec]);
        let run = fails(&["run", "--db", &spec]);
        for err in [&enrich, &run] {
            assert!(err.contains("is an output field name"), "{err}");
        }
    }
}

/// SIGINT or SIGTERM on `enrich` reading stdin: what was read is written, the
/// summary printed, exit 0.
#[test]
fn a_signal_ends_enrich_from_stdin_with_its_summary() {
    for signal in ["-INT", "-TERM"] {
        let mut child = Command::new(bin())
            .args(["enrich", "--db", s(geoip_store()), "--no-line"])
            .env_remove("WHIPSTREAM_DB")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let log =
            std::fs::read_to_string(shared_data().join("logs/accept-apache_logs.log")).unwrap();
        let first: String = log.lines().take(3).map(|l| format!("{l}\n")).collect();
        stdin.write_all(first.as_bytes()).unwrap();
        stdin.flush().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        for _ in 0..3 {
            let mut l = String::new();
            stdout.read_line(&mut l).unwrap();
            assert!(l.starts_with('{'), "{l}");
        }
        Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        // stdin stays open: the signal alone ends the run.
        let status = child.wait().unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(status.success(), "{signal}: {status} {err}");
        assert!(err.contains("3 lines read, 3 enriched"), "{signal}: {err}");
        drop(stdin);
    }
}

/// A missing file's error says its cause once.
#[test]
fn a_missing_file_is_reported_once() {
    let err = fails(&[
        "enrich",
        "--db",
        s(geoip_store()),
        "/nonexistent/access.log",
    ]);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert!(err.contains("/nonexistent/access.log"), "{err}");
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("db");
    let err = fails(&["load", "--db", s(&db), "/nonexistent/x.jsonl"]);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}

/// `load --db DIR` into a directory that holds other files and no store is
/// refused, naming it, and writes nothing there; `run` refuses it too.
#[test]
fn a_store_is_never_created_among_other_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("documents");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let snapshot = geoip_dir().join("geoip-country-202410012341.jsonl.gz");
    let err = fails(&["load", "--db", s(&dir), s(&snapshot)]);
    assert!(
        err.contains(s(&dir)) && err.contains("is not empty and holds no whipstream store"),
        "{err}"
    );
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(names.len(), 1, "files were written into {}", dir.display());
    let err = fails(&["run", "--db", &format!("geo={}", s(&dir))]);
    assert!(err.contains("is not empty"), "{err}");
}
