//! Output schemas through the real binary: golden files of the shared
//! acceptance log with the shared geo and ASN data sets in the whipstream and
//! ECS schemas (whole records and chosen fields), ECS conformance of every
//! field the ECS output can contain against the ECS field reference
//! (tests/fixtures/ecs/fields-subset.csv), actual ECS lines checked against
//! that list, the data set shapes ECS mapping recognises, and typed values.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use common::*;
use serde_json::Value;
use whipstream::index::image::Check;
use whipstream::logline::ParserConfig;
use whipstream::output_fields::{FieldSpec, ValueType};
use whipstream::schema::{self, OutputSchema, Schema};

/// A store of the shared ASN snapshot, loaded once per test binary.
fn asn_store() -> &'static Path {
    static STORE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = STORE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        ok(&[
            "load",
            "--db",
            s(&dir.path().join("db")),
            s(&shared_data().join("snapshots/asn")),
        ]);
        dir
    });
    Box::leak(dir.path().join("db").into_boxed_path())
}

/// A store of one fixture snapshot of tests/fixtures/schema.
fn fixture_store(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    let db = dir.path().join(name);
    ok(&[
        "load",
        "--db",
        s(&db),
        s(&fixture(&format!("schema/{name}.jsonl"))),
    ]);
    db
}

fn accept_log() -> PathBuf {
    shared_data().join("logs/accept-apache_logs.log")
}

/// Lines 1-80 of the acceptance log and its truncated line (8899).
fn golden_input(dir: &Path) -> PathBuf {
    let text = read_text(&accept_log());
    let lines: Vec<&str> = text.lines().collect();
    let mut picked: Vec<&str> = lines[..80].to_vec();
    picked.push(lines[8898]);
    let path = dir.join("golden-input.log");
    std::fs::write(&path, picked.join("\n") + "\n").unwrap();
    path
}

fn enrich_geo_asn(input: &Path, extra: &[&str]) -> String {
    let geo = format!("geo={}", s(geoip_store()));
    let asn = format!("asn={}", s(asn_store()));
    let mut args = vec!["enrich", "--db", &geo, "--db", &asn];
    args.extend_from_slice(extra);
    args.push(s(input));
    ok(&args)
}

/// Compares with a golden file, or writes it with `WHIPSTREAM_BLESS=1`.
fn golden(name: &str, got: &str) {
    let path = fixture(&format!("schema/{name}"));
    if std::env::var_os("WHIPSTREAM_BLESS").is_some() {
        std::fs::write(&path, got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (WHIPSTREAM_BLESS=1 writes it)", path.display()));
    for (n, (g, w)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(g, w, "{name} line {}", n + 1);
    }
    assert_eq!(
        got.lines().count(),
        want.lines().count(),
        "{name}: line count"
    );
}

fn every_line_is_json(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn golden_outputs_of_the_acceptance_log_in_each_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let input = golden_input(tmp.path());
    let cases: [(&str, &[&str]); 4] = [
        ("accept.whipstream.jsonl", &[]),
        ("accept.ecs.jsonl", &["--schema", "ecs"]),
        (
            "accept.whipstream-fields.jsonl",
            &[
                "--no-line",
                "--fields",
                "geo=cc:country,datetime",
                "--fields",
                "asn=asn,org:as_org,begin,end",
            ],
        ),
        (
            "accept.ecs-fields.jsonl",
            &[
                "--schema",
                "ecs",
                "--no-line",
                "--fields",
                "geo=country,datetime",
                "--fields",
                "asn=asn",
            ],
        ),
    ];
    for (name, args) in cases {
        // The ASN data set has one snapshot, newer than most lines: answer
        // those from it so that the goldens show source.as.
        let args: Vec<&str> = ["--before-first", "earliest"]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        let out = enrich_geo_asn(&input, &args);
        assert_eq!(every_line_is_json(&out).len(), 81, "{name}");
        golden(name, &out);
    }
}

/// The ECS field reference subset: field name -> ECS type.
fn ecs_reference() -> HashMap<String, String> {
    let text = std::fs::read_to_string(fixture("ecs/fields-subset.csv")).unwrap();
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (field, ty) = (col("Field"), col("Type"));
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[field].to_string(), r[ty].to_string())
        })
        .collect()
}

