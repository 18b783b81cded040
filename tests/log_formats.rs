//! Every log format `--format auto` recognises, through the binary as users run
//! it: one fixture per format in tests/fixtures/log-formats (`NAME.log`, written
//! from that format's documentation: field order, quoting, escaping, header lines,
//! CRLF where the server writes it) with the expected address, event time and
//! typed common fields of every entry (`NAME.expected.jsonl`), read auto-detected
//! and by name; W3C headers across chunk boundaries; `--timezone`; and the
//! `whipstream formats` table that README.md shows.

mod common;

use std::path::PathBuf;

use common::*;
use serde_json::Value;

/// Fixture name and the `--format` that forces it.
const FIXTURES: &[(&str, &str)] = &[
    ("combined", "combined"),
    ("nginx-json", "json"),
    ("caddy", "json"),
    ("traefik", "json"),
    ("envoy-json", "json"),
    ("gcp-lb", "json"),
    ("cloudflare", "json"),
    ("ecs", "json"),
    ("istio", "envoy"),
    ("envoy", "envoy"),
    ("haproxy", "haproxy"),
    ("alb", "elb"),
    ("elb", "elb"),
    ("squid", "squid"),
    ("iis", "w3c"),
    ("cloudfront", "w3c"),
];

fn fixture_path(name: &str) -> PathBuf {
    fixture(&format!("log-formats/{name}.log"))
}

fn expected(name: &str) -> Vec<Value> {
    let text =
        std::fs::read_to_string(fixture(&format!("log-formats/{name}.expected.jsonl"))).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

struct Run {
    out: Vec<Value>,
    dead: Vec<String>,
    stderr: String,
}

fn enrich(args: &[&str], stdin: Option<&[u8]>) -> Run {
    let db = geoip_store();
    let mut all = vec!["enrich", "--db", s(db), "--no-line", "--no-progress"];
    all.extend_from_slice(args);
    let out = run(&all, stdin);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{all:?}: {stderr}");
    Run {
        out: String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect(),
        dead: stderr
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(String::from)
            .collect(),
        stderr,
    }
}

/// The output's address, time and common fields in the golden files' shape.
fn key_fields(o: &Value) -> Value {
    let mut k = serde_json::Map::new();
    for f in ["ip", "timestamp", "method", "path", "status", "bytes"] {
        k.insert(f.into(), o[f].clone());
    }
    Value::Object(k)
}

fn check(name: &str, run: &Run, want: &[Value]) {
    assert!(run.dead.is_empty(), "{name}: dead letters {:?}", run.dead);
    let got: Vec<Value> = run.out.iter().map(key_fields).collect();
    assert_eq!(got.len(), want.len(), "{name}: {:?}", run.out);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "{name}: entry {}", i + 1);
    }
}

#[test]
fn every_format_is_read_auto_detected_and_by_name() {
    for (name, format) in FIXTURES {
        let path = fixture_path(name);
        let want = expected(name);
        let directives = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|l| l.starts_with('#'))
            .count();
        for args in [vec![s(&path)], vec!["--format", format, s(&path)]] {
            let r = enrich(&args, None);
            check(name, &r, &want);
            let lines = want.len() + directives;
            let summary = format!("{lines} lines read, {} enriched", want.len());
            assert!(r.stderr.contains(&summary), "{name}: {}", r.stderr);
            if directives > 0 {
                assert!(
                    r.stderr.contains(&format!(", {directives} header lines")),
                    "{}",
                    r.stderr
                );
            }
        }
    }
}

#[test]
fn formats_mixed_in_one_stream_are_recognised_line_by_line() {
    // W3C logs are left out: their header applies to every later line.
    let mut text = String::new();
    let mut want = Vec::new();
    for (name, _) in FIXTURES.iter().filter(|(_, f)| *f != "w3c") {
        text.push_str(&std::fs::read_to_string(fixture_path(name)).unwrap());
        want.extend(expected(name));
    }
    check("mixed", &enrich(&[], Some(text.as_bytes())), &want);
}

