//! `whipstream enrich` as users run it: the acceptance log against the reference
//! answers, every format and client-IP mode, dead letters, streaming, gzip and
//! several files, several data sets.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn enrich(args: &[&str], stdin: Option<&[u8]>) -> (Vec<Value>, Vec<Value>, String) {
    let out = run(args, stdin);
    assert!(
        out.status.success(),
        "enrich {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let dead: Vec<Value> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (json_lines(&out.stdout), dead, stderr)
}

fn logs(name: &str) -> std::path::PathBuf {
    fixture(&format!("logs/{name}"))
}

/// Every line of the re-timed real log, enriched over the three shared snapshots,
/// has the IP, event time and record of the independent reference.
#[test]
fn acceptance_log_matches_the_reference_line_for_line() {
    let db = geoip_store();
    let log = shared_data().join("logs/accept-apache_logs.log");
    let expected = json_lines(
        &std::fs::read(shared_data().join("logs/accept-apache_logs.expected-3snapshots.jsonl"))
            .unwrap(),
    );
    let (out, dead, stderr) = enrich(&["enrich", "--db", s(db), s(&log)], None);
    assert!(dead.is_empty(), "{stderr}");
    assert_eq!(out.len(), expected.len());
    for (i, (got, want)) in out.iter().zip(&expected).enumerate() {
        assert_eq!(got["ip"], want["ip"], "line {}", i + 1);
        assert_eq!(got["timestamp"], want["t"], "line {}", i + 1);
        assert_eq!(got["whip"], want["record"], "line {}", i + 1);
    }
    // The real log's truncated line is enriched like the others, and marked.
    let truncated: Vec<_> = out.iter().filter(|o| o["truncated"] == true).collect();
    assert_eq!(truncated.len(), 1);
    assert!(
        stderr.contains("10000 lines read, 10000 enriched"),
        "{stderr}"
    );
}

#[test]
fn combined_fields_are_parsed_with_null_for_dash() {
    let db = geoip_store();
    let line = b"1.0.1.5 - - [02/Oct/2024:10:00:00 +0000] \"GET /a?b=1 HTTP/1.1\" 304 - \"-\" \"curl/8\"\n";
    let (out, _, _) = enrich(&["enrich", "--db", s(db)], Some(line));
    let o = &out[0];
    assert_eq!(o["method"], "GET");
    assert_eq!(o["path"], "/a?b=1");
    assert_eq!(o["protocol"], "HTTP/1.1");
    assert_eq!(o["status"], 304);
    assert_eq!(o["bytes"], Value::Null);
    assert_eq!(o["referer"], Value::Null);
    assert_eq!(o["user_agent"], "curl/8");
    assert_eq!(
        o["line"],
        String::from_utf8_lossy(&line[..line.len() - 1]).as_ref()
    );
    assert_eq!(o["whip"]["country"], "CN");
    assert_eq!(o["whip"]["datetime"], "2024-10-01T23:41:00Z");
}

#[test]
fn common_json_regex_and_auto_formats() {
    let db = geoip_store();
    let (out, dead, _) = enrich(
        &[
            "enrich",
            "--db",
            s(db),
            "--format",
            "common",
            s(&logs("common.log")),
        ],
        None,
    );
    assert!(dead.is_empty());
    assert_eq!(out[0]["user"], "frank");
    assert_eq!(out[0]["timestamp"], "2024-10-02T08:00:00Z");
    assert_eq!(out[1]["ip"], "::ffff:1.0.1.6");
    assert_eq!(out[1]["timestamp"], "2024-10-02T17:00:00Z");
    assert_eq!(out[1]["whip"]["country"], "CN");

    let (out, dead, _) = enrich(
        &[
            "enrich",
            "--db",
            s(db),
            "--format",
            "json",
            s(&logs("json.log")),
        ],
        None,
    );
    assert!(dead.is_empty(), "{dead:?}");
    assert_eq!(out.len(), 4);
    assert_eq!(out[0]["ip"], "1.0.1.5");
    assert_eq!(out[0]["fields"]["status"], 200);
    assert_eq!(out[1]["ip"], "2001:200::1");
    assert_eq!(out[1]["whip"]["datetime"], "2026-05-27T00:00:00Z");
    assert_eq!(out[2]["ip"], "1.0.1.5");
    assert_eq!(out[2]["timestamp"], "2024-10-02T10:00:00Z");
    assert_eq!(out[3]["timestamp"], "2024-10-02T08:00:00Z");

    let (out, _, _) = enrich(
        &[
            "enrich",
            "--db",
            s(db),
            "--ip-field",
            "peer",
            "--time-field",
            "when",
        ],
        Some(br#"{"peer":"1.0.1.5","when":"2026-06-01T00:00:00Z","ip":"2.2.2.2"}"#),
    );
    assert_eq!(out[0]["ip"], "1.0.1.5");
    assert_eq!(out[0]["whip"]["datetime"], "2026-05-27T00:00:00Z");

    let re = r"^(?P<time>\S+) (?P<proc>\S+): .* from (?P<ip>\S+) port (?P<port>\d+)$";
    let (out, dead, _) = enrich(
        &[
            "enrich",
            "--db",
            s(db),
            "--format",
            "regex",
            "--regex",
            re,
            s(&logs("syslog.log")),
        ],
        None,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["ip"], "1.0.1.5");
    assert_eq!(out[0]["proc"], "sshd[42]");
    assert_eq!(out[0]["port"], "2222");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["reason"], "line does not match the regex format");

    // auto: JSON and combined lines mixed in one stream.
    let mixed = [
        std::fs::read_to_string(logs("json.log")).unwrap(),
        std::fs::read_to_string(logs("common.log")).unwrap(),
    ]
    .concat();
    let (out, dead, _) = enrich(&["enrich", "--db", s(db)], Some(mixed.as_bytes()));
    assert_eq!((out.len(), dead.len()), (6, 0));
}