/// The value types an ECS type is written as.
fn ecs_type(ty: &str) -> Option<ValueType> {
    Some(match ty {
        // url.original and url.path are `wildcard`, of the keyword family.
        "keyword" | "wildcard" | "constant_keyword" => ValueType::Keyword,
        "long" | "integer" | "unsigned_long" => ValueType::Long,
        "double" | "float" | "scaled_float" => ValueType::Double,
        "date" => ValueType::Date,
        "ip" => ValueType::Ip,
        "geo_point" => ValueType::GeoPoint,
        "boolean" => ValueType::Boolean,
        _ => return None,
    })
}

fn open_index(store: &Path) -> Arc<whipstream::index::Index> {
    Arc::new(whipstream::index_file::open(store, Check::Full).expect("open index"))
}

/// The ECS field list of a flow with the given data sets.
fn ecs_specs(datasets: &[(&str, &Path)], include_line: bool) -> Vec<FieldSpec> {
    let indexes: Vec<(&str, Arc<whipstream::index::Index>)> =
        datasets.iter().map(|(n, p)| (*n, open_index(p))).collect();
    let output = OutputSchema {
        schema: Schema::Ecs,
        ..OutputSchema::default()
    };
    schema::field_specs(&output, &ParserConfig::default(), include_line, &indexes)
}

#[test]
fn every_field_the_ecs_output_can_contain_is_in_the_ecs_reference_with_its_type() {
    let reference = ecs_reference();
    let tmp = tempfile::tempdir().unwrap();
    let city = fixture_store(&tmp, "maxmind-city");
    let asn = fixture_store(&tmp, "maxmind-asn");
    let ild = fixture_store(&tmp, "ip-location-db-city");
    let ipinfo = fixture_store(&tmp, "ipinfo-lite");
    let flows: [&[(&str, &Path)]; 4] = [
        &[("geo", geoip_store()), ("asn", asn_store())],
        &[("city", &city), ("asn", &asn)],
        &[("geo", &ild)],
        &[("ipinfo", &ipinfo)],
    ];
    let mut checked = 0;
    for flow in flows {
        for spec in ecs_specs(flow, true) {
            if spec.path.starts_with("whipstream.") {
                // whipstream's own field set: not an ECS name.
                assert!(
                    !reference.keys().any(|k| k.starts_with("whipstream.")),
                    "{}",
                    spec.path
                );
                continue;
            }
            let ty = reference
                .get(&spec.path)
                .unwrap_or_else(|| panic!("{} is not in the ECS reference", spec.path));
            assert_eq!(
                ecs_type(ty),
                Some(spec.ty),
                "{}: ECS type {ty}, whipstream writes {:?}",
                spec.path,
                spec.ty
            );
            checked += 1;
        }
    }
    // The city flow alone maps every geo field: all were checked.
    let city_specs = ecs_specs(&[("city", &city), ("asn", &asn)], true);
    for f in [
        "source.geo.country_iso_code",
        "source.geo.country_name",
        "source.geo.region_name",
        "source.geo.city_name",
        "source.geo.postal_code",
        "source.geo.timezone",
        "source.geo.location",
        "source.as.number",
        "source.as.organization.name",
        "event.original",
    ] {
        assert!(city_specs.iter().any(|s| s.path == f), "{f} missing");
    }
    assert!(checked > 60, "{checked}");
}

