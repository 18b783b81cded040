//! `whipstream report` on small fixtures with hand-checked answers:
//! - `report/enriched-cities.jsonl`: Los Angeles, San Diego and Tijuana lie
//!   within 300 miles of each other, Chicago within 300 miles of none of them
//!   (about 2,800 km from Los Angeles);
//! - `report/moves/`: a log over two country snapshots, a third (newer)
//!   snapshot, and an ASN snapshot; what event time changed is worked out by
//!   hand in its README.md.

mod common;

use common::*;
use serde_json::Value;

fn report(dir: &std::path::Path, extra: &[&str]) -> Value {
    let mut args = vec!["report", "--no-progress", "-o", s(dir)];
    args.extend_from_slice(extra);
    let input = fixture("report/enriched-cities.jsonl");
    args.push(s(&input));
    ok(&args);
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

fn read_json(dir: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

/// Elements of `report.svg` with class `class`.
fn count_class(dir: &std::path::Path, class: &str) -> usize {
    let svg = std::fs::read_to_string(dir.join("report.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("report.svg parses");
    doc.descendants()
        .filter(|n| n.attribute("class") == Some(class))
        .count()
}

/// The moves fixture loaded (geo: three snapshots; asn: one) and its log
/// enriched with both, the way a user does it.
struct Moves {
    tmp: tempfile::TempDir,
    geo: String,
    asn: String,
    enriched: std::path::PathBuf,
}

fn moves(datasets: &[&str]) -> Moves {
    let tmp = tempfile::tempdir().unwrap();
    let f = |n: &str| fixture(&format!("report/moves/{n}"));
    let geo = tmp.path().join("geo");
    let asn = tmp.path().join("asn");
    ok(&[
        "load",
        "--db",
        s(&geo),
        s(&f("geo-2024-01-01.jsonl")),
        s(&f("geo-2024-02-01.jsonl")),
        s(&f("geo-2024-03-01.jsonl")),
    ]);
    ok(&["load", "--db", s(&asn), s(&f("asn-2024-01-01.jsonl"))]);
    let geo = format!("geo={}", s(&geo));
    let asn = format!("asn={}", s(&asn));
    let mut args = vec!["enrich", "--no-progress"];
    for d in datasets {
        args.extend(["--db", if *d == "geo" { &geo } else { &asn }]);
    }
    let log = f("access.log");
    args.push(s(&log));
    let enriched = tmp.path().join("enriched.jsonl");
    std::fs::write(&enriched, ok(&args)).unwrap();
    Moves {
        tmp,
        geo,
        asn,
        enriched,
    }
}

/// Runs `report` on the moves fixture; returns report.json and stderr.
fn report_moves(m: &Moves, extra: &[&str]) -> (Value, String) {
    let out_dir = m.tmp.path().join("report");
    let mut args = vec!["report", "--no-progress", "-o", s(&out_dir)];
    args.extend_from_slice(extra);
    args.push(s(&m.enriched));
    let out = run(&args, None);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (read_json(&out_dir), stderr)
}

fn cluster_labels(j: &Value) -> Vec<Vec<String>> {
    j["clusters"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let mut m: Vec<String> = g["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["label"].as_str().unwrap().to_string())
                .collect();
            m.sort();
            m
        })
        .collect()
}

#[test]
fn clusters_counts_and_files() {
    let tmp = tempfile::tempdir().unwrap();
    // 300 miles.
    let j = report(tmp.path(), &["--within", "482.8"]);
    assert_eq!(j["dataset"], "geo");
    assert_eq!(
        (
            j["lines"].as_u64(),
            j["matched"].as_u64(),
            j["unmatched"].as_u64()
        ),
        (Some(19), Some(17), Some(2))
    );
    assert_eq!(j["clusters"]["method"], "maximal cliques");
    assert_eq!(
        cluster_labels(&j),
        vec![vec!["Los Angeles, US", "San Diego, US", "Tijuana, MX"]]
    );
    // 100 km: San Diego and Tijuana only (about 25 km apart; LA is ~180 km away).
    let j = report(tmp.path(), &["--within", "100"]);
    assert_eq!(
        cluster_labels(&j),
        vec![vec!["San Diego, US", "Tijuana, MX"]]
    );
    // Top location and country counts; the country-only records sit in France.
    assert_eq!(j["top_locations"][0]["label"], "Los Angeles, US");
    assert_eq!(j["top_locations"][0]["requests"], 5);
    assert_eq!(j["top_locations"][0]["clients"], 2);
    assert_eq!(j["top_countries"][0]["key"], "US");
    assert_eq!(j["top_countries"][0]["requests"], 12);
    let france = j["top_locations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["country_level"] == true)
        .unwrap();
    assert_eq!(france["requests"], 3);
    assert!(
        (42.0..51.5).contains(&france["lat"].as_f64().unwrap()),
        "{france}"
    );
    assert_eq!(j["requests_per_day"].as_array().unwrap().len(), 2);

    // The SVG is well-formed XML with one marker per location (4 cities + France).
    let svg = std::fs::read_to_string(tmp.path().join("report.svg")).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("report.svg parses");
    let markers = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("marker"))
        .count();
    assert_eq!(markers, 5);
    // The HTML embeds the same SVG and needs nothing from the network.
    let html = std::fs::read_to_string(tmp.path().join("report.html")).unwrap();
    assert!(
        html.contains(svg.trim_end()),
        "the HTML does not embed report.svg"
    );
    for external in ["https://", "<script src", "<link", "<img src=\"http"] {
        assert!(!html.contains(external), "external resource: {external}");
    }
}

/// Headless Chromium with `action` (`--screenshot=..`, `--dump-dom`) on `url`;
/// `None` when Chromium is not installed (and not required).
fn chromium(dir: &std::path::Path, action: &str, url: &str) -> Option<std::process::Output> {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(chromium) = chromium else {
        // scripts/test.sh installs it; a bare `cargo test` elsewhere may not have it.
        assert!(
            std::env::var("WHIPSTREAM_REQUIRE_CHROMIUM").is_err(),
            "chromium is required (WHIPSTREAM_REQUIRE_CHROMIUM) but not installed"
        );
        eprintln!("skipped: no chromium");
        return None;
    };
    let profile = dir.join("profile");
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1100,1400",
            &format!("--user-data-dir={}", profile.display()),
            action,
            url,
        ])
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    Some(out)
}

/// The HTML renders in headless Chromium: the screenshot is not blank, the
/// map's markers and the timeline's bars are in the rendered page, and the
/// time-window script runs (`#window=0-0`: only the first hour's locations).
#[test]
fn renders_in_headless_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    report(tmp.path(), &["--within", "482.8"]);
    let url = format!("file://{}", tmp.path().join("report.html").display());
    let png = tmp.path().join("shot.png");
    if chromium(tmp.path(), &format!("--screenshot={}", png.display()), &url).is_none() {
        return;
    }
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let pixels = &buf[..info.buffer_size()];
    let distinct: std::collections::HashSet<&[u8]> =
        pixels.chunks(info.color_type.samples()).collect();
    assert!(
        distinct.len() > 20,
        "screenshot looks blank: {} colours",
        distinct.len()
    );
    // The DOM after the script ran, filtered to the first bucket (2024-03-01
    // 10:00): Los Angeles, San Diego, Tijuana and Chicago had requests then,
    // France (country-level, 2024-03-02 11:00) did not.
    let Some(out) = chromium(tmp.path(), "--dump-dom", &format!("{url}#window=0-0")) else {
        return;
    };
    let dom = String::from_utf8_lossy(&out.stdout);
    // Chromium's DOM dump is HTML, not XML: count by text.
    let markers = dom.matches("class=\"marker\"").count();
    let timeline = dom.matches("class=\"timeline\"").count();
    assert_eq!(markers, 5, "markers in the rendered page");
    // 25 hourly buckets: a bar and a point each, plus the small multiples' bars.
    assert!(
        timeline >= 50,
        "timeline elements in the rendered page: {timeline}"
    );
    assert!(
        dom.contains("data-window=\"0-0\""),
        "the window script did not run"
    );
    assert_eq!(dom.matches("display: none").count(), 1, "hidden markers");
}

/// Standard input is the default input; a line that is not enriched JSON is
/// counted, not fatal.
#[test]
fn reads_stdin() {
    let tmp = tempfile::tempdir().unwrap();
    let mut input = std::fs::read(fixture("report/enriched-cities.jsonl")).unwrap();
    input.extend_from_slice(b"not json\n");
    let out = run(
        &["report", "--no-progress", "-o", s(tmp.path())],
        Some(&input),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(j["lines"], 20);
    assert_eq!(j["unreadable"], 1);
    assert_eq!(j["matched"], 17);
}

/// What event time changed, on the moves fixture (worked out by hand in
/// tests/fixtures/report/moves/README.md): the latest data would place 6 of 12
/// requests (3 of 6 clients) elsewhere and has no match for 1 more; one client
/// moved while the log ran.
#[test]
fn latest_differs_and_moved_clients_counted_by_hand() {
    let m = moves(&["asn", "geo"]);
    let (j, stderr) = report_moves(&m, &["--db", &m.geo, "--db", &m.asn]);
    let l = &j["latest_differs"];
    assert_eq!(
        (
            l["requests"].as_u64(),
            l["clients"].as_u64(),
            l["compared_requests"].as_u64(),
            l["compared_clients"].as_u64()
        ),
        (Some(6), Some(3), Some(12), Some(6)),
        "{l}"
    );
    assert!((l["share"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    assert_eq!(
        l["only_then"],
        serde_json::json!({"requests": 1, "clients": 1})
    );
    assert_eq!(
        l["only_latest"],
        serde_json::json!({"requests": 0, "clients": 0})
    );
    assert_eq!(l["snapshot"], "2024-03-01T00:00:00Z");
    let moves: Vec<(String, String, String, u64, u64)> = l["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["kind"].as_str().unwrap().to_string(),
                m["from"].as_str().unwrap().to_string(),
                m["to"].as_str().unwrap().to_string(),
                m["requests"].as_u64().unwrap(),
                m["clients"].as_u64().unwrap(),
            )
        })
        .collect();
    let mv = |k: &str, f: &str, t: &str, r, c| (k.into(), f.into(), t.into(), r, c);
    assert_eq!(
        moves,
        vec![
            mv("country", "FR", "IT", 3, 1),
            mv("country", "US", "CA", 3, 2),
        ]
    );
    assert_eq!(
        j["moved_clients"],
        serde_json::json!([{
            "ip": "10.0.1.1", "kind": "country", "from": "US", "to": "CA",
            "snapshot": "2024-02-01T00:00:00Z",
            "last_before": "2024-01-20T11:00:00Z",
            "first_after": "2024-02-10T09:00:00Z",
            "requests": 3
        }])
    );
    assert!(
        stderr.contains("6 requests (50.00 %) placed elsewhere"),
        "{stderr}"
    );
    // 2024-01-15 to 2024-02-15 (31 days) in days.
    assert_eq!(j["timeline_step"], "day");
    let timeline = j["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 32);
    assert_eq!(timeline[0]["start"], "2024-01-15T00:00:00Z");
    assert_eq!(timeline[0]["requests"], 1);
    let total: u64 = timeline
        .iter()
        .map(|b| b["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 12);
    // One bar and one point per day, plus the per-country bars on days with requests.
    let out_dir = m.tmp.path().join("report");
    assert_eq!(count_class(&out_dir, "timeline"), 2 * 32 + 11);
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("<strong>6 of 12 requests (50.00 %)</strong>"));
    assert!(html.contains("<td>10.0.1.1</td><td>country</td><td>US</td><td>CA</td>"));
}

/// With geo and ASN output, the map comes from geo and the networks from asn,
/// whatever their names' order; `--data-set` overrides the map's.
#[test]
fn data_sets_found_by_their_fields() {
    let m = moves(&["asn", "geo"]);
    let (j, _) = report_moves(&m, &[]);
    assert_eq!(j["dataset"], "geo");
    assert_eq!(j["networks_from"], "asn");
    assert_eq!(
        j["top_networks"][0],
        serde_json::json!({"key": "AS64500 Example Net A", "requests": 10, "clients": 4})
    );
    assert_eq!(j["top_countries"][0]["key"], "DE");
    assert_eq!(
        (j["matched"].as_u64(), j["unmatched"].as_u64()),
        (Some(11), Some(1))
    );
    // US, CA, FR, DE, JP at their country points.
    assert_eq!(count_class(&m.tmp.path().join("report"), "marker"), 5);
    assert!(
        j.get("latest_differs").is_none(),
        "latest_differs needs --db"
    );
    assert_eq!(j["moved_clients"].as_array().unwrap().len(), 1);

    let (j, _) = report_moves(&m, &["--data-set", "asn"]);
    assert_eq!(j["dataset"], "asn");
    let err = fails(&[
        "report",
        "--no-progress",
        "-o",
        s(m.tmp.path()),
        "--data-set",
        "city",
        s(&m.enriched),
    ]);
    assert!(
        err.contains("--data-set city: the input has no data set \"city\" (it has: asn, geo)"),
        "{err}"
    );
    let err = fails(&[
        "report",
        "--no-progress",
        "-o",
        s(m.tmp.path()),
        "--db",
        &m.geo.replace("geo=", "city="),
        s(&m.enriched),
    ]);
    assert!(
        err.contains("--db city: the input has no data set \"city\""),
        "{err}"
    );
}

/// Without any data set with locations the report says so, and still counts.
#[test]
fn no_locations_is_said_clearly() {
    let m = moves(&["asn"]);
    let (j, stderr) = report_moves(&m, &[]);
    let note =
        "no data set in the input has locations (coordinates or country codes); data sets: asn";
    assert!(stderr.contains(note), "{stderr}");
    assert_eq!(j["notes"][0], note);
    assert_eq!(j["dataset"], Value::Null);
    assert_eq!(j["networks_from"], "asn");
    assert_eq!(count_class(&m.tmp.path().join("report"), "marker"), 0);
    let html = std::fs::read_to_string(m.tmp.path().join("report/report.html")).unwrap();
    assert!(html.contains("No data set in the input has locations"));
}