#[test]
fn a_forced_format_refuses_other_formats_lines() {
    let r = run(
        &[
            "enrich",
            "--db",
            s(geoip_store()),
            "--format",
            "haproxy",
            s(&fixture_path("squid")),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(
        stderr.matches("does not match the haproxy format").count(),
        2,
        "{stderr}"
    );
}

#[test]
fn offset_less_times_follow_timezone() {
    let path = fixture_path("haproxy");
    let r = enrich(&["--timezone", "Europe/Berlin", s(&path)], None);
    let times: Vec<&str> = r
        .out
        .iter()
        .map(|o| o["timestamp"].as_str().unwrap())
        .collect();
    // February is CET (+01:00), October CEST (+02:00).
    assert_eq!(
        times,
        [
            "2009-02-06T11:14:14.655Z",
            "2024-10-02T08:00:00.001Z",
            "2024-10-02T08:00:02.5Z",
            "2024-10-02T08:00:03.999Z"
        ]
    );
    // Times with an offset are not moved.
    let r = enrich(
        &["--timezone", "Europe/Berlin", s(&fixture_path("elb"))],
        None,
    );
    check("elb", &r, &expected("elb"));
    let err = fails(&[
        "enrich",
        "--db",
        s(geoip_store()),
        "--timezone",
        "Mars/Olympus",
        "-",
    ]);
    assert!(err.contains("unknown time zone"), "{err}");
}

/// A W3C log of `n` entries whose `#Fields:` header changes column order every
/// `every` lines (as after a restart with another configuration), each entry's
/// address telling its number; returns the text and the addresses in order.
fn w3c_log(n: usize, every: usize) -> (String, Vec<String>) {
    let headers = [
        "#Fields: date time c-ip cs-method cs-uri-stem sc-status",
        "#Fields: date time cs-method cs-uri-stem sc-status s-ip c-ip",
        "#Fields: c-ip date time sc-status",
    ];
    let mut text = String::from("#Version: 1.0\r\n");
    let mut ips = Vec::new();
    for i in 0..n {
        let h = i / every % headers.len();
        if i % every == 0 {
            text.push_str(headers[h]);
            text.push_str("\r\n");
        }
        let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        let line = match h {
            0 => format!("2024-10-02 10:00:00 {ip} GET /{i} 200"),
            1 => format!("2024-10-02 10:00:00 GET /{i} 200 192.0.2.1 {ip}"),
            _ => format!("{ip} 2024-10-02 10:00:00 200"),
        };
        text.push_str(&line);
        text.push_str("\r\n");
        ips.push(ip);
    }
    (text, ips)
}

#[test]
fn w3c_headers_apply_exactly_to_the_lines_after_them_across_chunks() {
    // About 2.5 MB: several 1 MB chunks from a file, many more from a pipe, with
    // header changes inside and at chunk boundaries, parsed by several workers.
    let (text, ips) = w3c_log(60_000, 4_999);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u_ex241002.log");
    std::fs::write(&path, &text).unwrap();
    let headers = text.lines().filter(|l| l.starts_with('#')).count();
    for (args, stdin) in [
        (vec!["--workers", "2", s(&path)], None),
        (vec!["--workers", "2"], Some(text.as_bytes())),
        (vec!["--format", "w3c", "--workers", "3", s(&path)], None),
    ] {
        let r = enrich(&args, stdin);
        assert!(r.dead.is_empty(), "{:?}", &r.dead[..r.dead.len().min(3)]);
        let got: Vec<&str> = r.out.iter().map(|o| o["ip"].as_str().unwrap()).collect();
        assert_eq!(got.len(), ips.len());
        if let Some(i) = got.iter().zip(&ips).position(|(g, w)| g != w) {
            panic!("entry {i}: got {} want {} ({args:?})", got[i], ips[i]);
        }
        assert!(
            r.stderr.contains(&format!(", {headers} header lines")),
            "{}",
            r.stderr
        );
    }
    // A second file starts with no header: its header-less lines are not read
    // with the first file's columns.
    let second = dir.path().join("u_ex241003.log");
    std::fs::write(&second, "2024-10-03 10:00:00 10.0.0.1 GET / 200\n").unwrap();
    let out = run(
        &["enrich", "--db", s(geoip_store()), s(&path), s(&second)],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("u_ex241003.log:1"), "{stderr}");
}

#[test]
fn formats_command_lists_every_format_as_the_readme_shows() {
    let table = ok(&["formats"]);
    for name in [
        "w3c", "json", "envoy", "combined", "haproxy", "elb", "squid", "regex",
    ] {
        assert!(table.contains(&format!("| `{name}` |")), "{table}");
    }
    let readme = std::fs::read_to_string(manifest_dir().join("README.md")).unwrap();
    let start = readme
        .find("<!-- formats:begin -->\n")
        .expect("README formats table start")
        + 23;
    let end = readme
        .find("<!-- formats:end -->")
        .expect("README formats table end");
    assert_eq!(
        &readme[start..end],
        table,
        "README.md's table differs from `whipstream formats`: paste its output between the markers"
    );
}