/// Checks one line against the field list: every leaf is a listed field with
/// a value of its type; null only where `null_ok` says (ECS: inside
/// `whipstream.*`; the whipstream schema writes nulls for absent values).
fn check_line(v: &Value, specs: &HashMap<&str, ValueType>, null_ok: fn(&str) -> bool, line: usize) {
    fn walk(
        prefix: &str,
        v: &Value,
        specs: &HashMap<&str, ValueType>,
        null_ok: fn(&str) -> bool,
        line: usize,
    ) {
        let ty = specs.get(prefix).copied();
        let ok = match (ty, v) {
            (_, Value::Null) => null_ok(prefix),
            (Some(ValueType::Object), _) => true,
            (Some(ValueType::Keyword), Value::String(_)) => true,
            (Some(ValueType::Keyword), Value::Array(a)) => {
                a.iter().all(|x| x.is_string() || x.is_null())
            }
            (Some(ValueType::Long), Value::Number(n)) => n.is_u64() || n.is_i64(),
            (Some(ValueType::Double), Value::Number(_)) => true,
            (Some(ValueType::Boolean), Value::Bool(_)) => true,
            (Some(ValueType::Ip), Value::String(s)) => s.parse::<std::net::IpAddr>().is_ok(),
            (Some(ValueType::Date), Value::String(s)) => {
                s.ends_with('Z') && whipstream::time::Timestamp::parse(s).is_ok()
            }
            (Some(ValueType::GeoPoint), Value::Object(o)) => {
                o.len() == 2 && o["lat"].is_number() && o["lon"].is_number()
            }
            (None, Value::Object(o)) => {
                for (k, x) in o {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&path, x, specs, null_ok, line);
                }
                true
            }
            _ => false,
        };
        assert!(ok, "line {line}: {prefix} = {v} is not a listed {ty:?}");
    }
    walk("", v, specs, null_ok, line);
}

#[test]
fn ecs_lines_of_the_whole_acceptance_log_hold_only_listed_fields_of_their_types() {
    let specs_list = ecs_specs(&[("geo", geoip_store()), ("asn", asn_store())], true);
    let specs: HashMap<&str, ValueType> =
        specs_list.iter().map(|s| (s.path.as_str(), s.ty)).collect();
    let out = enrich_geo_asn(&accept_log(), &["--schema", "ecs"]);
    let lines = every_line_is_json(&out);
    let expected =
        read_text(&shared_data().join("logs/accept-apache_logs.expected-3snapshots.jsonl"));
    let expected: Vec<Value> = every_line_is_json(&expected);
    assert_eq!(lines.len(), expected.len());
    let mut matched = 0;
    for (i, (v, want)) in lines.iter().zip(&expected).enumerate() {
        check_line(v, &specs, |p| p.starts_with("whipstream."), i + 1);
        // The ECS answer is the reference's: country, range and snapshot.
        assert_eq!(v["source"]["ip"], want["ip"], "line {}", i + 1);
        assert_eq!(v["@timestamp"], want["t"], "line {}", i + 1);
        let record = &want["record"];
        if record.is_null() {
            assert!(v["source"].get("geo").is_none(), "line {}", i + 1);
            assert!(v["whipstream"]["geo"].is_null(), "line {}", i + 1);
            continue;
        }
        matched += 1;
        assert_eq!(
            v["source"]["geo"]["country_iso_code"],
            record["country"],
            "line {}",
            i + 1
        );
        let prov = &v["whipstream"]["geo"];
        assert_eq!(prov["begin"], record["begin"], "line {}", i + 1);
        assert_eq!(prov["end"], record["end"], "line {}", i + 1);
        let dt = |x: &Value| whipstream::time::Timestamp::parse(x.as_str().unwrap()).unwrap();
        assert_eq!(
            dt(&prov["datetime"]),
            dt(&record["datetime"]),
            "line {}",
            i + 1
        );
        // The ASN data set fills source.as.
        if let Some(asn) = v["source"].get("as") {
            assert!(asn["number"].is_u64(), "line {}", i + 1);
        }
    }
    assert!(matched > 5000, "{matched}");
}