#[test]
fn client_ip_from_x_forwarded_for_and_from_anywhere() {
    let db = geoip_store();
    let file = logs("nginx-xff.log");
    let (out, _, _) = enrich(
        &[
            "enrich",
            "--db",
            s(db),
            "--client-ip",
            "xff",
            "--trusted-proxy",
            "10.0.0.0/8",
            s(&file),
        ],
        None,
    );
    assert_eq!(out[0]["ip"], "1.0.1.5");
    assert_eq!(out[0]["whip"]["country"], "CN");
    assert_eq!(out[0]["extra"], json!(["1.0.1.5, 10.0.0.9"]));
    // No header: the proxy's own address stands.
    assert_eq!(out[1]["ip"], "10.0.0.2");
    // A peer that is not a trusted proxy cannot choose its client address.
    assert_eq!(out[2]["ip"], "192.0.2.10");
    let (out, _, _) = enrich(&["enrich", "--db", s(db), s(&file)], None);
    assert_eq!(out[0]["ip"], "10.0.0.2");

    let (out, _, _) = enrich(
        &[
            "enrich",
            "--db",
            s(db),
            "--format",
            "json",
            "--client-ip",
            "xff",
            "--trusted-proxy",
            "1.0.1.5/32",
            s(&logs("json.log")),
        ],
        None,
    );
    assert_eq!(out[3]["ip"], "203.0.113.7");

    let (out, dead, _) = enrich(
        &[
            "enrich",
            "--db",
            s(db),
            "--format",
            "regex",
            "--regex",
            r"^(?P<msg>.*)$",
            "--client-ip",
            "any",
            s(&logs("syslog.log")),
        ],
        None,
    );
    assert!(dead.is_empty(), "{dead:?}");
    assert_eq!(out[0]["ip"], "1.0.1.5");
    assert_eq!(out[1]["ip"], "2001:200::9");
    assert_eq!(out[1]["timestamp"], "2024-10-02T08:00:00Z");
}

