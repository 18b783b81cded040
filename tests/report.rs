//! `whipstream report` on a small enriched fixture with hand-checked geography:
//! Los Angeles, San Diego and Tijuana lie within 300 miles of each other,
//! Chicago within 300 miles of none of them (about 2,800 km from Los Angeles).

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

/// The HTML renders in headless Chromium, and the screenshot is not blank.
#[test]
fn renders_in_headless_chromium() {
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
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    report(tmp.path(), &["--within", "482.8"]);
    let png = tmp.path().join("shot.png");
    let profile = tmp.path().join("profile");
    let status = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1100,800",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--screenshot={}", png.display()),
            &format!("file://{}", tmp.path().join("report.html").display()),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
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