#[test]
fn recognised_shapes_fill_source_geo_and_source_as_and_unknown_ones_stay_under_whipstream() {
    let tmp = tempfile::tempdir().unwrap();
    let stores: Vec<(&str, PathBuf)> = [
        "maxmind-city",
        "maxmind-asn",
        "ip-location-db-city",
        "ipinfo-lite",
        "abuse-list",
    ]
    .iter()
    .map(|n| (*n, fixture_store(&tmp, n)))
    .collect();
    let store = |n: &str| stores.iter().find(|(m, _)| *m == n).unwrap().1.clone();
    let line = "1.0.1.7 - - [02/Oct/2024:10:00:00 +0000] \"GET /a?b=1 HTTP/1.1\" 200 12 \"-\" \"curl/8\"\n";
    let run = |dbs: &[(&str, &str)]| -> (Value, String) {
        let specs: Vec<String> = dbs
            .iter()
            .map(|(name, fixture)| format!("{name}={}", s(&store(fixture))))
            .collect();
        let mut args = vec!["enrich", "--schema", "ecs", "--no-line"];
        for spec in &specs {
            args.push("--db");
            args.push(spec);
        }
        let out = run(&args, Some(line.as_bytes()));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        (
            serde_json::from_str(text.trim()).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (v, _) = run(&[("city", "maxmind-city"), ("asn", "maxmind-asn")]);
    let geo = &v["source"]["geo"];
    assert_eq!(geo["country_iso_code"], "CN");
    assert_eq!(geo["country_name"], "China");
    assert_eq!(geo["region_name"], "Beijing");
    assert_eq!(geo["region_iso_code"], "BJ");
    assert_eq!(geo["city_name"], "Beijing");
    assert_eq!(geo["postal_code"], "100000");
    assert_eq!(geo["timezone"], "Asia/Shanghai");
    assert_eq!(geo["continent_code"], "AS");
    assert_eq!(
        geo["location"],
        serde_json::json!({"lat": 39.9075, "lon": 116.3972})
    );
    assert_eq!(v["source"]["as"]["number"], 13335);
    assert_eq!(
        v["source"]["as"]["organization"]["name"],
        "Cloudflare, Inc."
    );
    // What has no ECS name stays, nested as loaded, without the mapped leaves.
    let rest = &v["whipstream"]["city"];
    assert_eq!(rest["city"]["names"]["de"], "Peking");
    assert_eq!(rest["location"]["accuracy_radius"], 50);
    assert!(rest["country"].get("iso_code").is_none());
    assert_eq!(rest["datetime"], "2024-06-01T00:00:00Z");

    // ip-location-db: coordinates written as text become numbers.
    let (v, _) = run(&[("geo", "ip-location-db-city")]);
    let geo = &v["source"]["geo"];
    assert_eq!(geo["city_name"], "Fuzhou");
    assert_eq!(geo["region_name"], "Fujian");
    assert_eq!(
        geo["location"],
        serde_json::json!({"lat": 26.0614, "lon": 119.3061})
    );
    assert_eq!(v["whipstream"]["geo"]["state2"], "");

    // IPinfo: "AS13335" is the number 13335; the country name is the name.
    let (v, _) = run(&[("ipinfo", "ipinfo-lite")]);
    assert_eq!(v["source"]["as"]["number"], 13335);
    assert_eq!(
        v["source"]["as"]["organization"]["name"],
        "Cloudflare, Inc."
    );
    assert_eq!(v["source"]["geo"]["country_iso_code"], "AU");
    assert_eq!(v["source"]["geo"]["country_name"], "Australia");

    // Two geo data sets: the first fills source.geo, the second keeps its
    // fields under whipstream.<name>; no key is written twice.
    let (v, _) = run(&[("city", "maxmind-city"), ("ild", "ip-location-db-city")]);
    assert_eq!(v["source"]["geo"]["city_name"], "Beijing");
    assert_eq!(v["whipstream"]["ild"]["city"], "Fuzhou");

    // An unknown shape: under whipstream.<name>, said once in the log.
    let (v, stderr) = run(&[("abuse", "abuse-list")]);
    assert!(v["source"].get("geo").is_none());
    assert_eq!(v["whipstream"]["abuse"]["list"], "drop");
    assert_eq!(v["whipstream"]["abuse"]["score"], 7);
    assert_eq!(
        stderr
            .matches("no ECS field recognised in data set \"abuse\"")
            .count(),
        1,
        "{stderr}"
    );
}

#[test]
fn a_configured_mapping_replaces_the_recognised_one() {
    let tmp = tempfile::tempdir().unwrap();
    let abuse = fixture_store(&tmp, "abuse-list");
    let db = format!("abuse={}", s(&abuse));
    let line = "1.0.1.7 - - [02/Oct/2024:10:00:00 +0000] \"GET / HTTP/1.1\" 200 12 \"-\" \"-\"\n";
    let out = run(
        &[
            "enrich",
            "--schema",
            "ecs",
            "--db",
            &db,
            "--ecs",
            "abuse=as.organization.name:list",
        ],
        Some(line.as_bytes()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["source"]["as"]["organization"]["name"], "drop");
    assert!(v["whipstream"]["abuse"].get("list").is_none());
    // The same in the config file's [dataset.ecs].
    let config = tmp.path().join("flow.toml");
    std::fs::write(
        &config,
        format!(
            "[[dataset]]\nname = \"abuse\"\nstore = {:?}\n[dataset.ecs]\n\"as.organization.name\" = \"list\"\n\n[output]\nschema = \"ecs\"\n",
            s(&abuse)
        ),
    )
    .unwrap();
    let input = tmp.path().join("in.log");
    std::fs::write(&input, line).unwrap();
    let out_file = tmp.path().join("out.jsonl");
    ok(&[
        "run",
        "--config",
        s(&config),
        s(&input),
        "--output",
        s(&out_file),
    ]);
    let v: Value =
        serde_json::from_str(std::fs::read_to_string(&out_file).unwrap().trim()).unwrap();
    assert_eq!(v["source"]["as"]["organization"]["name"], "drop");
    // Errors name the flag and what is wrong.
    let err = fails(&["enrich", "--db", &db, "--ecs", "abuse=geo.colour:list"]);
    assert!(
        err.contains("--ecs") && err.contains("not an ECS field"),
        "{err}"
    );
    let err = fails(&["enrich", "--db", &db, "--ecs", "geo=geo.city_name:x"]);
    assert!(err.contains("no data set \"geo\""), "{err}");
}

#[test]
fn json_log_values_are_typed_in_every_schema() {
    let db = format!("geo={}", s(geoip_store()));
    let line = r#"{"remote_addr":"[2001:200::1]:51000","time_local":"02/Oct/2024:10:00:00.250 +0200","request":"GET /x?q=1 HTTP/2.0","status":"404","body_bytes_sent":"17","request_time":"0.5"}"#;
    for schema in ["whipstream", "ecs"] {
        let out = run(
            &["enrich", "--schema", schema, "--db", &db],
            Some(format!("{line}\n").as_bytes()),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let (status, bytes, t) = if schema == "ecs" {
            assert_eq!(v["source"]["port"], 51000);
            assert_eq!(v["http"]["version"], "2.0");
            assert_eq!(v["url"]["query"], "q=1");
            assert_eq!(v["event"]["module"], "json");
            (
                &v["http"]["response"]["status_code"],
                &v["http"]["response"]["body"]["bytes"],
                &v["@timestamp"],
            )
        } else {
            (&v["status"], &v["bytes"], &v["timestamp"])
        };
        assert_eq!(*status, 404, "{schema}");
        assert_eq!(*bytes, 17, "{schema}");
        assert!(t.as_str().unwrap().ends_with('Z'), "{schema}: {t}");
        assert_eq!(
            whipstream::time::Timestamp::parse(t.as_str().unwrap()).unwrap(),
            whipstream::time::Timestamp::parse("2024-10-02T08:00:00.25Z").unwrap(),
            "{schema}"
        );
    }
}

#[test]
fn chosen_fields_missing_from_a_record_are_null_and_bad_specs_are_refused() {
    let db = format!("geo={}", s(geoip_store()));
    let line = "1.0.1.7 - - [02/Oct/2024:10:00:00 +0000] \"GET / HTTP/1.1\" 200 12 \"-\" \"-\"\n";
    let out = run(
        &[
            "enrich",
            "--db",
            &db,
            "--no-line",
            "--fields",
            "geo=cc:country,city",
        ],
        Some(line.as_bytes()),
    );
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["geo"], serde_json::json!({"cc": "CN", "city": null}));
    for (spec, says) in [
        ("geo=", "empty field name"),
        ("country", "expected NAME=FIELD"),
        ("geo=a:x,a:y", "given twice"),
        ("asn=asn", "no data set \"asn\""),
    ] {
        let err = fails(&["enrich", "--db", &db, "--fields", spec]);
        assert!(
            err.contains("--fields") && err.contains(says),
            "{spec}: {err}"
        );
    }
    let err = fails(&["enrich", "--db", &db, "--schema", "elastic"]);
    assert!(
        err.contains("--schema") && err.contains("whipstream, ecs"),
        "{err}"
    );
}

#[test]
fn dead_letters_and_time_source_keep_working_in_ecs() {
    let db = format!("geo={}", s(geoip_store()));
    let input = "not a log line\n{\"remote_addr\":\"1.0.1.7\"}\n";
    let out = run(
        &["enrich", "--schema", "ecs", "--db", &db, "--no-line"],
        Some(input.as_bytes()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines = every_line_is_json(&stdout);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["whipstream"]["time_source"], "read");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("\"reason\""), "{stderr}");
}

#[test]
fn whipstream_lines_hold_only_listed_fields_of_their_types() {
    let datasets = [("geo", geoip_store()), ("asn", asn_store())];
    let indexes: Vec<(&str, Arc<whipstream::index::Index>)> =
        datasets.iter().map(|(n, p)| (*n, open_index(p))).collect();
    let specs_list = schema::field_specs(
        &OutputSchema::default(),
        &ParserConfig::default(),
        true,
        &indexes,
    );
    let specs: HashMap<&str, ValueType> =
        specs_list.iter().map(|s| (s.path.as_str(), s.ty)).collect();
    assert_eq!(specs.get("asn.asn"), Some(&ValueType::Long));
    assert_eq!(specs.get("geo.country"), Some(&ValueType::Keyword));
    assert_eq!(specs.get("geo.datetime"), Some(&ValueType::Date));
    let out = enrich_geo_asn(&accept_log(), &["--before-first", "earliest"]);
    for (i, v) in every_line_is_json(&out).iter().enumerate() {
        check_line(v, &specs, |_| true, i + 1);
    }
}

/// A MaxMind DB data set (the small fixture: `country` codes, `asn`, a nested
/// `names` record, a `tags` array) in the ECS schema: recognised fields in
/// their ECS places, the rest under `whipstream.<name>`; the same flow as
/// Parquet writes every line as a row (its columns come from the same list).
#[test]
fn an_mmdb_data_set_fills_ecs_fields_as_json_and_as_parquet_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("mm");
    ok(&["load", "--db", s(&db), s(&fixture("mmdb/small.mmdb"))]);
    let log = dir.path().join("access.log");
    let lines = [
        r#"1.0.0.7 - - [01/Jul/2024:10:00:00 +0000] "GET /a?x=1 HTTP/1.1" 200 12 "-" "curl/8""#,
        r#"8.8.8.8 - - [01/Jul/2024:10:00:01 +0000] "GET /b HTTP/1.1" 404 0 "-" "curl/8""#,
        r#"2a00:1450::1 - - [01/Jul/2024:10:00:02 +0000] "POST /c HTTP/1.1" 201 7 "-" "curl/8""#,
    ];
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let mm = format!("mm={}", s(&db));
    let out = ok(&["enrich", "--schema", "ecs", "--db", &mm, s(&log)]);
    let got = every_line_is_json(&out);
    assert_eq!(got.len(), 3, "{out}");
    let geo = |v: &Value| v["source"]["geo"]["country_iso_code"].clone();
    let asn = |v: &Value| v["source"]["as"]["number"].clone();
    assert_eq!(
        got.iter().map(geo).collect::<Vec<_>>(),
        ["AU", "US", "IE"].map(Value::from).to_vec()
    );
    assert_eq!(asn(&got[0]), Value::from(13335));
    assert_eq!(asn(&got[1]), Value::Null, "{}", got[1]);
    assert_eq!(asn(&got[2]), Value::from(15169));
    // Unmapped fields stay with their data set, provenance beside them.
    let mine = &got[1]["whipstream"]["mm"];
    assert_eq!(mine["names"]["en"], "United States", "{mine}");
    assert_eq!(
        mine["tags"],
        serde_json::json!(["dns", "anycast"]),
        "{mine}"
    );
    assert_eq!(mine["begin"], "8.8.8.0", "{mine}");
    assert_eq!(got[0]["http"]["response"]["status_code"], 200);

    let parquet = dir.path().join("out.parquet");
    let o = run(
        &[
            "enrich",
            "--schema",
            "ecs",
            "--db",
            &mm,
            "--output",
            s(&parquet),
            s(&log),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("parquet: 3 rows in 1 file(s)"), "{stderr}");
}