#[test]
fn dead_letter_corpus_every_line_accounted_for() {
    let db = geoip_store();
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("corpus.log");
    let mut bytes = std::fs::read(logs("dead-letter-corpus.log")).unwrap();
    // A giant line in the middle, past --max-line-bytes.
    bytes.extend_from_slice(b"1.0.1.5 - - [02/Oct/2024:10:00:00 +0000] \"GET /");
    bytes.extend(std::iter::repeat_n(b'a', 200_000));
    bytes.extend_from_slice(b" HTTP/1.1\" 200 1\n");
    bytes.extend_from_slice(
        b"1.0.1.5 - - [02/Oct/2024:10:00:00 +0000] \"GET /after-giant HTTP/1.1\" 200 1\n",
    );
    std::fs::write(&corpus, &bytes).unwrap();
    let total_lines = bytes.iter().filter(|&&b| b == b'\n').count();

    let dead_file = dir.path().join("dead.jsonl");
    let out_file = dir.path().join("out.jsonl");
    let res = run(
        &[
            "enrich",
            "--db",
            s(db),
            "--dead-letter",
            s(&dead_file),
            "--output",
            s(&out_file),
            s(&corpus),
        ],
        None,
    );
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let out = json_lines(&std::fs::read(&out_file).unwrap());
    let dead = json_lines(&std::fs::read(&dead_file).unwrap());
    assert_eq!(out.len() + dead.len(), total_lines);
    // Line 6's time has no offset: read as UTC (`--timezone` would say otherwise).
    assert_eq!(out.len(), 5);
    assert_eq!(out[1]["timestamp"], "2024-10-02T10:00:00Z");
    // Line 19: escapes and an exponent strict parsers read are kept as they are.
    assert_eq!(out[3]["fields"]["note"], "caf\u{e9} \u{1f600}");
    assert_eq!(out[4]["path"], "/after-giant");
    // Every line written parses in strict parsers (serde_json above, Python here).
    assert_strict_json_lines(&out_file);
    assert_strict_json_lines(&dead_file);
    let name = corpus.display().to_string();
    let reasons: Vec<(String, String)> = dead
        .iter()
        .map(|d| {
            (
                d["source"].as_str().unwrap().to_string(),
                d["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = [
        (2, "does not match"),
        (3, "day out of range"),
        (4, "bad client IP"),
        (5, "zone ids"),
        (7, "does not match"),
        (8, "bad timestamp"),
        (9, "no client IP"),
        (10, "invalid JSON"),
        (11, "empty line"),
        (12, "empty line"),
        (14, "invalid UTF-8"),
        (15, "invalid UTF-8"),
        (
            16,
            "not strict JSON: unexpected end of hex escape (a lone surrogate",
        ),
        (17, "not strict JSON: number out of range"),
        (18, "invalid JSON: a value nested deeper than 32 levels"),
        (20, "line longer than 65536 bytes"),
    ];
    assert_eq!(reasons.len(), expect.len(), "{reasons:#?}");
    for ((source, reason), (line, needle)) in reasons.iter().zip(expect) {
        assert_eq!(source, &format!("{name}:{line}"));
        assert!(reason.contains(needle), "line {line}: {reason}");
    }
    let summary = String::from_utf8_lossy(&res.stderr);
    assert!(
        summary.contains(&format!("{total_lines} lines read, 5 enriched")),
        "{summary}"
    );
    assert!(summary.contains("16 dead-lettered"), "{summary}");

    // --strict turns dead letters into a failing exit status, after the whole run.
    let strict = run(
        &[
            "enrich",
            "--db",
            s(db),
            "--strict",
            "--output",
            s(&out_file),
            s(&corpus),
        ],
        None,
    );
    assert_eq!(strict.status.code(), Some(3));
    assert_eq!(json_lines(&std::fs::read(&out_file).unwrap()).len(), 5);
}

#[test]
fn a_line_on_stdin_comes_out_at_once() {
    let db = geoip_store();
    let Interactive {
        mut child,
        mut stdin,
        lines: rx,
    } = interactive(&["enrich", "--db", s(db)]);
    // The first answer may wait for the store to open (slow on a busy machine);
    // every later line must come back within a second while stdin stays open.
    for (i, ip) in ["1.0.1.5", "2001:200::1", "::ffff:1.0.1.6"]
        .iter()
        .enumerate()
    {
        let limit = Duration::from_secs(if i == 0 { 30 } else { 1 });
        let sent = Instant::now();
        writeln!(
            stdin,
            "{ip} - - [02/Oct/2024:10:00:0{i} +0000] \"GET / HTTP/1.1\" 200 1 \"-\" \"t\""
        )
        .unwrap();
        stdin.flush().unwrap();
        let line = rx
            .recv_timeout(limit)
            .expect("enriched line within a second");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ip"], *ip);
        eprintln!("line {i} came back in {:?}", sent.elapsed());
    }
    // stdin is still open here; closing it ends the run cleanly.
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

fn gzip_file(path: &Path, text: &[u8]) {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(text).unwrap();
    std::fs::write(path, enc.finish().unwrap()).unwrap();
}

#[test]
fn gzip_and_several_files_keep_input_order() {
    let db = geoip_store();
    let log = std::fs::read(shared_data().join("logs/accept-apache_logs.log")).unwrap();
    let lines: Vec<&[u8]> = log.split_inclusive(|&b| b == b'\n').collect();
    let dir = tempfile::tempdir().unwrap();
    let parts = [&lines[..3000], &lines[3000..7000], &lines[7000..]];
    let a = dir.path().join("a.log");
    let b = dir.path().join("b.log.gz");
    let c = dir.path().join("c.log");
    std::fs::write(&a, parts[0].concat()).unwrap();
    gzip_file(&b, &parts[1].concat());
    std::fs::write(&c, parts[2].concat()).unwrap();

    let whole = enrich(&["enrich", "--db", s(db), "--no-line", "-"], Some(&log)).0;
    let split = enrich(
        &["enrich", "--db", s(db), "--no-line", s(&a), s(&b), s(&c)],
        None,
    )
    .0;
    assert_eq!(split.len(), lines.len());
    assert_eq!(split, whole);
    // The same files through a directory (read in name order) and stdin mixed in.
    std::fs::remove_file(&c).unwrap();
    let d = dir.path().join("d");
    std::fs::create_dir(&d).unwrap();
    std::fs::rename(&a, d.join("1.log")).unwrap();
    std::fs::rename(&b, d.join("2.log.gz")).unwrap();
    let mixed = enrich(
        &["enrich", "--db", s(db), "--no-line", s(&d), "-"],
        Some(&parts[2].concat()),
    )
    .0;
    assert_eq!(mixed, whole);
}

#[test]
fn several_data_sets_in_one_pass() {
    let db = geoip_store();
    let dir = tempfile::tempdir().unwrap();
    let asn = dir.path().join("asn");
    ok(&[
        "load",
        "--db",
        s(&asn),
        s(&shared_data().join("snapshots/asn")),
    ]);
    let log = shared_data().join("logs/accept-apache_logs.log");
    let geo_spec = format!("geo={}", s(db));
    let asn_spec = format!("asn={}", s(&asn));
    let (out, dead, _) = enrich(
        &[
            "enrich",
            "--db",
            &geo_spec,
            "--db",
            &asn_spec,
            "--no-line",
            s(&log),
        ],
        None,
    );
    assert!(dead.is_empty());
    assert_eq!(out.len(), 10_000);
    let expected = json_lines(
        &std::fs::read(shared_data().join("logs/accept-apache_logs.expected-3snapshots.jsonl"))
            .unwrap(),
    );
    let mut asn_matches = 0;
    for (o, e) in out.iter().zip(&expected) {
        assert_eq!(o["geo"], e["record"]);
        assert!(o.get("whip").is_none());
        if o["asn"].is_object() {
            asn_matches += 1;
            assert_eq!(o["asn"]["datetime"], "2026-06-17T19:00:00Z");
        }
    }
    // Lines before the ASN snapshot's datetime have no ASN answer: complete-snapshot
    // semantics, not "latest".
    let before = out
        .iter()
        .filter(|o| o["timestamp"].as_str().unwrap() < "2026-06-17T19:00:00Z");
    assert!(before.clone().count() > 1000);
    assert!(before.into_iter().all(|o| o["asn"].is_null()));
    assert!(asn_matches > 100, "{asn_matches}");
    // Spot-check against lookup for the same (ip, time).
    let sample = out.iter().find(|o| o["asn"].is_object()).unwrap();
    let direct = ok(&[
        "lookup",
        "--db",
        s(&asn),
        "--at",
        sample["timestamp"].as_str().unwrap(),
        sample["ip"].as_str().unwrap(),
    ]);
    assert_eq!(
        serde_json::from_str::<Value>(direct.trim()).unwrap(),
        sample["asn"]
    );

    let err = fails(&["enrich", "--db", &geo_spec, "--db", &geo_spec]);
    assert!(err.contains("given twice"), "{err}");
}

#[test]
fn lines_without_time_use_at() {
    let db = geoip_store();
    let (out, _, _) = enrich(
        &[
            "enrich",
            "--db",
            s(db),
            "--at",
            "2026-06-01",
            "--format",
            "json",
        ],
        Some(b"{\"ip\":\"2001:200::1\"}\n"),
    );
    assert_eq!(out[0]["timestamp"], "2026-06-01T00:00:00Z");
    assert_eq!(out[0]["whip"]["datetime"], "2026-05-27T00:00:00Z");
    // Without --at, the time the line was read: now, so the newest snapshot.
    let (out, _, _) = enrich(
        &["enrich", "--db", s(db), "--format", "json"],
        Some(b"{\"ip\":\"2001:200::1\"}\n"),
    );
    assert_eq!(out[0]["whip"]["datetime"], "2026-09-26T01:56:00Z");
}

/// The shipped example data gives the reference answers for its 300 lines (its
/// snapshots keep every range that contains one of the log's clients).
#[test]
fn shipped_example_data_matches_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    ok(&[
        "load",
        "--db",
        s(&db),
        s(&manifest_dir().join("examples/data/snapshots")),
    ]);
    let log = manifest_dir().join("examples/data/access.log");
    let (out, dead, _) = enrich(&["enrich", "--db", s(&db), s(&log)], None);
    assert!(dead.is_empty());
    let expected = json_lines(
        &std::fs::read(shared_data().join("logs/accept-apache_logs.expected-3snapshots.jsonl"))
            .unwrap(),
    );
    assert_eq!(out.len(), 300);
    for (o, e) in out.iter().zip(&expected) {
        assert_eq!(
            (&o["ip"], &o["timestamp"], &o["whip"]),
            (&e["ip"], &e["t"], &e["record"])
        );
    }
}

/// Kafka flags without `--kafka-brokers`, and file-only flags with it, are
/// refused with the flag's name rather than silently ignored.
#[test]
fn flags_of_the_other_mode_are_refused() {
    let db = s(geoip_store());
    let kafka = [
        "--kafka-brokers",
        "127.0.0.1:1",
        "--input-topic",
        "raw",
        "--output-topic",
        "enriched",
        "--group-id",
        "g",
    ];
    for (extra, flag) in [
        (&["--output", "out.jsonl"][..], "--output"),
        (&["--dead-letter", "dead.jsonl"][..], "--dead-letter"),
        (&["--strict"][..], "--strict"),
        (&["--workers", "2"][..], "--workers"),
        (&["access.log"][..], "[FILE]"),
    ] {
        let mut args = vec!["enrich", "--db", db];
        args.extend(kafka);
        args.extend(extra);
        let err = fails(&args);
        assert!(
            err.contains("cannot be used with") && err.contains(flag),
            "{flag}: {err}"
        );
    }
    for (extra, flag) in [
        (&["--input-topic", "raw"][..], "--kafka-brokers"),
        (&["--group-id", "g"][..], "--kafka-brokers"),
        (&["--kafka-property", "acks=all"][..], "--kafka-brokers"),
        (&["--from", "end"][..], "--kafka-brokers"),
        (&["--time-source", "kafka"][..], "--kafka-brokers"),
    ] {
        let mut args = vec!["enrich", "--db", db];
        args.extend(extra);
        let err = fails(&args);
        assert!(err.contains(flag), "{extra:?}: {err}");
    }
}

/// A UTF-8 byte-order mark at the start of a log file (or of stdin) is not part of
/// the first line: that line is enriched like the others, in a file and on stdin,
/// in text and JSON formats.
#[test]
fn a_byte_order_mark_before_the_first_line_is_skipped() {
    let db = geoip_store();
    let dir = tempfile::tempdir().unwrap();
    let clf = b"\xef\xbb\xbf1.0.1.5 - - [02/Oct/2024:10:00:00 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"c\"\r\n\
                1.0.1.6 - - [02/Oct/2024:10:00:01 +0000] \"GET / HTTP/1.1\" 200 5 \"-\" \"c\"\n";
    let json = b"\xef\xbb\xbf{\"remote_addr\":\"1.0.1.5\",\"time_iso8601\":\"2024-10-02T10:00:00+00:00\"}\n";
    let file = dir.path().join("bom.log");
    std::fs::write(&file, clf).unwrap();
    for (args, stdin) in [
        (vec!["enrich", "--db", s(db), s(&file)], None),
        (vec!["enrich", "--db", s(db)], Some(&clf[..])),
        (vec!["enrich", "--db", s(db)], Some(&json[..])),
    ] {
        let (out, dead, stderr) = enrich(&args, stdin);
        assert!(dead.is_empty(), "{args:?}: {stderr}");
        assert_eq!(out[0]["ip"], "1.0.1.5", "{args:?}");
        assert_eq!(out[0]["timestamp"], "2024-10-02T10:00:00Z", "{args:?}");
        assert!(out[0]["whip"].is_object(), "{args:?}: {}", out[0]);
    }
}

/// Found by fuzzing: a time just longer than an error message's excerpt (81
/// to 83 bytes) panicked while the message was written, and the run then
/// wrote nothing. It is a dead letter like any bad time.
#[test]
fn a_time_just_over_the_excerpt_length_is_a_dead_letter() {
    let dir = tempfile::tempdir().unwrap();
    let dead_file = dir.path().join("dead.jsonl");
    let res = run(
        &[
            "enrich",
            "--db",
            s(geoip_store()),
            "--dead-letter",
            s(&dead_file),
            s(&logs("time-just-over-excerpt.log")),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let out = json_lines(&res.stdout);
    let dead = json_lines(&std::fs::read(&dead_file).unwrap());
    assert_eq!((out.len(), dead.len()), (1, 1), "{stderr}");
    assert_eq!(out[0]["path"], "/ok");
    assert!(
        dead[0]["reason"]
            .as_str()
            .unwrap()
            .contains("bad timestamp"),
        "{}",
        dead[0]
    );
}
